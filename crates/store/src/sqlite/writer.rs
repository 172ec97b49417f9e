//! SQLite's single writer: one thread owns the only writing connection and runs every write
//! verb, in batches. A durable commit costs one `fsync` of the WAL, so one commit per verb would
//! cap writes at the disk's sync rate; instead the thread takes every verb queued meanwhile
//! (up to `MAX_BATCH`), runs each in a savepoint of one transaction (a verb that fails or
//! panics is rolled back alone), commits without syncing, and hands the batch to `WalSync`,
//! which `fdatasync`s the WAL and only then lets the batch's verbs answer. The thread starts
//! the next batch while the disk syncs.
//!
//! A queued verb runs whether or not its caller still waits, and a caller has nothing to
//! cancel: it only awaits answers. So a dropped request never leaves a transaction open or
//! the write lock held, and its write commits wholly or not at all.

use std::panic::{self, AssertUnwindSafe};
use std::sync::mpsc;

use rusqlite::Connection;
use tokio::sync::{oneshot, watch};

use super::checkpoint::{Checkpoints, RESTART_WAL};
use super::wal_sync::{BatchOutcome, WalSync};
use crate::StoreError;

/// Verbs per batch at most, so a batch's first verb is not kept waiting for its commit behind
/// an endless queue (a refresh takes some 20 µs in the writer).
const MAX_BATCH: usize = 256;

/// Whether a batch is durable: `None` until `WalSync` has decided.
type Outcome = watch::Receiver<Option<bool>>;

#[derive(Clone, Debug)]
pub(crate) struct Writer {
    queue: mpsc::Sender<Box<dyn Job>>,
}

impl Writer {
    /// Starts the writer thread on `conn`; it ends when every clone of the `Writer` is gone.
    pub(crate) fn start(
        conn: Connection,
        wal_sync: WalSync,
        checkpoints: Checkpoints,
    ) -> std::io::Result<Writer> {
        let (queue, jobs) = mpsc::channel();
        let thread = WriterThread {
            conn,
            wal_sync,
            checkpoints,
        };
        std::thread::Builder::new()
            .name("grantd-writer".into())
            .spawn(move || thread.run(jobs))?;
        Ok(Writer { queue })
    }

    /// Runs `verb` on the writer thread inside a savepoint of its batch: its rows are kept if
    /// it returns `Ok` (and then it answers once the batch is durable), rolled back if it
    /// returns `Err`.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        verb: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (answer, answered) = oneshot::channel();
        self.queue
            .send(Box::new(Queued {
                verb: Some(verb),
                result: None,
                answer,
            }))
            .map_err(|_| StoreError::Unavailable)?;
        let (value, mut outcome) = answered.await.map_err(|_| StoreError::Unavailable)??;
        match outcome.wait_for(Option::is_some).await.map(|o| *o) {
            Ok(Some(true)) => Ok(value),
            _ => Err(StoreError::Unavailable),
        }
    }
}

/// A queued verb: run once, then answered with its result and its batch's outcome.
trait Job: Send {
    /// Runs the verb; whether it succeeded (its savepoint is kept) or not (rolled back).
    fn run(&mut self, db: &Connection) -> bool;
    /// Tells the caller what became of the verb: its result and its batch's outcome, or why
    /// the batch failed.
    fn answer(self: Box<Self>, batch: Result<Outcome, StoreError>);
}

struct Queued<F, T> {
    verb: Option<F>,
    result: Option<Result<T, StoreError>>,
    answer: oneshot::Sender<Result<(T, Outcome), StoreError>>,
}

impl<F, T> Job for Queued<F, T>
where
    F: FnOnce(&Connection) -> Result<T, StoreError> + Send,
    T: Send,
{
    fn run(&mut self, db: &Connection) -> bool {
        let result = self
            .verb
            .take()
            .map_or(Err(StoreError::Unavailable), |verb| verb(db));
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn answer(self: Box<Self>, batch: Result<Outcome, StoreError>) {
        let Self { result, answer, .. } = *self;
        let reply = batch.and_then(|outcome| {
            result
                .unwrap_or(Err(StoreError::Unavailable))
                .map(|value| (value, outcome))
        });
        // The caller may have stopped waiting; the verb's outcome is the same either way.
        let _ = answer.send(reply);
    }
}

struct WriterThread {
    conn: Connection,
    wal_sync: WalSync,
    checkpoints: Checkpoints,
}

impl WriterThread {
    fn run(self, jobs: mpsc::Receiver<Box<dyn Job>>) {
        while let Ok(first) = jobs.recv() {
            if self.wal_sync.has_failed() {
                for job in std::iter::once(first).chain(jobs.try_iter()) {
                    job.answer(Err(StoreError::Unavailable));
                }
                continue;
            }
            // Waits only if another process writes: an operator's CLI command.
            if let Err(e) = self.conn.execute_batch("BEGIN IMMEDIATE") {
                tracing::warn!(error = %e, "the SQLite writer cannot begin a batch");
                for job in std::iter::once(first).chain(jobs.try_iter()) {
                    job.answer(Err(StoreError::Unavailable));
                }
                continue;
            }
            let (batch, outcome): (BatchOutcome, Outcome) = watch::channel(None);
            let mut next = Some(first);
            let mut ran = 0;
            let mut intact = true;
            while let Some(mut job) = next.take() {
                // A verb that panics fails alone, as it would in its caller's task.
                let closed = in_savepoint(&self.conn, |db| {
                    panic::catch_unwind(AssertUnwindSafe(|| job.run(db))).unwrap_or(false)
                });
                if !closed {
                    job.answer(Err(StoreError::Unavailable));
                    intact = false;
                    break;
                }
                job.answer(Ok(outcome.clone()));
                ran += 1;
                if ran < MAX_BATCH {
                    next = jobs.try_recv().ok();
                }
            }
            // `synchronous = NORMAL`: this only writes the frames into the WAL; `WalSync`
            // makes them durable before anyone is answered.
            if intact && self.conn.execute_batch("COMMIT").is_ok() {
                self.wal_sync.committed(batch);
                self.checkpoints.after_commit();
                if self.checkpoints.take_restart() {
                    // A failure only leaves the WAL long until the next restart.
                    let _ = self.conn.query_row(RESTART_WAL, [], |_| Ok(()));
                }
            } else {
                let _ = self.conn.execute_batch("ROLLBACK");
                batch.send_replace(Some(false));
            }
        }
    }
}

/// Runs `verb` in a savepoint, kept if it says it succeeded and rolled back if not. Whether
/// the savepoint could be closed: if not, the batch transaction is lost.
fn in_savepoint(conn: &Connection, verb: impl FnOnce(&Connection) -> bool) -> bool {
    // Prepared once, not parsed again for every verb.
    let opened = conn
        .prepare_cached("SAVEPOINT verb")
        .and_then(|mut savepoint| savepoint.execute([]));
    if opened.is_err() {
        return false;
    }
    if verb(conn) {
        conn.prepare_cached("RELEASE verb")
            .and_then(|mut release| release.execute([]))
            .is_ok()
    } else {
        conn.execute_batch("ROLLBACK TO verb; RELEASE verb").is_ok()
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use futures::FutureExt;

    use super::*;

    /// A writer on a fresh file with one table, whose WAL syncs are counted (each durable
    /// commit costs one).
    fn writer(dir: &tempfile::TempDir) -> (Writer, Arc<AtomicU64>) {
        let path = dir.path().join("t.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (x INTEGER PRIMARY KEY)")
            .unwrap();
        let syncs = Arc::new(AtomicU64::new(0));
        let counted = syncs.clone();
        let wal_sync = WalSync::start_with(move || {
            counted.fetch_add(1, Ordering::SeqCst);
            Ok(())
        })
        .unwrap();
        let writer = Writer::start(conn, wal_sync, Checkpoints::start(&path)).unwrap();
        (writer, syncs)
    }

    fn insert(writer: &Writer, x: i64) -> impl Future<Output = Result<(), StoreError>> + '_ {
        writer.run(move |db| {
            db.execute("INSERT INTO t (x) VALUES (?1)", (x,))?;
            Ok(())
        })
    }

    /// What another connection sees: only committed rows.
    fn committed(dir: &tempfile::TempDir) -> Vec<i64> {
        let conn = Connection::open(dir.path().join("t.db")).unwrap();
        let mut statement = conn.prepare("SELECT x FROM t ORDER BY x").unwrap();
        let rows = statement.query_map([], |r| r.get(0)).unwrap();
        rows.collect::<rusqlite::Result<_>>().unwrap()
    }

    #[tokio::test]
    async fn verbs_queued_while_the_writer_works_share_one_durable_commit() {
        let dir = tempfile::tempdir().unwrap();
        let (writer, syncs) = writer(&dir);
        // The first verb holds the writer thread until the other twenty are queued.
        let (release, held) = std::sync::mpsc::channel::<()>();
        let first = writer.run(move |db| {
            held.recv().unwrap();
            db.execute("INSERT INTO t (x) VALUES (0)", ())?;
            Ok(())
        });
        let mut first = Box::pin(first);
        assert!(
            (&mut first).now_or_never().is_none(),
            "queued, not answered"
        );
        let mut queued: Vec<_> = (1..=20).map(|x| Box::pin(insert(&writer, x))).collect();
        for verb in &mut queued {
            // The first poll queues the verb.
            assert!(verb.as_mut().now_or_never().is_none());
        }
        release.send(()).unwrap();
        first.await.unwrap();
        for verb in queued {
            verb.await.unwrap();
        }
        assert_eq!(syncs.load(Ordering::SeqCst), 1, "21 verbs, one sync");
        assert_eq!(committed(&dir), (0..=20).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn a_failed_or_panicking_verb_leaves_nothing_and_spoils_no_other() {
        let dir = tempfile::tempdir().unwrap();
        let (writer, _) = writer(&dir);
        insert(&writer, 1).await.unwrap();
        // Writes a row, then fails on a duplicate key: its first row must go too.
        let failed = writer
            .run(|db| {
                db.execute("INSERT INTO t (x) VALUES (100)", ())?;
                db.execute("INSERT INTO t (x) VALUES (1)", ())?;
                Ok(())
            })
            .await;
        assert!(matches!(failed, Err(StoreError::Conflict(_))), "{failed:?}");
        // A verb that panics fails alone; the writer thread goes on.
        let panicked = writer
            .run(|db| -> Result<(), StoreError> {
                db.execute("INSERT INTO t (x) VALUES (200)", ())?;
                panic!("a rule that breaks")
            })
            .await;
        assert!(matches!(panicked, Err(StoreError::Unavailable)));
        insert(&writer, 2).await.unwrap();
        assert_eq!(committed(&dir), vec![1, 2]);
    }

    #[tokio::test]
    async fn a_verb_whose_caller_stops_waiting_still_commits_whole() {
        let dir = tempfile::tempdir().unwrap();
        let (writer, _) = writer(&dir);
        // Queued, then dropped before its answer (a client that went away).
        let mut dropped = Box::pin(writer.run(|db| {
            db.execute("INSERT INTO t (x) VALUES (5)", ())?;
            db.execute("INSERT INTO t (x) VALUES (6)", ())?;
            Ok(())
        }));
        assert!(dropped.as_mut().now_or_never().is_none());
        drop(dropped);
        // Verbs run in order: once a later one is durable, the dropped one has run too.
        insert(&writer, 7).await.unwrap();
        assert_eq!(committed(&dir), vec![5, 6, 7]);
    }

    /// Frames in the WAL now (a passive checkpoint from another connection reports them).
    fn wal_frames(dir: &tempfile::TempDir) -> i64 {
        let conn = Connection::open(dir.path().join("t.db")).unwrap();
        conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get(1))
            .unwrap()
    }

    #[tokio::test]
    async fn the_wal_is_checkpointed_beside_the_writer_and_does_not_keep_growing() {
        let dir = tempfile::tempdir().unwrap();
        let (writer, _) = writer(&dir);
        writer
            .run(|db| Ok(db.execute_batch("CREATE TABLE b (v BLOB)")?))
            .await
            .unwrap();
        // 20 MiB through the WAL, more than the restart threshold, one commit at a time.
        for _ in 0..80 {
            writer
                .run(|db| {
                    db.execute("INSERT INTO b VALUES (zeroblob(262144))", ())?;
                    Ok(())
                })
                .await
                .unwrap();
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut x = 0;
        while wal_frames(&dir) > 100 {
            assert!(Instant::now() < deadline, "the WAL was never restarted");
            x += 1;
            insert(&writer, x).await.unwrap();
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
