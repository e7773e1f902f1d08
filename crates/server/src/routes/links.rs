//! The link door over HTTP: the confirmation page (GET, read-only), the
//! confirming POST, step-up codes, fresh links, self-service `/signin` with a
//! code, staff sign-in, and sign out everywhere.
//!
//! Pre-session CSRF: every page here makes sure the browser holds a random
//! device cookie (`cg_device`); forms carry an HMAC of (device cookie, form
//! scope). A POST without the cookie or with a wrong token is refused with
//! `csrf_failed`. The same cookie binds codes to the browser that asked and
//! marks devices that already redeemed an access link (step-up).
//!
//! Tokens appear only in the path; the request log records the route pattern.

use actix_web::{
    cookie::{time::Duration as CookieDuration, Cookie, SameSite},
    http::StatusCode,
    web, HttpRequest, HttpResponse,
};
use coursegate_core::{
    links::{self, RedeemRequest, Redeemed},
    sessions, settings, signin, tokens,
    types::Email,
    CoreError,
};
use serde::Deserialize;

use crate::{
    app::AppState,
    error::PageError,
    extract::{clear_session_cookie, client_info, session_cookie, LearnerSession},
    routes::see_other,
};

pub const DEVICE_COOKIE: &str = "cg_device";

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/l/{token}", web::get().to(confirm_page))
        .route("/l/{token}", web::head().to(head_only))
        .route("/l/{token}", web::post().to(redeem))
        .route("/l/{token}/code", web::post().to(redeem_code))
        .route("/l/{token}/fresh", web::post().to(fresh))
        .route("/signin", web::get().to(signin_page))
        .route("/signin", web::post().to(signin_request))
        .route("/signin/sent", web::get().to(signin_sent))
        .route("/signin/code", web::post().to(signin_code))
        .route("/staff/signin", web::get().to(staff_signin_page))
        .route("/staff/signin", web::post().to(staff_signin_request))
        .route("/signout/everywhere", web::post().to(signout_everywhere));
}

/// The device cookie of this request, or a new one to set.
struct Device {
    value: String,
    new: bool,
}

fn device(req: &HttpRequest) -> Device {
    match req.cookie(DEVICE_COOKIE) {
        Some(c) if tokens::looks_like("cgd", c.value()) => Device {
            value: c.value().to_string(),
            new: false,
        },
        _ => Device {
            value: tokens::mint("cgd"),
            new: true,
        },
    }
}

fn device_cookie(state: &AppState, value: &str) -> Cookie<'static> {
    Cookie::build(DEVICE_COOKIE, value.to_string())
        .path("/")
        .http_only(true)
        .secure(state.config.secure_cookies())
        .same_site(SameSite::Lax)
        .max_age(CookieDuration::days(90))
        .finish()
}

fn device_hash(state: &AppState, d: &str) -> String {
    state.config.secret.hash("device", d)
}

fn pre_csrf(state: &AppState, device: &str, scope: &str) -> String {
    state
        .config
        .secret
        .csrf_token(&format!("pre:{device}:{scope}"))
}

/// Checks a pre-session form: the device cookie must be present (not minted
/// now) and the token must match it.
fn check_pre_csrf(
    state: &AppState,
    req: &HttpRequest,
    scope: &str,
    token: &str,
) -> Result<String, PageError> {
    let d = device(req);
    if d.new
        || !state
            .config
            .secret
            .verify_csrf(&format!("pre:{}:{scope}", d.value), token)
    {
        return Err(PageError::csrf());
    }
    Ok(d.value)
}

fn link_scope(token: &str) -> String {
    format!("link:{token}")
}

fn html(status: StatusCode, body: String) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header(("Cache-Control", "no-store"))
        .insert_header(("Referrer-Policy", "no-referrer"))
        .body(body)
}

fn render(
    state: &AppState,
    status: StatusCode,
    name: &str,
    ctx: &tera::Context,
    device: &Device,
) -> Result<HttpResponse, PageError> {
    let body =
        crate::templates::render(name, ctx).map_err(|e| PageError::from(CoreError::Internal(e)))?;
    let mut res = html(status, body);
    if device.new {
        res.add_cookie(&device_cookie(state, &device.value))
            .map_err(|e| PageError::from(CoreError::Internal(e.to_string())))?;
    }
    Ok(res)
}

fn status_for_link_code(code: &str) -> StatusCode {
    match code {
        "link_invalid" => StatusCode::NOT_FOUND,
        _ => StatusCode::GONE,
    }
}

/// The page for a link that cannot be used: says why, offers a fresh link.
fn link_problem(
    state: &AppState,
    token: &str,
    e: CoreError,
    device: &Device,
    site: &settings::Site,
) -> Result<HttpResponse, PageError> {
    let code = e.code();
    if !code.starts_with("link_") {
        return Err(e.into());
    }
    let mut ctx = tera::Context::new();
    ctx.insert("site", site);
    ctx.insert("code", code);
    ctx.insert("detail", &e.to_string());
    ctx.insert("offer_fresh", &(code != "link_invalid"));
    ctx.insert("token", token);
    ctx.insert(
        "pre_csrf",
        &pre_csrf(state, &device.value, &link_scope(token)),
    );
    let mut res = render(
        state,
        status_for_link_code(code),
        "pages/link_problem.html",
        &ctx,
        device,
    )?;
    res.headers_mut().insert(
        actix_web::http::header::HeaderName::from_static("x-error-code"),
        actix_web::http::header::HeaderValue::from_static(code),
    );
    Ok(res)
}

async fn head_only() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .insert_header(("Referrer-Policy", "no-referrer"))
        .finish()
}

fn accept_language(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get("accept-language")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

async fn confirm_page(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let token = path.into_inner();
    let now = state.now();
    let d = device(&req);
    let client = client_info(&req);
    let scanner = links::looks_like_scanner(&client, accept_language(&req).as_deref());
    let secret = state.config.secret.clone();
    let settings = state.config.links;
    let (t, dh) = (
        token.clone(),
        (!d.new).then(|| device_hash(&state, &d.value)),
    );
    let (site, view) = state
        .store
        .write(move |tx| {
            let site = settings::site(tx)?;
            let v = links::view(
                tx,
                now,
                &secret,
                &settings,
                &t,
                dh.as_deref(),
                &client,
                scanner,
            );
            Ok::<_, CoreError>((site, v))
        })
        .await?;
    let view = match view {
        Ok(v) => v,
        Err(e) => return link_problem(&state, &token, e, &d, &site),
    };
    let mut ctx = tera::Context::new();
    ctx.insert("site", &site);
    ctx.insert("view", &view);
    ctx.insert("token", &token);
    ctx.insert("pre_csrf", &pre_csrf(&state, &d.value, &link_scope(&token)));
    render(&state, StatusCode::OK, "pages/link_confirm.html", &ctx, &d)
}

#[derive(Debug, Deserialize)]
pub struct PreForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub next: String,
}

fn signed_in(
    state: &AppState,
    started: &sessions::Started,
    to: &str,
) -> Result<HttpResponse, PageError> {
    let mut res = see_other(to);
    res.headers_mut().insert(
        actix_web::http::header::REFERRER_POLICY,
        actix_web::http::header::HeaderValue::from_static("no-referrer"),
    );
    res.add_cookie(&session_cookie(state, &started.token))
        .map_err(|e| PageError::from(CoreError::Internal(e.to_string())))?;
    Ok(res)
}

async fn redeem_common(
    state: web::Data<AppState>,
    req: HttpRequest,
    token: String,
    form: PreForm,
    with_code: bool,
) -> Result<HttpResponse, PageError> {
    let dv = check_pre_csrf(&state, &req, &link_scope(&token), &form.csrf)?;
    let now = state.now();
    let client = client_info(&req);
    let scanner = links::looks_like_scanner(&client, accept_language(&req).as_deref());
    let r = RedeemRequest {
        device_hash: device_hash(&state, &dv),
        client,
        scanner,
    };
    let secret = state.config.secret.clone();
    let settings = state.config.links;
    let policy = state.config.sessions;
    let t = token.clone();
    let code = form.code.clone();
    let (site, out) = state
        .store
        .write(move |tx| {
            let out = if with_code {
                links::redeem_with_code(tx, now, &secret, &settings, &policy, &t, &code, r)
            } else {
                links::redeem(tx, now, &secret, &settings, &policy, &t, r)
            };
            // A refused redemption still commits its audit entry / attempt count.
            Ok::<_, CoreError>((settings::site(tx)?, out))
        })
        .await?;
    let d = Device {
        value: dv,
        new: false,
    };
    match out {
        Ok(Redeemed::Session { started, .. }) => signed_in(&state, &started, &started.redirect),
        Ok(Redeemed::StepUp { masked_email }) => {
            let mut ctx = tera::Context::new();
            ctx.insert("site", &site);
            ctx.insert("token", &token);
            ctx.insert("masked_email", &masked_email);
            ctx.insert("pre_csrf", &pre_csrf(&state, &d.value, &link_scope(&token)));
            render(&state, StatusCode::OK, "pages/link_stepup.html", &ctx, &d)
        }
        Err(e) if e.code().starts_with("link_") => link_problem(&state, &token, e, &d, &site),
        Err(e) if with_code && e.code().starts_with("code_") => {
            let mut ctx = tera::Context::new();
            ctx.insert("site", &site);
            ctx.insert("token", &token);
            ctx.insert("error", &e.to_string());
            ctx.insert("pre_csrf", &pre_csrf(&state, &d.value, &link_scope(&token)));
            let mut res = render(
                &state,
                StatusCode::BAD_REQUEST,
                "pages/link_stepup.html",
                &ctx,
                &d,
            )?;
            set_code(&mut res, e.code());
            Ok(res)
        }
        Err(e) => Err(e.into()),
    }
}

fn set_code(res: &mut HttpResponse, code: &str) {
    if let Ok(v) = actix_web::http::header::HeaderValue::from_str(code) {
        res.headers_mut().insert(
            actix_web::http::header::HeaderName::from_static("x-error-code"),
            v,
        );
    }
}

async fn redeem(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    form: web::Form<PreForm>,
) -> Result<HttpResponse, PageError> {
    redeem_common(state, req, path.into_inner(), form.into_inner(), false).await
}

async fn redeem_code(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    form: web::Form<PreForm>,
) -> Result<HttpResponse, PageError> {
    redeem_common(state, req, path.into_inner(), form.into_inner(), true).await
}

async fn fresh(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    form: web::Form<PreForm>,
) -> Result<HttpResponse, PageError> {
    let token = path.into_inner();
    let dv = check_pre_csrf(&state, &req, &link_scope(&token), &form.csrf)?;
    let now = state.now();
    let client = client_info(&req);
    let secret = state.config.secret.clone();
    let settings = state.config.links;
    let base = state.config.url("");
    let bh = device_hash(&state, &dv);
    let site = state
        .store
        .write(move |tx| {
            links::request_fresh(tx, now, &secret, &settings, &base, &token, &bh, &client)?;
            settings::site(tx)
        })
        .await?;
    let mut ctx = tera::Context::new();
    ctx.insert("site", &site);
    // The mail's code completes the sign-in in this browser (see signin_code).
    ctx.insert("pre_csrf", &pre_csrf(&state, &dv, "signin"));
    render(
        &state,
        StatusCode::OK,
        "pages/link_fresh_sent.html",
        &ctx,
        &Device {
            value: dv,
            new: false,
        },
    )
}

/// A `next` parameter is honoured only as a relative in-app path.
pub fn safe_next(next: &str) -> Option<String> {
    let n = next.trim();
    let ok = n.starts_with('/')
        && !n.starts_with("//")
        && !n.starts_with("/\\")
        && !n.contains('\\')
        && !n.contains("://")
        && !n.chars().any(|c| c.is_control() || c.is_whitespace())
        && n.len() <= 512;
    ok.then(|| n.to_string())
}

#[derive(Debug, Deserialize)]
pub struct NextQuery {
    #[serde(default)]
    pub next: String,
}

async fn signin_page(
    state: web::Data<AppState>,
    req: HttpRequest,
    q: web::Query<NextQuery>,
) -> Result<HttpResponse, PageError> {
    let d = device(&req);
    let site = state.store.read(settings::site).await?;
    let mut ctx = tera::Context::new();
    ctx.insert("site", &site);
    ctx.insert("pre_csrf", &pre_csrf(&state, &d.value, "signin"));
    ctx.insert("next", &safe_next(&q.next).unwrap_or_default());
    render(&state, StatusCode::OK, "pages/signin.html", &ctx, &d)
}

async fn signin_request(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: web::Form<PreForm>,
) -> Result<HttpResponse, PageError> {
    let dv = check_pre_csrf(&state, &req, "signin", &form.csrf)?;
    let email = Email::parse(&form.email)?;
    let now = state.now();
    let client = client_info(&req);
    let secret = state.config.secret.clone();
    let settings = state.config.links;
    let base = state.config.url("");
    let bh = device_hash(&state, &dv);
    state
        .store
        .write(move |tx| signin::request(tx, now, &secret, &settings, &base, &email, &bh, &client))
        .await?;
    let next = safe_next(&form.next)
        .map(|n| {
            format!(
                "?next={}",
                url::form_urlencoded::byte_serialize(n.as_bytes()).collect::<String>()
            )
        })
        .unwrap_or_default();
    Ok(see_other(&format!("/signin/sent{next}")))
}

async fn signin_sent(
    state: web::Data<AppState>,
    req: HttpRequest,
    q: web::Query<NextQuery>,
) -> Result<HttpResponse, PageError> {
    let d = device(&req);
    let site = state.store.read(settings::site).await?;
    let mut ctx = tera::Context::new();
    ctx.insert("site", &site);
    ctx.insert("pre_csrf", &pre_csrf(&state, &d.value, "signin"));
    ctx.insert("next", &safe_next(&q.next).unwrap_or_default());
    render(&state, StatusCode::OK, "pages/signin_sent.html", &ctx, &d)
}

async fn signin_code(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: web::Form<PreForm>,
) -> Result<HttpResponse, PageError> {
    let dv = check_pre_csrf(&state, &req, "signin", &form.csrf)?;
    let now = state.now();
    let client = client_info(&req);
    let secret = state.config.secret.clone();
    let settings = state.config.links;
    let policy = state.config.sessions;
    let bh = device_hash(&state, &dv);
    let code = form.code.clone();
    let (site, out) = state
        .store
        .write(move |tx| {
            let out = signin::complete_with_code(
                tx, now, &secret, &settings, &policy, &bh, &code, &client,
            );
            Ok::<_, CoreError>((settings::site(tx)?, out))
        })
        .await?;
    match out {
        Ok(started) => {
            let to = safe_next(&form.next).unwrap_or(started.redirect.clone());
            signed_in(&state, &started, &to)
        }
        Err(e) if e.code().starts_with("code_") => {
            let d = Device {
                value: dv,
                new: false,
            };
            let mut ctx = tera::Context::new();
            ctx.insert("site", &site);
            ctx.insert("pre_csrf", &pre_csrf(&state, &d.value, "signin"));
            ctx.insert("next", &safe_next(&form.next).unwrap_or_default());
            ctx.insert("error", &e.to_string());
            let mut res = render(
                &state,
                StatusCode::BAD_REQUEST,
                "pages/signin_sent.html",
                &ctx,
                &d,
            )?;
            set_code(&mut res, e.code());
            Ok(res)
        }
        Err(e) => Err(e.into()),
    }
}

async fn staff_signin_page(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, PageError> {
    let d = device(&req);
    let site = state.store.read(settings::site).await?;
    let mut ctx = tera::Context::new();
    ctx.insert("site", &site);
    ctx.insert("pre_csrf", &pre_csrf(&state, &d.value, "staff-signin"));
    ctx.insert("sent", &false);
    ctx.insert(
        "sso_name",
        &state.config.sso.as_ref().map(|c| c.provider_name.clone()),
    );
    render(&state, StatusCode::OK, "pages/staff_signin.html", &ctx, &d)
}

async fn staff_signin_request(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: web::Form<PreForm>,
) -> Result<HttpResponse, PageError> {
    let dv = check_pre_csrf(&state, &req, "staff-signin", &form.csrf)?;
    let email = Email::parse(&form.email)?;
    let now = state.now();
    let client = client_info(&req);
    let secret = state.config.secret.clone();
    let settings = state.config.links;
    let base = state.config.url("");
    let site = state
        .store
        .write(move |tx| {
            signin::request_staff(tx, now, &secret, &settings, &base, &email, &client)?;
            settings::site(tx)
        })
        .await?;
    let d = Device {
        value: dv,
        new: false,
    };
    let mut ctx = tera::Context::new();
    ctx.insert("site", &site);
    ctx.insert("pre_csrf", &pre_csrf(&state, &d.value, "staff-signin"));
    ctx.insert("sent", &true);
    ctx.insert("sso_name", &None::<String>);
    render(&state, StatusCode::OK, "pages/staff_signin.html", &ctx, &d)
}

#[derive(Debug, Deserialize)]
pub struct CsrfOnly {
    #[serde(default)]
    pub csrf: String,
}

async fn signout_everywhere(
    state: web::Data<AppState>,
    session: LearnerSession,
    form: web::Form<CsrfOnly>,
) -> Result<HttpResponse, PageError> {
    session.check_csrf(&state, &form.csrf)?;
    if session.preview {
        return Err(PageError::new(
            StatusCode::FORBIDDEN,
            "preview_read_only",
            "This is a read-only preview.",
        ));
    }
    let now = state.now();
    let lid = session.learner_id.clone();
    state
        .store
        .write(move |tx| {
            sessions::end_all_for_learner(
                tx,
                now,
                &lid,
                &coursegate_core::audit::Actor {
                    kind: "learner",
                    id: Some(lid.clone()),
                    ..Default::default()
                },
            )
        })
        .await?;
    let mut res = see_other("/signed-out");
    res.add_cookie(&clear_session_cookie(&state))
        .map_err(|e| PageError::from(CoreError::Internal(e.to_string())))?;
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn next_must_be_a_relative_in_app_path() {
        assert_eq!(safe_next("/courses/a").as_deref(), Some("/courses/a"));
        for bad in [
            "https://evil.example/",
            "//evil.example",
            "/\\evil.example",
            "javascript:alert(1)",
            "/x\nLocation: y",
            "evil.example",
            "/redirect?to=http://evil",
            "",
        ] {
            assert_eq!(safe_next(bad), None, "{bad:?}");
        }
    }
}
