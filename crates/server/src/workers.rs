//! Background work that runs in every `serve` process. Each task claims its
//! work through the database, so running several instances is safe.

use std::{sync::Arc, time::Duration};

use actix_web::web;

use crate::app::AppState;

/// Periodic clean-up: expired LTI login states, nonces, tickets and flight
/// records; sessions that ended more than a week ago; domain events fanned
/// out more than a week ago.
pub fn spawn_maintenance(
    state: web::Data<AppState>,
    every: Duration,
) -> tokio::task::JoinHandle<()> {
    let state: Arc<AppState> = state.into_inner();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let now = state.clock.now();
            state.lti.reload(now);
            let result = state
                .store
                .write(move |tx| {
                    let n = coursegate_core::lti::purge_expired(tx, now)?
                        + coursegate_store::repo::lti_services::purge_expired_tokens(
                            tx,
                            now.naive_utc(),
                        )?
                        + coursegate_store::repo::sso::purge_expired(tx, now.naive_utc())?;
                    let s = coursegate_store::repo::sessions::purge_ended(
                        tx,
                        (now - chrono::Duration::days(7)).naive_utc(),
                    )?;
                    let s = s
                        + coursegate_store::repo::api::purge_idempotency(tx, now.naive_utc())?
                        + coursegate_store::repo::api::purge_counters(
                            tx,
                            (now - chrono::Duration::hours(1)).naive_utc(),
                        )?
                        // The longest sign-in window is one hour.
                        + coursegate_store::repo::links::purge_rate_limits(
                            tx,
                            (now - chrono::Duration::hours(2)).naive_utc(),
                        )?
                        // Domain events already fanned out to webhooks (their
                        // deliveries keep their own rows and log).
                        + coursegate_store::repo::outbox::purge_done(
                            tx,
                            coursegate_core::events::KIND_EVENT,
                            (now - chrono::Duration::days(7)).naive_utc(),
                        )?;
                    Ok::<_, coursegate_core::CoreError>((n, s))
                })
                .await;
            match result {
                Ok((n, s)) if n + s > 0 => tracing::info!(
                    lti_rows = n,
                    sessions = s,
                    "maintenance purged expired rows"
                ),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "maintenance failed; will retry"),
            }
        }
    })
}

/// Settings of the webhook worker.
#[derive(Debug, Clone)]
pub struct WebhookWorker {
    /// How often to look for work when idle.
    pub poll: Duration,
    /// Per-request timeout (connect + response).
    pub timeout: Duration,
    /// Messages claimed per round.
    pub batch: i64,
    pub policy: coursegate_core::webhooks::DeliveryPolicy,
}

impl Default for WebhookWorker {
    fn default() -> Self {
        Self {
            poll: Duration::from_secs(2),
            timeout: Duration::from_secs(10),
            batch: 20,
            policy: Default::default(),
        }
    }
}

/// What one round did (tests wait on these).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WebhookRound {
    pub events: usize,
    pub queued: usize,
    pub attempted: usize,
    pub succeeded: usize,
}

/// An HTTP client for webhook deliveries: timeouts, no redirects, no cookies.
pub fn webhook_client(cfg: &WebhookWorker) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(cfg.timeout)
        .connect_timeout(cfg.timeout.min(Duration::from_secs(5)))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("Coursegate-Webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_default()
}

/// One round: fan domain events out to subscribed endpoints, then deliver
/// due messages (signed, concurrently, outside any transaction) and record
/// each outcome.
pub async fn webhook_round(
    state: &AppState,
    client: &reqwest::Client,
    cfg: &WebhookWorker,
) -> Result<WebhookRound, coursegate_core::CoreError> {
    use coursegate_core::webhooks;
    let now = state.clock.now();
    let (events, queued) = state
        .store
        .write(move |tx| webhooks::fan_out(tx, now, 200))
        .await?;
    let batch = cfg.batch;
    let lease = chrono::Duration::from_std(cfg.timeout * 3).unwrap_or(chrono::Duration::minutes(1));
    let claimed = state
        .store
        .write(move |tx| webhooks::claim(tx, now, lease, batch))
        .await?;
    let attempted = claimed.len();
    let sends = claimed.into_iter().map(|p| {
        let client = client.clone();
        let clock = state.clock.clone();
        async move {
            let attempt = send(&client, clock.now().timestamp(), &p).await;
            (p, attempt)
        }
    });
    let results = futures_util::future::join_all(sends).await;
    let mut succeeded = 0;
    for (p, a) in results {
        if a.succeeded() {
            succeeded += 1;
        }
        let now = state.clock.now();
        let policy = cfg.policy;
        state
            .store
            .write(move |tx| webhooks::record_attempt(tx, now, &policy, &p, &a))
            .await?;
    }
    Ok(WebhookRound {
        events,
        queued,
        attempted,
        succeeded,
    })
}

async fn send(
    client: &reqwest::Client,
    timestamp: i64,
    p: &coursegate_core::webhooks::Prepared,
) -> coursegate_core::webhooks::Attempt {
    use coursegate_core::webhooks::{self, Attempt};
    let m = &p.message;
    let signature = match webhooks::signature_header(&p.signing, &m.msg_id, timestamp, &m.body) {
        Ok(s) => s,
        Err(e) => {
            return Attempt {
                response_status: None,
                error: Some(e.to_string()),
                duration_ms: 0,
            }
        }
    };
    let started = std::time::Instant::now();
    let result = client
        .post(&p.url)
        .header("content-type", "application/json")
        .header("webhook-id", &m.msg_id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(m.body.clone())
        .send()
        .await;
    let duration_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
    match result {
        Ok(resp) => Attempt {
            response_status: Some(resp.status().as_u16()),
            error: None,
            duration_ms,
        },
        Err(e) => Attempt {
            response_status: None,
            error: Some(if e.is_timeout() {
                "timed out".to_string()
            } else if e.is_connect() {
                "could not connect".to_string()
            } else {
                "request failed".to_string()
            }),
            duration_ms,
        },
    }
}

/// Runs [`webhook_round`] forever: again at once while there was work, else
/// after `cfg.poll`.
pub fn spawn_webhooks(
    state: web::Data<AppState>,
    cfg: WebhookWorker,
) -> tokio::task::JoinHandle<()> {
    let state: Arc<AppState> = state.into_inner();
    tokio::spawn(async move {
        let client = webhook_client(&cfg);
        loop {
            match webhook_round(&state, &client, &cfg).await {
                Ok(r) if r.events + r.attempted > 0 => continue,
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "webhook round failed; will retry"),
            }
            tokio::time::sleep(cfg.poll).await;
        }
    })
}

/// The email worker: claims `email` outbox rows with a lease, renders them
/// with the mail crate's templates and sends them. A transient failure puts
/// the row back with exponential back-off; a permanent one, or the last
/// allowed attempt, makes it dead. The Message-ID is derived from the row id,
/// so a resend after a crash carries the same id.
pub struct MailWorker {
    pub mailer: coursegate_mail::Mailer,
    pub templates: Arc<coursegate_mail::Templates>,
    /// Domain of the Message-ID (the From address's domain).
    pub domain: String,
    pub max_attempts: i32,
    pub first_backoff: chrono::Duration,
    pub max_backoff: chrono::Duration,
    pub lease: chrono::Duration,
}

impl MailWorker {
    pub fn new(
        mailer: coursegate_mail::Mailer,
        from: &str,
    ) -> Result<Self, coursegate_mail::MailError> {
        let domain = from
            .rsplit_once('@')
            .map(|(_, d)| d.trim_end_matches('>').trim().to_string())
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| "coursegate.invalid".into());
        Ok(Self {
            mailer,
            templates: Arc::new(coursegate_mail::Templates::embedded()?),
            domain,
            max_attempts: 8,
            first_backoff: chrono::Duration::seconds(30),
            max_backoff: chrono::Duration::hours(1),
            lease: chrono::Duration::minutes(5),
        })
    }

    /// Delay before attempt `attempts + 1`.
    pub fn backoff(&self, attempts: i32) -> chrono::Duration {
        let exp = u32::try_from(attempts.saturating_sub(1).clamp(0, 16)).unwrap_or(0);
        let d = self.first_backoff * 2i32.saturating_pow(exp);
        if d > self.max_backoff {
            self.max_backoff
        } else {
            d
        }
    }
}

/// Result of one delivery pass.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct MailPass {
    pub sent: usize,
    pub retry: usize,
    pub dead: usize,
}

/// One pass over due mail (tests call this directly with a manual clock).
pub async fn deliver_due_mail(
    state: &AppState,
    w: &MailWorker,
) -> Result<MailPass, coursegate_core::CoreError> {
    use coursegate_core::{mailq, CoreError};
    use coursegate_store::repo;
    let now = state.clock.now();
    let lease_until = (now + w.lease).naive_utc();
    let rows = state
        .store
        .write(move |tx| {
            repo::outbox::claim_due(tx, &[mailq::KIND_EMAIL], now.naive_utc(), lease_until, 20)
        })
        .await
        .map_err(CoreError::from)?;
    let mut pass = MailPass::default();
    if rows.is_empty() {
        return Ok(pass);
    }
    let site = state.store.read(coursegate_core::settings::site).await?;
    let site_url = state.config.url("");
    for row in rows {
        let payload: serde_json::Value = serde_json::from_str(&row.payload).unwrap_or_default();
        let template = payload["template"].as_str().unwrap_or("").to_string();
        let to = payload["to"].as_str().unwrap_or("").to_string();
        let to_name = payload["to_name"].as_str().map(str::to_string);
        let mut ctx = payload["context"].clone();
        if let Some(o) = ctx.as_object_mut() {
            o.insert(
                "site".into(),
                serde_json::json!({
                    "name": site.name, "support_email": site.support_email,
                    "support_phone": site.support_phone, "logo_url": site.logo_url, "url": site_url,
                }),
            );
        }
        let message_id = coursegate_mail::message_id(&row.id, &w.domain);
        let outcome = match w.templates.render(&template, &ctx) {
            Ok(r) => {
                let mail =
                    coursegate_mail::OutgoingEmail::from_rendered(to, to_name, r, message_id);
                w.mailer.send(&mail).await
            }
            Err(e) => Err(coursegate_mail::MailError::Permanent {
                code: None,
                message: e.to_string(),
            }),
        };
        let now = state.clock.now();
        let id = row.id.clone();
        let attempts = row.attempts;
        match outcome {
            Ok(info) => {
                pass.sent += 1;
                state
                    .store
                    .write(move |tx| {
                        mailq::delivered(
                            tx,
                            now,
                            &id,
                            &payload,
                            attempts,
                            mailq::Accepted {
                                message_id: &info.message_id,
                                smtp_response: &info.smtp_response,
                            },
                        )
                    })
                    .await?;
            }
            Err(e) => {
                let transient = matches!(e, coursegate_mail::MailError::Transient { .. });
                let next =
                    (transient && attempts < w.max_attempts).then(|| now + w.backoff(attempts));
                if next.is_some() {
                    pass.retry += 1;
                } else {
                    pass.dead += 1;
                }
                tracing::warn!(outbox_id = %id, attempts, error = %e, dead = next.is_none(), "email delivery failed");
                let msg = e.to_string();
                state
                    .store
                    .write(move |tx| mailq::failed(tx, now, &id, &payload, attempts, &msg, next))
                    .await?;
            }
        }
    }
    Ok(pass)
}

/// Runs [`deliver_due_mail`] every `every` (and again at once after a busy pass).
pub fn spawn_mail_worker(
    state: web::Data<AppState>,
    worker: MailWorker,
    every: Duration,
) -> tokio::task::JoinHandle<()> {
    let state: Arc<AppState> = state.into_inner();
    tokio::spawn(async move {
        loop {
            match deliver_due_mail(&state, &worker).await {
                Ok(p) if p.sent + p.retry + p.dead > 0 => continue,
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "email worker pass failed; will retry"),
            }
            tokio::time::sleep(every).await;
        }
    })
}

/// The grade passback worker: claims `score` outbox rows with a lease and
/// posts each with the AGS client (finding or creating the line item when
/// the launch only gave a line items container). Access tokens come from the
/// database cache shared by all instances; a 401 refreshes the token once.
/// Transient failures back off exponentially; a permanent one, or the last
/// allowed attempt, makes the row dead (listed in the outbox, replayable).
pub struct ScoreWorker {
    pub max_attempts: i32,
    pub first_backoff: chrono::Duration,
    pub max_backoff: chrono::Duration,
    pub lease: chrono::Duration,
    /// Stop using a cached token this long before the platform says it expires.
    pub token_margin_secs: i64,
    pub batch: i64,
}

impl Default for ScoreWorker {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            first_backoff: chrono::Duration::seconds(30),
            max_backoff: chrono::Duration::hours(1),
            lease: chrono::Duration::minutes(2),
            token_margin_secs: 60,
            batch: 20,
        }
    }
}

impl ScoreWorker {
    /// Delay before attempt `attempts + 1`.
    pub fn backoff(&self, attempts: i32) -> chrono::Duration {
        let exp = u32::try_from(attempts.saturating_sub(1).clamp(0, 16)).unwrap_or(0);
        let d = self.first_backoff * 2i32.saturating_pow(exp);
        d.min(self.max_backoff)
    }
}

/// Result of one pass over due scores.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ScorePass {
    pub sent: usize,
    pub retry: usize,
    pub dead: usize,
}

/// Why one delivery (or a service token request) failed.
pub(crate) struct ScoreFailure {
    pub(crate) message: String,
    pub(crate) retryable: bool,
}

impl From<coursegate_lti::LtiError> for ScoreFailure {
    fn from(e: coursegate_lti::LtiError) -> Self {
        ScoreFailure {
            retryable: e.is_retryable(),
            message: e.to_string(),
        }
    }
}

impl From<coursegate_core::CoreError> for ScoreFailure {
    fn from(e: coursegate_core::CoreError) -> Self {
        ScoreFailure {
            retryable: true,
            message: e.to_string(),
        }
    }
}

/// One pass over due scores (tests call this directly with a manual clock).
pub async fn deliver_due_scores(
    state: &AppState,
    w: &ScoreWorker,
) -> Result<ScorePass, coursegate_core::CoreError> {
    use coursegate_core::{ags, CoreError};
    use coursegate_store::repo;
    let now = state.clock.now();
    let lease_until = (now + w.lease).naive_utc();
    let batch = w.batch;
    let rows = state
        .store
        .write(move |tx| {
            repo::outbox::claim_due(tx, &[ags::KIND_SCORE], now.naive_utc(), lease_until, batch)
        })
        .await
        .map_err(CoreError::from)?;
    let mut pass = ScorePass::default();
    for row in rows {
        let job: Result<ags::ScoreJob, _> = serde_json::from_str(&row.payload);
        let outcome = match &job {
            Ok(job) => post_score(state, w, job).await,
            Err(e) => Err(ScoreFailure {
                message: format!("unreadable score payload: {e}"),
                retryable: false,
            }),
        };
        let now = state.clock.now();
        let id = row.id.clone();
        let attempts = row.attempts;
        match (outcome, job) {
            (Ok(how), Ok(job)) => {
                pass.sent += 1;
                state
                    .store
                    .write(move |tx| ags::record_delivered(tx, now, &id, &job, how))
                    .await?;
            }
            (Err(f), job) => {
                let next =
                    (f.retryable && attempts < w.max_attempts).then(|| now + w.backoff(attempts));
                if next.is_some() {
                    pass.retry += 1;
                } else {
                    pass.dead += 1;
                }
                tracing::warn!(outbox_id = %id, attempts, error = %f.message, dead = next.is_none(), "score delivery failed");
                let enrolment = job.map(|j| j.enrolment_id).unwrap_or_default();
                state
                    .store
                    .write(move |tx| {
                        ags::record_failed(tx, now, &id, &enrolment, &f.message, attempts, next)
                    })
                    .await?;
            }
            (Ok(_), Err(_)) => unreachable!("a score is only posted from a readable payload"),
        }
    }
    Ok(pass)
}

/// An access token for `scopes`: from the database cache unless `fresh`,
/// else requested with a new client assertion and cached for every instance.
pub(crate) async fn service_token(
    state: &AppState,
    w: &ScoreWorker,
    target: &coursegate_core::ags::ServiceTarget,
    scopes: &[&str],
    fresh: bool,
) -> Result<String, ScoreFailure> {
    use coursegate_core::ags;
    use coursegate_lti::services::{ServiceClient, TokenClient, TokenRequest};
    let key = ags::scope_key(scopes);
    let now = state.clock.now();
    if !fresh {
        let (pid, k) = (target.platform_id.clone(), key.clone());
        if let Some(t) = state
            .store
            .read(move |tx| ags::cached_token(tx, now, &pid, &k))
            .await?
        {
            return Ok(t);
        }
    }
    let keys = state.lti.tool_keys().ok_or_else(|| ScoreFailure {
        message: "the tool has no signing key (COURSEGATE_KEYS_DIR)".into(),
        retryable: true,
    })?;
    let jti = uuid::Uuid::new_v4().to_string();
    let tc = TokenClient::new(ServiceClient::with_client(state.lti.http().clone()));
    let tok = tc
        .request(
            &keys,
            &TokenRequest {
                token_url: &target.token_url,
                client_id: &target.client_id,
                audience: target.audience.as_deref(),
                scopes,
                jti: &jti,
            },
            now,
        )
        .await?;
    let expires_at = tok.expires_at(now, w.token_margin_secs);
    let (pid, access) = (target.platform_id.clone(), tok.access_token.clone());
    state
        .store
        .write(move |tx| ags::store_token(tx, now, &pid, &key, &access, expires_at))
        .await?;
    Ok(tok.access_token)
}

async fn post_score(
    state: &AppState,
    w: &ScoreWorker,
    job: &coursegate_core::ags::ScoreJob,
) -> Result<coursegate_core::ags::Delivered, ScoreFailure> {
    use coursegate_core::ags::{self, Delivered};
    use coursegate_lti::services::{
        ags::{ActivityProgress, GradingProgress, LineItem, Score},
        ServiceClient,
    };
    use coursegate_lti::LtiError;
    let pid = job.platform_id.clone();
    let target = state
        .store
        .read(move |tx| ags::service_target(tx, &pid))
        .await?;
    let rl = job.resource_link_row_id.clone();
    // A line item found or created for an earlier score of this link.
    let known = state
        .store
        .read(move |tx| ags::lineitem_of(tx, &rl))
        .await?
        .or_else(|| job.lineitem_url.clone());
    // The same scope set for every score of a link (so one cached token
    // serves them all): score, plus lineitem when the launch granted it.
    let mut scopes = vec![ags::SCOPE_SCORE];
    if job.scopes.iter().any(|s| s == ags::SCOPE_LINEITEM) {
        scopes.push(ags::SCOPE_LINEITEM);
    }
    let parse = |what: &str, v: &str| ScoreFailure {
        message: format!("unknown {what} {v:?} in the score payload"),
        retryable: false,
    };
    let activity: ActivityProgress =
        serde_json::from_value(job.activity_progress.clone().into())
            .map_err(|_| parse("activityProgress", &job.activity_progress))?;
    let grading: GradingProgress = serde_json::from_value(job.grading_progress.clone().into())
        .map_err(|_| parse("gradingProgress", &job.grading_progress))?;
    let timestamp = chrono::DateTime::parse_from_rfc3339(&job.timestamp)
        .map_err(|_| parse("timestamp", &job.timestamp))?
        .with_timezone(&chrono::Utc);
    let mut score = Score::new(job.user_id.clone(), timestamp, activity, grading)
        .with_score(job.score_given, job.score_maximum);
    let canvas = target
        .lms
        .as_deref()
        .and_then(coursegate_lti::Lms::parse)
        .or_else(|| coursegate_lti::Lms::from_issuer(&target.issuer))
        == Some(coursegate_lti::Lms::Canvas);
    if canvas {
        // A completion is a new submission in Canvas's gradebook (dated by
        // the score's timestamp); progress updates are not.
        let submitted = matches!(
            activity,
            ActivityProgress::Completed | ActivityProgress::Submitted
        );
        score = score.with_canvas_submission(submitted, submitted.then_some(timestamp));
    }
    let client = ServiceClient::with_client(state.lti.http().clone());
    let mut fresh = false;
    loop {
        let token = service_token(state, w, &target, &scopes, fresh).await?;
        let lineitem = match &known {
            Some(u) => Ok(u.clone()),
            None => {
                let Some(container) = job.lineitems_url.as_deref() else {
                    return Err(ScoreFailure {
                        message: "the launch gave neither a line item nor a line items URL".into(),
                        retryable: false,
                    });
                };
                let mut item = LineItem::new(job.course_title.clone(), job.score_maximum);
                item.resource_id = Some(job.course_slug.clone());
                item.resource_link_id = Some(job.resource_link_id.clone());
                client
                    .find_or_create_line_item(&token, container, &item)
                    .await
                    .and_then(|li| {
                        li.id.ok_or_else(|| LtiError::ServiceResponseInvalid {
                            url: container.to_string(),
                            reason: "the created line item has no id".into(),
                        })
                    })
            }
        };
        let result = match lineitem {
            Ok(url) => {
                if known.is_none() {
                    let (rl, u, now) = (
                        job.resource_link_row_id.clone(),
                        url.clone(),
                        state.clock.now(),
                    );
                    state
                        .store
                        .write(move |tx| ags::save_lineitem(tx, now, &rl, &u))
                        .await?;
                }
                client.post_score(&token, &url, &score).await
            }
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => return Ok(Delivered::Accepted),
            // Moodle: a timestamp not newer than the stored grade. Our
            // timestamps only increase, so the platform already holds this
            // or a later score of this enrolment.
            Err(e) if e.status() == Some(409) => return Ok(Delivered::AlreadyNewer),
            Err(e) if e.is_unauthorized() && !fresh => {
                let (pid, t) = (target.platform_id.clone(), token.clone());
                state
                    .store
                    .write(move |tx| ags::forget_token(tx, &pid, &t))
                    .await?;
                fresh = true;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Runs [`deliver_due_scores`] every `every` (and again at once after a busy pass).
pub fn spawn_score_worker(
    state: web::Data<AppState>,
    worker: ScoreWorker,
    every: Duration,
) -> tokio::task::JoinHandle<()> {
    let state: Arc<AppState> = state.into_inner();
    tokio::spawn(async move {
        loop {
            match deliver_due_scores(&state, &worker).await {
                Ok(p) if p.sent + p.retry + p.dead > 0 => continue,
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "score worker pass failed; will retry"),
            }
            tokio::time::sleep(every).await;
        }
    })
}
