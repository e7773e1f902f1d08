//! Statements Diesel declines to keep prepared, kept prepared.
//!
//! Diesel marks every `UPDATE` as unsafe to cache (a changeset with
//! optional fields renders different SQL for different values), so each one
//! is parsed and planned again on every run: on SQLite a fresh
//! `sqlite3_prepare`, on PostgreSQL an extra round trip to prepare it. It
//! was 4 % of a launch's CPU for one `UPDATE ... SET used_at` alone
//! (docs/benchmarks.md, 2026-12-02). [`Cached`] keys such a statement by its
//! SQL text instead: each distinct text is prepared once per connection and
//! reused. That is sound for any statement whose binds are all parameters
//! (never spliced into the text), which holds for everything Diesel's DSL
//! builds; the number of distinct texts is bounded by the code (a changeset
//! of n optional fields has at most 2^n).

use diesel::backend::Backend;
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::{QueryResult, RunQueryDsl};

/// Wraps a statement so that its prepared form is cached by its SQL text.
#[derive(Debug, Clone, Copy)]
pub struct Cached<Q>(pub Q);

impl<Q, DB> QueryFragment<DB> for Cached<Q>
where
    Q: QueryFragment<DB>,
    DB: Backend,
{
    fn walk_ast<'b>(&'b self, pass: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        self.0.walk_ast(pass)
    }

    fn is_safe_to_cache_prepared(&self, _backend: &DB) -> QueryResult<bool> {
        Ok(true)
    }
}

/// Not a static id: the cache key is the SQL text, built per run.
impl<Q> QueryId for Cached<Q> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Q, Conn> RunQueryDsl<Conn> for Cached<Q> {}
