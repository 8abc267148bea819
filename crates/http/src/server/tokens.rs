//! Access tokens, for clients that first call `GET /v1/auth/token` and then
//! send the token instead of their key, refreshing it when a call answers
//! `40103`.
//!
//! With a practice store (what `sluice serve` always has) tokens are rows in
//! its database, so a token issued by one replica works on every replica on
//! the same database, survives a restart, and is revoked with the user's key
//! (`sluice admin key revoke`). Without a store (a library user's bare
//! [`AppState`](crate::AppState)) the same records live in this process.
//!
//! Rows rather than signed tokens: replicas already share the database, so
//! there is no secret to distribute and rotate, and a row can be revoked.
//! The price is one indexed lookup per request that presents a token.
//!
//! Only digests are stored. A token is `HMAC-SHA256(key, nonce)`: the stored
//! nonce lets `existingToken=true` give the holder of the key the same token
//! again, while the table alone (a backup, a leak) yields no working token.
//! Lookups are by the token's SHA-256, so their timing depends on the digest,
//! not on how much of a guess was right.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use sluice_practice::{AccessTokenRecord, PracticeError, Store};

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
    records: Records,
}

#[derive(Debug)]
enum Records {
    /// No store: this process only.
    Memory(MemoryRecords),
    /// The practice store's `access_tokens` table.
    Store(Store),
}

/// The records of a server without a store, by token digest. Each method
/// takes the lock and lets it go before returning, so no guard is ever held
/// across an `.await`.
#[derive(Debug, Default)]
struct MemoryRecords(Mutex<HashMap<String, AccessTokenRecord>>);

impl MemoryRecords {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, AccessTokenRecord>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn latest(&self, key_hash: &str, now_ms: i64) -> Option<AccessTokenRecord> {
        self.lock()
            .values()
            .filter(|r| r.key_hash == key_hash && r.expires_at_ms > now_ms && !r.revoked)
            .max_by_key(|r| r.expires_at_ms)
            .cloned()
    }

    fn insert(&self, record: AccessTokenRecord, forget_before_ms: i64) {
        let mut map = self.lock();
        map.retain(|_, r| r.expires_at_ms >= forget_before_ms);
        map.insert(record.token_hash.clone(), record);
    }

    fn get(&self, token_hash: &str) -> Option<AccessTokenRecord> {
        self.lock().get(token_hash).cloned()
    }
}

/// Hex SHA-256, the form `api_keys.key_hash` uses too.
fn digest(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// The token `key` gets for `nonce`.
fn derive(key: &str, nonce: &str) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(nonce.as_bytes());
    format!("{TOKEN_PREFIX}{}", hex::encode(mac.finalize().into_bytes()))
}

fn millis(t: SystemTime) -> i64 {
    let ms = t.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis();
    i64::try_from(ms).unwrap_or(i64::MAX)
}

fn time(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

impl Tokens {
    /// Tokens kept in this process.
    pub(crate) fn in_memory(ttl: Duration) -> Self {
        Self {
            ttl,
            records: Records::Memory(MemoryRecords::default()),
        }
    }

    /// Tokens kept in `store`'s database.
    pub(crate) fn in_store(ttl: Duration, store: Store) -> Self {
        Self {
            ttl,
            records: Records::Store(store),
        }
    }

    /// A token for `key`: the unexpired one issued before when `existing`, else
    /// a new one.
    pub(crate) async fn issue(&self, key: &str, existing: bool) -> Result<Issued, PracticeError> {
        let now = millis(SystemTime::now());
        let key_hash = digest(key);
        if existing {
            let latest = match &self.records {
                Records::Memory(map) => map.latest(&key_hash, now),
                Records::Store(store) => store.latest_access_token(&key_hash, now).await?,
            };
            if let Some(record) = latest {
                return Ok(Issued {
                    token: derive(key, &record.nonce),
                    created_at: time(record.created_at_ms),
                    expires_at: time(record.expires_at_ms),
                });
            }
        }
        let mut bytes = [0u8; 24];
        getrandom::fill(&mut bytes).expect("the OS random source is available");
        let nonce = hex::encode(bytes);
        let token = derive(key, &nonce);
        let ttl = i64::try_from(self.ttl.as_millis()).unwrap_or(i64::MAX);
        let record = AccessTokenRecord {
            token_hash: digest(&token),
            key_hash,
            nonce,
            created_at_ms: now,
            expires_at_ms: now.saturating_add(ttl),
            revoked: false,
        };
        // An expired token is remembered for another lifetime, so its holder
        // hears `40103` and refreshes; after that it is forgotten.
        let forget_before = now.saturating_sub(ttl);
        match &self.records {
            Records::Memory(map) => map.insert(record.clone(), forget_before),
            Records::Store(store) => store.insert_access_token(&record, forget_before).await?,
        }
        Ok(Issued {
            token,
            created_at: time(record.created_at_ms),
            expires_at: time(record.expires_at_ms),
        })
    }

    /// Whether `token` was issued (by any replica on the same database), is
    /// not revoked and has not expired.
    pub(crate) async fn check(&self, token: &str) -> Result<TokenState, PracticeError> {
        let token_hash = digest(token);
        let record = match &self.records {
            Records::Memory(map) => map.get(&token_hash),
            Records::Store(store) => store.access_token(&token_hash).await?,
        };
        Ok(match record {
            Some(r) if r.revoked => TokenState::Unknown,
            Some(r) if r.expires_at_ms > millis(SystemTime::now()) => TokenState::Valid,
            Some(_) => TokenState::Expired,
            None => TokenState::Unknown,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn expire_and_reuse(tokens: Tokens) {
        let a = tokens.issue("key-1", true).await.unwrap();
        assert!(a.token.starts_with(TOKEN_PREFIX));
        assert_eq!(tokens.issue("key-1", true).await.unwrap().token, a.token);
        assert_ne!(tokens.issue("key-1", false).await.unwrap().token, a.token);
        assert_ne!(tokens.issue("key-2", true).await.unwrap().token, a.token);
        assert_eq!(tokens.check(&a.token).await.unwrap(), TokenState::Valid);
        assert_eq!(
            tokens.check("sluice-at-nope").await.unwrap(),
            TokenState::Unknown
        );
        tokio::time::sleep(Duration::from_millis(80)).await;
        assert_eq!(tokens.check(&a.token).await.unwrap(), TokenState::Expired);
    }

    #[tokio::test]
    async fn tokens_expire_and_existing_ones_are_reused_in_memory() {
        expire_and_reuse(Tokens::in_memory(Duration::from_millis(50))).await;
    }

    #[tokio::test]
    async fn tokens_expire_and_existing_ones_are_reused_in_the_store() {
        let store = Store::in_memory().await.unwrap();
        expire_and_reuse(Tokens::in_store(Duration::from_millis(50), store)).await;
    }

    #[tokio::test]
    async fn a_token_from_one_server_works_on_another_on_the_same_database() {
        let dir = std::env::temp_dir().join(format!("sluice-tokens-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("shared.db");
        let _ = std::fs::remove_file(&path);
        let ttl = Duration::from_secs(60);
        let one = Tokens::in_store(ttl, Store::open_file(&path).await.unwrap());
        let two = Tokens::in_store(ttl, Store::open_file(&path).await.unwrap());
        let issued = one.issue("key-1", false).await.unwrap();
        assert_eq!(two.check(&issued.token).await.unwrap(), TokenState::Valid);
        assert_eq!(two.issue("key-1", true).await.unwrap().token, issued.token);
        // The table alone is not enough: the same nonce under another key is
        // another token.
        assert_ne!(two.issue("key-2", true).await.unwrap().token, issued.token);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn revoking_a_user_key_revokes_its_tokens() {
        let store = Store::in_memory().await.unwrap();
        let (_, key) = store.create_user("ana").await.unwrap();
        let tokens = Tokens::in_store(Duration::from_secs(60), store.clone());
        let issued = tokens.issue(&key.key, false).await.unwrap();
        assert_eq!(
            tokens.check(&issued.token).await.unwrap(),
            TokenState::Valid
        );
        store.revoke_key(key.id).await.unwrap();
        assert_eq!(
            tokens.check(&issued.token).await.unwrap(),
            TokenState::Unknown
        );
        assert_ne!(
            tokens.issue(&key.key, true).await.unwrap().token,
            issued.token
        );
    }
}
