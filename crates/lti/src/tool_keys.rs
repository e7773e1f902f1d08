//! The tool's own RSA signing keys: stored as `<kid>.pem` (PKCS#8, mode 0600)
//! in a directory, with their life-cycle in `keys.json`.
//!
//! A key is `next` (published, not yet used), `active` (signs everything; one
//! at a time) or `retired` (still published for a grace period so tokens
//! signed just before a rotation keep verifying). [`ToolKeys::rotate`]
//! promotes `next` to `active`, retires the old `active`, and pre-publishes a
//! fresh `next`, so platforms that cache our JWKS already know the key before
//! we sign with it.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, Utc};
use josekit::jwk::alg::rsa::RsaKeyPair;
use josekit::jwk::KeyPair;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::LtiError;

/// Name of the status file in the keys directory.
pub const STATUS_FILE: &str = "keys.json";
/// How long a retired key stays published by default.
pub const DEFAULT_RETIRED_GRACE_DAYS: i64 = 7;
/// How long a `next` key is published before a rotation may sign with it,
/// so platforms that cache the tool's JWKS have seen it.
pub const DEFAULT_OVERLAP_HOURS: i64 = 24;
/// RSA modulus size of generated keys.
pub const KEY_BITS: u32 = 2048;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyStatus {
    Next,
    Active,
    Retired,
}

/// One key's life-cycle record in `keys.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyMeta {
    pub kid: String,
    pub status: KeyStatus,
    pub created_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activated_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct StatusFile {
    keys: Vec<KeyMeta>,
}

struct LoadedKey {
    meta: KeyMeta,
    encoding: EncodingKey,
    /// base64url modulus and exponent.
    n: String,
    e: String,
}

/// What [`ToolKeys::rotate`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    pub activated: String,
    pub retired: Option<String>,
    pub next: String,
}

/// The tool's key set. Cheap to share behind an `Arc`; reload after a rotation.
pub struct ToolKeys {
    keys: Vec<LoadedKey>,
    retired_grace: Duration,
    loaded_at: DateTime<Utc>,
}

impl std::fmt::Debug for ToolKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ToolKeys")
            .field(
                "keys",
                &self.keys.iter().map(|k| &k.meta).collect::<Vec<_>>(),
            )
            .finish()
    }
}

fn key_err(reason: impl Into<String>) -> LtiError {
    LtiError::ToolKey {
        reason: reason.into(),
    }
}

fn io_err(path: &Path, e: std::io::Error) -> LtiError {
    key_err(format!("{}: {e}", path.display()))
}

fn valid_kid(kid: &str) -> bool {
    !kid.is_empty()
        && kid.len() <= 100
        && kid
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        && !kid.starts_with('.')
}

fn parse_pem(kid: &str, pem: &[u8], meta: KeyMeta) -> Result<LoadedKey, LtiError> {
    let pair = RsaKeyPair::from_pem(pem).map_err(|e| key_err(format!("key {kid}: {e}")))?;
    let jwk = pair.to_jwk_public_key();
    let part = |name: &str| {
        jwk.parameter(name)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| key_err(format!("key {kid}: no {name} in public key")))
    };
    let (n, e) = (part("n")?, part("e")?);
    let encoding =
        EncodingKey::from_rsa_pem(pem).map_err(|e| key_err(format!("key {kid}: {e}")))?;
    Ok(LoadedKey {
        meta,
        encoding,
        n,
        e,
    })
}

fn read_status(dir: &Path) -> Result<Option<StatusFile>, LtiError> {
    let path = dir.join(STATUS_FILE);
    match fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| key_err(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(&path, e)),
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), LtiError> {
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(|e| io_err(path, e))?;
    f.write_all(bytes).map_err(|e| io_err(path, e))?;
    f.sync_all().map_err(|e| io_err(path, e))
}

fn write_status(dir: &Path, status: &StatusFile) -> Result<(), LtiError> {
    let tmp = dir.join(format!("{STATUS_FILE}.tmp"));
    let bytes = serde_json::to_vec_pretty(status).map_err(|e| key_err(e.to_string()))?;
    write_private(&tmp, &bytes)?;
    let path = dir.join(STATUS_FILE);
    fs::rename(&tmp, &path).map_err(|e| io_err(&path, e))
}

fn pem_kids(dir: &Path) -> Result<Vec<String>, LtiError> {
    let mut kids = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| io_err(dir, e))? {
        let entry = entry.map_err(|e| io_err(dir, e))?;
        let name = entry.file_name().to_string_lossy().to_string();
        if let Some(kid) = name.strip_suffix(".pem") {
            if valid_kid(kid) {
                kids.push(kid.to_string());
            }
        }
    }
    kids.sort();
    Ok(kids)
}

/// The status as recorded, or inferred when `keys.json` is absent: the
/// last PEM (by name) is active, the others retired.
fn current_status(dir: &Path, now: DateTime<Utc>) -> Result<StatusFile, LtiError> {
    if let Some(s) = read_status(dir)? {
        return Ok(s);
    }
    let kids = pem_kids(dir)?;
    let last = kids.len().saturating_sub(1);
    Ok(StatusFile {
        keys: kids
            .into_iter()
            .enumerate()
            .map(|(i, kid)| KeyMeta {
                kid,
                status: if i == last {
                    KeyStatus::Active
                } else {
                    KeyStatus::Retired
                },
                created_at: now,
                activated_at: None,
                retired_at: if i == last { None } else { Some(now) },
            })
            .collect(),
    })
}

fn new_kid(now: DateTime<Utc>) -> String {
    let rand: u32 = rand::random();
    format!("cg-{}-{rand:08x}", now.format("%Y%m%d%H%M%S"))
}

fn generate_pem() -> Result<Vec<u8>, LtiError> {
    let pair = RsaKeyPair::generate(KEY_BITS).map_err(|e| key_err(e.to_string()))?;
    Ok(pair.to_pem_private_key())
}

impl ToolKeys {
    /// Loads the keys in `dir`. Fails if there is no active key.
    pub fn load(dir: &Path, now: DateTime<Utc>) -> Result<ToolKeys, LtiError> {
        let status = current_status(dir, now)?;
        let mut keys = Vec::new();
        for meta in status.keys {
            if !valid_kid(&meta.kid) {
                return Err(key_err(format!(
                    "invalid kid {:?} in {STATUS_FILE}",
                    meta.kid
                )));
            }
            let path = dir.join(format!("{}.pem", meta.kid));
            let pem = match fs::read(&path) {
                Ok(p) => p,
                Err(e) if meta.status == KeyStatus::Retired => {
                    tracing::warn!(kid = %meta.kid, error = %e, "retired tool key file missing; skipped");
                    continue;
                }
                Err(e) => return Err(io_err(&path, e)),
            };
            let kid = meta.kid.clone();
            keys.push(parse_pem(&kid, &pem, meta)?);
        }
        let tk = ToolKeys {
            keys,
            retired_grace: Duration::days(DEFAULT_RETIRED_GRACE_DAYS),
            loaded_at: now,
        };
        tk.active()?;
        Ok(tk)
    }

    /// Loads `dir`, first creating it with a fresh active key and a
    /// pre-published `next` key when it has no active key, so even the first
    /// rotation signs with a key platforms have already seen.
    pub fn load_or_generate(dir: &Path, now: DateTime<Utc>) -> Result<ToolKeys, LtiError> {
        fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
        let status = current_status(dir, now)?;
        if !status.keys.iter().any(|k| k.status == KeyStatus::Active) {
            Self::generate_into(dir, now)?;
            if !status.keys.iter().any(|k| k.status == KeyStatus::Next) {
                Self::generate_into(dir, now)?;
            }
        }
        Self::load(dir, now)
    }

    /// One in-memory active key (tests, or keys from a secret store).
    pub fn from_pem(kid: &str, pem: &[u8], now: DateTime<Utc>) -> Result<ToolKeys, LtiError> {
        if !valid_kid(kid) {
            return Err(key_err(format!("invalid kid {kid:?}")));
        }
        let meta = KeyMeta {
            kid: kid.to_string(),
            status: KeyStatus::Active,
            created_at: now,
            activated_at: Some(now),
            retired_at: None,
        };
        Ok(ToolKeys {
            keys: vec![parse_pem(kid, pem, meta)?],
            retired_grace: Duration::days(DEFAULT_RETIRED_GRACE_DAYS),
            loaded_at: now,
        })
    }

    /// Generates a 2048-bit RSA key into `dir` (mode 0600). It becomes
    /// `active` if the directory has no active key, else `next`. Returns its kid.
    pub fn generate_into(dir: &Path, now: DateTime<Utc>) -> Result<String, LtiError> {
        fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
        let mut status = current_status(dir, now)?;
        let kid = new_kid(now);
        write_private(&dir.join(format!("{kid}.pem")), &generate_pem()?)?;
        let active = status.keys.iter().any(|k| k.status == KeyStatus::Active);
        status.keys.push(KeyMeta {
            kid: kid.clone(),
            status: if active {
                KeyStatus::Next
            } else {
                KeyStatus::Active
            },
            created_at: now,
            activated_at: if active { None } else { Some(now) },
            retired_at: None,
        });
        write_status(dir, &status)?;
        Ok(kid)
    }

    /// Rotates: the newest `next` key becomes `active` (one is generated first
    /// if there is none), the old `active` becomes `retired`, and a fresh
    /// `next` is generated and published for the following rotation.
    pub fn rotate(dir: &Path, now: DateTime<Utc>) -> Result<Rotation, LtiError> {
        Self::rotate_after_overlap(dir, now, Duration::zero())
    }

    /// [`ToolKeys::rotate`], refused while the `next` key has been published
    /// for less than `overlap` (a platform caching the tool's JWKS could not
    /// yet verify tokens signed with it). `Duration::zero()` skips the check.
    pub fn rotate_after_overlap(
        dir: &Path,
        now: DateTime<Utc>,
        overlap: Duration,
    ) -> Result<Rotation, LtiError> {
        fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
        let mut status = current_status(dir, now)?;
        if overlap > Duration::zero() {
            let newest_next = status
                .keys
                .iter()
                .filter(|k| k.status == KeyStatus::Next)
                .max_by_key(|k| k.created_at);
            match newest_next {
                Some(k) if k.created_at + overlap > now => {
                    return Err(key_err(format!(
                        "the next key {} has been published only since {}; platforms may not have fetched it yet. Rotate after {} (or force it)",
                        k.kid,
                        k.created_at.format("%Y-%m-%d %H:%M UTC"),
                        (k.created_at + overlap).format("%Y-%m-%d %H:%M UTC"),
                    )));
                }
                Some(_) => {}
                None => {
                    return Err(key_err(
                        "there is no published next key to rotate to; force the rotation to create one and sign with it at once",
                    ))
                }
            }
        }
        if !status.keys.iter().any(|k| k.status == KeyStatus::Next) {
            let kid = new_kid(now);
            write_private(&dir.join(format!("{kid}.pem")), &generate_pem()?)?;
            status.keys.push(KeyMeta {
                kid,
                status: KeyStatus::Next,
                created_at: now,
                activated_at: None,
                retired_at: None,
            });
        }
        let next_idx = status
            .keys
            .iter()
            .enumerate()
            .filter(|(_, k)| k.status == KeyStatus::Next)
            .max_by_key(|(_, k)| k.created_at)
            .map(|(i, _)| i)
            .ok_or_else(|| key_err("no next key"))?;
        let mut retired = None;
        for k in status.keys.iter_mut() {
            if k.status == KeyStatus::Active {
                k.status = KeyStatus::Retired;
                k.retired_at = Some(now);
                retired = Some(k.kid.clone());
            }
        }
        let activated = match status.keys.get_mut(next_idx) {
            Some(k) => {
                k.status = KeyStatus::Active;
                k.activated_at = Some(now);
                k.kid.clone()
            }
            None => return Err(key_err("no next key")),
        };
        // Pre-publish the following key.
        let next = {
            let mut kid = new_kid(now);
            if kid == activated {
                kid.push('b');
            }
            write_private(&dir.join(format!("{kid}.pem")), &generate_pem()?)?;
            status.keys.push(KeyMeta {
                kid: kid.clone(),
                status: KeyStatus::Next,
                created_at: now,
                activated_at: None,
                retired_at: None,
            });
            kid
        };
        write_status(dir, &status)?;
        Ok(Rotation {
            activated,
            retired,
            next,
        })
    }

    /// Deletes retired keys retired more than `grace` ago. Returns their kids.
    pub fn prune(dir: &Path, now: DateTime<Utc>, grace: Duration) -> Result<Vec<String>, LtiError> {
        let mut status = current_status(dir, now)?;
        let (gone, keep): (Vec<KeyMeta>, Vec<KeyMeta>) = status.keys.into_iter().partition(|k| {
            k.status == KeyStatus::Retired && k.retired_at.is_some_and(|r| r + grace <= now)
        });
        status.keys = keep;
        write_status(dir, &status)?;
        let mut removed = Vec::new();
        for k in gone {
            let path = dir.join(format!("{}.pem", k.kid));
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err(&path, e)),
            }
            removed.push(k.kid);
        }
        Ok(removed)
    }

    /// Sets how long retired keys stay in the published JWKS.
    pub fn with_retired_grace(mut self, grace: Duration) -> Self {
        self.retired_grace = grace;
        self
    }

    fn active(&self) -> Result<&LoadedKey, LtiError> {
        self.keys
            .iter()
            .filter(|k| k.meta.status == KeyStatus::Active)
            .max_by_key(|k| k.meta.activated_at.unwrap_or(k.meta.created_at))
            .ok_or_else(|| key_err("no active tool key"))
    }

    /// The kid that signs now.
    pub fn active_kid(&self) -> Result<&str, LtiError> {
        self.active().map(|k| k.meta.kid.as_str())
    }

    /// All key records (no private material).
    pub fn metas(&self) -> Vec<KeyMeta> {
        self.keys.iter().map(|k| k.meta.clone()).collect()
    }

    /// The public JWKS document: active, next, and retired keys still within
    /// their grace period as of load time.
    pub fn jwks_json(&self) -> Value {
        self.jwks_json_at(self.loaded_at)
    }

    /// The public JWKS document as of `now`.
    pub fn jwks_json_at(&self, now: DateTime<Utc>) -> Value {
        let keys: Vec<Value> = self
            .keys
            .iter()
            .filter(|k| match k.meta.status {
                KeyStatus::Active | KeyStatus::Next => true,
                KeyStatus::Retired => k
                    .meta
                    .retired_at
                    .is_none_or(|r| r + self.retired_grace > now),
            })
            .map(|k| {
                json!({
                    "kty": "RSA",
                    "alg": "RS256",
                    "use": "sig",
                    "kid": k.meta.kid,
                    "n": k.n,
                    "e": k.e,
                })
            })
            .collect();
        json!({ "keys": keys })
    }

    /// The public keys as a `jsonwebtoken` key set (for verifying our own tokens).
    pub fn public_jwks(&self) -> Result<jsonwebtoken::jwk::JwkSet, LtiError> {
        serde_json::from_value(self.jwks_json()).map_err(|e| key_err(e.to_string()))
    }

    /// Signs claims as a compact JWS with RS256 and the active key's kid.
    pub fn sign(&self, claims: &Value) -> Result<String, LtiError> {
        let k = self.active()?;
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(k.meta.kid.clone());
        header.typ = Some("JWT".into());
        jsonwebtoken::encode(&header, claims, &k.encoding)
            .map_err(|e| key_err(format!("signing failed: {e}")))
    }
}

/// Where a tool's keys live by default relative to the data directory.
pub fn default_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("jwks")
}

/// Summary of a key directory for `coursegate keys list`.
pub fn describe(dir: &Path, now: DateTime<Utc>) -> Result<BTreeMap<String, KeyStatus>, LtiError> {
    Ok(current_status(dir, now)?
        .keys
        .into_iter()
        .map(|k| (k.kid, k.status))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
    }

    #[test]
    fn rotation_waits_for_the_overlap_and_prune_deletes_old_retired_keys() {
        let dir = tempfile::tempdir().unwrap();
        let keys = ToolKeys::load_or_generate(dir.path(), t0()).unwrap();
        let first = keys.active_kid().unwrap().to_string();
        let overlap = Duration::hours(DEFAULT_OVERLAP_HOURS);
        // The next key was published at t0: one hour later is too early.
        let e = ToolKeys::rotate_after_overlap(dir.path(), t0() + Duration::hours(1), overlap)
            .unwrap_err();
        assert_eq!(e.code(), "tool_key_error");
        assert!(
            e.to_string()
                .contains("published only since 2026-01-01 00:00 UTC"),
            "{e}"
        );
        assert_eq!(
            ToolKeys::load(dir.path(), t0())
                .unwrap()
                .active_kid()
                .unwrap(),
            first,
            "a refused rotation changes nothing"
        );
        let t1 = t0() + overlap;
        let rot = ToolKeys::rotate_after_overlap(dir.path(), t1, overlap).unwrap();
        assert_eq!(rot.retired.as_deref(), Some(first.as_str()));
        // The retired key stays (and stays published) through its grace period…
        let grace = Duration::days(DEFAULT_RETIRED_GRACE_DAYS);
        assert!(ToolKeys::prune(dir.path(), t1 + Duration::days(1), grace)
            .unwrap()
            .is_empty());
        assert!(dir.path().join(format!("{first}.pem")).exists());
        // …and is deleted after it.
        let gone = ToolKeys::prune(dir.path(), t1 + grace, grace).unwrap();
        assert_eq!(gone, std::slice::from_ref(&first));
        assert!(!dir.path().join(format!("{first}.pem")).exists());
        let keys = ToolKeys::load(dir.path(), t1 + grace).unwrap();
        assert_eq!(keys.active_kid().unwrap(), rot.activated);
    }

    #[test]
    fn generate_rotate_publish_and_sign() {
        let dir = tempfile::tempdir().unwrap();
        let keys = ToolKeys::load_or_generate(dir.path(), t0()).unwrap();
        let first = keys.active_kid().unwrap().to_string();
        assert_eq!(
            keys.jwks_json()["keys"].as_array().unwrap().len(),
            2,
            "active + next"
        );
        let pre_published = keys
            .metas()
            .into_iter()
            .find(|m| m.status == KeyStatus::Next)
            .unwrap()
            .kid;

        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.path().join(format!("{first}.pem")))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }

        // Reloading keeps the same key.
        let again = ToolKeys::load_or_generate(dir.path(), t0()).unwrap();
        assert_eq!(again.active_kid().unwrap(), first);

        let t1 = t0() + Duration::days(30);
        let rot = ToolKeys::rotate(dir.path(), t1).unwrap();
        assert_eq!(rot.retired.as_deref(), Some(first.as_str()));
        assert_eq!(
            rot.activated, pre_published,
            "the pre-published key signs next"
        );
        let keys = ToolKeys::load(dir.path(), t1).unwrap();
        assert_eq!(keys.active_kid().unwrap(), rot.activated);
        let published: Vec<String> = keys.jwks_json()["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_string())
            .collect();
        assert!(published.contains(&first), "retired key still published");
        assert!(published.contains(&rot.activated));
        assert!(published.contains(&rot.next), "next key pre-published");

        // After the grace period the retired key disappears.
        let later = t1 + Duration::days(DEFAULT_RETIRED_GRACE_DAYS + 1);
        let ks = keys.jwks_json_at(later);
        assert!(!ks.to_string().contains(&first));
        let removed = ToolKeys::prune(
            dir.path(),
            later,
            Duration::days(DEFAULT_RETIRED_GRACE_DAYS),
        )
        .unwrap();
        assert_eq!(removed, vec![first.clone()]);
        assert!(!dir.path().join(format!("{first}.pem")).exists());

        // Signed tokens verify against the published set, with the active kid.
        let token = keys.sign(&json!({"hello": "world"})).unwrap();
        let set = keys.public_jwks().unwrap();
        let payload = crate::token::verify_signature(&token, &set).unwrap();
        assert_eq!(payload["hello"], "world");
        let peek = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(peek.kid.as_deref(), Some(rot.activated.as_str()));
    }

    #[test]
    fn load_empty_dir_fails_with_code() {
        let dir = tempfile::tempdir().unwrap();
        let err = ToolKeys::load(dir.path(), t0()).unwrap_err();
        assert_eq!(err.code(), "tool_key_error");
    }
}
