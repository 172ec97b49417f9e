//! SQL both backends run for the token endpoint's and the redirect flow's writes: PostgreSQL
//! through the `hot_writes` verbs, SQLite through `sqlite_hot_writes`.

/// The client's newest code's number (`rows::code_to_check`), from the index.
pub(crate) const NEWEST_CODE_SEQ: &str =
    "SELECT coalesce(max(seq), 0) FROM grant_codes WHERE client_id = $1";
/// When the newest code numbered at most $2 was made: the code numbered $2, or an older one
/// where that one was deleted with its grant.
pub(crate) const CODE_MADE_AT: &str = "SELECT created_at FROM grant_codes
    WHERE client_id = $1 AND seq <= $2 ORDER BY seq DESC LIMIT 1";
pub(crate) const INSERT_CODE: &str =
    "INSERT INTO grant_codes (code_hash, client_id, user_id, redirect_uri, scopes,
    issue_refresh, code_challenge, description, created_at, expires_at, seq)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";
pub(crate) const CONSENT: &str =
    "SELECT scopes, redirect_uris FROM consents WHERE user_id = $1 AND client_id = $2";
pub(crate) const UPSERT_CONSENT: &str =
    "INSERT INTO consents (user_id, client_id, scopes, redirect_uris, granted_at)
    VALUES ($1, $2, $3, $4, $5)
    ON CONFLICT (user_id, client_id)
    DO UPDATE SET scopes = excluded.scopes, redirect_uris = excluded.redirect_uris";
pub(crate) const INSERT_REFRESH_TOKEN: &str =
    "INSERT INTO refresh_tokens (token_hash, client_id, user_id, scopes, code_hash,
    created_at, last_used_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id";
pub(crate) const EVICT_REFRESH_TOKENS: &str =
    "DELETE FROM refresh_tokens WHERE user_id = $1 AND client_id = $2 AND id <= (
    SELECT id FROM refresh_tokens WHERE user_id = $1 AND client_id = $2
    ORDER BY id DESC LIMIT 1 OFFSET $3)";
pub(crate) const REFRESH_GRANT: &str =
    "SELECT id, client_id, user_id, scopes FROM refresh_tokens WHERE token_hash = $1";
/// A refresh token's access tokens, from the index alone (`refresh_bookkeeping` decides).
pub(crate) const ACCESS_TOKENS_OF_REFRESH: &str =
    "SELECT id, created_at, expires_at FROM access_tokens WHERE refresh_id = $1";
pub(crate) const DELETE_ACCESS_TOKEN: &str = "DELETE FROM access_tokens WHERE id = $1";
/// A refresh token was last used when its newest access token was minted, so a refresh does
/// not write its row (a page at a random place per refresh): `last_used_at` only keeps that
/// time for when its access tokens are gone. Before an access token is deleted by itself, its
/// mint time is folded in (true whether or not the delete then happens).
pub(crate) const KEEP_LAST_USE_OF_ACCESS_TOKEN: &str = "UPDATE refresh_tokens
    SET last_used_at = (SELECT created_at FROM access_tokens WHERE token_hash = $1)
    WHERE id = (SELECT refresh_id FROM access_tokens WHERE token_hash = $1)
      AND last_used_at < (SELECT created_at FROM access_tokens WHERE token_hash = $1)";
/// The sweep walks the access tokens in id order, which is the order they were made in, a
/// chunk at a time: the next `SWEEP_CHUNK` ids past $1 with their expiry.
pub(crate) const SWEEP_CHUNK: i64 = 500;
pub(crate) const ACCESS_TOKENS_AFTER: &str =
    "SELECT id, expires_at FROM access_tokens WHERE id > $1 ORDER BY id LIMIT $2";
/// Before the sweep deletes the tokens with ids in ($1, $2] expired at $3, their refresh
/// tokens keep their last use.
pub(crate) const KEEP_LAST_USE_OF_EXPIRED: &str = "UPDATE refresh_tokens
    SET last_used_at = (SELECT max(a.created_at) FROM access_tokens a
                         WHERE a.refresh_id = refresh_tokens.id)
    WHERE id IN (SELECT refresh_id FROM access_tokens
                  WHERE id > $1 AND id <= $2 AND expires_at <= $3)
      AND last_used_at < (SELECT max(a.created_at) FROM access_tokens a
                           WHERE a.refresh_id = refresh_tokens.id)";
pub(crate) const DELETE_EXPIRED_ACCESS_TOKENS: &str =
    "DELETE FROM access_tokens WHERE id > $1 AND id <= $2 AND expires_at <= $3";
pub(crate) const REVOKE_REFRESH_TOKEN: &str = "DELETE FROM refresh_tokens
    WHERE token_hash = $1 AND (CAST($2 AS TEXT) IS NULL OR client_id = $2)";
pub(crate) const REVOKE_ACCESS_TOKEN: &str = "DELETE FROM access_tokens
    WHERE token_hash = $1 AND (CAST($2 AS TEXT) IS NULL OR client_id = $2)";
pub(crate) const MARK_REDEEMED: &str =
    "UPDATE grant_codes SET redeemed_at = $1 WHERE code_hash = $2 AND redeemed_at IS NULL";
/// Marks a code used and records the tokens it issued, so that a replay revokes exactly those.
/// (Parameters appear in order: SQLite numbers `$N` by first appearance, not by N.)
pub(crate) const MARK_REDEEMED_WITH_TOKENS: &str = "UPDATE grant_codes
    SET redeemed_at = $1, refresh_id = $2,
        access_id = (SELECT id FROM access_tokens WHERE token_hash = $3)
    WHERE code_hash = $4 AND redeemed_at IS NULL";
/// A replayed code's refresh token; the access tokens minted from it go by cascade.
pub(crate) const REVOKE_CODE_REFRESH_TOKENS: &str = "DELETE FROM refresh_tokens
    WHERE id = (SELECT refresh_id FROM grant_codes WHERE code_hash = $1)";
pub(crate) const REVOKE_CODE_ACCESS_TOKENS: &str = "DELETE FROM access_tokens
    WHERE id = (SELECT access_id FROM grant_codes WHERE code_hash = $1)";
pub(crate) const INSERT_ACCESS_TOKEN: &str = "INSERT INTO access_tokens (token_hash, client_id,
    user_id, scopes, refresh_id, code_hash, created_at, expires_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
/// `CODE_COLUMNS` of one code; SQLite's redemption reads it without a row lock (its single
/// writer serialises), so the text is fixed and needs no formatting per request.
pub(crate) const CODE_BY_HASH: &str = "SELECT code_hash, client_id, user_id, redirect_uri, scopes,
    issue_refresh, code_challenge, expires_at, redeemed_at FROM grant_codes WHERE code_hash = $1";
