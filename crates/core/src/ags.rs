//! Assignment and Grade Services: grade passback for enrolments that came
//! from an LTI launch, through the durable outbox.
//!
//! A launch with an AGS claim records which resource link (and so which line
//! item) and which platform `sub` an enrolment belongs to. Whenever that
//! enrolment's progress changes, [`enqueue_score`] writes a `score` outbox
//! row in the same transaction, keyed `score:<enrolment>:<version>` so each
//! change is posted at most once. The server's score worker delivers it and
//! reports back with [`record_delivered`] / [`record_failed`].
//!
//! Each score's timestamp is strictly later than the previous one of the
//! same enrolment (Moodle answers 409 to a timestamp that is not newer), with
//! microsecond precision (Canvas wants sub-second).

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use coursegate_store::{
    models::{Course, Enrolment, LtiAccessToken, LtiEnrolmentLink, LtiPlatform, LtiResourceLink},
    repo, Tx,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::{audit, enrolments::ProgressSummary, events, ids::new_id, CoreError};

/// Outbox `kind` and `topic` of a score.
pub const KIND_SCORE: &str = "score";
pub const TOPIC_SCORE: &str = "lti.score";

pub const SCOPE_SCORE: &str = "https://purl.imsglobal.org/spec/lti-ags/scope/score";
pub const SCOPE_LINEITEM: &str = "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem";

/// The score every course is reported out of (percent of required lessons).
pub const SCORE_MAXIMUM: f64 = 100.0;

/// One queued score (the outbox payload).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoreJob {
    pub enrolment_id: String,
    pub version: i32,
    pub platform_id: String,
    /// `lti_resource_links.id`
    pub resource_link_row_id: String,
    /// The platform's resource link id (to find or create the line item).
    pub resource_link_id: String,
    pub lineitem_url: Option<String>,
    pub lineitems_url: Option<String>,
    /// The OAuth2 scopes the launch granted.
    pub scopes: Vec<String>,
    /// The platform's `sub` of the learner.
    pub user_id: String,
    pub course_slug: String,
    pub course_title: String,
    /// Initialized | Started | InProgress | Submitted | Completed
    pub activity_progress: String,
    /// FullyGraded | Pending | …
    pub grading_progress: String,
    pub score_given: f64,
    pub score_maximum: f64,
    /// RFC 3339, microseconds, UTC.
    pub timestamp: String,
}

/// Remembers which launch an enrolment belongs to (called by the launch).
/// `current` is the enrolment's stored link as the caller just read it
/// (`repo::lti_services::find_enrolment_with_link`), `None` if it has none.
pub fn link_enrolment(
    tx: &mut Tx,
    now: DateTime<Utc>,
    enrolment_id: &str,
    platform_id: &str,
    resource_link_row_id: &str,
    sub: &str,
    current: Option<&LtiEnrolmentLink>,
) -> Result<(), CoreError> {
    let n = now.naive_utc();
    let row = LtiEnrolmentLink {
        enrolment_id: enrolment_id.to_string(),
        platform_id: platform_id.to_string(),
        resource_link_id: resource_link_row_id.to_string(),
        lti_sub: sub.to_string(),
        last_score_at: None,
        created_at: n,
        updated_at: n,
    };
    repo::lti_services::set_enrolment_link(tx, &row, current)?;
    Ok(())
}

fn scopes_of(link: &LtiResourceLink) -> Vec<String> {
    link.ags_scopes
        .as_deref()
        .unwrap_or("")
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// Queues a score for `e` after a progress change, when the enrolment came
/// from a launch whose AGS claim allows posting scores (a line item, or a
/// line items container plus the lineitem scope). Returns whether a row was
/// written.
pub fn enqueue_score(
    tx: &mut Tx,
    now: DateTime<Utc>,
    e: &Enrolment,
    course: &Course,
    progress: &ProgressSummary,
) -> Result<bool, CoreError> {
    let Some(link) = repo::lti_services::get_enrolment_link(tx, &e.id)? else {
        return Ok(false);
    };
    let Some(rl) = repo::lti::get_resource_link(tx, &link.resource_link_id)? else {
        return Ok(false);
    };
    let scopes = scopes_of(&rl);
    let has = |s: &str| scopes.iter().any(|x| x == s);
    let addressable =
        rl.lineitem_url.is_some() || (rl.lineitems_url.is_some() && has(SCOPE_LINEITEM));
    if !has(SCOPE_SCORE) || !addressable {
        return Ok(false);
    }
    // Strictly increasing per enrolment, even when the clock did not move.
    let mut at = now;
    if let Some(last) = link.last_score_at {
        let last = last.and_utc();
        if at <= last {
            at = last + Duration::microseconds(1);
        }
    }
    let completed = e.completed_at.is_some();
    let (activity, grading) = if completed {
        ("Completed", "FullyGraded")
    } else {
        ("InProgress", "Pending")
    };
    let job = ScoreJob {
        enrolment_id: e.id.clone(),
        version: e.version,
        platform_id: link.platform_id.clone(),
        resource_link_row_id: rl.id.clone(),
        resource_link_id: rl.resource_link_id.clone(),
        lineitem_url: rl.lineitem_url.clone(),
        lineitems_url: rl.lineitems_url.clone(),
        scopes,
        user_id: link.lti_sub.clone(),
        course_slug: course.slug.clone(),
        course_title: course.title.clone(),
        activity_progress: activity.into(),
        grading_progress: grading.into(),
        score_given: if completed {
            SCORE_MAXIMUM
        } else {
            f64::from(progress.percent)
        },
        score_maximum: SCORE_MAXIMUM,
        timestamp: at.to_rfc3339_opts(SecondsFormat::Micros, true),
    };
    let payload = serde_json::to_value(&job).map_err(|e| CoreError::Internal(e.to_string()))?;
    let written = events::enqueue(
        tx,
        now,
        KIND_SCORE,
        TOPIC_SCORE,
        &payload,
        Some(format!("score:{}:{}", e.id, e.version)),
        &new_id(),
    )?;
    if written {
        repo::lti_services::set_last_score_at(tx, &e.id, at.naive_utc())?;
    }
    Ok(written)
}

/// What the worker needs to call a platform's services.
#[derive(Debug, Clone)]
pub struct ServiceTarget {
    pub platform_id: String,
    pub client_id: String,
    pub token_url: String,
    /// The client assertion's `aud` when it is not the token URL (Brightspace).
    pub audience: Option<String>,
    pub issuer: String,
    /// The LMS as staff named it on the registration ("canvas", "moodle", …).
    pub lms: Option<String>,
}

pub fn service_target(tx: &mut Tx, platform_id: &str) -> Result<ServiceTarget, CoreError> {
    let p: LtiPlatform =
        repo::lti::get_platform(tx, platform_id)?.ok_or(CoreError::NotFound("platform"))?;
    Ok(ServiceTarget {
        platform_id: p.id,
        client_id: p.client_id,
        token_url: p.token_url,
        audience: p.audience.filter(|a| !a.trim().is_empty()),
        issuer: p.issuer,
        lms: p.lms.filter(|l| !l.trim().is_empty()),
    })
}

/// The cache key of a scope set: sorted, deduplicated, space-separated.
pub fn scope_key(scopes: &[&str]) -> String {
    let mut v: Vec<&str> = scopes.to_vec();
    v.sort_unstable();
    v.dedup();
    v.join(" ")
}

/// A cached access token for `platform_id` and `scope_key`, if still valid.
pub fn cached_token(
    tx: &mut Tx,
    now: DateTime<Utc>,
    platform_id: &str,
    scope_key: &str,
) -> Result<Option<String>, CoreError> {
    Ok(
        repo::lti_services::valid_token(tx, platform_id, scope_key, now.naive_utc())?
            .map(|t| t.access_token),
    )
}

/// Caches a token until `expires_at` (the caller subtracts its margin).
pub fn store_token(
    tx: &mut Tx,
    now: DateTime<Utc>,
    platform_id: &str,
    scope_key: &str,
    access_token: &str,
    expires_at: DateTime<Utc>,
) -> Result<(), CoreError> {
    repo::lti_services::put_token(
        tx,
        &LtiAccessToken {
            id: new_id(),
            platform_id: platform_id.to_string(),
            scope_key: scope_key.to_string(),
            access_token: access_token.to_string(),
            expires_at: expires_at.naive_utc(),
            created_at: now.naive_utc(),
        },
    )?;
    Ok(())
}

/// Drops a token the platform refused.
pub fn forget_token(tx: &mut Tx, platform_id: &str, access_token: &str) -> Result<(), CoreError> {
    repo::lti_services::forget_token(tx, platform_id, access_token)?;
    Ok(())
}

/// Remembers a line item found or created for a resource link, so later
/// scores go straight to it.
pub fn save_lineitem(
    tx: &mut Tx,
    now: DateTime<Utc>,
    resource_link_row_id: &str,
    lineitem_url: &str,
) -> Result<(), CoreError> {
    if let Some(mut rl) = repo::lti::get_resource_link(tx, resource_link_row_id)? {
        if rl.lineitem_url.as_deref() != Some(lineitem_url) {
            rl.lineitem_url = Some(lineitem_url.to_string());
            rl.updated_at = now.naive_utc();
            repo::lti::update_resource_link(tx, &rl)?;
        }
    }
    Ok(())
}

/// How a delivered score ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivered {
    Accepted,
    /// Moodle's 409 for a timestamp that is not newer than the stored grade:
    /// the platform already holds this or a later score, so it is done.
    AlreadyNewer,
}

pub fn record_delivered(
    tx: &mut Tx,
    now: DateTime<Utc>,
    outbox_id: &str,
    job: &ScoreJob,
    how: Delivered,
) -> Result<(), CoreError> {
    let note = match how {
        Delivered::Accepted => "accepted",
        Delivered::AlreadyNewer => "409: the platform holds a newer score",
    };
    repo::outbox::mark_sent(tx, outbox_id, now.naive_utc(), Some(note))?;
    audit::record(
        tx,
        now,
        &audit::Actor::system(),
        "lti.score.sent",
        Some(("enrolment", &job.enrolment_id)),
        json!({
            "outbox_id": outbox_id, "version": job.version, "platform": job.platform_id,
            "activity_progress": job.activity_progress, "grading_progress": job.grading_progress,
            "score_given": job.score_given, "note": note,
        }),
    )?;
    Ok(())
}

/// Records a failed attempt: retried at `next_attempt_at`, or dead (visible
/// in the outbox, replayable by staff) when `None`.
pub fn record_failed(
    tx: &mut Tx,
    now: DateTime<Utc>,
    outbox_id: &str,
    enrolment_id: &str,
    error: &str,
    attempts: i32,
    next_attempt_at: Option<DateTime<Utc>>,
) -> Result<(), CoreError> {
    repo::outbox::mark_failed(
        tx,
        outbox_id,
        now.naive_utc(),
        error,
        next_attempt_at.map(|t| t.naive_utc()),
    )?;
    if next_attempt_at.is_none() {
        audit::record(
            tx,
            now,
            &audit::Actor::system(),
            "lti.score.dead",
            Some(("enrolment", enrolment_id)),
            json!({ "outbox_id": outbox_id, "error": error, "attempts": attempts }),
        )?;
    }
    Ok(())
}

/// The line item URL now known for a resource link.
pub fn lineitem_of(tx: &mut Tx, resource_link_row_id: &str) -> Result<Option<String>, CoreError> {
    Ok(repo::lti::get_resource_link(tx, resource_link_row_id)?.and_then(|r| r.lineitem_url))
}

/// A grade update that failed for good: what it carried and the LMS's last
/// answer, for the staff LMS page.
#[derive(Debug, Clone, Serialize)]
pub struct DeadScore {
    pub outbox_id: String,
    /// The platform's `sub` of the learner.
    pub user_id: String,
    pub course_slug: String,
    pub course_title: String,
    pub activity_progress: String,
    pub grading_progress: String,
    pub score_given: f64,
    pub score_maximum: f64,
    /// "80 of 100".
    pub grade: String,
    pub attempts: i32,
    /// What the LMS answered (or why it could not be reached).
    pub last_error: Option<String>,
    /// When it was given up on, "YYYY-MM-DD HH:MM:SS" UTC.
    pub failed_at: String,
}

/// Dead score rows of `platform_id` (all of them when `limit` is `None`),
/// newest first.
fn dead_rows_of(
    tx: &mut Tx,
    platform_id: &str,
    limit: Option<usize>,
) -> Result<Vec<(coursegate_store::models::OutboxMessage, ScoreJob)>, CoreError> {
    const CHUNK: i64 = 200;
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        let rows = repo::outbox::list(
            tx,
            Some(repo::outbox::DEAD),
            Some(KIND_SCORE),
            repo::Page {
                limit: CHUNK,
                offset,
            },
        )?;
        let n = rows.len();
        for row in rows {
            // An unreadable payload cannot be attributed to a platform; the
            // outbox page still lists it.
            let Ok(job) = serde_json::from_str::<ScoreJob>(&row.payload) else {
                continue;
            };
            if job.platform_id == platform_id {
                out.push((row, job));
                if limit.is_some_and(|l| out.len() >= l) {
                    return Ok(out);
                }
            }
        }
        if n < CHUNK as usize {
            return Ok(out);
        }
        offset += CHUNK;
    }
}

/// The dead grade updates of a platform, newest first, at most `limit`.
pub fn dead_scores(
    tx: &mut Tx,
    platform_id: &str,
    limit: usize,
) -> Result<Vec<DeadScore>, CoreError> {
    Ok(dead_rows_of(tx, platform_id, Some(limit))?
        .into_iter()
        .map(|(row, job)| DeadScore {
            outbox_id: row.id,
            user_id: job.user_id,
            course_slug: job.course_slug,
            course_title: job.course_title,
            activity_progress: job.activity_progress,
            grading_progress: job.grading_progress,
            grade: format!("{} of {}", job.score_given, job.score_maximum),
            score_given: job.score_given,
            score_maximum: job.score_maximum,
            attempts: row.attempts,
            last_error: row.last_error,
            failed_at: row.updated_at.format("%Y-%m-%d %H:%M:%S").to_string(),
        })
        .collect())
}

/// Puts the dead grade updates of `platform_id` back in the queue (only
/// `outbox_id` when given), audited. Each keeps its payload and timestamp,
/// so a platform that took it meanwhile answers 409 and it counts as done.
/// Returns how many were requeued.
pub fn replay_dead_scores(
    tx: &mut Tx,
    now: DateTime<Utc>,
    actor: &audit::Actor,
    platform_id: &str,
    outbox_id: Option<&str>,
) -> Result<usize, CoreError> {
    repo::lti::get_platform(tx, platform_id)?.ok_or(CoreError::NotFound("platform"))?;
    let rows = dead_rows_of(tx, platform_id, None)?;
    let chosen: Vec<_> = rows
        .iter()
        .filter(|(row, _)| outbox_id.is_none_or(|id| row.id == id))
        .collect();
    if let (Some(id), true) = (outbox_id, chosen.is_empty()) {
        return Err(CoreError::refused(
            "score_not_dead",
            format!("Grade update {id} is not a dead grade update of this platform (it may have been replayed already)."),
        ));
    }
    let mut n = 0;
    for (row, _) in &chosen {
        if repo::outbox::replay(tx, &row.id, now.naive_utc())? {
            n += 1;
        }
    }
    let ids: Vec<&str> = chosen.iter().map(|(r, _)| r.id.as_str()).collect();
    audit::record(
        tx,
        now,
        actor,
        "lti.score.replayed",
        Some(("lti_platform", platform_id)),
        json!({ "count": n, "outbox_ids": ids }),
    )?;
    Ok(n)
}
