//! `UPDATE` statements that stay prepared.
//!
//! Diesel's own `UPDATE` marks itself unsafe to cache (a changeset with
//! optional fields renders different SQL for different values), so each run
//! parses and plans it again: on SQLite a fresh `sqlite3_prepare`, on
//! PostgreSQL an extra round trip. Overriding `is_safe_to_cache_prepared`
//! on a wrapper does not help: Diesel asks the question through `&T`, whose
//! impl walks the whole statement again and finds the mark. [`update_where`]
//! therefore renders the statement itself, from the same parts (table,
//! changeset, filter), without the mark, and has no static query id: the
//! statement cache keys it by its SQL text, so each distinct text is
//! prepared once per connection and reused. That is sound for any statement
//! whose values are all bind parameters (never spliced into the text), which
//! holds for everything Diesel's DSL builds; the number of distinct texts is
//! bounded by the code (a changeset of n optional fields has at most 2^n).

use diesel::backend::Backend;
use diesel::expression::{AppearsOnTable, Expression};
use diesel::query_builder::{AsChangeset, AstPass, QueryFragment, QueryId};
use diesel::query_source::Table;
use diesel::sql_types::BoolOrNullableBool;
use diesel::{QueryResult, RunQueryDsl};

/// `UPDATE table SET changes WHERE filter`, kept prepared (see the module).
#[derive(Debug, Clone)]
pub struct Update<F, S, W> {
    from: F,
    set: S,
    filter: W,
}

/// `UPDATE table SET changes WHERE filter`: the rows of `table` that match
/// `filter` (`table.primary_key().eq(id)` for one row) get `changes`.
pub fn update_where<T, W, V>(
    table: T,
    filter: W,
    changes: V,
) -> Update<T::FromClause, V::Changeset, W>
where
    T: Table,
    V: AsChangeset<Target = T>,
    W: Expression + AppearsOnTable<T>,
    W::SqlType: BoolOrNullableBool,
{
    Update {
        from: table.from_clause(),
        set: changes.as_changeset(),
        filter,
    }
}

impl<F, S, W, DB> QueryFragment<DB> for Update<F, S, W>
where
    DB: Backend,
    F: QueryFragment<DB>,
    S: QueryFragment<DB>,
    W: QueryFragment<DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_sql("UPDATE ");
        self.from.walk_ast(out.reborrow())?;
        out.push_sql(" SET ");
        self.set.walk_ast(out.reborrow())?;
        out.push_sql(" WHERE ");
        self.filter.walk_ast(out.reborrow())
    }
}

/// Not a static id: the cache key is the SQL text, built per run.
impl<F, S, W> QueryId for Update<F, S, W> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<F, S, W, Conn> RunQueryDsl<Conn> for Update<F, S, W> {}

/// `WITH cg_w0 AS (first), cg_w1 AS (second), … last`: several statements
/// (each an `INSERT` without `RETURNING`) sent as one, for PostgreSQL, where
/// each statement is a round trip. PostgreSQL runs every data-modifying
/// `WITH` clause exactly once, whether or not the main statement refers to
/// it; all of them see the same snapshot, so none may depend on another's
/// rows (no foreign key from a later row to an earlier one of the same
/// statement). Binds are numbered across the parts in order; the cache key
/// is the SQL text, as for [`update_where`].
pub struct WithInserts<'a, L, const N: usize> {
    parts: [&'a dyn QueryFragment<diesel::pg::Pg>; N],
    last: L,
}

pub fn with_inserts<'a, L, const N: usize>(
    parts: [&'a dyn QueryFragment<diesel::pg::Pg>; N],
    last: L,
) -> WithInserts<'a, L, N> {
    WithInserts { parts, last }
}

impl<L, const N: usize> QueryFragment<diesel::pg::Pg> for WithInserts<'_, L, N>
where
    L: QueryFragment<diesel::pg::Pg>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, diesel::pg::Pg>) -> QueryResult<()> {
        for (i, part) in self.parts.iter().enumerate() {
            out.push_sql(if i == 0 { "WITH " } else { ", " });
            out.push_sql(&format!("cg_w{i} AS ("));
            part.walk_ast(out.reborrow())?;
            out.push_sql(")");
        }
        out.push_sql(" ");
        self.last.walk_ast(out.reborrow())
    }
}

impl<L, const N: usize> QueryId for WithInserts<'_, L, N> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<L, const N: usize, Conn> RunQueryDsl<Conn> for WithInserts<'_, L, N> {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::lti_login_states as t;
    use diesel::connection::{Instrumentation, InstrumentationEvent};
    use diesel::prelude::*;
    use std::sync::{Arc, Mutex};

    /// Counts the statements a connection prepares for its cache.
    struct Prepared(Arc<Mutex<Vec<String>>>);

    impl Instrumentation for Prepared {
        fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
            if let InstrumentationEvent::CacheQuery { sql, .. } = event {
                self.0.lock().unwrap().push(sql.to_string());
            }
        }
    }

    #[test]
    fn an_update_is_prepared_once_and_does_what_diesels_does() {
        let mut c = SqliteConnection::establish(":memory:").unwrap();
        diesel::sql_query(
            "CREATE TABLE lti_login_states (id TEXT PRIMARY KEY NOT NULL, state_hash TEXT NOT NULL, \
             nonce TEXT NOT NULL, platform_id TEXT NOT NULL, target_link_uri TEXT NOT NULL, \
             deployment_hint TEXT, storage_target TEXT, created_at TIMESTAMP NOT NULL, \
             expires_at TIMESTAMP NOT NULL, used_at TIMESTAMP)",
        )
        .execute(&mut c)
        .unwrap();
        let now = chrono::NaiveDate::from_ymd_opt(2026, 12, 2)
            .unwrap()
            .and_hms_opt(10, 0, 0)
            .unwrap();
        for id in ["a", "b"] {
            diesel::sql_query(format!(
                "INSERT INTO lti_login_states VALUES ('{id}', 'h{id}', 'n', 'p', 'u', NULL, NULL, \
                 '2026-12-02 09:00:00', '2026-12-02 11:00:00', NULL)"
            ))
            .execute(&mut c)
            .unwrap();
        }
        let log = Arc::new(Mutex::new(Vec::new()));
        c.set_instrumentation(Prepared(log.clone()));
        let consume = |c: &mut SqliteConnection, id: &str| {
            update_where(
                t::table,
                t::table.primary_key().eq(id).and(t::used_at.is_null()),
                t::used_at.eq(Some(now)),
            )
            .execute(c)
            .unwrap()
        };
        // The filter and the changes apply as written: once per row.
        assert_eq!(consume(&mut c, "a"), 1);
        assert_eq!(consume(&mut c, "a"), 0);
        assert_eq!(consume(&mut c, "b"), 1);
        assert_eq!(consume(&mut c, "missing"), 0);
        let used: Vec<Option<chrono::NaiveDateTime>> = t::table
            .order(t::id)
            .select(t::used_at)
            .load(&mut c)
            .unwrap();
        assert_eq!(used, vec![Some(now), Some(now)]);
        // Four runs, one preparation of the UPDATE (the SELECT is the other).
        let prepared = log.lock().unwrap().clone();
        let updates: Vec<_> = prepared
            .iter()
            .filter(|s| s.starts_with("UPDATE"))
            .collect();
        assert_eq!(
            updates,
            vec![
                "UPDATE `lti_login_states` SET `used_at` = ? WHERE ((`lti_login_states`.`id` = ?) \
                 AND (`lti_login_states`.`used_at` IS NULL))"
            ],
            "{prepared:?}"
        );
        // Diesel's own UPDATE of the same shape is prepared on every run.
        log.lock().unwrap().clear();
        for _ in 0..2 {
            diesel::update(t::table.find("a"))
                .set(t::used_at.eq(Some(now)))
                .execute(&mut c)
                .unwrap();
        }
        assert!(
            log.lock().unwrap().is_empty(),
            "Diesel's UPDATE is not cached at all"
        );
    }
}
