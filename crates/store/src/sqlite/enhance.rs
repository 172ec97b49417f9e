//! SQLite: incremental authorization's verbs (`verbs::EnhanceVerbs`). The writes run whole on
//! the writer thread, so an enhance token is used once and a grant's scopes are read and
//! widened in one step; the look-up is a read.

use rusqlite::Connection;

use grantd_core::consent::Consent;
use grantd_core::enhance::{enhanced_scopes, EnhanceDecision, EnhanceGrant};
use grantd_core::secret::SecretHash;
use grantd_core::{ClientId, Scopes, Timestamp};

use super::query::{execute, one, scalar};
use super::SqliteStore;
use crate::model::NewEnhanceToken;
use crate::rows::{ConsentRow, EnhanceRow};
use crate::statements::*;
use crate::verbs::EnhanceVerbs;
use crate::Answer;

impl EnhanceVerbs for SqliteStore {
    async fn add_enhance_token(
        &self,
        refresh_hash: &SecretHash,
        client: &ClientId,
        token: &NewEnhanceToken,
        now: Timestamp,
    ) -> Answer<bool> {
        let (refresh_hash, client, token) = (*refresh_hash, client.clone(), token.clone());
        self.writer
            .run(move |db| {
                let added = execute(
                    db,
                    INSERT_ENHANCE_TOKEN,
                    (
                        token.hash.as_bytes(),
                        now.0,
                        token.expires_at.0,
                        refresh_hash.as_bytes(),
                        client.as_str(),
                    ),
                )?;
                Ok(added == 1)
            })
            .await
    }

    async fn enhance_grant(
        &self,
        token_hash: &SecretHash,
        now: Timestamp,
    ) -> Answer<Option<EnhanceGrant>> {
        self.readers.read(|db| {
            let row: Option<EnhanceRow> =
                one(db, LIVE_ENHANCE_TOKEN, (token_hash.as_bytes(), now.0))?;
            Ok(row.map(EnhanceGrant::from))
        })
    }

    async fn use_enhance_token(
        &self,
        token_hash: &SecretHash,
        client: &ClientId,
        user_id: i64,
        decision: &EnhanceDecision,
        now: Timestamp,
    ) -> Answer<bool> {
        let (token_hash, client, decision) = (*token_hash, client.clone(), decision.clone());
        self.writer
            .run(move |db| use_token(db, &token_hash, &client, user_id, &decision, now))
            .await
    }
}

fn use_token(
    db: &Connection,
    token_hash: &SecretHash,
    client: &ClientId,
    user_id: i64,
    decision: &EnhanceDecision,
    now: Timestamp,
) -> Answer<bool> {
    let taken: Option<i64> = scalar(
        db,
        TAKE_ENHANCE_TOKEN,
        (token_hash.as_bytes(), now.0, client.as_str(), user_id),
    )?;
    let Some(refresh_id) = taken else {
        return Ok(false);
    };
    let EnhanceDecision::Accept {
        extra,
        redirect_uri,
    } = decision
    else {
        return Ok(true);
    };
    let Some(granted) = scalar::<String>(db, REFRESH_SCOPES_BY_ID, (refresh_id,))? else {
        return Ok(true);
    };
    let scopes = enhanced_scopes(&Scopes::from_stored(&granted), extra);
    execute(db, SET_REFRESH_SCOPES, (scopes.to_stored(), refresh_id))?;
    let prior: Option<ConsentRow> = one(db, CONSENT, (user_id, client.as_str()))?;
    let consent = Consent::merge(prior.map(Consent::from), extra, redirect_uri);
    let row = ConsentRow::of(&consent);
    execute(
        db,
        UPSERT_CONSENT,
        (
            user_id,
            client.as_str(),
            row.scopes,
            row.redirect_uris,
            now.0,
        ),
    )?;
    Ok(true)
}
