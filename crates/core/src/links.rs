//! The link door: magic links for learners and staff.
//!
//! Two kinds of learner link, chosen per course (`courses.link_policy`) and
//! overridable per issuance:
//! * **once**: a one-time sign-in link, short-lived; may be redeemed up to
//!   `max_redeems` times within `reuse_window` of its first redemption so a
//!   scanner that presses the button does not lock the learner out;
//! * **access**: a course-access link bound to one enrolment, reusable until
//!   the enrolment ends (capped at `access_max`) or the link is regenerated or
//!   revoked. Opened on a new device when older than `stepup_after`, it asks
//!   for a code sent to the learner's address first.
//!
//! Staff links are always one-time and short-lived.
//!
//! Reading a link ([`view`]) never changes whether it can be redeemed and
//! never signs anyone in; only [`redeem`] (the POST from the confirmation
//! page) does. Tokens are 256-bit, prefixed, and only their keyed hash is stored.

use chrono::{DateTime, Duration, Utc};
use coursegate_store::{
    models::{DeviceBinding, MagicLink, MagicLinkActivity, SigninCode},
    repo, Tx,
};
use serde::Serialize;
use serde_json::json;

use crate::{
    access::utc,
    audit::{self, Actor},
    courses::LinkPolicy,
    enrolments, events, learners,
    learners::IdentityRef,
    mailq,
    sessions::{self, ClientInfo, Destination, SessionPolicy, StartLearner, Started},
    tokens::{self, Secret},
    types::mask_email,
    CoreError,
};

/// Prefix of learner link tokens.
pub const LEARNER_PREFIX: &str = "cgl";
/// Prefix of staff link tokens.
pub const STAFF_PREFIX: &str = "cgt";
/// Hash purpose (domain separation) of link tokens.
const HASH_PURPOSE: &str = "link";

/// Every default of the link door. Change them in configuration
/// (`COURSEGATE_LINK_*`, see docs/magic-links.md).
#[derive(Debug, Clone, Copy)]
pub struct LinkSettings {
    /// Lifetime of a one-time learner link (15 min).
    pub once_ttl: Duration,
    /// Lifetime of a staff link (10 min).
    pub staff_ttl: Duration,
    /// Cap on a course-access link's lifetime (365 days; the enrolment end comes first).
    pub access_max: Duration,
    /// Redemptions of a one-time link allowed after the first (3 in total).
    pub max_redeems: i32,
    /// How long after the first redemption a one-time link may be redeemed again (10 min).
    pub reuse_window: Duration,
    /// Lifetime of a 6-digit code (10 min).
    pub code_ttl: Duration,
    /// Wrong codes allowed before the code is dead (5).
    pub code_attempts: i32,
    /// Age after which an access link opened on a new device needs a code (30 days).
    pub stepup_after: Duration,
    /// Self-service requests per address: 1 per minute and 5 per hour; per IP 30 per 5 minutes.
    pub per_address_minute: i32,
    pub per_address_hour: i32,
    pub per_ip_5min: i32,
}

impl Default for LinkSettings {
    fn default() -> Self {
        Self {
            once_ttl: Duration::minutes(15),
            staff_ttl: Duration::minutes(10),
            access_max: Duration::days(365),
            max_redeems: 3,
            reuse_window: Duration::minutes(10),
            code_ttl: Duration::minutes(10),
            code_attempts: 5,
            stepup_after: Duration::days(30),
            per_address_minute: 1,
            per_address_hour: 5,
            per_ip_5min: 30,
        }
    }
}

/// A freshly minted link. `token` exists only here and in the email.
#[derive(Clone)]
pub struct Issued {
    pub token: String,
    pub link: MagicLink,
    /// The outbox row of the email that carries the link, when one was queued.
    pub outbox_id: Option<String>,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued")
            .field("link_id", &self.link.id)
            .field("kind", &self.link.kind)
            .finish_non_exhaustive()
    }
}

impl Issued {
    /// The in-app path of the confirmation page.
    pub fn path(&self) -> String {
        format!("/l/{}", self.token)
    }
}

/// How to issue a learner link.
#[derive(Debug, Clone)]
pub struct IssueLearner {
    pub learner_id: String,
    pub destination: Destination,
    /// None = the course's policy (dashboard links are always one-time).
    pub kind: Option<LinkPolicy>,
    /// Enqueue the email in the same transaction.
    pub send: Option<SendOptions>,
}

/// What the email says beyond the link.
#[derive(Debug, Clone, Default)]
pub struct SendOptions {
    /// The public site root, e.g. `https://learn.example.com` (no trailing slash).
    pub base_url: String,
    /// "order 1234": why the learner got the mail.
    pub reference: Option<String>,
    /// A self-service request from this browser (keyed hash of its device
    /// id): a one-time link's mail then also carries a 6-digit code that
    /// completes the sign-in in that browser (cross-device, in-app browsers).
    pub code_for_browser: Option<String>,
}

fn hash(secret: &Secret, token: &str) -> String {
    secret.hash(HASH_PURPOSE, token)
}

fn created_by(actor: &Actor) -> String {
    match &actor.id {
        Some(id) => format!("{}:{id}", actor.kind),
        None => actor.kind.to_string(),
    }
}

fn fmt_time(t: DateTime<Utc>) -> String {
    t.format("%-d %B %Y at %H:%M UTC").to_string()
}

/// Issues a learner link (superseding the learner's older live links of the
/// same kind, and for access links of the same enrolment).
pub fn issue_learner(
    tx: &mut Tx,
    now: DateTime<Utc>,
    secret: &Secret,
    settings: &LinkSettings,
    actor: &Actor,
    req: IssueLearner,
) -> Result<Issued, CoreError> {
    let learner = learners::get(tx, &req.learner_id)?;
    let email = learner
        .email
        .clone()
        .ok_or_else(|| CoreError::invalid("email", "this learner has no email address"))?;
    let (kind, enrolment, course) = match req.destination.course_slug() {
        Some(slug) => {
            let (course, e) = enrolments::authorise(tx, now, &learner.id, slug)?;
            let kind = match req.kind {
                Some(k) => k,
                None => LinkPolicy::parse(&course.link_policy)?,
            };
            (kind, Some(e), Some(course))
        }
        None => {
            if req.kind == Some(LinkPolicy::Access) {
                return Err(CoreError::invalid(
                    "kind",
                    "a course-access link needs a course",
                ));
            }
            (LinkPolicy::Once, None, None)
        }
    };
    let expires = match kind {
        LinkPolicy::Once => now + settings.once_ttl,
        LinkPolicy::Access => {
            let cap = now + settings.access_max;
            match enrolment.as_ref().and_then(|e| e.expires_at) {
                Some(x) if utc(x) < cap => utc(x),
                _ => cap,
            }
        }
    };
    let n = now.naive_utc();
    let superseded = repo::links::supersede_learner_links(
        tx,
        &learner.id,
        kind.as_str(),
        match kind {
            LinkPolicy::Access => enrolment.as_ref().map(|e| e.id.as_str()),
            LinkPolicy::Once => None,
        },
        n,
    )?;
    let token = tokens::mint(LEARNER_PREFIX);
    let link = MagicLink {
        id: crate::ids::new_id(),
        token_hash: hash(secret, &token),
        kind: kind.as_str().into(),
        purpose: "learner".into(),
        subject_id: learner.id.clone(),
        enrolment_id: enrolment.as_ref().map(|e| e.id.clone()),
        destination: serde_json::to_string(&req.destination)
            .map_err(|e| CoreError::Internal(e.to_string()))?,
        email: email.clone(),
        expires_at: expires.naive_utc(),
        first_redeemed_at: None,
        redeem_count: 0,
        max_redeems: match kind {
            LinkPolicy::Once => settings.max_redeems,
            LinkPolicy::Access => 0,
        },
        superseded_at: None,
        revoked_at: None,
        created_by: created_by(actor),
        created_at: n,
    };
    repo::links::insert(tx, &link)?;
    audit::record(
        tx,
        now,
        actor,
        "link.issued",
        Some(("learner", &learner.id)),
        json!({
            "link_id": link.id, "kind": link.kind, "destination": req.destination,
            "expires_at": expires, "superseded": superseded,
        }),
    )?;
    let mut issued = Issued {
        token,
        link,
        outbox_id: None,
    };
    if let Some(send) = req.send {
        let url = format!("{}{}", send.base_url, issued.path());
        let (template, mut ctx) = match kind {
            LinkPolicy::Access => (
                "learner_link",
                json!({
                    "link": url,
                    "course": { "title": course.as_ref().map(|c| c.title.clone()).unwrap_or_default() },
                    "learner": { "name": learner.name, "email": email },
                    "reference": send.reference,
                    "expires_at": enrolment.as_ref().and_then(|e| e.expires_at).map(|x| fmt_time(utc(x))),
                    "signin_url": format!("{}/signin", send.base_url),
                }),
            ),
            LinkPolicy::Once => (
                "signin_link",
                json!({
                    "link": url,
                    "course": course.as_ref().map(|c| json!({ "title": c.title })),
                    "learner": { "name": learner.name, "email": email },
                    "expires_minutes": settings.once_ttl.num_minutes(),
                    "expires_at": fmt_time(expires),
                    "signin_url": format!("{}/signin", send.base_url),
                    "reference": send.reference,
                }),
            ),
        };
        if let (LinkPolicy::Once, Some(browser)) = (kind, send.code_for_browser.as_deref()) {
            let code = new_code(
                tx,
                now,
                secret,
                settings,
                "signin",
                browser,
                Some(&learner.id),
                Some(&issued.link.id),
                &req.destination,
            )?;
            ctx["code"] = json!(code);
            ctx["code_expires_minutes"] = json!(settings.code_ttl.num_minutes());
        }
        let outbox_id = mailq::enqueue(
            tx,
            now,
            mailq::Mail {
                template,
                to: &email,
                to_name: learner.name.as_deref(),
                context: ctx,
                link_id: Some(&issued.link.id),
                subject: ("learner", &learner.id),
            },
        )?;
        issued.outbox_id = Some(outbox_id);
    }
    Ok(issued)
}

/// Issues a one-time staff link (superseding the staff user's older ones).
pub fn issue_staff(
    tx: &mut Tx,
    now: DateTime<Utc>,
    secret: &Secret,
    settings: &LinkSettings,
    actor: &Actor,
    staff_id: &str,
    send: Option<&str>,
) -> Result<Issued, CoreError> {
    let staff = repo::staff::get(tx, staff_id)?.ok_or(CoreError::NotFound("staff user"))?;
    if !staff.active {
        return Err(CoreError::Forbidden(
            "this staff account is deactivated".into(),
        ));
    }
    let n = now.naive_utc();
    repo::links::supersede_staff_links(tx, &staff.id, n)?;
    let token = tokens::mint(STAFF_PREFIX);
    let expires = now + settings.staff_ttl;
    let link = MagicLink {
        id: crate::ids::new_id(),
        token_hash: hash(secret, &token),
        kind: "once".into(),
        purpose: "staff".into(),
        subject_id: staff.id.clone(),
        enrolment_id: None,
        destination: "{\"kind\":\"staff\"}".into(),
        email: staff.email.clone(),
        expires_at: expires.naive_utc(),
        first_redeemed_at: None,
        redeem_count: 0,
        max_redeems: 1,
        superseded_at: None,
        revoked_at: None,
        created_by: created_by(actor),
        created_at: n,
    };
    repo::links::insert(tx, &link)?;
    audit::record(
        tx,
        now,
        actor,
        "link.issued",
        Some(("staff", &staff.id)),
        json!({ "link_id": link.id, "kind": "once", "purpose": "staff", "expires_at": expires }),
    )?;
    let issued = Issued {
        token,
        link,
        outbox_id: None,
    };
    if let Some(base_url) = send {
        mailq::enqueue(
            tx,
            now,
            mailq::Mail {
                template: "staff_signin",
                to: &staff.email,
                to_name: staff.name.as_deref(),
                context: json!({
                    "link": format!("{base_url}{}", issued.path()),
                    "staff": { "name": staff.name, "email": staff.email, "role": staff.role },
                    "expires_minutes": settings.staff_ttl.num_minutes(),
                    "expires_at": fmt_time(expires),
                }),
                link_id: Some(&issued.link.id),
                subject: ("staff", &staff.id),
            },
        )?;
    }
    Ok(issued)
}

/// Why a link cannot be used (each with its own stable code).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkRefusal {
    Invalid,
    Revoked,
    Superseded,
    Expired,
    Used,
}

impl LinkRefusal {
    pub fn code(self) -> &'static str {
        match self {
            LinkRefusal::Invalid => "link_invalid",
            LinkRefusal::Revoked => "link_revoked",
            LinkRefusal::Superseded => "link_superseded",
            LinkRefusal::Expired => "link_expired",
            LinkRefusal::Used => "link_used",
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            LinkRefusal::Invalid => "This link is not valid. Check that you copied all of it, or ask for a new one.",
            LinkRefusal::Revoked => "This link has been withdrawn by the training provider.",
            LinkRefusal::Superseded => "A newer link has been sent since this one, so this one no longer works. Use the newest email, or get a fresh link.",
            LinkRefusal::Expired => "This link has expired.",
            LinkRefusal::Used => "This one-time link has already been used.",
        }
    }

    pub fn into_error(self) -> CoreError {
        CoreError::refused(self.code(), self.message())
    }
}

/// The redeemability rule for a link at `now` (no I/O).
pub fn check(
    link: &MagicLink,
    now: DateTime<Utc>,
    settings: &LinkSettings,
) -> Result<(), LinkRefusal> {
    if link.revoked_at.is_some() {
        return Err(LinkRefusal::Revoked);
    }
    if link.superseded_at.is_some() {
        return Err(LinkRefusal::Superseded);
    }
    let n = now.naive_utc();
    if link.kind == "once" {
        if let Some(first) = link.first_redeemed_at {
            if link.redeem_count >= link.max_redeems || n >= first + settings.reuse_window {
                return Err(LinkRefusal::Used);
            }
            return Ok(());
        }
    }
    if n >= link.expires_at {
        return Err(LinkRefusal::Expired);
    }
    Ok(())
}

/// Finds a link by its token (shape-checked first). `None` for anything unknown.
pub fn find(tx: &mut Tx, secret: &Secret, token: &str) -> Result<Option<MagicLink>, CoreError> {
    if !(tokens::looks_like(LEARNER_PREFIX, token) || tokens::looks_like(STAFF_PREFIX, token)) {
        return Ok(None);
    }
    Ok(repo::links::find_by_hash(tx, &hash(secret, token))?)
}

/// [`find`] for a use case that changes the link's counters (redemption):
/// the row stays locked until the transaction ends, so on PostgreSQL parallel
/// requests cannot each see "2 of 3 redemptions used" and all pass.
fn find_for_update(
    tx: &mut Tx,
    secret: &Secret,
    token: &str,
) -> Result<Option<MagicLink>, CoreError> {
    if !(tokens::looks_like(LEARNER_PREFIX, token) || tokens::looks_like(STAFF_PREFIX, token)) {
        return Ok(None);
    }
    Ok(repo::links::find_by_hash_for_update(
        tx,
        &hash(secret, token),
    )?)
}

fn destination_of(link: &MagicLink) -> Result<Option<Destination>, CoreError> {
    if link.purpose == "staff" {
        return Ok(None);
    }
    serde_json::from_str(&link.destination)
        .map(Some)
        .map_err(|e| CoreError::Internal(format!("link destination: {e}")))
}

/// What the confirmation page shows.
#[derive(Debug, Clone, Serialize)]
pub struct LinkView {
    pub link_id: String,
    pub purpose: String,
    pub kind: String,
    pub masked_email: String,
    pub course_title: Option<String>,
    pub site_area: String,
    /// True when pressing Continue will first ask for a code (new device, old link).
    pub needs_stepup: bool,
}

/// Heuristic: does this request look like a mail scanner rather than a person?
pub fn looks_like_scanner(client: &ClientInfo, accept_language: Option<&str>) -> bool {
    let ua = client
        .user_agent
        .as_deref()
        .unwrap_or("")
        .to_ascii_lowercase();
    ua.is_empty()
        || accept_language.is_none()
        || [
            "headless",
            "bot",
            "crawler",
            "spider",
            "scan",
            "preview",
            "python",
            "curl",
            "wget",
            "go-http",
            "java/",
            "safelinks",
            "barracuda",
            "mimecast",
            "proofpoint",
        ]
        .iter()
        .any(|w| ua.contains(w))
}

/// Reads a link for its confirmation page: records the open (telemetry and an
/// audit entry) and says what Continue will do. Never signs in and never
/// changes whether the link can be redeemed.
#[allow(clippy::too_many_arguments)]
pub fn view(
    tx: &mut Tx,
    now: DateTime<Utc>,
    secret: &Secret,
    settings: &LinkSettings,
    token: &str,
    device_hash: Option<&str>,
    client: &ClientInfo,
    scanner: bool,
) -> Result<LinkView, CoreError> {
    let link = find(tx, secret, token)?.ok_or(LinkRefusal::Invalid.into_error())?;
    repo::links::record_open(tx, &link.id, now.naive_utc(), scanner)?;
    audit::record(
        tx,
        now,
        &Actor {
            kind: "anonymous",
            id: None,
            ip: client.ip.clone(),
            user_agent: client.user_agent.clone(),
        },
        "link.viewed",
        Some(("link", &link.id)),
        json!({ "suspected_scanner": scanner, "state": check(&link, now, settings).err() }),
    )?;
    emit_link_event(
        tx,
        now,
        events::LINK_OPENED,
        &link,
        json!({ "suspected_scanner": scanner }),
    )?;
    check(&link, now, settings).map_err(LinkRefusal::into_error)?;
    let course_title = match destination_of(&link)?
        .as_ref()
        .and_then(|d| d.course_slug())
    {
        Some(slug) => repo::courses::get_by_slug(tx, slug)?.map(|c| c.title),
        None => None,
    };
    Ok(LinkView {
        needs_stepup: needs_stepup(tx, now, settings, &link, device_hash)?,
        link_id: link.id,
        site_area: if link.purpose == "staff" {
            "the staff area".into()
        } else {
            "your dashboard".into()
        },
        purpose: link.purpose,
        kind: link.kind,
        masked_email: mask_email(&link.email),
        course_title,
    })
}

fn needs_stepup(
    tx: &mut Tx,
    now: DateTime<Utc>,
    settings: &LinkSettings,
    link: &MagicLink,
    device_hash: Option<&str>,
) -> Result<bool, CoreError> {
    if link.kind != "access" || now.naive_utc() < link.created_at + settings.stepup_after {
        return Ok(false);
    }
    Ok(match device_hash {
        Some(d) => !repo::links::is_bound(tx, &link.id, d)?,
        None => true,
    })
}

/// Who pressed Continue.
#[derive(Debug, Clone)]
pub struct RedeemRequest {
    /// Keyed hash of the browser's device cookie (also the code binding).
    pub device_hash: String,
    pub client: ClientInfo,
    /// Mark the redemption as a suspected scanner (counted, audited).
    pub scanner: bool,
}

/// The outcome of pressing Continue.
#[derive(Debug)]
pub enum Redeemed {
    /// Signed in: set the cookie, go to `started.redirect`.
    Session { started: Started, staff: bool },
    /// A code was emailed; the page must ask for it.
    StepUp { masked_email: String },
}

/// Redeems a link (the POST from the confirmation page).
pub fn redeem(
    tx: &mut Tx,
    now: DateTime<Utc>,
    secret: &Secret,
    settings: &LinkSettings,
    policy: &SessionPolicy,
    token: &str,
    req: RedeemRequest,
) -> Result<Redeemed, CoreError> {
    let link = find_for_update(tx, secret, token)?.ok_or(LinkRefusal::Invalid.into_error())?;
    if let Err(r) = check(&link, now, settings) {
        audit::record(
            tx,
            now,
            &actor_of(&req.client),
            "link.refused",
            Some(("link", &link.id)),
            json!({ "reason": r.code() }),
        )?;
        return Err(r.into_error());
    }
    if needs_stepup(tx, now, settings, &link, Some(&req.device_hash))? {
        let learner = learners::get(tx, &link.subject_id)?;
        let dest = destination_of(&link)?.unwrap_or(Destination::Dashboard);
        // The enrolment must still be active before we bother the inbox.
        if let Some(slug) = dest.course_slug() {
            enrolments::authorise(tx, now, &learner.id, slug)?;
        }
        let code = new_code(
            tx,
            now,
            secret,
            settings,
            "stepup",
            &req.device_hash,
            Some(&learner.id),
            Some(&link.id),
            &dest,
        )?;
        let course_title = match dest.course_slug() {
            Some(s) => repo::courses::get_by_slug(tx, s)?.map(|c| c.title),
            None => None,
        };
        mailq::enqueue(
            tx,
            now,
            mailq::Mail {
                template: "stepup_code",
                to: &link.email,
                to_name: learner.name.as_deref(),
                context: json!({
                    "code": code,
                    "learner": { "name": learner.name },
                    "course": course_title.map(|t| json!({ "title": t })),
                    "expires_minutes": settings.code_ttl.num_minutes(),
                }),
                link_id: None,
                subject: ("learner", &learner.id),
            },
        )?;
        audit::record(
            tx,
            now,
            &actor_of(&req.client),
            "link.stepup_required",
            Some(("link", &link.id)),
            json!({}),
        )?;
        return Ok(Redeemed::StepUp {
            masked_email: mask_email(&link.email),
        });
    }
    finish(tx, now, secret, policy, link, &req, "link")
}

/// Completes a step-up: the code sent for this link to this browser.
#[allow(clippy::too_many_arguments)]
pub fn redeem_with_code(
    tx: &mut Tx,
    now: DateTime<Utc>,
    secret: &Secret,
    settings: &LinkSettings,
    policy: &SessionPolicy,
    token: &str,
    code: &str,
    req: RedeemRequest,
) -> Result<Redeemed, CoreError> {
    let link = find_for_update(tx, secret, token)?.ok_or(LinkRefusal::Invalid.into_error())?;
    check(&link, now, settings).map_err(LinkRefusal::into_error)?;
    let row = verify_code(
        tx,
        now,
        secret,
        settings,
        "stepup",
        &req.device_hash,
        code,
        &req.client,
    )?;
    if row.link_id.as_deref() != Some(link.id.as_str()) {
        return Err(CoreError::refused(
            "code_invalid",
            "This code is not for this link.",
        ));
    }
    audit::record(
        tx,
        now,
        &actor_of(&req.client),
        "link.stepup_passed",
        Some(("link", &link.id)),
        json!({}),
    )?;
    finish(tx, now, secret, policy, link, &req, "link+code")
}

fn actor_of(client: &ClientInfo) -> Actor {
    Actor {
        kind: "anonymous",
        id: None,
        ip: client.ip.clone(),
        user_agent: client.user_agent.clone(),
    }
}

fn finish(
    tx: &mut Tx,
    now: DateTime<Utc>,
    secret: &Secret,
    policy: &SessionPolicy,
    mut link: MagicLink,
    req: &RedeemRequest,
    via: &str,
) -> Result<Redeemed, CoreError> {
    let n = now.naive_utc();
    let (started, staff) = if link.purpose == "staff" {
        (
            sessions::start_staff_session(
                tx,
                now,
                secret,
                policy,
                &link.subject_id,
                via,
                &req.client,
            )?,
            true,
        )
    } else {
        let dest = destination_of(&link)?.unwrap_or(Destination::Dashboard);
        let started = sessions::start_learner_session(
            tx,
            now,
            secret,
            policy,
            StartLearner {
                identity: IdentityRef::Learner {
                    learner_id: link.subject_id.clone(),
                },
                destination: dest,
                via: via.to_string(),
                client: req.client.clone(),
            },
        )?;
        (started, false)
    };
    link.redeem_count += 1;
    if link.first_redeemed_at.is_none() {
        link.first_redeemed_at = Some(n);
    }
    repo::links::update(tx, &link)?;
    repo::links::mark_redeemed(tx, &link.id, n)?;
    repo::links::bind(
        tx,
        &DeviceBinding {
            id: crate::ids::new_id(),
            link_id: link.id.clone(),
            device_hash: req.device_hash.clone(),
            created_at: n,
        },
    )?;
    if req.scanner {
        repo::links::record_open(tx, &link.id, n, true)?;
    }
    audit::record(
        tx,
        now,
        &Actor {
            kind: if staff { "staff" } else { "learner" },
            id: Some(link.subject_id.clone()),
            ip: req.client.ip.clone(),
            user_agent: req.client.user_agent.clone(),
        },
        "link.redeemed",
        Some(("link", &link.id)),
        json!({
            "session_id": started.session_id, "redemption": link.redeem_count,
            "suspected_scanner": req.scanner, "via": via,
        }),
    )?;
    emit_link_event(
        tx,
        now,
        events::LINK_REDEEMED,
        &link,
        json!({ "redemption": link.redeem_count, "via": via }),
    )?;
    Ok(Redeemed::Session { started, staff })
}

/// Creates a 6-digit code bound to a browser; retires that browser's older
/// codes of the same purpose. Returns the plaintext code (for the mail only).
#[allow(clippy::too_many_arguments)]
pub fn new_code(
    tx: &mut Tx,
    now: DateTime<Utc>,
    secret: &Secret,
    settings: &LinkSettings,
    purpose: &str,
    browser_hash: &str,
    learner_id: Option<&str>,
    link_id: Option<&str>,
    destination: &Destination,
) -> Result<String, CoreError> {
    let n = now.naive_utc();
    repo::links::retire_codes(tx, browser_hash, purpose, n)?;
    let code = tokens::numeric_code(6);
    let id = crate::ids::new_id();
    repo::links::insert_code(
        tx,
        &SigninCode {
            code_hash: secret.hash("code", &format!("{id}:{code}")),
            id,
            purpose: purpose.to_string(),
            browser_hash: browser_hash.to_string(),
            learner_id: learner_id.map(str::to_string),
            link_id: link_id.map(str::to_string),
            destination: serde_json::to_string(destination)
                .map_err(|e| CoreError::Internal(e.to_string()))?,
            attempts: 0,
            expires_at: (now + settings.code_ttl).naive_utc(),
            used_at: None,
            created_at: n,
        },
    )?;
    Ok(code)
}

/// Checks a code typed into the browser bound to it. Wrong codes count
/// against the code (and are audited); the last allowed wrong code kills it.
#[allow(clippy::too_many_arguments)]
pub fn verify_code(
    tx: &mut Tx,
    now: DateTime<Utc>,
    secret: &Secret,
    settings: &LinkSettings,
    purpose: &str,
    browser_hash: &str,
    code: &str,
    client: &ClientInfo,
) -> Result<SigninCode, CoreError> {
    let n = now.naive_utc();
    let mut row =
        repo::links::latest_code_for_update(tx, browser_hash, purpose)?.ok_or_else(|| {
            CoreError::refused(
                "code_missing",
                "There is no code waiting for this browser. Ask for a new one.",
            )
        })?;
    if n >= row.expires_at {
        return Err(CoreError::refused(
            "code_expired",
            "This code has expired. Ask for a new one.",
        ));
    }
    if row.attempts >= settings.code_attempts {
        return Err(CoreError::refused(
            "code_locked",
            "Too many wrong codes. Ask for a new one.",
        ));
    }
    let code = code.trim();
    let ok = code.len() == 6
        && tokens::ct_eq(
            &secret.hash("code", &format!("{}:{code}", row.id)),
            &row.code_hash,
        );
    if !ok {
        row.attempts += 1;
        repo::links::update_code(tx, &row)?;
        audit::record(
            tx,
            now,
            &actor_of(client),
            "code.failed",
            row.learner_id.as_deref().map(|l| ("learner", l)),
            json!({ "purpose": purpose, "attempts": row.attempts }),
        )?;
        if row.attempts >= settings.code_attempts {
            return Err(CoreError::refused(
                "code_locked",
                "Too many wrong codes. Ask for a new one.",
            ));
        }
        return Err(CoreError::refused(
            "code_invalid",
            "That code is not right. Check the email and try again.",
        ));
    }
    row.used_at = Some(n);
    repo::links::update_code(tx, &row)?;
    Ok(row)
}

/// Revokes one link.
pub fn revoke(
    tx: &mut Tx,
    now: DateTime<Utc>,
    link_id: &str,
    actor: &Actor,
) -> Result<MagicLink, CoreError> {
    let mut link = repo::links::get(tx, link_id)?.ok_or(CoreError::NotFound("link"))?;
    if link.revoked_at.is_none() {
        link.revoked_at = Some(now.naive_utc());
        repo::links::update(tx, &link)?;
        audit::record(
            tx,
            now,
            actor,
            "link.revoked",
            Some(("link", &link.id)),
            json!({ "learner_or_staff": link.subject_id }),
        )?;
    }
    Ok(link)
}

/// Revokes every link of a learner and signs them out everywhere.
pub fn revoke_all_for_learner(
    tx: &mut Tx,
    now: DateTime<Utc>,
    learner_id: &str,
    actor: &Actor,
) -> Result<usize, CoreError> {
    let n = repo::links::revoke_all_for_learner(tx, learner_id, now.naive_utc())?;
    audit::record(
        tx,
        now,
        actor,
        "link.revoked_all",
        Some(("learner", learner_id)),
        json!({ "count": n }),
    )?;
    sessions::end_all_for_learner(tx, now, learner_id, actor)?;
    Ok(n)
}

/// A link as staff see it.
#[derive(Debug, Clone, Serialize)]
pub struct LinkStatus {
    pub id: String,
    pub kind: String,
    pub course: Option<String>,
    /// issued | sent | opened | opened_by_scanner | redeemed | expired | superseded | revoked | used
    pub status: &'static str,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub redeem_count: i32,
    pub opened_count: i32,
    pub sent_at: Option<DateTime<Utc>>,
}

/// The status word for a link and its activity.
pub fn status_of(
    link: &MagicLink,
    act: Option<&MagicLinkActivity>,
    now: DateTime<Utc>,
    settings: &LinkSettings,
) -> &'static str {
    match check(link, now, settings) {
        Err(LinkRefusal::Revoked) => return "revoked",
        Err(LinkRefusal::Superseded) => return "superseded",
        Err(LinkRefusal::Expired) => return "expired",
        Err(LinkRefusal::Used) => return "used",
        Err(LinkRefusal::Invalid) | Ok(()) => {}
    }
    if link.redeem_count > 0 {
        return "redeemed";
    }
    match act {
        Some(a) if a.opened_count > 0 && a.suspected_scanner => "opened_by_scanner",
        Some(a) if a.opened_count > 0 => "opened",
        Some(a) if a.sent_at.is_some() => "sent",
        _ => "issued",
    }
}

/// Emits a domain event about a learner link (staff links have none):
/// `link_id`, `learner_id`, `enrolment_id`, `course`, `kind`, plus `extra`.
///
/// Link events exist only to be published as webhooks, and they are the
/// busiest events there are (every confirmation page, every redemption), so
/// one is written only while an active endpoint subscribes to its type. An
/// endpoint added later receives the link events that happen after it.
pub fn emit_link_event(
    tx: &mut Tx,
    now: DateTime<Utc>,
    topic: &str,
    link: &MagicLink,
    extra: serde_json::Value,
) -> Result<(), CoreError> {
    if link.purpose != "learner" || !crate::webhooks::has_subscriber(tx, topic)? {
        return Ok(());
    }
    let course = destination_of(link)?.and_then(|d| d.course_slug().map(str::to_string));
    let mut data = json!({
        "link_id": link.id,
        "learner_id": link.subject_id,
        "enrolment_id": link.enrolment_id,
        "course": course,
        "kind": link.kind,
    });
    if let (Some(d), Some(x)) = (data.as_object_mut(), extra.as_object()) {
        for (k, v) in x {
            d.insert(k.clone(), v.clone());
        }
    }
    events::emit(tx, now, topic, data)?;
    Ok(())
}

fn status_row(
    tx: &mut Tx,
    now: DateTime<Utc>,
    settings: &LinkSettings,
    l: &MagicLink,
) -> Result<LinkStatus, CoreError> {
    let act = repo::links::activity(tx, &l.id)?;
    let course = destination_of(l)?.and_then(|d| d.course_slug().map(str::to_string));
    Ok(LinkStatus {
        status: status_of(l, act.as_ref(), now, settings),
        id: l.id.clone(),
        kind: l.kind.clone(),
        course,
        created_at: utc(l.created_at),
        expires_at: utc(l.expires_at),
        redeem_count: l.redeem_count,
        opened_count: act.as_ref().map(|a| a.opened_count).unwrap_or(0),
        sent_at: act.and_then(|a| a.sent_at).map(utc),
    })
}

/// One learner link's status (staff links are not found here).
pub fn status(
    tx: &mut Tx,
    now: DateTime<Utc>,
    settings: &LinkSettings,
    link_id: &str,
) -> Result<(MagicLink, LinkStatus), CoreError> {
    if !crate::ids::is_uuid(link_id) {
        return Err(CoreError::NotFound("link"));
    }
    let l = repo::links::get(tx, link_id)?
        .filter(|l| l.purpose == "learner")
        .ok_or(CoreError::NotFound("link"))?;
    let s = status_row(tx, now, settings, &l)?;
    Ok((l, s))
}

/// A learner's links with their status, newest first.
pub fn statuses(
    tx: &mut Tx,
    now: DateTime<Utc>,
    settings: &LinkSettings,
    learner_id: &str,
) -> Result<Vec<LinkStatus>, CoreError> {
    let mut out = Vec::new();
    for l in repo::links::of_learner(tx, learner_id, 50)? {
        out.push(status_row(tx, now, settings, &l)?);
    }
    Ok(out)
}

/// "Send me a fresh link" from a link that no longer works. The holder of the
/// old token gets a new one-time link at the address the old one went to (or
/// a fresh staff link), subject to the per-address limits. Always `Ok` so the
/// page is the same whatever happened.
#[allow(clippy::too_many_arguments)]
pub fn request_fresh(
    tx: &mut Tx,
    now: DateTime<Utc>,
    secret: &Secret,
    settings: &LinkSettings,
    base_url: &str,
    token: &str,
    browser_hash: &str,
    client: &ClientInfo,
) -> Result<(), CoreError> {
    let Some(link) = find(tx, secret, token)? else {
        return Ok(());
    };
    // Even for a revoked link: the fresh link goes to the inbox, not to the
    // holder of the old token, and it needs an active enrolment.
    if !crate::signin::allowed(tx, now, secret, settings, &link.email, client.ip.as_deref())? {
        return Ok(());
    }
    let actor = actor_of(client);
    if link.purpose == "staff" {
        issue_staff(
            tx,
            now,
            secret,
            settings,
            &actor,
            &link.subject_id,
            Some(base_url),
        )?;
        return Ok(());
    }
    let dest = destination_of(&link)?.unwrap_or(Destination::Dashboard);
    let r = issue_learner(
        tx,
        now,
        secret,
        settings,
        &actor,
        IssueLearner {
            learner_id: link.subject_id.clone(),
            destination: dest,
            kind: Some(LinkPolicy::Once),
            send: Some(SendOptions {
                base_url: base_url.to_string(),
                reference: None,
                code_for_browser: Some(browser_hash.to_string()),
            }),
        },
    );
    match r {
        Ok(_) => Ok(()),
        // Enrolment ended or course gone: say nothing different.
        Err(CoreError::Access(_) | CoreError::NotFound(_) | CoreError::Invalid { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}
