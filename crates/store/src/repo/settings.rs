use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::models::Setting;
use crate::schema::settings;
use crate::{update_where, DbConn, StoreError};

pub fn all(conn: &mut DbConn) -> Result<Vec<Setting>, StoreError> {
    direct!(conn, {
        Ok(settings::table
            .order(settings::key.asc())
            .select(Setting::as_select())
            .load(conn)?)
    })
}

pub fn get(conn: &mut DbConn, key: &str) -> Result<Option<String>, StoreError> {
    direct!(conn, {
        Ok(settings::table
            .find(key)
            .select(settings::value)
            .get_result(conn)
            .optional()?)
    })
}

/// Insert or replace one setting (update first, insert when absent: portable
/// and safe inside the caller's write transaction).
pub fn put(
    conn: &mut DbConn,
    key: &str,
    value: &str,
    now: NaiveDateTime,
) -> Result<(), StoreError> {
    direct!(conn, {
        let n = update_where(
            settings::table,
            settings::table.primary_key().eq(key),
            (settings::value.eq(value), settings::updated_at.eq(now)),
        )
        .execute(conn)?;
        if n == 0 {
            diesel::insert_into(settings::table)
                .values(&Setting {
                    key: key.to_string(),
                    value: value.to_string(),
                    updated_at: now,
                })
                .execute(conn)?;
        }
        Ok(())
    })
}
