//! `/api/v1/links`: issue a course-access or one-time sign-in link for an
//! enrolled learner, and read a link's status.

use actix_web::{http::StatusCode, web, HttpRequest, HttpResponse};
use coursegate_core::{api_keys::Scope, api_views, courses::LinkPolicy, links};
use serde_json::json;

use super::{dto, read, write, ApiCaller, ApiJson};
use crate::{app::AppState, error::ApiError};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/links").route(web::post().to(create)))
        .service(web::resource("/links/{id}").route(web::get().to(get)));
}

/// Issue a link for an enrolled learner, and email it.
///
/// With `send` (the default) the link is emailed through the outbox in the
/// same transaction. Keys created with `allow_link_urls` also get the `url`
/// back (audited), and only they may pass `"send": false` to deliver it
/// themselves (SMS, their own mail); other keys get 403
/// `link_url_not_allowed`. Issuing supersedes the learner's older live links
/// of the same kind for that course.
#[utoipa::path(
    post, path = "/api/v1/links", tag = "links",
    request_body = dto::LinkIn,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe (one link, one email)")),
    responses(
        (status = 201, description = "Issued (and queued for sending unless `send` is false)", body = dto::Link),
        (status = 403, description = "`link_url_not_allowed` (send false without the key's opt-in), `insufficient_scope`, or the learner's enrolment is not active (`not_enrolled`, `enrolment_expired`, …)", body = dto::Problem, content_type = "application/problem+json"),
        (status = 404, description = "`learner_not_found` or `course_not_found`", body = dto::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid body, or Idempotency-Key reused", body = dto::Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["links:write"]))
)]
pub async fn create(
    state: web::Data<AppState>,
    caller: ApiCaller,
    req: HttpRequest,
    body: ApiJson<dto::LinkIn>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::LinksWrite)?;
    let b = body.0;
    let input = api_views::LinkRequest {
        email: b.email.clone(),
        course: b.course.clone(),
        kind: b.kind.map(dto::LinkKind::policy),
        send: b.send.unwrap_or(true),
        base_url: state.config.url(""),
        reference: None,
    };
    let (secret, settings, key) = (
        state.config.secret.clone(),
        state.config.links,
        caller.0.clone(),
    );
    write(&state, &caller, &req, &b, move |tx, now| {
        let l = api_views::issue_link(tx, now, &secret, &settings, &key, &input)?;
        Ok((StatusCode::CREATED, json!(dto::Link::of(&l))))
    })
    .await
}

/// A link's status: `issued`, `sent`, `opened`, `opened_by_scanner`,
/// `redeemed`, `expired`, `superseded`, `revoked` or `used`. Never the URL.
#[utoipa::path(
    get, path = "/api/v1/links/{id}", tag = "links",
    params(("id" = String, Path, description = "Link id")),
    responses(
        (status = 200, description = "The link", body = dto::Link),
        (status = 404, description = "`link_not_found`", body = dto::Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["read"]))
)]
pub async fn get(
    state: web::Data<AppState>,
    caller: ApiCaller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::Read)?;
    let id = id.into_inner();
    let settings = state.config.links;
    let (link, status) = read(&state, move |tx, now| {
        links::status(tx, now, &settings, &id)
    })
    .await?;
    Ok(super::json(
        StatusCode::OK,
        &dto::Link::from_status(&status, &link.subject_id, None),
    ))
}

impl dto::LinkKind {
    pub fn policy(self) -> LinkPolicy {
        match self {
            dto::LinkKind::Access => LinkPolicy::Access,
            dto::LinkKind::Once => LinkPolicy::Once,
        }
    }
}
