//! The instructor view of an LTI resource link (the course and the learners
//! of its LMS context) and the Names and Role Provisioning roster import.
//!
//! Only the session an instructor launch started may open the view: the
//! launch redirects to `/lti/instructor/{link}?k=…`, where `k` is a keyed
//! hash of that session id and the resource link, so a learner's session
//! (or another instructor's link) does not match. The import fetches every
//! memberships page over the network first, outside any transaction, then
//! writes all members in one transaction.

use actix_web::{http::StatusCode, web, HttpResponse};
use coursegate_core::{
    audit::Actor,
    roster::{self, RosterMember, SCOPE_NRPS},
    CoreError,
};
use coursegate_lti::{services::ServiceClient, LtiError};
use serde::Deserialize;

use crate::{
    app::AppState,
    error::PageError,
    extract::LearnerSession,
    routes::{lti_grant::INSTRUCTOR_VIEW, page, see_other},
    workers::{service_token, ScoreWorker},
};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/lti/instructor/{link}", web::get().to(view))
        .route("/lti/instructor/{link}/roster", web::post().to(import));
}

fn not_instructor() -> PageError {
    PageError::new(
        StatusCode::FORBIDDEN,
        "not_instructor",
        "Only an instructor of this activity can open this page or import its roster: open the activity from the LMS as its instructor.",
    )
}

fn check_key(
    state: &AppState,
    session: &LearnerSession,
    link: &str,
    k: &str,
) -> Result<(), PageError> {
    if INSTRUCTOR_VIEW.holds(state, &session.session_id, link, k) {
        Ok(())
    } else {
        Err(not_instructor())
    }
}

#[derive(Debug, Deserialize)]
struct ViewQuery {
    #[serde(default)]
    k: String,
    imported: Option<usize>,
    enrolled: Option<usize>,
    removed: Option<usize>,
    changes: Option<u8>,
}

async fn view(
    state: web::Data<AppState>,
    session: LearnerSession,
    link: web::Path<String>,
    q: web::Query<ViewQuery>,
) -> Result<HttpResponse, PageError> {
    let link = link.into_inner();
    let q = q.into_inner();
    check_key(&state, &session, &link, &q.k)?;
    let l2 = link.clone();
    let (site, v) = state
        .store
        .read(move |tx| {
            Ok::<_, CoreError>((
                coursegate_core::settings::site(tx)?,
                roster::instructor_view(tx, &l2)?,
            ))
        })
        .await?;
    let mut ctx = tera::Context::new();
    let mut grades = std::collections::HashMap::new();
    if let (true, Some(lineitem)) = (v.link.can_read_results, v.link.lineitem_url.clone()) {
        match platform_results(&state, &link, &lineitem).await {
            Ok(r) => {
                let by_sub: std::collections::HashMap<String, String> = r
                    .into_iter()
                    .map(|r| {
                        let shown = match (r.result_score, r.result_maximum) {
                            (Some(s), Some(m)) => format!("{s} of {m}"),
                            (Some(s), None) => s.to_string(),
                            _ => "no grade".into(),
                        };
                        (r.user_id, shown)
                    })
                    .collect();
                ctx.insert("results", &true);
                grades = by_sub;
            }
            Err(why) => ctx.insert("results_error", &why),
        }
    }
    let mut view = serde_json::to_value(&v).map_err(|e| CoreError::Internal(e.to_string()))?;
    if let Some(rows) = view["learners"].as_array_mut() {
        for r in rows {
            let sub = r["lti_sub"].as_str().unwrap_or("").to_string();
            r["lms_grade"] = grades
                .get(&sub)
                .cloned()
                .unwrap_or_else(|| "none".into())
                .into();
        }
    }
    ctx.insert("site", &site);
    ctx.insert("view", &view);
    ctx.insert("csrf", &session.csrf(&state));
    ctx.insert("k", &q.k);
    ctx.insert("preview", &session.preview);
    if let Some(n) = q.imported {
        ctx.insert("imported", &n);
        ctx.insert("enrolled", &q.enrolled.unwrap_or(0));
        ctx.insert("removed", &q.removed.unwrap_or(0));
        ctx.insert("changes", &q.changes.is_some());
    }
    page("pages/lti_instructor.html", &ctx)
}

/// The platform's results for the line item (AGS), with the cached token;
/// on failure, what to show instead.
async fn platform_results(
    state: &AppState,
    link: &str,
    lineitem: &str,
) -> Result<Vec<coursegate_lti::services::ags::ResultItem>, String> {
    let l2 = link.to_string();
    let target = state
        .store
        .read(move |tx| roster::service_target_of(tx, &l2))
        .await
        .map_err(|e| e.to_string())?;
    let w = ScoreWorker::default();
    let client = ServiceClient::with_client(state.lti.http().clone());
    let scopes = [roster::SCOPE_RESULT_READONLY];
    let mut fresh = false;
    loop {
        let token = service_token(state, &w, &target, &scopes, fresh)
            .await
            .map_err(|f| format!("The LMS gave no access token for results: {}", f.message))?;
        match client.results(&token, lineitem, None).await {
            Ok(r) => return Ok(r),
            Err(e) if e.is_unauthorized() && !fresh => {
                let (pid, t) = (target.platform_id.clone(), token.clone());
                state
                    .store
                    .write(move |tx| coursegate_core::ags::forget_token(tx, &pid, &t))
                    .await
                    .map_err(|e| e.to_string())?;
                fresh = true;
            }
            Err(e) => {
                tracing::warn!(error = %e, "reading AGS results failed");
                return Err(match &e {
                    LtiError::ServiceHttp { status, .. } => {
                        format!("The LMS refused to list the grades (HTTP {status}).")
                    }
                    _ => "The LMS's grades could not be read just now.".to_string(),
                });
            }
        }
    }
}

#[derive(Debug, Deserialize)]
struct ImportForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    k: String,
}

/// What the LMS answered, in words for the instructor.
fn refusal(e: &LtiError) -> PageError {
    let detail = match e {
        LtiError::ServiceHttp { status, body, .. } => {
            let body: String = body.trim().chars().take(300).collect();
            if body.is_empty() {
                format!("The LMS refused the roster request with HTTP {status}.")
            } else {
                format!("The LMS refused the roster request with HTTP {status}: {body}")
            }
        }
        LtiError::ServiceUnreachable { .. } => {
            "The LMS's Names and Roles service could not be reached. Try again in a moment."
                .to_string()
        }
        LtiError::TokenRequestFailed { body, .. } => {
            format!("The LMS did not give the tool an access token for its roster: {body}")
        }
        other => format!("The roster could not be read from the LMS: {other}"),
    };
    PageError::new(StatusCode::FAILED_DEPENDENCY, "roster_refused", detail)
}

async fn import(
    state: web::Data<AppState>,
    session: LearnerSession,
    link: web::Path<String>,
    form: web::Form<ImportForm>,
) -> Result<HttpResponse, PageError> {
    let link = link.into_inner();
    let form = form.into_inner();
    session.check_csrf(&state, &form.csrf)?;
    check_key(&state, &session, &link, &form.k)?;
    let l2 = link.clone();
    let source = state
        .store
        .read(move |tx| roster::roster_source(tx, &l2))
        .await
        .map_err(|e| match e {
            CoreError::Refused { code, message } => {
                PageError::new(StatusCode::CONFLICT, code, message)
            }
            other => other.into(),
        })?;

    // Every page, over the network, before any write: only the changes
    // when the last sync was offered a differences URL (the full roster
    // again if the platform no longer serves it).
    let (members, differences_read) = match &source.differences_url {
        Some(diff) => match fetch_members(&state, &source, diff).await {
            Ok(m) => (m, true),
            Err(e) => {
                tracing::info!(error = %e, "the differences URL failed; reading the full roster");
                (
                    fetch_members(&state, &source, &source.memberships_url)
                        .await
                        .map_err(|e| refusal(&e))?,
                    false,
                )
            }
        },
        None => (
            fetch_members(&state, &source, &source.memberships_url)
                .await
                .map_err(|e| refusal(&e))?,
            false,
        ),
    };
    let learners: Vec<RosterMember> = members
        .members
        .iter()
        .filter(|m| m.is_learner())
        .map(|m| RosterMember {
            sub: m.user_id.clone(),
            name: m.name.clone().or_else(|| {
                let n = [m.given_name.as_deref(), m.family_name.as_deref()]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(" ");
                (!n.is_empty()).then_some(n)
            }),
            email: m.email.clone(),
            active: m.is_active(),
        })
        .collect();
    let now = state.now();
    let actor = Actor {
        kind: "lti",
        id: Some(session.learner_id.clone()),
        ip: None,
        user_agent: None,
    };
    let l2 = link.clone();
    let differences = members.differences.clone();
    let done = state
        .store
        .write(move |tx| {
            let done = roster::import_members(tx, now, &l2, &learners, &actor)?;
            roster::record_sync(tx, now, &l2, differences)?;
            Ok::<_, CoreError>(done)
        })
        .await?;
    tracing::info!(
        link = %link,
        pages = members.pages,
        differences = differences_read,
        members = done.members,
        enrolled = done.enrolled,
        removed = done.removed,
        "roster imported"
    );
    let mut to = format!(
        "/lti/instructor/{link}?k={}&imported={}&enrolled={}",
        form.k, done.members, done.enrolled
    );
    if done.removed > 0 {
        to.push_str(&format!("&removed={}", done.removed));
    }
    if differences_read {
        to.push_str("&changes=1");
    }
    Ok(see_other(&to))
}

/// Every memberships page from `url`, with the cached token (refreshed
/// once on a 401).
async fn fetch_members(
    state: &AppState,
    source: &roster::RosterSource,
    url: &str,
) -> Result<coursegate_lti::services::nrps::Memberships, LtiError> {
    let w = ScoreWorker::default();
    let client = ServiceClient::with_client(state.lti.http().clone());
    let scopes = [SCOPE_NRPS];
    let mut fresh = false;
    loop {
        let token = service_token(state, &w, &source.target, &scopes, fresh)
            .await
            .map_err(|f| LtiError::TokenRequestFailed {
                url: source.target.token_url.clone(),
                status: None,
                body: f.message,
            })?;
        match client.memberships(&token, url).await {
            Ok(m) => return Ok(m),
            Err(e) if e.is_unauthorized() && !fresh => {
                let (pid, t) = (source.target.platform_id.clone(), token.clone());
                state
                    .store
                    .write(move |tx| coursegate_core::ags::forget_token(tx, &pid, &t))
                    .await
                    .map_err(|e| LtiError::ServiceUnreachable {
                        url: url.to_string(),
                        reason: e.to_string(),
                    })?;
                fresh = true;
            }
            Err(e) => {
                tracing::warn!(error = %e, "roster request refused by the platform");
                return Err(e);
            }
        }
    }
}
