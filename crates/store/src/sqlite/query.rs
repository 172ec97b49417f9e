//! The few ways the SQLite verbs run a statement, each through the connection's statement
//! cache (a statement is parsed once per connection, not once per call).

use rusqlite::types::FromSql;
use rusqlite::{Connection, OptionalExtension, Params};

use super::rows::ReadRow;
use crate::StoreError;

/// The row a statement finds, if any.
pub(crate) fn one<T: ReadRow>(
    db: &Connection,
    sql: &str,
    params: impl Params,
) -> Result<Option<T>, StoreError> {
    Ok(db
        .prepare_cached(sql)?
        .query_row(params, T::read)
        .optional()?)
}

/// Every row a statement finds.
pub(crate) fn all<T: ReadRow>(
    db: &Connection,
    sql: &str,
    params: impl Params,
) -> Result<Vec<T>, StoreError> {
    let mut statement = db.prepare_cached(sql)?;
    let rows = statement.query_map(params, T::read)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The first column of the row a statement finds, if any.
pub(crate) fn scalar<T: FromSql>(
    db: &Connection,
    sql: &str,
    params: impl Params,
) -> Result<Option<T>, StoreError> {
    Ok(db
        .prepare_cached(sql)?
        .query_row(params, |row| row.get(0))
        .optional()?)
}

/// Runs a statement; how many rows it changed.
pub(crate) fn execute(
    db: &Connection,
    sql: &str,
    params: impl Params,
) -> Result<usize, StoreError> {
    Ok(db.prepare_cached(sql)?.execute(params)?)
}
