//! The PostgreSQL store (sqlx only), for many stateless grantd nodes on one database. Every
//! invariant is the database's: single use and caps under row locks (`SELECT ... FOR NO KEY
//! UPDATE`) inside one transaction, so two nodes racing on one code or one (user, client)
//! serialise. Each write runs on a task of its own (`detached`), so a caller that stops waiting
//! (a client gone, a timeout) cannot cut a transaction short: it commits or rolls back whole.
//! A bounded pool with short timeouts makes an unreachable database fail fast (503) instead of
//! hanging, and the pool reconnects by itself when the database returns. One file per group of
//! verbs (`verbs.rs`).

mod accounts;
mod console;
mod device;
mod enhance;
mod keys;
mod sessions;
mod tokens;

use std::future::Future;
use std::str::FromStr;
use std::sync::OnceLock;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Postgres, Transaction};

use crate::migrations::{migration_error, POSTGRES as MIGRATIONS};
use crate::StoreError;

/// Connections per node; PostgreSQL's default `max_connections` (100) fits several nodes.
pub const DEFAULT_POOL_SIZE: u32 = 16;

#[derive(Clone, Debug)]
pub struct PostgresStore {
    pool: PgPool,
}

type Tx = Transaction<'static, Postgres>;

// Not `FOR UPDATE`: that also blocks the `FOR KEY SHARE` locks foreign-key checks take, and a
// code issue (client locked, then a user key checked) and a redemption (user locked, then a
// client key checked) deadlocked. `NO KEY UPDATE` still serialises every verb that takes it.
const FOR_UPDATE: &str = " FOR NO KEY UPDATE";

/// `sql` with the row lock (`FOR_UPDATE`) appended, built on first use and kept in `cell`, so
/// the token endpoint's verbs do not format a statement per request.
fn locking(cell: &'static OnceLock<String>, sql: &str) -> &'static str {
    cell.get_or_init(|| format!("{sql}{FOR_UPDATE}"))
}

/// A statement's row-locking form, one per call site: `locked!(REFRESH_GRANT)`.
macro_rules! locked {
    ($sql:expr) => {{
        static LOCKED: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        $crate::postgres::locking(&LOCKED, $sql)
    }};
}
pub(crate) use locked;
const AGGREGATE_SCOPES: &str = "string_agg(scopes, ' ')";

/// The rows a verb locks only to serialise on them (with `FOR_UPDATE` appended): a user's, so
/// that the user's code issues cannot race past the per-(user, client) throttle nor two codes
/// get one number, and concurrent grants cannot overshoot the refresh-token cap; a client's, so
/// that its `client_credentials` mints cannot race past their throttle and cap.
const CLIENT_ROW: &str = "SELECT id FROM clients WHERE id = $1";
const USER_ROW: &str = "SELECT id FROM users WHERE id = $1";

impl PostgresStore {
    /// Connects, applies migrations (under sqlx's advisory lock, so nodes starting together
    /// do not race) and checks that commits are durable.
    pub async fn open(url: &str, pool_size: u32) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Setup(format!("bad database URL: {e}")))?
            // A statement that cannot finish in time fails (503) rather than holding a worker.
            .options([
                ("statement_timeout", "5000"),
                ("lock_timeout", "5000"),
                ("idle_in_transaction_session_timeout", "10000"),
                ("synchronous_commit", "on"),
            ]);
        let pool = PgPoolOptions::new()
            .max_connections(pool_size.max(1))
            .min_connections(0)
            .acquire_timeout(Duration::from_secs(3))
            .test_before_acquire(true)
            .connect_with(options)
            .await
            .map_err(|e| StoreError::Setup(format!("cannot connect to PostgreSQL: {e}")))?;
        MIGRATIONS.run(&pool).await.map_err(migration_error)?;
        let store = Self { pool };
        store.check_durability().await?;
        Ok(store)
    }

    async fn check_durability(&self) -> Result<(), StoreError> {
        let (setting,): (String,) = sqlx::query_as("SHOW synchronous_commit")
            .fetch_one(&self.pool)
            .await?;
        if !matches!(setting.as_str(), "on" | "remote_apply" | "remote_write") {
            return Err(StoreError::Setup(format!(
                "PostgreSQL is not durable (synchronous_commit={setting}); grantd needs it on"
            )));
        }
        Ok(())
    }
}

type Answer<T> = Result<T, StoreError>;

/// Runs a write on a task of its own and waits for it. Whether the caller still waits then
/// never changes the write's outcome: dropping the caller's future (a client gone, `bounded`'s
/// timeout) drops only the wait, and the task still commits or rolls back whole, returning its
/// connection to the pool. `work` owns everything it needs. A task that panicked or was
/// cancelled (the runtime shutting down) answers `Unavailable`.
async fn detached<T: Send + 'static>(
    work: impl Future<Output = Answer<T>> + Send + 'static,
) -> Answer<T> {
    tokio::spawn(work).await.unwrap_or_else(|e| {
        tracing::error!("a PostgreSQL write's task failed: {e}");
        Err(StoreError::Unavailable)
    })
}

/// A uniqueness violation, named for what it means to the verb that hit it.
fn conflict(meaning: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |e| match StoreError::from(e) {
        StoreError::Conflict(_) => StoreError::Conflict(meaning),
        other => other,
    }
}
