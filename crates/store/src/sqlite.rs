//! The embedded SQLite store: WAL with `synchronous=FULL`, so an acknowledged token survives a
//! crash. One writer connection takes every write transaction with `BEGIN IMMEDIATE` (SQLite
//! allows one writer anyway; queueing in the pool avoids busy retries), and a pool of
//! read-only connections serves lookups without waiting for the writer.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Sqlite, Transaction};

use crate::verbs::prelude::*;

pub static MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");

/// Where `grantd serve` keeps its data when no `--database` is given.
pub const DEFAULT_DATABASE: &str = "sqlite://grantd-data/grantd.db";

#[derive(Clone, Debug)]
pub struct SqliteStore {
    pub(crate) writer: SqlitePool,
    pub(crate) reader: SqlitePool,
}

pub(crate) type Tx = Transaction<'static, Sqlite>;

/// SQLite has no row locks; its single writer, taking `BEGIN IMMEDIATE`, serialises instead.
const FOR_UPDATE: &str = "";
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
            .busy_timeout(Duration::from_secs(5));
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.clone())
            .await?;
        MIGRATIONS
            .run(&writer)
            .await
            .map_err(crate::migration_error)?;
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.read_only(true))
            .await?;
        let store = Self { writer, reader };
        store.check_durability().await?;
        Ok(store)
    }

    async fn check_durability(&self) -> Result<(), StoreError> {
        let (mode,): (String,) = sqlx::query_as("PRAGMA journal_mode")
            .fetch_one(&self.writer)
            .await?;
        let (sync,): (i64,) = sqlx::query_as("PRAGMA synchronous")
            .fetch_one(&self.writer)
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

    async fn write(&self) -> Result<Tx, StoreError> {
        Ok(self.writer.begin_with("BEGIN IMMEDIATE").await?)
    }
}

impl SqliteStore {
    crate::verbs::verbs!();
}
