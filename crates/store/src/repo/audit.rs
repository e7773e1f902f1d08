use diesel::prelude::*;

use super::Page;
use crate::models::AuditEntry;
use crate::schema::audit_log;
use crate::{DbConn, StoreError};

/// Appends one entry. The audit log is append-only: there is no update or delete.
pub fn append(conn: &mut DbConn, row: &AuditEntry) -> Result<(), StoreError> {
    direct!(conn, {
        diesel::insert_into(audit_log::table)
            .values(row)
            .execute(conn)?;
        Ok(())
    })
}

#[derive(Debug, Default, Clone)]
pub struct AuditFilter {
    pub action: Option<String>,
    pub subject_kind: Option<String>,
    pub subject_id: Option<String>,
    pub actor_id: Option<String>,
    /// Actor kind (staff, api, cli, system, …).
    pub actor_kind: Option<String>,
    /// Entries at or after this instant.
    pub from: Option<chrono::NaiveDateTime>,
    /// Entries before this instant.
    pub until: Option<chrono::NaiveDateTime>,
    /// Oldest first instead of newest first.
    pub oldest_first: bool,
}

pub fn list(
    conn: &mut DbConn,
    filter: &AuditFilter,
    page: Page,
) -> Result<Vec<AuditEntry>, StoreError> {
    direct!(conn, {
        let mut q = audit_log::table
            .select(AuditEntry::as_select())
            .into_boxed();
        if let Some(a) = &filter.action {
            q = q.filter(audit_log::action.eq(a.clone()));
        }
        if let Some(k) = &filter.subject_kind {
            q = q.filter(audit_log::subject_kind.eq(k.clone()));
        }
        if let Some(s) = &filter.subject_id {
            q = q.filter(audit_log::subject_id.eq(s.clone()));
        }
        if let Some(a) = &filter.actor_id {
            q = q.filter(audit_log::actor_id.eq(a.clone()));
        }
        if let Some(k) = &filter.actor_kind {
            q = q.filter(audit_log::actor_kind.eq(k.clone()));
        }
        if let Some(f) = filter.from {
            q = q.filter(audit_log::at.ge(f));
        }
        if let Some(u) = filter.until {
            q = q.filter(audit_log::at.lt(u));
        }
        let q = if filter.oldest_first {
            q.order((audit_log::at.asc(), audit_log::id.asc()))
        } else {
            q.order((audit_log::at.desc(), audit_log::id.desc()))
        };
        Ok(q.limit(page.limit).offset(page.offset).load(conn)?)
    })
}
