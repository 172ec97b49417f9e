-- Zoho's incremental authorization (issue 14; in step with sqlite/0013_enhance_tokens.sql): an
-- enhance token, found by its SHA-256 (never stored in the clear), is bound to one refresh
-- token's grant (its row: rotation changes the hash, not the row) and to that grant's client
-- and user. Single use: the consent decision deletes it. It lives 10 minutes; the sweep deletes
-- expired ones. It goes with its refresh token, client or user.
CREATE TABLE enhance_tokens (
    token_hash      BYTEA PRIMARY KEY,
    refresh_id      BIGINT NOT NULL REFERENCES refresh_tokens(id) ON DELETE CASCADE,
    client_id       TEXT NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    user_id         BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL
);
CREATE INDEX enhance_tokens_by_refresh ON enhance_tokens(refresh_id);
CREATE INDEX enhance_tokens_by_expiry ON enhance_tokens(expires_at);
