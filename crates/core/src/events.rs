//! Domain events, written to the outbox in the same transaction as the
//! change. Consumers (webhooks, grade passback) fan out from these rows.

use chrono::{DateTime, Utc};
use coursegate_store::{models::OutboxMessage, repo, Tx};
use serde_json::{json, Value};

use crate::{ids::new_id, CoreError};

pub const ENROLMENT_GRANTED: &str = "enrolment.granted";
pub const ENROLMENT_REVOKED: &str = "enrolment.revoked";
pub const ENROLMENT_EXTENDED: &str = "enrolment.extended";
pub const COURSE_STARTED: &str = "course.started";
pub const LESSON_COMPLETED: &str = "lesson.completed";
pub const COURSE_COMPLETED: &str = "course.completed";
/// A learner link's email was accepted by the SMTP server.
pub const LINK_SENT: &str = "link.sent";
/// A learner link's confirmation page was opened (maybe by a mail scanner).
pub const LINK_OPENED: &str = "link.opened";
/// A learner link was redeemed: the learner is signed in.
pub const LINK_REDEEMED: &str = "link.redeemed";
/// An email will not be delivered (permanent failure or out of retries).
pub const EMAIL_FAILED: &str = "email.failed";

/// Outbox `kind` of domain events.
pub const KIND_EVENT: &str = "event";

/// Records one event: `{ "id", "type", "version": 1, "occurred_at", "data" }`.
pub fn emit(
    tx: &mut Tx,
    now: DateTime<Utc>,
    topic: &str,
    data: Value,
) -> Result<String, CoreError> {
    let id = new_id();
    let payload = json!({
        "id": id,
        "type": topic,
        "version": 1,
        "occurred_at": now.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "data": data,
    });
    enqueue(tx, now, KIND_EVENT, topic, &payload, None, &id)?;
    Ok(id)
}

/// Inserts an outbox row of any kind (email, webhook, score, event).
/// With a `dedupe_key`, a second insert with the same key is a no-op.
pub fn enqueue(
    tx: &mut Tx,
    now: DateTime<Utc>,
    kind: &str,
    topic: &str,
    payload: &Value,
    dedupe_key: Option<String>,
    id: &str,
) -> Result<bool, CoreError> {
    let n = now.naive_utc();
    Ok(repo::outbox::insert(
        tx,
        &OutboxMessage {
            id: id.to_string(),
            kind: kind.to_string(),
            topic: topic.to_string(),
            payload: payload.to_string(),
            status: repo::outbox::PENDING.to_string(),
            attempts: 0,
            next_attempt_at: n,
            locked_until: None,
            last_error: None,
            dedupe_key,
            created_at: n,
            updated_at: n,
        },
    )?)
}
