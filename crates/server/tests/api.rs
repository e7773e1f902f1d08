//! The automation API over real HTTP against the running server: every
//! endpoint, idempotency (replays and concurrent duplicates), precise
//! problem codes for bad bodies, authentication, scopes and rate limits,
//! signed webhooks to a receiver started here (down, then up), the CLI, and
//! a contract check of real responses against the OpenAPI document.

use std::{
    collections::HashMap,
    net::TcpListener,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
};

use actix_web::web;
use base64::Engine;
use chrono::{Duration, TimeZone, Utc};
use coursegate_core::{
    api_keys::{self, NewKey, Scope},
    audit::Actor,
    courses::{self, LinkPolicy, NewCourse, NewLesson},
    enrolments,
    types::Slug,
    webhooks::DeliveryPolicy,
    Clock, ManualClock, Store,
};
use coursegate_server::{
    app::AppState,
    config::Config,
    workers::{self, WebhookWorker},
};
use coursegate_store::StoreOptions;
use coursegate_testkit::{smtp::SmtpSink, TestBackend};
use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sha2::Sha256;

struct Api {
    base: String,
    client: reqwest::Client,
    clock: ManualClock,
    store: Store,
    state: web::Data<AppState>,
    secret: coursegate_core::tokens::Secret,
    db_url: String,
    dir: tempfile::TempDir,
    pg_schema: Option<String>,
}

impl Drop for Api {
    fn drop(&mut self) {
        if self.pg_schema.is_some() {
            let _ = self.store.drop_pg_schema();
        }
    }
}

struct Resp {
    status: StatusCode,
    body: Value,
    headers: reqwest::header::HeaderMap,
}

impl Resp {
    fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }
    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    }
}

const SECRET: &str = "api-test-secret-0123456789-0123456789-abcdef";

async fn spawn_with(extra: &[(&str, &str)]) -> Api {
    spawn_on(TestBackend::Sqlite, extra).await
}

async fn spawn_on(backend: TestBackend, extra: &[(&str, &str)]) -> Api {
    let dir = tempfile::tempdir().unwrap();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let (db_url, pg_schema) = match &backend {
        TestBackend::Sqlite => (format!("sqlite://{}/t.db", dir.path().display()), None),
        TestBackend::Postgres(u) => (
            u.clone(),
            Some(format!("t_{}", uuid::Uuid::new_v4().simple())),
        ),
    };
    let mut env: HashMap<String, String> = HashMap::new();
    env.insert("COURSEGATE_SECRET".into(), SECRET.into());
    env.insert("COURSEGATE_BIND".into(), addr.to_string());
    env.insert("COURSEGATE_DATABASE_URL".into(), db_url.clone());
    env.insert("COURSEGATE_BASE_URL".into(), format!("http://{addr}"));
    env.insert(
        "COURSEGATE_KEYS_DIR".into(),
        format!("{}/jwks", dir.path().display()),
    );
    for (k, v) in extra {
        env.insert(k.to_string(), v.to_string());
    }
    let config = Config::load_from(&env, None).unwrap();
    let secret = config.secret.clone();
    let options = StoreOptions {
        pg_schema: pg_schema.clone(),
        ..Default::default()
    };
    let store = Store::connect(&config.database_url, options).unwrap();
    store.migrate().unwrap();
    let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 11, 22, 12, 0, 0).unwrap());
    let now = clock.now();
    store
        .write_blocking(|tx| {
            courses::create(
                tx,
                now,
                NewCourse {
                    slug: Slug::parse("first-aid").unwrap(),
                    title: "First aid".into(),
                    summary: "Basics".into(),
                    published: true,
                    graded: false,
                    link_policy: LinkPolicy::Access,
                    default_access_days: None,
                    lessons: vec![NewLesson::from_markdown("# Only lesson\n\nHi", "One")],
                },
            )?;
            courses::create(
                tx,
                now,
                NewCourse {
                    slug: Slug::parse("safety").unwrap(),
                    title: "Safety".into(),
                    summary: String::new(),
                    published: true,
                    graded: false,
                    link_policy: LinkPolicy::Once,
                    default_access_days: Some(30),
                    lessons: vec![
                        NewLesson::from_markdown("# A", "A"),
                        NewLesson::from_markdown("# B", "B"),
                    ],
                },
            )
        })
        .unwrap();
    let state = web::Data::new(AppState::new(
        store.clone(),
        Arc::new(clock.clone()),
        config,
    ));
    coursegate_server::app::start_with_data(state.clone(), l, 1).unwrap();
    Api {
        base: format!("http://{addr}"),
        client: reqwest::Client::new(),
        clock,
        store,
        state,
        secret,
        db_url,
        dir,
        pg_schema,
    }
}

async fn spawn() -> Api {
    spawn_with(&[]).await
}

const ALL: &[Scope] = &Scope::ALL;

impl Api {
    fn key(&self, scopes: &[Scope]) -> String {
        let now = self.clock.now();
        let secret = self.secret.clone();
        let scopes = scopes.to_vec();
        self.store
            .write_blocking(|tx| {
                api_keys::create(
                    tx,
                    now,
                    &secret,
                    &Actor::cli(),
                    NewKey {
                        name: "test".into(),
                        scopes,
                        allow_link_urls: false,
                    },
                )
            })
            .unwrap()
            .plaintext
    }

    async fn send(&self, rb: reqwest::RequestBuilder) -> Resp {
        let r = rb.send().await.unwrap();
        let status = r.status();
        let headers = r.headers().clone();
        let text = r.text().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Resp {
            status,
            body,
            headers,
        }
    }

    async fn get(&self, key: &str, path: &str) -> Resp {
        self.send(
            self.client
                .get(format!("{}{path}", self.base))
                .bearer_auth(key),
        )
        .await
    }

    async fn post(&self, key: &str, path: &str, body: Value) -> Resp {
        self.post_idem(key, path, body, None).await
    }

    async fn post_idem(&self, key: &str, path: &str, body: Value, idem: Option<&str>) -> Resp {
        let mut rb = self
            .client
            .post(format!("{}{path}", self.base))
            .bearer_auth(key)
            .json(&body);
        if let Some(k) = idem {
            rb = rb.header("Idempotency-Key", k);
        }
        self.send(rb).await
    }

    async fn post_raw(&self, key: &str, path: &str, ct: &str, raw: &str) -> Resp {
        self.send(
            self.client
                .post(format!("{}{path}", self.base))
                .bearer_auth(key)
                .header("content-type", ct)
                .body(raw.to_string()),
        )
        .await
    }

    async fn delete(&self, key: &str, path: &str) -> Resp {
        self.send(
            self.client
                .delete(format!("{}{path}", self.base))
                .bearer_auth(key),
        )
        .await
    }

    fn count_events(&self, topic: &str) -> usize {
        let topic = topic.to_string();
        self.store
            .read_blocking(|tx| coursegate_store::repo::outbox::by_topic(tx, &topic))
            .unwrap()
            .len()
    }

    async fn round(&self, cfg: &WebhookWorker) -> workers::WebhookRound {
        let client = workers::webhook_client(cfg);
        workers::webhook_round(&self.state, &client, cfg)
            .await
            .unwrap()
    }
}

fn assert_problem(r: &Resp, status: u16, code: &str) {
    assert_eq!(r.status.as_u16(), status, "{code}: {}", r.body);
    assert_eq!(r.code(), code, "{}", r.body);
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/problem+json"),
        "{code}"
    );
    assert_eq!(
        r.body["type"],
        format!("https://coursegate.dev/problems/{code}")
    );
    assert_eq!(r.body["status"], status);
}

// ---------------------------------------------------------------- learners

#[actix_web::test]
async fn learners_upsert_list_and_get() {
    let api = spawn().await;
    let key = api.key(ALL);
    let r = api
        .post(
            &key,
            "/api/v1/learners",
            json!({"email": "Ann@Example.com", "name": "Ann", "external_id": "crm-1"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.body["id"].as_str().unwrap().to_string();
    assert_eq!(r.body["email"], "Ann@Example.com");
    assert_eq!(r.body["external_id"], "crm-1");

    let r = api
        .post(
            &key,
            "/api/v1/learners",
            json!({"email": "ann@example.com", "name": "Ann Lee"}),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["id"], id.as_str());
    assert_eq!(r.body["name"], "Ann Lee");

    let r = api
        .post(
            &key,
            "/api/v1/learners",
            json!({"email": "bob@example.com", "external_id": "crm-1"}),
        )
        .await;
    // The external id wins: the same person, now at a new address.
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["id"], id.as_str());
    assert_eq!(r.body["email"], "bob@example.com");

    for i in 0..3 {
        let r = api
            .post(
                &key,
                "/api/v1/learners",
                json!({"email": format!("p{i}@example.com")}),
            )
            .await;
        assert_eq!(r.status, 201);
    }
    let p1 = api.get(&key, "/api/v1/learners?limit=3").await;
    assert_eq!(p1.status, 200);
    assert_eq!(p1.body["data"].as_array().unwrap().len(), 3);
    assert_eq!(p1.body["data"][0]["id"], id.as_str());
    let cursor = p1.body["next_cursor"].as_str().unwrap().to_string();
    let p2 = api
        .get(&key, &format!("/api/v1/learners?limit=3&cursor={cursor}"))
        .await;
    assert_eq!(p2.body["data"].as_array().unwrap().len(), 1);
    assert_eq!(p2.body["data"][0]["email"], "p2@example.com");
    assert!(p2.body["next_cursor"].is_null());

    assert_problem(
        &api.get(&key, "/api/v1/learners?cursor=nonsense").await,
        422,
        "invalid_input",
    );
    assert_problem(
        &api.get(&key, "/api/v1/learners?limit=0").await,
        422,
        "invalid_input",
    );
    assert_problem(
        &api.get(&key, "/api/v1/learners?limit=ten").await,
        400,
        "invalid_query",
    );

    api.post(
        &key,
        "/api/v1/enrolments",
        json!({"email": "bob@example.com", "course": "safety"}),
    )
    .await;
    let d = api.get(&key, &format!("/api/v1/learners/{id}")).await;
    assert_eq!(d.status, 200);
    assert_eq!(d.body["enrolments"][0]["course"], "safety");
    assert_eq!(d.body["enrolments"][0]["progress"]["required_lessons"], 2);
    assert_eq!(d.body["enrolments"][0]["progress"]["percent"], 0);

    assert_problem(
        &api.get(
            &key,
            "/api/v1/learners/00000000-0000-7000-8000-000000000000",
        )
        .await,
        404,
        "learner_not_found",
    );
    assert_problem(
        &api.get(&key, "/api/v1/learners/x").await,
        404,
        "learner_not_found",
    );
    let r = api
        .post(&key, "/api/v1/learners", json!({"email": "not-an-email"}))
        .await;
    assert_problem(&r, 422, "invalid_input");
    assert_eq!(r.body["errors"][0]["field"], "email");
}

// -------------------------------------------------------------- enrolments

#[actix_web::test]
async fn enrolments_create_get_revoke_extend() {
    let api = spawn().await;
    let key = api.key(ALL);
    // Webshop purchase.
    let r = api
        .post(
            &key,
            "/api/v1/enrolments",
            json!({"email": "buyer@example.com", "course": "first-aid", "name": "Buyer", "reference": "order-1001"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.body["id"].as_str().unwrap().to_string();
    assert_eq!(r.body["status"], "active");
    assert_eq!(r.body["source"], "api");
    assert_eq!(r.body["reference"], "order-1001");
    assert_eq!(api.count_events("enrolment.granted"), 1);

    let again = api
        .post(
            &key,
            "/api/v1/enrolments",
            json!({"email": "buyer@example.com", "course": "first-aid"}),
        )
        .await;
    assert_eq!(again.status, 200);
    assert_eq!(again.body["id"], id.as_str());

    let g = api.get(&key, &format!("/api/v1/enrolments/{id}")).await;
    assert_eq!(g.status, 200);
    assert_eq!(g.body["course"], "first-aid");

    // HR: the start date is in the future.
    let start = (api.clock.now() + Duration::days(14)).to_rfc3339();
    let hr = api
        .post(
            &key,
            "/api/v1/enrolments",
            json!({"email": "newhire@example.com", "course": "safety", "starts_at": start}),
        )
        .await;
    assert_eq!(hr.status, 201);
    assert_eq!(hr.body["status"], "scheduled");
    // The course's 30-day access runs from the start.
    let exp =
        chrono::DateTime::parse_from_rfc3339(hr.body["expires_at"].as_str().unwrap()).unwrap();
    assert_eq!(exp, api.clock.now() + Duration::days(44));

    // Extend, then remove the end.
    let new_end = (api.clock.now() + Duration::days(90)).to_rfc3339();
    let x = api
        .post(
            &key,
            &format!("/api/v1/enrolments/{id}/extend"),
            json!({"expires_at": new_end}),
        )
        .await;
    assert_eq!(x.status, 200, "{}", x.body);
    assert!(x.body["expires_at"].is_string());
    let x = api
        .post(
            &key,
            &format!("/api/v1/enrolments/{id}/extend"),
            json!({"expires_at": null}),
        )
        .await;
    assert!(x.body["expires_at"].is_null());
    let r = api
        .post(&key, &format!("/api/v1/enrolments/{id}/extend"), json!({}))
        .await;
    assert_problem(&r, 422, "missing_field");
    assert_eq!(r.body["errors"][0]["field"], "expires_at");

    // CRM refund → revoke (a body is optional).
    let rv = api
        .post(
            &key,
            &format!("/api/v1/enrolments/{id}/revoke"),
            json!({"reason": "refund"}),
        )
        .await;
    assert_eq!(rv.status, 200);
    assert_eq!(rv.body["status"], "revoked");
    let rv2 = api
        .send(
            api.client
                .post(format!("{}/api/v1/enrolments/{id}/revoke", api.base))
                .bearer_auth(&key),
        )
        .await;
    assert_eq!(rv2.status, 200);
    assert_eq!(api.count_events("enrolment.revoked"), 1);

    assert_problem(
        &api.post(
            &key,
            "/api/v1/enrolments",
            json!({"email": "a@example.com", "course": "nope"}),
        )
        .await,
        404,
        "course_not_found",
    );
    let bad = api
        .post(
            &key,
            "/api/v1/enrolments",
            json!({"email": "a@example.com", "course": "safety",
                   "starts_at": "2027-01-02T00:00:00Z", "expires_at": "2027-01-01T00:00:00Z"}),
        )
        .await;
    assert_problem(&bad, 422, "invalid_input");
    assert_eq!(bad.body["errors"][0]["field"], "expires_at");
    assert_problem(
        &api.get(
            &key,
            "/api/v1/enrolments/00000000-0000-7000-8000-000000000000",
        )
        .await,
        404,
        "enrolment_not_found",
    );
    assert_problem(
        &api.post(
            &key,
            "/api/v1/enrolments/00000000-0000-7000-8000-000000000000/revoke",
            json!({}),
        )
        .await,
        404,
        "enrolment_not_found",
    );
}

// ------------------------------------------------------------------- links

impl Api {
    fn key_with_urls(&self, scopes: &[Scope]) -> String {
        let now = self.clock.now();
        let secret = self.secret.clone();
        let scopes = scopes.to_vec();
        self.store
            .write_blocking(|tx| {
                api_keys::create(
                    tx,
                    now,
                    &secret,
                    &Actor::cli(),
                    NewKey {
                        name: "shop-with-sms".into(),
                        scopes,
                        allow_link_urls: true,
                    },
                )
            })
            .unwrap()
            .plaintext
    }

    fn mail_worker(&self, sink: &SmtpSink) -> workers::MailWorker {
        let cfg = coursegate_mail::MailConfig::from_url(Some(&sink.url()))
            .unwrap()
            .with_from("Acme Training <learn@acme.example>")
            .with_timeouts(
                std::time::Duration::from_secs(2),
                std::time::Duration::from_secs(5),
            );
        let mailer = coursegate_mail::Mailer::new(&cfg).unwrap();
        workers::MailWorker::new(mailer, "learn@acme.example").unwrap()
    }

    async fn deliver(&self, w: &workers::MailWorker) -> workers::MailPass {
        workers::deliver_due_mail(&self.state, w).await.unwrap()
    }

    fn audit(&self, action: &str) -> Vec<coursegate_store::models::AuditEntry> {
        let filter = coursegate_store::repo::audit::AuditFilter {
            action: Some(action.to_string()),
            ..Default::default()
        };
        self.store
            .read_blocking(move |tx| {
                coursegate_store::repo::audit::list(
                    tx,
                    &filter,
                    coursegate_store::repo::Page {
                        limit: 100,
                        offset: 0,
                    },
                )
            })
            .unwrap()
    }

    /// Opens a link's confirmation page like a person and presses Continue.
    async fn redeem(&self, url: &str) -> StatusCode {
        let browser = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let ua = "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0";
        let page = browser
            .get(url)
            .header("user-agent", ua)
            .header("accept-language", "en")
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 200, "confirmation page of {url}");
        let csrf = coursegate_testkit::csrf_of(&page.text().await.unwrap());
        browser
            .post(url)
            .header("user-agent", ua)
            .header("accept-language", "en")
            .form(&[("csrf", csrf)])
            .send()
            .await
            .unwrap()
            .status()
    }
}

const WAIT: std::time::Duration = std::time::Duration::from_secs(10);

coursegate_testkit::each_backend! {
    async fn links_create_get_and_the_url_opt_in(backend) {
        let api = spawn_on(backend, &[]).await;
        let key = api.key(ALL);
        let urls = api.key_with_urls(ALL);
        let r = api
            .post(&key, "/api/v1/enrolments", json!({"email": "ann@example.com", "course": "first-aid"}))
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        let learner_id = r.body["learner_id"].as_str().unwrap().to_string();

        // A key without the opt-in may not take the URL to send it itself.
        let r = api
            .post(&key, "/api/v1/links", json!({"email": "ann@example.com", "course": "first-aid", "send": false}))
            .await;
        assert_problem(&r, 403, "link_url_not_allowed");
        assert_eq!(api.count_events("email.learner_link"), 0);

        // It may have Coursegate email it, and never sees the URL.
        let r = api
            .post(&key, "/api/v1/links", json!({"email": "ann@example.com", "course": "first-aid"}))
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        assert!(r.body.get("url").is_none(), "{}", r.body);
        assert_eq!(r.body["kind"], "access");
        assert_eq!(r.body["status"], "issued");
        assert_eq!(r.body["course"], "first-aid");
        assert_eq!(r.body["learner_id"], learner_id.as_str());
        let first = r.body["id"].as_str().unwrap().to_string();
        assert_eq!(api.count_events("email.learner_link"), 1);
        assert!(api.audit("link.url_disclosed").is_empty());

        // A key with the opt-in gets the URL (audited), and may skip the email.
        let r = api
            .post(&urls, "/api/v1/links", json!({"email": "ann@example.com", "course": "first-aid", "kind": "once", "send": false}))
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        let id = r.body["id"].as_str().unwrap().to_string();
        let url = r.body["url"].as_str().unwrap().to_string();
        assert!(url.starts_with(&format!("{}/l/cgl", api.base)), "{url}");
        assert_eq!(r.body["kind"], "once");
        assert_eq!(api.count_events("email.learner_link"), 1, "send: false sends nothing");
        assert_eq!(api.count_events("email.signin_link"), 0);
        let audited = api.audit("link.url_disclosed");
        assert_eq!(audited.len(), 1);
        assert_eq!(audited[0].subject_id.as_deref(), Some(id.as_str()));
        assert_eq!(audited[0].actor_kind, "api");

        // Status reads never carry the URL.
        let r = api.get(&key, &format!("/api/v1/links/{id}")).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["status"], "issued");
        assert!(r.body.get("url").is_none());
        let r = api.get(&key, &format!("/api/v1/links/{first}")).await;
        assert_eq!(r.body["status"], "issued");
        assert_eq!(api.redeem(&url).await, 303);
        let r = api.get(&key, &format!("/api/v1/links/{id}")).await;
        assert_eq!(r.body["status"], "redeemed");
        assert_eq!(r.body["redeem_count"], 1);
        assert_problem(&api.get(&key, "/api/v1/links/nope").await, 404, "link_not_found");
        assert_problem(
            &api.get(&key, "/api/v1/links/01900000-0000-7000-8000-000000000000").await,
            404,
            "link_not_found",
        );

        // Refusals, each with its reason.
        let p = "/api/v1/links";
        assert_problem(
            &api.post(&key, p, json!({"email": "nobody@example.com", "course": "first-aid"})).await,
            404,
            "learner_not_found",
        );
        assert_problem(
            &api.post(&key, p, json!({"email": "ann@example.com", "course": "nope"})).await,
            404,
            "course_not_found",
        );
        assert_problem(
            &api.post(&key, p, json!({"email": "ann@example.com", "course": "safety"})).await,
            403,
            "not_enrolled",
        );
        let r = api.post(&key, p, json!({"email": "not-an-email", "course": "first-aid"})).await;
        assert_problem(&r, 422, "invalid_input");
        assert_eq!(r.body["errors"][0]["field"], "email");
        let r = api.post(&key, p, json!({"email": "ann@example.com", "course": "first-aid", "kind": "forever"})).await;
        assert_problem(&r, 422, "invalid_value");
        assert_eq!(r.body["errors"][0]["field"], "kind");
        let r = api.post(&key, p, json!({"email": "ann@example.com", "course": "first-aid", "send": "yes"})).await;
        assert_problem(&r, 422, "invalid_type");
        assert_eq!(r.body["errors"][0]["field"], "send");
        let r = api.post(&key, p, json!({"email": "ann@example.com", "course": "first-aid", "channel": "sms"})).await;
        assert_problem(&r, 422, "unknown_field");
        assert_eq!(r.body["errors"][0]["field"], "channel");
        let r = api.post(&key, p, json!({"course": "first-aid"})).await;
        assert_problem(&r, 422, "missing_field");
        assert_eq!(r.body["errors"][0]["field"], "email");
        let reader = api.key(&[Scope::Read]);
        let r = api.post(&reader, p, json!({"email": "ann@example.com", "course": "first-aid"})).await;
        assert_problem(&r, 403, "insufficient_scope");
        assert_eq!(r.body["required_scope"], "links:write");
    }

    async fn link_send_delivers_one_working_email_and_signed_webhooks(backend) {
        let sink = SmtpSink::start().await;
        let api = spawn_on(backend, &[]).await;
        let worker = api.mail_worker(&sink);
        let key = api.key(ALL);
        let hooks = Receiver::start().await;
        let r = api
            .post(&key, "/api/v1/webhooks", json!({"url": hooks.url, "events": ["link.sent", "link.opened", "link.redeemed"]}))
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        let secret = r.body["secret"].as_str().unwrap().to_string();
        api.post(&key, "/api/v1/enrolments", json!({"email": "bea@example.com", "course": "first-aid", "name": "Bea"}))
            .await;

        let body = json!({"email": "bea@example.com", "course": "first-aid", "send": true});
        let r1 = api.post_idem(&key, "/api/v1/links", body.clone(), Some("link-1")).await;
        assert_eq!(r1.status, 201, "{}", r1.body);
        let r2 = api.post_idem(&key, "/api/v1/links", body, Some("link-1")).await;
        assert_eq!(r2.status, 201);
        assert_eq!(r2.body, r1.body, "a replay returns the same link");
        assert_eq!(r2.header("idempotent-replayed").as_deref(), Some("true"));
        let id = r1.body["id"].as_str().unwrap().to_string();

        assert_eq!(api.deliver(&worker).await.sent, 1);
        let mails = sink.wait_for(1, WAIT).await.unwrap();
        assert_eq!(api.deliver(&worker).await, workers::MailPass::default());
        assert_eq!(sink.messages().len(), 1, "one email for the replayed request");
        let mail = &mails[0];
        assert_eq!(mail.to, vec!["bea@example.com".to_string()]);
        let link = mail.find_link(&format!("{}/l/", api.base)).expect("a link in the mail");
        let r = api.get(&key, &format!("/api/v1/links/{id}")).await;
        assert_eq!(r.body["status"], "sent", "{}", r.body);
        assert!(r.body["sent_at"].is_string());
        // The stored mail no longer holds the token.
        let stored = api
            .store
            .read_blocking(|tx| coursegate_store::repo::outbox::by_topic(tx, "email.learner_link"))
            .unwrap();
        assert!(!stored[0].payload.contains("cgl_"), "{}", stored[0].payload);

        assert_eq!(api.redeem(&link).await, 303);
        let r = api.get(&key, &format!("/api/v1/links/{id}")).await;
        assert_eq!(r.body["status"], "redeemed");

        let cfg = fast();
        for _ in 0..10 {
            if hooks.received().len() >= 3 {
                break;
            }
            api.round(&cfg).await;
        }
        let got = hooks.received();
        let mut types: Vec<String> = Vec::new();
        for r in &got {
            assert!(verify(&secret, r), "signature of {}", r.body);
            let v: Value = serde_json::from_str(&r.body).unwrap();
            assert_eq!(v["id"], r.id.as_str());
            assert_eq!(v["data"]["link_id"], id.as_str());
            assert_eq!(v["data"]["course"], "first-aid");
            assert_eq!(v["data"]["learner"]["email"], "bea@example.com");
            types.push(v["type"].as_str().unwrap().to_string());
        }
        // Deliveries run concurrently, so their order is not fixed.
        types.sort();
        assert_eq!(types, ["link.opened", "link.redeemed", "link.sent"]);
    }

    async fn enrolment_with_send_link_mails_the_reference(backend) {
        let sink = SmtpSink::start().await;
        let api = spawn_on(backend, &[]).await;
        let worker = api.mail_worker(&sink);
        let key = api.key(ALL);
        let r = api
            .post(
                &key,
                "/api/v1/enrolments",
                json!({"email": "cy@example.com", "course": "first-aid", "name": "Cy",
                       "reference": "order 1001", "send_link": {"kind": "access"}}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        assert_eq!(r.body["status"], "active");
        assert_eq!(r.body["link"]["kind"], "access");
        assert_eq!(r.body["link"]["status"], "issued");
        assert!(r.body["link"].get("url").is_none());
        let link_id = r.body["link"]["id"].as_str().unwrap().to_string();

        assert_eq!(api.deliver(&worker).await.sent, 1);
        let mails = sink.wait_for(1, WAIT).await.unwrap();
        let text = mails[0].text_body().unwrap();
        assert!(text.contains("following your order 1001"), "{text}");
        assert!(text.contains("(your order 1001)"), "the why line: {text}");
        let link = mails[0].find_link(&format!("{}/l/", api.base)).unwrap();
        assert_eq!(api.redeem(&link).await, 303);
        let r = api.get(&key, &format!("/api/v1/links/{link_id}")).await;
        assert_eq!(r.body["status"], "redeemed");

        // A one-time link carries the reference in its why line too.
        api.post(
            &key,
            "/api/v1/enrolments",
            json!({"email": "cy@example.com", "course": "safety", "reference": "order 1002", "send_link": {"kind": "once"}}),
        )
        .await;
        assert_eq!(api.deliver(&worker).await.sent, 1);
        let mails = sink.wait_for(2, WAIT).await.unwrap();
        let text = mails[1].text_body().unwrap();
        assert!(text.contains("(your order 1002)"), "{text}");

        // A future start cannot get a working link yet: refused, nothing done.
        let before = api.count_events("enrolment.granted");
        let start = (api.clock.now() + Duration::days(7)).to_rfc3339();
        let r = api
            .post(
                &key,
                "/api/v1/enrolments",
                json!({"email": "later@example.com", "course": "first-aid", "starts_at": start, "send_link": {"kind": "access"}}),
            )
            .await;
        assert_problem(&r, 403, "enrolment_not_started");
        assert_eq!(api.count_events("enrolment.granted"), before);

        let enrol_only = api.key(&[Scope::EnrolmentsWrite]);
        let r = api
            .post(
                &enrol_only,
                "/api/v1/enrolments",
                json!({"email": "x@example.com", "course": "first-aid", "send_link": {"kind": "once"}}),
            )
            .await;
        assert_problem(&r, 403, "insufficient_scope");
        assert_eq!(r.body["required_scope"], "links:write");
    }

    async fn a_dead_link_mail_is_scrubbed_and_emits_email_failed(backend) {
        let sink = SmtpSink::start().await;
        sink.reject_rcpt_permanently("gone@example.com");
        let api = spawn_on(backend, &[]).await;
        let worker = api.mail_worker(&sink);
        let key = api.key(ALL);
        let r = api
            .post(
                &key,
                "/api/v1/enrolments",
                json!({"email": "gone@example.com", "course": "first-aid", "send_link": {"kind": "access"}}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        let learner_id = r.body["learner_id"].as_str().unwrap().to_string();
        let pending = api
            .store
            .read_blocking(|tx| coursegate_store::repo::outbox::by_topic(tx, "email.learner_link"))
            .unwrap();
        assert!(pending[0].payload.contains("/l/cgl"), "before delivery the link is queued");

        let pass = api.deliver(&worker).await;
        assert_eq!(pass.dead, 1, "{pass:?}");
        let dead = api
            .store
            .read_blocking(|tx| coursegate_store::repo::outbox::by_topic(tx, "email.learner_link"))
            .unwrap();
        assert_eq!(dead[0].status, "dead");
        assert!(!dead[0].payload.contains("cgl"), "{}", dead[0].payload);
        let failed = api
            .store
            .read_blocking(|tx| coursegate_store::repo::outbox::by_topic(tx, "email.failed"))
            .unwrap();
        assert_eq!(failed.len(), 1);
        let v: Value = serde_json::from_str(&failed[0].payload).unwrap();
        assert_eq!(v["type"], "email.failed");
        assert_eq!(v["data"]["learner_id"], learner_id.as_str());
        assert_eq!(v["data"]["template"], "learner_link");
        assert_eq!(v["data"]["email_id"], dead[0].id.as_str());
        assert_eq!(api.count_events("link.sent"), 0);
    }
}

#[actix_web::test]
async fn enrolment_list_and_course_pages() {
    let api = spawn().await;
    let key = api.key(ALL);
    for (email, course) in [
        ("e1@example.com", "first-aid"),
        ("e2@example.com", "first-aid"),
        ("e1@example.com", "safety"),
    ] {
        let r = api
            .post(
                &key,
                "/api/v1/enrolments",
                json!({"email": email, "course": course}),
            )
            .await;
        assert_eq!(r.status, 201);
    }
    let p1 = api.get(&key, "/api/v1/enrolments?limit=2").await;
    assert_eq!(p1.status, 200, "{}", p1.body);
    assert_eq!(p1.body["data"].as_array().unwrap().len(), 2);
    assert_eq!(p1.body["data"][0]["course"], "first-aid");
    assert_eq!(p1.body["data"][0]["progress"]["required_lessons"], 1);
    let cursor = p1.body["next_cursor"].as_str().unwrap().to_string();
    let p2 = api
        .get(&key, &format!("/api/v1/enrolments?limit=2&cursor={cursor}"))
        .await;
    assert_eq!(p2.body["data"].as_array().unwrap().len(), 1);
    assert_eq!(p2.body["data"][0]["course"], "safety");
    assert!(p2.body["next_cursor"].is_null());

    let r = api
        .get(&key, "/api/v1/enrolments?email=E1@example.com")
        .await;
    let courses: Vec<&str> = r.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["course"].as_str().unwrap())
        .collect();
    assert_eq!(courses, ["first-aid", "safety"]);
    let r = api
        .get(
            &key,
            "/api/v1/enrolments?email=e1@example.com&course=safety",
        )
        .await;
    assert_eq!(r.body["data"].as_array().unwrap().len(), 1);
    let r = api.get(&key, "/api/v1/enrolments?course=first-aid").await;
    assert_eq!(r.body["data"].as_array().unwrap().len(), 2);
    let r = api
        .get(&key, "/api/v1/enrolments?email=nobody@example.com")
        .await;
    assert_eq!(r.body["data"], json!([]));
    let r = api.get(&key, "/api/v1/enrolments?email=nonsense").await;
    assert_problem(&r, 422, "invalid_input");
    assert_eq!(r.body["errors"][0]["field"], "email");
    let r = api.get(&key, "/api/v1/enrolments?cursor=nonsense").await;
    assert_problem(&r, 422, "invalid_input");
    assert_eq!(r.body["errors"][0]["field"], "cursor");
    let r = api.get(&key, "/api/v1/enrolments?limit=0").await;
    assert_problem(&r, 422, "invalid_input");
    assert_eq!(r.body["errors"][0]["field"], "limit");

    let c1 = api.get(&key, "/api/v1/courses?limit=1").await;
    assert_eq!(c1.status, 200);
    assert_eq!(c1.body["data"][0]["slug"], "first-aid");
    assert_eq!(c1.body["next_cursor"], "first-aid");
    let c2 = api
        .get(&key, "/api/v1/courses?limit=1&cursor=first-aid")
        .await;
    assert_eq!(c2.body["data"][0]["slug"], "safety");
    assert!(c2.body["next_cursor"].is_null());
    let r = api.get(&key, "/api/v1/courses?cursor=Not%20A%20Slug").await;
    assert_problem(&r, 422, "invalid_input");
    assert_eq!(r.body["errors"][0]["field"], "cursor");
}

#[actix_web::test]
async fn learners_upsert_by_external_id_and_lookups() {
    let api = spawn().await;
    let key = api.key(ALL);
    let r = api
        .post(
            &key,
            "/api/v1/learners",
            json!({"email": "dee@example.com", "external_id": "hr-7"}),
        )
        .await;
    assert_eq!(r.status, 201);
    let id = r.body["id"].as_str().unwrap().to_string();
    // Same person, new address in the HR system: updated, not duplicated.
    let r = api
        .post(
            &key,
            "/api/v1/learners",
            json!({"email": "dee.new@example.com", "external_id": "hr-7", "name": "Dee"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["id"], id.as_str());
    assert_eq!(r.body["email"], "dee.new@example.com");
    assert_eq!(r.body["name"], "Dee");
    // The new address now reaches the same learner.
    let r = api
        .post(
            &key,
            "/api/v1/enrolments",
            json!({"email": "dee.new@example.com", "course": "safety"}),
        )
        .await;
    assert_eq!(r.body["learner_id"], id.as_str());

    let r = api.get(&key, "/api/v1/learners?external_id=hr-7").await;
    assert_eq!(r.body["data"].as_array().unwrap().len(), 1);
    assert_eq!(r.body["data"][0]["id"], id.as_str());
    let r = api
        .get(&key, "/api/v1/learners?email=DEE.NEW@example.com")
        .await;
    assert_eq!(r.body["data"][0]["id"], id.as_str());
    assert!(r.body["next_cursor"].is_null());
    let r = api
        .get(
            &key,
            "/api/v1/learners?email=dee.new@example.com&external_id=hr-8",
        )
        .await;
    assert_eq!(r.body["data"], json!([]));
    let r = api
        .get(&key, "/api/v1/learners?email=old@example.com")
        .await;
    assert_eq!(r.body["data"], json!([]));
    assert_problem(
        &api.get(&key, "/api/v1/learners?email=nonsense").await,
        422,
        "invalid_input",
    );

    // The external id's learner and the email's learner differ: refused.
    api.post(
        &key,
        "/api/v1/learners",
        json!({"email": "eve@example.com"}),
    )
    .await;
    let r = api
        .post(
            &key,
            "/api/v1/learners",
            json!({"email": "eve@example.com", "external_id": "hr-7"}),
        )
        .await;
    assert_problem(&r, 409, "conflict");
}

// ----------------------------------------------------------------- courses

#[actix_web::test]
async fn courses_list_and_get() {
    let api = spawn().await;
    let key = api.key(&[Scope::Read]);
    let r = api.get(&key, "/api/v1/courses").await;
    assert_eq!(r.status, 200);
    let data = r.body["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    assert_eq!(data[0]["slug"], "first-aid");
    assert_eq!(data[1]["lesson_count"], 2);
    let c = api.get(&key, "/api/v1/courses/safety").await;
    assert_eq!(c.status, 200);
    assert_eq!(c.body["lessons"][1]["title"], "B");
    assert_eq!(c.body["default_access_days"], 30);
    assert_problem(
        &api.get(&key, "/api/v1/courses/none").await,
        404,
        "course_not_found",
    );
    assert_problem(&api.get(&key, "/api/v1/nothing").await, 404, "not_found");
}

// ------------------------------------------------------------- idempotency

#[actix_web::test]
async fn idempotent_replays_and_reuse() {
    let api = spawn().await;
    let key = api.key(ALL);
    let body = json!({"email": "idem@example.com", "course": "first-aid", "reference": "o-1"});
    let a = api
        .post_idem(&key, "/api/v1/enrolments", body.clone(), Some("order-1"))
        .await;
    assert_eq!(a.status, 201);
    assert!(a.header("idempotent-replayed").is_none());
    // Advance time: a replay still answers exactly what the first call did.
    api.clock.advance(Duration::minutes(5));
    let b = api
        .post_idem(&key, "/api/v1/enrolments", body.clone(), Some("order-1"))
        .await;
    assert_eq!(b.status, 201);
    assert_eq!(b.body, a.body);
    assert_eq!(b.header("idempotent-replayed").as_deref(), Some("true"));
    assert_eq!(api.count_events("enrolment.granted"), 1);

    let c = api
        .post_idem(
            &key,
            "/api/v1/enrolments",
            json!({"email": "idem@example.com", "course": "safety"}),
            Some("order-1"),
        )
        .await;
    assert_problem(&c, 422, "idempotency_key_reused");
    // The same key on another path is another request too.
    let d = api
        .post_idem(
            &key,
            "/api/v1/learners",
            json!({"email": "idem@example.com"}),
            Some("order-1"),
        )
        .await;
    assert_problem(&d, 422, "idempotency_key_reused");
    // Keys are per API key.
    let other = api.key(ALL);
    let e = api
        .post_idem(&other, "/api/v1/enrolments", body.clone(), Some("order-1"))
        .await;
    assert_eq!(e.status, 200);
    assert!(e.header("idempotent-replayed").is_none());
    // After 24 hours the key is forgotten.
    api.clock.advance(Duration::hours(25));
    let f = api
        .post_idem(
            &key,
            "/api/v1/enrolments",
            json!({"email": "idem@example.com", "course": "safety"}),
            Some("order-1"),
        )
        .await;
    assert_eq!(f.status, 201);

    let g = api
        .post_idem(
            &key,
            "/api/v1/learners",
            json!({"email": "z@example.com"}),
            Some(""),
        )
        .await;
    assert_problem(&g, 400, "invalid_idempotency_key");
    // A failed request stores nothing: the retry runs again.
    let h = api
        .post_idem(
            &key,
            "/api/v1/enrolments",
            json!({"email": "q@example.com", "course": "nope"}),
            Some("k-404"),
        )
        .await;
    assert_problem(&h, 404, "course_not_found");
    let h2 = api
        .post_idem(
            &key,
            "/api/v1/enrolments",
            json!({"email": "q@example.com", "course": "nope"}),
            Some("k-404"),
        )
        .await;
    assert_problem(&h2, 404, "course_not_found");
}

#[actix_web::test]
async fn concurrent_duplicates_have_one_effect() {
    let api = Arc::new(spawn().await);
    let key = api.key(ALL);
    let body = json!({"email": "race@example.com", "course": "first-aid", "reference": "o-9"});
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let api = api.clone();
        let key = key.clone();
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            api.post_idem(&key, "/api/v1/enrolments", body, Some("race-1"))
                .await
        }));
    }
    let mut ids = Vec::new();
    let mut fresh = 0;
    for t in tasks {
        let r = t.await.unwrap();
        assert_eq!(r.status, 201, "{}", r.body);
        if r.header("idempotent-replayed").is_none() {
            fresh += 1;
        }
        ids.push(r.body["id"].as_str().unwrap().to_string());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1);
    assert_eq!(fresh, 1, "exactly one request acted");
    assert_eq!(api.count_events("enrolment.granted"), 1);

    // Without a key, concurrent upserts of one email still make one learner.
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let api = api.clone();
        let key = key.clone();
        tasks.push(tokio::spawn(async move {
            api.post(
                &key,
                "/api/v1/learners",
                json!({"email": "same@example.com"}),
            )
            .await
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        let r = t.await.unwrap();
        assert!(r.status == 201 || r.status == 200, "{}", r.body);
        ids.push(r.body["id"].as_str().unwrap().to_string());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1);
}

// -------------------------------------------------------------- bad bodies

#[actix_web::test]
async fn bad_bodies_get_precise_problems() {
    let api = spawn().await;
    let key = api.key(ALL);
    let p = "/api/v1/enrolments";
    let r = api
        .post_raw(&key, p, "application/json", "{\"email\": ")
        .await;
    assert_problem(&r, 400, "malformed_json");
    let r = api
        .post_raw(
            &key,
            p,
            "application/json",
            "{\"email\":\"a@b.co\",\"course\":\"x\"} trailing",
        )
        .await;
    assert_problem(&r, 400, "malformed_json");
    let r = api.post_raw(&key, p, "text/plain", "{}").await;
    assert_problem(&r, 415, "unsupported_media_type");
    let big = format!("{{\"email\":\"{}\"}}", "a".repeat(70 * 1024));
    let r = api.post_raw(&key, p, "application/json", &big).await;
    assert_problem(&r, 413, "payload_too_large");

    let r = api
        .post(
            &key,
            p,
            json!({"email": "a@example.com", "course": "first-aid", "colour": "red"}),
        )
        .await;
    assert_problem(&r, 422, "unknown_field");
    assert_eq!(r.body["errors"][0]["field"], "colour");
    let r = api
        .post(&key, p, json!({"email": 42, "course": "first-aid"}))
        .await;
    assert_problem(&r, 422, "invalid_type");
    assert_eq!(r.body["errors"][0]["field"], "email");
    let r = api.post(&key, p, json!({"course": "first-aid"})).await;
    assert_problem(&r, 422, "missing_field");
    assert_eq!(r.body["errors"][0]["field"], "email");
    let r = api
        .post(&key, p, json!({"email": "a@example.com", "course": "first-aid", "send_link": {"kind": "forever"}}))
        .await;
    assert_problem(&r, 422, "invalid_value");
    assert_eq!(r.body["errors"][0]["field"], "send_link.kind");
    let r = api
        .post(&key, p, json!({"email": "a@example.com", "course": "first-aid", "send_link": {"kind": "once", "x": 1}}))
        .await;
    assert_problem(&r, 422, "unknown_field");
    assert_eq!(r.body["errors"][0]["field"], "send_link.x");
    let r = api
        .post(
            &key,
            p,
            json!({"email": "a@example.com", "course": "first-aid", "starts_at": "next week"}),
        )
        .await;
    assert_problem(&r, 422, "invalid_value");
    assert_eq!(r.body["errors"][0]["field"], "starts_at");
    let r = api.post(&key, p, json!([1, 2])).await;
    assert_problem(&r, 422, "invalid_type");
    let r = api
        .post(
            &key,
            "/api/v1/webhooks",
            json!({"url": "https://h.example/x", "events": "course.completed"}),
        )
        .await;
    assert_problem(&r, 422, "invalid_type");
    assert_eq!(r.body["errors"][0]["field"], "events");
}

// ------------------------------------------------------ auth, scopes, rate

#[actix_web::test]
async fn authentication_scopes_and_rate_limits() {
    let api = spawn_with(&[("COURSEGATE_API_RATE_LIMIT_PER_MINUTE", "5")]).await;
    let r = api
        .send(api.client.get(format!("{}/api/v1/courses", api.base)))
        .await;
    assert_problem(&r, 401, "missing_api_key");
    assert_eq!(
        r.header("www-authenticate").as_deref(),
        Some("Bearer realm=\"coursegate\"")
    );
    let r = api
        .send(
            api.client
                .get(format!("{}/api/v1/courses", api.base))
                .header("authorization", "Basic dXNlcjpwYXNz"),
        )
        .await;
    assert_problem(&r, 401, "missing_api_key");
    let r = api.get("cgk_wrong", "/api/v1/courses").await;
    assert_problem(&r, 401, "invalid_api_key");
    assert!(r
        .header("www-authenticate")
        .unwrap()
        .contains("invalid_token"));
    let forged = coursegate_core::tokens::mint("cgk");
    assert_problem(
        &api.get(&forged, "/api/v1/courses").await,
        401,
        "invalid_api_key",
    );

    let reader = api.key(&[Scope::Read]);
    let r = api
        .post(
            &reader,
            "/api/v1/learners",
            json!({"email": "a@example.com"}),
        )
        .await;
    assert_problem(&r, 403, "insufficient_scope");
    assert_eq!(r.body["required_scope"], "learners:write");
    assert!(r
        .header("www-authenticate")
        .unwrap()
        .contains("scope=\"learners:write\""));
    let writer = api.key(&[Scope::LearnersWrite]);
    assert_problem(
        &api.get(&writer, "/api/v1/courses").await,
        403,
        "insufficient_scope",
    );
    assert_problem(
        &api.post(
            &writer,
            "/api/v1/webhooks",
            json!({"url": "https://x.example/", "events": ["*"]}),
        )
        .await,
        403,
        "insufficient_scope",
    );

    // Rate limit: 5 per minute per key (the writer used 2 already).
    for _ in 0..3 {
        assert_eq!(
            api.post(
                &writer,
                "/api/v1/learners",
                json!({"email": "a@example.com"})
            )
            .await
            .status
            .as_u16()
                / 100,
            2
        );
    }
    let r = api
        .post(
            &writer,
            "/api/v1/learners",
            json!({"email": "a@example.com"}),
        )
        .await;
    assert_problem(&r, 429, "rate_limited");
    let after: i64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&after));
    // Another key has its own budget.
    assert_eq!(api.get(&reader, "/api/v1/courses").await.status, 200);
    api.clock.advance(Duration::seconds(after));
    assert_eq!(
        api.post(
            &writer,
            "/api/v1/learners",
            json!({"email": "a@example.com"})
        )
        .await
        .status,
        200
    );

    // Revoked keys stop working.
    let now = api.clock.now();
    let id = api
        .store
        .read_blocking(api_keys::list)
        .unwrap()
        .into_iter()
        .find(|k| k.scopes == "read")
        .unwrap()
        .id;
    api.store
        .write_blocking(|tx| api_keys::revoke(tx, now, &Actor::cli(), &id))
        .unwrap();
    assert_problem(
        &api.get(&reader, "/api/v1/courses").await,
        401,
        "invalid_api_key",
    );
    let keys = api.store.read_blocking(api_keys::list).unwrap();
    assert!(keys.iter().all(|k| !k.key_hash.contains("cgk_")));
    assert!(keys.iter().any(|k| k.last_used_at.is_some()));
}

// ---------------------------------------------------------------- webhooks

#[derive(Clone, Debug)]
struct Received {
    id: String,
    timestamp: String,
    signature: String,
    body: String,
}

#[derive(Clone)]
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<Received>>>,
    down: Arc<AtomicBool>,
}

impl Receiver {
    async fn start() -> Self {
        use actix_web::{App, HttpRequest, HttpResponse, HttpServer};
        let got: Arc<Mutex<Vec<Received>>> = Arc::default();
        let down = Arc::new(AtomicBool::new(false));
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let (g, d) = (got.clone(), down.clone());
        let srv = HttpServer::new(move || {
            let (g, d) = (g.clone(), d.clone());
            App::new().route(
                "/hook",
                web::post().to(move |req: HttpRequest, body: web::Bytes| {
                    let (g, d) = (g.clone(), d.clone());
                    async move {
                        if d.load(Ordering::SeqCst) {
                            return HttpResponse::ServiceUnavailable().finish();
                        }
                        let h = |n: &str| {
                            req.headers()
                                .get(n)
                                .map(|v| v.to_str().unwrap().to_string())
                                .unwrap_or_default()
                        };
                        g.lock().unwrap().push(Received {
                            id: h("webhook-id"),
                            timestamp: h("webhook-timestamp"),
                            signature: h("webhook-signature"),
                            body: String::from_utf8(body.to_vec()).unwrap(),
                        });
                        HttpResponse::NoContent().finish()
                    }
                }),
            )
        })
        .listen(l)
        .unwrap()
        .workers(1)
        .run();
        tokio::spawn(srv);
        Self {
            url: format!("http://{addr}/hook"),
            got,
            down,
        }
    }

    fn received(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }
}

/// A receiver's check, written from the Standard Webhooks text: HMAC-SHA256
/// over "id.timestamp.body" with the base64-decoded secret, any `v1,`
/// signature in the space-separated header may match.
fn verify(secret: &str, r: &Received) -> bool {
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{}.{}.{}", r.id, r.timestamp, r.body).as_bytes());
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    r.signature
        .split(' ')
        .filter_map(|s| s.strip_prefix("v1,"))
        .any(|s| s == expected)
}

fn fast() -> WebhookWorker {
    WebhookWorker {
        poll: std::time::Duration::from_millis(20),
        timeout: std::time::Duration::from_secs(5),
        batch: 50,
        policy: DeliveryPolicy {
            max_attempts: 5,
            backoff_base: Duration::seconds(10),
            backoff_cap: Duration::minutes(10),
            disable_after_failures: 50,
        },
    }
}

#[actix_web::test]
async fn webhook_endpoints_crud_and_rotation() {
    let api = spawn().await;
    let key = api.key(ALL);
    let r = api
        .post(
            &key,
            "/api/v1/webhooks",
            json!({"url": "https://crm.example.com/hook", "events": ["enrolment.created", "course.completed"], "description": "CRM"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.body["id"].as_str().unwrap().to_string();
    let secret = r.body["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whsec_"));
    let raw = base64::engine::general_purpose::STANDARD
        .decode(&secret[6..])
        .unwrap();
    assert_eq!(raw.len(), 32);

    let g = api.get(&key, &format!("/api/v1/webhooks/{id}")).await;
    assert_eq!(g.status, 200);
    assert!(g.body.get("secret").is_none());
    assert_eq!(
        g.body["events"],
        json!(["enrolment.created", "course.completed"])
    );
    let l = api.get(&key, "/api/v1/webhooks").await;
    assert_eq!(l.body["data"].as_array().unwrap().len(), 1);

    let rot = api
        .post(&key, &format!("/api/v1/webhooks/{id}/rotate"), json!({}))
        .await;
    assert_eq!(rot.status, 200);
    assert_ne!(rot.body["secret"], secret.as_str());
    assert!(rot.body["previous_secret_expires_at"].is_string());

    assert_problem(
        &api.post(
            &key,
            "/api/v1/webhooks",
            json!({"url": "ftp://x.example/", "events": ["*"]}),
        )
        .await,
        422,
        "invalid_input",
    );
    let r = api
        .post(
            &key,
            "/api/v1/webhooks",
            json!({"url": "https://x.example/", "events": ["enrolment.exploded"]}),
        )
        .await;
    assert_problem(&r, 422, "invalid_input");
    assert_eq!(r.body["errors"][0]["field"], "events");

    let d = api.delete(&key, &format!("/api/v1/webhooks/{id}")).await;
    assert_eq!(d.status, 204);
    assert_problem(
        &api.get(&key, &format!("/api/v1/webhooks/{id}")).await,
        404,
        "webhook_not_found",
    );
    assert_problem(
        &api.delete(&key, &format!("/api/v1/webhooks/{id}")).await,
        404,
        "webhook_not_found",
    );
}

/// Enrols via the API and completes the only lesson of `first-aid` as the learner.
async fn enrol_and_complete(api: &Api, key: &str, email: &str) -> String {
    let r = api
        .post(
            key,
            "/api/v1/enrolments",
            json!({"email": email, "course": "first-aid"}),
        )
        .await;
    assert_eq!(r.status, 201);
    let learner_id = r.body["learner_id"].as_str().unwrap().to_string();
    let now = api.clock.now();
    let lid = learner_id.clone();
    api.store
        .write_blocking(move |tx| {
            let (course, lessons) = coursegate_core::api_views::course(tx, "first-aid")?;
            let _ = course;
            enrolments::complete_lesson(tx, now, &lid, "first-aid", &lessons[0].id)
        })
        .unwrap();
    learner_id
}

#[actix_web::test]
async fn webhooks_are_signed_filtered_and_carry_the_learner() {
    let api = spawn().await;
    let key = api.key(ALL);
    let all = Receiver::start().await;
    let only_done = Receiver::start().await;
    let a = api
        .post(
            &key,
            "/api/v1/webhooks",
            json!({"url": all.url, "events": ["*"]}),
        )
        .await;
    let a_secret = a.body["secret"].as_str().unwrap().to_string();
    let b = api
        .post(
            &key,
            "/api/v1/webhooks",
            json!({"url": only_done.url, "events": ["course.completed"]}),
        )
        .await;
    let b_secret = b.body["secret"].as_str().unwrap().to_string();

    let learner_id = enrol_and_complete(&api, &key, "done@example.com").await;
    let round = api.round(&fast()).await;
    assert_eq!(round.events, 4);
    assert_eq!(round.queued, 5);
    assert_eq!(round.succeeded, 5);

    let got = all.received();
    let types: Vec<String> = got
        .iter()
        .map(|r| {
            serde_json::from_str::<Value>(&r.body).unwrap()["type"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let mut sorted = types.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        [
            "course.completed",
            "course.started",
            "enrolment.created",
            "lesson.completed"
        ]
    );
    for r in &got {
        assert!(verify(&a_secret, r), "signature of {}", r.body);
        assert!(!verify(&b_secret, r));
        let v: Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(v["id"], r.id.as_str());
        assert_eq!(v["version"], 1);
        assert_eq!(v["data"]["learner"]["email"], "done@example.com");
        assert_eq!(v["data"]["learner_id"], learner_id.as_str());
        assert_eq!(r.timestamp, api.clock.now().timestamp().to_string());
    }
    let done = only_done.received();
    assert_eq!(done.len(), 1);
    assert!(verify(&b_secret, &done[0]));
    assert!(done[0].body.contains("course.completed"));

    // A tampered body does not verify.
    let mut t = got[0].clone();
    t.body = t.body.replace("first-aid", "first-aid-x");
    assert!(!verify(&a_secret, &t));

    // Delivery log.
    let id = a.body["id"].as_str().unwrap();
    let log = api
        .get(&key, &format!("/api/v1/webhooks/{id}/deliveries"))
        .await;
    assert_eq!(log.status, 200);
    assert_eq!(log.body["data"].as_array().unwrap().len(), 4);
    assert!(log.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .all(|d| d["outcome"] == "succeeded" && d["response_status"] == 204));

    // Replay from the log sends the same event (same webhook-id) again.
    let first = &log.body["data"][0];
    let rp = api
        .post(
            &key,
            &format!(
                "/api/v1/webhooks/{id}/deliveries/{}/replay",
                first["id"].as_str().unwrap()
            ),
            json!({}),
        )
        .await;
    assert_eq!(rp.status, 202, "{}", rp.body);
    assert_eq!(rp.body["status"], "pending");
    api.round(&fast()).await;
    let again = all.received();
    assert_eq!(again.len(), 5);
    assert_eq!(again[4].id, first["event_id"].as_str().unwrap());
    assert!(verify(&a_secret, &again[4]));
    assert_problem(
        &api.post(
            &key,
            &format!(
                "/api/v1/webhooks/{id}/deliveries/00000000-0000-7000-8000-000000000000/replay"
            ),
            json!({}),
        )
        .await,
        404,
        "delivery_not_found",
    );

    // Re-activating an enrolment that already existed is not enrolment.created.
    api.round(&fast()).await;
    let before = all.received().len();
    let rv = api
        .post(
            &key,
            "/api/v1/enrolments",
            json!({"email": "done@example.com", "course": "first-aid", "reference": "again"}),
        )
        .await;
    assert_eq!(rv.status, 200);
    api.round(&fast()).await;
    assert_eq!(all.received().len(), before);
}

#[actix_web::test]
async fn rotation_signs_with_both_secrets_during_the_overlap() {
    let api = spawn().await;
    let key = api.key(ALL);
    let rx = Receiver::start().await;
    let w = api
        .post(
            &key,
            "/api/v1/webhooks",
            json!({"url": rx.url, "events": ["enrolment.created"]}),
        )
        .await;
    let id = w.body["id"].as_str().unwrap();
    let old = w.body["secret"].as_str().unwrap().to_string();
    let new = api
        .post(&key, &format!("/api/v1/webhooks/{id}/rotate"), json!({}))
        .await
        .body["secret"]
        .as_str()
        .unwrap()
        .to_string();
    api.post(
        &key,
        "/api/v1/enrolments",
        json!({"email": "r1@example.com", "course": "first-aid"}),
    )
    .await;
    api.round(&fast()).await;
    let got = rx.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].signature.split(' ').count(), 2);
    assert!(verify(&old, &got[0]) && verify(&new, &got[0]));

    api.clock.advance(Duration::hours(25));
    api.post(
        &key,
        "/api/v1/enrolments",
        json!({"email": "r2@example.com", "course": "first-aid"}),
    )
    .await;
    api.round(&fast()).await;
    let got = rx.received();
    assert_eq!(got.len(), 2);
    assert_eq!(got[1].signature.split(' ').count(), 1);
    assert!(verify(&new, &got[1]) && !verify(&old, &got[1]));
}

#[actix_web::test]
async fn receiver_down_then_up_gets_every_event() {
    let api = spawn().await;
    let key = api.key(ALL);
    let rx = Receiver::start().await;
    let w = api
        .post(
            &key,
            "/api/v1/webhooks",
            json!({"url": rx.url, "events": ["*"]}),
        )
        .await;
    let id = w.body["id"].as_str().unwrap().to_string();
    let secret = w.body["secret"].as_str().unwrap().to_string();
    rx.down.store(true, Ordering::SeqCst);
    enrol_and_complete(&api, &key, "d1@example.com").await;
    enrol_and_complete(&api, &key, "d2@example.com").await;
    let cfg = fast();
    let r1 = api.round(&cfg).await;
    assert_eq!((r1.attempted, r1.succeeded), (8, 0));
    // Nothing is due again until the back-off has passed.
    let r2 = api.round(&cfg).await;
    assert_eq!(r2.attempted, 0);
    api.clock.advance(Duration::seconds(10));
    let r3 = api.round(&cfg).await;
    assert_eq!((r3.attempted, r3.succeeded), (8, 0));
    // Second back-off doubles.
    api.clock.advance(Duration::seconds(10));
    assert_eq!(api.round(&cfg).await.attempted, 0);
    api.clock.advance(Duration::seconds(10));
    rx.down.store(false, Ordering::SeqCst);
    let r4 = api.round(&cfg).await;
    assert_eq!((r4.attempted, r4.succeeded), (8, 8));
    let got = rx.received();
    let mut ids: Vec<&str> = got.iter().map(|r| r.id.as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 8, "every event once");
    assert!(got.iter().all(|r| verify(&secret, r)));
    let log = api
        .get(&key, &format!("/api/v1/webhooks/{id}/deliveries?limit=100"))
        .await;
    let rows = log.body["data"].as_array().unwrap();
    assert_eq!(rows.len(), 24);
    assert_eq!(rows.iter().filter(|d| d["outcome"] == "failed").count(), 16);
    assert!(rows
        .iter()
        .any(|d| d["response_status"] == 503 && d["error"] == "HTTP 503"));
    let page = api
        .get(&key, &format!("/api/v1/webhooks/{id}/deliveries?limit=10"))
        .await;
    assert_eq!(page.body["data"].as_array().unwrap().len(), 10);
    assert!(page.body["next_cursor"].is_string());
    let ep = api.get(&key, &format!("/api/v1/webhooks/{id}")).await;
    assert_eq!(ep.body["status"], "active");
}

#[actix_web::test]
async fn an_endpoint_that_keeps_failing_is_disabled_and_can_be_enabled() {
    let api = spawn().await;
    let key = api.key(ALL);
    let rx = Receiver::start().await;
    let w = api
        .post(
            &key,
            "/api/v1/webhooks",
            json!({"url": rx.url, "events": ["enrolment.created"]}),
        )
        .await;
    let id = w.body["id"].as_str().unwrap().to_string();
    rx.down.store(true, Ordering::SeqCst);
    let mut cfg = fast();
    cfg.policy.max_attempts = 2;
    cfg.policy.disable_after_failures = 3;
    for i in 0..2 {
        api.post(
            &key,
            "/api/v1/enrolments",
            json!({"email": format!("f{i}@example.com"), "course": "first-aid"}),
        )
        .await;
    }
    api.round(&cfg).await; // 2 failures
    api.clock.advance(Duration::seconds(10));
    api.round(&cfg).await; // 2 more: streak 4 ≥ 3, and both messages are dead
    let ep = api.get(&key, &format!("/api/v1/webhooks/{id}")).await;
    assert_eq!(ep.body["status"], "disabled");
    assert!(ep.body["disabled_reason"]
        .as_str()
        .unwrap()
        .contains("failed"));
    let audit = api
        .store
        .read_blocking(|tx| {
            coursegate_store::repo::audit::list(
                tx,
                &coursegate_store::repo::audit::AuditFilter {
                    action: Some("webhook.disabled".into()),
                    ..Default::default()
                },
                Default::default(),
            )
        })
        .unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].subject_id.as_deref(), Some(id.as_str()));

    // While disabled, new events are not queued for it.
    api.post(
        &key,
        "/api/v1/enrolments",
        json!({"email": "f9@example.com", "course": "first-aid"}),
    )
    .await;
    assert_eq!(api.round(&cfg).await.queued, 0);

    rx.down.store(false, Ordering::SeqCst);
    let en = api
        .post(&key, &format!("/api/v1/webhooks/{id}/enable"), json!({}))
        .await;
    assert_eq!(en.status, 200);
    assert_eq!(en.body["status"], "active");
    let r = api.round(&cfg).await;
    assert_eq!(r.succeeded, 2, "the dead messages were re-queued");
    assert_eq!(rx.received().len(), 2);
}

#[actix_web::test]
async fn the_background_worker_delivers_on_its_own() {
    let api = spawn().await;
    let key = api.key(ALL);
    let rx = Receiver::start().await;
    let w = api
        .post(
            &key,
            "/api/v1/webhooks",
            json!({"url": rx.url, "events": ["enrolment.created", "enrolment.revoked"]}),
        )
        .await;
    let secret = w.body["secret"].as_str().unwrap().to_string();
    let worker = workers::spawn_webhooks(api.state.clone(), fast());
    let e = api
        .post(
            &key,
            "/api/v1/enrolments",
            json!({"email": "bg@example.com", "course": "first-aid"}),
        )
        .await;
    api.post(
        &key,
        &format!(
            "/api/v1/enrolments/{}/revoke",
            e.body["id"].as_str().unwrap()
        ),
        json!({"reason": "refund"}),
    )
    .await;
    // Bounded wait for the worker (its poll interval is 20 ms).
    for _ in 0..500 {
        if rx.received().len() >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    worker.abort();
    let got = rx.received();
    assert_eq!(got.len(), 2);
    assert!(got.iter().all(|r| verify(&secret, r)));
    let revoked: Value = got
        .iter()
        .map(|r| serde_json::from_str::<Value>(&r.body).unwrap())
        .find(|v| v["type"] == "enrolment.revoked")
        .unwrap();
    assert_eq!(revoked["type"], "enrolment.revoked");
    assert_eq!(revoked["data"]["reason"], "refund");
}

// ------------------------------------------------------------------- CLI

#[actix_web::test]
async fn cli_creates_a_key_that_the_api_accepts() {
    let api = spawn().await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_coursegate"))
        .args([
            "apikey",
            "create",
            "--name",
            "Webshop",
            "--scopes",
            "read,enrolments:write",
        ])
        .env("COURSEGATE_SECRET", SECRET)
        .env("COURSEGATE_DATABASE_URL", &api.db_url)
        .env("COURSEGATE_KEYS_DIR", api.dir.path().join("jwks"))
        .current_dir(api.dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let key = text
        .split_whitespace()
        .find(|w| w.starts_with("cgk_"))
        .unwrap()
        .to_string();
    assert_eq!(api.get(&key, "/api/v1/courses").await.status, 200);
    assert_problem(
        &api.post(&key, "/api/v1/learners", json!({"email": "a@example.com"}))
            .await,
        403,
        "insufficient_scope",
    );
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_coursegate"))
        .args(["apikey", "create", "--name", "X", "--scopes", "admin"])
        .env("COURSEGATE_SECRET", SECRET)
        .env("COURSEGATE_DATABASE_URL", &api.db_url)
        .current_dir(api.dir.path())
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--scopes"));
}

// ------------------------------------------------------- OpenAPI contract

#[actix_web::test]
async fn real_responses_match_the_openapi_document() {
    let api = spawn().await;
    let key = api.key(ALL);
    let doc: Value = api
        .client
        .get(format!("{}/api/openapi.json", api.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    for path in [
        "/api/v1/learners",
        "/api/v1/learners/{id}",
        "/api/v1/enrolments",
        "/api/v1/enrolments/{id}/revoke",
        "/api/v1/courses/{slug}",
        "/api/v1/links",
        "/api/v1/links/{id}",
        "/api/v1/webhooks/{id}/rotate",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} documented");
    }
    let check = |schema: &str, instance: &Value| {
        let root = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$ref": format!("#/components/schemas/{schema}"),
            "components": doc["components"],
        });
        let v = jsonschema::validator_for(&root).unwrap();
        let errors: Vec<String> = v.iter_errors(instance).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{schema}: {errors:?}\n{instance}");
    };

    let l = api
        .post(
            &key,
            "/api/v1/learners",
            json!({"email": "c@example.com", "name": "C"}),
        )
        .await;
    check("Learner", &l.body);
    let e = api
        .post(
            &key,
            "/api/v1/enrolments",
            json!({"email": "c@example.com", "course": "safety"}),
        )
        .await;
    check("Enrolment", &e.body);
    check(
        "LearnerDetail",
        &api.get(
            &key,
            &format!("/api/v1/learners/{}", l.body["id"].as_str().unwrap()),
        )
        .await
        .body,
    );
    check("LearnerPage", &api.get(&key, "/api/v1/learners").await.body);
    check("CourseList", &api.get(&key, "/api/v1/courses").await.body);
    check(
        "CourseDetail",
        &api.get(&key, "/api/v1/courses/safety").await.body,
    );
    let w = api
        .post(
            &key,
            "/api/v1/webhooks",
            json!({"url": "https://h.example/x", "events": ["*"]}),
        )
        .await;
    check("WebhookWithSecret", &w.body);
    let wid = w.body["id"].as_str().unwrap();
    check(
        "Webhook",
        &api.get(&key, &format!("/api/v1/webhooks/{wid}")).await.body,
    );
    check("WebhookList", &api.get(&key, "/api/v1/webhooks").await.body);
    check(
        "DeliveryPage",
        &api.get(&key, &format!("/api/v1/webhooks/{wid}/deliveries"))
            .await
            .body,
    );
    let x = api
        .post(
            &key,
            &format!(
                "/api/v1/enrolments/{}/extend",
                e.body["id"].as_str().unwrap()
            ),
            json!({"expires_at": null}),
        )
        .await;
    check("Enrolment", &x.body);
    check(
        "EnrolmentPage",
        &api.get(&key, "/api/v1/enrolments?limit=1").await.body,
    );
    let urls = api.key_with_urls(ALL);
    let link = api
        .post(
            &urls,
            "/api/v1/links",
            json!({"email": "c@example.com", "course": "safety", "send": false}),
        )
        .await;
    assert_eq!(link.status, 201, "{}", link.body);
    check("Link", &link.body);
    check(
        "Link",
        &api.get(
            &key,
            &format!("/api/v1/links/{}", link.body["id"].as_str().unwrap()),
        )
        .await
        .body,
    );
    let sent = api
        .post(
            &key,
            "/api/v1/enrolments",
            json!({"email": "c@example.com", "course": "first-aid", "send_link": {"kind": "once"}}),
        )
        .await;
    assert_eq!(sent.status, 201, "{}", sent.body);
    check("Enrolment", &sent.body);
    for p in [
        api.get(&key, "/api/v1/courses/none").await,
        api.post(&key, "/api/v1/learners", json!({"email": 1}))
            .await,
        api.post(
            &key,
            "/api/v1/links",
            json!({"email": "a@b.co", "course": "x"}),
        )
        .await,
    ] {
        check("Problem", &p.body);
    }
    // A real webhook body matches its documented shape.
    let rx = Receiver::start().await;
    api.post(
        &key,
        "/api/v1/webhooks",
        json!({"url": rx.url, "events": ["*"]}),
    )
    .await;
    api.post(
        &key,
        "/api/v1/enrolments",
        json!({"email": "d@example.com", "course": "safety"}),
    )
    .await;
    api.round(&fast()).await;
    let got = rx.received();
    assert!(!got.is_empty());
    for r in got {
        check("WebhookEvent", &serde_json::from_str(&r.body).unwrap());
    }
    // And a schema mismatch is caught (the check is not vacuous).
    let root = json!({"$ref": "#/components/schemas/Learner", "components": doc["components"]});
    assert!(!jsonschema::is_valid(&root, &json!({"id": 1})));

    let page = api
        .client
        .get(format!("{}/api/docs", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("/api/v1/enrolments"));
    assert!(html.contains("id=\"schema-Enrolment\""));
    assert!(!html.contains("<script"));
}
