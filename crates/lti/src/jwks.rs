//! Platform key sets: fetching (with a User-Agent, honouring Cache-Control /
//! Expires) and an in-memory cache per JWKS URL.
//!
//! The cache ([`JwksCache`]):
//! - keeps each key set for the server-given lifetime clamped to a floor and a
//!   ceiling (D2L sends `no-store` and rotates hourly: the floor keeps us from
//!   fetching per launch; the unknown-kid refetch covers its rotation);
//! - on a kid it does not know, refetches at most once per
//!   `unknown_kid_interval` per URL;
//! - lets one fetch per URL be in flight; concurrent callers wait for it;
//! - serves the last good keys for a while when the platform is unreachable.
//!
//! Time is always passed in.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use jsonwebtoken::jwk::JwkSet;
use serde_json::Value;

use crate::error::LtiError;
use crate::token::PlatformKeys;

/// A fetched key set and what the server said about caching it.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub keys: JwkSet,
    /// Seconds from Cache-Control `max-age` (`no-store`/`no-cache` give 0).
    pub max_age: Option<i64>,
    /// The `Expires` header, used when there is no Cache-Control lifetime.
    pub expires: Option<DateTime<Utc>>,
}

/// Where key sets come from. The real one is [`ReqwestKeySource`]; tests use fakes.
pub trait KeySource: Send + Sync {
    fn fetch(&self, jwks_url: &str) -> impl Future<Output = Result<Fetched, LtiError>> + Send;
}

/// Largest JWKS document accepted (D2L's exceed 64 KB).
pub const MAX_JWKS_BYTES: usize = 2 * 1024 * 1024;

/// Fetches JWKS over HTTPS with reqwest.
#[derive(Debug, Clone)]
pub struct ReqwestKeySource {
    client: reqwest::Client,
}

impl ReqwestKeySource {
    /// A client sending `user_agent` with a 10 s timeout.
    pub fn new(user_agent: &str) -> Result<Self, LtiError> {
        let client = reqwest::Client::builder()
            .user_agent(user_agent)
            .timeout(std::time::Duration::from_secs(10))
            .connect_timeout(std::time::Duration::from_secs(5))
            .build()
            .map_err(|e| LtiError::JwksFetchFailed {
                url: String::new(),
                status: None,
                reason: e.to_string(),
            })?;
        Ok(ReqwestKeySource { client })
    }

    /// Uses an existing client (it should already send a User-Agent).
    pub fn with_client(client: reqwest::Client) -> Self {
        ReqwestKeySource { client }
    }
}

/// Reads `max-age` / `no-store` / `no-cache` from a Cache-Control value.
pub fn parse_cache_control(v: &str) -> Option<i64> {
    let mut max_age = None;
    for d in v.split(',') {
        let d = d.trim().to_ascii_lowercase();
        if d == "no-store" || d == "no-cache" {
            return Some(0);
        }
        if let Some(n) = d.strip_prefix("max-age=") {
            max_age = n.trim_matches('"').parse::<i64>().ok().map(|n| n.max(0));
        }
    }
    max_age
}

impl KeySource for ReqwestKeySource {
    async fn fetch(&self, jwks_url: &str) -> Result<Fetched, LtiError> {
        let fail = |status: Option<u16>, reason: String| LtiError::JwksFetchFailed {
            url: jwks_url.to_string(),
            status,
            reason,
        };
        let mut resp = self
            .client
            .get(jwks_url)
            .header(
                reqwest::header::ACCEPT,
                "application/json, application/jwk-set+json",
            )
            .send()
            .await
            .map_err(|e| fail(None, e.to_string()))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(fail(Some(status.as_u16()), format!("HTTP {status}")));
        }
        let header = |name: reqwest::header::HeaderName| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let max_age = header(reqwest::header::CACHE_CONTROL).and_then(|v| parse_cache_control(&v));
        let expires = header(reqwest::header::EXPIRES)
            .and_then(|v| DateTime::parse_from_rfc2822(v.trim()).ok())
            .map(|d| d.with_timezone(&Utc));
        let mut body = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| fail(Some(status.as_u16()), e.to_string()))?
        {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_JWKS_BYTES {
                return Err(fail(Some(status.as_u16()), "key set too large".into()));
            }
        }
        let doc: Value = serde_json::from_slice(&body).map_err(|e| LtiError::JwksInvalid {
            url: jwks_url.to_string(),
            reason: e.to_string(),
        })?;
        Ok(Fetched {
            keys: PlatformKeys::parse_jwks_lenient(&doc),
            max_age,
            expires,
        })
    }
}

/// Cache timings, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CachePolicy {
    /// Shortest time a key set is kept, whatever the server says.
    pub floor_secs: i64,
    /// Longest time a key set is kept.
    pub ceiling_secs: i64,
    /// Lifetime when the server gives none.
    pub default_secs: i64,
    /// Minimum time between refetches caused by an unknown kid.
    pub unknown_kid_interval_secs: i64,
    /// How long after the last successful fetch stale keys may still be
    /// served while the platform cannot be reached.
    pub stale_grace_secs: i64,
    /// After a failed fetch with stale keys served, wait this long before trying again.
    pub error_retry_secs: i64,
}

impl Default for CachePolicy {
    fn default() -> Self {
        CachePolicy {
            floor_secs: 60,
            ceiling_secs: 24 * 3600,
            default_secs: 600,
            unknown_kid_interval_secs: 60,
            stale_grace_secs: 24 * 3600,
            error_retry_secs: 30,
        }
    }
}

#[derive(Clone)]
struct Entry {
    keys: Arc<PlatformKeys>,
    fetched_at: i64,
    fresh_until: i64,
    last_attempt: i64,
}

/// What the cache did for one lookup (for the flight recorder).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Served from memory.
    Hit,
    /// Fetched now (first use, expired, or unknown kid).
    Fetched,
    /// The kid is unknown but a refetch happened less than the interval ago.
    RateLimited,
    /// The platform failed; last good keys served.
    Stale,
}

/// In-memory platform key cache keyed by JWKS URL.
pub struct JwksCache<S: KeySource = ReqwestKeySource> {
    source: S,
    policy: CachePolicy,
    entries: Mutex<HashMap<String, Entry>>,
    flights: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl<S: KeySource> std::fmt::Debug for JwksCache<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksCache")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl<S: KeySource> JwksCache<S> {
    pub fn new(source: S) -> Self {
        Self::with_policy(source, CachePolicy::default())
    }

    pub fn with_policy(source: S, policy: CachePolicy) -> Self {
        JwksCache {
            source,
            policy,
            entries: Mutex::new(HashMap::new()),
            flights: Mutex::new(HashMap::new()),
        }
    }

    pub fn policy(&self) -> CachePolicy {
        self.policy
    }

    fn entry(&self, url: &str) -> Option<Entry> {
        self.entries.lock().ok().and_then(|m| m.get(url).cloned())
    }

    fn store(&self, url: &str, e: Entry) {
        if let Ok(mut m) = self.entries.lock() {
            m.insert(url.to_string(), e);
        }
    }

    fn flight(&self, url: &str) -> Arc<tokio::sync::Mutex<()>> {
        match self.flights.lock() {
            Ok(mut m) => m.entry(url.to_string()).or_default().clone(),
            Err(_) => Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    /// Forgets a URL's keys (e.g. after a registration's JWKS URL changed).
    pub fn invalidate(&self, url: &str) {
        if let Ok(mut m) = self.entries.lock() {
            m.remove(url);
        }
    }

    /// Puts a key set into the cache (pre-loading, tests).
    pub fn insert(&self, url: &str, keys: &JwkSet, now: DateTime<Utc>, ttl_secs: i64) {
        let t = now.timestamp();
        self.store(
            url,
            Entry {
                keys: Arc::new(PlatformKeys::from_jwks(keys)),
                fetched_at: t,
                fresh_until: t + ttl_secs,
                last_attempt: t,
            },
        );
    }

    fn ttl(&self, f: &Fetched, now: i64) -> i64 {
        let p = self.policy;
        let given = f
            .max_age
            .or_else(|| f.expires.map(|e| e.timestamp() - now))
            .unwrap_or(p.default_secs);
        given.clamp(p.floor_secs, p.ceiling_secs.max(p.floor_secs))
    }

    /// Decides from a snapshot whether it can be served without fetching.
    fn servable(&self, e: &Entry, kid: Option<&str>, now: i64) -> Option<CacheOutcome> {
        if now >= e.fresh_until {
            return None;
        }
        match kid {
            Some(k) if !e.keys.contains(k) => {
                if now - e.last_attempt < self.policy.unknown_kid_interval_secs {
                    Some(CacheOutcome::RateLimited)
                } else {
                    None
                }
            }
            _ => Some(CacheOutcome::Hit),
        }
    }

    /// The keys for `jwks_url`, refetching when expired or when `kid` is
    /// unknown (rate-limited). The caller then verifies; a kid still missing
    /// gives [`LtiError::KidUnknown`] there.
    pub async fn keys(
        &self,
        jwks_url: &str,
        kid: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Arc<PlatformKeys>, LtiError> {
        self.keys_traced(jwks_url, kid, now).await.map(|(k, _)| k)
    }

    /// [`JwksCache::keys`], also saying whether it fetched.
    pub async fn keys_traced(
        &self,
        jwks_url: &str,
        kid: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(Arc<PlatformKeys>, CacheOutcome), LtiError> {
        let t = now.timestamp();
        if let Some(e) = self.entry(jwks_url) {
            if let Some(o) = self.servable(&e, kid, t) {
                return Ok((e.keys, o));
            }
        }
        let flight = self.flight(jwks_url);
        let _guard = flight.lock().await;
        // Someone else may have fetched while we waited.
        let previous = self.entry(jwks_url);
        if let Some(e) = &previous {
            if let Some(o) = self.servable(e, kid, t) {
                return Ok((e.keys.clone(), o));
            }
        }
        if let Some(e) = &previous {
            let mut e = e.clone();
            e.last_attempt = t;
            self.store(jwks_url, e);
        }
        let fetched = self.source.fetch(jwks_url).await.and_then(|f| {
            let keys = PlatformKeys::from_jwks(&f.keys);
            if keys.is_empty() {
                Err(LtiError::JwksInvalid {
                    url: jwks_url.to_string(),
                    reason: "no RSA signing key with a kid".into(),
                })
            } else {
                Ok((keys, f))
            }
        });
        match fetched {
            Ok((keys, f)) => {
                let keys = Arc::new(keys);
                self.store(
                    jwks_url,
                    Entry {
                        keys: keys.clone(),
                        fetched_at: t,
                        fresh_until: t + self.ttl(&f, t),
                        last_attempt: t,
                    },
                );
                Ok((keys, CacheOutcome::Fetched))
            }
            Err(err) => match previous {
                Some(e) if t - e.fetched_at <= self.policy.stale_grace_secs => {
                    tracing::warn!(url = jwks_url, error = %err, "platform JWKS fetch failed; serving last good keys");
                    let keys = e.keys.clone();
                    self.store(
                        jwks_url,
                        Entry {
                            fresh_until: t + self.policy.error_retry_secs,
                            last_attempt: t,
                            ..e
                        },
                    );
                    Ok((keys, CacheOutcome::Stale))
                }
                _ => Err(err),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[derive(Default)]
    struct Fake {
        calls: AtomicUsize,
        docs: Mutex<Vec<Result<Value, ()>>>,
        max_age: Option<i64>,
        delay_ms: u64,
    }

    impl Fake {
        fn serving(docs: Vec<Result<Value, ()>>, max_age: Option<i64>) -> Self {
            Fake {
                docs: Mutex::new(docs),
                max_age,
                ..Default::default()
            }
        }
        fn calls(&self) -> usize {
            self.calls.load(Ordering::SeqCst)
        }
    }

    impl KeySource for Fake {
        async fn fetch(&self, url: &str) -> Result<Fetched, LtiError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            if self.delay_ms > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(self.delay_ms)).await;
            }
            let next = {
                let mut d = self.docs.lock().unwrap();
                if d.len() > 1 {
                    d.remove(0)
                } else {
                    d.first().cloned().unwrap_or(Err(()))
                }
            };
            match next {
                Ok(doc) => Ok(Fetched {
                    keys: PlatformKeys::parse_jwks_lenient(&doc),
                    max_age: self.max_age,
                    expires: None,
                }),
                Err(()) => Err(LtiError::JwksFetchFailed {
                    url: url.into(),
                    status: Some(503),
                    reason: "down".into(),
                }),
            }
        }
    }

    const URL: &str = "https://platform.test.example/jwks";

    fn at(secs: i64) -> DateTime<Utc> {
        testing::fixed_now() + chrono::Duration::seconds(secs)
    }

    #[tokio::test]
    async fn caches_and_refetches_unknown_kid_at_most_once_a_minute() {
        let cache = JwksCache::new(Fake::serving(
            vec![Ok(testing::platform_jwks()), Ok(testing::other_jwks())],
            Some(3600),
        ));
        let k = cache
            .keys(URL, Some(testing::PLATFORM_KID), at(0))
            .await
            .unwrap();
        assert!(k.contains(testing::PLATFORM_KID));
        assert_eq!(cache.source.calls(), 1);
        // Hit.
        cache
            .keys(URL, Some(testing::PLATFORM_KID), at(10))
            .await
            .unwrap();
        assert_eq!(cache.source.calls(), 1);
        // Unknown kid within a minute of the last fetch: no refetch.
        let (k, o) = cache
            .keys_traced(URL, Some(testing::OTHER_KID), at(30))
            .await
            .unwrap();
        assert_eq!(o, CacheOutcome::RateLimited);
        assert!(!k.contains(testing::OTHER_KID));
        assert_eq!(cache.source.calls(), 1);
        // After a minute: refetch, and the rotated key is found.
        let (k, o) = cache
            .keys_traced(URL, Some(testing::OTHER_KID), at(61))
            .await
            .unwrap();
        assert_eq!(o, CacheOutcome::Fetched);
        assert!(k.contains(testing::OTHER_KID));
        assert_eq!(cache.source.calls(), 2);
        // A still-unknown kid right after is rate-limited again.
        cache.keys(URL, Some("nope"), at(62)).await.unwrap();
        cache.keys(URL, Some("nope"), at(100)).await.unwrap();
        assert_eq!(cache.source.calls(), 2);
        cache.keys(URL, Some("nope"), at(125)).await.unwrap();
        assert_eq!(cache.source.calls(), 3);
    }

    #[tokio::test]
    async fn no_store_is_floored_and_huge_max_age_ceilinged() {
        let cache = JwksCache::new(Fake::serving(vec![Ok(testing::platform_jwks())], Some(0)));
        cache.keys(URL, None, at(0)).await.unwrap();
        cache.keys(URL, None, at(59)).await.unwrap();
        assert_eq!(cache.source.calls(), 1, "floor of 60 s");
        cache.keys(URL, None, at(60)).await.unwrap();
        assert_eq!(cache.source.calls(), 2);

        let cache = JwksCache::new(Fake::serving(
            vec![Ok(testing::platform_jwks())],
            Some(10 * 86400),
        ));
        cache.keys(URL, None, at(0)).await.unwrap();
        cache.keys(URL, None, at(86399)).await.unwrap();
        assert_eq!(cache.source.calls(), 1);
        cache.keys(URL, None, at(86400)).await.unwrap();
        assert_eq!(cache.source.calls(), 2, "ceiling of one day");
    }

    #[tokio::test]
    async fn serves_stale_keys_while_platform_is_down() {
        let cache = JwksCache::new(Fake::serving(
            vec![Ok(testing::platform_jwks()), Err(())],
            Some(60),
        ));
        cache.keys(URL, None, at(0)).await.unwrap();
        let (k, o) = cache.keys_traced(URL, None, at(120)).await.unwrap();
        assert_eq!(o, CacheOutcome::Stale);
        assert!(k.contains(testing::PLATFORM_KID));
        assert_eq!(cache.source.calls(), 2);
        // Not retried before error_retry_secs.
        cache.keys(URL, None, at(130)).await.unwrap();
        assert_eq!(cache.source.calls(), 2);
        // Past the stale grace, the error surfaces.
        let err = cache.keys(URL, None, at(2 * 86400)).await.unwrap_err();
        assert_eq!(err.code(), "jwks_fetch_failed");
        assert_eq!(err.status(), Some(503));
    }

    #[tokio::test]
    async fn first_fetch_failure_is_an_error() {
        let cache = JwksCache::new(Fake::serving(vec![Err(())], None));
        assert_eq!(
            cache.keys(URL, None, at(0)).await.unwrap_err().code(),
            "jwks_fetch_failed"
        );
        let cache = JwksCache::new(Fake::serving(
            vec![Ok(serde_json::json!({"keys": []}))],
            None,
        ));
        assert_eq!(
            cache.keys(URL, None, at(0)).await.unwrap_err().code(),
            "jwks_invalid"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_fetch_in_flight() {
        let fake = Fake {
            delay_ms: 50,
            ..Fake::serving(vec![Ok(testing::platform_jwks())], Some(600))
        };
        let cache = Arc::new(JwksCache::new(fake));
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let c = cache.clone();
            tasks.push(tokio::spawn(async move {
                c.keys(URL, Some(testing::PLATFORM_KID), at(0))
                    .await
                    .map(|k| k.len())
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap().unwrap(), 1);
        }
        assert_eq!(cache.source.calls(), 1);
    }

    #[test]
    fn cache_control_parsing() {
        assert_eq!(parse_cache_control("public, max-age=300"), Some(300));
        assert_eq!(parse_cache_control("no-store"), Some(0));
        assert_eq!(parse_cache_control("private, no-cache, max-age=5"), Some(0));
        assert_eq!(parse_cache_control("public"), None);
    }

    #[test]
    fn lenient_parsing_skips_unusable_keys() {
        let mut doc = testing::platform_jwks();
        doc["keys"].as_array_mut().unwrap().extend([
            serde_json::json!({"kty": "RSA", "use": "enc", "alg": "RSA-OAEP", "kid": "enc", "n": "AQAB", "e": "AQAB"}),
            serde_json::json!({"kty": "EC", "crv": "P-256", "kid": "ec", "x": "AA", "y": "AA"}),
            serde_json::json!({"kty": "weird"}),
        ]);
        let set = PlatformKeys::parse_jwks_lenient(&doc);
        assert_eq!(set.keys.len(), 1);
        assert_eq!(
            PlatformKeys::from_jwks(&set).kids(),
            vec![testing::PLATFORM_KID]
        );
    }
}
