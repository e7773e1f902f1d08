use diesel::prelude::*;
use diesel::sql_types::Text;

use crate::{DbConn, StoreError};

#[derive(QueryableByName)]
struct Name {
    #[diesel(sql_type = Text)]
    name: String,
}

/// Table names of the current schema, sorted, excluding Diesel's bookkeeping.
pub fn table_names(conn: &mut DbConn) -> Result<Vec<String>, StoreError> {
    let rows: Vec<Name> = match conn {
        DbConn::Sqlite(c) => diesel::sql_query(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
        )
        .load(c)?,
        DbConn::Postgres(c) => diesel::sql_query(
            "SELECT table_name AS name FROM information_schema.tables WHERE table_schema = current_schema() ORDER BY table_name",
        )
        .load(c)?,
    };
    Ok(rows
        .into_iter()
        .map(|r| r.name)
        .filter(|n| n != "__diesel_schema_migrations")
        .collect())
}

/// A cheap round trip, for readiness checks.
pub fn ping(conn: &mut DbConn) -> Result<(), StoreError> {
    match conn {
        DbConn::Sqlite(c) => diesel::sql_query("SELECT 1").execute(c)?,
        DbConn::Postgres(c) => diesel::sql_query("SELECT 1").execute(c)?,
    };
    Ok(())
}

#[derive(QueryableByName)]
struct CompileOption {
    #[diesel(sql_type = Text)]
    compile_options: String,
}

/// The options the bundled SQLite was compiled with (`PRAGMA
/// compile_options`, without the `SQLITE_` prefix); empty on PostgreSQL.
pub fn sqlite_compile_options(conn: &mut DbConn) -> Result<Vec<String>, StoreError> {
    match conn {
        DbConn::Sqlite(c) => Ok(diesel::sql_query("PRAGMA compile_options")
            .load::<CompileOption>(c)?
            .into_iter()
            .map(|o| o.compile_options)
            .collect()),
        DbConn::Postgres(_) => Ok(Vec::new()),
    }
}
