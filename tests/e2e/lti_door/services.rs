//! The test platform's LTI Advantage service endpoints, strict the way real
//! platforms are: an OAuth2 token endpoint that checks the client
//! assertion's signature against the tool's published JWKS, its claims and
//! jti reuse, and the requested scopes; AGS line items and scores with exact
//! media types and scope checks. Everything received is recorded in
//! [`Services`](crate::common::Services).

use std::collections::HashMap;

use actix_web::{web, HttpRequest, HttpResponse};
use coursegate_lti::{
    services::{ags, nrps, scopes, CLIENT_ASSERTION_TYPE},
    testing, PlatformKeys,
};
use serde_json::{json, Value};

use crate::common::PlatformState;

/// Scopes this platform grants to the tool.
const GRANTABLE: &[&str] = &[
    scopes::AGS_SCORE,
    scopes::AGS_LINEITEM,
    scopes::AGS_LINEITEM_READONLY,
    scopes::AGS_RESULT_READONLY,
    scopes::NRPS_MEMBERSHIP_READONLY,
];

fn oauth_error(st: &PlatformState, status: u16, error: &str, why: String) -> HttpResponse {
    st.services.lock().unwrap().token_refusals.push(why.clone());
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap())
        .json(json!({ "error": error, "error_description": why }))
}

pub async fn token(
    st: web::Data<PlatformState>,
    form: web::Form<HashMap<String, String>>,
) -> HttpResponse {
    let f = form.into_inner();
    if f.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return oauth_error(&st, 400, "unsupported_grant_type", "grant_type".into());
    }
    if f.get("client_assertion_type").map(String::as_str) != Some(CLIENT_ASSERTION_TYPE) {
        return oauth_error(&st, 400, "invalid_request", "client_assertion_type".into());
    }
    let Some(assertion) = f.get("client_assertion") else {
        return oauth_error(&st, 400, "invalid_request", "no client_assertion".into());
    };
    // The tool's public keys, as any platform would fetch them.
    let tool = st.tool_base.lock().unwrap().clone();
    let jwks: Value = match reqwest::get(format!("{tool}/.well-known/jwks.json")).await {
        Ok(r) => r.json().await.unwrap_or_default(),
        Err(e) => return oauth_error(&st, 400, "invalid_client", format!("tool JWKS: {e}")),
    };
    let keys = PlatformKeys::from_jwks(&PlatformKeys::parse_jwks_lenient(&jwks));
    let claims = match coursegate_lti::token::verify_signature(assertion, &keys) {
        Ok(c) => c,
        Err(e) => return oauth_error(&st, 401, "invalid_client", format!("signature: {e}")),
    };
    let now = st.clock.now().timestamp();
    let token_url = format!("{}/token", st.base);
    let checks = [
        ("iss", claims.get("iss") == Some(&json!(testing::CLIENT_ID))),
        ("sub", claims.get("sub") == Some(&json!(testing::CLIENT_ID))),
        ("aud", {
            let aud = claims.get("aud");
            aud == Some(&json!(token_url))
                || aud
                    .and_then(Value::as_array)
                    .is_some_and(|a| a.contains(&json!(token_url)))
        }),
        (
            "iat",
            claims
                .get("iat")
                .and_then(Value::as_i64)
                .is_some_and(|t| t <= now + 60),
        ),
        (
            "exp",
            claims
                .get("exp")
                .and_then(Value::as_i64)
                .is_some_and(|t| t > now && t <= now + 3600),
        ),
    ];
    if let Some((name, _)) = checks.iter().find(|(_, ok)| !ok) {
        return oauth_error(&st, 401, "invalid_client", format!("claim {name}"));
    }
    let Some(jti) = claims
        .get("jti")
        .and_then(Value::as_str)
        .map(str::to_string)
    else {
        return oauth_error(&st, 401, "invalid_client", "no jti".into());
    };
    let requested: Vec<String> = f
        .get("scope")
        .map(|s| s.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default();
    if requested.is_empty() || requested.iter().any(|s| !GRANTABLE.contains(&s.as_str())) {
        return oauth_error(&st, 400, "invalid_scope", format!("scope {requested:?}"));
    }
    let mut sv = st.services.lock().unwrap();
    if !sv.jtis.insert(jti.clone()) {
        drop(sv);
        return oauth_error(&st, 401, "invalid_client", format!("jti {jti} reused"));
    }
    sv.token_hits += 1;
    let access = format!("tok-{}", sv.token_hits);
    sv.tokens.insert(access.clone(), requested.clone());
    HttpResponse::Ok().json(json!({
        "access_token": access, "token_type": "Bearer", "expires_in": 3600,
        "scope": requested.join(" "),
    }))
}

/// Checks the bearer token carries one of `needed`; else the refusal.
fn authorise(st: &PlatformState, req: &HttpRequest, needed: &[&str]) -> Option<HttpResponse> {
    let mut sv = st.services.lock().unwrap();
    if sv.down {
        return Some(HttpResponse::ServiceUnavailable().body("platform down"));
    }
    let token = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("")
        .to_string();
    let why = match sv.tokens.get(&token) {
        None => Some((401, format!("unknown token {token:?}"))),
        Some(granted) if !needed.iter().any(|n| granted.iter().any(|g| g == n)) => {
            Some((403, format!("token lacks {needed:?}")))
        }
        Some(_) => None,
    };
    why.map(|(status, why)| {
        sv.refusals.push(why.clone());
        HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap()).body(why)
    })
}

fn header(req: &HttpRequest, name: &str) -> String {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

fn media_refusal(st: &PlatformState, what: &str, got: String) -> HttpResponse {
    let why = format!("{what}: {got:?}");
    st.services.lock().unwrap().refusals.push(why.clone());
    HttpResponse::UnsupportedMediaType().body(why)
}

pub async fn lineitems_get(st: web::Data<PlatformState>, req: HttpRequest) -> HttpResponse {
    if let Some(r) = authorise(
        &st,
        &req,
        &[scopes::AGS_LINEITEM, scopes::AGS_LINEITEM_READONLY],
    ) {
        return r;
    }
    if header(&req, "accept") != ags::MEDIA_LINEITEM_CONTAINER {
        return media_refusal(&st, "accept", header(&req, "accept"));
    }
    let q: HashMap<String, String> = web::Query::from_query(req.query_string())
        .map(|q: web::Query<HashMap<String, String>>| q.into_inner())
        .unwrap_or_default();
    let items: Vec<Value> = st
        .services
        .lock()
        .unwrap()
        .lineitems
        .iter()
        .filter(|li| {
            q.get("resource_link_id")
                .is_none_or(|v| li["resourceLinkId"] == json!(v))
                && q.get("resource_id")
                    .is_none_or(|v| li["resourceId"] == json!(v))
        })
        .cloned()
        .collect();
    HttpResponse::Ok()
        .content_type(ags::MEDIA_LINEITEM_CONTAINER)
        .json(items)
}

pub async fn lineitems_post(
    st: web::Data<PlatformState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    if let Some(r) = authorise(&st, &req, &[scopes::AGS_LINEITEM]) {
        return r;
    }
    if header(&req, "content-type") != ags::MEDIA_LINEITEM {
        return media_refusal(&st, "content-type", header(&req, "content-type"));
    }
    let Ok(mut item) = serde_json::from_slice::<Value>(&body) else {
        return HttpResponse::BadRequest().body("not JSON");
    };
    if item.get("label").and_then(Value::as_str).is_none()
        || item.get("scoreMaximum").and_then(Value::as_f64).is_none()
    {
        return HttpResponse::BadRequest().body("label and scoreMaximum required");
    }
    let mut sv = st.services.lock().unwrap();
    let n = sv.lineitems.len() + 1;
    item["id"] = json!(format!("{}/lineitems/{n}/lineitem", st.base));
    sv.lineitems.push(item.clone());
    HttpResponse::Created()
        .content_type(ags::MEDIA_LINEITEM)
        .json(item)
}

pub async fn score_post(
    st: web::Data<PlatformState>,
    req: HttpRequest,
    path: web::Path<usize>,
    body: web::Bytes,
) -> HttpResponse {
    if let Some(r) = authorise(&st, &req, &[scopes::AGS_SCORE]) {
        return r;
    }
    if header(&req, "content-type") != ags::MEDIA_SCORE {
        return media_refusal(&st, "content-type", header(&req, "content-type"));
    }
    if header(&req, "user-agent").is_empty() {
        return media_refusal(&st, "user-agent", String::new());
    }
    let n = path.into_inner();
    let Ok(score) = serde_json::from_slice::<Value>(&body) else {
        return HttpResponse::BadRequest().body("not JSON");
    };
    let mut sv = st.services.lock().unwrap();
    if let Some((status, body)) = sv.score_refusal.clone() {
        return HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap())
            .body(body);
    }
    if n == 0 || n > sv.lineitems.len() {
        return HttpResponse::NotFound().body("no such line item");
    }
    for k in ["userId", "timestamp", "activityProgress", "gradingProgress"] {
        if score.get(k).is_none() {
            return HttpResponse::BadRequest().body(format!("{k} required"));
        }
    }
    // Moodle: a timestamp that is not newer than the stored one is a 409.
    let ts = score["timestamp"].as_str().unwrap_or("").to_string();
    let newer = sv
        .scores
        .iter()
        .filter(|(m, s)| *m == n && s["userId"] == score["userId"])
        .all(|(_, s)| {
            let prev = s["timestamp"].as_str().unwrap_or("");
            chrono::DateTime::parse_from_rfc3339(&ts).ok()
                > chrono::DateTime::parse_from_rfc3339(prev).ok()
        });
    if !newer {
        return HttpResponse::Conflict().body("timestamp not newer");
    }
    sv.scores.push((n, score));
    HttpResponse::Ok().finish()
}

/// AGS results of a line item: the latest score of each user, strict on
/// the result container media type and the result.readonly scope.
pub async fn results_get(
    st: web::Data<PlatformState>,
    req: HttpRequest,
    path: web::Path<usize>,
) -> HttpResponse {
    if let Some(r) = authorise(&st, &req, &[scopes::AGS_RESULT_READONLY]) {
        return r;
    }
    if header(&req, "accept") != ags::MEDIA_RESULT_CONTAINER {
        return media_refusal(&st, "accept", header(&req, "accept"));
    }
    let n = path.into_inner();
    let sv = st.services.lock().unwrap();
    if n == 0 || n > sv.lineitems.len() {
        return HttpResponse::NotFound().body("no such line item");
    }
    let mut latest: Vec<(String, Value)> = Vec::new();
    for (_, s) in sv.scores.iter().filter(|(m, _)| *m == n) {
        let user = s["userId"].as_str().unwrap_or("").to_string();
        latest.retain(|(u, _)| *u != user);
        latest.push((user, s.clone()));
    }
    let lineitem = format!("{}/lineitems/{n}/lineitem", st.base);
    let results: Vec<Value> = latest
        .into_iter()
        .map(|(u, s)| {
            json!({
                "id": format!("{lineitem}/results/{u}"),
                "scoreOf": lineitem,
                "userId": u,
                "resultScore": s["scoreGiven"],
                "resultMaximum": s["scoreMaximum"],
            })
        })
        .collect();
    HttpResponse::Ok()
        .content_type(ags::MEDIA_RESULT_CONTAINER)
        .json(results)
}

/// NRPS memberships, strict: the membership container media type in
/// Accept, a token with the NRPS scope, and `page_size` members per page
/// with a `Link: <…>; rel="next"` header while more remain.
pub async fn memberships_get(st: web::Data<PlatformState>, req: HttpRequest) -> HttpResponse {
    if let Some(r) = authorise(&st, &req, &[scopes::NRPS_MEMBERSHIP_READONLY]) {
        return r;
    }
    if header(&req, "accept") != nrps::MEDIA_MEMBERSHIP_CONTAINER {
        return media_refusal(&st, "accept", header(&req, "accept"));
    }
    if header(&req, "user-agent").is_empty() {
        return media_refusal(&st, "user-agent", String::new());
    }
    let q: HashMap<String, String> = web::Query::from_query(req.query_string())
        .map(|q: web::Query<HashMap<String, String>>| q.into_inner())
        .unwrap_or_default();
    let page: usize = q.get("page").and_then(|p| p.parse().ok()).unwrap_or(1);
    let mut sv = st.services.lock().unwrap();
    if let Some((status, body)) = sv.memberships_refusal.clone() {
        return HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap())
            .body(body);
    }
    let context = json!({"id": "ctx-1", "label": "CS101", "title": "Intro to CS"});
    let next_since = sv.difference_reads.len() + 1;
    let differences_link = sv.differences.as_ref().map(|_| {
        format!(
            "<{}/memberships?since={next_since}>; rel=\"differences\"",
            st.base
        )
    });
    if let Some(since) = q.get("since") {
        sv.difference_reads.push(since.clone());
        let members = sv.differences.clone().unwrap_or_default();
        let mut res = HttpResponse::Ok();
        res.content_type(nrps::MEDIA_MEMBERSHIP_CONTAINER);
        res.insert_header((
            "link",
            format!(
                "<{}/memberships?since={}>; rel=\"differences\"",
                st.base,
                next_since + 1
            ),
        ));
        return res.json(json!({
            "id": format!("{}/memberships?since={since}", st.base),
            "context": context,
            "members": members,
        }));
    }
    sv.member_pages.push(page);
    let size = if sv.page_size == 0 { 2 } else { sv.page_size };
    let start = (page.max(1) - 1) * size;
    let members: Vec<Value> = sv.members.iter().skip(start).take(size).cloned().collect();
    let mut res = HttpResponse::Ok();
    res.content_type(nrps::MEDIA_MEMBERSHIP_CONTAINER);
    let mut links = Vec::new();
    if start + size < sv.members.len() {
        links.push(format!(
            "<{}/memberships?page={}>; rel=\"next\"",
            st.base,
            page + 1
        ));
    }
    links.extend(differences_link);
    if !links.is_empty() {
        res.insert_header(("link", links.join(", ")));
    }
    res.json(json!({
        "id": format!("{}/memberships", st.base),
        "context": context,
        "members": members,
    }))
}

/// The registration token the test platform hands out.
pub const REGISTRATION_TOKEN: &str = "reg-token-1";
pub const DYN_CLIENT_ID: &str = "dyn-client-1";
pub const DYN_DEPLOYMENT_ID: &str = "dyn-deployment-1";

/// The platform's openid_configuration; `?issuer=` overrides the issuer
/// (to test the mismatch check).
pub async fn openid_configuration(st: web::Data<PlatformState>, req: HttpRequest) -> HttpResponse {
    let q: HashMap<String, String> = web::Query::from_query(req.query_string())
        .map(|q: web::Query<HashMap<String, String>>| q.into_inner())
        .unwrap_or_default();
    let b = &st.base;
    let issuer = q.get("issuer").cloned().unwrap_or_else(|| b.clone());
    HttpResponse::Ok().json(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{b}/auth"),
        "token_endpoint": format!("{b}/token"),
        "jwks_uri": format!("{b}/jwks"),
        "registration_endpoint": format!("{b}/register"),
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS256"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["id_token"],
        "scopes_supported": ["openid", scopes::AGS_SCORE, scopes::AGS_LINEITEM],
        "claims_supported": ["iss", "sub", "name", "email"],
        "https://purl.imsglobal.org/spec/lti-platform-configuration": {
            "product_family_code": "test",
            "version": "1.0",
            "messages_supported": [{"type": "LtiResourceLinkRequest"}, {"type": "LtiDeepLinkingRequest"}],
        },
    }))
}

/// The registration endpoint: demands the registration token and a
/// complete tool registration; answers with a client id and deployment.
pub async fn register(
    st: web::Data<PlatformState>,
    req: HttpRequest,
    body: web::Json<Value>,
) -> HttpResponse {
    let body = body.into_inner();
    let mut sv = st.services.lock().unwrap();
    if header(&req, "authorization") != format!("Bearer {REGISTRATION_TOKEN}") {
        sv.refusals.push("registration without the token".into());
        return HttpResponse::Unauthorized().body("registration_token required");
    }
    let tool_cfg = &body["https://purl.imsglobal.org/spec/lti-tool-configuration"];
    for (k, ok) in [
        ("initiate_login_uri", body["initiate_login_uri"].is_string()),
        ("redirect_uris", body["redirect_uris"].is_array()),
        ("jwks_uri", body["jwks_uri"].is_string()),
        ("target_link_uri", tool_cfg["target_link_uri"].is_string()),
    ] {
        if !ok {
            sv.refusals.push(format!("registration lacks {k}"));
            return HttpResponse::BadRequest()
                .json(json!({"error": "invalid_client_metadata", "field": k}));
        }
    }
    sv.registrations.push(body.clone());
    let mut answer = body;
    answer["client_id"] = json!(DYN_CLIENT_ID);
    answer["https://purl.imsglobal.org/spec/lti-tool-configuration"]["deployment_id"] =
        json!(DYN_DEPLOYMENT_ID);
    HttpResponse::Ok().json(answer)
}
