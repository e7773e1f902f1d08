//! LTI Advantage services: enrolment ↔ launch links and the shared cache of
//! OAuth2 access tokens.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::models::{Enrolment, LtiAccessToken, LtiEnrolmentLink};
use crate::schema::{enrolments, lti_access_tokens, lti_enrolment_links};
use crate::{update_where, DbConn, StoreError};

pub fn get_enrolment_link(
    conn: &mut DbConn,
    enrolment_id: &str,
) -> Result<Option<LtiEnrolmentLink>, StoreError> {
    direct!(conn, {
        Ok(lti_enrolment_links::table
            .find(enrolment_id)
            .select(LtiEnrolmentLink::as_select())
            .get_result(conn)
            .optional()?)
    })
}

/// A learner's enrolment in a course with its launch link (if any), in one
/// query: what a launch needs before [`set_enrolment_link`].
pub fn find_enrolment_with_link(
    conn: &mut DbConn,
    learner_id: &str,
    course_id: &str,
) -> Result<Option<(Enrolment, Option<LtiEnrolmentLink>)>, StoreError> {
    direct!(conn, {
        Ok(enrolments::table
            .left_join(lti_enrolment_links::table)
            .filter(enrolments::learner_id.eq(learner_id))
            .filter(enrolments::course_id.eq(course_id))
            .select((
                Enrolment::as_select(),
                Option::<LtiEnrolmentLink>::as_select(),
            ))
            .get_result(conn)
            .optional()?)
    })
}

/// Inserts or replaces the link of an enrolment (the latest launch wins),
/// given its `current` link as the caller just read it ([`get_enrolment_link`]
/// or [`find_enrolment_with_link`]; `None` if it has none): most launches find
/// it as it was and write nothing. A `current` of another enrolment is
/// ignored (the row is then updated, or inserted if missing).
pub fn set_enrolment_link(
    conn: &mut DbConn,
    row: &LtiEnrolmentLink,
    current: Option<&LtiEnrolmentLink>,
) -> Result<(), StoreError> {
    if let Some(c) = current.filter(|c| c.enrolment_id == row.enrolment_id) {
        if c.platform_id == row.platform_id
            && c.resource_link_id == row.resource_link_id
            && c.lti_sub == row.lti_sub
        {
            return Ok(());
        }
    }
    direct!(conn, {
        let n = update_where(
            lti_enrolment_links::table,
            lti_enrolment_links::table
                .primary_key()
                .eq(&row.enrolment_id),
            (
                lti_enrolment_links::platform_id.eq(&row.platform_id),
                lti_enrolment_links::resource_link_id.eq(&row.resource_link_id),
                lti_enrolment_links::lti_sub.eq(&row.lti_sub),
                lti_enrolment_links::updated_at.eq(row.updated_at),
            ),
        )
        .execute(conn)?;
        if n == 0 {
            diesel::insert_into(lti_enrolment_links::table)
                .values(row)
                .execute(conn)?;
        }
        Ok(())
    })
}

/// The enrolment links that point at any of `resource_link_ids`.
pub fn enrolment_links_of(
    conn: &mut DbConn,
    resource_link_ids: &[String],
) -> Result<Vec<LtiEnrolmentLink>, StoreError> {
    direct!(conn, {
        Ok(lti_enrolment_links::table
            .filter(lti_enrolment_links::resource_link_id.eq_any(resource_link_ids))
            .order(lti_enrolment_links::created_at.asc())
            .select(LtiEnrolmentLink::as_select())
            .load(conn)?)
    })
}

pub fn set_last_score_at(
    conn: &mut DbConn,
    enrolment_id: &str,
    at: NaiveDateTime,
) -> Result<(), StoreError> {
    direct!(conn, {
        update_where(
            lti_enrolment_links::table,
            lti_enrolment_links::table.primary_key().eq(enrolment_id),
            (
                lti_enrolment_links::last_score_at.eq(Some(at)),
                lti_enrolment_links::updated_at.eq(at),
            ),
        )
        .execute(conn)?;
        Ok(())
    })
}

/// A cached token still valid at `now`.
pub fn valid_token(
    conn: &mut DbConn,
    platform_id: &str,
    scope_key: &str,
    now: NaiveDateTime,
) -> Result<Option<LtiAccessToken>, StoreError> {
    direct!(conn, {
        Ok(lti_access_tokens::table
            .filter(lti_access_tokens::platform_id.eq(platform_id))
            .filter(lti_access_tokens::scope_key.eq(scope_key))
            .filter(lti_access_tokens::expires_at.gt(now))
            .select(LtiAccessToken::as_select())
            .get_result(conn)
            .optional()?)
    })
}

/// Stores a token, replacing any older one for the same platform and scopes.
pub fn put_token(conn: &mut DbConn, row: &LtiAccessToken) -> Result<(), StoreError> {
    direct!(conn, {
        diesel::delete(
            lti_access_tokens::table
                .filter(lti_access_tokens::platform_id.eq(&row.platform_id))
                .filter(lti_access_tokens::scope_key.eq(&row.scope_key)),
        )
        .execute(conn)?;
        diesel::insert_into(lti_access_tokens::table)
            .values(row)
            .execute(conn)?;
        Ok(())
    })
}

/// Forgets a token the platform refused (401). Only that exact token, so a
/// fresher one stored meanwhile by another instance survives.
pub fn forget_token(
    conn: &mut DbConn,
    platform_id: &str,
    access_token: &str,
) -> Result<usize, StoreError> {
    direct!(conn, {
        Ok(diesel::delete(
            lti_access_tokens::table
                .filter(lti_access_tokens::platform_id.eq(platform_id))
                .filter(lti_access_tokens::access_token.eq(access_token)),
        )
        .execute(conn)?)
    })
}

pub fn purge_expired_tokens(conn: &mut DbConn, now: NaiveDateTime) -> Result<usize, StoreError> {
    direct!(conn, {
        Ok(
            diesel::delete(lti_access_tokens::table.filter(lti_access_tokens::expires_at.le(now)))
                .execute(conn)?,
        )
    })
}

/// The roster sync state of a context for a course.
pub fn get_context_roster(
    conn: &mut DbConn,
    platform_id: &str,
    context_id: &str,
    course_id: &str,
) -> Result<Option<crate::models::LtiContextRoster>, StoreError> {
    direct!(conn, {
        use crate::schema::lti_context_rosters as r;
        Ok(r::table
            .filter(r::platform_id.eq(platform_id))
            .filter(r::context_id.eq(context_id))
            .filter(r::course_id.eq(course_id))
            .select(crate::models::LtiContextRoster::as_select())
            .get_result(conn)
            .optional()?)
    })
}

/// Records a sync of a context and the differences URL it offered (or none).
pub fn put_context_roster(
    conn: &mut DbConn,
    row: &crate::models::LtiContextRoster,
) -> Result<(), StoreError> {
    direct!(conn, {
        use crate::schema::lti_context_rosters as r;
        let n = update_where(
            r::table,
            r::platform_id
                .eq(&row.platform_id)
                .and(r::context_id.eq(&row.context_id))
                .and(r::course_id.eq(&row.course_id)),
            (
                r::differences_url.eq(&row.differences_url),
                r::synced_at.eq(row.synced_at),
                r::updated_at.eq(row.updated_at),
            ),
        )
        .execute(conn)?;
        if n == 0 {
            diesel::insert_into(r::table).values(row).execute(conn)?;
        }
        Ok(())
    })
}

pub fn get_roster_removal(
    conn: &mut DbConn,
    enrolment_id: &str,
) -> Result<Option<crate::models::LtiRosterRemoval>, StoreError> {
    direct!(conn, {
        use crate::schema::lti_roster_removals as r;
        Ok(r::table
            .find(enrolment_id)
            .select(crate::models::LtiRosterRemoval::as_select())
            .get_result(conn)
            .optional()?)
    })
}

pub fn insert_roster_removal(
    conn: &mut DbConn,
    row: &crate::models::LtiRosterRemoval,
) -> Result<(), StoreError> {
    direct!(conn, {
        use crate::schema::lti_roster_removals as r;
        diesel::delete(r::table.find(&row.enrolment_id)).execute(conn)?;
        diesel::insert_into(r::table).values(row).execute(conn)?;
        Ok(())
    })
}

pub fn delete_roster_removal(conn: &mut DbConn, enrolment_id: &str) -> Result<(), StoreError> {
    direct!(conn, {
        use crate::schema::lti_roster_removals as r;
        diesel::delete(r::table.find(enrolment_id)).execute(conn)?;
        Ok(())
    })
}
