//! The automation API, `/api/v1` (JSON, API keys, problem+json errors), its
//! OpenAPI document at `/api/openapi.json` and a reference page at `/api/docs`.
//!
//! Every handler: `ApiCaller` (authentication, rate limit) → scope check →
//! parsed body (`ApiJson`) → one core call in one transaction → JSON. Writes
//! go through [`write`], which makes them idempotent under `Idempotency-Key`.

pub mod auth;
pub mod body;
pub mod courses;
pub mod docs;
pub mod dto;
pub mod enrolments;
pub mod learners;
pub mod links;
pub mod openapi;
pub mod webhooks;

use actix_web::{http::StatusCode, web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use coursegate_core::{idempotency, CoreError, Tx};
use serde::Serialize;

use crate::{app::AppState, error::ApiError};

pub use auth::ApiCaller;
pub use body::ApiJson;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/api/openapi.json").route(web::get().to(docs::openapi_json)))
        .service(web::resource("/api/docs").route(web::get().to(docs::reference_page)))
        .service(
            web::scope("/api/v1")
                .app_data(
                    web::JsonConfig::default()
                        .limit(body::BODY_LIMIT)
                        .error_handler(|e, _| body::json_config_error(e).into()),
                )
                .app_data(web::PathConfig::default().error_handler(|_, _| {
                    ApiError::new(StatusCode::NOT_FOUND, "not_found", "No such object.").into()
                }))
                .app_data(web::QueryConfig::default().error_handler(|e, _| {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "invalid_query",
                        format!("The query string is invalid: {e}."),
                    )
                    .into()
                }))
                .configure(learners::configure)
                .configure(enrolments::configure)
                .configure(courses::configure)
                .configure(webhooks::configure)
                .configure(links::configure)
                .default_service(web::to(crate::routes::not_found)),
        );
}

/// Maps a core error for API clients: validation failures are 422, and the
/// idempotency refusals get their own statuses.
pub fn api_err(e: CoreError) -> ApiError {
    let mut a = ApiError::from(e);
    a.status = match a.code.as_str() {
        "invalid_input" => StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency_key_reused" => StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency_key_in_use" => StatusCode::CONFLICT,
        "link_url_not_allowed" => StatusCode::FORBIDDEN,
        _ => a.status,
    };
    a
}

/// A JSON response.
pub fn json<T: Serialize>(status: StatusCode, body: &T) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header(("Cache-Control", "no-store"))
        .json(body)
}

/// Runs a read in one transaction.
pub async fn read<T, F>(state: &AppState, f: F) -> Result<T, ApiError>
where
    F: FnOnce(&mut Tx, DateTime<Utc>) -> Result<T, CoreError> + Send + 'static,
    T: Send + 'static,
{
    let now = state.now();
    state
        .store
        .read(move |tx| f(tx, now))
        .await
        .map_err(api_err)
}

/// The `Idempotency-Key` header, if any.
pub fn idempotency_key(req: &HttpRequest) -> Result<Option<String>, ApiError> {
    match req.headers().get("idempotency-key") {
        None => Ok(None),
        Some(v) => {
            let k = v.to_str().map_err(|_| {
                api_err(CoreError::refused(
                    "invalid_idempotency_key",
                    "Idempotency-Key must be visible ASCII",
                ))
            })?;
            idempotency::validate_key(k).map_err(api_err)?;
            Ok(Some(k.to_string()))
        }
    }
}

/// Runs one write use case in one transaction, idempotently when the request
/// carries `Idempotency-Key`: the key is claimed first in the same
/// transaction, so the same key and body give the same stored response, and a
/// different body with the same key is refused (422 `idempotency_key_reused`).
/// `f` returns the status and the response body.
pub async fn write<B, F>(
    state: &AppState,
    caller: &ApiCaller,
    req: &HttpRequest,
    request_body: &B,
    f: F,
) -> Result<HttpResponse, ApiError>
where
    B: Serialize,
    F: Fn(&mut Tx, DateTime<Utc>) -> Result<(StatusCode, serde_json::Value), CoreError>
        + Send
        + Sync
        + Clone
        + 'static,
{
    let key = idempotency_key(req)?;
    let canonical = serde_json::to_string(request_body)
        .map_err(|e| api_err(CoreError::Internal(e.to_string())))?;
    let hash = idempotency::fingerprint(req.method().as_str(), req.path(), &canonical);
    let key_id = caller.0.key_id.clone();
    // One retry covers a PostgreSQL serialisation failure between duplicates.
    let mut tries = 0;
    loop {
        tries += 1;
        let now = state.now();
        let (key, hash, key_id, f) = (key.clone(), hash.clone(), key_id.clone(), f.clone());
        let result = state
            .store
            .write(move |tx| {
                let record = match &key {
                    Some(k) => match idempotency::begin(tx, now, &key_id, k, &hash)? {
                        idempotency::Begin::Fresh { record_id } => Some(record_id),
                        idempotency::Begin::Replay { status, body } => {
                            return Ok((status, body, true))
                        }
                    },
                    None => None,
                };
                let (status, value) = f(tx, now)?;
                let body = if status == StatusCode::NO_CONTENT {
                    String::new()
                } else {
                    value.to_string()
                };
                if let Some(r) = record {
                    idempotency::complete(tx, &r, status.as_u16(), &body)?;
                }
                Ok::<_, CoreError>((status.as_u16(), body, false))
            })
            .await;
        match result {
            Ok((status, body, replayed)) => {
                let mut resp =
                    HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::OK));
                resp.insert_header(("Cache-Control", "no-store"));
                if !body.is_empty() {
                    resp.content_type("application/json");
                }
                if replayed {
                    resp.insert_header(("Idempotent-Replayed", "true"));
                }
                return Ok(resp.body(body));
            }
            Err(CoreError::Busy | CoreError::Conflict(_)) if tries < 2 => continue,
            Err(e) => return Err(api_err(e)),
        }
    }
}
