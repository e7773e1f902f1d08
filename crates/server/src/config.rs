//! Configuration: built-in defaults, then an optional TOML file
//! (`coursegate.toml` in the working directory, or the path in
//! `COURSEGATE_CONFIG`), then `COURSEGATE_*` environment variables. Every
//! secret may instead be read from a file named by `COURSEGATE_<NAME>_FILE`.
//! An invalid value stops the start with a message naming the setting.
//! docs/configuration.md lists every setting.

use std::{collections::HashMap, path::PathBuf};

use coursegate_core::{sessions::SessionPolicy, tokens::Secret};
use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
#[error("configuration error: {setting}: {message}")]
pub struct ConfigError {
    pub setting: String,
    pub message: String,
}

fn err(setting: &str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        setting: setting.to_string(),
        message: message.into(),
    }
}

/// Raw values as read from the file; every field optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    database_url: Option<String>,
    bind: Option<String>,
    base_url: Option<String>,
    smtp_url: Option<String>,
    mail_from: Option<String>,
    keys_dir: Option<String>,
    data_dir: Option<String>,
    secret: Option<String>,
    pool_size: Option<u32>,
    workers: Option<usize>,
    log_format: Option<String>,
    learner_session_idle_minutes: Option<i64>,
    learner_session_max_days: Option<i64>,
    staff_session_idle_minutes: Option<i64>,
    staff_session_max_hours: Option<i64>,
    outbox_workers: Option<bool>,
    dev_signin: Option<bool>,
    lti_clock_skew_secs: Option<i64>,
    link_once_minutes: Option<i64>,
    link_access_max_days: Option<i64>,
    link_stepup_days: Option<i64>,
    link_staff_minutes: Option<i64>,
    link_max_redeems: Option<i64>,
    link_reuse_minutes: Option<i64>,
    code_minutes: Option<i64>,
    code_attempts: Option<i64>,
    signin_per_address_minute: Option<i64>,
    signin_per_address_hour: Option<i64>,
    signin_per_ip_5min: Option<i64>,
    mail_poll_secs: Option<i64>,
    api_rate_limit_per_minute: Option<i64>,
    dkim_key_file: Option<String>,
    lti_frame_sessions: Option<bool>,
    dkim_selector: Option<String>,
    dkim_domain: Option<String>,
    dkim_algorithm: Option<String>,
    sso_issuer: Option<String>,
    sso_client_id: Option<String>,
    sso_client_secret: Option<String>,
    sso_allowed_domains: Option<String>,
    sso_default_role: Option<String>,
    sso_provider_name: Option<String>,
}

#[derive(Clone)]
pub struct Config {
    pub database_url: String,
    pub bind: String,
    pub base_url: url::Url,
    pub smtp_url: Option<String>,
    pub mail_from: String,
    pub keys_dir: PathBuf,
    pub data_dir: PathBuf,
    pub secret: Secret,
    pub pool_size: u32,
    /// HTTP worker threads (0 = one per core).
    pub workers: usize,
    pub log_format: LogFormat,
    pub sessions: SessionPolicy,
    /// Run the background outbox workers in this process.
    pub outbox_workers: bool,
    /// Development sign-in URLs (`coursegate demo` only).
    pub dev_signin: bool,
    /// Allowed clock difference with LMS platforms when checking id_token times.
    pub lti_clock_skew_secs: i64,
    /// Magic-link defaults (docs/magic-links.md).
    pub links: coursegate_core::links::LinkSettings,
    /// How often the email worker looks for due mail.
    pub mail_poll_secs: u64,
    /// Requests per minute allowed to one API key (counted in the database,
    /// so the budget is shared by every instance).
    pub api_rate_limit: coursegate_core::api_keys::RateLimit,
    /// After a launch in a frame that kept no cookie, continue in the frame
    /// with the session in the path (`/f/{token}/…`) instead of offering a
    /// new window.
    pub lti_frame_sessions: bool,
    /// DKIM signing of outgoing mail, when a key file is configured.
    pub dkim: Option<coursegate_mail::DkimSettings>,
    /// Staff single sign-on with an OpenID Connect provider, when an issuer
    /// is configured.
    pub sso: Option<SsoConfig>,
}

/// Staff single sign-on settings (docs/configuration.md, "Single sign-on").
#[derive(Clone)]
pub struct SsoConfig {
    /// Exactly as configured: discovery compares it byte for byte with the
    /// provider's `issuer`.
    pub issuer: String,
    pub client_id: String,
    pub client_secret: String,
    /// Shown on the sign-in button: "Sign in with <name>".
    pub provider_name: String,
    pub policy: coursegate_core::sso::SsoPolicy,
}

impl std::fmt::Debug for SsoConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SsoConfig")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("provider_name", &self.provider_name)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("database_url", &redact_url(&self.database_url))
            .field("bind", &self.bind)
            .field("base_url", &self.base_url.as_str())
            .field("smtp_url", &self.smtp_url.as_deref().map(redact_url))
            .field("keys_dir", &self.keys_dir)
            .field("data_dir", &self.data_dir)
            .field("pool_size", &self.pool_size)
            .finish_non_exhaustive()
    }
}

/// Replaces the password of `scheme://user:pass@host` with `***`.
pub fn redact_url(u: &str) -> String {
    match url::Url::parse(u) {
        Ok(mut p) if p.password().is_some() => {
            let _ = p.set_password(Some("***"));
            p.to_string()
        }
        _ => u.to_string(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Where values come from: the process environment, or a map in tests.
pub trait Env {
    fn get(&self, key: &str) -> Option<String>;
}

pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn get(&self, key: &str) -> Option<String> {
        std::env::var(key).ok().filter(|v| !v.is_empty())
    }
}

impl Env for HashMap<String, String> {
    fn get(&self, key: &str) -> Option<String> {
        HashMap::get(self, key).cloned()
    }
}

impl Config {
    /// Loads from the process environment and the optional file.
    pub fn load() -> Result<Self, ConfigError> {
        Self::load_from(&ProcessEnv, None)
    }

    /// `secret_fallback` is used when no secret is configured (demo mode).
    pub fn load_from(env: &dyn Env, secret_fallback: Option<Secret>) -> Result<Self, ConfigError> {
        let file = match env.get("COURSEGATE_CONFIG") {
            Some(p) => Some(read_file_config(&PathBuf::from(p), "COURSEGATE_CONFIG")?),
            None => {
                let p = PathBuf::from("coursegate.toml");
                if p.exists() {
                    Some(read_file_config(&p, "coursegate.toml")?)
                } else {
                    None
                }
            }
        }
        .unwrap_or_default();

        let s = |name: &str, file_v: Option<String>| -> Result<Option<String>, ConfigError> {
            let key = format!("COURSEGATE_{name}");
            if let Some(v) = env.get(&key) {
                return Ok(Some(v));
            }
            let file_key = format!("{key}_FILE");
            if let Some(path) = env.get(&file_key) {
                return std::fs::read_to_string(&path)
                    .map(|v| Some(v.trim_end_matches(['\n', '\r']).to_string()))
                    .map_err(|e| err(&file_key, format!("cannot read {path}: {e}")));
            }
            Ok(file_v)
        };
        let num = |name: &str,
                   file_v: Option<i64>,
                   default: i64,
                   min: i64,
                   max: i64|
         -> Result<i64, ConfigError> {
            let key = format!("COURSEGATE_{name}");
            let v = match env.get(&key) {
                Some(raw) => raw
                    .trim()
                    .parse::<i64>()
                    .map_err(|_| err(&key, format!("must be a whole number, got {raw:?}")))?,
                None => file_v.unwrap_or(default),
            };
            if v < min || v > max {
                return Err(err(
                    &key,
                    format!("must be between {min} and {max}, got {v}"),
                ));
            }
            Ok(v)
        };
        let boolean =
            |name: &str, file_v: Option<bool>, default: bool| -> Result<bool, ConfigError> {
                let key = format!("COURSEGATE_{name}");
                match env.get(&key).as_deref().map(str::trim) {
                    None => Ok(file_v.unwrap_or(default)),
                    Some("1" | "true" | "yes" | "on") => Ok(true),
                    Some("0" | "false" | "no" | "off") => Ok(false),
                    Some(other) => Err(err(&key, format!("must be true or false, got {other:?}"))),
                }
            };

        let database_url = s("DATABASE_URL", file.database_url)?
            .unwrap_or_else(|| "sqlite://data/coursegate.db".into());
        coursegate_store::DatabaseUrl::parse(&database_url).map_err(|e| {
            err(
                "COURSEGATE_DATABASE_URL",
                e.to_string()
                    .trim_start_matches("DATABASE_URL: ")
                    .to_string(),
            )
        })?;

        let bind = s("BIND", file.bind)?.unwrap_or_else(|| "127.0.0.1:8080".into());
        if bind.parse::<std::net::SocketAddr>().is_err() {
            return Err(err(
                "COURSEGATE_BIND",
                format!("must be HOST:PORT with a numeric IP, e.g. 0.0.0.0:8080, got {bind:?}"),
            ));
        }

        let base_raw = s("BASE_URL", file.base_url)?
            .unwrap_or_else(|| format!("http://{}", bind.replace("0.0.0.0", "localhost")));
        let base_url = url::Url::parse(&base_raw).map_err(|e| {
            err(
                "COURSEGATE_BASE_URL",
                format!("not a URL ({e}): {base_raw:?}"),
            )
        })?;
        if !matches!(base_url.scheme(), "http" | "https") || base_url.host_str().is_none() {
            return Err(err(
                "COURSEGATE_BASE_URL",
                "must be an http:// or https:// URL with a host",
            ));
        }
        if base_url.path() != "/" || base_url.query().is_some() {
            return Err(err(
                "COURSEGATE_BASE_URL",
                "must be the site root without a path, e.g. https://learn.example.com",
            ));
        }

        let smtp_url = s("SMTP_URL", file.smtp_url)?;
        if let Some(u) = &smtp_url {
            let ok = url::Url::parse(u)
                .map(|p| {
                    matches!(p.scheme(), "smtp" | "smtps" | "smtp+starttls")
                        && p.host_str().is_some()
                })
                .unwrap_or(false);
            if !ok {
                return Err(err(
                    "COURSEGATE_SMTP_URL",
                    "must be smtp://HOST:PORT, smtp+starttls://USER:PASS@HOST:587 or smtps://USER:PASS@HOST:465",
                ));
            }
        }
        let mail_from = s("MAIL_FROM", file.mail_from)?.unwrap_or_else(|| {
            format!(
                "Coursegate <no-reply@{}>",
                base_url.host_str().unwrap_or("localhost")
            )
        });
        if !mail_from.contains('@') {
            return Err(err(
                "COURSEGATE_MAIL_FROM",
                "must be an address such as \"Academy <no-reply@example.com>\"",
            ));
        }

        let dkim = match s("DKIM_KEY_FILE", file.dkim_key_file)? {
            None => None,
            Some(key_file) => {
                let key_file = PathBuf::from(key_file);
                if !key_file.is_file() {
                    return Err(err(
                        "COURSEGATE_DKIM_KEY_FILE",
                        format!("{} is not a readable file", key_file.display()),
                    ));
                }
                let selector = s("DKIM_SELECTOR", file.dkim_selector)?.ok_or_else(|| {
                    err(
                        "COURSEGATE_DKIM_SELECTOR",
                        "is required with COURSEGATE_DKIM_KEY_FILE (the DNS label before ._domainkey)",
                    )
                })?;
                let domain = match s("DKIM_DOMAIN", file.dkim_domain)? {
                    Some(d) => d,
                    None => mail_from
                        .rsplit('@')
                        .next()
                        .map(|d| d.trim_end_matches('>').trim().to_string())
                        .filter(|d| !d.is_empty())
                        .ok_or_else(|| err("COURSEGATE_DKIM_DOMAIN", "is required"))?,
                };
                let algorithm = match s("DKIM_ALGORITHM", file.dkim_algorithm)?.as_deref() {
                    None | Some("rsa") => coursegate_mail::DkimAlgorithm::Rsa,
                    Some("ed25519") => coursegate_mail::DkimAlgorithm::Ed25519,
                    Some(o) => {
                        return Err(err(
                            "COURSEGATE_DKIM_ALGORITHM",
                            format!("must be rsa or ed25519, got {o:?}"),
                        ))
                    }
                };
                Some(coursegate_mail::DkimSettings {
                    selector,
                    domain,
                    key_file,
                    algorithm,
                })
            }
        };

        let secret = match s("SECRET", file.secret)? {
            Some(v) => Secret::new(v.into_bytes()).ok_or_else(|| {
                err("COURSEGATE_SECRET", "must be at least 32 bytes; generate one with `openssl rand -base64 48`")
            })?,
            None => secret_fallback.ok_or_else(|| {
                err(
                    "COURSEGATE_SECRET",
                    "is required (at least 32 bytes; generate one with `openssl rand -base64 48`, or set COURSEGATE_SECRET_FILE)",
                )
            })?,
        };

        let log_format = match s("LOG_FORMAT", file.log_format)?.as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(o) => {
                return Err(err(
                    "COURSEGATE_LOG_FORMAT",
                    format!("must be text or json, got {o:?}"),
                ))
            }
        };

        let pool_size = num("POOL_SIZE", file.pool_size.map(i64::from), 8, 1, 256)?;
        let workers = num(
            "WORKERS",
            file.workers.and_then(|w| i64::try_from(w).ok()),
            0,
            0,
            256,
        )?;
        let sessions = SessionPolicy {
            learner_idle: chrono::Duration::minutes(num(
                "LEARNER_SESSION_IDLE_MINUTES",
                file.learner_session_idle_minutes,
                480,
                5,
                43_200,
            )?),
            learner_absolute: chrono::Duration::days(num(
                "LEARNER_SESSION_MAX_DAYS",
                file.learner_session_max_days,
                30,
                1,
                365,
            )?),
            staff_idle: chrono::Duration::minutes(num(
                "STAFF_SESSION_IDLE_MINUTES",
                file.staff_session_idle_minutes,
                30,
                5,
                1440,
            )?),
            staff_absolute: chrono::Duration::hours(num(
                "STAFF_SESSION_MAX_HOURS",
                file.staff_session_max_hours,
                12,
                1,
                168,
            )?),
        };

        let sso = match s("SSO_ISSUER", file.sso_issuer)? {
            None => None,
            Some(raw) => {
                let issuer = url::Url::parse(raw.trim()).map_err(|e| {
                    err("COURSEGATE_SSO_ISSUER", format!("not a URL ({e}): {raw:?}"))
                })?;
                if !matches!(issuer.scheme(), "http" | "https") || issuer.host_str().is_none() {
                    return Err(err(
                        "COURSEGATE_SSO_ISSUER",
                        "must be the provider's https:// issuer URL",
                    ));
                }
                let client_id = s("SSO_CLIENT_ID", file.sso_client_id)?.ok_or_else(|| {
                    err(
                        "COURSEGATE_SSO_CLIENT_ID",
                        "is required when COURSEGATE_SSO_ISSUER is set",
                    )
                })?;
                let client_secret =
                    s("SSO_CLIENT_SECRET", file.sso_client_secret)?.ok_or_else(|| {
                        err(
                            "COURSEGATE_SSO_CLIENT_SECRET",
                            "is required when COURSEGATE_SSO_ISSUER is set (or set COURSEGATE_SSO_CLIENT_SECRET_FILE)",
                        )
                    })?;
                let mut allowed_domains = Vec::new();
                for d in s("SSO_ALLOWED_DOMAINS", file.sso_allowed_domains)?
                    .unwrap_or_default()
                    .split(',')
                    .map(|d| d.trim().trim_start_matches('@').to_lowercase())
                    .filter(|d| !d.is_empty())
                {
                    if !d.contains('.') || d.contains(['@', '/', ' ']) {
                        return Err(err(
                            "COURSEGATE_SSO_ALLOWED_DOMAINS",
                            format!("must be comma-separated domains like acme.example, got {d:?}"),
                        ));
                    }
                    allowed_domains.push(d);
                }
                let role_raw = s("SSO_DEFAULT_ROLE", file.sso_default_role)?
                    .unwrap_or_else(|| "instructor".into());
                let default_role = coursegate_core::staff::Role::parse(role_raw.trim())
                    .map_err(|_| {
                        err(
                            "COURSEGATE_SSO_DEFAULT_ROLE",
                            format!("must be one of owner, admin, instructor, support, got {role_raw:?}"),
                        )
                    })?;
                let provider_name = s("SSO_PROVIDER_NAME", file.sso_provider_name)?
                    .unwrap_or_else(|| issuer.host_str().unwrap_or("single sign-on").to_string());
                Some(SsoConfig {
                    issuer: raw.trim().to_string(),
                    client_id,
                    client_secret,
                    provider_name,
                    policy: coursegate_core::sso::SsoPolicy {
                        allowed_domains,
                        default_role,
                    },
                })
            }
        };

        Ok(Config {
            sso,
            database_url,
            bind,
            base_url,
            smtp_url,
            mail_from,
            dkim,
            keys_dir: PathBuf::from(s("KEYS_DIR", file.keys_dir)?.unwrap_or_else(|| "jwks".into())),
            data_dir: PathBuf::from(s("DATA_DIR", file.data_dir)?.unwrap_or_else(|| "data".into())),
            secret,
            pool_size: u32::try_from(pool_size).unwrap_or(8),
            workers: usize::try_from(workers).unwrap_or(0),
            log_format,
            sessions,
            outbox_workers: boolean("OUTBOX_WORKERS", file.outbox_workers, true)?,
            dev_signin: boolean("DEV_SIGNIN", file.dev_signin, false)?,
            lti_frame_sessions: boolean("LTI_FRAME_SESSIONS", file.lti_frame_sessions, true)?,
            lti_clock_skew_secs: num("LTI_CLOCK_SKEW_SECS", file.lti_clock_skew_secs, 60, 0, 600)?,
            links: coursegate_core::links::LinkSettings {
                once_ttl: chrono::Duration::minutes(num(
                    "LINK_ONCE_MINUTES",
                    file.link_once_minutes,
                    15,
                    1,
                    1440,
                )?),
                access_max: chrono::Duration::days(num(
                    "LINK_ACCESS_MAX_DAYS",
                    file.link_access_max_days,
                    365,
                    1,
                    3650,
                )?),
                stepup_after: chrono::Duration::days(num(
                    "LINK_STEPUP_DAYS",
                    file.link_stepup_days,
                    30,
                    0,
                    3650,
                )?),
                staff_ttl: chrono::Duration::minutes(num(
                    "LINK_STAFF_MINUTES",
                    file.link_staff_minutes,
                    10,
                    1,
                    60,
                )?),
                max_redeems: i32::try_from(num(
                    "LINK_MAX_REDEEMS",
                    file.link_max_redeems,
                    3,
                    1,
                    10,
                )?)
                .unwrap_or(3),
                reuse_window: chrono::Duration::minutes(num(
                    "LINK_REUSE_MINUTES",
                    file.link_reuse_minutes,
                    10,
                    0,
                    60,
                )?),
                code_ttl: chrono::Duration::minutes(num(
                    "CODE_MINUTES",
                    file.code_minutes,
                    10,
                    1,
                    60,
                )?),
                code_attempts: i32::try_from(num("CODE_ATTEMPTS", file.code_attempts, 5, 1, 10)?)
                    .unwrap_or(5),
                per_address_minute: i32::try_from(num(
                    "SIGNIN_PER_ADDRESS_MINUTE",
                    file.signin_per_address_minute,
                    1,
                    1,
                    60,
                )?)
                .unwrap_or(1),
                per_address_hour: i32::try_from(num(
                    "SIGNIN_PER_ADDRESS_HOUR",
                    file.signin_per_address_hour,
                    5,
                    1,
                    600,
                )?)
                .unwrap_or(5),
                per_ip_5min: i32::try_from(num(
                    "SIGNIN_PER_IP_5MIN",
                    file.signin_per_ip_5min,
                    30,
                    1,
                    10_000,
                )?)
                .unwrap_or(30),
            },
            mail_poll_secs: u64::try_from(num("MAIL_POLL_SECS", file.mail_poll_secs, 2, 1, 3600)?)
                .unwrap_or(2),
            api_rate_limit: coursegate_core::api_keys::RateLimit {
                limit: u32::try_from(num(
                    "API_RATE_LIMIT_PER_MINUTE",
                    file.api_rate_limit_per_minute,
                    300,
                    1,
                    1_000_000,
                )?)
                .unwrap_or(300),
                window: chrono::Duration::minutes(1),
            },
        })
    }

    /// Whether cookies must carry `Secure`.
    pub fn secure_cookies(&self) -> bool {
        self.base_url.scheme() == "https"
    }

    /// An absolute URL for an in-app path.
    pub fn url(&self, path: &str) -> String {
        let base = self.base_url.as_str().trim_end_matches('/');
        format!("{base}{path}")
    }
}

fn read_file_config(path: &PathBuf, setting: &str) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| err(setting, format!("cannot read {}: {e}", path.display())))?;
    toml::from_str(&text).map_err(|e| err(setting, format!("{}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn defaults() {
        let c = Config::load_from(&env(&[("COURSEGATE_SECRET", SECRET)]), None).unwrap();
        assert_eq!(c.database_url, "sqlite://data/coursegate.db");
        assert_eq!(c.bind, "127.0.0.1:8080");
        assert_eq!(c.base_url.as_str(), "http://127.0.0.1:8080/");
        assert!(!c.secure_cookies());
    }

    #[test]
    fn magic_link_limits_are_settings_with_the_documented_defaults() {
        let c = Config::load_from(&env(&[("COURSEGATE_SECRET", SECRET)]), None).unwrap();
        let d = coursegate_core::links::LinkSettings::default();
        let l = &c.links;
        assert_eq!(
            (
                l.once_ttl,
                l.staff_ttl,
                l.access_max,
                l.reuse_window,
                l.code_ttl
            ),
            (
                d.once_ttl,
                d.staff_ttl,
                d.access_max,
                d.reuse_window,
                d.code_ttl
            )
        );
        assert_eq!(
            (
                l.max_redeems,
                l.code_attempts,
                l.per_address_minute,
                l.per_address_hour,
                l.per_ip_5min
            ),
            (3, 5, 1, 5, 30)
        );
        let c = Config::load_from(
            &env(&[
                ("COURSEGATE_SECRET", SECRET),
                ("COURSEGATE_LINK_STAFF_MINUTES", "5"),
                ("COURSEGATE_LINK_MAX_REDEEMS", "1"),
                ("COURSEGATE_LINK_REUSE_MINUTES", "0"),
                ("COURSEGATE_CODE_MINUTES", "15"),
                ("COURSEGATE_CODE_ATTEMPTS", "3"),
                ("COURSEGATE_SIGNIN_PER_ADDRESS_MINUTE", "2"),
                ("COURSEGATE_SIGNIN_PER_ADDRESS_HOUR", "10"),
                ("COURSEGATE_SIGNIN_PER_IP_5MIN", "100"),
            ]),
            None,
        )
        .unwrap();
        let l = &c.links;
        assert_eq!(l.staff_ttl, chrono::Duration::minutes(5));
        assert_eq!(l.reuse_window, chrono::Duration::zero());
        assert_eq!(l.code_ttl, chrono::Duration::minutes(15));
        assert_eq!(
            (
                l.max_redeems,
                l.code_attempts,
                l.per_address_minute,
                l.per_address_hour,
                l.per_ip_5min
            ),
            (1, 3, 2, 10, 100)
        );
        for (k, v, why) in [
            (
                "COURSEGATE_LINK_STAFF_MINUTES",
                "0",
                "must be between 1 and 60, got 0",
            ),
            (
                "COURSEGATE_LINK_MAX_REDEEMS",
                "11",
                "must be between 1 and 10, got 11",
            ),
            (
                "COURSEGATE_CODE_ATTEMPTS",
                "many",
                "must be a whole number, got \"many\"",
            ),
            (
                "COURSEGATE_SIGNIN_PER_IP_5MIN",
                "0",
                "must be between 1 and 10000, got 0",
            ),
        ] {
            let mut e = env(&[("COURSEGATE_SECRET", SECRET)]);
            e.insert(k.to_string(), v.to_string());
            let got = Config::load_from(&e, None).unwrap_err();
            assert_eq!(got.setting, k, "{k}={v}");
            assert!(got.to_string().contains(why), "{k}={v}: {got}");
        }
    }

    #[test]
    fn each_bad_value_names_its_setting() {
        let cases = [
            ("COURSEGATE_DATABASE_URL", "mysql://x"),
            ("COURSEGATE_BIND", "localhost"),
            ("COURSEGATE_BASE_URL", "ftp://x"),
            ("COURSEGATE_BASE_URL", "https://x.example/sub"),
            ("COURSEGATE_SMTP_URL", "http://mail"),
            ("COURSEGATE_SECRET", "short"),
            ("COURSEGATE_POOL_SIZE", "zero"),
            ("COURSEGATE_POOL_SIZE", "0"),
            ("COURSEGATE_LOG_FORMAT", "xml"),
        ];
        for (k, v) in cases {
            let mut e = env(&[("COURSEGATE_SECRET", SECRET)]);
            e.insert(k.to_string(), v.to_string());
            let got = Config::load_from(&e, None).unwrap_err();
            assert_eq!(got.setting, k, "{k}={v}: {got}");
        }
        let got = Config::load_from(&env(&[]), None).unwrap_err();
        assert_eq!(got.setting, "COURSEGATE_SECRET");
    }

    #[test]
    fn sso_settings_are_checked_with_defaults_and_a_secret_file() {
        let c = Config::load_from(&env(&[("COURSEGATE_SECRET", SECRET)]), None).unwrap();
        assert!(c.sso.is_none(), "off unless an issuer is set");

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sso-secret");
        std::fs::write(&file, "from-a-file\n").unwrap();
        let file = file.to_str().unwrap();
        let base = [
            ("COURSEGATE_SECRET", SECRET),
            (
                "COURSEGATE_SSO_ISSUER",
                "https://login.acme.example/realms/staff",
            ),
            ("COURSEGATE_SSO_CLIENT_ID", "coursegate"),
            ("COURSEGATE_SSO_CLIENT_SECRET_FILE", file),
        ];
        let c = Config::load_from(&env(&base), None).unwrap();
        let sso = c.sso.unwrap();
        assert_eq!(sso.issuer, "https://login.acme.example/realms/staff");
        assert_eq!(sso.client_secret, "from-a-file");
        assert_eq!(sso.provider_name, "login.acme.example");
        assert!(sso.policy.allowed_domains.is_empty());
        assert_eq!(
            sso.policy.default_role,
            coursegate_core::staff::Role::Instructor
        );

        let mut e = env(&base);
        e.insert(
            "COURSEGATE_SSO_ALLOWED_DOMAINS".into(),
            " ACME.example, @acme-training.example ,".into(),
        );
        e.insert("COURSEGATE_SSO_DEFAULT_ROLE".into(), "support".into());
        let sso = Config::load_from(&e, None).unwrap().sso.unwrap();
        assert_eq!(
            sso.policy.allowed_domains,
            vec![
                "acme.example".to_string(),
                "acme-training.example".to_string()
            ]
        );
        assert_eq!(
            sso.policy.default_role,
            coursegate_core::staff::Role::Support
        );

        for (k, v) in [
            ("COURSEGATE_SSO_ISSUER", "not a url"),
            ("COURSEGATE_SSO_DEFAULT_ROLE", "root"),
            ("COURSEGATE_SSO_ALLOWED_DOMAINS", "localhost"),
        ] {
            let mut e = env(&base);
            e.insert(k.to_string(), v.to_string());
            assert_eq!(
                Config::load_from(&e, None).unwrap_err().setting,
                k,
                "{k}={v}"
            );
        }
        let mut e = env(&base);
        e.remove("COURSEGATE_SSO_CLIENT_ID");
        assert_eq!(
            Config::load_from(&e, None).unwrap_err().setting,
            "COURSEGATE_SSO_CLIENT_ID"
        );
    }

    #[test]
    fn dkim_settings_are_checked_and_default_to_the_sender_domain() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("dkim.pem");
        std::fs::write(&key, "not checked here").unwrap();
        let key = key.to_str().unwrap();
        let base = [
            ("COURSEGATE_SECRET", SECRET),
            ("COURSEGATE_MAIL_FROM", "Academy <learn@academy.example>"),
        ];
        let with = |extra: &[(&str, &str)]| {
            let mut all = base.to_vec();
            all.extend_from_slice(extra);
            Config::load_from(&env(&all), None)
        };
        let c = with(&[
            ("COURSEGATE_DKIM_KEY_FILE", key),
            ("COURSEGATE_DKIM_SELECTOR", "cg1"),
        ])
        .unwrap();
        let d = c.dkim.unwrap();
        assert_eq!(
            (d.selector.as_str(), d.domain.as_str()),
            ("cg1", "academy.example")
        );
        assert_eq!(d.algorithm, coursegate_mail::DkimAlgorithm::Rsa);
        assert!(with(&[]).unwrap().dkim.is_none());
        let e = with(&[("COURSEGATE_DKIM_KEY_FILE", key)]).unwrap_err();
        assert_eq!(e.setting, "COURSEGATE_DKIM_SELECTOR");
        let e = with(&[("COURSEGATE_DKIM_KEY_FILE", "/nonexistent/dkim.pem")]).unwrap_err();
        assert_eq!(e.setting, "COURSEGATE_DKIM_KEY_FILE");
        let e = with(&[
            ("COURSEGATE_DKIM_KEY_FILE", key),
            ("COURSEGATE_DKIM_SELECTOR", "cg1"),
            ("COURSEGATE_DKIM_ALGORITHM", "dsa"),
        ])
        .unwrap_err();
        assert_eq!(e.setting, "COURSEGATE_DKIM_ALGORITHM");
    }

    #[test]
    fn secrets_from_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("secret");
        std::fs::write(&p, format!("{SECRET}\n")).unwrap();
        let c = Config::load_from(
            &env(&[("COURSEGATE_SECRET_FILE", p.to_str().unwrap())]),
            None,
        )
        .unwrap();
        assert_eq!(
            c.secret.hash("x", "y"),
            Secret::new(SECRET.as_bytes().to_vec())
                .unwrap()
                .hash("x", "y")
        );
        let e = Config::load_from(
            &env(&[("COURSEGATE_SECRET_FILE", "/nonexistent/secret")]),
            None,
        )
        .unwrap_err();
        assert_eq!(e.setting, "COURSEGATE_SECRET_FILE");
    }
}
