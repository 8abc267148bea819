-- sluice practice store, version 2 (PostgreSQL): access tokens from GET /v1/auth/token,
-- in the database so that every replica on it knows them and a restart keeps them.
-- Only digests are kept: the token is HMAC(key, nonce), which needs the key that
-- asked for it, so this table alone cannot make a working token.
CREATE TABLE access_tokens (
    token_hash     TEXT PRIMARY KEY,
    key_hash       TEXT NOT NULL,
    nonce          TEXT NOT NULL,
    created_at_ms  BIGINT NOT NULL,
    expires_at_ms  BIGINT NOT NULL,
    revoked_at     TEXT
);
CREATE INDEX access_tokens_key ON access_tokens(key_hash, expires_at_ms);
