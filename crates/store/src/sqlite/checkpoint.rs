//! WAL checkpoints off the writer's path. SQLite's automatic checkpoint runs inside the commit
//! that crosses its threshold, so every few commits the writer copied megabytes into the
//! database file and synced it while every queued verb waited (p99 of refresh at 70 % load:
//! 100 ms with it, 40 ms with this). Here a task of its own copies the WAL into the database
//! with `PASSIVE` checkpoints, which never block the writer or readers. A passive checkpoint
//! cannot reset a WAL that keeps growing under continuous writes, so once the WAL passes
//! `RESTART_AFTER_FRAMES` whoever holds the writer after a commit (the committer task or the
//! writer thread) restarts it; by then the background checkpoints have copied nearly all of
//! it, so that pause is short.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

/// How often, at most, a passive checkpoint runs while commits keep coming.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(50);
/// 16 MiB of 4 KiB pages: the WAL size at which the writer restarts it.
const RESTART_AFTER_FRAMES: i64 = 4096;

#[derive(Debug)]
pub(crate) struct Checkpoints {
    commits: mpsc::Sender<()>,
    /// Frames in the WAL at the last passive checkpoint.
    wal_frames: Arc<AtomicI64>,
}

impl Checkpoints {
    /// Starts the checkpoint task for the database at `path`; it ends when this is dropped.
    pub(crate) fn start(path: &Path) -> Self {
        let (commits, notices) = mpsc::channel(1);
        let wal_frames = Arc::new(AtomicI64::new(0));
        tokio::spawn(run(path.to_owned(), notices, wal_frames.clone()));
        Self {
            commits,
            wal_frames,
        }
    }

    pub(crate) fn after_commit(&self) {
        // A notice already waiting covers this commit too.
        let _ = self.commits.try_send(());
    }

    /// Whether the writer should restart the WAL now (and then it counts as restarted).
    pub(crate) fn take_restart(&self) -> bool {
        self.wal_frames
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |frames| {
                (frames > RESTART_AFTER_FRAMES).then_some(0)
            })
            .is_ok()
    }
}

async fn run(path: PathBuf, mut commits: mpsc::Receiver<()>, wal_frames: Arc<AtomicI64>) {
    let mut conn = None;
    while commits.recv().await.is_some() {
        tokio::time::sleep(CHECKPOINT_EVERY).await;
        let path = path.clone();
        let open = conn.take();
        let Ok((kept, frames)) = tokio::task::spawn_blocking(move || {
            let conn = match open {
                Some(conn) => conn,
                None => match open_checkpointer(&path) {
                    Ok(conn) => conn,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot open the WAL checkpointer");
                        return (None, None);
                    }
                },
            };
            let frames = conn
                .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get::<_, i64>(1))
                .ok();
            (Some(conn), frames)
        })
        .await
        else {
            continue;
        };
        conn = kept;
        if let Some(frames) = frames {
            wal_frames.store(frames, Ordering::Relaxed);
        }
    }
}

fn open_checkpointer(path: &Path) -> rusqlite::Result<rusqlite::Connection> {
    let conn = rusqlite::Connection::open(path)?;
    conn.execute_batch("PRAGMA synchronous = FULL;")?;
    Ok(conn)
}

/// Restarts the WAL from the writer's connection (all frames copied, readers moved on).
pub(crate) const RESTART_WAL: &str = "PRAGMA wal_checkpoint(RESTART)";
