//! PostgreSQL: OpenID Connect's signing keys (`verbs::KeyVerbs`). Nodes starting together may
//! each try to make an algorithm's first key; the unique index on the active key per algorithm
//! lets exactly one win.

use grantd_core::Timestamp;

use super::{conflict, detached, Answer, PostgresStore};
use crate::model::SigningKeyRecord;
use crate::rows::SigningKeyRow;
use crate::statements::{
    INSERT_FIRST_SIGNING_KEY, INSERT_SIGNING_KEY, RETIRE_SIGNING_KEY, SIGNING_KEYS,
};
use crate::verbs::KeyVerbs;
use crate::StoreError;

impl KeyVerbs for PostgresStore {
    async fn signing_keys(&self, now: Timestamp) -> Answer<Vec<SigningKeyRecord>> {
        let rows = sqlx::query_as::<_, SigningKeyRow>(SIGNING_KEYS)
            .bind(now.0)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(SigningKeyRecord::from).collect())
    }

    async fn add_first_signing_key(&self, key: &SigningKeyRecord) -> Answer<bool> {
        let pool = self.pool.clone();
        let key = key.clone();
        detached(async move {
            let mut tx = pool.begin().await?;
            let added = sqlx::query(INSERT_FIRST_SIGNING_KEY)
                .bind(&key.kid)
                .bind(&key.alg)
                .bind(&key.public_jwk)
                .bind(&key.encrypted_private_key)
                .bind(key.created_at.0)
                .execute(&mut *tx)
                .await
                .map_err(StoreError::from);
            match added {
                Ok(done) => {
                    tx.commit().await?;
                    Ok(done.rows_affected() > 0)
                }
                // Another node made this algorithm's active key between our check and our
                // insert.
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
        let pool = self.pool.clone();
        let key = key.clone();
        detached(async move {
            let mut tx = pool.begin().await?;
            sqlx::query(RETIRE_SIGNING_KEY)
                .bind(key.created_at.0)
                .bind(retired_expires_at.0)
                .bind(&key.alg)
                .execute(&mut *tx)
                .await?;
            sqlx::query(INSERT_SIGNING_KEY)
                .bind(&key.kid)
                .bind(&key.alg)
                .bind(&key.public_jwk)
                .bind(&key.encrypted_private_key)
                .bind(key.created_at.0)
                .execute(&mut *tx)
                .await
                .map_err(conflict("another key was made at the same time"))?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }
}
