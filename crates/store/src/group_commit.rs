//! Group commit for SQLite's single writer. A durable commit costs one `fsync` of the WAL, so
//! one commit per request caps the token endpoint at the disk's sync rate. Here every write verb
//! runs inside a savepoint of one long batch transaction and waits, before it answers, until a
//! committer task has committed that batch. The committer queues for the writer like any verb
//! (tokio's mutex is first-in, first-out), so every verb that was already waiting joins the
//! batch, and one `fsync` makes all of them durable: a verb is acknowledged only after its rows
//! are on disk, but concurrent verbs share the disk's time.
//!
//! The writer has two connections to the one file. The token endpoint's verbs
//! (`sqlite_hot_writes`) run on a rusqlite connection, on a thread of their own
//! (`fast_writer`): sqlx hands every statement to a thread of its own and back, and with eight
//! statements per refresh those hand-offs, not the disk, became what the writer waits for.
//! That thread takes the writer for one batch at a time and commits it before letting go, so
//! the two connections never hold SQLite's write lock at once. Every other verb runs on sqlx's
//! connection, in a batch the committer task commits.
//!
//! A verb that fails or is cancelled leaves its savepoint behind; whoever takes the writer next
//! rolls it back, so its rows never reach a commit. When SQLite cannot roll back to the
//! savepoint (an I/O error already ended the transaction), the whole batch is abandoned and
//! every verb in it learns that its commit failed.

use std::ops::{Deref, DerefMut};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use sqlx::{Executor, SqliteConnection};
use tokio::sync::{oneshot, watch, Mutex, Notify, OwnedMutexGuard};

use crate::checkpoint::{Checkpoints, RESTART_WAL};
use crate::fast_writer::{self, Queued};
use crate::wal_sync::{BatchOutcome, WalSync};
use crate::StoreError;

/// The outcome of one batch: `None` while it is open, then whether it is durable.
pub(crate) type Outcome = watch::Receiver<Option<bool>>;

#[derive(Debug)]
pub(crate) struct Writer {
    conn: SqliteConnection,
    /// Whether sqlx's connection has a batch transaction open (`BEGIN IMMEDIATE` issued).
    open: bool,
    /// A sqlx verb's savepoint that was neither released nor rolled back. (Fast verbs run
    /// on their thread without awaiting, so they cannot be cancelled half-way.)
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
    fast: fast_writer::Queue,
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
            open: false,
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
            fast: fast_writer::start(path, writer.clone())?,
            writer,
            wake_committer,
            commits,
        })
    }

    /// Joins the open batch on sqlx's connection inside a fresh savepoint.
    pub(crate) async fn begin(&self) -> Result<GroupTx, StoreError> {
        let mut writer = self.writer.clone().lock_owned().await;
        writer.clean_up().await;
        if !writer.open {
            writer.conn.execute("BEGIN IMMEDIATE").await?;
            writer.open = true;
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

    /// Runs `verb` on the rusqlite connection, on the writer thread, inside a savepoint of its
    /// batch: its rows are kept if it returns `Ok` (then it waits for the batch to be durable),
    /// rolled back if it returns `Err`.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        verb: impl FnOnce(&rusqlite::Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (answer, answered) = oneshot::channel();
        self.fast
            .send(Box::new(Queued::new(verb, answer)))
            .map_err(|_| StoreError::Unavailable)?;
        let (value, outcome) = answered.await.map_err(|_| StoreError::Unavailable)??;
        durable(outcome).await.map(|()| value)
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

    /// Commits sqlx's open batch, if any, and tells its verbs whether it is durable; then
    /// restarts the WAL if it has grown long (`checkpoint`).
    async fn commit(&mut self) {
        if !self.open {
            return;
        }
        let committed = self.conn.execute("COMMIT").await.is_ok();
        if !committed {
            let _ = self.conn.execute("ROLLBACK").await;
        }
        if committed {
            self.commits.fetch_add(1, Ordering::Relaxed);
            self.checkpoints.after_commit();
        }
        self.end_batch().send_replace(Some(committed));
        if committed && self.checkpoints.take_restart() {
            // A failure only leaves the WAL long until the next restart.
            let _ = self.conn.execute(RESTART_WAL).await;
        }
    }

    /// Whether sqlx's connection has something to finish before the writer thread's batch.
    pub(crate) fn is_busy(&self) -> bool {
        self.open || self.dangling
    }

    /// Finishes what sqlx's connection has open, so the writer thread can begin its batch.
    pub(crate) async fn make_way(&mut self) {
        self.clean_up().await;
        self.commit().await;
    }

    /// Takes a batch the writer thread committed: it is durable once `WalSync` has synced it.
    pub(crate) fn fast_committed(&mut self, batch: BatchOutcome) {
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.checkpoints.after_commit();
        self.wal_sync.committed(batch);
    }

    /// Whether the WAL has grown long enough to restart now.
    pub(crate) fn take_restart(&self) -> bool {
        self.checkpoints.take_restart()
    }

    /// Ends the open batch, telling its verbs that it failed.
    fn abandon(&mut self) {
        self.end_batch().send_replace(Some(false));
    }

    /// Ends the open batch; its verbs learn the outcome through what this returns.
    fn end_batch(&mut self) -> BatchOutcome {
        self.open = false;
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

    use std::time::Duration;

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
            .run(move |db| {
                db.execute("INSERT INTO t (x) VALUES (?1)", (x,))
                    .map_err(fast_error)?;
                Ok(())
            })
            .await
    }

    /// The writer thread takes every fast verb queued while it waited for the writer into one
    /// batch: it commits the sqlx batch it found open, then its own.
    #[tokio::test(flavor = "current_thread")]
    async fn fast_verbs_queued_behind_the_writer_share_one_commit() {
        let dir = tempfile::tempdir().unwrap();
        let (writer, options) = writer(&dir).await;
        let mut held = writer.begin().await.unwrap();
        sqlx::query("INSERT INTO t (x) VALUES (0)")
            .execute(&mut *held)
            .await
            .unwrap();
        let queued: Vec<_> = (1..=20)
            .map(|x| {
                let writer = writer.clone();
                tokio::spawn(async move { insert_fast(&writer, x).await })
            })
            .collect();
        tokio::task::yield_now().await; // each spawned verb is now queued for the thread
        held.commit().await.unwrap();
        for verb in queued {
            verb.await.unwrap().unwrap();
        }
        assert_eq!(
            writer.commits(),
            2,
            "the sqlx batch, then 20 fast verbs in one"
        );
        assert_eq!(committed(&options).await, (0..=20).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn verbs_on_both_connections_take_turns_and_all_become_durable() {
        let dir = tempfile::tempdir().unwrap();
        let (writer, options) = writer(&dir).await;
        let verbs: Vec<_> = (1..=40)
            .map(|x| {
                let writer = writer.clone();
                tokio::spawn(async move {
                    if x % 3 == 0 {
                        insert(&writer, x).await
                    } else {
                        insert_fast(&writer, x).await
                    }
                })
            })
            .collect();
        for verb in verbs {
            verb.await.unwrap().unwrap();
        }
        assert_eq!(committed(&options).await, (1..=40).collect::<Vec<_>>());
        // A fast verb that fails leaves nothing behind, and spoils no other verb of its batch.
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
        // A verb that panics fails alone; the writer thread goes on.
        let panicked = writer
            .run(|db| -> Result<(), StoreError> {
                db.execute("INSERT INTO t (x) VALUES (200)", ())
                    .map_err(fast_error)?;
                panic!("a rule that breaks")
            })
            .await;
        assert!(matches!(panicked, Err(StoreError::Unavailable)));
        insert_fast(&writer, 41).await.unwrap();
        assert_eq!(committed(&options).await, (1..=41).collect::<Vec<_>>());
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
