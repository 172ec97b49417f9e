//! The database under an in-process test server: an SQLite file in a temp dir, or a fresh
//! PostgreSQL database (`postgres.rs`), removed with the test server. [`Db`] reads what either
//! holds, beside the server, for the tests that count rows or scan every column.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use tempfile::TempDir;

use super::postgres::{self, PgDatabase, POSTGRES_ENV};

/// Connections in each test server's pool.
pub const POOL_SIZE: u32 = 4;

pub enum Database {
    Sqlite { path: PathBuf, _dir: TempDir },
    Postgres(PgDatabase),
}

impl Database {
    /// A new, empty database for one test server: PostgreSQL on the server
    /// `GRANTD_TEST_POSTGRES` names if `on_postgres`, else SQLite.
    pub async fn create(on_postgres: bool) -> Database {
        if !on_postgres {
            return Database::sqlite();
        }
        let server = postgres::configured().unwrap_or_else(|| {
            panic!("{POSTGRES_ENV} is not set: begin the test with skip_without_postgres!()")
        });
        Database::Postgres(PgDatabase::create(&server).await)
    }

    /// An SQLite file in a temp dir of its own.
    pub fn sqlite() -> Database {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("grantd.db");
        Database::Sqlite { path, _dir: dir }
    }

    /// The URL `grantd_store::Store::open` takes.
    pub fn url(&self) -> String {
        match self {
            Database::Sqlite { path, .. } => format!("sqlite://{}", path.display()),
            Database::Postgres(db) => db.url(),
        }
    }

    pub fn path(&self) -> Option<&Path> {
        match self {
            Database::Sqlite { path, .. } => Some(path),
            Database::Postgres(_) => None,
        }
    }

    /// A read-only connection, beside the server's own pool.
    pub async fn inspect(&self) -> Db {
        match self {
            Database::Sqlite { path, .. } => {
                let options = SqliteConnectOptions::new().filename(path).read_only(true);
                let pool = SqlitePoolOptions::new()
                    .max_connections(1)
                    .connect_with(options)
                    .await
                    .unwrap();
                Db::Sqlite(pool)
            }
            Database::Postgres(db) => {
                let options = PgConnectOptions::from_str(&db.url())
                    .unwrap()
                    .options([("default_transaction_read_only", "on")]);
                let pool = PgPoolOptions::new()
                    .max_connections(1)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect_with(options)
                    .await
                    .unwrap();
                Db::Postgres(pool)
            }
        }
    }
}

/// A read-only look at a test server's database, whichever the backend.
pub enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// A value bound to a `$1`, `$2`, ... placeholder (both backends take that form).
#[derive(Debug, Clone, Copy)]
pub enum Param<'a> {
    Int(i64),
    Text(&'a str),
}

/// Binds `params` to `sql` and fetches its single value, on either pool type.
macro_rules! scalar {
    ($pool:expr, $sql:expr, $params:expr) => {{
        let mut query = sqlx::query_scalar($sql);
        for param in $params {
            query = match *param {
                Param::Int(n) => query.bind(n),
                Param::Text(s) => query.bind(s),
            };
        }
        query.fetch_one($pool).await.unwrap()
    }};
}

impl Db {
    /// The count a `SELECT count(*) ...` with `$n` placeholders returns.
    pub async fn count(&self, sql: &str, params: &[Param<'_>]) -> i64 {
        match self {
            Db::Sqlite(pool) => scalar!(pool, sql, params),
            Db::Postgres(pool) => scalar!(pool, sql, params),
        }
    }

    /// Every table grantd made (sqlx's migration table included).
    pub async fn tables(&self) -> Vec<String> {
        match self {
            Db::Sqlite(pool) => sqlx::query_scalar(
                "SELECT name FROM sqlite_master \
                 WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
            )
            .fetch_all(pool)
            .await
            .unwrap(),
            Db::Postgres(pool) => sqlx::query_scalar(
                "SELECT table_name::text FROM information_schema.tables \
                 WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY 1",
            )
            .fetch_all(pool)
            .await
            .unwrap(),
        }
    }

    /// Every column of `table` with every row's value in it as the bytes stored: blobs (SQLite)
    /// and `BYTEA` (PostgreSQL) as they are, everything else as its text.
    pub async fn columns(&self, table: &str) -> Vec<(String, Vec<Option<Vec<u8>>>)> {
        let mut columns = Vec::new();
        match self {
            Db::Sqlite(pool) => {
                let names: Vec<String> =
                    sqlx::query_scalar("SELECT name FROM pragma_table_info($1)")
                        .bind(table)
                        .fetch_all(pool)
                        .await
                        .unwrap();
                for name in names {
                    let sql = format!(
                        "SELECT CAST({} AS BLOB) FROM {}",
                        quoted(&name),
                        quoted(table)
                    );
                    let values = sqlx::query_scalar(&sql).fetch_all(pool).await.unwrap();
                    columns.push((name, values));
                }
            }
            Db::Postgres(pool) => {
                let names: Vec<(String, String)> = sqlx::query_as(
                    "SELECT column_name::text, data_type::text FROM information_schema.columns \
                     WHERE table_schema = 'public' AND table_name = $1 ORDER BY ordinal_position",
                )
                .bind(table)
                .fetch_all(pool)
                .await
                .unwrap();
                for (name, kind) in names {
                    let value = if kind == "bytea" {
                        quoted(&name)
                    } else {
                        format!("convert_to({}::text, 'UTF8')", quoted(&name))
                    };
                    let sql = format!("SELECT {value} FROM {}", quoted(table));
                    let values = sqlx::query_scalar(&sql).fetch_all(pool).await.unwrap();
                    columns.push((name, values));
                }
            }
        }
        columns
    }

    pub async fn close(self) {
        match self {
            Db::Sqlite(pool) => pool.close().await,
            Db::Postgres(pool) => pool.close().await,
        }
    }
}

/// An SQL identifier, quoted.
fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
