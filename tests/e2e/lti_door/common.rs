//! The harness shared by the LTI door tests: a real Coursegate server
//! (`AppState::new` + `app::start`) on loopback, on SQLite or on a fresh
//! PostgreSQL schema, and a loopback test platform that serves its JWKS and
//! an OIDC authorisation endpoint which form-posts a freshly minted id_token
//! back to the tool (as an LMS does).

use std::{
    collections::HashMap,
    io::Write,
    net::TcpListener,
    sync::{Arc, Mutex},
};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use chrono::{TimeZone, Utc};
use coursegate_core::{
    courses::{self, LinkPolicy, NewCourse, NewLesson},
    lti::{self as core_lti, DeploymentPolicy, NewPlatform},
    types::Slug,
    Clock, ManualClock, Store, SystemClock,
};
use coursegate_lti::testing::{self, TokenMinter};
use coursegate_server::{app::AppState, config::Config};
use coursegate_store::StoreOptions;

pub const LEARNER: &str = "http://purl.imsglobal.org/vocab/lis/v2/membership#Learner";
pub const INSTRUCTOR: &str = "http://purl.imsglobal.org/vocab/lis/v2/membership#Instructor";
pub const CLAIM: &str = "https://purl.imsglobal.org/spec/lti/claim/";

/// The full name of an LTI claim (`claim("roles")`).
pub fn claim(name: &str) -> String {
    format!("{CLAIM}{name}")
}

/// True when running under CI (`CI=true`): skipping is then a failure.
pub fn under_ci() -> bool {
    std::env::var("CI").map(|v| v == "true").unwrap_or(false)
}

/// Skips a test loudly: written to the real stderr (not captured by libtest),
/// and a panic under `CI=true`, where nothing may be skipped.
pub fn skip(test: &str, why: &str) {
    if under_ci() {
        panic!("{test}: cannot run under CI=true: {why}");
    }
    let mut err = std::io::stderr();
    let _ = writeln!(
        err,
        "\n*** SKIPPED {test}: {why} (this test fails instead under CI=true) ***\n"
    );
}

/// Which database the tool runs on.
#[derive(Clone, Debug)]
pub enum Db {
    Sqlite,
    /// A PostgreSQL URL; the tool gets a fresh schema that is dropped afterwards.
    Postgres(String),
}

impl Db {
    /// PostgreSQL from `TEST_DATABASE_URL`, if set.
    pub fn postgres_from_env() -> Option<Db> {
        std::env::var("TEST_DATABASE_URL")
            .ok()
            .filter(|u| !u.trim().is_empty())
            .map(Db::Postgres)
    }
}

pub struct Opts {
    pub db: Db,
    pub policy: DeploymentPolicy,
    /// The wall clock instead of a manual one (for platforms that sign with real time).
    pub system_clock: bool,
    /// Register the loopback test platform (off when a test registers its own).
    pub register_test_platform: bool,
    /// `COURSEGATE_LTI_FRAME_SESSIONS` (the default is on).
    pub frame_sessions: bool,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            db: Db::Sqlite,
            policy: DeploymentPolicy::Reject,
            system_clock: false,
            register_test_platform: true,
            frame_sessions: true,
        }
    }
}

/// The loopback test platform: JWKS at `/jwks`, OIDC authorisation at
/// `/auth` (mints an id_token with the received nonce and posts it, with the
/// state, to the redirect_uri), and at `/lms` an LMS course page on the
/// `http://localhost` origin that frames the tool.
pub struct Platform {
    pub port: u16,
    pub jwks_url: String,
    /// Registered auth URL (on `localhost`, so a browser sees another site than the tool's 127.0.0.1).
    pub auth_url: String,
    /// OAuth2 client-credentials token endpoint.
    pub token_url: String,
    /// The AGS line items container of the test course.
    pub lineitems_url: String,
    /// The NRPS context memberships URL of the test course.
    pub memberships_url: String,
    /// What the service endpoints saw (and switches to make them fail).
    pub services: Arc<Mutex<Services>>,
}

/// The test platform's service side: issued tokens, line items, scores.
#[derive(Default, Debug)]
pub struct Services {
    /// Successful token requests.
    pub token_hits: usize,
    /// Refused token requests, with the reason.
    pub token_refusals: Vec<String>,
    /// Client assertion ids already used.
    pub jtis: std::collections::HashSet<String>,
    /// access token → granted scopes.
    pub tokens: HashMap<String, Vec<String>>,
    /// Created line items (the id is `<base>/lineitems/<n>/lineitem`).
    pub lineitems: Vec<serde_json::Value>,
    /// Scores received: (line item number, score JSON).
    pub scores: Vec<(usize, serde_json::Value)>,
    /// Service calls refused (media type, scope, token), with the reason.
    pub refusals: Vec<String>,
    /// While true every AGS endpoint answers 503.
    pub down: bool,
    /// Dynamic Registration requests received.
    pub registrations: Vec<serde_json::Value>,
    /// The members of the test course (NRPS), served `page_size` per page.
    pub members: Vec<serde_json::Value>,
    /// NRPS page size (0 means 2).
    pub page_size: usize,
    /// NRPS pages served, by page number.
    pub member_pages: Vec<usize>,
    /// When set, the memberships endpoint answers this status and body.
    pub memberships_refusal: Option<(u16, String)>,
    /// When set, every memberships page offers `Link: <…?since=N>;
    /// rel="differences"`, and that URL serves these members (the changes).
    pub differences: Option<Vec<serde_json::Value>>,
    /// The `since` values of differences requests served.
    pub difference_reads: Vec<String>,
    /// When set, the scores endpoint answers this status and body (an LMS
    /// that refuses grades, e.g. a learner who cannot be graded).
    pub score_refusal: Option<(u16, String)>,
}

#[derive(Clone)]
pub(crate) struct PlatformState {
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) tool_base: Arc<Mutex<String>>,
    pub(crate) base: String,
    pub(crate) services: Arc<Mutex<Services>>,
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// An HTML page that posts `fields` to `action` (into `target` when given) at once.
pub fn autopost(action: &str, target: Option<&str>, fields: &[(&str, &str)]) -> String {
    let inputs: String = fields
        .iter()
        .map(|(k, v)| {
            format!(
                "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
                html_escape(k),
                html_escape(v)
            )
        })
        .collect();
    let target = target
        .map(|t| format!(" target=\"{}\"", html_escape(t)))
        .unwrap_or_default();
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>posting</title></head><body>\
         <form id=\"f\" method=\"post\" action=\"{}\"{target}>{inputs}\
         <noscript><button>Continue</button></noscript></form>\
         <script>document.getElementById('f').submit()</script></body></html>",
        html_escape(action)
    )
}

async fn platform_auth(st: web::Data<PlatformState>, req: HttpRequest) -> HttpResponse {
    let q: HashMap<String, String> =
        web::Query::<HashMap<String, String>>::from_query(req.query_string())
            .map(|q| q.into_inner())
            .unwrap_or_default();
    for (k, v) in [
        ("scope", "openid"),
        ("response_type", "id_token"),
        ("response_mode", "form_post"),
        ("prompt", "none"),
        ("client_id", testing::CLIENT_ID),
    ] {
        if q.get(k).map(String::as_str) != Some(v) {
            return HttpResponse::BadRequest().body(format!("platform: bad {k}"));
        }
    }
    let (Some(redirect), Some(state), Some(nonce)) =
        (q.get("redirect_uri"), q.get("state"), q.get("nonce"))
    else {
        return HttpResponse::BadRequest().body("platform: redirect_uri, state and nonce required");
    };
    // The platform only posts to the redirect URI registered for the tool.
    let expected = format!("{}/lti/launch", st.tool_base.lock().unwrap());
    if *redirect != expected {
        return HttpResponse::BadRequest().body("platform: unregistered redirect_uri");
    }
    let sub = q
        .get("login_hint")
        .cloned()
        .unwrap_or_else(|| "user-0001".into());
    let mut minter = TokenMinter::new(st.clock.now())
        .nonce(nonce)
        .claim("sub", sub.clone())
        .claim(&claim("target_link_uri"), redirect.clone())
        .roles(&[LEARNER]);
    if sub == UNMAPPED_INSTRUCTOR {
        // The instructor of a link that is connected to no course yet.
        minter = minter
            .roles(&[INSTRUCTOR])
            .claim(&claim("custom"), serde_json::json!({}))
            .claim(
                &claim("resource_link"),
                serde_json::json!({"id": "rl-browser-unmapped", "title": "New activity"}),
            );
    }
    let token = minter.mint();
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(autopost(
            redirect,
            None,
            &[("id_token", &token), ("state", state)],
        ))
}

/// The login hint (and `sub`) of the instructor whose launch at `/lms-instructor`
/// opens a resource link that is connected to no course.
pub const UNMAPPED_INSTRUCTOR: &str = "browser-instructor-unmapped";

/// The LMS course page: frames the tool and starts the launch in the frame
/// with an auto-posted login initiation form.
async fn platform_lms(st: web::Data<PlatformState>) -> HttpResponse {
    lms_page(&st, false)
}

/// The same page, launching as the instructor of an unmapped link.
async fn platform_lms_instructor(st: web::Data<PlatformState>) -> HttpResponse {
    lms_page_as(&st, false, UNMAPPED_INSTRUCTOR)
}

/// The LMS course page of a platform that offers LTI platform storage
/// (`lti_storage_target=_parent`): it answers `lti.put_data` / `lti.get_data`
/// postMessages, but only from the tool's origin.
async fn platform_lms_storage(st: web::Data<PlatformState>) -> HttpResponse {
    lms_page(&st, true)
}

fn lms_page(st: &PlatformState, storage: bool) -> HttpResponse {
    lms_page_as(st, storage, "browser-learner")
}

fn lms_page_as(st: &PlatformState, storage: bool, login_hint: &str) -> HttpResponse {
    let tool = st.tool_base.lock().unwrap().clone();
    let login = format!("{tool}/lti/login");
    let launch = format!("{tool}/lti/launch");
    let mut fields = vec![
        ("iss", testing::ISSUER),
        ("login_hint", login_hint),
        ("target_link_uri", launch.as_str()),
        ("client_id", testing::CLIENT_ID),
        ("lti_deployment_id", testing::DEPLOYMENT_ID),
    ];
    if storage {
        fields.push(("lti_storage_target", "_parent"));
    }
    let mut form = autopost(&login, Some("tool"), &fields);
    if storage {
        let handler = format!(
            "<script>(function(){{var tool={tool:?};var kept={{}};\
             window.addEventListener('message',function(ev){{\
             var d=ev.data;if(!d||typeof d!=='object'||ev.origin!==tool){{return;}}\
             if(d.subject==='lti.put_data'){{kept[d.key]=d.value;\
             ev.source.postMessage({{subject:'lti.put_data.response',message_id:d.message_id,key:d.key,value:d.value}},ev.origin);}}\
             if(d.subject==='lti.get_data'){{\
             ev.source.postMessage({{subject:'lti.get_data.response',message_id:d.message_id,key:d.key,value:kept[d.key]}},ev.origin);}}\
             }});}})();</script>"
        );
        form = form.replace("<body>", &format!("<body>{handler}"));
    }
    // The form page itself goes in a hidden helper frame's srcdoc-less twin:
    // simplest is to put the form in this page and target the named iframe.
    let body = form.replace(
        "<body>",
        "<body><h1>Test LMS course</h1>\
         <iframe name=\"tool\" id=\"tool\" style=\"width:900px;height:600px\"></iframe>",
    );
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(body)
}

impl Platform {
    pub async fn start(clock: Arc<dyn Clock>) -> (Platform, Arc<Mutex<String>>) {
        let tool_base = Arc::new(Mutex::new(String::new()));
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let services = Arc::new(Mutex::new(Services::default()));
        let st = PlatformState {
            clock,
            tool_base: tool_base.clone(),
            base: format!("http://127.0.0.1:{port}"),
            services: services.clone(),
        };
        let srv = HttpServer::new(move || {
            App::new()
                .app_data(web::Data::new(st.clone()))
                .route(
                    "/jwks",
                    web::get().to(|| async {
                        HttpResponse::Ok()
                            .insert_header(("Cache-Control", "max-age=300"))
                            .json(testing::platform_jwks())
                    }),
                )
                .route("/auth", web::get().to(platform_auth))
                .route("/lms", web::get().to(platform_lms))
                .route("/lms-storage", web::get().to(platform_lms_storage))
                .route("/lms-instructor", web::get().to(platform_lms_instructor))
                .route("/token", web::post().to(crate::services::token))
                .route("/lineitems", web::get().to(crate::services::lineitems_get))
                .route(
                    "/lineitems",
                    web::post().to(crate::services::lineitems_post),
                )
                .route(
                    "/.well-known/openid-configuration",
                    web::get().to(crate::services::openid_configuration),
                )
                .route("/register", web::post().to(crate::services::register))
                .route(
                    "/lineitems/{n}/lineitem/results",
                    web::get().to(crate::services::results_get),
                )
                .route(
                    "/memberships",
                    web::get().to(crate::services::memberships_get),
                )
                .route(
                    "/lineitems/{n}/lineitem/scores",
                    web::post().to(crate::services::score_post),
                )
        })
        .listen(l)
        .unwrap()
        .workers(1)
        .run();
        tokio::spawn(srv);
        let base = format!("http://127.0.0.1:{port}");
        (
            Platform {
                jwks_url: format!("{base}/jwks"),
                auth_url: format!("http://localhost:{port}/auth"),
                token_url: format!("{base}/token"),
                lineitems_url: format!("{base}/lineitems"),
                memberships_url: format!("{base}/memberships"),
                services,
                port,
            },
            tool_base,
        )
    }
}

/// A running tool (one instance; [`Tool::another_instance`] adds more on the same database).
pub struct Tool {
    /// The first instance's state (tests drive its workers directly).
    pub state: web::Data<AppState>,
    pub base: String,
    pub client: reqwest::Client,
    pub manual: ManualClock,
    pub clock: Arc<dyn Clock>,
    pub store: Store,
    pub platform: Platform,
    db: Db,
    pg_schema: Option<String>,
    env: HashMap<String, String>,
    _dir: tempfile::TempDir,
}

pub fn store_for(db: &Db, dir: &std::path::Path, schema: Option<&str>) -> Store {
    let (url, opts) = match db {
        Db::Sqlite => (
            format!("sqlite://{}/t.db", dir.display()),
            StoreOptions::default(),
        ),
        Db::Postgres(u) => (
            u.clone(),
            StoreOptions {
                pg_schema: schema.map(str::to_string),
                ..Default::default()
            },
        ),
    };
    let store = Store::connect(&url, opts).unwrap();
    store.migrate().unwrap();
    store
}

fn base_env(dir: &std::path::Path, db: &Db, addr: std::net::SocketAddr) -> HashMap<String, String> {
    let mut env: HashMap<String, String> = HashMap::new();
    env.insert(
        "COURSEGATE_SECRET".into(),
        "test-secret-0123456789-0123456789-abcdef".into(),
    );
    env.insert("COURSEGATE_BIND".into(), addr.to_string());
    env.insert(
        "COURSEGATE_DATABASE_URL".into(),
        match db {
            Db::Sqlite => format!("sqlite://{}/t.db", dir.display()),
            Db::Postgres(u) => u.clone(),
        },
    );
    env.insert(
        "COURSEGATE_KEYS_DIR".into(),
        format!("{}/jwks", dir.display()),
    );
    env
}

pub fn cookie_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .build()
        .unwrap()
}

/// A client that keeps no cookie (a frame whose browser blocks them).
pub fn cookieless_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// A launch in a frame that keeps no cookie, continued as a browser would:
/// inside the frame through the frame session (`/f/…`) when the tool runs
/// with frame sessions, else in a new first-party window through the
/// one-time ticket. `mint` signs the id_token for the login's nonce. Returns
/// the client that continues and the path it was sent to.
pub async fn launch_without_cookies(
    tool: &Tool,
    mint: impl FnOnce(&Tool, &str) -> String,
) -> (reqwest::Client, String) {
    let frame = cookieless_client();
    let (state, nonce) = tool.login_at(&frame, &tool.base).await;
    let token = mint(tool, &nonce);
    let res = tool.launch_at(&frame, &tool.base, &token, &state).await;
    assert_eq!(
        res.status(),
        303,
        "{}",
        res.text().await.unwrap_or_default()
    );
    let cont = res.headers()["location"].to_str().unwrap().to_string();
    let res = frame
        .get(format!("{}{cont}", tool.base))
        .send()
        .await
        .unwrap();
    if tool.state.config.lti_frame_sessions {
        assert_eq!(res.status(), 303);
        let to = res.headers()["location"].to_str().unwrap().to_string();
        assert!(to.starts_with("/f/"), "{to}");
        (frame, to)
    } else {
        assert_eq!(res.status(), 200, "the new-window page");
        let ticket = cont.trim_start_matches("/lti/continue/");
        let window = cookie_client();
        let res = window
            .post(format!("{}/lti/handoff/{ticket}", tool.base))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 303);
        let to = res.headers()["location"].to_str().unwrap().to_string();
        (window, to)
    }
}

impl Tool {
    pub async fn start(opts: Opts) -> Tool {
        let dir = tempfile::tempdir().unwrap();
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let mut env = base_env(dir.path(), &opts.db, addr);
        env.insert(
            "COURSEGATE_LTI_FRAME_SESSIONS".into(),
            opts.frame_sessions.to_string(),
        );
        let config = Config::load_from(&env, None).unwrap();
        let pg_schema = match opts.db {
            Db::Postgres(_) => Some(format!("lti_{}", uuid::Uuid::new_v4().simple())),
            Db::Sqlite => None,
        };
        let store = store_for(&opts.db, dir.path(), pg_schema.as_deref());
        let manual = ManualClock::new(Utc.with_ymd_and_hms(2026, 11, 22, 12, 0, 0).unwrap());
        let clock: Arc<dyn Clock> = if opts.system_clock {
            Arc::new(SystemClock)
        } else {
            Arc::new(manual.clone())
        };
        let (platform, tool_base) = Platform::start(clock.clone()).await;
        let base = format!("http://{addr}");
        *tool_base.lock().unwrap() = base.clone();
        let now = clock.now();
        let (jwks_url, auth_url, token_url) = (
            platform.jwks_url.clone(),
            platform.auth_url.clone(),
            platform.token_url.clone(),
        );
        let policy = opts.policy;
        let register = opts.register_test_platform;
        store
            .write_blocking(move |tx| {
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
                if register {
                    core_lti::add_platform(
                        tx,
                        now,
                        NewPlatform {
                            issuer: testing::ISSUER.into(),
                            client_id: testing::CLIENT_ID.into(),
                            name: Some("Test LMS".into()),
                            auth_url,
                            token_url,
                            jwks_url,
                            audience: None,
                            customer: None,
                            lms: None,
                            unknown_deployments: policy,
                            deployment_ids: vec![testing::DEPLOYMENT_ID.into()],
                            trusted_audiences: Vec::new(),
                        },
                    )?;
                }
                Ok::<_, coursegate_core::CoreError>(())
            })
            .unwrap();
        let state = web::Data::new(AppState::new(store.clone(), clock.clone(), config));
        coursegate_server::app::start_with_data(state.clone(), l, 1).unwrap();
        Tool {
            state,
            base,
            client: cookie_client(),
            manual,
            clock,
            store,
            platform,
            db: opts.db,
            pg_schema,
            env,
            _dir: dir,
        }
    }

    /// Starts another server instance on the same database (its own pool,
    /// its own key cache, the same secret and keys directory); returns its base URL.
    pub async fn another_instance(&self) -> String {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let mut env = self.env.clone();
        env.insert("COURSEGATE_BIND".into(), addr.to_string());
        // Same public address as the first: behind one load balancer.
        env.insert("COURSEGATE_BASE_URL".into(), self.base.clone());
        let config = Config::load_from(&env, None).unwrap();
        let store = store_for(&self.db, self._dir.path(), self.pg_schema.as_deref());
        let state = AppState::new(store, self.clock.clone(), config);
        coursegate_server::app::start(state, l, 1).unwrap();
        format!("http://{addr}")
    }

    pub fn launch_url(&self) -> String {
        format!("{}/lti/launch", self.base)
    }

    /// Login initiation (GET) on `base`; returns (state, nonce) from the redirect to the platform.
    pub async fn login_at(&self, client: &reqwest::Client, base: &str) -> (String, String) {
        let res = client
            .get(format!("{base}/lti/login"))
            .query(&[
                ("iss", testing::ISSUER),
                ("login_hint", "user-0001"),
                ("target_link_uri", &self.launch_url()),
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
        assert!(loc.as_str().starts_with(&self.platform.auth_url), "{loc}");
        let q: HashMap<String, String> = loc.query_pairs().into_owned().collect();
        assert_eq!(q["redirect_uri"], self.launch_url());
        (q["state"].clone(), q["nonce"].clone())
    }

    pub async fn login(&self) -> (String, String) {
        self.login_at(&self.client, &self.base).await
    }

    /// A valid learner launch token for `nonce`, addressed to this tool.
    pub fn minter(&self, nonce: &str) -> TokenMinter {
        TokenMinter::new(self.clock.now())
            .nonce(nonce)
            .claim(&claim("target_link_uri"), self.launch_url())
            .roles(&[LEARNER])
    }

    pub async fn launch_at(
        &self,
        client: &reqwest::Client,
        base: &str,
        id_token: &str,
        state: &str,
    ) -> reqwest::Response {
        client
            .post(format!("{base}/lti/launch"))
            .form(&[("id_token", id_token), ("state", state)])
            .send()
            .await
            .unwrap()
    }

    pub async fn launch(&self, id_token: &str, state: &str) -> reqwest::Response {
        self.launch_at(&self.client, &self.base, id_token, state)
            .await
    }

    /// After an accepted launch (303 to /lti/continue/…): follows it with
    /// the same cookie jar and returns where the learner ends up.
    pub async fn follow_to_course(
        &self,
        client: &reqwest::Client,
        base: &str,
        res: reqwest::Response,
    ) -> String {
        assert_eq!(
            res.status(),
            303,
            "{}",
            res.text().await.unwrap_or_default()
        );
        let cont = res.headers()["location"].to_str().unwrap().to_string();
        assert!(cont.starts_with("/lti/continue/ltk_"), "{cont}");
        let res = client.get(format!("{base}{cont}")).send().await.unwrap();
        assert_eq!(
            res.status(),
            303,
            "{}",
            res.text().await.unwrap_or_default()
        );
        let to = res.headers()["location"].to_str().unwrap().to_string();
        let page = client.get(format!("{base}{to}")).send().await.unwrap();
        assert_eq!(page.status(), 200, "{to}");
        let body = page.text().await.unwrap();
        assert!(body.contains("Intro"), "{to}: {body}");
        to
    }

    /// Flight records, newest first.
    pub fn flights(&self) -> Vec<coursegate_store::models::LtiLaunch> {
        self.store
            .read_blocking(|tx| {
                coursegate_store::repo::lti::recent_launches(
                    tx,
                    false,
                    coursegate_store::repo::Page {
                        limit: 1000,
                        offset: 0,
                    },
                )
            })
            .unwrap()
    }
}

impl Tool {
    /// A client signed in as a staff member with `role` (owner, admin, …).
    pub fn staff(&self, role: &str) -> reqwest::Client {
        use coursegate_core::{sessions, staff, types::Email};
        let now = self.clock.now();
        let secret = self.state.config.secret.clone();
        let email = format!("{role}@staff.example");
        let role_v = staff::Role::parse(role).unwrap();
        let started = self
            .store
            .write_blocking(move |tx| {
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
        let jar = Arc::new(reqwest::cookie::Jar::default());
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

impl Drop for Tool {
    fn drop(&mut self) {
        if self.pg_schema.is_some() {
            if let Err(e) = self.store.drop_pg_schema() {
                let _ = writeln!(std::io::stderr(), "could not drop the test schema: {e}");
            }
        }
    }
}

/// The `X-Error-Code` header of a refusal.
pub fn code(res: &reqwest::Response) -> String {
    res.headers()
        .get("x-error-code")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

/// Asserts a refusal: a 4xx status (never 2xx, 3xx or 5xx) with exactly this code.
pub async fn assert_refused(res: reqwest::Response, expected: &str, what: &str) {
    let status = res.status();
    let got = code(&res);
    let body = res.text().await.unwrap_or_default();
    assert!(
        status.is_client_error(),
        "{what}: expected a 4xx refusal {expected}, got HTTP {status} ({got}): {body}"
    );
    assert_eq!(got, expected, "{what}: HTTP {status}: {body}");
}
