//! Group commit for SQLite's single writer. A durable commit costs one `fsync` of the WAL, so
//! one commit per request caps the token endpoint at the disk's sync rate. Here every write verb
//! runs inside a savepoint of one long batch transaction and waits, before it answers, until a
//! committer task has committed that batch. The committer queues for the writer like any verb
//! (tokio's mutex is first-in, first-out), so every verb that was already waiting joins the
//! batch, and one `fsync` makes all of them durable: a verb is acknowledged only after its rows
//! are on disk, but concurrent verbs share the disk's time.
//!
//! The writer has two connections to the one file, and a batch runs on one of them. The token
//! endpoint's verbs (`sqlite_hot_writes`) run on a rusqlite connection, synchronously, in the
//! request's own task: sqlx hands every statement to a thread of its own and back, and with
//! eight statements per refresh those hand-offs, not the disk, became what the writer waits
//! for. Every other verb runs on sqlx's connection. A verb for the other connection first
//! commits the open batch (it joins the next one), so the two never hold SQLite's write lock
//! at once.
//!
//! A verb that fails or is cancelled leaves its savepoint behind; whoever takes the writer next
//! rolls it back, so its rows never reach a commit. When SQLite cannot roll back to the
//! savepoint (an I/O error already ended the transaction), the whole batch is abandoned and
//! every verb in it learns that its commit failed.

use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use sqlx::{Executor, SqliteConnection};
use tokio::sync::{watch, Mutex, Notify, OwnedMutexGuard};

use crate::checkpoint::{Checkpoints, RESTART_WAL};
use crate::wal_sync::{BatchOutcome, WalSync};
use crate::StoreError;

/// The outcome of one batch: `None` while it is open, then whether its commit succeeded.
type Outcome = watch::Receiver<Option<bool>>;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Side {
    Sqlx,
    Fast,
}

#[derive(Debug)]
struct Writer {
    conn: SqliteConnection,
    /// `None` until first used, and while its `COMMIT` runs on the blocking pool.
    fast: Option<rusqlite::Connection>,
    path: PathBuf,
    /// The connection whose batch transaction is open (`BEGIN IMMEDIATE` issued).
    open: Option<Side>,
    /// A sqlx verb's savepoint that was neither released nor rolled back. (Fast verbs run
    /// without awaiting, so they cannot be cancelled half-way.)
    dangling: bool,
    batch: BatchOutcome,
    outcome: Outcome,
    commits: Arc<AtomicU64>,
    checkpoints: Checkpoints,
    wal_sync: WalSync,
}

#[derive(Clone, Debug)]
pub(crate) struct GroupWriter {
    writer: Arc<Mutex<Writer>>,
    wake_committer: Arc<Notify>,
    /// Batches committed (durable syncs paid for), for the tests.
    #[cfg_attr(not(test), allow(dead_code))]
    commits: Arc<AtomicU64>,
}

/// One sqlx verb's share of the batch: the connection, inside the verb's savepoint.
pub(crate) struct GroupTx {
    writer: OwnedMutexGuard<Writer>,
    wake_committer: Arc<Notify>,
}

impl GroupWriter {
    /// Takes over `conn` (already migrated) for the file at `path`, and starts the committer
    /// on the current runtime.
    pub(crate) fn new(conn: SqliteConnection, path: &Path) -> std::io::Result<Self> {
        let (batch, outcome) = watch::channel(None);
        let commits = Arc::new(AtomicU64::new(0));
        let writer = Arc::new(Mutex::new(Writer {
            conn,
            fast: None,
            path: path.to_owned(),
            open: None,
            dangling: false,
            batch,
            outcome,
            commits: commits.clone(),
            checkpoints: Checkpoints::start(path),
            wal_sync: WalSync::start(path)?,
        }));
        let wake_committer = Arc::new(Notify::new());
        tokio::spawn(commit_batches(
            Arc::downgrade(&writer),
            wake_committer.clone(),
        ));
        Ok(Self {
            writer,
            wake_committer,
            commits,
        })
    }

    /// Joins the open batch on sqlx's connection inside a fresh savepoint.
    pub(crate) async fn begin(&self) -> Result<GroupTx, StoreError> {
        let mut writer = self.lock(Side::Sqlx).await?;
        if writer.open.is_none() {
            writer.conn.execute("BEGIN IMMEDIATE").await?;
            writer.open = Some(Side::Sqlx);
        }
        writer.dangling = true;
        if let Err(e) = writer.conn.execute("SAVEPOINT verb").await {
            writer.clean_up().await;
            return Err(e.into());
        }
        Ok(GroupTx {
            writer,
            wake_committer: self.wake_committer.clone(),
        })
    }

    /// Runs `verb` on the rusqlite connection inside a savepoint of the open batch: its rows
    /// are kept if it returns `Ok` (then it waits for the batch to be durable), rolled back if
    /// it returns `Err`.
    pub(crate) async fn run<T>(
        &self,
        verb: impl FnOnce(&rusqlite::Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut guard = self.lock(Side::Fast).await?;
        let writer = &mut *guard;
        let fast = match &mut writer.fast {
            Some(fast) => fast,
            empty => empty.insert(open_fast(&writer.path).map_err(fast_error)?),
        };
        if writer.open.is_none() {
            // Waits (blocking) only if another process writes: an operator's CLI command.
            fast.execute_batch("BEGIN IMMEDIATE").map_err(fast_error)?;
            writer.open = Some(Side::Fast);
        }
        // Prepared once, not parsed again for every verb.
        fast.prepare_cached("SAVEPOINT verb")
            .and_then(|mut savepoint| savepoint.execute([]))
            .map_err(fast_error)?;
        let result = verb(fast);
        let closed = match &result {
            Ok(_) => fast
                .prepare_cached("RELEASE verb")
                .and_then(|mut release| release.execute([])),
            Err(_) => fast
                .execute_batch("ROLLBACK TO verb; RELEASE verb")
                .map(|()| 0),
        };
        if closed.is_err() {
            let _ = fast.execute_batch("ROLLBACK");
            writer.abandon();
            return Err(result.err().unwrap_or(StoreError::Unavailable));
        }
        let value = result?;
        let outcome = writer.outcome.clone();
        drop(guard);
        self.wake_committer.notify_one();
        durable(outcome).await.map(|()| value)
    }

    /// Takes the writer for a verb on `side`: rolls back what an abandoned verb left, and
    /// commits a batch open on the other connection first.
    async fn lock(&self, side: Side) -> Result<OwnedMutexGuard<Writer>, StoreError> {
        let mut writer = self.writer.clone().lock_owned().await;
        writer.clean_up().await;
        if writer.open.is_some_and(|open| open != side) {
            // In a task of its own, so the batch is committed and its verbs told even if this
            // request is cancelled meanwhile.
            writer = tokio::spawn(async move {
                writer.commit().await;
                writer
            })
            .await
            .map_err(|_| StoreError::Unavailable)?;
        }
        Ok(writer)
    }

    #[cfg(test)]
    fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }
}

async fn durable(mut outcome: Outcome) -> Result<(), StoreError> {
    match outcome.wait_for(Option::is_some).await.map(|o| *o) {
        Ok(Some(true)) => Ok(()),
        _ => Err(StoreError::Unavailable),
    }
}

impl GroupTx {
    /// Keeps the verb's rows in the batch and waits until the batch is durable.
    pub(crate) async fn commit(mut self) -> Result<(), StoreError> {
        self.writer.conn.execute("RELEASE verb").await?;
        self.writer.dangling = false;
        let outcome = self.writer.outcome.clone();
        // Dropping the guard lets the next verb in; the committer queues behind those waiting.
        drop(self);
        durable(outcome).await
    }
}

impl Drop for GroupTx {
    fn drop(&mut self) {
        // Either after `commit` (the batch needs committing) or after a failure (the
        // savepoint needs rolling back, which the committer does if no verb comes first).
        self.wake_committer.notify_one();
    }
}

impl Deref for GroupTx {
    type Target = SqliteConnection;
    fn deref(&self) -> &SqliteConnection {
        &self.writer.conn
    }
}

impl DerefMut for GroupTx {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        &mut self.writer.conn
    }
}

impl Writer {
    /// Rolls back a savepoint a failed or cancelled verb left; if that is impossible, the
    /// batch is abandoned.
    async fn clean_up(&mut self) {
        if !self.dangling {
            return;
        }
        let rolled_back = self.conn.execute("ROLLBACK TO verb").await.is_ok()
            && self.conn.execute("RELEASE verb").await.is_ok();
        self.dangling = false;
        if !rolled_back {
            let _ = self.conn.execute("ROLLBACK").await;
            self.abandon();
        }
    }

    /// Commits the open batch, if any, and tells its verbs whether it is durable (a fast batch
    /// once `WalSync` has synced it); then restarts the WAL if it has grown long (`checkpoint`).
    async fn commit(&mut self) {
        let Some(side) = self.open else {
            return;
        };
        let committed = match side {
            Side::Sqlx => {
                let committed = self.conn.execute("COMMIT").await.is_ok();
                if !committed {
                    let _ = self.conn.execute("ROLLBACK").await;
                }
                committed
            }
            // Only writes into the page cache (`synchronous=NORMAL`): no wait for the disk.
            Side::Fast => self.fast.as_ref().is_some_and(|fast| {
                let committed = fast.execute_batch("COMMIT").is_ok();
                if !committed {
                    let _ = fast.execute_batch("ROLLBACK");
                }
                committed
            }),
        };
        if committed {
            self.commits.fetch_add(1, Ordering::Relaxed);
            self.checkpoints.after_commit();
        }
        let batch = self.end_batch();
        match side {
            Side::Fast if committed => self.wal_sync.committed(batch),
            _ => {
                batch.send_replace(Some(committed));
            }
        }
        if committed && self.checkpoints.take_restart() {
            // A failure only leaves the WAL long until the next restart.
            match side {
                Side::Sqlx => {
                    let _ = self.conn.execute(RESTART_WAL).await;
                }
                Side::Fast => {
                    self.on_fast_blocking(|fast| {
                        let _ = fast.query_row(RESTART_WAL, [], |_| Ok(()));
                    })
                    .await;
                }
            }
        }
    }

    /// Runs `f` on the rusqlite connection on the blocking pool; `None` if there is none.
    async fn on_fast_blocking<T: Send + 'static>(
        &mut self,
        f: impl FnOnce(&rusqlite::Connection) -> T + Send + 'static,
    ) -> Option<T> {
        let fast = self.fast.take()?;
        let (fast, result) = tokio::task::spawn_blocking(move || {
            let result = f(&fast);
            (fast, result)
        })
        .await
        .ok()?;
        self.fast = Some(fast);
        Some(result)
    }

    /// Ends the open batch, telling its verbs that it failed.
    fn abandon(&mut self) {
        self.end_batch().send_replace(Some(false));
    }

    /// Ends the open batch; its verbs learn the outcome through what this returns.
    fn end_batch(&mut self) -> BatchOutcome {
        self.open = None;
        let (batch, outcome) = watch::channel(None);
        self.outcome = outcome;
        std::mem::replace(&mut self.batch, batch)
    }
}

async fn commit_batches(writer: Weak<Mutex<Writer>>, wake: Arc<Notify>) {
    loop {
        wake.notified().await;
        let Some(writer) = writer.upgrade() else {
            return;
        };
        let mut writer = writer.lock().await;
        writer.clean_up().await;
        writer.commit().await;
    }
}

/// The rusqlite connection, with the settings sqlx's connection gets (durability was checked
/// on that one; `journal_mode` is the file's, the rest are per connection), except that its
/// `COMMIT` does not sync: `WalSync` does, before any verb of the batch is answered.
fn open_fast(path: &Path) -> rusqlite::Result<rusqlite::Connection> {
    let conn = rusqlite::Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.execute_batch(
        "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA wal_autocheckpoint = 0;",
    )?;
    Ok(conn)
}

pub(crate) fn fast_error(e: rusqlite::Error) -> StoreError {
    use rusqlite::ffi::ErrorCode;
    match e.sqlite_error_code() {
        Some(ErrorCode::ConstraintViolation) => StoreError::Conflict("already exists"),
        Some(
            ErrorCode::DatabaseBusy
            | ErrorCode::DatabaseLocked
            | ErrorCode::SystemIoFailure
            | ErrorCode::CannotOpen
            | ErrorCode::DiskFull
            | ErrorCode::OutOfMemory,
        ) => StoreError::Unavailable,
        _ => StoreError::Lookup(e),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
    use sqlx::Connection;

    use super::*;

    async fn writer(dir: &tempfile::TempDir) -> (GroupWriter, SqliteConnectOptions) {
        let options = SqliteConnectOptions::new()
            .filename(dir.path().join("t.db"))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full);
        let mut conn = SqliteConnection::connect_with(&options).await.unwrap();
        conn.execute("CREATE TABLE t (x INTEGER PRIMARY KEY)")
            .await
            .unwrap();
        (
            GroupWriter::new(conn, &dir.path().join("t.db")).unwrap(),
            options,
        )
    }

    async fn insert(writer: &GroupWriter, x: i64) -> Result<(), StoreError> {
        let mut tx = writer.begin().await?;
        sqlx::query("INSERT INTO t (x) VALUES ($1)")
            .bind(x)
            .execute(&mut *tx)
            .await?;
        tx.commit().await
    }

    /// What another connection (a reader) sees: only committed rows.
    async fn committed(options: &SqliteConnectOptions) -> Vec<i64> {
        let mut conn = SqliteConnection::connect_with(options).await.unwrap();
        sqlx::query_scalar("SELECT x FROM t ORDER BY x")
            .fetch_all(&mut conn)
            .await
            .unwrap()
    }

    /// On a current-thread runtime spawned tasks run only when the test yields, so which verbs
    /// queue behind the held connection is exact, not a race.
    #[tokio::test(flavor = "current_thread")]
    async fn verbs_waiting_for_the_writer_share_one_commit() {
        let dir = tempfile::tempdir().unwrap();
        let (writer, options) = writer(&dir).await;
        let mut first = writer.begin().await.unwrap();
        sqlx::query("INSERT INTO t (x) VALUES (0)")
            .execute(&mut *first)
            .await
            .unwrap();
        let queued: Vec<_> = (1..=20)
            .map(|x| {
                let writer = writer.clone();
                tokio::spawn(async move { insert(&writer, x).await })
            })
            .collect();
        tokio::task::yield_now().await; // each spawned verb now waits for the connection
        first.commit().await.unwrap();
        for verb in queued {
            verb.await.unwrap().unwrap();
        }
        assert_eq!(writer.commits(), 1, "21 verbs, one durable commit");
        assert_eq!(committed(&options).await, (0..=20).collect::<Vec<_>>());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_failed_or_abandoned_verb_leaves_nothing_and_spoils_no_other() {
        let dir = tempfile::tempdir().unwrap();
        let (writer, options) = writer(&dir).await;
        let mut held = writer.begin().await.unwrap();
        let ok = tokio::spawn({
            let writer = writer.clone();
            async move { insert(&writer, 1).await }
        });
        // Writes a row, then fails on a duplicate key: its first row must go too.
        let failing = tokio::spawn({
            let writer = writer.clone();
            async move {
                let mut tx = writer.begin().await?;
                sqlx::query("INSERT INTO t (x) VALUES (100)")
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("INSERT INTO t (x) VALUES (1)")
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await
            }
        });
        // Writes a row and is dropped before committing (a client that went away).
        let abandoned = tokio::spawn({
            let writer = writer.clone();
            async move {
                let mut tx = writer.begin().await.unwrap();
                sqlx::query("INSERT INTO t (x) VALUES (200)")
                    .execute(&mut *tx)
                    .await
                    .unwrap();
            }
        });
        let later = tokio::spawn({
            let writer = writer.clone();
            async move { insert(&writer, 2).await }
        });
        tokio::task::yield_now().await;
        sqlx::query("INSERT INTO t (x) VALUES (0)")
            .execute(&mut *held)
            .await
            .unwrap();
        held.commit().await.unwrap();
        ok.await.unwrap().unwrap();
        assert!(matches!(
            failing.await.unwrap(),
            Err(StoreError::Conflict(_))
        ));
        abandoned.await.unwrap();
        later.await.unwrap().unwrap();
        assert_eq!(committed(&options).await, vec![0, 1, 2]);
    }

    async fn insert_fast(writer: &GroupWriter, x: i64) -> Result<(), StoreError> {
        writer
            .run(|db| {
                db.execute("INSERT INTO t (x) VALUES (?1)", (x,))
                    .map_err(fast_error)?;
                Ok(())
            })
            .await
    }

    #[tokio::test(flavor = "current_thread")]
    async fn verbs_on_both_connections_take_turns_and_all_become_durable() {
        let dir = tempfile::tempdir().unwrap();
        let (writer, options) = writer(&dir).await;
        let held = writer.begin().await.unwrap();
        // Queued in this order: three on rusqlite, one on sqlx, two on rusqlite.
        let kinds = [true, true, true, false, true, true];
        let queued: Vec<_> = kinds
            .iter()
            .enumerate()
            .map(|(i, &fast)| {
                let writer = writer.clone();
                let x = i as i64 + 1;
                tokio::spawn(async move {
                    if fast {
                        insert_fast(&writer, x).await
                    } else {
                        insert(&writer, x).await
                    }
                })
            })
            .collect();
        tokio::task::yield_now().await;
        held.commit().await.unwrap();
        for verb in queued {
            verb.await.unwrap().unwrap();
        }
        // Each switch of connection commits the batch before it: sqlx (the held verb), three
        // fast, one sqlx, two fast.
        assert_eq!(writer.commits(), 4);
        assert_eq!(committed(&options).await, (1..=6).collect::<Vec<_>>());
        // A fast verb that fails leaves nothing behind.
        let failed = writer
            .run(|db| {
                db.execute("INSERT INTO t (x) VALUES (100)", ())
                    .map_err(fast_error)?;
                db.execute("INSERT INTO t (x) VALUES (1)", ())
                    .map_err(fast_error)?;
                Ok(())
            })
            .await;
        assert!(matches!(failed, Err(StoreError::Conflict(_))));
        insert_fast(&writer, 7).await.unwrap();
        assert_eq!(committed(&options).await, (1..=7).collect::<Vec<_>>());
    }

    /// Frames in the WAL now (a passive checkpoint from another connection reports them).
    fn wal_frames(dir: &tempfile::TempDir) -> i64 {
        let conn = rusqlite::Connection::open(dir.path().join("t.db")).unwrap();
        conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get(1))
            .unwrap()
    }

    #[tokio::test]
    async fn the_wal_is_checkpointed_beside_the_writer_and_does_not_keep_growing() {
        let dir = tempfile::tempdir().unwrap();
        let (writer, _) = writer(&dir).await;
        writer
            .run(|db| {
                db.execute_batch("CREATE TABLE b (v BLOB)")
                    .map_err(fast_error)
            })
            .await
            .unwrap();
        // 20 MiB through the WAL, more than the restart threshold, one commit at a time.
        for _ in 0..80 {
            writer
                .run(|db| {
                    db.execute("INSERT INTO b VALUES (zeroblob(262144))", ())
                        .map_err(fast_error)?;
                    Ok(())
                })
                .await
                .unwrap();
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let mut x = 0;
        while wal_frames(&dir) > 100 {
            assert!(
                std::time::Instant::now() < deadline,
                "the WAL was never restarted"
            );
            x += 1;
            insert_fast(&writer, x).await.unwrap();
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn a_verb_is_acknowledged_only_once_its_batch_is_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let (writer, options) = writer(&dir).await;
        insert(&writer, 7).await.unwrap();
        // Acknowledged means committed: another connection sees it at once.
        assert_eq!(committed(&options).await, vec![7]);
        assert_eq!(writer.commits(), 1);
    }
}
