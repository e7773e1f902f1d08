//! Learner pages: dashboard, course, lesson, mark complete, sign out.

use actix_web::{web, HttpResponse};
use coursegate_core::{enrolments, learners, sessions, settings};

use crate::{
    app::AppState,
    error::PageError,
    extract::{clear_session_cookie, LearnerSession, MaybeLearner},
    routes::{page, see_other},
};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(dashboard))
        .route("/courses/{slug}", web::get().to(course))
        .route("/courses/{slug}/lessons/{lesson}", web::get().to(lesson))
        .route(
            "/courses/{slug}/lessons/{lesson}/complete",
            web::post().to(complete),
        )
        .route("/signout", web::post().to(signout))
        .route("/signed-out", web::get().to(signed_out));
}

pub use crate::extract::CsrfForm;

fn base_ctx(
    state: &AppState,
    session: Option<&LearnerSession>,
    site: &settings::Site,
) -> tera::Context {
    let mut ctx = tera::Context::new();
    ctx.insert("site", site);
    if let Some(s) = session {
        ctx.insert("csrf", &s.csrf(state));
        ctx.insert("preview", &s.preview);
    }
    ctx
}

async fn dashboard(
    state: web::Data<AppState>,
    who: MaybeLearner,
) -> Result<HttpResponse, PageError> {
    let now = state.now();
    let Some(session) = who.0 else {
        let site = state.store.read(settings::site).await?;
        let ctx = base_ctx(&state, None, &site);
        return page("pages/welcome.html", &ctx);
    };
    let lid = session.learner_id.clone();
    let (site, learner, items) = state
        .store
        .read(move |tx| {
            Ok::<_, coursegate_core::CoreError>((
                settings::site(tx)?,
                learners::get(tx, &lid)?,
                enrolments::dashboard(tx, now, &lid)?,
            ))
        })
        .await?;
    let mut ctx = base_ctx(&state, Some(&session), &site);
    ctx.insert("learner_name", &learners::display_name(&learner));
    ctx.insert("items", &items);
    page("pages/dashboard.html", &ctx)
}

async fn course(
    state: web::Data<AppState>,
    session: LearnerSession,
    path: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let slug = path.into_inner();
    let now = state.now();
    let lid = session.learner_id.clone();
    let s2 = slug.clone();
    let (site, view) = state
        .store
        .read(move |tx| {
            Ok::<_, coursegate_core::CoreError>((
                settings::site(tx)?,
                enrolments::course_view(tx, now, &lid, &s2)?,
            ))
        })
        .await?;
    if !session.preview && !view.lessons.iter().any(|l| l.completed) {
        let lid = session.learner_id.clone();
        let s3 = slug.clone();
        state
            .store
            .write(move |tx| enrolments::mark_started(tx, now, &lid, &s3))
            .await?;
    }
    let mut ctx = base_ctx(&state, Some(&session), &site);
    ctx.insert("view", &view);
    page("pages/course.html", &ctx)
}

async fn lesson(
    state: web::Data<AppState>,
    session: LearnerSession,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, PageError> {
    let (slug, lesson_id) = path.into_inner();
    let now = state.now();
    let lid = session.learner_id.clone();
    let (site, view) = state
        .store
        .read(move |tx| {
            Ok::<_, coursegate_core::CoreError>((
                settings::site(tx)?,
                enrolments::lesson_view(tx, now, &lid, &slug, &lesson_id)?,
            ))
        })
        .await?;
    let mut ctx = base_ctx(&state, Some(&session), &site);
    ctx.insert("lesson", &view);
    page("pages/lesson.html", &ctx)
}

async fn complete(
    state: web::Data<AppState>,
    session: LearnerSession,
    path: web::Path<(String, String)>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, PageError> {
    session.check_csrf(&state, &form.csrf)?;
    let (slug, lesson_id) = path.into_inner();
    if session.preview {
        return Err(PageError::new(
            actix_web::http::StatusCode::FORBIDDEN,
            "preview_read_only",
            "This is a read-only preview: progress is not recorded.",
        ));
    }
    let now = state.now();
    let lid = session.learner_id.clone();
    let (s2, l2) = (slug.clone(), lesson_id.clone());
    let done = state
        .store
        .write(move |tx| enrolments::complete_lesson(tx, now, &lid, &s2, &l2))
        .await?;
    let to = match (&done.next_lesson_id, done.course_completed_now) {
        (_, true) => format!("/courses/{slug}?completed=1"),
        (Some(next), false) => format!("/courses/{slug}/lessons/{next}"),
        (None, false) => format!("/courses/{slug}"),
    };
    Ok(see_other(&to))
}

async fn signout(
    state: web::Data<AppState>,
    session: LearnerSession,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, PageError> {
    session.check_csrf(&state, &form.csrf)?;
    let now = state.now();
    let sid = session.session_id.clone();
    state
        .store
        .write(move |tx| sessions::end(tx, now, &sid))
        .await?;
    if session.preview {
        // A preview lives in its own cookie: ending it must not touch the
        // staff member's session.
        return crate::routes::staff::preview_ended();
    }
    let mut res = see_other("/signed-out");
    res.add_cookie(&clear_session_cookie(&state))
        .map_err(|e| PageError::from(coursegate_core::CoreError::Internal(e.to_string())))?;
    Ok(res)
}

async fn signed_out(state: web::Data<AppState>) -> Result<HttpResponse, PageError> {
    let site = state.store.read(settings::site).await?;
    let ctx = base_ctx(&state, None, &site);
    page("pages/signed_out.html", &ctx)
}
