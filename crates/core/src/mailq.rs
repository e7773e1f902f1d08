//! Emails go through the outbox: a row of kind `email`, written in the same
//! transaction as the change that causes it, delivered by the worker.
//!
//! The payload names a template of the mail crate and its context. It holds
//! the link (and code) until the mail is sent; the worker then scrubs them
//! from the row ([`scrubbed`]), so the database keeps only hashes afterwards.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::{events, ids::new_id, CoreError, Tx};

/// Outbox `kind` of emails.
pub const KIND_EMAIL: &str = "email";

/// One email to queue.
#[derive(Debug, Clone)]
pub struct Mail<'a> {
    pub template: &'a str,
    pub to: &'a str,
    pub to_name: Option<&'a str>,
    pub context: Value,
    /// The link this mail carries (its `sent_at` is set on delivery).
    pub link_id: Option<&'a str>,
    /// For the audit entry written on delivery.
    pub subject: (&'a str, &'a str),
}

/// Queues a mail; returns the outbox row id (also the Message-ID's local part).
pub fn enqueue(tx: &mut Tx, now: DateTime<Utc>, mail: Mail<'_>) -> Result<String, CoreError> {
    let id = new_id();
    let payload = json!({
        "template": mail.template,
        "to": mail.to,
        "to_name": mail.to_name,
        "context": mail.context,
        "link_id": mail.link_id,
        "subject_kind": mail.subject.0,
        "subject_id": mail.subject.1,
    });
    events::enqueue(
        tx,
        now,
        KIND_EMAIL,
        &format!("email.{}", mail.template),
        &payload,
        None,
        &id,
    )?;
    Ok(id)
}

/// The payload with secrets (link, code) removed, kept after delivery.
pub fn scrubbed(payload: &Value) -> Value {
    let mut p = payload.clone();
    if let Some(ctx) = p.get_mut("context").and_then(Value::as_object_mut) {
        for k in ["link", "code"] {
            if ctx.contains_key(k) {
                ctx.insert(k.to_string(), json!("[removed after sending]"));
            }
        }
    }
    p
}
