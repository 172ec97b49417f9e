//! Durability of the writer's batches, one `fdatasync` behind the writer. With
//! `synchronous=FULL` SQLite syncs the WAL inside `COMMIT`, and the writer, with every queued
//! verb, waits for the disk. The writer commits with `synchronous=NORMAL` instead:
//! `COMMIT` only writes the batch's frames into the WAL, the writer moves on to the next batch,
//! and this thread syncs the WAL file and only then tells the batch's verbs that it is
//! durable. Batches committed while a sync runs share the next one.
//!
//! Nothing is acknowledged before it is on disk, and what a crash keeps is always a prefix of
//! the commit order: a sync covers every frame written before it, and batches are answered in
//! order. Another connection may read a batch's rows before they are durable, but those are
//! rows no client has been told about yet (its verbs are still waiting). After a failed sync
//! the kernel may already have dropped the unwritten pages, so no later batch can be known to
//! be durable: every one fails until the server is restarted (as PostgreSQL does).

use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};

use tokio::sync::watch;

/// Where a batch's verbs learn whether it is durable.
pub(crate) type BatchOutcome = watch::Sender<Option<bool>>;

#[derive(Debug)]
pub(crate) struct WalSync {
    batches: mpsc::Sender<BatchOutcome>,
    /// Set for good by the first failed sync.
    failed: Arc<AtomicBool>,
}

impl WalSync {
    /// Starts the sync thread for the WAL of the database at `db`; it ends when this is
    /// dropped.
    pub(crate) fn start(db: &Path) -> io::Result<Self> {
        let mut wal = db.as_os_str().to_owned();
        wal.push("-wal");
        let mut file = WalFile {
            path: wal.into(),
            open: None,
        };
        Self::start_with(move || file.sync())
    }

    pub(crate) fn start_with(
        sync: impl FnMut() -> io::Result<()> + Send + 'static,
    ) -> io::Result<Self> {
        let (batches, queue) = mpsc::channel();
        let failed = Arc::new(AtomicBool::new(false));
        let latch = failed.clone();
        std::thread::Builder::new()
            .name("grantd-wal-sync".into())
            .spawn(move || run(queue, sync, &latch))?;
        Ok(Self { batches, failed })
    }

    /// Whether a sync has failed: from then on the writer runs no verb at all, so that no
    /// write it could not acknowledge reaches the database and its readers.
    pub(crate) fn has_failed(&self) -> bool {
        self.failed.load(Ordering::SeqCst)
    }

    /// Hands over a batch whose `COMMIT` has written it into the WAL.
    pub(crate) fn committed(&self, batch: BatchOutcome) {
        if let Err(mpsc::SendError(batch)) = self.batches.send(batch) {
            batch.send_replace(Some(false));
        }
    }
}

fn run(
    queue: mpsc::Receiver<BatchOutcome>,
    mut sync: impl FnMut() -> io::Result<()>,
    latch: &AtomicBool,
) {
    let mut failed = false;
    while let Ok(first) = queue.recv() {
        let waiting: Vec<BatchOutcome> = std::iter::once(first).chain(queue.try_iter()).collect();
        if !failed {
            if let Err(e) = sync() {
                tracing::error!(
                    error = %e,
                    "cannot sync the SQLite WAL; no write is acknowledged until grantd restarts"
                );
                failed = true;
                latch.store(true, Ordering::SeqCst);
            }
        }
        for batch in waiting {
            batch.send_replace(Some(!failed));
        }
    }
}

struct WalFile {
    path: PathBuf,
    open: Option<File>,
}

impl WalFile {
    /// `fdatasync` of the WAL, through a descriptor of its own: syncing a file flushes its
    /// pages whichever descriptor wrote them. SQLite keeps the file while its connections are
    /// open, but should it ever be replaced, the new one is opened.
    fn sync(&mut self) -> io::Result<()> {
        let current = std::fs::metadata(&self.path)?.ino();
        let file = match self.open.take() {
            Some(file) if file.metadata()?.ino() == current => file,
            _ => File::open(&self.path)?,
        };
        file.sync_data()?;
        self.open = Some(file);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::{Arc, Mutex};

    use super::*;

    fn batch() -> (BatchOutcome, watch::Receiver<Option<bool>>) {
        watch::channel(None)
    }

    /// A sync that waits until the test lets it finish, and says when it has started.
    fn gated_sync(
        results: Vec<io::Result<()>>,
    ) -> (
        impl FnMut() -> io::Result<()> + Send + 'static,
        mpsc::Receiver<()>,
        mpsc::Sender<()>,
    ) {
        let (started, starts) = mpsc::channel();
        let (finish, finishes) = mpsc::channel::<()>();
        let results = Arc::new(Mutex::new(results.into_iter()));
        let sync = move || {
            started.send(()).unwrap();
            finishes.recv().unwrap();
            results.lock().unwrap().next().unwrap()
        };
        (sync, starts, finish)
    }

    #[test]
    fn a_batch_is_answered_after_the_sync_that_began_after_its_commit() {
        let (sync, starts, finish) = gated_sync(vec![Ok(()), Ok(())]);
        let syncer = WalSync::start_with(sync).unwrap();
        let (first, first_outcome) = batch();
        syncer.committed(first);
        starts.recv().unwrap();
        // Two batches commit while the first one's sync runs: not covered by it.
        let (second, second_outcome) = batch();
        let (third, third_outcome) = batch();
        syncer.committed(second);
        syncer.committed(third);
        assert_eq!(*first_outcome.borrow(), None);
        finish.send(()).unwrap();
        starts.recv().unwrap();
        assert_eq!(*first_outcome.borrow(), Some(true));
        assert_eq!(
            *second_outcome.borrow(),
            None,
            "its frames are not synced yet"
        );
        assert_eq!(*third_outcome.borrow(), None);
        finish.send(()).unwrap();
        drop(syncer);
        let (mut second_outcome, mut third_outcome) = (second_outcome, third_outcome);
        assert_eq!(settled(&mut second_outcome), Some(true));
        assert_eq!(settled(&mut third_outcome), Some(true), "one sync for both");
        assert!(starts.try_recv().is_err(), "two syncs for three batches");
    }

    #[test]
    fn after_a_failed_sync_no_batch_is_acknowledged() {
        let (sync, starts, finish) = gated_sync(vec![Err(io::Error::other("EIO")), Ok(()), Ok(())]);
        let syncer = WalSync::start_with(sync).unwrap();
        let (failed, mut failed_outcome) = batch();
        syncer.committed(failed);
        starts.recv().unwrap();
        finish.send(()).unwrap();
        assert_eq!(settled(&mut failed_outcome), Some(false));
        let (later, mut later_outcome) = batch();
        syncer.committed(later);
        assert_eq!(settled(&mut later_outcome), Some(false));
        assert!(
            starts.try_recv().is_err(),
            "no sync is trusted after a failure"
        );
    }

    #[test]
    fn the_wal_of_a_real_database_is_synced() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("t.db");
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (x)")
            .unwrap();
        let syncer = WalSync::start(&db).unwrap();
        let (done, mut outcome) = batch();
        syncer.committed(done);
        assert_eq!(settled(&mut outcome), Some(true));
        // Without a WAL file the sync fails and says so.
        let syncer = WalSync::start(&dir.path().join("missing.db")).unwrap();
        let (done, mut outcome) = batch();
        syncer.committed(done);
        assert_eq!(settled(&mut outcome), Some(false));
    }

    /// Waits until the batch has its answer.
    fn settled(outcome: &mut watch::Receiver<Option<bool>>) -> Option<bool> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime
            .block_on(outcome.wait_for(Option::is_some))
            .map(|answer| *answer)
            .unwrap()
    }
}
