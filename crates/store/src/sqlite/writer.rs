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
