//! coursegate-store: the only crate that names Diesel.
//!
//! One schema and one query code path over SQLite (the embedded default) and
//! PostgreSQL, chosen at run time from `DATABASE_URL`. Repositories are plain
//! functions taking `&mut DbConn` and run inside [`Store::read`] or
//! [`Store::write`], which move the work off the async executor and wrap it in
//! one transaction (`BEGIN IMMEDIATE` on SQLite so a writer never fails on a
//! lock upgrade). SQLite allows one writer at a time: the write transactions
//! of one process all go to one writer thread, which commits whatever is
//! waiting together (group commit, see the `writer` module), so writers neither sleep
//! in SQLite's busy handler nor pay a commit each; the busy timeout remains
//! for other processes (a CLI command next to a running server).
//!
//! Lookups by a unique key use `get_result`, never `first`: Diesel renders
//! `first` as `LIMIT ?` with a bound value, and SQLite (3.47 and later, with
//! STAT4 compiled in) treats a bound LIMIT as a value the query plan may
//! depend on, so it re-prepares such a statement on every execution, parsing
//! the SQL again and defeating the statement cache. Only a query that can
//! match several rows and wants the first of them keeps `first`.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cached;
mod checkpoint;
mod conn;
mod error;
pub mod models;
pub mod repo;
pub mod schema;
mod sqlite_tx;
mod writer;

use std::time::Duration;

use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

pub(crate) use cached::update_where;
pub use conn::{Backend, DatabaseUrl, DbConn};
pub use error::StoreError;

/// The transaction handle repositories and core services receive.
pub type Tx = DbConn;

pub const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/sqlite");
pub const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/postgres");

/// Pool settings.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub pool_size: u32,
    pub busy_timeout: Duration,
    pub connect_timeout: Duration,
    /// PostgreSQL schema to use (created if missing); tests use one per test.
    pub pg_schema: Option<String>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            pool_size: 8,
            busy_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
            pg_schema: None,
        }
    }
}

/// A pool of connections to one database.
#[derive(Clone)]
pub struct Store {
    pool: r2d2::Pool<conn::Manager>,
    url: DatabaseUrl,
    options: StoreOptions,
    /// SQLite only: the queue of this process's writer thread (see the `writer` module).
    sqlite_writer: Option<writer::Writer>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("url", &self.url).finish()
    }
}

impl Store {
    /// Opens a pool. For SQLite the parent directory of the file is created.
    pub fn connect(url: &str, options: StoreOptions) -> Result<Self, StoreError> {
        let url = DatabaseUrl::parse(url)?;
        if let DatabaseUrl::Postgres(_) = &url {
            // Before any connection, including the schema's below.
            conn::init_openssl_without_atexit();
        }
        if let DatabaseUrl::Sqlite(path) = &url {
            if let Some(parent) = std::path::Path::new(path).parent() {
                if !parent.as_os_str().is_empty() {
                    std::fs::create_dir_all(parent).map_err(|e| {
                        StoreError::Config(format!(
                            "DATABASE_URL: cannot create directory {}: {e}",
                            parent.display()
                        ))
                    })?;
                }
            }
        }
        if let (DatabaseUrl::Postgres(u), Some(schema)) = (&url, &options.pg_schema) {
            validate_schema_name(schema)?;
            let mut c = <diesel::PgConnection as diesel::Connection>::establish(u)
                .map_err(|e| StoreError::Unavailable(e.to_string()))?;
            c.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\";"))?;
        }
        let manager =
            conn::Manager::new(url.clone(), options.busy_timeout, options.pg_schema.clone());
        let pool = r2d2::Pool::builder()
            .max_size(options.pool_size.max(1))
            // No background top-up: connections open on demand and stay
            // pooled. A replenishing thread still inside libpq's connect when
            // a short-lived process (a CLI command, a test) exits races
            // OpenSSL's exit handlers and can kill the process with a signal.
            .min_idle(Some(0))
            .connection_timeout(options.connect_timeout)
            .build(manager)
            .map_err(|e| StoreError::Unavailable(format!("{}: {e}", url.redacted())))?;
        // Open one connection now, so an unreachable database is reported at
        // start and not on the first request.
        let mut first = pool
            .get()
            .map_err(|e| StoreError::Unavailable(format!("{}: {e}", url.redacted())))?;
        if let DatabaseUrl::Sqlite(_) = &url {
            warn_if_sqlite_built_elsewhere(&mut first);
        }
        drop(first);
        let sqlite_writer = match &url {
            DatabaseUrl::Sqlite(path) => Some(writer::Writer::spawn(
                pool.clone(),
                checkpoint::Checkpointer::spawn(path.clone(), options.busy_timeout)?,
            )?),
            DatabaseUrl::Postgres(_) => None,
        };
        Ok(Self {
            pool,
            url,
            options,
            sqlite_writer,
        })
    }

    pub fn backend(&self) -> Backend {
        self.url.backend()
    }

    pub fn url(&self) -> &DatabaseUrl {
        &self.url
    }

    pub fn pool_size(&self) -> u32 {
        self.options.pool_size
    }

    fn migrations(&self) -> EmbeddedMigrations {
        match self.backend() {
            Backend::Sqlite => SQLITE_MIGRATIONS,
            Backend::Postgres => POSTGRES_MIGRATIONS,
        }
    }

    /// Applies pending migrations; returns the versions applied. On SQLite it
    /// also switches the file to WAL (a persistent setting). On PostgreSQL an
    /// advisory lock makes instances that start together migrate one at a time.
    pub fn migrate(&self) -> Result<Vec<String>, StoreError> {
        let mut conn = self.pool.get()?;
        let migrations = self.migrations();
        let applied = match &mut **conn {
            DbConn::Sqlite(c) => {
                c.batch_execute("PRAGMA journal_mode = WAL;")?;
                c.batch_execute("PRAGMA foreign_keys = OFF;")?;
                let r = c
                    .run_pending_migrations(migrations)
                    .map(|v| v.iter().map(|v| v.to_string()).collect::<Vec<_>>())
                    .map_err(|e| StoreError::Internal(format!("migration failed: {e}")));
                c.batch_execute("PRAGMA foreign_keys = ON;")?;
                r?
            }
            DbConn::Postgres(c) => {
                c.batch_execute("SELECT pg_advisory_lock(727011);")?;
                let r = c
                    .run_pending_migrations(migrations)
                    .map(|v| v.iter().map(|v| v.to_string()).collect::<Vec<_>>())
                    .map_err(|e| StoreError::Internal(format!("migration failed: {e}")));
                c.batch_execute("SELECT pg_advisory_unlock(727011);")?;
                r?
            }
        };
        Ok(applied)
    }

    /// Reverts every applied migration (used by the migration round-trip check).
    pub fn revert_all(&self) -> Result<Vec<String>, StoreError> {
        let mut conn = self.pool.get()?;
        let migrations = self.migrations();
        let reverted = match &mut **conn {
            DbConn::Sqlite(c) => c.revert_all_migrations(migrations),
            DbConn::Postgres(c) => c.revert_all_migrations(migrations),
        }
        .map_err(|e| StoreError::Internal(format!("revert failed: {e}")))?;
        Ok(reverted.iter().map(|v| v.to_string()).collect())
    }

    /// Number of embedded migrations not yet applied.
    pub fn pending_migrations(&self) -> Result<usize, StoreError> {
        let mut conn = self.pool.get()?;
        let migrations = self.migrations();
        let pending = match &mut **conn {
            DbConn::Sqlite(c) => c.pending_migrations(migrations).map(|p| p.len()),
            DbConn::Postgres(c) => c.pending_migrations(migrations).map(|p| p.len()),
        }
        .map_err(|e| StoreError::Internal(e.to_string()))?;
        Ok(pending)
    }

    /// Names of the tables in the current schema (for checks and tests).
    pub fn table_names(&self) -> Result<Vec<String>, StoreError> {
        self.read_blocking(repo::meta::table_names)
    }

    /// Drops the PostgreSQL test schema this store was opened with.
    pub fn drop_pg_schema(&self) -> Result<(), StoreError> {
        if let (DatabaseUrl::Postgres(u), Some(schema)) = (&self.url, &self.options.pg_schema) {
            let mut c = <diesel::PgConnection as diesel::Connection>::establish(u)
                .map_err(|e| StoreError::Unavailable(e.to_string()))?;
            c.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE;"))?;
        }
        Ok(())
    }

    /// Runs `f` in a read transaction on a blocking thread.
    pub async fn read<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut Tx) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.read_blocking(f))
            .await
            .map_err(|e| E::from(StoreError::Internal(format!("blocking task failed: {e}"))))?
    }

    /// Runs `f`, which makes exactly one query, on a blocking thread without
    /// a transaction around it: one statement is atomic and reads one
    /// snapshot by itself, and `BEGIN` and `COMMIT` would add two statements
    /// (two round trips on PostgreSQL). Anything that reads twice uses
    /// [`Store::read`].
    ///
    /// On SQLite, when a connection is idle, the read runs at once on the
    /// calling thread: a point lookup in a local file takes tens of
    /// microseconds, less than handing it to a blocking thread and waking
    /// the caller again. It never waits for a connection there (if none is
    /// idle it goes to a blocking thread like any read), so it cannot stall
    /// the executor; callers keep it to point lookups. The first choice is
    /// the writer thread's connection, when no batch is running: its page
    /// cache holds the pages the last batches wrote, where a pooled reader
    /// finds its whole cache dropped after every commit (WAL mode) and reads
    /// them back from the WAL file.
    pub async fn read_one<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut Tx) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        if let Some(writer) = &self.sqlite_writer {
            if let Some(mut idle) = writer.try_idle() {
                if let Some(conn) = idle.as_mut() {
                    return f(conn);
                }
            }
            if let Some(mut conn) = self.pool.try_get() {
                return f(&mut conn);
            }
        }
        self.untransacted(f).await
    }

    /// Runs `f`, which makes exactly one write statement: on PostgreSQL
    /// without `BEGIN`/`COMMIT` around it (the statement commits by itself
    /// before it returns, so the answer still comes after the commit, and
    /// the two round trips are saved); on SQLite in the writer's next batch,
    /// like [`Store::write`]. Anything that runs two statements uses
    /// [`Store::write`].
    pub async fn write_one<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut Tx) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        if self.sqlite_writer.is_some() {
            return self.write(f).await;
        }
        self.untransacted(f).await
    }

    /// [`Store::read_one`], then [`Store::write_one`] with what it read:
    /// two statements, each atomic by itself, with no transaction around
    /// them (the write must not depend on the read staying true). On
    /// PostgreSQL both run on one connection in one trip to a blocking
    /// thread; on SQLite the read runs as `read_one` does and the write in
    /// the writer's next batch.
    pub async fn read_one_then_write_one<R, T, E, FR, FW>(
        &self,
        read: FR,
        write: FW,
    ) -> Result<T, E>
    where
        FR: FnOnce(&mut Tx) -> Result<R, E> + Send + 'static,
        FW: FnOnce(&mut Tx, R) -> Result<T, E> + Send + 'static,
        R: Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        if self.sqlite_writer.is_some() {
            let r = self.read_one(read).await?;
            return self.write_one(move |tx| write(tx, r)).await;
        }
        self.untransacted(move |tx| {
            let r = read(tx)?;
            write(tx, r)
        })
        .await
    }

    /// Runs `f` on a pooled connection on a blocking thread, with no
    /// transaction around it ([`Store::read_one`], [`Store::write_one`]).
    async fn untransacted<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut Tx) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let pool = self.pool.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = pool.get().map_err(StoreError::from)?;
            f(&mut conn)
        })
        .await
        .map_err(|e| E::from(StoreError::Internal(format!("blocking task failed: {e}"))))?
    }

    /// Runs `f` in a write transaction: on SQLite in the writer thread's next
    /// batch, on PostgreSQL on a blocking thread. Everything `f` writes
    /// (including outbox rows) commits together or not at all, and the
    /// answer comes only after the commit.
    pub async fn write<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut Tx) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        if let Some(queue) = &self.sqlite_writer {
            let (tx, rx) = tokio::sync::oneshot::channel();
            let job = writer::job(f, move |r| {
                let _ = tx.send(r);
            });
            queue.submit(job).map_err(E::from)?;
            return rx.await.map_err(|_| E::from(job_lost()))?;
        }
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.write_blocking(f))
            .await
            .map_err(|e| E::from(StoreError::Internal(format!("blocking task failed: {e}"))))?
    }

    /// Synchronous read transaction (CLI, workers already off the executor).
    pub fn read_blocking<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut Tx) -> Result<T, E>,
        E: From<StoreError>,
    {
        let mut conn = self.pool.get().map_err(StoreError::from)?;
        in_transaction(&mut conn, false, f)
    }

    /// Synchronous write transaction, on the caller's thread (CLI, tests,
    /// workers already off the executor). On SQLite it takes the writer's
    /// turn for the length of its transaction, so it never competes with a
    /// batch for the database lock.
    pub fn write_blocking<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut Tx) -> Result<T, E>,
        E: From<StoreError>,
    {
        // Wait for the turn before taking a connection, so waiting writers
        // do not hold connections the readers need.
        let _turn = self.sqlite_writer.as_ref().map(|w| w.turn());
        let mut conn = self.pool.get().map_err(StoreError::from)?;
        in_transaction(&mut conn, true, f)
    }
}

/// The SQLite compile options `.cargo/config.toml` asks for, as `PRAGMA
/// compile_options` lists them (without the `SQLITE_` prefix).
pub const SQLITE_BUILD_WANTS: [&str; 2] = ["THREADSAFE=2", "DEFAULT_MEMSTATUS=0"];
/// And the one it turns off.
pub const SQLITE_BUILD_AVOIDS: &str = "ENABLE_MEMORY_MANAGEMENT";

/// A binary built outside the repository (so without its
/// `.cargo/config.toml`) works, but every page fetch and allocation in
/// SQLite then takes a process-wide mutex: say so once, at start.
fn warn_if_sqlite_built_elsewhere(conn: &mut DbConn) {
    let Ok(options) = repo::meta::sqlite_compile_options(conn) else {
        return;
    };
    if !sqlite_built_as_configured(&options) {
        tracing::warn!(
            compile_options = %options.join(" "),
            "the bundled SQLite was not built with the repository's LIBSQLITE3_FLAGS (.cargo/config.toml): \
             it works, but with process-wide mutexes that cost throughput; build from a checkout of the repository"
        );
    }
}

/// True when `options` (`PRAGMA compile_options`) are what `.cargo/config.toml` asks for.
fn sqlite_built_as_configured(options: &[String]) -> bool {
    SQLITE_BUILD_WANTS
        .iter()
        .all(|w| options.iter().any(|o| o == w))
        && !options.iter().any(|o| o == SQLITE_BUILD_AVOIDS)
}

fn job_lost() -> StoreError {
    StoreError::Internal("a write transaction panicked".into())
}

fn validate_schema_name(s: &str) -> Result<(), StoreError> {
    if !s.is_empty() && s.len() < 60 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        Ok(())
    } else {
        Err(StoreError::Config(format!(
            "invalid PostgreSQL schema name {s:?}"
        )))
    }
}

fn in_transaction<T, E, F>(conn: &mut DbConn, write: bool, f: F) -> Result<T, E>
where
    F: FnOnce(&mut Tx) -> Result<T, E>,
    E: From<StoreError>,
{
    let begin = match conn {
        DbConn::Sqlite(c) => sqlite_tx::begin(c, write),
        DbConn::Postgres(c) => AnsiTransactionManager::begin_transaction(c),
    };
    begin.map_err(StoreError::from)?;
    match f(conn) {
        Ok(v) => {
            let commit = match conn {
                DbConn::Sqlite(c) => sqlite_tx::commit(c),
                DbConn::Postgres(c) => AnsiTransactionManager::commit_transaction(c),
            };
            match commit {
                Ok(()) => Ok(v),
                Err(e) => {
                    rollback(conn);
                    Err(StoreError::from(e).into())
                }
            }
        }
        Err(e) => {
            rollback(conn);
            Err(e)
        }
    }
}

fn rollback(conn: &mut DbConn) {
    let r = match conn {
        DbConn::Sqlite(c) => sqlite_tx::rollback(c),
        DbConn::Postgres(c) => AnsiTransactionManager::rollback_transaction(c),
    };
    if let Err(e) = r {
        tracing::warn!(error = %e, "rollback failed");
    }
}

#[cfg(test)]
mod tests {
    use super::sqlite_built_as_configured;

    fn opts(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_sqlite_build_check_names_what_is_missing_or_extra() {
        let configured = ["COMPILER=gcc", "DEFAULT_MEMSTATUS=0", "THREADSAFE=2"];
        assert!(sqlite_built_as_configured(&opts(&configured)));
        // libsqlite3-sys's own defaults: serialized, statistics on, global page-cache LRU.
        assert!(!sqlite_built_as_configured(&opts(&[
            "ENABLE_MEMORY_MANAGEMENT",
            "THREADSAFE=1"
        ])));
        assert!(!sqlite_built_as_configured(&opts(&[
            "DEFAULT_MEMSTATUS=0",
            "THREADSAFE=2",
            "ENABLE_MEMORY_MANAGEMENT"
        ])));
        assert!(!sqlite_built_as_configured(&opts(&["THREADSAFE=2"])));
    }
}
