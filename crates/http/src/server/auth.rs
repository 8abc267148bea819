//! API keys: `Authorization: Bearer <key>`, compared in constant time.

use std::fmt;

use axum::http::{HeaderMap, header};
use serde::Deserialize;

/// The accepted API keys. Their `Debug` output never shows them.
#[derive(Clone, Default, Deserialize)]
#[serde(from = "Vec<String>")]
pub struct ApiKeys(Vec<Box<[u8]>>);

impl From<Vec<String>> for ApiKeys {
    fn from(keys: Vec<String>) -> Self {
        Self::new(keys)
    }
}

impl fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKeys({} redacted)", self.0.len())
    }
}

impl ApiKeys {
    /// Keys from strings; surrounding whitespace and empty entries are dropped.
    pub fn new<S: AsRef<str>>(keys: impl IntoIterator<Item = S>) -> Self {
        Self(
            keys.into_iter()
                .filter_map(|k| {
                    let k = k.as_ref().trim();
                    (!k.is_empty()).then(|| k.as_bytes().into())
                })
                .collect(),
        )
    }

    /// True if no key is configured (the API is open, on loopback only).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True if `presented` is one of the keys. Every key is compared, each in time
    /// that depends only on the configured key's length, so the timing says
    /// nothing about how much of a guess was right.
    pub fn verify(&self, presented: &str) -> bool {
        let presented = presented.as_bytes();
        let mut any = 0u8;
        for key in &self.0 {
            any |= constant_time_eq(key, presented);
        }
        any == 1
    }
}

/// True if two strings are equal, compared in time that depends only on `expected`.
pub(crate) fn constant_time_eq_str(expected: &str, presented: &str) -> bool {
    constant_time_eq(expected.as_bytes(), presented.as_bytes()) == 1
}

/// 1 if equal, else 0; the loop runs over all of `key` whatever `presented` is.
fn constant_time_eq(key: &[u8], presented: &[u8]) -> u8 {
    let mut diff = u8::from(key.len() != presented.len());
    for (i, &k) in key.iter().enumerate() {
        let p = presented.get(i).copied().unwrap_or(!k);
        diff |= k ^ p;
    }
    // Fold every bit of `diff` into bit 0 without branching.
    let diff = std::hint::black_box(diff);
    let nonzero = (diff | diff.wrapping_neg()) >> 7;
    1 ^ nonzero
}

/// The key of an `Authorization` header value: `Bearer <key>` (scheme in any case).
pub(crate) fn bearer(value: &str) -> Option<&str> {
    let (scheme, key) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| key.trim())
        .filter(|k| !k.is_empty())
}

/// The key a request presented: `Authorization: Bearer <key>`, or the legacy
/// `X-NCP-CLOVASTUDIO-API-KEY` header.
pub(crate) fn presented_key(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer)
        .or_else(|| {
            headers
                .get("x-ncp-clovastudio-api-key")
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|k| !k.is_empty())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_accepts_only_exact_keys() {
        let keys = ApiKeys::new(["nv-abc", " nv-second ", ""]);
        assert_eq!(keys.len(), 2);
        assert!(keys.verify("nv-abc"));
        assert!(keys.verify("nv-second"));
        for wrong in ["", "nv-ab", "nv-abcd", "nv-abd", "NV-ABC", "nv-second "] {
            assert!(!keys.verify(wrong), "{wrong:?}");
        }
        assert!(!ApiKeys::default().verify(""));
    }

    #[test]
    fn constant_time_eq_is_exact() {
        assert_eq!(constant_time_eq(b"abc", b"abc"), 1);
        assert_eq!(constant_time_eq(b"abc", b"abd"), 0);
        assert_eq!(constant_time_eq(b"abc", b"ab"), 0);
        assert_eq!(constant_time_eq(b"ab", b"abc"), 0);
        assert_eq!(constant_time_eq(b"\x80", b"\x00"), 0);
    }

    #[test]
    fn debug_never_shows_keys() {
        let keys = ApiKeys::new(["nv-secret"]);
        assert!(!format!("{keys:?}").contains("secret"));
    }

    #[test]
    fn bearer_parses_the_header() {
        assert_eq!(bearer("Bearer nv-1"), Some("nv-1"));
        assert_eq!(bearer("bearer  nv-1 "), Some("nv-1"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer "), None);
        assert_eq!(bearer("nv-1"), None);
    }
}
