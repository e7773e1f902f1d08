fn main() -> std::process::ExitCode {
    coursegate_server::cli::main()
}
