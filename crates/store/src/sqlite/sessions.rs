//! SQLite: the sessions verbs (`verbs::SessionVerbs`).

use super::*;

impl SessionVerbs for SqliteStore {
    async fn add_session(
        &self,
        hash: &SecretHash,
        user_id: i64,
        user_agent: &str,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Answer<()> {
        todo!()
    }

    async fn session_user(&self, hash: &SecretHash, now: Timestamp) -> Answer<Option<User>> {
        todo!()
    }

    async fn remove_session(&self, hash: &SecretHash) -> Answer<()> {
        todo!()
    }

    async fn add_pending_consent(
        &self,
        id_hash: &SecretHash,
        session_hash: &SecretHash,
        request: &str,
        expires_at: Timestamp,
    ) -> Answer<()> {
        todo!()
    }

    async fn take_pending_consent(
        &self,
        id_hash: &SecretHash,
        session_hash: &SecretHash,
        now: Timestamp,
    ) -> Answer<Option<String>> {
        todo!()
    }

    async fn consent(&self, user_id: i64, client: &ClientId) -> Answer<Option<Scopes>> {
        todo!()
    }

    async fn consent_for(
        &self,
        user_id: i64,
        client: &ClientId,
        redirect_uri: &str,
    ) -> Answer<Option<Scopes>> {
        todo!()
    }
}
