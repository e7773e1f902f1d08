//! The LTI door's domain side: registrations, single-use login state and
//! nonces kept in the database (so any instance can finish a login another
//! began), launch completion into the shared core, the flight recorder and
//! the new-window handoff ticket.
//!
//! Token verification itself (signatures, claims) lives in `coursegate-lti`;
//! the server verifies first (network I/O for keys happens outside any
//! transaction), then calls [`complete_launch`] with the verified facts.

use std::collections::hash_map::{Entry, HashMap};

use chrono::{DateTime, Duration, Utc};
use coursegate_store::{
    models::{
        LtiDeepLinkRequest, LtiDeployment, LtiLaunch, LtiLoginState, LtiPlatform, LtiResourceLink,
        LtiTicket,
    },
    repo, Tx,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::{
    audit::{self, Actor},
    enrolments::{self, Grant, Source},
    ids::new_id,
    learners,
    sessions::{self, ClientInfo, Destination, Opening, SessionPolicy, Started},
    tokens::{self, Secret},
    CoreError,
};

/// How long a login may take between initiation and the id_token POST.
pub const LOGIN_TTL_MINUTES: i64 = 10;
/// Flight records are kept this long.
pub const FLIGHT_RECORD_DAYS: i64 = 30;
/// A new-window handoff ticket is valid this long.
pub const TICKET_TTL_MINUTES: i64 = 5;

/// What to do with a deployment_id the tool has not seen before.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeploymentPolicy {
    /// Refuse the launch.
    Reject,
    /// Record it as pending and refuse until a staff member approves it.
    Pending,
}

impl DeploymentPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            DeploymentPolicy::Reject => "reject",
            DeploymentPolicy::Pending => "pending",
        }
    }

    pub fn parse(s: &str) -> Result<Self, CoreError> {
        match s {
            "reject" => Ok(Self::Reject),
            "pending" => Ok(Self::Pending),
            _ => Err(CoreError::invalid(
                "unknown_deployments",
                "must be \"reject\" or \"pending\"",
            )),
        }
    }
}

#[derive(Debug, Clone)]
pub struct NewPlatform {
    pub issuer: String,
    pub client_id: String,
    pub name: Option<String>,
    pub auth_url: String,
    pub token_url: String,
    pub jwks_url: String,
    pub audience: Option<String>,
    pub customer: Option<String>,
    pub lms: Option<String>,
    pub unknown_deployments: DeploymentPolicy,
    pub deployment_ids: Vec<String>,
    /// Audiences the platform's id_tokens may name besides our client_id.
    pub trusted_audiences: Vec<String>,
}

/// URLs must be https, except loopback hosts (development and tests).
pub fn validate_url(field: &'static str, s: &str) -> Result<String, CoreError> {
    let s = s.trim();
    let u =
        url::Url::parse(s).map_err(|_| CoreError::invalid(field, format!("{s:?} is not a URL")))?;
    let host = u.host_str().unwrap_or("");
    let loopback = matches!(host, "localhost" | "127.0.0.1" | "[::1]" | "::1");
    match u.scheme() {
        "https" => Ok(s.to_string()),
        "http" if loopback => Ok(s.to_string()),
        _ => Err(CoreError::invalid(field, "must be an https:// URL")),
    }
}

/// Checks a registration's trusted audiences and keeps them one per line
/// (`None` for none). Our own client_id is always accepted, so it is not
/// listed; duplicates are dropped.
pub fn trusted_audiences_text(
    client_id: &str,
    list: &[String],
) -> Result<Option<String>, CoreError> {
    let mut out: Vec<String> = Vec::new();
    for a in list.iter().map(|a| a.trim()).filter(|a| !a.is_empty()) {
        if a.len() > 1000 {
            return Err(CoreError::invalid(
                "trusted_audience",
                "an audience is too long",
            ));
        }
        if a.chars().any(char::is_whitespace) {
            return Err(CoreError::invalid(
                "trusted_audience",
                format!("{a:?} contains a space; put one audience per line"),
            ));
        }
        if a == client_id || out.iter().any(|o| o == a) {
            continue;
        }
        out.push(a.to_string());
    }
    if out.len() > 20 {
        return Err(CoreError::invalid(
            "trusted_audience",
            "at most 20 audiences",
        ));
    }
    Ok((!out.is_empty()).then(|| out.join("\n")))
}

/// A registration's trusted audiences as a list.
pub fn trusted_audiences(p: &LtiPlatform) -> Vec<String> {
    p.trusted_audiences
        .as_deref()
        .unwrap_or("")
        .lines()
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(str::to_string)
        .collect()
}

fn required(field: &'static str, s: &str) -> Result<String, CoreError> {
    let s = s.trim();
    if s.is_empty() {
        Err(CoreError::invalid(field, "is required"))
    } else if s.len() > 1000 {
        Err(CoreError::invalid(field, "is too long"))
    } else {
        Ok(s.to_string())
    }
}

/// Registers a platform (issuer + client_id) and its deployments.
pub fn add_platform(
    tx: &mut Tx,
    now: DateTime<Utc>,
    p: NewPlatform,
) -> Result<(LtiPlatform, Vec<LtiDeployment>), CoreError> {
    let issuer = required("issuer", &p.issuer)?;
    url::Url::parse(&issuer).map_err(|_| {
        CoreError::invalid(
            "issuer",
            "must be the platform's issuer URL, exactly as it appears in its id_tokens",
        )
    })?;
    let client_id = required("client_id", &p.client_id)?;
    if repo::lti::find_platform(tx, &issuer, &client_id)?.is_some() {
        return Err(CoreError::Conflict(format!(
            "a platform with issuer {issuer} and client_id {client_id} is already registered"
        )));
    }
    let trusted_audiences = trusted_audiences_text(&client_id, &p.trusted_audiences)?;
    let n = now.naive_utc();
    let platform = LtiPlatform {
        id: new_id(),
        name: p
            .name
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| {
                url::Url::parse(&issuer)
                    .ok()
                    .and_then(|u| u.host_str().map(str::to_string))
                    .unwrap_or_else(|| issuer.clone())
            }),
        issuer,
        client_id,
        auth_url: validate_url("auth_url", &p.auth_url)?,
        token_url: validate_url("token_url", &p.token_url)?,
        jwks_url: validate_url("jwks_url", &p.jwks_url)?,
        audience: p
            .audience
            .map(|a| a.trim().to_string())
            .filter(|a| !a.is_empty()),
        customer: p.customer.filter(|c| !c.trim().is_empty()),
        lms: p.lms.filter(|c| !c.trim().is_empty()),
        unknown_deployments: p.unknown_deployments.as_str().to_string(),
        active: true,
        created_at: n,
        updated_at: n,
        trusted_audiences,
    };
    repo::lti::insert_platform(tx, &platform)?;
    let mut deployments = Vec::new();
    for d in p.deployment_ids {
        deployments.push(add_deployment(tx, now, &platform.id, &d, "active")?);
    }
    Ok((platform, deployments))
}

pub fn add_deployment(
    tx: &mut Tx,
    now: DateTime<Utc>,
    platform_id: &str,
    deployment_id: &str,
    status: &str,
) -> Result<LtiDeployment, CoreError> {
    let deployment_id = required("deployment_id", deployment_id)?;
    if let Some(mut d) = repo::lti::find_deployment(tx, platform_id, &deployment_id)? {
        if d.status != status && status == "active" {
            d.status = status.to_string();
            d.updated_at = now.naive_utc();
            repo::lti::update_deployment(tx, &d)?;
        }
        return Ok(d);
    }
    let n = now.naive_utc();
    let d = LtiDeployment {
        id: new_id(),
        platform_id: platform_id.to_string(),
        deployment_id,
        status: status.to_string(),
        name: None,
        created_at: n,
        updated_at: n,
    };
    repo::lti::insert_deployment(tx, &d)?;
    Ok(d)
}

/// Login initiation parameters, already parsed by the protocol crate.
#[derive(Debug, Clone)]
pub struct LoginRequest {
    pub issuer: String,
    pub client_id: Option<String>,
    pub deployment_hint: Option<String>,
    pub target_link_uri: String,
    pub storage_target: Option<String>,
}

/// A login in progress: the state (for the redirect; only its hash is kept)
/// and the nonce the id_token must carry.
#[derive(Clone)]
pub struct LoginStarted {
    pub platform: LtiPlatform,
    pub state: String,
    pub nonce: String,
}

impl std::fmt::Debug for LoginStarted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginStarted")
            .field("platform", &self.platform.id)
            .finish_non_exhaustive()
    }
}

/// Finds the registration a login or launch refers to.
pub fn resolve_platform(
    tx: &mut Tx,
    issuer: &str,
    client_id: Option<&str>,
) -> Result<LtiPlatform, CoreError> {
    let p = match client_id {
        Some(c) => repo::lti::find_platform(tx, issuer, c)?.ok_or_else(|| {
            CoreError::refused(
                "platform_unknown",
                format!("No platform is registered with issuer {issuer} and client_id {c}."),
            )
        })?,
        None => {
            let mut all = repo::lti::platforms_of_issuer(tx, issuer)?;
            match all.len() {
                0 => {
                    return Err(CoreError::refused(
                        "platform_unknown",
                        format!("No platform is registered with issuer {issuer}."),
                    ))
                }
                1 => all.remove(0),
                _ => {
                    return Err(CoreError::refused(
                        "client_id_required",
                        format!("Issuer {issuer} has several registrations; the login request must carry client_id."),
                    ))
                }
            }
        }
    };
    if !p.active {
        return Err(CoreError::refused(
            "platform_inactive",
            "This platform registration is disabled.",
        ));
    }
    Ok(p)
}

/// Starts a login for the registration [`resolve_platform`] found: stores
/// single-use state and nonce server-side, in one INSERT (so
/// [`coursegate_store::Store::write_one`] may run it). The login's flight
/// record is its launch's (or, if no launch comes, the one
/// [`purge_expired`] writes): a login that succeeds writes nothing else.
pub fn begin_login(
    tx: &mut Tx,
    now: DateTime<Utc>,
    secret: &Secret,
    platform: LtiPlatform,
    req: &LoginRequest,
) -> Result<LoginStarted, CoreError> {
    let state = tokens::mint_ordered("lst");
    let nonce = tokens::mint_ordered("lno");
    let n = now.naive_utc();
    repo::lti::insert_login_state(
        tx,
        &LtiLoginState {
            id: new_id(),
            state_hash: secret.hash_token("lti_state", &state),
            nonce: nonce.clone(),
            platform_id: platform.id.clone(),
            target_link_uri: req.target_link_uri.clone(),
            deployment_hint: req.deployment_hint.clone(),
            storage_target: req.storage_target.clone(),
            created_at: n,
            expires_at: (now + Duration::minutes(LOGIN_TTL_MINUTES)).naive_utc(),
            used_at: None,
        },
    )?;
    Ok(LoginStarted {
        platform,
        state,
        nonce,
    })
}

/// Looks up the login a launch's `state` refers to, with its platform, in
/// one query (read-only; [`coursegate_store::Store::read_one`] may run it):
/// unknown, replayed and expired states are distinct refusals.
pub fn find_login(
    tx: &mut Tx,
    now: DateTime<Utc>,
    secret: &Secret,
    state: &str,
) -> Result<(LtiLoginState, LtiPlatform), CoreError> {
    if state.is_empty() {
        return Err(CoreError::refused(
            "state_missing",
            "The launch carried no state parameter.",
        ));
    }
    let (s, p) = repo::lti::find_login_state_with_platform(tx, &secret.hash_token("lti_state", state))?
        .ok_or_else(|| {
        CoreError::refused(
            "state_unknown",
            "The launch's state does not match any login this tool started. Start the activity again from the course.",
        )
    })?;
    if s.used_at.is_some() {
        return Err(CoreError::refused(
            "state_replayed",
            "This launch was already used. Start the activity again from the course.",
        ));
    }
    if now.naive_utc() >= s.expires_at {
        return Err(CoreError::refused(
            "state_expired",
            format!("The login took longer than {LOGIN_TTL_MINUTES} minutes. Start the activity again from the course."),
        ));
    }
    Ok((s, p))
}

/// Facts of a verified id_token that the core needs.
#[derive(Debug, Clone, Default)]
pub struct VerifiedLaunch {
    pub login_state_id: String,
    pub nonce: String,
    pub deployment_id: String,
    /// LtiResourceLinkRequest | LtiDeepLinkingRequest | …
    pub message_type: String,
    pub sub: String,
    pub name: Option<String>,
    pub email: Option<String>,
    pub roles: Vec<String>,
    pub is_instructor: bool,
    pub context_id: Option<String>,
    pub context_title: Option<String>,
    pub resource_link_id: Option<String>,
    pub resource_link_title: Option<String>,
    /// `custom.course`: the slug of the course to open.
    pub custom_course: Option<String>,
    pub lineitem_url: Option<String>,
    pub lineitems_url: Option<String>,
    pub ags_scopes: Vec<String>,
    pub nrps_url: Option<String>,
    /// cookie | partitioned | storage | ticket | none
    pub state_path: String,
    /// Deep Linking request settings (LtiDeepLinkingRequest only).
    pub deep_link: Option<DeepLinkSettings>,
}

/// What a Deep Linking response must honour.
#[derive(Debug, Clone, Default)]
pub struct DeepLinkSettings {
    pub return_url: String,
    pub data: Option<String>,
    pub accept_multiple: bool,
    pub accept_lineitem: bool,
}

/// How long an instructor may take to pick content.
pub const DEEP_LINK_TTL_MINUTES: i64 = 60;

/// Where a completed launch goes. Its session is not written yet: the
/// caller writes it with the launch's flight record and continue ticket
/// ([`finish_launch`]).
#[derive(Debug)]
pub enum LaunchResult {
    /// A learner or instructor session, sent to its destination.
    Session {
        opening: Opening,
        course_slug: Option<String>,
        learner_id: String,
        resource_link_id: Option<String>,
        instructor: bool,
    },
    /// A Deep Linking request by an instructor: a session plus the stored
    /// request the picker answers.
    DeepLinking {
        opening: Opening,
        learner_id: String,
        request_id: String,
    },
}

/// The session of an LTI launch that lands on a page of the LTI door itself
/// (instructor view, picker, Deep Linking) rather than in a course the
/// learner is enrolled in, not yet written. `detail` goes into the session's
/// audit entry.
fn prepare_lti_session(
    now: DateTime<Utc>,
    secret: &Secret,
    policy: &SessionPolicy,
    learner_id: &str,
    client: &ClientInfo,
    detail: serde_json::Map<String, Value>,
) -> Opening {
    sessions::prepare_learner_session(
        now,
        secret,
        policy,
        learner_id,
        &Destination::Dashboard,
        "lti",
        client,
        detail,
    )
}

/// What the audit entry of a launch's session says of the launch.
fn launch_detail(
    platform_id: &str,
    v: &VerifiedLaunch,
    course: Option<&str>,
) -> serde_json::Map<String, Value> {
    let mut m = serde_json::Map::new();
    m.insert("platform".into(), json!(platform_id));
    m.insert("deployment_id".into(), json!(v.deployment_id));
    m.insert("message_type".into(), json!(v.message_type));
    m.insert("state_path".into(), json!(v.state_path));
    m.insert("instructor".into(), json!(v.is_instructor));
    if let Some(c) = course {
        m.insert("course".into(), json!(c));
    }
    m
}

/// Completes a verified launch in one transaction: consumes the login state
/// (and with it the nonce: each nonce is issued with exactly one state, the
/// verification has checked the id_token carries that one, and the state is
/// used up here at most once, so no nonce is ever accepted twice; a
/// separate row per nonce would only repeat that), checks the deployment, links the identity, maps the resource link to a
/// course, upserts the enrolment and starts the session.
///
/// `platform` is the registration [`find_login`] returned for this launch's
/// state moments before (it is not read again).
pub fn complete_launch(
    tx: &mut Tx,
    now: DateTime<Utc>,
    secret: &Secret,
    policy: &SessionPolicy,
    platform: &LtiPlatform,
    v: &VerifiedLaunch,
    client: &ClientInfo,
) -> Result<LaunchResult, CoreError> {
    let n = now.naive_utc();
    // One conditional UPDATE: of two launches racing with one state (on any
    // instances), exactly one gets the row.
    if !repo::lti::consume_login_state(tx, &v.login_state_id, n)? {
        return Err(CoreError::refused(
            "state_replayed",
            "This launch was already used. Start the activity again from the course.",
        ));
    }
    match repo::lti::find_deployment(tx, &platform.id, &v.deployment_id)? {
        Some(d) if d.status == "active" => {}
        Some(d) if d.status == "pending" => {
            return Err(CoreError::refused(
                "deployment_pending",
                format!(
                    "Deployment {} is waiting for approval by the tool's staff.",
                    d.deployment_id
                ),
            ))
        }
        Some(d) => {
            return Err(CoreError::refused(
                "deployment_disabled",
                format!("Deployment {} is disabled.", d.deployment_id),
            ));
        }
        None => {
            return Err(match platform.unknown_deployments.as_str() {
                "pending" => CoreError::refused(
                    "deployment_pending",
                    format!(
                        "Deployment {} is new; it is waiting for approval by the tool's staff.",
                        v.deployment_id
                    ),
                ),
                _ => CoreError::refused(
                    "deployment_unknown",
                    format!(
                        "Deployment {} is not registered for this platform.",
                        v.deployment_id
                    ),
                ),
            });
        }
    }
    let learner = learners::upsert_by_lti(
        tx,
        now,
        &platform.issuer,
        &platform.client_id,
        &v.sub,
        v.email.as_deref(),
        v.name.as_deref(),
    )?
    .learner;

    // Resource link → course.
    let mut course = None;
    let mut link_row = None;
    if let Some(rl) = &v.resource_link_id {
        let (mut row, mapped) = match repo::lti::find_resource_link_with_course(
            tx,
            &platform.id,
            &v.deployment_id,
            rl,
        )? {
            Some(found) => found,
            None => {
                let r = LtiResourceLink {
                    id: new_id(),
                    platform_id: platform.id.clone(),
                    deployment_id: v.deployment_id.clone(),
                    context_id: v.context_id.clone(),
                    context_title: v.context_title.clone(),
                    resource_link_id: rl.clone(),
                    title: v.resource_link_title.clone(),
                    course_id: None,
                    lineitem_url: None,
                    lineitems_url: None,
                    ags_scopes: None,
                    nrps_url: None,
                    created_at: n,
                    updated_at: n,
                };
                repo::lti::insert_resource_link(tx, &r)?;
                (r, None)
            }
        };
        let before = row.clone();
        if let Some(slug) = &v.custom_course {
            // Usually the course the link is already mapped to.
            let wanted = match mapped.as_ref().filter(|c| &c.slug == slug) {
                Some(c) => Some(c.clone()),
                None => repo::courses::get_by_slug(tx, slug)?,
            };
            match wanted {
                Some(c) => {
                    row.course_id = Some(c.id.clone());
                    course = Some(c);
                }
                None => {
                    return Err(CoreError::refused(
                        "course_unknown",
                        format!(
                            "The link asks for course {slug:?}, which does not exist in this tool."
                        ),
                    ))
                }
            }
        }
        if v.lineitem_url.is_some() {
            row.lineitem_url = v.lineitem_url.clone();
        }
        if v.lineitems_url.is_some() {
            row.lineitems_url = v.lineitems_url.clone();
        }
        if !v.ags_scopes.is_empty() {
            row.ags_scopes = Some(v.ags_scopes.join(" "));
        }
        if v.nrps_url.is_some() {
            row.nrps_url = v.nrps_url.clone();
        }
        if v.context_title.is_some() {
            row.context_title = v.context_title.clone();
        }
        if row != before {
            row.updated_at = n;
            repo::lti::update_resource_link(tx, &row)?;
        }
        if let (None, Some(cid)) = (&course, &row.course_id) {
            course = match mapped.filter(|c| &c.id == cid) {
                Some(c) => Some(c),
                None => repo::courses::get(tx, cid)?,
            };
        }
        link_row = Some(row);
    } else if let Some(slug) = &v.custom_course {
        course = repo::courses::get_by_slug(tx, slug)?;
    }

    // A session for a page of the door itself (Deep Linking, the picker).
    let door_session = || {
        let detail = launch_detail(&platform.id, v, None);
        prepare_lti_session(now, secret, policy, &learner.id, client, detail)
    };
    if v.message_type == "LtiDeepLinkingRequest" {
        if !v.is_instructor {
            return Err(CoreError::refused(
                "deep_linking_not_instructor",
                "Only instructors can choose content for a course.",
            ));
        }
        let opening = door_session();
        let settings = v.deep_link.clone().ok_or_else(|| {
            CoreError::refused(
                "deep_linking_settings_missing",
                "The Deep Linking request carried no deep_linking_settings.",
            )
        })?;
        let request_id = new_id();
        repo::lti::insert_deep_link_request(
            tx,
            &LtiDeepLinkRequest {
                id: request_id.clone(),
                session_id: opening.started.session_id.clone(),
                platform_id: platform.id.clone(),
                deployment_id: v.deployment_id.clone(),
                return_url: settings.return_url,
                data: settings.data,
                accept_multiple: settings.accept_multiple,
                accept_lineitem: settings.accept_lineitem,
                created_at: n,
                expires_at: (now + Duration::minutes(DEEP_LINK_TTL_MINUTES)).naive_utc(),
                used_at: None,
            },
        )?;
        return Ok(LaunchResult::DeepLinking {
            opening,
            learner_id: learner.id,
            request_id,
        });
    }

    let Some(course) = course else {
        if v.is_instructor {
            return Ok(LaunchResult::Session {
                opening: door_session(),
                course_slug: None,
                learner_id: learner.id,
                resource_link_id: link_row.map(|r| r.id),
                instructor: true,
            });
        }
        return Err(CoreError::refused(
            "course_not_set_up",
            "This activity is not connected to a course yet. Please tell your instructor.",
        ));
    };

    // An instructor of a resource link gets the instructor view of its
    // course, not an enrolment as a learner.
    let detail = launch_detail(&platform.id, v, Some(&course.slug));
    if let (true, Some(rl)) = (v.is_instructor, link_row.as_ref()) {
        let opening = prepare_lti_session(now, secret, policy, &learner.id, client, detail);
        return Ok(LaunchResult::Session {
            opening,
            course_slug: Some(course.slug),
            learner_id: learner.id,
            resource_link_id: Some(rl.id.clone()),
            instructor: true,
        });
    }
    // The enrolment with its launch link: one query, and most launches then
    // find both as they were.
    let (existing, current_link) =
        match repo::lti_services::find_enrolment_with_link(tx, &learner.id, &course.id)? {
            Some((e, link)) => (Some(e), link),
            None => (None, None),
        };
    let enrolment = match existing {
        // Revoked by staff (the access check below refuses the launch with
        // the reason), or active already: as it is.
        Some(e) if e.revoked_at.is_some() || e.status == "active" => e,
        _ => {
            enrolments::grant(
                tx,
                now,
                Grant {
                    learner_id: learner.id.clone(),
                    course_id: course.id.clone(),
                    source: Source::Lti,
                    source_ref: link_row.as_ref().map(|r| r.resource_link_id.clone()),
                    starts_at: None,
                    expires_at: None,
                },
            )?
            .enrolment
        }
    };
    crate::access::check(&course, Some(&enrolment), now).map_err(CoreError::Access)?;
    if let Some(rl) = link_row.as_ref() {
        crate::ags::link_enrolment(
            tx,
            now,
            &enrolment.id,
            &platform.id,
            &rl.id,
            &v.sub,
            current_link.as_ref(),
        )?;
    }
    let destination = Destination::Course {
        slug: course.slug.clone(),
    };
    let opening = sessions::prepare_learner_session(
        now,
        secret,
        policy,
        &learner.id,
        &destination,
        "lti",
        client,
        detail,
    );
    Ok(LaunchResult::Session {
        opening,
        course_slug: Some(course.slug),
        learner_id: learner.id,
        resource_link_id: link_row.map(|r| r.id),
        instructor: v.is_instructor,
    })
}

/// Connects an unmapped resource link to a published course: an
/// instructor's pick on the course picker after launching the link. The
/// caller has checked that the session was started by an instructor launch
/// of this very link. A link that already has a course is never remapped
/// here ([`staff_map_resource_link`] or the link's `course` custom
/// parameter, sent on every launch, do).
pub fn map_resource_link(
    tx: &mut Tx,
    now: DateTime<Utc>,
    link_id: &str,
    course_slug: &str,
    actor: &Actor,
) -> Result<(LtiResourceLink, coursegate_store::models::Course), CoreError> {
    let link = repo::lti::get_resource_link(tx, link_id)?.ok_or_else(|| {
        CoreError::refused(
            "resource_link_unknown",
            "This activity is not known to the tool. Open it again from the LMS.",
        )
    })?;
    if link.course_id.is_some() {
        return Err(already_mapped());
    }
    let course = repo::courses::get_by_slug(tx, course_slug.trim())?
        .filter(|c| c.published)
        .ok_or_else(|| {
            CoreError::refused(
                "course_unknown",
                format!(
                    "There is no published course {:?} to connect this activity to.",
                    course_slug.trim()
                ),
            )
        })?;
    if !repo::lti::map_unmapped_resource_link(tx, &link.id, &course.id, now.naive_utc())? {
        return Err(already_mapped());
    }
    audit::record(
        tx,
        now,
        actor,
        "lti.resource_link.mapped",
        Some(("lti_resource_link", &link.id)),
        json!({
            "course": course.slug,
            "platform": link.platform_id,
            "deployment_id": link.deployment_id,
            "context_id": link.context_id,
            "resource_link_id": link.resource_link_id,
        }),
    )?;
    let link =
        repo::lti::get_resource_link(tx, link_id)?.ok_or(CoreError::NotFound("resource link"))?;
    Ok((link, course))
}

fn already_mapped() -> CoreError {
    CoreError::refused(
        "resource_link_already_mapped",
        "This activity is already connected to a course, so it cannot be connected again from here. To change its course, ask the training provider's staff (LMS platforms › Resource links), or set the link's course=<slug> custom parameter in the LMS.",
    )
}

/// Staff connect a platform's resource link to a course, move it to another
/// one, or disconnect it (`course_slug` `None`). Unlike the instructor's
/// picker, staff may remap. A `course` custom parameter on the link still
/// wins at its next launch.
pub fn staff_map_resource_link(
    tx: &mut Tx,
    now: DateTime<Utc>,
    platform_id: &str,
    link_id: &str,
    course_slug: Option<&str>,
    actor: &Actor,
) -> Result<LtiResourceLink, CoreError> {
    let mut link = repo::lti::get_resource_link(tx, link_id)?
        .filter(|l| l.platform_id == platform_id)
        .ok_or(CoreError::NotFound("resource link"))?;
    let course = match course_slug.map(str::trim).filter(|s| !s.is_empty()) {
        Some(slug) => Some(
            repo::courses::get_by_slug(tx, slug)?
                .filter(|c| c.published)
                .ok_or_else(|| {
                    CoreError::refused(
                        "course_unknown",
                        format!(
                            "There is no published course {slug:?} to connect this activity to."
                        ),
                    )
                })?,
        ),
        None => None,
    };
    let before = link.course_id.clone();
    link.course_id = course.as_ref().map(|c| c.id.clone());
    if link.course_id == before {
        return Ok(link);
    }
    link.updated_at = now.naive_utc();
    repo::lti::update_resource_link(tx, &link)?;
    let previous = match &before {
        Some(id) => repo::courses::get(tx, id)?.map(|c| c.slug),
        None => None,
    };
    audit::record(
        tx,
        now,
        actor,
        if course.is_some() {
            "lti.resource_link.mapped"
        } else {
            "lti.resource_link.unmapped"
        },
        Some(("lti_resource_link", &link.id)),
        json!({
            "course": course.as_ref().map(|c| c.slug.clone()),
            "previous_course": previous,
            "platform": link.platform_id,
            "deployment_id": link.deployment_id,
            "context_id": link.context_id,
            "resource_link_id": link.resource_link_id,
        }),
    )?;
    Ok(link)
}

/// A platform's resource link for staff pages.
#[derive(Debug, Clone, Serialize)]
pub struct ResourceLinkView {
    pub id: String,
    pub deployment_id: String,
    pub context_title: Option<String>,
    pub title: Option<String>,
    pub resource_link_id: String,
    pub course_slug: Option<String>,
    pub course_title: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// The newest resource links of a platform (at most `limit`).
pub fn resource_link_views(
    tx: &mut Tx,
    platform_id: &str,
    limit: i64,
) -> Result<Vec<ResourceLinkView>, CoreError> {
    let mut out = Vec::new();
    for l in
        repo::lti::resource_links_of_platform(tx, platform_id, repo::Page { limit, offset: 0 })?
    {
        let course = match &l.course_id {
            Some(id) => repo::courses::get(tx, id)?,
            None => None,
        };
        out.push(ResourceLinkView {
            id: l.id,
            deployment_id: l.deployment_id,
            context_title: l.context_title,
            title: l.title,
            resource_link_id: l.resource_link_id,
            course_slug: course.as_ref().map(|c| c.slug.clone()),
            course_title: course.map(|c| c.title),
            created_at: crate::access::utc(l.created_at),
        });
    }
    Ok(out)
}

/// The resource link `id`, for the course picker.
pub fn resource_link(tx: &mut Tx, id: &str) -> Result<LtiResourceLink, CoreError> {
    repo::lti::get_resource_link(tx, id)?.ok_or_else(|| {
        CoreError::refused(
            "resource_link_unknown",
            "This activity is not known to the tool. Open it again from the LMS.",
        )
    })
}

/// One flight-recorder entry (redacted: no tokens, no personal data).
#[derive(Debug, Clone, Default)]
pub struct FlightRecord {
    /// login | launch | handoff
    pub step: &'static str,
    pub platform_id: Option<String>,
    pub issuer: Option<String>,
    pub client_id: Option<String>,
    pub deployment_id: Option<String>,
    pub outcome: &'static str,
    pub reason: Option<String>,
    pub state_path: Option<String>,
    pub lms: Option<String>,
    pub checks: Value,
    /// What went wrong and what to change, in plain words (refusals only).
    pub explanation: Option<String>,
}

/// What the recorder says of a login whose launch never came.
pub const LOGIN_ABANDONED: &str = "The LMS sent the browser to the tool's login, but no launch came back. Either the platform refused the sign-in before posting the launch (check in the LMS that the tool's redirect URL is registered exactly as shown on this page, and the LMS's own log), or the learner closed the window.";

/// Deletes what has expired in the LTI door's short-lived tables. A login
/// that succeeded writes no flight record of its own (its facts travel
/// with its launch's record); one whose launch never arrived is recorded
/// here, once its state expires, dated when the login happened.
pub fn purge_expired(tx: &mut Tx, now: DateTime<Utc>) -> Result<usize, CoreError> {
    let abandoned = repo::lti::abandoned_logins(tx, now.naive_utc())?;
    let mut platforms: HashMap<String, Option<LtiPlatform>> = HashMap::new();
    for login in abandoned {
        let p = match platforms.entry(login.platform_id.clone()) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => e.insert(repo::lti::get_platform(tx, &login.platform_id)?),
        };
        let p = p.as_ref();
        record(
            tx,
            crate::access::utc(login.created_at),
            FlightRecord {
                step: "login",
                platform_id: Some(login.platform_id.clone()),
                issuer: p.map(|p| p.issuer.clone()),
                client_id: p.map(|p| p.client_id.clone()),
                deployment_id: login.deployment_hint.clone(),
                outcome: "abandoned",
                reason: Some("launch_not_received".into()),
                state_path: Some(
                    if login.storage_target.is_some() {
                        "storage_offered"
                    } else {
                        "cookie"
                    }
                    .into(),
                ),
                lms: p.and_then(|p| p.lms.clone()),
                checks: json!({ "storage_target": login.storage_target.is_some() }),
                explanation: Some(LOGIN_ABANDONED.into()),
            },
        )?;
    }
    Ok(repo::lti::purge_expired(tx, now.naive_utc())?)
}

pub fn record(tx: &mut Tx, now: DateTime<Utc>, r: FlightRecord) -> Result<(), CoreError> {
    repo::lti::record_launch(tx, &flight_row(now, r))?;
    Ok(())
}

/// The row [`record`] writes.
fn flight_row(now: DateTime<Utc>, r: FlightRecord) -> LtiLaunch {
    LtiLaunch {
        id: new_id(),
        at: now.naive_utc(),
        step: r.step.to_string(),
        platform_id: r.platform_id,
        issuer: r.issuer,
        client_id: r.client_id,
        deployment_id: r.deployment_id,
        outcome: r.outcome.to_string(),
        reason: r.reason,
        state_path: r.state_path,
        lms: r.lms,
        checks: {
            let mut c = r.checks;
            if let (Some(x), Value::Object(o)) = (r.explanation, &mut c) {
                o.insert("explanation".into(), Value::String(x));
            }
            c.to_string()
        },
        expires_at: (now + Duration::days(FLIGHT_RECORD_DAYS)).naive_utc(),
    }
}

/// Writes what a completed launch leaves behind: its session and the
/// session's audit entry, the launch's flight record `rec`, and a one-time
/// continue ticket to `redirect` (in one statement on PostgreSQL, see
/// `repo::lti::insert_launch_rows`). Returns the session and the ticket.
#[allow(clippy::too_many_arguments)]
pub fn finish_launch(
    tx: &mut Tx,
    now: DateTime<Utc>,
    secret: &Secret,
    opening: Opening,
    rec: FlightRecord,
    learner_id: &str,
    redirect: &str,
) -> Result<(Started, String), CoreError> {
    let (ticket, stored) = ticket_row(
        now,
        secret,
        learner_id,
        &opening.started.session_id,
        redirect,
    );
    repo::lti::insert_launch_rows(
        tx,
        &opening.row,
        &opening.audit,
        &flight_row(now, rec),
        &stored,
    )?;
    Ok((opening.started, ticket))
}

/// A one-time ticket that moves a launch's sign-in into a new top-level
/// window when the frame cannot keep cookies, and the row that stores it
/// (written by [`finish_launch`]).
fn ticket_row(
    now: DateTime<Utc>,
    secret: &Secret,
    learner_id: &str,
    session_id: &str,
    redirect: &str,
) -> (String, LtiTicket) {
    let ticket = tokens::mint_ordered("ltk");
    let row = LtiTicket {
        id: new_id(),
        ticket_hash: secret.hash_token("lti_ticket", &ticket),
        learner_id: learner_id.to_string(),
        session_id: session_id.to_string(),
        redirect: redirect.to_string(),
        created_at: now.naive_utc(),
        expires_at: (now + Duration::minutes(TICKET_TTL_MINUTES)).naive_utc(),
        used_at: None,
    };
    (ticket, row)
}

/// Looks a ticket up without using it (for the GET page).
pub fn peek_ticket(
    tx: &mut Tx,
    now: DateTime<Utc>,
    secret: &Secret,
    ticket: &str,
) -> Result<LtiTicket, CoreError> {
    if !tokens::looks_like("ltk", ticket) {
        return Err(CoreError::refused(
            "ticket_unknown",
            "This sign-in link is not valid. Start the activity again from your course.",
        ));
    }
    let t =
        repo::lti::find_ticket(tx, &secret.hash_token("lti_ticket", ticket))?.ok_or_else(|| {
            CoreError::refused(
                "ticket_unknown",
                "This sign-in link is not valid. Start the activity again from your course.",
            )
        })?;
    if t.used_at.is_some() {
        return Err(CoreError::refused(
            "ticket_used",
            "This sign-in link was already used. Start the activity again from your course.",
        ));
    }
    if now.naive_utc() >= t.expires_at {
        return Err(CoreError::refused(
            "ticket_expired",
            "This sign-in link has expired. Start the activity again from your course.",
        ));
    }
    Ok(t)
}

/// A redeemed handoff ticket: the new session (its `redirect` is the
/// launch's destination) and the id of the session the launch started,
/// which keys in that destination were derived from.
#[derive(Debug, Clone)]
pub struct Redeemed {
    pub started: Started,
    pub launch_session_id: String,
}

/// Uses a ticket: a fresh first-party session for the same learner.
pub fn redeem_ticket(
    tx: &mut Tx,
    now: DateTime<Utc>,
    secret: &Secret,
    policy: &SessionPolicy,
    ticket: &str,
    client: &ClientInfo,
) -> Result<Redeemed, CoreError> {
    let t = peek_ticket(tx, now, secret, ticket)?;
    if !repo::lti::consume_ticket(tx, &t.id, now.naive_utc())? {
        return Err(CoreError::refused(
            "ticket_used",
            "This sign-in link was already used. Start the activity again from your course.",
        ));
    }
    let mut started = prepare_lti_session(
        now,
        secret,
        policy,
        &t.learner_id,
        client,
        serde_json::Map::from_iter([("handoff".to_string(), json!(true))]),
    )
    .write(tx)?;
    started.redirect = t.redirect;
    // A Deep Linking request belongs to the session that picks the content:
    // the one continuing the launch from now on.
    repo::lti::rebind_deep_link_requests(tx, &t.session_id, &started.session_id)?;
    Ok(Redeemed {
        started,
        launch_session_id: t.session_id,
    })
}

/// The open Deep Linking request `id` of this session, with its platform.
pub fn deep_link_request(
    tx: &mut Tx,
    now: DateTime<Utc>,
    id: &str,
    session_id: &str,
) -> Result<(LtiDeepLinkRequest, LtiPlatform), CoreError> {
    let r = repo::lti::get_deep_link_request(tx, id)?
        .filter(|r| r.session_id == session_id)
        .ok_or_else(|| {
            CoreError::refused(
                "deep_link_request_unknown",
                "This content selection is not open in your session. Start it again from the LMS.",
            )
        })?;
    if r.used_at.is_some() {
        return Err(CoreError::refused(
            "deep_link_request_used",
            "Content was already returned for this request. Start again from the LMS to add more.",
        ));
    }
    if now.naive_utc() >= r.expires_at {
        return Err(CoreError::refused(
            "deep_link_request_expired",
            "This content selection has expired. Start it again from the LMS.",
        ));
    }
    let p = repo::lti::get_platform(tx, &r.platform_id)?.ok_or(CoreError::NotFound("platform"))?;
    Ok((r, p))
}

/// Closes a Deep Linking request (single use) and returns the chosen,
/// published courses in the order given.
pub fn answer_deep_link(
    tx: &mut Tx,
    now: DateTime<Utc>,
    id: &str,
    session_id: &str,
    slugs: &[String],
) -> Result<
    (
        LtiDeepLinkRequest,
        LtiPlatform,
        Vec<coursegate_store::models::Course>,
    ),
    CoreError,
> {
    let (r, p) = deep_link_request(tx, now, id, session_id)?;
    if slugs.is_empty() {
        return Err(CoreError::invalid("course", "choose at least one course"));
    }
    if slugs.len() > 1 && !r.accept_multiple {
        return Err(CoreError::invalid(
            "course",
            "the LMS accepts only one item here; choose one course",
        ));
    }
    let mut courses = Vec::new();
    for slug in slugs {
        let c = repo::courses::get_by_slug(tx, slug)?
            .filter(|c| c.published)
            .ok_or(CoreError::NotFound("course"))?;
        courses.push(c);
    }
    if !repo::lti::use_deep_link_request(tx, &r.id, now.naive_utc())? {
        return Err(CoreError::refused(
            "deep_link_request_used",
            "Content was already returned for this request.",
        ));
    }
    Ok((r, p, courses))
}

/// Editable fields of a registration.
#[derive(Debug, Clone)]
pub struct PlatformEdit {
    pub name: String,
    pub auth_url: String,
    pub token_url: String,
    pub jwks_url: String,
    pub audience: Option<String>,
    pub customer: Option<String>,
    pub lms: Option<String>,
    pub unknown_deployments: DeploymentPolicy,
    pub active: bool,
    pub trusted_audiences: Vec<String>,
}

/// A saved edit: the registration as it is now, and the JWKS URL it had
/// before (the caller forgets the keys cached for both).
#[derive(Debug, Clone)]
pub struct PlatformUpdated {
    pub platform: LtiPlatform,
    pub previous_jwks_url: String,
}

pub fn update_platform(
    tx: &mut Tx,
    now: DateTime<Utc>,
    id: &str,
    e: PlatformEdit,
    actor: &Actor,
) -> Result<PlatformUpdated, CoreError> {
    let mut p = repo::lti::get_platform(tx, id)?.ok_or(CoreError::NotFound("platform"))?;
    let previous_jwks_url = p.jwks_url.clone();
    p.name = required("name", &e.name)?;
    p.auth_url = validate_url("auth_url", &e.auth_url)?;
    p.token_url = validate_url("token_url", &e.token_url)?;
    p.jwks_url = validate_url("jwks_url", &e.jwks_url)?;
    p.audience = e
        .audience
        .map(|a| a.trim().to_string())
        .filter(|a| !a.is_empty());
    p.customer = e
        .customer
        .map(|a| a.trim().to_string())
        .filter(|a| !a.is_empty());
    p.lms = e
        .lms
        .map(|a| a.trim().to_string())
        .filter(|a| !a.is_empty());
    p.unknown_deployments = e.unknown_deployments.as_str().to_string();
    p.active = e.active;
    p.trusted_audiences = trusted_audiences_text(&p.client_id, &e.trusted_audiences)?;
    p.updated_at = now.naive_utc();
    repo::lti::update_platform(tx, &p)?;
    audit::record(
        tx,
        now,
        actor,
        "lti.platform.updated",
        Some(("lti_platform", &p.id)),
        json!({
            "issuer": p.issuer,
            "client_id": p.client_id,
            "jwks_url_changed": p.jwks_url != previous_jwks_url,
            "trusted_audiences": trusted_audiences(&p),
        }),
    )?;
    Ok(PlatformUpdated {
        platform: p,
        previous_jwks_url,
    })
}

/// Approves (active), disables or re-enables one deployment.
pub fn set_deployment_status(
    tx: &mut Tx,
    now: DateTime<Utc>,
    platform_id: &str,
    deployment_row_id: &str,
    status: &str,
    actor: &Actor,
) -> Result<LtiDeployment, CoreError> {
    if !matches!(status, "active" | "disabled") {
        return Err(CoreError::invalid("status", "must be active or disabled"));
    }
    let mut d = repo::lti::deployments_of(tx, platform_id)?
        .into_iter()
        .find(|d| d.id == deployment_row_id)
        .ok_or(CoreError::NotFound("deployment"))?;
    d.status = status.to_string();
    d.updated_at = now.naive_utc();
    repo::lti::update_deployment(tx, &d)?;
    audit::record(
        tx,
        now,
        actor,
        if status == "active" {
            "lti.deployment.approved"
        } else {
            "lti.deployment.disabled"
        },
        Some(("lti_platform", platform_id)),
        json!({ "deployment_id": d.deployment_id }),
    )?;
    Ok(d)
}

/// A registration with its deployments, for staff pages.
#[derive(Debug, Clone, Serialize)]
pub struct PlatformView {
    pub id: String,
    pub name: String,
    pub issuer: String,
    pub client_id: String,
    pub auth_url: String,
    pub token_url: String,
    pub jwks_url: String,
    pub audience: Option<String>,
    pub customer: Option<String>,
    pub lms: Option<String>,
    pub unknown_deployments: String,
    pub active: bool,
    pub trusted_audiences: Vec<String>,
    pub deployments: Vec<DeploymentView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DeploymentView {
    pub id: String,
    pub deployment_id: String,
    pub status: String,
    pub created_at: DateTime<Utc>,
}

pub fn platform_views(tx: &mut Tx) -> Result<Vec<PlatformView>, CoreError> {
    let mut out = Vec::new();
    for p in repo::lti::list_platforms(tx)? {
        out.push(view_of(tx, p)?);
    }
    Ok(out)
}

pub fn platform_view(tx: &mut Tx, id: &str) -> Result<PlatformView, CoreError> {
    let p = repo::lti::get_platform(tx, id)?.ok_or(CoreError::NotFound("platform"))?;
    view_of(tx, p)
}

fn view_of(tx: &mut Tx, p: LtiPlatform) -> Result<PlatformView, CoreError> {
    let deployments = repo::lti::deployments_of(tx, &p.id)?
        .into_iter()
        .map(|d| DeploymentView {
            id: d.id,
            deployment_id: d.deployment_id,
            status: d.status,
            created_at: crate::access::utc(d.created_at),
        })
        .collect();
    Ok(PlatformView {
        trusted_audiences: trusted_audiences(&p),
        id: p.id,
        name: p.name,
        issuer: p.issuer,
        client_id: p.client_id,
        auth_url: p.auth_url,
        token_url: p.token_url,
        jwks_url: p.jwks_url,
        audience: p.audience,
        customer: p.customer,
        lms: p.lms,
        unknown_deployments: p.unknown_deployments,
        active: p.active,
        deployments,
    })
}

/// A flight record for staff pages.
#[derive(Debug, Clone, Serialize)]
pub struct FlightView {
    pub at: DateTime<Utc>,
    pub step: String,
    pub issuer: Option<String>,
    pub client_id: Option<String>,
    pub deployment_id: Option<String>,
    pub outcome: String,
    pub reason: Option<String>,
    pub state_path: Option<String>,
    pub lms: Option<String>,
    pub checks: Value,
}

pub fn recent_flights(
    tx: &mut Tx,
    failures_only: bool,
    limit: i64,
) -> Result<Vec<FlightView>, CoreError> {
    Ok(
        repo::lti::recent_launches(tx, failures_only, repo::Page { limit, offset: 0 })?
            .into_iter()
            .map(|r| FlightView {
                at: crate::access::utc(r.at),
                step: r.step,
                issuer: r.issuer,
                client_id: r.client_id,
                deployment_id: r.deployment_id,
                outcome: r.outcome,
                reason: r.reason,
                state_path: r.state_path,
                lms: r.lms,
                checks: serde_json::from_str(&r.checks).unwrap_or(Value::Null),
            })
            .collect(),
    )
}

/// A platform as Dynamic Registration learnt it: its checked
/// openid_configuration and the client id (and deployment) it assigned.
#[derive(Debug, Clone)]
pub struct DynamicRegistration {
    pub issuer: String,
    pub client_id: String,
    pub name: Option<String>,
    pub auth_url: String,
    pub token_url: String,
    pub jwks_url: String,
    /// Brightspace's `authorization_server`: the client assertion's audience.
    pub audience: Option<String>,
    /// The platform's product family code (moodle, canvas, desire2learn, …).
    pub lms: Option<String>,
    pub deployment_id: Option<String>,
}

/// Stores a dynamically registered platform and its deployment. When the
/// platform assigned no deployment (Canvas creates them on install), later
/// unknown deployments wait for staff approval instead of being refused.
pub fn add_dynamic_registration(
    tx: &mut Tx,
    now: DateTime<Utc>,
    r: DynamicRegistration,
) -> Result<LtiPlatform, CoreError> {
    let policy = if r.deployment_id.is_some() {
        DeploymentPolicy::Reject
    } else {
        DeploymentPolicy::Pending
    };
    let (platform, _) = add_platform(
        tx,
        now,
        NewPlatform {
            issuer: r.issuer,
            client_id: r.client_id,
            name: r.name,
            auth_url: r.auth_url,
            token_url: r.token_url,
            jwks_url: r.jwks_url,
            audience: r.audience,
            customer: None,
            lms: r.lms,
            unknown_deployments: policy,
            deployment_ids: r.deployment_id.into_iter().collect(),
            trusted_audiences: Vec::new(),
        },
    )?;
    audit::record(
        tx,
        now,
        &Actor::system(),
        "lti.platform.registered",
        Some(("platform", &platform.id)),
        json!({ "issuer": platform.issuer, "client_id": platform.client_id, "via": "dynamic_registration" }),
    )?;
    Ok(platform)
}
