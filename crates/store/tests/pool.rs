//! After PostgreSQL ends the pooled connections (a restart, a failover, an
//! administrator), the next transactions run on new connections: no request
//! fails for it (the pool checks a PostgreSQL connection at checkout and
//! replaces a dead one). Runs when `TEST_DATABASE_URL` is set (always under
//! `CI=true`); skipped loudly otherwise.

mod common;

use std::sync::{Arc, Barrier};

use coursegate_store::{repo, DbConn, Store, StoreError, StoreOptions};
use diesel::prelude::*;
use diesel::sql_types::Integer;

#[derive(QueryableByName)]
struct Pid {
    #[diesel(sql_type = Integer)]
    pid: i32,
}

fn backend_pid(tx: &mut DbConn) -> Result<i32, StoreError> {
    match tx {
        DbConn::Postgres(c) => Ok(diesel::sql_query("SELECT pg_backend_pid() AS pid")
            .get_result::<Pid>(c)
            .map_err(StoreError::from)?
            .pid),
        DbConn::Sqlite(_) => Err(StoreError::Internal("PostgreSQL only".into())),
    }
}

#[test]
fn connections_ended_by_the_server_are_replaced_without_a_failed_request() {
    let Some(url) = common::pg_url("pool") else {
        return;
    };
    let size = 3;
    let store = Arc::new(
        Store::connect(
            &url,
            StoreOptions {
                pg_schema: Some(format!("t_pool_{}", uuid::Uuid::new_v4().simple())),
                pool_size: size,
                ..Default::default()
            },
        )
        .unwrap(),
    );
    store.migrate().unwrap();

    // Fill the pool: `size` transactions open at once, each on its own connection.
    let barrier = Arc::new(Barrier::new(size as usize));
    let pids: Vec<i32> = (0..size)
        .map(|_| {
            let (store, barrier) = (store.clone(), barrier.clone());
            std::thread::spawn(move || {
                store
                    .read_blocking(|tx| {
                        let pid = backend_pid(tx);
                        barrier.wait();
                        pid
                    })
                    .unwrap()
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();

    // The server ends all of them, and they are gone before we go on.
    let mut admin = diesel::PgConnection::establish(&url).unwrap();
    for pid in &pids {
        diesel::sql_query(format!("SELECT pg_terminate_backend({pid})"))
            .execute(&mut admin)
            .unwrap();
    }
    loop {
        let left: i64 = diesel::dsl::sql::<diesel::sql_types::BigInt>(&format!(
            "SELECT count(*) FROM pg_stat_activity WHERE pid IN ({})",
            pids.iter()
                .map(i32::to_string)
                .collect::<Vec<_>>()
                .join(",")
        ))
        .get_result(&mut admin)
        .unwrap();
        if left == 0 {
            break;
        }
        std::thread::yield_now();
    }

    // Every transaction after that succeeds, on new connections.
    let now = common::now();
    for i in 0..(2 * size) {
        store
            .write_blocking(|tx| repo::settings::put(tx, &format!("k{i}"), "v", now))
            .unwrap();
        let pid = store.read_blocking(backend_pid).unwrap();
        assert!(!pids.contains(&pid), "a dead connection was reused");
    }
    let k0 = store
        .read_blocking(|tx| repo::settings::get(tx, "k0"))
        .unwrap();
    assert_eq!(k0.as_deref(), Some("v"));
    store.drop_pg_schema().unwrap();
}
