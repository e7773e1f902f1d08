//! The team: staff members and their roles, and for instructors the courses
//! they are assigned to (instructor scoping). Owners and admins only; every
//! POST checks the CSRF token first and is audited by the core.

use actix_web::{web, HttpResponse};
use coursegate_core::{scope, settings, CoreError};
use serde::Deserialize;

use crate::{
    app::AppState,
    error::PageError,
    extract::{CsrfForm, StaffSession},
    routes::{
        page, see_other,
        staff_console::{paginate_vec, ListQuery, TEAM_EDITORS},
    },
};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/staff/team", web::get().to(team))
        .route("/staff/team/{id}", web::get().to(member))
        .route("/staff/team/{id}/courses", web::post().to(assign))
        .route(
            "/staff/team/{id}/courses/{slug}/remove",
            web::post().to(unassign),
        );
}

async fn team(
    state: web::Data<AppState>,
    s: StaffSession,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, PageError> {
    s.require_to(TEAM_EDITORS, "manage the team")?;
    let (site, mut members) = state
        .store
        .read(|tx| Ok::<_, CoreError>((settings::site(tx)?, scope::team(tx)?)))
        .await?;
    // Email order from the store; by role (then email) on request.
    let sort = match q.sort.as_deref() {
        Some("role") => {
            members.sort_by(|a, b| a.role.cmp(&b.role).then(a.email.cmp(&b.email)));
            "role"
        }
        _ => "email",
    };
    let mut c = crate::routes::staff_console::ctx(&state, &s, &site, "team");
    let members = paginate_vec(&mut c, &q, members);
    c.insert("members", &members);
    c.insert("sort", sort);
    page("pages/staff_team.html", &c)
}

async fn member(
    state: web::Data<AppState>,
    s: StaffSession,
    path: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    s.require_to(TEAM_EDITORS, "manage the team")?;
    let id = path.into_inner();
    let (site, m, all) = state
        .store
        .read(move |tx| {
            let m = scope::team_member(tx, &id)?;
            let all = coursegate_store::repo::console::courses_in(tx, None)?;
            Ok::<_, CoreError>((settings::site(tx)?, m, all))
        })
        .await?;
    let mut c = crate::routes::staff_console::ctx(&state, &s, &site, "team");
    let assignable: Vec<serde_json::Value> = all
        .into_iter()
        .filter(|x| !m.courses.iter().any(|a| a.slug == x.slug))
        .map(|x| serde_json::json!({ "slug": x.slug, "title": x.title }))
        .collect();
    c.insert("assignable", &assignable);
    c.insert("member", &m);
    page("pages/staff_team_member.html", &c)
}

#[derive(Debug, Deserialize)]
pub struct AssignForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub course: String,
}

async fn assign(
    state: web::Data<AppState>,
    s: StaffSession,
    path: web::Path<String>,
    form: web::Form<AssignForm>,
) -> Result<HttpResponse, PageError> {
    s.check_csrf(&state, &form.csrf)?;
    s.require_to(TEAM_EDITORS, "assign courses")?;
    let (now, a, id, course) = (
        state.now(),
        s.actor(),
        path.into_inner(),
        form.course.clone(),
    );
    let sid = id.clone();
    state
        .store
        .write(move |tx| scope::assign(tx, now, &a, &sid, &course))
        .await?;
    Ok(see_other(&format!("/staff/team/{id}")))
}

async fn unassign(
    state: web::Data<AppState>,
    s: StaffSession,
    path: web::Path<(String, String)>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, PageError> {
    s.check_csrf(&state, &form.csrf)?;
    s.require_to(TEAM_EDITORS, "assign courses")?;
    let (id, slug) = path.into_inner();
    let (now, a, sid) = (state.now(), s.actor(), id.clone());
    state
        .store
        .write(move |tx| scope::unassign(tx, now, &a, &sid, &slug))
        .await?;
    Ok(see_other(&format!("/staff/team/{id}")))
}
