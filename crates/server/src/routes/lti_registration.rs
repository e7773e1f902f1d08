//! LTI Dynamic Registration: an LMS administrator pastes the tool's
//! registration URL; the LMS opens it (in a frame or a pop-up) with
//! `openid_configuration` and usually a `registration_token`.
//!
//! Order: fetch and check the platform's configuration (its issuer must be on
//! the configuration URL's site), POST the tool's registration (Bearer token
//! only when one was given: Brightspace sends none), then store the platform
//! and deployment in one transaction (core), and answer with a page whose
//! script tells the LMS to close the window (`org.imsglobal.lti.close`).

use actix_web::{web, HttpResponse};
use coursegate_core::lti as core_lti;
use coursegate_lti::{registration::ToolRegistration, services::ServiceClient};
use serde::Deserialize;

use crate::{app::AppState, error::PageError, routes::page};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/lti/register", web::get().to(register));
}

#[derive(Debug, Deserialize)]
struct RegisterQuery {
    openid_configuration: Option<String>,
    registration_token: Option<String>,
}

async fn register(
    state: web::Data<AppState>,
    q: web::Query<RegisterQuery>,
) -> Result<HttpResponse, PageError> {
    let q = q.into_inner();
    let Some(config_url) = q
        .openid_configuration
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    else {
        return Err(PageError::new(
            actix_web::http::StatusCode::BAD_REQUEST,
            "registration_invalid",
            "This is the tool's Dynamic Registration address: paste it into your LMS's tool registration page; the LMS opens it with an openid_configuration parameter.",
        ));
    };
    let token = q.registration_token.as_deref();
    let client = ServiceClient::with_client(state.lti.http().clone());
    let cfg = client
        .openid_configuration(config_url, token)
        .await
        .map_err(|e| super::lti::lti_refusal(&e, None))?;
    let lms = cfg.product_family_code().map(str::to_string);
    let site = state.store.read(coursegate_core::settings::site).await?;
    let body = ToolRegistration::for_base_url(&state.config.url(""), &site.name)
        .request_body(&cfg)
        .map_err(|e| super::lti::lti_refusal(&e, lms.as_deref()))?;
    let answer = client
        .register(&cfg.registration_endpoint, token, &body)
        .await
        .map_err(|e| super::lti::lti_refusal(&e, lms.as_deref()))?;
    let reg = core_lti::DynamicRegistration {
        issuer: cfg.issuer.clone(),
        client_id: answer.client_id.clone(),
        name: None,
        auth_url: cfg.authorization_endpoint.clone(),
        token_url: cfg.token_endpoint.clone(),
        jwks_url: cfg.jwks_uri.clone(),
        audience: cfg.authorization_server.clone(),
        lms: lms.clone(),
        deployment_id: answer.deployment_id.clone(),
    };
    let now = state.now();
    let platform = state
        .store
        .write(move |tx| core_lti::add_dynamic_registration(tx, now, reg))
        .await
        .map_err(PageError::from)?;
    let mut ctx = tera::Context::new();
    ctx.insert("site", &site);
    ctx.insert("issuer", &platform.issuer);
    ctx.insert("client_id", &platform.client_id);
    ctx.insert("deployment_id", &answer.deployment_id);
    page("pages/lti_registered.html", &ctx)
}
