//! Three data centers (CONTRACT.md "Data centers") as real `grantd serve` processes on
//! 127.0.0.1: us, eu and in, each with its own database (an SQLite file, or a fresh PostgreSQL
//! database of its own), one configuration file each that lists all three, and one shared dc
//! secret file. Also the admin commands against one DC's database, and the signed requests of
//! the server-to-server API (`/dc/v1/...`), built here independently of grantd.
//!
//! Each configuration names the other DCs' URLs, so the ports are chosen before any process
//! starts: three listeners on port 0 tell three free ports and are dropped. Another process may
//! take one of them in between; then the whole trio starts again on fresh ports.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use reqwest::RequestBuilder;
use serde_json::Value;
use sha2::Sha256;
use tempfile::TempDir;

use grantd_core::{ClientType, Clock, SystemClock};

use super::http::Http;
use super::node::{self, Node, NODE_POOL, WAIT};
use super::oauth::TestClient;
use super::postgres::{self, PgDatabase};

/// The three data centers, the first being where the tests' browsers start.
pub const LOCATIONS: [&str; 3] = ["us", "eu", "in"];
/// How often each DC pulls client records from its peers here (the default is 3 s).
pub const SYNC_INTERVAL_MS: u64 = 200;
/// CONTRACT.md: enabling, disabling, a rotated secret, a changed redirect URI reach every DC
/// within this.
pub const PROPAGATION: Duration = Duration::from_secs(10);
/// Starts of the whole trio before giving up on finding three free ports.
const START_ATTEMPTS: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// One data center: its settings, its database, and its `grantd serve` while it runs.
pub struct Dc {
    pub location: &'static str,
    /// `{accounts}`: its `public_url`, `http://127.0.0.1:PORT`.
    pub url: String,
    /// `{api_domain}`: `http://api.{location}.test`, never its own URL.
    pub api_domain: String,
    /// The database URL the admin commands and `serve` get.
    pub database: String,
    pub config: PathBuf,
    /// Dropped (killed) before the database below.
    node: Option<Node>,
    _postgres: Option<PgDatabase>,
}

impl Dc {
    pub fn at(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    pub fn is_running(&self) -> bool {
        self.node.is_some()
    }

    /// `grantd ARGS --config CONFIG` on this DC's database, run to its end.
    pub fn grantd(&self, args: &[&str], stdin: Option<&str>) -> Output {
        node::grantd(&self.database, Some(&self.config), args, stdin)
    }

    /// The stdout of `grantd ARGS`, which must succeed.
    pub fn admin(&self, args: &[&str]) -> String {
        node::succeeded(args, &self.grantd(args, None))
    }

    /// `grantd user add` with the tests' password.
    pub fn add_user(&self, email: &str) {
        node::add_user(&self.database, Some(&self.config), email);
    }

    /// A server-based client registered here (its home), with `node::REDIRECT_URI`.
    pub fn add_server_client(&self, name: &str) -> TestClient {
        node::add_server_client(&self.database, &self.config, name)
    }

    /// A client of type `kind` registered here (its home), with `extra` arguments of
    /// `grantd client add`.
    pub fn add_client(&self, kind: ClientType, name: &str, extra: &[&str]) -> TestClient {
        node::add_client(&self.database, &self.config, kind, name, extra)
    }

    /// `grantd client enable-dc ID --location L [--own-secret] --json`: the secret to use at
    /// `location` (the home secret, or the one of its own printed once).
    pub fn enable_dc(&self, client: &TestClient, location: &str, own_secret: bool) -> TestClient {
        let mut args = vec!["client", "enable-dc", &client.id, "--location", location];
        if own_secret {
            args.push("--own-secret");
        }
        args.push("--json");
        let out = self.admin(&args);
        let printed: Value = serde_json::from_str(out.trim())
            .unwrap_or_else(|e| panic!("enable-dc printed no JSON object ({e}): {out:?}"));
        assert_eq!(printed["client_id"], client.id.as_str(), "{printed}");
        assert_eq!(printed["location"], location, "{printed}");
        let mut there = client.clone();
        match &printed["client_secret"] {
            Value::Null => assert!(!own_secret, "--own-secret printed no secret: {printed}"),
            Value::String(secret) => {
                assert!(own_secret, "a secret without --own-secret: {printed}");
                assert_ne!(Some(secret), client.secret.as_ref(), "a new secret");
                there.secret = Some(secret.clone());
            }
            other => panic!("client_secret is {other}"),
        }
        there
    }

    pub fn disable_dc(&self, client: &TestClient, location: &str) {
        self.admin(&["client", "disable-dc", &client.id, "--location", location]);
    }

    fn config_text(&self, secret_file: &Path, all: &[(&str, String, String)]) -> String {
        let mut text = format!(
            "location = \"{}\"\npublic_url = \"{}\"\napi_domain = \"{}\"\n\
             dc_secret_file = {:?}\ndc_sync_interval_ms = {SYNC_INTERVAL_MS}\n",
            self.location,
            self.url,
            self.api_domain,
            secret_file.display().to_string(),
        );
        // Every DC, this one included (its entry must match its own settings).
        for (location, accounts, api_domain) in all {
            text.push_str(&format!(
                "\n[datacenters.{location}]\naccounts = \"{accounts}\"\napi_domain = \"{api_domain}\"\n"
            ));
        }
        text
    }
}

/// us, eu and in, running; everything removed when dropped (the processes first).
pub struct Trio {
    pub dcs: Vec<Dc>,
    pub backend: Backend,
    /// The shared secret, as the server keys its HMAC with it (the file's content, trimmed).
    pub secret: Vec<u8>,
    pub secret_file: PathBuf,
    pub dir: TempDir,
}

impl Trio {
    /// Three DCs on `backend`, migrated and serving; `None` (after saying so) when `backend` is
    /// PostgreSQL and `GRANTD_TEST_POSTGRES` is not set.
    pub async fn start(backend: Backend, test: &str) -> Option<Trio> {
        let dir = tempfile::tempdir().unwrap();
        let mut databases = match backend {
            Backend::Sqlite => LOCATIONS
                .iter()
                .map(|location| {
                    let path = dir.path().join(format!("{location}.db"));
                    (format!("sqlite://{}", path.display()), None)
                })
                .collect::<Vec<_>>(),
            Backend::Postgres => {
                let server = postgres::server(test)?;
                postgres_databases(&server)
                    .await
                    .into_iter()
                    .map(|db| (db.url(), Some(db)))
                    .collect()
            }
        };
        // 64 hex characters (256 bits), and a newline the server must trim.
        let secret = random_hex(64);
        let secret_file = dir.path().join("dc-secret");
        std::fs::write(&secret_file, format!("{secret}\n")).unwrap();
        let dcs = LOCATIONS
            .iter()
            .zip(databases.drain(..))
            .map(|(location, (database, pg))| Dc {
                location,
                url: String::new(),
                api_domain: format!("http://api.{location}.test"),
                database,
                config: dir.path().join(format!("{location}.toml")),
                node: None,
                _postgres: pg,
            })
            .collect();
        let mut trio = Trio {
            dcs,
            backend,
            secret: secret.into_bytes(),
            secret_file,
            dir,
        };
        // Before any configuration is written: `migrate` needs the database only.
        for dc in &trio.dcs {
            let output = node::grantd(&dc.database, None, &["migrate"], None);
            let migrated = node::succeeded(&["migrate"], &output);
            assert!(migrated.contains("up to date"), "{migrated}");
        }
        trio.start_all();
        Some(trio)
    }

    /// Chooses three free ports, writes the configurations and starts every DC; all over again
    /// on fresh ports when a port was taken in between.
    fn start_all(&mut self) {
        for attempt in 1..=START_ATTEMPTS {
            let listeners: Vec<TcpListener> = (0..self.dcs.len())
                .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
                .collect();
            for (dc, listener) in self.dcs.iter_mut().zip(&listeners) {
                dc.url = format!("http://{}", listener.local_addr().unwrap());
            }
            drop(listeners);
            let all: Vec<(&str, String, String)> = self
                .dcs
                .iter()
                .map(|dc| (dc.location, dc.url.clone(), dc.api_domain.clone()))
                .collect();
            for dc in &self.dcs {
                std::fs::write(&dc.config, dc.config_text(&self.secret_file, &all)).unwrap();
            }
            let mut taken = None;
            for i in 0..self.dcs.len() {
                match self.spawn(i) {
                    Ok(node) => self.dcs[i].node = Some(node),
                    Err(log) if log.contains("cannot listen on") => {
                        taken = Some(log);
                        break;
                    }
                    Err(log) => panic!("{} did not start:\n{log}", self.dcs[i].location),
                }
            }
            let Some(log) = taken else {
                return;
            };
            for dc in &mut self.dcs {
                dc.node = None;
            }
            assert!(
                attempt < START_ATTEMPTS,
                "no three free ports in {START_ATTEMPTS} attempts:\n{log}"
            );
        }
    }

    /// `grantd serve` for DC `i` on its chosen port; the log if it ended before announcing its
    /// address.
    fn spawn(&self, i: usize) -> Result<Node, String> {
        let dc = &self.dcs[i];
        let listen = dc.url.trim_start_matches("http://");
        let log = self.dir.path().join(format!("{}.log", dc.location));
        let mut command = node::bare_command();
        command
            .args(["serve", "--listen", listen, "--database", &dc.database])
            .arg("--config")
            .arg(&dc.config)
            .env("GRANTD_DB_POOL_SIZE", NODE_POOL)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap());
        let mut child = command.spawn().expect("grantd serve starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = tx.send(line);
            }
            lines.for_each(drop);
        });
        let node = Node {
            name: dc.location.to_owned(),
            url: dc.url.clone(),
            child,
            log,
        };
        // A process that exits closes its stdout: the channel disconnects at once.
        let line = rx.recv_timeout(WAIT).map_err(|_| node.log_text())?;
        assert_eq!(
            line.trim(),
            format!("grantd listening on {}", dc.url),
            "{} announced another address",
            dc.location
        );
        Ok(node)
    }

    pub fn dc(&self, location: &str) -> &Dc {
        self.dcs
            .iter()
            .find(|dc| dc.location == location)
            .unwrap_or_else(|| panic!("no data center {location}"))
    }

    pub fn us(&self) -> &Dc {
        self.dc("us")
    }

    pub fn eu(&self) -> &Dc {
        self.dc("eu")
    }

    pub fn india(&self) -> &Dc {
        self.dc("in")
    }

    /// Kills a DC's process (SIGKILL, as a crash or a cut link); the others go on.
    pub fn kill(&mut self, location: &str) {
        let dc = self
            .dcs
            .iter_mut()
            .find(|dc| dc.location == location)
            .unwrap();
        let node = dc.node.take().expect("the DC is running");
        node.kill();
    }
}

/// A fresh database for each DC. One trio at a time takes its three (of the harness's
/// limited number of live test databases), so two trios never wait on each other halfway.
async fn postgres_databases(server: &str) -> Vec<PgDatabase> {
    static CREATING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _one_trio = CREATING.lock().await;
    let mut databases = Vec::new();
    for _ in LOCATIONS {
        databases.push(PgDatabase::create(server).await);
    }
    databases
}

/// `len` random hex characters (not for real secrets: a test's secret and nonces).
pub fn random_hex(len: usize) -> String {
    let mut hex = String::new();
    while hex.len() < len {
        hex.push_str(&format!(
            "{:016x}",
            RandomState::new().build_hasher().finish()
        ));
    }
    hex.truncate(len);
    hex
}

/// The wall clock, which the processes under test read too (a signed request carries theirs).
pub fn unix_now() -> i64 {
    SystemClock.now().0
}

// ---- the server-to-server API -------------------------------------------------------------

/// What a DC sends a peer: the claimed caller, a timestamp, a nonce and the signature over
/// `METHOD\nPATH\nTIMESTAMP\nNONCE\n` + body (the plan's `/dc/v1` signing).
#[derive(Debug, Clone)]
pub struct S2s {
    pub method: &'static str,
    /// With the query, as signed.
    pub path: String,
    pub body: Vec<u8>,
    pub caller: String,
    pub timestamp: i64,
    pub nonce: String,
}

impl S2s {
    /// `POST /dc/v1/users/lookup` for `email`, from `caller`, now, with a fresh nonce.
    pub fn lookup(caller: &str, email: &str) -> S2s {
        S2s {
            method: "POST",
            path: "/dc/v1/users/lookup".into(),
            body: serde_json::to_vec(&serde_json::json!({ "email": email })).unwrap(),
            caller: caller.into(),
            timestamp: unix_now(),
            nonce: random_hex(32),
        }
    }

    /// The hex HMAC-SHA256 of this request under `secret`.
    pub fn signature(&self, secret: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
        mac.update(
            format!(
                "{}\n{}\n{}\n{}\n",
                self.method, self.path, self.timestamp, self.nonce
            )
            .as_bytes(),
        );
        mac.update(&self.body);
        mac.finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// The request to `dc` with `signature` (`None`: without a signature header), which a
    /// test computes with [`S2s::signature`], or not.
    pub fn request(&self, http: &Http, dc: &Dc, signature: Option<&str>) -> RequestBuilder {
        let method = reqwest::Method::from_bytes(self.method.as_bytes()).unwrap();
        let mut request = http
            .client
            .request(method, dc.at(&self.path))
            .header("content-type", "application/json")
            .header("X-Grantd-DC", &self.caller)
            .header("X-Grantd-Timestamp", self.timestamp.to_string())
            .header("X-Grantd-Nonce", &self.nonce)
            .body(self.body.clone());
        if let Some(signature) = signature {
            request = request.header("X-Grantd-Signature", signature);
        }
        request
    }
}
