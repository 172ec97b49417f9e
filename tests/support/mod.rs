//! Helpers the tests that run the real `grantd` binary share (tests/multinode.rs,
//! tests/crash.rs): PostgreSQL test databases dropped even when a test fails, the admin CLI,
//! `grantd serve` processes on ephemeral ports, and an HTTP client that acts as a browser.
//! Each test crate uses a part of them.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use reqwest::header::HeaderMap;
use reqwest::redirect::Policy;
use reqwest::Url;
use scraper::{Html, Selector};
use serde_json::Value;
use sqlx::{Connection, Executor, PgConnection};

pub const BIN: &str = env!("CARGO_BIN_EXE_grantd");
/// How long a process may take to start or a command to finish before the test gives up.
pub const WAIT: Duration = Duration::from_secs(60);
/// Every failure must be answered within this: fail fast, never hang.
pub const FAST: Duration = Duration::from_secs(6);
pub const REDIRECT_URI: &str = "http://127.0.0.1:9/cb";
pub const EMAIL: &str = "ada@example.com";
pub const PASSWORD: &str = "correct horse battery staple";
/// Connections per node (`GRANTD_DB_POOL_SIZE`): two tests run at once, two nodes each.
pub const NODE_POOL: &str = "6";

/// Settings a `grantd` child must not inherit from whoever runs the tests.
pub const SETTINGS: [&str; 9] = [
    "GRANTD_LISTEN",
    "GRANTD_PUBLIC_URL",
    "GRANTD_DATABASE_URL",
    "GRANTD_LOCATION",
    "GRANTD_API_DOMAIN",
    "GRANTD_DEFAULT_DIALECT",
    "GRANTD_CONFIG",
    "GRANTD_DB_POOL_SIZE",
    "RUST_LOG",
];

// ---- PostgreSQL ------------------------------------------------------------------------------

/// The server to create test databases on, or `None` after saying why the test is skipped.
pub fn postgres(test: &str) -> Option<String> {
    match std::env::var("GRANTD_TEST_POSTGRES") {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            // Straight to stderr, past the harness's capture, so the skip is visible.
            let _ = writeln!(
                std::io::stderr(),
                "skipped {test}: GRANTD_TEST_POSTGRES is not set (set it to a server URL such \
                 as postgres://postgres@127.0.0.1:5432/postgres to run it)"
            );
            None
        }
    }
}

/// A uniquely named database, dropped `WITH (FORCE)` when this goes out of scope, also when
/// the test panics.
pub struct Database {
    pub admin_url: String,
    pub name: String,
}

impl Database {
    pub async fn create(admin_url: &str) -> Database {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "grantd_test_{}_{}_{}",
            std::process::id(),
            &grantd_core::secret::random_id()[..12],
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        let mut admin = PgConnection::connect(admin_url)
            .await
            .unwrap_or_else(|e| panic!("GRANTD_TEST_POSTGRES={admin_url} is unreachable: {e}"));
        admin
            .execute(format!("CREATE DATABASE \"{name}\"").as_str())
            .await
            .unwrap();
        admin.close().await.unwrap();
        Database {
            admin_url: admin_url.to_owned(),
            name,
        }
    }

    /// This database's URL: the server URL with its path replaced (query kept).
    pub fn url(&self) -> String {
        let (base, query) = match self.admin_url.split_once('?') {
            Some((base, query)) => (base, Some(query)),
            None => (self.admin_url.as_str(), None),
        };
        let authority = base.find("://").map_or(0, |i| i + 3);
        let path = base[authority..]
            .find('/')
            .map_or(base.len(), |i| authority + i);
        let mut url = format!("{}/{}", &base[..path], self.name);
        if let Some(query) = query {
            url.push('?');
            url.push_str(query);
        }
        url
    }

    /// A connection to the server's own database, unaffected by what happens to this one.
    pub async fn admin(&self) -> PgConnection {
        PgConnection::connect(&self.admin_url).await.unwrap()
    }

    pub async fn connect(&self) -> PgConnection {
        PgConnection::connect(&self.url()).await.unwrap()
    }

    pub async fn count(&self, sql: &str) -> i64 {
        let mut db = self.connect().await;
        let (n,): (i64,) = sqlx::query_as(sql).fetch_one(&mut db).await.unwrap();
        db.close().await.unwrap();
        n
    }

    /// Ends every connection to this database (grantd's pools included); how many it ended.
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

impl Drop for Database {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        // A fresh thread and runtime: Drop cannot await, and may run while panicking.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let mut admin = PgConnection::connect(&admin_url).await?;
                admin
                    .execute(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)").as_str())
                    .await?;
                admin.close().await
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            let _ = writeln!(
                std::io::stderr(),
                "could not drop test database {}: {dropped:?}",
                self.name
            );
        }
    }
}

// ---- the grantd binary ---------------------------------------------------------------------

/// `grantd ARGS` on `database`, with nothing inherited from the caller's `GRANTD_*`.
pub fn grantd(database: &str, config: Option<&Path>, args: &[&str], stdin: Option<&str>) -> Output {
    let mut command = Command::new(BIN);
    for name in SETTINGS {
        command.env_remove(name);
    }
    // The URL by environment here; `serve` gets it as `--database`, so both ways are used.
    command
        .env("GRANTD_DATABASE_URL", database)
        .env("RUST_LOG", "warn")
        .args(args);
    if let Some(config) = config {
        command.arg("--config").arg(config);
    }
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("grantd starts");
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    wait_with_output(child, args)
}

/// The child's output, or a panic (after killing it) if it runs longer than `WAIT`.
pub fn wait_with_output(child: Child, args: &[&str]) -> Output {
    let id = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(WAIT) {
        Ok(output) => output.unwrap(),
        Err(_) => {
            let _ = Command::new("kill").arg("-9").arg(id.to_string()).status();
            panic!("grantd {args:?} did not finish within {WAIT:?}");
        }
    }
}

pub fn succeeded(args: &[&str], output: &Output) -> String {
    assert!(
        output.status.success(),
        "grantd {args:?} failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

/// A running `grantd serve`, killed when dropped; its log is shown if the test failed.
pub struct Node {
    pub name: String,
    pub url: String,
    pub child: Child,
    pub log: PathBuf,
}

impl Node {
    pub fn start(dir: &Path, name: &str, database: &str, config: &Path, public_url: &str) -> Node {
        let log = dir.join(format!("{name}.log"));
        let mut command = Command::new(BIN);
        for setting in SETTINGS {
            command.env_remove(setting);
        }
        let mut child = command
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--public-url",
                public_url,
            ])
            .args(["--database", database])
            .arg("--config")
            .arg(config)
            .env("GRANTD_DB_POOL_SIZE", NODE_POOL)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("grantd serve starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = tx.send(line);
            }
            lines.for_each(drop);
        });
        let mut node = Node {
            name: name.to_owned(),
            url: String::new(),
            child,
            log,
        };
        let line = rx.recv_timeout(WAIT).unwrap_or_else(|_| {
            panic!("{name} did not announce its address:\n{}", node.log_text())
        });
        node.url = line
            .strip_prefix("grantd listening on ")
            .unwrap_or_else(|| panic!("unexpected first line from {name}: {line:?}"))
            .to_owned();
        node
    }

    pub fn at(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `kill -9` (`Child::kill` sends SIGKILL): the process ends at once, whatever it was
    /// doing, with no chance to finish requests or flush anything; returns once it is reaped.
    pub fn kill(mut self) -> ExitStatus {
        self.child.kill().expect("SIGKILL sent");
        self.child.wait().expect("killed process reaped")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = self.log_text();
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            let _ = writeln!(
                std::io::stderr(),
                "---- last lines of {} ({}) ----\n{}",
                self.name,
                self.url,
                tail.join("\n")
            );
        }
    }
}

/// A registered confidential client.
#[derive(Debug, Clone)]
pub struct App {
    pub id: String,
    pub secret: String,
}

/// `grantd user add` with `PASSWORD`, through stdin.
pub fn add_user(database: &str, config: &Path, email: &str) {
    let args = [
        "user",
        "add",
        "--email",
        email,
        "--name",
        "Ada Lovelace",
        "--password-stdin",
    ];
    let output = grantd(
        database,
        Some(config),
        &args,
        Some(&format!("{PASSWORD}\n")),
    );
    succeeded(&args, &output);
}

/// `grantd client add --type server` with `REDIRECT_URI`: its id and secret.
pub fn add_server_client(database: &str, config: &Path, name: &str) -> App {
    let args = [
        "client",
        "add",
        "--type",
        "server",
        "--name",
        name,
        "--redirect-uri",
        REDIRECT_URI,
        "--json",
    ];
    let out = succeeded(&args, &grantd(database, Some(config), &args, None));
    let added: Value = serde_json::from_str(out.trim()).unwrap();
    App {
        id: added["client_id"].as_str().unwrap().to_owned(),
        secret: added["client_secret"].as_str().unwrap().to_owned(),
    }
}

// ---- HTTP ------------------------------------------------------------------------------------

/// A response read completely, with how long it took.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
    pub elapsed: Duration,
}

impl Reply {
    pub async fn of(request: reqwest::RequestBuilder) -> Result<Reply, String> {
        let start = Instant::now();
        let response = request
            .send()
            .await
            .map_err(|e| format!("{e:?} after {:?}", start.elapsed()))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response
            .text()
            .await
            .map_err(|e| format!("{e:?} after {:?}", start.elapsed()))?;
        Ok(Reply {
            status,
            headers,
            body,
            elapsed: start.elapsed(),
        })
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}), status {}: {:?}", self.status, self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// A successful token response; its access token.
    pub fn access_token(&self) -> String {
        assert_eq!(self.status, 200, "token request failed: {}", self.body);
        self.json()["access_token"].as_str().unwrap().to_owned()
    }

    pub fn refresh_token(&self) -> String {
        assert_eq!(self.status, 200, "token request failed: {}", self.body);
        self.json()["refresh_token"]
            .as_str()
            .unwrap_or_else(|| panic!("no refresh token: {}", self.body))
            .to_owned()
    }

    /// RFC 6749 `invalid_grant` in the standard dialect.
    pub fn assert_invalid_grant(&self) {
        assert_eq!(
            (self.status, self.json()["error"].as_str()),
            (400, Some("invalid_grant")),
            "{}",
            self.body
        );
    }

    /// The answer while the database cannot be used: a fast 503, in JSON on the API.
    pub fn assert_unavailable(&self, what: &str) {
        assert_eq!(self.status, 503, "{what}: {}", self.body);
        assert!(
            self.elapsed < FAST,
            "{what} took {:?} to fail",
            self.elapsed
        );
        assert_eq!(
            self.json()["error"],
            "temporarily_unavailable",
            "{what}: {}",
            self.body
        );
        assert!(
            self.header("content-type")
                .unwrap_or_default()
                .starts_with("application/json"),
            "{what}: {:?}",
            self.header("content-type")
        );
    }

    pub fn is_login_page(&self) -> bool {
        self.status == 200 && self.has_field("password") && self.has_field("email")
    }

    pub fn is_consent_page(&self) -> bool {
        self.status == 200 && self.has_field("decision")
    }

    pub fn has_field(&self, name: &str) -> bool {
        let selector =
            Selector::parse(&format!("input[name=\"{name}\"], button[name=\"{name}\"]")).unwrap();
        Html::parse_document(&self.body)
            .select(&selector)
            .next()
            .is_some()
    }

    /// The named inputs (hidden ones included) of the form holding a field `name`.
    pub fn form(&self, name: &str) -> Vec<(String, String)> {
        let html = Html::parse_document(&self.body);
        let forms = Selector::parse("form").unwrap();
        let wanted =
            Selector::parse(&format!("input[name=\"{name}\"], button[name=\"{name}\"]")).unwrap();
        let inputs = Selector::parse("input[name]").unwrap();
        let form = html
            .select(&forms)
            .find(|f| f.select(&wanted).next().is_some())
            .unwrap_or_else(|| panic!("no form with {name:?}: {}", self.body));
        form.select(&inputs)
            .filter(|i| i.value().attr("type") != Some("submit"))
            .map(|i| {
                (
                    i.value().attr("name").unwrap().to_owned(),
                    i.value().attr("value").unwrap_or_default().to_owned(),
                )
            })
            .collect()
    }

    /// The code of a redirect to the client (and the redirect's other parameters).
    pub fn code(&self) -> (String, Vec<(String, String)>) {
        assert_eq!(self.status, 302, "expected a redirect: {}", self.body);
        let location = Url::parse(self.header("location").unwrap()).unwrap();
        assert!(
            location.as_str().starts_with(REDIRECT_URI),
            "redirected to {location}"
        );
        let params: Vec<(String, String)> = location
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let code = params
            .iter()
            .find(|(k, _)| k == "code")
            .unwrap_or_else(|| panic!("no code in {location}"))
            .1
            .clone();
        (code, params)
    }
}

pub fn set(fields: &mut Vec<(String, String)>, name: &str, value: &str) {
    fields.retain(|(n, _)| n != name);
    fields.push((name.to_owned(), value.to_owned()));
}

/// A client without cookies that does not follow redirects.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

pub async fn send(request: reqwest::RequestBuilder) -> Reply {
    Reply::of(request)
        .await
        .unwrap_or_else(|e| panic!("request failed: {e}"))
}

/// Code exchange as Zoho's Python SDK sends it.
pub fn exchange(
    http: &reqwest::Client,
    base: &str,
    app: &App,
    code: &str,
) -> reqwest::RequestBuilder {
    http.post(format!("{base}/oauth/v2/token")).form(&[
        ("grant_type", "authorization_code"),
        ("client_id", &app.id),
        ("client_secret", &app.secret),
        ("redirect_uri", REDIRECT_URI),
        ("code", code),
    ])
}

pub fn refresh(
    http: &reqwest::Client,
    base: &str,
    app: &App,
    token: &str,
) -> reqwest::RequestBuilder {
    http.post(format!("{base}/oauth/v2/token")).form(&[
        ("grant_type", "refresh_token"),
        ("client_id", &app.id),
        ("client_secret", &app.secret),
        ("refresh_token", token),
    ])
}

/// Revocation as Zoho's SDKs send it: the token alone.
pub fn revoke(http: &reqwest::Client, base: &str, token: &str) -> reqwest::RequestBuilder {
    http.post(format!("{base}/oauth/v2/token/revoke"))
        .form(&[("token", token)])
}

pub fn user_info(http: &reqwest::Client, base: &str, access: &str) -> reqwest::RequestBuilder {
    http.get(format!("{base}/oauth/user/info"))
        .header("Authorization", format!("Zoho-oauthtoken {access}"))
}

/// A browser: keeps cookies (for 127.0.0.1 whatever the port, as browsers do, so it carries
/// its session from node to node), follows no redirects.
pub struct Browser {
    pub http: reqwest::Client,
}

impl Browser {
    pub fn new() -> Browser {
        Browser {
            http: reqwest::Client::builder()
                .redirect(Policy::none())
                .cookie_store(true)
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
        }
    }

    pub async fn get(&self, url: &str) -> Reply {
        send(self.http.get(url)).await
    }

    pub async fn post(&self, url: &str, fields: &[(String, String)]) -> Reply {
        send(self.http.post(url).form(fields)).await
    }

    /// Opens `auth_url` (the login page) and signs in by posting the form to `post_base`;
    /// returns where the login redirects (the same request, as a path).
    pub async fn sign_in(&self, auth_url: &str, post_base: &str, email: &str) -> String {
        let page = self.get(auth_url).await;
        assert!(page.is_login_page(), "not the login page: {}", page.body);
        let mut form = page.form("password");
        set(&mut form, "email", email);
        set(&mut form, "password", PASSWORD);
        let reply = self.post(&format!("{post_base}/signin"), &form).await;
        assert_eq!(reply.status, 303, "login failed: {}", reply.body);
        reply.header("location").unwrap().to_owned()
    }

    /// Opens `auth_url` (the consent page) and accepts by posting to `decide_base`.
    pub async fn consent(&self, auth_url: &str, decide_base: &str) -> Reply {
        let page = self.get(auth_url).await;
        assert!(
            page.is_consent_page(),
            "not the consent page: {}",
            page.body
        );
        let mut form = page.form("decision");
        set(&mut form, "decision", "accept");
        self.post(&format!("{decide_base}/oauth/v2/auth/consent"), &form)
            .await
    }

    /// `get` for an owned URL, for futures that outlive the caller's string.
    pub async fn get_page(&self, url: String) -> Reply {
        self.get(&url).await
    }

    /// A code straight from `auth_url`, for a user who already consented.
    pub async fn code(&self, auth_url: &str) -> String {
        self.get(auth_url).await.code().0
    }
}

/// Polls `ready` until it holds, for at most `limit`.
pub async fn eventually<F, Fut>(limit: Duration, what: &str, mut ready: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    loop {
        if ready().await {
            return;
        }
        assert!(Instant::now() < deadline, "{what} within {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
