//! PostgreSQL for the tests: the server `GRANTD_TEST_POSTGRES` names (a test without it says
//! that it is skipped, and passes), and a database of its own per test server or cluster,
//! dropped `WITH (FORCE)` afterwards, also when the test fails.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io::Write;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use reqwest::Url;
use sqlx::{Connection, PgConnection};
use tokio::sync::{Semaphore, SemaphorePermit};

/// The PostgreSQL server to test on, as a URL whose database the test user may connect to and
/// create databases from (`postgres://postgres@127.0.0.1:5432/postgres`).
pub const POSTGRES_ENV: &str = "GRANTD_TEST_POSTGRES";

/// Test databases alive at once in one test binary, whatever number of test threads the
/// machine's cores give. An in-process test server holds at most its pool (4) + 2 connections
/// (a read-only look, the connection that creates or drops its database): 8 × 6 = 48 of
/// PostgreSQL's default `max_connections` (100). A test holds one, so it never waits on a
/// permit while holding another.
const LIVE_DATABASES: usize = 8;
static LIVE: Semaphore = Semaphore::const_new(LIVE_DATABASES);

/// Creating or dropping a database gives up after this long rather than hang the suite.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(30);

/// The server to create test databases on, if one is configured.
pub fn configured() -> Option<String> {
    std::env::var(POSTGRES_ENV)
        .ok()
        .filter(|url| !url.trim().is_empty())
}

/// The server to create test databases on, or `None` after saying that `test` is skipped.
pub fn server(test: &str) -> Option<String> {
    let server = configured();
    if server.is_none() {
        let line = format!(
            "skipped {test}: {POSTGRES_ENV} is not set (set it to a PostgreSQL server URL, e.g. \
             postgres://postgres@127.0.0.1:5432/postgres, to run it)\n"
        );
        // Straight to stderr, in one write: libtest captures `eprintln!` of passing tests.
        let _ = std::io::stderr().write_all(line.as_bytes());
    }
    server
}

/// A database of its own on the test PostgreSQL server, dropped on drop.
pub struct PgDatabase {
    /// The URL of the server's maintenance database, where databases are created and dropped.
    pub admin_url: String,
    pub name: String,
    url: String,
    _live: SemaphorePermit<'static>,
}

impl PgDatabase {
    /// `grantd_test_<pid>_<n>_<random>` on `server`.
    pub async fn create(server: &str) -> PgDatabase {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let live = LIVE.acquire().await.unwrap();
        let name = format!(
            "grantd_test_{}_{}_{:08x}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            RandomState::new().build_hasher().finish() as u32
        );
        let mut url = Url::parse(server)
            .unwrap_or_else(|e| panic!("{POSTGRES_ENV}={server:?} is not a URL: {e}"));
        url.set_path(&format!("/{name}"));
        run_admin(server, &format!("CREATE DATABASE \"{name}\""))
            .await
            .unwrap_or_else(|e| panic!("cannot create database {name} ({POSTGRES_ENV}): {e}"));
        PgDatabase {
            admin_url: server.to_owned(),
            name,
            url: url.to_string(),
            _live: live,
        }
    }

    /// This database's URL: the server URL with its path replaced (query kept).
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// A connection to the server's own database, unaffected by what happens to this one.
    pub async fn admin(&self) -> PgConnection {
        PgConnection::connect(&self.admin_url).await.unwrap()
    }

    pub async fn connect(&self) -> PgConnection {
        PgConnection::connect(&self.url).await.unwrap()
    }

    /// What a `SELECT count(*) ...` returns.
    pub async fn count(&self, sql: &str) -> i64 {
        let mut db = self.connect().await;
        let (n,): (i64,) = sqlx::query_as(sql).fetch_one(&mut db).await.unwrap();
        db.close().await.unwrap();
        n
    }

    /// Ends every connection to database `name` (grantd's pools included); how many it ended.
    pub async fn terminate_connections(admin: &mut PgConnection, name: &str) -> i64 {
        let (n,): (i64,) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity
              WHERE datname = $1 AND pid <> pg_backend_pid()",
        )
        .bind(name)
        .fetch_one(admin)
        .await
        .unwrap();
        n
    }
}

impl Drop for PgDatabase {
    /// `WITH (FORCE)` ends the connections a server's pool still holds (an in-process server's
    /// tasks live until the test's runtime ends). Drop cannot await, and may run on the test's
    /// runtime, which cannot block on a future: a thread with a runtime of its own does it,
    /// within [`ADMIN_TIMEOUT`]. A failure fails the test, unless it is failing already.
    fn drop(&mut self) {
        let server = self.admin_url.clone();
        let sql = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name);
        let dropped = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?
                .block_on(run_admin(&server, &sql))
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
async fn run_admin(server: &str, sql: &str) -> Result<(), String> {
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
