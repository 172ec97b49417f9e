//! The thread that runs the token endpoint's writes on the rusqlite connection. Requests queue
//! their verbs here instead of taking the writer themselves: with the writer behind an async
//! mutex, every hand-over had to wait until the next request's task was polled on a busy
//! worker, and the writer sat idle between verbs while most of the CPU was free. This thread
//! takes the writer once per batch, runs every verb queued meanwhile, each in a savepoint,
//! commits, and hands the batch to `WalSync`; requests wait only for their batch to be durable.
//!
//! A verb already queued runs even if its request goes away, like a verb whose request goes
//! away after it ran: its rows are committed and nobody is told.

use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use rusqlite::Connection;
use tokio::runtime::Handle;
use tokio::sync::{oneshot, watch, Mutex};

use crate::checkpoint::RESTART_WAL;
use crate::group_commit::{Outcome, Writer};
use crate::StoreError;

/// Verbs per batch at most, so a batch's first verb is not kept waiting for its commit behind
/// an endless queue (a refresh takes some 20 µs in the writer).
const MAX_BATCH: usize = 256;

/// A queued verb: run once, then answered with its result and the outcome of its batch.
pub(crate) trait FastVerb: Send {
    /// Runs the verb; whether it succeeded (its savepoint is kept) or not (rolled back).
    fn run(&mut self, db: &Connection) -> bool;
    /// Tells the request what became of the verb: `Ok` with its batch's outcome, or why the
    /// batch failed.
    fn answer(self: Box<Self>, batch: Result<Outcome, StoreError>);
}

pub(crate) type Answer<T> = oneshot::Sender<Result<(T, Outcome), StoreError>>;

pub(crate) struct Queued<F, T> {
    verb: Option<F>,
    result: Option<Result<T, StoreError>>,
    answer: Answer<T>,
}

impl<F, T> Queued<F, T> {
    pub(crate) fn new(verb: F, answer: Answer<T>) -> Self {
        Self {
            verb: Some(verb),
            result: None,
            answer,
        }
    }
}

impl<F, T> FastVerb for Queued<F, T>
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
        // The request may have gone away.
        let _ = answer.send(reply);
    }
}

pub(crate) type Queue = mpsc::Sender<Box<dyn FastVerb>>;

/// Starts the writer thread for the database at `path`; it ends when every `Queue` is dropped.
pub(crate) fn start(path: &Path, writer: Arc<Mutex<Writer>>) -> std::io::Result<Queue> {
    let (queue, verbs) = mpsc::channel();
    let thread = FastWriter {
        path: path.to_owned(),
        writer,
        runtime: Handle::current(),
        conn: None,
    };
    std::thread::Builder::new()
        .name("grantd-writer".into())
        .spawn(move || thread.run(verbs))?;
    Ok(queue)
}

struct FastWriter {
    path: PathBuf,
    writer: Arc<Mutex<Writer>>,
    /// For the sqlx connection's async calls, when a batch of its own must end first.
    runtime: Handle,
    conn: Option<Connection>,
}

impl FastWriter {
    fn run(mut self, verbs: mpsc::Receiver<Box<dyn FastVerb>>) {
        while let Ok(first) = verbs.recv() {
            let writer = self.writer.clone();
            let mut writer = writer.blocking_lock();
            if writer.is_busy() {
                self.runtime.block_on(writer.make_way());
            }
            let conn = match self.begin() {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::warn!(error = %e, "the SQLite writer cannot begin a batch");
                    for verb in std::iter::once(first).chain(verbs.try_iter()) {
                        verb.answer(Err(StoreError::Unavailable));
                    }
                    continue;
                }
            };
            let (batch, outcome) = watch::channel(None);
            let mut next = Some(first);
            let mut ran = 0;
            let mut intact = true;
            while let Some(mut verb) = next.take() {
                // A verb that panics fails alone, as it would in its request's task.
                let closed = in_savepoint(conn, |db| {
                    panic::catch_unwind(AssertUnwindSafe(|| verb.run(db))).unwrap_or(false)
                });
                if !closed {
                    verb.answer(Err(StoreError::Unavailable));
                    intact = false;
                    break;
                }
                verb.answer(Ok(outcome.clone()));
                ran += 1;
                if ran < MAX_BATCH {
                    next = verbs.try_recv().ok();
                }
            }
            // Only writes into the page cache (`synchronous=NORMAL`); `WalSync` syncs.
            if intact && conn.execute_batch("COMMIT").is_ok() {
                writer.fast_committed(batch);
                if writer.take_restart() {
                    // A failure only leaves the WAL long until the next restart.
                    let _ = conn.query_row(RESTART_WAL, [], |_| Ok(()));
                }
            } else {
                let _ = conn.execute_batch("ROLLBACK");
                batch.send_replace(Some(false));
            }
        }
    }

    /// Opens the batch transaction, first opening the connection if needed.
    fn begin(&mut self) -> rusqlite::Result<&Connection> {
        let conn = match &mut self.conn {
            Some(conn) => conn,
            empty => empty.insert(open_fast(&self.path)?),
        };
        // Waits only if another process writes: an operator's CLI command.
        conn.execute_batch("BEGIN IMMEDIATE")?;
        Ok(conn)
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

/// The rusqlite connection, with the settings sqlx's connection gets (durability was checked
/// on that one; `journal_mode` is the file's, the rest are per connection), except that its
/// `COMMIT` does not sync: `WalSync` does, before any verb of the batch is answered. With
/// `temp_store = MEMORY` a savepoint's journal grows in 1 KiB pieces instead of 64 KiB ones,
/// whose release made glibc hand memory back to the kernel (`madvise`, and a TLB flush on every
/// core) at every verb: 6 % of the writer's time. Its page cache is 32 MiB instead of 2: the
/// token indexes are keyed by random hashes, so a small cache reads most pages back from the OS.
fn open_fast(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.execute_batch(
        "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA wal_autocheckpoint = 0;
         PRAGMA temp_store = MEMORY; PRAGMA cache_size = -32768;",
    )?;
    Ok(conn)
}
