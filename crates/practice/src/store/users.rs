//! Users and their API keys. A key is shown once, when it is made; the store
//! keeps only its SHA-256 and a short prefix to tell keys apart in listings.

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{Store, now, on_pool, on_writer, write_tx};
use crate::error::{PracticeError, Result};

/// Every key starts with this, so a leaked one is easy to recognise (and scan for).
pub const KEY_PREFIX: &str = "sk-sluice-";

/// A user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    /// Id, from 1.
    pub id: i64,
    /// Unique name.
    pub name: String,
    /// When the user was made (RFC 3339).
    pub created_at: String,
}

impl User {
    fn from_row((id, name, created_at): (i64, String, String)) -> Self {
        Self {
            id,
            name,
            created_at,
        }
    }
}

/// A key just made: the only time its text is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewKey {
    /// The key's id.
    pub id: i64,
    /// The key itself. Give it to the user; it cannot be shown again.
    pub key: String,
}

/// What is kept of a key: never the key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiKeyInfo {
    /// Id.
    pub id: i64,
    /// Its owner.
    pub user_id: i64,
    /// The key's first characters, to tell keys apart.
    pub prefix: String,
    /// An optional label.
    pub label: Option<String>,
    /// When it was made.
    pub created_at: String,
    /// When it was revoked, if it was.
    pub revoked_at: Option<String>,
}

/// A new random key: 192 bits from the OS, hex.
fn generate_key() -> String {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).expect("the OS random source is available");
    format!("{KEY_PREFIX}{}", hex::encode(bytes))
}

/// The stored form of a key. A fast hash is right here: keys are random and
/// long, so there is nothing to brute-force that a slow hash would protect.
pub(crate) fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// True if `a == b`, in time that depends only on the lengths.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

fn check_name(name: &str) -> Result<&str> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(PracticeError::BadRequest(
            "a user name is 1 to 100 characters, with no control characters".into(),
        ));
    }
    Ok(name)
}

impl Store {
    /// Makes a user and their first API key.
    pub async fn create_user(&self, name: &str) -> Result<(User, NewKey)> {
        let name = check_name(name)?;
        let created_at = now();
        let key = generate_key();
        let hash = hash_key(&key);
        let prefix = key[..KEY_PREFIX.len() + 6].to_string();
        let (user, key_id) = write_tx!(self, tx => {
            let taken: Option<i64> = sqlx::query_scalar("SELECT id FROM users WHERE name = $1")
                .bind(name)
                .fetch_optional(&mut *tx)
                .await?;
            if taken.is_some() {
                return Err(PracticeError::Conflict(format!("a user named {name:?} exists")));
            }
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO users (name, created_at) VALUES ($1, $2) RETURNING id",
            )
            .bind(name)
            .bind(&created_at)
            .fetch_one(&mut *tx)
            .await?;
            let user = User { id, name: name.to_string(), created_at: created_at.clone() };
            let key_id: i64 = sqlx::query_scalar(
                "INSERT INTO api_keys (user_id, key_hash, prefix, label, created_at) \
                 VALUES ($1, $2, $3, $4, $5) RETURNING id",
            )
            .bind(user.id)
            .bind(&hash)
            .bind(&prefix)
            .bind("first key")
            .bind(&created_at)
            .fetch_one(&mut *tx)
            .await?;
            (user, key_id)
        });
        Ok((user, NewKey { id: key_id, key }))
    }

    /// Another key for a user.
    pub async fn create_key(&self, user_id: i64, label: Option<&str>) -> Result<NewKey> {
        let key = generate_key();
        let id: Option<i64> = on_writer!(self, pool => sqlx::query_scalar(
            "INSERT INTO api_keys (user_id, key_hash, prefix, label, created_at) \
             SELECT id, $2, $3, $4, $5 FROM users WHERE id = $1 RETURNING id",
        )
        .bind(user_id)
        .bind(hash_key(&key))
        .bind(&key[..KEY_PREFIX.len() + 6])
        .bind(label)
        .bind(now())
        .fetch_optional(pool)
        .await?);
        let id = id.ok_or(PracticeError::NotFound("user"))?;
        Ok(NewKey { id, key })
    }

    /// Revokes a key and the access tokens issued for it; both stop working
    /// at once. Revoking twice is fine.
    pub async fn revoke_key(&self, key_id: i64) -> Result<()> {
        let revoked_at = now();
        let done = write_tx!(self, tx => {
            let done = sqlx::query(
                "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1",
            )
            .bind(key_id)
            .bind(&revoked_at)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            sqlx::query(
                "UPDATE access_tokens SET revoked_at = $2 WHERE revoked_at IS NULL \
                 AND key_hash = (SELECT key_hash FROM api_keys WHERE id = $1)",
            )
            .bind(key_id)
            .bind(&revoked_at)
            .execute(&mut *tx)
            .await?;
            done
        });
        if done == 0 {
            return Err(PracticeError::NotFound("API key"));
        }
        Ok(())
    }

    /// A user's keys, newest first.
    pub async fn list_keys(&self, user_id: i64) -> Result<Vec<ApiKeyInfo>> {
        type Row = (i64, i64, String, Option<String>, String, Option<String>);
        let rows: Vec<Row> = on_pool!(self, pool => sqlx::query_as(
            "SELECT id, user_id, prefix, label, created_at, revoked_at FROM api_keys \
             WHERE user_id = $1 ORDER BY id DESC",
        )
        .bind(user_id)
        .fetch_all(pool)
        .await?);
        Ok(rows
            .into_iter()
            .map(
                |(id, user_id, prefix, label, created_at, revoked_at)| ApiKeyInfo {
                    id,
                    user_id,
                    prefix,
                    label,
                    created_at,
                    revoked_at,
                },
            )
            .collect())
    }

    /// The user a key belongs to, if the key exists and is not revoked.
    ///
    /// The lookup is by the key's SHA-256, so the database never sees the key
    /// and its timing depends on the hash, not on how much of a guess is right;
    /// the stored hash is then compared again in constant time.
    pub async fn authenticate(&self, key: &str) -> Result<Option<User>> {
        if !key.starts_with(KEY_PREFIX) {
            return Ok(None);
        }
        let hash = hash_key(key);
        let row: Option<(i64, String, String, String)> = on_pool!(self, pool => sqlx::query_as(
            "SELECT u.id, u.name, u.created_at, k.key_hash FROM api_keys k \
             JOIN users u ON u.id = k.user_id \
             WHERE k.key_hash = $1 AND k.revoked_at IS NULL",
        )
        .bind(&hash)
        .fetch_optional(pool)
        .await?);
        Ok(row.and_then(|(id, name, created_at, stored)| {
            constant_time_eq(stored.as_bytes(), hash.as_bytes()).then_some(User {
                id,
                name,
                created_at,
            })
        }))
    }

    /// A user by name.
    pub async fn user_by_name(&self, name: &str) -> Result<User> {
        let row: Option<(i64, String, String)> = on_pool!(self, pool => sqlx::query_as(
            "SELECT id, name, created_at FROM users WHERE name = $1",
        )
        .bind(name.trim())
        .fetch_optional(pool)
        .await?);
        row.map(User::from_row)
            .ok_or(PracticeError::NotFound("user"))
    }

    /// A user by id.
    pub async fn user(&self, id: i64) -> Result<User> {
        let row: Option<(i64, String, String)> = on_pool!(self, pool => sqlx::query_as(
            "SELECT id, name, created_at FROM users WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(pool)
        .await?);
        row.map(User::from_row)
            .ok_or(PracticeError::NotFound("user"))
    }

    /// Every user, by id.
    pub async fn list_users(&self) -> Result<Vec<User>> {
        let rows: Vec<(i64, String, String)> = on_pool!(self, pool => sqlx::query_as(
            "SELECT id, name, created_at FROM users ORDER BY id",
        )
        .fetch_all(pool)
        .await?);
        Ok(rows.into_iter().map(User::from_row).collect())
    }

    /// A user named by name or by numeric id (for the admin CLI).
    pub async fn find_user(&self, name_or_id: &str) -> Result<User> {
        match self.user_by_name(name_or_id).await {
            Err(PracticeError::NotFound(_)) => match name_or_id.trim().parse::<i64>() {
                Ok(id) => self.user(id).await,
                Err(_) => Err(PracticeError::NotFound("user")),
            },
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_long_random_and_prefixed() {
        let a = generate_key();
        let b = generate_key();
        assert_ne!(a, b);
        assert!(a.starts_with(KEY_PREFIX));
        assert_eq!(a.len(), KEY_PREFIX.len() + 48);
        assert_eq!(hash_key(&a).len(), 64);
        assert_ne!(hash_key(&a), hash_key(&b));
    }

    #[test]
    fn constant_time_eq_is_exact() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
