//! PostgreSQL: the console verbs (`verbs::ConsoleVerbs`).

use super::*;

impl ConsoleVerbs for PostgresStore {
    async fn add_scope(&self, name: &str, description: &str) -> Answer<()> {
        todo!()
    }

    async fn scopes(&self) -> Answer<Vec<ScopeEntry>> {
        todo!()
    }

    async fn registered(&self, scopes: &Scopes) -> Answer<Result<Vec<ScopeEntry>, String>> {
        todo!()
    }

    async fn add_client(&self, client: &NewClient, now: Timestamp) -> Answer<()> {
        todo!()
    }

    async fn client(&self, id: &str) -> Answer<Option<Client>> {
        todo!()
    }

    async fn clients(&self) -> Answer<Vec<Client>> {
        todo!()
    }

    async fn clients_of(&self, owner_id: i64) -> Answer<Vec<Client>> {
        todo!()
    }

    async fn remove_client(&self, id: &str) -> Answer<bool> {
        todo!()
    }

    async fn set_client_secret(&self, id: &str, hash: &SecretHash) -> Answer<bool> {
        todo!()
    }

    async fn update_client(
        &self,
        id: &ClientId,
        owner_id: i64,
        update: &ClientUpdate,
    ) -> Answer<bool> {
        todo!()
    }

    async fn codes_of(&self, client: &ClientId) -> Answer<Vec<CodeSummary>> {
        todo!()
    }
}
