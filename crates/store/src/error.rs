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
    Backend(sqlx::Error),
    #[error("database error: {0}")]
    Lookup(rusqlite::Error),
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
            _ => StoreError::Backend(e),
        }
    }
}
