//! The store's domain verbs, written once and stamped into each backend's `impl` block. Both
//! backends accept the same SQL (`$n` placeholders work in SQLite too); where they differ, the
//! backend module provides a constant (`AGGREGATE_SCOPES`). `verbs!` goes to both backends;
//! `hot_writes!` and `hot_reads!` (the token endpoint, the redirect flow and token validation)
//! only to PostgreSQL, whose row locks (`FOR_UPDATE`) they take. SQLite runs the same
//! statements (`statements.rs`) on rusqlite connections: `sqlite_hot_writes`, `sqlite_lookups`,
//! where its single writer serialises instead of row locks.

macro_rules! verbs {
    () => {
    // ---- users ------------------------------------------------------------------------

    pub async fn add_user(
        &self,
        email: &str,
        name: &str,
        password_hash: &str,
        is_admin: bool,
        now: Timestamp,
    ) -> Result<i64, StoreError> {
        let mut tx = self.write().await?;
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO users (email, name, password_hash, is_admin, created_at)
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(email)
        .bind(name)
        .bind(password_hash)
        .bind(is_admin)
        .bind(now.0)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| match StoreError::from(e) {
            StoreError::Conflict(_) => StoreError::Conflict("a user with this email exists"),
            other => other,
        })?;
        tx.commit().await?;
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
            sqlx::query_as(&format!("SELECT {USER_COLUMNS} FROM users WHERE email = $1"))
                .bind(email)
                .fetch_optional(&self.reader)
                .await?;
        Ok(row.map(user_from_row))
    }

    pub async fn user(&self, id: i64) -> Result<Option<User>, StoreError> {
        let row: Option<UserRow> =
            sqlx::query_as(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
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
        let mut tx = self.write().await?;
        sqlx::query(
            "UPDATE users SET failed_logins = failed_logins + 1,
                    locked_until = CASE WHEN failed_logins + 1 >= $1 THEN $2 ELSE locked_until END
              WHERE id = $3",
        )
        .bind(limits.failed_logins_before_lockout)
        .bind(now.plus(limits.lockout_secs).0)
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn clear_login_failures(&self, user_id: i64) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        sqlx::query("UPDATE users SET failed_logins = 0, locked_until = 0 WHERE id = $1 AND failed_logins > 0")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    // ---- scopes -----------------------------------------------------------------------

    pub async fn add_scope(&self, name: &str, description: &str) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        sqlx::query("INSERT INTO scopes (key, name, description) VALUES ($1, $2, $3)")
            .bind(name.to_ascii_lowercase())
            .bind(name)
            .bind(description)
            .execute(&mut *tx)
            .await
            .map_err(|e| match StoreError::from(e) {
                StoreError::Conflict(_) => StoreError::Conflict("this scope is registered"),
                other => other,
            })?;
        tx.commit().await?;
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

    // ---- clients ----------------------------------------------------------------------

    pub async fn add_client(&self, client: &NewClient, now: Timestamp) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        let uris: Vec<&str> = client
            .redirect_uris
            .iter()
            .map(RedirectUri::as_str)
            .collect();
        sqlx::query(
            "INSERT INTO clients (id, kind, name, homepage, redirect_uris, secret_hash, owner_id,
                                  dialect, created_at, js_domain)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
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
        .execute(&mut *tx)
        .await
        .map_err(|e| match StoreError::from(e) {
            StoreError::Conflict(_) => StoreError::Conflict("this user already has a Self Client"),
            other => other,
        })?;
        tx.commit().await?;
        Ok(())
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
        let mut tx = self.write().await?;
        let done = sqlx::query("DELETE FROM clients WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    /// Replaces the secret; the old one stops working with this commit.
    pub async fn set_client_secret(&self, id: &str, hash: &SecretHash) -> Result<bool, StoreError> {
        let mut tx = self.write().await?;
        let done = sqlx::query(
            "UPDATE clients SET secret_hash = $1 WHERE id = $2 AND secret_hash IS NOT NULL",
        )
        .bind(hash.as_bytes())
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    // ---- codes ------------------------------------------------------------------------

    /// The scopes the user has consented to for this client, if any.
    pub async fn consent(
        &self,
        user_id: i64,
        client: &ClientId,
    ) -> Result<Option<Scopes>, StoreError> {
        let row: Option<(String,)> =
            sqlx::query_as("SELECT scopes FROM consents WHERE user_id = $1 AND client_id = $2")
                .bind(user_id)
                .bind(client.as_str())
                .fetch_optional(&self.reader)
                .await?;
        Ok(row.map(|(s,)| Scopes::from_stored(&s)))
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
        Self::insert_access_token(
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

    /// Deletes what can no longer be used: expired access tokens, sessions and pending
    /// consents, and codes a day past expiry (kept that long so a late replay is still seen).
    ///
    /// Access tokens are swept a chunk at a time in the order they were made, each chunk a
    /// transaction of its own, and only as far as they have expired: one statement over the
    /// whole table held the writer for seconds at millions of tokens (5 s just to read 10
    /// million), and an index on the expiry cost every refresh 5 %. Tokens made after the
    /// first chunk with none expired wait for a later sweep; they only outlive the oldest
    /// tokens' lifetime when the configured lifetime was shortened, and are refused as expired
    /// meanwhile.
    pub async fn sweep(&self, now: Timestamp) -> Result<u64, StoreError> {
        let mut removed = 0;
        let mut after = 0;
        loop {
            let mut tx = self.write().await?;
            let chunk: Vec<(i64, i64)> = sqlx::query_as(ACCESS_TOKENS_AFTER)
                .bind(after)
                .bind(SWEEP_CHUNK)
                .fetch_all(&mut *tx)
                .await?;
            let Some(&(last, _)) = chunk.last() else {
                break;
            };
            if chunk.iter().all(|&(_, expires_at)| expires_at > now.0) {
                break;
            }
            sqlx::query(KEEP_LAST_USE_OF_EXPIRED)
                .bind(after)
                .bind(last)
                .bind(now.0)
                .execute(&mut *tx)
                .await?;
            removed += sqlx::query(DELETE_EXPIRED_ACCESS_TOKENS)
                .bind(after)
                .bind(last)
                .bind(now.0)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            tx.commit().await?;
            after = last;
        }
        let mut tx = self.write().await?;
        for (sql, cutoff) in [
            ("DELETE FROM sessions WHERE expires_at <= $1", now),
            ("DELETE FROM pending_consents WHERE expires_at <= $1", now),
            (
                "DELETE FROM grant_codes WHERE expires_at <= $1",
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
        let mut tx = self.write().await?;
        sqlx::query(
            "INSERT INTO sessions (token_hash, user_id, user_agent, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(hash.as_bytes())
        .bind(user_id)
        .bind(user_agent)
        .bind(now.0)
        .bind(expires_at.0)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn remove_session(&self, hash: &SecretHash) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
            .bind(hash.as_bytes())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn add_pending_consent(
        &self,
        id_hash: &SecretHash,
        session_hash: &SecretHash,
        request: &str,
        expires_at: Timestamp,
    ) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        sqlx::query(
            "INSERT INTO pending_consents (id_hash, session_hash, request, expires_at)
             VALUES ($1, $2, $3, $4)",
        )
        .bind(id_hash.as_bytes())
        .bind(session_hash.as_bytes())
        .bind(request)
        .bind(expires_at.0)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Takes (deletes and returns) a pending consent of this session, so it is decided once.
    pub async fn take_pending_consent(
        &self,
        id_hash: &SecretHash,
        session_hash: &SecretHash,
        now: Timestamp,
    ) -> Result<Option<String>, StoreError> {
        let mut tx = self.write().await?;
        let row: Option<(String, i64)> = sqlx::query_as(
            "DELETE FROM pending_consents WHERE id_hash = $1 AND session_hash = $2
             RETURNING request, expires_at",
        )
        .bind(id_hash.as_bytes())
        .bind(session_hash.as_bytes())
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(row
            .filter(|(_, expires_at)| now.0 < *expires_at)
            .map(|(r, _)| r))
    }

    pub async fn clients_of(&self, owner_id: i64) -> Result<Vec<Client>, StoreError> {
        let rows: Vec<ClientRow> = sqlx::query_as(&format!(
            "SELECT {CLIENT_COLUMNS} FROM clients WHERE owner_id = $1 ORDER BY created_at, id"
        ))
        .bind(owner_id)
        .fetch_all(&self.reader)
        .await?;
        Ok(rows.into_iter().filter_map(client_from_row).collect())
    }

    /// Changes a client's settings, only if `owner_id` owns it.
    pub async fn update_client(
        &self,
        id: &ClientId,
        owner_id: i64,
        update: &ClientUpdate,
    ) -> Result<bool, StoreError> {
        let mut tx = self.write().await?;
        let uris: Vec<&str> = update
            .redirect_uris
            .iter()
            .map(RedirectUri::as_str)
            .collect();
        let done = sqlx::query(
            "UPDATE clients SET name = $1, homepage = $2, redirect_uris = $3, js_domain = $4, dialect = $5
              WHERE id = $6 AND owner_id = $7",
        )
        .bind(&update.name)
        .bind(&update.homepage)
        .bind(serde_json::to_string(&uris).unwrap_or_else(|_| "[]".into()))
        .bind(&update.js_domain)
        .bind(update.dialect.as_str())
        .bind(id.as_str())
        .bind(owner_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    /// The Self Client's codes, newest first.
    pub async fn codes_of(&self, client: &ClientId) -> Result<Vec<CodeSummary>, StoreError> {
        let rows: Vec<CodeSummaryRow> = sqlx::query_as(
            "SELECT created_at, expires_at, redeemed_at, scopes, description FROM grant_codes
              WHERE client_id = $1 ORDER BY created_at DESC, expires_at DESC LIMIT 100",
        )
        .bind(client.as_str())
        .fetch_all(&self.reader)
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(created, expires, redeemed, scopes, description)| CodeSummary {
                    created_at: Timestamp(created),
                    expires_at: Timestamp(expires),
                    redeemed_at: redeemed.map(Timestamp),
                    scopes: Scopes::from_stored(&scopes),
                    description,
                },
            )
            .collect())
    }

    /// Every client the user authorized (by consent, or by a Self Client code), with its
    /// active refresh tokens.
    pub async fn connected_apps(&self, user_id: i64) -> Result<Vec<ConnectedApp>, StoreError> {
        let rows: Vec<AppRow> = sqlx::query_as(&format!(
            "WITH apps AS (
                     SELECT client_id FROM consents WHERE user_id = $1
                     UNION SELECT client_id FROM refresh_tokens WHERE user_id = $1)
                 SELECT c.id, c.name, c.homepage, k.scopes, k.granted_at,
                        (SELECT max(used.at) FROM (
                             SELECT r.last_used_at AS at FROM refresh_tokens r
                              WHERE r.user_id = $1 AND r.client_id = c.id
                             UNION ALL
                             SELECT a.created_at FROM refresh_tokens r
                               JOIN access_tokens a ON a.refresh_id = r.id
                              WHERE r.user_id = $1 AND r.client_id = c.id) AS used),
                        (SELECT count(*) FROM refresh_tokens r
                          WHERE r.user_id = $1 AND r.client_id = c.id),
                        (SELECT {AGGREGATE_SCOPES} FROM refresh_tokens r
                          WHERE r.user_id = $1 AND r.client_id = c.id)
                   FROM apps JOIN clients c ON c.id = apps.client_id
                   LEFT JOIN consents k ON k.user_id = $1 AND k.client_id = c.id
                  ORDER BY c.name, c.id"
        ))
        .bind(user_id)
        .fetch_all(&self.reader)
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(id, name, homepage, consented, granted_at, last_used, active, token_scopes)| {
                    let mut scopes = Scopes::from_stored(consented.as_deref().unwrap_or(""));
                    if let Some(token_scopes) = token_scopes {
                        scopes = scopes.union(&Scopes::from_stored(&token_scopes));
                    }
                    ConnectedApp {
                        client_id: ClientId::new(id),
                        client_name: name,
                        homepage,
                        scopes,
                        first_granted_at: Timestamp(granted_at.or(last_used).unwrap_or(0)),
                        last_used_at: last_used.map(Timestamp),
                        active_refresh_tokens: active,
                    }
                },
            )
            .collect())
    }

    /// Revokes everything the user granted the client: refresh tokens (and with them their
    /// access tokens), other access tokens, unredeemed codes and the consent itself.
    pub async fn revoke_grant(&self, user_id: i64, client: &ClientId) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        for sql in [
            "DELETE FROM refresh_tokens WHERE user_id = $1 AND client_id = $2",
            "DELETE FROM access_tokens WHERE user_id = $1 AND client_id = $2",
            "DELETE FROM grant_codes WHERE user_id = $1 AND client_id = $2 AND redeemed_at IS NULL",
            "DELETE FROM consents WHERE user_id = $1 AND client_id = $2",
        ] {
            sqlx::query(sql)
                .bind(user_id)
                .bind(client.as_str())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn sessions_of(
        &self,
        user_id: i64,
        now: Timestamp,
    ) -> Result<Vec<SessionSummary>, StoreError> {
        let rows: Vec<(Vec<u8>, i64, String)> = sqlx::query_as(
            "SELECT token_hash, created_at, user_agent FROM sessions
              WHERE user_id = $1 AND expires_at > $2 ORDER BY created_at DESC",
        )
        .bind(user_id)
        .bind(now.0)
        .fetch_all(&self.reader)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(hash, created_at, user_agent)| SessionSummary {
                handle: SecretHash::from_bytes(&hash)
                    .map(|h| h.to_hex())
                    .unwrap_or_default(),
                created_at: Timestamp(created_at),
                user_agent,
            })
            .collect())
    }

    /// Ends one of the user's sessions, named by its handle.
    pub async fn remove_user_session(
        &self,
        user_id: i64,
        handle: &str,
    ) -> Result<bool, StoreError> {
        let mut tx = self.write().await?;
        let Some(hash) = SecretHash::from_hex(handle) else {
            return Ok(false);
        };
        let done = sqlx::query("DELETE FROM sessions WHERE token_hash = $1 AND user_id = $2")
            .bind(hash.as_bytes())
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    /// Sets a new password hash and ends every other session of the user.
    pub async fn set_password(
        &self,
        user_id: i64,
        password_hash: &str,
        keep_session: &SecretHash,
    ) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
            .bind(password_hash)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND token_hash <> $2")
            .bind(user_id)
            .bind(keep_session.as_bytes())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn set_user_name(&self, user_id: i64, name: &str) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        sqlx::query("UPDATE users SET name = $1 WHERE id = $2")
            .bind(name)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn users(&self) -> Result<Vec<User>, StoreError> {
        let rows: Vec<UserRow> =
            sqlx::query_as(&format!("SELECT {USER_COLUMNS} FROM users ORDER BY id"))
                .fetch_all(&self.reader)
                .await?;
        Ok(rows.into_iter().map(user_from_row).collect())
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
        INSERT_ACCESS_TOKEN,
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
    };
}

pub(crate) use verbs;

/// The write verbs of the token endpoint and the redirect flow. PostgreSQL runs them as verbs;
/// SQLite runs the same statements on its writer's rusqlite connection (`sqlite_hot_writes`).
macro_rules! hot_writes {
    () => {
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
            let client = grant.client_id.as_str();
            // Serialises code issuance per client (across nodes, on PostgreSQL), so the
            // throttle cannot be raced past the limit nor two codes get one number.
            sqlx::query(&format!("SELECT id FROM clients WHERE id = $1{FOR_UPDATE}"))
                .bind(client)
                .fetch_optional(&mut *tx)
                .await?;
            let newest: i64 = sqlx::query_scalar(NEWEST_CODE_SEQ)
                .bind(client)
                .fetch_one(&mut *tx)
                .await?;
            let made: Option<i64> = match code_to_check(newest, limits) {
                Some(seq) => {
                    sqlx::query_scalar(CODE_MADE_AT)
                        .bind(client)
                        .bind(seq)
                        .fetch_optional(&mut *tx)
                        .await?
                }
                None => None,
            };
            if let Some(retry_after) = code_throttle(made, limits, now) {
                return Ok(CodeIssue::Throttled { retry_after });
            }
            sqlx::query(INSERT_CODE)
                .bind(grant.code_hash.as_bytes())
                .bind(client)
                .bind(grant.user_id)
                .bind(&grant.redirect_uri)
                .bind(grant.scopes.to_stored())
                .bind(grant.issue_refresh_token)
                .bind(&grant.code_challenge)
                .bind(&code.description)
                .bind(now.0)
                .bind(grant.expires_at.0)
                .bind(newest + 1)
                .execute(&mut *tx)
                .await?;
            if let Some(consent) = &code.record_consent {
                let prior: Option<(String, String)> = sqlx::query_as(CONSENT)
                    .bind(grant.user_id)
                    .bind(grant.client_id.as_str())
                    .fetch_optional(&mut *tx)
                    .await?;
                let (scopes, uris) = merge_consent(prior, consent);
                sqlx::query(UPSERT_CONSENT)
                    .bind(grant.user_id)
                    .bind(grant.client_id.as_str())
                    .bind(scopes)
                    .bind(uris)
                    .bind(now.0)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(CodeIssue::Issued)
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
                "SELECT {CODE_COLUMNS} FROM grant_codes WHERE code_hash = $1{FOR_UPDATE}"
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
                        Self::revoke_code_family(&mut tx, code_hash).await?;
                    } else {
                        Self::mark_redeemed(&mut tx, code_hash, now).await?;
                    }
                    tx.commit().await?;
                    return Ok(Redemption::Rejected(rejection));
                }
            }
            let scopes = grant.scopes.to_stored();
            let refresh_id = if grant.issue_refresh_token {
                // Serialises grants per user, so concurrent grants cannot overshoot the cap.
                sqlx::query(&format!("SELECT id FROM users WHERE id = $1{FOR_UPDATE}"))
                    .bind(grant.user_id)
                    .fetch_optional(&mut *tx)
                    .await?;
                let (id,): (i64,) = sqlx::query_as(INSERT_REFRESH_TOKEN)
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
                sqlx::query(EVICT_REFRESH_TOKENS)
                    .bind(grant.user_id)
                    .bind(grant.client_id.as_str())
                    .bind(limits.refresh_tokens_per_grant)
                    .execute(&mut *tx)
                    .await?;
                Some(id)
            } else {
                None
            };
            Self::insert_access_token(
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
            sqlx::query(MARK_REDEEMED_WITH_TOKENS)
                .bind(now.0)
                .bind(refresh_id)
                .bind(tokens.access.hash.as_bytes())
                .bind(code_hash.as_bytes())
                .execute(&mut *tx)
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
            let row: Option<RefreshGrantRow> =
                sqlx::query_as(&format!("{REFRESH_GRANT}{FOR_UPDATE}"))
                    .bind(refresh_hash.as_bytes())
                    .fetch_optional(&mut *tx)
                    .await?;
            let Some(grant) = refresh_grant_held_by(row, client) else {
                return Ok(RefreshOutcome::Unknown);
            };
            let scopes = match decide(&grant) {
                Ok(scopes) => scopes,
                Err(e) => return Ok(RefreshOutcome::Rejected(e)),
            };
            let minted: Vec<MintedRow> = sqlx::query_as(ACCESS_TOKENS_OF_REFRESH)
                .bind(grant.id)
                .fetch_all(&mut *tx)
                .await?;
            let doomed = match refresh_bookkeeping(&minted, now, limits) {
                Ok(doomed) => doomed,
                Err(retry_after) => return Ok(RefreshOutcome::Throttled { retry_after }),
            };
            Self::insert_access_token(
                &mut tx,
                access,
                &grant.client_id,
                grant.user_id,
                &scopes.to_stored(),
                Some(grant.id),
                None,
                now,
            )
            .await?;
            for id in doomed {
                sqlx::query(DELETE_ACCESS_TOKEN)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(RefreshOutcome::Issued {
                user_id: grant.user_id,
                scopes,
            })
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
            let refresh = sqlx::query(REVOKE_REFRESH_TOKEN)
                .bind(hash.as_bytes())
                .bind(client)
                .execute(&mut *tx)
                .await?;
            let revoked = if refresh.rows_affected() > 0 {
                true
            } else {
                sqlx::query(KEEP_LAST_USE_OF_ACCESS_TOKEN)
                    .bind(hash.as_bytes())
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(REVOKE_ACCESS_TOKEN)
                    .bind(hash.as_bytes())
                    .bind(client)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                    > 0
            };
            tx.commit().await?;
            Ok(revoked)
        }

        async fn mark_redeemed(
            tx: &mut Tx,
            code_hash: &SecretHash,
            now: Timestamp,
        ) -> Result<(), StoreError> {
            sqlx::query(MARK_REDEEMED)
                .bind(now.0)
                .bind(code_hash.as_bytes())
                .execute(&mut **tx)
                .await?;
            Ok(())
        }

        /// RFC 6749 §4.1.2: a code used twice revokes every token it issued.
        async fn revoke_code_family(tx: &mut Tx, code_hash: &SecretHash) -> Result<(), StoreError> {
            sqlx::query(REVOKE_CODE_REFRESH_TOKENS)
                .bind(code_hash.as_bytes())
                .execute(&mut **tx)
                .await?;
            sqlx::query(REVOKE_CODE_ACCESS_TOKENS)
                .bind(code_hash.as_bytes())
                .execute(&mut **tx)
                .await?;
            Ok(())
        }
    };
}

pub(crate) use hot_writes;

/// The reads on every API call, token request and redirect flow. PostgreSQL runs them as verbs; SQLite runs
/// them on per-thread connections instead (`sqlite_lookups`), the same SQL.
macro_rules! hot_reads {
    () => {
        /// The user a live session belongs to.
        pub async fn session_user(
            &self,
            hash: &SecretHash,
            now: Timestamp,
        ) -> Result<Option<User>, StoreError> {
            let row: Option<UserRow> = sqlx::query_as(SESSION_USER)
                .bind(hash.as_bytes())
                .bind(now.0)
                .fetch_optional(&self.reader)
                .await?;
            Ok(row.map(user_from_row))
        }

        /// The registry's spelling and description of each scope; `Err` names an unknown one.
        pub async fn registered(
            &self,
            scopes: &Scopes,
        ) -> Result<Result<Vec<(String, String)>, String>, StoreError> {
            let mut found = Vec::new();
            for scope in scopes.iter() {
                let row: Option<(String, String)> = sqlx::query_as(SCOPE_BY_KEY)
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

        /// The scopes the user has consented to for this client, counted only if the consent
        /// covered this registered redirect URI too.
        pub async fn consent_for(
            &self,
            user_id: i64,
            client: &ClientId,
            redirect_uri: &str,
        ) -> Result<Option<Scopes>, StoreError> {
            let row: Option<(String, String)> = sqlx::query_as(CONSENT)
                .bind(user_id)
                .bind(client.as_str())
                .fetch_optional(&self.reader)
                .await?;
            Ok(consent_covering(row, redirect_uri))
        }

        pub async fn client(&self, id: &str) -> Result<Option<Client>, StoreError> {
            let row: Option<ClientRow> = sqlx::query_as(CLIENT_BY_ID)
                .bind(id)
                .fetch_optional(&self.reader)
                .await?;
            Ok(row.and_then(client_from_row))
        }

        /// The grant behind a live access token; `None` if unknown, expired or revoked.
        pub async fn access_grant(
            &self,
            access_hash: &SecretHash,
            now: Timestamp,
        ) -> Result<Option<AccessGrant>, StoreError> {
            let row: Option<AccessRow> = sqlx::query_as(LIVE_ACCESS_TOKEN)
                .bind(access_hash.as_bytes())
                .bind(now.0)
                .fetch_optional(&self.reader)
                .await?;
            Ok(row.map(access_from_row))
        }

        /// A live access token and the user it speaks for, in one read: the resource path.
        pub async fn access_owner(
            &self,
            access_hash: &SecretHash,
            now: Timestamp,
        ) -> Result<Option<(AccessGrant, User)>, StoreError> {
            let row: Option<AccessOwnerRow> = sqlx::query_as(LIVE_ACCESS_TOKEN_AND_OWNER)
                .bind(access_hash.as_bytes())
                .bind(now.0)
                .fetch_optional(&self.reader)
                .await?;
            Ok(row.map(access_owner_from_row))
        }

        /// A live access token or a refresh token, for introspection.
        pub async fn token_info(
            &self,
            hash: &SecretHash,
            now: Timestamp,
        ) -> Result<Option<TokenInfo>, StoreError> {
            if let Some(grant) = self.access_grant(hash, now).await? {
                return Ok(Some(access_info(grant)));
            }
            let row: Option<RefreshRow> = sqlx::query_as(REFRESH_TOKEN)
                .bind(hash.as_bytes())
                .fetch_optional(&self.reader)
                .await?;
            Ok(row.map(refresh_info_from_row))
        }
    };
}

pub(crate) use hot_reads;

/// What the verbs name, imported by each backend module.
pub(crate) mod prelude {
    pub(crate) use grantd_core::grant::{AccessGrant, CodeGrant, RefreshGrant, Rejection};
    pub(crate) use grantd_core::secret::SecretHash;
    pub(crate) use grantd_core::{
        Client, ClientId, Limits, OAuthError, RedirectUri, Scopes, Timestamp,
    };

    pub(crate) use crate::rows::*;
    pub(crate) use crate::statements::*;
    pub(crate) use crate::{
        ClientUpdate, CodeIssue, CodeSummary, ConnectedApp, NewAccess, NewClient, NewCode,
        NewTokens, Redemption, RefreshOutcome, SessionSummary, StoreError, TokenInfo, User,
    };
}
