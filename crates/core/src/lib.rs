//! coursegate-core: the house both doors enter.
//!
//! Domain types and rules (who may open what, when), and one service function
//! per use case. Services are synchronous and take the transaction handle
//! (`&mut Tx`) and the current time as parameters; they never read the wall
//! clock and never name Diesel. Side effects that leave the process are
//! written as outbox rows in the caller's transaction.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod access;
pub mod ags;
pub mod api_keys;
pub mod api_views;
pub mod audit;
pub mod clock;
pub mod console;
pub mod content;
pub mod courses;
pub mod deep_link;
pub mod enrolments;
pub mod error;
pub mod events;
pub mod idempotency;
pub mod ids;
pub mod invitations;
pub mod learners;
pub mod links;
pub mod lti;
pub mod mailq;
pub mod roster;
pub mod scope;
pub mod sessions;
pub mod settings;
pub mod signin;
pub mod sso;
pub mod staff;
pub mod tokens;
pub mod types;
pub mod webhooks;

pub use clock::{Clock, ManualClock, SystemClock};
pub use coursegate_store::{Store, StoreError, Tx};
pub use error::CoreError;
