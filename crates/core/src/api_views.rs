//! Read models and use cases of the automation API (`/api/v1`): learners
//! with their enrolments and progress, enrolment status, keyset pages.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use coursegate_store::{
    models::{Course, Enrolment, Learner, Lesson},
    repo, Tx,
};

use serde_json::json;

use crate::{
    api_keys::ApiPrincipal,
    audit,
    courses::LinkPolicy,
    enrolments::{self, Grant, Granted, ProgressSummary, Source},
    ids, learners,
    links::{self, IssueLearner, LinkSettings, LinkStatus, SendOptions},
    sessions::Destination,
    tokens::Secret,
    types::{parse_name, Email},
    CoreError,
};

/// One page of rows and the cursor of the next page (None on the last).
pub type Page<T> = (Vec<T>, Option<String>);

/// An enrolment as the API shows it.
#[derive(Debug, Clone)]
pub struct EnrolmentView {
    pub enrolment: Enrolment,
    pub course_slug: String,
    /// active | scheduled | expired | revoked
    pub status: &'static str,
    pub progress: ProgressSummary,
}

/// The state of an enrolment at `now` (the course being unpublished does not
/// change it: that is the course's state).
pub fn status_of(e: &Enrolment, now: DateTime<Utc>) -> &'static str {
    let n = now.naive_utc();
    if e.revoked_at.is_some() {
        "revoked"
    } else if e.starts_at.is_some_and(|s| n < s) {
        "scheduled"
    } else if e.expires_at.is_some_and(|x| n >= x) {
        "expired"
    } else {
        "active"
    }
}

fn progress(lessons: &[Lesson], done: &HashSet<String>, completed: bool) -> ProgressSummary {
    let required: Vec<&Lesson> = lessons.iter().filter(|l| l.required).collect();
    let completed_required = required.iter().filter(|l| done.contains(&l.id)).count();
    let percent = if completed {
        100
    } else if required.is_empty() {
        0
    } else {
        u32::try_from(completed_required * 100 / required.len()).unwrap_or(100)
    };
    ProgressSummary {
        completed_required,
        required: required.len(),
        percent,
        completed,
    }
}

fn view(
    tx: &mut Tx,
    now: DateTime<Utc>,
    e: Enrolment,
    c: &Course,
) -> Result<EnrolmentView, CoreError> {
    let lessons = repo::courses::lessons_of(tx, &c.id)?;
    let done: HashSet<String> = repo::enrolments::progress_of(tx, &e.id)?
        .into_iter()
        .map(|p| p.lesson_id)
        .collect();
    Ok(EnrolmentView {
        status: status_of(&e, now),
        progress: progress(&lessons, &done, e.completed_at.is_some()),
        course_slug: c.slug.clone(),
        enrolment: e,
    })
}

pub fn enrolment(tx: &mut Tx, now: DateTime<Utc>, id: &str) -> Result<EnrolmentView, CoreError> {
    if !ids::is_uuid(id) {
        return Err(CoreError::NotFound("enrolment"));
    }
    let e = repo::enrolments::get(tx, id)?.ok_or(CoreError::NotFound("enrolment"))?;
    let c = repo::courses::get(tx, &e.course_id)?.ok_or(CoreError::NotFound("course"))?;
    view(tx, now, e, &c)
}

pub fn learner(
    tx: &mut Tx,
    now: DateTime<Utc>,
    id: &str,
) -> Result<(Learner, Vec<EnrolmentView>), CoreError> {
    if !ids::is_uuid(id) {
        return Err(CoreError::NotFound("learner"));
    }
    let l = learners::get(tx, id)?;
    let mut out = Vec::new();
    for (e, c) in repo::enrolments::of_learner(tx, &l.id)? {
        out.push(view(tx, now, e, &c)?);
    }
    Ok((l, out))
}

/// One page of learners in creation order; the cursor is the last id seen.
pub fn learners_page(
    tx: &mut Tx,
    after: Option<&str>,
    limit: i64,
) -> Result<(Vec<Learner>, Option<String>), CoreError> {
    if let Some(a) = after {
        if !ids::is_uuid(a) {
            return Err(CoreError::invalid(
                "cursor",
                "is not a cursor from a previous page",
            ));
        }
    }
    let limit = limit.clamp(1, 200);
    let mut rows = repo::learners::page_after(tx, after, limit + 1)?;
    let next = if rows.len() > usize::try_from(limit).unwrap_or(usize::MAX) {
        rows.truncate(usize::try_from(limit).unwrap_or(0));
        rows.last().map(|l| l.id.clone())
    } else {
        None
    };
    Ok((rows, next))
}

pub fn course(tx: &mut Tx, slug: &str) -> Result<(Course, Vec<Lesson>), CoreError> {
    let c = repo::courses::get_by_slug(tx, slug)?.ok_or(CoreError::NotFound("course"))?;
    let lessons = repo::courses::lessons_of(tx, &c.id)?;
    Ok((c, lessons))
}

/// Input of `POST /api/v1/learners`.
#[derive(Debug, Clone)]
pub struct LearnerInput {
    pub email: String,
    pub name: Option<String>,
    pub external_id: Option<String>,
}

fn parse_external_id(x: Option<&str>) -> Result<Option<String>, CoreError> {
    match x.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) if s.chars().count() > 200 || s.chars().any(char::is_control) => {
            Err(CoreError::invalid(
                "external_id",
                "use up to 200 characters without control characters",
            ))
        }
        Some(s) => Ok(Some(s.to_string())),
    }
}

/// Creates or updates a learner by email (a given name replaces the stored one).
pub fn upsert_learner(
    tx: &mut Tx,
    now: DateTime<Utc>,
    input: &LearnerInput,
) -> Result<learners::Upserted, CoreError> {
    let email = Email::parse(&input.email)?;
    let name = parse_name("name", input.name.as_deref())?;
    let external_id = parse_external_id(input.external_id.as_deref())?;
    if let Some(x) = external_id.as_deref() {
        if let Some(l) = learners::update_by_external_id(tx, now, x, &email, name.as_deref())? {
            return Ok(learners::Upserted {
                learner: l,
                created: false,
            });
        }
    }
    learners::upsert_by_email(
        tx,
        now,
        &email,
        name.as_deref(),
        external_id.as_deref(),
        true,
    )
}

/// Learners with this email (case-insensitive) and/or this external id: zero or one.
pub fn find_learners(
    tx: &mut Tx,
    email: Option<&str>,
    external_id: Option<&str>,
) -> Result<Vec<Learner>, CoreError> {
    let by_email = match email {
        Some(e) => match Email::parse(e) {
            Ok(e) => repo::learners::find_by_email(tx, &e.lower())?,
            Err(_) => return Err(CoreError::invalid("email", "is not an email address")),
        },
        None => None,
    };
    let by_external = match external_id {
        Some(x) => repo::learners::find_by_external_id(tx, x.trim())?,
        None => None,
    };
    Ok(match (email, external_id) {
        (Some(_), Some(_)) => match (by_email, by_external) {
            (Some(a), Some(b)) if a.id == b.id => vec![a],
            _ => vec![],
        },
        _ => by_email.or(by_external).into_iter().collect(),
    })
}

fn check_cursor(after: Option<&str>) -> Result<(), CoreError> {
    match after {
        Some(a) if !ids::is_uuid(a) => Err(CoreError::invalid(
            "cursor",
            "is not a cursor from a previous page",
        )),
        _ => Ok(()),
    }
}

/// Splits one extra row off a page fetched with `limit + 1`: returns the
/// page and whether there is more.
fn split_page<T>(mut rows: Vec<T>, limit: i64) -> (Vec<T>, bool) {
    let limit = usize::try_from(limit).unwrap_or(0);
    if rows.len() > limit {
        rows.truncate(limit);
        (rows, true)
    } else {
        (rows, false)
    }
}

/// One page of enrolments (with progress), oldest first, optionally only
/// those of a learner's email or of a course. An unknown email or course
/// gives an empty page. The cursor is the last id seen.
pub fn enrolments_page(
    tx: &mut Tx,
    now: DateTime<Utc>,
    email: Option<&str>,
    course: Option<&str>,
    after: Option<&str>,
    limit: i64,
) -> Result<Page<EnrolmentView>, CoreError> {
    check_cursor(after)?;
    let limit = limit.clamp(1, 200);
    let learner_id = match email {
        Some(e) => {
            let e = Email::parse(e)
                .map_err(|_| CoreError::invalid("email", "is not an email address"))?;
            match repo::learners::find_by_email(tx, &e.lower())? {
                Some(l) => Some(l.id),
                None => return Ok((vec![], None)),
            }
        }
        None => None,
    };
    let course_id = match course {
        Some(slug) => match repo::courses::get_by_slug(tx, slug.trim())? {
            Some(c) => Some(c.id),
            None => return Ok((vec![], None)),
        },
        None => None,
    };
    let rows = repo::enrolments::page_after(
        tx,
        learner_id.as_deref(),
        course_id.as_deref(),
        after,
        limit + 1,
    )?;
    let (rows, more) = split_page(rows, limit);
    let next = if more {
        rows.last().map(|(e, _)| e.id.clone())
    } else {
        None
    };
    let mut out = Vec::with_capacity(rows.len());
    for (e, c) in rows {
        out.push(view(tx, now, e, &c)?);
    }
    Ok((out, next))
}

/// One page of courses (with their lesson counts) in slug order; the cursor
/// is the last slug seen.
pub fn courses_page(
    tx: &mut Tx,
    after: Option<&str>,
    limit: i64,
) -> Result<Page<(Course, usize)>, CoreError> {
    if let Some(a) = after {
        if crate::types::Slug::parse(a).is_err() {
            return Err(CoreError::invalid(
                "cursor",
                "is not a cursor from a previous page",
            ));
        }
    }
    let limit = limit.clamp(1, 200);
    let rows = repo::courses::page_after(tx, after, limit + 1)?;
    let (rows, more) = split_page(rows, limit);
    let next = if more {
        rows.last().map(|c| c.slug.clone())
    } else {
        None
    };
    let mut out = Vec::with_capacity(rows.len());
    for c in rows {
        let n = repo::courses::lessons_of(tx, &c.id)?.len();
        out.push((c, n));
    }
    Ok((out, next))
}

/// Input of `POST /api/v1/enrolments`.
#[derive(Debug, Clone)]
pub struct EnrolInput {
    pub email: String,
    pub course: String,
    pub name: Option<String>,
    pub starts_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub reference: Option<String>,
}

/// Upserts the learner by email and grants the course (source `api`).
pub fn enrol(
    tx: &mut Tx,
    now: DateTime<Utc>,
    input: &EnrolInput,
) -> Result<(Granted, EnrolmentView), CoreError> {
    let email = Email::parse(&input.email)?;
    let name = parse_name("name", input.name.as_deref())?;
    let reference = match input
        .reference
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        Some(r) if r.chars().count() > 200 || r.chars().any(char::is_control) => {
            return Err(CoreError::invalid(
                "reference",
                "use up to 200 characters without control characters",
            ))
        }
        other => other.map(str::to_string),
    };
    let course = repo::courses::get_by_slug(tx, input.course.trim())?
        .ok_or(CoreError::NotFound("course"))?;
    let learner = learners::upsert_by_email(tx, now, &email, name.as_deref(), None, false)?;
    let granted = enrolments::grant(
        tx,
        now,
        Grant {
            learner_id: learner.learner.id,
            course_id: course.id.clone(),
            source: Source::Api,
            source_ref: reference,
            starts_at: input.starts_at,
            expires_at: input.expires_at,
        },
    )?;
    let v = view(tx, now, granted.enrolment.clone(), &course)?;
    Ok((granted, v))
}

/// Input of `POST /api/v1/links` (and of `send_link` on an enrolment).
#[derive(Debug, Clone)]
pub struct LinkRequest {
    pub email: String,
    pub course: String,
    /// None = the course's link policy.
    pub kind: Option<LinkPolicy>,
    /// Email it (through the outbox, same transaction).
    pub send: bool,
    /// The public site root, for the URL in the mail and in the response.
    pub base_url: String,
    /// Shown in the mail's "why" line, e.g. `order 1234`.
    pub reference: Option<String>,
}

/// A link issued through the API: its status, and its URL when the key may see it.
#[derive(Debug, Clone)]
pub struct ApiLink {
    pub status: LinkStatus,
    pub learner_id: String,
    /// Only for keys with `allow_link_urls` (the disclosure is audited).
    pub url: Option<String>,
}

/// Issues a learner link for an enrolled learner on behalf of an API key.
///
/// A key without `allow_link_urls` must let Coursegate send the link
/// (`send: false` is refused with `link_url_not_allowed`), and never gets the
/// URL back. A key with it gets the URL, and the disclosure is audited.
pub fn issue_link(
    tx: &mut Tx,
    now: DateTime<Utc>,
    secret: &Secret,
    settings: &LinkSettings,
    key: &ApiPrincipal,
    req: &LinkRequest,
) -> Result<ApiLink, CoreError> {
    if !req.send && !key.allow_link_urls {
        return Err(CoreError::refused(
            "link_url_not_allowed",
            "This API key may not receive link URLs, so the link must be emailed: \
             send `\"send\": true`, or use a key created with allow_link_urls.",
        ));
    }
    let email = Email::parse(&req.email)?;
    let learner =
        repo::learners::find_by_email(tx, &email.lower())?.ok_or(CoreError::NotFound("learner"))?;
    let slug = req.course.trim().to_string();
    repo::courses::get_by_slug(tx, &slug)?.ok_or(CoreError::NotFound("course"))?;
    issue_for(tx, now, secret, settings, key, &learner.id, &slug, req)
}

#[allow(clippy::too_many_arguments)]
fn issue_for(
    tx: &mut Tx,
    now: DateTime<Utc>,
    secret: &Secret,
    settings: &LinkSettings,
    key: &ApiPrincipal,
    learner_id: &str,
    slug: &str,
    req: &LinkRequest,
) -> Result<ApiLink, CoreError> {
    let actor = key.actor();
    let issued = links::issue_learner(
        tx,
        now,
        secret,
        settings,
        &actor,
        IssueLearner {
            learner_id: learner_id.to_string(),
            destination: Destination::Course {
                slug: slug.to_string(),
            },
            kind: req.kind,
            send: req.send.then(|| SendOptions {
                base_url: req.base_url.clone(),
                reference: req.reference.clone(),
                code_for_browser: None,
            }),
        },
    )?;
    let url = if key.allow_link_urls {
        audit::record(
            tx,
            now,
            &actor,
            "link.url_disclosed",
            Some(("link", &issued.link.id)),
            json!({ "api_key_id": key.key_id, "learner_id": learner_id, "sent": req.send }),
        )?;
        Some(format!("{}{}", req.base_url, issued.path()))
    } else {
        None
    };
    let (_, status) = links::status(tx, now, settings, &issued.link.id)?;
    Ok(ApiLink {
        status,
        learner_id: learner_id.to_string(),
        url,
    })
}

/// `POST /api/v1/enrolments` with `send_link`: enrols, then issues and
/// emails a link to that course in the same transaction (the reference goes
/// into the mail).
#[allow(clippy::too_many_arguments)]
pub fn enrol_and_send(
    tx: &mut Tx,
    now: DateTime<Utc>,
    secret: &Secret,
    settings: &LinkSettings,
    key: &ApiPrincipal,
    input: &EnrolInput,
    kind: LinkPolicy,
    base_url: &str,
) -> Result<(Granted, EnrolmentView, ApiLink), CoreError> {
    let (granted, view) = enrol(tx, now, input)?;
    let req = LinkRequest {
        email: input.email.clone(),
        course: view.course_slug.clone(),
        kind: Some(kind),
        send: true,
        base_url: base_url.to_string(),
        reference: view.enrolment.source_ref.clone(),
    };
    let link = issue_for(
        tx,
        now,
        secret,
        settings,
        key,
        &view.enrolment.learner_id,
        &view.course_slug,
        &req,
    )?;
    Ok((granted, view, link))
}
