use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::Page;
use crate::models::{Learner, LearnerIdentity};
use crate::schema::{learner_identities, learners};
use crate::{update_where, DbConn, StoreError};

pub fn insert(conn: &mut DbConn, row: &Learner) -> Result<(), StoreError> {
    direct!(conn, {
        diesel::insert_into(learners::table)
            .values(row)
            .execute(conn)?;
        Ok(())
    })
}

pub fn update(conn: &mut DbConn, row: &Learner) -> Result<(), StoreError> {
    direct!(conn, {
        update_where(
            learners::table,
            learners::table.primary_key().eq(&row.id),
            row,
        )
        .execute(conn)?;
        Ok(())
    })
}

pub fn get(conn: &mut DbConn, id: &str) -> Result<Option<Learner>, StoreError> {
    direct!(conn, {
        Ok(learners::table
            .find(id)
            .select(Learner::as_select())
            .get_result(conn)
            .optional()?)
    })
}

pub fn find_by_email(conn: &mut DbConn, email_lower: &str) -> Result<Option<Learner>, StoreError> {
    direct!(conn, {
        Ok(learners::table
            .filter(learners::email_lower.eq(email_lower))
            .select(Learner::as_select())
            .get_result(conn)
            .optional()?)
    })
}

pub fn find_by_external_id(
    conn: &mut DbConn,
    external_id: &str,
) -> Result<Option<Learner>, StoreError> {
    direct!(conn, {
        Ok(learners::table
            .filter(learners::external_id.eq(external_id))
            .select(Learner::as_select())
            .get_result(conn)
            .optional()?)
    })
}

/// Sort keys for the learner search.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LearnerSort {
    #[default]
    NewestFirst,
    OldestFirst,
    EmailAsc,
    EmailDesc,
}

/// Learners whose email or name contains `q` (case-insensitive on the stored
/// lowercase email; names compared as given), newest first.
pub fn search(conn: &mut DbConn, q: Option<&str>, page: Page) -> Result<Vec<Learner>, StoreError> {
    search_in(conn, q, None, LearnerSort::NewestFirst, page)
}

/// Like `search`, sorted by `sort`, and with `only` limited to learners
/// holding an enrolment in one of those courses (instructor scoping).
pub fn search_in(
    conn: &mut DbConn,
    q: Option<&str>,
    only: Option<&[String]>,
    sort: LearnerSort,
    page: Page,
) -> Result<Vec<Learner>, StoreError> {
    direct!(conn, {
        use crate::schema::enrolments;
        let mut query = learners::table.select(Learner::as_select()).into_boxed();
        if let Some(q) = q.filter(|q| !q.is_empty()) {
            let pattern = format!("%{}%", q.to_lowercase());
            let name_pattern = format!("%{q}%");
            query = query.filter(
                learners::email_lower
                    .like(pattern)
                    .or(learners::name.like(name_pattern)),
            );
        }
        if let Some(ids) = only {
            query = query.filter(
                learners::id.eq_any(
                    enrolments::table
                        .filter(enrolments::course_id.eq_any(ids.to_vec()))
                        .select(enrolments::learner_id),
                ),
            );
        }
        let query = match sort {
            LearnerSort::NewestFirst => {
                query.order((learners::created_at.desc(), learners::id.desc()))
            }
            LearnerSort::OldestFirst => {
                query.order((learners::created_at.asc(), learners::id.asc()))
            }
            LearnerSort::EmailAsc => query.order((learners::email_lower.asc(), learners::id.asc())),
            LearnerSort::EmailDesc => {
                query.order((learners::email_lower.desc(), learners::id.desc()))
            }
        };
        Ok(query.limit(page.limit).offset(page.offset).load(conn)?)
    })
}

/// Learners with an enrolment in one of `course_ids`.
pub fn count_in(conn: &mut DbConn, course_ids: &[String]) -> Result<i64, StoreError> {
    direct!(conn, {
        use crate::schema::enrolments;
        Ok(learners::table
            .filter(
                learners::id.eq_any(
                    enrolments::table
                        .filter(enrolments::course_id.eq_any(course_ids.to_vec()))
                        .select(enrolments::learner_id),
                ),
            )
            .count()
            .get_result(conn)?)
    })
}

/// Whether the learner holds an enrolment (any state) in one of `course_ids`.
pub fn enrolled_in_any(
    conn: &mut DbConn,
    learner_id: &str,
    course_ids: &[String],
) -> Result<bool, StoreError> {
    direct!(conn, {
        use crate::schema::enrolments;
        let n: i64 = enrolments::table
            .filter(enrolments::learner_id.eq(learner_id))
            .filter(enrolments::course_id.eq_any(course_ids.to_vec()))
            .count()
            .get_result(conn)?;
        Ok(n > 0)
    })
}

pub fn count(conn: &mut DbConn) -> Result<i64, StoreError> {
    direct!(conn, { Ok(learners::table.count().get_result(conn)?) })
}

pub fn insert_identity(conn: &mut DbConn, row: &LearnerIdentity) -> Result<(), StoreError> {
    direct!(conn, {
        diesel::insert_into(learner_identities::table)
            .values(row)
            .execute(conn)?;
        Ok(())
    })
}

pub fn find_identity(
    conn: &mut DbConn,
    identity_key: &str,
) -> Result<Option<LearnerIdentity>, StoreError> {
    direct!(conn, {
        Ok(learner_identities::table
            .filter(learner_identities::identity_key.eq(identity_key))
            .select(LearnerIdentity::as_select())
            .get_result(conn)
            .optional()?)
    })
}

/// The learner an identity belongs to, in one query.
pub fn find_by_identity(
    conn: &mut DbConn,
    identity_key: &str,
) -> Result<Option<Learner>, StoreError> {
    direct!(conn, {
        Ok(learner_identities::table
            .inner_join(learners::table)
            .filter(learner_identities::identity_key.eq(identity_key))
            .select(Learner::as_select())
            .get_result(conn)
            .optional()?)
    })
}

pub fn identities_of(
    conn: &mut DbConn,
    learner_id: &str,
) -> Result<Vec<LearnerIdentity>, StoreError> {
    direct!(conn, {
        Ok(learner_identities::table
            .filter(learner_identities::learner_id.eq(learner_id))
            .order(learner_identities::created_at.asc())
            .select(LearnerIdentity::as_select())
            .load(conn)?)
    })
}

pub fn touch(conn: &mut DbConn, id: &str, now: NaiveDateTime) -> Result<(), StoreError> {
    direct!(conn, {
        update_where(
            learners::table,
            learners::table.primary_key().eq(id),
            learners::updated_at.eq(now),
        )
        .execute(conn)?;
        Ok(())
    })
}

/// Learners in id order (UUIDv7, so creation order) after the cursor `after`.
pub fn page_after(
    conn: &mut DbConn,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<Learner>, StoreError> {
    direct!(conn, {
        let mut q = learners::table.select(Learner::as_select()).into_boxed();
        if let Some(a) = after {
            q = q.filter(learners::id.gt(a.to_string()));
        }
        Ok(q.order(learners::id.asc()).limit(limit).load(conn)?)
    })
}

/// Moves a learner's email identities to a new address (an upsert by
/// external id that changed the email). Returns how many rows changed.
pub fn retarget_email_identity(
    conn: &mut DbConn,
    learner_id: &str,
    identity_key: &str,
    email_lower: &str,
) -> Result<usize, StoreError> {
    direct!(conn, {
        Ok(diesel::update(
            learner_identities::table
                .filter(learner_identities::learner_id.eq(learner_id))
                .filter(learner_identities::kind.eq("email")),
        )
        .set((
            learner_identities::identity_key.eq(identity_key),
            learner_identities::email_lower.eq(Some(email_lower)),
        ))
        .execute(conn)?)
    })
}
