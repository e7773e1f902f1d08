//! Registration settings that change how launches are checked, edited on
//! the staff page over real HTTP: trusted extra audiences (the `azp` path of
//! the id_token rules, end to end) and the platform's JWKS URL (the next
//! launch fetches the keys from the new URL, on every instance).

use std::{
    net::TcpListener,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
};

use actix_web::{web, App, HttpResponse, HttpServer};
use coursegate_core::{sessions::ClientInfo, staff::Role, types::Email};
use coursegate_lti::testing;
use serde_json::{json, Value};

use crate::common::{assert_refused, cookie_client, Db, Opts, Tool};

const OTHER_AUDIENCE: &str = "https://analytics.platform.test.example";

/// A staff owner's client: the session cookie of a staff session started in
/// the database (the staff sign-in itself has its own tests).
pub(crate) fn staff_client(tool: &Tool) -> reqwest::Client {
    let now = tool.clock.now();
    let secret = tool.state.config.secret.clone();
    let policy = tool.state.config.sessions;
    let started = tool
        .store
        .write_blocking(move |tx| {
            let (s, _) = coursegate_core::staff::ensure(
                tx,
                now,
                &Email::parse("owner@provider.example").unwrap(),
                None,
                Role::Owner,
            )?;
            coursegate_core::sessions::start_staff_session(
                tx,
                now,
                &secret,
                &policy,
                &s.id,
                "test",
                &ClientInfo::default(),
            )
        })
        .unwrap();
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::COOKIE,
        format!("cg_session={}", started.token).parse().unwrap(),
    );
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .default_headers(headers)
        .build()
        .unwrap()
}

pub(crate) fn platform_id(tool: &Tool) -> String {
    tool.store
        .read_blocking(|tx| {
            coursegate_store::repo::lti::find_platform(tx, testing::ISSUER, testing::CLIENT_ID)
        })
        .unwrap()
        .unwrap()
        .id
}

/// `s` as tera's auto-escaping writes it into a page.
fn escaped(s: &str) -> String {
    s.replace('&', "&amp;").replace('/', "&#x2F;")
}

fn csrf_of(page: &str) -> String {
    let k = "name=\"csrf\" value=\"";
    let i = page.find(k).expect("a csrf field") + k.len();
    page[i..i + page[i..].find('"').unwrap()].to_string()
}

/// Saves the registration's edit form on the staff page with `changes`.
async fn edit_platform(tool: &Tool, staff: &reqwest::Client, changes: &[(&str, &str)]) -> String {
    let id = platform_id(tool);
    let url = format!("{}/staff/lms/{id}", tool.base);
    let page = staff.get(&url).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let page = page.text().await.unwrap();
    let p = tool
        .store
        .read_blocking(|tx| {
            coursegate_store::repo::lti::find_platform(tx, testing::ISSUER, testing::CLIENT_ID)
        })
        .unwrap()
        .unwrap();
    let mut form: Vec<(String, String)> = vec![
        ("csrf".into(), csrf_of(&page)),
        ("name".into(), p.name.clone()),
        ("auth_url".into(), p.auth_url.clone()),
        ("token_url".into(), p.token_url.clone()),
        ("jwks_url".into(), p.jwks_url.clone()),
        ("unknown_deployments".into(), p.unknown_deployments.clone()),
        ("active".into(), "1".into()),
        (
            "trusted_audiences".into(),
            coursegate_core::lti::trusted_audiences(&p).join("\n"),
        ),
    ];
    for (k, v) in changes {
        form.retain(|(fk, _)| fk != k);
        form.push((k.to_string(), v.to_string()));
    }
    let res = staff.post(&url).form(&form).send().await.unwrap();
    assert_eq!(
        res.status(),
        303,
        "{}",
        res.text().await.unwrap_or_default()
    );
    staff.get(&url).send().await.unwrap().text().await.unwrap()
}

/// One launch by a fresh browser on `base`; returns the launch response.
async fn launch_with(
    tool: &Tool,
    base: &str,
    build: impl FnOnce(coursegate_lti::testing::TokenMinter) -> coursegate_lti::testing::TokenMinter,
) -> (reqwest::Client, reqwest::Response) {
    let client = cookie_client();
    let (state, nonce) = tool.login_at(&client, base).await;
    let token = build(tool.minter(&nonce)).mint();
    let res = tool.launch_at(&client, base, &token, &state).await;
    (client, res)
}

async fn trusted_audiences_reach_the_azp_rules(db: Db) {
    let tool = Tool::start(Opts {
        db,
        ..Default::default()
    })
    .await;
    let two = json!([testing::CLIENT_ID, OTHER_AUDIENCE]);

    // Not trusted yet: the extra audience is refused by name.
    let (_, res) = launch_with(&tool, &tool.base, |m| {
        m.claim("aud", two.clone()).claim("azp", testing::CLIENT_ID)
    })
    .await;
    assert_refused(res, "aud_untrusted", "an untrusted extra audience").await;

    // Trusted on the staff page (shown there afterwards).
    let staff = staff_client(&tool);
    let page = edit_platform(&tool, &staff, &[("trusted_audiences", OTHER_AUDIENCE)]).await;
    assert!(
        page.contains(&format!(
            "<code class=\"trusted-audience\">{}</code>",
            escaped(OTHER_AUDIENCE)
        )),
        "{page}"
    );

    // Several audiences, azp = our client_id, the other one trusted: accepted.
    let (client, res) = launch_with(&tool, &tool.base, |m| {
        m.claim("aud", two.clone()).claim("azp", testing::CLIENT_ID)
    })
    .await;
    let to = tool.follow_to_course(&client, &tool.base, res).await;
    assert_eq!(to, "/courses/intro");

    // Still refused: a third, untrusted audience.
    let (_, res) = launch_with(&tool, &tool.base, |m| {
        m.claim(
            "aud",
            json!([
                testing::CLIENT_ID,
                OTHER_AUDIENCE,
                "https://stranger.example"
            ]),
        )
        .claim("azp", testing::CLIENT_ID)
    })
    .await;
    assert_refused(res, "aud_untrusted", "a third, untrusted audience").await;

    // Several audiences without azp.
    let (_, res) = launch_with(&tool, &tool.base, |m| {
        m.claim("aud", two.clone()).without("azp")
    })
    .await;
    assert_refused(res, "azp_missing", "several audiences without azp").await;

    // azp naming the other (trusted) audience instead of us.
    let (_, res) = launch_with(&tool, &tool.base, |m| {
        m.claim("aud", two.clone()).claim("azp", OTHER_AUDIENCE)
    })
    .await;
    assert_refused(res, "azp_mismatch", "azp naming another party").await;

    // Each refusal left its reason in the flight recorder.
    let reasons: Vec<String> = tool
        .flights()
        .into_iter()
        .filter(|f| f.step == "launch")
        .filter_map(|f| f.reason)
        .collect();
    for r in ["aud_untrusted", "azp_missing", "azp_mismatch"] {
        assert!(reasons.iter().any(|x| x == r), "{r} in {reasons:?}");
    }

    // Cleared again: the extra audience is refused once more.
    edit_platform(&tool, &staff, &[("trusted_audiences", "")]).await;
    let (_, res) = launch_with(&tool, &tool.base, |m| {
        m.claim("aud", two.clone()).claim("azp", testing::CLIENT_ID)
    })
    .await;
    assert_refused(res, "aud_untrusted", "after the audience was removed").await;
}

#[actix_web::test]
async fn trusted_audiences_reach_the_azp_rules_sqlite() {
    trusted_audiences_reach_the_azp_rules(Db::Sqlite).await;
}

#[actix_web::test]
async fn trusted_audiences_reach_the_azp_rules_postgres() {
    let Some(db) = Db::postgres_from_env() else {
        return crate::common::skip(
            "trusted_audiences_reach_the_azp_rules_postgres",
            "TEST_DATABASE_URL is not set",
        );
    };
    trusted_audiences_reach_the_azp_rules(db).await;
}

/// A JWKS endpoint of its own that counts its fetches.
async fn counting_jwks(doc: Value) -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let srv = HttpServer::new(move || {
        let (h, doc) = (h.clone(), doc.clone());
        App::new().route(
            "/keys",
            web::get().to(move || {
                let (h, doc) = (h.clone(), doc.clone());
                async move {
                    h.fetch_add(1, Ordering::SeqCst);
                    HttpResponse::Ok()
                        .insert_header(("Cache-Control", "max-age=300"))
                        .json(doc)
                }
            }),
        )
    })
    .listen(l)
    .unwrap()
    .workers(1)
    .run();
    tokio::spawn(srv);
    (format!("http://{addr}/keys"), hits)
}

async fn an_edited_jwks_url_is_fetched_by_the_next_launch_on_every_instance(db: Db) {
    let tool = Tool::start(Opts {
        db,
        ..Default::default()
    })
    .await;
    let second = tool.another_instance().await;
    let staff = staff_client(&tool);
    let (old_url, old_hits) = counting_jwks(testing::platform_jwks()).await;
    let (new_url, new_hits) = counting_jwks(testing::other_jwks()).await;

    // Both instances launch once with the old URL and cache its keys.
    edit_platform(&tool, &staff, &[("jwks_url", &old_url)]).await;
    for base in [tool.base.clone(), second.clone()] {
        let (client, res) = launch_with(&tool, &base, |m| m).await;
        tool.follow_to_course(&client, &base, res).await;
    }
    assert_eq!(old_hits.load(Ordering::SeqCst), 2);

    // The LMS moved its keys (and signs with the other key): edited on the
    // first instance's staff page.
    let page = edit_platform(&tool, &staff, &[("jwks_url", &new_url)]).await;
    assert!(
        page.contains(&format!("JWKS): <code>{}</code>", escaped(&new_url))),
        "{page}"
    );
    for (n, base) in [tool.base.clone(), second.clone()].into_iter().enumerate() {
        let (client, res) = launch_with(&tool, &base, |m| {
            m.kid(Some(testing::OTHER_KID)).sign_with_other_key()
        })
        .await;
        tool.follow_to_course(&client, &base, res).await;
        assert_eq!(new_hits.load(Ordering::SeqCst), n + 1, "instance {n}");
    }
    assert_eq!(old_hits.load(Ordering::SeqCst), 2);

    // Moved back: the editing instance forgets what it had cached for that
    // URL and fetches it again, although its cache lifetime has not passed.
    edit_platform(&tool, &staff, &[("jwks_url", &old_url)]).await;
    let (client, res) = launch_with(&tool, &tool.base, |m| m).await;
    tool.follow_to_course(&client, &tool.base, res).await;
    assert_eq!(old_hits.load(Ordering::SeqCst), 3);

    // A token signed with the key of the URL no longer registered is refused.
    let (_, res) = launch_with(&tool, &tool.base, |m| {
        m.kid(Some(testing::OTHER_KID)).sign_with_other_key()
    })
    .await;
    assert_refused(res, "kid_unknown", "the moved-away URL's key").await;
}

#[actix_web::test]
async fn an_edited_jwks_url_is_fetched_by_the_next_launch_on_every_instance_sqlite() {
    an_edited_jwks_url_is_fetched_by_the_next_launch_on_every_instance(Db::Sqlite).await;
}

#[actix_web::test]
async fn an_edited_jwks_url_is_fetched_by_the_next_launch_on_every_instance_postgres() {
    let Some(db) = Db::postgres_from_env() else {
        return crate::common::skip(
            "an_edited_jwks_url_is_fetched_by_the_next_launch_on_every_instance_postgres",
            "TEST_DATABASE_URL is not set",
        );
    };
    an_edited_jwks_url_is_fetched_by_the_next_launch_on_every_instance(db).await;
}
