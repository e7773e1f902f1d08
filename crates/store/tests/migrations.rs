//! Both migration trees list the same versions, and up → down → up works on
//! SQLite and (when `TEST_DATABASE_URL` is set, or always under `CI=true`) on
//! PostgreSQL, leaving the same tables on both.

mod common;

use coursegate_store::{Store, StoreOptions};

fn versions(dir: &str) -> Vec<String> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../migrations/");
    let mut v: Vec<String> = std::fs::read_dir(format!("{root}{dir}"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn both_trees_list_the_same_versions() {
    let sqlite = versions("sqlite");
    let pg = versions("postgres");
    assert!(!sqlite.is_empty());
    assert_eq!(
        sqlite, pg,
        "migrations/sqlite and migrations/postgres must hold the same versions"
    );
}

fn round_trip(store: &Store) -> Vec<String> {
    let applied = store.migrate().unwrap();
    assert_eq!(applied.len(), versions("sqlite").len());
    assert_eq!(store.pending_migrations().unwrap(), 0);
    let tables = store.table_names().unwrap();
    let reverted = store.revert_all().unwrap();
    assert_eq!(reverted.len(), applied.len());
    assert!(
        store.table_names().unwrap().is_empty(),
        "down migrations must drop every table"
    );
    store.migrate().unwrap();
    assert_eq!(store.table_names().unwrap(), tables);
    tables
}

#[test]
fn sqlite_up_down_up() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/t.db", dir.path().display());
    let store = Store::connect(&url, StoreOptions::default()).unwrap();
    let tables = round_trip(&store);
    assert!(tables.contains(&"outbox".to_string()));
}

#[test]
fn postgres_up_down_up_matches_sqlite() {
    let Some(url) = common::pg_url("migration") else {
        return;
    };
    let schema = format!("t_mig_{}", uuid::Uuid::new_v4().simple());
    let store = Store::connect(
        &url,
        StoreOptions {
            pg_schema: Some(schema),
            pool_size: 2,
            ..Default::default()
        },
    )
    .unwrap();
    let pg_tables = round_trip(&store);
    store.drop_pg_schema().unwrap();

    let dir = tempfile::tempdir().unwrap();
    let sqlite = Store::connect(
        &format!("sqlite://{}/t.db", dir.path().display()),
        StoreOptions::default(),
    )
    .unwrap();
    sqlite.migrate().unwrap();
    assert_eq!(sqlite.table_names().unwrap(), pg_tables);
}
