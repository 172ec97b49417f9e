//! SQLite: OpenID Connect's signing keys (`verbs::KeyVerbs`).

use grantd_core::Timestamp;

use super::query::{all, execute};
use super::SqliteStore;
use crate::model::SigningKeyRecord;
use crate::rows::SigningKeyRow;
use crate::statements::*;
use crate::verbs::KeyVerbs;
use crate::{Answer, StoreError};

impl KeyVerbs for SqliteStore {
    async fn signing_keys(&self, now: Timestamp) -> Answer<Vec<SigningKeyRecord>> {
        self.readers.read(|db| {
            let rows: Vec<SigningKeyRow> = all(db, SIGNING_KEYS, (now.0,))?;
            Ok(rows.into_iter().map(SigningKeyRecord::from).collect())
        })
    }

    async fn add_first_signing_key(&self, key: &SigningKeyRecord) -> Answer<bool> {
        let key = key.clone();
        self.writer
            .run(move |db| {
                let added = execute(
                    db,
                    INSERT_FIRST_SIGNING_KEY,
                    (
                        &key.kid,
                        &key.alg,
                        &key.public_jwk,
                        &key.encrypted_private_key,
                        key.created_at.0,
                    ),
                );
                match added {
                    Ok(rows) => Ok(rows > 0),
                    // Another process made this algorithm's active key between our check and
                    // our insert.
                    Err(StoreError::Conflict(_)) => Ok(false),
                    Err(e) => Err(e),
                }
            })
            .await
    }

    async fn rotate_signing_key(
        &self,
        key: &SigningKeyRecord,
        retired_expires_at: Timestamp,
    ) -> Answer<()> {
        let key = key.clone();
        self.writer
            .run(move |db| {
                execute(
                    db,
                    RETIRE_SIGNING_KEY,
                    (key.created_at.0, retired_expires_at.0, &key.alg),
                )?;
                execute(
                    db,
                    INSERT_SIGNING_KEY,
                    (
                        &key.kid,
                        &key.alg,
                        &key.public_jwk,
                        &key.encrypted_private_key,
                        key.created_at.0,
                    ),
                )
                .map_err(|e| e.conflict_as("another key was made at the same time"))?;
                Ok(())
            })
            .await
    }
}
