//! Staff single sign-on over HTTP: `GET /staff/sso` starts (redirects to the
//! provider), `GET /staff/sso/callback` finishes and starts a staff session
//! like a staff one-time link does. Protocol in `crate::sso_client`, rules in
//! `coursegate_core::sso`. Every refusal is a 4xx page naming its code.
//!
//! The login state lives in the database (any instance can finish a sign-in
//! another started); a short-lived `cg_sso` cookie ties it to the browser
//! that started it.

use actix_web::{
    cookie::{time::Duration as CookieDuration, Cookie, SameSite},
    http::StatusCode,
    web, HttpRequest, HttpResponse,
};
use coursegate_core::{
    sso::{self, SsoRefusal},
    tokens, CoreError,
};
use serde::Deserialize;

use crate::{
    app::AppState,
    config::SsoConfig,
    error::PageError,
    extract::{client_info, session_cookie},
};

pub const BROWSER_COOKIE: &str = "cg_sso";
const CALLBACK: &str = "/staff/sso/callback";

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/staff/sso", web::get().to(start))
        .route(CALLBACK, web::get().to(callback));
}

fn sso_config(state: &AppState) -> Result<&SsoConfig, PageError> {
    state.config.sso.as_ref().ok_or_else(PageError::not_found)
}

fn page_for(e: CoreError) -> PageError {
    match e {
        CoreError::Refused { code, message } => PageError::new(
            StatusCode::from_u16(status_for(code)).unwrap_or(StatusCode::BAD_REQUEST),
            code,
            message,
        ),
        other => other.into(),
    }
}

fn status_for(code: &str) -> u16 {
    match code {
        "sso_domain_not_allowed" | "sso_staff_deactivated" | "sso_email_unverified" => 403,
        "sso_state_used" | "sso_state_expired" => 410,
        _ => 400,
    }
}

fn refused(r: SsoRefusal) -> PageError {
    page_for(r.into_error())
}

#[derive(Debug, Deserialize)]
pub struct StartQuery {
    #[serde(default)]
    pub login_hint: Option<String>,
}

async fn start(
    state: web::Data<AppState>,
    query: web::Query<StartQuery>,
) -> Result<HttpResponse, PageError> {
    let cfg = sso_config(&state)?;
    let hint = query
        .login_hint
        .as_deref()
        .map(str::trim)
        .filter(|h| !h.is_empty() && h.len() <= 254 && !h.contains(char::is_control));
    let auth = crate::sso_client::authorize(cfg, &state.config.url(CALLBACK), hint)
        .await
        .map_err(refused)?;
    let browser = tokens::mint("cgo");
    let (now, secret) = (state.now(), state.config.secret.clone());
    let (st, b, login) = (auth.state.clone(), browser.clone(), auth.login.clone());
    state
        .store
        .write(move |tx| sso::begin(tx, now, &secret, &st, &b, &login))
        .await?;
    let cookie = Cookie::build(BROWSER_COOKIE, browser)
        .path("/staff/sso")
        .http_only(true)
        .secure(state.config.secure_cookies())
        .same_site(SameSite::Lax)
        .max_age(CookieDuration::minutes(sso::STATE_TTL_MINUTES))
        .finish();
    Ok(HttpResponse::SeeOther()
        .insert_header(("Location", auth.url))
        .insert_header(("Cache-Control", "no-store"))
        .insert_header(("Referrer-Policy", "no-referrer"))
        .cookie(cookie)
        .finish())
}

#[derive(Debug, Deserialize)]
pub struct CallbackQuery {
    #[serde(default)]
    pub state: Option<String>,
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub error: Option<String>,
}

async fn callback(
    state: web::Data<AppState>,
    req: HttpRequest,
    query: web::Query<CallbackQuery>,
) -> Result<HttpResponse, PageError> {
    let cfg = sso_config(&state)?;
    let client = client_info(&req);
    let now = state.now();
    let secret = state.config.secret.clone();
    let q = query.into_inner();

    if q.error.is_some() || q.state.is_none() || q.code.is_none() {
        let reason = if q.error.is_some() {
            SsoRefusal::ProviderError
        } else {
            SsoRefusal::BadCallback
        };
        let c = client.clone();
        // The provider's own words stay in the log, not on the page.
        if let Some(e) = &q.error {
            tracing::info!(provider_error = %e.chars().take(100).collect::<String>(), "SSO provider returned an error");
        }
        let e = state
            .store
            .write(move |tx| sso::refuse(tx, now, &c, reason, None))
            .await?;
        return Err(page_for(e));
    }
    let (st, code) = (q.state.unwrap_or_default(), q.code.unwrap_or_default());

    let browser = req.cookie(BROWSER_COOKIE).map(|c| c.value().to_string());
    let (s2, c2) = (secret.clone(), client.clone());
    let login = state
        .store
        .write(move |tx| sso::take_state(tx, now, &s2, &c2, &st, browser.as_deref()))
        .await?
        .map_err(page_for)?;

    // Network I/O (token endpoint, JWKS) with no transaction open.
    let identity =
        match crate::sso_client::finish(cfg, &state.config.url(CALLBACK), &code, &login, now).await
        {
            Ok(i) => i,
            Err(reason) => {
                let c = client.clone();
                let e = state
                    .store
                    .write(move |tx| sso::refuse(tx, now, &c, reason, None))
                    .await?;
                return Err(page_for(e));
            }
        };

    let (policy, sso_policy) = (state.config.sessions, cfg.policy.clone());
    let started = state
        .store
        .write(move |tx| sso::complete(tx, now, &secret, &policy, &sso_policy, &identity, &client))
        .await?
        .map_err(page_for)?;
    let mut res = HttpResponse::SeeOther()
        .insert_header(("Location", started.redirect.clone()))
        .insert_header(("Referrer-Policy", "no-referrer"))
        .insert_header(("Cache-Control", "no-store"))
        .finish();
    res.add_cookie(&session_cookie(&state, &started.token))
        .map_err(|e| PageError::from(CoreError::Internal(e.to_string())))?;
    res.add_removal_cookie(
        &Cookie::build(BROWSER_COOKIE, "")
            .path("/staff/sso")
            .finish(),
    )
    .map_err(|e| PageError::from(CoreError::Internal(e.to_string())))?;
    Ok(res)
}
