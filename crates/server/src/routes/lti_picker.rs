//! The course picker of an unmapped resource link: an instructor launched an
//! LTI link that is connected to no course yet (no `course` custom
//! parameter, no Deep Linking item, no staff mapping) and picks one of the
//! published courses here; the link then opens that course for its learners
//! and the instructor lands on the instructor view.
//!
//! As with the instructor view, only the session the instructor launch
//! started may pick for that launch's link: the launch redirects to
//! `/lti/unmapped/{link}?k=…`, where `k` is a keyed hash of that session id
//! and the link, so a learner's session, another instructor's session or
//! another link's key does not match. A link that already has a course is
//! never remapped here.

use actix_web::{http::StatusCode, web, HttpRequest, HttpResponse};
use coursegate_core::{audit::Actor, lti as core_lti, CoreError};
use serde::Deserialize;
use serde_json::json;

use crate::{
    app::AppState,
    error::PageError,
    extract::{client_info, LearnerSession},
    routes::{
        lti_grant::{COURSE_PICKER, INSTRUCTOR_VIEW},
        page, see_other,
    },
};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/lti/unmapped", web::get().to(guide))
        .route("/lti/unmapped/{link}", web::get().to(picker))
        .route("/lti/unmapped/{link}", web::post().to(pick));
}

fn check_key(
    state: &AppState,
    session: &LearnerSession,
    link: &str,
    k: &str,
) -> Result<(), PageError> {
    if COURSE_PICKER.holds(state, &session.session_id, link, k) {
        Ok(())
    } else {
        Err(PageError::new(
            StatusCode::FORBIDDEN,
            "not_instructor",
            "Only the instructor who launched this activity from the LMS can connect it to a course: open it from the LMS as its instructor.",
        ))
    }
}

fn refused(e: CoreError) -> PageError {
    match e {
        CoreError::Refused { code, message } if code == "resource_link_already_mapped" => {
            PageError::new(StatusCode::CONFLICT, code, message)
        }
        CoreError::Refused { code, message } if code == "resource_link_unknown" => {
            PageError::new(StatusCode::NOT_FOUND, code, message)
        }
        other => other.into(),
    }
}

/// A launch with no resource link (or by someone who may not pick): how an
/// activity gets connected to a course.
async fn guide(
    state: web::Data<AppState>,
    _session: LearnerSession,
) -> Result<HttpResponse, PageError> {
    let (site, courses) = state
        .store
        .read(|tx| Ok::<_, CoreError>((coursegate_core::settings::site(tx)?, published(tx, "")?)))
        .await?;
    let mut ctx = tera::Context::new();
    ctx.insert("site", &site);
    ctx.insert("courses", &courses);
    ctx.insert("picker", &false);
    page("pages/lti_unmapped.html", &ctx)
}

/// Published courses whose title (or summary, or slug) contains `needle`.
fn published(
    tx: &mut coursegate_store::Tx,
    needle: &str,
) -> Result<Vec<serde_json::Value>, CoreError> {
    let needle = needle.trim().to_lowercase();
    Ok(coursegate_core::courses::list(tx)?
        .into_iter()
        .filter(|(c, _)| c.published)
        .filter(|(c, _)| {
            needle.is_empty()
                || c.title.to_lowercase().contains(&needle)
                || c.summary.to_lowercase().contains(&needle)
                || c.slug.contains(&needle)
        })
        .map(|(c, n)| {
            json!({ "slug": c.slug, "title": c.title, "summary": c.summary, "lessons": n, "graded": c.graded })
        })
        .collect())
}

#[derive(Debug, Deserialize)]
struct PickerQuery {
    #[serde(default)]
    k: String,
    q: Option<String>,
}

async fn picker(
    state: web::Data<AppState>,
    session: LearnerSession,
    link: web::Path<String>,
    query: web::Query<PickerQuery>,
) -> Result<HttpResponse, PageError> {
    let link = link.into_inner();
    let query = query.into_inner();
    check_key(&state, &session, &link, &query.k)?;
    let q = query.q.unwrap_or_default();
    let (l2, q2) = (link.clone(), q.clone());
    let (site, rl, courses) = state
        .store
        .read(move |tx| {
            Ok::<_, CoreError>((
                coursegate_core::settings::site(tx)?,
                core_lti::resource_link(tx, &l2)?,
                published(tx, &q2)?,
            ))
        })
        .await
        .map_err(refused)?;
    if rl.course_id.is_some() {
        // Connected meanwhile (by another instructor, staff or the LMS).
        return Ok(see_other(&INSTRUCTOR_VIEW.path(
            &state,
            &session.session_id,
            &link,
        )));
    }
    let mut ctx = tera::Context::new();
    ctx.insert("site", &site);
    ctx.insert("picker", &true);
    ctx.insert("csrf", &session.csrf(&state));
    ctx.insert("k", &query.k);
    ctx.insert("link", &link);
    ctx.insert("link_title", &rl.title);
    ctx.insert("context_title", &rl.context_title);
    ctx.insert("courses", &courses);
    ctx.insert("q", &q);
    page("pages/lti_unmapped.html", &ctx)
}

#[derive(Debug, Deserialize)]
struct PickForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    k: String,
    #[serde(default)]
    course: String,
}

async fn pick(
    state: web::Data<AppState>,
    req: HttpRequest,
    session: LearnerSession,
    link: web::Path<String>,
    form: web::Form<PickForm>,
) -> Result<HttpResponse, PageError> {
    let link = link.into_inner();
    let form = form.into_inner();
    session.check_csrf(&state, &form.csrf)?;
    check_key(&state, &session, &link, &form.k)?;
    if form.course.trim().is_empty() {
        return Err(CoreError::invalid("course", "choose a course").into());
    }
    let client = client_info(&req);
    let actor = Actor {
        kind: "lti",
        id: Some(session.learner_id.clone()),
        ip: client.ip,
        user_agent: client.user_agent,
    };
    let now = state.now();
    let l2 = link.clone();
    state
        .store
        .write(move |tx| core_lti::map_resource_link(tx, now, &l2, &form.course, &actor))
        .await
        .map_err(refused)?;
    Ok(see_other(&INSTRUCTOR_VIEW.path(
        &state,
        &session.session_id,
        &link,
    )))
}
