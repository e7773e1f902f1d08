//! LTI registrations, login state, nonces, resource links, the flight
//! recorder and handoff tickets.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::Page;
use crate::models::{
    AuditEntry, Course, LtiDeployment, LtiLaunch, LtiLoginState, LtiPlatform, LtiResourceLink,
    LtiTicket, Session,
};
use crate::schema::{
    audit_log, courses, lti_deployments, lti_launches, lti_login_states, lti_platforms,
    lti_resource_links, lti_tickets, sessions,
};
use crate::{update_where, DbConn, StoreError};

pub fn insert_platform(conn: &mut DbConn, row: &LtiPlatform) -> Result<(), StoreError> {
    direct!(conn, {
        diesel::insert_into(lti_platforms::table)
            .values(row)
            .execute(conn)?;
        Ok(())
    })
}

pub fn update_platform(conn: &mut DbConn, row: &LtiPlatform) -> Result<(), StoreError> {
    direct!(conn, {
        update_where(
            lti_platforms::table,
            lti_platforms::table.primary_key().eq(&row.id),
            row,
        )
        .execute(conn)?;
        Ok(())
    })
}

pub fn get_platform(conn: &mut DbConn, id: &str) -> Result<Option<LtiPlatform>, StoreError> {
    direct!(conn, {
        Ok(lti_platforms::table
            .find(id)
            .select(LtiPlatform::as_select())
            .get_result(conn)
            .optional()?)
    })
}

pub fn find_platform(
    conn: &mut DbConn,
    issuer: &str,
    client_id: &str,
) -> Result<Option<LtiPlatform>, StoreError> {
    direct!(conn, {
        Ok(lti_platforms::table
            .filter(lti_platforms::issuer.eq(issuer))
            .filter(lti_platforms::client_id.eq(client_id))
            .select(LtiPlatform::as_select())
            .get_result(conn)
            .optional()?)
    })
}

/// Every registration of an issuer (an issuer may have many client_ids).
pub fn platforms_of_issuer(
    conn: &mut DbConn,
    issuer: &str,
) -> Result<Vec<LtiPlatform>, StoreError> {
    direct!(conn, {
        Ok(lti_platforms::table
            .filter(lti_platforms::issuer.eq(issuer))
            .select(LtiPlatform::as_select())
            .load(conn)?)
    })
}

pub fn list_platforms(conn: &mut DbConn) -> Result<Vec<LtiPlatform>, StoreError> {
    direct!(conn, {
        Ok(lti_platforms::table
            .order((lti_platforms::name.asc(), lti_platforms::id.asc()))
            .select(LtiPlatform::as_select())
            .load(conn)?)
    })
}

pub fn insert_deployment(conn: &mut DbConn, row: &LtiDeployment) -> Result<(), StoreError> {
    direct!(conn, {
        diesel::insert_into(lti_deployments::table)
            .values(row)
            .execute(conn)?;
        Ok(())
    })
}

pub fn update_deployment(conn: &mut DbConn, row: &LtiDeployment) -> Result<(), StoreError> {
    direct!(conn, {
        update_where(
            lti_deployments::table,
            lti_deployments::table.primary_key().eq(&row.id),
            row,
        )
        .execute(conn)?;
        Ok(())
    })
}

pub fn find_deployment(
    conn: &mut DbConn,
    platform_id: &str,
    deployment_id: &str,
) -> Result<Option<LtiDeployment>, StoreError> {
    direct!(conn, {
        Ok(lti_deployments::table
            .filter(lti_deployments::platform_id.eq(platform_id))
            .filter(lti_deployments::deployment_id.eq(deployment_id))
            .select(LtiDeployment::as_select())
            .get_result(conn)
            .optional()?)
    })
}

pub fn deployments_of(
    conn: &mut DbConn,
    platform_id: &str,
) -> Result<Vec<LtiDeployment>, StoreError> {
    direct!(conn, {
        Ok(lti_deployments::table
            .filter(lti_deployments::platform_id.eq(platform_id))
            .order(lti_deployments::created_at.asc())
            .select(LtiDeployment::as_select())
            .load(conn)?)
    })
}

pub fn insert_login_state(conn: &mut DbConn, row: &LtiLoginState) -> Result<(), StoreError> {
    direct!(conn, {
        diesel::insert_into(lti_login_states::table)
            .values(row)
            .execute(conn)?;
        Ok(())
    })
}

/// A login state and its platform in one statement (a launch's first read).
pub fn find_login_state_with_platform(
    conn: &mut DbConn,
    state_hash: &str,
) -> Result<Option<(LtiLoginState, LtiPlatform)>, StoreError> {
    direct!(conn, {
        Ok(lti_login_states::table
            .inner_join(lti_platforms::table)
            .filter(lti_login_states::state_hash.eq(state_hash))
            .select((LtiLoginState::as_select(), LtiPlatform::as_select()))
            .get_result(conn)
            .optional()?)
    })
}

/// Marks a login state used; returns false if it was already used (a replay).
pub fn consume_login_state(
    conn: &mut DbConn,
    id: &str,
    now: NaiveDateTime,
) -> Result<bool, StoreError> {
    direct!(conn, {
        let n = update_where(
            lti_login_states::table,
            lti_login_states::table
                .primary_key()
                .eq(id)
                .and(lti_login_states::used_at.is_null()),
            lti_login_states::used_at.eq(Some(now)),
        )
        .execute(conn)?;
        Ok(n == 1)
    })
}

/// Logins that expired without a launch (unused states past their expiry).
pub fn abandoned_logins(
    conn: &mut DbConn,
    now: NaiveDateTime,
) -> Result<Vec<LtiLoginState>, StoreError> {
    direct!(conn, {
        Ok(lti_login_states::table
            .filter(lti_login_states::expires_at.lt(now))
            .filter(lti_login_states::used_at.is_null())
            .order(lti_login_states::expires_at.asc())
            .select(LtiLoginState::as_select())
            .load(conn)?)
    })
}

/// Deletes expired login states, nonces, tickets and flight records.
pub fn purge_expired(conn: &mut DbConn, now: NaiveDateTime) -> Result<usize, StoreError> {
    direct!(conn, {
        let mut n =
            diesel::delete(lti_login_states::table.filter(lti_login_states::expires_at.lt(now)))
                .execute(conn)?;
        n += diesel::delete(lti_tickets::table.filter(lti_tickets::expires_at.lt(now)))
            .execute(conn)?;
        n += diesel::delete(lti_launches::table.filter(lti_launches::expires_at.lt(now)))
            .execute(conn)?;
        Ok(n)
    })
}

pub fn find_resource_link(
    conn: &mut DbConn,
    platform_id: &str,
    deployment_id: &str,
    resource_link_id: &str,
) -> Result<Option<LtiResourceLink>, StoreError> {
    Ok(
        find_resource_link_with_course(conn, platform_id, deployment_id, resource_link_id)?
            .map(|(link, _)| link),
    )
}

/// A resource link with the course it is mapped to (if any), in one query.
pub fn find_resource_link_with_course(
    conn: &mut DbConn,
    platform_id: &str,
    deployment_id: &str,
    resource_link_id: &str,
) -> Result<Option<(LtiResourceLink, Option<Course>)>, StoreError> {
    direct!(conn, {
        Ok(lti_resource_links::table
            .left_join(courses::table)
            .filter(lti_resource_links::platform_id.eq(platform_id))
            .filter(lti_resource_links::deployment_id.eq(deployment_id))
            .filter(lti_resource_links::resource_link_id.eq(resource_link_id))
            .select((LtiResourceLink::as_select(), Option::<Course>::as_select()))
            .get_result(conn)
            .optional()?)
    })
}

pub fn get_resource_link(
    conn: &mut DbConn,
    id: &str,
) -> Result<Option<LtiResourceLink>, StoreError> {
    direct!(conn, {
        Ok(lti_resource_links::table
            .find(id)
            .select(LtiResourceLink::as_select())
            .get_result(conn)
            .optional()?)
    })
}

/// The resource links of one LMS context (by `context_id`) on a platform,
/// or just the link itself when the launch carried no context.
pub fn resource_links_of_context(
    conn: &mut DbConn,
    link: &LtiResourceLink,
) -> Result<Vec<LtiResourceLink>, StoreError> {
    direct!(conn, {
        match &link.context_id {
            Some(ctx) => Ok(lti_resource_links::table
                .filter(lti_resource_links::platform_id.eq(&link.platform_id))
                .filter(lti_resource_links::context_id.eq(ctx))
                .order(lti_resource_links::created_at.asc())
                .select(LtiResourceLink::as_select())
                .load(conn)?),
            None => Ok(vec![link.clone()]),
        }
    })
}

/// Connects a resource link that has no course yet to `course_id`; false
/// when the link is already connected (checked in the same statement, so
/// two instructors picking at once cannot both win).
pub fn map_unmapped_resource_link(
    conn: &mut DbConn,
    id: &str,
    course_id: &str,
    now: NaiveDateTime,
) -> Result<bool, StoreError> {
    direct!(conn, {
        let n = update_where(
            lti_resource_links::table,
            lti_resource_links::id
                .eq(id)
                .and(lti_resource_links::course_id.is_null()),
            (
                lti_resource_links::course_id.eq(course_id),
                lti_resource_links::updated_at.eq(now),
            ),
        )
        .execute(conn)?;
        Ok(n == 1)
    })
}

/// The resource links of a platform, newest first.
pub fn resource_links_of_platform(
    conn: &mut DbConn,
    platform_id: &str,
    page: Page,
) -> Result<Vec<LtiResourceLink>, StoreError> {
    direct!(conn, {
        Ok(lti_resource_links::table
            .filter(lti_resource_links::platform_id.eq(platform_id))
            .order((
                lti_resource_links::created_at.desc(),
                lti_resource_links::id.desc(),
            ))
            .limit(page.limit)
            .offset(page.offset)
            .select(LtiResourceLink::as_select())
            .load(conn)?)
    })
}

pub fn insert_resource_link(conn: &mut DbConn, row: &LtiResourceLink) -> Result<(), StoreError> {
    direct!(conn, {
        diesel::insert_into(lti_resource_links::table)
            .values(row)
            .execute(conn)?;
        Ok(())
    })
}

pub fn update_resource_link(conn: &mut DbConn, row: &LtiResourceLink) -> Result<(), StoreError> {
    direct!(conn, {
        update_where(
            lti_resource_links::table,
            lti_resource_links::table.primary_key().eq(&row.id),
            row,
        )
        .execute(conn)?;
        Ok(())
    })
}

pub fn record_launch(conn: &mut DbConn, row: &LtiLaunch) -> Result<(), StoreError> {
    direct!(conn, {
        diesel::insert_into(lti_launches::table)
            .values(row)
            .execute(conn)?;
        Ok(())
    })
}

/// Writes the rows a completed launch leaves behind: its session, the
/// session's audit entry, the launch's flight record and its continue
/// ticket. On PostgreSQL they go in one statement (the first three inserts
/// as data-modifying `WITH` clauses of the fourth: one round trip instead of
/// four, in the caller's transaction as before); on SQLite, where a
/// statement costs no round trip, as four inserts.
pub fn insert_launch_rows(
    conn: &mut DbConn,
    session: &Session,
    audit: &AuditEntry,
    flight: &LtiLaunch,
    ticket: &LtiTicket,
) -> Result<(), StoreError> {
    if let DbConn::Postgres(c) = conn {
        crate::cached::with_inserts(
            [
                &diesel::insert_into(sessions::table).values(session),
                &diesel::insert_into(audit_log::table).values(audit),
                &diesel::insert_into(lti_launches::table).values(flight),
            ],
            diesel::insert_into(lti_tickets::table).values(ticket),
        )
        .execute(c)?;
        return Ok(());
    }
    super::sessions::insert(conn, session)?;
    super::audit::append(conn, audit)?;
    record_launch(conn, flight)?;
    insert_ticket(conn, ticket)
}

pub fn recent_launches(
    conn: &mut DbConn,
    failures_only: bool,
    page: Page,
) -> Result<Vec<LtiLaunch>, StoreError> {
    direct!(conn, {
        let mut q = lti_launches::table
            .select(LtiLaunch::as_select())
            .into_boxed();
        if failures_only {
            q = q.filter(lti_launches::outcome.ne("ok"));
        }
        Ok(q.order((lti_launches::at.desc(), lti_launches::id.desc()))
            .limit(page.limit)
            .offset(page.offset)
            .load(conn)?)
    })
}

pub fn insert_ticket(conn: &mut DbConn, row: &LtiTicket) -> Result<(), StoreError> {
    direct!(conn, {
        diesel::insert_into(lti_tickets::table)
            .values(row)
            .execute(conn)?;
        Ok(())
    })
}

pub fn find_ticket(conn: &mut DbConn, ticket_hash: &str) -> Result<Option<LtiTicket>, StoreError> {
    direct!(conn, {
        Ok(lti_tickets::table
            .filter(lti_tickets::ticket_hash.eq(ticket_hash))
            .select(LtiTicket::as_select())
            .get_result(conn)
            .optional()?)
    })
}

pub fn consume_ticket(conn: &mut DbConn, id: &str, now: NaiveDateTime) -> Result<bool, StoreError> {
    direct!(conn, {
        let n = update_where(
            lti_tickets::table,
            lti_tickets::table
                .primary_key()
                .eq(id)
                .and(lti_tickets::used_at.is_null()),
            lti_tickets::used_at.eq(Some(now)),
        )
        .execute(conn)?;
        Ok(n == 1)
    })
}

pub fn insert_deep_link_request(
    conn: &mut DbConn,
    row: &crate::models::LtiDeepLinkRequest,
) -> Result<(), StoreError> {
    direct!(conn, {
        diesel::insert_into(crate::schema::lti_deep_link_requests::table)
            .values(row)
            .execute(conn)?;
        Ok(())
    })
}

/// Moves the open Deep Linking requests of a launch's session to the session
/// that continues it (a frame session, or the new-window handoff). Returns how many.
pub fn rebind_deep_link_requests(
    conn: &mut DbConn,
    from_session: &str,
    to_session: &str,
) -> Result<usize, StoreError> {
    direct!(conn, {
        use crate::schema::lti_deep_link_requests as t;
        Ok(update_where(
            t::table,
            t::session_id.eq(from_session).and(t::used_at.is_null()),
            t::session_id.eq(to_session),
        )
        .execute(conn)?)
    })
}

pub fn get_deep_link_request(
    conn: &mut DbConn,
    id: &str,
) -> Result<Option<crate::models::LtiDeepLinkRequest>, StoreError> {
    direct!(conn, {
        use crate::schema::lti_deep_link_requests as t;
        Ok(t::table
            .find(id)
            .select(crate::models::LtiDeepLinkRequest::as_select())
            .get_result(conn)
            .optional()?)
    })
}

/// Marks a deep linking request answered; false if it already was.
pub fn use_deep_link_request(
    conn: &mut DbConn,
    id: &str,
    now: NaiveDateTime,
) -> Result<bool, StoreError> {
    direct!(conn, {
        use crate::schema::lti_deep_link_requests as t;
        let n = update_where(
            t::table,
            t::table.primary_key().eq(id).and(t::used_at.is_null()),
            t::used_at.eq(Some(now)),
        )
        .execute(conn)?;
        Ok(n == 1)
    })
}
