//! HTTP handlers, by area. Each handler: extract, one core call, map the result.

pub mod assets;
pub mod dev;
pub mod health;
pub mod learner;
pub mod links;
pub mod lti;
pub mod lti_grant;
pub mod lti_instructor;
pub mod lti_picker;
pub mod lti_registration;
pub mod staff;
pub mod staff_console;
pub mod staff_lms;
pub mod staff_sso;
pub mod staff_team;

use actix_web::HttpRequest;

use crate::error::PageError;

/// The fallback for unknown addresses.
pub async fn not_found(req: HttpRequest) -> actix_web::HttpResponse {
    use actix_web::ResponseError;
    if req.path().starts_with("/api/") {
        crate::error::ApiError::new(
            actix_web::http::StatusCode::NOT_FOUND,
            "not_found",
            "No such endpoint.",
        )
        .error_response()
    } else {
        PageError::not_found().error_response()
    }
}

/// Renders a page template with the common context (site, csrf).
pub fn page(name: &str, ctx: &tera::Context) -> Result<actix_web::HttpResponse, PageError> {
    let body = crate::templates::render(name, ctx)
        .map_err(|e| PageError::from(coursegate_core::CoreError::Internal(e)))?;
    Ok(actix_web::HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header(("Cache-Control", "no-store"))
        .body(body))
}

/// A 303 redirect (after a POST).
pub fn see_other(location: &str) -> actix_web::HttpResponse {
    actix_web::HttpResponse::SeeOther()
        .insert_header(("Location", location.to_string()))
        .finish()
}
