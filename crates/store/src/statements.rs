//! Every SQL statement the verbs run, in the dialect both backends accept (`$n` parameters
//! work in SQLite too, numbered by first appearance, so each statement lists them in order).
//! A statement that must differ (PostgreSQL's row locks, its string aggregate) is written in
//! that backend's module; everything else lives here once.

// ---- users --------------------------------------------------------------------------------

pub(crate) const INSERT_USER: &str =
    "INSERT INTO users (email, name, password_hash, is_admin, created_at)
    VALUES ($1, $2, $3, $4, $5) RETURNING id";
pub(crate) const USER_COUNT: &str = "SELECT count(*) FROM users";
pub(crate) const USER_BY_EMAIL: &str =
    "SELECT id, email, name, password_hash, is_admin FROM users WHERE email = $1";
pub(crate) const USER_BY_ID: &str =
    "SELECT id, email, name, password_hash, is_admin FROM users WHERE id = $1";
pub(crate) const USERS: &str =
    "SELECT id, email, name, password_hash, is_admin FROM users ORDER BY id";
pub(crate) const SET_PASSWORD: &str = "UPDATE users SET password_hash = $1 WHERE id = $2";
pub(crate) const END_OTHER_SESSIONS: &str =
    "DELETE FROM sessions WHERE user_id = $1 AND token_hash <> $2";
pub(crate) const SET_USER_NAME: &str = "UPDATE users SET name = $1 WHERE id = $2";

// ---- data centers ---------------------------------------------------------------------------

pub(crate) const REMEMBER_EMAIL_HOME: &str =
    "INSERT INTO email_homes (email_key, location, seen_at) VALUES ($1, $2, $3)
    ON CONFLICT (email_key) DO UPDATE SET location = excluded.location, seen_at = excluded.seen_at";
pub(crate) const EMAIL_HOME: &str = "SELECT location FROM email_homes WHERE email_key = $1";

// ---- sign-in tallies (grantd-core's signin.rs) ----------------------------------------------

/// One tally, by its key (`signin::keys`).
pub(crate) const SIGNIN_TALLY: &str = "SELECT failures, since, last_at FROM signin_tallies
    WHERE account_key = $1 AND source = $2";
pub(crate) const UPSERT_SIGNIN_TALLY: &str = "INSERT INTO signin_tallies
    (account_key, source, failures, since, last_at, forget_at) VALUES ($1, $2, $3, $4, $5, $6)
    ON CONFLICT (account_key, source)
    DO UPDATE SET failures = excluded.failures, since = excluded.since,
        last_at = excluded.last_at, forget_at = excluded.forget_at";
/// A tally with nothing left to count has no row.
pub(crate) const DELETE_SIGNIN_TALLY: &str =
    "DELETE FROM signin_tallies WHERE account_key = $1 AND source = $2";
/// An account's back-off from every source and its ceiling; the sources' own tallies across
/// accounts stay (unlocking an account must not reset a sprayer's limit).
pub(crate) const UNLOCK_ACCOUNT: &str = "DELETE FROM signin_tallies WHERE account_key = $1";
pub(crate) const SWEEP_SIGNIN_TALLIES: &str = "DELETE FROM signin_tallies WHERE forget_at <= $1";

// ---- scopes -------------------------------------------------------------------------------

pub(crate) const INSERT_SCOPE: &str =
    "INSERT INTO scopes (key, name, description) VALUES ($1, $2, $3)";
pub(crate) const SCOPES: &str = "SELECT name, description FROM scopes ORDER BY key";
pub(crate) const SCOPE_BY_KEY: &str = "SELECT name, description FROM scopes WHERE key = $1";

// ---- clients ------------------------------------------------------------------------------

pub(crate) const INSERT_CLIENT: &str =
    "INSERT INTO clients (id, kind, name, homepage, redirect_uris,
    secret_hash, owner_id, dialect, created_at, js_domain, introspect_any, id_token_alg)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)";
pub(crate) const CLIENT_BY_ID: &str = "SELECT id, kind, name, homepage, redirect_uris, secret_hash,
    owner_id, dialect, js_domain, created_at, introspect_any, home, id_token_alg FROM clients WHERE id = $1";
pub(crate) const CLIENTS: &str = "SELECT id, kind, name, homepage, redirect_uris, secret_hash,
    owner_id, dialect, js_domain, created_at, introspect_any, home, id_token_alg FROM clients
    WHERE home IS NULL ORDER BY created_at, id";
pub(crate) const CLIENTS_OF: &str = "SELECT id, kind, name, homepage, redirect_uris, secret_hash,
    owner_id, dialect, js_domain, created_at, introspect_any, home, id_token_alg FROM clients WHERE owner_id = $1
    ORDER BY created_at, id";
/// Enables a client at another data center, or changes the secret it has there.
pub(crate) const UPSERT_CLIENT_DATACENTER: &str =
    "INSERT INTO client_datacenters (client_id, location, secret_hash, enabled_at)
    SELECT $1, $2, $3, $4 WHERE EXISTS (SELECT 1 FROM clients WHERE id = $1 AND home IS NULL)
    ON CONFLICT (client_id, location) DO UPDATE SET secret_hash = excluded.secret_hash";
pub(crate) const DELETE_CLIENT_DATACENTER: &str =
    "DELETE FROM client_datacenters WHERE client_id = $1 AND location = $2";
pub(crate) const CLIENT_DATACENTERS: &str = "SELECT location, secret_hash IS NOT NULL AS own_secret
    FROM client_datacenters WHERE client_id = $1 ORDER BY location";
/// What the data center `$1` serves of this one's clients: each with the secret that works
/// there (its own, or the home secret). Self Clients never leave home.
pub(crate) const CLIENTS_ENABLED_FOR: &str = "SELECT c.id, c.kind, c.name, c.homepage,
    c.redirect_uris, coalesce(d.secret_hash, c.secret_hash) AS secret_hash, c.owner_id,
    c.dialect, c.js_domain, c.created_at, c.introspect_any, c.home, c.id_token_alg
    FROM client_datacenters d JOIN clients c ON c.id = d.client_id
    WHERE d.location = $1 AND c.home IS NULL AND c.kind <> 'self' ORDER BY c.id";
pub(crate) const MIRRORED_CLIENT_IDS: &str = "SELECT id FROM clients WHERE home = $1";
/// A client mirrored from its home: never overwrites one registered here. It carries its
/// home's ID-token algorithm, so it signs the same way here.
pub(crate) const UPSERT_MIRRORED_CLIENT: &str = "INSERT INTO clients (id, kind, name, homepage,
    redirect_uris, secret_hash, dialect, js_domain, created_at, home, id_token_alg, introspect_any)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, FALSE)
    ON CONFLICT (id) DO UPDATE SET kind = excluded.kind, name = excluded.name,
    homepage = excluded.homepage, redirect_uris = excluded.redirect_uris,
    secret_hash = excluded.secret_hash, dialect = excluded.dialect,
    js_domain = excluded.js_domain, home = excluded.home, id_token_alg = excluded.id_token_alg
    WHERE clients.home IS NOT NULL";
/// The schema's cascades remove the client's codes, tokens and consents.
pub(crate) const DELETE_CLIENT: &str = "DELETE FROM clients WHERE id = $1";
pub(crate) const SET_CLIENT_SECRET: &str =
    "UPDATE clients SET secret_hash = $1 WHERE id = $2 AND secret_hash IS NOT NULL";
/// `$6` NULL keeps `introspect_any` as it is.
pub(crate) const UPDATE_CLIENT: &str = "UPDATE clients SET name = $1, homepage = $2,
    redirect_uris = $3, js_domain = $4, dialect = $5,
    introspect_any = coalesce($6, introspect_any) WHERE id = $7 AND owner_id = $8";
/// The console's OpenID Connect panel: only the owner's, never a mirrored client.
pub(crate) const SET_CLIENT_ID_TOKEN_ALG: &str = "UPDATE clients SET id_token_alg = $1
    WHERE id = $2 AND owner_id = $3 AND home IS NULL";
pub(crate) const CODES_OF: &str = "SELECT created_at, expires_at, redeemed_at, scopes, description
    FROM grant_codes WHERE client_id = $1 ORDER BY created_at DESC, expires_at DESC LIMIT 100";

// ---- codes and consent --------------------------------------------------------------------

/// The newest number of the codes one user got for one client (`throttle::code_to_check`),
/// from the index: codes are numbered per (client, user), so one user's codes never count
/// against another's.
pub(crate) const NEWEST_CODE_SEQ: &str =
    "SELECT coalesce(max(seq), 0) FROM grant_codes WHERE client_id = $1 AND user_id = $2";
/// When that user's newest code for the client numbered at most $3 was made: the code
/// numbered $3, or an older one where that one was deleted with its grant.
pub(crate) const CODE_MADE_AT: &str = "SELECT created_at FROM grant_codes
    WHERE client_id = $1 AND user_id = $2 AND seq <= $3 ORDER BY seq DESC LIMIT 1";
pub(crate) const INSERT_CODE: &str = "INSERT INTO grant_codes (code_hash, client_id, user_id,
    redirect_uri, scopes, issue_refresh, code_challenge, description, created_at, expires_at, seq,
    nonce, auth_time) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)";
pub(crate) const CONSENT: &str =
    "SELECT scopes, redirect_uris FROM consents WHERE user_id = $1 AND client_id = $2";
pub(crate) const UPSERT_CONSENT: &str = "INSERT INTO consents (user_id, client_id, scopes,
    redirect_uris, granted_at) VALUES ($1, $2, $3, $4, $5)
    ON CONFLICT (user_id, client_id)
    DO UPDATE SET scopes = excluded.scopes, redirect_uris = excluded.redirect_uris";
pub(crate) const CODE_BY_HASH: &str = "SELECT code_hash, client_id, user_id, redirect_uri, scopes,
    issue_refresh, code_challenge, expires_at, redeemed_at, nonce, auth_time FROM grant_codes
    WHERE code_hash = $1";
pub(crate) const MARK_REDEEMED: &str =
    "UPDATE grant_codes SET redeemed_at = $1 WHERE code_hash = $2 AND redeemed_at IS NULL";
/// Marks a code used and records the tokens it issued, so that a replay revokes exactly those.
pub(crate) const MARK_REDEEMED_WITH_TOKENS: &str = "UPDATE grant_codes
    SET redeemed_at = $1, refresh_id = $2,
        access_id = (SELECT id FROM access_tokens WHERE token_hash = $3)
    WHERE code_hash = $4 AND redeemed_at IS NULL";
/// RFC 6749 §4.1.2: a replayed code's refresh token goes, the access tokens minted from it by
/// cascade, and the access token it issued directly.
pub(crate) const REVOKE_CODE_REFRESH_TOKENS: &str = "DELETE FROM refresh_tokens
    WHERE id = (SELECT refresh_id FROM grant_codes WHERE code_hash = $1)";
pub(crate) const REVOKE_CODE_ACCESS_TOKENS: &str = "DELETE FROM access_tokens
    WHERE id = (SELECT access_id FROM grant_codes WHERE code_hash = $1)";

// ---- tokens -------------------------------------------------------------------------------

pub(crate) const INSERT_REFRESH_TOKEN: &str = "INSERT INTO refresh_tokens (token_hash, client_id,
    user_id, scopes, code_hash, created_at, last_used_at, auth_time)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id";
/// The id of a user's refresh token for one client at position $3 counted from the newest (0),
/// from the index (`throttle::first_evicted_refresh_token`).
pub(crate) const REFRESH_TOKEN_AT: &str = "SELECT id FROM refresh_tokens
    WHERE user_id = $1 AND client_id = $2 ORDER BY id DESC LIMIT 1 OFFSET $3";
/// That token and every older one of the user and client; their access tokens go by cascade.
pub(crate) const EVICT_REFRESH_TOKENS: &str =
    "DELETE FROM refresh_tokens WHERE user_id = $1 AND client_id = $2 AND id <= $3";
pub(crate) const REFRESH_GRANT: &str = "SELECT id, client_id, user_id, scopes, auth_time
    FROM refresh_tokens WHERE token_hash = $1";
pub(crate) const REFRESH_TOKEN: &str =
    "SELECT client_id, user_id, scopes FROM refresh_tokens WHERE token_hash = $1";
/// A retired refresh token of a rotating family: the family (its current row) and its client.
pub(crate) const RETIRED_REFRESH_TOKEN: &str = "SELECT t.id, t.client_id
    FROM retired_refresh_tokens r JOIN refresh_tokens t ON t.id = r.refresh_id
    WHERE r.token_hash = $1";
/// A whole family: the refresh token, its access tokens and its retired hashes by cascade.
pub(crate) const REVOKE_REFRESH_FAMILY: &str = "DELETE FROM refresh_tokens WHERE id = $1";
/// Rotation: the family's row takes the new hash, and the old one is remembered as retired.
pub(crate) const ROTATE_REFRESH_TOKEN: &str =
    "UPDATE refresh_tokens SET token_hash = $1 WHERE id = $2";
pub(crate) const RETIRE_REFRESH_TOKEN: &str =
    "INSERT INTO retired_refresh_tokens (token_hash, refresh_id, retired_at) VALUES ($1, $2, $3)";
/// A refresh token's access tokens, from the index alone (`throttle::mint_bookkeeping`).
pub(crate) const ACCESS_TOKENS_OF_REFRESH: &str =
    "SELECT id, created_at, expires_at FROM access_tokens WHERE refresh_id = $1";
/// A client's `client_credentials` access tokens (neither refreshed nor from a code), from the
/// partial index of migration 0008 alone (`throttle::mint_bookkeeping`).
pub(crate) const CLIENT_CREDENTIALS_TOKENS: &str = "SELECT id, created_at, expires_at
    FROM access_tokens WHERE client_id = $1 AND refresh_id IS NULL AND code_hash IS NULL";
pub(crate) const INSERT_ACCESS_TOKEN: &str = "INSERT INTO access_tokens (token_hash, client_id,
    user_id, scopes, refresh_id, code_hash, created_at, expires_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
pub(crate) const DELETE_ACCESS_TOKEN: &str = "DELETE FROM access_tokens WHERE id = $1";
pub(crate) const LIVE_ACCESS_TOKEN: &str = "SELECT client_id, user_id, scopes, expires_at
    FROM access_tokens WHERE token_hash = $1 AND expires_at > $2";
pub(crate) const LIVE_ACCESS_TOKEN_AND_OWNER: &str = "SELECT a.client_id, a.scopes, a.expires_at,
    u.id, u.email, u.name, u.password_hash, u.is_admin
    FROM access_tokens a JOIN users u ON u.id = a.user_id
    WHERE a.token_hash = $1 AND a.expires_at > $2";
/// A refresh token was last used when its newest access token was minted, so a refresh does
/// not write its row (a page at a random place per refresh): `last_used_at` only keeps that
/// time for when its access tokens are gone. Before an access token is deleted by itself, its
/// mint time is folded in (true whether or not the delete then happens).
pub(crate) const KEEP_LAST_USE_OF_ACCESS_TOKEN: &str = "UPDATE refresh_tokens
    SET last_used_at = (SELECT created_at FROM access_tokens WHERE token_hash = $1)
    WHERE id = (SELECT refresh_id FROM access_tokens WHERE token_hash = $1)
      AND last_used_at < (SELECT created_at FROM access_tokens WHERE token_hash = $1)";
pub(crate) const REVOKE_REFRESH_TOKEN: &str = "DELETE FROM refresh_tokens
    WHERE token_hash = $1 AND (CAST($2 AS TEXT) IS NULL OR client_id = $2)";
pub(crate) const REVOKE_ACCESS_TOKEN: &str = "DELETE FROM access_tokens
    WHERE token_hash = $1 AND (CAST($2 AS TEXT) IS NULL OR client_id = $2)";
/// Everything a user granted a client: refresh tokens (their access tokens by cascade), other
/// access tokens, unredeemed codes and the consent itself.
pub(crate) const REVOKE_GRANT: [&str; 4] = [
    "DELETE FROM refresh_tokens WHERE user_id = $1 AND client_id = $2",
    "DELETE FROM access_tokens WHERE user_id = $1 AND client_id = $2",
    "DELETE FROM grant_codes WHERE user_id = $1 AND client_id = $2 AND redeemed_at IS NULL",
    "DELETE FROM consents WHERE user_id = $1 AND client_id = $2",
];

// ---- the device flow (grantd-core's device.rs) -------------------------------------------------

/// A user code is unique while its row exists; an expired row holding it makes way.
pub(crate) const DELETE_EXPIRED_USER_CODE: &str =
    "DELETE FROM device_codes WHERE user_code_hash = $1 AND expires_at <= $2";
pub(crate) const INSERT_DEVICE_CODE: &str = "INSERT INTO device_codes (device_code_hash,
    user_code_hash, client_id, scopes, offline, status, interval_secs, created_at, expires_at)
    VALUES ($1, $2, $3, $4, $5, 'pending', $6, $7, $8)";
pub(crate) const DEVICE_CODE_BY_USER_CODE: &str = "SELECT device_code_hash, client_id, scopes,
    offline, status, user_id, user_location, interval_secs, last_poll_at, expires_at, auth_time
    FROM device_codes WHERE user_code_hash = $1";
pub(crate) const DEVICE_CODE_BY_HASH: &str = "SELECT device_code_hash, client_id, scopes,
    offline, status, user_id, user_location, interval_secs, last_poll_at, expires_at, auth_time
    FROM device_codes WHERE device_code_hash = $1";
/// The verification page decides a pending, live authorization once.
pub(crate) const DECIDE_DEVICE_CODE: &str = "UPDATE device_codes
    SET status = $1, user_id = $2, user_location = $3, auth_time = $4
    WHERE user_code_hash = $5 AND status = 'pending' AND expires_at > $6";
/// A poll's bookkeeping (`device::PollUpdate`); `$3` is the status from then on.
pub(crate) const RECORD_DEVICE_POLL: &str = "UPDATE device_codes
    SET interval_secs = $1, last_poll_at = $2, status = $3 WHERE device_code_hash = $4";
pub(crate) const DEVICE_GUESS_TALLY: &str =
    "SELECT failures, since, last_at FROM device_guesses WHERE source = $1";
pub(crate) const UPSERT_DEVICE_GUESS_TALLY: &str = "INSERT INTO device_guesses
    (source, failures, since, last_at, forget_at) VALUES ($1, $2, $3, $4, $5)
    ON CONFLICT (source) DO UPDATE SET failures = excluded.failures, since = excluded.since,
        last_at = excluded.last_at, forget_at = excluded.forget_at";
pub(crate) const DELETE_DEVICE_GUESS_TALLY: &str = "DELETE FROM device_guesses WHERE source = $1";

// ---- incremental authorization (grantd-core's enhance.rs) ------------------------------------

/// An enhance token for the refresh token `$4`, only if `$5` is the client holding it: it takes
/// the grant's row, client and user from the refresh token itself.
pub(crate) const INSERT_ENHANCE_TOKEN: &str = "INSERT INTO enhance_tokens (token_hash,
    refresh_id, client_id, user_id, created_at, expires_at)
    SELECT $1, id, client_id, user_id, $2, $3 FROM refresh_tokens
    WHERE token_hash = $4 AND client_id = $5";
/// A live enhance token and the scopes its grant holds now.
pub(crate) const LIVE_ENHANCE_TOKEN: &str = "SELECT e.refresh_id, e.client_id, e.user_id,
    r.scopes, e.expires_at
    FROM enhance_tokens e JOIN refresh_tokens r ON r.id = e.refresh_id
    WHERE e.token_hash = $1 AND e.expires_at > $2";
/// Uses a live enhance token up, only for the client and user it was issued for.
pub(crate) const TAKE_ENHANCE_TOKEN: &str = "DELETE FROM enhance_tokens
    WHERE token_hash = $1 AND expires_at > $2 AND client_id = $3 AND user_id = $4
    RETURNING refresh_id";
pub(crate) const REFRESH_SCOPES_BY_ID: &str = "SELECT scopes FROM refresh_tokens WHERE id = $1";
pub(crate) const SET_REFRESH_SCOPES: &str = "UPDATE refresh_tokens SET scopes = $1 WHERE id = $2";

// ---- the sweep ----------------------------------------------------------------------------

/// The sweep walks the access tokens in id order, which is the order they were made in, a
/// chunk at a time: the next `SWEEP_CHUNK` ids past $1 with their expiry. One statement over
/// the whole table held the writer for seconds at millions of tokens, and an index on the
/// expiry cost every refresh 5 %.
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
/// The small tables, each with its cutoff: sessions and pending consents once expired, codes
/// once `CodeGrant::forgettable_before`.
pub(crate) const SWEEP_SESSIONS: &str = "DELETE FROM sessions WHERE expires_at <= $1";
pub(crate) const SWEEP_PENDING_CONSENTS: &str =
    "DELETE FROM pending_consents WHERE expires_at <= $1";
pub(crate) const SWEEP_CODES: &str = "DELETE FROM grant_codes WHERE expires_at <= $1";
pub(crate) const SWEEP_DEVICE_CODES: &str = "DELETE FROM device_codes WHERE expires_at <= $1";
pub(crate) const SWEEP_DEVICE_GUESSES: &str = "DELETE FROM device_guesses WHERE forget_at <= $1";
pub(crate) const SWEEP_ENHANCE_TOKENS: &str = "DELETE FROM enhance_tokens WHERE expires_at <= $1";

// ---- browser sessions and pending consents ------------------------------------------------

pub(crate) const INSERT_SESSION: &str = "INSERT INTO sessions (token_hash, user_id, user_agent,
    created_at, expires_at) VALUES ($1, $2, $3, $4, $5)";
pub(crate) const SESSION_USER: &str = "SELECT u.id, u.email, u.name, u.password_hash, u.is_admin
    FROM sessions s JOIN users u ON u.id = s.user_id
    WHERE s.token_hash = $1 AND s.expires_at > $2";
/// When a live session's user signed in (OIDC `auth_time`): a session is made by a sign-in.
pub(crate) const SESSION_STARTED: &str =
    "SELECT created_at FROM sessions WHERE token_hash = $1 AND expires_at > $2";
pub(crate) const DELETE_SESSION: &str = "DELETE FROM sessions WHERE token_hash = $1";
pub(crate) const DELETE_USER_SESSION: &str =
    "DELETE FROM sessions WHERE token_hash = $1 AND user_id = $2";
pub(crate) const SESSIONS_OF: &str = "SELECT token_hash, created_at, user_agent FROM sessions
    WHERE user_id = $1 AND expires_at > $2 ORDER BY created_at DESC";
pub(crate) const INSERT_PENDING_CONSENT: &str = "INSERT INTO pending_consents (id_hash,
    session_hash, request, expires_at) VALUES ($1, $2, $3, $4)";
pub(crate) const TAKE_PENDING_CONSENT: &str = "DELETE FROM pending_consents
    WHERE id_hash = $1 AND session_hash = $2 RETURNING request, expires_at";

// ---- signing keys (OpenID Connect) -----------------------------------------------------------

/// The keys still published: the active ones first (one per algorithm; `alg DESC` puts RS256,
/// which every relying party supports, before EdDSA), then retired ones until they expire, the
/// latest retired first (a rotation within one second must not reorder them).
pub(crate) const SIGNING_KEYS: &str = "SELECT kid, alg, public_jwk, private_key, created_at,
    retired_at, expires_at FROM signing_keys WHERE expires_at IS NULL OR expires_at > $1
    ORDER BY retired_at IS NOT NULL, retired_at DESC, alg DESC, created_at DESC, kid";
/// A key, only while its algorithm has no active one (the unique index settles a race between
/// nodes).
pub(crate) const INSERT_FIRST_SIGNING_KEY: &str = "INSERT INTO signing_keys
    (kid, alg, public_jwk, private_key, created_at)
    SELECT $1, $2, $3, $4, $5 WHERE NOT EXISTS
    (SELECT 1 FROM signing_keys WHERE retired_at IS NULL AND alg = $2)";
/// Retires the active key of one algorithm.
pub(crate) const RETIRE_SIGNING_KEY: &str = "UPDATE signing_keys SET retired_at = $1,
    expires_at = $2 WHERE retired_at IS NULL AND alg = $3";
pub(crate) const INSERT_SIGNING_KEY: &str = "INSERT INTO signing_keys
    (kid, alg, public_jwk, private_key, created_at) VALUES ($1, $2, $3, $4, $5)";
pub(crate) const SWEEP_SIGNING_KEYS: &str = "DELETE FROM signing_keys WHERE expires_at <= $1";

// ---- connected apps -----------------------------------------------------------------------

/// Every client the user authorized (by consent, or by a Self Client code), with the consent,
/// the tokens' last use, how many refresh tokens are active and their scopes. `{aggregate}`
/// is the backend's string aggregate over `scopes`.
pub(crate) fn connected_apps(aggregate: &str) -> String {
    format!(
        "WITH apps AS (
                 SELECT client_id FROM consents WHERE user_id = $1
                 UNION SELECT client_id FROM refresh_tokens WHERE user_id = $1)
             SELECT c.id, c.name, c.homepage, k.scopes AS consented, k.granted_at,
                    (SELECT max(used.at) FROM (
                         SELECT r.last_used_at AS at FROM refresh_tokens r
                          WHERE r.user_id = $1 AND r.client_id = c.id
                         UNION ALL
                         SELECT a.created_at FROM refresh_tokens r
                           JOIN access_tokens a ON a.refresh_id = r.id
                          WHERE r.user_id = $1 AND r.client_id = c.id) AS used) AS last_used,
                    (SELECT count(*) FROM refresh_tokens r
                      WHERE r.user_id = $1 AND r.client_id = c.id) AS active,
                    (SELECT {aggregate} FROM refresh_tokens r
                      WHERE r.user_id = $1 AND r.client_id = c.id) AS token_scopes
               FROM apps JOIN clients c ON c.id = apps.client_id
               LEFT JOIN consents k ON k.user_id = $1 AND k.client_id = c.id
              ORDER BY c.name, c.id"
    )
}
