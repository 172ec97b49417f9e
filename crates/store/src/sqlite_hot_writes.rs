//! SQLite's token-endpoint and redirect-flow writes: the statements of the `hot_writes` verbs
//! (PostgreSQL runs those), run synchronously on the writer's rusqlite connection inside the
//! group-commit batch (`GroupWriter::run`). Each function is one verb's body: it returns the
//! verb's outcome (the batch keeps its rows) or an error (its savepoint is rolled back).

use rusqlite::{Connection, OptionalExtension};

use crate::group_commit::fast_error;
use crate::sqlite::SqliteStore;
use crate::sqlite_lookups::Columns;
use crate::verbs::prelude::*;

impl SqliteStore {
    /// Stores a code unless the client has made `codes_per_window` codes in the window; records
    /// the consent it carries in the same transaction.
    pub async fn add_code(
        &self,
        code: &NewCode,
        now: Timestamp,
        limits: &Limits,
    ) -> Result<CodeIssue, StoreError> {
        let (code, limits) = (code.clone(), limits.clone());
        self.writer
            .run(move |db| add_code(db, &code, now, &limits).map_err(fast_error))
            .await
    }

    /// Redeems a code: `decide` (the core's rules) sees the stored grant; on success the code
    /// is marked used and the tokens are stored, the refresh token within the per-(user,
    /// client) cap. A replayed code revokes everything it issued.
    pub async fn redeem_code(
        &self,
        code_hash: &SecretHash,
        decide: impl FnOnce(&CodeGrant) -> Result<(), Rejection> + Send + 'static,
        tokens: &NewTokens,
        now: Timestamp,
        limits: &Limits,
    ) -> Result<Redemption, StoreError> {
        let (code_hash, tokens, limits) = (*code_hash, tokens.clone(), limits.clone());
        self.writer
            .run(move |db| {
                redeem_code(db, &code_hash, decide, &tokens, now, &limits).map_err(fast_error)
            })
            .await
    }

    /// Mints an access token from a refresh token held by `client`, within the throttle and
    /// the cap on active access tokens.
    pub async fn refresh(
        &self,
        refresh_hash: &SecretHash,
        client: &ClientId,
        decide: impl FnOnce(&RefreshGrant) -> Result<Scopes, OAuthError> + Send + 'static,
        access: &NewAccess,
        now: Timestamp,
        limits: &Limits,
    ) -> Result<RefreshOutcome, StoreError> {
        let (refresh_hash, client) = (*refresh_hash, client.clone());
        let (access, limits) = (access.clone(), limits.clone());
        self.writer
            .run(move |db| {
                refresh(db, &refresh_hash, &client, decide, &access, now, &limits)
                    .map_err(fast_error)
            })
            .await
    }

    /// Revokes a refresh token (with every access token minted from it) or an access token.
    /// With `client`, only that client's tokens are touched. Returns whether one was found.
    pub async fn revoke(
        &self,
        hash: &SecretHash,
        client: Option<&ClientId>,
    ) -> Result<bool, StoreError> {
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
}

fn execute(db: &Connection, sql: &str, params: impl rusqlite::Params) -> Result<usize, StoreError> {
    db.prepare_cached(sql)
        .and_then(|mut statement| statement.execute(params))
        .map_err(fast_error)
}

fn add_code(
    db: &Connection,
    code: &NewCode,
    now: Timestamp,
    limits: &Limits,
) -> rusqlite::Result<CodeIssue> {
    let grant = &code.grant;
    let client = grant.client_id.as_str();
    let newest: i64 = db
        .prepare_cached(NEWEST_CODE_SEQ)?
        .query_row((client,), |r| r.get(0))?;
    let made: Option<i64> = match code_to_check(newest, limits) {
        Some(seq) => db
            .prepare_cached(CODE_MADE_AT)?
            .query_row((client, seq), |r| r.get(0))
            .optional()?,
        None => None,
    };
    if let Some(retry_after) = code_throttle(made, limits, now) {
        return Ok(CodeIssue::Throttled { retry_after });
    }
    db.prepare_cached(INSERT_CODE)?.execute((
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
    ))?;
    if let Some(consent) = &code.record_consent {
        let prior: Option<(String, String)> = db
            .prepare_cached(CONSENT)?
            .query_row((grant.user_id, grant.client_id.as_str()), Columns::read)
            .optional()?;
        let (scopes, uris) = merge_consent(prior, consent);
        db.prepare_cached(UPSERT_CONSENT)?.execute((
            grant.user_id,
            grant.client_id.as_str(),
            scopes,
            uris,
            now.0,
        ))?;
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
) -> rusqlite::Result<Redemption> {
    let code = code_hash.as_bytes();
    let row: Option<CodeRow> = db
        .prepare_cached(CODE_BY_HASH)?
        .query_row((code,), Columns::read)
        .optional()?;
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
                db.prepare_cached(REVOKE_CODE_REFRESH_TOKENS)?
                    .execute((code,))?;
                db.prepare_cached(REVOKE_CODE_ACCESS_TOKENS)?
                    .execute((code,))?;
            } else {
                db.prepare_cached(MARK_REDEEMED)?.execute((now.0, code))?;
            }
            return Ok(Redemption::Rejected(rejection));
        }
    }
    let scopes = grant.scopes.to_stored();
    let client = grant.client_id.as_str();
    let refresh_id = if grant.issue_refresh_token {
        let id: i64 = db.prepare_cached(INSERT_REFRESH_TOKEN)?.query_row(
            (
                tokens.refresh_hash.as_bytes(),
                client,
                grant.user_id,
                &scopes,
                code,
                now.0,
                now.0,
            ),
            |r| r.get(0),
        )?;
        db.prepare_cached(EVICT_REFRESH_TOKENS)?.execute((
            grant.user_id,
            client,
            limits.refresh_tokens_per_grant,
        ))?;
        Some(id)
    } else {
        None
    };
    insert_access_token(
        db,
        &tokens.access,
        client,
        grant.user_id,
        &scopes,
        refresh_id,
        Some(code),
        now,
    )?;
    db.prepare_cached(MARK_REDEEMED_WITH_TOKENS)?.execute((
        now.0,
        refresh_id,
        tokens.access.hash.as_bytes(),
        code,
    ))?;
    Ok(Redemption::Issued(grant))
}

fn refresh(
    db: &Connection,
    refresh_hash: &SecretHash,
    client: &ClientId,
    decide: impl FnOnce(&RefreshGrant) -> Result<Scopes, OAuthError>,
    access: &NewAccess,
    now: Timestamp,
    limits: &Limits,
) -> rusqlite::Result<RefreshOutcome> {
    let row = db
        .prepare_cached(REFRESH_GRANT)?
        .query_row((refresh_hash.as_bytes(),), Columns::read)
        .optional()?;
    let Some(grant) = refresh_grant_held_by(row, client) else {
        return Ok(RefreshOutcome::Unknown);
    };
    let scopes = match decide(&grant) {
        Ok(scopes) => scopes,
        Err(e) => return Ok(RefreshOutcome::Rejected(e)),
    };
    let minted: Vec<MintedRow> = db
        .prepare_cached(ACCESS_TOKENS_OF_REFRESH)?
        .query_map((grant.id,), Columns::read)?
        .collect::<rusqlite::Result<_>>()?;
    let doomed = match refresh_bookkeeping(&minted, now, limits) {
        Ok(doomed) => doomed,
        Err(retry_after) => return Ok(RefreshOutcome::Throttled { retry_after }),
    };
    insert_access_token(
        db,
        access,
        grant.client_id.as_str(),
        grant.user_id,
        &scopes.to_stored(),
        Some(grant.id),
        None,
        now,
    )?;
    let mut delete = db.prepare_cached(DELETE_ACCESS_TOKEN)?;
    for id in doomed {
        delete.execute((id,))?;
    }
    Ok(RefreshOutcome::Issued {
        user_id: grant.user_id,
        scopes,
    })
}

#[allow(clippy::too_many_arguments)] // one column each, as in the verbs
fn insert_access_token(
    db: &Connection,
    access: &NewAccess,
    client: &str,
    user_id: i64,
    scopes: &str,
    refresh_id: Option<i64>,
    code_hash: Option<&[u8]>,
    now: Timestamp,
) -> rusqlite::Result<()> {
    db.prepare_cached(INSERT_ACCESS_TOKEN)?.execute((
        access.hash.as_bytes(),
        client,
        user_id,
        scopes,
        refresh_id,
        code_hash,
        now.0,
        access.expires_at.0,
    ))?;
    Ok(())
}
