//! The real `grantd` binary: admin commands run to completion, and `grantd serve` processes
//! ("nodes") on ephemeral ports, killed when dropped, each announcing its address on its first
//! line of stdout. Nothing is inherited from the caller's `GRANTD_*` settings. Also the token
//! requests a client application's backend sends to a node, as request builders, so a test can
//! time them or send them all at once.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use reqwest::RequestBuilder;
use serde_json::Value;

use grantd_core::{ClientType, Dialect};

use super::http::{Http, Redirect, Reply};
use super::oauth::{TestClient, PASSWORD};

pub const BIN: &str = env!("CARGO_BIN_EXE_grantd");
/// How long a process may take to start or a command to finish before the test gives up.
pub const WAIT: Duration = Duration::from_secs(60);
/// Every failure must be answered within this: fail fast, never hang.
pub const FAST: Duration = Duration::from_secs(6);
pub const REDIRECT_URI: &str = "http://127.0.0.1:9/cb";
pub const EMAIL: &str = "ada@example.com";
/// Connections per node (`GRANTD_DB_POOL_SIZE`): two tests run at once, two nodes each.
pub const NODE_POOL: &str = "6";

/// Settings a `grantd` child must not inherit from whoever runs the tests.
pub const SETTINGS: [&str; 13] = [
    "GRANTD_KEY_ENCRYPTION_KEY_FILE",
    "GRANTD_ID_TOKEN_SIGNING_ALG",
    "GRANTD_LISTEN",
    "GRANTD_PUBLIC_URL",
    "GRANTD_DATABASE_URL",
    "GRANTD_LOCATION",
    "GRANTD_API_DOMAIN",
    "GRANTD_DEFAULT_DIALECT",
    "GRANTD_CONFIG",
    "GRANTD_DB_POOL_SIZE",
    "GRANTD_DC_SECRET_FILE",
    "GRANTD_DC_SYNC_INTERVAL_MS",
    "RUST_LOG",
];

// ---- commands --------------------------------------------------------------------------------

/// `grantd`, with none of [`SETTINGS`] inherited, and the tests' key-encryption key (which
/// PostgreSQL nodes need, and must share).
pub fn bare_command() -> Command {
    let mut command = Command::new(BIN);
    for name in SETTINGS {
        command.env_remove(name);
    }
    command.env("GRANTD_KEY_ENCRYPTION_KEY_FILE", test_kek_file());
    command
}

/// One key-encryption key file for every test process: made once, atomically (a complete file
/// is linked into place, never overwritten), so nodes on one database always share it.
pub fn test_kek_file() -> PathBuf {
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("grantd-test-kek");
    if !path.exists() {
        static DRAFTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = DRAFTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let draft = path.with_extension(format!("{}-{n}", std::process::id()));
        let key: String = (0..32).map(|_| format!("{:02x}", rand_byte())).collect();
        std::fs::write(&draft, format!("{key}\n")).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&draft, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        // Another test process may have linked its own first: then that one is the key.
        let _ = std::fs::hard_link(&draft, &path);
        let _ = std::fs::remove_file(&draft);
    }
    path
}

fn rand_byte() -> u8 {
    use std::hash::{BuildHasher, Hasher};
    // A test key, not a secret: RandomState's per-process seed is random enough.
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    hasher.finish() as u8
}

/// `grantd` on `database`, given by environment (`serve` gets it as `--database` in
/// [`Node::start`], so both ways are used), logging warnings only.
pub fn command(database: &str) -> Command {
    let mut command = bare_command();
    command
        .env("GRANTD_DATABASE_URL", database)
        .env("RUST_LOG", "warn");
    command
}

/// `grantd ARGS [--config CONFIG]` on `database`, with `stdin` piped in.
pub fn grantd(database: &str, config: Option<&Path>, args: &[&str], stdin: Option<&str>) -> Output {
    let mut command = command(database);
    command.args(args);
    if let Some(config) = config {
        command.arg("--config").arg(config);
    }
    run(command, args, stdin)
}

/// Runs `command` (`grantd ARGS`) to its end with `stdin` piped in (nothing: at once end of
/// file); its output, or a panic (after killing it) if it runs longer than [`WAIT`].
pub fn run(mut command: Command, args: &[&str], stdin: Option<&str>) -> Output {
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

/// The stdout of a command that must have succeeded.
pub fn succeeded(args: &[&str], output: &Output) -> String {
    assert!(
        output.status.success(),
        "grantd {args:?} failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

/// `grantd user add` with [`PASSWORD`], through stdin.
pub fn add_user(database: &str, config: Option<&Path>, email: &str) {
    let args = [
        "user",
        "add",
        "--email",
        email,
        "--name",
        "Ada Lovelace",
        "--password-stdin",
    ];
    let output = grantd(database, config, &args, Some(&format!("{PASSWORD}\n")));
    succeeded(&args, &output);
}

/// `grantd client add --type server` with [`REDIRECT_URI`].
pub fn add_server_client(database: &str, config: &Path, name: &str) -> TestClient {
    add_client(database, config, ClientType::Server, name, &[])
}

/// `grantd client add --type KIND --name NAME --json EXTRA...` (with `REDIRECT_URI` for a type
/// that uses redirects): the client, with the secret it printed.
pub fn add_client(
    database: &str,
    config: &Path,
    kind: ClientType,
    name: &str,
    extra: &[&str],
) -> TestClient {
    let mut args = vec!["client", "add", "--type", kind.as_str(), "--name", name];
    if kind.uses_redirects() {
        args.extend(["--redirect-uri", REDIRECT_URI]);
    }
    args.push("--json");
    args.extend_from_slice(extra);
    let out = succeeded(&args, &grantd(database, Some(config), &args, None));
    let added: Value = serde_json::from_str(out.trim()).unwrap();
    TestClient {
        id: added["client_id"].as_str().unwrap().to_owned(),
        name: name.to_owned(),
        secret: added["client_secret"].as_str().map(str::to_owned),
        redirect_uri: if kind.uses_redirects() {
            REDIRECT_URI.to_owned()
        } else {
            String::new()
        },
        kind,
        dialect: Dialect::Standard,
    }
}

// ---- nodes -----------------------------------------------------------------------------------

/// A running `grantd serve`, killed when dropped; the end of its log is shown if the test
/// failed.
pub struct Node {
    pub name: String,
    pub url: String,
    pub child: Child,
    pub log: PathBuf,
}

impl Node {
    /// `grantd serve` on an ephemeral port of 127.0.0.1, with `public_url` and `config`, on
    /// `database`; its log in `dir`.
    pub fn start(dir: &Path, name: &str, database: &str, config: &Path, public_url: &str) -> Node {
        let mut command = bare_command();
        command
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
            .env("RUST_LOG", "info");
        Node::spawn(name, command, dir.join(format!("{name}.log")))
    }

    /// Starts `command` (a `grantd serve`), its stderr to `log`, and waits for it to announce
    /// its address.
    pub fn spawn(name: &str, mut command: Command, log: PathBuf) -> Node {
        let mut child = command
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
            .trim()
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

    /// SIGTERM, and its exit status, which must come within [`WAIT`].
    pub fn stop(mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success());
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not stop on SIGTERM within {WAIT:?}; log:\n{}",
                self.name,
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
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

// ---- what a client's backend sends to a node ---------------------------------------------

/// A code exchange at `base`, as Zoho's Python SDK sends it.
pub fn exchange(http: &Http, base: &str, client: &TestClient, code: &str) -> RequestBuilder {
    http.client
        .post(format!("{base}/oauth/v2/token"))
        .form(&client.exchange_fields(code))
}

pub fn refresh(http: &Http, base: &str, client: &TestClient, token: &str) -> RequestBuilder {
    http.client
        .post(format!("{base}/oauth/v2/token"))
        .form(&client.refresh_fields(token))
}

/// Revocation as Zoho's SDKs send it: the token alone.
pub fn revoke(http: &Http, base: &str, token: &str) -> RequestBuilder {
    http.client
        .post(format!("{base}/oauth/v2/token/revoke"))
        .form(&[("token", token)])
}

pub fn introspect(http: &Http, base: &str, client: &TestClient, token: &str) -> RequestBuilder {
    http.client
        .post(format!("{base}/oauth/v2/introspect"))
        .form(&client.introspect_fields(token))
}

pub fn user_info(http: &Http, base: &str, access: &str) -> RequestBuilder {
    http.client
        .get(format!("{base}/oauth/user/info"))
        .header("Authorization", format!("Zoho-oauthtoken {access}"))
}

impl Reply {
    /// A 302 to [`REDIRECT_URI`] with a code.
    pub fn redirect_with_code(&self) -> Redirect {
        assert_eq!(self.status, 302, "expected a redirect: {}", self.body);
        let redirect = Redirect::from_reply(self);
        assert!(
            redirect.raw.starts_with(REDIRECT_URI),
            "redirected to {}",
            redirect.raw
        );
        redirect.code();
        redirect
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
}

/// A browser (already signed in, with consent given) gets a code straight from `auth_url`.
pub async fn silent_code(browser: &Http, auth_url: &str) -> String {
    browser.get(auth_url).await.redirect_with_code().code()
}

/// Opens `auth_url` (the login page) and signs in as `email` with [`PASSWORD`], posting the
/// form to the same path at `post_base` (another node, maybe); where the login redirects (the
/// same request, as a path).
pub async fn sign_in_at(browser: &Http, auth_url: &str, post_base: &str, email: &str) -> String {
    let page = browser.get(auth_url).await;
    assert!(page.is_login_page(), "not the login page: {}", page.body);
    let mut form = page.form_with("email").sent_to(post_base);
    form.set("email", email).set("password", PASSWORD);
    let reply = browser.submit(&form, &[]).await;
    assert_eq!(reply.status, 303, "login failed: {}", reply.body);
    reply.header("location").unwrap().to_owned()
}

/// Opens `auth_url` (the consent page) and accepts, posting the decision to `decide_base`.
pub async fn consent_at(browser: &Http, auth_url: &str, decide_base: &str) -> Reply {
    let page = browser.get(auth_url).await;
    assert!(
        page.is_consent_page(),
        "not the consent page: {}",
        page.body
    );
    let form = page.form_with("decision").sent_to(decide_base);
    browser.submit(&form, &[("decision", "accept")]).await
}
