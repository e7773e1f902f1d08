//! `/api/v1/webhooks`: endpoints, secret rotation, the delivery log and replay.

use actix_web::{http::StatusCode, web, HttpRequest, HttpResponse};
use coursegate_core::{api_keys::Scope, webhooks, CoreError};
use serde_json::json;

use super::{dto, read, write, ApiCaller, ApiJson};
use crate::{app::AppState, error::ApiError};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/webhooks")
            .route(web::post().to(create))
            .route(web::get().to(list)),
    )
    .service(
        web::resource("/webhooks/{id}")
            .route(web::get().to(get))
            .route(web::delete().to(delete)),
    )
    .service(web::resource("/webhooks/{id}/rotate").route(web::post().to(rotate)))
    .service(web::resource("/webhooks/{id}/enable").route(web::post().to(enable)))
    .service(web::resource("/webhooks/{id}/deliveries").route(web::get().to(deliveries)))
    .service(
        web::resource("/webhooks/{id}/deliveries/{delivery_id}/replay")
            .route(web::post().to(replay)),
    );
}

/// Subscribe an endpoint to events. The signing secret is in this response only.
#[utoipa::path(
    post, path = "/api/v1/webhooks", tag = "webhooks",
    request_body = dto::WebhookIn,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe")),
    responses(
        (status = 201, description = "Created; keep `secret` to verify signatures", body = dto::WebhookWithSecret),
        (status = 422, description = "Invalid body", body = dto::Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["webhooks:write"]))
)]
pub async fn create(
    state: web::Data<AppState>,
    caller: ApiCaller,
    req: HttpRequest,
    body: ApiJson<dto::WebhookIn>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::WebhooksWrite)?;
    let b = body.0;
    let new = webhooks::NewEndpoint {
        url: b.url.clone(),
        events: b.events.clone(),
        description: b.description.clone(),
    };
    let actor = caller.0.actor();
    write(&state, &caller, &req, &b, move |tx, now| {
        let w = webhooks::create(tx, now, &actor, new.clone())?;
        Ok((
            StatusCode::CREATED,
            json!(dto::WebhookWithSecret::of(&w.endpoint, &w.secret)),
        ))
    })
    .await
}

/// Every webhook endpoint.
#[utoipa::path(
    get, path = "/api/v1/webhooks", tag = "webhooks",
    responses((status = 200, description = "Endpoints", body = dto::WebhookList)),
    security(("api_key" = ["read"]))
)]
pub async fn list(state: web::Data<AppState>, caller: ApiCaller) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::Read)?;
    let rows = read(&state, |tx, _| webhooks::list(tx)).await?;
    Ok(super::json(
        StatusCode::OK,
        &dto::WebhookList {
            data: rows.iter().map(dto::Webhook::from).collect(),
        },
    ))
}

fn id_ok(id: &str) -> Result<(), CoreError> {
    if coursegate_core::ids::is_uuid(id) {
        Ok(())
    } else {
        Err(CoreError::NotFound("webhook"))
    }
}

/// One endpoint (without its secret).
#[utoipa::path(
    get, path = "/api/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = String, Path, description = "Webhook id")),
    responses(
        (status = 200, description = "The endpoint", body = dto::Webhook),
        (status = 404, description = "No such webhook", body = dto::Problem, content_type = "application/problem+json"),
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
    let w = read(&state, move |tx, _| {
        id_ok(&id)?;
        webhooks::get(tx, &id)
    })
    .await?;
    Ok(super::json(StatusCode::OK, &dto::Webhook::from(&w)))
}

/// Remove an endpoint; pending deliveries to it are dropped.
#[utoipa::path(
    delete, path = "/api/v1/webhooks/{id}", tag = "webhooks",
    params(
        ("id" = String, Path, description = "Webhook id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe"),
    ),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such webhook", body = dto::Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["webhooks:write"]))
)]
pub async fn delete(
    state: web::Data<AppState>,
    caller: ApiCaller,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::WebhooksWrite)?;
    let id = id.into_inner();
    let actor = caller.0.actor();
    write(&state, &caller, &req, &json!({}), move |tx, now| {
        id_ok(&id)?;
        webhooks::delete(tx, now, &actor, &id)?;
        Ok((StatusCode::NO_CONTENT, serde_json::Value::Null))
    })
    .await
}

/// New signing secret. For 24 hours deliveries carry two signatures (new and
/// previous secret), so receivers can switch without missing events.
#[utoipa::path(
    post, path = "/api/v1/webhooks/{id}/rotate", tag = "webhooks",
    params(
        ("id" = String, Path, description = "Webhook id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe"),
    ),
    responses(
        (status = 200, description = "The new secret (shown once)", body = dto::WebhookWithSecret),
        (status = 404, description = "No such webhook", body = dto::Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["webhooks:write"]))
)]
pub async fn rotate(
    state: web::Data<AppState>,
    caller: ApiCaller,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::WebhooksWrite)?;
    let id = id.into_inner();
    let actor = caller.0.actor();
    write(&state, &caller, &req, &json!({}), move |tx, now| {
        id_ok(&id)?;
        let w = webhooks::rotate(tx, now, &actor, &id)?;
        Ok((
            StatusCode::OK,
            json!(dto::WebhookWithSecret::of(&w.endpoint, &w.secret)),
        ))
    })
    .await
}

/// Re-enable a disabled endpoint; its dead messages are queued again.
#[utoipa::path(
    post, path = "/api/v1/webhooks/{id}/enable", tag = "webhooks",
    params(
        ("id" = String, Path, description = "Webhook id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe"),
    ),
    responses(
        (status = 200, description = "Active again", body = dto::Webhook),
        (status = 404, description = "No such webhook", body = dto::Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["webhooks:write"]))
)]
pub async fn enable(
    state: web::Data<AppState>,
    caller: ApiCaller,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::WebhooksWrite)?;
    let id = id.into_inner();
    let actor = caller.0.actor();
    write(&state, &caller, &req, &json!({}), move |tx, now| {
        id_ok(&id)?;
        let w = webhooks::enable(tx, now, &actor, &id)?;
        Ok((StatusCode::OK, json!(dto::Webhook::from(&w))))
    })
    .await
}

/// The delivery log of an endpoint, newest first.
#[utoipa::path(
    get, path = "/api/v1/webhooks/{id}/deliveries", tag = "webhooks",
    params(("id" = String, Path, description = "Webhook id"), super::learners::PageQuery),
    responses(
        (status = 200, description = "Delivery attempts", body = dto::DeliveryPage),
        (status = 404, description = "No such webhook", body = dto::Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["read"]))
)]
pub async fn deliveries(
    state: web::Data<AppState>,
    caller: ApiCaller,
    id: web::Path<String>,
    q: web::Query<super::learners::PageQuery>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::Read)?;
    let id = id.into_inner();
    let q = q.into_inner();
    let limit = q.limit.unwrap_or(50).clamp(1, 200);
    let rows = read(&state, move |tx, _| {
        id_ok(&id)?;
        webhooks::deliveries(tx, &id, q.cursor.as_deref(), limit + 1)
    })
    .await?;
    let mut data: Vec<dto::Delivery> = rows.iter().map(dto::Delivery::from).collect();
    let next_cursor = if data.len() > usize::try_from(limit).unwrap_or(0) {
        data.truncate(usize::try_from(limit).unwrap_or(0));
        data.last().map(|d| d.id.clone())
    } else {
        None
    };
    Ok(super::json(
        StatusCode::OK,
        &dto::DeliveryPage { data, next_cursor },
    ))
}

/// Send a logged delivery's event again (same `webhook-id`).
#[utoipa::path(
    post, path = "/api/v1/webhooks/{id}/deliveries/{delivery_id}/replay", tag = "webhooks",
    params(
        ("id" = String, Path, description = "Webhook id"),
        ("delivery_id" = String, Path, description = "Delivery id from the log"),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe"),
    ),
    responses(
        (status = 202, description = "Queued", body = dto::Replayed),
        (status = 404, description = "No such delivery", body = dto::Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["webhooks:write"]))
)]
pub async fn replay(
    state: web::Data<AppState>,
    caller: ApiCaller,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::WebhooksWrite)?;
    let (id, delivery_id) = path.into_inner();
    let actor = caller.0.actor();
    write(&state, &caller, &req, &json!({}), move |tx, now| {
        id_ok(&id)?;
        let msg = webhooks::replay_delivery(tx, now, &actor, &id, &delivery_id)?;
        let d = coursegate_store::repo::webhooks::get_delivery(tx, &delivery_id)?
            .ok_or(CoreError::NotFound("delivery"))?;
        Ok((
            StatusCode::ACCEPTED,
            json!(dto::Replayed {
                delivery_id: d.id,
                event_id: d.event_id,
                status: msg.status,
            }),
        ))
    })
    .await
}
