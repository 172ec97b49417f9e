//! Group commit for SQLite's single writer. A durable commit costs one `fsync` of the WAL, so
//! one commit per request caps the token endpoint at the disk's sync rate. Here every write verb
//! runs inside a savepoint of one long batch transaction and waits, before it answers, until a
//! committer task has committed that batch. The committer queues for the connection like any
//! verb (tokio's mutex is first-in, first-out), so every verb that was already waiting joins
//! the batch, and one `fsync` makes all of them durable: a verb is acknowledged only after its
//! rows are on disk, but concurrent verbs share the disk's time.
//!
//! A verb that fails or is cancelled leaves its savepoint behind; whoever takes the connection
//! next rolls it back, so its rows never reach a commit. When SQLite cannot roll back to the
//! savepoint (an I/O error already ended the transaction), the whole batch is abandoned and
//! every verb in it learns that its commit failed.

use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use sqlx::{Executor, SqliteConnection};
use tokio::sync::{watch, Mutex, Notify, OwnedMutexGuard};

use crate::StoreError;

/// The outcome of one batch: `None` while it is open, then whether its commit succeeded.
type Outcome = watch::Receiver<Option<bool>>;

#[derive(Debug)]
struct Writer {
    conn: SqliteConnection,
    /// `BEGIN IMMEDIATE` has been issued and the batch is not committed yet.
    open: bool,
    /// A verb's savepoint that was neither released nor rolled back.
    dangling: bool,
    batch: watch::Sender<Option<bool>>,
    outcome: Outcome,
}

#[derive(Clone, Debug)]
pub(crate) struct GroupWriter {
    writer: Arc<Mutex<Writer>>,
    wake_committer: Arc<Notify>,
    commits: Arc<AtomicU64>,
}

/// One verb's share of the batch: the connection, inside the verb's savepoint.
pub(crate) struct GroupTx {
    writer: OwnedMutexGuard<Writer>,
    wake_committer: Arc<Notify>,
}

impl GroupWriter {
    /// Takes over `conn` (already migrated) and starts its committer on the current runtime.
    pub(crate) fn new(conn: SqliteConnection) -> Self {
        let (batch, outcome) = watch::channel(None);
        let writer = Arc::new(Mutex::new(Writer {
            conn,
            open: false,
            dangling: false,
            batch,
            outcome,
        }));
        let wake_committer = Arc::new(Notify::new());
        let commits = Arc::new(AtomicU64::new(0));
        tokio::spawn(commit_batches(
            Arc::downgrade(&writer),
            wake_committer.clone(),
            commits.clone(),
        ));
        Self {
            writer,
            wake_committer,
            commits,
        }
    }

    /// Joins the open batch (opening one if needed) inside a fresh savepoint.
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

    /// How many batches have been committed: the number of durable syncs paid for.
    pub(crate) fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }
}

impl GroupTx {
    /// Keeps the verb's rows in the batch and waits until the batch is durable.
    pub(crate) async fn commit(mut self) -> Result<(), StoreError> {
        self.writer.conn.execute("RELEASE verb").await?;
        self.writer.dangling = false;
        let mut outcome = self.writer.outcome.clone();
        // Dropping the guard lets the next verb in; the committer queues behind those waiting.
        drop(self);
        match outcome.wait_for(Option::is_some).await.map(|o| *o) {
            Ok(Some(true)) => Ok(()),
            _ => Err(StoreError::Unavailable),
        }
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
            self.finish(false);
        }
    }

    /// Ends the open batch, telling its verbs whether it is durable.
    fn finish(&mut self, committed: bool) {
        self.open = false;
        let (batch, outcome) = watch::channel(None);
        let finished = std::mem::replace(&mut self.batch, batch);
        self.outcome = outcome;
        finished.send_replace(Some(committed));
    }
}

async fn commit_batches(writer: Weak<Mutex<Writer>>, wake: Arc<Notify>, commits: Arc<AtomicU64>) {
    loop {
        wake.notified().await;
        let Some(writer) = writer.upgrade() else {
            return;
        };
        let mut writer = writer.lock().await;
        writer.clean_up().await;
        if writer.open {
            let committed = writer.conn.execute("COMMIT").await.is_ok();
            if committed {
                commits.fetch_add(1, Ordering::Relaxed);
            } else {
                let _ = writer.conn.execute("ROLLBACK").await;
            }
            writer.finish(committed);
        }
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
        (GroupWriter::new(conn), options)
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
