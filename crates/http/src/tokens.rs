//! Access tokens, for clients that first call `GET /v1/auth/token` and then
//! send the token instead of their key, refreshing it when a call answers
//! `40103`. Tokens live in memory (a restart invalidates them, as an expiry
//! would) and are kept as SHA-256 digests, looked up by digest: the lookup's
//! timing depends on the digest, not on how much of a guess was right.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};

/// Every token starts with this, so it is never mistaken for a key.
pub(crate) const TOKEN_PREFIX: &str = "sluice-at-";

/// A token just issued (or an unexpired one reused).
#[derive(Debug, Clone)]
pub(crate) struct Issued {
    pub token: String,
    pub created_at: SystemTime,
    pub expires_at: SystemTime,
}

/// What a presented token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenState {
    Valid,
    Expired,
    Unknown,
}

/// The issued tokens.
#[derive(Debug)]
pub(crate) struct Tokens {
    ttl: Duration,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Token digest → expiry.
    by_digest: HashMap<[u8; 32], SystemTime>,
    /// Key digest → the last token issued for it (for `existingToken=true`).
    by_key: HashMap<[u8; 32], Issued>,
}

fn digest(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

impl Tokens {
    pub(crate) fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            inner: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A token for `key`: the unexpired one issued before when `existing`, else
    /// a new one.
    pub(crate) fn issue(&self, key: &str, existing: bool) -> Issued {
        let now = SystemTime::now();
        let key_digest = digest(key);
        let mut inner = self.lock();
        // Forget what has expired, so the maps stay as small as the live set.
        inner.by_digest.retain(|_, expires| *expires > now);
        inner.by_key.retain(|_, issued| issued.expires_at > now);
        if existing {
            if let Some(issued) = inner.by_key.get(&key_digest) {
                return issued.clone();
            }
        }
        let mut bytes = [0u8; 24];
        getrandom::fill(&mut bytes).expect("the OS random source is available");
        let issued = Issued {
            token: format!("{TOKEN_PREFIX}{}", hex::encode(bytes)),
            created_at: now,
            expires_at: now + self.ttl,
        };
        inner
            .by_digest
            .insert(digest(&issued.token), issued.expires_at);
        inner.by_key.insert(key_digest, issued.clone());
        issued
    }

    /// Whether `token` was issued here and has not expired. Expired tokens are
    /// remembered until the next issue, so a client hears `40103` and refreshes.
    pub(crate) fn check(&self, token: &str) -> TokenState {
        match self.lock().by_digest.get(&digest(token)) {
            Some(expires) if *expires > SystemTime::now() => TokenState::Valid,
            Some(_) => TokenState::Expired,
            None => TokenState::Unknown,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_expire_and_existing_ones_are_reused() {
        let tokens = Tokens::new(Duration::from_millis(50));
        let a = tokens.issue("key-1", true);
        assert!(a.token.starts_with(TOKEN_PREFIX));
        assert_eq!(tokens.issue("key-1", true).token, a.token);
        assert_ne!(tokens.issue("key-1", false).token, a.token);
        assert_eq!(tokens.check(&a.token), TokenState::Valid);
        assert_eq!(tokens.check("sluice-at-nope"), TokenState::Unknown);
        std::thread::sleep(Duration::from_millis(80));
        assert_eq!(tokens.check(&a.token), TokenState::Expired);
    }
}
