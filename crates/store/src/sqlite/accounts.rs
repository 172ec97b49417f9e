//! SQLite: users, their sign-in bookkeeping, and what they see of their own grants and
//! sessions (`verbs::AccountVerbs`).

use rusqlite::Connection;

use grantd_core::secret::SecretHash;
use grantd_core::signin::{self, Attempt, Gate, Tallies, Tally};
use grantd_core::{ClientId, Limits, Timestamp};

use super::query::{all, execute, one, scalar};
use super::SqliteStore;
use crate::model::{ConnectedApp, SessionSummary, User};
use crate::rows::{AppRow, SessionRow, TallyRow, UserRow};
use crate::statements::*;
use crate::verbs::AccountVerbs;
use crate::Answer;

/// SQLite's string aggregate, for `connected_apps`.
const AGGREGATE_SCOPES: &str = "group_concat(scopes, ' ')";

impl AccountVerbs for SqliteStore {
    async fn add_user(
        &self,
        email: &str,
        name: &str,
        password_hash: &str,
        is_admin: bool,
        now: Timestamp,
    ) -> Answer<i64> {
        let (email, name, hash) = (email.to_owned(), name.to_owned(), password_hash.to_owned());
        self.writer
            .run(move |db| {
                let id: Option<i64> = scalar(db, INSERT_USER, (email, name, hash, is_admin, now.0))
                    .map_err(|e| e.conflict_as("a user with this email exists"))?;
                id.ok_or(crate::StoreError::Unavailable)
            })
            .await
    }

    async fn user_count(&self) -> Answer<i64> {
        self.readers
            .read(|db| Ok(scalar(db, USER_COUNT, ())?.unwrap_or(0)))
    }

    async fn user_by_email(&self, email: &str) -> Answer<Option<User>> {
        self.readers
            .read(|db| Ok(one::<UserRow>(db, USER_BY_EMAIL, (email,))?.map(User::from)))
    }

    async fn user(&self, id: i64) -> Answer<Option<User>> {
        self.readers
            .read(|db| Ok(one::<UserRow>(db, USER_BY_ID, (id,))?.map(User::from)))
    }

    async fn users(&self) -> Answer<Vec<User>> {
        self.readers.read(|db| {
            Ok(all::<UserRow>(db, USERS, ())?
                .into_iter()
                .map(User::from)
                .collect())
        })
    }

    async fn begin_sign_in(
        &self,
        attempt: &Attempt,
        now: Timestamp,
        limits: &Limits,
    ) -> Answer<Gate> {
        let (keys, limits) = (signin::keys(attempt), limits.clone());
        // The writer runs one verb at a time: the read, the decision and the write are atomic.
        self.writer
            .run(move |db| {
                let before = read_tallies(db, &keys)?;
                let (gate, after) = signin::admit(before, now, &limits);
                write_tallies(db, &keys, after, &limits)?;
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
        let (keys, limits) = (signin::keys(attempt), limits.clone());
        self.writer
            .run(move |db| {
                let before = read_tallies(db, &keys)?;
                let after = signin::after_success(before, now, &limits);
                write_tallies(db, &keys, after, &limits)
            })
            .await
    }

    async fn sign_in_tallies(&self, attempt: &Attempt) -> Answer<Tallies> {
        let keys = signin::keys(attempt);
        self.readers.read(|db| read_tallies(db, &keys))
    }

    async fn unlock_account(&self, account: &SecretHash) -> Answer<u64> {
        let account = *account;
        self.writer
            .run(move |db| Ok(execute(db, UNLOCK_ACCOUNT, (account.as_bytes(),))? as u64))
            .await
    }

    async fn set_password(
        &self,
        user_id: i64,
        password_hash: &str,
        keep_session: &SecretHash,
    ) -> Answer<()> {
        let (hash, keep) = (password_hash.to_owned(), *keep_session);
        self.writer
            .run(move |db| {
                execute(db, SET_PASSWORD, (hash, user_id))?;
                execute(db, END_OTHER_SESSIONS, (user_id, keep.as_bytes()))?;
                Ok(())
            })
            .await
    }

    async fn set_user_name(&self, user_id: i64, name: &str) -> Answer<()> {
        let name = name.to_owned();
        self.writer
            .run(move |db| {
                execute(db, SET_USER_NAME, (name, user_id))?;
                Ok(())
            })
            .await
    }

    async fn sessions_of(&self, user_id: i64, now: Timestamp) -> Answer<Vec<SessionSummary>> {
        self.readers.read(|db| {
            let rows: Vec<SessionRow> = all(db, SESSIONS_OF, (user_id, now.0))?;
            Ok(rows.into_iter().map(SessionSummary::from).collect())
        })
    }

    async fn remove_user_session(&self, user_id: i64, handle: &str) -> Answer<bool> {
        let Some(hash) = SecretHash::from_hex(handle) else {
            return Ok(false);
        };
        self.writer
            .run(move |db| Ok(execute(db, DELETE_USER_SESSION, (hash.as_bytes(), user_id))? == 1))
            .await
    }

    async fn connected_apps(&self, user_id: i64) -> Answer<Vec<ConnectedApp>> {
        self.readers.read(|db| {
            let rows: Vec<AppRow> = all(db, &connected_apps(AGGREGATE_SCOPES), (user_id,))?;
            Ok(rows.into_iter().map(ConnectedApp::from).collect())
        })
    }

    async fn revoke_grant(&self, user_id: i64, client: &ClientId) -> Answer<()> {
        let client = client.clone();
        self.writer
            .run(move |db| {
                for sql in REVOKE_GRANT {
                    execute(db, sql, (user_id, client.as_str()))?;
                }
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
        let (key, location) = (*email_key, location.to_owned());
        self.writer
            .run(move |db| {
                execute(db, REMEMBER_EMAIL_HOME, (key.as_bytes(), location, now.0))?;
                Ok(())
            })
            .await
    }

    async fn email_home(&self, email_key: &SecretHash) -> Answer<Option<String>> {
        self.readers
            .read(|db| scalar(db, EMAIL_HOME, (email_key.as_bytes(),)))
    }
}

/// The tallies at `keys` (`signin::keys`); a missing row is a zero tally.
fn read_tallies(db: &Connection, keys: &[(Vec<u8>, String); 3]) -> Answer<Tallies> {
    let mut found = [Tally::ZERO; 3];
    for (slot, (account, source)) in found.iter_mut().zip(keys) {
        if let Some(row) = one::<TallyRow>(db, SIGNIN_TALLY, (account, source))? {
            *slot = row.into();
        }
    }
    Ok(signin::from_keyed(found))
}

/// Writes every tally back, changed or not (so that a refused attempt costs the same write as
/// a checked one); a zero tally's row goes.
fn write_tallies(
    db: &Connection,
    keys: &[(Vec<u8>, String); 3],
    tallies: Tallies,
    limits: &Limits,
) -> Answer<()> {
    for ((account, source), tally) in keys.iter().zip(signin::to_keyed(tallies)) {
        if tally.is_zero() {
            execute(db, DELETE_SIGNIN_TALLY, (account, source))?;
        } else {
            let forget_at = signin::forget_at(&tally, limits);
            execute(
                db,
                UPSERT_SIGNIN_TALLY,
                (
                    account,
                    source,
                    tally.failures,
                    tally.since.0,
                    tally.last.0,
                    forget_at.0,
                ),
            )?;
        }
    }
    Ok(())
}
