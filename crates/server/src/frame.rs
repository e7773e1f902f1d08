//! Frame sessions: a learner session inside an LMS iframe whose browser
//! refuses the tool's cookies (Safari, or any browser blocking third-party
//! cookies, where partitioned cookies are not available either).
//!
//! After such a launch the learner's pages live under `/f/{session token}/…`.
//! This middleware strips the prefix before routing (so every learner route
//! works unchanged), hands the token to the session extractor instead of the
//! cookie, and prefixes the in-app links, form actions and redirects of the
//! response so navigation stays inside the frame session. Frame pages are
//! sent with `Referrer-Policy: no-referrer` and `Cache-Control: no-store`;
//! the request log records the route pattern, never the path, so the token
//! reaches no log line.

use actix_web::{
    body::{BoxBody, MessageBody},
    dev::{ServiceRequest, ServiceResponse},
    http::{
        header::{self, HeaderValue},
        Uri,
    },
    middleware::Next,
    Error, HttpMessage,
};

/// Where frame-session paths start.
pub const PREFIX: &str = "/f/";

/// The session token a request carried in its path.
#[derive(Debug, Clone)]
pub struct FrameToken(pub String);

/// The path of `location` (an in-app path such as `/courses/intro`) inside
/// the frame session `token`.
pub fn frame_path(token: &str, location: &str) -> String {
    format!("{PREFIX}{token}{location}")
}

fn plausible_token(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 128
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

pub async fn frame_paths(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let Some(rest) = req.path().strip_prefix(PREFIX) else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    let (token, tail) = match rest.split_once('/') {
        Some((t, tail)) => (t.to_string(), format!("/{tail}")),
        None => (rest.to_string(), "/".to_string()),
    };
    if !plausible_token(&token) {
        return Ok(next.call(req).await?.map_into_boxed_body());
    }
    let pq = match req.query_string() {
        "" => tail,
        q => format!("{tail}?{q}"),
    };
    let Ok(uri) = pq.parse::<Uri>() else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    req.match_info_mut().get_mut().update(&uri);
    req.head_mut().uri = uri;
    req.extensions_mut().insert(FrameToken(token.clone()));
    let res = next.call(req).await?;
    rewrite(res, &token).await
}

/// Keeps the learner inside the frame session: prefixes in-app redirects
/// and the `href`/`action` attributes of HTML pages.
async fn rewrite(
    res: ServiceResponse<impl MessageBody + 'static>,
    token: &str,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let (req, mut res) = res.into_parts();
    let headers = res.headers_mut();
    if let Some(loc) = headers
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .filter(|l| l.starts_with('/') && !l.starts_with("//") && !l.starts_with(PREFIX))
        .map(|l| frame_path(token, l))
    {
        if let Ok(v) = HeaderValue::from_str(&loc) {
            headers.insert(header::LOCATION, v);
        }
    }
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    let html = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.starts_with("text/html"))
        .unwrap_or(false);
    if !html {
        return Ok(ServiceResponse::new(req, res.map_into_boxed_body()));
    }
    let (res, body) = res.into_parts();
    let bytes = actix_web::body::to_bytes(body)
        .await
        .map_err(|_| actix_web::error::ErrorInternalServerError("response body"))?;
    let page = String::from_utf8_lossy(&bytes);
    let page = prefix_links(&page, token);
    let mut res = res.set_body(page);
    res.headers_mut().remove(header::CONTENT_LENGTH);
    Ok(ServiceResponse::new(req, res.map_into_boxed_body()))
}

/// `href="/x"` and `action="/x"` become `…="/f/{token}/x"`; protocol-relative
/// (`//host`), absolute, static-file and already-prefixed links stay as they are.
fn prefix_links(page: &str, token: &str) -> String {
    let mut out = String::with_capacity(page.len() + 256);
    let mut rest = page;
    loop {
        let next = ["href=\"/", "action=\"/"]
            .iter()
            .filter_map(|p| rest.find(p).map(|i| (i, p.len())))
            .min();
        let Some((i, len)) = next else {
            out.push_str(rest);
            return out;
        };
        let (head, tail) = rest.split_at(i + len - 1);
        out.push_str(head);
        let keep =
            tail.starts_with("//") || tail.starts_with("/static/") || tail.starts_with(PREFIX);
        if !keep {
            out.push_str(PREFIX.trim_end_matches('/'));
            out.push('/');
            out.push_str(token);
        }
        rest = tail;
        // Move past the '/' so the same attribute is not matched again.
        out.push('/');
        rest = &rest[1..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_and_actions_are_prefixed_once() {
        let page = r#"<a href="/courses/x">x</a><form action="/progress" method="post"></form>
<link rel="stylesheet" href="/static/app.css"><a href="//cdn.example/x">c</a>
<a href="https://lms.example/">lms</a><a href="/f/tok/already">a</a>"#;
        let out = prefix_links(page, "tok");
        assert_eq!(
            out,
            r#"<a href="/f/tok/courses/x">x</a><form action="/f/tok/progress" method="post"></form>
<link rel="stylesheet" href="/static/app.css"><a href="//cdn.example/x">c</a>
<a href="https://lms.example/">lms</a><a href="/f/tok/already">a</a>"#
        );
    }

    #[test]
    fn only_plausible_tokens_are_taken() {
        assert!(plausible_token("cgs_AbC-12_x"));
        assert!(!plausible_token(""));
        assert!(!plausible_token("a.b"));
        assert!(!plausible_token(&"a".repeat(129)));
    }
}
