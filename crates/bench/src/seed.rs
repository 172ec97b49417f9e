//! What the benchmark stores before the server starts, and how. Every secret is derived from
//! its kind and index (so the load generator can recompute any token without keeping 10M
//! strings in memory), and only its SHA-256 reaches the database, exactly as the server
//! stores its own. Rows go in with multi-row INSERTs inside large transactions, on the schema
//! that `grantd_store::Store::open` migrated.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use argon2::password_hash::{PasswordHasher, SaltString};
use indicatif::{ProgressBar, ProgressStyle};
use sqlx::{Connection, PgConnection, Postgres, QueryBuilder, Sqlite, SqliteConnection};

use grantd_core::secret::SecretHash;
use grantd_core::{Clock, SystemClock, Timestamp};

/// The one password every seeded user has.
pub const PASSWORD: &str = "bench-password-1234";
/// The one redirect URI every seeded client registered.
pub const REDIRECT_URI: &str = "https://app.example/callback";
/// The scope of every seeded grant; `/oauth/user/info` needs it.
pub const SCOPE: &str = "AaaServer.profile.READ";

/// Kinds of derived secret; part of the derivation, so two kinds never share a value.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Refresh = 1,
    Access = 2,
    Code = 3,
    Session = 4,
    ClientSecret = 5,
}

/// How many of each thing a run stores, and who owns what. Token users, session users and
/// code users are disjoint, so no scenario evicts (by the refresh-token cap) or revokes
/// another scenario's tokens.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// N: refresh tokens, and as many access tokens (one per refresh token).
    pub tokens: u64,
    /// Users owning the seeded tokens: N/10 (at least 100), ten tokens each, one per client.
    pub users: u64,
    /// Server-type clients: N/1000 (at least 10).
    pub clients: u64,
    /// Users with a live browser session (the flow scenarios).
    pub sessions: u64,
    /// Clients each session user has already consented to (silent approval).
    pub flow_clients: u64,
    /// Unredeemed authorization codes (the exchange scenario), ten per code user.
    pub codes: u64,
}

impl Plan {
    pub fn new(tokens: u64, codes: u64) -> Plan {
        let clients = (tokens / 1000).max(10);
        Plan {
            tokens,
            users: (tokens / 10).max(100),
            clients,
            sessions: 100,
            flow_clients: clients.min(100),
            codes,
        }
    }

    pub fn code_users(&self) -> u64 {
        self.codes.div_ceil(10).max(1)
    }

    pub fn total_users(&self) -> u64 {
        self.users + self.sessions + self.code_users()
    }

    /// Rows written in all, for the progress bar.
    pub fn rows(&self) -> u64 {
        self.total_users()
            + self.clients
            + 2 * self.tokens
            + self.codes
            + self.sessions
            + self.sessions * self.flow_clients
    }

    pub fn token_user(&self, t: u64) -> i64 {
        (t % self.users) as i64 + 1
    }
    /// A user's ten tokens go to ten consecutive clients, so every client has tokens.
    pub fn token_client(&self, t: u64) -> u64 {
        (t % self.users + t / self.users) % self.clients
    }
    pub fn session_user(&self, s: u64) -> i64 {
        (self.users + s) as i64 + 1
    }
    pub fn code_user(&self, c: u64) -> i64 {
        (self.users + self.sessions + c / 10) as i64 + 1
    }
    pub fn code_client(&self, c: u64) -> u64 {
        c % self.clients
    }

    /// Refresh tokens the refresh scenarios use: the first half.
    pub fn refresh_pool(&self) -> (u64, u64) {
        (0, (self.tokens / 2).max(1))
    }
    /// Access tokens introspect and userinfo use: the third quarter, whose refresh tokens no
    /// scenario refreshes (so the cap of 15 active access tokens never evicts them).
    pub fn access_pool(&self) -> (u64, u64) {
        let start = self.tokens / 2;
        (start, (self.tokens / 4).max(1))
    }
    /// Access tokens the revoke operations consume, in order: the last quarter.
    pub fn revoke_pool(&self) -> (u64, u64) {
        let start = self.tokens / 4 * 3;
        (start, (self.tokens - start).max(1))
    }
}

/// SplitMix64: a bijective mixer, so distinct (kind, index) give distinct first words.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A pseudo-random number from an index, for choices the load generator makes.
pub fn mix(i: u64) -> u64 {
    let mut state = i ^ 0x005E_ED0F_BE4C;
    splitmix(&mut state)
}

/// The plaintext of secret `index` of `kind`, in the shape the server itself generates.
pub fn secret(kind: Kind, index: u64) -> String {
    let mut state = ((kind as u64) << 56) ^ index;
    let words = [
        splitmix(&mut state),
        splitmix(&mut state),
        splitmix(&mut state),
        splitmix(&mut state),
    ];
    match kind {
        // Cookie values: 64 hex characters.
        Kind::Session => format!(
            "{:016x}{:016x}{:016x}{:016x}",
            words[0], words[1], words[2], words[3]
        ),
        // 42 hex characters, as `ClientSecret::generate`.
        Kind::ClientSecret => format!("{:016x}{:016x}{:010x}", words[0], words[1], words[2] >> 24),
        _ => format!(
            "1000.{:016x}{:016x}.{:016x}{:016x}",
            words[0], words[1], words[2], words[3]
        ),
    }
}

fn hash(kind: Kind, index: u64) -> Vec<u8> {
    SecretHash::of(&secret(kind, index)).as_bytes().to_vec()
}

/// `1000.` + 30 upper-case letters and digits, as the server's own client ids.
pub fn client_id(k: u64) -> String {
    format!("1000.BENCH{k:025}")
}

pub fn email(user_id: i64) -> String {
    format!("user{user_id}@bench.example")
}

/// One column value of a seeded row.
enum Val {
    Int(i64),
    Text(String),
    Bytes(Vec<u8>),
    Bool(bool),
}

/// A table's rows, produced in chunks so that 10M rows never sit in memory at once.
struct Table {
    name: &'static str,
    columns: &'static [&'static str],
    count: u64,
    row: Box<dyn Fn(u64) -> Vec<Val>>,
}

/// Rows per INSERT: under SQLite's 32766 and PostgreSQL's 65535 bound parameters.
const CHUNK: u64 = 2000;
/// Rows per transaction.
const TRANSACTION: u64 = 100_000;

fn tables(plan: Plan, now: Timestamp) -> Result<Vec<Table>> {
    let salt =
        SaltString::encode_b64(b"grantd-bench-salt").map_err(|e| anyhow::anyhow!("salt: {e}"))?;
    let password_hash = argon2::Argon2::default()
        .hash_password(PASSWORD.as_bytes(), &salt)
        .map_err(|e| anyhow::anyhow!("argon2: {e}"))?
        .to_string();
    let redirect_json = serde_json::to_string(&[REDIRECT_URI])?;
    let p = plan;
    let day = 86_400;
    Ok(vec![
        Table {
            name: "users",
            columns: &[
                "id",
                "email",
                "name",
                "password_hash",
                "is_admin",
                "created_at",
            ],
            count: p.total_users(),
            row: Box::new(move |i| {
                let id = i as i64 + 1;
                vec![
                    Val::Int(id),
                    Val::Text(email(id)),
                    Val::Text(format!("Bench User{id}")),
                    Val::Text(password_hash.clone()),
                    Val::Bool(id == 1),
                    Val::Int(now.0 - day),
                ]
            }),
        },
        Table {
            name: "clients",
            columns: &[
                "id",
                "kind",
                "name",
                "redirect_uris",
                "secret_hash",
                "dialect",
                "created_at",
            ],
            count: p.clients,
            row: Box::new(move |k| {
                vec![
                    Val::Text(client_id(k)),
                    Val::Text("server".into()),
                    Val::Text(format!("Bench App {k}")),
                    Val::Text(redirect_json.clone()),
                    Val::Bytes(hash(Kind::ClientSecret, k)),
                    Val::Text("standard".into()),
                    Val::Int(now.0 - day),
                ]
            }),
        },
        Table {
            name: "refresh_tokens",
            columns: &[
                "id",
                "token_hash",
                "client_id",
                "user_id",
                "scopes",
                "created_at",
                "last_used_at",
            ],
            count: p.tokens,
            row: Box::new(move |t| {
                vec![
                    Val::Int(t as i64 + 1),
                    Val::Bytes(hash(Kind::Refresh, t)),
                    Val::Text(client_id(p.token_client(t))),
                    Val::Int(p.token_user(t)),
                    Val::Text(SCOPE.into()),
                    Val::Int(now.0 - day),
                    Val::Int(now.0 - day),
                ]
            }),
        },
        Table {
            name: "access_tokens",
            columns: &[
                "token_hash",
                "client_id",
                "user_id",
                "scopes",
                "refresh_id",
                "created_at",
                "expires_at",
            ],
            count: p.tokens,
            // Minted before the throttle window, and valid for a day, so a long run never
            // sees them expire.
            row: Box::new(move |t| {
                vec![
                    Val::Bytes(hash(Kind::Access, t)),
                    Val::Text(client_id(p.token_client(t))),
                    Val::Int(p.token_user(t)),
                    Val::Text(SCOPE.into()),
                    Val::Int(t as i64 + 1),
                    Val::Int(now.0 - 1200),
                    Val::Int(now.0 + day),
                ]
            }),
        },
        Table {
            name: "grant_codes",
            columns: &[
                "code_hash",
                "client_id",
                "user_id",
                "redirect_uri",
                "scopes",
                "issue_refresh",
                "created_at",
                "expires_at",
            ],
            count: p.codes,
            // Created outside the code throttle's window (so the flow scenarios' counts see
            // only their own codes) and live for two hours, so the pool lasts a long run.
            row: Box::new(move |c| {
                vec![
                    Val::Bytes(hash(Kind::Code, c)),
                    Val::Text(client_id(p.code_client(c))),
                    Val::Int(p.code_user(c)),
                    Val::Text(REDIRECT_URI.into()),
                    Val::Text(SCOPE.into()),
                    Val::Bool(true),
                    Val::Int(now.0 - 1200),
                    Val::Int(now.0 + 7200),
                ]
            }),
        },
        Table {
            name: "sessions",
            columns: &[
                "token_hash",
                "user_id",
                "user_agent",
                "created_at",
                "expires_at",
            ],
            count: p.sessions,
            row: Box::new(move |s| {
                vec![
                    Val::Bytes(hash(Kind::Session, s)),
                    Val::Int(p.session_user(s)),
                    Val::Text("grantd-bench".into()),
                    Val::Int(now.0),
                    Val::Int(now.0 + day),
                ]
            }),
        },
        Table {
            name: "consents",
            columns: &[
                "user_id",
                "client_id",
                "scopes",
                "granted_at",
                "redirect_uris",
            ],
            count: p.sessions * p.flow_clients,
            row: Box::new(move |i| {
                vec![
                    Val::Int(p.session_user(i / p.flow_clients)),
                    Val::Text(client_id(i % p.flow_clients)),
                    Val::Text(SCOPE.into()),
                    Val::Int(now.0 - day),
                    Val::Text(REDIRECT_URI.into()),
                ]
            }),
        },
    ])
}

/// Generates one backend's bulk insert from the same code (the builders differ in type only).
macro_rules! insert_chunk {
    ($db:ty, $conn:expr, $table:expr, $from:expr, $to:expr) => {{
        let mut builder: QueryBuilder<'_, $db> = QueryBuilder::new(format!(
            "INSERT INTO {} ({}) ",
            $table.name,
            $table.columns.join(", ")
        ));
        builder.push_values(($from..$to).map(|i| ($table.row)(i)), |mut b, row| {
            for value in row {
                match value {
                    Val::Int(v) => b.push_bind(v),
                    Val::Text(v) => b.push_bind(v),
                    Val::Bytes(v) => b.push_bind(v),
                    Val::Bool(v) => b.push_bind(v),
                };
            }
        });
        builder.build().execute(&mut *$conn).await
    }};
}

/// What seeding took (nothing, for a reused file).
#[derive(Default)]
pub struct Seeded {
    pub elapsed: Duration,
    pub rows: u64,
}

fn progress(plan: &Plan, label: &str) -> ProgressBar {
    let bar = ProgressBar::new(plan.rows());
    if let Ok(style) = ProgressStyle::with_template(
        "{prefix} [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} rows ({per_sec}, eta {eta}) {msg}",
    ) {
        bar.set_style(style);
    }
    bar.set_prefix(label.to_owned());
    bar
}

/// Seeds an SQLite file that `Store::open` has migrated (in WAL mode, which stays). Durability
/// is off on this connection only: the file is thrown away if seeding fails.
pub async fn sqlite(path: &str, plan: Plan) -> Result<Seeded> {
    let started = Instant::now();
    let now = SystemClock.now();
    let mut conn = SqliteConnection::connect(&format!("sqlite://{path}"))
        .await
        .with_context(|| format!("opening {path} to seed it"))?;
    for pragma in [
        "PRAGMA synchronous = OFF",
        "PRAGMA cache_size = -1048576",
        "PRAGMA foreign_keys = OFF",
    ] {
        sqlx::query(pragma).execute(&mut conn).await?;
    }
    let bar = progress(&plan, "seeding sqlite");
    for table in tables(plan, now)? {
        bar.set_message(table.name);
        let mut from = 0;
        while from < table.count {
            let mut tx = conn.begin().await?;
            let end = (from + TRANSACTION).min(table.count);
            while from < end {
                let to = (from + CHUNK).min(end);
                insert_chunk!(Sqlite, tx, table, from, to)
                    .with_context(|| format!("seeding {}", table.name))?;
                bar.inc(to - from);
                from = to;
            }
            tx.commit().await?;
        }
    }
    // No ANALYZE: grantd never runs it, and with sqlite_stat4 present SQLite re-prepares
    // every statement whose plan could depend on a bound value, on every execution.
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    bar.finish_and_clear();
    Ok(Seeded {
        elapsed: started.elapsed(),
        rows: plan.rows(),
    })
}

/// Seeds a PostgreSQL database that `Store::open` has migrated.
pub async fn postgres(url: &str, plan: Plan) -> Result<Seeded> {
    let started = Instant::now();
    let now = SystemClock.now();
    let mut conn = PgConnection::connect(url)
        .await
        .context("connecting to PostgreSQL to seed")?;
    // Seeding is thrown away if it fails; the server's own connections commit durably.
    sqlx::query("SET synchronous_commit = off")
        .execute(&mut conn)
        .await?;
    let bar = progress(&plan, "seeding postgres");
    for table in tables(plan, now)? {
        bar.set_message(table.name);
        let mut from = 0;
        while from < table.count {
            let mut tx = conn.begin().await?;
            let end = (from + TRANSACTION).min(table.count);
            while from < end {
                let to = (from + CHUNK).min(end);
                insert_chunk!(Postgres, tx, table, from, to)
                    .with_context(|| format!("seeding {}", table.name))?;
                bar.inc(to - from);
                from = to;
            }
            tx.commit().await?;
        }
    }
    // Explicit ids bypassed the sequences; move them past what was inserted.
    for table in ["users", "refresh_tokens"] {
        sqlx::query(&format!(
            "SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"
        ))
        .execute(&mut conn)
        .await?;
    }
    sqlx::query("VACUUM ANALYZE").execute(&mut conn).await?;
    conn.close().await?;
    bar.finish_and_clear();
    Ok(Seeded {
        elapsed: started.elapsed(),
        rows: plan.rows(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_have_the_server_shapes_and_differ() {
        let token = secret(Kind::Refresh, 7);
        assert_eq!(token.len(), 5 + 32 + 1 + 32);
        assert!(token.starts_with("1000."));
        assert_ne!(token, secret(Kind::Access, 7));
        assert_ne!(token, secret(Kind::Refresh, 8));
        assert_eq!(secret(Kind::Session, 1).len(), 64);
        assert_eq!(secret(Kind::ClientSecret, 1).len(), 42);
        assert_eq!(client_id(42).len(), 35);
    }

    #[test]
    fn owners_are_disjoint_and_within_the_cap() {
        let plan = Plan::new(1000, 20_000);
        let last_token_user = plan.token_user(plan.tokens - 1);
        assert!(last_token_user <= plan.users as i64);
        assert!(plan.session_user(0) > plan.users as i64);
        assert!(plan.code_user(0) > plan.session_user(plan.sessions - 1));
        assert_eq!(plan.code_user(plan.codes - 1), plan.total_users() as i64);
        // Ten refresh tokens per token user, each with a different client.
        let clients: std::collections::HashSet<u64> = (0..plan.tokens)
            .filter(|t| plan.token_user(*t) == 1)
            .map(|t| plan.token_client(t))
            .collect();
        assert_eq!(clients.len(), 10);
    }
}
