//! Access tokens as rows, so that a token one replica issued is known to every
//! replica on the same database and survives a restart. The store keeps only
//! digests and the nonce a token was derived from; what a token looks like and
//! how it is derived belongs to the server that issues it.

use super::{Store, now, on_pool, on_writer, write_tx};
use crate::error::Result;

/// An access token as stored: never the token itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessTokenRecord {
    /// The token's digest (hex SHA-256), its primary key.
    pub token_hash: String,
    /// The digest of the key it was issued for (hex SHA-256; for a user's key,
    /// the same as `api_keys.key_hash`, so revoking the key revokes its tokens).
    pub key_hash: String,
    /// The random value the token was derived from.
    pub nonce: String,
    /// When it was issued, in milliseconds since the Unix epoch.
    pub created_at_ms: i64,
    /// When it expires, in milliseconds since the Unix epoch.
    pub expires_at_ms: i64,
    /// Whether it was revoked.
    pub revoked: bool,
}

type Row = (String, String, String, i64, i64, Option<String>);

fn from_row(
    (token_hash, key_hash, nonce, created_at_ms, expires_at_ms, revoked_at): Row,
) -> AccessTokenRecord {
    AccessTokenRecord {
        token_hash,
        key_hash,
        nonce,
        created_at_ms,
        expires_at_ms,
        revoked: revoked_at.is_some(),
    }
}

const COLUMNS: &str = "token_hash, key_hash, nonce, created_at_ms, expires_at_ms, revoked_at";

impl Store {
    /// Records a token just issued, and forgets tokens that expired before
    /// `forget_before_ms` (kept until then so that their holders hear
    /// "expired" rather than "unknown").
    pub async fn insert_access_token(
        &self,
        record: &AccessTokenRecord,
        forget_before_ms: i64,
    ) -> Result<()> {
        write_tx!(self, tx => {
            sqlx::query("DELETE FROM access_tokens WHERE expires_at_ms < $1")
                .bind(forget_before_ms)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO access_tokens \
                 (token_hash, key_hash, nonce, created_at_ms, expires_at_ms) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&record.token_hash)
            .bind(&record.key_hash)
            .bind(&record.nonce)
            .bind(record.created_at_ms)
            .bind(record.expires_at_ms)
            .execute(&mut *tx)
            .await?;
        });
        Ok(())
    }

    /// The token with this digest, if one was issued and not yet forgotten.
    pub async fn access_token(&self, token_hash: &str) -> Result<Option<AccessTokenRecord>> {
        let sql = format!("SELECT {COLUMNS} FROM access_tokens WHERE token_hash = $1");
        let row: Option<Row> = on_pool!(self, pool => sqlx::query_as(&sql)
            .bind(token_hash)
            .fetch_optional(pool)
            .await?);
        Ok(row.map(from_row))
    }

    /// The newest unrevoked token for a key that is still valid at `now_ms`.
    pub async fn latest_access_token(
        &self,
        key_hash: &str,
        now_ms: i64,
    ) -> Result<Option<AccessTokenRecord>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM access_tokens \
             WHERE key_hash = $1 AND expires_at_ms > $2 AND revoked_at IS NULL \
             ORDER BY expires_at_ms DESC LIMIT 1"
        );
        let row: Option<Row> = on_pool!(self, pool => sqlx::query_as(&sql)
            .bind(key_hash)
            .bind(now_ms)
            .fetch_optional(pool)
            .await?);
        Ok(row.map(from_row))
    }

    /// Revokes every token issued for a key; returns how many.
    pub async fn revoke_access_tokens(&self, key_hash: &str) -> Result<u64> {
        Ok(on_writer!(self, pool => sqlx::query(
            "UPDATE access_tokens SET revoked_at = $2 WHERE key_hash = $1 AND revoked_at IS NULL",
        )
        .bind(key_hash)
        .bind(now())
        .execute(pool)
        .await?
        .rows_affected()))
    }
}
