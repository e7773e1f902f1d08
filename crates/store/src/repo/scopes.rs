//! Instructor scoping: which courses a staff member is assigned to.

use diesel::prelude::*;

use crate::models::{Course, StaffCourseScope};
use crate::schema::{courses, staff_course_scopes};
use crate::{DbConn, StoreError};

/// Assigns a course; `false` when it was already assigned.
pub fn assign(conn: &mut DbConn, row: &StaffCourseScope) -> Result<bool, StoreError> {
    direct!(conn, {
        let exists: i64 = staff_course_scopes::table
            .filter(staff_course_scopes::staff_id.eq(&row.staff_id))
            .filter(staff_course_scopes::course_id.eq(&row.course_id))
            .count()
            .get_result(conn)?;
        if exists > 0 {
            return Ok(false);
        }
        diesel::insert_into(staff_course_scopes::table)
            .values(row)
            .execute(conn)?;
        Ok(true)
    })
}

/// Removes an assignment; `false` when there was none.
pub fn unassign(conn: &mut DbConn, staff_id: &str, course_id: &str) -> Result<bool, StoreError> {
    direct!(conn, {
        let n = diesel::delete(
            staff_course_scopes::table
                .filter(staff_course_scopes::staff_id.eq(staff_id))
                .filter(staff_course_scopes::course_id.eq(course_id)),
        )
        .execute(conn)?;
        Ok(n > 0)
    })
}

/// The ids of the courses assigned to a staff member.
pub fn course_ids_of(conn: &mut DbConn, staff_id: &str) -> Result<Vec<String>, StoreError> {
    direct!(conn, {
        Ok(staff_course_scopes::table
            .filter(staff_course_scopes::staff_id.eq(staff_id))
            .order(staff_course_scopes::course_id.asc())
            .select(staff_course_scopes::course_id)
            .load(conn)?)
    })
}

/// The courses assigned to a staff member, title order.
pub fn courses_of(conn: &mut DbConn, staff_id: &str) -> Result<Vec<Course>, StoreError> {
    let ids = course_ids_of(conn, staff_id)?;
    Ok(courses::table
        .filter(courses::id.eq_any(&ids))
        .order((courses::title.asc(), courses::id.asc()))
        .select(Course::as_select())
        .load(conn)?)
}

/// Records the sent rows of an invitation sheet.
pub fn insert_invitation_rows(
    conn: &mut DbConn,
    rows: &[crate::models::InvitationRow],
) -> Result<(), StoreError> {
    direct!(conn, {
        use crate::schema::invitation_rows;
        for r in rows {
            diesel::insert_into(invitation_rows::table)
                .values(r)
                .execute(conn)?;
        }
        Ok(())
    })
}

/// The rows of one batch, each with its outbox message (status, attempts,
/// last error) when that still exists.
pub fn invitation_batch(
    conn: &mut DbConn,
    batch_id: &str,
) -> Result<
    Vec<(
        crate::models::InvitationRow,
        Option<crate::models::OutboxMessage>,
    )>,
    StoreError,
> {
    direct!(conn, {
        use crate::models::{InvitationRow, OutboxMessage};
        use crate::schema::{invitation_rows, outbox};
        let rows: Vec<InvitationRow> = invitation_rows::table
            .filter(invitation_rows::batch_id.eq(batch_id))
            .order(invitation_rows::line.asc())
            .select(InvitationRow::as_select())
            .load(conn)?;
        let ids: Vec<String> = rows.iter().filter_map(|r| r.outbox_id.clone()).collect();
        let msgs: Vec<OutboxMessage> = outbox::table
            .filter(outbox::id.eq_any(&ids))
            .select(OutboxMessage::as_select())
            .load(conn)?;
        Ok(rows
            .into_iter()
            .map(|r| {
                let m = r
                    .outbox_id
                    .as_ref()
                    .and_then(|id| msgs.iter().find(|m| &m.id == id).cloned());
                (r, m)
            })
            .collect())
    })
}
