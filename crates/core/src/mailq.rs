//! Emails go through the outbox: a row of kind `email`, written in the same
//! transaction as the change that causes it, delivered by the worker.
//!
//! The payload names a template of the mail crate and its context. It holds
//! the link (and code) until the mail is sent; the worker then scrubs them
//! from the row ([`scrubbed`]), so the database keeps only hashes afterwards.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use coursegate_store::repo;

use crate::{
    audit::{self, Actor},
    events,
    ids::new_id,
    links, CoreError, Tx,
};

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
/// True when the message's link or code was removed (after sending, or when
/// it went dead): sending it again would deliver a mail that cannot work.
pub fn is_scrubbed(payload: &Value) -> bool {
    payload
        .get("context")
        .and_then(Value::as_object)
        .is_some_and(|ctx| {
            ["link", "code"]
                .iter()
                .any(|k| ctx.get(*k) == Some(&json!(REMOVED)))
        })
}

const REMOVED: &str = "[removed after sending]";

pub fn scrubbed(payload: &Value) -> Value {
    let mut p = payload.clone();
    if let Some(ctx) = p.get_mut("context").and_then(Value::as_object_mut) {
        for k in ["link", "code"] {
            if ctx.contains_key(k) {
                ctx.insert(k.to_string(), json!(REMOVED));
            }
        }
    }
    p
}

/// What the staff outbox view may show of a queued mail: the payload with
/// its sign-in link and code replaced by placeholders, and the secret values
/// themselves, so that whatever renders the mail can also blank any other
/// place they might surface. Staff must not be able to sign in as a learner
/// by reading the outbox.
#[derive(Debug, Clone)]
pub struct Redacted {
    pub payload: Value,
    pub secrets: Vec<String>,
}

/// The placeholder for a redacted link.
pub const LINK_HIDDEN: &str = "[sign-in link hidden in the console]";
/// The placeholder for a redacted code.
pub const CODE_HIDDEN: &str = "[code hidden]";

pub fn redacted(payload: &Value) -> Redacted {
    let mut p = payload.clone();
    let mut secrets = Vec::new();
    if let Some(ctx) = p.get_mut("context").and_then(Value::as_object_mut) {
        for (k, placeholder) in [("link", LINK_HIDDEN), ("code", CODE_HIDDEN)] {
            if let Some(v) = ctx.get(k) {
                if let Some(s) = v.as_str().filter(|s| !s.is_empty() && *s != REMOVED) {
                    secrets.push(s.to_string());
                    // The token part of a link on its own, in case a template
                    // shows it apart from the address.
                    if let Some((_, tail)) = s.rsplit_once('/') {
                        if tail.len() >= 16 {
                            secrets.push(tail.to_string());
                        }
                    }
                } else if let Some(n) = v.as_u64() {
                    secrets.push(n.to_string());
                }
                ctx.insert(k.to_string(), json!(placeholder));
            }
        }
    }
    Redacted {
        payload: p,
        secrets,
    }
}

/// `text` with every secret blanked out.
pub fn blank_secrets(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_string();
    for s in secrets {
        if !s.is_empty() {
            out = out.replace(s.as_str(), "[hidden]");
        }
    }
    out
}

fn str_of<'a>(payload: &'a Value, key: &str) -> Option<&'a str> {
    payload.get(key).and_then(Value::as_str)
}

/// What the SMTP server said when it took a mail.
#[derive(Debug, Clone)]
pub struct Accepted<'a> {
    pub message_id: &'a str,
    pub smtp_response: &'a str,
}

/// Records a delivered mail (one transaction): the row is sent and its
/// secrets scrubbed, the link it carries is marked sent (and `link.sent`
/// emitted), and the delivery is audited.
pub fn delivered(
    tx: &mut Tx,
    now: DateTime<Utc>,
    outbox_id: &str,
    payload: &Value,
    attempt: i32,
    accepted: Accepted<'_>,
) -> Result<(), CoreError> {
    let n = now.naive_utc();
    repo::outbox::mark_sent(tx, outbox_id, n, Some(accepted.smtp_response))?;
    repo::outbox::set_payload(tx, outbox_id, &scrubbed(payload).to_string())?;
    let link_id = str_of(payload, "link_id");
    if let Some(l) = link_id {
        repo::links::mark_sent(tx, l, n)?;
        if let Some(link) = repo::links::get(tx, l)? {
            links::emit_link_event(
                tx,
                now,
                events::LINK_SENT,
                &link,
                json!({ "message_id": accepted.message_id }),
            )?;
        }
    }
    audit::record(
        tx,
        now,
        &Actor::system(),
        "email.sent",
        Some((
            str_of(payload, "subject_kind").unwrap_or("email"),
            str_of(payload, "subject_id").unwrap_or(""),
        )),
        json!({
            "outbox_id": outbox_id, "template": str_of(payload, "template"), "link_id": link_id,
            "message_id": accepted.message_id, "smtp_response": accepted.smtp_response,
            "attempt": attempt,
        }),
    )?;
    Ok(())
}

/// Records a failed delivery attempt. With `retry_at` the row waits for its
/// next attempt; without, it is dead: its secrets are scrubbed (nobody will
/// receive them, so no plaintext token stays in the database), the failure
/// is audited and `email.failed` is emitted.
pub fn failed(
    tx: &mut Tx,
    now: DateTime<Utc>,
    outbox_id: &str,
    payload: &Value,
    attempts: i32,
    error: &str,
    retry_at: Option<DateTime<Utc>>,
) -> Result<(), CoreError> {
    let n = now.naive_utc();
    repo::outbox::mark_failed(tx, outbox_id, n, error, retry_at.map(|t| t.naive_utc()))?;
    if retry_at.is_some() {
        return Ok(());
    }
    repo::outbox::set_payload(tx, outbox_id, &scrubbed(payload).to_string())?;
    let subject_kind = str_of(payload, "subject_kind").unwrap_or("email");
    let subject_id = str_of(payload, "subject_id").unwrap_or("");
    let template = str_of(payload, "template");
    audit::record(
        tx,
        now,
        &Actor::system(),
        "email.dead",
        Some((subject_kind, subject_id)),
        json!({ "outbox_id": outbox_id, "template": template, "error": error, "attempts": attempts }),
    )?;
    let learner_id = (subject_kind == "learner").then_some(subject_id);
    events::emit(
        tx,
        now,
        events::EMAIL_FAILED,
        json!({
            "email_id": outbox_id,
            "template": template,
            "to": str_of(payload, "to"),
            "learner_id": learner_id,
            "link_id": str_of(payload, "link_id"),
            "error": error,
            "attempts": attempts,
        }),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_console_view_hides_links_and_codes() {
        let p = json!({ "to": "a@x.test", "context": { "link": "https://x/l/cgl_0123456789abcdefsecret", "code": "123456", "course": "A" } });
        let r = redacted(&p);
        let text = r.payload.to_string();
        assert!(!text.contains("cgl_0123456789abcdefsecret"));
        assert!(!text.contains("123456"));
        assert_eq!(r.payload["context"]["course"], "A");
        assert_eq!(
            blank_secrets(
                "go to https://x/l/cgl_0123456789abcdefsecret now, code 123456",
                &r.secrets
            ),
            "go to [hidden] now, code [hidden]"
        );
    }

    #[test]
    fn a_scrubbed_mail_is_recognised() {
        let p = json!({ "template": "learner_link", "context": { "link": "https://x/l/cgl_secret", "code": "123456", "course": "A" } });
        assert!(!is_scrubbed(&p));
        let s = scrubbed(&p);
        assert!(is_scrubbed(&s));
        assert_eq!(s["context"]["course"], "A");
        assert!(!s.to_string().contains("cgl_secret"));
        // A mail without a link or code (a notice) is never "scrubbed".
        assert!(!is_scrubbed(&scrubbed(
            &json!({ "context": { "course": "A" } })
        )));
    }
}
