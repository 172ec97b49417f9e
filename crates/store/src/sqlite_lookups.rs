//! SQLite's hot reads (a client by id, an access token with its user, a token for
//! introspection, and the redirect flow's session, consent and scopes) on read-only connections kept per thread and queried in place. sqlx runs
//! every SQLite connection on a thread of its own and hands each query over a channel: two
//! thread switches and two wake-ups per query, which cost far more than the lookup itself (a
//! few B-tree pages by a unique key, microseconds). Here the thread that handles the request
//! runs the lookup: no lock, no hand-off.

use std::cell::RefCell;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use rusqlite::types::FromSql;
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row};

use crate::verbs::prelude::*;

#[derive(Clone, Debug)]
pub(crate) struct Lookups {
    path: PathBuf,
    id: u64,
    /// Threads drop their connection to this store once every clone of it is gone.
    alive: Arc<()>,
}

thread_local! {
    static CONNECTIONS: RefCell<Vec<(u64, Weak<()>, Connection)>> = const { RefCell::new(Vec::new()) };
}

impl Lookups {
    pub(crate) fn new(path: PathBuf) -> Self {
        static NEXT_ID: AtomicU64 = AtomicU64::new(0);
        Self {
            path,
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            alive: Arc::new(()),
        }
    }

    pub(crate) fn client(&self, id: &str) -> Result<Option<Client>, StoreError> {
        let row = self.query_row(CLIENT_BY_ID, (id,), Columns::read)?;
        Ok(row.and_then(client_from_row))
    }

    pub(crate) fn access_grant(
        &self,
        hash: &SecretHash,
        now: Timestamp,
    ) -> Result<Option<AccessGrant>, StoreError> {
        let row = self.query_row(LIVE_ACCESS_TOKEN, (hash.as_bytes(), now.0), Columns::read)?;
        Ok(row.map(access_from_row))
    }

    pub(crate) fn access_owner(
        &self,
        hash: &SecretHash,
        now: Timestamp,
    ) -> Result<Option<(AccessGrant, User)>, StoreError> {
        let row = self.query_row(
            LIVE_ACCESS_TOKEN_AND_OWNER,
            (hash.as_bytes(), now.0),
            Columns::read,
        )?;
        Ok(row.map(access_owner_from_row))
    }

    pub(crate) fn token_info(
        &self,
        hash: &SecretHash,
        now: Timestamp,
    ) -> Result<Option<TokenInfo>, StoreError> {
        if let Some(grant) = self.access_grant(hash, now)? {
            return Ok(Some(access_info(grant)));
        }
        let row = self.query_row(REFRESH_TOKEN, (hash.as_bytes(),), Columns::read)?;
        Ok(row.map(refresh_info_from_row))
    }

    pub(crate) fn session_user(
        &self,
        hash: &SecretHash,
        now: Timestamp,
    ) -> Result<Option<User>, StoreError> {
        let row = self.query_row(SESSION_USER, (hash.as_bytes(), now.0), Columns::read)?;
        Ok(row.map(user_from_row))
    }

    pub(crate) fn registered(
        &self,
        scopes: &Scopes,
    ) -> Result<Result<Vec<(String, String)>, String>, StoreError> {
        let mut found = Vec::new();
        for scope in scopes.iter() {
            match self.query_row(SCOPE_BY_KEY, (scope.key(),), Columns::read)? {
                Some(row) => found.push(row),
                None => return Ok(Err(scope.as_str().to_owned())),
            }
        }
        Ok(Ok(found))
    }

    pub(crate) fn consent_for(
        &self,
        user_id: i64,
        client: &ClientId,
        redirect_uri: &str,
    ) -> Result<Option<Scopes>, StoreError> {
        let row = self.query_row(CONSENT, (user_id, client.as_str()), Columns::read)?;
        Ok(consent_covering(row, redirect_uri))
    }

    fn query_row<T>(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
        map: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Option<T>, StoreError> {
        CONNECTIONS.with(|cell| {
            let mut connections = cell.borrow_mut();
            connections.retain(|(_, alive, _)| alive.strong_count() > 0);
            let index = match connections.iter().position(|(id, ..)| *id == self.id) {
                Some(index) => index,
                None => {
                    let connection = self.open().map_err(lookup_error)?;
                    connections.push((self.id, Arc::downgrade(&self.alive), connection));
                    connections.len() - 1
                }
            };
            let connection = &connections[index].2;
            let mut statement = connection.prepare_cached(sql).map_err(lookup_error)?;
            statement
                .query_row(params, map)
                .optional()
                .map_err(lookup_error)
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

/// A row read column by column into a tuple, as sqlx's `query_as` reads the same rows for
/// the other backend.
pub(crate) trait Columns: Sized {
    fn read(row: &Row<'_>) -> rusqlite::Result<Self>;
}

macro_rules! columns_for_tuples {
    ($( ($($t:ident $i:tt),+) )*) => {$(
        impl<$($t: FromSql),+> Columns for ($($t,)+) {
            fn read(row: &Row<'_>) -> rusqlite::Result<Self> {
                Ok(($(row.get::<_, $t>($i)?,)+))
            }
        }
    )*};
}

columns_for_tuples! {
    (A 0, B 1)
    (A 0, B 1, C 2)
    (A 0, B 1, C 2, D 3)
    (A 0, B 1, C 2, D 3, E 4, F 5, G 6)
    (A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8)
    (A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9)
}

/// Busy, locked or unreadable means "try again" (503), like the pool's errors; anything else
/// is a fault.
fn lookup_error(e: rusqlite::Error) -> StoreError {
    use rusqlite::ffi::ErrorCode;
    match e.sqlite_error_code() {
        Some(
            ErrorCode::DatabaseBusy
            | ErrorCode::DatabaseLocked
            | ErrorCode::SystemIoFailure
            | ErrorCode::CannotOpen
            | ErrorCode::OutOfMemory,
        ) => StoreError::Unavailable,
        _ => StoreError::Lookup(e),
    }
}
