use diesel::prelude::*;

use crate::models::{Course, Lesson};
use crate::schema::{courses, lessons};
use crate::{update_where, DbConn, StoreError};

pub fn insert(conn: &mut DbConn, row: &Course) -> Result<(), StoreError> {
    direct!(conn, {
        diesel::insert_into(courses::table)
            .values(row)
            .execute(conn)?;
        Ok(())
    })
}

pub fn update(conn: &mut DbConn, row: &Course) -> Result<(), StoreError> {
    direct!(conn, {
        update_where(
            courses::table,
            courses::table.primary_key().eq(&row.id),
            row,
        )
        .execute(conn)?;
        Ok(())
    })
}

pub fn get(conn: &mut DbConn, id: &str) -> Result<Option<Course>, StoreError> {
    direct!(conn, {
        Ok(courses::table
            .find(id)
            .select(Course::as_select())
            .get_result(conn)
            .optional()?)
    })
}

pub fn get_by_slug(conn: &mut DbConn, slug: &str) -> Result<Option<Course>, StoreError> {
    direct!(conn, {
        Ok(courses::table
            .filter(courses::slug.eq(slug))
            .select(Course::as_select())
            .get_result(conn)
            .optional()?)
    })
}

pub fn list(conn: &mut DbConn, published_only: bool) -> Result<Vec<Course>, StoreError> {
    direct!(conn, {
        let mut q = courses::table.select(Course::as_select()).into_boxed();
        if published_only {
            q = q.filter(courses::published.eq(true));
        }
        Ok(q.order((courses::title.asc(), courses::id.asc()))
            .load(conn)?)
    })
}

pub fn insert_lesson(conn: &mut DbConn, row: &Lesson) -> Result<(), StoreError> {
    direct!(conn, {
        diesel::insert_into(lessons::table)
            .values(row)
            .execute(conn)?;
        Ok(())
    })
}

pub fn update_lesson(conn: &mut DbConn, row: &Lesson) -> Result<(), StoreError> {
    direct!(conn, {
        update_where(
            lessons::table,
            lessons::table.primary_key().eq(&row.id),
            row,
        )
        .execute(conn)?;
        Ok(())
    })
}

pub fn lessons_of(conn: &mut DbConn, course_id: &str) -> Result<Vec<Lesson>, StoreError> {
    direct!(conn, {
        Ok(lessons::table
            .filter(lessons::course_id.eq(course_id))
            .order(lessons::position.asc())
            .select(Lesson::as_select())
            .load(conn)?)
    })
}

pub fn get_lesson(conn: &mut DbConn, id: &str) -> Result<Option<Lesson>, StoreError> {
    direct!(conn, {
        Ok(lessons::table
            .find(id)
            .select(Lesson::as_select())
            .get_result(conn)
            .optional()?)
    })
}

pub fn next_lesson_position(conn: &mut DbConn, course_id: &str) -> Result<i32, StoreError> {
    direct!(conn, {
        let max: Option<i32> = lessons::table
            .filter(lessons::course_id.eq(course_id))
            .select(diesel::dsl::max(lessons::position))
            .get_result(conn)?;
        Ok(max.unwrap_or(0) + 1)
    })
}

/// One keyset page of courses in slug order (slugs are unique).
pub fn page_after(
    conn: &mut DbConn,
    after_slug: Option<&str>,
    limit: i64,
) -> Result<Vec<Course>, StoreError> {
    direct!(conn, {
        let mut q = courses::table.select(Course::as_select()).into_boxed();
        if let Some(a) = after_slug {
            q = q.filter(courses::slug.gt(a.to_string()));
        }
        Ok(q.order(courses::slug.asc()).limit(limit).load(conn)?)
    })
}
