//! The embedded SQLite store: WAL with `synchronous=FULL`, so an acknowledged token survives a
//! crash. One writer connection takes every write transaction with `BEGIN IMMEDIATE` (SQLite
//! allows one writer anyway; queueing in the pool avoids busy retries), and a pool of
//! read-only connections serves lookups without waiting for the writer.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Sqlite, Transaction};

use grantd_core::grant::{AccessGrant, CodeGrant, RefreshGrant, Rejection};
use grantd_core::secret::SecretHash;
use grantd_core::{
    Client, ClientId, ClientType, Dialect, Limits, OAuthError, RedirectUri, Scopes, Timestamp,
};

use crate::{
    CodeIssue, NewAccess, NewClient, NewCode, NewTokens, Redemption, RefreshOutcome, StoreError,
    TokenInfo, User,
};

pub static MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");

/// Where `grantd serve` keeps its data when no `--database` is given.
pub const DEFAULT_DATABASE: &str = "sqlite://grantd-data/grantd.db";

#[derive(Clone, Debug)]
pub struct SqliteStore {
    pub(crate) writer: SqlitePool,
    pub(crate) reader: SqlitePool,
}

pub(crate) type Tx = Transaction<'static, Sqlite>;

pub(crate) type ClientRow = (
    String,
    String,
    String,
    Option<String>,
    String,
    Option<Vec<u8>>,
    Option<i64>,
    String,
    Option<String>,
    i64,
);
pub(crate) const CLIENT_COLUMNS: &str =
    "id, kind, name, homepage, redirect_uris, secret_hash, owner_id, dialect, js_domain, created_at";

pub(crate) type UserRow = (i64, String, String, String, bool, i64, i64);
pub(crate) const USER_COLUMNS: &str =
    "id, email, name, password_hash, is_admin, failed_logins, locked_until";

type CodeRow = (
    Vec<u8>,
    String,
    i64,
    Option<String>,
    String,
    bool,
    Option<String>,
    i64,
    Option<i64>,
);
const CODE_COLUMNS: &str = "code_hash, client_id, user_id, redirect_uri, scopes, issue_refresh, \
     code_challenge, expires_at, redeemed_at";

impl SqliteStore {
    /// Opens (creating if needed) the database at `url` (`sqlite://path` or a plain path),
    /// applies migrations, and checks that durability settings took effect.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .unwrap_or(url);
        if path.is_empty() || path.starts_with(":memory:") {
            // Each connection would get its own empty database.
            return Err(StoreError::Setup(
                "an in-memory SQLite database cannot be shared; give a file path".into(),
            ));
        }
        if let Some(dir) = Path::new(path)
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
        {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Setup(format!("cannot create {}: {e}", dir.display())))?;
        }
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{path}"))
            .map_err(|e| StoreError::Setup(format!("bad database URL: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.clone())
            .await?;
        MIGRATIONS
            .run(&writer)
            .await
            .map_err(|e| StoreError::Setup(format!("migrations failed: {e}")))?;
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.read_only(true))
            .await?;
        let store = Self { writer, reader };
        store.check_durability().await?;
        Ok(store)
    }

    async fn check_durability(&self) -> Result<(), StoreError> {
        let (mode,): (String,) = sqlx::query_as("PRAGMA journal_mode")
            .fetch_one(&self.writer)
            .await?;
        let (sync,): (i64,) = sqlx::query_as("PRAGMA synchronous")
            .fetch_one(&self.writer)
            .await?;
        // synchronous: 2 = FULL, 3 = EXTRA; anything less can lose acknowledged tokens.
        if !mode.eq_ignore_ascii_case("wal") || sync < 2 {
            return Err(StoreError::Setup(format!(
                "SQLite is not durable (journal_mode={mode}, synchronous={sync}); \
                 grantd needs WAL with synchronous=FULL"
            )));
        }
        Ok(())
    }

    pub(crate) async fn write(&self) -> Result<Tx, StoreError> {
        Ok(self.writer.begin_with("BEGIN IMMEDIATE").await?)
    }

    // ---- users ------------------------------------------------------------------------

    pub async fn add_user(
        &self,
        email: &str,
        name: &str,
        password_hash: &str,
        is_admin: bool,
        now: Timestamp,
    ) -> Result<i64, StoreError> {
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO users (email, name, password_hash, is_admin, created_at)
             VALUES (?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(email)
        .bind(name)
        .bind(password_hash)
        .bind(is_admin)
        .bind(now.0)
        .fetch_one(&self.writer)
        .await
        .map_err(|e| match StoreError::from(e) {
            StoreError::Conflict(_) => StoreError::Conflict("a user with this email exists"),
            other => other,
        })?;
        Ok(id)
    }

    pub async fn user_count(&self) -> Result<i64, StoreError> {
        let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM users")
            .fetch_one(&self.reader)
            .await?;
        Ok(n)
    }

    pub async fn user_by_email(&self, email: &str) -> Result<Option<User>, StoreError> {
        let row: Option<UserRow> =
            sqlx::query_as(&format!("SELECT {USER_COLUMNS} FROM users WHERE email = ?"))
                .bind(email)
                .fetch_optional(&self.reader)
                .await?;
        Ok(row.map(user_from_row))
    }

    pub async fn user(&self, id: i64) -> Result<Option<User>, StoreError> {
        let row: Option<UserRow> =
            sqlx::query_as(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?"))
                .bind(id)
                .fetch_optional(&self.reader)
                .await?;
        Ok(row.map(user_from_row))
    }

    /// Counts a failed login; after `failed_logins_before_lockout` the account locks for
    /// `lockout_secs` (RFC 6819 §5.1.4.2.3).
    pub async fn note_login_failure(
        &self,
        user_id: i64,
        now: Timestamp,
        limits: &Limits,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE users SET failed_logins = failed_logins + 1,
                    locked_until = CASE WHEN failed_logins + 1 >= ? THEN ? ELSE locked_until END
              WHERE id = ?",
        )
        .bind(limits.failed_logins_before_lockout)
        .bind(now.plus(limits.lockout_secs).0)
        .bind(user_id)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    pub async fn clear_login_failures(&self, user_id: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE users SET failed_logins = 0, locked_until = 0 WHERE id = ? AND failed_logins > 0")
            .bind(user_id)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    // ---- scopes -----------------------------------------------------------------------

    pub async fn add_scope(&self, name: &str, description: &str) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO scopes (key, name, description) VALUES (?, ?, ?)")
            .bind(name.to_ascii_lowercase())
            .bind(name)
            .bind(description)
            .execute(&self.writer)
            .await
            .map_err(|e| match StoreError::from(e) {
                StoreError::Conflict(_) => StoreError::Conflict("this scope is registered"),
                other => other,
            })?;
        Ok(())
    }

    /// Every registered scope as (name, description), by name.
    pub async fn scopes(&self) -> Result<Vec<(String, String)>, StoreError> {
        Ok(
            sqlx::query_as("SELECT name, description FROM scopes ORDER BY key")
                .fetch_all(&self.reader)
                .await?,
        )
    }

    /// The registry's spelling and description of each scope; `Err` names an unknown one.
    pub async fn registered(
        &self,
        scopes: &Scopes,
    ) -> Result<Result<Vec<(String, String)>, String>, StoreError> {
        let mut found = Vec::new();
        for scope in scopes.iter() {
            let row: Option<(String, String)> =
                sqlx::query_as("SELECT name, description FROM scopes WHERE key = ?")
                    .bind(scope.key())
                    .fetch_optional(&self.reader)
                    .await?;
            match row {
                Some(row) => found.push(row),
                None => return Ok(Err(scope.as_str().to_owned())),
            }
        }
        Ok(Ok(found))
    }

    // ---- clients ----------------------------------------------------------------------

    pub async fn add_client(&self, client: &NewClient, now: Timestamp) -> Result<(), StoreError> {
        let uris: Vec<&str> = client
            .redirect_uris
            .iter()
            .map(RedirectUri::as_str)
            .collect();
        sqlx::query(
            "INSERT INTO clients (id, kind, name, homepage, redirect_uris, secret_hash, owner_id,
                                  dialect, created_at, js_domain)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(client.id.as_str())
        .bind(client.kind.as_str())
        .bind(&client.name)
        .bind(&client.homepage)
        .bind(serde_json::to_string(&uris).unwrap_or_else(|_| "[]".into()))
        .bind(client.secret_hash.as_ref().map(SecretHash::as_bytes))
        .bind(client.owner_id)
        .bind(client.dialect.as_str())
        .bind(now.0)
        .bind(&client.js_domain)
        .execute(&self.writer)
        .await
        .map_err(|e| match StoreError::from(e) {
            StoreError::Conflict(_) => StoreError::Conflict("this user already has a Self Client"),
            other => other,
        })?;
        Ok(())
    }

    pub async fn client(&self, id: &str) -> Result<Option<Client>, StoreError> {
        let row: Option<ClientRow> = sqlx::query_as(&format!(
            "SELECT {CLIENT_COLUMNS} FROM clients WHERE id = ?"
        ))
        .bind(id)
        .fetch_optional(&self.reader)
        .await?;
        Ok(row.and_then(client_from_row))
    }

    pub async fn clients(&self) -> Result<Vec<Client>, StoreError> {
        let rows: Vec<ClientRow> = sqlx::query_as(&format!(
            "SELECT {CLIENT_COLUMNS} FROM clients ORDER BY created_at, id"
        ))
        .fetch_all(&self.reader)
        .await?;
        Ok(rows.into_iter().filter_map(client_from_row).collect())
    }

    /// Deletes the client; the schema's cascades remove its codes, tokens and consents.
    pub async fn remove_client(&self, id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM clients WHERE id = ?")
            .bind(id)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Replaces the secret; the old one stops working with this commit.
    pub async fn set_client_secret(&self, id: &str, hash: &SecretHash) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE clients SET secret_hash = ? WHERE id = ? AND secret_hash IS NOT NULL",
        )
        .bind(hash.as_bytes())
        .bind(id)
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    // ---- codes ------------------------------------------------------------------------

    /// Stores a code unless the client has made `codes_per_window` codes in the window; records
    /// the consent it carries in the same transaction.
    pub async fn add_code(
        &self,
        code: &NewCode,
        now: Timestamp,
        limits: &Limits,
    ) -> Result<CodeIssue, StoreError> {
        let grant = &code.grant;
        let mut tx = self.write().await?;
        let window_start = now.minus(limits.code_window_secs);
        let (count, oldest): (i64, Option<i64>) = sqlx::query_as(
            "SELECT count(*), min(created_at) FROM grant_codes
              WHERE client_id = ? AND created_at > ?",
        )
        .bind(grant.client_id.as_str())
        .bind(window_start.0)
        .fetch_one(&mut *tx)
        .await?;
        if count >= limits.codes_per_window {
            let oldest = oldest.unwrap_or(now.0);
            return Ok(CodeIssue::Throttled {
                retry_after: (oldest + limits.code_window_secs - now.0).max(1),
            });
        }
        sqlx::query(
            "INSERT INTO grant_codes (code_hash, client_id, user_id, redirect_uri, scopes,
                    issue_refresh, code_challenge, description, created_at, expires_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(grant.code_hash.as_bytes())
        .bind(grant.client_id.as_str())
        .bind(grant.user_id)
        .bind(&grant.redirect_uri)
        .bind(grant.scopes.to_stored())
        .bind(grant.issue_refresh_token)
        .bind(&grant.code_challenge)
        .bind(&code.description)
        .bind(now.0)
        .bind(grant.expires_at.0)
        .execute(&mut *tx)
        .await?;
        if let Some(scopes) = &code.record_consent {
            let prior: Option<(String,)> =
                sqlx::query_as("SELECT scopes FROM consents WHERE user_id = ? AND client_id = ?")
                    .bind(grant.user_id)
                    .bind(grant.client_id.as_str())
                    .fetch_optional(&mut *tx)
                    .await?;
            let merged = match prior {
                Some((stored,)) => Scopes::from_stored(&stored).union(scopes),
                None => scopes.clone(),
            };
            sqlx::query(
                "INSERT INTO consents (user_id, client_id, scopes, granted_at) VALUES (?, ?, ?, ?)
                 ON CONFLICT (user_id, client_id) DO UPDATE SET scopes = excluded.scopes",
            )
            .bind(grant.user_id)
            .bind(grant.client_id.as_str())
            .bind(merged.to_stored())
            .bind(now.0)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(CodeIssue::Issued)
    }

    /// The scopes the user has consented to for this client, if any.
    pub async fn consent(
        &self,
        user_id: i64,
        client: &ClientId,
    ) -> Result<Option<Scopes>, StoreError> {
        let row: Option<(String,)> =
            sqlx::query_as("SELECT scopes FROM consents WHERE user_id = ? AND client_id = ?")
                .bind(user_id)
                .bind(client.as_str())
                .fetch_optional(&self.reader)
                .await?;
        Ok(row.map(|(s,)| Scopes::from_stored(&s)))
    }

    /// Redeems a code in one transaction: `decide` (the core's rules) sees the stored grant;
    /// on success the code is marked used and the tokens are stored, the refresh token within
    /// the per-(user, client) cap. A replayed code revokes everything it issued.
    pub async fn redeem_code(
        &self,
        code_hash: &SecretHash,
        decide: impl FnOnce(&CodeGrant) -> Result<(), Rejection>,
        tokens: &NewTokens,
        now: Timestamp,
        limits: &Limits,
    ) -> Result<Redemption, StoreError> {
        let mut tx = self.write().await?;
        let row: Option<CodeRow> = sqlx::query_as(&format!(
            "SELECT {CODE_COLUMNS} FROM grant_codes WHERE code_hash = ?"
        ))
        .bind(code_hash.as_bytes())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(grant) = row.and_then(code_from_row) else {
            return Ok(Redemption::Unknown);
        };
        match decide(&grant) {
            Ok(()) => {}
            Err(Rejection::Refuse { error, burn: false }) => {
                return Ok(Redemption::Rejected(Rejection::Refuse {
                    error,
                    burn: false,
                }));
            }
            Err(rejection) => {
                if rejection == Rejection::Replayed {
                    revoke_code_family(&mut tx, code_hash).await?;
                } else {
                    mark_redeemed(&mut tx, code_hash, now).await?;
                }
                tx.commit().await?;
                return Ok(Redemption::Rejected(rejection));
            }
        }
        mark_redeemed(&mut tx, code_hash, now).await?;
        let scopes = grant.scopes.to_stored();
        let refresh_id = if grant.issue_refresh_token {
            let (id,): (i64,) = sqlx::query_as(
                "INSERT INTO refresh_tokens (token_hash, client_id, user_id, scopes, code_hash,
                                             created_at, last_used_at)
                 VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
            )
            .bind(tokens.refresh_hash.as_bytes())
            .bind(grant.client_id.as_str())
            .bind(grant.user_id)
            .bind(&scopes)
            .bind(code_hash.as_bytes())
            .bind(now.0)
            .bind(now.0)
            .fetch_one(&mut *tx)
            .await?;
            // Beyond the cap the oldest go, and their access tokens with them (cascade).
            sqlx::query(
                "DELETE FROM refresh_tokens WHERE id IN (
                    SELECT id FROM refresh_tokens WHERE user_id = ? AND client_id = ?
                     ORDER BY id DESC LIMIT -1 OFFSET ?)",
            )
            .bind(grant.user_id)
            .bind(grant.client_id.as_str())
            .bind(limits.refresh_tokens_per_grant)
            .execute(&mut *tx)
            .await?;
            Some(id)
        } else {
            None
        };
        insert_access_token(
            &mut tx,
            &tokens.access,
            &grant.client_id,
            grant.user_id,
            &scopes,
            refresh_id,
            Some(code_hash),
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(Redemption::Issued(grant))
    }

    // ---- tokens -----------------------------------------------------------------------

    /// Mints an access token from a refresh token held by `client`, within the throttle (at
    /// most `refreshes_per_window` per window) and the cap on active access tokens.
    pub async fn refresh(
        &self,
        refresh_hash: &SecretHash,
        client: &ClientId,
        decide: impl FnOnce(&RefreshGrant) -> Result<Scopes, OAuthError>,
        access: &NewAccess,
        now: Timestamp,
        limits: &Limits,
    ) -> Result<RefreshOutcome, StoreError> {
        let mut tx = self.write().await?;
        let row: Option<(i64, String, i64, String)> = sqlx::query_as(
            "SELECT id, client_id, user_id, scopes FROM refresh_tokens WHERE token_hash = ?",
        )
        .bind(refresh_hash.as_bytes())
        .fetch_optional(&mut *tx)
        .await?;
        let Some((id, client_id, user_id, scopes)) = row else {
            return Ok(RefreshOutcome::Unknown);
        };
        if client_id != client.as_str() {
            return Ok(RefreshOutcome::Unknown);
        }
        let grant = RefreshGrant {
            id,
            client_id: ClientId::new(client_id),
            user_id,
            scopes: Scopes::from_stored(&scopes),
        };
        let scopes = match decide(&grant) {
            Ok(scopes) => scopes,
            Err(e) => return Ok(RefreshOutcome::Rejected(e)),
        };
        let window_start = now.minus(limits.refresh_window_secs);
        let (minted, oldest): (i64, Option<i64>) = sqlx::query_as(
            "SELECT count(*), min(created_at) FROM access_tokens
              WHERE refresh_id = ? AND created_at > ?",
        )
        .bind(id)
        .bind(window_start.0)
        .fetch_one(&mut *tx)
        .await?;
        if minted >= limits.refreshes_per_window {
            let oldest = oldest.unwrap_or(now.0);
            return Ok(RefreshOutcome::Throttled {
                retry_after: (oldest + limits.refresh_window_secs - now.0).max(1),
            });
        }
        // Expired tokens are older than any throttle window, so dropping them loses no count.
        sqlx::query("DELETE FROM access_tokens WHERE refresh_id = ? AND expires_at <= ?")
            .bind(id)
            .bind(now.0)
            .execute(&mut *tx)
            .await?;
        insert_access_token(
            &mut tx,
            access,
            &grant.client_id,
            user_id,
            &scopes.to_stored(),
            Some(id),
            None,
            now,
        )
        .await?;
        sqlx::query(
            "DELETE FROM access_tokens WHERE id IN (
                SELECT id FROM access_tokens WHERE refresh_id = ?
                 ORDER BY id DESC LIMIT -1 OFFSET ?)",
        )
        .bind(id)
        .bind(limits.active_access_tokens_per_refresh)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE refresh_tokens SET last_used_at = ? WHERE id = ?")
            .bind(now.0)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(RefreshOutcome::Issued { user_id, scopes })
    }

    /// Stores an access token that no refresh token stands behind (`client_credentials`).
    pub async fn add_access_token(
        &self,
        access: &NewAccess,
        client: &ClientId,
        user_id: i64,
        scopes: &Scopes,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        insert_access_token(
            &mut tx,
            access,
            client,
            user_id,
            &scopes.to_stored(),
            None,
            None,
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The grant behind a live access token; `None` if unknown, expired or revoked.
    pub async fn access_grant(
        &self,
        access_hash: &SecretHash,
        now: Timestamp,
    ) -> Result<Option<AccessGrant>, StoreError> {
        let row: Option<(String, i64, String, i64)> = sqlx::query_as(
            "SELECT client_id, user_id, scopes, expires_at FROM access_tokens
              WHERE token_hash = ? AND expires_at > ?",
        )
        .bind(access_hash.as_bytes())
        .bind(now.0)
        .fetch_optional(&self.reader)
        .await?;
        Ok(
            row.map(|(client_id, user_id, scopes, expires_at)| AccessGrant {
                client_id: ClientId::new(client_id),
                user_id,
                scopes: Scopes::from_stored(&scopes),
                expires_at: Timestamp(expires_at),
            }),
        )
    }

    /// A live access token or a refresh token, for introspection.
    pub async fn token_info(
        &self,
        hash: &SecretHash,
        now: Timestamp,
    ) -> Result<Option<TokenInfo>, StoreError> {
        if let Some(grant) = self.access_grant(hash, now).await? {
            return Ok(Some(TokenInfo {
                client_id: grant.client_id,
                user_id: grant.user_id,
                scopes: grant.scopes,
                expires_at: Some(grant.expires_at),
            }));
        }
        let row: Option<(String, i64, String)> = sqlx::query_as(
            "SELECT client_id, user_id, scopes FROM refresh_tokens WHERE token_hash = ?",
        )
        .bind(hash.as_bytes())
        .fetch_optional(&self.reader)
        .await?;
        Ok(row.map(|(client_id, user_id, scopes)| TokenInfo {
            client_id: ClientId::new(client_id),
            user_id,
            scopes: Scopes::from_stored(&scopes),
            expires_at: None,
        }))
    }

    /// Revokes a refresh token (with every access token minted from it) or an access token.
    /// With `client`, only that client's tokens are touched. Returns whether one was found.
    pub async fn revoke(
        &self,
        hash: &SecretHash,
        client: Option<&ClientId>,
    ) -> Result<bool, StoreError> {
        let client = client.map(ClientId::as_str);
        let mut tx = self.write().await?;
        let refresh = sqlx::query(
            "DELETE FROM refresh_tokens WHERE token_hash = ? AND (? IS NULL OR client_id = ?)",
        )
        .bind(hash.as_bytes())
        .bind(client)
        .bind(client)
        .execute(&mut *tx)
        .await?;
        let revoked = if refresh.rows_affected() > 0 {
            true
        } else {
            sqlx::query(
                "DELETE FROM access_tokens WHERE token_hash = ? AND (? IS NULL OR client_id = ?)",
            )
            .bind(hash.as_bytes())
            .bind(client)
            .bind(client)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                > 0
        };
        tx.commit().await?;
        Ok(revoked)
    }

    /// Deletes what can no longer be used: expired access tokens, sessions and pending
    /// consents, and codes a day past expiry (kept that long so a late replay is still seen).
    pub async fn sweep(&self, now: Timestamp) -> Result<u64, StoreError> {
        let mut tx = self.write().await?;
        let mut removed = 0;
        for (sql, cutoff) in [
            ("DELETE FROM access_tokens WHERE expires_at <= ?", now),
            ("DELETE FROM sessions WHERE expires_at <= ?", now),
            ("DELETE FROM pending_consents WHERE expires_at <= ?", now),
            (
                "DELETE FROM grant_codes WHERE expires_at <= ?",
                now.minus(86_400),
            ),
        ] {
            removed += sqlx::query(sql)
                .bind(cutoff.0)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
        tx.commit().await?;
        Ok(removed)
    }

    // ---- browser sessions -------------------------------------------------------------

    pub async fn add_session(
        &self,
        hash: &SecretHash,
        user_id: i64,
        user_agent: &str,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO sessions (token_hash, user_id, user_agent, created_at, expires_at)
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(hash.as_bytes())
        .bind(user_id)
        .bind(user_agent)
        .bind(now.0)
        .bind(expires_at.0)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// The user a live session belongs to.
    pub async fn session_user(
        &self,
        hash: &SecretHash,
        now: Timestamp,
    ) -> Result<Option<User>, StoreError> {
        let row: Option<UserRow> = sqlx::query_as(&format!(
            "SELECT {} FROM sessions s JOIN users u ON u.id = s.user_id
              WHERE s.token_hash = ? AND s.expires_at > ?",
            USER_COLUMNS
                .split(", ")
                .map(|c| format!("u.{c}"))
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .bind(hash.as_bytes())
        .bind(now.0)
        .fetch_optional(&self.reader)
        .await?;
        Ok(row.map(user_from_row))
    }

    pub async fn remove_session(&self, hash: &SecretHash) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM sessions WHERE token_hash = ?")
            .bind(hash.as_bytes())
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    pub async fn add_pending_consent(
        &self,
        id_hash: &SecretHash,
        session_hash: &SecretHash,
        request: &str,
        expires_at: Timestamp,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO pending_consents (id_hash, session_hash, request, expires_at)
             VALUES (?, ?, ?, ?)",
        )
        .bind(id_hash.as_bytes())
        .bind(session_hash.as_bytes())
        .bind(request)
        .bind(expires_at.0)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Takes (deletes and returns) a pending consent of this session, so it is decided once.
    pub async fn take_pending_consent(
        &self,
        id_hash: &SecretHash,
        session_hash: &SecretHash,
        now: Timestamp,
    ) -> Result<Option<String>, StoreError> {
        let row: Option<(String, i64)> = sqlx::query_as(
            "DELETE FROM pending_consents WHERE id_hash = ? AND session_hash = ?
             RETURNING request, expires_at",
        )
        .bind(id_hash.as_bytes())
        .bind(session_hash.as_bytes())
        .fetch_optional(&self.writer)
        .await?;
        Ok(row
            .filter(|(_, expires_at)| now.0 < *expires_at)
            .map(|(r, _)| r))
    }
}

async fn mark_redeemed(
    tx: &mut Tx,
    code_hash: &SecretHash,
    now: Timestamp,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE grant_codes SET redeemed_at = ? WHERE code_hash = ? AND redeemed_at IS NULL",
    )
    .bind(now.0)
    .bind(code_hash.as_bytes())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// RFC 6749 §4.1.2: a code used twice revokes every token it issued.
async fn revoke_code_family(tx: &mut Tx, code_hash: &SecretHash) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM refresh_tokens WHERE code_hash = ?")
        .bind(code_hash.as_bytes())
        .execute(&mut **tx)
        .await?;
    sqlx::query("DELETE FROM access_tokens WHERE code_hash = ?")
        .bind(code_hash.as_bytes())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

#[allow(clippy::too_many_arguments)] // one column each; a struct would only rename them
async fn insert_access_token(
    tx: &mut Tx,
    access: &NewAccess,
    client: &ClientId,
    user_id: i64,
    scopes: &str,
    refresh_id: Option<i64>,
    code_hash: Option<&SecretHash>,
    now: Timestamp,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO access_tokens (token_hash, client_id, user_id, scopes, refresh_id, code_hash,
                                    created_at, expires_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(access.hash.as_bytes())
    .bind(client.as_str())
    .bind(user_id)
    .bind(scopes)
    .bind(refresh_id)
    .bind(code_hash.map(SecretHash::as_bytes))
    .bind(now.0)
    .bind(access.expires_at.0)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub(crate) fn user_from_row(
    (id, email, name, password_hash, is_admin, failed_logins, locked_until): UserRow,
) -> User {
    User {
        id,
        email,
        name,
        password_hash,
        is_admin,
        failed_logins,
        locked_until: Timestamp(locked_until),
    }
}

/// `None` for a row this version cannot read (an unknown kind), which then behaves as absent.
pub(crate) fn client_from_row(
    (id, kind, name, homepage, uris, secret_hash, owner_id, dialect, js_domain, created_at): ClientRow,
) -> Option<Client> {
    let uris: Vec<String> = serde_json::from_str(&uris).ok()?;
    Some(Client {
        id: ClientId::new(id),
        kind: ClientType::from_str(&kind).ok()?,
        name,
        homepage,
        redirect_uris: uris.into_iter().map(RedirectUri::from_stored).collect(),
        secret_hash: match secret_hash {
            Some(bytes) => Some(SecretHash::from_bytes(&bytes)?),
            None => None,
        },
        owner_id,
        dialect: Dialect::from_str(&dialect).ok()?,
        js_domain,
        created_at: Timestamp(created_at),
    })
}

fn code_from_row(
    (
        hash,
        client_id,
        user_id,
        redirect_uri,
        scopes,
        issue_refresh,
        challenge,
        expires_at,
        redeemed_at,
    ): CodeRow,
) -> Option<CodeGrant> {
    Some(CodeGrant {
        code_hash: SecretHash::from_bytes(&hash)?,
        client_id: ClientId::new(client_id),
        user_id,
        redirect_uri,
        scopes: Scopes::from_stored(&scopes),
        issue_refresh_token: issue_refresh,
        code_challenge: challenge,
        expires_at: Timestamp(expires_at),
        redeemed_at: redeemed_at.map(Timestamp),
    })
}
