//! Staff single sign-on with an OpenID Connect provider: the rules.
//!
//! The protocol (discovery, the authorization request with PKCE and nonce,
//! the code exchange and the ID-token checks) happens in the server crate
//! before and between these calls; this module keeps the login state in the
//! database and decides who may sign in with which role:
//!
//! 1. [`begin`] stores the login state (state hashed, nonce, PKCE verifier,
//!    the hash of a browser cookie) for [`STATE_TTL_MINUTES`].
//! 2. [`take_state`] consumes it once: unknown, used, expired or another
//!    browser are refused with their own codes (and audited).
//! 3. [`complete`] maps the verified identity to a staff user — an existing
//!    staff user keeps their role; an unknown email of an allowed domain
//!    becomes a staff user with the default role; anyone else is refused —
//!    and starts the staff session exactly as a staff one-time link does.
//!
//! Every refusal writes an `sso.refused` audit entry with its reason code;
//! callers commit it (return the refusal inside `Ok`).

use chrono::{DateTime, Duration, Utc};
use coursegate_store::{models::SsoState, repo, Tx};
use serde_json::json;

use crate::{
    audit::{self, Actor},
    ids::new_id,
    sessions::{self, ClientInfo, SessionPolicy, Started},
    staff::{self, Role},
    tokens::Secret,
    types::Email,
    CoreError,
};

/// How long a started sign-in may take at the provider.
pub const STATE_TTL_MINUTES: i64 = 10;

/// Who may sign in by single sign-on, and as what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SsoPolicy {
    /// Lowercase email domains whose unknown users become staff.
    pub allowed_domains: Vec<String>,
    /// The role given to a new staff user from an allowed domain.
    pub default_role: Role,
}

impl SsoPolicy {
    pub fn domain_allowed(&self, email: &Email) -> bool {
        let lower = email.lower();
        let domain = lower.rsplit('@').next().unwrap_or_default();
        self.allowed_domains.iter().any(|d| d == domain)
    }
}

/// Every reason a single sign-on is refused, with its stable code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SsoRefusal {
    /// The provider sent `error=…` back instead of a code.
    ProviderError,
    /// The provider could not be reached or answered nonsense.
    ProviderUnavailable,
    /// The callback lacks `state` or `code`.
    BadCallback,
    StateUnknown,
    StateUsed,
    StateExpired,
    /// The callback arrived in another browser than the one that started.
    BrowserMismatch,
    /// The token endpoint refused the code.
    TokenExchangeFailed,
    /// No ID token, or one with a bad signature, issuer, expiry…
    TokenInvalid,
    NonceMismatch,
    WrongAudience,
    EmailMissing,
    EmailUnverified,
    DomainNotAllowed,
    StaffDeactivated,
}

impl SsoRefusal {
    pub fn code(self) -> &'static str {
        match self {
            Self::ProviderError => "sso_provider_error",
            Self::ProviderUnavailable => "sso_provider_unavailable",
            Self::BadCallback => "sso_bad_callback",
            Self::StateUnknown => "sso_state_unknown",
            Self::StateUsed => "sso_state_used",
            Self::StateExpired => "sso_state_expired",
            Self::BrowserMismatch => "sso_browser_mismatch",
            Self::TokenExchangeFailed => "sso_token_exchange_failed",
            Self::TokenInvalid => "sso_token_invalid",
            Self::NonceMismatch => "sso_nonce_mismatch",
            Self::WrongAudience => "sso_wrong_audience",
            Self::EmailMissing => "sso_email_missing",
            Self::EmailUnverified => "sso_email_unverified",
            Self::DomainNotAllowed => "sso_domain_not_allowed",
            Self::StaffDeactivated => "sso_staff_deactivated",
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            Self::ProviderError => "The sign-in provider refused or cancelled the sign-in.",
            Self::ProviderUnavailable => {
                "The sign-in provider could not be reached or gave an answer we cannot use. Try again later."
            }
            Self::BadCallback => "The sign-in provider sent us back without the expected details.",
            Self::StateUnknown => {
                "This sign-in attempt is unknown here. Start again from the staff sign-in page."
            }
            Self::StateUsed => {
                "This sign-in attempt was already completed. Start again from the staff sign-in page."
            }
            Self::StateExpired => {
                "This sign-in attempt took too long and has expired. Start again from the staff sign-in page."
            }
            Self::BrowserMismatch => {
                "This sign-in attempt was started in another browser. Start again from the staff sign-in page."
            }
            Self::TokenExchangeFailed => "The sign-in provider did not accept the sign-in code.",
            Self::TokenInvalid => "The sign-in provider's ID token did not pass our checks.",
            Self::NonceMismatch => {
                "The sign-in provider's ID token belongs to another sign-in attempt (nonce mismatch)."
            }
            Self::WrongAudience => {
                "The sign-in provider's ID token was issued to another application (wrong audience)."
            }
            Self::EmailMissing => "The sign-in provider did not tell us your email address.",
            Self::EmailUnverified => "The sign-in provider has not verified your email address.",
            Self::DomainNotAllowed => {
                "Your email address is not a staff account here, and its domain is not allowed to sign in. Ask an administrator to add you."
            }
            Self::StaffDeactivated => "This staff account is deactivated.",
        }
    }

    pub fn into_error(self) -> CoreError {
        CoreError::refused(self.code(), self.message())
    }
}

fn actor_of(client: &ClientInfo) -> Actor {
    Actor {
        kind: "anonymous",
        id: None,
        ip: client.ip.clone(),
        user_agent: client.user_agent.clone(),
    }
}

/// Writes the `sso.refused` audit entry and returns the refusal as an error.
/// `detail` must not carry tokens or codes.
pub fn refuse(
    tx: &mut Tx,
    now: DateTime<Utc>,
    client: &ClientInfo,
    reason: SsoRefusal,
    email: Option<&str>,
) -> Result<CoreError, CoreError> {
    audit::record(
        tx,
        now,
        &actor_of(client),
        "sso.refused",
        None,
        json!({ "reason": reason.code(), "email": email }),
    )?;
    Ok(reason.into_error())
}

/// What the provider round trip needs back at the callback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginState {
    pub nonce: String,
    pub pkce_verifier: String,
}

/// Stores a new login state. `state` and `browser` are random values the
/// caller minted (only their keyed hashes are stored).
pub fn begin(
    tx: &mut Tx,
    now: DateTime<Utc>,
    secret: &Secret,
    state: &str,
    browser: &str,
    login: &LoginState,
) -> Result<(), CoreError> {
    let n = now.naive_utc();
    repo::sso::insert_state(
        tx,
        &SsoState {
            id: new_id(),
            state_hash: secret.hash("sso-state", state),
            browser_hash: secret.hash("sso-browser", browser),
            nonce: login.nonce.clone(),
            pkce_verifier: login.pkce_verifier.clone(),
            created_at: n,
            expires_at: (now + Duration::minutes(STATE_TTL_MINUTES)).naive_utc(),
            used_at: None,
        },
    )?;
    Ok(())
}

/// Consumes the login state named by `state` once. The outer error is a
/// database failure; the inner one a refusal, already audited — commit it.
pub fn take_state(
    tx: &mut Tx,
    now: DateTime<Utc>,
    secret: &Secret,
    client: &ClientInfo,
    state: &str,
    browser: Option<&str>,
) -> Result<Result<LoginState, CoreError>, CoreError> {
    let Some(row) = repo::sso::find_state(tx, &secret.hash("sso-state", state))? else {
        return Ok(Err(refuse(
            tx,
            now,
            client,
            SsoRefusal::StateUnknown,
            None,
        )?));
    };
    if row.used_at.is_some() {
        return Ok(Err(refuse(tx, now, client, SsoRefusal::StateUsed, None)?));
    }
    if row.expires_at <= now.naive_utc() {
        return Ok(Err(refuse(
            tx,
            now,
            client,
            SsoRefusal::StateExpired,
            None,
        )?));
    }
    // Used from here on, whatever happens next: a state works once.
    if !repo::sso::consume_state(tx, &row.id, now.naive_utc())? {
        return Ok(Err(refuse(tx, now, client, SsoRefusal::StateUsed, None)?));
    }
    let same_browser = browser
        .map(|b| crate::tokens::ct_eq(&secret.hash("sso-browser", b), &row.browser_hash))
        .unwrap_or(false);
    if !same_browser {
        return Ok(Err(refuse(
            tx,
            now,
            client,
            SsoRefusal::BrowserMismatch,
            None,
        )?));
    }
    Ok(Ok(LoginState {
        nonce: row.nonce,
        pkce_verifier: row.pkce_verifier,
    }))
}

/// The identity from an ID token that passed every protocol check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedIdentity {
    pub issuer: String,
    pub subject: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub name: Option<String>,
}

/// Maps the identity to a staff user and starts a staff session. The outer
/// error is a database failure; the inner one a refusal, already audited.
pub fn complete(
    tx: &mut Tx,
    now: DateTime<Utc>,
    secret: &Secret,
    sessions_policy: &SessionPolicy,
    policy: &SsoPolicy,
    identity: &VerifiedIdentity,
    client: &ClientInfo,
) -> Result<Result<Started, CoreError>, CoreError> {
    let raw = identity.email.as_deref().unwrap_or_default();
    let Ok(email) = Email::parse(raw) else {
        return Ok(Err(refuse(
            tx,
            now,
            client,
            SsoRefusal::EmailMissing,
            None,
        )?));
    };
    if !identity.email_verified {
        let r = refuse(
            tx,
            now,
            client,
            SsoRefusal::EmailUnverified,
            Some(email.as_str()),
        )?;
        return Ok(Err(r));
    }
    let existing = repo::staff::find_by_email(tx, &email.lower())?;
    let (user, created) = match existing {
        Some(u) => (u, false),
        None if policy.domain_allowed(&email) => staff::ensure(
            tx,
            now,
            &email,
            identity.name.as_deref(),
            policy.default_role,
        )?,
        None => {
            let r = refuse(
                tx,
                now,
                client,
                SsoRefusal::DomainNotAllowed,
                Some(email.as_str()),
            )?;
            return Ok(Err(r));
        }
    };
    if !user.active {
        let r = refuse(
            tx,
            now,
            client,
            SsoRefusal::StaffDeactivated,
            Some(email.as_str()),
        )?;
        return Ok(Err(r));
    }
    let actor = Actor {
        kind: "staff",
        id: Some(user.id.clone()),
        ip: client.ip.clone(),
        user_agent: client.user_agent.clone(),
    };
    if created {
        audit::record(
            tx,
            now,
            &actor,
            "staff.created",
            Some(("staff", &user.id)),
            json!({ "via": "sso", "role": user.role, "email": user.email }),
        )?;
    }
    audit::record(
        tx,
        now,
        &actor,
        "sso.signed_in",
        Some(("staff", &user.id)),
        json!({ "issuer": identity.issuer, "sub": identity.subject, "role": user.role, "created": created }),
    )?;
    let started =
        sessions::start_staff_session(tx, now, secret, sessions_policy, &user.id, "sso", client)?;
    Ok(Ok(started))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_match_exactly_and_case_insensitively() {
        let p = SsoPolicy {
            allowed_domains: vec!["acme.example".into()],
            default_role: Role::Instructor,
        };
        assert!(p.domain_allowed(&Email::parse("Ann@ACME.example").unwrap()));
        assert!(!p.domain_allowed(&Email::parse("ann@evil-acme.example").unwrap()));
        assert!(!p.domain_allowed(&Email::parse("ann@sub.acme.example").unwrap()));
    }
}
