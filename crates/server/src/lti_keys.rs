//! Keys for the LTI door: the tool's own signing keys (from `KEYS_DIR`,
//! shared by every instance through that directory) and the platforms'
//! public keys (fetched over HTTP, cached in memory per instance).

use std::{
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
};

use chrono::{DateTime, Utc};
use coursegate_lti::{error::LtiError, jwks::JwksCache, token::PlatformKeys, tool_keys::ToolKeys};

use crate::app::AppState;

pub struct LtiRuntime {
    dir: PathBuf,
    tool_keys: RwLock<Option<Arc<ToolKeys>>>,
    http: reqwest::Client,
    jwks: JwksCache,
}

pub const USER_AGENT: &str = concat!(
    "Coursegate/",
    env!("CARGO_PKG_VERSION"),
    " (+https://coursegate.dev)"
);

impl LtiRuntime {
    /// Loads the tool keys, creating a first key when the directory has none.
    /// A failure is logged and leaves the tool without keys: launches still
    /// work; Deep Linking and services report the missing key.
    pub fn load(dir: &Path, now: DateTime<Utc>) -> Self {
        let keys = match ToolKeys::load_or_generate(dir, now) {
            Ok(k) => Some(Arc::new(k)),
            Err(e) => {
                tracing::error!(dir = %dir.display(), error = %e, "cannot load the tool keys (COURSEGATE_KEYS_DIR)");
                None
            }
        };
        let http = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        let jwks = JwksCache::new(coursegate_lti::jwks::ReqwestKeySource::with_client(
            http.clone(),
        ));
        Self {
            dir: dir.to_path_buf(),
            tool_keys: RwLock::new(keys),
            http,
            jwks,
        }
    }

    pub fn tool_keys(&self) -> Option<Arc<ToolKeys>> {
        self.tool_keys.read().ok().and_then(|g| g.clone())
    }

    /// Re-reads the keys directory (after `coursegate keys rotate` on any instance).
    pub fn reload(&self, now: DateTime<Utc>) {
        match ToolKeys::load(&self.dir, now) {
            Ok(k) => {
                if let Ok(mut g) = self.tool_keys.write() {
                    *g = Some(Arc::new(k));
                }
            }
            Err(e) => tracing::warn!(error = %e, "tool key reload failed; keeping the loaded keys"),
        }
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Forgets this instance's cached keys of a JWKS URL (after a
    /// registration's URL changed). The cache is keyed by URL, so an edited
    /// registration never gets the old URL's keys on any instance; this makes
    /// the editing instance refetch even a URL it had cached before.
    pub fn forget_platform_keys(&self, jwks_url: &str) {
        self.jwks.invalidate(jwks_url);
    }
}

/// The tool's public JWKS document.
pub fn tool_jwks(state: &AppState) -> String {
    match state.lti.tool_keys() {
        Some(k) => k.jwks_json_at(state.now()).to_string(),
        None => r#"{"keys":[]}"#.to_string(),
    }
}

/// The platform's keys for verifying a launch, from the cache (refetched
/// when expired, or once a minute at most when `kid` is unknown).
pub async fn platform_keys(
    state: &AppState,
    jwks_url: &str,
    kid: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Arc<PlatformKeys>, LtiError> {
    state.lti.jwks.keys(jwks_url, kid, now).await
}
