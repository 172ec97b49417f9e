//! Store failures. They never decide an HTTP status; the server maps them.

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule refused the write (duplicate email, second Self Client, ...).
    #[error("conflict: {0}")]
    Conflict(&'static str),
    /// The database could not be reached in time; the request may be retried.
    #[error("database unavailable")]
    Unavailable,
    #[error("database error: {0}")]
    Postgres(sqlx::Error),
    #[error("database error: {0}")]
    Sqlite(rusqlite::Error),
    #[error("database setup: {0}")]
    Setup(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::WorkerCrashed => StoreError::Unavailable,
            // PostgreSQL: connection exceptions (08), insufficient resources such as too many
            // connections (53), operator intervention such as pg_terminate_backend or a
            // shutdown (57P0x), a database not accepting connections (55000), a statement or
            // lock timeout (57014, 55P03), and a serialisation failure (40001): the request
            // may be retried.
            sqlx::Error::Database(db)
                if db.code().is_some_and(|c| {
                    c.starts_with("08")
                        || c.starts_with("53")
                        || c.starts_with("57")
                        || matches!(c.as_ref(), "55000" | "55P03" | "40001")
                }) =>
            {
                StoreError::Unavailable
            }
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                StoreError::Conflict("already exists")
            }
            _ => StoreError::Postgres(e),
        }
    }
}

impl From<rusqlite::Error> for StoreError {
    /// Busy, locked, unreadable or full means "try again" (503), like the pool's errors; a
    /// uniqueness rule is a conflict; anything else is a fault.
    fn from(e: rusqlite::Error) -> Self {
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
            _ => StoreError::Sqlite(e),
        }
    }
}

impl StoreError {
    /// A uniqueness conflict, said in the verb's own words.
    pub(crate) fn conflict_as(self, why: &'static str) -> StoreError {
        match self {
            StoreError::Conflict(_) => StoreError::Conflict(why),
            other => other,
        }
    }
}
