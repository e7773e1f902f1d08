//! Server-side sessions and the one entry point both doors call:
//! [`start_learner_session`] — identity + destination → session + where to go.
//!
//! The cookie carries only a random token; the database stores its keyed
//! hash. Sessions end on revocation, after the idle timeout, or at the
//! absolute expiry, whichever comes first.

use chrono::{DateTime, Duration, Utc};
use coursegate_store::{
    models::{AuditEntry, Session},
    repo, Tx,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::{
    audit::{self, Actor},
    enrolments, learners,
    learners::IdentityRef,
    tokens::{self, Secret},
    CoreError,
};

pub const TOKEN_PREFIX: &str = "cgs";
/// Do not write `last_seen_at` more often than this (keeps reads read-only).
pub const TOUCH_INTERVAL_SECS: i64 = 60;

#[derive(Debug, Clone, Copy)]
pub struct SessionPolicy {
    pub learner_idle: Duration,
    pub learner_absolute: Duration,
    pub staff_idle: Duration,
    pub staff_absolute: Duration,
}

impl Default for SessionPolicy {
    fn default() -> Self {
        Self {
            learner_idle: Duration::hours(8),
            learner_absolute: Duration::days(30),
            staff_idle: Duration::minutes(30),
            staff_absolute: Duration::hours(12),
        }
    }
}

/// Where the browser goes after sign-in. Stored with links; never taken from a URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Destination {
    Dashboard,
    Course { slug: String },
    Lesson { slug: String, lesson_id: String },
}

impl Destination {
    pub fn path(&self) -> String {
        match self {
            Destination::Dashboard => "/".to_string(),
            Destination::Course { slug } => format!("/courses/{slug}"),
            Destination::Lesson { slug, lesson_id } => {
                format!("/courses/{slug}/lessons/{lesson_id}")
            }
        }
    }

    pub fn course_slug(&self) -> Option<&str> {
        match self {
            Destination::Dashboard => None,
            Destination::Course { slug } | Destination::Lesson { slug, .. } => Some(slug),
        }
    }
}

/// Who is asking, for the session row and the audit log.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

#[derive(Debug, Clone)]
pub struct StartLearner {
    pub identity: IdentityRef,
    pub destination: Destination,
    /// link | code | lti | dev | preview
    pub via: String,
    pub client: ClientInfo,
}

/// A started session. `token` is the cookie value; it is never stored.
#[derive(Clone)]
pub struct Started {
    pub token: String,
    pub session_id: String,
    pub learner_id: Option<String>,
    pub staff_id: Option<String>,
    pub redirect: String,
    pub absolute_expires_at: DateTime<Utc>,
}

impl std::fmt::Debug for Started {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Started")
            .field("session_id", &self.session_id)
            .field("redirect", &self.redirect)
            .finish_non_exhaustive()
    }
}

/// The entry point both doors call. The learner must exist (doors create it);
/// the destination must be open to them now, else the access reason is returned.
pub fn start_learner_session(
    tx: &mut Tx,
    now: DateTime<Utc>,
    secret: &Secret,
    policy: &SessionPolicy,
    req: StartLearner,
) -> Result<Started, CoreError> {
    let learner = learners::resolve(tx, &req.identity)?.ok_or(CoreError::NotFound("learner"))?;
    match &req.destination {
        Destination::Dashboard => {}
        Destination::Course { slug } => {
            enrolments::authorise(tx, now, &learner.id, slug)?;
        }
        Destination::Lesson { slug, lesson_id } => {
            let (course, _) = enrolments::authorise(tx, now, &learner.id, slug)?;
            let ok = repo::courses::get_lesson(tx, lesson_id)?
                .map(|l| l.course_id == course.id)
                .unwrap_or(false);
            if !ok {
                return Err(CoreError::NotFound("lesson"));
            }
        }
    }
    prepare_learner_session(
        now,
        secret,
        policy,
        &learner.id,
        &req.destination,
        &req.via,
        &req.client,
        serde_json::Map::new(),
    )
    .write(tx)
}

/// A learner session about to start: its row and its `session.started`
/// audit entry, not yet written. [`Opening::write`] writes both; the LTI
/// launch writes them in one statement with the launch's other rows
/// ([`crate::lti::finish_launch`]).
#[derive(Debug)]
pub struct Opening {
    pub started: Started,
    pub row: Session,
    pub audit: AuditEntry,
}

impl Opening {
    pub fn write(self, tx: &mut Tx) -> Result<Started, CoreError> {
        repo::sessions::insert(tx, &self.row)?;
        repo::audit::append(tx, &self.audit)?;
        Ok(self.started)
    }
}

/// The session of a learner whose access to `destination` the caller has
/// just checked (the LTI door authorises the enrolment it upserted in the
/// same transaction): the session row and its one `session.started` audit
/// entry, which also carries the caller's `detail` (platform, course, …).
#[allow(clippy::too_many_arguments)]
pub fn prepare_learner_session(
    now: DateTime<Utc>,
    secret: &Secret,
    policy: &SessionPolicy,
    learner_id: &str,
    destination: &Destination,
    via: &str,
    client: &ClientInfo,
    mut detail: serde_json::Map<String, serde_json::Value>,
) -> Opening {
    let subject = if via == "preview" {
        "preview"
    } else {
        "learner"
    };
    let (started, row) = session_row(
        now,
        secret,
        subject,
        Some(learner_id.to_string()),
        None,
        via,
        policy.learner_idle,
        policy.learner_absolute,
        client,
        destination.path(),
    );
    detail.insert("session_id".into(), json!(started.session_id));
    detail.insert("via".into(), json!(via));
    detail.insert("destination".into(), json!(destination));
    let audit = audit::entry(
        now,
        &Actor {
            kind: "learner",
            id: Some(learner_id.to_string()),
            ip: client.ip.clone(),
            user_agent: client.user_agent.clone(),
        },
        "session.started",
        Some(("learner", learner_id)),
        serde_json::Value::Object(detail),
    );
    Opening {
        started,
        row,
        audit,
    }
}

/// Starts a staff session.
pub fn start_staff_session(
    tx: &mut Tx,
    now: DateTime<Utc>,
    secret: &Secret,
    policy: &SessionPolicy,
    staff_id: &str,
    via: &str,
    client: &ClientInfo,
) -> Result<Started, CoreError> {
    let staff = repo::staff::get(tx, staff_id)?.ok_or(CoreError::NotFound("staff user"))?;
    if !staff.active {
        return Err(CoreError::Forbidden(
            "this staff account is deactivated".into(),
        ));
    }
    let (started, row) = session_row(
        now,
        secret,
        "staff",
        None,
        Some(staff.id.clone()),
        via,
        policy.staff_idle,
        policy.staff_absolute,
        client,
        "/staff".into(),
    );
    repo::sessions::insert(tx, &row)?;
    audit::record(
        tx,
        now,
        &Actor {
            kind: "staff",
            id: Some(staff.id.clone()),
            ip: client.ip.clone(),
            user_agent: client.user_agent.clone(),
        },
        "session.started",
        Some(("staff", &staff.id)),
        json!({ "session_id": started.session_id, "via": via }),
    )?;
    Ok(started)
}

/// A new session's row and what its caller learns of it (the token, which
/// is never stored).
#[allow(clippy::too_many_arguments)]
fn session_row(
    now: DateTime<Utc>,
    secret: &Secret,
    subject_kind: &str,
    learner_id: Option<String>,
    staff_id: Option<String>,
    via: &str,
    idle: Duration,
    absolute: Duration,
    client: &ClientInfo,
    redirect: String,
) -> (Started, Session) {
    let token = tokens::mint_ordered(TOKEN_PREFIX);
    let n = now.naive_utc();
    let absolute_expires_at = now + absolute;
    let row = Session {
        id: crate::ids::new_id(),
        token_hash: secret.hash_token("session", &token),
        subject_kind: subject_kind.to_string(),
        learner_id: learner_id.clone(),
        staff_id: staff_id.clone(),
        via: via.to_string(),
        created_at: n,
        last_seen_at: n,
        idle_timeout_secs: idle.num_seconds(),
        absolute_expires_at: absolute_expires_at.naive_utc(),
        revoked_at: None,
        ip: client.ip.clone(),
        user_agent: client
            .user_agent
            .as_ref()
            .map(|u| u.chars().take(300).collect()),
    };
    let started = Started {
        token,
        session_id: row.id.clone(),
        learner_id,
        staff_id,
        redirect,
        absolute_expires_at,
    };
    (started, row)
}

/// An authenticated session.
#[derive(Debug, Clone, Serialize)]
pub struct Principal {
    pub session_id: String,
    /// learner | staff | preview
    pub kind: String,
    pub learner_id: Option<String>,
    pub staff_id: Option<String>,
    pub via: String,
    /// True when `last_seen_at` is old enough to be worth a write.
    pub needs_touch: bool,
}

/// Validates a session token (read-only). Unknown, malformed and revoked
/// tokens are `Unauthenticated`; timed-out ones `SessionExpired`.
pub fn authenticate(
    tx: &mut Tx,
    now: DateTime<Utc>,
    secret: &Secret,
    token: &str,
) -> Result<Principal, CoreError> {
    if !tokens::looks_like(TOKEN_PREFIX, token) {
        return Err(CoreError::Unauthenticated);
    }
    let s = repo::sessions::find_by_hash(tx, &secret.hash_token("session", token))?
        .ok_or(CoreError::Unauthenticated)?;
    if s.revoked_at.is_some() {
        return Err(CoreError::Unauthenticated);
    }
    let n = now.naive_utc();
    if n >= s.absolute_expires_at || n >= s.last_seen_at + Duration::seconds(s.idle_timeout_secs) {
        return Err(CoreError::SessionExpired);
    }
    Ok(Principal {
        needs_touch: n - s.last_seen_at >= Duration::seconds(TOUCH_INTERVAL_SECS),
        session_id: s.id,
        kind: s.subject_kind,
        learner_id: s.learner_id,
        staff_id: s.staff_id,
        via: s.via,
    })
}

pub fn touch(tx: &mut Tx, now: DateTime<Utc>, session_id: &str) -> Result<(), CoreError> {
    Ok(repo::sessions::touch(tx, session_id, now.naive_utc())?)
}

/// Signs out one session.
pub fn end(tx: &mut Tx, now: DateTime<Utc>, session_id: &str) -> Result<(), CoreError> {
    Ok(repo::sessions::revoke(tx, session_id, now.naive_utc())?)
}

/// Signs a learner out everywhere.
pub fn end_all_for_learner(
    tx: &mut Tx,
    now: DateTime<Utc>,
    learner_id: &str,
    actor: &Actor,
) -> Result<usize, CoreError> {
    let n = repo::sessions::revoke_all_for_learner(tx, learner_id, now.naive_utc())?;
    audit::record(
        tx,
        now,
        actor,
        "sessions.revoked_all",
        Some(("learner", learner_id)),
        json!({ "count": n }),
    )?;
    Ok(n)
}
