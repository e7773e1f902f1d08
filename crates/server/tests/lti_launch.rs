//! The LTI door end to end over real HTTP: a test platform serves its JWKS on
//! loopback and signs id_tokens; the real server does login → launch →
//! continue → course, and refuses every bad launch with its exact reason.

use std::{collections::HashMap, net::TcpListener, sync::Arc};

use chrono::{TimeZone, Utc};
use coursegate_core::{
    courses::{self, LinkPolicy, NewCourse, NewLesson},
    lti::{self as core_lti, DeploymentPolicy, NewPlatform},
    types::Slug,
    Clock, ManualClock, Store,
};
use coursegate_lti::testing::{self, TokenMinter};
use coursegate_server::{app::AppState, config::Config};
use coursegate_store::StoreOptions;

struct Harness {
    base: String,
    client: reqwest::Client,
    clock: ManualClock,
    store: Store,
    _dir: tempfile::TempDir,
}

async fn platform_jwks_server() -> String {
    use actix_web::{web, App, HttpResponse, HttpServer};
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let srv = HttpServer::new(|| {
        App::new().route(
            "/jwks",
            web::get().to(|| async {
                HttpResponse::Ok()
                    .insert_header(("Cache-Control", "max-age=300"))
                    .json(testing::platform_jwks())
            }),
        )
    })
    .listen(l)
    .unwrap()
    .workers(1)
    .run();
    tokio::spawn(srv);
    format!("http://{addr}/jwks")
}

async fn harness(policy: DeploymentPolicy) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let mut env: HashMap<String, String> = HashMap::new();
    env.insert(
        "COURSEGATE_SECRET".into(),
        "test-secret-0123456789-0123456789-abcdef".into(),
    );
    env.insert("COURSEGATE_BIND".into(), addr.to_string());
    env.insert(
        "COURSEGATE_DATABASE_URL".into(),
        format!("sqlite://{}/t.db", dir.path().display()),
    );
    env.insert(
        "COURSEGATE_KEYS_DIR".into(),
        format!("{}/jwks", dir.path().display()),
    );
    // The new-window handoff (frame sessions have their own tests in e2e).
    env.insert("COURSEGATE_LTI_FRAME_SESSIONS".into(), "false".into());
    let config = Config::load_from(&env, None).unwrap();
    let store = Store::connect(&config.database_url, StoreOptions::default()).unwrap();
    store.migrate().unwrap();
    let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 11, 22, 12, 0, 0).unwrap());
    let jwks_url = platform_jwks_server().await;
    let now = clock.now();
    store
        .write_blocking(|tx| {
            courses::create(
                tx,
                now,
                NewCourse {
                    slug: Slug::parse("intro").unwrap(),
                    title: "Intro".into(),
                    summary: String::new(),
                    published: true,
                    graded: true,
                    link_policy: LinkPolicy::Access,
                    default_access_days: None,
                    lessons: vec![NewLesson::from_markdown("# One\n\nHello", "One")],
                },
            )?;
            core_lti::add_platform(
                tx,
                now,
                NewPlatform {
                    issuer: testing::ISSUER.into(),
                    client_id: testing::CLIENT_ID.into(),
                    name: Some("Test LMS".into()),
                    auth_url: "http://127.0.0.1:9/auth".into(),
                    token_url: "http://127.0.0.1:9/token".into(),
                    jwks_url: jwks_url.clone(),
                    audience: None,
                    customer: None,
                    lms: None,
                    unknown_deployments: policy,
                    deployment_ids: vec![testing::DEPLOYMENT_ID.into()],
                    trusted_audiences: Vec::new(),
                },
            )
        })
        .unwrap();
    let state = AppState::new(store.clone(), Arc::new(clock.clone()), config);
    coursegate_server::app::start(state, l, 1).unwrap();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .build()
        .unwrap();
    Harness {
        base: format!("http://{addr}"),
        client,
        clock,
        store,
        _dir: dir,
    }
}

impl Harness {
    /// Runs the login step; returns (state, nonce) from the redirect to the platform.
    async fn login(&self) -> (String, String) {
        let res = self
            .client
            .get(format!("{}/lti/login", self.base))
            .query(&[
                ("iss", testing::ISSUER),
                ("login_hint", "user-0001"),
                ("target_link_uri", &format!("{}/lti/launch", self.base)),
                ("client_id", testing::CLIENT_ID),
                ("lti_deployment_id", testing::DEPLOYMENT_ID),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(
            res.status(),
            302,
            "{}",
            res.text().await.unwrap_or_default()
        );
        let loc = url::Url::parse(res.headers()["location"].to_str().unwrap()).unwrap();
        assert!(loc.as_str().starts_with("http://127.0.0.1:9/auth?"));
        let q: HashMap<String, String> = loc.query_pairs().into_owned().collect();
        assert_eq!(q["response_mode"], "form_post");
        assert_eq!(q["response_type"], "id_token");
        assert_eq!(q["prompt"], "none");
        assert_eq!(q["scope"], "openid");
        assert_eq!(q["redirect_uri"], format!("{}/lti/launch", self.base));
        (q["state"].clone(), q["nonce"].clone())
    }

    fn minter(&self, nonce: &str) -> TokenMinter {
        TokenMinter::new(self.clock.now())
            .nonce(nonce)
            .claim(
                "https://purl.imsglobal.org/spec/lti/claim/target_link_uri",
                format!("{}/lti/launch", self.base),
            )
            .roles(&["http://purl.imsglobal.org/vocab/lis/v2/membership#Learner"])
    }

    async fn launch(&self, id_token: &str, state: &str) -> reqwest::Response {
        self.client
            .post(format!("{}/lti/launch", self.base))
            .form(&[("id_token", id_token), ("state", state)])
            .send()
            .await
            .unwrap()
    }
}

fn code(res: &reqwest::Response) -> String {
    res.headers()
        .get("x-error-code")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

#[actix_web::test]
async fn learner_launch_opens_the_course() {
    let h = harness(DeploymentPolicy::Reject).await;
    let (state, nonce) = h.login().await;
    let token = h.minter(&nonce).mint();
    let res = h.launch(&token, &state).await;
    assert_eq!(res.status(), 303, "{}", res.text().await.unwrap());
    let cont = res.headers()["location"].to_str().unwrap().to_string();
    assert!(cont.starts_with("/lti/continue/ltk_"), "{cont}");
    let res = h
        .client
        .get(format!("{}{cont}", h.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/courses/intro");
    let res = h
        .client
        .get(format!("{}/courses/intro", h.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("Intro"));

    // Replaying the same state and token is refused.
    let res = h.launch(&token, &state).await;
    assert_eq!(res.status(), 400);
    assert_eq!(code(&res), "state_replayed");

    // The flight recorder kept both.
    let recs = h
        .store
        .read_blocking(|tx| {
            coursegate_store::repo::lti::recent_launches(tx, false, Default::default())
        })
        .unwrap();
    assert!(recs.iter().any(|r| r.step == "launch"
        && r.outcome == "ok"
        && r.state_path.as_deref() == Some("cookie")));
    assert!(recs
        .iter()
        .any(|r| r.reason.as_deref() == Some("state_replayed")));
}

#[actix_web::test]
async fn a_frame_without_cookies_gets_the_new_window_handoff() {
    let h = harness(DeploymentPolicy::Reject).await;
    let (state, nonce) = h.login().await;
    let token = h.minter(&nonce).mint();
    // A browser that keeps no cookies at all.
    let bare = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let res = bare
        .post(format!("{}/lti/launch", h.base))
        .form(&[("id_token", token.as_str()), ("state", state.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let cont = res.headers()["location"].to_str().unwrap().to_string();
    let res = bare.get(format!("{}{cont}", h.base)).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let body = res.text().await.unwrap();
    let ticket = cont.trim_start_matches("/lti/continue/");
    assert!(body.contains(&format!("/lti/handoff/{ticket}")));
    // In the new (first-party) window the ticket signs in once.
    let res = h
        .client
        .post(format!("{}/lti/handoff/{ticket}", h.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/courses/intro");
    let res = h
        .client
        .get(format!("{}/courses/intro", h.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = h
        .client
        .post(format!("{}/lti/handoff/{ticket}", h.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(code(&res), "ticket_used");
}

#[actix_web::test]
async fn bad_launches_are_refused_with_their_reason() {
    let h = harness(DeploymentPolicy::Reject).await;
    type Tweak = Box<dyn Fn(TokenMinter) -> TokenMinter>;
    let cases: Vec<(&str, Tweak)> = vec![
        ("kid_missing", Box::new(|m| m.kid(None))),
        ("kid_unknown", Box::new(|m| m.kid(Some("nope")))),
        ("alg_not_allowed", Box::new(|m| m.header_alg("HS256"))),
        (
            "iss_mismatch",
            Box::new(|m| m.claim("iss", "https://evil.example")),
        ),
        ("aud_mismatch", Box::new(|m| m.claim("aud", "someone-else"))),
        ("nonce_mismatch", Box::new(|m| m.claim("nonce", "other"))),
        (
            "version_invalid",
            Box::new(|m| m.claim("https://purl.imsglobal.org/spec/lti/claim/version", "1.1")),
        ),
        (
            "deployment_id_missing",
            Box::new(|m| m.without("https://purl.imsglobal.org/spec/lti/claim/deployment_id")),
        ),
        (
            "roles_missing",
            Box::new(|m| m.without("https://purl.imsglobal.org/spec/lti/claim/roles")),
        ),
        ("sub_missing", Box::new(|m| m.without("sub"))),
        (
            "resource_link_missing",
            Box::new(|m| m.without("https://purl.imsglobal.org/spec/lti/claim/resource_link")),
        ),
        (
            "deployment_unknown",
            Box::new(|m| {
                m.claim(
                    "https://purl.imsglobal.org/spec/lti/claim/deployment_id",
                    "other-deployment",
                )
            }),
        ),
        (
            "course_unknown",
            Box::new(|m| {
                m.claim(
                    "https://purl.imsglobal.org/spec/lti/claim/custom",
                    serde_json::json!({"course": "missing"}),
                )
            }),
        ),
    ];
    for (expected, f) in cases {
        let (state, nonce) = h.login().await;
        let token = f(h.minter(&nonce)).mint();
        let res = h.launch(&token, &state).await;
        assert!(
            res.status().is_client_error(),
            "{expected}: {}",
            res.status()
        );
        assert_eq!(code(&res), expected, "{expected}");
    }
    // An expired token (the clock moved on past exp + skew).
    let (state, nonce) = h.login().await;
    let token = h.minter(&nonce).mint();
    h.clock.advance(chrono::Duration::seconds(300 + 61));
    let res = h.launch(&token, &state).await;
    assert_eq!(code(&res), "token_expired");
    // A login state older than ten minutes.
    let (state, nonce) = h.login().await;
    h.clock.advance(chrono::Duration::minutes(11));
    let token = h.minter(&nonce).mint();
    let res = h.launch(&token, &state).await;
    assert_eq!(code(&res), "state_expired");
    // Garbage instead of a JWT; an unknown state.
    let (state, _) = h.login().await;
    let res = h.launch("not.a.jwt", &state).await;
    assert_eq!(code(&res), "malformed_token");
    let res = h.launch("x", "lst_unknown").await;
    assert_eq!(code(&res), "state_unknown");
}

#[actix_web::test]
async fn unknown_deployments_wait_for_approval_under_the_pending_policy() {
    let h = harness(DeploymentPolicy::Pending).await;
    let (state, nonce) = h.login().await;
    let token = h
        .minter(&nonce)
        .claim(
            "https://purl.imsglobal.org/spec/lti/claim/deployment_id",
            "new-course-copy",
        )
        .mint();
    let res = h.launch(&token, &state).await;
    assert_eq!(res.status(), 400);
    assert_eq!(code(&res), "deployment_pending");
    let deps = h
        .store
        .read_blocking(|tx| {
            let p = coursegate_store::repo::lti::list_platforms(tx)?.remove(0);
            coursegate_store::repo::lti::deployments_of(tx, &p.id)
        })
        .unwrap();
    assert!(deps
        .iter()
        .any(|d| d.deployment_id == "new-course-copy" && d.status == "pending"));
}

fn between<'a>(s: &'a str, start: &str, end: &str) -> &'a str {
    let i = s
        .find(start)
        .unwrap_or_else(|| panic!("{start} not in page"))
        + start.len();
    let j = s[i..].find(end).unwrap() + i;
    &s[i..j]
}

#[actix_web::test]
async fn deep_linking_returns_a_signed_course_item() {
    let h = harness(DeploymentPolicy::Reject).await;
    let (state, nonce) = h.login().await;
    let token = h
        .minter(&nonce)
        .roles(&["http://purl.imsglobal.org/vocab/lis/v2/membership#Instructor"])
        .deep_linking(testing::RETURN_URL, Some("opaque-data-42"))
        .mint();
    let res = h.launch(&token, &state).await;
    assert_eq!(res.status(), 303, "{}", res.text().await.unwrap());
    let cont = res.headers()["location"].to_str().unwrap().to_string();
    let res = h
        .client
        .get(format!("{}{cont}", h.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let picker = res.headers()["location"].to_str().unwrap().to_string();
    assert!(picker.starts_with("/lti/deep-link/"), "{picker}");
    let page = h
        .client
        .get(format!("{}{picker}", h.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("value=\"intro\""), "{page}");
    let csrf = between(&page, "name=\"csrf\" value=\"", "\"").to_string();

    // Without the CSRF token the form is refused.
    let res = h
        .client
        .post(format!("{}{picker}", h.base))
        .form(&[("course", "intro")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert_eq!(code(&res), "csrf_failed");

    let res = h
        .client
        .post(format!("{}{picker}", h.base))
        .form(&[("csrf", csrf.as_str()), ("course", "intro")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // Templates escape '/' in attributes as an entity, which browsers decode.
    let body = res.text().await.unwrap().replace("&#x2F;", "/");
    assert!(
        body.contains(&format!("action=\"{}\"", testing::RETURN_URL)),
        "{body}"
    );
    let jwt = between(&body, "name=\"JWT\" value=\"", "\"").to_string();

    // Verify the response with the tool's published keys.
    let jwks: serde_json::Value = h
        .client
        .get(format!("{}/.well-known/jwks.json", h.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let keys = coursegate_lti::token::PlatformKeys::from_jwks(
        &coursegate_lti::token::PlatformKeys::parse_jwks_lenient(&jwks),
    );
    let claims = coursegate_lti::token::verify_signature(&jwt, &keys).unwrap();
    assert_eq!(claims["iss"], testing::CLIENT_ID);
    assert_eq!(claims["aud"], testing::ISSUER);
    assert_eq!(
        claims["https://purl.imsglobal.org/spec/lti/claim/message_type"],
        "LtiDeepLinkingResponse"
    );
    assert_eq!(
        claims["https://purl.imsglobal.org/spec/lti/claim/deployment_id"],
        testing::DEPLOYMENT_ID
    );
    assert_eq!(
        claims["https://purl.imsglobal.org/spec/lti-dl/claim/data"],
        "opaque-data-42"
    );
    let items = claims["https://purl.imsglobal.org/spec/lti-dl/claim/content_items"]
        .as_array()
        .unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["type"], "ltiResourceLink");
    assert_eq!(items[0]["url"], format!("{}/lti/launch", h.base));
    assert_eq!(items[0]["custom"]["course"], "intro");
    assert_eq!(items[0]["lineItem"]["scoreMaximum"], 100.0);
    assert!(claims["nonce"].as_str().is_some_and(|n| !n.is_empty()));

    // The request is single use.
    let res = h
        .client
        .post(format!("{}{picker}", h.base))
        .form(&[("csrf", csrf.as_str()), ("course", "intro")])
        .send()
        .await
        .unwrap();
    assert_eq!(code(&res), "deep_link_request_used");
}

#[actix_web::test]
async fn learners_cannot_answer_deep_linking_requests() {
    let h = harness(DeploymentPolicy::Reject).await;
    let (state, nonce) = h.login().await;
    let token = h
        .minter(&nonce)
        .deep_linking(testing::RETURN_URL, None)
        .mint();
    let res = h.launch(&token, &state).await;
    assert_eq!(res.status(), 400);
    assert_eq!(code(&res), "deep_linking_not_instructor");
}

impl Harness {
    /// A client signed in as a staff member with `role`.
    async fn staff(&self, role: &str) -> reqwest::Client {
        use coursegate_core::{sessions, staff, types::Email};
        let now = self.clock.now();
        let secret = coursegate_core::tokens::Secret::new(
            b"test-secret-0123456789-0123456789-abcdef".to_vec(),
        )
        .unwrap();
        let email = format!("{role}@staff.example");
        let role_v = staff::Role::parse(role).unwrap();
        let started = self
            .store
            .write_blocking(|tx| {
                let (s, _) = staff::ensure(tx, now, &Email::parse(&email)?, None, role_v)?;
                sessions::start_staff_session(
                    tx,
                    now,
                    &secret,
                    &Default::default(),
                    &s.id,
                    "test",
                    &Default::default(),
                )
            })
            .unwrap();
        let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
        jar.add_cookie_str(
            &format!("cg_session={}", started.token),
            &self.base.parse().unwrap(),
        );
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .cookie_provider(jar)
            .build()
            .unwrap()
    }
}

#[actix_web::test]
async fn staff_register_platforms_and_approve_pending_deployments() {
    let h = harness(DeploymentPolicy::Pending).await;
    let admin = h.staff("admin").await;
    let page = admin
        .get(format!("{}/staff/lms", h.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("Test LMS"));
    assert!(page.contains(&format!("{}/lti/login", h.base).replace('/', "&#x2F;")));
    let csrf = between(&page, "name=\"csrf-token\" content=\"", "\"").to_string();

    // A launch from an unknown deployment is recorded as pending, with advice on the list page.
    let (state, nonce) = h.login().await;
    let token = h
        .minter(&nonce)
        .claim(
            "https://purl.imsglobal.org/spec/lti/claim/deployment_id",
            "copy-2",
        )
        .mint();
    assert_eq!(code(&h.launch(&token, &state).await), "deployment_pending");
    let (state, _) = h.login().await;
    let bad = h.minter("wrong-nonce").mint();
    assert_eq!(code(&h.launch(&bad, &state).await), "nonce_mismatch");
    let page = admin
        .get(format!("{}/staff/lms", h.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("nonce_mismatch"));
    assert!(page.contains("pending"));

    // Approve it; the next launch from that deployment succeeds.
    let pid = h
        .store
        .read_blocking(coursegate_store::repo::lti::list_platforms)
        .unwrap()
        .remove(0)
        .id;
    let detail = admin
        .get(format!("{}/staff/lms/{pid}", h.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let dep_action = between(
        &detail,
        &format!("action=\"/staff/lms/{pid}/deployments/"),
        "\"",
    )
    .to_string();
    let res = admin
        .post(format!(
            "{}/staff/lms/{pid}/deployments/{dep_action}",
            h.base
        ))
        .form(&[("csrf", csrf.as_str()), ("status", "active")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let (state, nonce) = h.login().await;
    let token = h
        .minter(&nonce)
        .claim(
            "https://purl.imsglobal.org/spec/lti/claim/deployment_id",
            "copy-2",
        )
        .mint();
    assert_eq!(h.launch(&token, &state).await.status(), 303);

    // Add a second registration of the same issuer with another client_id.
    let form = [
        ("csrf", csrf.as_str()),
        ("issuer", testing::ISSUER),
        ("client_id", "second-client"),
        ("deployment_id", "d-1, d-2"),
        ("auth_url", "https://platform.test.example/auth"),
        ("token_url", "https://platform.test.example/token"),
        ("jwks_url", "https://platform.test.example/jwks"),
        ("unknown_deployments", "reject"),
    ];
    let res = admin
        .post(format!("{}/staff/lms", h.base))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303, "{}", res.text().await.unwrap());
    // The same pair again is refused with the form shown again.
    let res = admin
        .post(format!("{}/staff/lms", h.base))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert!(res.text().await.unwrap().contains("already registered"));
    // A non-https URL is refused naming the field.
    let mut bad_form = form.to_vec();
    bad_form[2] = ("client_id", "third");
    bad_form[5] = ("token_url", "http://platform.example/token");
    let res = admin
        .post(format!("{}/staff/lms", h.base))
        .form(&bad_form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert!(res
        .text()
        .await
        .unwrap()
        .contains("token_url: must be an https:&#x2F;&#x2F; URL"));

    // Without the CSRF token: refused.
    let res = admin
        .post(format!("{}/staff/lms", h.base))
        .form(&form[1..])
        .send()
        .await
        .unwrap();
    assert_eq!(code(&res), "csrf_failed");

    // Support staff may look but not change.
    let support = h.staff("support").await;
    assert_eq!(
        support
            .get(format!("{}/staff/lms", h.base))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let page = support
        .get(format!("{}/staff/lms", h.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let s_csrf = between(&page, "name=\"csrf-token\" content=\"", "\"").to_string();
    let mut f2 = form.to_vec();
    f2[0] = ("csrf", s_csrf.as_str());
    f2[2] = ("client_id", "by-support");
    let res = support
        .post(format!("{}/staff/lms", h.base))
        .form(&f2)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert_eq!(code(&res), "forbidden");

    // Learners and strangers are not staff.
    let res = h
        .client
        .get(format!("{}/staff/lms", h.base))
        .send()
        .await
        .unwrap();
    assert_eq!(code(&res), "not_signed_in");
}

#[actix_web::test]
async fn unmapped_links_guide_instructors_and_tell_learners() {
    let h = harness(DeploymentPolicy::Reject).await;
    let no_course = serde_json::json!({});
    // A learner: a clear refusal.
    let (state, nonce) = h.login().await;
    let token = h
        .minter(&nonce)
        .claim(
            "https://purl.imsglobal.org/spec/lti/claim/custom",
            no_course.clone(),
        )
        .mint();
    let res = h.launch(&token, &state).await;
    assert_eq!(code(&res), "course_not_set_up");
    // An instructor: the guide with the course slugs.
    let (state, nonce) = h.login().await;
    let token = h
        .minter(&nonce)
        .roles(&["Instructor"])
        .claim(
            "https://purl.imsglobal.org/spec/lti/claim/custom",
            no_course,
        )
        .claim_field(
            "https://purl.imsglobal.org/spec/lti/claim/resource_link",
            "id",
            "rl-unmapped",
        )
        .mint();
    let res = h.launch(&token, &state).await;
    assert_eq!(res.status(), 303);
    let cont = res.headers()["location"].to_str().unwrap().to_string();
    let res = h
        .client
        .get(format!("{}{cont}", h.base))
        .send()
        .await
        .unwrap();
    // The instructor of the context gets the picker of this very link.
    let picker = res.headers()["location"].to_str().unwrap().to_string();
    assert!(picker.starts_with("/lti/unmapped/"), "{picker}");
    assert!(picker.contains("?k="), "{picker}");
    let page = h
        .client
        .get(format!("{}{picker}", h.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("data-course=\"intro\""), "{page}");
    assert!(page.contains("name=\"csrf\""), "{page}");
    // Without a resource link's key, the guide with the course slugs.
    let page = h
        .client
        .get(format!("{}/lti/unmapped", h.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("<code>intro</code>"));
}

/// A login that succeeds writes no flight record of its own: its facts travel
/// with its launch's record. A login whose launch never arrives is recorded
/// once its state expires, dated when it happened, with the plain-words reason.
#[actix_web::test]
async fn an_abandoned_login_is_recorded_when_its_state_expires() {
    let h = harness(DeploymentPolicy::Reject).await;
    let login_at = h.clock.now();
    let (state, nonce) = h.login().await;
    let token = h.minter(&nonce).mint();
    assert_eq!(h.launch(&token, &state).await.status(), 303);
    let (_abandoned_state, _) = h.login().await;

    let flights = |h: &Harness| {
        h.store
            .read_blocking(|tx| {
                coursegate_store::repo::lti::recent_launches(tx, false, Default::default())
            })
            .unwrap()
    };
    let recs = flights(&h);
    assert_eq!(recs.len(), 1, "{recs:?}");
    assert_eq!(
        (recs[0].step.as_str(), recs[0].outcome.as_str()),
        ("launch", "ok")
    );
    let checks: serde_json::Value = serde_json::from_str(&recs[0].checks).unwrap();
    assert_eq!(checks["storage_offered"], false);
    assert!(checks["passed"].as_u64().unwrap() > 10, "{checks}");
    assert!(checks["login_ms"].as_i64().unwrap() >= 0, "{checks}");

    // Before expiry, nothing to record; after it, exactly the abandoned login.
    let purge = |h: &Harness| {
        let now = h.clock.now();
        h.store
            .write_blocking(|tx| core_lti::purge_expired(tx, now))
            .unwrap()
    };
    purge(&h);
    assert_eq!(flights(&h).len(), 1);
    h.clock
        .advance(chrono::Duration::minutes(core_lti::LOGIN_TTL_MINUTES + 1));
    assert!(purge(&h) >= 2, "both login states are gone");
    let recs = flights(&h);
    let abandoned: Vec<_> = recs.iter().filter(|r| r.step == "login").collect();
    assert_eq!(abandoned.len(), 1, "{recs:?}");
    let r = abandoned[0];
    assert_eq!(r.outcome, "abandoned");
    assert_eq!(r.reason.as_deref(), Some("launch_not_received"));
    assert_eq!(r.issuer.as_deref(), Some(testing::ISSUER));
    assert_eq!(r.at, login_at.naive_utc());
    let checks: serde_json::Value = serde_json::from_str(&r.checks).unwrap();
    assert_eq!(checks["explanation"], core_lti::LOGIN_ABANDONED);
    // A second purge finds nothing more to record.
    purge(&h);
    assert_eq!(flights(&h).len(), 2);
}

/// A deployment is checked when the launch arrives, not at login: one
/// disabled in between is refused, and one enabled again launches.
#[actix_web::test]
async fn a_deployment_disabled_after_the_login_refuses_the_launch() {
    let h = harness(DeploymentPolicy::Reject).await;
    let set_status = |status: &'static str| {
        h.store
            .write_blocking(move |tx| {
                let p = coursegate_store::repo::lti::list_platforms(tx)?.remove(0);
                let mut d = coursegate_store::repo::lti::deployments_of(tx, &p.id)?
                    .into_iter()
                    .find(|d| d.deployment_id == testing::DEPLOYMENT_ID)
                    .expect("the harness registers the test deployment");
                d.status = status.to_string();
                coursegate_store::repo::lti::update_deployment(tx, &d)
            })
            .unwrap()
    };
    let (state, nonce) = h.login().await;
    set_status("disabled");
    let res = h.launch(&h.minter(&nonce).mint(), &state).await;
    assert_eq!(res.status(), 400);
    assert_eq!(code(&res), "deployment_disabled");

    set_status("active");
    let (state, nonce) = h.login().await;
    let res = h.launch(&h.minter(&nonce).mint(), &state).await;
    assert_eq!(
        res.status(),
        303,
        "{}",
        res.text().await.unwrap_or_default()
    );
}

/// A launch body that is no HTML form, or names a field twice, is refused
/// with the reason (and never reaches the token checks).
#[actix_web::test]
async fn unreadable_launch_forms_are_refused_with_the_reason() {
    let h = harness(DeploymentPolicy::Reject).await;
    let post = |content_type: &'static str, body: String| {
        h.client
            .post(format!("{}/lti/launch", h.base))
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let refusal = |res: reqwest::Response| async move {
        assert_eq!(res.status(), 400);
        res.text().await.unwrap()
    };

    let res = post("application/json", r#"{"id_token":"x","state":"y"}"#.into()).await;
    let page = refusal(res.unwrap()).await;
    assert!(
        // Tera escapes the slash.
        page.contains(
            "The form could not be read: a launch is an HTML form POST (application&#x2F;x-www-form-urlencoded)."
        ),
        "{page}"
    );

    let (state, nonce) = h.login().await;
    let token = h.minter(&nonce).mint();
    let form = "application/x-www-form-urlencoded";
    let res = post(form, format!("id_token={token}&state={state}&state=other")).await;
    let page = refusal(res.unwrap()).await;
    assert!(
        page.contains("The form could not be read: the field state is given twice."),
        "{page}"
    );

    // The same launch, well formed (and with a field the tool does not know), goes in.
    let res = post(
        "application/x-www-form-urlencoded; charset=UTF-8",
        format!("id_token={token}&state={state}&utf8=%E2%9C%93"),
    )
    .await
    .unwrap();
    assert_eq!(
        res.status(),
        303,
        "{}",
        res.text().await.unwrap_or_default()
    );
}
