//! SQLite: the token verbs (`verbs::TokenVerbs`). Writes run on the writer thread as closures
//! over its connection; reads on this thread's read-only connection.

use rusqlite::Connection;

use grantd_core::consent::Consent;
use grantd_core::device::DeviceGrant;
use grantd_core::grant::{AccessGrant, CodeGrant, RefreshGrant, Rejection};
use grantd_core::secret::SecretHash;
use grantd_core::throttle::{self, MintQuota, Minted};
use grantd_core::{ClientId, Limits, OAuthError, Scopes, Timestamp};

use super::query::{all, execute, one, scalar};
use super::SqliteStore;
use crate::model::{
    AccessIssue, CodeIssue, NewAccess, NewCode, NewTokens, Redemption, RefreshOutcome, TokenInfo,
    User,
};
use crate::rows::*;
use crate::statements::*;
use crate::verbs::TokenVerbs;
use crate::{Answer, StoreError};

impl TokenVerbs for SqliteStore {
    async fn add_code(&self, code: &NewCode, now: Timestamp, limits: &Limits) -> Answer<CodeIssue> {
        let (code, limits) = (code.clone(), limits.clone());
        self.writer
            .run(move |db| add_code(db, &code, now, &limits))
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
        let (code_hash, tokens, limits) = (*code_hash, tokens.clone(), limits.clone());
        self.writer
            .run(move |db| redeem_code(db, &code_hash, decide, &tokens, now, &limits))
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
        let (refresh_hash, client, rotate_to) = (*refresh_hash, client.clone(), rotate_to.copied());
        let (access, limits) = (access.clone(), limits.clone());
        self.writer
            .run(move |db| {
                let mint = Mint {
                    access: &access,
                    rotate_to: rotate_to.as_ref(),
                };
                refresh(db, &refresh_hash, &client, decide, &mint, now, &limits)
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
        let (access, client, scopes) = (access.clone(), client.clone(), scopes.to_stored());
        let limits = limits.clone();
        self.writer
            .run(move |db| {
                let token = AccessToken {
                    client: client.as_str(),
                    user_id,
                    scopes: &scopes,
                    refresh_id: None,
                    code_hash: None,
                };
                client_credentials(db, &access, &token, now, &limits)
            })
            .await
    }

    async fn access_grant(
        &self,
        access_hash: &SecretHash,
        now: Timestamp,
    ) -> Answer<Option<AccessGrant>> {
        self.readers.read(|db| {
            let row: Option<AccessRow> =
                one(db, LIVE_ACCESS_TOKEN, (access_hash.as_bytes(), now.0))?;
            Ok(row.map(AccessGrant::from))
        })
    }

    async fn access_owner(
        &self,
        access_hash: &SecretHash,
        now: Timestamp,
    ) -> Answer<Option<(AccessGrant, User)>> {
        self.readers.read(|db| {
            let row: Option<AccessOwnerRow> = one(
                db,
                LIVE_ACCESS_TOKEN_AND_OWNER,
                (access_hash.as_bytes(), now.0),
            )?;
            Ok(row.map(<(AccessGrant, User)>::from))
        })
    }

    async fn token_info(&self, hash: &SecretHash, now: Timestamp) -> Answer<Option<TokenInfo>> {
        self.readers.read(|db| {
            let access: Option<AccessRow> = one(db, LIVE_ACCESS_TOKEN, (hash.as_bytes(), now.0))?;
            if let Some(access) = access {
                return Ok(Some(AccessGrant::from(access).into()));
            }
            let refresh: Option<RefreshRow> = one(db, REFRESH_TOKEN, (hash.as_bytes(),))?;
            Ok(refresh.map(TokenInfo::from))
        })
    }

    async fn revoke(&self, hash: &SecretHash, client: Option<&ClientId>) -> Answer<bool> {
        let (hash, client) = (*hash, client.cloned());
        self.writer
            .run(move |db| {
                let client = client.as_ref().map(ClientId::as_str);
                if execute(db, REVOKE_REFRESH_TOKEN, (hash.as_bytes(), client))? > 0 {
                    return Ok(true);
                }
                execute(db, KEEP_LAST_USE_OF_ACCESS_TOKEN, (hash.as_bytes(),))?;
                Ok(execute(db, REVOKE_ACCESS_TOKEN, (hash.as_bytes(), client))? > 0)
            })
            .await
    }

    async fn sweep(&self, now: Timestamp) -> Answer<u64> {
        let writer = self.writer.clone();
        // On a task of its own, so that a caller who stops waiting does not stop it half-way.
        let sweep = tokio::spawn(async move {
            let mut removed = 0;
            let mut after = 0;
            // A chunk per write, so other verbs get the writer in between.
            while let Some((last, deleted)) =
                writer.run(move |db| sweep_chunk(db, after, now)).await?
            {
                removed += deleted;
                after = last;
            }
            let small_tables = writer.run(move |db| {
                let mut removed = 0;
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
                    removed += execute(db, sql, (cutoff.0,))? as u64;
                }
                Ok(removed)
            });
            Ok(removed + small_tables.await?)
        });
        sweep.await.unwrap_or(Err(StoreError::Unavailable))
    }
}

/// The access tokens with ids just past `after`, if any of them has expired: deletes those,
/// keeping their refresh tokens' last use; the chunk's last id and how many went. `None` once
/// a chunk has nothing expired (tokens are made in id order, so the rest are newer).
fn sweep_chunk(db: &Connection, after: i64, now: Timestamp) -> Answer<Option<(i64, u64)>> {
    let chunk: Vec<ExpiryRow> = all(db, ACCESS_TOKENS_AFTER, (after, SWEEP_CHUNK))?;
    let Some(last) = sweep_through(&chunk, now) else {
        return Ok(None);
    };
    execute(db, KEEP_LAST_USE_OF_EXPIRED, (after, last, now.0))?;
    let deleted = execute(db, DELETE_EXPIRED_ACCESS_TOKENS, (after, last, now.0))?;
    Ok(Some((last, deleted as u64)))
}

fn add_code(db: &Connection, code: &NewCode, now: Timestamp, limits: &Limits) -> Answer<CodeIssue> {
    let grant = &code.grant;
    let client = grant.client_id.as_str();
    let user = grant.user_id;
    let newest: i64 = scalar(db, NEWEST_CODE_SEQ, (client, user))?.unwrap_or(0);
    let made: Option<i64> = match throttle::code_to_check(newest, limits) {
        Some(seq) => scalar(db, CODE_MADE_AT, (client, user, seq))?,
        None => None,
    };
    if let Err(retry) = throttle::code_throttle(made.map(Timestamp), limits, now) {
        return Ok(CodeIssue::Throttled {
            retry_after: retry.0,
        });
    }
    execute(
        db,
        INSERT_CODE,
        (
            grant.code_hash.as_bytes(),
            client,
            grant.user_id,
            &grant.redirect_uri,
            grant.scopes.to_stored(),
            grant.issue_refresh_token,
            &grant.code_challenge,
            &code.description,
            now.0,
            grant.expires_at.0,
            newest + 1,
            &grant.oidc.nonce,
            grant.oidc.auth_time.map(|t| t.0),
        ),
    )?;
    if let Some(approved) = &code.record_consent {
        let prior: Option<ConsentRow> = one(db, CONSENT, (grant.user_id, client))?;
        let consent = Consent::merge(
            prior.map(Consent::from),
            &approved.scopes,
            &approved.redirect_uri,
        );
        let row = ConsentRow::of(&consent);
        execute(
            db,
            UPSERT_CONSENT,
            (grant.user_id, client, row.scopes, row.redirect_uris, now.0),
        )?;
    }
    Ok(CodeIssue::Issued)
}

fn redeem_code(
    db: &Connection,
    code_hash: &SecretHash,
    decide: impl FnOnce(&CodeGrant) -> Result<(), Rejection>,
    tokens: &NewTokens,
    now: Timestamp,
    limits: &Limits,
) -> Answer<Redemption> {
    let code = code_hash.as_bytes();
    let row: Option<CodeRow> = one(db, CODE_BY_HASH, (code,))?;
    let Some(grant) = row.and_then(CodeRow::into_grant) else {
        return Ok(Redemption::Unknown);
    };
    match decide(&grant) {
        Ok(()) => {}
        Err(kept @ Rejection::Refuse { burn: false, .. }) => return Ok(Redemption::Rejected(kept)),
        Err(Rejection::Replayed) => {
            execute(db, REVOKE_CODE_REFRESH_TOKENS, (code,))?;
            execute(db, REVOKE_CODE_ACCESS_TOKENS, (code,))?;
            return Ok(Redemption::Rejected(Rejection::Replayed));
        }
        Err(burned) => {
            execute(db, MARK_REDEEMED, (now.0, code))?;
            return Ok(Redemption::Rejected(burned));
        }
    }
    let scopes = grant.scopes.to_stored();
    let client = grant.client_id.as_str();
    let refresh_id = if grant.issue_refresh_token {
        let token = AccessToken {
            client,
            user_id: grant.user_id,
            scopes: &scopes,
            refresh_id: None,
            code_hash: Some(code),
        };
        insert_refresh_token(
            db,
            &tokens.refresh_hash,
            &token,
            grant.oidc.auth_time,
            now,
            limits,
        )?
    } else {
        None
    };
    let token = AccessToken {
        client,
        user_id: grant.user_id,
        scopes: &scopes,
        refresh_id,
        code_hash: Some(code),
    };
    insert_access_token(db, &tokens.access, &token, now)?;
    execute(
        db,
        MARK_REDEEMED_WITH_TOKENS,
        (now.0, refresh_id, tokens.access.hash.as_bytes(), code),
    )?;
    Ok(Redemption::Issued(grant))
}

/// What a refresh stores: the access token, and the refresh token's new hash if it rotates.
struct Mint<'a> {
    access: &'a NewAccess,
    rotate_to: Option<&'a SecretHash>,
}

fn refresh(
    db: &Connection,
    refresh_hash: &SecretHash,
    client: &ClientId,
    decide: impl FnOnce(&RefreshGrant) -> Result<Scopes, OAuthError>,
    mint: &Mint<'_>,
    now: Timestamp,
    limits: &Limits,
) -> Answer<RefreshOutcome> {
    let presented = refresh_hash.as_bytes();
    let row: Option<RefreshGrantRow> = one(db, REFRESH_GRANT, (presented,))?;
    let Some(grant) = row.and_then(|row| row.held_by(client)) else {
        // RFC 9700 §4.14.2: a retired token of a rotating family, presented again, was stolen
        // or replayed; the family goes, whoever holds its current token.
        let retired: Option<RetiredRow> = one(db, RETIRED_REFRESH_TOKEN, (presented,))?;
        if let Some(family) = retired.and_then(|row| row.held_by(client)) {
            execute(db, REVOKE_REFRESH_FAMILY, (family,))?;
            return Ok(RefreshOutcome::Replayed);
        }
        return Ok(RefreshOutcome::Unknown);
    };
    let scopes = match decide(&grant) {
        Ok(scopes) => scopes,
        Err(e) => return Ok(RefreshOutcome::Rejected(e)),
    };
    let minted: Vec<MintedRow> = all(db, ACCESS_TOKENS_OF_REFRESH, (grant.id,))?;
    let minted: Vec<Minted> = minted.into_iter().map(Minted::from).collect();
    let doomed =
        match throttle::mint_bookkeeping(&minted, now, MintQuota::per_refresh_token(limits)) {
            Ok(doomed) => doomed,
            Err(retry) => {
                return Ok(RefreshOutcome::Throttled {
                    retry_after: retry.0,
                })
            }
        };
    let stored = scopes.to_stored();
    let token = AccessToken {
        client: grant.client_id.as_str(),
        user_id: grant.user_id,
        scopes: &stored,
        refresh_id: Some(grant.id),
        code_hash: None,
    };
    insert_access_token(db, mint.access, &token, now)?;
    for id in doomed {
        execute(db, DELETE_ACCESS_TOKEN, (id,))?;
    }
    if let Some(rotated) = mint.rotate_to {
        execute(db, ROTATE_REFRESH_TOKEN, (rotated.as_bytes(), grant.id))?;
        execute(db, RETIRE_REFRESH_TOKEN, (presented, grant.id, now.0))?;
    }
    Ok(RefreshOutcome::Issued {
        user_id: grant.user_id,
        scopes,
        auth_time: grant.auth_time,
    })
}

/// Mints a `client_credentials` access token within the client's quota: its tokens so far
/// decide (`throttle::mint_bookkeeping`), the new one is stored and the doomed ones go.
fn client_credentials(
    db: &Connection,
    access: &NewAccess,
    token: &AccessToken<'_>,
    now: Timestamp,
    limits: &Limits,
) -> Answer<AccessIssue> {
    let minted: Vec<MintedRow> = all(db, CLIENT_CREDENTIALS_TOKENS, (token.client,))?;
    let minted: Vec<Minted> = minted.into_iter().map(Minted::from).collect();
    let doomed =
        match throttle::mint_bookkeeping(&minted, now, MintQuota::client_credentials(limits)) {
            Ok(doomed) => doomed,
            Err(retry) => {
                return Ok(AccessIssue::Throttled {
                    retry_after: retry.0,
                })
            }
        };
    insert_access_token(db, access, token, now)?;
    for id in doomed {
        execute(db, DELETE_ACCESS_TOKEN, (id,))?;
    }
    Ok(AccessIssue::Issued)
}

/// Who a token about to be stored speaks for, and what stands behind it.
pub(super) struct AccessToken<'a> {
    pub client: &'a str,
    pub user_id: i64,
    pub scopes: &'a str,
    pub refresh_id: Option<i64>,
    /// The code (or device code) it was issued for.
    pub code_hash: Option<&'a [u8]>,
}

/// Stores a refresh token for `token`'s user and client (its `refresh_id` is ignored), within
/// the per-(user, client) cap: beyond it the oldest go, and their access tokens with them
/// (cascade). Its id.
pub(super) fn insert_refresh_token(
    db: &Connection,
    hash: &SecretHash,
    token: &AccessToken<'_>,
    auth_time: Option<Timestamp>,
    now: Timestamp,
    limits: &Limits,
) -> Answer<Option<i64>> {
    let (client, user) = (token.client, token.user_id);
    let id: Option<i64> = scalar(
        db,
        INSERT_REFRESH_TOKEN,
        (
            hash.as_bytes(),
            client,
            user,
            token.scopes,
            token.code_hash,
            now.0,
            now.0,
            auth_time.map(|t| t.0),
        ),
    )?;
    let first = throttle::first_evicted_refresh_token(limits);
    if let Some(evicted) = scalar::<i64>(db, REFRESH_TOKEN_AT, (user, client, first))? {
        execute(db, EVICT_REFRESH_TOKENS, (user, client, evicted))?;
    }
    Ok(id)
}

pub(super) fn insert_access_token(
    db: &Connection,
    access: &NewAccess,
    token: &AccessToken<'_>,
    now: Timestamp,
) -> Answer<()> {
    execute(
        db,
        INSERT_ACCESS_TOKEN,
        (
            access.hash.as_bytes(),
            token.client,
            token.user_id,
            token.scopes,
            token.refresh_id,
            token.code_hash,
            now.0,
            access.expires_at.0,
        ),
    )?;
    Ok(())
}
