use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::models::Session;
use crate::schema::sessions;
use crate::{update_where, DbConn, StoreError};

pub fn insert(conn: &mut DbConn, row: &Session) -> Result<(), StoreError> {
    direct!(conn, {
        diesel::insert_into(sessions::table)
            .values(row)
            .execute(conn)?;
        Ok(())
    })
}

pub fn find_by_hash(conn: &mut DbConn, token_hash: &str) -> Result<Option<Session>, StoreError> {
    direct!(conn, {
        Ok(sessions::table
            .filter(sessions::token_hash.eq(token_hash))
            .select(Session::as_select())
            .get_result(conn)
            .optional()?)
    })
}

pub fn touch(conn: &mut DbConn, id: &str, now: NaiveDateTime) -> Result<(), StoreError> {
    direct!(conn, {
        update_where(
            sessions::table,
            sessions::table.primary_key().eq(id),
            sessions::last_seen_at.eq(now),
        )
        .execute(conn)?;
        Ok(())
    })
}

pub fn revoke(conn: &mut DbConn, id: &str, now: NaiveDateTime) -> Result<(), StoreError> {
    direct!(conn, {
        update_where(
            sessions::table,
            sessions::table
                .primary_key()
                .eq(id)
                .and(sessions::revoked_at.is_null()),
            sessions::revoked_at.eq(now),
        )
        .execute(conn)?;
        Ok(())
    })
}

/// Revokes every live session of a learner; returns how many.
pub fn revoke_all_for_learner(
    conn: &mut DbConn,
    learner_id: &str,
    now: NaiveDateTime,
) -> Result<usize, StoreError> {
    direct!(conn, {
        Ok(update_where(
            sessions::table,
            sessions::learner_id
                .eq(learner_id)
                .and(sessions::revoked_at.is_null()),
            sessions::revoked_at.eq(now),
        )
        .execute(conn)?)
    })
}

pub fn revoke_all_for_staff(
    conn: &mut DbConn,
    staff_id: &str,
    now: NaiveDateTime,
) -> Result<usize, StoreError> {
    direct!(conn, {
        Ok(update_where(
            sessions::table,
            sessions::staff_id
                .eq(staff_id)
                .and(sessions::revoked_at.is_null()),
            sessions::revoked_at.eq(now),
        )
        .execute(conn)?)
    })
}

pub fn of_learner(
    conn: &mut DbConn,
    learner_id: &str,
    limit: i64,
) -> Result<Vec<Session>, StoreError> {
    direct!(conn, {
        Ok(sessions::table
            .filter(sessions::learner_id.eq(learner_id))
            .order(sessions::created_at.desc())
            .limit(limit)
            .select(Session::as_select())
            .load(conn)?)
    })
}

/// Deletes sessions that ended before `before`; returns how many.
pub fn purge_ended(conn: &mut DbConn, before: NaiveDateTime) -> Result<usize, StoreError> {
    direct!(conn, {
        Ok(diesel::delete(
            sessions::table.filter(
                sessions::absolute_expires_at
                    .lt(before)
                    .or(sessions::revoked_at.lt(before)),
            ),
        )
        .execute(conn)?)
    })
}
