//! id_token reading and verification (1EdTech Security Framework §5.1.3,
//! LTI 1.3 Core §5).
//!
//! The flow the server follows:
//! 1. [`peek_unverified`] reads `iss`, `aud`, `azp`, `kid` **without checking
//!    anything**, only to find which registered platform (and so which key set)
//!    applies. Nothing it returns may be trusted or stored.
//! 2. It obtains the platform's keys (see [`crate::jwks::JwksCache`]).
//! 3. [`verify_launch`] checks the signature and every claim and returns typed
//!    [`LaunchClaims`], or the one [`LtiError`] naming the first failed check.

use std::collections::{BTreeMap, HashMap};

use base64::Engine;
use chrono::{DateTime, Utc};
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::{Map, Value};

use crate::claims::{
    names, AgsEndpoint, Context, DeepLinkingSettings, LaunchClaims, LaunchPresentation,
    MessageType, NrpsClaim, ResourceLink, ToolPlatform, LTI_VERSION,
};
use crate::error::LtiError;

/// Base64url, padding optional (some platforms pad).
pub(crate) const B64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent)
        .with_encode_padding(false),
);

/// Default allowed clock skew.
pub const DEFAULT_SKEW_SECS: i64 = 60;
/// Default maximum age of an id_token (from its `iat`).
pub const DEFAULT_MAX_AGE_SECS: i64 = 3600;

/// The parts of a compact JWS, with header and payload decoded.
struct Parts<'a> {
    signing_input: &'a str,
    signature: &'a str,
    header: Map<String, Value>,
    payload_b64: &'a str,
}

fn malformed(reason: impl Into<String>) -> LtiError {
    LtiError::MalformedToken {
        reason: reason.into(),
    }
}

fn split(token: &str) -> Result<Parts<'_>, LtiError> {
    let token = token.trim();
    if token.is_empty() {
        return Err(malformed("empty token"));
    }
    let mut it = token.split('.');
    let (Some(h), Some(p), Some(s), None) = (it.next(), it.next(), it.next(), it.next()) else {
        return Err(malformed("a JWT has three dot-separated parts"));
    };
    if h.is_empty() || p.is_empty() {
        return Err(malformed("empty JWT header or payload"));
    }
    let header = decode_json_object(h, "header")?;
    let signing_input = token.get(..h.len() + 1 + p.len()).unwrap_or(token);
    Ok(Parts {
        signing_input,
        signature: s,
        header,
        payload_b64: p,
    })
}

fn decode_json_object(part: &str, what: &str) -> Result<Map<String, Value>, LtiError> {
    let bytes = B64
        .decode(part)
        .map_err(|e| malformed(format!("JWT {what} is not base64url: {e}")))?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(malformed(format!("JWT {what} is not a JSON object"))),
        Err(e) => Err(malformed(format!("JWT {what} is not JSON: {e}"))),
    }
}

fn str_of<'a>(m: &'a Map<String, Value>, k: &str) -> Option<&'a str> {
    m.get(k).and_then(Value::as_str)
}

fn audiences(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    }
}

/// What an id_token *says* about itself, read **without verifying** the
/// signature or any claim. Use it only to pick the platform registration and
/// key set; never trust, act on, or store these values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unverified {
    pub iss: String,
    pub aud: Vec<String>,
    pub azp: Option<String>,
    pub kid: Option<String>,
    pub alg: Option<String>,
    pub deployment_id: Option<String>,
}

impl Unverified {
    /// The client_id the token claims to be for: `azp` when present, else
    /// the single audience. `None` when it cannot be told.
    pub fn client_id(&self) -> Option<&str> {
        if let Some(azp) = self.azp.as_deref() {
            return Some(azp);
        }
        match self.aud.as_slice() {
            [one] => Some(one.as_str()),
            _ => None,
        }
    }
}

/// Reads the header and payload of an id_token without verifying anything.
/// See [`Unverified`]: the result only tells which platform to ask for keys.
pub fn peek_unverified(id_token: &str) -> Result<Unverified, LtiError> {
    let parts = split(id_token)?;
    let payload = decode_json_object(parts.payload_b64, "payload")?;
    let iss = str_of(&payload, "iss")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| malformed("the token has no iss"))?
        .to_string();
    Ok(Unverified {
        iss,
        aud: audiences(payload.get("aud")),
        azp: str_of(&payload, "azp").map(str::to_string),
        kid: str_of(&parts.header, "kid").map(str::to_string),
        alg: str_of(&parts.header, "alg").map(str::to_string),
        deployment_id: str_of(&payload, names::DEPLOYMENT_ID).map(str::to_string),
    })
}

/// The `kid` of an id_token's header, without decoding its payload (the
/// launch needs only this before verifying; the claims are read once, by
/// the verification itself). `None` for a malformed token or one without a
/// kid: the verification then names the reason.
pub fn peek_kid(id_token: &str) -> Option<String> {
    let parts = split(id_token).ok()?;
    str_of(&parts.header, "kid").map(str::to_string)
}

/// Something that can hand out a platform's RS256 verification key by `kid`.
pub trait KeyLookup {
    fn key_for(&self, kid: &str) -> Option<DecodingKey>;
    /// The size in bits of the RSA key `kid` if the platform publishes it
    /// but it is too short to trust (under [`MIN_RSA_BITS`]), so the
    /// refusal can say so instead of "unknown key" or "bad signature".
    fn short_key_bits(&self, _kid: &str) -> Option<usize> {
        None
    }
}

/// The shortest RSA modulus accepted (1EdTech Security Framework; ring
/// refuses shorter keys too).
pub const MIN_RSA_BITS: usize = 2048;

/// The modulus size of an RSA JWK in bits (`None` if it is not one, or its
/// `n` does not decode).
pub(crate) fn rsa_bits(jwk: &jsonwebtoken::jwk::Jwk) -> Option<usize> {
    let AlgorithmParameters::RSA(rsa) = &jwk.algorithm else {
        return None;
    };
    let n = B64.decode(rsa.n.trim_end_matches('=')).ok()?;
    let n = &n[n.iter().position(|&b| b != 0)?..];
    Some(n.len() * 8 - n[0].leading_zeros() as usize)
}

/// Whether a JWK is an RSA key usable to verify RS256 signatures.
pub(crate) fn usable_rsa_jwk(jwk: &jsonwebtoken::jwk::Jwk) -> bool {
    let rsa = matches!(jwk.algorithm, AlgorithmParameters::RSA(_));
    let alg_ok = matches!(jwk.common.key_algorithm, None | Some(KeyAlgorithm::RS256));
    let use_ok = matches!(
        jwk.common.public_key_use,
        None | Some(PublicKeyUse::Signature)
    );
    rsa && alg_ok && use_ok && jwk.common.key_id.is_some()
}

/// The usable RSA keys of `set` published under `kid`.
fn published<'a>(
    set: &'a JwkSet,
    kid: &'a str,
) -> impl Iterator<Item = &'a jsonwebtoken::jwk::Jwk> + 'a {
    set.keys
        .iter()
        .filter(move |k| k.common.key_id.as_deref() == Some(kid) && usable_rsa_jwk(k))
}

impl KeyLookup for JwkSet {
    fn key_for(&self, kid: &str) -> Option<DecodingKey> {
        published(self, kid)
            .filter(|k| rsa_bits(k).is_some_and(|b| b >= MIN_RSA_BITS))
            .find_map(|k| DecodingKey::from_jwk(k).ok())
    }
    fn short_key_bits(&self, kid: &str) -> Option<usize> {
        published(self, kid).find_map(|k| rsa_bits(k).filter(|&b| b < MIN_RSA_BITS))
    }
}

/// A platform's verification keys, indexed by kid, built once from a JWKS.
#[derive(Clone, Default)]
pub struct PlatformKeys {
    keys: HashMap<String, DecodingKey>,
    /// Published but too short to trust: kid → bits.
    short: HashMap<String, usize>,
}

impl std::fmt::Debug for PlatformKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlatformKeys")
            .field("kids", &self.kids())
            .finish()
    }
}

impl PlatformKeys {
    /// Keeps only RSA keys with a kid whose `alg` is RS256 or absent and
    /// whose `use` is `sig` or absent.
    /// RSA keys under [`MIN_RSA_BITS`] are kept aside, so a launch signed
    /// with one is refused with [`LtiError::KeyTooShort`].
    pub fn from_jwks(set: &JwkSet) -> PlatformKeys {
        let mut out = PlatformKeys::default();
        for k in set.keys.iter().filter(|k| usable_rsa_jwk(k)) {
            let (Some(kid), Some(bits)) = (k.common.key_id.clone(), rsa_bits(k)) else {
                continue;
            };
            if bits < MIN_RSA_BITS {
                out.short.insert(kid, bits);
            } else if let Ok(d) = DecodingKey::from_jwk(k) {
                out.keys.insert(kid, d);
            }
        }
        out
    }

    /// Parses a JWKS document leniently: keys this crate cannot read (other
    /// key types, encryption keys, unknown algorithms) are skipped.
    pub fn parse_jwks_lenient(doc: &Value) -> JwkSet {
        let keys = doc
            .get("keys")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|k| {
                        serde_json::from_value::<jsonwebtoken::jwk::Jwk>(k.clone()).ok()
                    })
                    .filter(usable_rsa_jwk)
                    .collect()
            })
            .unwrap_or_default();
        JwkSet { keys }
    }

    /// Whether the platform publishes `kid` (usable or too short: either
    /// way fetching the keys again would not change the answer).
    pub fn contains(&self, kid: &str) -> bool {
        self.keys.contains_key(kid) || self.short.contains_key(kid)
    }
    pub fn kids(&self) -> Vec<&str> {
        let mut k: Vec<&str> = self
            .keys
            .keys()
            .chain(self.short.keys())
            .map(String::as_str)
            .collect();
        k.sort_unstable();
        k
    }
    pub fn len(&self) -> usize {
        self.keys.len() + self.short.len()
    }
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.short.is_empty()
    }
}

impl KeyLookup for PlatformKeys {
    fn key_for(&self, kid: &str) -> Option<DecodingKey> {
        self.keys.get(kid).cloned()
    }
    fn short_key_bits(&self, kid: &str) -> Option<usize> {
        self.short.get(kid).copied()
    }
}

impl<K: KeyLookup + ?Sized> KeyLookup for std::sync::Arc<K> {
    fn key_for(&self, kid: &str) -> Option<DecodingKey> {
        (**self).key_for(kid)
    }
    fn short_key_bits(&self, kid: &str) -> Option<usize> {
        (**self).short_key_bits(kid)
    }
}

/// What the tool expects of one launch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expectations {
    /// The registered platform issuer; compared exactly.
    pub issuer: String,
    /// Our client_id at that platform.
    pub client_id: String,
    /// The nonce issued at login. `None` checks only that a nonce is present;
    /// the caller must then compare it (and consume it) itself.
    pub nonce: Option<String>,
    /// The tool's launch URLs; `target_link_uri` must match one (scheme, host,
    /// port and path; query and fragment ignored). Empty skips the check.
    pub launch_urls: Vec<String>,
    /// Allowed clock difference in seconds (default 60).
    pub skew_secs: i64,
    /// Oldest accepted `iat`, in seconds before now (default 3600).
    pub max_age_secs: i64,
    /// Accept launches without `sub` (off by default).
    pub allow_anonymous: bool,
    /// Further audiences the token may name besides our client_id. Any other
    /// extra audience is refused ([`LtiError::AudUntrusted`]).
    pub trusted_audiences: Vec<String>,
}

impl Expectations {
    pub fn new(issuer: impl Into<String>, client_id: impl Into<String>) -> Self {
        Expectations {
            issuer: issuer.into(),
            client_id: client_id.into(),
            nonce: None,
            launch_urls: Vec::new(),
            skew_secs: DEFAULT_SKEW_SECS,
            max_age_secs: DEFAULT_MAX_AGE_SECS,
            allow_anonymous: false,
            trusted_audiences: Vec::new(),
        }
    }
    pub fn with_nonce(mut self, nonce: impl Into<String>) -> Self {
        self.nonce = Some(nonce.into());
        self
    }
    pub fn with_launch_url(mut self, url: impl Into<String>) -> Self {
        self.launch_urls.push(url.into());
        self
    }
    pub fn with_skew_secs(mut self, s: i64) -> Self {
        self.skew_secs = s.max(0);
        self
    }
    pub fn with_max_age_secs(mut self, s: i64) -> Self {
        self.max_age_secs = s.max(0);
        self
    }
    pub fn allow_anonymous(mut self, yes: bool) -> Self {
        self.allow_anonymous = yes;
        self
    }
    /// Audiences besides our client_id the platform's tokens may name (then
    /// `azp` must be our client_id).
    pub fn with_trusted_audiences(mut self, audiences: Vec<String>) -> Self {
        self.trusted_audiences = audiences;
        self
    }
}

/// One step of verification, for the flight recorder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
}

/// A redacted account of one verification: which key, the clock difference,
/// and each check in order up to the first failure. Holds no personal data.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trace {
    pub alg: Option<String>,
    pub kid: Option<String>,
    pub iss: Option<String>,
    pub deployment_id: Option<String>,
    pub message_type: Option<String>,
    /// `now - iat` in seconds (positive: the token is that old).
    pub age_secs: Option<i64>,
    pub checks: Vec<Check>,
}

impl Trace {
    fn pass(&mut self, name: &'static str) {
        self.checks.push(Check { name, ok: true });
    }
    fn check<T>(&mut self, name: &'static str, r: Result<T, LtiError>) -> Result<T, LtiError> {
        self.checks.push(Check {
            name,
            ok: r.is_ok(),
        });
        r
    }
}

/// Verifies launches against fixed expectations.
#[derive(Debug, Clone)]
pub struct Verifier {
    pub expectations: Expectations,
}

impl Verifier {
    pub fn new(expectations: Expectations) -> Self {
        Verifier { expectations }
    }

    pub fn verify<K: KeyLookup + ?Sized>(
        &self,
        id_token: &str,
        keys: &K,
        now: DateTime<Utc>,
    ) -> Result<LaunchClaims, LtiError> {
        verify_launch(id_token, keys, &self.expectations, now)
    }

    /// As [`Verifier::verify`], also returning what was checked.
    pub fn verify_traced<K: KeyLookup + ?Sized>(
        &self,
        id_token: &str,
        keys: &K,
        now: DateTime<Utc>,
    ) -> (Result<LaunchClaims, LtiError>, Trace) {
        verify_launch_traced(id_token, keys, &self.expectations, now)
    }
}

/// Verifies an id_token's signature (RS256 only, by `kid`) and every claim
/// the 1EdTech Security Framework and LTI 1.3 Core require, in this order:
/// form, alg, kid, signature, iss, aud, azp, exp, iat, nbf, nonce, version,
/// message_type, deployment_id, sub, roles, resource_link / deep_linking_settings,
/// target_link_uri. Whether the deployment_id is *known* is for the caller.
pub fn verify_launch<K: KeyLookup + ?Sized>(
    id_token: &str,
    keys: &K,
    expect: &Expectations,
    now: DateTime<Utc>,
) -> Result<LaunchClaims, LtiError> {
    verify_launch_traced(id_token, keys, expect, now).0
}

/// [`verify_launch`] with a [`Trace`] of the checks made.
pub fn verify_launch_traced<K: KeyLookup + ?Sized>(
    id_token: &str,
    keys: &K,
    expect: &Expectations,
    now: DateTime<Utc>,
) -> (Result<LaunchClaims, LtiError>, Trace) {
    let mut trace = Trace::default();
    let r = verify_inner(id_token, keys, expect, now.timestamp(), &mut trace);
    (r, trace)
}

/// Verifies only the JWS signature (RS256, kid required) and returns the payload.
/// Used for id_tokens and for any other platform-signed JWT.
pub fn verify_signature<K: KeyLookup + ?Sized>(
    token: &str,
    keys: &K,
) -> Result<Map<String, Value>, LtiError> {
    let mut t = Trace::default();
    verify_sig_inner(token, keys, &mut t)
}

fn verify_sig_inner<K: KeyLookup + ?Sized>(
    token: &str,
    keys: &K,
    trace: &mut Trace,
) -> Result<Map<String, Value>, LtiError> {
    let parts = trace.check("jwt_form", split(token))?;
    let alg = str_of(&parts.header, "alg").map(str::to_string);
    trace.alg.clone_from(&alg);
    trace.check(
        "alg",
        match alg.as_deref() {
            Some("RS256") => Ok(()),
            other => Err(LtiError::AlgNotAllowed {
                alg: other.unwrap_or("(none given)").to_string(),
            }),
        },
    )?;
    let kid = trace.check(
        "kid_present",
        str_of(&parts.header, "kid")
            .filter(|k| !k.is_empty())
            .map(str::to_string)
            .ok_or(LtiError::KidMissing),
    )?;
    trace.kid = Some(kid.clone());
    let key = trace.check(
        "kid_known",
        keys.key_for(&kid)
            .ok_or_else(|| match keys.short_key_bits(&kid) {
                Some(bits) => LtiError::KeyTooShort { kid, bits },
                None => LtiError::KidUnknown { kid },
            }),
    )?;
    let ok = jsonwebtoken::crypto::verify(
        parts.signature,
        parts.signing_input.as_bytes(),
        &key,
        Algorithm::RS256,
    )
    .unwrap_or(false);
    trace.check(
        "signature",
        if ok {
            Ok(())
        } else {
            Err(LtiError::BadSignature)
        },
    )?;
    trace.check(
        "payload_json",
        decode_json_object(parts.payload_b64, "payload"),
    )
}

fn num_claim(m: &Map<String, Value>, k: &'static str) -> Result<Option<i64>, LtiError> {
    match m.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().map(|f| f.floor() as i64))
            .map(Some)
            .ok_or_else(|| claim_invalid(k, "not a number of seconds")),
        Some(_) => Err(claim_invalid(k, "not a number")),
    }
}

fn claim_invalid(claim: &str, reason: &str) -> LtiError {
    LtiError::ClaimInvalid {
        claim: claim.to_string(),
        reason: reason.to_string(),
    }
}

fn nonempty_str(m: &Map<String, Value>, k: &str) -> Option<String> {
    str_of(m, k)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// Optional informative claims: a malformed one is dropped (with a warning)
/// rather than refusing the launch.
fn lenient<T: serde::de::DeserializeOwned>(m: &Map<String, Value>, k: &str) -> Option<T> {
    let v = m.get(k)?;
    if v.is_null() {
        return None;
    }
    match serde_json::from_value(v.clone()) {
        Ok(t) => Some(t),
        Err(e) => {
            tracing::warn!(claim = k, error = %e, "ignoring malformed optional LTI claim");
            None
        }
    }
}

fn custom_map(m: &Map<String, Value>) -> Result<BTreeMap<String, String>, LtiError> {
    match m.get(names::CUSTOM) {
        None | Some(Value::Null) => Ok(BTreeMap::new()),
        Some(Value::Object(o)) => Ok(o
            .iter()
            .filter_map(|(k, v)| {
                let s = match v {
                    Value::String(s) => s.clone(),
                    Value::Null => return None,
                    Value::Number(_) | Value::Bool(_) => v.to_string(),
                    _ => v.to_string(),
                };
                Some((k.clone(), s))
            })
            .collect()),
        Some(_) => Err(claim_invalid(names::CUSTOM, "not a JSON object")),
    }
}

fn same_launch_url(got: &str, expected: &str) -> bool {
    // The usual case, decided without parsing either URL.
    if got == expected {
        return true;
    }
    match (url::Url::parse(got), url::Url::parse(expected)) {
        (Ok(a), Ok(b)) => {
            a.scheme() == b.scheme()
                && a.host_str().map(str::to_ascii_lowercase)
                    == b.host_str().map(str::to_ascii_lowercase)
                && a.port_or_known_default() == b.port_or_known_default()
                && a.path().trim_end_matches('/') == b.path().trim_end_matches('/')
        }
        _ => got == expected,
    }
}

fn verify_inner<K: KeyLookup + ?Sized>(
    id_token: &str,
    keys: &K,
    expect: &Expectations,
    now: i64,
    trace: &mut Trace,
) -> Result<LaunchClaims, LtiError> {
    let p = verify_sig_inner(id_token, keys, trace)?;

    // iss: exact match.
    let iss = str_of(&p, "iss").unwrap_or("").to_string();
    trace.iss = Some(iss.clone());
    trace.check(
        "iss",
        if iss == expect.issuer {
            Ok(())
        } else {
            Err(LtiError::IssMismatch {
                expected: expect.issuer.clone(),
                got: iss.clone(),
            })
        },
    )?;

    // aud contains our client_id; no untrusted extra audience.
    let aud = audiences(p.get("aud"));
    trace.check(
        "aud",
        if aud.contains(&expect.client_id) {
            Ok(())
        } else {
            Err(LtiError::AudMismatch {
                client_id: expect.client_id.clone(),
                got: aud.clone(),
            })
        },
    )?;
    if let Some(extra) = aud
        .iter()
        .find(|a| **a != expect.client_id && !expect.trusted_audiences.contains(a))
    {
        trace.check::<()>(
            "aud_trusted",
            Err(LtiError::AudUntrusted {
                audience: extra.clone(),
            }),
        )?;
    }

    // azp: required with several audiences; when present must be our client_id.
    let azp = str_of(&p, "azp").map(str::to_string);
    trace.check(
        "azp",
        match (&azp, aud.len() > 1) {
            (None, true) => Err(LtiError::AzpMissing),
            (Some(a), _) if *a != expect.client_id => Err(LtiError::AzpMismatch {
                client_id: expect.client_id.clone(),
                got: a.clone(),
            }),
            _ => Ok(()),
        },
    )?;

    // exp
    let skew = expect.skew_secs;
    let exp = trace.check(
        "exp_present",
        num_claim(&p, "exp")?.ok_or(LtiError::ExpMissing),
    )?;
    trace.check(
        "exp",
        if now > exp.saturating_add(skew) {
            Err(LtiError::TokenExpired { exp, now, skew })
        } else {
            Ok(())
        },
    )?;

    // iat
    let iat = trace.check(
        "iat_present",
        num_claim(&p, "iat")?.ok_or(LtiError::IatMissing),
    )?;
    trace.age_secs = Some(now.saturating_sub(iat));
    trace.check(
        "iat_not_future",
        if iat > now.saturating_add(skew) {
            Err(LtiError::IatInFuture { iat, now, skew })
        } else {
            Ok(())
        },
    )?;
    trace.check(
        "iat_max_age",
        if now.saturating_sub(iat) > expect.max_age_secs.saturating_add(skew) {
            Err(LtiError::TokenTooOld {
                iat,
                now,
                max_age: expect.max_age_secs,
            })
        } else {
            Ok(())
        },
    )?;
    if let Some(nbf) = num_claim(&p, "nbf")? {
        trace.check(
            "nbf",
            if nbf > now.saturating_add(skew) {
                Err(LtiError::TokenNotYetValid { nbf, now })
            } else {
                Ok(())
            },
        )?;
    }

    // nonce
    let nonce = trace.check(
        "nonce_present",
        nonempty_str(&p, "nonce").ok_or(LtiError::NonceMissing),
    )?;
    if let Some(expected) = &expect.nonce {
        trace.check(
            "nonce",
            if constant_time_eq(nonce.as_bytes(), expected.as_bytes()) {
                Ok(())
            } else {
                Err(LtiError::NonceMismatch)
            },
        )?;
    }

    // version
    let version = trace.check(
        "version_present",
        nonempty_str(&p, names::VERSION).ok_or(LtiError::VersionMissing),
    )?;
    trace.check(
        "version",
        if version == LTI_VERSION {
            Ok(())
        } else {
            Err(LtiError::VersionInvalid {
                got: version.clone(),
            })
        },
    )?;

    // message_type
    let mt = trace.check(
        "message_type_present",
        nonempty_str(&p, names::MESSAGE_TYPE).ok_or(LtiError::MessageTypeMissing),
    )?;
    trace.message_type = Some(mt.clone());
    let message_type = trace.check(
        "message_type",
        MessageType::parse(&mt).ok_or(LtiError::MessageTypeInvalid { got: mt.clone() }),
    )?;

    // deployment_id
    let deployment_id = trace.check(
        "deployment_id_present",
        nonempty_str(&p, names::DEPLOYMENT_ID).ok_or(LtiError::DeploymentIdMissing),
    )?;
    trace.deployment_id = Some(deployment_id.clone());

    // sub
    let sub = nonempty_str(&p, "sub");
    trace.check(
        "sub",
        if sub.is_none() && !expect.allow_anonymous {
            Err(LtiError::SubMissing)
        } else {
            Ok(())
        },
    )?;

    // roles: present, an array (may be empty).
    let roles = trace.check(
        "roles",
        match p.get(names::ROLES) {
            None | Some(Value::Null) => Err(LtiError::RolesMissing),
            Some(Value::Array(a)) => Ok(a
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect::<Vec<_>>()),
            Some(Value::String(s)) => Ok(vec![s.clone()]),
            Some(_) => Err(claim_invalid(names::ROLES, "not an array of role URIs")),
        },
    )?;

    // message-specific required claims
    let resource_link: Option<ResourceLink> = match p.get(names::RESOURCE_LINK) {
        Some(Value::Object(o)) => str_of(o, "id")
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|id| ResourceLink {
                id: id.to_string(),
                title: str_of(o, "title").map(str::to_string),
                description: str_of(o, "description").map(str::to_string),
            }),
        _ => None,
    };
    if message_type == MessageType::ResourceLink || message_type == MessageType::SubmissionReview {
        trace.check(
            "resource_link",
            resource_link
                .as_ref()
                .map(|_| ())
                .ok_or(LtiError::ResourceLinkMissing),
        )?;
    }
    let deep_linking_settings = match p.get(names::DEEP_LINKING_SETTINGS) {
        None | Some(Value::Null) => None,
        Some(v) => serde_json::from_value::<DeepLinkingSettings>(v.clone())
            .ok()
            .filter(|d| !d.deep_link_return_url.trim().is_empty()),
    };
    if message_type == MessageType::DeepLinking {
        trace.check(
            "deep_linking_settings",
            deep_linking_settings
                .as_ref()
                .map(|_| ())
                .ok_or(LtiError::DeepLinkingSettingsMissing),
        )?;
    }

    // target_link_uri
    let target_link_uri = nonempty_str(&p, names::TARGET_LINK_URI);
    if !expect.launch_urls.is_empty() {
        let t = trace.check(
            "target_link_uri_present",
            target_link_uri
                .clone()
                .ok_or(LtiError::TargetLinkUriMissing),
        )?;
        trace.check(
            "target_link_uri",
            if expect.launch_urls.iter().any(|u| same_launch_url(&t, u)) {
                Ok(())
            } else {
                Err(LtiError::TargetLinkUriMismatch {
                    got: t.clone(),
                    expected: expect.launch_urls.clone(),
                })
            },
        )?;
    }

    let custom = trace.check("custom", custom_map(&p))?;
    let context = lenient::<Context>(&p, names::CONTEXT).filter(|c| !c.id.is_empty());
    let role_scope_mentor = match p.get(names::ROLE_SCOPE_MENTOR) {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    };
    let lti_storage_target = p
        .get(names::PLATFORM_STORAGE)
        .and_then(|v| {
            v.get("target")
                .or_else(|| v.get("lti_storage_target"))
                .and_then(Value::as_str)
                .or_else(|| v.as_str())
        })
        .or_else(|| str_of(&p, names::LTI_STORAGE_TARGET))
        .map(str::to_string);
    trace.pass("claims");

    Ok(LaunchClaims {
        issuer: iss,
        client_id: expect.client_id.clone(),
        message_type,
        version,
        deployment_id,
        nonce,
        iat,
        exp,
        sub,
        name: nonempty_str(&p, "name"),
        given_name: nonempty_str(&p, "given_name"),
        family_name: nonempty_str(&p, "family_name"),
        middle_name: nonempty_str(&p, "middle_name"),
        email: nonempty_str(&p, "email"),
        picture: nonempty_str(&p, "picture"),
        locale: nonempty_str(&p, "locale"),
        roles,
        role_scope_mentor,
        context,
        resource_link,
        target_link_uri,
        custom,
        launch_presentation: lenient::<LaunchPresentation>(&p, names::LAUNCH_PRESENTATION),
        tool_platform: lenient::<ToolPlatform>(&p, names::TOOL_PLATFORM),
        deep_linking_settings,
        ags: lenient::<AgsEndpoint>(&p, names::AGS_ENDPOINT),
        nrps: lenient::<NrpsClaim>(&p, names::NRPS),
        lti_storage_target,
        for_user: p.get(names::FOR_USER).cloned(),
        raw: Value::Object(p),
    })
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_launch_url_rules() {
        assert!(same_launch_url(
            "https://t.example/lti/launch?x=1",
            "https://t.example/lti/launch"
        ));
        assert!(same_launch_url(
            "https://T.example:443/lti/launch/",
            "https://t.example/lti/launch"
        ));
        assert!(!same_launch_url(
            "http://t.example/lti/launch",
            "https://t.example/lti/launch"
        ));
        assert!(!same_launch_url(
            "https://t.example/other",
            "https://t.example/lti/launch"
        ));
    }

    #[test]
    fn split_rejects_non_jwts() {
        assert!(split("abc").is_err());
        assert!(split("a.b").is_err());
        assert!(split("a.b.c.d").is_err());
        assert!(split("").is_err());
    }
}
