//! PostgreSQL: the accounts verbs (`verbs::AccountVerbs`): users, their sign-in bookkeeping and
//! what they see of their own sessions and grants. Kept apart from the token endpoint's verbs,
//! which run on every request, while these run on a person's clicks.

use grantd_core::secret::SecretHash;
use grantd_core::throttle::{after_login_failure, LoginFailures};
use grantd_core::{ClientId, Limits, Timestamp};

use super::{conflict, detached, Answer, PostgresStore, AGGREGATE_SCOPES, FOR_UPDATE};
use crate::model::{ConnectedApp, SessionSummary, User};
use crate::rows::{AppRow, SessionRow, UserRow};
use crate::statements::{
    connected_apps, CLEAR_LOGIN_FAILURES, DELETE_USER_SESSION, END_OTHER_SESSIONS, INSERT_USER,
    REVOKE_GRANT, SESSIONS_OF, SET_LOGIN_FAILURES, SET_PASSWORD, SET_USER_NAME, USERS,
    USER_BY_EMAIL, USER_BY_ID, USER_COUNT,
};
use crate::verbs::AccountVerbs;

impl AccountVerbs for PostgresStore {
    async fn add_user(
        &self,
        email: &str,
        name: &str,
        password_hash: &str,
        is_admin: bool,
        now: Timestamp,
    ) -> Answer<i64> {
        let pool = self.pool.clone();
        let (email, name, password_hash) =
            (email.to_owned(), name.to_owned(), password_hash.to_owned());
        detached(async move {
            let mut tx = pool.begin().await?;
            let id: i64 = sqlx::query_scalar(INSERT_USER)
                .bind(email)
                .bind(name)
                .bind(password_hash)
                .bind(is_admin)
                .bind(now.0)
                .fetch_one(&mut *tx)
                .await
                .map_err(conflict("a user with this email exists"))?;
            tx.commit().await?;
            Ok(id)
        })
        .await
    }

    async fn user_count(&self) -> Answer<i64> {
        Ok(sqlx::query_scalar(USER_COUNT).fetch_one(&self.pool).await?)
    }

    async fn user_by_email(&self, email: &str) -> Answer<Option<User>> {
        let row = sqlx::query_as::<_, UserRow>(USER_BY_EMAIL)
            .bind(email)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(User::from))
    }

    async fn user(&self, id: i64) -> Answer<Option<User>> {
        let row = sqlx::query_as::<_, UserRow>(USER_BY_ID)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(User::from))
    }

    async fn users(&self) -> Answer<Vec<User>> {
        let rows = sqlx::query_as::<_, UserRow>(USERS)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(User::from).collect())
    }

    async fn note_login_failure(
        &self,
        user_id: i64,
        now: Timestamp,
        limits: &Limits,
    ) -> Answer<()> {
        let pool = self.pool.clone();
        let limits = limits.clone();
        detached(async move {
            let mut tx = pool.begin().await?;
            // Locked, so that failures counted by several nodes at once are all counted.
            let row = sqlx::query_as::<_, UserRow>(&format!("{USER_BY_ID}{FOR_UPDATE}"))
                .bind(user_id)
                .fetch_optional(&mut *tx)
                .await?;
            let Some(row) = row else {
                return Ok(());
            };
            let before = LoginFailures {
                count: row.failed_logins,
                locked_until: Timestamp(row.locked_until),
            };
            let after = after_login_failure(before, now, &limits);
            sqlx::query(SET_LOGIN_FAILURES)
                .bind(after.count)
                .bind(after.locked_until.0)
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    async fn clear_login_failures(&self, user_id: i64) -> Answer<()> {
        let pool = self.pool.clone();
        detached(async move {
            let mut tx = pool.begin().await?;
            sqlx::query(CLEAR_LOGIN_FAILURES)
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    async fn set_password(
        &self,
        user_id: i64,
        password_hash: &str,
        keep_session: &SecretHash,
    ) -> Answer<()> {
        let pool = self.pool.clone();
        let (password_hash, keep_session) = (password_hash.to_owned(), *keep_session);
        detached(async move {
            let mut tx = pool.begin().await?;
            sqlx::query(SET_PASSWORD)
                .bind(password_hash)
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
            sqlx::query(END_OTHER_SESSIONS)
                .bind(user_id)
                .bind(keep_session.as_bytes())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    async fn set_user_name(&self, user_id: i64, name: &str) -> Answer<()> {
        let pool = self.pool.clone();
        let name = name.to_owned();
        detached(async move {
            let mut tx = pool.begin().await?;
            sqlx::query(SET_USER_NAME)
                .bind(name)
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    async fn sessions_of(&self, user_id: i64, now: Timestamp) -> Answer<Vec<SessionSummary>> {
        let rows = sqlx::query_as::<_, SessionRow>(SESSIONS_OF)
            .bind(user_id)
            .bind(now.0)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(SessionSummary::from).collect())
    }

    async fn remove_user_session(&self, user_id: i64, handle: &str) -> Answer<bool> {
        // A handle that is no hash names no session.
        let Some(hash) = SecretHash::from_hex(handle) else {
            return Ok(false);
        };
        let pool = self.pool.clone();
        detached(async move {
            let mut tx = pool.begin().await?;
            let done = sqlx::query(DELETE_USER_SESSION)
                .bind(hash.as_bytes())
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(done.rows_affected() == 1)
        })
        .await
    }

    async fn connected_apps(&self, user_id: i64) -> Answer<Vec<ConnectedApp>> {
        let rows = sqlx::query_as::<_, AppRow>(&connected_apps(AGGREGATE_SCOPES))
            .bind(user_id)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(ConnectedApp::from).collect())
    }

    async fn revoke_grant(&self, user_id: i64, client: &ClientId) -> Answer<()> {
        let pool = self.pool.clone();
        let client = client.clone();
        detached(async move {
            let mut tx = pool.begin().await?;
            for sql in REVOKE_GRANT {
                sqlx::query(sql)
                    .bind(user_id)
                    .bind(client.as_str())
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(())
        })
        .await
    }
}
