//! SQLite: the accounts verbs (`verbs::AccountVerbs`).

use super::*;

impl AccountVerbs for SqliteStore {
    async fn add_user(
        &self,
        email: &str,
        name: &str,
        password_hash: &str,
        is_admin: bool,
        now: Timestamp,
    ) -> Answer<i64> {
        todo!()
    }

    async fn user_count(&self) -> Answer<i64> {
        todo!()
    }

    async fn user_by_email(&self, email: &str) -> Answer<Option<User>> {
        todo!()
    }

    async fn user(&self, id: i64) -> Answer<Option<User>> {
        todo!()
    }

    async fn users(&self) -> Answer<Vec<User>> {
        todo!()
    }

    async fn note_login_failure(
        &self,
        user_id: i64,
        now: Timestamp,
        limits: &Limits,
    ) -> Answer<()> {
        todo!()
    }

    async fn clear_login_failures(&self, user_id: i64) -> Answer<()> {
        todo!()
    }

    async fn set_password(
        &self,
        user_id: i64,
        password_hash: &str,
        keep_session: &SecretHash,
    ) -> Answer<()> {
        todo!()
    }

    async fn set_user_name(&self, user_id: i64, name: &str) -> Answer<()> {
        todo!()
    }

    async fn sessions_of(&self, user_id: i64, now: Timestamp) -> Answer<Vec<SessionSummary>> {
        todo!()
    }

    async fn remove_user_session(&self, user_id: i64, handle: &str) -> Answer<bool> {
        todo!()
    }

    async fn connected_apps(&self, user_id: i64) -> Answer<Vec<ConnectedApp>> {
        todo!()
    }

    async fn revoke_grant(&self, user_id: i64, client: &ClientId) -> Answer<()> {
        todo!()
    }
}
