//! Schema migrations: plain SQL, a folder per backend (`migrations/{sqlite,postgres}`, one
//! number per change in both), applied by sqlx's migrator on both backends. The SQLite backend
//! otherwise runs on rusqlite; its migrations keep sqlx's runner because every database made
//! so far records its applied migrations (and their checksums) in sqlx's `_sqlx_migrations`
//! table, and this way they upgrade in place.

use std::str::FromStr;

use sqlx::migrate::{MigrateError, Migrator};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode};
use sqlx::{Connection, SqliteConnection};

use crate::StoreError;

pub(crate) static SQLITE: Migrator = sqlx::migrate!("migrations/sqlite");
pub(crate) static POSTGRES: Migrator = sqlx::migrate!("migrations/postgres");

/// Creates the SQLite file at `path` if needed, puts it in WAL mode (a property of the file)
/// and applies the migrations it lacks.
pub(crate) async fn sqlite(path: &str) -> Result<(), StoreError> {
    let options = SqliteConnectOptions::from_str(&format!("sqlite://{path}"))
        .map_err(|e| StoreError::Setup(format!("bad database URL: {e}")))?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .foreign_keys(true)
        .busy_timeout(std::time::Duration::from_secs(5));
    let mut conn = SqliteConnection::connect_with(&options)
        .await
        .map_err(|e| StoreError::Setup(format!("cannot open {path}: {e}")))?;
    let migrated = SQLITE.run(&mut conn).await.map_err(migration_error);
    let _ = conn.close().await;
    migrated
}

/// A schema newer than this build (a migration it does not know) stops start-up with a clear
/// message instead of running old code against new tables.
pub(crate) fn migration_error(e: MigrateError) -> StoreError {
    match e {
        MigrateError::VersionMissing(version) => StoreError::Setup(format!(
            "the database schema is newer than this grantd (it has migration {version}, which \
             this build does not know); run a grantd at least as new as the one that migrated it"
        )),
        other => StoreError::Setup(format!("migrations failed: {other}")),
    }
}
