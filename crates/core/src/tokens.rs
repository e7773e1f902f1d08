//! Secret tokens: 256 bits from the OS CSPRNG, URL-safe base64 with a typed
//! prefix (`cgs_` session, `cgl_` link, …). Only a keyed hash
//! (HMAC-SHA256 with the server secret) is ever stored or looked up, and
//! comparisons of secrets are constant-time.

use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// The server secret used to key token hashes and CSRF tokens.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl Secret {
    /// At least 32 bytes are required.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Option<Self> {
        let b = bytes.into();
        (b.len() >= 32).then_some(Self(b))
    }

    /// Keyed hash of `data` under a domain-separation `purpose`, hex encoded.
    pub fn hash(&self, purpose: &str, data: &str) -> String {
        hex::encode(self.mac(purpose, data))
    }

    fn mac(&self, purpose: &str, data: &str) -> Vec<u8> {
        // new_from_slice accepts keys of any length for HMAC; the fallback is unreachable.
        match HmacSha256::new_from_slice(&self.0) {
            Ok(mut m) => {
                m.update(purpose.as_bytes());
                m.update(&[0]);
                m.update(data.as_bytes());
                m.finalize().into_bytes().to_vec()
            }
            Err(_) => Vec::new(),
        }
    }

    /// The stored form of a token minted by [`mint_ordered`] (or [`mint`]):
    /// its keyed hash, led by the token's creation time when it has one, so
    /// that the rows of a busy table land in the last page of its hash index
    /// instead of a random page each (one page written per commit instead
    /// of one per row). The hash covers the whole token, time included.
    pub fn hash_token(&self, purpose: &str, token: &str) -> String {
        match ordered_time(token) {
            Some(t) => format!("{t}{}", self.hash(purpose, token)),
            None => self.hash(purpose, token),
        }
    }

    /// A CSRF token bound to a session id (or any other anchor).
    pub fn csrf_token(&self, anchor: &str) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(self.mac("csrf", anchor))
    }

    /// Constant-time check of a CSRF token.
    pub fn verify_csrf(&self, anchor: &str, token: &str) -> bool {
        ct_eq(&self.csrf_token(anchor), token)
    }
}

/// Constant-time string equality.
pub fn ct_eq(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

/// A freshly minted token: 256 random bits with a typed prefix.
pub fn mint(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!(
        "{prefix}_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// Hex digits of the millisecond clock that lead a [`mint_ordered`] token.
const TIME_DIGITS: usize = 12;
/// Length of the random part: 256 bits in unpadded base64.
const RANDOM_CHARS: usize = 43;

/// A token like [`mint`]'s (256 random bits, typed prefix) whose random part
/// is preceded by the creation time in milliseconds, 12 hex digits:
/// `{prefix}_{time}{random}`. The time only orders the stored hashes (see
/// [`Secret::hash_token`]); it is no secret and carries no meaning.
pub fn mint_ordered(prefix: &str) -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    mint_ordered_at(prefix, ms)
}

/// [`mint_ordered`] at `ms` milliseconds since the epoch (48 bits kept).
fn mint_ordered_at(prefix: &str, ms: u64) -> String {
    let ms = ms & 0xffff_ffff_ffff;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!(
        "{prefix}_{ms:012x}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// The time digits of a [`mint_ordered`] token, if it is one.
fn ordered_time(token: &str) -> Option<&str> {
    let body = &token[token.find('_')? + 1..];
    let t = body.get(..TIME_DIGITS)?;
    (body.len() == TIME_DIGITS + RANDOM_CHARS
        && t.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
    .then_some(t)
}

/// A numeric code of `digits` digits, uniformly drawn.
pub fn numeric_code(digits: u32) -> String {
    use rand::Rng;
    let max = 10u32.pow(digits);
    let n = rand::rngs::OsRng.gen_range(0..max);
    format!("{n:0width$}", width = digits as usize)
}

/// Shape check before any lookup: prefix and base64url body of 43 chars.
pub fn looks_like(prefix: &str, token: &str) -> bool {
    token
        .strip_prefix(prefix)
        .and_then(|r| r.strip_prefix('_'))
        .map(|body| {
            (body.len() == RANDOM_CHARS || body.len() == TIME_DIGITS + RANDOM_CHARS)
                && body
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_random_and_typed() {
        let a = mint("cgs");
        let b = mint("cgs");
        assert_ne!(a, b);
        assert!(looks_like("cgs", &a));
        assert!(!looks_like("cgl", &a));
        assert!(!looks_like("cgs", "cgs_short"));
    }

    #[test]
    fn ordered_tokens_hash_in_creation_order() {
        let s = Secret::new(vec![7u8; 32]).unwrap();
        let a = mint_ordered_at("cgs", 1_796_216_400_000);
        let b = mint_ordered_at("cgs", 1_796_216_400_001);
        assert!(looks_like("cgs", &a) && looks_like("cgs", &b), "{a} {b}");
        assert!(looks_like("cgs", &mint_ordered("cgs")));
        assert_eq!(a.len(), "cgs_".len() + 55);
        let (ha, hb) = (s.hash_token("session", &a), s.hash_token("session", &b));
        // Time first, then the keyed hash of the whole token.
        assert_eq!(&ha[..12], &a[4..16]);
        assert_eq!(&ha[12..], s.hash("session", &a));
        assert!(ha < hb, "{ha} !< {hb}");
        // Changing the time digits changes the hash, not only its prefix.
        let forged = format!("cgs_{:012x}{}", 0, &a[16..]);
        assert_ne!(&s.hash_token("session", &forged)[12..], &ha[12..]);
        // A token of the earlier form keeps its plain hash.
        let old = mint("cgs");
        assert_eq!(s.hash_token("session", &old), s.hash("session", &old));
        assert!(looks_like("cgs", &old));
        assert!(!looks_like("cgs", &format!("{a}x")));
    }

    #[test]
    fn hashes_are_keyed_and_domain_separated() {
        let s1 = Secret::new(vec![1u8; 32]).unwrap();
        let s2 = Secret::new(vec![2u8; 32]).unwrap();
        assert_ne!(s1.hash("session", "x"), s2.hash("session", "x"));
        assert_ne!(s1.hash("session", "x"), s1.hash("link", "x"));
        assert!(Secret::new(vec![0u8; 31]).is_none());
    }

    #[test]
    fn csrf_round_trip() {
        let s = Secret::new(vec![7u8; 32]).unwrap();
        let t = s.csrf_token("sess-1");
        assert!(s.verify_csrf("sess-1", &t));
        assert!(!s.verify_csrf("sess-2", &t));
        assert!(!s.verify_csrf("sess-1", ""));
    }

    #[test]
    fn codes_have_fixed_width() {
        for _ in 0..50 {
            let c = numeric_code(6);
            assert_eq!(c.len(), 6);
            assert!(c.bytes().all(|b| b.is_ascii_digit()));
        }
    }
}
