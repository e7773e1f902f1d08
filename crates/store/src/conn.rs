//! One connection type over both backends, and the r2d2 manager that picks
//! the backend from the URL scheme (never by trial: a PostgreSQL URL must
//! never silently become a SQLite file).

use std::time::Duration;

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
    type Connection = DbConn;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> Result<DbConn, Self::Error> {
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

    fn is_valid(&self, conn: &mut DbConn) -> Result<(), Self::Error> {
        match conn {
            // A file connection does not go away: no round trip per checkout.
            DbConn::Sqlite(_) => Ok(()),
            // A server may have restarted: a failed ping is reconnected by the pool.
            DbConn::Postgres(_) => conn.ping().map_err(diesel::r2d2::Error::QueryError),
        }
    }

    fn has_broken(&self, conn: &mut DbConn) -> bool {
        conn.is_broken()
    }
}
