//! Magic links, sign-in codes, device bindings and database-kept rate limits.
//! Only keyed hashes of secrets reach these tables.

use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;

use crate::models::{DeviceBinding, MagicLink, MagicLinkActivity, RateLimit, SigninCode};
use crate::schema::{device_bindings, magic_link_activity, magic_links, rate_limits, signin_codes};
use crate::{update_where, DbConn, StoreError};

/// Inserts a link with its (empty) activity row.
pub fn insert(conn: &mut DbConn, row: &MagicLink) -> Result<(), StoreError> {
    direct!(conn, {
        diesel::insert_into(magic_links::table)
            .values(row)
            .execute(conn)?;
        diesel::insert_into(magic_link_activity::table)
            .values(&MagicLinkActivity {
                link_id: row.id.clone(),
                sent_at: None,
                last_opened_at: None,
                opened_count: 0,
                suspected_scanner: false,
                last_redeemed_at: None,
            })
            .execute(conn)?;
        Ok(())
    })
}

pub fn activity(conn: &mut DbConn, link_id: &str) -> Result<Option<MagicLinkActivity>, StoreError> {
    direct!(conn, {
        Ok(magic_link_activity::table
            .find(link_id)
            .select(MagicLinkActivity::as_select())
            .get_result(conn)
            .optional()?)
    })
}

pub fn mark_redeemed(
    conn: &mut DbConn,
    link_id: &str,
    now: NaiveDateTime,
) -> Result<(), StoreError> {
    direct!(conn, {
        update_where(
            magic_link_activity::table,
            magic_link_activity::table.primary_key().eq(link_id),
            magic_link_activity::last_redeemed_at.eq(Some(now)),
        )
        .execute(conn)?;
        Ok(())
    })
}

pub fn update(conn: &mut DbConn, row: &MagicLink) -> Result<(), StoreError> {
    direct!(conn, {
        update_where(
            magic_links::table,
            magic_links::table.primary_key().eq(&row.id),
            row,
        )
        .execute(conn)?;
        Ok(())
    })
}

pub fn get(conn: &mut DbConn, id: &str) -> Result<Option<MagicLink>, StoreError> {
    direct!(conn, {
        Ok(magic_links::table
            .find(id)
            .select(MagicLink::as_select())
            .get_result(conn)
            .optional()?)
    })
}

pub fn find_by_hash(conn: &mut DbConn, token_hash: &str) -> Result<Option<MagicLink>, StoreError> {
    direct!(conn, {
        Ok(magic_links::table
            .filter(magic_links::token_hash.eq(token_hash))
            .select(MagicLink::as_select())
            .get_result(conn)
            .optional()?)
    })
}

/// Like [`find_by_hash`], for a write transaction that will change the link's
/// counters: on PostgreSQL the row stays locked (`FOR UPDATE`) until the
/// transaction ends, so concurrent redemptions are counted one after another.
/// SQLite needs no lock: `BEGIN IMMEDIATE` already admits one writer at a time.
pub fn find_by_hash_for_update(
    conn: &mut DbConn,
    token_hash: &str,
) -> Result<Option<MagicLink>, StoreError> {
    match conn {
        DbConn::Postgres(c) => Ok(magic_links::table
            .filter(magic_links::token_hash.eq(token_hash))
            .select(MagicLink::as_select())
            .for_update()
            .get_result(c)
            .optional()?),
        DbConn::Sqlite(_) => find_by_hash(conn, token_hash),
    }
}

/// Marks every live (not revoked, not superseded) learner link of `kind`
/// for the learner — and, for access links, for the enrolment — superseded.
pub fn supersede_learner_links(
    conn: &mut DbConn,
    learner_id: &str,
    kind: &str,
    enrolment_id: Option<&str>,
    now: NaiveDateTime,
) -> Result<usize, StoreError> {
    direct!(conn, {
        let mut q = diesel::update(magic_links::table)
            .filter(magic_links::subject_id.eq(learner_id))
            .filter(magic_links::purpose.eq("learner"))
            .filter(magic_links::kind.eq(kind))
            .filter(magic_links::superseded_at.is_null())
            .filter(magic_links::revoked_at.is_null())
            .into_boxed();
        if let Some(e) = enrolment_id {
            q = q.filter(magic_links::enrolment_id.eq(e));
        }
        Ok(q.set(magic_links::superseded_at.eq(Some(now)))
            .execute(conn)?)
    })
}

/// Supersedes every live link of a staff user.
pub fn supersede_staff_links(
    conn: &mut DbConn,
    staff_id: &str,
    now: NaiveDateTime,
) -> Result<usize, StoreError> {
    direct!(conn, {
        Ok(update_where(
            magic_links::table,
            magic_links::subject_id
                .eq(staff_id)
                .and(magic_links::purpose.eq("staff"))
                .and(magic_links::superseded_at.is_null())
                .and(magic_links::revoked_at.is_null()),
            magic_links::superseded_at.eq(Some(now)),
        )
        .execute(conn)?)
    })
}

/// Revokes every live link of a learner; returns how many.
pub fn revoke_all_for_learner(
    conn: &mut DbConn,
    learner_id: &str,
    now: NaiveDateTime,
) -> Result<usize, StoreError> {
    direct!(conn, {
        Ok(update_where(
            magic_links::table,
            magic_links::subject_id
                .eq(learner_id)
                .and(magic_links::purpose.eq("learner"))
                .and(magic_links::revoked_at.is_null()),
            magic_links::revoked_at.eq(Some(now)),
        )
        .execute(conn)?)
    })
}

/// A learner's links, newest first.
pub fn of_learner(
    conn: &mut DbConn,
    learner_id: &str,
    limit: i64,
) -> Result<Vec<MagicLink>, StoreError> {
    direct!(conn, {
        Ok(magic_links::table
            .filter(magic_links::subject_id.eq(learner_id))
            .filter(magic_links::purpose.eq("learner"))
            .order((magic_links::created_at.desc(), magic_links::id.desc()))
            .limit(limit)
            .select(MagicLink::as_select())
            .load(conn)?)
    })
}

/// Records an open of the confirmation page (telemetry only: it changes
/// nothing about whether the link can be redeemed).
pub fn record_open(
    conn: &mut DbConn,
    id: &str,
    now: NaiveDateTime,
    scanner: bool,
) -> Result<(), StoreError> {
    direct!(conn, {
        if scanner {
            update_where(
                magic_link_activity::table,
                magic_link_activity::table.primary_key().eq(id),
                (
                    magic_link_activity::last_opened_at.eq(Some(now)),
                    magic_link_activity::opened_count.eq(magic_link_activity::opened_count + 1),
                    magic_link_activity::suspected_scanner.eq(true),
                ),
            )
            .execute(conn)?;
        } else {
            update_where(
                magic_link_activity::table,
                magic_link_activity::table.primary_key().eq(id),
                (
                    magic_link_activity::last_opened_at.eq(Some(now)),
                    magic_link_activity::opened_count.eq(magic_link_activity::opened_count + 1),
                ),
            )
            .execute(conn)?;
        }
        Ok(())
    })
}

pub fn mark_sent(conn: &mut DbConn, id: &str, now: NaiveDateTime) -> Result<(), StoreError> {
    direct!(conn, {
        update_where(
            magic_link_activity::table,
            magic_link_activity::table.primary_key().eq(id),
            magic_link_activity::sent_at.eq(Some(now)),
        )
        .execute(conn)?;
        Ok(())
    })
}

// ---- sign-in codes ----

pub fn insert_code(conn: &mut DbConn, row: &SigninCode) -> Result<(), StoreError> {
    direct!(conn, {
        diesel::insert_into(signin_codes::table)
            .values(row)
            .execute(conn)?;
        Ok(())
    })
}

pub fn update_code(conn: &mut DbConn, row: &SigninCode) -> Result<(), StoreError> {
    direct!(conn, {
        update_where(
            signin_codes::table,
            signin_codes::table.primary_key().eq(&row.id),
            row,
        )
        .execute(conn)?;
        Ok(())
    })
}

/// The newest unused code of a purpose bound to a browser.
pub fn latest_code(
    conn: &mut DbConn,
    browser_hash: &str,
    purpose: &str,
) -> Result<Option<SigninCode>, StoreError> {
    direct!(conn, {
        Ok(signin_codes::table
            .filter(signin_codes::browser_hash.eq(browser_hash))
            .filter(signin_codes::purpose.eq(purpose))
            .filter(signin_codes::used_at.is_null())
            .order((signin_codes::created_at.desc(), signin_codes::id.desc()))
            .select(SigninCode::as_select())
            // Several rows may match: the newest only (a bound LIMIT, see the crate docs).
            .first(conn)
            .optional()?)
    })
}

/// [`latest_code`] for a transaction that will count an attempt: the row is
/// locked on PostgreSQL so parallel guesses are counted one by one (see
/// [`find_by_hash_for_update`]).
pub fn latest_code_for_update(
    conn: &mut DbConn,
    browser_hash: &str,
    purpose: &str,
) -> Result<Option<SigninCode>, StoreError> {
    match conn {
        DbConn::Postgres(c) => Ok(signin_codes::table
            .filter(signin_codes::browser_hash.eq(browser_hash))
            .filter(signin_codes::purpose.eq(purpose))
            .filter(signin_codes::used_at.is_null())
            .order((signin_codes::created_at.desc(), signin_codes::id.desc()))
            .select(SigninCode::as_select())
            .for_update()
            .first(c)
            .optional()?),
        DbConn::Sqlite(_) => latest_code(conn, browser_hash, purpose),
    }
}

/// Invalidates the unused codes of a browser and purpose (a new code replaces them).
pub fn retire_codes(
    conn: &mut DbConn,
    browser_hash: &str,
    purpose: &str,
    now: NaiveDateTime,
) -> Result<usize, StoreError> {
    direct!(conn, {
        Ok(update_where(
            signin_codes::table,
            signin_codes::browser_hash
                .eq(browser_hash)
                .and(signin_codes::purpose.eq(purpose))
                .and(signin_codes::used_at.is_null()),
            signin_codes::used_at.eq(Some(now)),
        )
        .execute(conn)?)
    })
}

// ---- device bindings ----

pub fn is_bound(conn: &mut DbConn, link_id: &str, device_hash: &str) -> Result<bool, StoreError> {
    direct!(conn, {
        let n: i64 = device_bindings::table
            .filter(device_bindings::link_id.eq(link_id))
            .filter(device_bindings::device_hash.eq(device_hash))
            .count()
            .get_result(conn)?;
        Ok(n > 0)
    })
}

pub fn bind(conn: &mut DbConn, row: &DeviceBinding) -> Result<(), StoreError> {
    if is_bound(conn, &row.link_id, &row.device_hash)? {
        return Ok(());
    }
    diesel::insert_into(device_bindings::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

pub fn devices_of(conn: &mut DbConn, link_id: &str) -> Result<i64, StoreError> {
    direct!(conn, {
        Ok(device_bindings::table
            .filter(device_bindings::link_id.eq(link_id))
            .count()
            .get_result(conn)?)
    })
}

// ---- rate limits ----

/// Counts one hit against `key` in a fixed window of `window` starting at the
/// first hit. Returns `Ok(true)` when the hit is within `limit` (and counted),
/// `Ok(false)` when the limit is reached (not counted).
pub fn hit(
    conn: &mut DbConn,
    key: &str,
    now: NaiveDateTime,
    window: Duration,
    limit: i32,
) -> Result<bool, StoreError> {
    let fresh = RateLimit {
        key: key.to_string(),
        window_start: now,
        count: 0,
    };
    match conn {
        DbConn::Sqlite(c) => {
            diesel::insert_into(rate_limits::table)
                .values(&fresh)
                .on_conflict_do_nothing()
                .execute(c)?;
        }
        DbConn::Postgres(c) => {
            diesel::insert_into(rate_limits::table)
                .values(&fresh)
                .on_conflict_do_nothing()
                .execute(c)?;
        }
    }
    // Locked on PostgreSQL so that parallel hits on one key are counted one
    // after another (SQLite's BEGIN IMMEDIATE already serialises writers).
    let row: RateLimit = match conn {
        DbConn::Postgres(c) => rate_limits::table
            .find(key)
            .select(RateLimit::as_select())
            .for_update()
            .get_result(c)?,
        DbConn::Sqlite(c) => rate_limits::table
            .find(key)
            .select(RateLimit::as_select())
            .get_result(c)?,
    };
    if row.window_start + window <= now {
        update_where(
            rate_limits::table,
            rate_limits::table.primary_key().eq(key),
            (rate_limits::window_start.eq(now), rate_limits::count.eq(1)),
        )
        .execute(conn)?;
        return Ok(limit >= 1);
    }
    if row.count >= limit {
        return Ok(false);
    }
    update_where(
        rate_limits::table,
        rate_limits::table.primary_key().eq(key),
        rate_limits::count.eq(rate_limits::count + 1),
    )
    .execute(conn)?;
    Ok(true)
}

/// Removes windows that ended before `before`.
pub fn purge_rate_limits(conn: &mut DbConn, before: NaiveDateTime) -> Result<usize, StoreError> {
    direct!(conn, {
        Ok(
            diesel::delete(rate_limits::table.filter(rate_limits::window_start.lt(before)))
                .execute(conn)?,
        )
    })
}
