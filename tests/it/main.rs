//! grantd's integration tests: the real server (`grantd_server::serve`, the same function the
//! binary runs) on an ephemeral port, with a `ManualClock` (`tests/support/server.rs`). Clients
//! speak HTTP the way Zoho's SDKs, standard libraries and browsers do (CONTRACT.md "What real
//! clients send"); the browser drives the real login and consent HTML.
//!
//! The suite runs twice: this binary (`it`) over an SQLite file in a temp dir, and
//! `tests/it_postgres.rs` (`it_postgres`), which loads this very file as a module, over a fresh
//! PostgreSQL database per server on the server `GRANTD_TEST_POSTGRES` names. Each binary's
//! root says which through `crate::POSTGRES`; every test begins with
//! `skip_without_postgres!()`, which skips it when PostgreSQL is wanted but not configured.
//!
//! One module per feature; tests named `tNNN_...` cover that case of SECURITY-CASES.md.

/// The first statement of every test: in the PostgreSQL run without `GRANTD_TEST_POSTGRES`, says
/// that the test is skipped and why, and returns (the test passes). Elsewhere it does nothing.
macro_rules! skip_without_postgres {
    () => {
        if crate::skipped_without_postgres() {
            return;
        }
    };
}

/// This binary runs the suite on SQLite; `tests/it_postgres.rs` sets its own to `true`.
#[allow(dead_code)] // in `it_postgres`, where the root's own constant is the one read
pub const POSTGRES: bool = false;

mod cancellation;
mod client_dcs;
mod datacenters;
mod device;
mod dialects;
mod encodings;
mod http_limits;
mod hygiene;
mod incremental;
mod issued_elsewhere;
mod limits;
mod login;
mod oidc;
mod pkce;
mod redirect_flow;
mod redirect_uri;
mod refresh;
mod resource;
mod revoke;
mod revoke_token;
mod security;
mod self_client;
mod storage;
mod token;

#[path = "../support/mod.rs"]
mod support;

use grantd_server::Settings;

pub use support::database::{Database, Db, Param};
pub use support::http::*;
pub use support::node;
pub use support::oauth::*;
pub use support::server::*;

/// A scope list that also lets the token read `/oauth/user/info`.
pub const CRM_AND_PROFILE: &str = "ZohoCRM.modules.ALL,AaaServer.profile.READ";

/// `skip_without_postgres!()`: should this test return at once? In the PostgreSQL run without
/// `GRANTD_TEST_POSTGRES`, yes, after saying so for this test.
pub fn skipped_without_postgres() -> bool {
    if !crate::POSTGRES {
        return false;
    }
    let thread = std::thread::current();
    let test = format!("it_postgres::{}", thread.name().unwrap_or("a test"));
    support::postgres::server(&test).is_none()
}

/// A test server on this run's backend (see the top of this file).
pub async fn start() -> TestServer {
    start_with(|_| {}).await
}

pub async fn start_with(adjust: impl FnOnce(&mut Settings)) -> TestServer {
    let database = support::database::Database::create(crate::POSTGRES).await;
    TestServer::start(database, adjust).await
}

/// A test server with the user ada@example.com and client A (server-based, standard dialect,
/// redirect URI `https://a.example/cb`).
pub async fn ada_and_a() -> (TestServer, TestUser, TestClient) {
    let server = start().await;
    let user = server.user("ada@example.com").await;
    let a = server.server_client("https://a.example/cb").await;
    (server, user, a)
}
