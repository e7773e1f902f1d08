//! coursegate-server: the `coursegate` binary — configuration, CLI, the
//! actix-web application (pages, API), sessions, CSRF and background workers.
//!
//! Handlers are thin: parse, authenticate, call one core service inside
//! `store.read`/`store.write`, map the result to a page or problem+json.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod api;
pub mod app;
pub mod cli;
pub mod config;
pub mod demo;
pub mod error;
pub mod extract;
pub mod form;
pub mod frame;
pub mod lti_keys;
pub mod routes;
pub mod sso_client;
pub mod telemetry;
pub mod templates;
pub mod upload;
pub mod workers;

pub use app::{start, AppState, Running};
pub use config::Config;
