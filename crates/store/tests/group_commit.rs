//! SQLite group commit (the store's writer thread): many concurrent write
//! transactions share commits, yet each keeps its own all-or-nothing outcome.
//! A failing or panicking transaction leaves no trace and costs the others
//! nothing; every success is visible to a fresh read as soon as it is reported.

mod common;

use std::sync::Arc;

use common::now;

use coursegate_store::{repo, Store, StoreError, StoreOptions};

fn sqlite_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/t.db", dir.path().display());
    let store = Store::connect(&url, StoreOptions::default()).unwrap();
    store.migrate().unwrap();
    (dir, store)
}

fn read(store: &Store, key: &str) -> Option<String> {
    let k = key.to_string();
    store
        .read_blocking(move |tx| repo::settings::get(tx, &k))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writes_keep_their_own_outcome() {
    let (_dir, store) = sqlite_store();
    let store = Arc::new(store);
    let mut tasks = Vec::new();
    for i in 0..200u32 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let r = store
                .write(move |tx| {
                    // Two rows per transaction: both commit or neither does.
                    repo::settings::put(tx, &format!("a{i}"), "x", now())?;
                    repo::settings::put(tx, &format!("b{i}"), "x", now())?;
                    match i % 10 {
                        3 => Err(StoreError::Conflict(format!("refused {i}"))),
                        7 => panic!("transaction {i} panics"),
                        _ => Ok(i),
                    }
                })
                .await;
            // Visible to a fresh read the moment success is reported.
            if r.is_ok() {
                assert_eq!(read(&store, &format!("b{i}")).as_deref(), Some("x"));
            }
            (i, r)
        }));
    }
    for t in tasks {
        let (i, r) = t.await.unwrap();
        match i % 10 {
            3 => assert!(
                matches!(&r, Err(StoreError::Conflict(m)) if m == &format!("refused {i}")),
                "{i}: {r:?}"
            ),
            7 => assert!(
                matches!(&r, Err(StoreError::Internal(m)) if m.contains("panicked")),
                "{i}: {r:?}"
            ),
            _ => assert_eq!(r.unwrap(), i),
        }
    }
    for i in 0..200u32 {
        let kept = !matches!(i % 10, 3 | 7);
        for k in [format!("a{i}"), format!("b{i}")] {
            assert_eq!(read(&store, &k).is_some(), kept, "{k}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_and_queued_writers_take_turns() {
    let (_dir, store) = sqlite_store();
    let store = Arc::new(store);
    // Synchronous writers (CLI, workers) on their own threads, queued ones on
    // the writer thread: all read-modify-write the same row without losing
    // an increment.
    let mut tasks = Vec::new();
    for i in 0..40 {
        let store = store.clone();
        let bump = |tx: &mut coursegate_store::Tx| -> Result<(), StoreError> {
            let n: u32 = repo::settings::get(tx, "n")?
                .map(|v| v.parse().unwrap())
                .unwrap_or(0);
            repo::settings::put(tx, "n", &(n + 1).to_string(), now())
        };
        if i % 2 == 0 {
            tasks.push(tokio::task::spawn_blocking(move || {
                store.write_blocking(bump).unwrap()
            }));
        } else {
            tasks.push(tokio::spawn(
                async move { store.write(bump).await.unwrap() },
            ));
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(read(&store, "n").as_deref(), Some("40"));
}

/// The writer's log is copied back into the database file by the
/// background checkpointer, without waiting for the log to reach the
/// writer's own automatic checkpoint (4,000 pages, ~16 MiB).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_is_checkpointed_in_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("t.db");
    let store = Store::connect(
        &format!("sqlite://{}", file.display()),
        StoreOptions::default(),
    )
    .unwrap();
    store.migrate().unwrap();
    let before = std::fs::metadata(&file).unwrap().len();
    // ~1 MiB in 100 commits, far below the automatic checkpoint: only the
    // background thread copies it.
    let value = "x".repeat(10 * 1024);
    for i in 0..100 {
        let v = value.clone();
        store
            .write(move |tx| repo::settings::put(tx, &format!("k{i}"), &v, now()))
            .await
            .unwrap();
    }
    let wal = dir.path().join("t.db-wal");
    assert!(
        std::fs::metadata(&wal).unwrap().len() > 1_000_000,
        "the writes went to the log"
    );
    // Wait for the copy (bounded: a stalled checkpointer fails the test).
    let mut size = before;
    for _ in 0..300 {
        size = std::fs::metadata(&file).unwrap().len();
        if size > before + 1_000_000 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        size > before + 1_000_000,
        "database file still {size} bytes (was {before}): the log was not checkpointed"
    );
    assert_eq!(read(&store, "k99").as_deref(), Some(value.as_str()));
}

/// Point reads (`Store::read_one`) may borrow the writer thread's connection
/// between batches, for its warm page cache. They must never see a batch
/// that has not committed, never wait for one, and see every commit at
/// once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn point_reads_neither_wait_for_nor_see_an_open_batch() {
    let (_dir, store) = sqlite_store();
    let store = Arc::new(store);
    // The writer thread opens its connection with its first batch.
    store
        .write(|tx| repo::settings::put(tx, "k", "committed", now()))
        .await
        .unwrap();
    let get = |store: &Store| {
        let store = store.clone();
        async move {
            store
                .read_one(|tx| repo::settings::get(tx, "k"))
                .await
                .unwrap()
        }
    };
    assert_eq!(get(&store).await.as_deref(), Some("committed"));

    // A batch that has written and then waits, inside its transaction.
    let (entered_tx, entered_rx) = std::sync::mpsc::channel::<()>();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .write(move |tx| {
                    repo::settings::put(tx, "k", "second", now())?;
                    entered_tx.send(()).unwrap();
                    release_rx.recv().unwrap();
                    Ok::<_, StoreError>(())
                })
                .await
        })
    };
    tokio::task::spawn_blocking(move || entered_rx.recv().unwrap())
        .await
        .unwrap();
    // Answered (from another connection) while the batch is open, with the
    // last committed value.
    for _ in 0..20 {
        assert_eq!(get(&store).await.as_deref(), Some("committed"));
    }
    release_tx.send(()).unwrap();
    writer.await.unwrap().unwrap();
    // Committed, then visible to the next point read, whichever connection
    // answers it.
    for _ in 0..20 {
        assert_eq!(get(&store).await.as_deref(), Some("second"));
    }
}

/// The bundled SQLite is built as `.cargo/config.toml` asks (a build from
/// outside the repository, or a changed flag, would silently bring back a
/// process-wide mutex on every page fetch and allocation).
#[test]
fn sqlite_is_built_without_process_wide_mutexes() {
    let (_dir, store) = sqlite_store();
    let options = store
        .read_blocking(repo::meta::sqlite_compile_options)
        .unwrap();
    for wanted in coursegate_store::SQLITE_BUILD_WANTS {
        assert!(options.iter().any(|o| o == wanted), "{wanted}: {options:?}");
    }
    assert!(
        !options
            .iter()
            .any(|o| o == coursegate_store::SQLITE_BUILD_AVOIDS),
        "{options:?}"
    );
}
