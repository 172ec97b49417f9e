//! SQLite: the tokens verbs (`verbs::TokenVerbs`).

use super::*;

impl TokenVerbs for SqliteStore {
    async fn add_code(&self, code: &NewCode, now: Timestamp, limits: &Limits) -> Answer<CodeIssue> {
        todo!()
    }

    async fn redeem_code(
        &self,
        code_hash: &SecretHash,
        decide: impl FnOnce(&CodeGrant) -> Result<(), Rejection> + Send + 'static,
        tokens: &NewTokens,
        now: Timestamp,
        limits: &Limits,
    ) -> Answer<Redemption> {
        todo!()
    }

    async fn refresh(
        &self,
        refresh_hash: &SecretHash,
        client: &ClientId,
        decide: impl FnOnce(&RefreshGrant) -> Result<Scopes, OAuthError> + Send + 'static,
        access: &NewAccess,
        now: Timestamp,
        limits: &Limits,
    ) -> Answer<RefreshOutcome> {
        todo!()
    }

    async fn add_access_token(
        &self,
        access: &NewAccess,
        client: &ClientId,
        user_id: i64,
        scopes: &Scopes,
        now: Timestamp,
    ) -> Answer<()> {
        todo!()
    }

    async fn access_grant(
        &self,
        access_hash: &SecretHash,
        now: Timestamp,
    ) -> Answer<Option<AccessGrant>> {
        todo!()
    }

    async fn access_owner(
        &self,
        access_hash: &SecretHash,
        now: Timestamp,
    ) -> Answer<Option<(AccessGrant, User)>> {
        todo!()
    }

    async fn token_info(&self, hash: &SecretHash, now: Timestamp) -> Answer<Option<TokenInfo>> {
        todo!()
    }

    async fn revoke(&self, hash: &SecretHash, client: Option<&ClientId>) -> Answer<bool> {
        todo!()
    }

    async fn sweep(&self, now: Timestamp) -> Answer<u64> {
        todo!()
    }
}
