//! LTI Advantage service access: OAuth2 client credentials with a signed
//! JWT assertion (1EdTech Security Framework §4.1), then AGS and NRPS calls.
//!
//! Every request sends a User-Agent (Canvas requires one). Errors carry the
//! HTTP status ([`LtiError::status`]) so an outbox can tell retry
//! ([`LtiError::is_retryable`]), refresh-and-retry ([`LtiError::is_unauthorized`])
//! and dead apart.

pub mod ags;
pub mod nrps;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

pub use crate::claims::scopes;
use crate::error::LtiError;
use crate::tool_keys::ToolKeys;

/// Lifetime of a client assertion.
pub const ASSERTION_TTL_SECS: i64 = 300;
/// `client_assertion_type` for JWT bearer assertions.
pub const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Longest error body kept in an error.
const MAX_ERROR_BODY: usize = 500;

/// The claims of a client assertion: iss = sub = client_id, aud = the token
/// URL or the registration's configured audience (Brightspace), iat, a short
/// exp, and a unique jti.
pub fn client_assertion_claims(
    client_id: &str,
    audience: &str,
    now: DateTime<Utc>,
    jti: &str,
) -> Value {
    let t = now.timestamp();
    json!({
        "iss": client_id,
        "sub": client_id,
        "aud": audience,
        "iat": t,
        "exp": t + ASSERTION_TTL_SECS,
        "jti": jti,
    })
}

/// Signs a client assertion with the tool's active key.
pub fn client_assertion(
    tool_keys: &ToolKeys,
    client_id: &str,
    token_url_or_audience: &str,
    now: DateTime<Utc>,
    jti: &str,
) -> Result<String, LtiError> {
    tool_keys.sign(&client_assertion_claims(
        client_id,
        token_url_or_audience,
        now,
        jti,
    ))
}

/// An OAuth2 access token from the platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessToken {
    pub access_token: String,
    #[serde(default = "bearer")]
    pub token_type: String,
    #[serde(default, deserialize_with = "lenient_i64")]
    pub expires_in: Option<i64>,
    #[serde(default)]
    pub scope: Option<String>,
}

fn bearer() -> String {
    "Bearer".into()
}

fn lenient_i64<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    let v = Option::<Value>::deserialize(d)?;
    Ok(match v {
        Some(Value::Number(n)) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Some(Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    })
}

impl AccessToken {
    /// When to stop using it: `expires_in` (default one hour) minus a margin.
    pub fn expires_at(&self, now: DateTime<Utc>, margin_secs: i64) -> DateTime<Utc> {
        let secs = self
            .expires_in
            .unwrap_or(3600)
            .saturating_sub(margin_secs)
            .max(0);
        now + chrono::Duration::seconds(secs)
    }

    /// The granted scopes (space-separated in the response).
    pub fn scopes(&self) -> Vec<&str> {
        self.scope
            .as_deref()
            .map(|s| s.split_whitespace().collect())
            .unwrap_or_default()
    }
}

/// A reqwest client for service calls, sending a User-Agent.
#[derive(Debug, Clone)]
pub struct ServiceClient {
    http: reqwest::Client,
}

impl ServiceClient {
    pub fn new(user_agent: &str) -> Result<Self, LtiError> {
        let http = reqwest::Client::builder()
            .user_agent(user_agent)
            .timeout(std::time::Duration::from_secs(30))
            .connect_timeout(std::time::Duration::from_secs(10))
            .build()
            .map_err(|e| LtiError::ServiceUnreachable {
                url: String::new(),
                reason: e.to_string(),
            })?;
        Ok(ServiceClient { http })
    }

    /// Uses an existing client (it must set a User-Agent).
    pub fn with_client(http: reqwest::Client) -> Self {
        ServiceClient { http }
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Sends a request with a bearer token; non-2xx becomes [`LtiError::ServiceHttp`].
    pub(crate) async fn send(
        &self,
        req: reqwest::RequestBuilder,
        url: &str,
        token: &str,
    ) -> Result<reqwest::Response, LtiError> {
        let resp = req
            .header(reqwest::header::AUTHORIZATION, format!("Bearer {token}"))
            .send()
            .await
            .map_err(|e| LtiError::ServiceUnreachable {
                url: url.to_string(),
                reason: e.to_string(),
            })?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let body = truncate(resp.text().await.unwrap_or_default());
        Err(LtiError::ServiceHttp {
            url: url.to_string(),
            status: status.as_u16(),
            body,
        })
    }

    pub(crate) async fn json<T: serde::de::DeserializeOwned>(
        resp: reqwest::Response,
        url: &str,
    ) -> Result<T, LtiError> {
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| LtiError::ServiceUnreachable {
                url: url.to_string(),
                reason: e.to_string(),
            })?;
        serde_json::from_slice(&bytes).map_err(|e| LtiError::ServiceResponseInvalid {
            url: url.to_string(),
            reason: e.to_string(),
        })
    }
}

pub(crate) fn truncate(mut s: String) -> String {
    if s.len() > MAX_ERROR_BODY {
        let mut cut = MAX_ERROR_BODY;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}

/// Requests client-credentials access tokens.
#[derive(Debug, Clone)]
pub struct TokenClient {
    client: ServiceClient,
}

/// One token request.
#[derive(Debug, Clone)]
pub struct TokenRequest<'a> {
    pub token_url: &'a str,
    pub client_id: &'a str,
    /// The assertion's `aud`; `None` uses the token URL.
    pub audience: Option<&'a str>,
    pub scopes: &'a [&'a str],
    /// A unique id for the assertion (never reuse).
    pub jti: &'a str,
}

impl TokenClient {
    pub fn new(client: ServiceClient) -> Self {
        TokenClient { client }
    }

    /// The form body of a token request (exposed for tests and fakes).
    pub fn form(assertion: &str, scopes: &[&str]) -> Vec<(&'static str, String)> {
        vec![
            ("grant_type", "client_credentials".to_string()),
            ("client_assertion_type", CLIENT_ASSERTION_TYPE.to_string()),
            ("client_assertion", assertion.to_string()),
            ("scope", scopes.join(" ")),
        ]
    }

    /// POSTs `grant_type=client_credentials` with a signed client assertion.
    pub async fn request(
        &self,
        tool_keys: &ToolKeys,
        req: &TokenRequest<'_>,
        now: DateTime<Utc>,
    ) -> Result<AccessToken, LtiError> {
        let aud = req.audience.unwrap_or(req.token_url);
        let assertion = client_assertion(tool_keys, req.client_id, aud, now, req.jti)?;
        let fail = |status: Option<u16>, body: String| LtiError::TokenRequestFailed {
            url: req.token_url.to_string(),
            status,
            body: truncate(body),
        };
        let resp = self
            .client
            .http
            .post(req.token_url)
            .header(reqwest::header::ACCEPT, "application/json")
            .form(&Self::form(&assertion, req.scopes))
            .send()
            .await
            .map_err(|e| fail(None, e.to_string()))?;
        let status = resp.status();
        let body = resp
            .text()
            .await
            .map_err(|e| fail(Some(status.as_u16()), e.to_string()))?;
        if !status.is_success() {
            return Err(fail(Some(status.as_u16()), body));
        }
        let tok: AccessToken =
            serde_json::from_str(&body).map_err(|e| LtiError::ServiceResponseInvalid {
                url: req.token_url.to_string(),
                reason: e.to_string(),
            })?;
        if tok.access_token.is_empty() {
            return Err(fail(Some(status.as_u16()), "empty access_token".into()));
        }
        Ok(tok)
    }
}

/// Parses an HTTP `Link` header into (url, rel) pairs.
pub fn parse_link_header(v: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for part in split_links(v) {
        let mut segs = part.split(';');
        let Some(target) = segs.next() else { continue };
        let target = target.trim();
        let Some(url) = target.strip_prefix('<').and_then(|t| t.strip_suffix('>')) else {
            continue;
        };
        for p in segs {
            let p = p.trim();
            if let Some(rel) = p.strip_prefix("rel=") {
                for r in rel.trim_matches('"').split_whitespace() {
                    out.push((url.to_string(), r.to_ascii_lowercase()));
                }
            }
        }
    }
    out
}

/// Splits on commas outside `<...>` and quotes.
fn split_links(v: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut in_url, mut in_quote, mut start) = (false, false, 0);
    for (i, c) in v.char_indices() {
        match c {
            '<' if !in_quote => in_url = true,
            '>' if !in_quote => in_url = false,
            '"' if !in_url => in_quote = !in_quote,
            ',' if !in_url && !in_quote => {
                parts.push(&v[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&v[start..]);
    parts
}

/// Finds the URL with `rel` in a response's Link headers.
pub(crate) fn link_rel(resp: &reqwest::Response, rel: &str) -> Option<String> {
    resp.headers()
        .get_all(reqwest::header::LINK)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(parse_link_header)
        .find(|(_, r)| r == rel)
        .map(|(u, _)| u)
}

/// Appends a path segment to a service URL before its query
/// (`…/lineitem?type_id=1` + `/scores` → `…/lineitem/scores?type_id=1`).
pub fn service_url(base: &str, suffix: &str) -> Result<String, LtiError> {
    let mut url = url::Url::parse(base).map_err(|e| LtiError::InvalidUrl {
        what: "service URL",
        reason: e.to_string(),
    })?;
    let path = format!(
        "{}/{}",
        url.path().trim_end_matches('/'),
        suffix.trim_start_matches('/')
    );
    url.set_path(&path);
    Ok(url.to_string())
}

#[cfg(test)]
pub(crate) mod test_server;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing;

    #[test]
    fn client_assertion_has_the_required_claims() {
        let keys = testing::tool_keys().unwrap();
        let now = testing::fixed_now();
        let jwt = client_assertion(&keys, "cid", "https://lms/token", now, "jti-1").unwrap();
        let published = crate::token::PlatformKeys::parse_jwks_lenient(&keys.jwks_json());
        let c = crate::token::verify_signature(&jwt, &published).unwrap();
        assert_eq!(c["iss"], "cid");
        assert_eq!(c["sub"], "cid");
        assert_eq!(c["aud"], "https://lms/token");
        assert_eq!(c["iat"], now.timestamp());
        assert_eq!(c["exp"], now.timestamp() + ASSERTION_TTL_SECS);
        assert_eq!(c["jti"], "jti-1");
        assert_eq!(
            jsonwebtoken::decode_header(&jwt).unwrap().kid.as_deref(),
            Some(testing::TOOL_KID)
        );
    }

    #[test]
    fn link_header_parsing() {
        let v =
            r#"<https://lms/m?page=2>; rel="next", <https://lms/m?since=1,2>; rel="differences""#;
        let l = parse_link_header(v);
        assert_eq!(
            l,
            vec![
                ("https://lms/m?page=2".to_string(), "next".to_string()),
                (
                    "https://lms/m?since=1,2".to_string(),
                    "differences".to_string()
                )
            ]
        );
        assert!(parse_link_header("garbage").is_empty());
    }

    #[test]
    fn service_url_goes_before_the_query() {
        assert_eq!(
            service_url(
                "https://m/mod/lti/services.php/2/lineitems/5/lineitem?type_id=1",
                "scores"
            )
            .unwrap(),
            "https://m/mod/lti/services.php/2/lineitems/5/lineitem/scores?type_id=1"
        );
        assert_eq!(
            service_url("https://c/api/lti/courses/1/line_items/2/", "/results").unwrap(),
            "https://c/api/lti/courses/1/line_items/2/results"
        );
    }

    #[test]
    fn token_expiry_and_lenient_parse() {
        let t: AccessToken =
            serde_json::from_str(r#"{"access_token":"a","expires_in":"3600","scope":"x y"}"#)
                .unwrap();
        assert_eq!(t.token_type, "Bearer");
        assert_eq!(t.expires_in, Some(3600));
        assert_eq!(t.scopes(), vec!["x", "y"]);
        let now = testing::fixed_now();
        assert_eq!(t.expires_at(now, 60), now + chrono::Duration::seconds(3540));
    }

    #[test]
    fn retry_classification() {
        let e = |s| LtiError::ServiceHttp {
            url: "u".into(),
            status: s,
            body: String::new(),
        };
        assert!(e(503).is_retryable());
        assert!(e(429).is_retryable());
        assert!(!e(400).is_retryable());
        assert!(!e(409).is_retryable());
        assert!(e(401).is_unauthorized());
        assert!(LtiError::ServiceUnreachable {
            url: "u".into(),
            reason: "r".into()
        }
        .is_retryable());
    }

    #[tokio::test]
    async fn token_request_sends_the_form_and_user_agent() {
        let server = test_server::TestServer::start(vec![test_server::Reply::json(
            200,
            r#"{"access_token":"tok","token_type":"bearer","expires_in":3599,"scope":"s1"}"#,
        )])
        .await;
        let keys = testing::tool_keys().unwrap();
        let tc = TokenClient::new(ServiceClient::new("coursegate-test/1").unwrap());
        let url = server.url("/token");
        let tok = tc
            .request(
                &keys,
                &TokenRequest {
                    token_url: &url,
                    client_id: "cid",
                    audience: Some("https://aud"),
                    scopes: &[scopes::AGS_SCORE, scopes::NRPS_MEMBERSHIP_READONLY],
                    jti: "j1",
                },
                testing::fixed_now(),
            )
            .await
            .unwrap();
        assert_eq!(tok.access_token, "tok");
        assert_eq!(tok.expires_in, Some(3599));
        let reqs = server.requests();
        let r = &reqs[0];
        assert_eq!(r.method, "POST");
        assert_eq!(r.header("user-agent").as_deref(), Some("coursegate-test/1"));
        let form: std::collections::HashMap<String, String> =
            url::form_urlencoded::parse(r.body.as_bytes())
                .into_owned()
                .collect();
        assert_eq!(form["grant_type"], "client_credentials");
        assert_eq!(form["client_assertion_type"], CLIENT_ASSERTION_TYPE);
        assert_eq!(
            form["scope"],
            format!("{} {}", scopes::AGS_SCORE, scopes::NRPS_MEMBERSHIP_READONLY)
        );
        let published = crate::token::PlatformKeys::parse_jwks_lenient(&keys.jwks_json());
        let c = crate::token::verify_signature(&form["client_assertion"], &published).unwrap();
        assert_eq!(c["aud"], "https://aud");
    }

    #[tokio::test]
    async fn token_request_failure_carries_status() {
        let server = test_server::TestServer::start(vec![test_server::Reply::json(
            400,
            r#"{"error":"invalid_scope"}"#,
        )])
        .await;
        let keys = testing::tool_keys().unwrap();
        let tc = TokenClient::new(ServiceClient::new("ua").unwrap());
        let url = server.url("/token");
        let err = tc
            .request(
                &keys,
                &TokenRequest {
                    token_url: &url,
                    client_id: "c",
                    audience: None,
                    scopes: &[],
                    jti: "j",
                },
                testing::fixed_now(),
            )
            .await
            .unwrap_err();
        assert_eq!(err.code(), "token_request_failed");
        assert_eq!(err.status(), Some(400));
        assert!(!err.is_retryable());
    }
}
