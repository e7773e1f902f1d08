//! Two server instances on one PostgreSQL database: a login begun on one
//! instance is finished on the other (state and nonce live in the database),
//! and the used state is refused when replayed on the first.

use crate::common::{assert_refused, cookie_client, skip, Db, Opts, Tool};

#[actix_web::test]
async fn login_on_one_instance_launch_on_the_other() {
    let Some(db) = Db::postgres_from_env() else {
        skip(
            "two_instances::login_on_one_instance_launch_on_the_other",
            "TEST_DATABASE_URL is not set (e.g. postgres://postgres@127.0.0.1:5432/test)",
        );
        return;
    };
    let a = Tool::start(Opts {
        db,
        ..Default::default()
    })
    .await;
    let b = a.another_instance().await;

    // The browser: cookies are per host, so a jar would carry instance A's
    // state cookie to B (both are 127.0.0.1). Use a cookie-less client for
    // the login so B cannot lean on anything but the database.
    let login_client = cookie_client();
    let (state, nonce) = a.login_at(&login_client, &a.base).await;
    let token = a.minter(&nonce).mint();
    let browser = cookie_client();
    let res = a.launch_at(&browser, &b, &token, &state).await;
    let to = a.follow_to_course(&browser, &b, res).await;
    assert_eq!(to, "/courses/intro");

    // Replayed on the first instance: refused there too.
    assert_refused(
        a.launch_at(&browser, &a.base, &token, &state).await,
        "state_replayed",
        "replay on instance A",
    )
    .await;
    // And the other way round: a login on B finished on A.
    let (state, nonce) = a.login_at(&login_client, &b).await;
    let token = a.minter(&nonce).mint();
    let browser = cookie_client();
    let res = a.launch_at(&browser, &a.base, &token, &state).await;
    a.follow_to_course(&browser, &a.base, res).await;
    assert_refused(
        a.launch_at(&browser, &b, &token, &state).await,
        "state_replayed",
        "replay on instance B",
    )
    .await;

    let flights = a.flights();
    assert_eq!(
        flights
            .iter()
            .filter(|r| r.step == "launch" && r.outcome == "ok")
            .count(),
        2
    );
    // No cookie reached the instance that finished the launch: the path is the ticket.
    assert!(flights
        .iter()
        .filter(|r| r.step == "launch" && r.outcome == "ok")
        .all(|r| r.state_path.as_deref() == Some("ticket")));
}
