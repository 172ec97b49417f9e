//! The database under each test server: an SQLite file in a temp dir (the `it` run), or a fresh
//! PostgreSQL database on the server `GRANTD_TEST_POSTGRES` names, dropped with the test server
//! (the `it_postgres` run). [`Db`] reads what either holds, for the tests that count rows or scan
//! every column.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use reqwest::Url;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use sqlx::Connection;
use tempfile::TempDir;
use tokio::sync::{Semaphore, SemaphorePermit};

/// The PostgreSQL server to test on, as a URL whose database the test user may connect to and
/// create databases from (`postgres://postgres@127.0.0.1:5432/postgres`).
pub const POSTGRES_ENV: &str = "GRANTD_TEST_POSTGRES";

/// Connections in each test server's pool.
pub const POOL_SIZE: u32 = 4;

/// PostgreSQL test servers alive at once, whatever number of test threads the machine's cores
/// give. Each holds at most `POOL_SIZE` + 2 connections (its pool, a [`Db`], the connection
/// that creates or drops its database): 8 × 6 = 48 of PostgreSQL's default `max_connections`
/// (100). Every test starts one server, so a test never waits on a permit while holding one.
const LIVE_POSTGRES_SERVERS: usize = 8;
static LIVE: Semaphore = Semaphore::const_new(LIVE_POSTGRES_SERVERS);

/// Creating or dropping a database gives up after this long rather than hang the suite.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(30);

fn postgres_server() -> Option<String> {
    std::env::var(POSTGRES_ENV)
        .ok()
        .filter(|url| !url.trim().is_empty())
}

/// True in the PostgreSQL run without a server to run on, after saying so for this test.
pub fn skipped() -> bool {
    if !crate::POSTGRES || postgres_server().is_some() {
        return false;
    }
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("a test");
    let line = format!(
        "it_postgres: {test} skipped: {POSTGRES_ENV} is not set (set it to a PostgreSQL server \
         URL, e.g. postgres://postgres@127.0.0.1:5432/postgres, to run the suite on PostgreSQL)\n"
    );
    // Straight to stderr, in one write: libtest captures `eprintln!` of passing tests.
    let _ = std::io::stderr().write_all(line.as_bytes());
    true
}

pub enum Database {
    Sqlite { path: PathBuf, _dir: TempDir },
    Postgres(PgDatabase),
}

impl Database {
    /// A new, empty database for one test server, on the backend of this run.
    pub async fn create() -> Database {
        if !crate::POSTGRES {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("grantd.db");
            return Database::Sqlite { path, _dir: dir };
        }
        let server = postgres_server().unwrap_or_else(|| {
            panic!("{POSTGRES_ENV} is not set: begin the test with skip_without_postgres!()")
        });
        Database::Postgres(PgDatabase::create(&server).await)
    }

    /// The URL `grantd_store::Store::open` takes.
    pub fn url(&self) -> String {
        match self {
            Database::Sqlite { path, .. } => format!("sqlite://{}", path.display()),
            Database::Postgres(db) => db.url.clone(),
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
                let options = PgConnectOptions::from_str(&db.url)
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

/// A database of its own on the test PostgreSQL server, dropped on drop.
pub struct PgDatabase {
    /// The URL of the server's maintenance database, where databases are created and dropped.
    server: String,
    name: String,
    url: String,
    _live: SemaphorePermit<'static>,
}

impl PgDatabase {
    async fn create(server: &str) -> PgDatabase {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let live = LIVE.acquire().await.unwrap();
        let name = format!(
            "grantd_it_{}_{}_{:08x}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            RandomState::new().build_hasher().finish() as u32
        );
        let mut url = Url::parse(server)
            .unwrap_or_else(|e| panic!("{POSTGRES_ENV}={server:?} is not a URL: {e}"));
        url.set_path(&format!("/{name}"));
        admin(server, &format!("CREATE DATABASE \"{name}\""))
            .await
            .unwrap_or_else(|e| panic!("cannot create database {name} ({POSTGRES_ENV}): {e}"));
        PgDatabase {
            server: server.to_owned(),
            name,
            url: url.to_string(),
            _live: live,
        }
    }
}

impl Drop for PgDatabase {
    /// `WITH (FORCE)` ends the connections the test server's pool still holds (its tasks live
    /// until the test's runtime ends). Drop cannot await, and may run on the test's runtime,
    /// which cannot block on a future: a thread with a runtime of its own does it, within
    /// [`ADMIN_TIMEOUT`].
    fn drop(&mut self) {
        let server = self.server.clone();
        let sql = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name);
        let dropped = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?
                .block_on(admin(&server, &sql))
        })
        .join()
        .unwrap_or_else(|_| Err("the thread dropping it panicked".into()));
        if let Err(e) = dropped {
            let message = format!("cannot drop test database {}: {e}", self.name);
            if std::thread::panicking() {
                let _ = std::io::stderr().write_all(format!("{message}\n").as_bytes());
            } else {
                panic!("{message}");
            }
        }
    }
}

/// Runs `sql` on the server's maintenance database, on a connection of its own.
async fn admin(server: &str, sql: &str) -> Result<(), String> {
    let run = async {
        let mut conn = PgConnection::connect(server).await?;
        sqlx::raw_sql(sql).execute(&mut conn).await?;
        conn.close().await
    };
    match tokio::time::timeout(ADMIN_TIMEOUT, run).await {
        Ok(done) => done.map_err(|e| e.to_string()),
        Err(_) => Err(format!("no answer within {ADMIN_TIMEOUT:?}")),
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
