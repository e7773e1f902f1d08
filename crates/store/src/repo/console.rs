//! Queries behind the staff console: sorted, paged course lists, the
//! per-course funnel's raw timestamps, lesson reordering and deletion.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::Page;
use crate::models::{Course, Lesson};
use crate::schema::{courses, enrolments, lessons, magic_link_activity, magic_links, progress};
use crate::{update_where, DbConn, StoreError};

/// Sort keys for the course list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CourseSort {
    #[default]
    TitleAsc,
    TitleDesc,
    NewestFirst,
    OldestFirst,
}

/// A page of courses; with `only`, just those ids (instructor scoping).
pub fn courses_page(
    conn: &mut DbConn,
    sort: CourseSort,
    only: Option<&[String]>,
    page: Page,
) -> Result<Vec<Course>, StoreError> {
    direct!(conn, {
        let mut q = courses::table.select(Course::as_select()).into_boxed();
        if let Some(ids) = only {
            q = q.filter(courses::id.eq_any(ids.to_vec()));
        }
        let q = match sort {
            CourseSort::TitleAsc => q.order((courses::title.asc(), courses::id.asc())),
            CourseSort::TitleDesc => q.order((courses::title.desc(), courses::id.desc())),
            CourseSort::NewestFirst => q.order((courses::created_at.desc(), courses::id.desc())),
            CourseSort::OldestFirst => q.order((courses::created_at.asc(), courses::id.asc())),
        };
        Ok(q.limit(page.limit).offset(page.offset).load(conn)?)
    })
}

pub fn course_count(conn: &mut DbConn, only: Option<&[String]>) -> Result<i64, StoreError> {
    direct!(conn, {
        match only {
            None => Ok(courses::table.count().get_result(conn)?),
            Some(ids) => Ok(courses::table
                .filter(courses::id.eq_any(ids))
                .count()
                .get_result(conn)?),
        }
    })
}

/// Courses by id or all of them, title order (the scoped dropdowns).
pub fn courses_in(conn: &mut DbConn, only: Option<&[String]>) -> Result<Vec<Course>, StoreError> {
    direct!(conn, {
        let mut q = courses::table.select(Course::as_select()).into_boxed();
        if let Some(ids) = only {
            q = q.filter(courses::id.eq_any(ids.to_vec()));
        }
        Ok(q.order((courses::title.asc(), courses::id.asc()))
            .load(conn)?)
    })
}

/// One enrolment's funnel timestamps.
#[derive(Debug, Clone)]
pub struct FunnelRow {
    pub enrolment_id: String,
    pub invited_at: NaiveDateTime,
    pub started_at: Option<NaiveDateTime>,
    pub completed_at: Option<NaiveDateTime>,
}

pub fn funnel_rows(conn: &mut DbConn, course_id: &str) -> Result<Vec<FunnelRow>, StoreError> {
    direct!(conn, {
        let rows: Vec<(
            String,
            NaiveDateTime,
            Option<NaiveDateTime>,
            Option<NaiveDateTime>,
        )> = enrolments::table
            .filter(enrolments::course_id.eq(course_id))
            .select((
                enrolments::id,
                enrolments::created_at,
                enrolments::started_at,
                enrolments::completed_at,
            ))
            .load(conn)?;
        Ok(rows
            .into_iter()
            .map(
                |(enrolment_id, invited_at, started_at, completed_at)| FunnelRow {
                    enrolment_id,
                    invited_at,
                    started_at,
                    completed_at,
                },
            )
            .collect())
    })
}

/// Opens of course links: (enrolment id, first redeemed, last opened, opened count).
pub type LinkOpen = (String, Option<NaiveDateTime>, Option<NaiveDateTime>, i32);

pub fn link_opens(
    conn: &mut DbConn,
    enrolment_ids: &[String],
) -> Result<Vec<LinkOpen>, StoreError> {
    direct!(conn, {
        let mut out = Vec::new();
        for chunk in enrolment_ids.chunks(500) {
            let links: Vec<(String, Option<String>, Option<NaiveDateTime>)> = magic_links::table
                .filter(magic_links::enrolment_id.eq_any(chunk.iter().map(|s| Some(s.clone()))))
                .select((
                    magic_links::id,
                    magic_links::enrolment_id,
                    magic_links::first_redeemed_at,
                ))
                .load(conn)?;
            let ids: Vec<String> = links.iter().map(|l| l.0.clone()).collect();
            let acts: Vec<(String, Option<NaiveDateTime>, i32)> = magic_link_activity::table
                .filter(magic_link_activity::link_id.eq_any(&ids))
                .select((
                    magic_link_activity::link_id,
                    magic_link_activity::last_opened_at,
                    magic_link_activity::opened_count,
                ))
                .load(conn)?;
            for (id, e, r) in links {
                let Some(e) = e else { continue };
                let (o, n) = acts
                    .iter()
                    .find(|a| a.0 == id)
                    .map(|a| (a.1, a.2))
                    .unwrap_or((None, 0));
                out.push((e, r, o, n));
            }
        }
        Ok(out)
    })
}

pub fn delete_lesson(conn: &mut DbConn, id: &str) -> Result<usize, StoreError> {
    direct!(conn, {
        diesel::delete(progress::table.filter(progress::lesson_id.eq(id))).execute(conn)?;
        Ok(diesel::delete(lessons::table.find(id)).execute(conn)?)
    })
}

pub fn set_lesson_position(
    conn: &mut DbConn,
    id: &str,
    position: i32,
    now: NaiveDateTime,
) -> Result<(), StoreError> {
    direct!(conn, {
        update_where(
            lessons::table,
            lessons::table.primary_key().eq(id),
            (lessons::position.eq(position), lessons::updated_at.eq(now)),
        )
        .execute(conn)?;
        Ok(())
    })
}

pub fn lesson_count(conn: &mut DbConn, course_id: &str) -> Result<i64, StoreError> {
    direct!(conn, {
        Ok(lessons::table
            .filter(lessons::course_id.eq(course_id))
            .count()
            .get_result(conn)?)
    })
}

/// Every lesson of a course, for the editor.
pub fn lessons_of(conn: &mut DbConn, course_id: &str) -> Result<Vec<Lesson>, StoreError> {
    super::courses::lessons_of(conn, course_id)
}

/// Which outbox rows the console lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxView {
    /// Waiting for a first attempt.
    Pending,
    /// Waiting for another attempt after a failure.
    Failed,
    /// Out of attempts.
    Dead,
}

/// A page of the outbox, newest first (or oldest first).
pub fn outbox_page(
    conn: &mut DbConn,
    view: OutboxView,
    oldest_first: bool,
    page: Page,
) -> Result<Vec<crate::models::OutboxMessage>, StoreError> {
    direct!(conn, {
        use crate::schema::outbox;
        let q = outbox::table
            .select(crate::models::OutboxMessage::as_select())
            .into_boxed();
        let q = match view {
            OutboxView::Pending => q
                .filter(outbox::status.eq(super::outbox::PENDING))
                .filter(outbox::attempts.eq(0)),
            OutboxView::Failed => q
                .filter(outbox::status.eq(super::outbox::PENDING))
                .filter(outbox::attempts.gt(0)),
            OutboxView::Dead => q.filter(outbox::status.eq(super::outbox::DEAD)),
        };
        let q = if oldest_first {
            q.order((outbox::created_at.asc(), outbox::id.asc()))
        } else {
            q.order((outbox::created_at.desc(), outbox::id.desc()))
        };
        Ok(q.limit(page.limit).offset(page.offset).load(conn)?)
    })
}
