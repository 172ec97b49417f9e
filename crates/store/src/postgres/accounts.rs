//! PostgreSQL: the accounts verbs (`verbs::AccountVerbs`): users, their sign-in bookkeeping and
//! what they see of their own sessions and grants. Kept apart from the token endpoint's verbs,
//! which run on every request, while these run on a person's clicks.

use grantd_core::secret::SecretHash;
use grantd_core::signin::{self, Attempt, Gate, Tallies, Tally};
use grantd_core::{ClientId, Limits, Timestamp};

use super::{conflict, detached, locked, Answer, PostgresStore, Tx, AGGREGATE_SCOPES};
use crate::model::{ConnectedApp, SessionSummary, User};
use crate::rows::{AppRow, SessionRow, TallyRow, UserRow};
use crate::statements::{
    connected_apps, DELETE_SIGNIN_TALLY, DELETE_USER_SESSION, EMAIL_HOME, END_OTHER_SESSIONS,
    INSERT_USER, REMEMBER_EMAIL_HOME, REVOKE_GRANT, SESSIONS_OF, SET_PASSWORD, SET_USER_NAME,
    SIGNIN_TALLY, UNLOCK_ACCOUNT, UPSERT_SIGNIN_TALLY, USERS, USER_BY_EMAIL, USER_BY_ID,
    USER_COUNT,
};

/// A tally's row as a placeholder, so that there is a row to lock before anyone has counted
/// anything there; `write_tallies` deletes it again if it stays zero.
const INSERT_ZERO_SIGNIN_TALLY: &str = "INSERT INTO signin_tallies
    (account_key, source, failures, since, last_at, forget_at) VALUES ($1, $2, 0, 0, 0, 0)
    ON CONFLICT (account_key, source) DO NOTHING";
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

    async fn begin_sign_in(
        &self,
        attempt: &Attempt,
        now: Timestamp,
        limits: &Limits,
    ) -> Answer<Gate> {
        let pool = self.pool.clone();
        let (keys, limits) = (signin::keys(attempt), limits.clone());
        detached(async move {
            let mut tx = pool.begin().await?;
            let before = lock_tallies(&mut tx, &keys).await?;
            let (gate, after) = signin::admit(before, now, &limits);
            write_tallies(&mut tx, &keys, after, &limits).await?;
            tx.commit().await?;
            Ok(gate)
        })
        .await
    }

    async fn sign_in_succeeded(
        &self,
        attempt: &Attempt,
        now: Timestamp,
        limits: &Limits,
    ) -> Answer<()> {
        let pool = self.pool.clone();
        let (keys, limits) = (signin::keys(attempt), limits.clone());
        detached(async move {
            let mut tx = pool.begin().await?;
            let before = lock_tallies(&mut tx, &keys).await?;
            let after = signin::after_success(before, now, &limits);
            write_tallies(&mut tx, &keys, after, &limits).await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    async fn sign_in_tallies(&self, attempt: &Attempt) -> Answer<Tallies> {
        let mut found = [Tally::ZERO; 3];
        for (slot, (account, source)) in found.iter_mut().zip(signin::keys(attempt)) {
            let row = sqlx::query_as::<_, TallyRow>(SIGNIN_TALLY)
                .bind(account)
                .bind(source)
                .fetch_optional(&self.pool)
                .await?;
            *slot = row.map_or(Tally::ZERO, Tally::from);
        }
        Ok(signin::from_keyed(found))
    }

    async fn unlock_account(&self, account: &SecretHash) -> Answer<u64> {
        let pool = self.pool.clone();
        let account = *account;
        detached(async move {
            let mut tx = pool.begin().await?;
            let done = sqlx::query(UNLOCK_ACCOUNT)
                .bind(account.as_bytes())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(done.rows_affected())
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

    async fn remember_email_home(
        &self,
        email_key: &SecretHash,
        location: &str,
        now: Timestamp,
    ) -> Answer<()> {
        let pool = self.pool.clone();
        let (key, location) = (*email_key, location.to_owned());
        detached(async move {
            sqlx::query(REMEMBER_EMAIL_HOME)
                .bind(key.as_bytes())
                .bind(location)
                .bind(now.0)
                .execute(&pool)
                .await?;
            Ok(())
        })
        .await
    }

    async fn email_home(&self, email_key: &SecretHash) -> Answer<Option<String>> {
        Ok(sqlx::query_scalar(EMAIL_HOME)
            .bind(email_key.as_bytes())
            .fetch_optional(&self.pool)
            .await?)
    }
}

/// The tallies at `keys` (`signin::keys`), each row made if missing and then locked, row by row
/// in the keys' order: attempts that share a tally (one source, one account) serialise on it,
/// on every node, and since all take their rows in one order, none waits for another in a
/// cycle.
async fn lock_tallies(tx: &mut Tx, keys: &[(Vec<u8>, String); 3]) -> Answer<Tallies> {
    let lock = locked!(SIGNIN_TALLY);
    let mut found = [Tally::ZERO; 3];
    for (slot, (account, source)) in found.iter_mut().zip(keys) {
        sqlx::query(INSERT_ZERO_SIGNIN_TALLY)
            .bind(account)
            .bind(source)
            .execute(&mut **tx)
            .await?;
        let row = sqlx::query_as::<_, TallyRow>(lock)
            .bind(account)
            .bind(source)
            .fetch_one(&mut **tx)
            .await?;
        *slot = row.into();
    }
    Ok(signin::from_keyed(found))
}

/// Writes every tally back, changed or not (a refused attempt costs the same write as a
/// checked one); a zero tally's row goes.
async fn write_tallies(
    tx: &mut Tx,
    keys: &[(Vec<u8>, String); 3],
    tallies: Tallies,
    limits: &Limits,
) -> Answer<()> {
    for ((account, source), tally) in keys.iter().zip(signin::to_keyed(tallies)) {
        if tally.is_zero() {
            sqlx::query(DELETE_SIGNIN_TALLY)
                .bind(account)
                .bind(source)
                .execute(&mut **tx)
                .await?;
        } else {
            sqlx::query(UPSERT_SIGNIN_TALLY)
                .bind(account)
                .bind(source)
                .bind(tally.failures)
                .bind(tally.since.0)
                .bind(tally.last.0)
                .bind(signin::forget_at(&tally, limits).0)
                .execute(&mut **tx)
                .await?;
        }
    }
    Ok(())
}
