//! SQLite: the device-flow verbs (`verbs::DeviceVerbs`). Every one of them writes, so each runs
//! on the writer thread, whole; SQLite's single writer is what makes a poll, a decision and a
//! guess atomic.

use rusqlite::Connection;

use grantd_core::device::{self, GuessTallies, PollAnswer};
use grantd_core::secret::SecretHash;
use grantd_core::signin::Tally;
use grantd_core::source::Source;
use grantd_core::{ClientId, Limits, Timestamp};

use super::query::{execute, one};
use super::tokens::{insert_access_token, insert_refresh_token, AccessToken};
use super::SqliteStore;
use crate::model::{DeviceDecision, DeviceLookup, DevicePoll, NewDeviceCode, NewTokens};
use crate::rows::{device_decision_columns, device_status_column, DeviceRow, TallyRow};
use crate::statements::*;
use crate::verbs::DeviceVerbs;
use crate::Answer;

impl DeviceVerbs for SqliteStore {
    async fn add_device_code(&self, code: &NewDeviceCode, now: Timestamp) -> Answer<()> {
        let code = code.clone();
        self.writer
            .run(move |db| {
                let user_code = code.user_code_hash.as_bytes();
                execute(db, DELETE_EXPIRED_USER_CODE, (user_code, now.0))?;
                let grant = &code.grant;
                execute(
                    db,
                    INSERT_DEVICE_CODE,
                    (
                        code.device_code_hash.as_bytes(),
                        user_code,
                        grant.client_id.as_str(),
                        grant.scopes.to_stored(),
                        grant.access_type == grantd_core::grant::AccessType::Offline,
                        grant.interval_secs,
                        now.0,
                        grant.expires_at.0,
                    ),
                )
                .map_err(|e| e.conflict_as("a live device code has this user code"))?;
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
        let (user_code_hash, keys, limits) =
            (*user_code_hash, device::guess_keys(source), limits.clone());
        self.writer
            .run(move |db| {
                let before = GuessTallies {
                    global: tally(db, &keys[0])?,
                    source: tally(db, &keys[1])?,
                };
                if let Err(retry_after) = device::admit_guess(&before, now, &limits) {
                    return Ok(DeviceLookup::Throttled { retry_after });
                }
                let row: Option<DeviceRow> =
                    one(db, DEVICE_CODE_BY_USER_CODE, (user_code_hash.as_bytes(),))?;
                let found = row
                    .and_then(DeviceRow::into_found)
                    .filter(|(_, grant)| grant.awaits_user(now));
                let after = device::after_guess(before, found.is_some(), now, &limits);
                write_tally(db, &keys[0], after.global, &limits)?;
                write_tally(db, &keys[1], after.source, &limits)?;
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
        let (user_code_hash, decision) = (*user_code_hash, decision.clone());
        self.writer
            .run(move |db| {
                let (status, user_id, location, auth_time) = device_decision_columns(&decision);
                let decided = execute(
                    db,
                    DECIDE_DEVICE_CODE,
                    (
                        status,
                        user_id,
                        location,
                        auth_time,
                        user_code_hash.as_bytes(),
                        now.0,
                    ),
                )?;
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
        let (hash, client) = (*device_code_hash, client.clone());
        let (tokens, limits) = (tokens.clone(), limits.clone());
        self.writer
            .run(move |db| poll(db, &hash, &client, &tokens, now, &limits))
            .await
    }
}

fn poll(
    db: &Connection,
    hash: &SecretHash,
    client: &ClientId,
    tokens: &NewTokens,
    now: Timestamp,
    limits: &Limits,
) -> Answer<DevicePoll> {
    let code = hash.as_bytes();
    let row: Option<DeviceRow> = one(db, DEVICE_CODE_BY_HASH, (code,))?;
    let Some(grant) = row.and_then(DeviceRow::into_grant) else {
        return Ok(DevicePoll::Unknown);
    };
    let decision = device::poll(&grant, client, now);
    if let Some(update) = decision.update {
        let status = if update.used {
            "used"
        } else {
            device_status_column(&grant.status)
        };
        execute(
            db,
            RECORD_DEVICE_POLL,
            (update.interval_secs, update.last_poll_at.0, status, code),
        )?;
    }
    let PollAnswer::Issue { user_id, auth_time } = decision.answer else {
        return Ok(DevicePoll::Answered(decision.answer));
    };
    let scopes = grant.scopes.to_stored();
    let mut token = AccessToken {
        client: client.as_str(),
        user_id,
        scopes: &scopes,
        refresh_id: None,
        code_hash: Some(code),
    };
    let refresh = device::issues_refresh_token(grant.access_type);
    if refresh {
        token.refresh_id =
            insert_refresh_token(db, &tokens.refresh_hash, &token, auth_time, now, limits)?;
    }
    insert_access_token(db, &tokens.access, &token, now)?;
    Ok(DevicePoll::Issued {
        scopes: grant.scopes,
        refresh,
        user_id,
        auth_time,
    })
}

fn tally(db: &Connection, source: &str) -> Answer<Tally> {
    let row: Option<TallyRow> = one(db, DEVICE_GUESS_TALLY, (source,))?;
    Ok(row.map_or(Tally::ZERO, Tally::from))
}

/// A zero tally has no row.
fn write_tally(db: &Connection, source: &str, tally: Tally, limits: &Limits) -> Answer<()> {
    if tally.is_zero() {
        execute(db, DELETE_DEVICE_GUESS_TALLY, (source,))?;
    } else {
        let forget_at = device::guess_forget_at(&tally, limits);
        execute(
            db,
            UPSERT_DEVICE_GUESS_TALLY,
            (
                source,
                tally.failures,
                tally.since.0,
                tally.last.0,
                forget_at.0,
            ),
        )?;
    }
    Ok(())
}
