//! Assertions on what the server answers.

/// The `X-Error-Code` header of a response ("" when absent).
pub fn error_code(res: &reqwest::Response) -> String {
    res.headers()
        .get("x-error-code")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// Asserts an HTML error page: the status, the `X-Error-Code` header and
/// the code in the body. Returns the body for further checks.
pub async fn assert_page_error(res: reqwest::Response, status: u16, code: &str) -> String {
    let url = res.url().to_string();
    let got_status = res.status().as_u16();
    let got_code = error_code(&res);
    let content_type = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body = res.text().await.expect("a response body");
    assert_eq!(
        (got_status, got_code.as_str()),
        (status, code),
        "status and X-Error-Code of {url}; body: {body}"
    );
    assert!(
        content_type.starts_with("text/html"),
        "{url}: an HTML page, got {content_type}"
    );
    assert!(body.contains(code), "{url}: the page names {code}: {body}");
    body
}

/// The value of the first hidden `csrf` field of a page.
pub fn csrf_of(page: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let start = page
        .find(marker)
        .unwrap_or_else(|| panic!("no csrf field in the page: {page}"))
        + marker.len();
    let len = page[start..].find('"').expect("a closing quote");
    page[start..start + len].to_string()
}
