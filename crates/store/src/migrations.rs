//! Schema migrations: plain SQL, a folder per backend (`migrations/{sqlite,postgres}`, one
//! number per change in both), applied by sqlx's migrator on both backends. The SQLite backend
//! otherwise runs on rusqlite; its migrations keep sqlx's runner because every database made
//! so far records its applied migrations (and their checksums) in sqlx's `_sqlx_migrations`
//! table, and this way they upgrade in place.

use std::str::FromStr;

use sqlx::migrate::{MigrateError, Migrator};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode};
use sqlx::{Connection, SqliteConnection};

use crate::StoreError;

pub(crate) static SQLITE: Migrator = sqlx::migrate!("migrations/sqlite");
pub(crate) static POSTGRES: Migrator = sqlx::migrate!("migrations/postgres");

/// Creates the SQLite file at `path` if needed, puts it in WAL mode (a property of the file)
/// and applies the migrations it lacks.
pub(crate) async fn sqlite(path: &str) -> Result<(), StoreError> {
    let options = SqliteConnectOptions::from_str(&format!("sqlite://{path}"))
        .map_err(|e| StoreError::Setup(format!("bad database URL: {e}")))?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .foreign_keys(true)
        .busy_timeout(std::time::Duration::from_secs(5));
    let mut conn = SqliteConnection::connect_with(&options)
        .await
        .map_err(|e| StoreError::Setup(format!("cannot open {path}: {e}")))?;
    let migrated = SQLITE.run(&mut conn).await.map_err(migration_error);
    let _ = conn.close().await;
    migrated
}

/// A schema newer than this build (a migration it does not know) stops start-up with a clear
/// message instead of running old code against new tables.
pub(crate) fn migration_error(e: MigrateError) -> StoreError {
    match e {
        MigrateError::VersionMissing(version) => StoreError::Setup(format!(
            "the database schema is newer than this grantd (it has migration {version}, which \
             this build does not know); run a grantd at least as new as the one that migrated it"
        )),
        other => StoreError::Setup(format!("migrations failed: {other}")),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::borrow::Cow;

    use grantd_core::grant::CodeGrant;
    use grantd_core::secret::SecretHash;
    use grantd_core::{ClientId, Limits, Scopes, Timestamp};

    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode};
    use sqlx::{Connection, SqliteConnection};
    use std::str::FromStr;

    use super::*;
    use crate::{CodeIssue, NewCode, Store, TokenVerbs};

    const NOW: Timestamp = Timestamp(1_800_000_000);

    /// A database file migrated only up to (not including) `version`, as an older grantd left
    /// it: its URL, the directory that holds it, and a connection to fill it through.
    async fn migrated_before(version: i64) -> (String, tempfile::TempDir, SqliteConnection) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("grantd.db").display());
        let options = SqliteConnectOptions::from_str(&url)
            .unwrap()
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal);
        let mut old = SqliteConnection::connect_with(&options).await.unwrap();
        let older = Migrator {
            migrations: Cow::Owned(
                SQLITE
                    .migrations
                    .iter()
                    .filter(|m| m.version < version)
                    .cloned()
                    .collect(),
            ),
            ..Migrator::DEFAULT
        };
        older.run(&mut old).await.unwrap();
        (url, dir, old)
    }

    /// Asks the upgraded store for one more code of `client` for `user_id`.
    async fn issue(store: &Store, client: &str, user_id: i64) -> CodeIssue {
        let code = NewCode {
            grant: CodeGrant {
                code_hash: SecretHash::of(&grantd_core::secret::random_id()),
                client_id: ClientId::new(client.into()),
                user_id,
                redirect_uri: None,
                scopes: Scopes::from_stored("x"),
                issue_refresh_token: false,
                code_challenge: None,
                expires_at: NOW.plus(60),
                redeemed_at: None,
                oidc: Default::default(),
            },
            description: None,
            record_consent: None,
        };
        store
            .add_code(&code, NOW, &Limits::default())
            .await
            .unwrap()
    }

    /// Migration 0005 numbers the codes a database already holds, so the throttle counts them.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_code_throttle_counts_codes_made_before_the_upgrade() {
        let (url, _dir, mut old) = migrated_before(5).await;
        sqlx::query(
            "INSERT INTO users (id, email, name, password_hash, created_at)
             VALUES (1, 'ada@example.com', 'Ada', 'x', 0);
             INSERT INTO clients (id, kind, name, redirect_uris, dialect, created_at)
             VALUES ('1000.A', 'server', 'A', '[]', 'standard', 0),
                    ('1000.B', 'server', 'B', '[]', 'standard', 0)",
        )
        .execute(&mut old)
        .await
        .unwrap();
        // Client A: two codes out of the window, then ten in it, the oldest of them 18 s ago;
        // client B: three.
        let a: &[i64] = &[620, 610, 18, 17, 16, 15, 14, 13, 12, 11, 10, 9];
        for (client, ages) in [("1000.A", a), ("1000.B", &[5, 4, 3])] {
            for age in ages {
                sqlx::query(
                    "INSERT INTO grant_codes (code_hash, client_id, user_id, scopes,
                        issue_refresh, created_at, expires_at)
                     VALUES (randomblob(32), $1, 1, 'x', 0, $2, $2)",
                )
                .bind(client)
                .bind(NOW.minus(*age).0)
                .execute(&mut old)
                .await
                .unwrap();
            }
        }
        old.close().await.unwrap();

        let store = Store::open(&url, 1).await.unwrap();
        // A's tenth newest code was made 18 s ago: refused for the 582 s it stays in the window.
        let refused = issue(&store, "1000.A", 1).await;
        assert!(
            matches!(refused, CodeIssue::Throttled { retry_after: 582 }),
            "{refused:?}"
        );
        let issued = issue(&store, "1000.B", 1).await;
        assert!(matches!(issued, CodeIssue::Issued), "{issued:?}");
    }

    /// Migration 0008 numbers the codes a database already holds per (client, user), in the
    /// order they were made, so the throttle counts each user's codes and only theirs.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn codes_made_before_0008_are_counted_per_user() {
        let (url, _dir, mut old) = migrated_before(8).await;
        sqlx::query(
            "INSERT INTO users (id, email, name, password_hash, created_at)
             VALUES (1, 'ada@example.com', 'Ada', 'x', 0), (2, 'bob@example.com', 'Bob', 'x', 0);
             INSERT INTO clients (id, kind, name, redirect_uris, dialect, created_at)
             VALUES ('1000.A', 'server', 'A', '[]', 'standard', 0)",
        )
        .execute(&mut old)
        .await
        .unwrap();
        // Numbered per client, as before 0008: Ada's ten codes in the window (the oldest 18 s
        // ago; one more before it) interleaved with Bob's three.
        let codes: &[(i64, i64)] = &[
            (1, 620),
            (1, 18),
            (2, 17),
            (1, 16),
            (1, 15),
            (2, 14),
            (1, 13),
            (1, 12),
            (1, 11),
            (2, 10),
            (1, 9),
            (1, 8),
            (1, 7),
            (1, 6),
        ];
        for (seq, (user, age)) in codes.iter().enumerate() {
            sqlx::query(
                "INSERT INTO grant_codes (code_hash, client_id, user_id, scopes,
                    issue_refresh, created_at, expires_at, seq)
                 VALUES (randomblob(32), '1000.A', $1, 'x', 0, $2, $2, $3)",
            )
            .bind(*user)
            .bind(NOW.minus(*age).0)
            .bind(seq as i64 + 1)
            .execute(&mut old)
            .await
            .unwrap();
        }
        old.close().await.unwrap();

        let store = Store::open(&url, 1).await.unwrap();
        // Ada's tenth newest was made 18 s ago; Bob has had three, the oldest 17 s ago.
        let refused = issue(&store, "1000.A", 1).await;
        assert!(
            matches!(refused, CodeIssue::Throttled { retry_after: 582 }),
            "{refused:?}"
        );
        for n in 0..7 {
            let issued = issue(&store, "1000.A", 2).await;
            assert!(
                matches!(issued, CodeIssue::Issued),
                "Bob's code {n}: {issued:?}"
            );
        }
        let full = issue(&store, "1000.A", 2).await;
        assert!(
            matches!(full, CodeIssue::Throttled { retry_after: 583 }),
            "{full:?}"
        );
    }
}
