//! Append-only audit entries. Never pass a token or code in `detail`.

use chrono::{DateTime, Utc};
use coursegate_store::{models::AuditEntry, repo, Tx};
use serde_json::Value;

use crate::{ids::new_id, CoreError};

/// Who did it, from where.
#[derive(Debug, Clone, Default)]
pub struct Actor {
    /// learner | staff | api | system | lti | anonymous
    pub kind: &'static str,
    pub id: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

impl Actor {
    pub fn system() -> Self {
        Self {
            kind: "system",
            ..Default::default()
        }
    }

    pub fn cli() -> Self {
        Self {
            kind: "cli",
            ..Default::default()
        }
    }
}

pub fn record(
    tx: &mut Tx,
    now: DateTime<Utc>,
    actor: &Actor,
    action: &str,
    subject: Option<(&str, &str)>,
    detail: Value,
) -> Result<(), CoreError> {
    repo::audit::append(tx, &entry(now, actor, action, subject, detail))?;
    Ok(())
}

/// The row [`record`] writes, for a caller that writes it with others.
pub fn entry(
    now: DateTime<Utc>,
    actor: &Actor,
    action: &str,
    subject: Option<(&str, &str)>,
    detail: Value,
) -> AuditEntry {
    AuditEntry {
        id: new_id(),
        at: now.naive_utc(),
        actor_kind: actor.kind.to_string(),
        actor_id: actor.id.clone(),
        action: action.to_string(),
        subject_kind: subject.map(|s| s.0.to_string()),
        subject_id: subject.map(|s| s.1.to_string()),
        ip: actor.ip.clone(),
        user_agent: actor
            .user_agent
            .as_ref()
            .map(|u| u.chars().take(300).collect()),
        detail: detail.to_string(),
    }
}
