//! LTI Dynamic Registration 1.0: read the platform's OpenID configuration,
//! check it, build the tool's registration request, and read the answer.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use url::Url;

use crate::claims::scopes;
use crate::error::LtiError;
use crate::services::{truncate, ServiceClient};

pub const LTI_PLATFORM_CONFIGURATION: &str =
    "https://purl.imsglobal.org/spec/lti-platform-configuration";
pub const LTI_TOOL_CONFIGURATION: &str = "https://purl.imsglobal.org/spec/lti-tool-configuration";

/// One entry of `messages_supported`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageSupported {
    #[serde(rename = "type")]
    pub message_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placements: Option<Vec<String>>,
}

/// `https://purl.imsglobal.org/spec/lti-platform-configuration`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LtiPlatformConfiguration {
    #[serde(default)]
    pub product_family_code: Option<String>,
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub messages_supported: Vec<MessageSupported>,
    #[serde(default)]
    pub variables: Vec<String>,
}

/// The platform's `openid_configuration` document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlatformConfiguration {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    pub registration_endpoint: String,
    #[serde(default)]
    pub scopes_supported: Vec<String>,
    #[serde(default)]
    pub response_types_supported: Vec<String>,
    #[serde(default)]
    pub token_endpoint_auth_methods_supported: Vec<String>,
    #[serde(default)]
    pub token_endpoint_auth_signing_alg_values_supported: Vec<String>,
    #[serde(default)]
    pub id_token_signing_alg_values_supported: Vec<String>,
    #[serde(default)]
    pub claims_supported: Vec<String>,
    /// Brightspace: the audience to use in client assertions.
    #[serde(default)]
    pub authorization_server: Option<String>,
    #[serde(
        rename = "https://purl.imsglobal.org/spec/lti-platform-configuration",
        default
    )]
    pub lti_platform_configuration: Option<LtiPlatformConfiguration>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl PlatformConfiguration {
    pub fn parse(doc: &Value) -> Result<Self, LtiError> {
        serde_json::from_value(doc.clone()).map_err(|e| LtiError::RegistrationInvalid {
            reason: format!("openid_configuration: {e}"),
        })
    }

    /// Whether the platform says it supports a message type (absent list: assume yes).
    pub fn supports_message(&self, message_type: &str) -> bool {
        match &self.lti_platform_configuration {
            Some(c) if !c.messages_supported.is_empty() => c
                .messages_supported
                .iter()
                .any(|m| m.message_type == message_type),
            _ => true,
        }
    }

    pub fn product_family_code(&self) -> Option<&str> {
        self.lti_platform_configuration
            .as_ref()
            .and_then(|c| c.product_family_code.as_deref())
    }
}

fn host_of(u: &str, what: &'static str) -> Result<(Url, String), LtiError> {
    let url = Url::parse(u).map_err(|e| LtiError::InvalidUrl {
        what,
        reason: e.to_string(),
    })?;
    let host = url
        .host_str()
        .map(str::to_ascii_lowercase)
        .ok_or_else(|| LtiError::InvalidUrl {
            what,
            reason: "no host".into(),
        })?;
    Ok((url, host))
}

fn is_loopback(host: &str) -> bool {
    host == "localhost" || host == "127.0.0.1" || host == "[::1]" || host == "::1"
}

/// Checks that the configuration's issuer belongs to the site the
/// configuration URL came from: same scheme and host, or the configuration
/// host is a subdomain of the issuer host. Instructure-hosted Canvas serves
/// every school's configuration from the school's or the sso domain while
/// its issuer is `canvas.instructure.com` (or beta/test): that pair is
/// accepted too. HTTPS is required except on loopback hosts (tests).
pub fn check_issuer(config_url: &str, cfg: &PlatformConfiguration) -> Result<(), LtiError> {
    let (curl, chost) = host_of(config_url, "openid_configuration URL")?;
    let (iurl, ihost) = host_of(&cfg.issuer, "platform issuer")?;
    let mismatch = || LtiError::RegistrationIssuerMismatch {
        issuer: cfg.issuer.clone(),
        config_url: config_url.to_string(),
    };
    for u in [&curl, &iurl] {
        if u.scheme() != "https" && !is_loopback(u.host_str().unwrap_or("")) {
            return Err(LtiError::RegistrationInvalid {
                reason: format!("{u} is not HTTPS"),
            });
        }
    }
    let canvas_issuers = [
        "canvas.instructure.com",
        "canvas.beta.instructure.com",
        "canvas.test.instructure.com",
    ];
    let canvas_ok = canvas_issuers.contains(&ihost.as_str())
        && (chost.ends_with(".instructure.com") || chost.ends_with(".canvaslms.com"));
    let same = chost == ihost
        && curl.scheme() == iurl.scheme()
        && curl.port_or_known_default() == iurl.port_or_known_default();
    let sub = chost.ends_with(&format!(".{ihost}")) && curl.scheme() == iurl.scheme();
    if same || sub || canvas_ok {
        Ok(())
    } else {
        Err(mismatch())
    }
}

/// What the tool registers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolRegistration {
    pub client_name: String,
    /// e.g. `https://tool.example.com/lti/login`
    pub initiate_login_uri: String,
    /// e.g. `https://tool.example.com/lti/launch`
    pub redirect_uris: Vec<String>,
    /// e.g. `https://tool.example.com/.well-known/jwks.json`
    pub jwks_uri: String,
    /// The default launch URL (resource links).
    pub target_link_uri: String,
    /// Where Deep Linking requests go (usually the launch URL too).
    pub deep_linking_uri: Option<String>,
    pub logo_uri: Option<String>,
    pub description: Option<String>,
    pub contacts: Vec<String>,
    pub custom_parameters: BTreeMap<String, String>,
    /// Scopes to ask for; filtered by what the platform supports.
    pub scopes: Vec<String>,
    /// Claims the tool would like (`iss`, `sub`, `name`, `email`...).
    pub claims: Vec<String>,
    /// Placements for the Deep Linking message (platform-specific names).
    pub deep_linking_placements: Vec<String>,
}

impl ToolRegistration {
    /// Sensible defaults for a tool served at `base` (no trailing slash).
    pub fn for_base_url(base: &str, client_name: &str) -> Self {
        let base = base.trim_end_matches('/');
        let launch = format!("{base}/lti/launch");
        ToolRegistration {
            client_name: client_name.to_string(),
            initiate_login_uri: format!("{base}/lti/login"),
            redirect_uris: vec![launch.clone()],
            jwks_uri: format!("{base}/.well-known/jwks.json"),
            target_link_uri: launch.clone(),
            deep_linking_uri: Some(launch),
            logo_uri: None,
            description: None,
            contacts: Vec::new(),
            custom_parameters: BTreeMap::new(),
            scopes: vec![
                scopes::AGS_LINEITEM.into(),
                scopes::AGS_LINEITEM_READONLY.into(),
                scopes::AGS_RESULT_READONLY.into(),
                scopes::AGS_SCORE.into(),
                scopes::NRPS_MEMBERSHIP_READONLY.into(),
            ],
            claims: ["iss", "sub", "name", "given_name", "family_name", "email"]
                .into_iter()
                .map(str::to_string)
                .collect(),
            deep_linking_placements: Vec::new(),
        }
    }

    /// The JSON body to POST to the platform's `registration_endpoint`.
    pub fn request_body(&self, platform: &PlatformConfiguration) -> Result<Value, LtiError> {
        let (_, domain) = host_of(&self.target_link_uri, "tool target_link_uri")?;
        let domain = match Url::parse(&self.target_link_uri)
            .ok()
            .and_then(|u| u.port())
        {
            Some(p) => format!("{domain}:{p}"),
            None => domain,
        };
        let scope: Vec<&str> = self
            .scopes
            .iter()
            .map(String::as_str)
            .filter(|s| {
                platform.scopes_supported.is_empty()
                    || platform.scopes_supported.iter().any(|p| p == s)
            })
            .collect();
        let mut messages = vec![json!({
            "type": "LtiResourceLinkRequest",
            "target_link_uri": self.target_link_uri,
        })];
        if let Some(dl) = &self.deep_linking_uri {
            if platform.supports_message("LtiDeepLinkingRequest") {
                let mut m = json!({
                    "type": "LtiDeepLinkingRequest",
                    "target_link_uri": dl,
                    "label": self.client_name,
                });
                if !self.deep_linking_placements.is_empty() {
                    if let Value::Object(o) = &mut m {
                        o.insert("placements".into(), json!(self.deep_linking_placements));
                    }
                }
                messages.push(m);
            }
        }
        let mut tool_cfg = json!({
            "domain": domain,
            "target_link_uri": self.target_link_uri,
            "claims": self.claims,
            "messages": messages,
        });
        if let Value::Object(o) = &mut tool_cfg {
            if let Some(d) = &self.description {
                o.insert("description".into(), json!(d));
            }
            if !self.custom_parameters.is_empty() {
                o.insert("custom_parameters".into(), json!(self.custom_parameters));
            }
        }
        let mut body = json!({
            "application_type": "web",
            "response_types": ["id_token"],
            "grant_types": ["implicit", "client_credentials"],
            "initiate_login_uri": self.initiate_login_uri,
            "redirect_uris": self.redirect_uris,
            "client_name": self.client_name,
            "jwks_uri": self.jwks_uri,
            "token_endpoint_auth_method": "private_key_jwt",
            "scope": scope.join(" "),
            (LTI_TOOL_CONFIGURATION): tool_cfg,
        });
        if let Value::Object(o) = &mut body {
            if let Some(l) = &self.logo_uri {
                o.insert("logo_uri".into(), json!(l));
            }
            if !self.contacts.is_empty() {
                o.insert("contacts".into(), json!(self.contacts));
            }
        }
        Ok(body)
    }
}

/// What the platform answered to the registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrationResponse {
    pub client_id: String,
    /// Moodle and most platforms send it; Canvas creates deployments on install.
    pub deployment_id: Option<String>,
    /// The scopes actually granted (Moodle grants all, whatever was asked).
    pub scope: Option<String>,
    pub raw: Value,
}

impl RegistrationResponse {
    pub fn parse(doc: &Value) -> Result<Self, LtiError> {
        let client_id = match doc.get("client_id") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => {
                return Err(LtiError::RegistrationInvalid {
                    reason: "the platform's answer has no client_id".into(),
                })
            }
        };
        let deployment_id = doc
            .get(LTI_TOOL_CONFIGURATION)
            .and_then(|c| c.get("deployment_id"))
            .and_then(|d| match d {
                Value::String(s) if !s.is_empty() => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            });
        Ok(RegistrationResponse {
            client_id,
            deployment_id,
            scope: doc.get("scope").and_then(Value::as_str).map(str::to_string),
            raw: doc.clone(),
        })
    }
}

/// The script for the closing page: tells the LMS the registration is done.
pub const CLOSE_SCRIPT: &str =
    "(window.opener || window.parent).postMessage({subject: 'org.imsglobal.lti.close'}, '*');";

fn bearer(req: reqwest::RequestBuilder, token: Option<&str>) -> reqwest::RequestBuilder {
    match token.map(str::trim).filter(|t| !t.is_empty()) {
        Some(t) => req.header(reqwest::header::AUTHORIZATION, format!("Bearer {t}")),
        // Brightspace sends no registration_token: send no Authorization header.
        None => req,
    }
}

impl ServiceClient {
    /// GETs and parses the platform's openid_configuration (with the
    /// registration token as Bearer when there is one), and checks its issuer.
    pub async fn openid_configuration(
        &self,
        config_url: &str,
        registration_token: Option<&str>,
    ) -> Result<PlatformConfiguration, LtiError> {
        let req = bearer(
            self.http()
                .get(config_url)
                .header(reqwest::header::ACCEPT, "application/json"),
            registration_token,
        );
        let resp = req.send().await.map_err(|e| LtiError::ServiceUnreachable {
            url: config_url.to_string(),
            reason: e.to_string(),
        })?;
        let status = resp.status();
        if !status.is_success() {
            return Err(LtiError::ServiceHttp {
                url: config_url.to_string(),
                status: status.as_u16(),
                body: truncate(resp.text().await.unwrap_or_default()),
            });
        }
        let doc: Value = Self::json(resp, config_url).await?;
        let cfg = PlatformConfiguration::parse(&doc)?;
        check_issuer(config_url, &cfg)?;
        Ok(cfg)
    }

    /// POSTs the registration body and parses the answer.
    pub async fn register(
        &self,
        registration_endpoint: &str,
        registration_token: Option<&str>,
        body: &Value,
    ) -> Result<RegistrationResponse, LtiError> {
        let req = bearer(
            self.http()
                .post(registration_endpoint)
                .header(reqwest::header::ACCEPT, "application/json")
                .json(body),
            registration_token,
        );
        let resp = req.send().await.map_err(|e| LtiError::ServiceUnreachable {
            url: registration_endpoint.to_string(),
            reason: e.to_string(),
        })?;
        let status = resp.status();
        if !status.is_success() {
            return Err(LtiError::ServiceHttp {
                url: registration_endpoint.to_string(),
                status: status.as_u16(),
                body: truncate(resp.text().await.unwrap_or_default()),
            });
        }
        let doc: Value = Self::json(resp, registration_endpoint).await?;
        RegistrationResponse::parse(&doc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::test_server::{Reply, TestServer};

    fn moodle_config() -> Value {
        json!({
            "issuer": "https://moodle.example.edu",
            "token_endpoint": "https://moodle.example.edu/mod/lti/token.php",
            "token_endpoint_auth_methods_supported": ["private_key_jwt"],
            "token_endpoint_auth_signing_alg_values_supported": ["RS256"],
            "jwks_uri": "https://moodle.example.edu/mod/lti/certs.php",
            "authorization_endpoint": "https://moodle.example.edu/mod/lti/auth.php",
            "registration_endpoint": "https://moodle.example.edu/mod/lti/openid-registration.php",
            "scopes_supported": [
                "https://purl.imsglobal.org/spec/lti-bo/scope/basicoutcome",
                "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem.readonly",
                "https://purl.imsglobal.org/spec/lti-ags/scope/result.readonly",
                "https://purl.imsglobal.org/spec/lti-ags/scope/score",
                "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem",
                "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly",
                "openid"
            ],
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public", "pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "claims_supported": ["sub", "iss", "name", "given_name", "family_name", "email"],
            "https://purl.imsglobal.org/spec/lti-platform-configuration": {
                "product_family_code": "moodle",
                "version": "4.4",
                "messages_supported": [
                    {"type": "LtiResourceLinkRequest"},
                    {"type": "LtiDeepLinkingRequest"}
                ],
                "variables": ["CourseSection.timeFrame.end"]
            }
        })
    }

    #[test]
    fn parses_configuration_and_checks_issuer() {
        let cfg = PlatformConfiguration::parse(&moodle_config()).unwrap();
        assert_eq!(cfg.product_family_code(), Some("moodle"));
        assert!(cfg.supports_message("LtiDeepLinkingRequest"));
        check_issuer(
            "https://moodle.example.edu/mod/lti/openid-configuration.php",
            &cfg,
        )
        .unwrap();
        let err = check_issuer("https://evil.example/openid-configuration", &cfg).unwrap_err();
        assert_eq!(err.code(), "registration_issuer_mismatch");
        assert_eq!(
            check_issuer("http://moodle.example.edu/x", &cfg)
                .unwrap_err()
                .code(),
            "registration_invalid"
        );
        // Canvas cloud.
        let mut c = cfg.clone();
        c.issuer = "https://canvas.instructure.com".into();
        check_issuer(
            "https://school.instructure.com/api/lti/security/openid-configuration?registration_token=x",
            &c,
        )
        .unwrap();
        // Missing required fields.
        assert_eq!(
            PlatformConfiguration::parse(&json!({"issuer": "x"}))
                .unwrap_err()
                .code(),
            "registration_invalid"
        );
    }

    #[test]
    fn builds_the_registration_body() {
        let cfg = PlatformConfiguration::parse(&moodle_config()).unwrap();
        let mut reg = ToolRegistration::for_base_url("https://tool.example.com/", "Coursegate");
        reg.scopes.push("https://example/unsupported".into());
        let b = reg.request_body(&cfg).unwrap();
        assert_eq!(b["application_type"], "web");
        assert_eq!(b["response_types"], json!(["id_token"]));
        assert_eq!(b["grant_types"], json!(["implicit", "client_credentials"]));
        assert_eq!(
            b["initiate_login_uri"],
            "https://tool.example.com/lti/login"
        );
        assert_eq!(
            b["redirect_uris"],
            json!(["https://tool.example.com/lti/launch"])
        );
        assert_eq!(
            b["jwks_uri"],
            "https://tool.example.com/.well-known/jwks.json"
        );
        assert_eq!(b["token_endpoint_auth_method"], "private_key_jwt");
        let scope = b["scope"].as_str().unwrap();
        assert!(scope.contains(scopes::AGS_SCORE));
        assert!(scope.contains(scopes::NRPS_MEMBERSHIP_READONLY));
        assert!(!scope.contains("unsupported"));
        let t = &b[LTI_TOOL_CONFIGURATION];
        assert_eq!(t["domain"], "tool.example.com");
        assert_eq!(t["target_link_uri"], "https://tool.example.com/lti/launch");
        assert!(t["claims"].as_array().unwrap().contains(&json!("email")));
        let types: Vec<&str> = t["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["type"].as_str().unwrap())
            .collect();
        assert_eq!(
            types,
            vec!["LtiResourceLinkRequest", "LtiDeepLinkingRequest"]
        );
    }

    #[test]
    fn parses_responses() {
        let r = RegistrationResponse::parse(&json!({
            "client_id": "abc",
            "scope": "x y",
            (LTI_TOOL_CONFIGURATION): {"deployment_id": "7"}
        }))
        .unwrap();
        assert_eq!(r.client_id, "abc");
        assert_eq!(r.deployment_id.as_deref(), Some("7"));
        let r = RegistrationResponse::parse(&json!({"client_id": 10000000000001u64})).unwrap();
        assert_eq!(r.client_id, "10000000000001");
        assert!(r.deployment_id.is_none());
        assert_eq!(
            RegistrationResponse::parse(&json!({})).unwrap_err().code(),
            "registration_invalid"
        );
    }

    #[tokio::test]
    async fn registration_round_trip_with_and_without_token() {
        let s = TestServer::start_with(|base| {
            let mut cfg = moodle_config();
            cfg["issuer"] = json!(base);
            vec![
                Reply::json(200, &cfg.to_string()),
                Reply::json(
                    200,
                    &json!({"client_id": "c1", (LTI_TOOL_CONFIGURATION): {"deployment_id": "d1"}})
                        .to_string(),
                ),
                Reply::json(200, &json!({"client_id": "c2"}).to_string()),
            ]
        })
        .await;
        let c = ServiceClient::new("ua").unwrap();
        let cfg = c
            .openid_configuration(&s.url("/openid-configuration"), Some("regtok"))
            .await
            .unwrap();
        let body = ToolRegistration::for_base_url("https://tool.example.com", "Coursegate")
            .request_body(&cfg)
            .unwrap();
        let r = c
            .register(&s.url("/register"), Some("regtok"), &body)
            .await
            .unwrap();
        assert_eq!(
            (r.client_id.as_str(), r.deployment_id.as_deref()),
            ("c1", Some("d1"))
        );
        c.register(&s.url("/register"), None, &body).await.unwrap();
        let reqs = s.requests();
        assert_eq!(
            reqs[0].header("authorization").as_deref(),
            Some("Bearer regtok")
        );
        assert_eq!(
            reqs[1].header("authorization").as_deref(),
            Some("Bearer regtok")
        );
        assert!(
            reqs[2].header("authorization").is_none(),
            "Brightspace: no token, no header"
        );
        let sent: Value = serde_json::from_str(&reqs[1].body).unwrap();
        assert_eq!(sent["application_type"], "web");
    }
}
