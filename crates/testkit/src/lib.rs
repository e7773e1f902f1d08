//! coursegate-testkit (dev only): what the integration tests stand on.
//!
//! - [`TestApp`]: the real server on 127.0.0.1:0 over a temp SQLite file or
//!   a fresh PostgreSQL schema, a [`coursegate_core::ManualClock`], seeding
//!   helpers that go through the core services, signed-in browsers;
//! - [`pg_url`], [`backends`] and [`each_backend!`]: every database test runs
//!   on SQLite and again on PostgreSQL when `TEST_DATABASE_URL` is set (CI
//!   sets it; without it the PostgreSQL variant is skipped loudly);
//! - [`assert_page_error`]: error pages carry their code in `X-Error-Code`
//!   and in the body;
//! - [`smtp`]: an SMTP sink on loopback.

pub mod app;
pub mod db;
pub mod http;
pub mod smtp;

pub use app::{SeededCourse, TestApp, TestAppBuilder, SESSION_COOKIE, TEST_SECRET};
pub use db::{backends, pg_url, TestBackend};
pub use http::{assert_page_error, csrf_of, error_code};
