//! The staff console: dashboard, courses and the lesson editor, enrolment
//! changes (one at a time and in bulk), learner sessions, the audit log with
//! CSV export, and site settings. Every route checks the role, GETs
//! included; every POST checks the CSRF token first.

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use coursegate_core::{
    audit::Actor,
    console::{self, CourseForm},
    content, enrolments,
    scope::Scope,
    sessions,
    settings::{self, Site},
    CoreError,
};
use coursegate_store::repo::{
    self,
    audit::AuditFilter,
    console::{CourseSort, OutboxView},
};
use serde::Deserialize;

use crate::{
    app::AppState,
    error::PageError,
    extract::{clear_session_cookie, StaffSession},
    routes::{page, see_other},
};

/// Every staff role may look.
pub const READERS: &[&str] = &["owner", "admin", "instructor", "support"];
/// Who may change courses and lessons.
pub const COURSE_EDITORS: &[&str] = &["owner", "admin", "instructor"];
/// Who may sign learners out everywhere.
pub const LEARNER_EDITORS: &[&str] = &["owner", "admin", "support"];
/// Who may grant, extend and revoke enrolments, issue links and invite
/// (an instructor only within their assigned courses).
pub const ENROLLERS: &[&str] = &["owner", "admin", "support", "instructor"];
/// Who may see the team and assign courses to instructors.
pub const TEAM_EDITORS: &[&str] = &["owner", "admin"];
/// Who may read the audit log.
pub const AUDITORS: &[&str] = &["owner", "admin", "support"];
/// Who may see the outbox; who may retry a dead message.
pub const OUTBOX_READERS: &[&str] = &["owner", "admin", "support"];
pub const OUTBOX_EDITORS: &[&str] = &["owner", "admin"];
/// Who may see and change site settings.
pub const SETTINGS_EDITORS: &[&str] = &["owner", "admin"];

const PER_PAGE: i64 = 25;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/staff/dashboard", web::get().to(dashboard))
        .route("/staff/signout", web::post().to(signout))
        .route("/staff/courses", web::get().to(courses))
        .route("/staff/courses", web::post().to(create_course))
        .route("/staff/courses/new", web::get().to(new_course))
        .route("/staff/courses/{slug}", web::get().to(edit_course))
        .route("/staff/courses/{slug}", web::post().to(update_course))
        .route("/staff/courses/{slug}/lessons", web::post().to(add_lesson))
        .route(
            "/staff/courses/{slug}/lessons/new",
            web::get().to(new_lesson),
        )
        .route(
            "/staff/courses/{slug}/lessons/{id}",
            web::get().to(edit_lesson),
        )
        .route(
            "/staff/courses/{slug}/lessons/{id}",
            web::post().to(save_lesson),
        )
        .route(
            "/staff/courses/{slug}/lessons/{id}/move",
            web::post().to(move_lesson),
        )
        .route(
            "/staff/courses/{slug}/lessons/{id}/delete",
            web::post().to(delete_lesson),
        )
        .route(
            "/staff/learners/{id}/sessions/revoke",
            web::post().to(revoke_sessions),
        )
        .route(
            "/staff/enrolments/{id}/revoke",
            web::post().to(revoke_enrolment),
        )
        .route(
            "/staff/enrolments/{id}/extend",
            web::post().to(extend_enrolment),
        )
        .route("/staff/enrolments/bulk", web::post().to(bulk_enrolments))
        .route("/staff/invitations", web::get().to(invitations))
        .route(
            "/staff/invitations/preview",
            web::post().to(invitations_preview),
        )
        .route("/staff/invitations/send", web::post().to(invitations_send))
        .route(
            "/staff/invitations/batches/{id}",
            web::get().to(invitation_batch),
        )
        .route("/staff/outbox", web::get().to(outbox))
        .route("/staff/outbox/{id}", web::get().to(outbox_message))
        .route("/staff/outbox/{id}/retry", web::post().to(retry_outbox))
        .route("/staff/audit", web::get().to(audit))
        .route("/staff/audit.csv", web::get().to(audit_csv))
        .route("/staff/settings", web::get().to(settings_page))
        .route("/staff/settings", web::post().to(save_settings));
}

/// The context every console page gets: site, staff, CSRF token, the
/// current section for the navigation, and what this role may do.
pub fn ctx(state: &AppState, s: &StaffSession, site: &Site, section: &str) -> tera::Context {
    let mut c = tera::Context::new();
    c.insert("site", site);
    c.insert("staff_csrf", &s.csrf(state));
    c.insert("staff_email", &s.email);
    c.insert("staff_role", &s.role);
    c.insert("section", section);
    let r = s.role.as_str();
    c.insert("can_edit_courses", &COURSE_EDITORS.contains(&r));
    c.insert("can_edit_learners", &LEARNER_EDITORS.contains(&r));
    c.insert("can_enrol", &ENROLLERS.contains(&r));
    c.insert("can_team", &TEAM_EDITORS.contains(&r));
    c.insert("scoped", &s.scope.is_scoped());
    c.insert("scope_empty", &s.scope.is_empty());
    c.insert("can_audit", &AUDITORS.contains(&r));
    c.insert("can_settings", &SETTINGS_EDITORS.contains(&r));
    c.insert("can_outbox", &OUTBOX_READERS.contains(&r));
    c.insert("can_retry", &OUTBOX_EDITORS.contains(&r));
    c
}

/// `?page=N&sort=…` on lists.
#[derive(Debug, Deserialize, Default)]
pub struct ListQuery {
    #[serde(default)]
    pub page: Option<i64>,
    #[serde(default)]
    pub sort: Option<String>,
}

impl ListQuery {
    fn page(&self) -> i64 {
        self.page.unwrap_or(1).max(1)
    }

    fn store_page(&self) -> repo::Page {
        repo::Page {
            limit: PER_PAGE + 1,
            offset: (self.page() - 1) * PER_PAGE,
        }
    }
}

/// Trims the look-ahead row and puts `pager` into the context.
fn paginate<T>(c: &mut tera::Context, q: &ListQuery, mut rows: Vec<T>) -> Vec<T> {
    let more = rows.len() as i64 > PER_PAGE;
    rows.truncate(PER_PAGE as usize);
    let p = q.page();
    c.insert(
        "pager",
        &serde_json::json!({
            "page": p,
            "prev": if p > 1 { Some(p - 1) } else { None },
            "next": if more { Some(p + 1) } else { None },
        }),
    );
    rows
}

/// Pages a list already held in memory (short lists: the team, LMS
/// platforms) the same way as the store pages the long ones.
pub fn paginate_vec<T>(c: &mut tera::Context, q: &ListQuery, rows: Vec<T>) -> Vec<T> {
    let pg = q.store_page();
    let rows: Vec<T> = rows
        .into_iter()
        .skip(usize::try_from(pg.offset).unwrap_or(0))
        .take(usize::try_from(pg.limit).unwrap_or(0))
        .collect();
    paginate(c, q, rows)
}

pub use crate::extract::CsrfForm;

async fn signout(
    state: web::Data<AppState>,
    s: StaffSession,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, PageError> {
    s.check_csrf(&state, &form.csrf)?;
    s.require(READERS)?;
    let (now, sid) = (state.now(), s.session_id.clone());
    state
        .store
        .write(move |tx| sessions::end(tx, now, &sid))
        .await?;
    let mut res = see_other("/staff/signin");
    res.add_cookie(&clear_session_cookie(&state))
        .map_err(|e| PageError::from(CoreError::Internal(e.to_string())))?;
    Ok(res)
}

// ---------------------------------------------------------------- dashboard

async fn dashboard(state: web::Data<AppState>, s: StaffSession) -> Result<HttpResponse, PageError> {
    s.require(READERS)?;
    let (now, scope) = (state.now(), s.scope.clone());
    let (site, d) = state
        .store
        .read(move |tx| {
            Ok::<_, CoreError>((settings::site(tx)?, console::dashboard(tx, now, &scope)?))
        })
        .await?;
    let mut c = ctx(&state, &s, &site, "dashboard");
    c.insert("d", &d);
    page("pages/staff_dashboard.html", &c)
}

// ---------------------------------------------------------------- courses

fn course_sort(s: Option<&str>) -> (CourseSort, &'static str) {
    match s {
        Some("title_desc") => (CourseSort::TitleDesc, "title_desc"),
        Some("newest") => (CourseSort::NewestFirst, "newest"),
        Some("oldest") => (CourseSort::OldestFirst, "oldest"),
        _ => (CourseSort::TitleAsc, "title"),
    }
}

async fn courses(
    state: web::Data<AppState>,
    s: StaffSession,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, PageError> {
    s.require(READERS)?;
    let (sort, sort_name) = course_sort(q.sort.as_deref());
    let (pg, scope) = (q.store_page(), s.scope.clone());
    let (site, rows) = state
        .store
        .read(move |tx| {
            let mut rows = Vec::new();
            for c in repo::console::courses_page(tx, sort, scope.only(), pg)? {
                let n = repo::console::lesson_count(tx, &c.id)?;
                rows.push(serde_json::json!({
                    "slug": c.slug, "title": c.title, "published": c.published,
                    "graded": c.graded, "link_policy": c.link_policy,
                    "default_access_days": c.default_access_days, "lessons": n,
                }));
            }
            Ok::<_, CoreError>((settings::site(tx)?, rows))
        })
        .await?;
    let mut c = ctx(&state, &s, &site, "courses");
    let rows = paginate(&mut c, &q, rows);
    c.insert("courses", &rows);
    c.insert("sort", sort_name);
    page("pages/staff_courses.html", &c)
}

#[derive(Debug, Deserialize, Default)]
pub struct CourseFormData {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub slug: String,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub summary: String,
    #[serde(default)]
    pub published: Option<String>,
    #[serde(default)]
    pub graded: Option<String>,
    #[serde(default)]
    pub link_policy: String,
    #[serde(default)]
    pub default_access_days: String,
}

impl CourseFormData {
    fn core(&self) -> CourseForm {
        CourseForm {
            title: self.title.clone(),
            summary: self.summary.clone(),
            published: self.published.is_some(),
            graded: self.graded.is_some(),
            link_policy: self.link_policy.clone(),
            default_access_days: self.default_access_days.clone(),
        }
    }

    fn view(&self) -> serde_json::Value {
        serde_json::json!({
            "slug": self.slug, "title": self.title, "summary": self.summary,
            "published": self.published.is_some(), "graded": self.graded.is_some(),
            "link_policy": if self.link_policy.is_empty() { "access" } else { self.link_policy.as_str() },
            "default_access_days": self.default_access_days,
        })
    }
}

/// Shows a form again with the reason it was refused (status 400 or 409).
fn form_error(
    template: &str,
    mut c: tera::Context,
    e: CoreError,
) -> Result<HttpResponse, PageError> {
    let pe = PageError::from(e);
    if pe.status.is_server_error() || pe.status == actix_web::http::StatusCode::NOT_FOUND {
        return Err(pe);
    }
    c.insert("error", &pe.detail);
    c.insert("error_code", &pe.code);
    let mut res = page(template, &c)?;
    *res.status_mut() = pe.status;
    res.headers_mut().insert(
        actix_web::http::header::HeaderName::from_static("x-error-code"),
        actix_web::http::header::HeaderValue::from_str(&pe.code).unwrap_or(
            actix_web::http::header::HeaderValue::from_static("invalid_input"),
        ),
    );
    Ok(res)
}

async fn new_course(
    state: web::Data<AppState>,
    s: StaffSession,
) -> Result<HttpResponse, PageError> {
    s.require_to(COURSE_EDITORS, "create courses")?;
    let site = state.store.read(settings::site).await?;
    let mut c = ctx(&state, &s, &site, "courses");
    c.insert("course", &CourseFormData::default().view());
    c.insert("is_new", &true);
    page("pages/staff_course_form.html", &c)
}

async fn create_course(
    state: web::Data<AppState>,
    s: StaffSession,
    form: web::Form<CourseFormData>,
) -> Result<HttpResponse, PageError> {
    s.check_csrf(&state, &form.csrf)?;
    s.require_to(COURSE_EDITORS, "create courses")?;
    let (now, a, slug, f) = (state.now(), s.actor(), form.slug.clone(), form.core());
    let scope = s.scope.clone();
    let r = state
        .store
        .write(move |tx| console::create_course(tx, now, &a, &scope, &slug, f))
        .await;
    match r {
        Ok(course) => Ok(see_other(&format!("/staff/courses/{}", course.slug))),
        Err(e) => {
            let site = state.store.read(settings::site).await?;
            let mut c = ctx(&state, &s, &site, "courses");
            c.insert("course", &form.view());
            c.insert("is_new", &true);
            form_error("pages/staff_course_form.html", c, e)
        }
    }
}

async fn course_page(
    state: &AppState,
    s: &StaffSession,
    slug: String,
    form: Option<&CourseFormData>,
) -> Result<tera::Context, PageError> {
    let scope = s.scope.clone();
    let (site, course, lessons) = state
        .store
        .read(move |tx| {
            let c = scope.course(tx, &slug)?;
            let l = repo::console::lessons_of(tx, &c.id)?;
            Ok::<_, CoreError>((settings::site(tx)?, c, l))
        })
        .await?;
    let mut c = ctx(state, s, &site, "courses");
    let view = match form {
        Some(f) => {
            let mut v = f.view();
            v["slug"] = serde_json::json!(course.slug);
            v
        }
        None => serde_json::json!({
            "slug": course.slug, "title": course.title, "summary": course.summary,
            "published": course.published, "graded": course.graded,
            "link_policy": course.link_policy,
            "default_access_days": course.default_access_days.map(|d| d.to_string()).unwrap_or_default(),
        }),
    };
    c.insert("course", &view);
    c.insert("course_title", &course.title);
    c.insert(
        "lessons",
        &lessons
            .iter()
            .map(|l| serde_json::json!({ "id": l.id, "title": l.title, "position": l.position }))
            .collect::<Vec<_>>(),
    );
    c.insert("is_new", &false);
    Ok(c)
}

async fn edit_course(
    state: web::Data<AppState>,
    s: StaffSession,
    path: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    s.require(READERS)?;
    let c = course_page(&state, &s, path.into_inner(), None).await?;
    page("pages/staff_course_form.html", &c)
}

async fn update_course(
    state: web::Data<AppState>,
    s: StaffSession,
    path: web::Path<String>,
    form: web::Form<CourseFormData>,
) -> Result<HttpResponse, PageError> {
    s.check_csrf(&state, &form.csrf)?;
    s.require_to(COURSE_EDITORS, "change courses")?;
    let slug = path.into_inner();
    let (now, a, sl, f) = (state.now(), s.actor(), slug.clone(), form.core());
    let scope = s.scope.clone();
    let r = state
        .store
        .write(move |tx| console::update_course(tx, now, &a, &scope, &sl, f))
        .await;
    match r {
        Ok(_) => Ok(see_other(&format!("/staff/courses/{slug}?saved=1"))),
        Err(e) => {
            let c = course_page(&state, &s, slug, Some(&form)).await?;
            form_error("pages/staff_course_form.html", c, e)
        }
    }
}

// ---------------------------------------------------------------- lessons

#[derive(Debug, Deserialize, Default)]
pub struct LessonForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub body: String,
    /// "preview" shows the rendered body without saving.
    #[serde(default)]
    pub action: String,
}

async fn lesson_ctx(
    state: &AppState,
    s: &StaffSession,
    slug: String,
    lesson_id: Option<String>,
) -> Result<(tera::Context, String, String), PageError> {
    let scope = s.scope.clone();
    let (site, course, lesson) = state
        .store
        .read(move |tx| {
            let c = scope.course(tx, &slug)?;
            let l = match lesson_id {
                Some(id) => Some(
                    repo::courses::get_lesson(tx, &id)?
                        .filter(|l| l.course_id == c.id)
                        .ok_or(CoreError::NotFound("lesson"))?,
                ),
                None => None,
            };
            Ok::<_, CoreError>((settings::site(tx)?, c, l))
        })
        .await?;
    let mut c = ctx(state, s, &site, "courses");
    c.insert(
        "course",
        &serde_json::json!({ "slug": course.slug, "title": course.title }),
    );
    c.insert("lesson_id", &lesson.as_ref().map(|l| l.id.clone()));
    let (t, b) = lesson.map(|l| (l.title, l.body)).unwrap_or_default();
    Ok((c, t, b))
}

fn lesson_page(
    mut c: tera::Context,
    title: &str,
    body: &str,
    preview: bool,
) -> Result<HttpResponse, PageError> {
    c.insert("title", title);
    c.insert("body", body);
    if preview {
        // Rendered and sanitised by the core, exactly as learners see it.
        c.insert("preview_html", &content::render_lesson("markdown", body));
    }
    page("pages/staff_lesson_form.html", &c)
}

async fn new_lesson(
    state: web::Data<AppState>,
    s: StaffSession,
    path: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    s.require_to(COURSE_EDITORS, "change lessons")?;
    let (c, t, b) = lesson_ctx(&state, &s, path.into_inner(), None).await?;
    lesson_page(c, &t, &b, false)
}

async fn edit_lesson(
    state: web::Data<AppState>,
    s: StaffSession,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, PageError> {
    s.require(READERS)?;
    let (slug, id) = path.into_inner();
    let (c, t, b) = lesson_ctx(&state, &s, slug, Some(id)).await?;
    lesson_page(c, &t, &b, false)
}

async fn write_lesson(
    state: &AppState,
    s: &StaffSession,
    slug: String,
    id: Option<String>,
    form: &LessonForm,
) -> Result<HttpResponse, PageError> {
    s.check_csrf(state, &form.csrf)?;
    s.require_to(COURSE_EDITORS, "change lessons")?;
    if form.action == "preview" {
        let (c, _, _) = lesson_ctx(state, s, slug, id).await?;
        return lesson_page(c, &form.title, &form.body, true);
    }
    let (now, a, scope) = (state.now(), s.actor(), s.scope.clone());
    let (sl, lid, title, body) = (
        slug.clone(),
        id.clone(),
        form.title.clone(),
        form.body.clone(),
    );
    let r = state
        .store
        .write(move |tx| {
            console::save_lesson(tx, now, &a, &scope, &sl, lid.as_deref(), &title, &body)
        })
        .await;
    match r {
        Ok(_) => Ok(see_other(&format!("/staff/courses/{slug}#lessons"))),
        Err(e) => {
            let (mut c, _, _) = lesson_ctx(state, s, slug, id).await?;
            c.insert("title", &form.title);
            c.insert("body", &form.body);
            form_error("pages/staff_lesson_form.html", c, e)
        }
    }
}

async fn add_lesson(
    state: web::Data<AppState>,
    s: StaffSession,
    path: web::Path<String>,
    form: web::Form<LessonForm>,
) -> Result<HttpResponse, PageError> {
    write_lesson(&state, &s, path.into_inner(), None, &form).await
}

async fn save_lesson(
    state: web::Data<AppState>,
    s: StaffSession,
    path: web::Path<(String, String)>,
    form: web::Form<LessonForm>,
) -> Result<HttpResponse, PageError> {
    let (slug, id) = path.into_inner();
    write_lesson(&state, &s, slug, Some(id), &form).await
}

#[derive(Debug, Deserialize)]
pub struct MoveForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub direction: String,
}

async fn move_lesson(
    state: web::Data<AppState>,
    s: StaffSession,
    path: web::Path<(String, String)>,
    form: web::Form<MoveForm>,
) -> Result<HttpResponse, PageError> {
    s.check_csrf(&state, &form.csrf)?;
    s.require_to(COURSE_EDITORS, "change lessons")?;
    let (slug, id) = path.into_inner();
    let up = match form.direction.as_str() {
        "up" => true,
        "down" => false,
        _ => return Err(PageError::bad_request("direction must be up or down.")),
    };
    let (now, a, sl, scope) = (state.now(), s.actor(), slug.clone(), s.scope.clone());
    state
        .store
        .write(move |tx| console::move_lesson(tx, now, &a, &scope, &sl, &id, up))
        .await?;
    Ok(see_other(&format!("/staff/courses/{slug}#lessons")))
}

async fn delete_lesson(
    state: web::Data<AppState>,
    s: StaffSession,
    path: web::Path<(String, String)>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, PageError> {
    s.check_csrf(&state, &form.csrf)?;
    s.require_to(COURSE_EDITORS, "change lessons")?;
    let (slug, id) = path.into_inner();
    let (now, a, sl, scope) = (state.now(), s.actor(), slug.clone(), s.scope.clone());
    state
        .store
        .write(move |tx| console::delete_lesson(tx, now, &a, &scope, &sl, &id))
        .await?;
    Ok(see_other(&format!("/staff/courses/{slug}#lessons")))
}

// ---------------------------------------------------------------- learners

async fn revoke_sessions(
    state: web::Data<AppState>,
    s: StaffSession,
    path: web::Path<String>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, PageError> {
    s.check_csrf(&state, &form.csrf)?;
    s.require_to(LEARNER_EDITORS, "sign learners out")?;
    let id = path.into_inner();
    let (now, a, lid) = (state.now(), s.actor(), id.clone());
    state
        .store
        .write(move |tx| {
            coursegate_core::learners::get(tx, &lid)?;
            sessions::end_all_for_learner(tx, now, &lid, &a)
        })
        .await?;
    Ok(see_other(&format!("/staff/learners/{id}#sessions")))
}

/// `YYYY-MM-DD` → the end of that day is exclusive: access runs to midnight UTC.
fn parse_day(field: &'static str, s: &str) -> Result<Option<DateTime<Utc>>, CoreError> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    let d = NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|_| CoreError::invalid(field, "must be a date like 2027-01-31"))?;
    Ok(Some(d.and_time(NaiveTime::MIN).and_utc()))
}

fn revoke_one(
    tx: &mut coursegate_core::Tx,
    now: DateTime<Utc>,
    a: &Actor,
    scope: &Scope,
    id: &str,
) -> Result<String, CoreError> {
    scope.enrolment(tx, id)?;
    let e = enrolments::revoke(tx, now, id, Some("staff"))?;
    coursegate_core::audit::record(
        tx,
        now,
        a,
        "enrolment.revoked",
        Some(("enrolment", &e.id)),
        serde_json::json!({ "learner_id": e.learner_id }),
    )?;
    Ok(e.learner_id)
}

fn extend_one(
    tx: &mut coursegate_core::Tx,
    now: DateTime<Utc>,
    a: &Actor,
    scope: &Scope,
    id: &str,
    until: Option<DateTime<Utc>>,
) -> Result<String, CoreError> {
    scope.enrolment(tx, id)?;
    let e = enrolments::extend(tx, now, id, until)?;
    coursegate_core::audit::record(
        tx,
        now,
        a,
        "enrolment.extended",
        Some(("enrolment", &e.id)),
        serde_json::json!({ "learner_id": e.learner_id, "expires_at": until }),
    )?;
    Ok(e.learner_id)
}

async fn revoke_enrolment(
    state: web::Data<AppState>,
    s: StaffSession,
    path: web::Path<String>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, PageError> {
    s.check_csrf(&state, &form.csrf)?;
    s.require_to(ENROLLERS, "change enrolments")?;
    let (now, a, id, scope) = (state.now(), s.actor(), path.into_inner(), s.scope.clone());
    let lid = state
        .store
        .write(move |tx| revoke_one(tx, now, &a, &scope, &id))
        .await?;
    Ok(see_other(&format!("/staff/learners/{lid}#enrolments")))
}

#[derive(Debug, Deserialize)]
pub struct ExtendForm {
    #[serde(default)]
    pub csrf: String,
    /// YYYY-MM-DD, empty = no end.
    #[serde(default)]
    pub until: String,
}

async fn extend_enrolment(
    state: web::Data<AppState>,
    s: StaffSession,
    path: web::Path<String>,
    form: web::Form<ExtendForm>,
) -> Result<HttpResponse, PageError> {
    s.check_csrf(&state, &form.csrf)?;
    s.require_to(ENROLLERS, "change enrolments")?;
    let until = parse_day("until", &form.until)?;
    let (now, a, id, scope) = (state.now(), s.actor(), path.into_inner(), s.scope.clone());
    let lid = state
        .store
        .write(move |tx| extend_one(tx, now, &a, &scope, &id, until))
        .await?;
    Ok(see_other(&format!("/staff/learners/{lid}#enrolments")))
}

/// Bulk revoke or extend: `enrolment=ID` repeated (checkboxes), `op`,
/// `until`, `back` (the learner to return to).
async fn bulk_enrolments(
    state: web::Data<AppState>,
    s: StaffSession,
    body: web::Bytes,
) -> Result<HttpResponse, PageError> {
    let (mut csrf, mut op, mut until, mut back, mut ids) = (
        String::new(),
        String::new(),
        String::new(),
        String::new(),
        Vec::new(),
    );
    for (k, v) in url::form_urlencoded::parse(&body) {
        match k.as_ref() {
            "csrf" => csrf = v.into_owned(),
            "op" => op = v.into_owned(),
            "until" => until = v.into_owned(),
            "back" => back = v.into_owned(),
            "enrolment" => ids.push(v.into_owned()),
            _ => {}
        }
    }
    s.check_csrf(&state, &csrf)?;
    s.require_to(ENROLLERS, "change enrolments")?;
    if ids.is_empty() {
        return Err(PageError::bad_request(
            "Tick at least one enrolment, then choose what to do.",
        ));
    }
    let until = parse_day("until", &until)?;
    let extend = match op.as_str() {
        "revoke" => false,
        "extend" => true,
        _ => return Err(PageError::bad_request("Choose revoke or extend.")),
    };
    let (now, a, scope) = (state.now(), s.actor(), s.scope.clone());
    state
        .store
        .write(move |tx| {
            for id in &ids {
                if extend {
                    extend_one(tx, now, &a, &scope, id, until)?;
                } else {
                    revoke_one(tx, now, &a, &scope, id)?;
                }
            }
            Ok::<_, CoreError>(())
        })
        .await?;
    // Only ever back to a learner page of this console.
    let back = if !back.is_empty() && back.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        format!("/staff/learners/{back}#enrolments")
    } else {
        "/staff".to_string()
    };
    Ok(see_other(&back))
}

// ---------------------------------------------------------------- invitations

async fn invitations(
    state: web::Data<AppState>,
    s: StaffSession,
) -> Result<HttpResponse, PageError> {
    s.require_to(ENROLLERS, "invite learners")?;
    let site = state.store.read(settings::site).await?;
    let mut c = ctx(&state, &s, &site, "invitations");
    c.insert("csv", "");
    page("pages/staff_invitations.html", &c)
}

async fn invitations_preview(
    state: web::Data<AppState>,
    s: StaffSession,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, PageError> {
    let form = crate::upload::read(&req, body).await?;
    s.check_csrf(&state, &form.csrf)?;
    s.require_to(ENROLLERS, "invite learners")?;
    let (text, scope) = (form.csv.clone(), s.scope.clone());
    let (site, p) = state
        .store
        .read(move |tx| {
            Ok::<_, CoreError>((
                settings::site(tx)?,
                coursegate_core::invitations::preview(tx, &text, &scope),
            ))
        })
        .await?;
    let mut c = ctx(&state, &s, &site, "invitations");
    c.insert("csv", &form.csv);
    c.insert("filename", &form.filename);
    match p {
        Ok(p) => {
            c.insert("sheet", &p);
            page("pages/staff_invitations.html", &c)
        }
        Err(e) => form_error("pages/staff_invitations.html", c, e),
    }
}

async fn invitations_send(
    state: web::Data<AppState>,
    s: StaffSession,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, PageError> {
    let form = crate::upload::read(&req, body).await?;
    s.check_csrf(&state, &form.csrf)?;
    s.require_to(ENROLLERS, "invite learners")?;
    let (now, a, text, scope) = (state.now(), s.actor(), form.csv.clone(), s.scope.clone());
    let (secret, links_, base) = (
        state.config.secret.clone(),
        state.config.links,
        state.config.url(""),
    );
    let r = state
        .store
        .write(move |tx| {
            coursegate_core::invitations::send(tx, now, &secret, &links_, &a, &base, &text, &scope)
        })
        .await;
    match r {
        Ok(sent) => Ok(see_other(&format!(
            "/staff/invitations/batches/{}?queued={}&skipped={}",
            sent.batch_id, sent.queued, sent.skipped
        ))),
        Err(e) => {
            let site = state.store.read(settings::site).await?;
            let mut c = ctx(&state, &s, &site, "invitations");
            c.insert("csv", &form.csv);
            form_error("pages/staff_invitations.html", c, e)
        }
    }
}

#[derive(Debug, Deserialize, Default)]
pub struct BatchQuery {
    #[serde(default)]
    pub queued: Option<usize>,
    #[serde(default)]
    pub skipped: Option<usize>,
}

/// Where each email of a sent sheet is: queued, retrying, sent or dead, read
/// from the outbox. While anything is on its way the page refreshes itself
/// every few seconds (`<meta http-equiv=refresh>`, no JavaScript).
async fn invitation_batch(
    state: web::Data<AppState>,
    s: StaffSession,
    path: web::Path<String>,
    q: web::Query<BatchQuery>,
) -> Result<HttpResponse, PageError> {
    s.require_to(ENROLLERS, "invite learners")?;
    let (id, scope, viewer) = (path.into_inner(), s.scope.clone(), s.staff_id.clone());
    let (site, b) = state
        .store
        .read(move |tx| {
            Ok::<_, CoreError>((
                settings::site(tx)?,
                coursegate_core::invitations::batch(tx, &scope, &viewer, &id)?,
            ))
        })
        .await?;
    let mut c = ctx(&state, &s, &site, "invitations");
    c.insert("batch", &b);
    c.insert(
        "just_sent",
        &q.queued
            .map(|n| serde_json::json!({ "queued": n, "skipped": q.skipped.unwrap_or(0) })),
    );
    if b.pending {
        c.insert("refresh_seconds", &5);
    }
    page("pages/staff_invitation_batch.html", &c)
}

// ---------------------------------------------------------------- outbox

#[derive(Debug, Deserialize, Default)]
pub struct OutboxQuery {
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub page: Option<i64>,
    /// newest (default) | oldest
    #[serde(default)]
    pub sort: String,
}

/// `sort=newest|oldest` on the outbox and the audit log.
fn time_sort(s: &str) -> Result<(bool, &'static str), PageError> {
    match s {
        "" | "newest" => Ok((false, "newest")),
        "oldest" => Ok((true, "oldest")),
        _ => Err(PageError::bad_request("sort must be newest or oldest.")),
    }
}

async fn outbox(
    state: web::Data<AppState>,
    s: StaffSession,
    q: web::Query<OutboxQuery>,
) -> Result<HttpResponse, PageError> {
    s.require_to(OUTBOX_READERS, "see the outbox")?;
    let (view, name) = match q.status.as_str() {
        "" | "pending" => (OutboxView::Pending, "pending"),
        "failed" => (OutboxView::Failed, "failed"),
        "dead" => (OutboxView::Dead, "dead"),
        _ => {
            return Err(PageError::bad_request(
                "status must be pending, failed or dead.",
            ))
        }
    };
    let (oldest, sort_name) = time_sort(&q.sort)?;
    let lq = ListQuery {
        page: q.page,
        sort: None,
    };
    let pg = lq.store_page();
    let (site, rows) = state
        .store
        .read(move |tx| {
            Ok::<_, CoreError>((
                settings::site(tx)?,
                repo::console::outbox_page(tx, view, oldest, pg)?,
            ))
        })
        .await?;
    let mut c = ctx(&state, &s, &site, "outbox");
    let rows = paginate(&mut c, &lq, rows);
    let fmt = |t: chrono::NaiveDateTime| t.format("%Y-%m-%d %H:%M:%S").to_string();
    c.insert(
        "messages",
        &rows
            .iter()
            .map(|m| {
                serde_json::json!({
                    "id": m.id, "kind": m.kind, "topic": m.topic, "status": m.status,
                    "attempts": m.attempts, "created_at": fmt(m.created_at),
                    "next_attempt_at": fmt(m.next_attempt_at), "last_error": m.last_error,
                })
            })
            .collect::<Vec<_>>(),
    );
    c.insert("status", name);
    c.insert("sort", sort_name);
    c.insert("pager_qs", &format!("status={name}&sort={sort_name}"));
    page("pages/staff_outbox.html", &c)
}

/// The mail templates the email worker renders with, parsed once.
fn mail_templates() -> Result<&'static coursegate_mail::Templates, PageError> {
    static T: std::sync::OnceLock<Option<coursegate_mail::Templates>> = std::sync::OnceLock::new();
    T.get_or_init(|| coursegate_mail::Templates::embedded().ok())
        .as_ref()
        .ok_or_else(|| PageError::from(CoreError::Internal("email templates do not load".into())))
}

/// One outbox message. An email is rendered as the worker would send it, but
/// with its sign-in link and code hidden; the HTML part is shown in a
/// sandboxed frame (`srcdoc`, empty `sandbox`: no scripts, no forms, no
/// same-origin access), so nothing in it runs.
async fn outbox_message(
    state: web::Data<AppState>,
    s: StaffSession,
    path: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    s.require_to(OUTBOX_READERS, "see the outbox")?;
    let id = path.into_inner();
    let (site, m) = state
        .store
        .read(move |tx| {
            let m = repo::outbox::get(tx, &id)?.ok_or(CoreError::NotFound("message"))?;
            Ok::<_, CoreError>((settings::site(tx)?, m))
        })
        .await?;
    let mut c = ctx(&state, &s, &site, "outbox");
    let fmt = |t: chrono::NaiveDateTime| t.format("%Y-%m-%d %H:%M:%S").to_string();
    let payload: serde_json::Value = serde_json::from_str(&m.payload).unwrap_or_default();
    let status = match (m.status.as_str(), m.attempts) {
        ("pending", 0) => "pending",
        ("pending", _) => "failed",
        (other, _) => other,
    };
    c.insert(
        "m",
        &serde_json::json!({
            "id": m.id, "kind": m.kind, "topic": m.topic, "status": status,
            "attempts": m.attempts, "created_at": fmt(m.created_at),
            "next_attempt_at": fmt(m.next_attempt_at), "last_error": m.last_error,
        }),
    );
    if m.kind == coursegate_core::mailq::KIND_EMAIL {
        let r = coursegate_core::mailq::redacted(&payload);
        let hide = |t: &str| coursegate_core::mailq::blank_secrets(t, &r.secrets);
        let mut mctx = r.payload["context"].clone();
        if let Some(o) = mctx.as_object_mut() {
            o.insert(
                "site".into(),
                serde_json::json!({
                    "name": site.name, "support_email": site.support_email,
                    "support_phone": site.support_phone, "logo_url": site.logo_url,
                    "url": state.config.url(""),
                }),
            );
        }
        let template = r.payload["template"].as_str().unwrap_or("");
        let mail = match mail_templates()?.render(template, &mctx) {
            Ok(x) => serde_json::json!({
                "subject": hide(&x.subject), "text": hide(&x.text), "html": hide(&x.html),
            }),
            Err(e) => serde_json::json!({ "error": hide(&e.to_string()) }),
        };
        c.insert(
            "mail",
            &serde_json::json!({
                "to": r.payload["to"], "to_name": r.payload["to_name"], "template": template,
                "rendered": mail,
            }),
        );
    } else {
        let pretty = serde_json::to_string_pretty(&payload).unwrap_or_default();
        c.insert("payload", &pretty);
    }
    page("pages/staff_outbox_message.html", &c)
}

async fn retry_outbox(
    state: web::Data<AppState>,
    s: StaffSession,
    path: web::Path<String>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, PageError> {
    s.check_csrf(&state, &form.csrf)?;
    s.require_to(OUTBOX_EDITORS, "retry messages")?;
    let (now, a, id) = (state.now(), s.actor(), path.into_inner());
    state
        .store
        .write(move |tx| console::retry_outbox(tx, now, &a, &id))
        .await?;
    Ok(see_other("/staff/outbox?status=dead"))
}

// ---------------------------------------------------------------- audit

#[derive(Debug, Deserialize, Default)]
pub struct AuditQuery {
    #[serde(default)]
    pub actor: String,
    #[serde(default)]
    pub action: String,
    #[serde(default)]
    pub from: String,
    #[serde(default)]
    pub to: String,
    #[serde(default)]
    pub page: Option<i64>,
    /// newest (default) | oldest
    #[serde(default)]
    pub sort: String,
}

impl AuditQuery {
    fn filter(&self) -> Result<AuditFilter, CoreError> {
        let some = |s: &str| Some(s.trim().to_string()).filter(|s| !s.is_empty());
        let actor = some(&self.actor);
        // An actor is a kind (staff, api, cli, system…) or an id.
        let (actor_kind, actor_id) = match actor {
            Some(a) if a.chars().all(|c| c.is_ascii_lowercase()) => (Some(a), None),
            other => (None, other),
        };
        Ok(AuditFilter {
            action: some(&self.action),
            actor_kind,
            actor_id,
            from: parse_day("from", &self.from)?.map(|d| d.naive_utc()),
            until: parse_day("to", &self.to)?.map(|d| (d + chrono::Duration::days(1)).naive_utc()),
            oldest_first: self.sort == "oldest",
            ..Default::default()
        })
    }
}

async fn audit(
    state: web::Data<AppState>,
    s: StaffSession,
    q: web::Query<AuditQuery>,
) -> Result<HttpResponse, PageError> {
    s.require_to(AUDITORS, "read the audit log")?;
    let (_, sort_name) = time_sort(&q.sort)?;
    let filter = q.filter()?;
    let lq = ListQuery {
        page: q.page,
        sort: None,
    };
    let pg = lq.store_page();
    let (site, rows) = state
        .store
        .read(move |tx| {
            Ok::<_, CoreError>((settings::site(tx)?, repo::audit::list(tx, &filter, pg)?))
        })
        .await?;
    let mut c = ctx(&state, &s, &site, "audit");
    let rows = paginate(&mut c, &lq, rows);
    c.insert(
        "entries",
        &rows
            .iter()
            .map(|e| {
                serde_json::json!({
                    "at": e.at.format("%Y-%m-%d %H:%M:%S").to_string(),
                    "actor_kind": e.actor_kind, "actor_id": e.actor_id,
                    "action": e.action, "subject_kind": e.subject_kind,
                    "subject_id": e.subject_id, "detail": e.detail,
                })
            })
            .collect::<Vec<_>>(),
    );
    c.insert(
        "q",
        &serde_json::json!({
            "actor": q.actor, "action": q.action, "from": q.from, "to": q.to, "sort": sort_name,
        }),
    );
    let qs = serde_urlencoded::to_string([
        ("actor", q.actor.as_str()),
        ("action", q.action.as_str()),
        ("from", q.from.as_str()),
        ("to", q.to.as_str()),
        ("sort", sort_name),
    ])
    .unwrap_or_default();
    c.insert("qs", &qs);
    page("pages/staff_audit.html", &c)
}

async fn audit_csv(
    state: web::Data<AppState>,
    s: StaffSession,
    q: web::Query<AuditQuery>,
) -> Result<HttpResponse, PageError> {
    s.require_to(AUDITORS, "read the audit log")?;
    let filter = q.filter()?;
    let rows = state
        .store
        .read(move |tx| {
            Ok::<_, CoreError>(repo::audit::list(
                tx,
                &filter,
                repo::Page {
                    limit: 100_000,
                    offset: 0,
                },
            )?)
        })
        .await?;
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header(("Content-Disposition", "attachment; filename=\"audit.csv\""))
        .insert_header(("Cache-Control", "no-store"))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .body(console::audit_csv(&rows)))
}

// ---------------------------------------------------------------- settings

#[derive(Debug, Deserialize, Default)]
pub struct SettingsForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub support_email: String,
    #[serde(default)]
    pub support_phone: String,
    #[serde(default)]
    pub logo_url: String,
}

async fn settings_page(
    state: web::Data<AppState>,
    s: StaffSession,
) -> Result<HttpResponse, PageError> {
    s.require_to(SETTINGS_EDITORS, "change site settings")?;
    let site = state.store.read(settings::site).await?;
    let mut c = ctx(&state, &s, &site, "settings");
    c.insert("form", &site);
    page("pages/staff_settings.html", &c)
}

async fn save_settings(
    state: web::Data<AppState>,
    s: StaffSession,
    form: web::Form<SettingsForm>,
) -> Result<HttpResponse, PageError> {
    s.check_csrf(&state, &form.csrf)?;
    s.require_to(SETTINGS_EDITORS, "change site settings")?;
    let f = form.into_inner();
    let site = Site {
        name: f.name,
        support_email: f.support_email,
        support_phone: f.support_phone,
        logo_url: f.logo_url,
    };
    let (now, a, attempt) = (state.now(), s.actor(), site.clone());
    let r = state
        .store
        .write(move |tx| console::save_site(tx, now, &a, attempt))
        .await;
    match r {
        Ok(_) => Ok(see_other("/staff/settings?saved=1")),
        Err(e) => {
            let current = state.store.read(settings::site).await?;
            let mut c = ctx(&state, &s, &current, "settings");
            c.insert("form", &site);
            form_error("pages/staff_settings.html", c, e)
        }
    }
}
