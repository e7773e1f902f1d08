//! One error type for the whole protocol crate.
//!
//! Every variant is one rejection reason with a stable snake_case [`LtiError::code`]
//! (stored by the flight recorder and shown on error pages), a sentence in plain
//! words ([`LtiError::plain_words`]) and advice for the LMS administrator
//! ([`LtiError::advice`]), optionally tuned to one LMS.

use thiserror::Error;

/// The LMS families the advice knows about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lms {
    Canvas,
    Moodle,
    Brightspace,
    Blackboard,
    Schoology,
    Sakai,
    OpenEdx,
}

impl Lms {
    /// Reads an LMS name as an admin or a `tool_platform.product_family_code`
    /// would spell it ("canvas", "Moodle", "D2L", "desire2learn", "BlackboardLearn",
    /// "open edx", ...). Unknown names give `None`.
    pub fn parse(name: &str) -> Option<Lms> {
        let n: String = name
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_ascii_lowercase();
        if n.contains("canvas") {
            Some(Lms::Canvas)
        } else if n.contains("moodle") {
            Some(Lms::Moodle)
        } else if n.contains("brightspace") || n.contains("d2l") || n.contains("desire2learn") {
            Some(Lms::Brightspace)
        } else if n.contains("blackboard") || n.contains("anthology") || n == "learn" {
            Some(Lms::Blackboard)
        } else if n.contains("schoology") {
            Some(Lms::Schoology)
        } else if n.contains("sakai") {
            Some(Lms::Sakai)
        } else if n.contains("edx") {
            Some(Lms::OpenEdx)
        } else {
            None
        }
    }

    /// Guesses the LMS from a platform issuer where the issuer is shared by all
    /// tenants (Canvas cloud, Blackboard Learn, Schoology) or names the product.
    pub fn from_issuer(issuer: &str) -> Option<Lms> {
        let host = url::Url::parse(issuer)
            .ok()
            .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
            .unwrap_or_default();
        if host.ends_with("instructure.com") || host.contains("canvas") {
            Some(Lms::Canvas)
        } else if host == "blackboard.com" || host.ends_with(".blackboard.com") {
            Some(Lms::Blackboard)
        } else if host.ends_with("schoology.com") {
            Some(Lms::Schoology)
        } else if host.contains("brightspace") || host.contains("d2l") {
            Some(Lms::Brightspace)
        } else if host.contains("moodle") {
            Some(Lms::Moodle)
        } else if host.contains("sakai") {
            Some(Lms::Sakai)
        } else if host.contains("edx") {
            Some(Lms::OpenEdx)
        } else {
            None
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Lms::Canvas => "Canvas",
            Lms::Moodle => "Moodle",
            Lms::Brightspace => "Brightspace",
            Lms::Blackboard => "Blackboard Learn",
            Lms::Schoology => "Schoology",
            Lms::Sakai => "Sakai",
            Lms::OpenEdx => "Open edX",
        }
    }
}

/// Every way an LTI message, key or service call can fail.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LtiError {
    // ---- token shape and signature ----
    #[error("malformed token: {reason}")]
    MalformedToken { reason: String },
    #[error("signing algorithm {alg:?} is not allowed (only RS256)")]
    AlgNotAllowed { alg: String },
    #[error("the token header has no kid")]
    KidMissing,
    #[error("no platform key with kid {kid:?}")]
    KidUnknown { kid: String },
    #[error("platform key {kid:?} has {bits} bits; RS256 needs at least 2048")]
    KeyTooShort { kid: String, bits: usize },
    #[error("the token signature does not verify")]
    BadSignature,

    // ---- who issued it, for whom ----
    #[error("issuer {got:?} is not the expected {expected:?}")]
    IssMismatch { expected: String, got: String },
    #[error("audience {got:?} does not contain our client_id {client_id:?}")]
    AudMismatch { client_id: String, got: Vec<String> },
    #[error("audience {audience:?} is not trusted")]
    AudUntrusted { audience: String },
    #[error("the token has several audiences but no azp")]
    AzpMissing,
    #[error("azp {got:?} is not our client_id {client_id:?}")]
    AzpMismatch { client_id: String, got: String },

    // ---- time ----
    #[error("the token has no exp")]
    ExpMissing,
    #[error("the token expired at {exp} (now {now}, skew {skew}s)")]
    TokenExpired { exp: i64, now: i64, skew: i64 },
    #[error("the token has no iat")]
    IatMissing,
    #[error("the token was issued in the future: iat {iat}, now {now}, skew {skew}s")]
    IatInFuture { iat: i64, now: i64, skew: i64 },
    #[error("the token is too old: iat {iat}, now {now}, max age {max_age}s")]
    TokenTooOld { iat: i64, now: i64, max_age: i64 },
    #[error("the token is not valid before {nbf} (now {now})")]
    TokenNotYetValid { nbf: i64, now: i64 },

    // ---- OIDC login binding ----
    #[error("the token has no nonce")]
    NonceMissing,
    #[error("the token's nonce is not the one issued at login")]
    NonceMismatch,

    // ---- LTI claims ----
    #[error("the token has no deployment_id claim")]
    DeploymentIdMissing,
    #[error("the token has no message_type claim")]
    MessageTypeMissing,
    #[error("message_type {got:?} is not supported")]
    MessageTypeInvalid { got: String },
    #[error("the token has no LTI version claim")]
    VersionMissing,
    #[error("LTI version {got:?} is not 1.3.0")]
    VersionInvalid { got: String },
    #[error("the token has no sub (user id)")]
    SubMissing,
    #[error("the token has no roles claim")]
    RolesMissing,
    #[error("the resource link launch has no resource_link.id")]
    ResourceLinkMissing,
    #[error("the deep linking request has no deep_linking_settings.deep_link_return_url")]
    DeepLinkingSettingsMissing,
    #[error("the launch has no target_link_uri")]
    TargetLinkUriMissing,
    #[error("target_link_uri {got:?} is not one of our launch URLs")]
    TargetLinkUriMismatch { got: String, expected: Vec<String> },
    #[error("claim {claim} is invalid: {reason}")]
    ClaimInvalid { claim: String, reason: String },

    // ---- OIDC login initiation ----
    #[error("login initiation lacks the {param} parameter")]
    LoginParamMissing { param: &'static str },
    #[error("login initiation parameter {param} is invalid: {reason}")]
    LoginParamInvalid { param: &'static str, reason: String },

    // ---- platform keys ----
    #[error("fetching the platform keys from {url} failed: {reason}")]
    JwksFetchFailed {
        url: String,
        status: Option<u16>,
        reason: String,
    },
    #[error("the platform key set at {url} is unusable: {reason}")]
    JwksInvalid { url: String, reason: String },

    // ---- tool keys ----
    #[error("tool key problem: {reason}")]
    ToolKey { reason: String },

    // ---- service calls ----
    #[error("the token endpoint {url} refused the request (HTTP {status:?}): {body}")]
    TokenRequestFailed {
        url: String,
        status: Option<u16>,
        body: String,
    },
    #[error("service call to {url} failed with HTTP {status}: {body}")]
    ServiceHttp {
        url: String,
        status: u16,
        body: String,
    },
    #[error("service {url} unreachable: {reason}")]
    ServiceUnreachable { url: String, reason: String },
    #[error("service {url} answered something unreadable: {reason}")]
    ServiceResponseInvalid { url: String, reason: String },

    // ---- dynamic registration ----
    #[error("registration issuer {issuer:?} does not match the configuration URL {config_url:?}")]
    RegistrationIssuerMismatch { issuer: String, config_url: String },
    #[error("registration is invalid: {reason}")]
    RegistrationInvalid { reason: String },

    // ---- misc ----
    #[error("{what} is not a valid URL: {reason}")]
    InvalidUrl { what: &'static str, reason: String },
}

impl LtiError {
    /// A stable snake_case code (kept in logs, the flight recorder, problem+json).
    pub fn code(&self) -> &'static str {
        use LtiError::*;
        match self {
            MalformedToken { .. } => "malformed_token",
            AlgNotAllowed { .. } => "alg_not_allowed",
            KidMissing => "kid_missing",
            KidUnknown { .. } => "kid_unknown",
            KeyTooShort { .. } => "key_too_short",
            BadSignature => "bad_signature",
            IssMismatch { .. } => "iss_mismatch",
            AudMismatch { .. } => "aud_mismatch",
            AudUntrusted { .. } => "aud_untrusted",
            AzpMissing => "azp_missing",
            AzpMismatch { .. } => "azp_mismatch",
            ExpMissing => "exp_missing",
            TokenExpired { .. } => "token_expired",
            IatMissing => "iat_missing",
            IatInFuture { .. } => "iat_in_future",
            TokenTooOld { .. } => "token_too_old",
            TokenNotYetValid { .. } => "token_not_yet_valid",
            NonceMissing => "nonce_missing",
            NonceMismatch => "nonce_mismatch",
            DeploymentIdMissing => "deployment_id_missing",
            MessageTypeMissing => "message_type_missing",
            MessageTypeInvalid { .. } => "message_type_invalid",
            VersionMissing => "version_missing",
            VersionInvalid { .. } => "version_invalid",
            SubMissing => "sub_missing",
            RolesMissing => "roles_missing",
            ResourceLinkMissing => "resource_link_missing",
            DeepLinkingSettingsMissing => "deep_linking_settings_missing",
            TargetLinkUriMissing => "target_link_uri_missing",
            TargetLinkUriMismatch { .. } => "target_link_uri_mismatch",
            ClaimInvalid { .. } => "claim_invalid",
            LoginParamMissing { .. } => "login_param_missing",
            LoginParamInvalid { .. } => "login_param_invalid",
            JwksFetchFailed { .. } => "jwks_fetch_failed",
            JwksInvalid { .. } => "jwks_invalid",
            ToolKey { .. } => "tool_key_error",
            TokenRequestFailed { .. } => "token_request_failed",
            ServiceHttp { .. } => "service_http_error",
            ServiceUnreachable { .. } => "service_unreachable",
            ServiceResponseInvalid { .. } => "service_response_invalid",
            RegistrationIssuerMismatch { .. } => "registration_issuer_mismatch",
            RegistrationInvalid { .. } => "registration_invalid",
            InvalidUrl { .. } => "invalid_url",
        }
    }

    /// Every code this crate can produce (for docs and exhaustive tests).
    pub const ALL_CODES: &'static [&'static str] = &[
        "malformed_token",
        "alg_not_allowed",
        "kid_missing",
        "kid_unknown",
        "bad_signature",
        "iss_mismatch",
        "aud_mismatch",
        "aud_untrusted",
        "azp_missing",
        "azp_mismatch",
        "exp_missing",
        "token_expired",
        "iat_missing",
        "iat_in_future",
        "token_too_old",
        "token_not_yet_valid",
        "nonce_missing",
        "nonce_mismatch",
        "deployment_id_missing",
        "message_type_missing",
        "message_type_invalid",
        "version_missing",
        "version_invalid",
        "sub_missing",
        "roles_missing",
        "resource_link_missing",
        "deep_linking_settings_missing",
        "target_link_uri_missing",
        "target_link_uri_mismatch",
        "claim_invalid",
        "login_param_missing",
        "login_param_invalid",
        "jwks_fetch_failed",
        "jwks_invalid",
        "tool_key_error",
        "token_request_failed",
        "service_http_error",
        "service_unreachable",
        "service_response_invalid",
        "registration_issuer_mismatch",
        "registration_invalid",
        "invalid_url",
    ];

    /// The HTTP status a remote service answered, when there was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            LtiError::ServiceHttp { status, .. } => Some(*status),
            LtiError::TokenRequestFailed { status, .. }
            | LtiError::JwksFetchFailed { status, .. } => *status,
            _ => None,
        }
    }

    /// Whether an outbox should try the same call again later: network
    /// failures, 408, 425, 429 and 5xx. A 401 is not retryable as such: the
    /// caller refreshes its access token once and tries again.
    pub fn is_retryable(&self) -> bool {
        match self {
            LtiError::ServiceUnreachable { .. } => true,
            LtiError::ServiceHttp { status, .. } => is_retryable_status(*status),
            LtiError::TokenRequestFailed { status, .. }
            | LtiError::JwksFetchFailed { status, .. } => match status {
                None => true,
                Some(s) => is_retryable_status(*s),
            },
            _ => false,
        }
    }

    /// True when a service answered 401 (the access token should be refreshed).
    pub fn is_unauthorized(&self) -> bool {
        self.status() == Some(401)
    }

    /// What went wrong, in words an LMS administrator or a learner understands.
    pub fn plain_words(&self) -> String {
        use LtiError::*;
        match self {
            MalformedToken { .. } => "The LMS sent something that is not a readable LTI 1.3 launch token (an id_token in JWT form).".into(),
            AlgNotAllowed { alg } => format!("The launch token was signed with {alg}; this tool accepts only RS256 signatures, so it cannot trust it."),
            KidMissing => "The launch token does not say which of the LMS's keys signed it (no \"kid\"), so it cannot be checked.".into(),
            KidUnknown { kid } => format!("The launch token was signed with a key (kid \"{kid}\") that the LMS's published key set does not contain."),
            KeyTooShort { kid, bits } => format!("The LMS signed the launch with an RSA key of {bits} bits (kid \"{kid}\"); LTI 1.3 requires at least 2,048 bits, so the signature cannot be trusted."),
            BadSignature => "The launch token's signature does not match the LMS's public key: it was altered, or signed with another key.".into(),
            IssMismatch { expected, got } => format!("The launch came from issuer \"{got}\", but this registration expects \"{expected}\"."),
            AudMismatch { client_id, .. } => format!("The launch token was not addressed to this tool: its audience does not include the client ID \"{client_id}\"."),
            AudUntrusted { audience } => format!("The launch token is also addressed to \"{audience}\", which this tool does not trust."),
            AzpMissing => "The launch token names several audiences but not which one is the authorised party (azp).".into(),
            AzpMismatch { client_id, got } => format!("The launch token's authorised party is \"{got}\", not this tool's client ID \"{client_id}\"."),
            ExpMissing => "The launch token has no expiry time.".into(),
            TokenExpired { exp, now, .. } => format!("The launch token expired {} seconds ago. The clocks may differ, or the page was reloaded.", now - exp),
            IatMissing => "The launch token does not say when it was issued.".into(),
            IatInFuture { iat, now, .. } => format!("The launch token claims to be issued {} seconds in the future: the LMS's clock or this server's clock is wrong.", iat - now),
            TokenTooOld { iat, now, .. } => format!("The launch token was issued {} seconds ago, longer than this tool accepts.", now - iat),
            TokenNotYetValid { nbf, now } => format!("The launch token is only valid in {} seconds.", nbf - now),
            NonceMissing => "The launch token carries no nonce, so it cannot be tied to the login that started it.".into(),
            NonceMismatch => "The launch token belongs to another login (its nonce differs), or it was replayed.".into(),
            DeploymentIdMissing => "The launch does not say which deployment (installation) of the tool it comes from.".into(),
            MessageTypeMissing => "The launch does not say what kind of LTI message it is (message_type).".into(),
            MessageTypeInvalid { got } => format!("The launch is an LTI message of type \"{got}\", which this tool does not handle."),
            VersionMissing => "The launch does not say which LTI version it speaks.".into(),
            VersionInvalid { got } => format!("The launch speaks LTI version \"{got}\"; this tool needs 1.3.0."),
            SubMissing => "The launch does not identify the user (no \"sub\"): anonymous launches are turned off.".into(),
            RolesMissing => "The launch does not carry the user's roles.".into(),
            ResourceLinkMissing => "The launch does not say which link in the course was clicked (resource_link.id).".into(),
            DeepLinkingSettingsMissing => "The content-selection request does not say where to send the selection back (deep_link_return_url).".into(),
            TargetLinkUriMissing => "The launch does not say which tool URL it is meant for (target_link_uri).".into(),
            TargetLinkUriMismatch { got, .. } => format!("The launch is meant for \"{got}\", which is not one of this tool's launch URLs."),
            ClaimInvalid { claim, reason } => format!("The launch's \"{claim}\" value is unusable: {reason}."),
            LoginParamMissing { param } => format!("The LMS started the login without the required \"{param}\" parameter."),
            LoginParamInvalid { param, reason } => format!("The LMS started the login with an unusable \"{param}\": {reason}."),
            JwksFetchFailed { url, .. } => format!("The tool could not download the LMS's public keys from {url}."),
            JwksInvalid { url, .. } => format!("The LMS's public key set at {url} contains no usable RSA signing key."),
            ToolKey { .. } => "The tool's own signing keys are missing or unreadable.".into(),
            TokenRequestFailed { status, .. } => format!("The LMS refused to give the tool an access token for its services{}.", status_suffix(*status)),
            ServiceHttp { status, .. } => format!("The LMS answered a service call with HTTP {status}."),
            ServiceUnreachable { .. } => "The LMS's service could not be reached.".into(),
            ServiceResponseInvalid { .. } => "The LMS's service answered something the tool could not read.".into(),
            RegistrationIssuerMismatch { issuer, config_url } => format!("The LMS's configuration at {config_url} names issuer \"{issuer}\" on another site, so it cannot be trusted."),
            RegistrationInvalid { reason } => format!("Dynamic registration failed: {reason}."),
            InvalidUrl { what, .. } => format!("The {what} is not a valid URL."),
        }
    }

    /// What the LMS administrator (or the tool's operator) should change.
    /// `lms` is a free-form name ("canvas", "Moodle", "D2L"...); when known,
    /// LMS-specific hints are added.
    pub fn advice(&self, lms: Option<&str>) -> String {
        let general = self.general_advice();
        match lms
            .and_then(Lms::parse)
            .and_then(|l| self.lms_advice(l).map(|a| (l, a)))
        {
            Some((l, a)) => format!("{general} {}: {a}", l.name()),
            None => general.to_string(),
        }
    }

    fn general_advice(&self) -> &'static str {
        use LtiError::*;
        match self {
            MalformedToken { .. } => "Check that the tool's redirect (launch) URL in the LMS is this tool's /lti/launch and that the LMS uses LTI 1.3, not LTI 1.1.",
            AlgNotAllowed { .. } => "Configure the LMS to sign LTI 1.3 launches with RS256 (RSA SHA-256).",
            KidMissing => "The LMS must put the key id (kid) in the token header; update the LMS or its LTI plugin.",
            KidUnknown { .. } => "Check the platform's public keyset URL registered in this tool; the tool re-downloads keys on an unknown kid at most once a minute, so retry in a minute after the LMS rotated its keys.",
            KeyTooShort { .. } => "Have the LMS generate a new platform key of at least 2,048 bits (the 1EdTech Security Framework requires it) and publish it at its keyset URL; launches signed with it then work without a change in this tool.",
            BadSignature => "Check that the public keyset URL registered in this tool belongs to this LMS (and this LMS instance: production, beta and test differ).",
            IssMismatch { .. } => "Register the platform in this tool with exactly the issuer the LMS sends (scheme, host and path; no trailing slash unless the LMS sends one).",
            AudMismatch { .. } | AzpMismatch { .. } | AzpMissing => "Check the client ID registered in this tool: it must be the one the LMS assigned to this tool.",
            AudUntrusted { .. } => "The token also names another audience than this tool's client ID. If the LMS does that on purpose, add that audience to the registration's trusted audiences in this tool (tokens with several audiences must then name this tool's client ID as azp); otherwise check the client ID registered in this tool.",
            ExpMissing | IatMissing => "The LMS must send exp and iat in every launch token; update the LMS or its LTI plugin.",
            TokenExpired { .. } | IatInFuture { .. } | TokenTooOld { .. } | TokenNotYetValid { .. } => "Make sure both the LMS server and this tool's server keep time with NTP; then launch again from the LMS instead of reloading the page.",
            NonceMissing | NonceMismatch => "Launch again from the LMS. If it keeps failing, the browser may block this tool's cookies: open the tool in a new window.",
            DeploymentIdMissing => "The LMS must send its deployment_id; update the LMS or its LTI plugin.",
            MessageTypeMissing | MessageTypeInvalid { .. } => "Use this tool for resource links and content selection (Deep Linking) only.",
            VersionMissing | VersionInvalid { .. } => "Configure the tool in the LMS as an LTI 1.3 (LTI Advantage) tool.",
            SubMissing => "Configure the LMS to send the user's id to this tool (privacy settings), or allow anonymous launches for this platform.",
            RolesMissing => "Configure the LMS to send the user's roles to this tool.",
            ResourceLinkMissing => "Add the tool to the course as a link or activity and launch it from there.",
            DeepLinkingSettingsMissing => "The LMS must send deep_linking_settings with a return URL; update the LMS.",
            TargetLinkUriMissing | TargetLinkUriMismatch { .. } => "Set the tool's target link URI / launch URL in the LMS to exactly this tool's /lti/launch URL (or the link's URL the tool created).",
            ClaimInvalid { .. } => "The LMS sent a claim in a shape LTI 1.3 does not allow; update the LMS or its LTI plugin.",
            LoginParamMissing { .. } | LoginParamInvalid { .. } => "Set the tool's login initiation URL in the LMS to this tool's /lti/login and make sure the LMS sends iss, login_hint and target_link_uri.",
            JwksFetchFailed { .. } => "Check the platform's public keyset URL registered in this tool, and that this server can reach it (firewall, proxy, DNS).",
            JwksInvalid { .. } => "The LMS must publish RSA keys with a kid at its public keyset URL.",
            ToolKey { .. } => "Check the tool's jwks/ directory: it must hold the PEM keys and keys.json readable by the server (run `coursegate keys rotate` to create a fresh key).",
            TokenRequestFailed { .. } => "Check the token URL, the client ID and the tool's public keyset URL (or key) registered in the LMS, and that the scopes the tool asks for are enabled for it.",
            ServiceHttp { .. } | ServiceUnreachable { .. } | ServiceResponseInvalid { .. } => "Check that the LMS grants this tool the Assignment and Grade Services and Names and Role Provisioning services; the call will be retried.",
            RegistrationIssuerMismatch { .. } => "Start the registration from the LMS's own registration page so its configuration URL is on the LMS's site.",
            RegistrationInvalid { .. } => "Start the dynamic registration again from the LMS, or register the tool by hand.",
            InvalidUrl { .. } => "Correct the URL in the registration.",
        }
    }

    fn lms_advice(&self, lms: Lms) -> Option<&'static str> {
        use LtiError::*;
        match (self, lms) {
            (KidUnknown { .. } | BadSignature | JwksFetchFailed { .. }, Lms::Canvas) => Some("the public keyset URL is https://sso.canvaslms.com/api/lti/security/jwks (sso.beta.canvaslms.com or sso.test.canvaslms.com for beta/test), for every Instructure-hosted school."),
            (KidUnknown { .. } | BadSignature | JwksFetchFailed { .. }, Lms::Moodle) => Some("the public keyset URL is <your Moodle site>/mod/lti/certs.php."),
            (KidUnknown { .. } | BadSignature | JwksFetchFailed { .. }, Lms::Brightspace) => Some("Brightspace rotates its keys about hourly; the keyset URL is shown on the LTI Advantage registration page (…/d2l/.well-known/jwks)."),
            (KidUnknown { .. } | BadSignature | JwksFetchFailed { .. }, Lms::Blackboard) => Some("the keyset URL is the one shown in the Anthology Developer Portal for your application (https://developer.blackboard.com/api/v1/management/applications/<application id>/jwks.json)."),
            (KidUnknown { .. } | BadSignature | JwksFetchFailed { .. }, Lms::Schoology) => Some("keys are published by https://lti-service.svc.schoology.com/lti-service/.well-known/jwks."),
            (KidUnknown { .. } | BadSignature | JwksFetchFailed { .. }, Lms::Sakai) => Some("copy the platform keyset URL from the tool's LTI 1.3 settings in Sakai's Administration Workspace (External Tools); it is on the Sakai server's own address."),
            (KidUnknown { .. } | BadSignature | JwksFetchFailed { .. }, Lms::OpenEdx) => Some("every LTI 1.3 component has its own platform key unless it uses a reusable configuration; copy the \"Keyset URL\" shown in that component's LTI settings in Studio."),
            (IssMismatch { .. }, Lms::Canvas) => Some("Instructure-hosted Canvas always sends https://canvas.instructure.com (beta: https://canvas.beta.instructure.com, test: https://canvas.test.instructure.com), not your school's Canvas address."),
            (IssMismatch { .. }, Lms::Moodle) => Some("the issuer is the Moodle site's URL (wwwroot) exactly."),
            (IssMismatch { .. }, Lms::Blackboard) => Some("the issuer is https://blackboard.com for every Learn site."),
            (IssMismatch { .. }, Lms::Schoology) => Some("the issuer is https://schoology.schoology.com."),
            (IssMismatch { .. }, Lms::Sakai) => Some("the issuer is the Sakai server's URL."),
            (IssMismatch { .. }, Lms::Brightspace) => Some("the issuer is your Brightspace site's URL (e.g. https://school.brightspace.com), as shown on the tool registration's page."),
            (IssMismatch { .. }, Lms::OpenEdx) => Some("the issuer is the LMS root URL of the Open edX site (its LMS_ROOT_URL), not the Studio address."),
            (AudMismatch { .. } | AzpMismatch { .. } | AzpMissing | AudUntrusted { .. }, Lms::Canvas) => Some("the client ID is the developer key's number (e.g. 10000000000001), not the key's secret."),
            (AudMismatch { .. } | AzpMismatch { .. } | AzpMissing | AudUntrusted { .. }, Lms::Moodle) => Some("the client ID is shown in Site administration › Plugins › External tool › Manage tools › tool details."),
            (AudMismatch { .. } | AzpMismatch { .. } | AzpMissing | AudUntrusted { .. }, Lms::Blackboard) => Some("the client ID is the Application ID from the Anthology Developer Portal."),
            (AudMismatch { .. } | AzpMismatch { .. } | AzpMissing | AudUntrusted { .. }, Lms::OpenEdx) => Some("each LTI component has its own client ID unless a reusable configuration is used; copy the one shown in the component's settings."),
            (AudMismatch { .. } | AzpMismatch { .. } | AzpMissing | AudUntrusted { .. }, Lms::Brightspace) => Some("the client ID is shown on the tool's registration page (Manage Extensibility › LTI Advantage); Brightspace sends a single audience."),
            (AudMismatch { .. } | AzpMismatch { .. } | AzpMissing | AudUntrusted { .. }, Lms::Schoology) => Some("the client ID is shown in the LTI 1.3 settings of the app in Schoology's developer apps; every school that installs the app shares it."),
            (AudMismatch { .. } | AzpMismatch { .. } | AzpMissing | AudUntrusted { .. }, Lms::Sakai) => Some("the client ID is shown in the tool's LTI 1.3 settings in Sakai's Administration Workspace (External Tools)."),
            (LoginParamMissing { .. } | LoginParamInvalid { .. } | TargetLinkUriMismatch { .. } | TargetLinkUriMissing, Lms::Canvas) => Some("in the developer key, set \"OpenID Connect Initiation Url\" to /lti/login and \"Target Link URI\" and \"Redirect URIs\" to /lti/launch."),
            (LoginParamMissing { .. } | LoginParamInvalid { .. } | TargetLinkUriMismatch { .. } | TargetLinkUriMissing, Lms::Moodle) => Some("in the tool settings, set \"Initiate login URL\" to /lti/login, \"Redirection URI(s)\" and \"Tool URL\" to /lti/launch."),
            (LoginParamMissing { .. } | LoginParamInvalid { .. } | TargetLinkUriMismatch { .. } | TargetLinkUriMissing, Lms::Brightspace) => Some("in the tool registration, set \"OpenID Connect Login URL\" to /lti/login and \"Redirect URLs\" to /lti/launch, and the deployment's links' \"Target Link URI\" to /lti/launch."),
            (LoginParamMissing { .. } | LoginParamInvalid { .. } | TargetLinkUriMismatch { .. } | TargetLinkUriMissing, Lms::Blackboard) => Some("in the application on the Anthology Developer Portal, set \"Login Initiation URL\" to /lti/login and \"Tool Redirect URL(s)\" and \"Target Link URI\" to /lti/launch."),
            (LoginParamMissing { .. } | LoginParamInvalid { .. } | TargetLinkUriMismatch { .. } | TargetLinkUriMissing, Lms::Schoology) => Some("in the app's LTI 1.3 settings in Schoology's developer apps, set the OpenID Connect login initiation URL to /lti/login and the redirect URL(s) and launch URL to /lti/launch."),
            (LoginParamMissing { .. } | LoginParamInvalid { .. } | TargetLinkUriMismatch { .. } | TargetLinkUriMissing, Lms::Sakai) => Some("in the tool's LTI 1.3 settings (Administration Workspace › External Tools), set the tool's OIDC login initiation URL to /lti/login and its redirect endpoint(s) and launch URL to /lti/launch."),
            (LoginParamMissing { .. } | LoginParamInvalid { .. } | TargetLinkUriMismatch { .. } | TargetLinkUriMissing, Lms::OpenEdx) => Some("in the component's LTI 1.3 settings in Studio, set \"Tool Initiate Login URL\" to /lti/login and \"Tool Launch URL\" to /lti/launch."),
            (NonceMissing | NonceMismatch, Lms::Moodle) => Some("Moodle accepts each launch only once per session; launch again from the course page rather than going back."),
            (NonceMissing | NonceMismatch, Lms::Brightspace) => Some("Brightspace opens tools in an iframe by default; set the link to open in a new window if launches keep failing."),
            (NonceMissing | NonceMismatch, Lms::Canvas) => Some("Canvas shows tools in an iframe; if the browser blocks third-party cookies, set the assignment or link to load in a new tab."),
            (NonceMissing | NonceMismatch, Lms::Blackboard) => Some("a link shown inside Learn's frame loses its cookies in browsers that block third-party cookies; set the link to open in a new window."),
            (NonceMissing | NonceMismatch, Lms::Schoology) => Some("Schoology shows tools in an iframe; in browsers that block third-party cookies, open the material in a new window."),
            (NonceMissing | NonceMismatch, Lms::Sakai) => Some("Sakai offers LTI platform storage (lti_storage_target) to keep the login state when the frame has no cookies; make sure the page is not opened outside Sakai's frame, and launch again from the site."),
            (NonceMissing | NonceMismatch, Lms::OpenEdx) => Some("set the component's \"LTI Launch Target\" to a new window if launches inside the course page keep failing."),
            (SubMissing | RolesMissing, Lms::Brightspace) => Some("in the LTI Advantage deployment, tick the security settings that send the user's id, name, email and org information."),
            (SubMissing | RolesMissing, Lms::Canvas) => Some("set the developer key's privacy level to at least \"Anonymous\" with user id, or \"Public\" for names and email."),
            (SubMissing | RolesMissing, Lms::Moodle) => Some("in the tool's Privacy settings, choose \"Always\" for sharing the launcher's name and email."),
            (SubMissing | RolesMissing, Lms::Blackboard) => Some("on the tool's page under Administrator Panel › Integrations › LTI Tool Providers, tick Role in Course (and Name and Email Address) under \"User Fields to Send\"."),
            (SubMissing | RolesMissing, Lms::Schoology) => Some("check the privacy settings of the app's LTI 1.3 configuration in Schoology's developer apps: the tool needs the user's id and roles on every launch."),
            (SubMissing | RolesMissing, Lms::Sakai) => Some("in the tool's settings (Administration Workspace › External Tools), allow sending the user's name, email address and roster role to the tool."),
            (SubMissing | RolesMissing, Lms::OpenEdx) => Some("in the component's settings in Studio, set \"Request user's username\" and \"Request user's email\" to True (the course must allow sharing personal data with LTI tools)."),
            (ResourceLinkMissing, Lms::Blackboard) => Some("launch the tool from a course content link, not from a system tool placement."),
            (DeploymentIdMissing, Lms::OpenEdx) => Some("Open edX always sends deployment id \"1\"; update xblock-lti-consumer."),
            (TokenExpired { .. } | IatInFuture { .. } | TokenTooOld { .. }, Lms::Brightspace) => Some("intermittent \"token not active\" errors usually mean the Brightspace and tool clocks differ by more than a minute."),
            (TokenRequestFailed { .. }, Lms::Brightspace) => Some("set the registration's OAuth2 audience in this tool to the \"OAuth2 Audience\" shown on Brightspace's registration page."),
            (TokenRequestFailed { .. }, Lms::Canvas) => Some("the token URL is https://sso.canvaslms.com/login/oauth2/token, and the developer key must be ON with the AGS/NRPS scopes ticked."),
            (TokenRequestFailed { .. }, Lms::Moodle) => Some("the token URL is <site>/mod/lti/token.php, and the tool's services (grade sync, names and roles) must be enabled in its settings."),
            (TokenRequestFailed { .. }, Lms::Blackboard) => Some("the token URL is https://developer.blackboard.com/api/v1/gateway/oauth2/jwttoken."),
            (TokenRequestFailed { .. }, Lms::Schoology) => Some("the token URL is https://lti-service.svc.schoology.com/lti-service/access-token."),
            (ServiceHttp { .. }, Lms::Moodle) => Some("Moodle records a score only when gradingProgress is FullyGraded and its timestamp is newer than the stored one (otherwise HTTP 409)."),
            (ServiceHttp { .. }, Lms::Brightspace) => Some("scores are stored only for roles with \"Can be graded\", and above the maximum only with \"Can Exceed\"."),
            (ServiceHttp { .. }, Lms::OpenEdx) => Some("only FullyGraded scores on the line item linked to the component are counted."),
            (RegistrationInvalid { .. }, Lms::Moodle) => Some("paste the URL in Site administration › Plugins › External tool › Manage tools › Tool URL, then Add LTI Advantage."),
            (RegistrationInvalid { .. }, Lms::Canvas) => Some("in Admin › Developer Keys › + Developer Key › LTI Registration, paste the URL."),
            (RegistrationInvalid { .. }, Lms::Brightspace) => Some("in Manage Extensibility › LTI Advantage › Register Tool, choose Dynamic and paste the URL."),
            _ => None,
        }
    }
}

fn is_retryable_status(s: u16) -> bool {
    matches!(s, 408 | 425 | 429) || (500..=599).contains(&s)
}

fn status_suffix(status: Option<u16>) -> String {
    status.map(|s| format!(" (HTTP {s})")).unwrap_or_default()
}

pub type Result<T, E = LtiError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Lms; 7] = [
        Lms::Canvas,
        Lms::Moodle,
        Lms::Brightspace,
        Lms::Blackboard,
        Lms::Schoology,
        Lms::Sakai,
        Lms::OpenEdx,
    ];

    /// The launch refusals an LMS administrator fixes in the LMS's own
    /// settings have advice for every LMS the tool knows.
    #[test]
    fn launch_refusals_with_lms_advice_cover_every_lms() {
        let reasons = [
            LtiError::KidUnknown { kid: "k".into() },
            LtiError::BadSignature,
            LtiError::JwksFetchFailed {
                url: "https://lms.example/jwks".into(),
                status: None,
                reason: "refused".into(),
            },
            LtiError::IssMismatch {
                expected: "a".into(),
                got: "b".into(),
            },
            LtiError::AudMismatch {
                client_id: "c".into(),
                got: vec!["d".into()],
            },
            LtiError::AudUntrusted {
                audience: "e".into(),
            },
            LtiError::AzpMissing,
            LtiError::AzpMismatch {
                client_id: "c".into(),
                got: "f".into(),
            },
            LtiError::LoginParamMissing { param: "iss" },
            LtiError::TargetLinkUriMissing,
            LtiError::NonceMissing,
            LtiError::NonceMismatch,
            LtiError::SubMissing,
            LtiError::RolesMissing,
        ];
        for e in &reasons {
            for lms in ALL {
                assert!(
                    e.lms_advice(lms).is_some(),
                    "{} has no advice for {}",
                    e.code(),
                    lms.name()
                );
                let advice = e.advice(Some(lms.name()));
                assert!(
                    advice.contains(&format!("{}: ", lms.name())),
                    "{}: {advice}",
                    e.code()
                );
            }
        }
    }

    #[test]
    fn every_lms_name_parses_back() {
        for lms in ALL {
            assert_eq!(Lms::parse(lms.name()), Some(lms));
        }
    }

    #[test]
    fn an_untrusted_audience_points_at_the_trusted_audiences_setting() {
        let e = LtiError::AudUntrusted {
            audience: "x".into(),
        };
        assert!(e.advice(None).contains("trusted audiences"));
    }
}
