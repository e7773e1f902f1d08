//! Enrolments, progress and completion, and the learner's views of them.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use coursegate_store::{
    models::{Course, Enrolment, Lesson, Progress},
    repo, Tx,
};
use serde::Serialize;
use serde_json::json;

use crate::{
    access::{self, utc},
    events,
    ids::new_id,
    CoreError,
};

/// Where an enrolment came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Staff,
    Csv,
    Api,
    Link,
    Lti,
    Cli,
    Demo,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Staff => "staff",
            Source::Csv => "csv",
            Source::Api => "api",
            Source::Link => "link",
            Source::Lti => "lti",
            Source::Cli => "cli",
            Source::Demo => "demo",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Grant {
    pub learner_id: String,
    pub course_id: String,
    pub source: Source,
    pub source_ref: Option<String>,
    pub starts_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
pub struct Granted {
    pub enrolment: Enrolment,
    /// false when an identical active enrolment already existed.
    pub changed: bool,
    pub created: bool,
}

/// Grants access: creates the enrolment, or re-activates / re-dates an
/// existing one. Writes `enrolment.granted` when anything changed. When no
/// end is given and the course has a default access duration, it applies.
pub fn grant(tx: &mut Tx, now: DateTime<Utc>, g: Grant) -> Result<Granted, CoreError> {
    if let (Some(s), Some(e)) = (g.starts_at, g.expires_at) {
        if e <= s {
            return Err(CoreError::invalid("expires_at", "must be after starts_at"));
        }
    }
    let course = repo::courses::get(tx, &g.course_id)?.ok_or(CoreError::NotFound("course"))?;
    let expires_at = g.expires_at.or_else(|| {
        course
            .default_access_days
            .map(|d| g.starts_at.unwrap_or(now) + chrono::Duration::days(i64::from(d)))
    });
    let n = now.naive_utc();
    let existing = repo::enrolments::find(tx, &g.learner_id, &g.course_id)?;
    let (enrolment, changed, created) = match existing {
        None => {
            let e = Enrolment {
                id: new_id(),
                learner_id: g.learner_id.clone(),
                course_id: g.course_id.clone(),
                source: g.source.as_str().to_string(),
                source_ref: g.source_ref.clone(),
                status: "active".into(),
                starts_at: g.starts_at.map(|t| t.naive_utc()),
                expires_at: expires_at.map(|t| t.naive_utc()),
                revoked_at: None,
                started_at: None,
                completed_at: None,
                version: 1,
                created_at: n,
                updated_at: n,
            };
            repo::enrolments::insert(tx, &e)?;
            (e, true, true)
        }
        Some(mut e) => {
            let before = e.clone();
            e.status = "active".into();
            e.revoked_at = None;
            if g.starts_at.is_some() || before.revoked_at.is_some() {
                e.starts_at = g.starts_at.map(|t| t.naive_utc());
            }
            if expires_at.is_some() || before.revoked_at.is_some() {
                e.expires_at = expires_at.map(|t| t.naive_utc());
            }
            if g.source_ref.is_some() {
                e.source_ref = g.source_ref.clone();
            }
            let changed = e != before;
            if changed {
                e.version += 1;
                e.updated_at = n;
                repo::enrolments::update(tx, &e)?;
            }
            (e, changed, false)
        }
    };
    if changed {
        events::emit(
            tx,
            now,
            events::ENROLMENT_GRANTED,
            json!({
                "enrolment_id": enrolment.id,
                "learner_id": enrolment.learner_id,
                "course": course.slug,
                "source": enrolment.source,
                "reference": enrolment.source_ref,
                "starts_at": enrolment.starts_at.map(utc),
                "expires_at": enrolment.expires_at.map(utc),
                "created": created,
            }),
        )?;
    }
    Ok(Granted {
        enrolment,
        changed,
        created,
    })
}

/// Revokes an enrolment; access ends on the learner's next request.
pub fn revoke(
    tx: &mut Tx,
    now: DateTime<Utc>,
    enrolment_id: &str,
    reason: Option<&str>,
) -> Result<Enrolment, CoreError> {
    let mut e = repo::enrolments::get(tx, enrolment_id)?.ok_or(CoreError::NotFound("enrolment"))?;
    if e.revoked_at.is_some() {
        return Ok(e);
    }
    let n = now.naive_utc();
    e.revoked_at = Some(n);
    e.status = "revoked".into();
    e.version += 1;
    e.updated_at = n;
    repo::enrolments::update(tx, &e)?;
    let course = repo::courses::get(tx, &e.course_id)?.ok_or(CoreError::NotFound("course"))?;
    events::emit(
        tx,
        now,
        events::ENROLMENT_REVOKED,
        json!({ "enrolment_id": e.id, "learner_id": e.learner_id, "course": course.slug, "reason": reason }),
    )?;
    Ok(e)
}

/// Moves the end of an enrolment (None = no end).
pub fn extend(
    tx: &mut Tx,
    now: DateTime<Utc>,
    enrolment_id: &str,
    expires_at: Option<DateTime<Utc>>,
) -> Result<Enrolment, CoreError> {
    let mut e = repo::enrolments::get(tx, enrolment_id)?.ok_or(CoreError::NotFound("enrolment"))?;
    if let (Some(x), Some(s)) = (expires_at, e.starts_at) {
        if x.naive_utc() <= s {
            return Err(CoreError::invalid(
                "expires_at",
                "must be after the start of the enrolment",
            ));
        }
    }
    let n = now.naive_utc();
    e.expires_at = expires_at.map(|t| t.naive_utc());
    e.version += 1;
    e.updated_at = n;
    repo::enrolments::update(tx, &e)?;
    events::emit(
        tx,
        now,
        events::ENROLMENT_EXTENDED,
        json!({ "enrolment_id": e.id, "learner_id": e.learner_id, "expires_at": expires_at }),
    )?;
    Ok(e)
}

#[derive(Debug, Clone, Serialize)]
pub struct LessonItem {
    pub id: String,
    pub position: i32,
    pub title: String,
    pub required: bool,
    pub completed: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProgressSummary {
    pub completed_required: usize,
    pub required: usize,
    pub percent: u32,
    pub completed: bool,
}

pub(crate) fn summarise(
    lessons: &[Lesson],
    done: &HashSet<String>,
    completed_at: bool,
) -> ProgressSummary {
    let required: Vec<&Lesson> = lessons.iter().filter(|l| l.required).collect();
    let completed_required = required.iter().filter(|l| done.contains(&l.id)).count();
    let percent = if required.is_empty() {
        if completed_at {
            100
        } else {
            0
        }
    } else {
        u32::try_from(completed_required * 100 / required.len()).unwrap_or(100)
    };
    ProgressSummary {
        completed_required,
        required: required.len(),
        percent,
        completed: completed_at,
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct DashboardItem {
    pub slug: String,
    pub title: String,
    pub summary: String,
    pub progress: ProgressSummary,
    pub expires_at: Option<DateTime<Utc>>,
    pub started: bool,
}

/// The learner's dashboard: only enrolments that give access now.
pub fn dashboard(
    tx: &mut Tx,
    now: DateTime<Utc>,
    learner_id: &str,
) -> Result<Vec<DashboardItem>, CoreError> {
    let rows = repo::enrolments::of_learner(tx, learner_id)?;
    let active: Vec<(Enrolment, Course)> = rows
        .into_iter()
        .filter(|(e, c)| access::check(c, Some(e), now).is_ok())
        .collect();
    let ids: Vec<String> = active.iter().map(|(e, _)| e.id.clone()).collect();
    let done = repo::enrolments::progress_of_many(tx, &ids)?;
    let mut items = Vec::with_capacity(active.len());
    for (e, c) in active {
        let lessons = repo::courses::lessons_of(tx, &c.id)?;
        let set: HashSet<String> = done
            .iter()
            .filter(|(eid, _)| *eid == e.id)
            .map(|(_, l)| l.clone())
            .collect();
        items.push(DashboardItem {
            progress: summarise(&lessons, &set, e.completed_at.is_some()),
            slug: c.slug,
            title: c.title,
            summary: c.summary,
            expires_at: e.expires_at.map(utc),
            started: e.started_at.is_some(),
        });
    }
    Ok(items)
}

#[derive(Debug, Clone, Serialize)]
pub struct CourseView {
    pub course: CourseInfo,
    pub enrolment_id: String,
    pub expires_at: Option<DateTime<Utc>>,
    pub lessons: Vec<LessonItem>,
    pub progress: ProgressSummary,
    pub next_lesson_id: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CourseInfo {
    pub id: String,
    pub slug: String,
    pub title: String,
    pub summary: String,
    pub graded: bool,
}

impl From<&Course> for CourseInfo {
    fn from(c: &Course) -> Self {
        Self {
            id: c.id.clone(),
            slug: c.slug.clone(),
            title: c.title.clone(),
            summary: c.summary.clone(),
            graded: c.graded,
        }
    }
}

/// Checks access to a course by slug; returns the course and enrolment.
pub fn authorise(
    tx: &mut Tx,
    now: DateTime<Utc>,
    learner_id: &str,
    slug: &str,
) -> Result<(Course, Enrolment), CoreError> {
    let course = repo::courses::get_by_slug(tx, slug)?.ok_or(CoreError::NotFound("course"))?;
    let e = repo::enrolments::find(tx, learner_id, &course.id)?;
    access::check(&course, e.as_ref(), now).map_err(CoreError::Access)?;
    let e = e.ok_or(CoreError::Access(access::Denied::NotEnrolled))?;
    Ok((course, e))
}

fn view(tx: &mut Tx, course: &Course, e: &Enrolment) -> Result<CourseView, CoreError> {
    let lessons = repo::courses::lessons_of(tx, &course.id)?;
    let done: HashSet<String> = repo::enrolments::progress_of(tx, &e.id)?
        .into_iter()
        .map(|p| p.lesson_id)
        .collect();
    let next_lesson_id = lessons
        .iter()
        .find(|l| !done.contains(&l.id))
        .or(lessons.first())
        .map(|l| l.id.clone());
    Ok(CourseView {
        course: course.into(),
        enrolment_id: e.id.clone(),
        expires_at: e.expires_at.map(utc),
        progress: summarise(&lessons, &done, e.completed_at.is_some()),
        lessons: lessons
            .iter()
            .map(|l| LessonItem {
                id: l.id.clone(),
                position: l.position,
                title: l.title.clone(),
                required: l.required,
                completed: done.contains(&l.id),
            })
            .collect(),
        next_lesson_id,
    })
}

/// Read-only course view (no state change).
pub fn course_view(
    tx: &mut Tx,
    now: DateTime<Utc>,
    learner_id: &str,
    slug: &str,
) -> Result<CourseView, CoreError> {
    let (course, e) = authorise(tx, now, learner_id, slug)?;
    view(tx, &course, &e)
}

/// Marks the course started on first open (writes `course.started` once).
/// Returns true if this call started it.
pub fn mark_started(
    tx: &mut Tx,
    now: DateTime<Utc>,
    learner_id: &str,
    slug: &str,
) -> Result<bool, CoreError> {
    let (course, mut e) = authorise(tx, now, learner_id, slug)?;
    if e.started_at.is_some() {
        return Ok(false);
    }
    let n = now.naive_utc();
    e.started_at = Some(n);
    e.version += 1;
    e.updated_at = n;
    repo::enrolments::update(tx, &e)?;
    events::emit(
        tx,
        now,
        events::COURSE_STARTED,
        json!({ "enrolment_id": e.id, "learner_id": learner_id, "course": course.slug }),
    )?;
    Ok(true)
}

#[derive(Debug, Clone, Serialize)]
pub struct LessonView {
    pub course: CourseInfo,
    pub id: String,
    pub position: i32,
    pub title: String,
    pub html: String,
    pub completed: bool,
    pub prev_id: Option<String>,
    pub next_id: Option<String>,
    pub progress: ProgressSummary,
}

pub fn lesson_view(
    tx: &mut Tx,
    now: DateTime<Utc>,
    learner_id: &str,
    slug: &str,
    lesson_id: &str,
) -> Result<LessonView, CoreError> {
    let (course, e) = authorise(tx, now, learner_id, slug)?;
    let lessons = repo::courses::lessons_of(tx, &course.id)?;
    let idx = lessons
        .iter()
        .position(|l| l.id == lesson_id)
        .ok_or(CoreError::NotFound("lesson"))?;
    let done: HashSet<String> = repo::enrolments::progress_of(tx, &e.id)?
        .into_iter()
        .map(|p| p.lesson_id)
        .collect();
    let l = &lessons[idx];
    Ok(LessonView {
        course: (&course).into(),
        id: l.id.clone(),
        position: l.position,
        title: l.title.clone(),
        html: crate::content::render_lesson(&l.body_format, &l.body),
        completed: done.contains(&l.id),
        prev_id: idx
            .checked_sub(1)
            .and_then(|i| lessons.get(i))
            .map(|l| l.id.clone()),
        next_id: lessons.get(idx + 1).map(|l| l.id.clone()),
        progress: summarise(&lessons, &done, e.completed_at.is_some()),
    })
}

#[derive(Debug, Clone, Serialize)]
pub struct Completed {
    pub newly_completed_lesson: bool,
    pub course_completed_now: bool,
    pub progress: ProgressSummary,
    pub next_lesson_id: Option<String>,
}

/// Marks a lesson complete. Idempotent. Writes `course.started` (if not yet),
/// `lesson.completed`, and `course.completed` when every required lesson is done.
pub fn complete_lesson(
    tx: &mut Tx,
    now: DateTime<Utc>,
    learner_id: &str,
    slug: &str,
    lesson_id: &str,
) -> Result<Completed, CoreError> {
    let (course, mut e) = authorise(tx, now, learner_id, slug)?;
    let lessons = repo::courses::lessons_of(tx, &course.id)?;
    let idx = lessons
        .iter()
        .position(|l| l.id == lesson_id)
        .ok_or(CoreError::NotFound("lesson"))?;
    let mut done: HashSet<String> = repo::enrolments::progress_of(tx, &e.id)?
        .into_iter()
        .map(|p| p.lesson_id)
        .collect();
    let n = now.naive_utc();
    let newly = !done.contains(lesson_id);
    let mut course_completed_now = false;
    if newly {
        repo::enrolments::insert_progress(
            tx,
            &Progress {
                id: new_id(),
                enrolment_id: e.id.clone(),
                lesson_id: lesson_id.to_string(),
                completed_at: n,
            },
        )?;
        done.insert(lesson_id.to_string());
        if e.started_at.is_none() {
            e.started_at = Some(n);
            events::emit(
                tx,
                now,
                events::COURSE_STARTED,
                json!({ "enrolment_id": e.id, "learner_id": learner_id, "course": course.slug }),
            )?;
        }
        let summary = summarise(&lessons, &done, false);
        events::emit(
            tx,
            now,
            events::LESSON_COMPLETED,
            json!({
                "enrolment_id": e.id, "learner_id": learner_id, "course": course.slug,
                "lesson_id": lesson_id, "lesson_title": lessons[idx].title,
                "progress_percent": summary.percent,
            }),
        )?;
        if e.completed_at.is_none() && summary.completed_required == summary.required {
            e.completed_at = Some(n);
            course_completed_now = true;
            events::emit(
                tx,
                now,
                events::COURSE_COMPLETED,
                json!({ "enrolment_id": e.id, "learner_id": learner_id, "course": course.slug }),
            )?;
        }
        e.version += 1;
        e.updated_at = n;
        repo::enrolments::update(tx, &e)?;
        crate::ags::enqueue_score(
            tx,
            now,
            &e,
            &course,
            &summarise(&lessons, &done, e.completed_at.is_some()),
        )?;
    }
    let next_lesson_id = lessons.get(idx + 1).map(|l| l.id.clone());
    Ok(Completed {
        newly_completed_lesson: newly,
        course_completed_now,
        progress: summarise(&lessons, &done, e.completed_at.is_some()),
        next_lesson_id,
    })
}
