//! The end-to-end tests: one binary (compile once, link once), the real
//! server over real HTTP and the built `coursegate` binary. Database tests
//! run once per backend: `NAME::sqlite`, and `NAME::postgres` when
//! TEST_DATABASE_URL is set (CI sets it). Helpers live in coursegate-testkit.

mod cli;
mod health;
mod learner;
mod magic_links;
mod staff_console;
