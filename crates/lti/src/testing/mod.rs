//! Test helpers (feature `test-helpers`): fixed RSA keys and an id_token
//! minter with overridable claims, shared by this crate's tests and the
//! server's integration tests. Never use these keys outside tests.

use std::sync::OnceLock;

use base64::Engine;
use chrono::{DateTime, TimeZone, Utc};
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{json, Map, Value};

use crate::claims::{names, roles, LTI_VERSION};
use crate::token::{PlatformKeys, B64};
use crate::tool_keys::ToolKeys;

/// The test platform's private key (PKCS#8 PEM, 2048-bit RSA).
pub const PLATFORM_KEY_PEM: &str = include_str!("platform_key.pem");
/// A second key: tokens signed with it under [`PLATFORM_KID`] have a bad signature.
pub const OTHER_KEY_PEM: &str = include_str!("other_key.pem");
/// A fixed tool key for tests that need deterministic tool signing.
pub const TOOL_KEY_PEM: &str = include_str!("tool_key.pem");

pub const PLATFORM_KID: &str = "test-platform-key-1";
pub const OTHER_KID: &str = "test-platform-key-2";
pub const TOOL_KID: &str = "test-tool-key-1";
pub const ISSUER: &str = "https://platform.test.example";
pub const CLIENT_ID: &str = "coursegate-test-client";
pub const DEPLOYMENT_ID: &str = "test-deployment-1";
pub const LAUNCH_URL: &str = "https://tool.test.example/lti/launch";
pub const NONCE: &str = "test-nonce-0001";
pub const RETURN_URL: &str = "https://platform.test.example/deep_links/return";

/// A fixed instant tests can use as `now`.
pub fn fixed_now() -> DateTime<Utc> {
    Utc.timestamp_opt(1_767_225_600, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

fn rsa_encoding(pem: &str) -> Option<EncodingKey> {
    EncodingKey::from_rsa_pem(pem.as_bytes()).ok()
}

fn platform_encoding() -> Option<&'static EncodingKey> {
    static K: OnceLock<Option<EncodingKey>> = OnceLock::new();
    K.get_or_init(|| rsa_encoding(PLATFORM_KEY_PEM)).as_ref()
}

fn other_encoding() -> Option<&'static EncodingKey> {
    static K: OnceLock<Option<EncodingKey>> = OnceLock::new();
    K.get_or_init(|| rsa_encoding(OTHER_KEY_PEM)).as_ref()
}

/// RS256 signers for the fixed keys, parsed once: `jsonwebtoken` parses and
/// checks the private key again on every signature, which doubled the load
/// generator's CPU per launch (it shares the cores with the tool it measures).
fn rs256_signer(signer: &Signer) -> Option<&'static josekit::jws::alg::rsassa::RsassaJwsSigner> {
    type Cached = OnceLock<Option<josekit::jws::alg::rsassa::RsassaJwsSigner>>;
    static PLATFORM: Cached = OnceLock::new();
    static OTHER: Cached = OnceLock::new();
    let (cell, pem) = match signer {
        Signer::Platform => (&PLATFORM, PLATFORM_KEY_PEM),
        Signer::Other => (&OTHER, OTHER_KEY_PEM),
        Signer::Pem(_) => return None,
    };
    cell.get_or_init(|| josekit::jws::RS256.signer_from_pem(pem.as_bytes()).ok())
        .as_ref()
}

/// The test platform's keys as a signer (publishes [`platform_jwks`]).
pub fn platform_signer() -> Result<ToolKeys, crate::LtiError> {
    ToolKeys::from_pem(PLATFORM_KID, PLATFORM_KEY_PEM.as_bytes(), fixed_now())
}

/// The test platform's public JWKS document (kid [`PLATFORM_KID`]).
pub fn platform_jwks() -> Value {
    static J: OnceLock<Value> = OnceLock::new();
    J.get_or_init(|| {
        platform_signer()
            .map(|k| k.jwks_json())
            .unwrap_or_else(|_| json!({"keys": []}))
    })
    .clone()
}

/// The same as a `jsonwebtoken` key set.
pub fn platform_jwk_set() -> jsonwebtoken::jwk::JwkSet {
    PlatformKeys::parse_jwks_lenient(&platform_jwks())
}

/// The test platform's verification keys.
pub fn platform_keys() -> PlatformKeys {
    PlatformKeys::from_jwks(&platform_jwk_set())
}

/// A JWKS holding the *other* key under kid [`OTHER_KID`].
pub fn other_jwks() -> Value {
    ToolKeys::from_pem(OTHER_KID, OTHER_KEY_PEM.as_bytes(), fixed_now())
        .map(|k| k.jwks_json())
        .unwrap_or_else(|_| json!({"keys": []}))
}

/// Fixed tool keys (kid [`TOOL_KID`]).
pub fn tool_keys() -> Result<ToolKeys, crate::LtiError> {
    ToolKeys::from_pem(TOOL_KID, TOOL_KEY_PEM.as_bytes(), fixed_now())
}

/// Expectations matching the minter's defaults.
pub fn expectations() -> crate::token::Expectations {
    crate::token::Expectations::new(ISSUER, CLIENT_ID)
        .with_nonce(NONCE)
        .with_launch_url(LAUNCH_URL)
}

#[derive(Debug, Clone)]
enum Signer {
    Platform,
    Other,
    Pem(String),
}

/// Mints LTI 1.3 id_tokens as a platform would. Starts from a complete,
/// valid instructor resource-link launch issued at `now`; override, add or
/// remove claims, change the header algorithm or kid, or sign with the wrong key.
#[derive(Debug, Clone)]
pub struct TokenMinter {
    header_alg: String,
    kid: Option<String>,
    signer: Signer,
    claims: Map<String, Value>,
}

impl TokenMinter {
    /// The default platform ([`ISSUER`], [`CLIENT_ID`], [`DEPLOYMENT_ID`]).
    pub fn new(now: DateTime<Utc>) -> Self {
        Self::for_platform(ISSUER, CLIENT_ID, DEPLOYMENT_ID, now)
    }

    pub fn for_platform(
        issuer: &str,
        client_id: &str,
        deployment_id: &str,
        now: DateTime<Utc>,
    ) -> Self {
        let t = now.timestamp();
        let claims = json!({
            "iss": issuer,
            "aud": client_id,
            "sub": "user-0001",
            "iat": t,
            "exp": t + 300,
            "nonce": NONCE,
            "name": "Ada Lovelace",
            "given_name": "Ada",
            "family_name": "Lovelace",
            "email": "ada@example.edu",
            (names::MESSAGE_TYPE): "LtiResourceLinkRequest",
            (names::VERSION): LTI_VERSION,
            (names::DEPLOYMENT_ID): deployment_id,
            (names::TARGET_LINK_URI): LAUNCH_URL,
            (names::RESOURCE_LINK): {"id": "rl-1", "title": "Week 1"},
            (names::ROLES): [roles::INSTRUCTOR],
            (names::CONTEXT): {"id": "ctx-1", "label": "CS101", "title": "Intro to CS",
                "type": ["http://purl.imsglobal.org/vocab/lis/v2/course#CourseOffering"]},
            (names::TOOL_PLATFORM): {"guid": "platform-guid", "name": "Test Platform",
                "product_family_code": "test", "version": "1"},
            (names::LAUNCH_PRESENTATION): {"document_target": "iframe",
                "return_url": "https://platform.test.example/return"},
            (names::CUSTOM): {"course": "intro"},
        });
        let claims = match claims {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        TokenMinter {
            header_alg: "RS256".into(),
            kid: Some(PLATFORM_KID.into()),
            signer: Signer::Platform,
            claims,
        }
    }

    /// Sets (or replaces) a top-level claim.
    pub fn claim(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.claims.insert(key.to_string(), value.into());
        self
    }

    /// Removes a top-level claim.
    pub fn without(mut self, key: &str) -> Self {
        self.claims.remove(key);
        self
    }

    /// Sets a field inside an object claim (creating the object).
    pub fn claim_field(mut self, claim: &str, field: &str, value: impl Into<Value>) -> Self {
        let entry = self
            .claims
            .entry(claim.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(o) = entry {
            o.insert(field.to_string(), value.into());
        }
        self
    }

    /// Removes a field inside an object claim.
    pub fn without_field(mut self, claim: &str, field: &str) -> Self {
        if let Some(Value::Object(o)) = self.claims.get_mut(claim) {
            o.remove(field);
        }
        self
    }

    pub fn nonce(self, nonce: &str) -> Self {
        self.claim("nonce", nonce)
    }

    pub fn roles(self, roles: &[&str]) -> Self {
        self.claim(names::ROLES, json!(roles))
    }

    /// Turns the launch into an `LtiDeepLinkingRequest` with `data`.
    pub fn deep_linking(self, return_url: &str, data: Option<&str>) -> Self {
        let mut settings = json!({
            "deep_link_return_url": return_url,
            "accept_types": ["ltiResourceLink"],
            "accept_presentation_document_targets": ["iframe", "window"],
            "accept_multiple": true,
            "accept_lineitem": true,
        });
        if let (Some(d), Value::Object(o)) = (data, &mut settings) {
            o.insert("data".into(), json!(d));
        }
        self.claim(names::MESSAGE_TYPE, "LtiDeepLinkingRequest")
            .without(names::RESOURCE_LINK)
            .claim(names::DEEP_LINKING_SETTINGS, settings)
    }

    /// The header `alg` to write: "RS256" (default), "none", "HS256" (signed
    /// with the platform's public JWKS text as the secret, the classic
    /// confusion attack), "RS384"/"RS512"/"PS256" (signed with the RSA key),
    /// anything else gets a junk signature.
    pub fn header_alg(mut self, alg: &str) -> Self {
        self.header_alg = alg.to_string();
        self
    }

    /// The header `kid`; `None` leaves it out.
    pub fn kid(mut self, kid: Option<&str>) -> Self {
        self.kid = kid.map(str::to_string);
        self
    }

    /// Signs with a different private key while keeping the platform's kid.
    pub fn sign_with_other_key(mut self) -> Self {
        self.signer = Signer::Other;
        self
    }

    /// Signs with the given RSA private key PEM.
    pub fn sign_with_pem(mut self, pem: &str) -> Self {
        self.signer = Signer::Pem(pem.to_string());
        self
    }

    pub fn claims(&self) -> &Map<String, Value> {
        &self.claims
    }

    fn rsa_key(&self) -> Option<EncodingKey> {
        match &self.signer {
            Signer::Platform => platform_encoding().cloned(),
            Signer::Other => other_encoding().cloned(),
            Signer::Pem(p) => rsa_encoding(p),
        }
    }

    /// The compact JWT.
    pub fn mint(&self) -> String {
        let mut header = Map::new();
        header.insert("alg".into(), json!(self.header_alg));
        header.insert("typ".into(), json!("JWT"));
        if let Some(k) = &self.kid {
            header.insert("kid".into(), json!(k));
        }
        let h = B64.encode(Value::Object(header).to_string());
        let p = B64.encode(Value::Object(self.claims.clone()).to_string());
        let input = format!("{h}.{p}");
        let sig = match self.header_alg.as_str() {
            "none" => String::new(),
            "HS256" | "HS384" | "HS512" => {
                let alg = match self.header_alg.as_str() {
                    "HS384" => Algorithm::HS384,
                    "HS512" => Algorithm::HS512,
                    _ => Algorithm::HS256,
                };
                let secret = platform_jwks().to_string();
                jsonwebtoken::crypto::sign(
                    input.as_bytes(),
                    &EncodingKey::from_secret(secret.as_bytes()),
                    alg,
                )
                .unwrap_or_default()
            }
            other => {
                let alg = match other {
                    "RS256" => Some(Algorithm::RS256),
                    "RS384" => Some(Algorithm::RS384),
                    "RS512" => Some(Algorithm::RS512),
                    "PS256" => Some(Algorithm::PS256),
                    _ => None,
                };
                if let (Some(Algorithm::RS256), Some(signer)) = (alg, rs256_signer(&self.signer)) {
                    use josekit::jws::JwsSigner;
                    let sig = signer.sign(input.as_bytes()).unwrap_or_default();
                    return format!("{input}.{}", B64.encode(sig));
                }
                match (alg, self.rsa_key()) {
                    (Some(a), Some(k)) => {
                        jsonwebtoken::crypto::sign(input.as_bytes(), &k, a).unwrap_or_default()
                    }
                    _ => "c2lnbmF0dXJl".into(),
                }
            }
        };
        format!("{input}.{sig}")
    }
}
