use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::Page;
use crate::models::{Learner, LearnerIdentity};
use crate::schema::{learner_identities, learners};
use crate::{DbConn, StoreError};

pub fn insert(conn: &mut DbConn, row: &Learner) -> Result<(), StoreError> {
    diesel::insert_into(learners::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

pub fn update(conn: &mut DbConn, row: &Learner) -> Result<(), StoreError> {
    diesel::update(learners::table.find(&row.id))
        .set(row)
        .execute(conn)?;
    Ok(())
}

pub fn get(conn: &mut DbConn, id: &str) -> Result<Option<Learner>, StoreError> {
    Ok(learners::table
        .find(id)
        .select(Learner::as_select())
        .first(conn)
        .optional()?)
}

pub fn find_by_email(conn: &mut DbConn, email_lower: &str) -> Result<Option<Learner>, StoreError> {
    Ok(learners::table
        .filter(learners::email_lower.eq(email_lower))
        .select(Learner::as_select())
        .first(conn)
        .optional()?)
}

pub fn find_by_external_id(
    conn: &mut DbConn,
    external_id: &str,
) -> Result<Option<Learner>, StoreError> {
    Ok(learners::table
        .filter(learners::external_id.eq(external_id))
        .select(Learner::as_select())
        .first(conn)
        .optional()?)
}

/// Learners whose email or name contains `q` (case-insensitive on the stored
/// lowercase email; names compared as given), newest first.
pub fn search(conn: &mut DbConn, q: Option<&str>, page: Page) -> Result<Vec<Learner>, StoreError> {
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
    Ok(query
        .order((learners::created_at.desc(), learners::id.desc()))
        .limit(page.limit)
        .offset(page.offset)
        .load(conn)?)
}

pub fn count(conn: &mut DbConn) -> Result<i64, StoreError> {
    Ok(learners::table.count().get_result(conn)?)
}

pub fn insert_identity(conn: &mut DbConn, row: &LearnerIdentity) -> Result<(), StoreError> {
    diesel::insert_into(learner_identities::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

pub fn find_identity(
    conn: &mut DbConn,
    identity_key: &str,
) -> Result<Option<LearnerIdentity>, StoreError> {
    Ok(learner_identities::table
        .filter(learner_identities::identity_key.eq(identity_key))
        .select(LearnerIdentity::as_select())
        .first(conn)
        .optional()?)
}

pub fn identities_of(
    conn: &mut DbConn,
    learner_id: &str,
) -> Result<Vec<LearnerIdentity>, StoreError> {
    Ok(learner_identities::table
        .filter(learner_identities::learner_id.eq(learner_id))
        .order(learner_identities::created_at.asc())
        .select(LearnerIdentity::as_select())
        .load(conn)?)
}

pub fn touch(conn: &mut DbConn, id: &str, now: NaiveDateTime) -> Result<(), StoreError> {
    diesel::update(learners::table.find(id))
        .set(learners::updated_at.eq(now))
        .execute(conn)?;
    Ok(())
}

/// Learners in id order (UUIDv7, so creation order) after the cursor `after`.
pub fn page_after(
    conn: &mut DbConn,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<Learner>, StoreError> {
    let mut q = learners::table.select(Learner::as_select()).into_boxed();
    if let Some(a) = after {
        q = q.filter(learners::id.gt(a.to_string()));
    }
    Ok(q.order(learners::id.asc()).limit(limit).load(conn)?)
}

/// Moves a learner's email identities to a new address (an upsert by
/// external id that changed the email). Returns how many rows changed.
pub fn retarget_email_identity(
    conn: &mut DbConn,
    learner_id: &str,
    identity_key: &str,
    email_lower: &str,
) -> Result<usize, StoreError> {
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
}
