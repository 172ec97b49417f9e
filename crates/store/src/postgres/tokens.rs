//! PostgreSQL: the tokens verbs (`verbs::TokenVerbs`): codes and tokens, issued, redeemed,
//! refreshed, validated, introspected, revoked and swept. Kept apart because these are the
//! token endpoint's and every API call's path, where the row locks that keep single use, the
//! caps and the throttles across nodes are taken.

use grantd_core::consent::Consent;
use grantd_core::device::DeviceGrant;
use grantd_core::grant::{AccessGrant, CodeGrant, RefreshGrant, Rejection};
use grantd_core::secret::SecretHash;
use grantd_core::throttle::{
    code_throttle, code_to_check, first_evicted_refresh_token, mint_bookkeeping, MintQuota, Minted,
    RetryAfter,
};
use grantd_core::{ClientId, Limits, OAuthError, Scopes, Timestamp};

use super::{detached, locked, Answer, PostgresStore, Tx, CLIENT_ROW, USER_ROW};
use crate::model::{
    AccessIssue, CodeIssue, NewAccess, NewCode, NewTokens, Redemption, RefreshOutcome, TokenInfo,
    User,
};
use crate::rows::{
    sweep_through, AccessOwnerRow, AccessRow, CodeRow, ConsentRow, ExpiryRow, MintedRow,
    RefreshGrantRow, RefreshRow, RetiredRow,
};
use crate::statements::{
    ACCESS_TOKENS_AFTER, ACCESS_TOKENS_OF_REFRESH, CLIENT_CREDENTIALS_TOKENS, CODE_BY_HASH,
    CODE_MADE_AT, CONSENT, DELETE_ACCESS_TOKEN, DELETE_EXPIRED_ACCESS_TOKENS, EVICT_REFRESH_TOKENS,
    INSERT_ACCESS_TOKEN, INSERT_CODE, INSERT_REFRESH_TOKEN, KEEP_LAST_USE_OF_ACCESS_TOKEN,
    KEEP_LAST_USE_OF_EXPIRED, LIVE_ACCESS_TOKEN, LIVE_ACCESS_TOKEN_AND_OWNER, MARK_REDEEMED,
    MARK_REDEEMED_WITH_TOKENS, NEWEST_CODE_SEQ, REFRESH_GRANT, REFRESH_TOKEN, REFRESH_TOKEN_AT,
    RETIRED_REFRESH_TOKEN, RETIRE_REFRESH_TOKEN, REVOKE_ACCESS_TOKEN, REVOKE_CODE_ACCESS_TOKENS,
    REVOKE_CODE_REFRESH_TOKENS, REVOKE_REFRESH_FAMILY, REVOKE_REFRESH_TOKEN, ROTATE_REFRESH_TOKEN,
    SWEEP_CHUNK, SWEEP_CODES, SWEEP_DEVICE_CODES, SWEEP_DEVICE_GUESSES, SWEEP_ENHANCE_TOKENS,
    SWEEP_PENDING_CONSENTS, SWEEP_SESSIONS, SWEEP_SIGNING_KEYS, SWEEP_SIGNIN_TALLIES,
    UPSERT_CONSENT,
};
use crate::verbs::TokenVerbs;

impl TokenVerbs for PostgresStore {
    async fn add_code(&self, code: &NewCode, now: Timestamp, limits: &Limits) -> Answer<CodeIssue> {
        let pool = self.pool.clone();
        let (code, limits) = (code.clone(), limits.clone());
        detached(async move {
            let grant = &code.grant;
            let client = grant.client_id.as_str();
            let mut tx = pool.begin().await?;
            // Serialises a user's code issuance (across nodes), so the per-(user, client)
            // throttle cannot be raced past the limit nor two codes get one number. The user's
            // row, not the client's: one user's codes do not queue behind everyone's.
            sqlx::query(locked!(USER_ROW))
                .bind(grant.user_id)
                .fetch_optional(&mut *tx)
                .await?;
            let newest: i64 = sqlx::query_scalar(NEWEST_CODE_SEQ)
                .bind(client)
                .bind(grant.user_id)
                .fetch_one(&mut *tx)
                .await?;
            let made: Option<i64> = match code_to_check(newest, &limits) {
                Some(seq) => {
                    sqlx::query_scalar(CODE_MADE_AT)
                        .bind(client)
                        .bind(grant.user_id)
                        .bind(seq)
                        .fetch_optional(&mut *tx)
                        .await?
                }
                None => None,
            };
            if let Err(RetryAfter(retry_after)) = code_throttle(made.map(Timestamp), &limits, now) {
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
                .bind(&grant.oidc.nonce)
                .bind(grant.oidc.auth_time.map(|t| t.0))
                .execute(&mut *tx)
                .await?;
            if let Some(record) = &code.record_consent {
                let prior = sqlx::query_as::<_, ConsentRow>(CONSENT)
                    .bind(grant.user_id)
                    .bind(client)
                    .fetch_optional(&mut *tx)
                    .await?;
                let consent = Consent::merge(
                    prior.map(Consent::from),
                    &record.scopes,
                    &record.redirect_uri,
                );
                let row = ConsentRow::of(&consent);
                sqlx::query(UPSERT_CONSENT)
                    .bind(grant.user_id)
                    .bind(client)
                    .bind(row.scopes)
                    .bind(row.redirect_uris)
                    .bind(now.0)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(CodeIssue::Issued)
        })
        .await
    }

    async fn redeem_code(
        &self,
        code_hash: &SecretHash,
        decide: impl FnOnce(&CodeGrant) -> Result<(), Rejection> + Send + 'static,
        tokens: &NewTokens,
        now: Timestamp,
        limits: &Limits,
    ) -> Answer<Redemption> {
        let pool = self.pool.clone();
        let (code_hash, tokens, limits) = (*code_hash, tokens.clone(), limits.clone());
        detached(async move {
            let mut tx = pool.begin().await?;
            // The code's row lock makes redemption single use across nodes.
            let row = sqlx::query_as::<_, CodeRow>(locked!(CODE_BY_HASH))
                .bind(code_hash.as_bytes())
                .fetch_optional(&mut *tx)
                .await?;
            let Some(grant) = row.and_then(CodeRow::into_grant) else {
                return Ok(Redemption::Unknown);
            };
            match decide(&grant) {
                Ok(()) => {}
                // Refused, the code kept (another client presented it): nothing to write.
                Err(rejection @ Rejection::Refuse { burn: false, .. }) => {
                    return Ok(Redemption::Rejected(rejection));
                }
                Err(rejection) => {
                    if rejection == Rejection::Replayed {
                        revoke_code_family(&mut tx, &code_hash).await?;
                    } else {
                        sqlx::query(MARK_REDEEMED)
                            .bind(now.0)
                            .bind(code_hash.as_bytes())
                            .execute(&mut *tx)
                            .await?;
                    }
                    tx.commit().await?;
                    return Ok(Redemption::Rejected(rejection));
                }
            }
            let scopes = grant.scopes.to_stored();
            let refresh_id = if grant.issue_refresh_token {
                let id = insert_refresh_token(
                    &mut tx,
                    &tokens.refresh_hash,
                    (&grant.client_id, grant.user_id, &scopes),
                    &code_hash,
                    grant.oidc.auth_time,
                    now,
                    &limits,
                )
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
                Some(&code_hash),
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
        })
        .await
    }

    async fn refresh(
        &self,
        refresh_hash: &SecretHash,
        client: &ClientId,
        decide: impl FnOnce(&RefreshGrant) -> Result<Scopes, OAuthError> + Send + 'static,
        access: &NewAccess,
        rotate_to: Option<&SecretHash>,
        now: Timestamp,
        limits: &Limits,
    ) -> Answer<RefreshOutcome> {
        let pool = self.pool.clone();
        let (refresh_hash, client, rotate_to) = (*refresh_hash, client.clone(), rotate_to.copied());
        let (access, limits) = (access.clone(), limits.clone());
        detached(async move {
            let mut tx = pool.begin().await?;
            // The refresh token's row lock serialises its refreshes, so the throttle and the
            // cap hold across nodes. A refresh waiting here while another rotates the token
            // then finds it retired, below: a rotating token used twice is a replay.
            let row = sqlx::query_as::<_, RefreshGrantRow>(locked!(REFRESH_GRANT))
                .bind(refresh_hash.as_bytes())
                .fetch_optional(&mut *tx)
                .await?;
            let Some(grant) = row.and_then(|row| row.held_by(&client)) else {
                // RFC 9700 §4.14.2: a retired token of a rotating family, presented again, was
                // stolen or replayed; the family goes, whoever holds its current token.
                let retired = sqlx::query_as::<_, RetiredRow>(locked!(RETIRED_REFRESH_TOKEN))
                    .bind(refresh_hash.as_bytes())
                    .fetch_optional(&mut *tx)
                    .await?;
                let Some(family) = retired.and_then(|row| row.held_by(&client)) else {
                    return Ok(RefreshOutcome::Unknown);
                };
                sqlx::query(REVOKE_REFRESH_FAMILY)
                    .bind(family)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                return Ok(RefreshOutcome::Replayed);
            };
            let scopes = match decide(&grant) {
                Ok(scopes) => scopes,
                Err(e) => return Ok(RefreshOutcome::Rejected(e)),
            };
            let minted: Vec<Minted> = sqlx::query_as::<_, MintedRow>(ACCESS_TOKENS_OF_REFRESH)
                .bind(grant.id)
                .fetch_all(&mut *tx)
                .await?
                .into_iter()
                .map(Minted::from)
                .collect();
            let doomed = match mint_bookkeeping(&minted, now, MintQuota::per_refresh_token(&limits))
            {
                Ok(doomed) => doomed,
                Err(RetryAfter(retry_after)) => {
                    return Ok(RefreshOutcome::Throttled { retry_after })
                }
            };
            insert_access_token(
                &mut tx,
                &access,
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
            if let Some(rotated) = rotate_to {
                sqlx::query(ROTATE_REFRESH_TOKEN)
                    .bind(rotated.as_bytes())
                    .bind(grant.id)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(RETIRE_REFRESH_TOKEN)
                    .bind(refresh_hash.as_bytes())
                    .bind(grant.id)
                    .bind(now.0)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(RefreshOutcome::Issued {
                user_id: grant.user_id,
                scopes,
                auth_time: grant.auth_time,
            })
        })
        .await
    }

    async fn add_access_token(
        &self,
        access: &NewAccess,
        client: &ClientId,
        user_id: i64,
        scopes: &Scopes,
        now: Timestamp,
        limits: &Limits,
    ) -> Answer<AccessIssue> {
        let pool = self.pool.clone();
        let (access, client, scopes) = (access.clone(), client.clone(), scopes.to_stored());
        let limits = limits.clone();
        detached(async move {
            let mut tx = pool.begin().await?;
            // The client's row lock serialises its client_credentials mints (across nodes), so
            // the throttle and the cap hold.
            sqlx::query(locked!(CLIENT_ROW))
                .bind(client.as_str())
                .fetch_optional(&mut *tx)
                .await?;
            let minted: Vec<Minted> = sqlx::query_as::<_, MintedRow>(CLIENT_CREDENTIALS_TOKENS)
                .bind(client.as_str())
                .fetch_all(&mut *tx)
                .await?
                .into_iter()
                .map(Minted::from)
                .collect();
            let doomed =
                match mint_bookkeeping(&minted, now, MintQuota::client_credentials(&limits)) {
                    Ok(doomed) => doomed,
                    Err(RetryAfter(retry_after)) => {
                        return Ok(AccessIssue::Throttled { retry_after })
                    }
                };
            insert_access_token(&mut tx, &access, &client, user_id, &scopes, None, None, now)
                .await?;
            for id in doomed {
                sqlx::query(DELETE_ACCESS_TOKEN)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(AccessIssue::Issued)
        })
        .await
    }

    async fn access_grant(
        &self,
        access_hash: &SecretHash,
        now: Timestamp,
    ) -> Answer<Option<AccessGrant>> {
        let row = sqlx::query_as::<_, AccessRow>(LIVE_ACCESS_TOKEN)
            .bind(access_hash.as_bytes())
            .bind(now.0)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(AccessGrant::from))
    }

    async fn access_owner(
        &self,
        access_hash: &SecretHash,
        now: Timestamp,
    ) -> Answer<Option<(AccessGrant, User)>> {
        let row = sqlx::query_as::<_, AccessOwnerRow>(LIVE_ACCESS_TOKEN_AND_OWNER)
            .bind(access_hash.as_bytes())
            .bind(now.0)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(<(AccessGrant, User)>::from))
    }

    async fn token_info(&self, hash: &SecretHash, now: Timestamp) -> Answer<Option<TokenInfo>> {
        if let Some(grant) = self.access_grant(hash, now).await? {
            return Ok(Some(TokenInfo::from(grant)));
        }
        let row = sqlx::query_as::<_, RefreshRow>(REFRESH_TOKEN)
            .bind(hash.as_bytes())
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(TokenInfo::from))
    }

    async fn revoke(&self, hash: &SecretHash, client: Option<&ClientId>) -> Answer<bool> {
        let pool = self.pool.clone();
        let (hash, client) = (*hash, client.map(|c| c.as_str().to_owned()));
        detached(async move {
            let mut tx = pool.begin().await?;
            let refresh = sqlx::query(REVOKE_REFRESH_TOKEN)
                .bind(hash.as_bytes())
                .bind(client.as_deref())
                .execute(&mut *tx)
                .await?;
            let revoked = if refresh.rows_affected() > 0 {
                true
            } else {
                // The access token's mint time outlives it as its refresh token's last use.
                sqlx::query(KEEP_LAST_USE_OF_ACCESS_TOKEN)
                    .bind(hash.as_bytes())
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(REVOKE_ACCESS_TOKEN)
                    .bind(hash.as_bytes())
                    .bind(client.as_deref())
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                    > 0
            };
            tx.commit().await?;
            Ok(revoked)
        })
        .await
    }

    /// Access tokens are swept a chunk at a time in the order they were made, each chunk a
    /// transaction of its own, and only as far as they have expired (`SWEEP_CHUNK`). Tokens
    /// made after the first chunk with none expired wait for a later sweep; they only outlive
    /// the oldest tokens' lifetime when the configured lifetime was shortened, and are refused
    /// as expired meanwhile. The whole sweep runs on one task: a caller that stops waiting
    /// leaves it to finish.
    async fn sweep(&self, now: Timestamp) -> Answer<u64> {
        let pool = self.pool.clone();
        detached(async move {
            let mut removed = 0;
            let mut after = 0;
            loop {
                let mut tx = pool.begin().await?;
                let chunk = sqlx::query_as::<_, ExpiryRow>(ACCESS_TOKENS_AFTER)
                    .bind(after)
                    .bind(SWEEP_CHUNK)
                    .fetch_all(&mut *tx)
                    .await?;
                let Some(last) = sweep_through(&chunk, now) else {
                    break;
                };
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
            let mut tx = pool.begin().await?;
            for (sql, cutoff) in [
                (SWEEP_SESSIONS, now),
                (SWEEP_PENDING_CONSENTS, now),
                (SWEEP_CODES, CodeGrant::forgettable_before(now)),
                (SWEEP_SIGNIN_TALLIES, now),
                (SWEEP_DEVICE_CODES, DeviceGrant::forgettable_before(now)),
                (SWEEP_DEVICE_GUESSES, now),
                (SWEEP_ENHANCE_TOKENS, now),
                (SWEEP_SIGNING_KEYS, now),
            ] {
                removed += sqlx::query(sql)
                    .bind(cutoff.0)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
            }
            tx.commit().await?;
            Ok(removed)
        })
        .await
    }
}

/// Stores a refresh token for (client, user, scopes), issued for the code (or device code)
/// `code_hash`, within the per-(user, client) cap: beyond it the oldest go, and their access
/// tokens with them (cascade). Its id.
pub(super) async fn insert_refresh_token(
    tx: &mut Tx,
    hash: &SecretHash,
    (client, user_id, scopes): (&ClientId, i64, &str),
    code_hash: &SecretHash,
    auth_time: Option<Timestamp>,
    now: Timestamp,
    limits: &Limits,
) -> Answer<i64> {
    // Serialises grants per user, so concurrent grants cannot overshoot the cap.
    sqlx::query(locked!(USER_ROW))
        .bind(user_id)
        .fetch_optional(&mut **tx)
        .await?;
    let id: i64 = sqlx::query_scalar(INSERT_REFRESH_TOKEN)
        .bind(hash.as_bytes())
        .bind(client.as_str())
        .bind(user_id)
        .bind(scopes)
        .bind(code_hash.as_bytes())
        .bind(now.0)
        .bind(now.0)
        .bind(auth_time.map(|t| t.0))
        .fetch_one(&mut **tx)
        .await?;
    let evicted: Option<i64> = sqlx::query_scalar(REFRESH_TOKEN_AT)
        .bind(user_id)
        .bind(client.as_str())
        .bind(first_evicted_refresh_token(limits))
        .fetch_optional(&mut **tx)
        .await?;
    if let Some(evicted) = evicted {
        sqlx::query(EVICT_REFRESH_TOKENS)
            .bind(user_id)
            .bind(client.as_str())
            .bind(evicted)
            .execute(&mut **tx)
            .await?;
    }
    Ok(id)
}

/// Stores an access token; `refresh_id` names the refresh token it was minted from, `code_hash`
/// the code it was issued for.
#[allow(clippy::too_many_arguments)] // one column each; a struct would only rename them
pub(super) async fn insert_access_token(
    tx: &mut Tx,
    access: &NewAccess,
    client: &ClientId,
    user_id: i64,
    scopes: &str,
    refresh_id: Option<i64>,
    code_hash: Option<&SecretHash>,
    now: Timestamp,
) -> Answer<()> {
    sqlx::query(INSERT_ACCESS_TOKEN)
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

/// RFC 6749 §4.1.2: a code used twice revokes every token it issued (the access tokens minted
/// from its refresh token by cascade).
async fn revoke_code_family(tx: &mut Tx, code_hash: &SecretHash) -> Answer<()> {
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
