//! grantd-store: everything grantd remembers, behind atomic domain verbs (`verbs`), each
//! implemented once per backend: `sqlite` (the embedded default, rusqlite only) and `postgres`
//! (many nodes on one database, sqlx only). `Store` picks one at start-up and delegates every
//! verb to it, so handlers stay non-generic. The rules the verbs apply inside their
//! transactions come from `grantd-core`; rows are decoded in `rows`, SQL lives in `statements`.

mod error;
mod migrations;
pub mod model;
mod postgres;
mod rows;
mod sqlite;
mod statements;
pub mod verbs;

use std::future::Future;
use std::time::Duration;

pub use error::StoreError;
pub use model::*;
pub use postgres::{PostgresStore, DEFAULT_POOL_SIZE};
pub use sqlite::{SqliteStore, DEFAULT_DATABASE};
pub use verbs::{
    AccountVerbs, ConsoleVerbs, DeviceVerbs, EnhanceVerbs, KeyVerbs, SessionVerbs, TokenVerbs,
};

use grantd_core::enhance::{EnhanceDecision, EnhanceGrant};
use grantd_core::grant::{AccessGrant, CodeGrant, RefreshGrant, Rejection};
use grantd_core::oidc::SigningAlg;
use grantd_core::secret::SecretHash;
use grantd_core::signin::{Attempt, Gate, Tallies};
use grantd_core::source::Source;
use grantd_core::{Client, ClientId, Limits, OAuthError, Scopes, Timestamp};

/// The store the server runs on: the embedded SQLite file, or a PostgreSQL database shared by
/// many nodes.
#[derive(Clone, Debug)]
pub enum Store {
    Sqlite(SqliteStore),
    Postgres(PostgresStore),
}

impl Store {
    /// Opens the database a URL names: `postgres://` or `postgresql://` selects PostgreSQL
    /// (with a pool of `pool_size` connections), anything else is an SQLite file.
    pub async fn open(url: &str, pool_size: u32) -> Result<Store, StoreError> {
        let lower = url.to_ascii_lowercase();
        if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
            Ok(Store::Postgres(PostgresStore::open(url, pool_size).await?))
        } else {
            Ok(Store::Sqlite(SqliteStore::open(url).await?))
        }
    }

    pub fn backend(&self) -> &'static str {
        match self {
            Store::Sqlite(_) => "sqlite",
            Store::Postgres(_) => "postgres",
        }
    }
}

impl From<SqliteStore> for Store {
    fn from(s: SqliteStore) -> Self {
        Store::Sqlite(s)
    }
}

impl From<PostgresStore> for Store {
    fn from(s: PostgresStore) -> Self {
        Store::Postgres(s)
    }
}

/// The longest a PostgreSQL verb may take, waiting for a connection included. PostgreSQL's own
/// timeouts cannot fire for a query it never received (a partition), so the node bounds every
/// verb itself; a request then fails fast with 503 instead of hanging until TCP gives up. A
/// write that times out here still finishes or rolls back on its own task.
const POSTGRES_VERB_TIMEOUT: Duration = Duration::from_secs(5);

async fn bounded<T>(verb: impl Future<Output = Result<T, StoreError>>) -> Result<T, StoreError> {
    tokio::time::timeout(POSTGRES_VERB_TIMEOUT, verb)
        .await
        .unwrap_or(Err(StoreError::Unavailable))
}

/// One verb call on whichever backend the store is: only the `match`, not the verb.
macro_rules! on_backend {
    ($store:expr, $backend:ident => $call:expr) => {
        match $store {
            Store::Sqlite($backend) => $call.await,
            Store::Postgres($backend) => bounded($call).await,
        }
    };
}

/// What every verb answers.
pub(crate) type Answer<T> = Result<T, StoreError>;

impl TokenVerbs for Store {
    async fn add_code(&self, code: &NewCode, now: Timestamp, limits: &Limits) -> Answer<CodeIssue> {
        on_backend!(self, s => s.add_code(code, now, limits))
    }

    async fn redeem_code(
        &self,
        code_hash: &SecretHash,
        decide: impl FnOnce(&CodeGrant) -> Result<(), Rejection> + Send + 'static,
        tokens: &NewTokens,
        now: Timestamp,
        limits: &Limits,
    ) -> Answer<Redemption> {
        on_backend!(self, s => s.redeem_code(code_hash, decide, tokens, now, limits))
    }

    async fn refresh(
        &self,
        refresh_hash: &SecretHash,
        client: &ClientId,
        decide: impl FnOnce(&RefreshGrant) -> Result<Scopes, OAuthError> + Send + 'static,
        access: &NewAccess,
        rotate_to: Option<&SecretHash>,
        now: Timestamp,
        limits: &Limits,
    ) -> Answer<RefreshOutcome> {
        on_backend!(
            self,
            s => s.refresh(refresh_hash, client, decide, access, rotate_to, now, limits)
        )
    }

    async fn add_access_token(
        &self,
        access: &NewAccess,
        client: &ClientId,
        user_id: i64,
        scopes: &Scopes,
        now: Timestamp,
        limits: &Limits,
    ) -> Answer<AccessIssue> {
        on_backend!(self, s => s.add_access_token(access, client, user_id, scopes, now, limits))
    }

    async fn access_grant(
        &self,
        access_hash: &SecretHash,
        now: Timestamp,
    ) -> Answer<Option<AccessGrant>> {
        on_backend!(self, s => s.access_grant(access_hash, now))
    }

    async fn access_owner(
        &self,
        access_hash: &SecretHash,
        now: Timestamp,
    ) -> Answer<Option<(AccessGrant, User)>> {
        on_backend!(self, s => s.access_owner(access_hash, now))
    }

    async fn token_info(&self, hash: &SecretHash, now: Timestamp) -> Answer<Option<TokenInfo>> {
        on_backend!(self, s => s.token_info(hash, now))
    }

    async fn revoke(&self, hash: &SecretHash, client: Option<&ClientId>) -> Answer<bool> {
        on_backend!(self, s => s.revoke(hash, client))
    }

    async fn sweep(&self, now: Timestamp) -> Answer<u64> {
        on_backend!(self, s => s.sweep(now))
    }
}

impl DeviceVerbs for Store {
    async fn add_device_code(&self, code: &NewDeviceCode, now: Timestamp) -> Answer<()> {
        on_backend!(self, s => s.add_device_code(code, now))
    }

    async fn find_device_code(
        &self,
        user_code_hash: &SecretHash,
        source: &Source,
        now: Timestamp,
        limits: &Limits,
    ) -> Answer<DeviceLookup> {
        on_backend!(self, s => s.find_device_code(user_code_hash, source, now, limits))
    }

    async fn decide_device_code(
        &self,
        user_code_hash: &SecretHash,
        decision: &DeviceDecision,
        now: Timestamp,
    ) -> Answer<bool> {
        on_backend!(self, s => s.decide_device_code(user_code_hash, decision, now))
    }

    async fn poll_device_code(
        &self,
        device_code_hash: &SecretHash,
        client: &ClientId,
        tokens: &NewTokens,
        now: Timestamp,
        limits: &Limits,
    ) -> Answer<DevicePoll> {
        on_backend!(self, s => s.poll_device_code(device_code_hash, client, tokens, now, limits))
    }
}

impl EnhanceVerbs for Store {
    async fn add_enhance_token(
        &self,
        refresh_hash: &SecretHash,
        client: &ClientId,
        token: &NewEnhanceToken,
        now: Timestamp,
    ) -> Answer<bool> {
        on_backend!(self, s => s.add_enhance_token(refresh_hash, client, token, now))
    }

    async fn enhance_grant(
        &self,
        token_hash: &SecretHash,
        now: Timestamp,
    ) -> Answer<Option<EnhanceGrant>> {
        on_backend!(self, s => s.enhance_grant(token_hash, now))
    }

    async fn use_enhance_token(
        &self,
        token_hash: &SecretHash,
        client: &ClientId,
        user_id: i64,
        decision: &EnhanceDecision,
        now: Timestamp,
    ) -> Answer<bool> {
        on_backend!(self, s => s.use_enhance_token(token_hash, client, user_id, decision, now))
    }
}

impl SessionVerbs for Store {
    async fn add_session(
        &self,
        hash: &SecretHash,
        user_id: i64,
        user_agent: &str,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Answer<()> {
        on_backend!(self, s => s.add_session(hash, user_id, user_agent, now, expires_at))
    }

    async fn session_user(&self, hash: &SecretHash, now: Timestamp) -> Answer<Option<User>> {
        on_backend!(self, s => s.session_user(hash, now))
    }

    async fn remove_session(&self, hash: &SecretHash) -> Answer<()> {
        on_backend!(self, s => s.remove_session(hash))
    }

    async fn session_started(
        &self,
        hash: &SecretHash,
        now: Timestamp,
    ) -> Answer<Option<Timestamp>> {
        on_backend!(self, s => s.session_started(hash, now))
    }

    async fn add_pending_consent(
        &self,
        id_hash: &SecretHash,
        session_hash: &SecretHash,
        request: &str,
        expires_at: Timestamp,
    ) -> Answer<()> {
        on_backend!(self, s => s.add_pending_consent(id_hash, session_hash, request, expires_at))
    }

    async fn take_pending_consent(
        &self,
        id_hash: &SecretHash,
        session_hash: &SecretHash,
        now: Timestamp,
    ) -> Answer<Option<String>> {
        on_backend!(self, s => s.take_pending_consent(id_hash, session_hash, now))
    }

    async fn consent(&self, user_id: i64, client: &ClientId) -> Answer<Option<Scopes>> {
        on_backend!(self, s => s.consent(user_id, client))
    }

    async fn consent_for(
        &self,
        user_id: i64,
        client: &ClientId,
        redirect_uri: &str,
    ) -> Answer<Option<Scopes>> {
        on_backend!(self, s => s.consent_for(user_id, client, redirect_uri))
    }
}

impl AccountVerbs for Store {
    async fn add_user(
        &self,
        email: &str,
        name: &str,
        password_hash: &str,
        is_admin: bool,
        now: Timestamp,
    ) -> Answer<i64> {
        on_backend!(self, s => s.add_user(email, name, password_hash, is_admin, now))
    }

    async fn user_count(&self) -> Answer<i64> {
        on_backend!(self, s => s.user_count())
    }

    async fn user_by_email(&self, email: &str) -> Answer<Option<User>> {
        on_backend!(self, s => s.user_by_email(email))
    }

    async fn user(&self, id: i64) -> Answer<Option<User>> {
        on_backend!(self, s => s.user(id))
    }

    async fn users(&self) -> Answer<Vec<User>> {
        on_backend!(self, s => s.users())
    }

    async fn begin_sign_in(
        &self,
        attempt: &Attempt,
        now: Timestamp,
        limits: &Limits,
    ) -> Answer<Gate> {
        on_backend!(self, s => s.begin_sign_in(attempt, now, limits))
    }

    async fn sign_in_succeeded(
        &self,
        attempt: &Attempt,
        now: Timestamp,
        limits: &Limits,
    ) -> Answer<()> {
        on_backend!(self, s => s.sign_in_succeeded(attempt, now, limits))
    }

    async fn sign_in_tallies(&self, attempt: &Attempt) -> Answer<Tallies> {
        on_backend!(self, s => s.sign_in_tallies(attempt))
    }

    async fn unlock_account(&self, account: &SecretHash) -> Answer<u64> {
        on_backend!(self, s => s.unlock_account(account))
    }

    async fn set_password(
        &self,
        user_id: i64,
        password_hash: &str,
        keep_session: &SecretHash,
    ) -> Answer<()> {
        on_backend!(self, s => s.set_password(user_id, password_hash, keep_session))
    }

    async fn set_user_name(&self, user_id: i64, name: &str) -> Answer<()> {
        on_backend!(self, s => s.set_user_name(user_id, name))
    }

    async fn sessions_of(&self, user_id: i64, now: Timestamp) -> Answer<Vec<SessionSummary>> {
        on_backend!(self, s => s.sessions_of(user_id, now))
    }

    async fn remove_user_session(&self, user_id: i64, handle: &str) -> Answer<bool> {
        on_backend!(self, s => s.remove_user_session(user_id, handle))
    }

    async fn connected_apps(&self, user_id: i64) -> Answer<Vec<ConnectedApp>> {
        on_backend!(self, s => s.connected_apps(user_id))
    }

    async fn revoke_grant(&self, user_id: i64, client: &ClientId) -> Answer<()> {
        on_backend!(self, s => s.revoke_grant(user_id, client))
    }

    async fn remember_email_home(
        &self,
        email_key: &SecretHash,
        location: &str,
        now: Timestamp,
    ) -> Answer<()> {
        on_backend!(self, s => s.remember_email_home(email_key, location, now))
    }

    async fn email_home(&self, email_key: &SecretHash) -> Answer<Option<String>> {
        on_backend!(self, s => s.email_home(email_key))
    }
}

impl ConsoleVerbs for Store {
    async fn add_scope(&self, name: &str, description: &str) -> Answer<()> {
        on_backend!(self, s => s.add_scope(name, description))
    }

    async fn scopes(&self) -> Answer<Vec<ScopeEntry>> {
        on_backend!(self, s => s.scopes())
    }

    async fn registered(&self, scopes: &Scopes) -> Answer<Result<Vec<ScopeEntry>, String>> {
        on_backend!(self, s => s.registered(scopes))
    }

    async fn add_client(&self, client: &NewClient, now: Timestamp) -> Answer<()> {
        on_backend!(self, s => s.add_client(client, now))
    }

    async fn client(&self, id: &str) -> Answer<Option<Client>> {
        on_backend!(self, s => s.client(id))
    }

    async fn clients(&self) -> Answer<Vec<Client>> {
        on_backend!(self, s => s.clients())
    }

    async fn clients_of(&self, owner_id: i64) -> Answer<Vec<Client>> {
        on_backend!(self, s => s.clients_of(owner_id))
    }

    async fn remove_client(&self, id: &str) -> Answer<bool> {
        on_backend!(self, s => s.remove_client(id))
    }

    async fn set_client_secret(&self, id: &str, hash: &SecretHash) -> Answer<bool> {
        on_backend!(self, s => s.set_client_secret(id, hash))
    }

    async fn update_client(
        &self,
        id: &ClientId,
        owner_id: i64,
        update: &ClientUpdate,
    ) -> Answer<bool> {
        on_backend!(self, s => s.update_client(id, owner_id, update))
    }

    async fn set_client_id_token_alg(
        &self,
        id: &ClientId,
        owner_id: i64,
        alg: Option<SigningAlg>,
    ) -> Answer<bool> {
        on_backend!(self, s => s.set_client_id_token_alg(id, owner_id, alg))
    }

    async fn codes_of(&self, client: &ClientId) -> Answer<Vec<CodeSummary>> {
        on_backend!(self, s => s.codes_of(client))
    }

    async fn enable_client_dc(
        &self,
        id: &ClientId,
        location: &str,
        secret: Option<&SecretHash>,
        now: Timestamp,
    ) -> Answer<bool> {
        on_backend!(self, s => s.enable_client_dc(id, location, secret, now))
    }

    async fn disable_client_dc(&self, id: &ClientId, location: &str) -> Answer<bool> {
        on_backend!(self, s => s.disable_client_dc(id, location))
    }

    async fn client_dcs(&self, id: &ClientId) -> Answer<Vec<EnabledDc>> {
        on_backend!(self, s => s.client_dcs(id))
    }

    async fn clients_enabled_for(&self, location: &str) -> Answer<Vec<Client>> {
        on_backend!(self, s => s.clients_enabled_for(location))
    }

    async fn mirror_clients(&self, home: &str, clients: &[Client], now: Timestamp) -> Answer<()> {
        on_backend!(self, s => s.mirror_clients(home, clients, now))
    }
}

impl KeyVerbs for Store {
    async fn signing_keys(&self, now: Timestamp) -> Answer<Vec<SigningKeyRecord>> {
        on_backend!(self, s => s.signing_keys(now))
    }

    async fn add_first_signing_key(&self, key: &SigningKeyRecord) -> Answer<bool> {
        on_backend!(self, s => s.add_first_signing_key(key))
    }

    async fn rotate_signing_key(
        &self,
        key: &SigningKeyRecord,
        retired_expires_at: Timestamp,
    ) -> Answer<()> {
        on_backend!(self, s => s.rotate_signing_key(key, retired_expires_at))
    }
}
