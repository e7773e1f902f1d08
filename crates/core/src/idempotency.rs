//! `Idempotency-Key` for API writes.
//!
//! The record is claimed first, inside the same write transaction as the
//! effect, and completed with the response before commit. A concurrent
//! duplicate waits on the unique (key, Idempotency-Key) index (SQLite: on the
//! single writer) and then sees the completed record, so it replays instead of
//! acting twice. A request that fails rolls back with its record, so a retry
//! with the same key runs again.

use chrono::{DateTime, Duration, Utc};
use coursegate_store::{models::IdempotencyKey, repo, Tx};
use sha2::{Digest, Sha256};

use crate::{ids::new_id, CoreError};

/// How long a key is remembered.
pub const RETENTION_HOURS: i64 = 24;

/// What the caller should do.
#[derive(Debug, Clone)]
pub enum Begin {
    /// First use: run the request, then call [`complete`] with this record id.
    Fresh { record_id: String },
    /// Seen before with the same request: return this response.
    Replay { status: u16, body: String },
}

/// Fingerprint of a request (method, path and canonical body).
pub fn fingerprint(method: &str, path: &str, canonical_body: &str) -> String {
    let mut h = Sha256::new();
    h.update(method.as_bytes());
    h.update([0]);
    h.update(path.as_bytes());
    h.update([0]);
    h.update(canonical_body.as_bytes());
    hex::encode(h.finalize())
}

/// Validates the header value: 1 to 255 visible ASCII characters.
pub fn validate_key(key: &str) -> Result<(), CoreError> {
    if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| (0x21..0x7f).contains(&b)) {
        return Err(CoreError::refused(
            "invalid_idempotency_key",
            "Idempotency-Key must be 1 to 255 visible ASCII characters",
        ));
    }
    Ok(())
}

pub fn begin(
    tx: &mut Tx,
    now: DateTime<Utc>,
    api_key_id: &str,
    key: &str,
    request_hash: &str,
) -> Result<Begin, CoreError> {
    validate_key(key)?;
    let n = now.naive_utc();
    if let Some(old) = repo::api::find_idempotency(tx, api_key_id, key)? {
        if old.expires_at <= n {
            repo::api::delete_idempotency(tx, &old.id)?;
        }
    }
    let row = IdempotencyKey {
        id: new_id(),
        api_key_id: api_key_id.to_string(),
        idem_key: key.to_string(),
        request_hash: request_hash.to_string(),
        response_status: None,
        response_body: None,
        created_at: n,
        expires_at: n + Duration::hours(RETENTION_HOURS),
    };
    if repo::api::claim_idempotency(tx, &row)? {
        return Ok(Begin::Fresh { record_id: row.id });
    }
    let held = repo::api::find_idempotency(tx, api_key_id, key)?.ok_or(CoreError::Busy)?;
    if !crate::tokens::ct_eq(&held.request_hash, request_hash) {
        return Err(CoreError::refused(
            "idempotency_key_reused",
            "this Idempotency-Key was already used with a different request; use a new key for a new request",
        ));
    }
    match (held.response_status, held.response_body) {
        (Some(s), Some(b)) => Ok(Begin::Replay {
            status: u16::try_from(s).unwrap_or(200),
            body: b,
        }),
        _ => Err(CoreError::refused(
            "idempotency_key_in_use",
            "a request with this Idempotency-Key is still being processed; retry shortly",
        )),
    }
}

pub fn complete(tx: &mut Tx, record_id: &str, status: u16, body: &str) -> Result<(), CoreError> {
    repo::api::complete_idempotency(tx, record_id, i32::from(status), body)?;
    Ok(())
}
