//! `Store::write_one` (one statement, no `BEGIN`/`COMMIT` on PostgreSQL):
//! what it reports as done is committed, visible to another pool at once,
//! and a refused statement leaves nothing behind. On SQLite always; on
//! PostgreSQL when `TEST_DATABASE_URL` is set (always under `CI=true`).

mod common;

use common::now;
use coursegate_store::{repo, DbConn, Store, StoreError, StoreOptions};
use diesel::RunQueryDsl;

fn duplicate_setting(tx: &mut DbConn) -> Result<usize, StoreError> {
    let sql = "INSERT INTO settings (key, value, updated_at) VALUES ('greeting', 'dup', '2027-01-15 08:00:00')";
    Ok(match tx {
        DbConn::Sqlite(c) => diesel::sql_query(sql).execute(c)?,
        DbConn::Postgres(c) => diesel::sql_query(sql).execute(c)?,
    })
}

async fn check(store: &Store, other: &Store) {
    store
        .write_one(|tx| repo::settings::put(tx, "greeting", "hello", now()))
        .await
        .unwrap();
    // Another pool (another instance) sees it as soon as it is reported.
    let seen = other
        .read_one(|tx| repo::settings::get(tx, "greeting"))
        .await
        .unwrap();
    assert_eq!(seen.as_deref(), Some("hello"));

    // A statement the database refuses (a second row with the same key):
    // the error comes back and nothing of it stays.
    let refused: Result<usize, StoreError> = store.write_one(duplicate_setting).await;
    assert!(
        matches!(&refused, Err(StoreError::Conflict(_))),
        "{refused:?}"
    );
    let seen = other
        .read_one(|tx| repo::settings::get(tx, "greeting"))
        .await
        .unwrap();
    assert_eq!(seen.as_deref(), Some("hello"));
    // The connection it ran on is fine for the next one.
    store
        .write_one(|tx| repo::settings::put(tx, "greeting", "again", now()))
        .await
        .unwrap();
    let seen = other
        .read_one(|tx| repo::settings::get(tx, "greeting"))
        .await
        .unwrap();
    assert_eq!(seen.as_deref(), Some("again"));
}

#[tokio::test]
async fn a_single_statement_write_commits_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/t.db", dir.path().display());
    let store = Store::connect(&url, StoreOptions::default()).unwrap();
    store.migrate().unwrap();
    let other = Store::connect(&url, StoreOptions::default()).unwrap();
    check(&store, &other).await;
}

#[tokio::test]
async fn a_single_statement_write_commits_on_postgres() {
    let Some(url) = common::pg_url("single-statement write") else {
        return;
    };
    let schema = format!("t_one_{}", uuid::Uuid::new_v4().simple());
    let opts = || StoreOptions {
        pg_schema: Some(schema.clone()),
        ..Default::default()
    };
    let store = Store::connect(&url, opts()).unwrap();
    store.migrate().unwrap();
    let other = Store::connect(&url, opts()).unwrap();
    check(&store, &other).await;
    store.drop_pg_schema().unwrap();
}
