//! PostgreSQL: the console verbs (`verbs::ConsoleVerbs`): the registry of clients and scopes
//! that administrators and developers manage. Kept apart because nothing here runs on the
//! token endpoint's path except the reads `client` and `registered`.

use grantd_core::oidc::SigningAlg;
use grantd_core::secret::SecretHash;
use grantd_core::{Client, ClientId, Scopes, Timestamp};

use super::{conflict, detached, Answer, PostgresStore};
use crate::model::{ClientUpdate, CodeSummary, EnabledDc, NewClient, ScopeEntry};
use crate::rows::{
    mirrored_away, stored_uris, ClientRow, CodeSummaryRow, EnabledDcRow, IdRow, ScopeRow,
};
use crate::statements::{
    CLIENTS, CLIENTS_ENABLED_FOR, CLIENTS_OF, CLIENT_BY_ID, CLIENT_DATACENTERS, CODES_OF,
    DELETE_CLIENT, DELETE_CLIENT_DATACENTER, INSERT_CLIENT, INSERT_SCOPE, MIRRORED_CLIENT_IDS,
    SCOPES, SCOPE_BY_KEY, SET_CLIENT_ID_TOKEN_ALG, SET_CLIENT_SECRET, UPDATE_CLIENT,
    UPSERT_CLIENT_DATACENTER, UPSERT_MIRRORED_CLIENT,
};
use crate::verbs::ConsoleVerbs;

impl ConsoleVerbs for PostgresStore {
    async fn add_scope(&self, name: &str, description: &str) -> Answer<()> {
        let pool = self.pool.clone();
        let (name, description) = (name.to_owned(), description.to_owned());
        detached(async move {
            let mut tx = pool.begin().await?;
            // The key is the name lower-cased: the registry compares case-insensitively.
            sqlx::query(INSERT_SCOPE)
                .bind(name.to_ascii_lowercase())
                .bind(name)
                .bind(description)
                .execute(&mut *tx)
                .await
                .map_err(conflict("this scope is registered"))?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    async fn scopes(&self) -> Answer<Vec<ScopeEntry>> {
        let rows = sqlx::query_as::<_, ScopeRow>(SCOPES)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .into_iter()
            .map(|row| (row.name, row.description))
            .collect())
    }

    async fn registered(&self, scopes: &Scopes) -> Answer<Result<Vec<ScopeEntry>, String>> {
        let mut found = Vec::new();
        for scope in scopes.iter() {
            let row = sqlx::query_as::<_, ScopeRow>(SCOPE_BY_KEY)
                .bind(scope.key())
                .fetch_optional(&self.pool)
                .await?;
            match row {
                Some(row) => found.push((row.name, row.description)),
                None => return Ok(Err(scope.as_str().to_owned())),
            }
        }
        Ok(Ok(found))
    }

    async fn add_client(&self, client: &NewClient, now: Timestamp) -> Answer<()> {
        let pool = self.pool.clone();
        let client = client.clone();
        detached(async move {
            let mut tx = pool.begin().await?;
            sqlx::query(INSERT_CLIENT)
                .bind(client.id.as_str())
                .bind(client.kind.as_str())
                .bind(&client.name)
                .bind(&client.homepage)
                .bind(stored_uris(&client.redirect_uris))
                .bind(client.secret_hash.as_ref().map(SecretHash::as_bytes))
                .bind(client.owner_id)
                .bind(client.dialect.as_str())
                .bind(now.0)
                .bind(&client.js_domain)
                .bind(client.introspect_any)
                .bind(client.id_token_alg.map(SigningAlg::as_str))
                .execute(&mut *tx)
                .await
                .map_err(conflict("this user already has a Self Client"))?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    async fn client(&self, id: &str) -> Answer<Option<Client>> {
        let row = sqlx::query_as::<_, ClientRow>(CLIENT_BY_ID)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.and_then(ClientRow::into_client))
    }

    async fn clients(&self) -> Answer<Vec<Client>> {
        let rows = sqlx::query_as::<_, ClientRow>(CLIENTS)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(ClientRow::into_client)
            .collect())
    }

    async fn clients_of(&self, owner_id: i64) -> Answer<Vec<Client>> {
        let rows = sqlx::query_as::<_, ClientRow>(CLIENTS_OF)
            .bind(owner_id)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(ClientRow::into_client)
            .collect())
    }

    async fn remove_client(&self, id: &str) -> Answer<bool> {
        let pool = self.pool.clone();
        let id = id.to_owned();
        detached(async move {
            let mut tx = pool.begin().await?;
            let done = sqlx::query(DELETE_CLIENT)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(done.rows_affected() == 1)
        })
        .await
    }

    async fn set_client_secret(&self, id: &str, hash: &SecretHash) -> Answer<bool> {
        let pool = self.pool.clone();
        let (id, hash) = (id.to_owned(), *hash);
        detached(async move {
            let mut tx = pool.begin().await?;
            let done = sqlx::query(SET_CLIENT_SECRET)
                .bind(hash.as_bytes())
                .bind(id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(done.rows_affected() == 1)
        })
        .await
    }

    async fn update_client(
        &self,
        id: &ClientId,
        owner_id: i64,
        update: &ClientUpdate,
    ) -> Answer<bool> {
        let pool = self.pool.clone();
        let (id, update) = (id.clone(), update.clone());
        detached(async move {
            let mut tx = pool.begin().await?;
            let done = sqlx::query(UPDATE_CLIENT)
                .bind(&update.name)
                .bind(&update.homepage)
                .bind(stored_uris(&update.redirect_uris))
                .bind(&update.js_domain)
                .bind(update.dialect.as_str())
                .bind(update.introspect_any)
                .bind(id.as_str())
                .bind(owner_id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(done.rows_affected() == 1)
        })
        .await
    }

    async fn set_client_id_token_alg(
        &self,
        id: &ClientId,
        owner_id: i64,
        alg: Option<SigningAlg>,
    ) -> Answer<bool> {
        let pool = self.pool.clone();
        let id = id.clone();
        detached(async move {
            let mut tx = pool.begin().await?;
            let done = sqlx::query(SET_CLIENT_ID_TOKEN_ALG)
                .bind(alg.map(SigningAlg::as_str))
                .bind(id.as_str())
                .bind(owner_id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(done.rows_affected() == 1)
        })
        .await
    }

    async fn codes_of(&self, client: &ClientId) -> Answer<Vec<CodeSummary>> {
        let rows = sqlx::query_as::<_, CodeSummaryRow>(CODES_OF)
            .bind(client.as_str())
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(CodeSummary::from).collect())
    }

    async fn enable_client_dc(
        &self,
        id: &ClientId,
        location: &str,
        secret: Option<&SecretHash>,
        now: Timestamp,
    ) -> Answer<bool> {
        let pool = self.pool.clone();
        let (id, location, secret) = (id.clone(), location.to_owned(), secret.copied());
        detached(async move {
            let mut tx = pool.begin().await?;
            let done = sqlx::query(UPSERT_CLIENT_DATACENTER)
                .bind(id.as_str())
                .bind(location)
                .bind(secret.as_ref().map(SecretHash::as_bytes))
                .bind(now.0)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(done.rows_affected() == 1)
        })
        .await
    }

    async fn disable_client_dc(&self, id: &ClientId, location: &str) -> Answer<bool> {
        let pool = self.pool.clone();
        let (id, location) = (id.clone(), location.to_owned());
        detached(async move {
            let mut tx = pool.begin().await?;
            let done = sqlx::query(DELETE_CLIENT_DATACENTER)
                .bind(id.as_str())
                .bind(location)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(done.rows_affected() == 1)
        })
        .await
    }

    async fn client_dcs(&self, id: &ClientId) -> Answer<Vec<EnabledDc>> {
        let rows = sqlx::query_as::<_, EnabledDcRow>(CLIENT_DATACENTERS)
            .bind(id.as_str())
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(EnabledDc::from).collect())
    }

    async fn clients_enabled_for(&self, location: &str) -> Answer<Vec<Client>> {
        let rows = sqlx::query_as::<_, ClientRow>(CLIENTS_ENABLED_FOR)
            .bind(location)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(ClientRow::into_client)
            .collect())
    }

    async fn mirror_clients(&self, home: &str, clients: &[Client], now: Timestamp) -> Answer<()> {
        let pool = self.pool.clone();
        let (home, clients) = (home.to_owned(), clients.to_vec());
        detached(async move {
            let mut tx = pool.begin().await?;
            // Every node of this data center syncs; one at a time per home.
            sqlx::query(MIRROR_LOCK)
                .bind(&home)
                .execute(&mut *tx)
                .await?;
            let present = sqlx::query_as::<_, IdRow>(MIRRORED_CLIENT_IDS)
                .bind(&home)
                .fetch_all(&mut *tx)
                .await?;
            for gone in mirrored_away(present, &clients) {
                sqlx::query(DELETE_CLIENT)
                    .bind(gone)
                    .execute(&mut *tx)
                    .await?;
            }
            for client in &clients {
                sqlx::query(UPSERT_MIRRORED_CLIENT)
                    .bind(client.id.as_str())
                    .bind(client.kind.as_str())
                    .bind(&client.name)
                    .bind(&client.homepage)
                    .bind(stored_uris(&client.redirect_uris))
                    .bind(client.secret_hash.as_ref().map(SecretHash::as_bytes))
                    .bind(client.dialect.as_str())
                    .bind(&client.js_domain)
                    .bind(now.0)
                    .bind(&home)
                    .bind(client.id_token_alg.map(SigningAlg::as_str))
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(())
        })
        .await
    }
}

/// Serialises the mirror of one home's clients across this data center's nodes.
const MIRROR_LOCK: &str = "SELECT pg_advisory_xact_lock(hashtext('grantd mirror ' || $1))";
