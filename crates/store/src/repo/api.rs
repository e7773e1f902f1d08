//! API keys, idempotency records and per-key rate counters.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::models::{ApiKey, ApiRateCounter, IdempotencyKey};
use crate::schema::{api_keys, api_rate_counters, idempotency_keys};
use crate::{update_where, DbConn, StoreError};

pub fn insert_key(conn: &mut DbConn, row: &ApiKey) -> Result<(), StoreError> {
    direct!(conn, {
        diesel::insert_into(api_keys::table)
            .values(row)
            .execute(conn)?;
        Ok(())
    })
}

pub fn get_key(conn: &mut DbConn, id: &str) -> Result<Option<ApiKey>, StoreError> {
    direct!(conn, {
        Ok(api_keys::table
            .find(id)
            .select(ApiKey::as_select())
            .get_result(conn)
            .optional()?)
    })
}

pub fn find_key_by_hash(conn: &mut DbConn, key_hash: &str) -> Result<Option<ApiKey>, StoreError> {
    direct!(conn, {
        Ok(api_keys::table
            .filter(api_keys::key_hash.eq(key_hash))
            .select(ApiKey::as_select())
            .get_result(conn)
            .optional()?)
    })
}

pub fn list_keys(conn: &mut DbConn) -> Result<Vec<ApiKey>, StoreError> {
    direct!(conn, {
        Ok(api_keys::table
            .order((api_keys::created_at.asc(), api_keys::id.asc()))
            .select(ApiKey::as_select())
            .load(conn)?)
    })
}

pub fn touch_key(conn: &mut DbConn, id: &str, now: NaiveDateTime) -> Result<(), StoreError> {
    direct!(conn, {
        update_where(
            api_keys::table,
            api_keys::table.primary_key().eq(id),
            api_keys::last_used_at.eq(Some(now)),
        )
        .execute(conn)?;
        Ok(())
    })
}

pub fn revoke_key(conn: &mut DbConn, id: &str, now: NaiveDateTime) -> Result<bool, StoreError> {
    direct!(conn, {
        let n = update_where(
            api_keys::table,
            api_keys::table
                .primary_key()
                .eq(id)
                .and(api_keys::revoked_at.is_null()),
            api_keys::revoked_at.eq(Some(now)),
        )
        .execute(conn)?;
        Ok(n == 1)
    })
}

/// Adds one hit to the key's counter for `window_start` and returns the new
/// count. An upsert on both backends, so concurrent first hits never collide.
pub fn hit(
    conn: &mut DbConn,
    api_key_id: &str,
    window_start: NaiveDateTime,
) -> Result<i32, StoreError> {
    let row = ApiRateCounter {
        id: format!("{api_key_id}@{}", window_start.and_utc().timestamp()),
        api_key_id: api_key_id.to_string(),
        window_start,
        hits: 1,
    };
    macro_rules! upsert {
        ($c:expr) => {
            diesel::insert_into(api_rate_counters::table)
                .values(&row)
                .on_conflict(api_rate_counters::id)
                .do_update()
                .set(api_rate_counters::hits.eq(api_rate_counters::hits + 1))
                .execute($c)?
        };
    }
    match conn {
        DbConn::Sqlite(c) => upsert!(c),
        DbConn::Postgres(c) => upsert!(c),
    };
    Ok(api_rate_counters::table
        .find(&row.id)
        .select(api_rate_counters::hits)
        .get_result(conn)?)
}

/// Deletes counters of windows that started before `before`.
pub fn purge_counters(conn: &mut DbConn, before: NaiveDateTime) -> Result<usize, StoreError> {
    direct!(conn, {
        Ok(diesel::delete(
            api_rate_counters::table.filter(api_rate_counters::window_start.lt(before)),
        )
        .execute(conn)?)
    })
}

pub fn find_idempotency(
    conn: &mut DbConn,
    api_key_id: &str,
    idem_key: &str,
) -> Result<Option<IdempotencyKey>, StoreError> {
    direct!(conn, {
        Ok(idempotency_keys::table
            .filter(idempotency_keys::api_key_id.eq(api_key_id))
            .filter(idempotency_keys::idem_key.eq(idem_key))
            .select(IdempotencyKey::as_select())
            .get_result(conn)
            .optional()?)
    })
}

/// Inserts the record unless one exists for (key, Idempotency-Key). Returns
/// false when another request holds (or held) it. On PostgreSQL the insert
/// waits for a concurrent holder's transaction to finish first.
pub fn claim_idempotency(conn: &mut DbConn, row: &IdempotencyKey) -> Result<bool, StoreError> {
    macro_rules! insert {
        ($c:expr) => {
            diesel::insert_into(idempotency_keys::table)
                .values(row)
                .on_conflict((idempotency_keys::api_key_id, idempotency_keys::idem_key))
                .do_nothing()
                .execute($c)?
        };
    }
    let n = match conn {
        DbConn::Sqlite(c) => insert!(c),
        DbConn::Postgres(c) => insert!(c),
    };
    Ok(n == 1)
}

pub fn complete_idempotency(
    conn: &mut DbConn,
    id: &str,
    status: i32,
    body: &str,
) -> Result<(), StoreError> {
    direct!(conn, {
        update_where(
            idempotency_keys::table,
            idempotency_keys::table.primary_key().eq(id),
            (
                idempotency_keys::response_status.eq(Some(status)),
                idempotency_keys::response_body.eq(Some(body)),
            ),
        )
        .execute(conn)?;
        Ok(())
    })
}

pub fn delete_idempotency(conn: &mut DbConn, id: &str) -> Result<(), StoreError> {
    direct!(conn, {
        diesel::delete(idempotency_keys::table.find(id)).execute(conn)?;
        Ok(())
    })
}

pub fn purge_idempotency(conn: &mut DbConn, now: NaiveDateTime) -> Result<usize, StoreError> {
    direct!(conn, {
        Ok(
            diesel::delete(idempotency_keys::table.filter(idempotency_keys::expires_at.lt(now)))
                .execute(conn)?,
        )
    })
}
