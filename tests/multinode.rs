//! grantd as several nodes over one PostgreSQL database, the way docs/deploy.md runs it: real
//! `grantd serve` processes (the binary under test) on ephemeral ports, all with one public URL
//! (one issuer, as behind a load balancer), set up with the admin CLI on the same database.
//!
//! - One browser and one client move between nodes at every step (sessions, CSRF, pending
//!   consent, codes and tokens live in the database), and a revocation on one node is refused
//!   on the other at once.
//! - Races the database must settle: one code redeemed on both nodes at once, 200 times;
//!   forty grants for one (user, client) at once over both nodes; throttles hit from both.
//! - Faults: database connections killed during traffic, and the database refusing every
//!   connection: failures are fast `503 temporarily_unavailable`, every token acknowledged
//!   with a 2xx works afterwards, and the nodes recover by themselves.
//! - Schema: both backends migrate to the same tables and columns; `migrate` and `serve`
//!   refuse a schema newer than they know.
//! - docs/nginx.conf: checked with `nginx -t`, and used as the load balancer for a flow.
//!
//! Every test gets its own database (`grantd_test_<pid>_<n>_<random>`), dropped afterwards
//! even when the test fails. Without `GRANTD_TEST_POSTGRES` (a server URL, e.g.
//! `postgres://postgres@127.0.0.1:5432/postgres`) the PostgreSQL tests say they are skipped and
//! pass; CI sets it. Nothing sleeps for a fixed time: waits poll with a bound.

// `allow-unwrap-in-tests` (clippy.toml) covers the `#[test]` functions only; this crate's
// helpers (the cluster, the database relay, nginx) fail the test the same way.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::join_all;
use reqwest::Url;
use sqlx::{Connection, Executor, SqliteConnection};
use tempfile::TempDir;

use support::http::{send, until, Http, Reply};
use support::node::*;
use support::oauth::{auth_url, TestClient, PASSWORD};
use support::postgres::{self, PgDatabase};

/// The issuer every node of a test shares, as it would behind one load balancer's name.
const PUBLIC_URL: &str = "http://accounts.grantd.test";
/// The built-in profile scope (so tokens open `/oauth/user/info`) and one registered here.
const SCOPE: &str = "AaaServer.profile.READ,Demo.x.READ";

/// The defaults, except codes per client, so one client can make hundreds of codes.
const MANY_CODES: &str = "[limits]\ncodes_per_window = 1000000\n";
/// No limit that traffic could reach: every refresh is allowed and no token is evicted, so
/// each acknowledged token must still work afterwards.
const NO_LIMITS: &str = "[limits]\ncodes_per_window = 1000000\nrefreshes_per_window = 1000000\n\
                         active_access_tokens_per_refresh = 1000000\n";

/// Nodes over one database, set up through the CLI. Fields drop in order: nodes first.
struct Cluster {
    nodes: Vec<Node>,
    dir: TempDir,
    config: PathBuf,
    app: TestClient,
    db: PgDatabase,
}

impl Cluster {
    /// A database with a user, a scope and a server-based client, and `nodes` nodes on it;
    /// `None` when PostgreSQL is not configured.
    async fn start(test: &str, config: &str, nodes: usize) -> Option<Cluster> {
        let admin_url = postgres::server(test)?;
        let db = PgDatabase::create(&admin_url).await;
        let dir = tempfile::tempdir().unwrap();
        let config_path = dir.path().join("grantd.toml");
        std::fs::write(&config_path, config).unwrap();
        let url = db.url();
        let migrated = succeeded(&["migrate"], &grantd(&url, None, &["migrate"], None));
        assert!(migrated.contains("up to date"), "{migrated}");
        let scope = ["scope", "add", "Demo.x.READ", "--description", "Read x"];
        succeeded(&scope, &grantd(&url, Some(&config_path), &scope, None));
        add_user(&url, Some(&config_path), EMAIL);
        let app = add_server_client(&url, &config_path, "Multinode app");
        let mut cluster = Cluster {
            nodes: Vec::new(),
            dir,
            config: config_path,
            app,
            db,
        };
        cluster.start_nodes(PUBLIC_URL, nodes);
        Some(cluster)
    }

    fn start_nodes(&mut self, public_url: &str, count: usize) {
        self.start_nodes_on(&self.db.url(), public_url, count);
    }

    /// Nodes that reach the database at `database` (the cluster's, or a relay to it).
    fn start_nodes_on(&mut self, database: &str, public_url: &str, count: usize) {
        for i in 0..count {
            let name = format!("node-{}", (b'a' + i as u8) as char);
            let node = Node::start(self.dir.path(), &name, database, &self.config, public_url);
            self.nodes.push(node);
        }
    }

    fn add_user(&self, email: &str) {
        add_user(&self.db.url(), Some(&self.config), email);
    }

    fn node(&self, i: usize) -> &Node {
        &self.nodes[i % self.nodes.len()]
    }

    /// `/oauth/v2/auth` at `base` for the cluster's client and `SCOPE`, with `extra` parameters.
    fn auth_url(&self, base: &str, extra: &[(&str, &str)]) -> String {
        auth_url(base, &self.app, SCOPE, extra)
    }
}

/// A browser signed in (on node a) with consent given (on node b) for `SCOPE`; the code that
/// consent produced.
async fn consented_browser(cluster: &Cluster, extra: &[(&str, &str)]) -> (Http, String) {
    let browser = Http::browser(&cluster.node(0).url);
    let next = sign_in_at(
        &browser,
        &cluster.auth_url(&cluster.node(0).url, extra),
        &cluster.node(1).url,
        EMAIL,
    )
    .await;
    let reply = consent_at(&browser, &cluster.node(0).at(&next), &cluster.node(1).url).await;
    (browser, reply.redirect_with_code().code())
}

// ---- one browser, one client, two nodes --------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_browser_and_a_client_move_between_nodes() {
    let Some(cluster) =
        Cluster::start("a_browser_and_a_client_move_between_nodes", MANY_CODES, 2).await
    else {
        return;
    };
    let (a, b) = (&cluster.nodes[0], &cluster.nodes[1]);
    let http = Http::new();
    for node in [a, b] {
        let metadata = http
            .get(node.at("/.well-known/oauth-authorization-server"))
            .await
            .json();
        assert_eq!(metadata["issuer"], PUBLIC_URL, "one issuer on every node");
    }

    // The login page (and its pre-session cookie and CSRF token) from a, the sign-in on b.
    let browser = Http::browser(&a.url);
    let extra = [("access_type", "offline"), ("state", "s t/ä")];
    let next = sign_in_at(&browser, &cluster.auth_url(&a.url, &extra), &b.url, EMAIL).await;
    assert!(next.starts_with("/oauth/v2/auth?"), "{next}");
    // The session b created opens the consent page on a; the decision goes to b, which takes
    // the pending consent a stored.
    let reply = consent_at(&browser, &a.at(&next), &b.url).await;
    let redirect = reply.redirect_with_code();
    let code = redirect.code();
    let param = |name: &str| redirect.param(name);
    assert_eq!(param("state"), Some("s t/ä"));
    assert_eq!(param("iss"), Some(PUBLIC_URL));
    assert_eq!(param("accounts-server"), Some(PUBLIC_URL));

    // The code from b is redeemed on a; its refresh token works on b, and the access tokens
    // of either node on the other.
    let tokens = send(exchange(&http, &a.url, &cluster.app, &code)).await;
    let first_access = tokens.access_token();
    let refresh_token = tokens.refresh_token();
    let refreshed = send(refresh(&http, &b.url, &cluster.app, &refresh_token))
        .await
        .access_token();
    for (node, access) in [(a, &refreshed), (b, &first_access)] {
        let info = send(user_info(&http, &node.url, access)).await;
        assert_eq!(info.status, 200, "{}", info.body);
        assert_eq!(info.json()["Email"], EMAIL);
    }
    // Replayed on b, the code is refused, and everything it issued is revoked on every node.
    send(exchange(&http, &b.url, &cluster.app, &code))
        .await
        .assert_invalid_grant();
    send(refresh(&http, &a.url, &cluster.app, &refresh_token))
        .await
        .assert_invalid_grant();
    for (node, access) in [(a, &first_access), (b, &refreshed)] {
        assert_eq!(send(user_info(&http, &node.url, access)).await.status, 401);
    }

    // A fresh grant, without a replay: consent is remembered on every node, so the browser
    // gets a code straight away; prompt=consent asks again and brings a refresh token.
    let again = cluster.auth_url(&b.url, &[("access_type", "offline"), ("prompt", "consent")]);
    let code = consent_at(&browser, &again, &a.url)
        .await
        .redirect_with_code()
        .code();
    let tokens = send(exchange(&http, &b.url, &cluster.app, &code)).await;
    let access = tokens.access_token();
    let refresh_token = tokens.refresh_token();
    let minted = send(refresh(&http, &a.url, &cluster.app, &refresh_token))
        .await
        .access_token();
    let quick = silent_code(&browser, &cluster.auth_url(&a.url, &[])).await;
    send(exchange(&http, &b.url, &cluster.app, &quick))
        .await
        .access_token();

    // Revoked on a, refused on b at once: the refresh token and every access token from it.
    let revoked = send(revoke(&http, &a.url, &refresh_token)).await;
    assert_eq!(
        (revoked.status, revoked.json()),
        (200, serde_json::json!({"status": "success"}))
    );
    send(refresh(&http, &b.url, &cluster.app, &refresh_token))
        .await
        .assert_invalid_grant();
    for token in [&access, &minted] {
        for node in [a, b] {
            let info = send(user_info(&http, &node.url, token)).await;
            assert_eq!(info.status, 401, "{} still opens user info", node.name);
        }
    }
    // An access token revoked on b is refused on a.
    let other = send(exchange(
        &http,
        &a.url,
        &cluster.app,
        &silent_code(&browser, &cluster.auth_url(&b.url, &[])).await,
    ))
    .await
    .access_token();
    assert_eq!(send(user_info(&http, &a.url, &other)).await.status, 200);
    assert_eq!(send(revoke(&http, &b.url, &other)).await.status, 200);
    assert_eq!(send(user_info(&http, &a.url, &other)).await.status, 401);

    // Signing out on a ends the session on b.
    let page = browser.get(&b.at("/account")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let signout = page.form_with("csrf_token");
    let csrf = signout.get("csrf_token").unwrap();
    let out = browser
        .post_form(a.at("/signout"), &[("csrf_token", csrf)])
        .await;
    assert_eq!(out.status, 303, "{}", out.body);
    assert!(browser
        .get(&cluster.auth_url(&b.url, &[]))
        .await
        .is_login_page());
}

// ---- races the database settles ---------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_code_redeemed_on_both_nodes_at_once_succeeds_once() {
    let Some(cluster) = Cluster::start(
        "a_code_redeemed_on_both_nodes_at_once_succeeds_once",
        MANY_CODES,
        2,
    )
    .await
    else {
        return;
    };
    let (browser, _) = consented_browser(&cluster, &[]).await;
    let (a, b) = (cluster.node(0), cluster.node(1));
    let http = Http::new();
    let mut wins = [0; 2];
    for round in 0..200 {
        let code = silent_code(&browser, &cluster.auth_url(&cluster.node(round).url, &[])).await;
        let (on_a, on_b) = tokio::join!(
            send(exchange(&http, &a.url, &cluster.app, &code)),
            send(exchange(&http, &b.url, &cluster.app, &code)),
        );
        let (winner, loser) = match (on_a.status, on_b.status) {
            (200, _) => {
                wins[0] += 1;
                (on_a, on_b)
            }
            (_, 200) => {
                wins[1] += 1;
                (on_b, on_a)
            }
            _ => panic!(
                "round {round}: no success: {} {} / {} {}",
                on_a.status, on_a.body, on_b.status, on_b.body
            ),
        };
        winner.access_token();
        loser.assert_invalid_grant();
    }
    println!("wins per node over 200 rounds: {wins:?}");
    let redeemed = cluster
        .db
        .count("SELECT count(*) FROM grant_codes WHERE redeemed_at IS NOT NULL")
        .await;
    assert_eq!(
        redeemed, 200,
        "each raced code redeemed once; the consent's code never"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_grants_on_both_nodes_keep_twenty_refresh_tokens() {
    let Some(cluster) = Cluster::start(
        "concurrent_grants_on_both_nodes_keep_twenty_refresh_tokens",
        MANY_CODES,
        2,
    )
    .await
    else {
        return;
    };
    let (browser, _) = consented_browser(&cluster, &[]).await;
    let offline = [("access_type", "offline"), ("prompt", "consent")];
    let mut codes = Vec::new();
    for i in 0..40 {
        let url = cluster.auth_url(&cluster.node(i).url, &offline);
        codes.push(
            consent_at(&browser, &url, &cluster.node(i + 1).url)
                .await
                .redirect_with_code()
                .code(),
        );
    }
    let http = Http::new();
    let replies = join_all(
        codes
            .iter()
            .enumerate()
            .map(|(i, code)| send(exchange(&http, &cluster.node(i).url, &cluster.app, code))),
    )
    .await;
    let refresh_tokens: Vec<String> = replies.iter().map(Reply::refresh_token).collect();

    let stored = cluster
        .db
        .count(&format!(
            "SELECT count(*) FROM refresh_tokens WHERE client_id = '{}'",
            cluster.app.id
        ))
        .await;
    assert_eq!(
        stored, 20,
        "refresh tokens stored after 40 concurrent grants"
    );
    let outcomes = join_all(refresh_tokens.iter().enumerate().map(|(i, token)| {
        send(refresh(
            &http,
            &cluster.node(i + 1).url,
            &cluster.app,
            token,
        ))
    }))
    .await;
    let mut working = 0;
    for outcome in &outcomes {
        if outcome.status == 200 {
            working += 1;
        } else {
            outcome.assert_invalid_grant();
        }
    }
    assert_eq!(
        working, 20,
        "working refresh tokens after 40 concurrent grants"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn throttles_count_across_nodes() {
    // The default limits: ten codes per client and ten access tokens per refresh token per
    // ten minutes, five failed logins.
    let Some(cluster) = Cluster::start("throttles_count_across_nodes", "", 2).await else {
        return;
    };
    let http = Http::new();
    let (browser, code) = consented_browser(&cluster, &[("access_type", "offline")]).await;
    let refresh_token = send(exchange(&http, &cluster.node(0).url, &cluster.app, &code))
        .await
        .refresh_token();

    // The exchange minted the first access token of the window; nine more, whichever node.
    let replies = join_all((0..20).map(|i| {
        send(refresh(
            &http,
            &cluster.node(i).url,
            &cluster.app,
            &refresh_token,
        ))
    }))
    .await;
    let minted = replies.iter().filter(|r| r.status == 200).count();
    for reply in replies.iter().filter(|r| r.status != 200) {
        assert_eq!(reply.status, 429, "{}", reply.body);
        assert_eq!(reply.json()["error"], "Access Denied");
        assert!(reply.header("retry-after").is_some());
    }
    assert_eq!(
        minted, 9,
        "access tokens minted by 20 refreshes over two nodes"
    );

    // The consent made the first code of the window; nine more, whichever node.
    let replies = join_all((0..20).map(|i| {
        let (browser, url) = (&browser, cluster.auth_url(&cluster.node(i).url, &[]));
        async move { browser.get(&url).await }
    }))
    .await;
    let mut issued = 0;
    for reply in &replies {
        let location = Url::parse(reply.header("location").unwrap()).unwrap();
        match location
            .query_pairs()
            .find(|(k, _)| k == "code" || k == "error")
        {
            Some((k, _)) if k == "code" => issued += 1,
            Some((_, v)) => assert_eq!(v, "access_denied"),
            None => panic!("neither code nor error: {location}"),
        }
    }
    assert_eq!(issued, 9, "codes issued for 20 requests over two nodes");

    // Five failed logins, alternating nodes, start this address's back-off on every node (the
    // attempts are counted in the shared database before each check).
    cluster.add_user("eve@example.com");
    let eve = Http::browser(&cluster.node(0).url);
    let page = eve.get(cluster.node(0).at("/")).await;
    assert!(page.is_login_page(), "{}", page.body);
    let mut form = page.form_with("email");
    form.set("email", "eve@example.com");
    for i in 0..5 {
        form.set("password", "wrong password");
        let reply = eve.submit(&form.sent_to(&cluster.node(i).url), &[]).await;
        assert!(reply.is_login_page(), "attempt {i}: {}", reply.body);
    }
    form.set("password", PASSWORD);
    for i in 0..2 {
        let reply = eve.submit(&form.sent_to(&cluster.node(i).url), &[]).await;
        assert!(
            reply.is_login_page(),
            "an address in back-off signed in on {}",
            cluster.node(i).name
        );
    }
}

// ---- faults -----------------------------------------------------------------------------------

/// One request of the traffic: which node, and what came back.
#[derive(Debug)]
struct Outcome {
    what: &'static str,
    node: String,
    reply: Result<Reply, String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_connections_fail_fast_and_recover() {
    let Some(cluster) =
        Cluster::start("killed_connections_fail_fast_and_recover", NO_LIMITS, 2).await
    else {
        return;
    };
    let http = Http::new();
    let (browser, code) = consented_browser(&cluster, &[("access_type", "offline")]).await;
    let refresh_token = send(exchange(&http, &cluster.node(0).url, &cluster.app, &code))
        .await
        .refresh_token();
    // Codes to exchange during the faults (they live a minute; the traffic takes seconds).
    let mut codes = Vec::new();
    for i in 0..60 {
        codes.push(silent_code(&browser, &cluster.auth_url(&cluster.node(i).url, &[])).await);
    }
    let codes = Arc::new(Mutex::new(codes));
    let nodes: Vec<(String, String)> = cluster
        .nodes
        .iter()
        .map(|n| (n.name.clone(), n.url.clone()))
        .collect();

    let killing = Arc::new(AtomicBool::new(true));
    let mut tasks = Vec::new();
    for t in 0..4usize {
        let (http, nodes, app, token) = (
            http.clone(),
            nodes.clone(),
            cluster.app.clone(),
            refresh_token.clone(),
        );
        let (codes, killing) = (codes.clone(), killing.clone());
        tasks.push(tokio::spawn(async move {
            let mut outcomes = Vec::new();
            // Until the killing stops, then a little more; bounded either way.
            let mut after = 0;
            for i in 0..3000usize {
                if !killing.load(Ordering::SeqCst) {
                    after += 1;
                    if after > 10 {
                        break;
                    }
                }
                let (name, base) = &nodes[(t + i) % nodes.len()];
                let code = if t == 0 {
                    codes.lock().unwrap().pop()
                } else {
                    None
                };
                let (what, request) = match &code {
                    Some(code) => ("exchange", exchange(&http, base, &app, code)),
                    None => ("refresh", refresh(&http, base, &app, &token)),
                };
                outcomes.push(Outcome {
                    what,
                    node: name.clone(),
                    reply: Reply::of(request).await,
                });
            }
            outcomes
        }));
    }

    let mut admin = cluster.db.admin().await;
    let mut killed = 0;
    let mut pace = tokio::time::interval(Duration::from_millis(150));
    for _ in 0..12 {
        pace.tick().await;
        killed += PgDatabase::terminate_connections(&mut admin, &cluster.db.name).await;
    }
    killing.store(false, Ordering::SeqCst);
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.extend(task.await.unwrap());
    }
    assert!(killed > 0, "no connection was killed");

    let mut acknowledged = Vec::new();
    let mut unavailable = 0;
    for outcome in &outcomes {
        let reply = outcome
            .reply
            .as_ref()
            .unwrap_or_else(|e| panic!("{} on {} failed: {e}", outcome.what, outcome.node));
        if reply.status == 200 {
            acknowledged.push(reply.access_token());
        } else {
            reply.assert_unavailable(&format!("{} on {}", outcome.what, outcome.node));
            unavailable += 1;
        }
        assert!(
            reply.elapsed < FAST,
            "{} on {} took {:?}",
            outcome.what,
            outcome.node,
            reply.elapsed
        );
    }
    println!(
        "{} requests, {unavailable} answered 503, {killed} connections killed",
        outcomes.len()
    );

    // The pools reconnect by themselves: both nodes serve again without a restart.
    for (name, base) in &nodes {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let reply = Reply::of(refresh(&http, base, &cluster.app, &refresh_token)).await;
            if let Some(reply) = reply.ok().filter(|r| r.status == 200) {
                acknowledged.push(reply.access_token());
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{name} did not recover within 20 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    // Every token acknowledged to the client was committed: each one works, on either node.
    let checks = join_all(acknowledged.iter().enumerate().map(|(i, access)| {
        let base = &nodes[i % nodes.len()].1;
        send(user_info(&http, base, access))
    }))
    .await;
    for (access, check) in acknowledged.iter().zip(&checks) {
        assert_eq!(
            check.status,
            200,
            "an acknowledged token does not work ({}…): {}",
            &access[..12],
            check.body
        );
    }
    assert!(
        acknowledged.len() > 20,
        "too little traffic succeeded: {}",
        acknowledged.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unreachable_database_answers_503_fast_then_recovers() {
    let Some(cluster) = Cluster::start(
        "an_unreachable_database_answers_503_fast_then_recovers",
        NO_LIMITS,
        2,
    )
    .await
    else {
        return;
    };
    let http = Http::new();
    let (browser, code) = consented_browser(&cluster, &[("access_type", "offline")]).await;
    let tokens = send(exchange(&http, &cluster.node(0).url, &cluster.app, &code)).await;
    let (access, refresh_token) = (tokens.access_token(), tokens.refresh_token());
    let pending = silent_code(&browser, &cluster.auth_url(&cluster.node(1).url, &[])).await;

    // The database refuses new connections and loses its current ones.
    let mut admin = cluster.db.admin().await;
    let name = &cluster.db.name;
    admin
        .execute(format!("ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS false").as_str())
        .await
        .unwrap();
    PgDatabase::terminate_connections(&mut admin, name).await;

    // Every request at once, so the whole outage stays short (the pending code lives 60 s).
    let mut requests = Vec::new();
    for node in &cluster.nodes {
        let at = |what: &str| format!("{what} on {} while the database is away", node.name);
        requests.push((
            at("refresh"),
            refresh(&http, &node.url, &cluster.app, &refresh_token),
        ));
        requests.push((
            at("exchange"),
            exchange(&http, &node.url, &cluster.app, &pending),
        ));
        requests.push((at("user info"), user_info(&http, &node.url, &access)));
        requests.push((at("revoke"), revoke(&http, &node.url, &access)));
    }
    let pages = join_all(
        cluster
            .nodes
            .iter()
            .map(|node| browser.get(cluster.auth_url(&node.url, &[]))),
    );
    let (replies, pages) = tokio::join!(
        join_all(
            requests
                .into_iter()
                .map(|(what, request)| async move { (what, send(request).await) })
        ),
        pages
    );
    for (what, reply) in &replies {
        reply.assert_unavailable(what);
    }
    // The browser's pages fail as fast, with an HTML page.
    for page in &pages {
        assert_eq!(page.status, 503, "authorize: {}", page.body);
        assert!(page.elapsed < FAST, "authorize took {:?}", page.elapsed);
    }

    admin
        .execute(format!("ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS true").as_str())
        .await
        .unwrap();
    for node in &cluster.nodes {
        let (http, app, token) = (&http, &cluster.app, &refresh_token);
        until(
            Duration::from_secs(20),
            &format!("{} recovers", node.name),
            || async move {
                let reply = Reply::of(refresh(http, &node.url, app, token)).await;
                matches!(reply, Ok(reply) if reply.status == 200).then_some(())
            },
        )
        .await;
        // Nothing was lost or half-done: the old token works, the code is still good once.
        assert_eq!(send(user_info(http, &node.url, &access)).await.status, 200);
    }
    send(exchange(
        &http,
        &cluster.node(1).url,
        &cluster.app,
        &pending,
    ))
    .await
    .access_token();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_held_lock_and_a_full_pool_answer_503_within_the_timeouts() {
    let Some(cluster) = Cluster::start(
        "a_held_lock_and_a_full_pool_answer_503_within_the_timeouts",
        NO_LIMITS,
        1,
    )
    .await
    else {
        return;
    };
    let http = Http::new();
    let node = cluster.node(0);
    let (_, code) = consented_browser(&cluster, &[("access_type", "offline")]).await;
    let refresh_token = send(exchange(&http, &node.url, &cluster.app, &code))
        .await
        .refresh_token();

    // Another session holds the refresh token's row. More requests than the node has
    // connections: those with a connection wait for the lock until PostgreSQL's lock timeout,
    // the rest for a connection until the pool's acquire timeout. None waits longer.
    let mut holder = cluster.db.connect().await;
    holder.execute("BEGIN").await.unwrap();
    holder
        .execute("SELECT id FROM refresh_tokens FOR UPDATE")
        .await
        .unwrap();
    let (holder_pid,): (i32,) = sqlx::query_as("SELECT pg_backend_pid()")
        .fetch_one(&mut holder)
        .await
        .unwrap();
    let pool: usize = NODE_POOL.parse().unwrap();
    let requests = {
        let (http, base, app, token) = (
            http.clone(),
            node.url.clone(),
            cluster.app.clone(),
            refresh_token.clone(),
        );
        tokio::spawn(async move {
            join_all((0..pool + 4).map(|_| send(refresh(&http, &base, &app, &token)))).await
        })
    };
    // Meanwhile the node holds at most GRANTD_DB_POOL_SIZE connections.
    let mut admin = cluster.db.admin().await;
    let mut most = 0;
    let deadline = Instant::now() + Duration::from_secs(4);
    while Instant::now() < deadline && !requests.is_finished() {
        let (open,): (i64,) = sqlx::query_as(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND pid <> $2",
        )
        .bind(&cluster.db.name)
        .bind(holder_pid)
        .fetch_one(&mut admin)
        .await
        .unwrap();
        most = most.max(open);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(most, pool as i64, "connections the node opened");
    for reply in &requests.await.unwrap() {
        reply.assert_unavailable("refresh behind a held row lock");
    }
    holder.execute("ROLLBACK").await.unwrap();
    holder.close().await.unwrap();

    send(refresh(&http, &node.url, &cluster.app, &refresh_token))
        .await
        .access_token();
}

/// A TCP relay between grantd and PostgreSQL that can stall like a network partition: while
/// stalled it delivers nothing and closes nothing (new connections are accepted and left
/// waiting); when healed it delivers what it held, so no byte is lost.
struct Relay {
    address: std::net::SocketAddr,
    stalled: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

impl Relay {
    fn start(upstream: std::net::SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let relay = Relay {
            address: listener.local_addr().unwrap(),
            stalled: Arc::new(AtomicBool::new(false)),
            stop: Arc::new(AtomicBool::new(false)),
        };
        let (stalled, stop) = (relay.stalled.clone(), relay.stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let Ok(server) = std::net::TcpStream::connect(upstream) else {
                            continue;
                        };
                        client.set_nonblocking(false).unwrap();
                        for (from, to) in [
                            (client.try_clone().unwrap(), server.try_clone().unwrap()),
                            (server, client),
                        ] {
                            let (stalled, stop) = (stalled.clone(), stop.clone());
                            std::thread::spawn(move || pump(from, to, &stalled, &stop));
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        relay
    }

    fn stall(&self, stalled: bool) {
        self.stalled.store(stalled, Ordering::SeqCst);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Copies `from` to `to`, holding what it read while the relay is stalled.
fn pump(
    mut from: std::net::TcpStream,
    mut to: std::net::TcpStream,
    stalled: &AtomicBool,
    stop: &AtomicBool,
) {
    use std::io::Read;
    from.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut buffer = [0u8; 16 * 1024];
    while !stop.load(Ordering::SeqCst) {
        match from.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => {
                while stalled.load(Ordering::SeqCst) && !stop.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(10));
                }
                if to.write_all(&buffer[..n]).is_err() {
                    break;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break,
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Both);
    let _ = from.shutdown(std::net::Shutdown::Both);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_partitioned_database_never_hangs_requests() {
    let test = "a_partitioned_database_never_hangs_requests";
    let Some(mut cluster) = Cluster::start(test, NO_LIMITS, 0).await else {
        return;
    };
    // The node reaches PostgreSQL through the relay; the CLI and the test directly.
    let direct = Url::parse(&cluster.db.url()).unwrap();
    let upstream = std::net::ToSocketAddrs::to_socket_addrs(&(
        direct.host_str().unwrap().to_owned(),
        direct.port().unwrap_or(5432),
    ))
    .unwrap()
    .next()
    .unwrap();
    let relay = Relay::start(upstream);
    let mut through = direct.clone();
    through.set_host(Some("127.0.0.1")).unwrap();
    through.set_port(Some(relay.address.port())).unwrap();
    cluster.start_nodes_on(through.as_str(), PUBLIC_URL, 1);
    let http = Http::new();
    let (_, code) = consented_browser(&cluster, &[("access_type", "offline")]).await;
    let base = cluster.node(0).url.clone();
    let refresh_token = send(exchange(&http, &base, &cluster.app, &code))
        .await
        .refresh_token();

    let running = Arc::new(AtomicBool::new(true));
    let answered = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (http, base, app, token) = (
            http.clone(),
            base.clone(),
            cluster.app.clone(),
            refresh_token.clone(),
        );
        let (running, answered) = (running.clone(), answered.clone());
        tasks.push(tokio::spawn(async move {
            let mut replies = Vec::new();
            for _ in 0..2000 {
                if !running.load(Ordering::SeqCst) {
                    break;
                }
                replies.push(Reply::of(refresh(&http, &base, &app, &token)).await);
                answered.fetch_add(1, Ordering::SeqCst);
            }
            replies
        }));
    }
    // Partition the database while requests are in flight, for longer than any request may
    // take, then heal it.
    until(Duration::from_secs(20), "traffic flows", || {
        let answered = answered.clone();
        async move { (answered.load(Ordering::SeqCst) >= 20).then_some(()) }
    })
    .await;
    relay.stall(true);
    tokio::time::sleep(FAST + Duration::from_secs(2)).await;
    relay.stall(false);
    running.store(false, Ordering::SeqCst);
    let mut replies = Vec::new();
    for task in tasks {
        replies.extend(task.await.unwrap());
    }

    let mut acknowledged = Vec::new();
    let mut slow = Vec::new();
    for reply in &replies {
        let reply = reply
            .as_ref()
            .unwrap_or_else(|e| panic!("a refresh failed: {e}"));
        if reply.elapsed >= FAST {
            slow.push((reply.status, reply.elapsed));
        }
        if reply.status == 200 {
            acknowledged.push(reply.access_token());
        } else {
            assert_eq!(reply.status, 503, "{}", reply.body);
            assert_eq!(reply.json()["error"], "temporarily_unavailable");
        }
    }
    assert!(
        slow.is_empty(),
        "{} of {} requests took longer than {FAST:?} during the partition: {slow:?}",
        slow.len(),
        replies.len()
    );
    // After healing, the node serves again and every acknowledged token works.
    let (http_ref, app, token) = (&http, &cluster.app, &refresh_token);
    until(Duration::from_secs(20), "the node recovers", || {
        let base = base.clone();
        async move {
            let reply = Reply::of(refresh(http_ref, &base, app, token)).await;
            matches!(reply, Ok(reply) if reply.status == 200).then_some(())
        }
    })
    .await;
    for access in &acknowledged {
        assert_eq!(send(user_info(&http, &base, access)).await.status, 200);
    }
    drop(relay);
}

// ---- schema and migrations ----------------------------------------------------------------------

/// Table and column names of a migrated SQLite file, without sqlx's bookkeeping.
async fn sqlite_columns(path: &Path) -> Vec<(String, String)> {
    let mut db = SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let mut columns: Vec<(String, String)> = sqlx::query_as(
        "SELECT m.name, c.name FROM sqlite_master m, pragma_table_info(m.name) c
          WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND m.name <> '_sqlx_migrations'",
    )
    .fetch_all(&mut db)
    .await
    .unwrap();
    db.close().await.unwrap();
    columns.sort();
    columns
}

#[tokio::test]
async fn both_backends_migrate_to_the_same_schema() {
    let names = |backend: &str| -> Vec<String> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("crates/store/migrations")
            .join(backend);
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    assert_eq!(names("sqlite"), names("postgres"), "migrations out of step");

    let Some(admin_url) = postgres::server("both_backends_migrate_to_the_same_schema") else {
        return;
    };
    let pg = PgDatabase::create(&admin_url).await;
    succeeded(&["migrate"], &grantd(&pg.url(), None, &["migrate"], None));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("grantd.db");
    let sqlite = format!("sqlite://{}", file.display());
    succeeded(&["migrate"], &grantd(&sqlite, None, &["migrate"], None));

    let mut db = pg.connect().await;
    let mut pg_columns: Vec<(String, String)> = sqlx::query_as(
        "SELECT table_name::text, column_name::text FROM information_schema.columns
          WHERE table_schema = 'public' AND table_name <> '_sqlx_migrations'",
    )
    .fetch_all(&mut db)
    .await
    .unwrap();
    pg_columns.sort();
    let applied = |versions: Vec<(i64,)>| versions.into_iter().map(|(v,)| v).collect::<Vec<_>>();
    let pg_versions = applied(
        sqlx::query_as("SELECT version FROM _sqlx_migrations ORDER BY version")
            .fetch_all(&mut db)
            .await
            .unwrap(),
    );
    db.close().await.unwrap();
    assert_eq!(pg_columns, sqlite_columns(&file).await);
    let mut lite = SqliteConnection::connect(&sqlite).await.unwrap();
    let sqlite_versions = applied(
        sqlx::query_as("SELECT version FROM _sqlx_migrations ORDER BY version")
            .fetch_all(&mut lite)
            .await
            .unwrap(),
    );
    lite.close().await.unwrap();
    assert_eq!(pg_versions, sqlite_versions);
    assert_eq!(pg_versions.len(), names("postgres").len());
}

/// `migrate`, an admin command and `serve` on a database that a newer grantd migrated: each
/// exits non-zero and says the schema is newer.
fn assert_newer_schema_refused(database: &str) {
    for args in [
        &["migrate"][..],
        &["client", "list", "--json"],
        &["serve", "--listen", "127.0.0.1:0"],
    ] {
        let output = grantd(database, None, args, None);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            !output.status.success(),
            "grantd {args:?} ran on a newer schema"
        );
        assert!(
            stderr.contains("newer"),
            "grantd {args:?} did not say why: {stderr}"
        );
        assert!(
            !String::from_utf8_lossy(&output.stdout).contains("listening"),
            "grantd {args:?} started serving"
        );
    }
}

#[tokio::test]
async fn a_schema_newer_than_grantd_is_refused() {
    // SQLite first: no server needed.
    let dir = tempfile::tempdir().unwrap();
    let sqlite = format!("sqlite://{}/grantd.db", dir.path().display());
    succeeded(&["migrate"], &grantd(&sqlite, None, &["migrate"], None));
    let mut lite = SqliteConnection::connect(&sqlite).await.unwrap();
    lite.execute(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
         VALUES (9999, 'from a newer grantd', TRUE, X'00', 0)",
    )
    .await
    .unwrap();
    lite.close().await.unwrap();
    assert_newer_schema_refused(&sqlite);

    let Some(admin_url) =
        postgres::server("a_schema_newer_than_grantd_is_refused (PostgreSQL half)")
    else {
        return;
    };
    let pg = PgDatabase::create(&admin_url).await;
    succeeded(&["migrate"], &grantd(&pg.url(), None, &["migrate"], None));
    let mut db = pg.connect().await;
    db.execute(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
         VALUES (9999, 'from a newer grantd', TRUE, '\\x00', 0)",
    )
    .await
    .unwrap();
    db.close().await.unwrap();
    assert_newer_schema_refused(&pg.url());
}

// ---- nginx as the load balancer ------------------------------------------------------------------

/// The nginx binary, if installed; without it the nginx tests say they are skipped, unless
/// `GRANTD_REQUIRE_NGINX` is set (as in CI), where they fail.
fn nginx(test: &str) -> Option<PathBuf> {
    let found = ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists());
    if found.is_none() {
        assert!(
            std::env::var_os("GRANTD_REQUIRE_NGINX").is_none(),
            "{test}: nginx is not installed and GRANTD_REQUIRE_NGINX is set"
        );
        let _ = writeln!(
            std::io::stderr(),
            "skipped {test}: nginx is not installed (apt-get install nginx-light)"
        );
    }
    found
}

/// docs/nginx.conf for this test: the line marked `# the public address` listens on `port`,
/// the lines marked `# a grantd node` become `nodes`, and nginx runs in the foreground as one
/// process with its files under `prefix`.
fn render_nginx(port: u16, nodes: &[String], prefix: &Path) -> String {
    let doc = include_str!("../docs/nginx.conf");
    let p = prefix.display();
    let mut out = format!(
        "# rendered by tests/multinode.rs from docs/nginx.conf\n\
         daemon off;\nmaster_process off;\npid {p}/nginx.pid;\nerror_log {p}/error.log;\n"
    );
    let (mut listens, mut upstreams, mut http) = (0, 0, 0);
    for line in doc.lines() {
        let directive = !line.trim_start().starts_with('#');
        if directive && line.contains("# the public address") {
            listens += 1;
            out.push_str(&format!("        listen 127.0.0.1:{port};\n"));
        } else if directive && line.contains("# a grantd node") {
            if upstreams == 0 {
                for node in nodes {
                    let address = node.trim_start_matches("http://");
                    out.push_str(&format!(
                        "        server {address} max_fails=1 fail_timeout=10s;\n"
                    ));
                }
            }
            upstreams += 1;
        } else if line.trim_start().starts_with("http {") {
            http += 1;
            out.push_str(line);
            out.push_str(&format!(
                "\n    access_log {p}/access.log;\n    client_body_temp_path {p}/body;\n    \
                 proxy_temp_path {p}/proxy;\n"
            ));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    assert_eq!(
        (listens, http),
        (1, 1),
        "docs/nginx.conf must have one `http {{` and one listen line marked `# the public address`"
    );
    assert!(
        upstreams >= 2,
        "docs/nginx.conf must list its nodes on lines marked `# a grantd node`"
    );
    out
}

/// A port nothing listens on right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn the_nginx_example_configuration_is_valid() {
    let Some(nginx) = nginx("the_nginx_example_configuration_is_valid") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("nginx.conf");
    let nodes = [
        "http://127.0.0.1:18081".to_owned(),
        "http://127.0.0.1:18082".to_owned(),
    ];
    std::fs::write(&conf, render_nginx(free_port(), &nodes, dir.path())).unwrap();
    let output = Command::new(&nginx)
        .arg("-t")
        .arg("-p")
        .arg(dir.path())
        .arg("-e")
        .arg(dir.path().join("error.log"))
        .arg("-c")
        .arg(&conf)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "nginx -t refused docs/nginx.conf: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// nginx in the foreground, killed when dropped.
struct Nginx {
    child: Child,
    url: String,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Nginx {
    /// Starts nginx on `port` in front of `nodes`; `None` if it could not listen there.
    async fn start(binary: &Path, dir: &Path, port: u16, nodes: &[String]) -> Option<Nginx> {
        let conf = dir.join("nginx.conf");
        std::fs::write(&conf, render_nginx(port, nodes, dir)).unwrap();
        let child = Command::new(binary)
            .arg("-p")
            .arg(dir)
            .arg("-e")
            .arg(dir.join("error.log"))
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut nginx = Nginx {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let http = Http::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if nginx.child.try_wait().unwrap().is_some() {
                // Most likely the port was taken in the meantime; the caller tries another.
                return None;
            }
            if let Ok(reply) = Reply::of(http.client.get(format!("{}/healthz", nginx.url))).await {
                if reply.status == 200 {
                    return Some(nginx);
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let log = std::fs::read_to_string(dir.join("error.log")).unwrap_or_default();
        panic!("nginx did not answer within 20 s: {log}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nginx_balances_one_issuer_over_two_nodes() {
    let test = "nginx_balances_one_issuer_over_two_nodes";
    let Some(binary) = nginx(test) else {
        return;
    };
    let Some(mut cluster) = Cluster::start(test, MANY_CODES, 0).await else {
        return;
    };
    // The nodes' public URL is nginx's, so nginx's port is chosen first; should another
    // process take it before nginx listens, try another.
    let mut balancer = None;
    for _ in 0..3 {
        let port = free_port();
        cluster.nodes.clear();
        cluster.start_nodes(&format!("http://127.0.0.1:{port}"), 2);
        let nodes: Vec<String> = cluster.nodes.iter().map(|n| n.url.clone()).collect();
        balancer = Nginx::start(&binary, cluster.dir.path(), port, &nodes).await;
        if balancer.is_some() {
            break;
        }
    }
    let balancer = balancer.expect("nginx could not listen on a free port");
    let lb = balancer.url.as_str();
    let http = Http::new();

    let metadata = http
        .get(format!("{lb}/.well-known/oauth-authorization-server"))
        .await
        .json();
    assert_eq!(metadata["issuer"], lb);
    assert_eq!(metadata["token_endpoint"], format!("{lb}/oauth/v2/token"));

    // The whole flow through the balancer, which spreads it over both nodes.
    let browser = Http::browser(lb);
    let auth = cluster.auth_url(lb, &[("access_type", "offline"), ("state", "via nginx")]);
    let next = sign_in_at(&browser, &auth, lb, EMAIL).await;
    let reply = consent_at(&browser, &format!("{lb}{next}"), lb).await;
    let redirect = reply.redirect_with_code();
    let (code, params) = (redirect.code(), &redirect.params);
    assert!(
        params.contains(&("iss".into(), lb.to_owned())),
        "{params:?}"
    );
    let tokens = send(exchange(&http, lb, &cluster.app, &code)).await;
    let refresh_token = tokens.refresh_token();
    let mut accesses = vec![tokens.access_token()];
    for _ in 0..4 {
        accesses.push(
            send(refresh(&http, lb, &cluster.app, &refresh_token))
                .await
                .access_token(),
        );
    }
    for access in &accesses {
        let info = send(user_info(&http, lb, access)).await;
        assert_eq!(info.status, 200, "{}", info.body);
    }
    for node in &cluster.nodes {
        let served = node
            .log_text()
            .lines()
            .filter(|l| l.contains("/oauth/"))
            .count();
        assert!(served > 0, "nginx sent nothing to {}", node.name);
    }

    // One node goes away: nginx sends everything to the other, POSTs included (a connection
    // refused means the request was never sent, so it is safe to pass on).
    let gone = cluster.nodes.pop().unwrap();
    drop(gone);
    for _ in 0..4 {
        send(refresh(&http, lb, &cluster.app, &refresh_token))
            .await
            .access_token();
    }
    let revoked = send(revoke(&http, lb, &refresh_token)).await;
    assert_eq!(revoked.status, 200, "{}", revoked.body);
    send(refresh(&http, lb, &cluster.app, &refresh_token))
        .await
        .assert_invalid_grant();
    drop(balancer);
}
