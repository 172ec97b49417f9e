//! Third-party OpenID Connect relying parties against a real `grantd serve` (issue 14):
//! openid-client (npm, `tests/oidc-js/rp.mjs`) and authlib (PyPI, `tests/oidc-py/rp.py`), on
//! SQLite and, with `GRANTD_TEST_POSTGRES`, on PostgreSQL. The users and clients are made with
//! the CLI; each script gets the server's address and a client in its environment and drives
//! discovery, the browser's sign-in and consent over HTTP, the code exchange and the library's
//! own ID token validation.
//!
//! The libraries are installed by `.ci/run` (`npm ci` in `tests/oidc-js`, `pip install -r
//! tests/oidc-py/requirements.txt`). Without them a test says so and passes, unless
//! `GRANTD_REQUIRE_OIDC_LIBS=1` (CI), where a missing library fails it.

// The helpers fail the test the way a test does, by panicking (as `tests/support` does).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

use support::node::{self, Node, EMAIL, REDIRECT_URI};
use support::oauth::{TestClient, PASSWORD};
use support::postgres::{self, PgDatabase};

const REQUIRE: &str = "GRANTD_REQUIRE_OIDC_LIBS";

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// Whether `probe` (a command that exits 0 when the library is there) succeeds; without it, a
/// printed note, or a failure where the libraries are required.
fn library_present(what: &str, probe: &mut Command) -> bool {
    let present = probe.output().is_ok_and(|out| out.status.success());
    if !present {
        assert!(
            std::env::var(REQUIRE).ok().as_deref() != Some("1"),
            "{what} is not installed, and {REQUIRE}=1 requires it (see .ci/run)"
        );
        eprintln!("skipped: {what} is not installed (.ci/run installs it)");
    }
    present
}

fn openid_client_present() -> bool {
    library_present(
        "openid-client (npm ci in tests/oidc-js)",
        Command::new("node")
            .args(["-e", "import('openid-client').then(() => process.exit(0))"])
            .current_dir(repo("tests/oidc-js")),
    )
}

fn authlib_present() -> bool {
    library_present(
        "authlib (pip install -r tests/oidc-py/requirements.txt)",
        Command::new("python3").args(["-c", "import authlib, requests"]),
    )
}

/// A running server with the user [`EMAIL`] and two server clients, made with the CLI.
struct Deployment {
    node: Node,
    a: TestClient,
    b: TestClient,
    _dir: TempDir,
    _postgres: Option<PgDatabase>,
}

async fn deploy(postgres: Option<PgDatabase>) -> Deployment {
    let dir = tempfile::tempdir().unwrap();
    let database = match &postgres {
        Some(db) => db.url(),
        None => format!("sqlite://{}/grantd.db", dir.path().display()),
    };
    let config = dir.path().join("grantd.toml");
    std::fs::write(&config, "").unwrap();
    let mut serve = node::bare_command();
    serve
        .args(["serve", "--listen", "127.0.0.1:0", "--database", &database])
        .arg("--config")
        .arg(&config)
        .env("GRANTD_DB_POOL_SIZE", node::NODE_POOL)
        .env("RUST_LOG", "info");
    let node = Node::spawn("serve", serve, dir.path().join("serve.log"));
    node::add_user(&database, Some(&config), EMAIL);
    let a = node::add_server_client(&database, &config, "Relying party A");
    let b = node::add_server_client(&database, &config, "Relying party B");
    Deployment {
        node,
        a,
        b,
        _dir: dir,
        _postgres: postgres,
    }
}

/// Runs a relying-party script with the deployment in its environment; it must succeed.
fn run_script(deployment: &Deployment, mut command: Command, done: &str) {
    let output = command
        .env("GRANTD_ISSUER", &deployment.node.url)
        .env("REDIRECT_URI", REDIRECT_URI)
        .env("USER_EMAIL", EMAIL)
        .env("USER_PASSWORD", PASSWORD)
        .env("CLIENT_ID", &deployment.a.id)
        .env("CLIENT_SECRET", deployment.a.secret())
        .env("OTHER_CLIENT_ID", &deployment.b.id)
        .env("OTHER_CLIENT_SECRET", deployment.b.secret())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains(done),
        "the relying party failed ({}):\n{stdout}\n{stderr}\nserver log:\n{}",
        output.status,
        deployment.node.log_text()
    );
    print!("{stdout}");
}

fn openid_client() -> Command {
    let mut command = Command::new("node");
    command.arg("rp.mjs").current_dir(repo("tests/oidc-js"));
    command
}

fn authlib() -> Command {
    let mut command = Command::new("python3");
    command.arg(repo("tests/oidc-py/rp.py"));
    command
}

async fn postgres_database(test: &str) -> Option<PgDatabase> {
    let server = postgres::server(test)?;
    Some(PgDatabase::create(&server).await)
}

#[tokio::test]
async fn openid_client_signs_in_and_refuses_bad_id_tokens_on_sqlite() {
    if !openid_client_present() {
        return;
    }
    let deployment = deploy(None).await;
    run_script(
        &deployment,
        openid_client(),
        "openid-client: all checks passed",
    );
}

#[tokio::test]
async fn openid_client_signs_in_and_refuses_bad_id_tokens_on_postgres() {
    let Some(db) = postgres_database("openid_client_on_postgres").await else {
        return;
    };
    if !openid_client_present() {
        return;
    }
    let deployment = deploy(Some(db)).await;
    run_script(
        &deployment,
        openid_client(),
        "openid-client: all checks passed",
    );
}

#[tokio::test]
async fn authlib_validates_id_tokens_on_sqlite() {
    if !authlib_present() {
        return;
    }
    let deployment = deploy(None).await;
    run_script(&deployment, authlib(), "authlib: all checks passed");
}

#[tokio::test]
async fn authlib_validates_id_tokens_on_postgres() {
    let Some(db) = postgres_database("authlib_on_postgres").await else {
        return;
    };
    if !authlib_present() {
        return;
    }
    let deployment = deploy(Some(db)).await;
    run_script(&deployment, authlib(), "authlib: all checks passed");
}
