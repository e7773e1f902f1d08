//! Staff single sign-on: login states (state, nonce, PKCE verifier).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::models::SsoState;
use crate::schema::sso_states;
use crate::{update_where, DbConn, StoreError};

pub fn insert_state(conn: &mut DbConn, row: &SsoState) -> Result<(), StoreError> {
    direct!(conn, {
        diesel::insert_into(sso_states::table)
            .values(row)
            .execute(conn)?;
        Ok(())
    })
}

pub fn find_state(conn: &mut DbConn, state_hash: &str) -> Result<Option<SsoState>, StoreError> {
    direct!(conn, {
        Ok(sso_states::table
            .filter(sso_states::state_hash.eq(state_hash))
            .select(SsoState::as_select())
            .get_result(conn)
            .optional()?)
    })
}

/// Marks a login state used; returns false if it was already used (a replay
/// racing this one).
pub fn consume_state(conn: &mut DbConn, id: &str, now: NaiveDateTime) -> Result<bool, StoreError> {
    direct!(conn, {
        let n = update_where(
            sso_states::table,
            sso_states::table
                .primary_key()
                .eq(id)
                .and(sso_states::used_at.is_null()),
            sso_states::used_at.eq(Some(now)),
        )
        .execute(conn)?;
        Ok(n == 1)
    })
}

/// Deletes login states that expired before `before`.
pub fn purge_expired(conn: &mut DbConn, before: NaiveDateTime) -> Result<usize, StoreError> {
    direct!(conn, {
        Ok(
            diesel::delete(sso_states::table.filter(sso_states::expires_at.lt(before)))
                .execute(conn)?,
        )
    })
}
