//! PostgreSQL: incremental authorization's verbs (`verbs::EnhanceVerbs`). Using an enhance
//! token is one conditional `DELETE`, so of two nodes answering the same consent one wins; an
//! accept then locks the refresh token's row before widening its scopes, so two enhance tokens
//! of one grant decided at once both land.

use grantd_core::consent::Consent;
use grantd_core::enhance::{enhanced_scopes, EnhanceDecision, EnhanceGrant};
use grantd_core::secret::SecretHash;
use grantd_core::{ClientId, Scopes, Timestamp};

use super::{detached, Answer, PostgresStore};
use crate::model::NewEnhanceToken;
use crate::rows::{ConsentRow, EnhanceRow};
use crate::statements::{
    CONSENT, INSERT_ENHANCE_TOKEN, LIVE_ENHANCE_TOKEN, SET_REFRESH_SCOPES, TAKE_ENHANCE_TOKEN,
    UPSERT_CONSENT,
};
use crate::verbs::EnhanceVerbs;

/// The grant's scopes, its row locked until the transaction ends.
const LOCK_REFRESH_SCOPES: &str = "SELECT scopes FROM refresh_tokens WHERE id = $1 FOR UPDATE";

impl EnhanceVerbs for PostgresStore {
    async fn add_enhance_token(
        &self,
        refresh_hash: &SecretHash,
        client: &ClientId,
        token: &NewEnhanceToken,
        now: Timestamp,
    ) -> Answer<bool> {
        let pool = self.pool.clone();
        let (refresh_hash, client, token) = (*refresh_hash, client.clone(), token.clone());
        detached(async move {
            let added = sqlx::query(INSERT_ENHANCE_TOKEN)
                .bind(token.hash.as_bytes())
                .bind(now.0)
                .bind(token.expires_at.0)
                .bind(refresh_hash.as_bytes())
                .bind(client.as_str())
                .execute(&pool)
                .await?;
            Ok(added.rows_affected() == 1)
        })
        .await
    }

    async fn enhance_grant(
        &self,
        token_hash: &SecretHash,
        now: Timestamp,
    ) -> Answer<Option<EnhanceGrant>> {
        let row = sqlx::query_as::<_, EnhanceRow>(LIVE_ENHANCE_TOKEN)
            .bind(token_hash.as_bytes())
            .bind(now.0)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(EnhanceGrant::from))
    }

    async fn use_enhance_token(
        &self,
        token_hash: &SecretHash,
        client: &ClientId,
        user_id: i64,
        decision: &EnhanceDecision,
        now: Timestamp,
    ) -> Answer<bool> {
        let pool = self.pool.clone();
        let (token_hash, client, decision) = (*token_hash, client.clone(), decision.clone());
        detached(async move {
            let mut tx = pool.begin().await?;
            let taken: Option<i64> = sqlx::query_scalar(TAKE_ENHANCE_TOKEN)
                .bind(token_hash.as_bytes())
                .bind(now.0)
                .bind(client.as_str())
                .bind(user_id)
                .fetch_optional(&mut *tx)
                .await?;
            let Some(refresh_id) = taken else {
                return Ok(false);
            };
            if let EnhanceDecision::Accept {
                extra,
                redirect_uri,
            } = &decision
            {
                let granted: Option<String> = sqlx::query_scalar(LOCK_REFRESH_SCOPES)
                    .bind(refresh_id)
                    .fetch_optional(&mut *tx)
                    .await?;
                if let Some(granted) = granted {
                    let scopes = enhanced_scopes(&Scopes::from_stored(&granted), extra);
                    sqlx::query(SET_REFRESH_SCOPES)
                        .bind(scopes.to_stored())
                        .bind(refresh_id)
                        .execute(&mut *tx)
                        .await?;
                    let prior = sqlx::query_as::<_, ConsentRow>(CONSENT)
                        .bind(user_id)
                        .bind(client.as_str())
                        .fetch_optional(&mut *tx)
                        .await?;
                    let consent = Consent::merge(prior.map(Consent::from), extra, redirect_uri);
                    let row = ConsentRow::of(&consent);
                    sqlx::query(UPSERT_CONSENT)
                        .bind(user_id)
                        .bind(client.as_str())
                        .bind(row.scopes)
                        .bind(row.redirect_uris)
                        .bind(now.0)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            tx.commit().await?;
            Ok(true)
        })
        .await
    }
}
