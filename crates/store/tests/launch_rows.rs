//! `repo::lti::insert_launch_rows`: the four rows a completed launch leaves
//! (session, audit entry, flight record, continue ticket) are written
//! together, in one statement on PostgreSQL. Each comes back as written,
//! and a refusal of any one leaves none of them. On SQLite always; on
//! PostgreSQL when `TEST_DATABASE_URL` is set (always under `CI=true`).

mod common;

use common::now;
use coursegate_store::models::{AuditEntry, Learner, LtiLaunch, LtiTicket, Session};
use coursegate_store::{repo, DbConn, Store, StoreError, StoreOptions};
use diesel::sql_types::BigInt;
use diesel::{QueryableByName, RunQueryDsl};

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Rows of `table` with id `id` (test ids are fixed literals).
fn count(tx: &mut DbConn, table: &str, id: &str) -> i64 {
    let sql = format!("SELECT COUNT(*) AS n FROM {table} WHERE id = '{id}'");
    let rows: Vec<Count> = match tx {
        DbConn::Sqlite(c) => diesel::sql_query(sql).load(c).unwrap(),
        DbConn::Postgres(c) => diesel::sql_query(sql).load(c).unwrap(),
    };
    rows[0].n
}

fn rows(tag: &str, ticket_hash: &str) -> (Session, AuditEntry, LtiLaunch, LtiTicket) {
    let n = now();
    let session = Session {
        id: format!("s-{tag}"),
        token_hash: format!("hash-{tag}"),
        subject_kind: "learner".into(),
        learner_id: Some("l-1".into()),
        staff_id: None,
        via: "lti".into(),
        created_at: n,
        last_seen_at: n,
        idle_timeout_secs: 3600,
        absolute_expires_at: n,
        revoked_at: None,
        ip: Some("192.0.2.1".into()),
        user_agent: None,
    };
    let audit = AuditEntry {
        id: format!("a-{tag}"),
        at: n,
        actor_kind: "learner".into(),
        actor_id: Some("l-1".into()),
        action: "session.started".into(),
        subject_kind: Some("learner".into()),
        subject_id: Some("l-1".into()),
        ip: None,
        user_agent: Some("it's \"quoted\"".into()),
        detail: r#"{"via":"lti"}"#.into(),
    };
    let flight = LtiLaunch {
        id: format!("f-{tag}"),
        at: n,
        step: "launch".into(),
        platform_id: None,
        issuer: Some("https://platform.example".into()),
        client_id: None,
        deployment_id: Some("d-1".into()),
        outcome: "ok".into(),
        reason: None,
        state_path: Some("cookie".into()),
        lms: None,
        checks: "{}".into(),
        expires_at: n,
    };
    let ticket = LtiTicket {
        id: format!("t-{tag}"),
        ticket_hash: ticket_hash.into(),
        learner_id: "l-1".into(),
        session_id: session.id.clone(),
        redirect: "/courses/intro".into(),
        created_at: n,
        expires_at: n,
        used_at: None,
    };
    (session, audit, flight, ticket)
}

async fn check(store: &Store) {
    store
        .write(|tx| {
            repo::learners::insert(
                tx,
                &Learner {
                    id: "l-1".into(),
                    email: None,
                    email_lower: None,
                    name: Some("Ada".into()),
                    external_id: None,
                    created_at: now(),
                    updated_at: now(),
                },
            )
        })
        .await
        .unwrap();
    let (s, a, f, t) = rows("one", "ticket-one");
    let written = (s.clone(), a.clone(), t.clone());
    store
        .write(move |tx| repo::lti::insert_launch_rows(tx, &s, &a, &f, &t))
        .await
        .unwrap();
    let (s, a, t) = written;
    let (hs, ht) = (s.token_hash.clone(), t.ticket_hash.clone());
    let (back_s, back_t) = store
        .read(move |tx| {
            Ok::<_, StoreError>((
                repo::sessions::find_by_hash(tx, &hs)?,
                repo::lti::find_ticket(tx, &ht)?,
            ))
        })
        .await
        .unwrap();
    assert_eq!(back_s.as_ref(), Some(&s), "the session as written");
    assert_eq!(back_t.as_ref(), Some(&t), "the ticket as written");
    let (audit_rows, flight_rows) = store
        .read(move |tx| {
            Ok::<_, StoreError>((
                count(tx, "audit_log", &a.id),
                count(tx, "lti_launches", "f-one"),
            ))
        })
        .await
        .unwrap();
    assert_eq!((audit_rows, flight_rows), (1, 1));

    // A second launch whose ticket the database refuses (its hash is taken):
    // the error comes back and none of its four rows stays.
    let (s, a, f, t) = rows("two", "ticket-one");
    let refused = store
        .write(move |tx| repo::lti::insert_launch_rows(tx, &s, &a, &f, &t))
        .await;
    assert!(
        matches!(&refused, Err(StoreError::Conflict(_))),
        "{refused:?}"
    );
    let left = store
        .read(|tx| {
            Ok::<_, StoreError>([
                count(tx, "sessions", "s-two"),
                count(tx, "audit_log", "a-two"),
                count(tx, "lti_launches", "f-two"),
                count(tx, "lti_tickets", "t-two"),
            ])
        })
        .await
        .unwrap();
    assert_eq!(left, [0, 0, 0, 0]);
}

#[tokio::test]
async fn launch_rows_are_written_together_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/t.db", dir.path().display());
    let store = Store::connect(&url, StoreOptions::default()).unwrap();
    store.migrate().unwrap();
    check(&store).await;
}

#[tokio::test]
async fn launch_rows_are_written_together_on_postgres() {
    let Some(url) = common::pg_url("launch rows") else {
        return;
    };
    let schema = format!("t_launch_{}", uuid::Uuid::new_v4().simple());
    let store = Store::connect(
        &url,
        StoreOptions {
            pg_schema: Some(schema),
            ..Default::default()
        },
    )
    .unwrap();
    store.migrate().unwrap();
    check(&store).await;
    store.drop_pg_schema().unwrap();
}
