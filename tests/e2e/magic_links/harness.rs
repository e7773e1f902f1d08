//! A real server on port 0 (temp SQLite or a per-test PostgreSQL schema), a
//! manual clock, the loopback SMTP sink, and the email worker driven one pass
//! at a time.

use std::{collections::HashMap, net::TcpListener, sync::Arc, time::Duration as StdDuration};

use chrono::{DateTime, TimeZone, Utc};
use coursegate_core::{
    audit::Actor,
    courses::{self, LinkPolicy, NewCourse, NewLesson},
    enrolments::{self, Grant, Source},
    learners, links,
    sessions::Destination,
    types::{Email, Slug},
    Clock, CoreError, ManualClock, Store,
};
use coursegate_server::{
    app::AppState,
    config::Config,
    workers::{deliver_due_mail, MailPass, MailWorker},
};
use coursegate_store::{models::MagicLink, repo, StoreOptions};
use coursegate_testkit::smtp::{ReceivedMail, SmtpSink};

pub const SECRET: &str = "magic-test-secret-0123456789-0123456789";

pub struct App {
    pub base: String,
    pub store: Store,
    pub clock: ManualClock,
    pub sink: SmtpSink,
    pub state: actix_web::web::Data<AppState>,
    pub worker: MailWorker,
    _dir: tempfile::TempDir,
    pg: bool,
}

impl Drop for App {
    fn drop(&mut self) {
        if self.pg {
            let _ = self.store.drop_pg_schema();
        }
    }
}

fn pg_url() -> Option<String> {
    match std::env::var("TEST_DATABASE_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("CI=true but TEST_DATABASE_URL is not set: PostgreSQL tests must run in CI")
        }
        _ => {
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "\n*** SKIPPED: PostgreSQL variant (set TEST_DATABASE_URL) ***\n"
            );
            None
        }
    }
}

pub fn backends() -> Vec<Option<String>> {
    let mut v = vec![None];
    if let Some(u) = pg_url() {
        v.push(Some(u));
    }
    v
}

/// A browser-like client: its own cookie jar (its own device), no redirects followed.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .user_agent("Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0")
        .default_headers(
            [(
                reqwest::header::ACCEPT_LANGUAGE,
                reqwest::header::HeaderValue::from_static("en"),
            )]
            .into_iter()
            .collect(),
        )
        .build()
        .unwrap()
}

pub fn code(res: &reqwest::Response) -> String {
    res.headers()
        .get("x-error-code")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

pub fn csrf_of(page: &str) -> String {
    let k = "name=\"csrf\" value=\"";
    let i = page
        .find(k)
        .unwrap_or_else(|| panic!("a csrf field in {page}"))
        + k.len();
    page[i..i + page[i..].find('"').unwrap()].to_string()
}

/// GET the confirmation page, then press Continue.
pub async fn redeem(c: &reqwest::Client, link: &str) -> reqwest::Response {
    let page = c.get(link).send().await.unwrap();
    if page.status() != 200 {
        return page;
    }
    let body = page.text().await.unwrap();
    c.post(link)
        .form(&[("csrf", csrf_of(&body))])
        .send()
        .await
        .unwrap()
}

impl App {
    pub async fn spawn(pg: Option<String>) -> App {
        Self::spawn_with(
            pg,
            Utc.with_ymd_and_hms(2026, 11, 22, 9, 0, 0).unwrap(),
            |_| Vec::new(),
        )
        .await
    }

    /// Like [`App::spawn`], with the clock starting at `start` and extra
    /// settings computed from the app's base URL.
    pub async fn spawn_with(
        pg: Option<String>,
        start: DateTime<Utc>,
        extra: impl FnOnce(&str) -> Vec<(&'static str, String)>,
    ) -> App {
        let sink = SmtpSink::start().await;
        let dir = tempfile::tempdir().unwrap();
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let db = match &pg {
            Some(u) => u.clone(),
            None => format!("sqlite://{}/t.db", dir.path().display()),
        };
        let mut env: HashMap<String, String> = [
            ("COURSEGATE_SECRET", SECRET.to_string()),
            ("COURSEGATE_BIND", addr.to_string()),
            ("COURSEGATE_DATABASE_URL", db.clone()),
            ("COURSEGATE_SMTP_URL", sink.url()),
            (
                "COURSEGATE_MAIL_FROM",
                "Academy <no-reply@academy.test>".into(),
            ),
            (
                "COURSEGATE_KEYS_DIR",
                format!("{}/jwks", dir.path().display()),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        env.extend(
            extra(&format!("http://{addr}"))
                .into_iter()
                .map(|(k, v)| (k.to_string(), v)),
        );
        let config = Config::load_from(&env, None).unwrap();
        let opts = StoreOptions {
            pg_schema: pg
                .as_ref()
                .map(|_| format!("t_{}", uuid::Uuid::new_v4().simple())),
            pool_size: 4,
            ..Default::default()
        };
        let store = Store::connect(&db, opts).unwrap();
        store.migrate().unwrap();
        let clock = ManualClock::new(start);
        let mail_config = coursegate_mail::MailConfig::from_url(config.smtp_url.as_deref())
            .unwrap()
            .with_from(config.mail_from.clone())
            .with_timeouts(StdDuration::from_secs(5), StdDuration::from_secs(10));
        let mailer = coursegate_mail::Mailer::new(&mail_config).unwrap();
        let worker = MailWorker::new(mailer, &config.mail_from).unwrap();
        let state = actix_web::web::Data::new(AppState::new(
            store.clone(),
            Arc::new(clock.clone()),
            config,
        ));
        coursegate_server::app::start_with_data(state.clone(), l, 2).unwrap();
        let app = App {
            base: format!("http://{addr}"),
            store,
            clock,
            sink,
            state,
            worker,
            _dir: dir,
            pg: pg.is_some(),
        };
        for slug in ["safety", "gdpr"] {
            app.course(slug);
        }
        app
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn course(&self, slug: &str) {
        let now = self.clock.now();
        self.store
            .write_blocking(|tx| {
                courses::create(
                    tx,
                    now,
                    NewCourse {
                        slug: Slug::parse(slug)?,
                        title: format!("Course {slug}"),
                        summary: "A summary".into(),
                        published: true,
                        graded: false,
                        link_policy: LinkPolicy::Access,
                        default_access_days: None,
                        lessons: vec![NewLesson::from_markdown("# One\n\nText.", "x")],
                    },
                )
            })
            .unwrap();
    }

    /// A learner enrolled in `courses` (slug, optional end); returns the id.
    pub fn learner(&self, email: &str, courses: &[(&str, Option<DateTime<Utc>>)]) -> String {
        let now = self.clock.now();
        let email = Email::parse(email).unwrap();
        let courses: Vec<(String, Option<DateTime<Utc>>)> =
            courses.iter().map(|(s, e)| (s.to_string(), *e)).collect();
        self.store
            .write_blocking(move |tx| {
                let l =
                    learners::upsert_by_email(tx, now, &email, Some("Pat"), None, false)?.learner;
                for (slug, end) in courses {
                    let c = courses::by_slug(tx, &slug)?;
                    enrolments::grant(
                        tx,
                        now,
                        Grant {
                            learner_id: l.id.clone(),
                            course_id: c.id,
                            source: Source::Staff,
                            source_ref: None,
                            starts_at: None,
                            expires_at: end,
                        },
                    )?;
                }
                Ok::<_, CoreError>(l.id)
            })
            .unwrap()
    }

    pub fn revoke_enrolment(&self, learner_id: &str, slug: &str) {
        let now = self.clock.now();
        let (l, s) = (learner_id.to_string(), slug.to_string());
        self.store
            .write_blocking(move |tx| {
                let c = courses::by_slug(tx, &s)?;
                let e = repo::enrolments::find(tx, &l, &c.id)?
                    .ok_or(CoreError::NotFound("enrolment"))?;
                enrolments::revoke(tx, now, &e.id, Some("refund"))
            })
            .unwrap();
    }

    /// Issues a link and queues its mail (as staff, the API or the CLI would).
    pub fn issue(&self, learner_id: &str, course: Option<&str>, kind: Option<&str>) {
        let now = self.clock.now();
        let secret = self.state.config.secret.clone();
        let settings = self.state.config.links;
        let base = self.base.clone();
        let req = links::IssueLearner {
            learner_id: learner_id.to_string(),
            destination: match course {
                Some(s) => Destination::Course { slug: s.into() },
                None => Destination::Dashboard,
            },
            kind: kind.map(|k| LinkPolicy::parse(k).unwrap()),
            send: Some(links::SendOptions {
                base_url: base,
                reference: Some("order 1234".into()),
                code_for_browser: None,
            }),
        };
        self.store
            .write_blocking(|tx| {
                links::issue_learner(tx, now, &secret, &settings, &Actor::cli(), req)
            })
            .unwrap();
    }

    /// Creates an owner and queues a staff sign-in mail.
    pub fn staff_link(&self, email: &str) -> String {
        let now = self.clock.now();
        let secret = self.state.config.secret.clone();
        let settings = self.state.config.links;
        let base = self.base.clone();
        let email = Email::parse(email).unwrap();
        self.store
            .write_blocking(|tx| {
                let (s, _) = coursegate_core::staff::ensure(
                    tx,
                    now,
                    &email,
                    None,
                    coursegate_core::staff::Role::Owner,
                )?;
                links::issue_staff(
                    tx,
                    now,
                    &secret,
                    &settings,
                    &Actor::cli(),
                    &s.id,
                    Some(&base),
                )?;
                Ok::<_, CoreError>(s.id)
            })
            .unwrap()
    }

    pub async fn pass(&self) -> MailPass {
        deliver_due_mail(&self.state, &self.worker).await.unwrap()
    }

    pub async fn deliver(&self) {
        self.pass().await;
    }

    /// Delivers due mail and returns the newest message to `to`.
    pub async fn deliver_one(&self, to: &str) -> ReceivedMail {
        let before = self.sink.messages_to(to).len();
        let p = self.pass().await;
        assert!(p.sent >= 1, "nothing was sent: {p:?}");
        let msgs = self.sink.messages_to(to);
        assert_eq!(msgs.len(), before + 1, "one new mail to {to}");
        msgs.last().unwrap().clone()
    }

    /// GET /signin, POST it; returns (status, location, body).
    pub async fn signin(
        &self,
        c: &reqwest::Client,
        email: &str,
        next: &str,
    ) -> (u16, String, String) {
        let page = c
            .get(self.url("/signin"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let r = c
            .post(self.url("/signin"))
            .form(&[
                ("csrf", csrf_of(&page).as_str()),
                ("email", email),
                ("next", next),
            ])
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let loc = r
            .headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        (status, loc, r.text().await.unwrap())
    }

    pub fn link_row(&self, link: &str) -> MagicLink {
        let token = link.rsplit('/').next().unwrap().to_string();
        let secret = self.state.config.secret.clone();
        self.store
            .read_blocking(move |tx| links::find(tx, &secret, &token))
            .unwrap()
            .unwrap()
    }

    pub fn audit_count(&self, action: &str) -> usize {
        self.audit_details(action).len()
    }

    pub fn audit_details(&self, action: &str) -> Vec<String> {
        self.audit_entries(action)
            .into_iter()
            .map(|e| e.detail)
            .collect()
    }

    pub fn audit_entries(&self, action: &str) -> Vec<coursegate_store::models::AuditEntry> {
        let a = action.to_string();
        self.store
            .read_blocking(move |tx| {
                repo::audit::list(
                    tx,
                    &repo::audit::AuditFilter {
                        action: Some(a),
                        ..Default::default()
                    },
                    repo::Page {
                        limit: 10_000,
                        offset: 0,
                    },
                )
            })
            .unwrap()
    }
}
