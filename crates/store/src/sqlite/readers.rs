//! SQLite's reads, on read-only connections kept per thread and queried in place: the thread
//! that handles a request runs its lookup (a few B-tree pages by a unique key, microseconds),
//! with no lock and no hand-off to another thread. WAL lets these read while the writer
//! writes; each read sees the last commit.

use std::cell::RefCell;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::StoreError;

#[derive(Clone, Debug)]
pub(crate) struct Readers {
    path: PathBuf,
    id: u64,
    /// Threads drop their connection to this store once every clone of it is gone.
    alive: Arc<()>,
}

thread_local! {
    static CONNECTIONS: RefCell<Vec<(u64, Weak<()>, Connection)>> = const { RefCell::new(Vec::new()) };
}

impl Readers {
    pub(crate) fn new(path: PathBuf) -> Self {
        static NEXT_ID: AtomicU64 = AtomicU64::new(0);
        Self {
            path,
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            alive: Arc::new(()),
        }
    }

    /// Runs `read` on this thread's connection to the store, opening it on first use.
    pub(crate) fn read<T>(
        &self,
        read: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        CONNECTIONS.with(|cell| {
            let mut connections = cell.borrow_mut();
            connections.retain(|(_, alive, _)| alive.strong_count() > 0);
            let index = match connections.iter().position(|(id, ..)| *id == self.id) {
                Some(index) => index,
                None => {
                    connections.push((self.id, Arc::downgrade(&self.alive), self.open()?));
                    connections.len() - 1
                }
            };
            read(&connections[index].2)
        })
    }

    fn open(&self) -> rusqlite::Result<Connection> {
        let connection = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        connection.busy_timeout(Duration::from_secs(5))?;
        Ok(connection)
    }
}
