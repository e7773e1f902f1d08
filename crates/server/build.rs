fn main() {
    // Templates and static files are embedded; rebuild when any of them changes.
    println!("cargo:rerun-if-changed=../../templates");
}
