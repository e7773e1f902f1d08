//! API keys for the automation API: minted once (`cgk_…`, 256 bits), stored
//! as a keyed hash, scoped, revocable, rate-limited per key.

use chrono::{DateTime, Duration, DurationRound, Utc};
use coursegate_store::{models::ApiKey, repo, Tx};
use serde::Serialize;
use serde_json::json;

use crate::{
    audit::{self, Actor},
    ids::new_id,
    tokens::{self, Secret},
    CoreError,
};

/// Token prefix of API keys.
pub const PREFIX: &str = "cgk";
const HASH_PURPOSE: &str = "api_key";

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Scope {
    /// Read courses, learners, enrolments, webhooks.
    #[serde(rename = "read")]
    Read,
    #[serde(rename = "learners:write")]
    LearnersWrite,
    #[serde(rename = "enrolments:write")]
    EnrolmentsWrite,
    /// Issue links (and receive their URLs when the key allows it).
    #[serde(rename = "links:write")]
    LinksWrite,
    /// Manage webhook endpoints.
    #[serde(rename = "webhooks:write")]
    WebhooksWrite,
}

impl Scope {
    pub const ALL: [Scope; 5] = [
        Scope::Read,
        Scope::LearnersWrite,
        Scope::EnrolmentsWrite,
        Scope::LinksWrite,
        Scope::WebhooksWrite,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::LearnersWrite => "learners:write",
            Scope::EnrolmentsWrite => "enrolments:write",
            Scope::LinksWrite => "links:write",
            Scope::WebhooksWrite => "webhooks:write",
        }
    }

    pub fn parse(s: &str) -> Result<Self, CoreError> {
        Scope::ALL
            .into_iter()
            .find(|x| x.as_str() == s.trim())
            .ok_or_else(|| {
                CoreError::invalid(
                    "scopes",
                    format!(
                        "unknown scope {s:?}; use {}",
                        Scope::ALL.map(Scope::as_str).join(", ")
                    ),
                )
            })
    }

    /// Parses a comma- or space-separated list; at least one scope.
    pub fn parse_list(s: &str) -> Result<Vec<Scope>, CoreError> {
        let mut out: Vec<Scope> = Vec::new();
        for part in s.split([',', ' ']).filter(|p| !p.trim().is_empty()) {
            let sc = Scope::parse(part)?;
            if !out.contains(&sc) {
                out.push(sc);
            }
        }
        if out.is_empty() {
            return Err(CoreError::invalid(
                "scopes",
                "at least one scope is required",
            ));
        }
        Ok(out)
    }
}

/// The authenticated caller of an API request.
#[derive(Debug, Clone)]
pub struct ApiPrincipal {
    pub key_id: String,
    pub name: String,
    pub scopes: Vec<Scope>,
    pub allow_link_urls: bool,
}

impl ApiPrincipal {
    pub fn has(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }

    /// The audit actor for what this key does.
    pub fn actor(&self) -> Actor {
        Actor {
            kind: "api",
            id: Some(self.key_id.clone()),
            ..Default::default()
        }
    }
}

/// Input for a new key.
#[derive(Debug, Clone)]
pub struct NewKey {
    pub name: String,
    pub scopes: Vec<Scope>,
    pub allow_link_urls: bool,
}

/// A created key: the row and the plaintext, which is never stored or shown again.
pub struct CreatedKey {
    pub key: ApiKey,
    pub plaintext: String,
}

impl std::fmt::Debug for CreatedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedKey")
            .field("key", &self.key)
            .field("plaintext", &"***")
            .finish()
    }
}

fn scopes_to_text(scopes: &[Scope]) -> String {
    scopes
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The scopes stored on a row (unknown words are ignored).
pub fn scopes_of(k: &ApiKey) -> Vec<Scope> {
    k.scopes
        .split_whitespace()
        .filter_map(|s| Scope::parse(s).ok())
        .collect()
}

pub fn create(
    tx: &mut Tx,
    now: DateTime<Utc>,
    secret: &Secret,
    actor: &Actor,
    new: NewKey,
) -> Result<CreatedKey, CoreError> {
    let name = new.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(CoreError::invalid("name", "use 1 to 100 characters"));
    }
    if new.scopes.is_empty() {
        return Err(CoreError::invalid(
            "scopes",
            "at least one scope is required",
        ));
    }
    let plaintext = tokens::mint(PREFIX);
    let key = ApiKey {
        id: new_id(),
        name: name.to_string(),
        prefix: plaintext.chars().take(PREFIX.len() + 7).collect(),
        key_hash: secret.hash(HASH_PURPOSE, &plaintext),
        scopes: scopes_to_text(&new.scopes),
        allow_link_urls: new.allow_link_urls,
        created_by: actor.id.clone(),
        created_at: now.naive_utc(),
        last_used_at: None,
        revoked_at: None,
    };
    repo::api::insert_key(tx, &key)?;
    audit::record(
        tx,
        now,
        actor,
        "api_key.created",
        Some(("api_key", &key.id)),
        json!({ "name": key.name, "scopes": key.scopes, "allow_link_urls": key.allow_link_urls }),
    )?;
    Ok(CreatedKey { key, plaintext })
}

pub fn revoke(
    tx: &mut Tx,
    now: DateTime<Utc>,
    actor: &Actor,
    id: &str,
) -> Result<ApiKey, CoreError> {
    let k = repo::api::get_key(tx, id)?.ok_or(CoreError::NotFound("api_key"))?;
    if repo::api::revoke_key(tx, id, now.naive_utc())? {
        audit::record(
            tx,
            now,
            actor,
            "api_key.revoked",
            Some(("api_key", id)),
            json!({}),
        )?;
    }
    repo::api::get_key(tx, &k.id)?.ok_or(CoreError::NotFound("api_key"))
}

pub fn list(tx: &mut Tx) -> Result<Vec<ApiKey>, CoreError> {
    Ok(repo::api::list_keys(tx)?)
}

/// Per-key request budget: `limit` requests per `window`.
#[derive(Debug, Clone, Copy)]
pub struct RateLimit {
    pub limit: u32,
    pub window: Duration,
}

impl Default for RateLimit {
    fn default() -> Self {
        Self {
            limit: 300,
            window: Duration::minutes(1),
        }
    }
}

/// Authenticates a presented key and counts the request against its budget.
/// Runs in a write transaction (it records last use and the counter).
/// Errors: `Unauthenticated` for an unknown, malformed or revoked key;
/// `RateLimited(until)` when the window's budget is spent.
pub fn authenticate(
    tx: &mut Tx,
    now: DateTime<Utc>,
    secret: &Secret,
    presented: &str,
    rate: RateLimit,
) -> Result<ApiPrincipal, CoreError> {
    if !tokens::looks_like(PREFIX, presented) {
        return Err(CoreError::Unauthenticated);
    }
    let hash = secret.hash(HASH_PURPOSE, presented);
    let k = repo::api::find_key_by_hash(tx, &hash)?.ok_or(CoreError::Unauthenticated)?;
    if !tokens::ct_eq(&k.key_hash, &hash) || k.revoked_at.is_some() {
        return Err(CoreError::Unauthenticated);
    }
    let window_start = now.duration_trunc(rate.window).unwrap_or(now);
    let hits = repo::api::hit(tx, &k.id, window_start.naive_utc())?;
    if u32::try_from(hits).unwrap_or(u32::MAX) > rate.limit {
        return Err(CoreError::RateLimited(window_start + rate.window));
    }
    // Last use at minute precision: one cheap write at most per minute.
    let stale = k
        .last_used_at
        .map(|t| now.naive_utc() - t >= Duration::minutes(1))
        .unwrap_or(true);
    if stale {
        repo::api::touch_key(tx, &k.id, now.naive_utc())?;
    }
    Ok(ApiPrincipal {
        scopes: scopes_of(&k),
        key_id: k.id,
        name: k.name,
        allow_link_urls: k.allow_link_urls,
    })
}
