//! Helpers shared by the store's integration tests.
// Each test binary uses only some of them.
#![allow(dead_code)]

/// The PostgreSQL URL for `what` (a test's name for the skip message):
/// `TEST_DATABASE_URL`, a failure under `CI=true` when it is missing, else
/// `None` with a loud skip.
pub fn pg_url(what: &str) -> Option<String> {
    match std::env::var("TEST_DATABASE_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("CI=true but TEST_DATABASE_URL is not set: the PostgreSQL tests must run in CI")
        }
        _ => {
            // Written straight to stderr so the test harness does not swallow it.
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "\n*** SKIPPED: PostgreSQL {what} test: TEST_DATABASE_URL is not set (e.g. postgres://postgres@127.0.0.1:5432/test) ***\n"
            );
            None
        }
    }
}

/// A fixed instant for rows the tests write.
pub fn now() -> chrono::NaiveDateTime {
    chrono::DateTime::from_timestamp(1_800_000_000, 0)
        .unwrap()
        .naive_utc()
}
