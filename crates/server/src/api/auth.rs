//! `ApiCaller`: the API key of a request (`Authorization: Bearer cgk_…`),
//! authenticated and counted against its rate limit in one write.

use std::future::Future;
use std::pin::Pin;

use actix_web::{dev::Payload, http::StatusCode, web, FromRequest, HttpRequest};
use coursegate_core::{
    api_keys::{self, ApiPrincipal, Scope},
    CoreError,
};
use serde_json::json;

use crate::{app::AppState, error::ApiError};

const REALM: &str = "Bearer realm=\"coursegate\"";

/// An authenticated API key.
#[derive(Debug, Clone)]
pub struct ApiCaller(pub ApiPrincipal);

impl ApiCaller {
    /// 403 `insufficient_scope` naming the missing scope, unless the key has it.
    pub fn require(&self, scope: Scope) -> Result<(), ApiError> {
        if self.0.has(scope) {
            return Ok(());
        }
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "insufficient_scope",
            format!(
                "This API key lacks the scope \"{}\". Create a key with that scope.",
                scope.as_str()
            ),
        )
        .with_header(
            "WWW-Authenticate",
            format!(
                "{REALM}, error=\"insufficient_scope\", scope=\"{}\"",
                scope.as_str()
            ),
        )
        .with_extra("required_scope", json!(scope.as_str())))
    }
}

fn missing() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "missing_api_key",
        "Send an API key as `Authorization: Bearer cgk_…`.",
    )
    .with_header("WWW-Authenticate", REALM)
}

fn invalid() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "invalid_api_key",
        "The API key is unknown, malformed or revoked.",
    )
    .with_header(
        "WWW-Authenticate",
        format!("{REALM}, error=\"invalid_token\""),
    )
}

impl FromRequest for ApiCaller {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let header = req
            .headers()
            .get(actix_web::http::header::AUTHORIZATION)
            .map(|v| v.to_str().map(str::to_string));
        Box::pin(async move {
            let state = state.ok_or_else(|| {
                ApiError::from(CoreError::Internal("application state missing".into()))
            })?;
            let token = match header {
                None => return Err(missing()),
                Some(Err(_)) => return Err(invalid()),
                Some(Ok(h)) => {
                    let (scheme, rest) = h.trim().split_once(' ').unwrap_or((h.trim(), ""));
                    if !scheme.eq_ignore_ascii_case("bearer") || rest.trim().is_empty() {
                        return Err(missing());
                    }
                    rest.trim().to_string()
                }
            };
            let now = state.clock.now();
            let secret = state.config.secret.clone();
            let rate = state.config.api_rate_limit;
            let result = state
                .store
                .write(move |tx| api_keys::authenticate(tx, now, &secret, &token, rate))
                .await;
            match result {
                Ok(p) => Ok(ApiCaller(p)),
                Err(CoreError::Unauthenticated) => Err(invalid()),
                Err(CoreError::RateLimited(until)) => {
                    let secs = (until - now).num_seconds().max(1);
                    Err(ApiError::new(
                        StatusCode::TOO_MANY_REQUESTS,
                        "rate_limited",
                        format!(
                            "This API key has used its {} requests for this window; retry in {secs} s.",
                            rate.limit
                        ),
                    )
                    .with_header("Retry-After", secs.to_string())
                    .with_extra("retry_after", json!(secs)))
                }
                Err(e) => Err(e.into()),
            }
        })
    }
}
