//! PostgreSQL: the sessions verbs (`verbs::SessionVerbs`): browser sessions, pending consents
//! and remembered consent, what the redirect flow and the sign-in pages keep between requests.
//! Kept apart from the token endpoint's verbs: these serve the browser, not the client.

use grantd_core::consent::Consent;
use grantd_core::secret::SecretHash;
use grantd_core::{ClientId, Scopes, Timestamp};

use super::{detached, Answer, PostgresStore};
use crate::model::User;
use crate::rows::{ConsentRow, PendingConsentRow, UserRow};
use crate::statements::{
    CONSENT, DELETE_SESSION, INSERT_PENDING_CONSENT, INSERT_SESSION, SESSION_STARTED, SESSION_USER,
    TAKE_PENDING_CONSENT,
};
use crate::verbs::SessionVerbs;

impl SessionVerbs for PostgresStore {
    async fn add_session(
        &self,
        hash: &SecretHash,
        user_id: i64,
        user_agent: &str,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Answer<()> {
        let pool = self.pool.clone();
        let (hash, user_agent) = (*hash, user_agent.to_owned());
        detached(async move {
            let mut tx = pool.begin().await?;
            sqlx::query(INSERT_SESSION)
                .bind(hash.as_bytes())
                .bind(user_id)
                .bind(user_agent)
                .bind(now.0)
                .bind(expires_at.0)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    async fn session_user(&self, hash: &SecretHash, now: Timestamp) -> Answer<Option<User>> {
        let row = sqlx::query_as::<_, UserRow>(SESSION_USER)
            .bind(hash.as_bytes())
            .bind(now.0)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(User::from))
    }

    async fn session_started(
        &self,
        hash: &SecretHash,
        now: Timestamp,
    ) -> Answer<Option<Timestamp>> {
        let started: Option<i64> = sqlx::query_scalar(SESSION_STARTED)
            .bind(hash.as_bytes())
            .bind(now.0)
            .fetch_optional(&self.pool)
            .await?;
        Ok(started.map(Timestamp))
    }

    async fn remove_session(&self, hash: &SecretHash) -> Answer<()> {
        let pool = self.pool.clone();
        let hash = *hash;
        detached(async move {
            let mut tx = pool.begin().await?;
            sqlx::query(DELETE_SESSION)
                .bind(hash.as_bytes())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    async fn add_pending_consent(
        &self,
        id_hash: &SecretHash,
        session_hash: &SecretHash,
        request: &str,
        expires_at: Timestamp,
    ) -> Answer<()> {
        let pool = self.pool.clone();
        let (id_hash, session_hash, request) = (*id_hash, *session_hash, request.to_owned());
        detached(async move {
            let mut tx = pool.begin().await?;
            sqlx::query(INSERT_PENDING_CONSENT)
                .bind(id_hash.as_bytes())
                .bind(session_hash.as_bytes())
                .bind(request)
                .bind(expires_at.0)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    async fn take_pending_consent(
        &self,
        id_hash: &SecretHash,
        session_hash: &SecretHash,
        now: Timestamp,
    ) -> Answer<Option<String>> {
        let pool = self.pool.clone();
        let (id_hash, session_hash) = (*id_hash, *session_hash);
        detached(async move {
            let mut tx = pool.begin().await?;
            // Deleted whether or not it expired: an expired one is of no use either.
            let row = sqlx::query_as::<_, PendingConsentRow>(TAKE_PENDING_CONSENT)
                .bind(id_hash.as_bytes())
                .bind(session_hash.as_bytes())
                .fetch_optional(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(row.and_then(|row| row.request_if_live(now)))
        })
        .await
    }

    async fn consent(&self, user_id: i64, client: &ClientId) -> Answer<Option<Scopes>> {
        let row = sqlx::query_as::<_, ConsentRow>(CONSENT)
            .bind(user_id)
            .bind(client.as_str())
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|row| Consent::from(row).scopes))
    }

    async fn consent_for(
        &self,
        user_id: i64,
        client: &ClientId,
        redirect_uri: &str,
    ) -> Answer<Option<Scopes>> {
        let row = sqlx::query_as::<_, ConsentRow>(CONSENT)
            .bind(user_id)
            .bind(client.as_str())
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.and_then(|row| Consent::from(row).scopes_for(redirect_uri).cloned()))
    }
}
