//! The LTI 1.3 door end to end, beyond `lti_launch.rs`: every rejection
//! reason, the certification's valid variants, replays, two instances on one
//! PostgreSQL, a real Chromium with third-party cookies blocked, and interop
//! with an independent platform implementation (PyPI `lti1p3platform`).
//!
//! Tests that need something this machine may lack (PostgreSQL, Chromium,
//! python3) skip loudly on stderr, and fail instead under `CI=true`.

mod ags;
mod browser;
mod common;
mod conformance;
mod course_picker;
mod deep_linking;
mod interop;
mod platform_edits;
mod registration;
mod roster;
mod services;
mod two_instances;
