//! `/healthz` (the process is up) and `/readyz` (database reachable, migrations current).

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::app::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz));
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let store = state.store.clone();
    let result = tokio::task::spawn_blocking(move || {
        store.read_blocking(coursegate_store::repo::meta::ping)?;
        store.pending_migrations()
    })
    .await;
    match result {
        Ok(Ok(0)) => HttpResponse::Ok().json(json!({ "status": "ready", "database": state.store.backend().name() })),
        Ok(Ok(n)) => HttpResponse::ServiceUnavailable()
            .json(json!({ "status": "not_ready", "reason": format!("{n} migration(s) pending; run `coursegate migrate`") })),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness check failed");
            HttpResponse::ServiceUnavailable().json(json!({ "status": "not_ready", "reason": "database unreachable" }))
        }
        Err(_) => HttpResponse::ServiceUnavailable().json(json!({ "status": "not_ready", "reason": "check failed" })),
    }
}
