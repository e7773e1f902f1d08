//! Staff pages for LMS platforms: list, add, edit, approve pending
//! deployments, and recent launch failures from the flight recorder with
//! plain-words advice. Owners and admins change; every staff role may look.

use actix_web::{web, HttpResponse};
use coursegate_core::{
    lti::{self as core_lti, DeploymentPolicy, NewPlatform, PlatformEdit},
    CoreError,
};
use serde::Deserialize;

use crate::{
    app::AppState,
    error::PageError,
    extract::StaffSession,
    routes::{page, see_other},
};

const EDITORS: &[&str] = &["owner", "admin"];

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/staff/lms", web::get().to(list))
        .route("/staff/lms", web::post().to(create))
        .route("/staff/lms/new", web::get().to(new_form))
        .route("/staff/lms/{id}", web::get().to(detail))
        .route("/staff/lms/{id}", web::post().to(update))
        .route(
            "/staff/lms/{id}/deployments",
            web::post().to(add_deployment),
        )
        .route(
            "/staff/lms/{id}/deployments/{dep}",
            web::post().to(set_deployment),
        )
        .route(
            "/staff/lms/{id}/scores/replay",
            web::post().to(replay_scores),
        )
        .route("/staff/lms/{id}/links/{link}", web::post().to(map_link));
}

fn tool_values(state: &AppState) -> serde_json::Value {
    serde_json::json!({
        "login_url": state.config.url("/lti/login"),
        "launch_url": state.config.url("/lti/launch"),
        "deep_linking_url": state.config.url("/lti/launch"),
        "jwks_url": state.config.url("/.well-known/jwks.json"),
        "registration_url": state.config.url("/lti/register"),
    })
}

fn ctx(state: &AppState, s: &StaffSession) -> tera::Context {
    let mut c = crate::routes::staff_console::ctx(
        state,
        s,
        &coursegate_core::settings::Site::default(),
        "lms",
    );
    c.insert("can_edit", &EDITORS.contains(&s.role.as_str()));
    c.insert("tool", &tool_values(state));
    c
}

async fn list(
    state: web::Data<AppState>,
    s: StaffSession,
    q: web::Query<crate::routes::staff_console::ListQuery>,
) -> Result<HttpResponse, PageError> {
    s.require(crate::routes::staff_console::READERS)?;
    let (site, mut platforms, failures) = state
        .store
        .read(|tx| {
            Ok::<_, CoreError>((
                coursegate_core::settings::site(tx)?,
                core_lti::platform_views(tx)?,
                core_lti::recent_flights(tx, true, 50)?,
            ))
        })
        .await?;
    let sort = match q.sort.as_deref() {
        Some("issuer") => {
            platforms.sort_by(|a, b| a.issuer.cmp(&b.issuer).then(a.id.cmp(&b.id)));
            "issuer"
        }
        _ => {
            platforms.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
            "name"
        }
    };
    let mut c = ctx(&state, &s);
    c.insert("site", &site);
    let platforms = crate::routes::staff_console::paginate_vec(&mut c, &q, platforms);
    c.insert("platforms", &platforms);
    c.insert("sort", sort);
    c.insert("failures", &failures);
    page("pages/staff_lms_list.html", &c)
}

async fn new_form(state: web::Data<AppState>, s: StaffSession) -> Result<HttpResponse, PageError> {
    s.require(EDITORS)?;
    let site = state.store.read(coursegate_core::settings::site).await?;
    let mut c = ctx(&state, &s);
    c.insert("site", &site);
    c.insert(
        "form",
        &serde_json::json!({ "unknown_deployments": "reject" }),
    );
    page("pages/staff_lms_new.html", &c)
}

#[derive(Debug, Deserialize, serde::Serialize, Default)]
pub struct PlatformForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    issuer: String,
    #[serde(default)]
    client_id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    auth_url: String,
    #[serde(default)]
    token_url: String,
    #[serde(default)]
    jwks_url: String,
    #[serde(default)]
    audience: String,
    #[serde(default)]
    customer: String,
    #[serde(default)]
    lms: String,
    #[serde(default)]
    deployment_id: String,
    #[serde(default)]
    unknown_deployments: String,
    #[serde(default)]
    active: Option<String>,
    /// One audience per line.
    #[serde(default)]
    trusted_audiences: String,
}

fn lines(s: &str) -> Vec<String> {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

fn opt(s: &str) -> Option<String> {
    Some(s.trim().to_string()).filter(|s| !s.is_empty())
}

async fn create(
    state: web::Data<AppState>,
    s: StaffSession,
    form: web::Form<PlatformForm>,
) -> Result<HttpResponse, PageError> {
    s.check_csrf(&state, &form.csrf)?;
    s.require(EDITORS)?;
    let f = form.into_inner();
    let now = state.now();
    let a = s.actor();
    let policy = DeploymentPolicy::parse(if f.unknown_deployments.is_empty() {
        "reject"
    } else {
        &f.unknown_deployments
    });
    let new = policy.map(|policy| NewPlatform {
        issuer: f.issuer.clone(),
        client_id: f.client_id.clone(),
        name: opt(&f.name),
        auth_url: f.auth_url.clone(),
        token_url: f.token_url.clone(),
        jwks_url: f.jwks_url.clone(),
        audience: opt(&f.audience),
        customer: opt(&f.customer),
        lms: opt(&f.lms),
        unknown_deployments: policy,
        deployment_ids: f
            .deployment_id
            .split([',', '\n'])
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .map(str::to_string)
            .collect(),
        trusted_audiences: lines(&f.trusted_audiences),
    });
    let result = match new {
        Ok(new) => {
            state
                .store
                .write(move |tx| {
                    let (p, _) = core_lti::add_platform(tx, now, new)?;
                    coursegate_core::audit::record(
                        tx,
                        now,
                        &a,
                        "lti.platform.created",
                        Some(("lti_platform", &p.id)),
                        serde_json::json!({ "issuer": p.issuer, "client_id": p.client_id }),
                    )?;
                    Ok::<_, CoreError>(p)
                })
                .await
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(p) => Ok(see_other(&format!("/staff/lms/{}?created=1", p.id))),
        Err(e @ (CoreError::Invalid { .. } | CoreError::Conflict(_))) => {
            // Show the form again with what was typed and the problem.
            let site = state.store.read(coursegate_core::settings::site).await?;
            let mut c = ctx(&state, &s);
            c.insert("site", &site);
            c.insert("form", &f);
            c.insert("error", &e.to_string());
            let mut res = page("pages/staff_lms_new.html", &c)?;
            *res.status_mut() = actix_web::http::StatusCode::BAD_REQUEST;
            Ok(res)
        }
        Err(e) => Err(e.into()),
    }
}

/// How many dead grade updates the platform page lists.
const DEAD_SCORES_SHOWN: usize = 50;

#[derive(Debug, Deserialize)]
struct DetailQuery {
    replayed: Option<usize>,
}

async fn detail(
    state: web::Data<AppState>,
    s: StaffSession,
    id: web::Path<String>,
    q: web::Query<DetailQuery>,
) -> Result<HttpResponse, PageError> {
    s.require(crate::routes::staff_console::READERS)?;
    let id = id.into_inner();
    let (site, p, dead, links, courses) = state
        .store
        .read(move |tx| {
            let p = core_lti::platform_view(tx, &id)?;
            let dead = coursegate_core::ags::dead_scores(tx, &id, DEAD_SCORES_SHOWN)?;
            let links = core_lti::resource_link_views(tx, &p.id, 200)?;
            let courses: Vec<_> = coursegate_core::courses::list(tx)?
                .into_iter()
                .filter(|(c, _)| c.published)
                .map(|(c, _)| serde_json::json!({ "slug": c.slug, "title": c.title }))
                .collect();
            Ok::<_, CoreError>((
                coursegate_core::settings::site(tx)?,
                p,
                dead,
                links,
                courses,
            ))
        })
        .await?;
    let mut c = ctx(&state, &s);
    c.insert("site", &site);
    c.insert("p", &p);
    c.insert("dead_scores", &dead);
    c.insert("dead_scores_shown", &DEAD_SCORES_SHOWN);
    c.insert("replayed", &q.replayed);
    c.insert("links", &links);
    c.insert("courses", &courses);
    page("pages/staff_lms_detail.html", &c)
}

async fn update(
    state: web::Data<AppState>,
    s: StaffSession,
    id: web::Path<String>,
    form: web::Form<PlatformForm>,
) -> Result<HttpResponse, PageError> {
    s.check_csrf(&state, &form.csrf)?;
    s.require(EDITORS)?;
    let id = id.into_inner();
    let f = form.into_inner();
    let policy = DeploymentPolicy::parse(&f.unknown_deployments)?;
    let edit = PlatformEdit {
        name: f.name,
        auth_url: f.auth_url,
        token_url: f.token_url,
        jwks_url: f.jwks_url,
        audience: opt(&f.audience),
        customer: opt(&f.customer),
        lms: opt(&f.lms),
        unknown_deployments: policy,
        active: f.active.is_some(),
        trusted_audiences: lines(&f.trusted_audiences),
    };
    let now = state.now();
    let a = s.actor();
    let i2 = id.clone();
    let saved = state
        .store
        .write(move |tx| core_lti::update_platform(tx, now, &i2, edit, &a))
        .await?;
    // The next launch fetches the keys again (from the new URL if it changed).
    state.lti.forget_platform_keys(&saved.previous_jwks_url);
    state.lti.forget_platform_keys(&saved.platform.jwks_url);
    Ok(see_other(&format!("/staff/lms/{id}?saved=1")))
}

#[derive(Debug, Deserialize)]
pub struct DeploymentForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    deployment_id: String,
    #[serde(default)]
    status: String,
}

async fn add_deployment(
    state: web::Data<AppState>,
    s: StaffSession,
    id: web::Path<String>,
    form: web::Form<DeploymentForm>,
) -> Result<HttpResponse, PageError> {
    s.check_csrf(&state, &form.csrf)?;
    s.require(EDITORS)?;
    let id = id.into_inner();
    let dep = form.deployment_id.clone();
    let now = state.now();
    let a = s.actor();
    let i2 = id.clone();
    state
        .store
        .write(move |tx| {
            coursegate_store::repo::lti::get_platform(tx, &i2)?
                .ok_or(CoreError::NotFound("platform"))?;
            let d = core_lti::add_deployment(tx, now, &i2, &dep, "active")?;
            coursegate_core::audit::record(
                tx,
                now,
                &a,
                "lti.deployment.added",
                Some(("lti_platform", &i2)),
                serde_json::json!({ "deployment_id": d.deployment_id }),
            )?;
            Ok::<_, CoreError>(())
        })
        .await?;
    Ok(see_other(&format!("/staff/lms/{id}")))
}

async fn set_deployment(
    state: web::Data<AppState>,
    s: StaffSession,
    path: web::Path<(String, String)>,
    form: web::Form<DeploymentForm>,
) -> Result<HttpResponse, PageError> {
    s.check_csrf(&state, &form.csrf)?;
    s.require(EDITORS)?;
    let (id, dep) = path.into_inner();
    let status = form.status.clone();
    let now = state.now();
    let a = s.actor();
    let i2 = id.clone();
    state
        .store
        .write(move |tx| core_lti::set_deployment_status(tx, now, &i2, &dep, &status, &a))
        .await?;
    Ok(see_other(&format!("/staff/lms/{id}")))
}

#[derive(Debug, Deserialize)]
pub struct ReplayForm {
    #[serde(default)]
    csrf: String,
    /// One grade update; absent replays every dead one of the platform.
    #[serde(default)]
    outbox_id: Option<String>,
}

/// Requeues dead grade updates of a platform (audited).
async fn replay_scores(
    state: web::Data<AppState>,
    s: StaffSession,
    id: web::Path<String>,
    form: web::Form<ReplayForm>,
) -> Result<HttpResponse, PageError> {
    s.check_csrf(&state, &form.csrf)?;
    s.require(EDITORS)?;
    let id = id.into_inner();
    let one = form.outbox_id.clone().filter(|o| !o.trim().is_empty());
    let now = state.now();
    let a = s.actor();
    let i2 = id.clone();
    let n = state
        .store
        .write(move |tx| coursegate_core::ags::replay_dead_scores(tx, now, &a, &i2, one.as_deref()))
        .await?;
    Ok(see_other(&format!(
        "/staff/lms/{id}?replayed={n}#dead-scores"
    )))
}

#[derive(Debug, Deserialize)]
pub struct LinkForm {
    #[serde(default)]
    csrf: String,
    /// A published course's slug; empty disconnects the link.
    #[serde(default)]
    course: String,
}

/// Connects one of the platform's resource links to a course (or moves or
/// disconnects it).
async fn map_link(
    state: web::Data<AppState>,
    s: StaffSession,
    path: web::Path<(String, String)>,
    form: web::Form<LinkForm>,
) -> Result<HttpResponse, PageError> {
    s.check_csrf(&state, &form.csrf)?;
    s.require(EDITORS)?;
    let (id, link) = path.into_inner();
    let course = opt(&form.course);
    let now = state.now();
    let a = s.actor();
    let i2 = id.clone();
    state
        .store
        .write(move |tx| {
            core_lti::staff_map_resource_link(tx, now, &i2, &link, course.as_deref(), &a)
        })
        .await?;
    Ok(see_other(&format!("/staff/lms/{id}?saved=1#links")))
}
