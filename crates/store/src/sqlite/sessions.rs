//! SQLite: browser sessions, pending consents and remembered consent (`verbs::SessionVerbs`).

use grantd_core::consent::Consent;
use grantd_core::secret::SecretHash;
use grantd_core::{ClientId, Scopes, Timestamp};

use super::query::{execute, one, scalar};
use super::SqliteStore;
use crate::model::User;
use crate::rows::{ConsentRow, PendingConsentRow, UserRow};
use crate::statements::*;
use crate::verbs::SessionVerbs;
use crate::Answer;

impl SessionVerbs for SqliteStore {
    async fn add_session(
        &self,
        hash: &SecretHash,
        user_id: i64,
        user_agent: &str,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Answer<()> {
        let (hash, user_agent) = (*hash, user_agent.to_owned());
        self.writer
            .run(move |db| {
                execute(
                    db,
                    INSERT_SESSION,
                    (hash.as_bytes(), user_id, user_agent, now.0, expires_at.0),
                )?;
                Ok(())
            })
            .await
    }

    async fn session_user(&self, hash: &SecretHash, now: Timestamp) -> Answer<Option<User>> {
        self.readers.read(|db| {
            let row: Option<UserRow> = one(db, SESSION_USER, (hash.as_bytes(), now.0))?;
            Ok(row.map(User::from))
        })
    }

    async fn remove_session(&self, hash: &SecretHash) -> Answer<()> {
        let hash = *hash;
        self.writer
            .run(move |db| {
                execute(db, DELETE_SESSION, (hash.as_bytes(),))?;
                Ok(())
            })
            .await
    }

    async fn session_started(
        &self,
        hash: &SecretHash,
        now: Timestamp,
    ) -> Answer<Option<Timestamp>> {
        self.readers.read(|db| {
            let started: Option<i64> = scalar(db, SESSION_STARTED, (hash.as_bytes(), now.0))?;
            Ok(started.map(Timestamp))
        })
    }

    async fn add_pending_consent(
        &self,
        id_hash: &SecretHash,
        session_hash: &SecretHash,
        request: &str,
        expires_at: Timestamp,
    ) -> Answer<()> {
        let (id_hash, session_hash, request) = (*id_hash, *session_hash, request.to_owned());
        self.writer
            .run(move |db| {
                execute(
                    db,
                    INSERT_PENDING_CONSENT,
                    (
                        id_hash.as_bytes(),
                        session_hash.as_bytes(),
                        request,
                        expires_at.0,
                    ),
                )?;
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
        let (id_hash, session_hash) = (*id_hash, *session_hash);
        let taken: Option<PendingConsentRow> = self
            .writer
            .run(move |db| {
                one(
                    db,
                    TAKE_PENDING_CONSENT,
                    (id_hash.as_bytes(), session_hash.as_bytes()),
                )
            })
            .await?;
        Ok(taken.and_then(|row| row.request_if_live(now)))
    }

    async fn consent(&self, user_id: i64, client: &ClientId) -> Answer<Option<Scopes>> {
        self.readers.read(|db| {
            let row: Option<ConsentRow> = one(db, CONSENT, (user_id, client.as_str()))?;
            Ok(row.map(|row| Consent::from(row).scopes))
        })
    }

    async fn consent_for(
        &self,
        user_id: i64,
        client: &ClientId,
        redirect_uri: &str,
    ) -> Answer<Option<Scopes>> {
        self.readers.read(|db| {
            let row: Option<ConsentRow> = one(db, CONSENT, (user_id, client.as_str()))?;
            Ok(row
                .map(Consent::from)
                .and_then(|consent| consent.scopes_for(redirect_uri).cloned()))
        })
    }
}
