//! # coursegate-lti
//!
//! LTI 1.3 / 1EdTech protocol code for Coursegate: OIDC login initiation,
//! id_token verification with one error per rejection reason, platform key
//! caching, tool keys, Deep Linking 2.0 responses, service access (OAuth2
//! client credentials, AGS, NRPS) and Dynamic Registration messages.
//!
//! It knows nothing of HTTP frameworks or databases and never reads the wall
//! clock: every function that needs time takes `now`.
//!
//! ## A launch, end to end
//! 1. `/lti/login`: [`login::LoginInitiation::from_params`] → find the
//!    platform → store state + nonce → redirect to [`login::auth_request_url`].
//! 2. `/lti/launch`: [`token::peek_unverified`] (to find the platform and the
//!    kid only) → [`jwks::JwksCache::keys`] (network I/O, before any DB
//!    transaction) → [`token::verify_launch_traced`] with
//!    [`token::Expectations`] → typed [`claims::LaunchClaims`] or an
//!    [`error::LtiError`] whose `code()`, `plain_words()` and `advice(lms)`
//!    go to the flight recorder and the error page. Whether the deployment_id
//!    is known, and consuming the nonce once, are the caller's.
//! 3. Deep Linking: [`deep_linking::response_jwt`] signed by
//!    [`tool_keys::ToolKeys`], auto-posted with [`deep_linking::autopost_form`].
//! 4. Services: [`services::TokenClient`] → [`services::ServiceClient`]
//!    (`post_score`, `find_or_create_line_item`, `results`, `memberships`).
//! 5. Dynamic Registration: [`registration`].
//!
//! Feature `test-helpers` exposes [`testing`]: fixed keys and a `TokenMinter`.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod claims;
pub mod deep_linking;
pub mod error;
pub mod jwks;
pub mod login;
pub mod registration;
pub mod services;
pub mod token;
pub mod tool_keys;

#[cfg(any(test, feature = "test-helpers"))]
pub mod testing;

#[cfg(test)]
mod verify_tests;

pub use claims::{LaunchClaims, MessageType};
pub use error::{Lms, LtiError};
pub use jwks::{JwksCache, KeySource, ReqwestKeySource};
pub use services::{ServiceClient, TokenClient};
pub use token::{
    peek_kid, peek_unverified, verify_launch, Expectations, PlatformKeys, Unverified, Verifier,
};
pub use tool_keys::ToolKeys;
