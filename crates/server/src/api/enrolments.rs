//! `/api/v1/enrolments`

use actix_web::{http::StatusCode, web, HttpRequest, HttpResponse};
use coursegate_core::{api_keys::Scope, api_views, enrolments};
use serde::Deserialize;
use serde_json::json;
use utoipa::IntoParams;

use super::{dto, read, write, ApiCaller, ApiJson};
use crate::{app::AppState, error::ApiError};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/enrolments")
            .route(web::post().to(create))
            .route(web::get().to(list)),
    )
    .service(web::resource("/enrolments/{id}").route(web::get().to(get)))
    .service(web::resource("/enrolments/{id}/revoke").route(web::post().to(revoke)))
    .service(web::resource("/enrolments/{id}/extend").route(web::post().to(extend)));
}

/// Enrol a learner (created if new) in a course.
///
/// One call for "purchase completed → enrolled". Enrolling again is safe:
/// an existing enrolment is re-activated or re-dated (200), a new one is 201.
/// With `send_link` (needs the `links:write` scope too) the learner is also
/// emailed a link to the course in the same transaction, so one call does
/// "purchase completed → enrolled → email sent"; the `reference` appears in
/// the email ("following your order 1001"). A scheduled enrolment (future
/// `starts_at`) cannot get a link yet: 403 `enrolment_not_started`.
#[utoipa::path(
    post, path = "/api/v1/enrolments", tag = "enrolments",
    request_body = dto::EnrolmentIn,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe")),
    responses(
        (status = 201, description = "Enrolled", body = dto::Enrolment),
        (status = 200, description = "Already enrolled (re-activated or re-dated if asked)", body = dto::Enrolment),
        (status = 404, description = "No such course", body = dto::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid body, or Idempotency-Key reused", body = dto::Problem, content_type = "application/problem+json"),
        (status = 403, description = "`insufficient_scope` (send_link needs links:write), or `enrolment_not_started` for send_link on a future start", body = dto::Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["enrolments:write"]))
)]
pub async fn create(
    state: web::Data<AppState>,
    caller: ApiCaller,
    req: HttpRequest,
    body: ApiJson<dto::EnrolmentIn>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::EnrolmentsWrite)?;
    let b = body.0;
    let send = b.send_link.as_ref().map(|s| s.kind.policy());
    if send.is_some() {
        caller.require(Scope::LinksWrite)?;
    }
    let input = api_views::EnrolInput {
        email: b.email.clone(),
        course: b.course.clone(),
        name: b.name.clone(),
        starts_at: b.starts_at,
        expires_at: b.expires_at,
        reference: b.reference.clone(),
    };
    let (secret, settings, key, base_url) = (
        state.config.secret.clone(),
        state.config.links,
        caller.0.clone(),
        state.config.url(""),
    );
    write(&state, &caller, &req, &b, move |tx, now| {
        let (granted, out) = match send {
            None => {
                let (granted, view) = api_views::enrol(tx, now, &input)?;
                (granted, dto::Enrolment::from(&view))
            }
            Some(kind) => {
                let (granted, view, link) = api_views::enrol_and_send(
                    tx, now, &secret, &settings, &key, &input, kind, &base_url,
                )?;
                let mut out = dto::Enrolment::from(&view);
                out.link = Some(dto::Link::of(&link));
                (granted, out)
            }
        };
        let status = if granted.created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        Ok((status, json!(out)))
    })
    .await
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EnrolmentQuery {
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// 1 to 200, default 50.
    pub limit: Option<i64>,
    /// Only the enrolments of the learner with this email (case-insensitive).
    pub email: Option<String>,
    /// Only the enrolments in this course (slug).
    pub course: Option<String>,
}

/// List enrolments with their progress, oldest first, with cursor
/// pagination; filter by learner `email` and/or `course`. An unknown email
/// or course gives an empty page.
#[utoipa::path(
    get, path = "/api/v1/enrolments", tag = "enrolments",
    params(EnrolmentQuery),
    responses(
        (status = 200, description = "A page of enrolments", body = dto::EnrolmentPage),
        (status = 422, description = "Bad cursor, limit or email", body = dto::Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["read"]))
)]
pub async fn list(
    state: web::Data<AppState>,
    caller: ApiCaller,
    q: web::Query<EnrolmentQuery>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::Read)?;
    let q = q.into_inner();
    let limit = super::learners::page_limit(q.limit)?;
    let (rows, next) = read(&state, move |tx, now| {
        api_views::enrolments_page(
            tx,
            now,
            q.email.as_deref(),
            q.course.as_deref(),
            q.cursor.as_deref(),
            limit,
        )
    })
    .await?;
    Ok(super::json(
        StatusCode::OK,
        &dto::EnrolmentPage {
            data: rows.iter().map(dto::Enrolment::from).collect(),
            next_cursor: next,
        },
    ))
}

/// An enrolment with its progress.
#[utoipa::path(
    get, path = "/api/v1/enrolments/{id}", tag = "enrolments",
    params(("id" = String, Path, description = "Enrolment id")),
    responses(
        (status = 200, description = "The enrolment", body = dto::Enrolment),
        (status = 404, description = "No such enrolment", body = dto::Problem, content_type = "application/problem+json"),
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
    let v = read(&state, move |tx, now| api_views::enrolment(tx, now, &id)).await?;
    Ok(super::json(StatusCode::OK, &dto::Enrolment::from(&v)))
}

/// Revoke an enrolment (e.g. after a refund). Access ends on the learner's next request.
#[utoipa::path(
    post, path = "/api/v1/enrolments/{id}/revoke", tag = "enrolments",
    params(
        ("id" = String, Path, description = "Enrolment id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe"),
    ),
    request_body(content = dto::RevokeIn, description = "Optional"),
    responses(
        (status = 200, description = "Revoked (or already revoked)", body = dto::Enrolment),
        (status = 404, description = "No such enrolment", body = dto::Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["enrolments:write"]))
)]
pub async fn revoke(
    state: web::Data<AppState>,
    caller: ApiCaller,
    req: HttpRequest,
    id: web::Path<String>,
    body: ApiJson<dto::RevokeIn>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::EnrolmentsWrite)?;
    let id = id.into_inner();
    let b = body.0;
    let reason = b.reason.clone();
    write(&state, &caller, &req, &b, move |tx, now| {
        api_views::enrolment(tx, now, &id)?;
        enrolments::revoke(tx, now, &id, reason.as_deref())?;
        let v = api_views::enrolment(tx, now, &id)?;
        Ok((StatusCode::OK, json!(dto::Enrolment::from(&v))))
    })
    .await
}

/// Move the end of an enrolment (null: no end).
#[utoipa::path(
    post, path = "/api/v1/enrolments/{id}/extend", tag = "enrolments",
    params(
        ("id" = String, Path, description = "Enrolment id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe"),
    ),
    request_body = dto::ExtendIn,
    responses(
        (status = 200, description = "The enrolment with its new end", body = dto::Enrolment),
        (status = 404, description = "No such enrolment", body = dto::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid body", body = dto::Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["enrolments:write"]))
)]
pub async fn extend(
    state: web::Data<AppState>,
    caller: ApiCaller,
    req: HttpRequest,
    id: web::Path<String>,
    body: ApiJson<dto::ExtendIn>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::EnrolmentsWrite)?;
    let id = id.into_inner();
    let b = body.0;
    let Some(expires_at) = b.expires_at else {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "missing_field",
            "expires_at: missing field `expires_at` (use null for no end)",
        )
        .with_field_error(
            "expires_at",
            "missing field `expires_at` (use null for no end)",
        ));
    };
    write(&state, &caller, &req, &b, move |tx, now| {
        api_views::enrolment(tx, now, &id)?;
        enrolments::extend(tx, now, &id, expires_at)?;
        let v = api_views::enrolment(tx, now, &id)?;
        Ok((StatusCode::OK, json!(dto::Enrolment::from(&v))))
    })
    .await
}
