//! Transaction statements on SQLite, prepared once per connection.
//!
//! Diesel's transaction manager sends `BEGIN`, `COMMIT` and each
//! `SAVEPOINT diesel_savepoint_N` as text through `sqlite3_exec`, which
//! parses and plans the statement on every call: five to six times per
//! launch (the writer's batch, a savepoint per job, the launch's read
//! transaction), ~5 % of its CPU. Here each statement is a type with a
//! static query id, so Diesel's statement cache prepares it once per
//! connection and runs the prepared statement from then on.
//!
//! These functions own the SQLite transaction state: Diesel's manager is
//! not told (it stays "not in a transaction"), so nothing inside one of
//! these transactions may use `Connection::transaction`; the store's code
//! never does (only the migrations do, on a connection of their own).

use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::sqlite::Sqlite;
use diesel::{QueryResult, RunQueryDsl, SqliteConnection};

macro_rules! statement {
    ($name:ident, $sql:literal) => {
        #[derive(Debug, Clone, Copy)]
        struct $name;

        impl QueryId for $name {
            type QueryId = $name;
            const HAS_STATIC_QUERY_ID: bool = true;
        }

        impl QueryFragment<Sqlite> for $name {
            fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Sqlite>) -> QueryResult<()> {
                out.push_sql($sql);
                Ok(())
            }
        }

        impl RunQueryDsl<SqliteConnection> for $name {}
    };
}

statement!(Begin, "BEGIN");
statement!(BeginImmediate, "BEGIN IMMEDIATE");
statement!(Commit, "COMMIT");
statement!(Rollback, "ROLLBACK");
statement!(Savepoint, "SAVEPOINT job");
statement!(Release, "RELEASE job");
statement!(RollbackToSavepoint, "ROLLBACK TO job");

/// Opens a transaction: `BEGIN IMMEDIATE` for a writer (it takes the write
/// lock at once, so it never fails on a lock upgrade), `BEGIN` for a reader.
/// A connection left inside a transaction by a failed rollback (it should
/// not happen) is rolled back and the transaction begun again, so it cannot
/// poison the pool.
pub(crate) fn begin(c: &mut SqliteConnection, write: bool) -> QueryResult<()> {
    let run = |c: &mut SqliteConnection| {
        if write {
            BeginImmediate.execute(c)
        } else {
            Begin.execute(c)
        }
    };
    match run(c) {
        Ok(_) => Ok(()),
        Err(e) if e.to_string().contains("within a transaction") => {
            tracing::warn!("a pooled SQLite connection was still in a transaction; rolled back");
            Rollback.execute(c)?;
            run(c).map(|_| ())
        }
        Err(e) => Err(e),
    }
}

pub(crate) fn commit(c: &mut SqliteConnection) -> QueryResult<()> {
    Commit.execute(c).map(|_| ())
}

pub(crate) fn rollback(c: &mut SqliteConnection) -> QueryResult<()> {
    Rollback.execute(c).map(|_| ())
}

/// A savepoint inside the open transaction (one job of a writer's batch).
pub(crate) fn savepoint(c: &mut SqliteConnection) -> QueryResult<()> {
    Savepoint.execute(c).map(|_| ())
}

/// Keeps the savepoint's changes as part of the transaction.
pub(crate) fn release(c: &mut SqliteConnection) -> QueryResult<()> {
    Release.execute(c).map(|_| ())
}

/// Undoes the savepoint's changes and removes it; the transaction stays open.
pub(crate) fn rollback_savepoint(c: &mut SqliteConnection) -> QueryResult<()> {
    RollbackToSavepoint.execute(c)?;
    Release.execute(c).map(|_| ())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use diesel::connection::SimpleConnection;
    use diesel::Connection;

    fn conn() -> (tempfile::TempDir, SqliteConnection) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let mut c = SqliteConnection::establish(path.to_str().unwrap()).unwrap();
        c.batch_execute("CREATE TABLE t (v INTEGER NOT NULL);")
            .unwrap();
        (dir, c)
    }

    fn count(c: &mut SqliteConnection) -> i64 {
        use diesel::sql_types::BigInt;
        #[derive(diesel::QueryableByName)]
        struct N {
            #[diesel(sql_type = BigInt)]
            n: i64,
        }
        diesel::sql_query("SELECT COUNT(*) AS n FROM t")
            .get_result::<N>(c)
            .unwrap()
            .n
    }

    #[test]
    fn a_rolled_back_savepoint_keeps_the_rest_of_the_transaction() {
        let (_d, mut c) = conn();
        begin(&mut c, true).unwrap();
        c.batch_execute("INSERT INTO t VALUES (1);").unwrap();
        savepoint(&mut c).unwrap();
        c.batch_execute("INSERT INTO t VALUES (2);").unwrap();
        rollback_savepoint(&mut c).unwrap();
        savepoint(&mut c).unwrap();
        c.batch_execute("INSERT INTO t VALUES (3);").unwrap();
        release(&mut c).unwrap();
        commit(&mut c).unwrap();
        assert_eq!(count(&mut c), 2);
        // The prepared statements run again on the same connection.
        begin(&mut c, false).unwrap();
        assert_eq!(count(&mut c), 2);
        rollback(&mut c).unwrap();
    }

    #[test]
    fn a_connection_left_in_a_transaction_is_rolled_back_before_the_next_one() {
        let (_d, mut c) = conn();
        begin(&mut c, true).unwrap();
        c.batch_execute("INSERT INTO t VALUES (1);").unwrap();
        // No commit or rollback: the next begin finds the transaction open.
        begin(&mut c, true).unwrap();
        c.batch_execute("INSERT INTO t VALUES (2);").unwrap();
        commit(&mut c).unwrap();
        assert_eq!(count(&mut c), 1, "the abandoned insert was rolled back");
    }
}
