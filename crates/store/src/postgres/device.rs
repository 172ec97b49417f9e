//! PostgreSQL: the device-flow verbs (`verbs::DeviceVerbs`). A poll locks its device code's
//! row, so two nodes polling one code serialise and its tokens are issued once; a guess locks
//! the two tallies it counts in (the global one first), so parallel guesses cannot race past
//! the throttle; a decision is one conditional `UPDATE`.

use grantd_core::device::{self, GuessTallies, PollAnswer};
use grantd_core::grant::AccessType;
use grantd_core::secret::SecretHash;
use grantd_core::signin::Tally;
use grantd_core::source::Source;
use grantd_core::{ClientId, Limits, Timestamp};

use super::tokens::{insert_access_token, insert_refresh_token};
use super::{conflict, detached, locked, Answer, PostgresStore, Tx};
use crate::model::{DeviceDecision, DeviceLookup, DevicePoll, NewDeviceCode, NewTokens};
use crate::rows::{device_decision_columns, device_status_column, DeviceRow, TallyRow};
use crate::statements::{
    DECIDE_DEVICE_CODE, DELETE_DEVICE_GUESS_TALLY, DELETE_EXPIRED_USER_CODE, DEVICE_CODE_BY_HASH,
    DEVICE_CODE_BY_USER_CODE, DEVICE_GUESS_TALLY, INSERT_DEVICE_CODE, RECORD_DEVICE_POLL,
    UPSERT_DEVICE_GUESS_TALLY,
};
use crate::verbs::DeviceVerbs;

/// A tally row to lock, made first if there is none (a zero tally has no row otherwise).
const INSERT_ZERO_DEVICE_GUESS_TALLY: &str = "INSERT INTO device_guesses
    (source, failures, since, last_at, forget_at) VALUES ($1, 0, 0, 0, 0)
    ON CONFLICT (source) DO NOTHING";

impl DeviceVerbs for PostgresStore {
    async fn add_device_code(&self, code: &NewDeviceCode, now: Timestamp) -> Answer<()> {
        let pool = self.pool.clone();
        let code = code.clone();
        detached(async move {
            let mut tx = pool.begin().await?;
            let user_code = code.user_code_hash.as_bytes();
            sqlx::query(DELETE_EXPIRED_USER_CODE)
                .bind(user_code)
                .bind(now.0)
                .execute(&mut *tx)
                .await?;
            let grant = &code.grant;
            sqlx::query(INSERT_DEVICE_CODE)
                .bind(code.device_code_hash.as_bytes())
                .bind(user_code)
                .bind(grant.client_id.as_str())
                .bind(grant.scopes.to_stored())
                .bind(grant.access_type == AccessType::Offline)
                .bind(grant.interval_secs)
                .bind(now.0)
                .bind(grant.expires_at.0)
                .execute(&mut *tx)
                .await
                .map_err(conflict("a live device code has this user code"))?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    async fn find_device_code(
        &self,
        user_code_hash: &SecretHash,
        source: &Source,
        now: Timestamp,
        limits: &Limits,
    ) -> Answer<DeviceLookup> {
        let pool = self.pool.clone();
        let (user_code_hash, keys, limits) =
            (*user_code_hash, device::guess_keys(source), limits.clone());
        detached(async move {
            let mut tx = pool.begin().await?;
            let before = GuessTallies {
                global: lock_tally(&mut tx, &keys[0]).await?,
                source: lock_tally(&mut tx, &keys[1]).await?,
            };
            if let Err(retry_after) = device::admit_guess(&before, now, &limits) {
                // Nothing changes; the rollback drops any zero rows made for the locks.
                return Ok(DeviceLookup::Throttled { retry_after });
            }
            let row = sqlx::query_as::<_, DeviceRow>(DEVICE_CODE_BY_USER_CODE)
                .bind(user_code_hash.as_bytes())
                .fetch_optional(&mut *tx)
                .await?;
            let found = row
                .and_then(DeviceRow::into_found)
                .filter(|(_, grant)| grant.awaits_user(now));
            let after = device::after_guess(before, found.is_some(), now, &limits);
            write_tally(&mut tx, &keys[0], after.global, &limits).await?;
            write_tally(&mut tx, &keys[1], after.source, &limits).await?;
            tx.commit().await?;
            Ok(DeviceLookup::from(found))
        })
        .await
    }

    async fn decide_device_code(
        &self,
        user_code_hash: &SecretHash,
        decision: &DeviceDecision,
        now: Timestamp,
    ) -> Answer<bool> {
        let pool = self.pool.clone();
        let (user_code_hash, decision) = (*user_code_hash, decision.clone());
        detached(async move {
            let (status, user_id, location, auth_time) = device_decision_columns(&decision);
            let decided = sqlx::query(DECIDE_DEVICE_CODE)
                .bind(status)
                .bind(user_id)
                .bind(location)
                .bind(auth_time)
                .bind(user_code_hash.as_bytes())
                .bind(now.0)
                .execute(&pool)
                .await?
                .rows_affected();
            Ok(decided == 1)
        })
        .await
    }

    async fn poll_device_code(
        &self,
        device_code_hash: &SecretHash,
        client: &ClientId,
        tokens: &NewTokens,
        now: Timestamp,
        limits: &Limits,
    ) -> Answer<DevicePoll> {
        let pool = self.pool.clone();
        let (hash, client) = (*device_code_hash, client.clone());
        let (tokens, limits) = (tokens.clone(), limits.clone());
        detached(async move {
            let mut tx = pool.begin().await?;
            // The row lock serialises polls of one code across nodes: tokens are issued once.
            let row = sqlx::query_as::<_, DeviceRow>(locked!(DEVICE_CODE_BY_HASH))
                .bind(hash.as_bytes())
                .fetch_optional(&mut *tx)
                .await?;
            let Some(grant) = row.and_then(DeviceRow::into_grant) else {
                return Ok(DevicePoll::Unknown);
            };
            let decision = device::poll(&grant, &client, now);
            if let Some(update) = decision.update {
                let status = if update.used {
                    "used"
                } else {
                    device_status_column(&grant.status)
                };
                sqlx::query(RECORD_DEVICE_POLL)
                    .bind(update.interval_secs)
                    .bind(update.last_poll_at.0)
                    .bind(status)
                    .bind(hash.as_bytes())
                    .execute(&mut *tx)
                    .await?;
            }
            let PollAnswer::Issue { user_id, auth_time } = decision.answer else {
                tx.commit().await?;
                return Ok(DevicePoll::Answered(decision.answer));
            };
            let scopes = grant.scopes.to_stored();
            let refresh = device::issues_refresh_token(grant.access_type);
            let refresh_id = if refresh {
                let granted = (&client, user_id, scopes.as_str());
                let id = insert_refresh_token(
                    &mut tx,
                    &tokens.refresh_hash,
                    granted,
                    &hash,
                    auth_time,
                    now,
                    &limits,
                )
                .await?;
                Some(id)
            } else {
                None
            };
            insert_access_token(
                &mut tx,
                &tokens.access,
                &client,
                user_id,
                &scopes,
                refresh_id,
                Some(&hash),
                now,
            )
            .await?;
            tx.commit().await?;
            Ok(DevicePoll::Issued {
                scopes: grant.scopes,
                refresh,
                user_id,
                auth_time,
            })
        })
        .await
    }
}

async fn lock_tally(tx: &mut Tx, source: &str) -> Answer<Tally> {
    sqlx::query(INSERT_ZERO_DEVICE_GUESS_TALLY)
        .bind(source)
        .execute(&mut **tx)
        .await?;
    let row = sqlx::query_as::<_, TallyRow>(locked!(DEVICE_GUESS_TALLY))
        .bind(source)
        .fetch_one(&mut **tx)
        .await?;
    Ok(row.into())
}

/// A zero tally's row goes.
async fn write_tally(tx: &mut Tx, source: &str, tally: Tally, limits: &Limits) -> Answer<()> {
    if tally.is_zero() {
        sqlx::query(DELETE_DEVICE_GUESS_TALLY)
            .bind(source)
            .execute(&mut **tx)
            .await?;
    } else {
        sqlx::query(UPSERT_DEVICE_GUESS_TALLY)
            .bind(source)
            .bind(tally.failures)
            .bind(tally.since.0)
            .bind(tally.last.0)
            .bind(device::guess_forget_at(&tally, limits).0)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}
