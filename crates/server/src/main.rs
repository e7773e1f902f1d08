/// mimalloc instead of glibc's malloc: the request path allocates many small,
/// short-lived buffers across threads (HTTP, SQL, JSON), where glibc's arenas
/// cost ~15 % of a launch's CPU (docs/benchmarks.md, 2026-12-02). With the
/// crate's `override` feature the C libraries (SQLite's page cache and
/// savepoint journals, libpq, OpenSSL) allocate from it as well.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    coursegate_server::cli::main()
}
