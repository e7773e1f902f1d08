//! Minimal staff pages for the link door: find a learner, enrol them, issue /
//! resend / revoke their link (the URL is shown once), see each link's
//! status, and preview as the learner in a separate read-only session.

use actix_web::{cookie::Cookie, web, HttpResponse};
use coursegate_core::{
    audit::Actor,
    courses::LinkPolicy,
    enrolments::{self, Grant, Source},
    learners::{self, IdentityRef},
    links::{self, IssueLearner, SendOptions},
    scope::Scope,
    sessions::{self, Destination, StartLearner},
    settings,
    types::Email,
    CoreError,
};
use coursegate_store::repo::{self, learners::LearnerSort};
use serde::{Deserialize, Serialize};

use crate::routes::staff_console::{ENROLLERS, READERS};
use crate::{
    app::AppState,
    error::PageError,
    extract::{StaffSession, PREVIEW_COOKIE},
    routes::{page, see_other},
};

const PER_PAGE: i64 = 25;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/staff", web::get().to(home))
        .route("/staff/learners", web::post().to(enrol_new))
        .route("/staff/learners/{id}", web::get().to(learner))
        .route("/staff/learners/{id}/enrol", web::post().to(enrol))
        .route("/staff/learners/{id}/links", web::post().to(issue))
        .route("/staff/learners/{id}/preview", web::post().to(preview))
        .route("/staff/links/{id}/revoke", web::post().to(revoke))
        .route("/preview/end", web::post().to(end_preview));
}

fn ctx(state: &AppState, s: &StaffSession, site: &settings::Site) -> tera::Context {
    crate::routes::staff_console::ctx(state, s, site, "learners")
}

#[derive(Debug, Deserialize)]
pub struct Search {
    #[serde(default)]
    pub q: String,
    #[serde(default)]
    pub page: Option<i64>,
    #[serde(default)]
    pub sort: Option<String>,
}

fn learner_sort(s: Option<&str>) -> (LearnerSort, &'static str) {
    match s {
        Some("oldest") => (LearnerSort::OldestFirst, "oldest"),
        Some("email") => (LearnerSort::EmailAsc, "email"),
        Some("email_desc") => (LearnerSort::EmailDesc, "email_desc"),
        _ => (LearnerSort::NewestFirst, "newest"),
    }
}

fn course_opts(tx: &mut coursegate_core::Tx, scope: &Scope) -> Result<Vec<CourseOpt>, CoreError> {
    Ok(scope
        .courses(tx)?
        .into_iter()
        .map(|c| CourseOpt {
            slug: c.slug,
            title: c.title,
        })
        .collect())
}

#[derive(Debug, Serialize)]
struct CourseOpt {
    slug: String,
    title: String,
}

async fn home(
    state: web::Data<AppState>,
    s: StaffSession,
    q: web::Query<Search>,
) -> Result<HttpResponse, PageError> {
    s.require(READERS)?;
    let query = q.q.trim().to_string();
    let pg = q.page.unwrap_or(1).max(1);
    let (sort, sort_name) = learner_sort(q.sort.as_deref());
    let scope = s.scope.clone();
    let (site, found, courses) = state
        .store
        .read(move |tx| {
            // An instructor finds only learners enrolled in their courses.
            let found = repo::learners::search_in(
                tx,
                Some(&query),
                scope.only(),
                sort,
                repo::Page {
                    limit: PER_PAGE + 1,
                    offset: (pg - 1) * PER_PAGE,
                },
            )?;
            let courses = course_opts(tx, &scope)?;
            Ok::<_, CoreError>((settings::site(tx)?, found, courses))
        })
        .await?;
    let mut c = ctx(&state, &s, &site);
    c.insert("q", &q.q);
    c.insert("sort", sort_name);
    let more = found.len() as i64 > PER_PAGE;
    c.insert(
        "pager",
        &serde_json::json!({
            "page": pg,
            "prev": if pg > 1 { Some(pg - 1) } else { None },
            "next": if more { Some(pg + 1) } else { None },
        }),
    );
    c.insert(
        "learners",
        &found
            .iter()
            .take(PER_PAGE as usize)
            .map(|l| serde_json::json!({ "id": l.id, "email": l.email, "name": l.name }))
            .collect::<Vec<_>>(),
    );
    c.insert("courses", &courses);
    page("pages/staff_home.html", &c)
}

#[derive(Debug, Deserialize)]
pub struct EnrolForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub course: String,
}

async fn enrol_new(
    state: web::Data<AppState>,
    s: StaffSession,
    form: web::Form<EnrolForm>,
) -> Result<HttpResponse, PageError> {
    s.check_csrf(&state, &form.csrf)?;
    s.require_to(ENROLLERS, "enrol learners")?;
    let email = Email::parse(&form.email)?;
    let name = coursegate_core::types::parse_name("name", Some(&form.name))?;
    let course = form.course.clone();
    if course.is_empty() && s.scope.is_scoped() {
        return Err(
            CoreError::invalid("course", "choose one of your courses to enrol them in").into(),
        );
    }
    let now = state.now();
    let (a, scope) = (s.actor(), s.scope.clone());
    let id = state
        .store
        .write(move |tx| {
            if !course.is_empty() {
                scope.course(tx, &course)?;
            }
            let l =
                learners::upsert_by_email(tx, now, &email, name.as_deref(), None, false)?.learner;
            if !course.is_empty() {
                grant(tx, now, &a, &scope, &l.id, &course)?;
            }
            Ok::<_, CoreError>(l.id)
        })
        .await?;
    Ok(see_other(&format!("/staff/learners/{id}")))
}

fn grant(
    tx: &mut coursegate_core::Tx,
    now: chrono::DateTime<chrono::Utc>,
    a: &Actor,
    scope: &Scope,
    learner_id: &str,
    slug: &str,
) -> Result<(), CoreError> {
    let c = scope.course(tx, slug)?;
    let g = enrolments::grant(
        tx,
        now,
        Grant {
            learner_id: learner_id.to_string(),
            course_id: c.id,
            source: Source::Staff,
            source_ref: None,
            starts_at: None,
            expires_at: None,
        },
    )?;
    coursegate_core::audit::record(
        tx,
        now,
        a,
        "enrolment.granted",
        Some(("enrolment", &g.enrolment.id)),
        serde_json::json!({ "course": slug }),
    )
}

async fn enrol(
    state: web::Data<AppState>,
    s: StaffSession,
    path: web::Path<String>,
    form: web::Form<EnrolForm>,
) -> Result<HttpResponse, PageError> {
    s.check_csrf(&state, &form.csrf)?;
    s.require_to(ENROLLERS, "enrol learners")?;
    let id = path.into_inner();
    let (now, a, lid, course) = (state.now(), s.actor(), id.clone(), form.course.clone());
    let scope = s.scope.clone();
    state
        .store
        .write(move |tx| {
            learners::get(tx, &lid)?;
            scope.check_learner(tx, &lid)?;
            grant(tx, now, &a, &scope, &lid, &course)
        })
        .await?;
    Ok(see_other(&format!("/staff/learners/{id}")))
}

async fn learner(
    state: web::Data<AppState>,
    s: StaffSession,
    path: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    s.require(READERS)?;
    let id = path.into_inner();
    let now = state.now();
    let settings_ = state.config.links;
    let scope = s.scope.clone();
    let (site, l, ens, statuses, courses, extra) = state
        .store
        .read(move |tx| {
            let l = learners::get(tx, &id)?;
            scope.check_learner(tx, &id)?;
            // An instructor sees only the enrolments in their courses.
            let ens: Vec<serde_json::Value> = repo::enrolments::of_learner(tx, &id)?
                .into_iter()
                .filter(|(e, _)| scope.allows(&e.course_id))
                .map(|(e, c)| {
                    let ok = coursegate_core::access::check(&c, Some(&e), now);
                    serde_json::json!({
                        "id": e.id, "expires_at": e.expires_at.map(|t| t.format("%Y-%m-%d").to_string()),
                        "source": e.source,
                        "course": c.slug, "title": c.title, "policy": c.link_policy,
                        "state": match ok { Ok(()) => "active".to_string(), Err(d) => d.code().to_string() },
                    })
                })
                .collect();
            let courses = course_opts(tx, &scope)?;
            let st: Vec<links::LinkStatus> = links::statuses(tx, now, &settings_, &id)?
                .into_iter()
                .filter(|l| {
                    !scope.is_scoped()
                        || l.course.as_ref().is_some_and(|c| courses.iter().any(|o| &o.slug == c))
                })
                .collect();
            let extra = coursegate_core::console::learner_activity(tx, now, &scope, &id)?;
            Ok::<_, CoreError>((settings::site(tx)?, l, ens, st, courses, extra))
        })
        .await?;
    let mut c = ctx(&state, &s, &site);
    c.insert("identities", &extra.0);
    c.insert("sessions", &extra.1);
    c.insert("audit", &extra.2);
    c.insert(
        "learner",
        &serde_json::json!({ "id": l.id, "email": l.email, "name": l.name }),
    );
    c.insert("enrolments", &ens);
    c.insert("links", &statuses);
    c.insert("courses", &courses);
    page("pages/staff_learner.html", &c)
}

#[derive(Debug, Deserialize)]
pub struct IssueForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub course: String,
    /// "" (course policy) | access | once
    #[serde(default)]
    pub kind: String,
    /// "1" to email it
    #[serde(default)]
    pub send: String,
}

async fn issue(
    state: web::Data<AppState>,
    s: StaffSession,
    path: web::Path<String>,
    form: web::Form<IssueForm>,
) -> Result<HttpResponse, PageError> {
    s.check_csrf(&state, &form.csrf)?;
    s.require_to(ENROLLERS, "issue links")?;
    if form.course.is_empty() && s.scope.is_scoped() {
        return Err(CoreError::invalid(
            "course",
            "choose one of your courses; a dashboard link opens every course of the learner",
        )
        .into());
    }
    let id = path.into_inner();
    let kind = match form.kind.as_str() {
        "" => None,
        k => Some(LinkPolicy::parse(k)?),
    };
    let destination = if form.course.is_empty() {
        Destination::Dashboard
    } else {
        Destination::Course {
            slug: form.course.clone(),
        }
    };
    let send = (form.send == "1").then(|| SendOptions {
        base_url: state.config.url(""),
        reference: None,
        code_for_browser: None,
    });
    let sent = send.is_some();
    let (now, a, secret, settings_) = (
        state.now(),
        s.actor(),
        state.config.secret.clone(),
        state.config.links,
    );
    let (lid, scope, course) = (id.clone(), s.scope.clone(), form.course.clone());
    let (site, issued) = state
        .store
        .write(move |tx| {
            scope.check_learner(tx, &lid)?;
            if !course.is_empty() {
                scope.course(tx, &course)?;
            }
            let i = links::issue_learner(
                tx,
                now,
                &secret,
                &settings_,
                &a,
                IssueLearner {
                    learner_id: lid,
                    destination,
                    kind,
                    send,
                },
            )?;
            Ok::<_, CoreError>((settings::site(tx)?, i))
        })
        .await?;
    let mut c = ctx(&state, &s, &site);
    c.insert("url", &state.config.url(&issued.path()));
    c.insert("kind", &issued.link.kind);
    c.insert("sent", &sent);
    c.insert("learner_id", &id);
    page("pages/staff_link_issued.html", &c)
}

pub use crate::extract::CsrfForm;

async fn revoke(
    state: web::Data<AppState>,
    s: StaffSession,
    path: web::Path<String>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, PageError> {
    s.check_csrf(&state, &form.csrf)?;
    s.require_to(ENROLLERS, "revoke links")?;
    let id = path.into_inner();
    let (now, a, scope) = (state.now(), s.actor(), s.scope.clone());
    let link = state
        .store
        .write(move |tx| {
            if scope.is_scoped() {
                // Only a link to one of the instructor's enrolments.
                let l = repo::links::get(tx, &id)?.ok_or(CoreError::NotFound("link"))?;
                match l.enrolment_id.as_deref() {
                    Some(e) if l.purpose == "learner" => {
                        scope.enrolment(tx, e)?;
                    }
                    _ => {
                        return Err(CoreError::OutOfScope {
                            code: "learner_out_of_scope",
                            message: "This link is not for an enrolment in your courses.".into(),
                        })
                    }
                }
            }
            links::revoke(tx, now, &id, &a)
        })
        .await?;
    Ok(see_other(&format!("/staff/learners/{}", link.subject_id)))
}

async fn preview(
    state: web::Data<AppState>,
    s: StaffSession,
    path: web::Path<String>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, PageError> {
    s.check_csrf(&state, &form.csrf)?;
    s.require(READERS)?;
    let id = path.into_inner();
    let (now, secret, mut policy) = (
        state.now(),
        state.config.secret.clone(),
        state.config.sessions,
    );
    // A preview lives no longer than a staff session.
    policy.learner_idle = policy.staff_idle;
    policy.learner_absolute = policy.staff_absolute;
    let actor = s.actor();
    let client = s.client.clone();
    if s.scope.is_scoped() {
        // The preview shows every course of the learner, not only theirs.
        return Err(PageError::new(
            actix_web::http::StatusCode::FORBIDDEN,
            "forbidden",
            "Your role (instructor) cannot preview as a learner: the preview shows courses that are not yours.",
        ));
    }
    let started = state
        .store
        .write(move |tx| {
            let st = sessions::start_learner_session(
                tx,
                now,
                &secret,
                &policy,
                StartLearner {
                    identity: IdentityRef::Learner {
                        learner_id: id.clone(),
                    },
                    destination: Destination::Dashboard,
                    via: "preview".into(),
                    client,
                },
            )?;
            coursegate_core::audit::record(
                tx,
                now,
                &actor,
                "learner.previewed",
                Some(("learner", &id)),
                serde_json::json!({ "session_id": st.session_id }),
            )?;
            Ok::<_, CoreError>(st)
        })
        .await?;
    let mut res = see_other("/");
    res.add_cookie(
        &Cookie::build(PREVIEW_COOKIE, started.token.clone())
            .path("/")
            .http_only(true)
            .secure(state.config.secure_cookies())
            .same_site(actix_web::cookie::SameSite::Lax)
            .finish(),
    )
    .map_err(|e| PageError::from(CoreError::Internal(e.to_string())))?;
    Ok(res)
}

/// Ends the preview session on the server and drops its cookie; the staff
/// session is left as it is.
async fn end_preview(
    state: web::Data<AppState>,
    session: crate::extract::LearnerSession,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, PageError> {
    if !session.preview {
        return Err(PageError::new(
            actix_web::http::StatusCode::BAD_REQUEST,
            "not_previewing",
            "There is no learner preview to end.",
        ));
    }
    session.check_csrf(&state, &form.csrf)?;
    let now = state.now();
    let sid = session.session_id.clone();
    state
        .store
        .write(move |tx| sessions::end(tx, now, &sid))
        .await?;
    preview_ended()
}

/// The redirect back to the staff pages that clears the preview cookie.
pub(crate) fn preview_ended() -> Result<HttpResponse, PageError> {
    let mut res = see_other("/staff");
    let mut c = Cookie::build(PREVIEW_COOKIE, "").path("/").finish();
    c.make_removal();
    res.add_cookie(&c)
        .map_err(|e| PageError::from(CoreError::Internal(e.to_string())))?;
    Ok(res)
}
