//! SQLite checkpoints off the writer's path.
//!
//! In WAL mode every commit appends pages to the `-wal` file, and a
//! checkpoint copies them back into the database file. By default the
//! connection whose commit takes the log past `wal_autocheckpoint` pages does
//! the whole copy (and two `fsync`s) before its caller hears of the commit.
//! For the writer thread that means a pause of milliseconds every few hundred
//! requests, during which every other write waits in the queue: the tail of
//! the latency distribution.
//!
//! Here a thread of its own, on a connection of its own, runs a `PASSIVE`
//! checkpoint shortly after commits (at most every [`PAUSE`]). A passive
//! checkpoint takes no lock a writer needs, so the writer goes on appending
//! while it copies. The writer keeps its own automatic checkpoint: when it
//! fires, the background thread has already copied nearly every page, so it
//! only finishes the last few, and the log can start again from its
//! beginning at the next transaction (only a checkpoint that saw the whole
//! log allows that).

use std::sync::mpsc;
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::sql_types::Integer;
use diesel::{Connection, QueryableByName, RunQueryDsl, SqliteConnection};

use crate::StoreError;

/// The shortest time between two background checkpoints.
pub(crate) const PAUSE: Duration = Duration::from_millis(100);

/// The handle the writer uses to say "I committed".
pub(crate) struct Checkpointer {
    nudge: mpsc::SyncSender<()>,
}

#[derive(QueryableByName)]
struct Outcome {
    #[diesel(sql_type = Integer)]
    busy: i32,
    #[diesel(sql_type = Integer)]
    log: i32,
    #[diesel(sql_type = Integer)]
    checkpointed: i32,
}

impl Checkpointer {
    /// Starts the thread for the database file at `path`. It ends when the
    /// returned handle is dropped.
    pub(crate) fn spawn(path: String, busy_timeout: Duration) -> Result<Self, StoreError> {
        // One slot: nudges while a checkpoint runs (or the thread pauses)
        // coalesce into one more checkpoint.
        let (nudge, rx) = mpsc::sync_channel::<()>(1);
        std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || {
                let mut conn: Option<SqliteConnection> = None;
                while rx.recv().is_ok() {
                    let c = match conn.as_mut() {
                        Some(c) => c,
                        None => match open(&path, busy_timeout) {
                            Ok(c) => conn.insert(c),
                            Err(e) => {
                                tracing::warn!(error = %e, "checkpoint connection failed");
                                std::thread::sleep(PAUSE);
                                continue;
                            }
                        },
                    };
                    match diesel::sql_query("PRAGMA wal_checkpoint(PASSIVE)")
                        .get_result::<Outcome>(c)
                    {
                        Ok(o) => tracing::trace!(
                            busy = o.busy,
                            log = o.log,
                            checkpointed = o.checkpointed,
                            "background checkpoint"
                        ),
                        Err(e) => {
                            tracing::warn!(error = %e, "background checkpoint failed");
                            conn = None;
                        }
                    }
                    std::thread::sleep(PAUSE);
                }
            })
            .map_err(|e| StoreError::Internal(format!("cannot start the checkpointer: {e}")))?;
        Ok(Self { nudge })
    }

    /// Asks for a checkpoint soon; never blocks.
    pub(crate) fn nudge(&self) {
        let _ = self.nudge.try_send(());
    }
}

fn open(path: &str, busy_timeout: Duration) -> Result<SqliteConnection, StoreError> {
    let mut c = SqliteConnection::establish(path)
        .map_err(|e| StoreError::Unavailable(format!("sqlite://{path}: {e}")))?;
    // The busy timeout is for the rare lock a checkpoint does wait for (the
    // database file's, while another process recovers the log).
    c.batch_execute(&format!(
        "PRAGMA busy_timeout = {}; PRAGMA mmap_size = 0;",
        busy_timeout.as_millis()
    ))?;
    Ok(c)
}
