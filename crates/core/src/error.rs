//! Domain errors with stable machine codes.
//!
//! Policy: services return `CoreError`; the server maps it to an HTML page or
//! RFC 9457 problem+json in one place (`server/src/error.rs`). `Store` errors
//! other than not-found/conflict are internal: logged, never shown.

use chrono::{DateTime, Utc};

use crate::access::Denied;
use coursegate_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Conflict(String),
    #[error("access denied: {0}")]
    Access(Denied),
    #[error("not signed in")]
    Unauthenticated,
    #[error("session expired")]
    SessionExpired,
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// An instructor reached for a course (or a learner) outside the courses
    /// assigned to them; `code` names which (`course_out_of_scope`…).
    #[error("{message}")]
    OutOfScope { code: &'static str, message: String },
    #[error("rate limited until {0}")]
    RateLimited(DateTime<Utc>),
    /// A request refused for a protocol reason with its own stable code
    /// (LTI launch checks, link states). Shown as a 4xx page naming the reason.
    #[error("{message}")]
    Refused { code: &'static str, message: String },
    #[error("database busy, try again")]
    Busy,
    #[error("database unavailable")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl CoreError {
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        CoreError::Invalid {
            field,
            message: message.into(),
        }
    }

    pub fn refused(code: &'static str, message: impl Into<String>) -> Self {
        CoreError::Refused {
            code,
            message: message.into(),
        }
    }

    /// Stable snake_case code, used in problem types, page titles and tests.
    pub fn code(&self) -> &'static str {
        match self {
            CoreError::Invalid { .. } => "invalid_input",
            CoreError::NotFound("course") => "course_not_found",
            CoreError::NotFound("lesson") => "lesson_not_found",
            CoreError::NotFound("learner") => "learner_not_found",
            CoreError::NotFound("enrolment") => "enrolment_not_found",
            CoreError::NotFound("webhook") => "webhook_not_found",
            CoreError::NotFound("api_key") => "api_key_not_found",
            CoreError::NotFound("delivery") => "delivery_not_found",
            CoreError::NotFound("link") => "link_not_found",
            CoreError::NotFound(_) => "not_found",
            CoreError::Conflict(_) => "conflict",
            CoreError::Access(d) => d.code(),
            CoreError::Unauthenticated => "not_signed_in",
            CoreError::SessionExpired => "session_expired",
            CoreError::Forbidden(_) => "forbidden",
            CoreError::OutOfScope { code, .. } => code,
            CoreError::RateLimited(_) => "rate_limited",
            CoreError::Refused { code, .. } => code,
            CoreError::Busy => "busy",
            CoreError::Unavailable(_) => "unavailable",
            CoreError::Internal(_) => "internal",
        }
    }
}

impl From<StoreError> for CoreError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => CoreError::NotFound("record"),
            StoreError::Conflict(c) => CoreError::Conflict(c),
            StoreError::Busy => CoreError::Busy,
            StoreError::Unavailable(m) => CoreError::Unavailable(m),
            StoreError::Config(m) | StoreError::Internal(m) => CoreError::Internal(m),
        }
    }
}
