//! OIDC third-party login initiation (LTI 1.3 Core §4.1, Security Framework §5.1.1).

use std::collections::{BTreeMap, HashMap};

use url::Url;

use crate::error::LtiError;

/// The parameters a platform sends to the tool's login initiation URL (GET query or POST form).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginInitiation {
    pub iss: String,
    pub login_hint: String,
    pub target_link_uri: String,
    pub lti_message_hint: Option<String>,
    pub client_id: Option<String>,
    /// `lti_deployment_id`, or Canvas's `deployment_id` spelling.
    pub lti_deployment_id: Option<String>,
    /// The frame to talk to for postMessage platform storage (Canvas:
    /// `post_message_forwarding`, Sakai: `_parent`).
    pub lti_storage_target: Option<String>,
    /// Any other parameters (e.g. Canvas's `canvas_region`, `canvas_environment`).
    pub extra: BTreeMap<String, String>,
}

const KNOWN: &[&str] = &[
    "iss",
    "login_hint",
    "target_link_uri",
    "lti_message_hint",
    "client_id",
    "lti_deployment_id",
    "deployment_id",
    "lti_storage_target",
];

impl LoginInitiation {
    /// Reads the login initiation parameters. `iss`, `login_hint` and
    /// `target_link_uri` are required; empty values count as missing.
    pub fn from_params(params: &HashMap<String, String>) -> Result<Self, LtiError> {
        let get = |k: &str| {
            params
                .get(k)
                .map(|v| v.trim())
                .filter(|v| !v.is_empty())
                .map(str::to_string)
        };
        let iss = get("iss").ok_or(LtiError::LoginParamMissing { param: "iss" })?;
        let login_hint = get("login_hint").ok_or(LtiError::LoginParamMissing {
            param: "login_hint",
        })?;
        let target_link_uri = get("target_link_uri").ok_or(LtiError::LoginParamMissing {
            param: "target_link_uri",
        })?;
        if let Err(e) = Url::parse(&target_link_uri) {
            return Err(LtiError::LoginParamInvalid {
                param: "target_link_uri",
                reason: e.to_string(),
            });
        }
        let extra = params
            .iter()
            .filter(|(k, _)| !KNOWN.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Ok(LoginInitiation {
            iss,
            login_hint,
            target_link_uri,
            lti_message_hint: get("lti_message_hint"),
            client_id: get("client_id"),
            lti_deployment_id: get("lti_deployment_id").or_else(|| get("deployment_id")),
            lti_storage_target: get("lti_storage_target"),
            extra,
        })
    }

    /// Same as [`Self::from_params`] over a URL-encoded query string or form body.
    pub fn from_urlencoded(body: &str) -> Result<Self, LtiError> {
        let params: HashMap<String, String> = url::form_urlencoded::parse(body.as_bytes())
            .into_owned()
            .collect();
        Self::from_params(&params)
    }
}

/// Builds the authentication request URL the browser is redirected to
/// (`scope=openid`, `response_type=id_token`, `response_mode=form_post`,
/// `prompt=none`). Query parameters already on `auth_url` are kept.
#[allow(clippy::too_many_arguments)]
pub fn auth_request_url(
    auth_url: &str,
    client_id: &str,
    redirect_uri: &str,
    login_hint: &str,
    lti_message_hint: Option<&str>,
    state: &str,
    nonce: &str,
) -> Result<Url, LtiError> {
    let mut url = Url::parse(auth_url).map_err(|e| LtiError::InvalidUrl {
        what: "platform authentication URL",
        reason: e.to_string(),
    })?;
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("scope", "openid")
            .append_pair("response_type", "id_token")
            .append_pair("response_mode", "form_post")
            .append_pair("prompt", "none")
            .append_pair("client_id", client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("login_hint", login_hint)
            .append_pair("state", state)
            .append_pair("nonce", nonce);
        if let Some(h) = lti_message_hint {
            q.append_pair("lti_message_hint", h);
        }
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn reads_all_parameters_and_canvas_spelling() {
        let p = params(&[
            ("iss", "https://canvas.instructure.com"),
            ("login_hint", "abc"),
            ("target_link_uri", "https://tool.example/lti/launch"),
            ("lti_message_hint", "xyz"),
            ("client_id", "10000000000001"),
            ("deployment_id", "12:abc"),
            ("lti_storage_target", "post_message_forwarding"),
            ("canvas_region", "us-east-1"),
        ]);
        let l = LoginInitiation::from_params(&p).unwrap();
        assert_eq!(l.iss, "https://canvas.instructure.com");
        assert_eq!(l.lti_deployment_id.as_deref(), Some("12:abc"));
        assert_eq!(
            l.lti_storage_target.as_deref(),
            Some("post_message_forwarding")
        );
        assert_eq!(
            l.extra.get("canvas_region").map(String::as_str),
            Some("us-east-1")
        );
        assert_eq!(l.client_id.as_deref(), Some("10000000000001"));
    }

    #[test]
    fn spec_spelling_wins() {
        let p = params(&[
            ("iss", "i"),
            ("login_hint", "h"),
            ("target_link_uri", "https://t/"),
            ("lti_deployment_id", "spec"),
            ("deployment_id", "canvas"),
        ]);
        let l = LoginInitiation::from_params(&p).unwrap();
        assert_eq!(l.lti_deployment_id.as_deref(), Some("spec"));
    }

    #[test]
    fn missing_params_are_named() {
        for (missing, pairs) in [
            (
                "iss",
                vec![("login_hint", "h"), ("target_link_uri", "https://t/")],
            ),
            (
                "login_hint",
                vec![("iss", "i"), ("target_link_uri", "https://t/")],
            ),
            ("target_link_uri", vec![("iss", "i"), ("login_hint", "h")]),
        ] {
            let err = LoginInitiation::from_params(&params(&pairs)).unwrap_err();
            assert_eq!(err, LtiError::LoginParamMissing { param: missing });
            assert_eq!(err.code(), "login_param_missing");
        }
        let err = LoginInitiation::from_params(&params(&[
            ("iss", " "),
            ("login_hint", "h"),
            ("target_link_uri", "https://t/"),
        ]))
        .unwrap_err();
        assert_eq!(err, LtiError::LoginParamMissing { param: "iss" });
    }

    #[test]
    fn bad_target_link_uri() {
        let err =
            LoginInitiation::from_urlencoded("iss=i&login_hint=h&target_link_uri=not%20a%20url")
                .unwrap_err();
        assert_eq!(err.code(), "login_param_invalid");
    }

    #[test]
    fn auth_url_has_every_parameter() {
        let u = auth_request_url(
            "https://lms.example/auth?x=1",
            "cid",
            "https://tool.example/lti/launch",
            "hint",
            Some("mh"),
            "st",
            "no",
        )
        .unwrap();
        let q: HashMap<String, String> = u.query_pairs().into_owned().collect();
        assert_eq!(q["x"], "1");
        assert_eq!(q["scope"], "openid");
        assert_eq!(q["response_type"], "id_token");
        assert_eq!(q["response_mode"], "form_post");
        assert_eq!(q["prompt"], "none");
        assert_eq!(q["client_id"], "cid");
        assert_eq!(q["redirect_uri"], "https://tool.example/lti/launch");
        assert_eq!(q["login_hint"], "hint");
        assert_eq!(q["lti_message_hint"], "mh");
        assert_eq!(q["state"], "st");
        assert_eq!(q["nonce"], "no");
        let u = auth_request_url("https://lms/a", "c", "r", "h", None, "s", "n").unwrap();
        assert!(!u.query().unwrap_or("").contains("lti_message_hint"));
        assert_eq!(
            auth_request_url("nope", "c", "r", "h", None, "s", "n")
                .unwrap_err()
                .code(),
            "invalid_url"
        );
    }
}
