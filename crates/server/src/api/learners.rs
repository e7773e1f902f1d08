//! `/api/v1/learners`

use actix_web::{http::StatusCode, web, HttpRequest, HttpResponse};
use coursegate_core::{api_keys::Scope, api_views, CoreError};
use serde::Deserialize;
use serde_json::json;
use utoipa::IntoParams;

use super::{dto, read, write, ApiCaller, ApiJson};
use crate::{app::AppState, error::ApiError};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/learners")
            .route(web::post().to(upsert))
            .route(web::get().to(list)),
    )
    .service(web::resource("/learners/{id}").route(web::get().to(get)));
}

/// Create or update a learner by external id or email.
///
/// With an `external_id` that a learner already has, that learner is
/// updated (their email changes to the given one, a given `name` replaces
/// theirs). Otherwise a learner with the same email (case-insensitive) is
/// updated: a given `name` replaces the stored one, a given `external_id` is
/// set. Otherwise a learner is created.
#[utoipa::path(
    post, path = "/api/v1/learners", tag = "learners",
    request_body = dto::LearnerIn,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe")),
    responses(
        (status = 201, description = "Created", body = dto::Learner),
        (status = 200, description = "Existing learner, updated", body = dto::Learner),
        (status = 409, description = "`conflict`: external_id belongs to another learner, or the email does", body = dto::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid body", body = dto::Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["learners:write"]))
)]
pub async fn upsert(
    state: web::Data<AppState>,
    caller: ApiCaller,
    req: HttpRequest,
    body: ApiJson<dto::LearnerIn>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::LearnersWrite)?;
    let b = body.0;
    let input = api_views::LearnerInput {
        email: b.email.clone(),
        name: b.name.clone(),
        external_id: b.external_id.clone(),
    };
    write(&state, &caller, &req, &b, move |tx, now| {
        let u = api_views::upsert_learner(tx, now, &input)?;
        let status = if u.created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        Ok((status, json!(dto::Learner::from(&u.learner))))
    })
    .await
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// 1 to 200, default 50.
    pub limit: Option<i64>,
}

/// 422 `invalid_input` on `limit` unless 1 to 200; default 50.
pub fn page_limit(limit: Option<i64>) -> Result<i64, ApiError> {
    let limit = limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(super::api_err(CoreError::invalid(
            "limit",
            "must be between 1 and 200",
        )));
    }
    Ok(limit)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LearnerQuery {
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// 1 to 200, default 50.
    pub limit: Option<i64>,
    /// Only the learner with this email (case-insensitive); no paging then.
    pub email: Option<String>,
    /// Only the learner with this external id; no paging then.
    pub external_id: Option<String>,
}

/// List learners, oldest first, with cursor pagination; or find one by
/// `email` or `external_id` (a page of zero or one, both must match when
/// both are given).
#[utoipa::path(
    get, path = "/api/v1/learners", tag = "learners",
    params(LearnerQuery),
    responses(
        (status = 200, description = "A page of learners", body = dto::LearnerPage),
        (status = 422, description = "Bad cursor, limit or email", body = dto::Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["read"]))
)]
pub async fn list(
    state: web::Data<AppState>,
    caller: ApiCaller,
    q: web::Query<LearnerQuery>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::Read)?;
    let q = q.into_inner();
    let limit = page_limit(q.limit)?;
    let (rows, next) = read(&state, move |tx, _| {
        if q.email.is_some() || q.external_id.is_some() {
            let rows = api_views::find_learners(tx, q.email.as_deref(), q.external_id.as_deref())?;
            return Ok((rows, None));
        }
        api_views::learners_page(tx, q.cursor.as_deref(), limit)
    })
    .await?;
    Ok(super::json(
        StatusCode::OK,
        &dto::LearnerPage {
            data: rows.iter().map(dto::Learner::from).collect(),
            next_cursor: next,
        },
    ))
}

/// A learner with their enrolments and progress.
#[utoipa::path(
    get, path = "/api/v1/learners/{id}", tag = "learners",
    params(("id" = String, Path, description = "Learner id")),
    responses(
        (status = 200, description = "The learner", body = dto::LearnerDetail),
        (status = 404, description = "No such learner", body = dto::Problem, content_type = "application/problem+json"),
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
    let (l, enrolments) = read(&state, move |tx, now| api_views::learner(tx, now, &id)).await?;
    Ok(super::json(
        StatusCode::OK,
        &dto::LearnerDetail {
            id: l.id.clone(),
            email: l.email.clone(),
            name: l.name.clone(),
            external_id: l.external_id.clone(),
            created_at: coursegate_core::access::utc(l.created_at),
            updated_at: coursegate_core::access::utc(l.updated_at),
            enrolments: enrolments.iter().map(dto::Enrolment::from).collect(),
        },
    ))
}
