//! The LTI 1.3 door over HTTP: OIDC login initiation, the id_token launch,
//! the tool's JWKS, and the continue / new-window handoff for frames that
//! cannot keep cookies.
//!
//! Order of work per launch: read the login state (DB), fetch the platform's
//! keys (network, outside any transaction), verify the token (lti crate),
//! then complete the launch in one write transaction (core). Every login and
//! launch, accepted or refused, leaves a flight record.

use std::collections::HashMap;

use actix_web::{
    cookie::{Cookie, SameSite},
    http::StatusCode,
    web, HttpRequest, HttpResponse,
};
use coursegate_core::{
    lti::{self as core_lti, FlightRecord, LaunchResult, LoginRequest, VerifiedLaunch},
    CoreError,
};
use coursegate_lti::{
    deep_linking::{response_jwt, ContentItem, LineItemSpec},
    error::LtiError,
    login::{auth_request_url, LoginInitiation},
    token::{peek_kid, peek_unverified, verify_launch_traced, Expectations},
};
use serde::Deserialize;
use serde_json::json;

use crate::{
    app::AppState,
    error::PageError,
    extract::{client_info, LearnerSession, SESSION_COOKIE},
    routes::{page, see_other},
};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/lti/login", web::get().to(login_get))
        .route("/lti/login", web::post().to(login_post))
        .route("/lti/launch", web::post().to(launch))
        .route("/lti/continue/{ticket}", web::get().to(continue_get))
        .route("/lti/handoff/{ticket}", web::get().to(handoff_get))
        .route("/lti/handoff/{ticket}", web::post().to(handoff_post))
        .route("/lti/deep-link/{id}", web::get().to(deep_link_get))
        .route("/lti/deep-link/{id}", web::post().to(deep_link_post))
        .route("/.well-known/jwks.json", web::get().to(jwks));
}

/// A refused LTI step: a 4xx page naming the reason, with advice for the admin.
pub(crate) fn lti_refusal(e: &LtiError, lms: Option<&str>) -> PageError {
    let status = if matches!(e, LtiError::JwksFetchFailed { .. }) {
        StatusCode::BAD_GATEWAY
    } else {
        StatusCode::BAD_REQUEST
    };
    let status = if status.is_server_error() {
        StatusCode::FAILED_DEPENDENCY
    } else {
        status
    };
    PageError::new(
        status,
        e.code(),
        format!("{} {}", e.plain_words(), e.advice(lms)),
    )
}

/// Plain words (and advice for the LMS admin) for the flight recorder.
trait Explain {
    fn explain(&self, lms: Option<&str>) -> String;
}

impl Explain for LtiError {
    fn explain(&self, lms: Option<&str>) -> String {
        format!("{} {}", self.plain_words(), self.advice(lms))
    }
}

impl Explain for CoreError {
    fn explain(&self, _lms: Option<&str>) -> String {
        self.to_string()
    }
}

fn state_cookie_name(state: &AppState, lti_state: &str) -> String {
    let h = state.config.secret.hash("lti_cookie_name", lti_state);
    format!("cg_lti_{}", &h[..16])
}

fn state_cookie_value(state: &AppState, lti_state: &str) -> String {
    state.config.secret.hash("lti_cookie_value", lti_state)[..32].to_string()
}

/// Cookies the LMS frame must carry back: on https SameSite=None + Secure +
/// Partitioned (CHIPS), so they work in third-party frames where the browser
/// allows partitioned storage; on plain http (development) SameSite=Lax.
fn frame_cookie(
    state: &AppState,
    name: String,
    value: String,
    path: &str,
    max_age_secs: i64,
) -> (&'static str, String) {
    let mut c = Cookie::build(name, value)
        .path(path.to_string())
        .http_only(true)
        .max_age(actix_web::cookie::time::Duration::seconds(max_age_secs))
        .finish();
    if state.config.secure_cookies() {
        c.set_secure(true);
        c.set_same_site(SameSite::None);
        // The cookie crate bundled with actix-web predates CHIPS: add the attribute by hand.
        ("Set-Cookie", format!("{}; Partitioned", c.encoded()))
    } else {
        c.set_same_site(SameSite::Lax);
        ("Set-Cookie", c.encoded().to_string())
    }
}

async fn login_get(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, PageError> {
    let params: HashMap<String, String> =
        web::Query::<HashMap<String, String>>::from_query(req.query_string())
            .map(|q| q.into_inner())
            .unwrap_or_default();
    login(state, params).await
}

async fn login_post(
    state: web::Data<AppState>,
    form: web::Form<HashMap<String, String>>,
) -> Result<HttpResponse, PageError> {
    login(state, form.into_inner()).await
}

async fn login(
    state: web::Data<AppState>,
    params: HashMap<String, String>,
) -> Result<HttpResponse, PageError> {
    let now = state.now();
    let init = match LoginInitiation::from_params(&params) {
        Ok(i) => i,
        Err(e) => {
            record(
                &state,
                FlightRecord {
                    step: "login",
                    issuer: params.get("iss").cloned(),
                    client_id: params.get("client_id").cloned(),
                    outcome: "rejected",
                    reason: Some(e.code().to_string()),
                    explanation: Some(e.explain(None)),
                    checks: json!({ "params": params.keys().collect::<Vec<_>>() }),
                    ..Default::default()
                },
            )
            .await;
            return Err(lti_refusal(&e, None));
        }
    };
    let launch_url = state.config.url("/lti/launch");
    let base = state.config.url("/");
    if !init.target_link_uri.starts_with(&base) {
        let e = CoreError::refused(
            "target_link_uri_invalid",
            format!("The login's target_link_uri {} is not an address of this tool ({base}). Register {launch_url} as the launch URL.", init.target_link_uri),
        );
        record(
            &state,
            FlightRecord {
                step: "login",
                issuer: Some(init.iss.clone()),
                client_id: init.client_id.clone(),
                outcome: "rejected",
                reason: Some("target_link_uri_invalid".into()),
                checks: json!({}),
                ..Default::default()
            },
        )
        .await;
        return Err(e.into());
    }
    let req = LoginRequest {
        issuer: init.iss.clone(),
        client_id: init.client_id.clone(),
        deployment_hint: init.lti_deployment_id.clone(),
        target_link_uri: init.target_link_uri.clone(),
        storage_target: init.lti_storage_target.clone(),
    };
    let secret = state.config.secret.clone();
    // The registration (one read, off the writer), then state and nonce:
    // one row, one statement per login. Its flight record is the launch's
    // (see `core_lti::begin_login`).
    let (iss, cid) = (req.issuer.clone(), req.client_id.clone());
    let started = state
        .store
        .read_one_then_write_one(
            move |tx| core_lti::resolve_platform(tx, &iss, cid.as_deref()),
            move |tx, platform| core_lti::begin_login(tx, now, &secret, platform, &req),
        )
        .await;
    let started = match started {
        Ok(s) => s,
        Err(e) => {
            record(
                &state,
                FlightRecord {
                    step: "login",
                    issuer: Some(init.iss.clone()),
                    client_id: init.client_id.clone(),
                    deployment_id: init.lti_deployment_id.clone(),
                    outcome: "rejected",
                    reason: Some(e.code().to_string()),
                    explanation: Some(e.explain(None)),
                    checks: json!({}),
                    ..Default::default()
                },
            )
            .await;
            return Err(e.into());
        }
    };
    let url = auth_request_url(
        &started.platform.auth_url,
        &started.platform.client_id,
        &launch_url,
        &init.login_hint,
        init.lti_message_hint.as_deref(),
        &started.state,
        &started.nonce,
    )
    .map_err(|e| lti_refusal(&e, started.platform.lms.as_deref()))?;
    let cookie = frame_cookie(
        &state,
        state_cookie_name(&state, &started.state),
        state_cookie_value(&state, &started.state),
        "/lti",
        core_lti::LOGIN_TTL_MINUTES * 60,
    );
    if let Some(target) = init.lti_storage_target.as_deref() {
        // The platform offers its own storage: keep the state there too, for
        // browsers that drop the (partitioned) cookie in third-party frames.
        let mut ctx = tera::Context::new();
        ctx.insert("target", target);
        ctx.insert(
            "origin",
            &storage_origin(target, &started.platform.auth_url),
        );
        ctx.insert("key", &state_cookie_name(&state, &started.state));
        ctx.insert("value", &state_cookie_value(&state, &started.state));
        ctx.insert("next", url.as_str());
        let body = crate::templates::render("pages/lti_storage_login.html", &ctx)
            .map_err(|e| PageError::from(CoreError::Internal(e)))?;
        return Ok(HttpResponse::Ok()
            .content_type("text/html; charset=utf-8")
            .insert_header(("Cache-Control", "no-store"))
            .append_header(cookie)
            .body(body));
    }
    Ok(HttpResponse::Found()
        .insert_header(("Location", url.to_string()))
        .insert_header(("Cache-Control", "no-store"))
        .append_header(cookie)
        .finish())
}

/// The `targetOrigin` for platform-storage messages: the origin of the
/// platform's OIDC endpoint, except for Canvas's forwarding frame, which is
/// served from each Canvas instance's own domain (not known to the tool) and
/// must be addressed with `*`. Only the state's keyed check value travels, and
/// it is useless without the platform's signed id_token.
fn storage_origin(target: &str, auth_url: &str) -> String {
    if target == "post_message_forwarding" {
        return "*".into();
    }
    url::Url::parse(auth_url)
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_else(|_| "*".into())
}

/// The launch POST (the platform's form_post, or the platform-storage page
/// re-posting it), read with [`crate::form::pairs`]: the id_token needs no
/// decoding, and the generic form reader spent more on it than on the rest
/// of the request's parsing.
#[derive(Debug, Default)]
struct LaunchForm {
    id_token: Option<String>,
    state: Option<String>,
    /// Set by the platform-storage page when it re-posts the launch.
    lti_storage: Option<String>,
    /// What the platform's storage held for this login's state ("" if nothing).
    lti_storage_value: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

impl LaunchForm {
    /// Known fields, each at most once; other fields are ignored (platforms
    /// add their own).
    fn parse(body: &[u8]) -> Result<LaunchForm, String> {
        let mut f = LaunchForm::default();
        for (k, v) in crate::form::pairs(body) {
            let slot = match k.as_ref() {
                "id_token" => &mut f.id_token,
                "state" => &mut f.state,
                "lti_storage" => &mut f.lti_storage,
                "lti_storage_value" => &mut f.lti_storage_value,
                "error" => &mut f.error,
                "error_description" => &mut f.error_description,
                _ => continue,
            };
            if slot.is_some() {
                return Err(format!("the field {k} is given twice"));
            }
            *slot = Some(v.into_owned());
        }
        Ok(f)
    }
}

impl actix_web::FromRequest for LaunchForm {
    type Error = PageError;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self, PageError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut actix_web::dev::Payload) -> Self::Future {
        let urlencoded = crate::form::is_urlencoded(actix_web::HttpMessage::content_type(req));
        let body = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            let unreadable =
                |why: String| PageError::bad_request(format!("The form could not be read: {why}."));
            if !urlencoded {
                return Err(unreadable(
                    "a launch is an HTML form POST (application/x-www-form-urlencoded)".into(),
                ));
            }
            let body = body.await.map_err(|e| unreadable(e.to_string()))?;
            LaunchForm::parse(&body).map_err(unreadable)
        })
    }
}

async fn launch(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: LaunchForm,
) -> Result<HttpResponse, PageError> {
    let now = state.now();
    if let Some(err) = form.error.as_deref() {
        let detail = form.error_description.clone().unwrap_or_default();
        record(
            &state,
            FlightRecord {
                step: "launch",
                outcome: "rejected",
                reason: Some("platform_error".into()),
                checks: json!({ "error": err }),
                ..Default::default()
            },
        )
        .await;
        return Err(PageError::new(
            StatusCode::BAD_REQUEST,
            "platform_error",
            format!("The LMS refused the sign-in ({err}{}{detail}). Open the activity again from the course; if it keeps failing, the LMS administrator should check the tool registration.", if detail.is_empty() { "" } else { ": " }),
        ));
    }
    let Some(id_token) = form.id_token.filter(|t| !t.is_empty()) else {
        return Err(PageError::new(
            StatusCode::BAD_REQUEST,
            "id_token_missing",
            "The launch carried no id_token. Start the activity again from the course.",
        ));
    };
    let lti_state = form.state.unwrap_or_default();

    // 1. The login this launch finishes (read-only; consumed in step 4).
    let secret = state.config.secret.clone();
    let st = lti_state.clone();
    let found = state
        .store
        .read_one(move |tx| core_lti::find_login(tx, now, &secret, &st))
        .await;
    let (login, platform) = match found {
        Ok(v) => v,
        Err(e) => {
            let issuer = peek_unverified(&id_token).ok().map(|u| u.iss);
            record(
                &state,
                FlightRecord {
                    step: "launch",
                    issuer,
                    outcome: "rejected",
                    reason: Some(e.code().to_string()),
                    explanation: Some(e.explain(None)),
                    checks: json!({}),
                    ..Default::default()
                },
            )
            .await;
            return Err(e.into());
        }
    };
    let lms = platform.lms.clone().or_else(|| {
        coursegate_lti::error::Lms::from_issuer(&platform.issuer).map(|l| l.name().to_string())
    });
    let cookie_ok = req
        .cookie(&state_cookie_name(&state, &lti_state))
        .map(|c| coursegate_core::tokens::ct_eq(c.value(), &state_cookie_value(&state, &lti_state)))
        .unwrap_or(false);
    let storage_value = form.lti_storage_value.as_deref().filter(|v| !v.is_empty());
    let storage_ok = match storage_value {
        Some(v) if coursegate_core::tokens::ct_eq(v, &state_cookie_value(&state, &lti_state)) => {
            true
        }
        Some(_) => {
            let e = CoreError::refused(
                "storage_state_mismatch",
                "The LMS's browser storage holds another sign-in for this launch, so it did not start in this browser. Open the activity again from the course.",
            );
            record(
                &state,
                FlightRecord {
                    step: "launch",
                    platform_id: Some(platform.id.clone()),
                    issuer: Some(platform.issuer.clone()),
                    client_id: Some(platform.client_id.clone()),
                    outcome: "rejected",
                    reason: Some("storage_state_mismatch".into()),
                    state_path: Some("storage".into()),
                    lms: lms.clone(),
                    checks: json!({}),
                    ..Default::default()
                },
            )
            .await;
            return Err(e.into());
        }
        None => false,
    };
    if !cookie_ok && !storage_ok && form.lti_storage.is_none() {
        if let Some(target) = login.storage_target.as_deref() {
            // No cookie came back, but the login left the state in the
            // platform's storage: read it there (in the browser), then post
            // the launch again. Nothing is consumed before that.
            let mut ctx = tera::Context::new();
            ctx.insert("target", target);
            ctx.insert("origin", &storage_origin(target, &platform.auth_url));
            ctx.insert("key", &state_cookie_name(&state, &lti_state));
            ctx.insert("id_token", &id_token);
            ctx.insert("lti_state", &lti_state);
            return page("pages/lti_storage_launch.html", &ctx);
        }
    }
    let state_path = if cookie_ok {
        if state.config.secure_cookies() {
            "partitioned"
        } else {
            "cookie"
        }
    } else if storage_ok {
        "storage"
    } else {
        "ticket"
    };

    // 2. The platform's keys (network I/O, outside any transaction).
    let kid = peek_kid(&id_token);
    let keys = match crate::lti_keys::platform_keys(&state, &platform.jwks_url, kid.as_deref(), now)
        .await
    {
        Ok(k) => k,
        Err(e) => {
            record(
                &state,
                FlightRecord {
                    step: "launch",
                    platform_id: Some(platform.id.clone()),
                    issuer: Some(platform.issuer.clone()),
                    client_id: Some(platform.client_id.clone()),
                    outcome: "rejected",
                    reason: Some(e.code().to_string()),
                    explanation: Some(e.explain(lms.as_deref())),
                    lms: lms.clone(),
                    checks: json!({ "kid": kid }),
                    ..Default::default()
                },
            )
            .await;
            return Err(lti_refusal(&e, lms.as_deref()));
        }
    };

    // 3. Verify the token claim by claim.
    let expect = Expectations::new(platform.issuer.clone(), platform.client_id.clone())
        .with_nonce(login.nonce.clone())
        .with_launch_url(state.config.url("/lti/launch"))
        .with_skew_secs(state.config.lti_clock_skew_secs)
        .with_trusted_audiences(core_lti::trusted_audiences(&platform));
    let (verified, trace) = verify_launch_traced(&id_token, &keys, &expect, now);
    let claims = match verified {
        Ok(c) => c,
        Err(e) => {
            // A refusal keeps every check, so staff see which one failed.
            let checks = json!({
                "kid": trace.kid, "alg": trace.alg, "age_secs": trace.age_secs,
                "message_type": trace.message_type,
                "checks": trace.checks.iter().map(|c| json!({ "name": c.name, "ok": c.ok })).collect::<Vec<_>>(),
            });
            record(
                &state,
                FlightRecord {
                    step: "launch",
                    platform_id: Some(platform.id.clone()),
                    issuer: Some(platform.issuer.clone()),
                    client_id: Some(platform.client_id.clone()),
                    deployment_id: trace.deployment_id.clone(),
                    outcome: "rejected",
                    reason: Some(e.code().to_string()),
                    explanation: Some(e.explain(lms.as_deref())),
                    state_path: Some(state_path.into()),
                    lms: lms.clone(),
                    checks,
                },
            )
            .await;
            return Err(lti_refusal(&e, lms.as_deref()));
        }
    };

    // 4. Complete the launch in one transaction.
    let v = VerifiedLaunch {
        login_state_id: login.id.clone(),
        nonce: claims.nonce.clone(),
        deployment_id: claims.deployment_id.clone(),
        message_type: claims.message_type.as_str().to_string(),
        sub: claims.sub.clone().unwrap_or_default(),
        name: claims.display_name(),
        email: claims.email.clone(),
        roles: claims.roles.clone(),
        is_instructor: claims.is_instructor() || claims.is_admin(),
        context_id: claims.context.as_ref().map(|c| c.id.clone()),
        context_title: claims.context.as_ref().and_then(|c| c.title.clone()),
        resource_link_id: claims.resource_link.as_ref().map(|r| r.id.clone()),
        resource_link_title: claims.resource_link.as_ref().and_then(|r| r.title.clone()),
        custom_course: claims.custom_param("course").map(str::to_string),
        lineitem_url: claims.ags.as_ref().and_then(|a| a.lineitem.clone()),
        lineitems_url: claims.ags.as_ref().and_then(|a| a.lineitems.clone()),
        ags_scopes: claims
            .ags
            .as_ref()
            .map(|a| a.scope.clone())
            .unwrap_or_default(),
        nrps_url: claims
            .nrps
            .as_ref()
            .map(|n| n.context_memberships_url.clone()),
        state_path: state_path.to_string(),
        deep_link: claims
            .deep_linking_settings
            .as_ref()
            .map(|d| core_lti::DeepLinkSettings {
                return_url: d.deep_link_return_url.clone(),
                data: d.data.clone(),
                accept_multiple: d.accepts_multiple(),
                accept_lineitem: d.accept_lineitem.unwrap_or(true),
            }),
    };
    // Who may connect an unmapped link to a course: an instructor, content
    // developer or administrator of the link's own LMS context.
    let may_pick = claims.is_context_instructor();
    let secret = state.config.secret.clone();
    let policy = state.config.sessions;
    let client = client_info(&req);
    let vv = v.clone();
    let launch_platform = platform.clone();
    let mut rec = FlightRecord {
        step: "launch",
        platform_id: Some(platform.id.clone()),
        issuer: Some(platform.issuer.clone()),
        client_id: Some(platform.client_id.clone()),
        deployment_id: Some(v.deployment_id.clone()),
        outcome: "ok",
        reason: None,
        state_path: Some(state_path.into()),
        lms: lms.clone(),
        // A launch that passed: every check did, so their count says it all;
        // the login's facts come with it (its own record is not written
        // when the launch arrives, see `core_lti::begin_login`).
        checks: json!({
            "kid": trace.kid, "alg": trace.alg, "age_secs": trace.age_secs,
            "message_type": trace.message_type, "passed": trace.checks.len(),
            "login_ms": (now - coursegate_core::access::utc(login.created_at)).num_milliseconds(),
            "storage_offered": login.storage_target.is_some(),
        }),
        explanation: None,
    };
    // Completion, its session, flight record and continue ticket commit together.
    let ok_rec = rec.clone();
    let st2 = state.clone();
    let custom_lesson = claims
        .custom_param(coursegate_core::deep_link::CUSTOM_LESSON)
        .map(str::to_string);
    let result = state
        .store
        .write(move |tx| {
            let result = core_lti::complete_launch(
                tx,
                now,
                &secret,
                &policy,
                &launch_platform,
                &vv,
                &client,
            )?;
            let (opening, learner_id, redirect) = match result {
                LaunchResult::Session {
                    opening,
                    learner_id,
                    course_slug,
                    resource_link_id,
                    instructor,
                } => {
                    let to = match (instructor, course_slug, resource_link_id) {
                        (true, Some(_), Some(rl)) => crate::routes::lti_grant::INSTRUCTOR_VIEW
                            .path(&st2, &opening.started.session_id, &rl),
                        (_, Some(s), _) => {
                            coursegate_core::deep_link::landing(tx, &s, custom_lesson.as_deref())?
                        }
                        (true, None, Some(rl)) if may_pick => {
                            crate::routes::lti_grant::COURSE_PICKER.path(
                                &st2,
                                &opening.started.session_id,
                                &rl,
                            )
                        }
                        (_, None, _) => "/lti/unmapped".into(),
                    };
                    (opening, learner_id, to)
                }
                LaunchResult::DeepLinking {
                    opening,
                    learner_id,
                    request_id,
                } => (opening, learner_id, format!("/lti/deep-link/{request_id}")),
            };
            // The session, its audit entry, the flight record and the ticket.
            core_lti::finish_launch(tx, now, &secret, opening, ok_rec, &learner_id, &redirect)
        })
        .await;
    let (started, ticket) = match result {
        Ok(r) => r,
        Err(e) => {
            rec.outcome = "rejected";
            rec.reason = Some(e.code().to_string());
            rec.explanation = Some(e.explain(lms.as_deref()));
            record(&state, rec).await;
            if e.code() == "deployment_pending" {
                // Kept (outside the refused launch's transaction) for staff approval.
                let (pid, did) = (platform.id.clone(), v.deployment_id.clone());
                let noted = state
                    .store
                    .write(move |tx| core_lti::add_deployment(tx, now, &pid, &did, "pending"))
                    .await;
                if let Err(err) = noted {
                    tracing::warn!(error = %err, "could not record the pending deployment");
                }
            }
            return Err(e.into());
        }
    };
    let max_age = (started.absolute_expires_at - now).num_seconds().max(60);
    let session = frame_cookie(
        &state,
        SESSION_COOKIE.to_string(),
        started.token.clone(),
        "/",
        max_age,
    );
    let mut used = Cookie::new(state_cookie_name(&state, &lti_state), "");
    used.set_path("/lti");
    used.make_removal();
    Ok(HttpResponse::SeeOther()
        .insert_header(("Location", format!("/lti/continue/{ticket}")))
        .insert_header(("Cache-Control", "no-store"))
        .append_header(session)
        .cookie(used)
        .finish())
}

/// After a launch: if the frame kept the session cookie, go straight to the
/// course; otherwise offer to continue in a new window with the ticket.
async fn continue_get(
    state: web::Data<AppState>,
    req: HttpRequest,
    ticket: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let ticket = ticket.into_inner();
    let now = state.now();
    let secret = state.config.secret.clone();
    let t2 = ticket.clone();
    let t = state
        .store
        .read(move |tx| core_lti::peek_ticket(tx, now, &secret, &t2))
        .await?;
    let cookie_session = match req.cookie(SESSION_COOKIE) {
        Some(c) => {
            let secret = state.config.secret.clone();
            let token = c.value().to_string();
            state
                .store
                .read(move |tx| coursegate_core::sessions::authenticate(tx, now, &secret, &token))
                .await
                .ok()
        }
        None => None,
    };
    if cookie_session
        .map(|p| p.session_id == t.session_id)
        .unwrap_or(false)
    {
        let id = t.id.clone();
        state
            .store
            .write(move |tx| coursegate_store::repo::lti::consume_ticket(tx, &id, now.naive_utc()))
            .await
            .map_err(CoreError::from)?;
        return Ok(see_other(&t.redirect));
    }
    if state.config.lti_frame_sessions {
        // The frame kept no cookie: the ticket becomes a session whose token
        // travels in the path of the frame's pages (crate::frame).
        let secret = state.config.secret.clone();
        let policy = state.config.sessions;
        let client = client_info(&req);
        let redeemed = state
            .store
            .write(move |tx| core_lti::redeem_ticket(tx, now, &secret, &policy, &ticket, &client))
            .await?;
        let to = destination_for(&state, &redeemed);
        let mut res = see_other(&crate::frame::frame_path(&redeemed.started.token, &to));
        res.headers_mut().insert(
            actix_web::http::header::REFERRER_POLICY,
            actix_web::http::header::HeaderValue::from_static("no-referrer"),
        );
        return Ok(res);
    }
    let site = state.store.read(coursegate_core::settings::site).await?;
    let mut ctx = tera::Context::new();
    ctx.insert("site", &site);
    ctx.insert("ticket", &ticket);
    page("pages/lti_new_window.html", &ctx)
}

async fn handoff_get(
    state: web::Data<AppState>,
    ticket: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let ticket = ticket.into_inner();
    let now = state.now();
    let secret = state.config.secret.clone();
    let t2 = ticket.clone();
    let (site, learner) = state
        .store
        .read(move |tx| {
            let t = core_lti::peek_ticket(tx, now, &secret, &t2)?;
            Ok::<_, CoreError>((
                coursegate_core::settings::site(tx)?,
                coursegate_core::learners::get(tx, &t.learner_id)?,
            ))
        })
        .await?;
    let mut ctx = tera::Context::new();
    ctx.insert("site", &site);
    ctx.insert("ticket", &ticket);
    ctx.insert(
        "learner_name",
        &coursegate_core::learners::display_name(&learner),
    );
    page("pages/lti_handoff.html", &ctx)
}

async fn handoff_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    ticket: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let ticket = ticket.into_inner();
    let now = state.now();
    let secret = state.config.secret.clone();
    let policy = state.config.sessions;
    let client = client_info(&req);
    let redeemed = state
        .store
        .write(move |tx| core_lti::redeem_ticket(tx, now, &secret, &policy, &ticket, &client))
        .await?;
    let mut res = see_other(&destination_for(&state, &redeemed));
    res.add_cookie(&crate::extract::session_cookie(
        &state,
        &redeemed.started.token,
    ))
    .map_err(|e| PageError::from(CoreError::Internal(e.to_string())))?;
    Ok(res)
}

/// Where a redeemed ticket goes. The instructor view's and the course
/// picker's keys are bound to a session, and the ticket started a new one:
/// a key the launch derived for its own session is derived again for it.
fn destination_for(state: &AppState, r: &core_lti::Redeemed) -> String {
    use crate::routes::lti_grant::{COURSE_PICKER, INSTRUCTOR_VIEW};
    let to = &r.started.redirect;
    [INSTRUCTOR_VIEW, COURSE_PICKER]
        .iter()
        .find_map(|g| g.moved(state, to, &r.launch_session_id, &r.started.session_id))
        .unwrap_or_else(|| to.clone())
}

#[derive(Debug, Deserialize)]
struct PickerQuery {
    q: Option<String>,
}

/// Deep Linking: the instructor's catalogue picker.
async fn deep_link_get(
    state: web::Data<AppState>,
    session: LearnerSession,
    id: web::Path<String>,
    query: web::Query<PickerQuery>,
) -> Result<HttpResponse, PageError> {
    let id = id.into_inner();
    let now = state.now();
    let sid = session.session_id.clone();
    let q = query.into_inner().q.unwrap_or_default();
    let needle = q.clone();
    let (site, req, courses) = state
        .store
        .read(move |tx| {
            let (req, _) = core_lti::deep_link_request(tx, now, &id, &sid)?;
            let courses = coursegate_core::deep_link::catalogue(tx, &needle)?;
            Ok::<_, CoreError>((coursegate_core::settings::site(tx)?, req, courses))
        })
        .await?;
    let mut ctx = tera::Context::new();
    ctx.insert("site", &site);
    ctx.insert("csrf", &session.csrf(&state));
    ctx.insert("request_id", &req.id);
    ctx.insert("multiple", &req.accept_multiple);
    ctx.insert("courses", &courses);
    ctx.insert("q", &q);
    page("pages/lti_deep_link.html", &ctx)
}

/// Deep Linking: sign the chosen items and post them back to the LMS.
async fn deep_link_post(
    state: web::Data<AppState>,
    session: LearnerSession,
    id: web::Path<String>,
    form: web::Form<Vec<(String, String)>>,
) -> Result<HttpResponse, PageError> {
    let form = form.into_inner();
    let csrf = form
        .iter()
        .find(|(k, _)| k == "csrf")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    session.check_csrf(&state, &csrf)?;
    let field = |name: &str| -> Vec<String> {
        form.iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    };
    let pick = coursegate_core::deep_link::Pick::from_form(field("course"), field("lesson"))?;
    let id = id.into_inner();
    let now = state.now();
    let sid = session.session_id.clone();
    let (req, platform, picked) = state
        .store
        .write(move |tx| coursegate_core::deep_link::answer(tx, now, &id, &sid, &pick))
        .await?;
    let keys = state.lti.tool_keys().ok_or_else(|| {
        PageError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "tool_key_missing",
            "The tool has no signing key (check COURSEGATE_KEYS_DIR), so it cannot answer the LMS.",
        )
    })?;
    let launch_url = state.config.url("/lti/launch");
    let items: Vec<ContentItem> = picked
        .iter()
        .map(|p| deep_link_item(p, &launch_url, req.accept_lineitem))
        .collect();
    let jwt = response_jwt(
        &keys,
        &platform.client_id,
        &platform.issuer,
        &req.deployment_id,
        req.data.clone(),
        items,
        now,
    )
    .map_err(|e| lti_refusal(&e, platform.lms.as_deref()))?;
    let mut ctx = tera::Context::new();
    ctx.insert("return_url", &req.return_url);
    ctx.insert("jwt", &jwt);
    ctx.insert("count", &picked.len());
    let body = crate::templates::render("pages/lti_deep_link_return.html", &ctx)
        .map_err(|e| PageError::from(CoreError::Internal(e)))?;
    // The return URL is the platform's: allow the form to post there.
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header(("Cache-Control", "no-store"))
        .insert_header((
            "Content-Security-Policy",
            "default-src 'self'; script-src 'self'; style-src 'self'; form-action *; base-uri 'none'; object-src 'none'",
        ))
        .body(body))
}

/// The content item of a pick: the registered launch URL unchanged (Moodle
/// rejects extra query parameters), the course (and lesson) in `custom`,
/// and a line item for a graded course. A lesson item has none: the grade
/// is the course's, reported on the course's own items.
fn deep_link_item(
    p: &coursegate_core::deep_link::Picked,
    launch_url: &str,
    accept_lineitem: bool,
) -> ContentItem {
    let c = &p.course;
    let mut custom = std::collections::BTreeMap::new();
    custom.insert("course".to_string(), c.slug.clone());
    if let Some(l) = &p.lesson {
        custom.insert(
            coursegate_core::deep_link::CUSTOM_LESSON.to_string(),
            l.id.clone(),
        );
        return ContentItem::resource_link(
            format!("{} · {}", c.title, l.title),
            launch_url,
            custom,
        )
        .with_text(format!("A lesson of {}", c.title));
    }
    let mut item = ContentItem::resource_link(c.title.clone(), launch_url, custom);
    if !c.summary.is_empty() {
        item = item.with_text(c.summary.clone());
    }
    if c.graded && accept_lineitem {
        item = item.with_line_item(LineItemSpec {
            score_maximum: 100.0,
            label: Some(c.title.clone()),
            resource_id: Some(c.slug.clone()),
            tag: None,
        });
    }
    item
}

async fn jwks(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .insert_header(("Cache-Control", "public, max-age=300"))
        .body(crate::lti_keys::tool_jwks(&state))
}

async fn record(state: &AppState, r: FlightRecord) {
    let now = state.now();
    if let Err(e) = state
        .store
        .write(move |tx| core_lti::record(tx, now, r))
        .await
    {
        tracing::warn!(error = %e, "could not write the LTI flight record");
    }
}
