//! The RFC 8628 device flow with a third-party client: openid-client 6 (npm), installed in
//! tests/device-js by `.ci/run`, runs its device-authorization helpers (`discovery` over RFC
//! 8414, `initiateDeviceAuthorization`, `pollDeviceAuthorizationGrant`) against a real
//! `grantd serve`, while this test answers at the verification page over HTTP as a browser
//! does (the code form pre-filled from `verification_uri_complete`, sign-in, consent). On
//! SQLite, and on PostgreSQL when `GRANTD_TEST_POSTGRES` is set.
//!
//! Without tests/device-js/node_modules (or without `node`) the test says why and passes,
//! unless `GRANTD_REQUIRE_OIDC_LIBS=1`, as `.ci/run` sets, which makes it a failure.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

use support::http::Http;
use support::node::*;
use support::postgres::{self, PgDatabase};

/// Real seconds pass here: a poll every second keeps the test short.
const CONFIG: &str = "[limits]\ndevice_poll_interval_secs = 1\n";
const SCOPE: &str = "AaaServer.profile.READ";
/// How long the library may take for a step (discovery, or polling until approved).
const STEP: Duration = Duration::from_secs(60);

fn script_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/device-js")
}

/// Whether the library is installed and `node` runs; if not, says why and (unless required)
/// the test is skipped.
fn library_ready() -> bool {
    let required = std::env::var("GRANTD_REQUIRE_OIDC_LIBS").is_ok_and(|v| v == "1");
    let installed = script_dir().join("node_modules/openid-client").is_dir();
    let node = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if installed && node {
        return true;
    }
    let why = if node {
        "tests/device-js/node_modules is missing (run `npm ci` there)"
    } else {
        "node is not installed"
    };
    assert!(!required, "GRANTD_REQUIRE_OIDC_LIBS=1 but {why}");
    let _ = std::io::stderr().write_all(format!("skipped device_js: {why}\n").as_bytes());
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openid_client_runs_the_device_flow_on_sqlite() {
    if !library_ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}/grantd.db", dir.path().display());
    device_flow(dir.path(), &database).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openid_client_runs_the_device_flow_on_postgres() {
    if !library_ready() {
        return;
    }
    let Some(admin_url) = postgres::server("openid_client_runs_the_device_flow_on_postgres") else {
        return;
    };
    let db = PgDatabase::create(&admin_url).await;
    let dir = tempfile::tempdir().unwrap();
    device_flow(dir.path(), &db.url()).await;
}

async fn device_flow(dir: &Path, database: &str) {
    let config = dir.join("grantd.toml");
    std::fs::write(&config, CONFIG).unwrap();
    add_user(database, Some(&config), EMAIL);
    let (client_id, secret) = add_device_client(database, &config);
    let mut serve = bare_command();
    serve
        .args(["serve", "--listen", "127.0.0.1:0", "--database", database])
        .arg("--config")
        .arg(&config)
        .env("GRANTD_DB_POOL_SIZE", NODE_POOL)
        .env("RUST_LOG", "info");
    let node = Node::spawn("device", serve, dir.join("device.log"));

    let mut library = Library::start(&node.url, &client_id, &secret);
    let authorized = library.next_line();
    assert_eq!(authorized["step"], "authorized", "{authorized}");
    assert_eq!(
        authorized["device_authorization_endpoint"],
        node.at("/oauth/v2/device_authorization")
    );
    let user_code = authorized["user_code"].as_str().unwrap();
    let complete = authorized["verification_uri_complete"].as_str().unwrap();
    assert_eq!(authorized["verification_uri"], node.at("/oauth/v3/device"));
    assert_eq!(authorized["interval"], 1);

    // The user, at the verification page in a browser.
    let browser = Http::browser(&node.url);
    let page = browser.get(complete).await;
    let form = page.form_with("user_code");
    assert_eq!(form.get("user_code"), Some(user_code), "pre-filled");
    let login = browser.submit(&form, &[]).await;
    let signed_in = browser
        .sign_in_on(&login, EMAIL, support::oauth::PASSWORD)
        .await;
    assert_eq!(signed_in.status, 303, "{}", signed_in.body);
    let consent = browser.get(signed_in.location().unwrap().as_str()).await;
    assert!(consent.is_consent_page(), "{}", consent.body);
    assert!(consent.body.contains(user_code));
    let form = consent.form_with("decision");
    let done = browser.submit(&form, &[("decision", "accept")]).await;
    assert!(
        done.body.contains("You can return to your device"),
        "{}",
        done.body
    );

    let tokens = library.next_line();
    assert_eq!(tokens["step"], "tokens", "{tokens}");
    assert_eq!(
        tokens["token_type"]
            .as_str()
            .map(str::to_lowercase)
            .as_deref(),
        Some("bearer")
    );
    assert!(tokens["refresh_token"].is_string(), "offline: {tokens}");
    let access = tokens["access_token"].as_str().unwrap();
    let info = support::http::send(user_info(&browser, &node.url, access)).await;
    assert_eq!(info.status, 200, "{}", info.body);
    assert_eq!(info.json()["Email"], EMAIL);
    library.finish();
}

/// `grantd client add --type non-browser --json`: its id and secret.
fn add_device_client(database: &str, config: &Path) -> (String, String) {
    let args = [
        "client",
        "add",
        "--type",
        "non-browser",
        "--name",
        "TV app",
        "--json",
    ];
    let out = succeeded(&args, &grantd(database, Some(config), &args, None));
    let added: Value = serde_json::from_str(out.trim()).unwrap();
    (
        added["client_id"].as_str().unwrap().to_owned(),
        added["client_secret"].as_str().unwrap().to_owned(),
    )
}

/// `node device.mjs`, its stdout read line by line; killed when dropped.
struct Library {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Library {
    fn start(issuer: &str, client_id: &str, secret: &str) -> Library {
        let mut child = Command::new("node")
            .arg("device.mjs")
            .args([issuer, client_id, secret, SCOPE])
            .current_dir(script_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("node starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Library { child, lines }
    }

    /// The library's next step, waited for at most [`STEP`].
    fn next_line(&mut self) -> Value {
        let line = self
            .lines
            .recv_timeout(STEP)
            .unwrap_or_else(|_| panic!("openid-client said nothing within {STEP:?}"));
        serde_json::from_str(&line).unwrap_or_else(|_| panic!("not JSON: {line}"))
    }

    /// The script must end by itself, successfully.
    fn finish(mut self) {
        for _ in 0..100 {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "node device.mjs failed: {status}");
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("node device.mjs did not end after printing its tokens");
    }
}

impl Drop for Library {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
