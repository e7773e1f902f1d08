//! `/api/v1/links`: issue a sign-in or course-access link for a learner.
//! Waits for the magic-link door; until then every call is 501.

use actix_web::{web, HttpResponse};
use coursegate_core::api_keys::Scope;

use super::{dto, ApiCaller, ApiJson};
use crate::error::ApiError;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/links").route(web::post().to(create)))
        .service(web::resource("/links/{id}").route(web::get().to(get)));
}

/// Issue a link (and email it, or return its URL to keys allowed to see URLs).
#[utoipa::path(
    post, path = "/api/v1/links", tag = "links",
    request_body = dto::LinkIn,
    responses(
        (status = 501, description = "Not available yet (needs the magic-link door)", body = dto::Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["links:write"]))
)]
pub async fn create(
    caller: ApiCaller,
    _body: ApiJson<dto::LinkIn>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::LinksWrite)?;
    Err(super::not_implemented("Issuing links"))
}

/// A link's status.
#[utoipa::path(
    get, path = "/api/v1/links/{id}", tag = "links",
    params(("id" = String, Path, description = "Link id")),
    responses(
        (status = 501, description = "Not available yet (needs the magic-link door)", body = dto::Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["read"]))
)]
pub async fn get(caller: ApiCaller, _id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::Read)?;
    Err(super::not_implemented("Link status"))
}
