//! SQLite: the registry the console manages, clients and scopes (`verbs::ConsoleVerbs`).

use grantd_core::oidc::SigningAlg;
use grantd_core::secret::SecretHash;
use grantd_core::{Client, ClientId, Scopes, Timestamp};

use super::query::{all, execute, one};
use super::SqliteStore;
use crate::model::{ClientUpdate, CodeSummary, EnabledDc, NewClient, ScopeEntry};
use crate::rows::{
    mirrored_away, stored_uris, ClientRow, CodeSummaryRow, EnabledDcRow, IdRow, ScopeRow,
};
use crate::statements::*;
use crate::verbs::ConsoleVerbs;
use crate::Answer;

impl ConsoleVerbs for SqliteStore {
    async fn add_scope(&self, name: &str, description: &str) -> Answer<()> {
        let (name, description) = (name.to_owned(), description.to_owned());
        self.writer
            .run(move |db| {
                execute(
                    db,
                    INSERT_SCOPE,
                    (name.to_ascii_lowercase(), &name, description),
                )
                .map_err(|e| e.conflict_as("this scope is registered"))?;
                Ok(())
            })
            .await
    }

    async fn scopes(&self) -> Answer<Vec<ScopeEntry>> {
        self.readers.read(|db| {
            let rows: Vec<ScopeRow> = all(db, SCOPES, ())?;
            Ok(rows
                .into_iter()
                .map(|row| (row.name, row.description))
                .collect())
        })
    }

    async fn registered(&self, scopes: &Scopes) -> Answer<Result<Vec<ScopeEntry>, String>> {
        self.readers.read(|db| {
            let mut found = Vec::new();
            for scope in scopes.iter() {
                match one::<ScopeRow>(db, SCOPE_BY_KEY, (scope.key(),))? {
                    Some(row) => found.push((row.name, row.description)),
                    None => return Ok(Err(scope.as_str().to_owned())),
                }
            }
            Ok(Ok(found))
        })
    }

    async fn add_client(&self, client: &NewClient, now: Timestamp) -> Answer<()> {
        let client = client.clone();
        self.writer
            .run(move |db| {
                execute(
                    db,
                    INSERT_CLIENT,
                    (
                        client.id.as_str(),
                        client.kind.as_str(),
                        &client.name,
                        &client.homepage,
                        stored_uris(&client.redirect_uris),
                        client.secret_hash.as_ref().map(SecretHash::as_bytes),
                        client.owner_id,
                        client.dialect.as_str(),
                        now.0,
                        &client.js_domain,
                        client.introspect_any,
                        client.id_token_alg.map(SigningAlg::as_str),
                    ),
                )
                .map_err(|e| e.conflict_as("this user already has a Self Client"))?;
                Ok(())
            })
            .await
    }

    async fn client(&self, id: &str) -> Answer<Option<Client>> {
        self.readers.read(|db| {
            Ok(one::<ClientRow>(db, CLIENT_BY_ID, (id,))?.and_then(ClientRow::into_client))
        })
    }

    async fn clients(&self) -> Answer<Vec<Client>> {
        self.readers.read(|db| {
            let rows: Vec<ClientRow> = all(db, CLIENTS, ())?;
            Ok(rows
                .into_iter()
                .filter_map(ClientRow::into_client)
                .collect())
        })
    }

    async fn clients_of(&self, owner_id: i64) -> Answer<Vec<Client>> {
        self.readers.read(|db| {
            let rows: Vec<ClientRow> = all(db, CLIENTS_OF, (owner_id,))?;
            Ok(rows
                .into_iter()
                .filter_map(ClientRow::into_client)
                .collect())
        })
    }

    async fn remove_client(&self, id: &str) -> Answer<bool> {
        let id = id.to_owned();
        self.writer
            .run(move |db| Ok(execute(db, DELETE_CLIENT, (id,))? == 1))
            .await
    }

    async fn set_client_secret(&self, id: &str, hash: &SecretHash) -> Answer<bool> {
        let (id, hash) = (id.to_owned(), *hash);
        self.writer
            .run(move |db| Ok(execute(db, SET_CLIENT_SECRET, (hash.as_bytes(), id))? == 1))
            .await
    }

    async fn update_client(
        &self,
        id: &ClientId,
        owner_id: i64,
        update: &ClientUpdate,
    ) -> Answer<bool> {
        let (id, update) = (id.clone(), update.clone());
        self.writer
            .run(move |db| {
                let changed = execute(
                    db,
                    UPDATE_CLIENT,
                    (
                        &update.name,
                        &update.homepage,
                        stored_uris(&update.redirect_uris),
                        &update.js_domain,
                        update.dialect.as_str(),
                        update.introspect_any,
                        id.as_str(),
                        owner_id,
                    ),
                )?;
                Ok(changed == 1)
            })
            .await
    }

    async fn set_client_id_token_alg(
        &self,
        id: &ClientId,
        owner_id: i64,
        alg: Option<SigningAlg>,
    ) -> Answer<bool> {
        let id = id.clone();
        self.writer
            .run(move |db| {
                let changed = execute(
                    db,
                    SET_CLIENT_ID_TOKEN_ALG,
                    (alg.map(SigningAlg::as_str), id.as_str(), owner_id),
                )?;
                Ok(changed == 1)
            })
            .await
    }

    async fn codes_of(&self, client: &ClientId) -> Answer<Vec<CodeSummary>> {
        self.readers.read(|db| {
            let rows: Vec<CodeSummaryRow> = all(db, CODES_OF, (client.as_str(),))?;
            Ok(rows.into_iter().map(CodeSummary::from).collect())
        })
    }

    async fn enable_client_dc(
        &self,
        id: &ClientId,
        location: &str,
        secret: Option<&SecretHash>,
        now: Timestamp,
    ) -> Answer<bool> {
        let (id, location, secret) = (id.clone(), location.to_owned(), secret.copied());
        self.writer
            .run(move |db| {
                let secret = secret.as_ref().map(SecretHash::as_bytes);
                let done = execute(
                    db,
                    UPSERT_CLIENT_DATACENTER,
                    (id.as_str(), location, secret, now.0),
                )?;
                Ok(done == 1)
            })
            .await
    }

    async fn disable_client_dc(&self, id: &ClientId, location: &str) -> Answer<bool> {
        let (id, location) = (id.clone(), location.to_owned());
        self.writer
            .run(move |db| Ok(execute(db, DELETE_CLIENT_DATACENTER, (id.as_str(), location))? == 1))
            .await
    }

    async fn client_dcs(&self, id: &ClientId) -> Answer<Vec<EnabledDc>> {
        self.readers.read(|db| {
            let rows: Vec<EnabledDcRow> = all(db, CLIENT_DATACENTERS, (id.as_str(),))?;
            Ok(rows.into_iter().map(EnabledDc::from).collect())
        })
    }

    async fn clients_enabled_for(&self, location: &str) -> Answer<Vec<Client>> {
        self.readers.read(|db| {
            let rows: Vec<ClientRow> = all(db, CLIENTS_ENABLED_FOR, (location,))?;
            Ok(rows
                .into_iter()
                .filter_map(ClientRow::into_client)
                .collect())
        })
    }

    async fn mirror_clients(&self, home: &str, clients: &[Client], now: Timestamp) -> Answer<()> {
        let (home, clients) = (home.to_owned(), clients.to_vec());
        self.writer
            .run(move |db| {
                let present: Vec<IdRow> = all(db, MIRRORED_CLIENT_IDS, (&home,))?;
                for gone in mirrored_away(present, &clients) {
                    execute(db, DELETE_CLIENT, (gone,))?;
                }
                for client in &clients {
                    execute(
                        db,
                        UPSERT_MIRRORED_CLIENT,
                        (
                            client.id.as_str(),
                            client.kind.as_str(),
                            &client.name,
                            &client.homepage,
                            stored_uris(&client.redirect_uris),
                            client.secret_hash.as_ref().map(SecretHash::as_bytes),
                            client.dialect.as_str(),
                            &client.js_domain,
                            now.0,
                            &home,
                            client.id_token_alg.map(SigningAlg::as_str),
                        ),
                    )?;
                }
                Ok(())
            })
            .await
    }
}
