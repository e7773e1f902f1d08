use diesel::prelude::*;

use crate::models::{Course, Enrolment, Progress};
use crate::schema::{courses, enrolments, progress};
use crate::{update_where, DbConn, StoreError};

pub fn insert(conn: &mut DbConn, row: &Enrolment) -> Result<(), StoreError> {
    direct!(conn, {
        diesel::insert_into(enrolments::table)
            .values(row)
            .execute(conn)?;
        Ok(())
    })
}

pub fn update(conn: &mut DbConn, row: &Enrolment) -> Result<(), StoreError> {
    direct!(conn, {
        update_where(
            enrolments::table,
            enrolments::table.primary_key().eq(&row.id),
            row,
        )
        .execute(conn)?;
        Ok(())
    })
}

pub fn get(conn: &mut DbConn, id: &str) -> Result<Option<Enrolment>, StoreError> {
    direct!(conn, {
        Ok(enrolments::table
            .find(id)
            .select(Enrolment::as_select())
            .get_result(conn)
            .optional()?)
    })
}

pub fn find(
    conn: &mut DbConn,
    learner_id: &str,
    course_id: &str,
) -> Result<Option<Enrolment>, StoreError> {
    direct!(conn, {
        Ok(enrolments::table
            .filter(enrolments::learner_id.eq(learner_id))
            .filter(enrolments::course_id.eq(course_id))
            .select(Enrolment::as_select())
            .get_result(conn)
            .optional()?)
    })
}

/// Every enrolment of a learner with its course, course title order.
pub fn of_learner(
    conn: &mut DbConn,
    learner_id: &str,
) -> Result<Vec<(Enrolment, Course)>, StoreError> {
    direct!(conn, {
        Ok(enrolments::table
            .inner_join(courses::table)
            .filter(enrolments::learner_id.eq(learner_id))
            .order(courses::title.asc())
            .select((Enrolment::as_select(), Course::as_select()))
            .load(conn)?)
    })
}

pub fn of_course(conn: &mut DbConn, course_id: &str) -> Result<Vec<Enrolment>, StoreError> {
    direct!(conn, {
        Ok(enrolments::table
            .filter(enrolments::course_id.eq(course_id))
            .order(enrolments::created_at.asc())
            .select(Enrolment::as_select())
            .load(conn)?)
    })
}

pub fn count(conn: &mut DbConn) -> Result<i64, StoreError> {
    direct!(conn, { Ok(enrolments::table.count().get_result(conn)?) })
}

/// Enrolments in one of `course_ids`.
pub fn count_in(conn: &mut DbConn, course_ids: &[String]) -> Result<i64, StoreError> {
    direct!(conn, {
        Ok(enrolments::table
            .filter(enrolments::course_id.eq_any(course_ids))
            .count()
            .get_result(conn)?)
    })
}

pub fn insert_progress(conn: &mut DbConn, row: &Progress) -> Result<(), StoreError> {
    direct!(conn, {
        diesel::insert_into(progress::table)
            .values(row)
            .execute(conn)?;
        Ok(())
    })
}

pub fn progress_of(conn: &mut DbConn, enrolment_id: &str) -> Result<Vec<Progress>, StoreError> {
    direct!(conn, {
        Ok(progress::table
            .filter(progress::enrolment_id.eq(enrolment_id))
            .select(Progress::as_select())
            .load(conn)?)
    })
}

/// Completed lesson ids for many enrolments at once: (enrolment_id, lesson_id).
pub fn progress_of_many(
    conn: &mut DbConn,
    enrolment_ids: &[String],
) -> Result<Vec<(String, String)>, StoreError> {
    direct!(conn, {
        if enrolment_ids.is_empty() {
            return Ok(Vec::new());
        }
        Ok(progress::table
            .filter(progress::enrolment_id.eq_any(enrolment_ids))
            .select((progress::enrolment_id, progress::lesson_id))
            .load(conn)?)
    })
}

/// One keyset page of enrolments with their course, oldest first (ids are
/// time-ordered); optionally only a learner's or only a course's.
pub fn page_after(
    conn: &mut DbConn,
    learner_id: Option<&str>,
    course_id: Option<&str>,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<(Enrolment, Course)>, StoreError> {
    direct!(conn, {
        let mut q = enrolments::table
            .inner_join(courses::table)
            .select((Enrolment::as_select(), Course::as_select()))
            .into_boxed();
        if let Some(l) = learner_id {
            q = q.filter(enrolments::learner_id.eq(l.to_string()));
        }
        if let Some(c) = course_id {
            q = q.filter(enrolments::course_id.eq(c.to_string()));
        }
        if let Some(a) = after {
            q = q.filter(enrolments::id.gt(a.to_string()));
        }
        Ok(q.order(enrolments::id.asc()).limit(limit).load(conn)?)
    })
}
