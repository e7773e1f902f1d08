//! The one place errors become HTTP.
//!
//! Policy: handlers return `Result<_, PageError>` (browsers: an HTML page with
//! the reason) or `Result<_, ApiError>` (machines: RFC 9457 problem+json).
//! Both are built from `CoreError` and keep its stable code. 5xx responses
//! never echo internal text; the cause is logged instead.

use actix_web::{http::StatusCode, HttpResponse, ResponseError};
use coursegate_core::CoreError;
use serde_json::json;

use crate::templates;

pub const PROBLEM_BASE: &str = "https://coursegate.dev/problems/";

/// Status for a core error.
pub fn status_of(e: &CoreError) -> StatusCode {
    match e {
        CoreError::Invalid { .. } => StatusCode::BAD_REQUEST,
        CoreError::NotFound(_) => StatusCode::NOT_FOUND,
        CoreError::Conflict(_) => StatusCode::CONFLICT,
        CoreError::Access(_) => StatusCode::FORBIDDEN,
        CoreError::Unauthenticated | CoreError::SessionExpired => StatusCode::UNAUTHORIZED,
        CoreError::Forbidden(_) | CoreError::OutOfScope { .. } => StatusCode::FORBIDDEN,
        CoreError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
        CoreError::Refused { .. } => StatusCode::BAD_REQUEST,
        CoreError::Busy | CoreError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        CoreError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn title_of(code: &str) -> &'static str {
    match code {
        "invalid_input" => "Please check what you entered",
        "course_not_found" => "Course not found",
        "lesson_not_found" => "Lesson not found",
        "not_found" | "learner_not_found" | "enrolment_not_found" | "page_not_found" => "Not found",
        "conflict" => "Already exists",
        "not_enrolled" => "You are not enrolled in this course",
        "enrolment_not_started" => "Your course has not started yet",
        "enrolment_expired" => "Your access has ended",
        "enrolment_revoked" => "Your access has been withdrawn",
        "course_unpublished" => "This course is not available",
        "not_signed_in" => "You are signed out",
        "session_expired" => "Your session has ended",
        "csrf_failed" => "This form has expired",
        "forbidden" => "Not allowed",
        "course_out_of_scope" | "learner_out_of_scope" => "Not one of your courses",
        "rate_limited" => "Too many requests",
        "busy" | "unavailable" => "Temporarily unavailable",
        "method_not_allowed" => "Method not allowed",
        "link_invalid" => "This link does not work",
        "link_expired" => "This link has expired",
        "link_used" => "This link has already been used",
        "link_revoked" => "This link has been withdrawn",
        "link_superseded" => "A newer link replaced this one",
        "code_invalid" | "code_missing" => "Check the code",
        "code_expired" => "This code has expired",
        "code_locked" => "Too many wrong codes",
        "preview_read_only" => "Read-only preview",
        "missing_api_key" | "invalid_api_key" => "Authentication required",
        "insufficient_scope" => "The API key lacks a scope",
        "malformed_json" => "The request body is not valid JSON",
        "unsupported_media_type" => "The request body must be JSON",
        "payload_too_large" => "The request body is too large",
        "unknown_field" => "The request body has an unknown field",
        "missing_field" => "The request body lacks a required field",
        "invalid_type" => "A field has the wrong type",
        "invalid_value" => "A field has an invalid value",
        "idempotency_key_reused" => "Idempotency-Key reused with a different request",
        "idempotency_key_in_use" => "A request with this Idempotency-Key is in progress",
        "invalid_idempotency_key" => "Invalid Idempotency-Key",
        "webhook_not_found" | "api_key_not_found" | "delivery_not_found" | "link_not_found" => {
            "Not found"
        }
        "link_url_not_allowed" => "This API key may not see link URLs",
        "sso_domain_not_allowed" | "sso_staff_deactivated" => "Single sign-on: not a staff member",
        "sso_state_unknown" | "sso_state_used" | "sso_state_expired" | "sso_browser_mismatch" => {
            "Single sign-on: start again"
        }
        c if c.starts_with("sso_") => "Single sign-on did not work",
        _ => "Something went wrong",
    }
}

/// An error shown to a person as an HTML page.
#[derive(Debug)]
pub struct PageError {
    pub status: StatusCode,
    pub code: String,
    pub detail: String,
}

impl PageError {
    pub fn new(status: StatusCode, code: &str, detail: impl Into<String>) -> Self {
        Self {
            status,
            code: code.to_string(),
            detail: detail.into(),
        }
    }

    pub fn csrf() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "csrf_failed",
            "The form was sent without a valid security token, or from another site. Go back, reload the page and try again.",
        )
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_input", detail)
    }

    pub fn not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "page_not_found",
            "There is no page at this address.",
        )
    }
}

impl std::fmt::Display for PageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.code, self.detail)
    }
}

impl From<CoreError> for PageError {
    fn from(e: CoreError) -> Self {
        let status = status_of(&e);
        let detail = match &e {
            CoreError::Internal(m) | CoreError::Unavailable(m) => {
                tracing::error!(error = %m, code = e.code(), "request failed");
                "The server could not complete this request. Please try again in a moment.".to_string()
            }
            CoreError::Busy => "The server is busy. Please try again in a moment.".to_string(),
            CoreError::Access(d) => {
                let mut s = d.to_string();
                if let Some(first) = s.get(0..1) {
                    s = first.to_uppercase() + s.get(1..).unwrap_or("");
                }
                format!("{s}.")
            }
            CoreError::Unauthenticated => "Please sign in again with the link from your email, or request a new one.".into(),
            CoreError::SessionExpired => "For your security you were signed out. Sign in again with your link, or request a new one.".into(),
            CoreError::NotFound("course") => "There is no course at this address. Check the link, or go to your dashboard.".into(),
            CoreError::NotFound("lesson") => "There is no such lesson in this course.".into(),
            other => other.to_string(),
        };
        Self {
            status,
            code: e.code().to_string(),
            detail,
        }
    }
}

impl ResponseError for PageError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut ctx = tera::Context::new();
        ctx.insert("status", &self.status.as_u16());
        ctx.insert("code", &self.code);
        ctx.insert("title", title_of(&self.code));
        ctx.insert("detail", &self.detail);
        let signin = matches!(self.code.as_str(), "not_signed_in" | "session_expired");
        ctx.insert("offer_signin", &signin);
        let body = templates::render("pages/error.html", &ctx).unwrap_or_else(|_| {
            format!(
                "<!doctype html><title>{0}</title><h1>{0}</h1><p>{1}</p>",
                html_escape(title_of(&self.code)),
                html_escape(&self.detail)
            )
        });
        HttpResponse::build(self.status)
            .content_type("text/html; charset=utf-8")
            .insert_header(("Cache-Control", "no-store"))
            .insert_header(("X-Error-Code", self.code.clone()))
            .body(body)
    }
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// An RFC 9457 problem for API clients.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: String,
    pub detail: String,
    /// Field-level validation errors: (field, message).
    pub errors: Vec<(String, String)>,
    /// Extra response headers (`WWW-Authenticate`, `Retry-After`).
    pub headers: Vec<(&'static str, String)>,
    /// Extension members of the problem object (RFC 9457 section 3.2).
    pub extra: Box<serde_json::Map<String, serde_json::Value>>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &str, detail: impl Into<String>) -> Self {
        Self {
            status,
            code: code.to_string(),
            detail: detail.into(),
            errors: Vec::new(),
            headers: Vec::new(),
            extra: Box::default(),
        }
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub fn with_field_error(
        mut self,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        self.errors.push((field.into(), message.into()));
        self
    }

    pub fn with_extra(mut self, name: &str, value: serde_json::Value) -> Self {
        self.extra.insert(name.to_string(), value);
        self
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.code, self.detail)
    }
}

impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> Self {
        let status = status_of(&e);
        let mut errors = Vec::new();
        let detail = match &e {
            CoreError::Internal(m) | CoreError::Unavailable(m) => {
                tracing::error!(error = %m, code = e.code(), "api request failed");
                "The server could not complete this request.".to_string()
            }
            CoreError::Invalid { field, message } => {
                errors.push((field.to_string(), message.clone()));
                format!("{field}: {message}")
            }
            other => other.to_string(),
        };
        Self {
            status,
            code: e.code().to_string(),
            detail,
            errors,
            headers: Vec::new(),
            extra: Box::default(),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut body = json!({
            "type": format!("{PROBLEM_BASE}{}", self.code),
            "title": title_of(&self.code),
            "status": self.status.as_u16(),
            "detail": self.detail,
            "code": self.code,
        });
        if !self.errors.is_empty() {
            body["errors"] = self
                .errors
                .iter()
                .map(|(f, m)| json!({ "field": f, "message": m }))
                .collect();
        }
        for (k, v) in self.extra.iter() {
            body[k] = v.clone();
        }
        let mut resp = HttpResponse::build(self.status);
        resp.content_type("application/problem+json")
            .insert_header(("Cache-Control", "no-store"));
        for (name, value) in &self.headers {
            resp.insert_header((*name, value.clone()));
        }
        resp.body(body.to_string())
    }
}
