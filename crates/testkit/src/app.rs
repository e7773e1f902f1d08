//! [`TestApp`]: the real server (`coursegate_server::app::start`) on
//! 127.0.0.1:0 over its own database — a temp SQLite file, or a fresh
//! PostgreSQL schema dropped when the app is dropped — with a manual clock and
//! helpers that seed data through the core services, as the doors do.

use std::{collections::HashMap, net::TcpListener, sync::Arc};

use chrono::{DateTime, Duration, TimeZone, Utc};
use coursegate_core::{
    courses::{self, LinkPolicy, NewCourse, NewLesson},
    enrolments::{self, Grant, Source},
    learners::{self, IdentityRef},
    sessions::{self, Destination, StartLearner},
    types::{Email, Slug},
    Clock, CoreError, ManualClock, Store,
};
use coursegate_server::{
    app::{AppState, Running},
    config::Config,
};
use coursegate_store::{models::OutboxMessage, repo, StoreOptions};

use crate::db::TestBackend;

/// The server secret of every test app (≥ 32 bytes).
pub const TEST_SECRET: &str = "coursegate-test-secret-0123456789-abcdefghij";

/// The name of the session cookie the server sets.
pub const SESSION_COOKIE: &str = coursegate_server::extract::SESSION_COOKIE;

/// When every test app's clock starts, unless the builder says otherwise.
pub fn default_start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 22, 9, 0, 0)
        .single()
        .unwrap_or_default()
}

/// A course seeded by [`TestApp::seed_course`].
#[derive(Debug, Clone)]
pub struct SeededCourse {
    pub id: String,
    pub slug: String,
    /// Lesson ids in order.
    pub lessons: Vec<String>,
}

/// Configures and starts a [`TestApp`].
#[must_use]
pub struct TestAppBuilder {
    backend: TestBackend,
    env: HashMap<String, String>,
    start: DateTime<Utc>,
    workers: usize,
    pool_size: u32,
}

impl TestAppBuilder {
    /// The database to run on (default: a temp SQLite file).
    pub fn backend(mut self, backend: TestBackend) -> Self {
        self.backend = backend;
        self
    }

    /// Sets a `COURSEGATE_*` variable for the server's configuration.
    pub fn env(mut self, key: &str, value: impl Into<String>) -> Self {
        self.env.insert(key.to_string(), value.into());
        self
    }

    /// Where the manual clock starts.
    pub fn start_at(mut self, t: DateTime<Utc>) -> Self {
        self.start = t;
        self
    }

    /// HTTP worker threads (default 2).
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n.max(1);
        self
    }

    /// Database pool size (default 4).
    pub fn pool_size(mut self, n: u32) -> Self {
        self.pool_size = n.max(1);
        self
    }

    /// Opens the database, migrates it and starts the server.
    pub async fn spawn(self) -> TestApp {
        let dir = tempfile::tempdir().expect("a temp directory");
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let addr = listener.local_addr().expect("the bound address");
        let (db_url, pg_schema) = match &self.backend {
            TestBackend::Sqlite => (
                format!("sqlite://{}/coursegate.db", dir.path().display()),
                None,
            ),
            TestBackend::Postgres(url) => (
                url.clone(),
                Some(format!("t_{}", uuid::Uuid::new_v4().simple())),
            ),
        };
        let mut env: HashMap<String, String> = [
            ("COURSEGATE_SECRET", TEST_SECRET.to_string()),
            ("COURSEGATE_BIND", addr.to_string()),
            ("COURSEGATE_DATABASE_URL", db_url.clone()),
            (
                "COURSEGATE_KEYS_DIR",
                format!("{}/jwks", dir.path().display()),
            ),
            (
                "COURSEGATE_DATA_DIR",
                format!("{}/data", dir.path().display()),
            ),
            ("COURSEGATE_OUTBOX_WORKERS", "false".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        env.extend(self.env);
        let config = Config::load_from(&env, None).expect("a valid test configuration");

        let options = StoreOptions {
            pool_size: self.pool_size,
            pg_schema: pg_schema.clone(),
            ..Default::default()
        };
        let store = tokio::task::spawn_blocking(move || {
            let store = Store::connect(&db_url, options)?;
            store.migrate()?;
            Ok::<_, coursegate_core::StoreError>(store)
        })
        .await
        .expect("the store task")
        .unwrap_or_else(|e| panic!("cannot open the test database: {e}"));

        let clock = ManualClock::new(self.start);
        let state = AppState::new(store.clone(), Arc::new(clock.clone()), config.clone());
        let running = coursegate_server::app::start(state, listener, self.workers)
            .expect("the server starts");
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .cookie_store(true)
            .build()
            .expect("an HTTP client");
        TestApp {
            base_url: format!("http://{addr}"),
            store,
            clock,
            config,
            client,
            backend: self.backend,
            running,
            pg_schema,
            _dir: dir,
        }
    }
}

/// A running server and everything a test needs to drive and inspect it.
pub struct TestApp {
    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub base_url: String,
    pub store: Store,
    /// The server's clock: `app.clock.advance(Duration::days(2))`.
    pub clock: ManualClock,
    pub config: Config,
    /// An anonymous browser: cookie store on, redirects off.
    pub client: reqwest::Client,
    pub backend: TestBackend,
    running: Running,
    pg_schema: Option<String>,
    _dir: tempfile::TempDir,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // Sends the stop command now; the workers wind down on their own.
        drop(self.running.handle.stop(false));
        if self.pg_schema.is_some() {
            if let Err(e) = self.store.drop_pg_schema() {
                crate::db::loud(&format!("could not drop the test schema: {e}"));
            }
        }
    }
}

impl TestApp {
    /// A test app on a temp SQLite file with default settings.
    pub async fn spawn() -> TestApp {
        Self::builder().spawn().await
    }

    /// A test app on `backend` with default settings.
    pub async fn spawn_on(backend: TestBackend) -> TestApp {
        Self::builder().backend(backend).spawn().await
    }

    pub fn builder() -> TestAppBuilder {
        TestAppBuilder {
            backend: TestBackend::Sqlite,
            env: HashMap::new(),
            start: default_start(),
            workers: 2,
            pool_size: 4,
        }
    }

    /// `sqlite` or `postgres`: for assertion messages and per-backend checks.
    pub fn backend_name(&self) -> &'static str {
        self.backend.name()
    }

    /// An absolute URL for a path on this server.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// GET with the anonymous client.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("the request is answered")
    }

    /// Runs `f` in one write transaction, off the async threads.
    pub async fn write<T, F>(&self, f: F) -> T
    where
        F: FnOnce(&mut coursegate_core::Tx) -> Result<T, CoreError> + Send + 'static,
        T: Send + 'static,
    {
        self.store
            .write(f)
            .await
            .unwrap_or_else(|e| panic!("test write failed: {e}"))
    }

    /// Runs `f` in one read transaction, off the async threads.
    pub async fn read<T, F>(&self, f: F) -> T
    where
        F: FnOnce(&mut coursegate_core::Tx) -> Result<T, CoreError> + Send + 'static,
        T: Send + 'static,
    {
        self.store
            .read(f)
            .await
            .unwrap_or_else(|e| panic!("test read failed: {e}"))
    }

    /// A published course with `lessons` Markdown lessons titled "Lesson N".
    pub async fn seed_course(&self, slug: &str, lessons: usize) -> SeededCourse {
        self.seed_course_with(slug, lessons, true).await
    }

    /// Like [`seed_course`](Self::seed_course), choosing whether it is published.
    pub async fn seed_course_with(
        &self,
        slug: &str,
        lessons: usize,
        published: bool,
    ) -> SeededCourse {
        let now = self.now();
        let slug = slug.to_string();
        self.write(move |tx| {
            let (c, ls) = courses::create(
                tx,
                now,
                NewCourse {
                    slug: Slug::parse(&slug)?,
                    title: format!("Course {slug}"),
                    summary: format!("All about {slug}."),
                    published,
                    graded: false,
                    link_policy: LinkPolicy::Access,
                    default_access_days: None,
                    lessons: (1..=lessons)
                        .map(|i| {
                            NewLesson::from_markdown(
                                &format!("# Lesson {i}\n\nThe text of lesson {i}."),
                                "Lesson",
                            )
                        })
                        .collect(),
                },
            )?;
            Ok(SeededCourse {
                id: c.id,
                slug: c.slug,
                lessons: ls.into_iter().map(|l| l.id).collect(),
            })
        })
        .await
    }

    /// A learner with an email identity; returns the learner id.
    pub async fn seed_learner(&self, email: &str) -> String {
        let now = self.now();
        let email = email.to_string();
        self.write(move |tx| {
            let e = Email::parse(&email)?;
            Ok(
                learners::upsert_by_email(tx, now, &e, Some("Lee Learner"), None, false)?
                    .learner
                    .id,
            )
        })
        .await
    }

    /// An open-ended enrolment from now; returns the enrolment id.
    pub async fn enrol(&self, learner_id: &str, course: &SeededCourse) -> String {
        self.enrol_between(learner_id, course, None, None).await
    }

    /// An enrolment starting and ending at offsets from the clock's now.
    pub async fn enrol_between(
        &self,
        learner_id: &str,
        course: &SeededCourse,
        starts_in: Option<Duration>,
        ends_in: Option<Duration>,
    ) -> String {
        let now = self.now();
        let grant = Grant {
            learner_id: learner_id.to_string(),
            course_id: course.id.clone(),
            source: Source::Staff,
            source_ref: None,
            starts_at: starts_in.map(|d| now + d),
            expires_at: ends_in.map(|d| now + d),
        };
        self.write(move |tx| Ok(enrolments::grant(tx, now, grant)?.enrolment.id))
            .await
    }

    /// Revokes an enrolment now.
    pub async fn revoke(&self, enrolment_id: &str) {
        let now = self.now();
        let id = enrolment_id.to_string();
        self.write(move |tx| enrolments::revoke(tx, now, &id, Some("test")).map(|_| ()))
            .await;
    }

    /// Starts a learner session through the core entry point and returns
    /// its token (the cookie value).
    pub async fn start_session(&self, learner_id: &str) -> String {
        let now = self.now();
        let secret = self.config.secret.clone();
        let policy = self.config.sessions;
        let req = StartLearner {
            identity: IdentityRef::Learner {
                learner_id: learner_id.to_string(),
            },
            destination: Destination::Dashboard,
            via: "test".into(),
            client: Default::default(),
        };
        self.write(move |tx| sessions::start_learner_session(tx, now, &secret, &policy, req))
            .await
            .token
    }

    /// A browser signed in as the learner (its own cookie jar, redirects off).
    pub async fn sign_in(&self, learner_id: &str) -> reqwest::Client {
        let token = self.start_session(learner_id).await;
        self.browser_with_cookie(&token)
    }

    /// A browser presenting `value` as the session cookie.
    pub fn browser_with_cookie(&self, value: &str) -> reqwest::Client {
        let jar = Arc::new(reqwest::cookie::Jar::default());
        let url: reqwest::Url = self.base_url.parse().expect("the base URL");
        jar.add_cookie_str(&format!("{SESSION_COOKIE}={value}; Path=/"), &url);
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .cookie_provider(jar)
            .build()
            .expect("an HTTP client")
    }

    /// The outbox rows of one topic, oldest first.
    pub async fn outbox(&self, topic: &str) -> Vec<OutboxMessage> {
        let topic = topic.to_string();
        self.read(move |tx| Ok(repo::outbox::by_topic(tx, &topic)?))
            .await
    }

    /// The number of outbox rows of one topic.
    pub async fn outbox_count(&self, topic: &str) -> usize {
        self.outbox(topic).await.len()
    }
}
