//! The embedded SQLite store: WAL, synced before any write is acknowledged (`synchronous=FULL`
//! on sqlx's connection; the writer thread's batches through `wal_sync`), so an acknowledged
//! token survives a crash. SQLite allows one writer, so the writes are batched into shared
//! durable commits (`group_commit`), and read-only connections serve lookups without waiting
//! for the writer.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Connection, SqliteConnection};

use crate::group_commit::{GroupTx, GroupWriter};
use crate::sqlite_lookups::Lookups;

use crate::verbs::prelude::*;

pub static MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");

/// Where `grantd serve` keeps its data when no `--database` is given.
pub const DEFAULT_DATABASE: &str = "sqlite://grantd-data/grantd.db";

#[derive(Clone, Debug)]
pub struct SqliteStore {
    pub(crate) writer: GroupWriter,
    pub(crate) reader: SqlitePool,
    lookups: Lookups,
}

pub(crate) type Tx = GroupTx;

const AGGREGATE_SCOPES: &str = "group_concat(scopes, ' ')";

impl SqliteStore {
    /// Opens (creating if needed) the database at `url` (`sqlite://path` or a plain path),
    /// applies migrations, and checks that durability settings took effect.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .unwrap_or(url);
        if path.is_empty() || path.starts_with(":memory:") {
            // Each connection would get its own empty database.
            return Err(StoreError::Setup(
                "an in-memory SQLite database cannot be shared; give a file path".into(),
            ));
        }
        if let Some(dir) = Path::new(path)
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
        {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Setup(format!("cannot create {}: {e}", dir.display())))?;
        }
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{path}"))
            .map_err(|e| StoreError::Setup(format!("bad database URL: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5))
            // Checkpoints run beside the writer, not inside its commits (`checkpoint.rs`).
            .pragma("wal_autocheckpoint", "0");
        let mut writer = SqliteConnection::connect_with(&options).await?;
        MIGRATIONS
            .run(&mut writer)
            .await
            .map_err(crate::migration_error)?;
        check_durability(&mut writer).await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(10))
            // A ping per acquire is a round trip to the connection's thread; a local file
            // does not go away between queries.
            .test_before_acquire(false)
            .connect_with(options.read_only(true))
            .await?;
        Ok(Self {
            writer: GroupWriter::new(writer, Path::new(path))
                .map_err(|e| StoreError::Setup(format!("cannot start the WAL sync thread: {e}")))?,
            reader,
            lookups: Lookups::new(path.into()),
        })
    }

    async fn write(&self) -> Result<Tx, StoreError> {
        self.writer.begin().await
    }
}

async fn check_durability(conn: &mut SqliteConnection) -> Result<(), StoreError> {
    let (mode,): (String,) = sqlx::query_as("PRAGMA journal_mode")
        .fetch_one(&mut *conn)
        .await?;
    let (sync,): (i64,) = sqlx::query_as("PRAGMA synchronous")
        .fetch_one(&mut *conn)
        .await?;
    // synchronous: 2 = FULL, 3 = EXTRA; anything less can lose acknowledged tokens.
    if !mode.eq_ignore_ascii_case("wal") || sync < 2 {
        return Err(StoreError::Setup(format!(
            "SQLite is not durable (journal_mode={mode}, synchronous={sync}); \
             grantd needs WAL with synchronous=FULL"
        )));
    }
    Ok(())
}

impl SqliteStore {
    crate::verbs::verbs!();

    pub async fn client(&self, id: &str) -> Result<Option<Client>, StoreError> {
        self.lookups.client(id)
    }

    /// The grant behind a live access token; `None` if unknown, expired or revoked.
    pub async fn access_grant(
        &self,
        hash: &SecretHash,
        now: Timestamp,
    ) -> Result<Option<AccessGrant>, StoreError> {
        self.lookups.access_grant(hash, now)
    }

    /// A live access token and the user it speaks for, in one read: the resource path.
    pub async fn access_owner(
        &self,
        hash: &SecretHash,
        now: Timestamp,
    ) -> Result<Option<(AccessGrant, User)>, StoreError> {
        self.lookups.access_owner(hash, now)
    }

    /// The user a live session belongs to.
    pub async fn session_user(
        &self,
        hash: &SecretHash,
        now: Timestamp,
    ) -> Result<Option<User>, StoreError> {
        self.lookups.session_user(hash, now)
    }

    /// The registry's spelling and description of each scope; `Err` names an unknown one.
    pub async fn registered(
        &self,
        scopes: &Scopes,
    ) -> Result<Result<Vec<(String, String)>, String>, StoreError> {
        self.lookups.registered(scopes)
    }

    /// The scopes the user has consented to for this client, counted only if the consent
    /// covered this registered redirect URI too.
    pub async fn consent_for(
        &self,
        user_id: i64,
        client: &ClientId,
        redirect_uri: &str,
    ) -> Result<Option<Scopes>, StoreError> {
        self.lookups.consent_for(user_id, client, redirect_uri)
    }

    /// A live access token or a refresh token, for introspection.
    pub async fn token_info(
        &self,
        hash: &SecretHash,
        now: Timestamp,
    ) -> Result<Option<TokenInfo>, StoreError> {
        self.lookups.token_info(hash, now)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::borrow::Cow;

    use grantd_core::grant::CodeGrant;
    use grantd_core::secret::SecretHash;
    use grantd_core::{ClientId, Limits, Scopes, Timestamp};
    use sqlx::migrate::Migrator;

    use super::*;
    use crate::{CodeIssue, NewCode};

    /// Migration 0005 numbers the codes a database already holds, so the throttle counts them.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_code_throttle_counts_codes_made_before_the_upgrade() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("grantd.db");
        let url = format!("sqlite://{}", path.display());
        let options = SqliteConnectOptions::from_str(&url)
            .unwrap()
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal);
        let mut old = SqliteConnection::connect_with(&options).await.unwrap();
        let before_0005 = Migrator {
            migrations: Cow::Owned(
                MIGRATIONS
                    .migrations
                    .iter()
                    .filter(|m| m.version < 5)
                    .cloned()
                    .collect(),
            ),
            ..Migrator::DEFAULT
        };
        before_0005.run(&mut old).await.unwrap();
        let now = Timestamp(1_800_000_000);
        sqlx::query(
            "INSERT INTO users (id, email, name, password_hash, created_at)
             VALUES (1, 'ada@example.com', 'Ada', 'x', 0);
             INSERT INTO clients (id, kind, name, redirect_uris, dialect, created_at)
             VALUES ('1000.A', 'server', 'A', '[]', 'standard', 0),
                    ('1000.B', 'server', 'B', '[]', 'standard', 0)",
        )
        .execute(&mut old)
        .await
        .unwrap();
        // Client A: two codes out of the window, then ten in it, the oldest of them 18 s ago;
        // client B: three.
        let a: &[i64] = &[620, 610, 18, 17, 16, 15, 14, 13, 12, 11, 10, 9];
        for (client, ages) in [("1000.A", a), ("1000.B", &[5, 4, 3])] {
            for age in ages {
                sqlx::query(
                    "INSERT INTO grant_codes (code_hash, client_id, user_id, scopes,
                        issue_refresh, created_at, expires_at)
                     VALUES (randomblob(32), $1, 1, 'x', 0, $2, $2)",
                )
                .bind(client)
                .bind(now.minus(*age).0)
                .execute(&mut old)
                .await
                .unwrap();
            }
        }
        old.close().await.unwrap();

        let store = SqliteStore::open(&url).await.unwrap();
        let issue = |client: &'static str| {
            let code = NewCode {
                grant: CodeGrant {
                    code_hash: SecretHash::of(&grantd_core::secret::random_id()),
                    client_id: ClientId::new(client.into()),
                    user_id: 1,
                    redirect_uri: None,
                    scopes: Scopes::from_stored("x"),
                    issue_refresh_token: false,
                    code_challenge: None,
                    expires_at: now.plus(60),
                    redeemed_at: None,
                },
                description: None,
                record_consent: None,
            };
            let store = &store;
            async move {
                store
                    .add_code(&code, now, &Limits::default())
                    .await
                    .unwrap()
            }
        };
        // A's tenth newest code was made 18 s ago: refused for the 582 s it stays in the window.
        let refused = issue("1000.A").await;
        assert!(
            matches!(refused, CodeIssue::Throttled { retry_after: 582 }),
            "{refused:?}"
        );
        let issued = issue("1000.B").await;
        assert!(matches!(issued, CodeIssue::Issued), "{issued:?}");
    }
}
