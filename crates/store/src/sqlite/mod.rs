//! The embedded SQLite store, on rusqlite alone. SQLite allows one writer: every write verb
//! runs on the writer thread (`writer`), batched into shared commits, and no write is
//! answered before its WAL frames are synced to disk (`wal_sync`), so an acknowledged token
//! survives a crash. Reads run on read-only connections kept per thread (`readers`). WAL
//! checkpoints run beside the writer (`checkpoint`). Migrations are applied first, by sqlx's
//! runner (`migrations.rs` says why). One file per group of verbs (`verbs.rs`).

mod accounts;
mod checkpoint;
mod console;
mod query;
mod readers;
mod rows;
mod sessions;
mod tokens;
mod wal_sync;
mod writer;

use std::path::Path;
use std::time::Duration;

use rusqlite::Connection;

use crate::StoreError;
use checkpoint::Checkpoints;
use readers::Readers;
use wal_sync::WalSync;
use writer::Writer;

/// Where `grantd serve` keeps its data when no `--database` is given.
pub const DEFAULT_DATABASE: &str = "sqlite://grantd-data/grantd.db";

#[derive(Clone, Debug)]
pub struct SqliteStore {
    writer: Writer,
    readers: Readers,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `url` (`sqlite://path` or a plain path),
    /// applies migrations, and checks that the file is in WAL mode.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let path = database_path(url)?;
        Self::open_with(path, WalSync::start(Path::new(path))).await
    }

    async fn open_with(path: &str, wal_sync: std::io::Result<WalSync>) -> Result<Self, StoreError> {
        let wal_sync = wal_sync
            .map_err(|e| StoreError::Setup(format!("cannot start the WAL sync thread: {e}")))?;
        if let Some(dir) = Path::new(path)
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
        {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Setup(format!("cannot create {}: {e}", dir.display())))?;
        }
        crate::migrations::sqlite(path).await?;
        let conn = open_writer(Path::new(path))
            .map_err(|e| StoreError::Setup(format!("cannot open {path}: {e}")))?;
        let writer = Writer::start(conn, wal_sync, Checkpoints::start(Path::new(path)))
            .map_err(|e| StoreError::Setup(format!("cannot start the writer thread: {e}")))?;
        Ok(Self {
            writer,
            readers: Readers::new(path.into()),
        })
    }
}

fn database_path(url: &str) -> Result<&str, StoreError> {
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
    Ok(path)
}

/// The writer's connection. Its `COMMIT` does not sync (`synchronous = NORMAL`): `WalSync`
/// does, before any verb of the batch is answered, which is only sound in WAL mode, so that is
/// checked. With `temp_store = MEMORY` a savepoint's journal grows in 1 KiB pieces instead of
/// 64 KiB ones, whose release made glibc hand memory back to the kernel (`madvise`, and a TLB
/// flush on every core) at every verb: 6 % of the writer's time. Its page cache is 32 MiB
/// instead of 2: the token indexes are keyed by random hashes, so a small cache reads most
/// pages back from the OS. Checkpoints run beside the writer (`checkpoint`), not inside its
/// commits.
fn open_writer(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.execute_batch(
        "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA wal_autocheckpoint = 0;
         PRAGMA temp_store = MEMORY; PRAGMA cache_size = -32768;",
    )?;
    let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Setup(format!(
            "SQLite is not in WAL mode (journal_mode={mode}); grantd needs WAL"
        )));
    }
    Ok(conn)
}
