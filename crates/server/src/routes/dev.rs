//! Development sign-in (`coursegate demo` only, `COURSEGATE_DEV_SIGNIN`):
//! turns a session token printed on the console into a cookie. Disabled —
//! answering 404 — in every other configuration.

use actix_web::{web, HttpResponse};
use coursegate_core::sessions;

use crate::{app::AppState, error::PageError, extract::session_cookie, routes::see_other};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/dev/session/{token}", web::get().to(dev_session));
}

async fn dev_session(
    state: web::Data<AppState>,
    token: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    if !state.config.dev_signin {
        return Err(PageError::not_found());
    }
    let token = token.into_inner();
    let now = state.now();
    let secret = state.config.secret.clone();
    let t2 = token.clone();
    let p = state
        .store
        .read(move |tx| sessions::authenticate(tx, now, &secret, &t2))
        .await?;
    let to = if p.kind == "staff" { "/staff" } else { "/" };
    let mut res = see_other(to);
    res.add_cookie(&session_cookie(&state, &token))
        .map_err(|e| PageError::from(coursegate_core::CoreError::Internal(e.to_string())))?;
    Ok(res)
}
