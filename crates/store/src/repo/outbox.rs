//! The durable outbox. Producers insert rows in the same transaction as the
//! change that causes them; workers claim due rows with a lease, deliver them
//! outside any transaction, then record the outcome.
//!
//! Claiming is a conditional UPDATE on each candidate (`locked_until` empty or
//! past): on PostgreSQL a concurrent claimer re-evaluates the condition after
//! the first commits and updates nothing, on SQLite the single writer
//! serialises claims. So several instances never deliver the same row twice
//! while a lease is live.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::Page;
use crate::models::OutboxMessage;
use crate::schema::outbox;
use crate::{update_where, DbConn, StoreError};

pub const PENDING: &str = "pending";
pub const SENT: &str = "sent";
pub const DEAD: &str = "dead";
/// Domain events only recorded for consumers (webhooks fan-out) use this status
/// until a consumer has processed them.
pub const DONE: &str = "done";

/// Inserts a row; when `dedupe_key` is set and already present, nothing is
/// inserted and `Ok(false)` is returned (idempotent producers).
pub fn insert(conn: &mut DbConn, row: &OutboxMessage) -> Result<bool, StoreError> {
    direct!(conn, {
        if let Some(key) = &row.dedupe_key {
            let exists: i64 = outbox::table
                .filter(outbox::dedupe_key.eq(key))
                .count()
                .get_result(conn)?;
            if exists > 0 {
                return Ok(false);
            }
        }
        diesel::insert_into(outbox::table)
            .values(row)
            .execute(conn)?;
        Ok(true)
    })
}

/// Claims up to `limit` due rows of the given kinds until `lease_until`.
pub fn claim_due(
    conn: &mut DbConn,
    kinds: &[&str],
    now: NaiveDateTime,
    lease_until: NaiveDateTime,
    limit: i64,
) -> Result<Vec<OutboxMessage>, StoreError> {
    let candidates: Vec<String> = outbox::table
        .filter(outbox::status.eq(PENDING))
        .filter(outbox::kind.eq_any(kinds))
        .filter(outbox::next_attempt_at.le(now))
        .filter(
            outbox::locked_until
                .is_null()
                .or(outbox::locked_until.lt(now)),
        )
        .order(outbox::next_attempt_at.asc())
        .limit(limit)
        .select(outbox::id)
        .load(conn)?;
    let mut claimed = Vec::new();
    for id in candidates {
        let n = update_where(
            outbox::table,
            outbox::table
                .primary_key()
                .eq(&id)
                .and(outbox::status.eq(PENDING))
                .and(
                    outbox::locked_until
                        .is_null()
                        .or(outbox::locked_until.lt(now)),
                ),
            (
                outbox::locked_until.eq(Some(lease_until)),
                outbox::attempts.eq(outbox::attempts + 1),
                outbox::updated_at.eq(now),
            ),
        )
        .execute(conn)?;
        if n == 1 {
            if let Some(row) = get(conn, &id)? {
                claimed.push(row);
            }
        }
    }
    Ok(claimed)
}

pub fn get(conn: &mut DbConn, id: &str) -> Result<Option<OutboxMessage>, StoreError> {
    direct!(conn, {
        Ok(outbox::table
            .find(id)
            .select(OutboxMessage::as_select())
            .get_result(conn)
            .optional()?)
    })
}

pub fn mark_sent(
    conn: &mut DbConn,
    id: &str,
    now: NaiveDateTime,
    note: Option<&str>,
) -> Result<(), StoreError> {
    direct!(conn, {
        update_where(
            outbox::table,
            outbox::table.primary_key().eq(id),
            (
                outbox::status.eq(SENT),
                outbox::locked_until.eq(None::<NaiveDateTime>),
                outbox::last_error.eq(note),
                outbox::updated_at.eq(now),
            ),
        )
        .execute(conn)?;
        Ok(())
    })
}

/// Records a failed attempt: back to pending at `next_attempt_at`, or dead.
pub fn mark_failed(
    conn: &mut DbConn,
    id: &str,
    now: NaiveDateTime,
    error: &str,
    next_attempt_at: Option<NaiveDateTime>,
) -> Result<(), StoreError> {
    direct!(conn, {
        let status = if next_attempt_at.is_some() {
            PENDING
        } else {
            DEAD
        };
        update_where(
            outbox::table,
            outbox::table.primary_key().eq(id),
            (
                outbox::status.eq(status),
                outbox::locked_until.eq(None::<NaiveDateTime>),
                outbox::last_error.eq(Some(error)),
                outbox::next_attempt_at.eq(next_attempt_at.unwrap_or(now)),
                outbox::updated_at.eq(now),
            ),
        )
        .execute(conn)?;
        Ok(())
    })
}

/// Puts a dead (or sent) row back in the queue for another attempt.
pub fn replay(conn: &mut DbConn, id: &str, now: NaiveDateTime) -> Result<bool, StoreError> {
    direct!(conn, {
        let n = update_where(
            outbox::table,
            outbox::table
                .primary_key()
                .eq(id)
                .and(outbox::status.ne(PENDING)),
            (
                outbox::status.eq(PENDING),
                outbox::attempts.eq(0),
                outbox::next_attempt_at.eq(now),
                outbox::locked_until.eq(None::<NaiveDateTime>),
                outbox::updated_at.eq(now),
            ),
        )
        .execute(conn)?;
        Ok(n == 1)
    })
}

pub fn list(
    conn: &mut DbConn,
    status: Option<&str>,
    kind: Option<&str>,
    page: Page,
) -> Result<Vec<OutboxMessage>, StoreError> {
    direct!(conn, {
        let mut q = outbox::table
            .select(OutboxMessage::as_select())
            .into_boxed();
        if let Some(s) = status {
            q = q.filter(outbox::status.eq(s.to_string()));
        }
        if let Some(k) = kind {
            q = q.filter(outbox::kind.eq(k.to_string()));
        }
        Ok(q.order((outbox::created_at.desc(), outbox::id.desc()))
            .limit(page.limit)
            .offset(page.offset)
            .load(conn)?)
    })
}

/// Rows of one topic family, oldest first (tests and staff views).
pub fn by_topic(conn: &mut DbConn, topic: &str) -> Result<Vec<OutboxMessage>, StoreError> {
    direct!(conn, {
        Ok(outbox::table
            .filter(outbox::topic.eq(topic))
            .order(outbox::created_at.asc())
            .select(OutboxMessage::as_select())
            .load(conn)?)
    })
}

pub fn count_by_status(conn: &mut DbConn, status: &str) -> Result<i64, StoreError> {
    direct!(conn, {
        Ok(outbox::table
            .filter(outbox::status.eq(status))
            .count()
            .get_result(conn)?)
    })
}

/// Replaces a row's payload (the email worker scrubs secrets after sending).
pub fn set_payload(conn: &mut DbConn, id: &str, payload: &str) -> Result<(), StoreError> {
    direct!(conn, {
        update_where(
            outbox::table,
            outbox::table.primary_key().eq(id),
            outbox::payload.eq(payload),
        )
        .execute(conn)?;
        Ok(())
    })
}
/// Marks a claimed row done (an event processed by its consumer).
pub fn mark_done(conn: &mut DbConn, id: &str, now: NaiveDateTime) -> Result<(), StoreError> {
    direct!(conn, {
        update_where(
            outbox::table,
            outbox::table.primary_key().eq(id),
            (
                outbox::status.eq(DONE),
                outbox::locked_until.eq(None::<NaiveDateTime>),
                outbox::updated_at.eq(now),
            ),
        )
        .execute(conn)?;
        Ok(())
    })
}

/// Re-queues dead rows whose dedupe key starts with `prefix` (a webhook
/// endpoint enabled again). Returns how many.
pub fn replay_by_dedupe_prefix(
    conn: &mut DbConn,
    prefix: &str,
    now: NaiveDateTime,
) -> Result<usize, StoreError> {
    direct!(conn, {
        let escaped = prefix
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        Ok(diesel::update(
            outbox::table
                .filter(outbox::status.eq(DEAD))
                .filter(outbox::dedupe_key.like(format!("{escaped}%")).escape('\\')),
        )
        .set((
            outbox::status.eq(PENDING),
            outbox::attempts.eq(0),
            outbox::next_attempt_at.eq(now),
            outbox::locked_until.eq(None::<NaiveDateTime>),
            outbox::updated_at.eq(now),
        ))
        .execute(conn)?)
    })
}

/// Deletes rows of `kind` that were processed (`done`) before `before`: domain
/// events once their webhooks are queued. Returns how many.
pub fn purge_done(
    conn: &mut DbConn,
    kind: &str,
    before: NaiveDateTime,
) -> Result<usize, StoreError> {
    direct!(conn, {
        Ok(diesel::delete(
            outbox::table
                .filter(outbox::kind.eq(kind))
                .filter(outbox::status.eq(DONE))
                .filter(outbox::updated_at.lt(before)),
        )
        .execute(conn)?)
    })
}
