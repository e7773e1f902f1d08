//! Which database a test runs on. SQLite always; PostgreSQL when
//! `TEST_DATABASE_URL` is set — and under `CI=true` it must be set.

use std::io::Write;

/// A database backend for one test run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TestBackend {
    /// A temp SQLite file per test.
    Sqlite,
    /// A fresh schema per test on the server at this URL.
    Postgres(String),
}

impl TestBackend {
    pub fn name(&self) -> &'static str {
        match self {
            TestBackend::Sqlite => "sqlite",
            TestBackend::Postgres(_) => "postgres",
        }
    }
}

/// Writes straight to the process's stderr: libtest captures `eprintln!`
/// of passing tests, not this.
pub fn loud(msg: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "\n*** coursegate-testkit: {msg} ***\n");
    let _ = err.flush();
}

/// `TEST_DATABASE_URL`, if set. Unset under `CI=true` is a failure (CI must
/// never skip the PostgreSQL runs); unset elsewhere prints a loud skip note.
pub fn pg_url() -> Option<String> {
    match std::env::var("TEST_DATABASE_URL") {
        Ok(u) if !u.trim().is_empty() => Some(u),
        _ if std::env::var("CI").as_deref() == Ok("true") => panic!(
            "CI=true but TEST_DATABASE_URL is not set: the PostgreSQL variants of the tests must \
             run in CI (e.g. TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test)"
        ),
        _ => {
            loud(
                "SKIPPED the PostgreSQL variant: set \
                 TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test to run it",
            );
            None
        }
    }
}

/// SQLite, then PostgreSQL when [`pg_url`] gives one.
pub fn backends() -> Vec<TestBackend> {
    let mut v = vec![TestBackend::Sqlite];
    if let Some(u) = pg_url() {
        v.push(TestBackend::Postgres(u));
    }
    v
}

/// Defines one async test per backend: `NAME::sqlite` always, and
/// `NAME::postgres`, which runs when `TEST_DATABASE_URL` is set (see
/// [`pg_url`]). The body receives the backend and usually starts with
/// `TestApp::spawn_on(backend).await`.
///
/// ```ignore
/// coursegate_testkit::each_backend! {
///     async fn dashboard_lists_open_courses(backend) {
///         let app = TestApp::spawn_on(backend).await;
///         // …
///     }
/// }
/// ```
#[macro_export]
macro_rules! each_backend {
    ($(async fn $name:ident($backend:ident) $body:block)*) => {$(
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn run($backend: $crate::TestBackend) $body

            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                run($crate::TestBackend::Sqlite).await
            }

            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(url) = $crate::pg_url() {
                    run($crate::TestBackend::Postgres(url)).await
                }
            }
        }
    )*};
}
