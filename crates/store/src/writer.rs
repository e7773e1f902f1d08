//! SQLite group commit.
//!
//! SQLite has one writer at a time, so a process gains nothing from writing on
//! several connections at once: its writers would only queue on the database
//! lock. Instead, every write transaction of a process is handed to one writer
//! thread. The thread takes the first waiting job, opens `BEGIN IMMEDIATE`,
//! runs it, then runs every further job already waiting (up to
//! [`MAX_BATCH`]) in the same transaction, each inside its own savepoint,
//! and commits once. Only after that commit does any job's caller get its
//! answer, so "committed before success is reported" still holds; a job
//! that fails is rolled back to its savepoint and leaves the others alone;
//! if the commit itself fails, every job of the batch gets the error.
//!
//! Under load a commit then carries several requests: the pages they all
//! append to (the last leaf of each time-ordered table and index) are written
//! to the WAL once per batch instead of once per request, and the commit's
//! fixed costs are shared. A lone request waits for nobody: the batch is
//! whatever was already queued.
//!
//! The thread keeps one connection of the pool for itself, with a large page
//! cache: in WAL mode a connection that finds the database changed by another
//! connection drops its whole cache, so a writer on whichever connection was
//! idle read its pages back from the file on almost every batch.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};

use r2d2::PooledConnection;

use crate::checkpoint::Checkpointer;
use crate::conn::{DbConn, Manager};
use crate::sqlite_tx;
use crate::StoreError;

/// The most jobs one transaction carries.
pub const MAX_BATCH: usize = 64;

/// The writer connection's page cache, in KiB (SQLite's default is 2,000).
const WRITER_CACHE_KIB: u32 = 32 * 1024;

/// Called once the batch's fate is known: `None` when it committed.
type Reply = Box<dyn FnOnce(Option<&StoreError>) + Send>;

/// What a job tells the writer: did it succeed (keep its savepoint), and how
/// to answer its caller once the batch is committed or lost.
pub(crate) struct Outcome {
    ok: bool,
    reply: Reply,
}

/// A transaction body and the way back to its caller.
pub(crate) trait Work: Send {
    /// Runs the body on the open transaction.
    fn run(self: Box<Self>, conn: &mut DbConn) -> Outcome;
    /// Answers the caller with `e` without running the body.
    fn fail(self: Box<Self>, e: &StoreError);
}

pub(crate) type Job = Box<dyn Work>;

struct Body<F, S> {
    f: F,
    send: S,
}

impl<T, E, F, S> Work for Body<F, S>
where
    F: FnOnce(&mut DbConn) -> Result<T, E> + Send + 'static,
    T: Send + 'static,
    E: From<StoreError> + Send + 'static,
    S: FnOnce(Result<T, E>) + Send + 'static,
{
    fn run(self: Box<Self>, conn: &mut DbConn) -> Outcome {
        let Body { f, send } = *self;
        // If `f` panics, `send` is dropped unsent and the caller sees a closed channel.
        let result = f(conn);
        Outcome {
            ok: result.is_ok(),
            reply: Box::new(move |lost: Option<&StoreError>| {
                let out = match (result, lost) {
                    (Ok(_), Some(e)) => Err(E::from(e.clone())),
                    (r, _) => r,
                };
                send(out);
            }),
        }
    }

    fn fail(self: Box<Self>, e: &StoreError) {
        (self.send)(Err(E::from(e.clone())));
    }
}

/// Wraps a transaction body as a job whose result goes to `send` after the commit.
pub(crate) fn job<T, E, F, S>(f: F, send: S) -> Job
where
    F: FnOnce(&mut DbConn) -> Result<T, E> + Send + 'static,
    T: Send + 'static,
    E: From<StoreError> + Send + 'static,
    S: FnOnce(Result<T, E>) + Send + 'static,
{
    Box::new(Body { f, send })
}

/// The queue of a SQLite pool's writer thread, and the turn it shares with
/// synchronous writers ([`crate::Store::write_blocking`]), which run on their
/// own thread but never at the same time as a batch.
#[derive(Clone)]
pub(crate) struct Writer {
    queue: mpsc::Sender<Job>,
    turn: Arc<Mutex<()>>,
    /// The writer thread's own connection (opened with its first batch).
    /// Between batches a point read may borrow it (see [`Writer::try_idle`]).
    conn: Arc<Mutex<Option<PooledConnection<Manager>>>>,
}

impl Writer {
    /// Starts the writer thread; it ends when every clone of the writer is dropped.
    /// Its checkpoints run on a thread of their own (see the `checkpoint` module).
    pub(crate) fn spawn(
        pool: r2d2::Pool<Manager>,
        checkpointer: Checkpointer,
    ) -> Result<Self, StoreError> {
        let (queue, rx) = mpsc::channel::<Job>();
        let turn = Arc::new(Mutex::new(()));
        let t = turn.clone();
        let conn: Arc<Mutex<Option<PooledConnection<Manager>>>> = Arc::new(Mutex::new(None));
        let shared = conn.clone();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || {
                // One connection for every batch, kept for the thread's life:
                // in WAL mode a connection drops its whole page cache when it
                // finds the database changed by another connection, so a
                // writer that took whichever pooled connection was idle read
                // its pages back from the file on almost every batch.
                while let Ok(first) = rx.recv() {
                    let _turn = lock(&t);
                    // A point read holding the connection ends within
                    // microseconds; it never holds it across a wait.
                    let mut held = lock(&shared);
                    let conn = match held.as_mut() {
                        Some(c) => c,
                        None => match writer_connection(&pool) {
                            Ok(c) => held.insert(c),
                            Err(e) => {
                                first.fail(&e);
                                continue;
                            }
                        },
                    };
                    batch(conn, &rx, first);
                    drop(held);
                    checkpointer.nudge();
                }
            })
            .map_err(|e| StoreError::Internal(format!("cannot start the SQLite writer: {e}")))?;
        Ok(Self { queue, turn, conn })
    }

    /// The writer's connection, if the writer is between batches (never
    /// waits). Its page cache is current: in WAL mode a connection drops its
    /// whole cache when it finds the database changed since its last
    /// transaction, which after every batch is true of each pooled reader,
    /// but not of the connection that made the change. A point read here
    /// finds its pages cached instead of reading them back from the WAL.
    pub(crate) fn try_idle(&self) -> Option<MutexGuard<'_, Option<PooledConnection<Manager>>>> {
        // After a panic (`Err(Poisoned)`), whatever it left behind is not
        // lent out.
        self.conn.try_lock().ok()
    }

    pub(crate) fn submit(&self, job: Job) -> Result<(), StoreError> {
        self.queue
            .send(job)
            .map_err(|_| StoreError::Internal("the SQLite writer thread has stopped".into()))
    }

    /// The writers' turn, for a write transaction outside the writer thread.
    pub(crate) fn turn(&self) -> MutexGuard<'_, ()> {
        lock(&self.turn)
    }
}

/// A writer that panicked leaves no transaction open, so a poisoned turn is safe.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Runs one transaction: `first`, then whatever else is already waiting.
fn batch(conn: &mut DbConn, rx: &mpsc::Receiver<Job>, first: Job) {
    if let Err(e) = tm_begin(conn, true) {
        return first.fail(&e);
    }
    // The first job runs on the transaction itself: alone, it costs no
    // savepoint; if it fails, the whole (one-job) transaction is rolled back.
    let Some(out) = run_job(conn, first) else {
        return tm_rollback(conn);
    };
    if !out.ok {
        tm_rollback(conn);
        return (out.reply)(None);
    }
    let mut replies = vec![out.reply];
    let mut lost: Option<StoreError> = None;
    while replies.len() < MAX_BATCH {
        let Ok(next) = rx.try_recv() else { break };
        if let Err(e) = tm_begin(conn, false) {
            next.fail(&e);
            lost = Some(e);
            break;
        }
        match run_job(conn, next) {
            Some(out) if out.ok => match tm_commit(conn, false) {
                Ok(()) => replies.push(out.reply),
                Err(e) => {
                    (out.reply)(Some(&e));
                    lost = Some(e);
                    break;
                }
            },
            // A failed or panicked job: undo its savepoint, keep the others.
            failed => {
                let undone = tm_rollback_savepoint(conn);
                if let Some(out) = failed {
                    (out.reply)(None);
                }
                if let Err(e) = undone {
                    lost = Some(e);
                    break;
                }
            }
        }
    }
    let lost = match lost {
        Some(e) => {
            tm_rollback(conn);
            Some(e)
        }
        None => tm_commit(conn, true).err().inspect(|_| tm_rollback(conn)),
    };
    for reply in replies {
        reply(lost.as_ref());
    }
}

/// The writer's own connection, with a page cache large enough to hold the
/// pages every write touches (the tails of the tables and their indexes).
fn writer_connection(pool: &r2d2::Pool<Manager>) -> Result<PooledConnection<Manager>, StoreError> {
    let mut c = pool.get()?;
    diesel::connection::SimpleConnection::batch_execute(
        sqlite(&mut c)?,
        &format!("PRAGMA cache_size = -{WRITER_CACHE_KIB};"),
    )?;
    Ok(c)
}

/// Runs a job; a panicking job is rolled back by the caller and its caller
/// learns of it from the dropped reply channel.
fn run_job(conn: &mut DbConn, job: Job) -> Option<Outcome> {
    catch_unwind(AssertUnwindSafe(|| job.run(conn))).ok()
}

fn sqlite(conn: &mut DbConn) -> Result<&mut diesel::SqliteConnection, StoreError> {
    match conn {
        DbConn::Sqlite(c) => Ok(c),
        DbConn::Postgres(_) => Err(StoreError::Internal(
            "the SQLite writer got a PostgreSQL connection".into(),
        )),
    }
}

/// `BEGIN IMMEDIATE` for the batch (`outer`), or a savepoint for one job.
fn tm_begin(conn: &mut DbConn, outer: bool) -> Result<(), StoreError> {
    let c = sqlite(conn)?;
    if outer {
        sqlite_tx::begin(c, true)?;
    } else {
        sqlite_tx::savepoint(c)?;
    }
    Ok(())
}

/// Commits the batch (`outer`), or releases one job's savepoint.
fn tm_commit(conn: &mut DbConn, outer: bool) -> Result<(), StoreError> {
    let c = sqlite(conn)?;
    if outer {
        sqlite_tx::commit(c)?;
    } else {
        sqlite_tx::release(c)?;
    }
    Ok(())
}

/// Rolls back one job's savepoint; the batch's transaction stays open.
fn tm_rollback_savepoint(conn: &mut DbConn) -> Result<(), StoreError> {
    sqlite_tx::rollback_savepoint(sqlite(conn)?)?;
    Ok(())
}

/// Rolls back the whole batch (with any savepoint still open in it).
fn tm_rollback(conn: &mut DbConn) {
    let r = sqlite(conn).and_then(|c| sqlite_tx::rollback(c).map_err(StoreError::from));
    if let Err(e) = r {
        tracing::warn!(error = %e, "rollback failed");
    }
}
