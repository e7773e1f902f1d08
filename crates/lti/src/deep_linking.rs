//! Deep Linking 2.0 responses (`LtiDeepLinkingResponse`).
//!
//! Items carry the tool's registered launch URL unchanged and identify what
//! they open through `custom` (Moodle rejects extra query parameters).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::claims::{names, LTI_VERSION};
use crate::error::LtiError;
use crate::tool_keys::ToolKeys;

/// Lifetime of a deep linking response JWT.
pub const RESPONSE_TTL_SECS: i64 = 300;

/// `lineItem` of an `ltiResourceLink` item: the platform creates a gradebook column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LineItemSpec {
    pub score_maximum: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
}

/// How the platform should show an item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Window {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_name: Option<String>,
}

/// A content item returned to the platform.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum ContentItem {
    #[serde(rename = "ltiResourceLink", rename_all = "camelCase")]
    ResourceLink {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        title: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        text: Option<String>,
        /// The launch URL; `None` lets the platform use the tool's default.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        url: Option<String>,
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        custom: BTreeMap<String, String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        line_item: Option<LineItemSpec>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        window: Option<Window>,
    },
    #[serde(rename = "link")]
    Link {
        url: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        title: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        text: Option<String>,
    },
}

impl ContentItem {
    /// An `ltiResourceLink` to `url` with the given custom parameters.
    pub fn resource_link(
        title: impl Into<String>,
        url: impl Into<String>,
        custom: BTreeMap<String, String>,
    ) -> Self {
        ContentItem::ResourceLink {
            title: Some(title.into()),
            text: None,
            url: Some(url.into()),
            custom,
            line_item: None,
            window: None,
        }
    }

    /// Adds a line item (only meaningful for resource links).
    pub fn with_line_item(mut self, li: LineItemSpec) -> Self {
        if let ContentItem::ResourceLink { line_item, .. } = &mut self {
            *line_item = Some(li);
        }
        self
    }

    pub fn with_text(mut self, t: impl Into<String>) -> Self {
        match &mut self {
            ContentItem::ResourceLink { text, .. } | ContentItem::Link { text, .. } => {
                *text = Some(t.into())
            }
        }
        self
    }
}

/// The claims of a deep linking response (exposed for tests and logs).
#[allow(clippy::too_many_arguments)]
pub fn response_claims(
    client_id: &str,
    platform_issuer: &str,
    deployment_id: &str,
    data: Option<&str>,
    items: &[ContentItem],
    msg: Option<&str>,
    now: DateTime<Utc>,
    nonce: &str,
) -> Result<Value, LtiError> {
    let t = now.timestamp();
    let items = serde_json::to_value(items).map_err(|e| LtiError::ToolKey {
        reason: format!("content items: {e}"),
    })?;
    let mut claims = json!({
        "iss": client_id,
        "aud": platform_issuer,
        "iat": t,
        "exp": t + RESPONSE_TTL_SECS,
        "nonce": nonce,
        (names::MESSAGE_TYPE): "LtiDeepLinkingResponse",
        (names::VERSION): LTI_VERSION,
        (names::DEPLOYMENT_ID): deployment_id,
        (names::DL_CONTENT_ITEMS): items,
    });
    if let Value::Object(o) = &mut claims {
        if let Some(d) = data {
            o.insert(names::DL_DATA.into(), json!(d));
        }
        if let Some(m) = msg {
            o.insert(names::DL_MSG.into(), json!(m));
        }
    }
    Ok(claims)
}

/// Builds and signs the `LtiDeepLinkingResponse` JWT to auto-post (as the
/// `JWT` form field) to the request's `deep_link_return_url`:
/// iss = our client_id, aud = the platform issuer, a fresh nonce, the
/// request's deployment_id, `data` echoed when the request had one, and a
/// five-minute exp.
pub fn response_jwt(
    tool_keys: &ToolKeys,
    client_id: &str,
    platform_issuer: &str,
    deployment_id: &str,
    data: Option<String>,
    items: Vec<ContentItem>,
    now: DateTime<Utc>,
) -> Result<String, LtiError> {
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    let claims = response_claims(
        client_id,
        platform_issuer,
        deployment_id,
        data.as_deref(),
        &items,
        None,
        now,
        &nonce,
    )?;
    tool_keys.sign(&claims)
}

/// An HTML page that auto-posts `jwt` to `return_url` (no script needed
/// beyond the submit; a button is shown if scripts are off).
pub fn autopost_form(return_url: &str, jwt: &str) -> String {
    fn esc(s: &str) -> String {
        s.replace('&', "&amp;")
            .replace('"', "&quot;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    }
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Returning to the LMS</title></head>\
<body><form id=\"dl\" method=\"post\" action=\"{}\"><input type=\"hidden\" name=\"JWT\" value=\"{}\">\
<noscript><button type=\"submit\">Continue</button></noscript></form>\
<script>document.getElementById('dl').submit();</script></body></html>",
        esc(return_url),
        esc(jwt)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing;
    use crate::token::verify_signature;

    #[test]
    fn items_serialise_per_deep_linking_2() {
        let mut custom = BTreeMap::new();
        custom.insert("course".to_string(), "intro".to_string());
        let item = ContentItem::resource_link("Intro", testing::LAUNCH_URL, custom).with_line_item(
            LineItemSpec {
                score_maximum: 100.0,
                label: Some("Intro".into()),
                resource_id: Some("course:intro".into()),
                tag: None,
            },
        );
        let v = serde_json::to_value(&item).unwrap();
        assert_eq!(
            v,
            json!({
                "type": "ltiResourceLink",
                "title": "Intro",
                "url": testing::LAUNCH_URL,
                "custom": {"course": "intro"},
                "lineItem": {"scoreMaximum": 100.0, "label": "Intro", "resourceId": "course:intro"}
            })
        );
        let back: ContentItem = serde_json::from_value(v).unwrap();
        assert_eq!(back, item);
    }

    #[test]
    fn response_round_trip_verifies_with_public_jwks() {
        let keys = testing::tool_keys().unwrap();
        let now = testing::fixed_now();
        let item = ContentItem::resource_link("Intro", testing::LAUNCH_URL, BTreeMap::new());
        let jwt = response_jwt(
            &keys,
            testing::CLIENT_ID,
            testing::ISSUER,
            testing::DEPLOYMENT_ID,
            Some("opaque".into()),
            vec![item],
            now,
        )
        .unwrap();
        // The platform verifies with our published JWKS.
        let published = crate::token::PlatformKeys::parse_jwks_lenient(&keys.jwks_json());
        let c = verify_signature(&jwt, &published).unwrap();
        assert_eq!(c["iss"], testing::CLIENT_ID);
        assert_eq!(c["aud"], testing::ISSUER);
        assert_eq!(c[names::MESSAGE_TYPE], "LtiDeepLinkingResponse");
        assert_eq!(c[names::VERSION], "1.3.0");
        assert_eq!(c[names::DEPLOYMENT_ID], testing::DEPLOYMENT_ID);
        assert_eq!(c[names::DL_DATA], "opaque");
        assert_eq!(c["iat"], now.timestamp());
        assert_eq!(c["exp"], now.timestamp() + RESPONSE_TTL_SECS);
        assert!(c["nonce"].as_str().is_some_and(|n| n.len() >= 16));
        assert_eq!(c[names::DL_CONTENT_ITEMS][0]["type"], "ltiResourceLink");
        let header = jsonwebtoken::decode_header(&jwt).unwrap();
        assert_eq!(header.kid.as_deref(), Some(testing::TOOL_KID));
        assert_eq!(header.alg, jsonwebtoken::Algorithm::RS256);

        // Without data, no data claim.
        let jwt = response_jwt(&keys, "c", "i", "d", None, vec![], now).unwrap();
        let c = verify_signature(&jwt, &published).unwrap();
        assert!(!c.contains_key(names::DL_DATA));
        assert_eq!(c[names::DL_CONTENT_ITEMS], json!([]));
    }

    #[test]
    fn autopost_escapes() {
        let html = autopost_form("https://lms/return?a=1&b=\"2\"", "x.y.z");
        assert!(html.contains("action=\"https://lms/return?a=1&amp;b=&quot;2&quot;\""));
        assert!(html.contains("name=\"JWT\" value=\"x.y.z\""));
    }
}
