//! `ApiJson<T>`: a JSON body parsed with the path of any failing field, so
//! every malformed request gets a precise problem (never a 500):
//! 415 `unsupported_media_type`, 413 `payload_too_large`, 400 `malformed_json`,
//! 422 `unknown_field` / `missing_field` / `invalid_type` / `invalid_value`.

use std::future::Future;
use std::pin::Pin;

use actix_web::{
    dev::Payload, error::JsonPayloadError, http::StatusCode, web, FromRequest, HttpRequest,
};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// Largest accepted request body.
pub const BODY_LIMIT: usize = 64 * 1024;

#[derive(Debug)]
pub struct ApiJson<T>(pub T);

fn is_json(req: &HttpRequest) -> bool {
    req.headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|ct| {
            let essence = ct
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            essence == "application/json"
                || (essence.starts_with("application/") && essence.ends_with("+json"))
        })
        .unwrap_or(false)
}

impl<T: DeserializeOwned + 'static> FromRequest for ApiJson<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let json = is_json(req);
        let bytes = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            let bytes = bytes.await.map_err(|e| {
                if e.as_response_error().status_code() == StatusCode::PAYLOAD_TOO_LARGE {
                    too_large()
                } else {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "malformed_json",
                        "The request body could not be read.",
                    )
                }
            })?;
            if bytes.len() > BODY_LIMIT {
                return Err(too_large());
            }
            // An empty body reads as `{}` so bodiless calls get field-level errors.
            let text: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
                b"{}"
            } else {
                if !json {
                    return Err(ApiError::new(
                        StatusCode::UNSUPPORTED_MEDIA_TYPE,
                        "unsupported_media_type",
                        "Send the body as JSON with `Content-Type: application/json`.",
                    ));
                }
                &bytes
            };
            parse(text).map(ApiJson)
        })
    }
}

fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!("The request body is larger than {BODY_LIMIT} bytes."),
    )
}

/// Parses `bytes` as `T`, mapping every failure to its problem.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize::<_, T>(&mut de)
        .map_err(|e| problem(&e.path().to_string(), e.inner()))?;
    de.end().map_err(|e| problem(".", &e))?;
    Ok(value)
}

/// The problem for a serde_json error at `path` (`.` for the root).
pub fn problem(path: &str, e: &serde_json::Error) -> ApiError {
    use serde_json::error::Category;
    let msg = e.to_string();
    match e.classify() {
        Category::Syntax | Category::Eof | Category::Io => ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            format!("The request body is not valid JSON: {msg}."),
        ),
        Category::Data => {
            let quoted = msg
                .split('`')
                .nth(1)
                .map(str::to_string)
                .unwrap_or_default();
            let parent = path.trim_start_matches('.');
            let join = |name: &str| {
                if parent.is_empty() || parent == name || parent.ends_with(&format!(".{name}")) {
                    if parent.is_empty() {
                        name.to_string()
                    } else {
                        parent.to_string()
                    }
                } else {
                    format!("{parent}.{name}")
                }
            };
            let (code, field) = if msg.starts_with("unknown field") {
                ("unknown_field", join(&quoted))
            } else if msg.starts_with("missing field") {
                ("missing_field", join(&quoted))
            } else if msg.starts_with("invalid type") {
                ("invalid_type", parent.to_string())
            } else {
                ("invalid_value", parent.to_string())
            };
            let field = if field.is_empty() {
                "body".to_string()
            } else {
                field
            };
            let short = msg.split(" at line ").next().unwrap_or(&msg).to_string();
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                code,
                format!("{field}: {short}"),
            )
            .with_field_error(field, short)
        }
    }
}

/// The same mapping for `web::Json` extractors (`JsonConfig` error handler).
pub fn json_config_error(e: JsonPayloadError) -> ApiError {
    match e {
        JsonPayloadError::ContentType => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Send the body as JSON with `Content-Type: application/json`.",
        ),
        JsonPayloadError::Overflow { .. } | JsonPayloadError::OverflowKnownLength { .. } => {
            too_large()
        }
        JsonPayloadError::Deserialize(e) => problem(".", &e),
        _ => ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            "The request body could not be read.",
        ),
    }
}
