//! Repositories: plain functions over `&mut DbConn`, called inside
//! `Store::read`/`Store::write`. No business rules here.
//!
//! A function's body runs inside [`direct!`]: on the concrete SQLite or
//! PostgreSQL connection, not through `DbConn`'s `MultiConnection` layer.
//! That layer renders a query's whole SQL text on every pass Diesel makes
//! over it (cache check, bind collection), even when the prepared statement
//! is cached: measured at ~15 % of a launch's CPU (docs/benchmarks.md,
//! 2026-12-02). On the concrete connection a query with a static query id
//! is looked up by its type and its SQL is never built again.

/// Runs `$body` once per backend with `$conn` rebound to the concrete
/// connection (the body is type-checked for both; it must not pass `$conn`
/// on to another repository function, which takes a `DbConn`).
macro_rules! direct {
    ($conn:ident, $body:block) => {
        match $conn {
            $crate::DbConn::Sqlite($conn) => $body,
            $crate::DbConn::Postgres($conn) => $body,
        }
    };
}

pub mod api;
pub mod audit;
pub mod console;
pub mod courses;
pub mod enrolments;
pub mod learners;
pub mod links;
pub mod lti;
pub mod lti_services;
pub mod meta;
pub mod outbox;
pub mod scopes;
pub mod sessions;
pub mod settings;
pub mod sso;
pub mod staff;
pub mod webhooks;

/// A page request for list queries (offset paging on stable sort keys).
#[derive(Debug, Clone, Copy)]
pub struct Page {
    pub limit: i64,
    pub offset: i64,
}

impl Default for Page {
    fn default() -> Self {
        Self {
            limit: 50,
            offset: 0,
        }
    }
}
