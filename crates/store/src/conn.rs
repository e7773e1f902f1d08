//! One connection type over both backends, and the r2d2 manager that picks
//! the backend from the URL scheme (never by trial: a PostgreSQL URL must
//! never silently become a SQLite file).

use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::r2d2::R2D2Connection;

use crate::StoreError;

/// A connection to either backend. Repositories take `&mut DbConn`.
#[derive(diesel::MultiConnection)]
pub enum DbConn {
    Postgres(diesel::PgConnection),
    Sqlite(diesel::SqliteConnection),
}

/// Which backend a store talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// A parsed `DATABASE_URL`.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// A SQLite file path (relative to the working directory, or absolute).
    Sqlite(String),
    /// A libpq connection URL.
    Postgres(String),
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl DatabaseUrl {
    /// `sqlite://relative/path.db`, `sqlite:///abs/path.db`, `postgres://…` or
    /// `postgresql://…`. Anything else is refused with a message saying what is accepted.
    pub fn parse(url: &str) -> Result<Self, StoreError> {
        let url = url.trim();
        if let Some(rest) = url.strip_prefix("sqlite://") {
            let path = rest.split('?').next().unwrap_or("");
            if path.is_empty() {
                return Err(StoreError::Config(
                    "DATABASE_URL: sqlite:// needs a file path, e.g. sqlite://data/coursegate.db or sqlite:///var/lib/coursegate/db.sqlite".into(),
                ));
            }
            if path == ":memory:" {
                return Err(StoreError::Config(
                    "DATABASE_URL: in-memory SQLite is not supported (each pooled connection would see its own empty database); use a file".into(),
                ));
            }
            return Ok(DatabaseUrl::Sqlite(path.to_string()));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(DatabaseUrl::Postgres(url.to_string()));
        }
        Err(StoreError::Config(format!(
            "DATABASE_URL: unsupported scheme in {:?}; use sqlite://PATH (relative), sqlite:///ABS/PATH or postgres://USER@HOST/DB",
            redact(url)
        )))
    }

    pub fn backend(&self) -> Backend {
        match self {
            DatabaseUrl::Sqlite(_) => Backend::Sqlite,
            DatabaseUrl::Postgres(_) => Backend::Postgres,
        }
    }

    /// The URL with any password replaced, for logs and messages.
    pub fn redacted(&self) -> String {
        match self {
            DatabaseUrl::Sqlite(p) => format!("sqlite://{p}"),
            DatabaseUrl::Postgres(u) => redact(u),
        }
    }
}

fn redact(url: &str) -> String {
    // postgres://user:secret@host/db -> postgres://user:***@host/db
    if let Some((scheme, rest)) = url.split_once("://") {
        if let Some((userinfo, host)) = rest.split_once('@') {
            if let Some((user, _)) = userinfo.split_once(':') {
                return format!("{scheme}://{user}:***@{host}");
            }
        }
    }
    url.to_string()
}

/// How long a pooled PostgreSQL connection may have been idle and still be
/// handed out without a ping (`SELECT 1`).
///
/// Every checkout used to ping: one round trip, with a context switch on
/// each side, for every statement a request made (about a tenth of the
/// server's CPU per launch; docs/benchmarks.md, 2026-12-04). Now a checkout
/// first reads, without waiting, whatever the server sent on the idle
/// connection: a server that ended it (a restart, `pg_terminate_backend`,
/// `idle_session_timeout`) has said so and closed the socket, and that
/// connection is replaced before use. Only a connection idle for longer
/// than this is also pinged, for the failures that leave no trace on the
/// socket.
pub const PING_AFTER_IDLE: Duration = Duration::from_secs(5);

/// A pooled connection and when it was last given back to the pool.
pub struct Pooled {
    conn: DbConn,
    returned_at: Instant,
}

impl std::ops::Deref for Pooled {
    type Target = DbConn;
    fn deref(&self) -> &DbConn {
        &self.conn
    }
}

impl std::ops::DerefMut for Pooled {
    fn deref_mut(&mut self) -> &mut DbConn {
        &mut self.conn
    }
}

/// r2d2 manager that opens the right backend and applies per-connection settings.
#[derive(Debug)]
pub struct Manager {
    url: DatabaseUrl,
    busy_timeout: Duration,
    /// PostgreSQL `search_path` to set on every connection (tests use a schema per test).
    pg_schema: Option<String>,
}

impl Manager {
    pub fn new(url: DatabaseUrl, busy_timeout: Duration, pg_schema: Option<String>) -> Self {
        Self {
            url,
            busy_timeout,
            pg_schema,
        }
    }
}

impl r2d2::ManageConnection for Manager {
    type Connection = Pooled;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> Result<Pooled, Self::Error> {
        Ok(Pooled {
            conn: self.open()?,
            returned_at: Instant::now(),
        })
    }

    fn is_valid(&self, conn: &mut Pooled) -> Result<(), Self::Error> {
        let idle = conn.returned_at.elapsed();
        match &mut conn.conn {
            // A file connection does not go away: no round trip per checkout.
            DbConn::Sqlite(_) => Ok(()),
            DbConn::Postgres(c) => {
                if closed_by_server(c) {
                    // Ended by the server while idle: the pool opens another.
                    return Err(diesel::r2d2::Error::QueryError(
                        diesel::result::Error::DatabaseError(
                            diesel::result::DatabaseErrorKind::ClosedConnection,
                            Box::new("the server closed this pooled connection".to_string()),
                        ),
                    ));
                }
                if idle < PING_AFTER_IDLE {
                    return Ok(());
                }
                // Idle for a while: a failed ping is reconnected by the pool.
                conn.conn.ping().map_err(diesel::r2d2::Error::QueryError)
            }
        }
    }

    /// Called by the pool as the connection comes back.
    fn has_broken(&self, conn: &mut Pooled) -> bool {
        conn.returned_at = Instant::now();
        conn.conn.is_broken()
    }
}

/// Initialises OpenSSL, which libpq uses for TLS to PostgreSQL, before
/// libpq does, and without the clean-up OpenSSL otherwise registers with
/// `atexit`: that clean-up frees OpenSSL's state while other threads may
/// still be reading from a TLS connection (a worker polling the outbox),
/// and the process then dies with SIGSEGV on its way out (seen once, in a
/// test binary after all its tests had passed). The first initialisation
/// decides, so [`crate::Store::connect`] calls this before it opens any
/// PostgreSQL connection (the pool's manager is made only there).
pub(crate) fn init_openssl_without_atexit() {
    openssl_sys::init();
}

/// Whether the server has ended an idle connection, found without a round
/// trip: libpq reads what is waiting on the socket without blocking (a
/// terminated backend leaves its FATAL notice, then end-of-file, which the
/// second read reports as an error). A healthy idle connection has nothing
/// to read, and the two reads cost two system calls.
fn closed_by_server(c: &mut diesel::PgConnection) -> bool {
    (0..2).any(|_| matches!(c.notifications_iter().next(), Some(Err(_))))
}

impl Manager {
    fn open(&self) -> Result<DbConn, diesel::r2d2::Error> {
        match &self.url {
            DatabaseUrl::Sqlite(path) => {
                let mut c = diesel::SqliteConnection::establish(path)
                    .map_err(diesel::r2d2::Error::ConnectionError)?;
                // Order matters and each PRAGMA is its own statement.
                let ms = self.busy_timeout.as_millis();
                for pragma in [
                    format!("PRAGMA busy_timeout = {ms};"),
                    "PRAGMA foreign_keys = ON;".to_string(),
                    "PRAGMA synchronous = NORMAL;".to_string(),
                    // No memory map: with one, every growth of the file
                    // remaps it in each connection (munmap, TLB shootdowns
                    // across cores), which cost more than the reads it
                    // saved (docs/benchmarks.md, 2026-12-02).
                    "PRAGMA mmap_size = 0;".to_string(),
                    // Checkpoint every ~16 MiB of WAL rather than ~4 MiB: a
                    // page written by many commits is copied back once.
                    "PRAGMA wal_autocheckpoint = 4000;".to_string(),
                    // The writer's savepoints (group commit) journal the
                    // pages they change; past 64 KiB SQLite would spill that
                    // journal to a temporary file, one pwrite per page.
                    "PRAGMA temp_store = MEMORY;".to_string(),
                ] {
                    c.batch_execute(&pragma)
                        .map_err(diesel::r2d2::Error::QueryError)?;
                }
                Ok(DbConn::Sqlite(c))
            }
            DatabaseUrl::Postgres(url) => {
                let mut c = diesel::PgConnection::establish(url)
                    .map_err(diesel::r2d2::Error::ConnectionError)?;
                if let Some(schema) = &self.pg_schema {
                    c.batch_execute(&format!("SET search_path TO \"{schema}\";"))
                        .map_err(diesel::r2d2::Error::QueryError)?;
                }
                Ok(DbConn::Postgres(c))
            }
        }
    }
}
