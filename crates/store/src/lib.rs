//! grantd-store: everything grantd remembers, behind atomic domain verbs. Each verb is one
//! transaction, so a failed request leaves no half-written row, and single use and caps are
//! enforced by the database rather than by process memory. The rules themselves come from
//! `grantd-core`; where a verb must decide inside its transaction, the caller passes the
//! decision in as a closure.

mod checkpoint;
mod console;
mod error;
mod fast_writer;
mod group_commit;
mod postgres;
mod rows;
mod sqlite;
mod sqlite_hot_writes;
mod sqlite_lookups;
mod statements;
mod verbs;
mod wal_sync;

pub use console::{ClientUpdate, CodeSummary, ConnectedApp, SessionSummary};
pub use error::StoreError;
pub use postgres::{PostgresStore, DEFAULT_POOL_SIZE};
pub use sqlite::{SqliteStore, DEFAULT_DATABASE};

use grantd_core::grant::{AccessGrant, CodeGrant, RefreshGrant, Rejection};
use grantd_core::secret::SecretHash;
use grantd_core::{
    Client, ClientId, ClientType, Dialect, Limits, OAuthError, RedirectUri, Scopes, Timestamp,
};

/// The store the server runs on: the embedded SQLite file, or a PostgreSQL database shared by
/// many nodes. Handlers stay non-generic; every verb delegates to the backend.
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

/// A schema newer than this build (a migration it does not know) stops start-up with a clear
/// message instead of running old code against new tables.
pub(crate) fn migration_error(e: sqlx::migrate::MigrateError) -> StoreError {
    match e {
        sqlx::migrate::MigrateError::VersionMissing(version) => StoreError::Setup(format!(
            "the database schema is newer than this grantd (it has migration {version}, which \
             this build does not know); run a grantd at least as new as the one that migrated it"
        )),
        other => StoreError::Setup(format!("migrations failed: {other}")),
    }
}

/// The longest a PostgreSQL verb may take, waiting for a connection included. PostgreSQL's own
/// timeouts cannot fire for a query it never received (a partition), so the node bounds every
/// verb itself; a request then fails fast with 503 instead of hanging until TCP gives up.
const POSTGRES_VERB_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

async fn bounded<T>(
    verb: impl std::future::Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    tokio::time::timeout(POSTGRES_VERB_TIMEOUT, verb)
        .await
        .unwrap_or(Err(StoreError::Unavailable))
}

macro_rules! delegate {
    ($( fn $name:ident( $( $arg:ident : $ty:ty ),* $(,)? ) -> $ret:ty; )*) => {
        impl Store {
            $(
                pub async fn $name(&self $(, $arg: $ty)*) -> $ret {
                    match self {
                        Store::Sqlite(s) => s.$name($($arg),*).await,
                        Store::Postgres(s) => bounded(s.$name($($arg),*)).await,
                    }
                }
            )*
        }
    };
}

delegate! {
    fn add_user(email: &str, name: &str, password_hash: &str, is_admin: bool, now: Timestamp) -> Result<i64, StoreError>;
    fn user_count() -> Result<i64, StoreError>;
    fn user_by_email(email: &str) -> Result<Option<User>, StoreError>;
    fn user(id: i64) -> Result<Option<User>, StoreError>;
    fn note_login_failure(user_id: i64, now: Timestamp, limits: &Limits) -> Result<(), StoreError>;
    fn clear_login_failures(user_id: i64) -> Result<(), StoreError>;
    fn add_scope(name: &str, description: &str) -> Result<(), StoreError>;
    fn scopes() -> Result<Vec<(String, String)>, StoreError>;
    fn registered(scopes: &Scopes) -> Result<Result<Vec<(String, String)>, String>, StoreError>;
    fn add_client(client: &NewClient, now: Timestamp) -> Result<(), StoreError>;
    fn client(id: &str) -> Result<Option<Client>, StoreError>;
    fn clients() -> Result<Vec<Client>, StoreError>;
    fn remove_client(id: &str) -> Result<bool, StoreError>;
    fn set_client_secret(id: &str, hash: &SecretHash) -> Result<bool, StoreError>;
    fn add_code(code: &NewCode, now: Timestamp, limits: &Limits) -> Result<CodeIssue, StoreError>;
    fn consent(user_id: i64, client: &ClientId) -> Result<Option<Scopes>, StoreError>;
    fn consent_for(user_id: i64, client: &ClientId, redirect_uri: &str) -> Result<Option<Scopes>, StoreError>;
    fn redeem_code(code_hash: &SecretHash, decide: impl FnOnce(&CodeGrant) -> Result<(), Rejection> + Send + 'static, tokens: &NewTokens, now: Timestamp, limits: &Limits, ) -> Result<Redemption, StoreError>;
    fn refresh(refresh_hash: &SecretHash, client: &ClientId, decide: impl FnOnce(&RefreshGrant) -> Result<Scopes, OAuthError> + Send + 'static, access: &NewAccess, now: Timestamp, limits: &Limits, ) -> Result<RefreshOutcome, StoreError>;
    fn add_access_token(access: &NewAccess, client: &ClientId, user_id: i64, scopes: &Scopes, now: Timestamp) -> Result<(), StoreError>;
    fn access_grant(access_hash: &SecretHash, now: Timestamp) -> Result<Option<AccessGrant>, StoreError>;
    fn access_owner(access_hash: &SecretHash, now: Timestamp) -> Result<Option<(AccessGrant, User)>, StoreError>;
    fn token_info(hash: &SecretHash, now: Timestamp) -> Result<Option<TokenInfo>, StoreError>;
    fn revoke(hash: &SecretHash, client: Option<&ClientId>) -> Result<bool, StoreError>;
    fn sweep(now: Timestamp) -> Result<u64, StoreError>;
    fn add_session(hash: &SecretHash, user_id: i64, user_agent: &str, now: Timestamp, expires_at: Timestamp) -> Result<(), StoreError>;
    fn session_user(hash: &SecretHash, now: Timestamp) -> Result<Option<User>, StoreError>;
    fn remove_session(hash: &SecretHash) -> Result<(), StoreError>;
    fn add_pending_consent(id_hash: &SecretHash, session_hash: &SecretHash, request: &str, expires_at: Timestamp) -> Result<(), StoreError>;
    fn take_pending_consent(id_hash: &SecretHash, session_hash: &SecretHash, now: Timestamp) -> Result<Option<String>, StoreError>;
    fn clients_of(owner_id: i64) -> Result<Vec<Client>, StoreError>;
    fn update_client(id: &ClientId, owner_id: i64, update: &ClientUpdate) -> Result<bool, StoreError>;
    fn codes_of(client: &ClientId) -> Result<Vec<CodeSummary>, StoreError>;
    fn connected_apps(user_id: i64) -> Result<Vec<ConnectedApp>, StoreError>;
    fn revoke_grant(user_id: i64, client: &ClientId) -> Result<(), StoreError>;
    fn sessions_of(user_id: i64, now: Timestamp) -> Result<Vec<SessionSummary>, StoreError>;
    fn remove_user_session(user_id: i64, handle: &str) -> Result<bool, StoreError>;
    fn set_password(user_id: i64, password_hash: &str, keep_session: &SecretHash) -> Result<(), StoreError>;
    fn set_user_name(user_id: i64, name: &str) -> Result<(), StoreError>;
    fn users() -> Result<Vec<User>, StoreError>;
}

#[derive(Debug, Clone)]
pub struct User {
    pub id: i64,
    pub email: String,
    pub name: String,
    pub password_hash: String,
    pub is_admin: bool,
    pub failed_logins: i64,
    pub locked_until: Timestamp,
}

#[derive(Debug, Clone)]
pub struct NewClient {
    pub id: ClientId,
    pub kind: ClientType,
    pub name: String,
    pub homepage: Option<String>,
    pub redirect_uris: Vec<RedirectUri>,
    pub js_domain: Option<String>,
    pub secret_hash: Option<grantd_core::secret::SecretHash>,
    pub owner_id: Option<i64>,
    pub dialect: Dialect,
}

/// A code about to be stored.
#[derive(Debug, Clone)]
pub struct NewCode {
    pub grant: CodeGrant,
    pub description: Option<String>,
    /// Consent to record for the client, in the same transaction.
    pub record_consent: Option<ConsentRecord>,
}

/// What a user approved on the consent page: these scopes, for this registered redirect URI.
#[derive(Debug, Clone)]
pub struct ConsentRecord {
    pub scopes: Scopes,
    pub redirect_uri: String,
}

/// An access token about to be stored, generated by the caller so the store never sees it.
#[derive(Debug, Clone)]
pub struct NewAccess {
    pub hash: grantd_core::secret::SecretHash,
    pub expires_at: Timestamp,
}

/// The tokens a redemption will store; the refresh token is used only if the code grants one.
#[derive(Debug, Clone)]
pub struct NewTokens {
    pub access: NewAccess,
    pub refresh_hash: grantd_core::secret::SecretHash,
}

#[derive(Debug)]
pub enum CodeIssue {
    Issued,
    Throttled { retry_after: i64 },
}

#[derive(Debug)]
pub enum Redemption {
    /// No such code.
    Unknown,
    Rejected(Rejection),
    /// The code was redeemed; `grant.issue_refresh_token` says whether a refresh token was stored.
    Issued(CodeGrant),
}

#[derive(Debug)]
pub enum RefreshOutcome {
    /// No such refresh token for this client.
    Unknown,
    Rejected(OAuthError),
    Throttled {
        retry_after: i64,
    },
    Issued {
        user_id: i64,
        scopes: Scopes,
    },
}

/// A refresh or access token found by hash, for introspection.
#[derive(Debug, Clone)]
pub struct TokenInfo {
    pub client_id: ClientId,
    pub user_id: i64,
    pub scopes: Scopes,
    /// `None` for refresh tokens, which live until revoked.
    pub expires_at: Option<Timestamp>,
}
