//! Data centers (issue 13, CONTRACT.md "Data centers"), in process: two or three test servers
//! on loopback whose settings list each other, with one shared dc secret and one clock. Sign-in
//! asks for the email first and routes it to the user's home DC; the server-to-server API
//! refuses every call that is not signed, fresh and new. (`tests/datacenters.rs` runs the same
//! with real `grantd serve` processes.)

// The helpers below (starting DCs, stepping through pages) fail the test the way a test does,
// by panicking; `allow-unwrap-in-tests` (clippy.toml) reaches `#[test]` functions only.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use reqwest::Url;
use serde_json::{json, Value};
use tokio::net::TcpListener;

use grantd_core::datacenter::{email_key, Peer};
use grantd_core::peer_auth::{self, DcSecret};
use grantd_core::secret::SecretHash;
use grantd_core::{ClientId, ClientType, Dialect, ManualClock, RedirectUri, Timestamp};
use grantd_store::{AccountVerbs, ConsoleVerbs, NewClient};

use super::device;
use crate::{start, Database, Http, Param, Redirect, Reply, TestClient, TestServer, PASSWORD};

const SECRET: &str = "a secret all test data centers share, 32+ bytes long";
const LOGIN_FAILED: &str = "The email address or password is incorrect.";
const LOOKUP: &str = "/dc/v1/users/lookup";

fn secret() -> DcSecret {
    DcSecret::from_file_contents(SECRET.as_bytes()).unwrap()
}

/// Data centers on loopback, each listing all the others, sharing the secret and one clock:
/// those in `up` run; those in `down` are listed but nothing answers at their address.
struct DataCenters {
    servers: BTreeMap<String, TestServer>,
}

impl DataCenters {
    async fn start(up: &[&str], down: &[&str]) -> DataCenters {
        DataCenters::start_at(up, down, Arc::new(ManualClock::default())).await
    }

    async fn start_at(up: &[&str], down: &[&str], clock: Arc<ManualClock>) -> DataCenters {
        let mut listeners = BTreeMap::new();
        let mut peers = BTreeMap::new();
        for location in up.iter().chain(down) {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let peer = Peer {
                accounts: format!("http://{}", listener.local_addr().unwrap()),
                api_domain: format!("https://api.{location}.test.example"),
            };
            peers.insert(location.to_string(), peer);
            // A DC that is down: its port was free a moment ago and is closed now.
            if up.contains(location) {
                listeners.insert(location.to_string(), listener);
            }
        }
        let mut servers = BTreeMap::new();
        for (location, listener) in listeners {
            let database = Database::create(crate::POSTGRES).await;
            let mut others = peers.clone();
            let own = others.remove(&location).unwrap();
            let server = TestServer::start_on(database, listener, clock.clone(), |s| {
                s.location = location.clone();
                s.api_domain = own.api_domain.clone();
                s.datacenters = others;
                s.dc_secret = Some(secret());
            })
            .await;
            servers.insert(location, server);
        }
        DataCenters { servers }
    }

    fn at(&self, location: &str) -> &TestServer {
        &self.servers[location]
    }
}

/// The same client at `dc` too (same id and secret), as a client enabled for another DC is
/// known there.
async fn known_at(dc: &TestServer, client: &TestClient) {
    let new = NewClient {
        id: ClientId::new(client.id.clone()),
        kind: client.kind,
        name: client.name.clone(),
        homepage: Some("https://app.example".into()),
        redirect_uris: (!client.redirect_uri.is_empty())
            .then(|| RedirectUri::from_stored(client.redirect_uri.clone()))
            .into_iter()
            .collect(),
        js_domain: None,
        secret_hash: client.secret.as_deref().map(SecretHash::of),
        owner_id: None,
        dialect: client.dialect,
        introspect_any: false,
        id_token_alg: None,
    };
    dc.store.add_client(&new, dc.now()).await.unwrap();
}

/// Types `email` on the email page and presses Next.
async fn next_with(browser: &Http, page: &Reply, email: &str) -> Reply {
    assert!(page.is_email_page(), "not the email page: {}", page.body);
    let mut form = page.form_with("email");
    form.csrf_token();
    form.set("email", email);
    browser.submit(&form, &[]).await
}

/// Types the password on the password page and signs in.
async fn password_with(browser: &Http, page: &Reply, password: &str) -> Reply {
    assert!(
        page.is_password_page(),
        "not the password page: {}",
        page.body
    );
    let mut form = page.form_with("password");
    form.set("password", password);
    browser.submit(&form, &[]).await
}

/// The page after a 303, fetched like a browser.
async fn follow(browser: &Http, reply: &Reply) -> Reply {
    assert_eq!(reply.status, 303, "{}", reply.body);
    browser.get(reply.location().unwrap()).await
}

fn query(url: &Url) -> BTreeMap<String, String> {
    url.query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

#[tokio::test]
async fn sign_in_asks_for_the_email_then_the_password() {
    skip_without_postgres!();
    let server = start().await;
    let user = server.user("ada@example.com").await;
    let client = server.server_client("https://a.example/cb").await;
    let url = server.auth_url(&client, "ZohoCRM.modules.ALL", &[("state", "s1")]);
    let browser = server.browser();

    let email_page = browser.get(&url).await;
    assert!(email_page.is_email_page(), "{}", email_page.body);
    assert!(email_page.body.contains(">Next<"), "{}", email_page.body);
    let password_page = next_with(&browser, &email_page, &user.email).await;
    assert!(password_page.is_password_page(), "{}", password_page.body);
    assert!(password_page.body.contains(&user.email));
    // The email travels on as a hidden field; only the password is asked.
    let form = password_page.form_with("password");
    assert_eq!(form.get("email"), Some(user.email.as_str()));
    assert!(browser.session().is_none());

    let signed_in = password_with(&browser, &password_page, PASSWORD).await;
    assert_eq!(signed_in.status, 303, "{}", signed_in.body);
    assert!(browser.session().is_some(), "no grantd_session_us");
    let consent = follow(&browser, &signed_in).await;
    assert!(consent.is_consent_page(), "{}", consent.body);
    // The pages name the data center.
    assert!(consent.body.contains(r#"class="location""#));
    assert!(consent.body.contains(">us<"), "{}", consent.body);
}

#[tokio::test]
async fn an_eu_user_starting_at_us_is_sent_to_eu_and_asked_only_the_password_there() {
    skip_without_postgres!();
    let dcs = DataCenters::start(&["us", "eu"], &[]).await;
    let (us, eu) = (dcs.at("us"), dcs.at("eu"));
    let client = us.server_client("https://a.example/cb").await;
    known_at(eu, &client).await;
    let bob = eu.user("bob@example.com").await;
    let url = us.auth_url(
        &client,
        "ZohoCRM.modules.ALL",
        &[("state", "x y&z"), ("access_type", "offline")],
    );
    let browser = us.browser();

    let email_page = browser.get(&url).await;
    let routed = next_with(&browser, &email_page, &bob.email).await;
    assert_eq!(routed.status, 303, "{}", routed.body);
    let target = routed.location().unwrap();
    assert!(
        target
            .as_str()
            .starts_with(&format!("{}/oauth/v2/auth?", eu.url)),
        "{target}"
    );
    // The same request, plus the hint.
    let mut expected = query(&Url::parse(&url).unwrap());
    expected.insert("login_hint".into(), bob.email.clone());
    assert_eq!(query(&target), expected);
    // us remembers where the email lives (by key, never the address).
    let remembered = us
        .count(
            "SELECT count(*) FROM email_homes WHERE location = $1",
            &[Param::Text("eu")],
        )
        .await;
    assert_eq!(remembered, 1);
    assert_eq!(
        us.store
            .email_home(&email_key("bob@example.com"))
            .await
            .unwrap()
            .as_deref(),
        Some("eu")
    );

    // At eu: the password, once; the email is not asked again.
    let at_eu = browser.get(target.clone()).await;
    assert!(at_eu.is_password_page(), "{}", at_eu.body);
    assert!(at_eu.url.as_str().starts_with(&eu.url));
    assert!(at_eu.body.contains(&bob.email));
    assert!(at_eu.body.contains(">eu<"), "the page names eu");
    let signed_in = password_with(&browser, &at_eu, PASSWORD).await;
    assert_eq!(signed_in.status, 303, "{}", signed_in.body);
    assert!(browser.session_in("eu").is_some(), "no grantd_session_eu");
    assert!(browser.session_in("us").is_none(), "a session at us");

    // eu issues the code, under its own name.
    let consent = follow(&browser, &signed_in).await;
    assert!(consent.is_consent_page(), "{}", consent.body);
    let form = consent.form_with("decision");
    let answer = browser.submit(&form, &[("decision", "accept")]).await;
    let redirect = Redirect::from_reply(&answer);
    redirect.code();
    assert_eq!(redirect.param("location"), Some("eu"));
    assert_eq!(redirect.param("accounts-server"), Some(eu.url.as_str()));
    assert_eq!(redirect.param("iss"), Some(eu.url.as_str()));
    assert_eq!(redirect.param("state"), Some("x y&z"));
}

#[tokio::test]
async fn the_console_sign_in_goes_to_the_home_dcs_sign_in_page() {
    skip_without_postgres!();
    let dcs = DataCenters::start(&["us", "eu", "in"], &[]).await;
    let (us, home) = (dcs.at("us"), dcs.at("in"));
    let user = home.user("priya@example.in").await;
    let browser = us.browser();

    let email_page = browser.get(us.at("/")).await;
    let routed = next_with(&browser, &email_page, &user.email).await;
    assert_eq!(
        routed.header("location"),
        Some(format!("{}/?login_hint=priya%40example.in", home.url).as_str())
    );
    let at_home = follow(&browser, &routed).await;
    assert!(at_home.is_password_page(), "{}", at_home.body);
    let signed_in = password_with(&browser, &at_home, PASSWORD).await;
    assert_eq!(signed_in.header("location"), Some("/console"));
    let console = follow(&browser, &signed_in).await;
    assert_eq!(console.status, 200);
    assert!(
        console
            .body
            .contains(r#"<span class="location" title="Data center">in</span>"#),
        "{}",
        console.body
    );
    let account = browser.get(home.at("/account")).await;
    assert!(account.body.contains(r#"title="Data center">in</span>"#));
}

#[tokio::test]
async fn a_login_hint_for_a_local_user_asks_only_the_password() {
    skip_without_postgres!();
    let dcs = DataCenters::start(&["us", "eu"], &[]).await;
    let us = dcs.at("us");
    let user = us.user("ada@example.com").await;
    let client = us.server_client("https://a.example/cb").await;
    let browser = us.browser();
    let hinted = us.auth_url(
        &client,
        "ZohoCRM.modules.ALL",
        &[("login_hint", &user.email)],
    );
    let page = browser.get(&hinted).await;
    assert!(page.is_password_page(), "{}", page.body);
    // Continuing there repeats the request without the hint: "Use another account" starts over.
    let next = page.form_with("password").get("next").unwrap().to_owned();
    assert!(
        next.starts_with("/oauth/v2/auth?") && !next.contains("login_hint"),
        "{next}"
    );
    let signed_in = password_with(&browser, &page, PASSWORD).await;
    assert_eq!(signed_in.status, 303, "{}", signed_in.body);

    let console = us.browser();
    let page = console.get(us.at("/?login_hint=ada%40example.com")).await;
    assert!(page.is_password_page(), "{}", page.body);
    // A hint that is no email is no hint.
    let page = console.get(us.at("/?login_hint=nobody")).await;
    assert!(page.is_email_page(), "{}", page.body);
}

#[tokio::test]
async fn an_email_unknown_everywhere_gets_the_password_page_then_the_generic_failure() {
    skip_without_postgres!();
    let dcs = DataCenters::start(&["us", "eu"], &[]).await;
    let us = dcs.at("us");
    let ada = us.user("ada@example.com").await;
    let client = us.server_client("https://a.example/cb").await;
    let url = us.auth_url(&client, "ZohoCRM.modules.ALL", &[]);

    let failed = |email: &'static str, password: &'static str| {
        let browser = us.browser();
        let url = url.clone();
        async move {
            let page = browser.get(&url).await;
            let asked = next_with(&browser, &page, email).await;
            assert!(asked.is_password_page(), "{email}: {}", asked.body);
            let answer = password_with(&browser, &asked, password).await;
            assert_eq!(answer.status, 200, "{}", answer.body);
            assert!(answer.is_password_page(), "{}", answer.body);
            assert!(answer.body.contains(LOGIN_FAILED), "{}", answer.body);
            assert!(browser.session().is_none());
            (asked, answer)
        }
    };
    let (unknown_asked, unknown) = failed("nobody@example.com", "whatever").await;
    let (known_asked, wrong) = failed("ada@example.com", "wrong password").await;
    // Nothing tells the two apart but the email they show.
    let normalized = |page: &Reply, email: &str| {
        let csrf = page.form_with("email").csrf_token().to_owned();
        page.body.replace(&csrf, "CSRF").replace(email, "EMAIL")
    };
    assert_eq!(
        normalized(&unknown_asked, "nobody@example.com"),
        normalized(&known_asked, &ada.email)
    );
    assert_eq!(
        normalized(&unknown, "nobody@example.com"),
        normalized(&wrong, &ada.email)
    );
    assert_eq!(us.rows("email_homes").await, 0);
}

#[tokio::test]
async fn a_user_whose_home_dc_is_down_is_told_so_and_local_users_still_sign_in() {
    skip_without_postgres!();
    let dcs = DataCenters::start(&["us", "eu"], &["in"]).await;
    let (us, eu) = (dcs.at("us"), dcs.at("eu"));
    let ada = us.user("ada@example.com").await;
    let bob = eu.user("bob@example.com").await;
    let browser = us.browser();
    let email_page = browser.get(us.at("/")).await;
    // Found at eu (with `in` down all along): remembered.
    let routed = next_with(&browser, &email_page, &bob.email).await;
    assert_eq!(routed.status, 303, "{}", routed.body);

    eu.stop().await;
    let email_page = browser.get(us.at("/")).await;
    let refused = next_with(&browser, &email_page, &bob.email).await;
    assert_eq!(refused.status, 503, "{}", refused.body);
    for needle in [
        "data center eu",
        &eu.url,
        "cannot be reached right now",
        "try again later",
    ] {
        assert!(
            refused.body.contains(needle),
            "{needle:?} missing: {}",
            refused.body
        );
    }
    assert!(
        !refused.has_field("password"),
        "a password page for an eu user"
    );

    // An email never found anywhere is still asked for its password.
    let unknown = next_with(&browser, &email_page, "nobody@example.com").await;
    assert!(unknown.is_password_page(), "{}", unknown.body);
    // us serves its own users with eu and in down.
    let local = next_with(&browser, &email_page, &ada.email).await;
    let signed_in = password_with(&browser, &local, PASSWORD).await;
    assert_eq!(signed_in.header("location"), Some("/console"));
    assert!(browser.session_in("us").is_some());
}

// ---- grantd user add ------------------------------------------------------------------------

#[tokio::test]
async fn user_add_refuses_an_email_a_peer_has_and_warns_about_peers_that_do_not_answer() {
    skip_without_postgres!();
    // `grantd` signs with the wall clock, so the peers' clock starts there too.
    let now = grantd_core::Clock::now(&grantd_core::SystemClock);
    // `us` is listed (eu answers only configured DCs) but runs only as the command below.
    let dcs = DataCenters::start_at(&["eu"], &["in", "us"], Arc::new(ManualClock::at(now))).await;
    let eu = dcs.at("eu");
    eu.user("bob@example.com").await;
    // The DC `us` whose database the command writes; the peers as its configuration names them.
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("dc-secret");
    std::fs::write(&secret_file, format!("{SECRET}\n")).unwrap();
    let us = eu.app.settings.datacenters["us"].clone();
    let mut config = format!(
        "location = \"us\"\npublic_url = {:?}\napi_domain = {:?}\ndc_secret_file = {:?}\n",
        us.accounts,
        us.api_domain,
        secret_file.display().to_string()
    );
    // Every DC (one shared list, `us` itself included), eu with its address.
    let mut peers = eu.app.settings.datacenters.clone();
    peers.insert(
        "eu".into(),
        Peer {
            accounts: eu.url.clone(),
            api_domain: eu.app.settings.api_domain.clone(),
        },
    );
    for (location, peer) in &peers {
        config.push_str(&format!(
            "[datacenters.{location}]\naccounts = {:?}\napi_domain = {:?}\n",
            peer.accounts, peer.api_domain
        ));
    }
    let config_path = dir.path().join("us.toml");
    std::fs::write(&config_path, config).unwrap();
    let database = format!("sqlite://{}", dir.path().join("us.db").display());
    // The command waits for its answer while this test's runtime serves eu: off the runtime.
    let add = |email: &str| {
        let (database, config_path) = (database.clone(), config_path.clone());
        let email = email.to_owned();
        tokio::task::spawn_blocking(move || {
            let args = ["user", "add", "--email", &email, "--name", "Someone"];
            crate::node::grantd(&database, Some(&config_path), &args, None)
        })
    };

    let refused = add("bob@example.com").await.unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success(),
        "bob was added at us too: {stderr}"
    );
    assert!(
        stderr.contains("already a user of data center eu") && stderr.contains(&eu.url),
        "{stderr}"
    );

    // `in` does not answer: a warning, and the user is added.
    let added = add("carol@example.com").await.unwrap();
    let stderr = String::from_utf8_lossy(&added.stderr);
    assert!(added.status.success(), "{stderr}");
    assert!(
        stderr.contains("warning: data center in did not answer"),
        "{stderr}"
    );
    assert!(String::from_utf8_lossy(&added.stdout).contains("added user carol@example.com"));
}

// ---- the server-to-server API ------------------------------------------------------------

/// A call to `/dc/v1/...` with these header values (`None`: the header is left out).
struct Call<'a> {
    path: &'static str,
    caller: Option<&'a str>,
    timestamp: Option<String>,
    nonce: Option<String>,
    signature: Option<String>,
    body: String,
}

impl<'a> Call<'a> {
    /// Signed by `caller` at `at` with `secret`, like a peer's.
    fn signed(caller: &'a str, at: Timestamp, secret: &DcSecret, body: &Value) -> Call<'a> {
        Call::signed_to(LOOKUP, caller, at, secret, body)
    }

    fn signed_to(
        path: &'static str,
        caller: &'a str,
        at: Timestamp,
        secret: &DcSecret,
        body: &Value,
    ) -> Call<'a> {
        let body = body.to_string();
        let nonce = peer_auth::new_nonce();
        let signature = peer_auth::sign(secret, "POST", path, at, &nonce, body.as_bytes());
        Call {
            path,
            caller: Some(caller),
            timestamp: Some(at.0.to_string()),
            nonce: Some(nonce),
            signature: Some(signature),
            body,
        }
    }

    async fn send(&self, server: &TestServer) -> Reply {
        let mut request = server
            .http
            .client
            .post(server.at(self.path))
            .header("content-type", "application/json")
            .body(self.body.clone());
        let headers = [
            ("x-grantd-dc", self.caller.map(str::to_owned)),
            ("x-grantd-timestamp", self.timestamp.clone()),
            ("x-grantd-nonce", self.nonce.clone()),
            ("x-grantd-signature", self.signature.clone()),
        ];
        for (name, value) in headers {
            if let Some(value) = value {
                request = request.header(name, value);
            }
        }
        crate::send(request).await
    }
}

fn assert_unauthorized(reply: &Reply, why: &str) {
    let (status, body) = reply.status_and_json();
    assert_eq!(status, 401, "{why}: {body}");
    assert_eq!(body["error"], "unauthorized", "{why}: {body}");
    assert!(body["error_description"].is_string(), "{why}: {body}");
}

#[tokio::test]
async fn the_server_to_server_api_answers_signed_calls_and_refuses_the_rest() {
    skip_without_postgres!();
    let dcs = DataCenters::start(&["us", "eu"], &[]).await;
    let us = dcs.at("us");
    us.user("ada@example.com").await;
    let now = us.now();
    let ada = json!({ "email": "ada@example.com" });

    let good = Call::signed("eu", now, &secret(), &ada);
    let (status, body) = good.send(us).await.status_and_json();
    assert_eq!((status, body), (200, json!({ "known": true })));
    let nobody = Call::signed("eu", now, &secret(), &json!({ "email": "bob@example.com" }));
    assert_eq!(nobody.send(us).await.json(), json!({ "known": false }));

    // The same call again, byte for byte: a replay.
    assert_unauthorized(&good.send(us).await, "replayed nonce");

    let unsigned = Call {
        path: LOOKUP,
        caller: Some("eu"),
        timestamp: None,
        nonce: None,
        signature: None,
        body: ada.to_string(),
    };
    assert_unauthorized(&unsigned.send(us).await, "unsigned");
    let no_signature = Call {
        signature: None,
        ..Call::signed("eu", now, &secret(), &ada)
    };
    assert_unauthorized(&no_signature.send(us).await, "no signature");

    let other_secret = DcSecret::from_file_contents(&[b'z'; 40]).unwrap();
    let wrong = Call::signed("eu", now, &other_secret, &ada);
    assert_unauthorized(&wrong.send(us).await, "wrong signature");

    let stale = Call::signed("eu", now.minus(61), &secret(), &ada);
    assert_unauthorized(&stale.send(us).await, "stale timestamp");
    let future = Call::signed("eu", now.plus(61), &secret(), &ada);
    assert_unauthorized(&future.send(us).await, "future timestamp");
    // Still inside the window: accepted.
    let late = Call::signed("eu", now.minus(60), &secret(), &ada);
    assert_eq!(late.send(us).await.status, 200);

    let tampered = Call {
        body: json!({ "email": "someone@example.com" }).to_string(),
        ..Call::signed("eu", now, &secret(), &ada)
    };
    assert_unauthorized(&tampered.send(us).await, "tampered body");

    let stranger = Call::signed("xx", now, &secret(), &ada);
    assert_unauthorized(&stranger.send(us).await, "not a configured DC");
    let nameless = Call {
        caller: None,
        ..Call::signed("eu", now, &secret(), &ada)
    };
    assert_unauthorized(&nameless.send(us).await, "no caller");

    // A signed call whose body is not a lookup: 400, not a 500.
    let garbage = Call::signed("eu", now, &secret(), &json!(["not", "a", "lookup"]));
    assert_eq!(garbage.send(us).await.status, 400);

    // Much later the replayed nonce is forgotten, and its timestamp is long stale anyway.
    us.clock.advance(3600);
    assert_unauthorized(&good.send(us).await, "replayed an hour later");
}

#[tokio::test]
async fn a_dc_without_a_dc_secret_has_no_server_to_server_api() {
    skip_without_postgres!();
    let server = start().await;
    let call = Call::signed(
        "eu",
        server.now(),
        &secret(),
        &json!({ "email": "ada@example.com" }),
    );
    let reply = call.send(&server).await;
    assert_eq!(reply.status, 404, "{}", reply.body);
}

// ---- the device flow across data centers -------------------------------------------------

const HANDOVER: &str = "/dc/v1/device/handover";

/// At `dc`'s verification page, a signed-out browser types the code, then `email` on the
/// email step; the answer to that.
async fn device_email_step(dc: &TestServer, browser: &Http, user_code: &str, email: &str) -> Reply {
    let page = device::enter_code(dc, browser, user_code).await;
    assert!(
        page.has_field("email") && !page.has_field("password"),
        "the email step first: {}",
        page.body
    );
    let mut form = page.form_with("email");
    form.csrf_token();
    form.set("email", email);
    browser.submit(&form, &[]).await
}

/// CONTRACT.md "Device flow": a user homed elsewhere makes the poll answer `other_dc` with
/// `user_location`, and the device then polls that DC, with the code it has; the user signs
/// in and answers there, once.
#[tokio::test]
async fn a_device_begun_at_us_is_approved_and_polled_at_the_users_home() {
    skip_without_postgres!();
    let dcs = DataCenters::start(&["us", "eu"], &[]).await;
    let (us, eu) = (dcs.at("us"), dcs.at("eu"));
    let eve = eu.user("eve@example.eu").await;
    let tv = device::tv(us, Dialect::Zoho).await;
    known_at(eu, &tv).await;
    let codes = device::zoho_codes(us, &tv, "offline").await;

    let browser = us.browser();
    let sent = device_email_step(us, &browser, &codes.user_code, &eve.email).await;
    assert_eq!(sent.status, 303, "{}", sent.body);
    let there = sent.location().unwrap();
    assert_eq!(there.origin(), Url::parse(&eu.url).unwrap().origin());
    assert_eq!(there.path(), "/oauth/v3/device");
    let query: BTreeMap<String, String> = there.query_pairs().into_owned().collect();
    assert_eq!(query["user_code"], codes.user_code);
    assert_eq!(query["login_hint"], eve.email);

    // The device is told where to poll; there, the authorization waits for the user.
    let moved = device::zoho_poll(us, &tv, &codes.device_code).await;
    device::assert_poll_error(&moved, Dialect::Zoho, "other_dc");
    assert_eq!(moved.json()["user_location"], "eu", "{}", moved.body);
    let waiting = device::zoho_poll(eu, &tv, &codes.device_code).await;
    device::assert_poll_error(&waiting, Dialect::Zoho, "authorization_pending");

    // At eu: the password for that email, once, then the consent page with the same code.
    let page = browser.get(there.as_str()).await;
    assert!(page.is_password_page(), "{}", page.body);
    assert!(device::says(&page, &eve.email), "{}", page.body);
    let signed_in = password_with(&browser, &page, PASSWORD).await;
    let consent = browser.get(signed_in.location().unwrap().as_str()).await;
    assert!(consent.is_consent_page(), "{}", consent.body);
    assert!(device::says(&consent, &codes.user_code), "{}", consent.body);
    let form = consent.form_with("decision");
    let done = browser.submit(&form, &[("decision", "accept")]).await;
    assert!(
        device::says(&done, "You can return to your device"),
        "{}",
        done.body
    );

    us.clock.advance(60);
    let reply = device::zoho_poll(eu, &tv, &codes.device_code).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let tokens = reply.json();
    assert_eq!(
        tokens["api_domain"], "https://api.eu.test.example",
        "{tokens}"
    );
    assert!(tokens["refresh_token"].is_string(), "{tokens}");
    let access = tokens["access_token"].as_str().unwrap();
    assert!(eu.access_works(access).await, "{tokens}");
    assert!(!us.access_works(access).await, "{tokens}");
    // us still sends the device to eu; the code is used up there.
    device::assert_poll_error(
        &device::zoho_poll(us, &tv, &codes.device_code).await,
        Dialect::Zoho,
        "other_dc",
    );
    us.clock.advance(60);
    let again = device::zoho_poll(eu, &tv, &codes.device_code).await;
    assert!(again.json()["access_token"].is_null(), "{}", again.body);
}

/// A client that is not enabled at the user's home cannot be handed over: the user is told so,
/// and the device keeps waiting here (another user of this DC may still answer it).
#[tokio::test]
async fn a_device_of_a_client_not_enabled_at_the_users_home_stays_here() {
    skip_without_postgres!();
    let dcs = DataCenters::start(&["us", "eu"], &[]).await;
    let (us, eu) = (dcs.at("us"), dcs.at("eu"));
    let eve = eu.user("eve@example.eu").await;
    let tv = device::tv(us, Dialect::Zoho).await;
    let codes = device::zoho_codes(us, &tv, "online").await;

    let browser = us.browser();
    let refused = device_email_step(us, &browser, &codes.user_code, &eve.email).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(device::says(&refused, "data center eu"), "{}", refused.body);
    assert!(device::says(&refused, "not available"), "{}", refused.body);
    let poll = device::zoho_poll(us, &tv, &codes.device_code).await;
    device::assert_poll_error(&poll, Dialect::Zoho, "authorization_pending");
    let there = device::zoho_poll(eu, &tv, &codes.device_code).await;
    assert!(there.json()["access_token"].is_null(), "{}", there.body);
}

/// The handover endpoint stores a code once: a second call (a replay at another node of the
/// same DC would be one) changes nothing, and unsigned calls are refused like any s2s call.
#[tokio::test]
async fn the_device_handover_is_signed_and_stores_a_code_once() {
    skip_without_postgres!();
    let dcs = DataCenters::start(&["us", "eu"], &[]).await;
    let eu = dcs.at("eu");
    let tv = device::tv(eu, Dialect::Zoho).await;
    let now = eu.now();
    let handover = json!({
        "device_code_hash": SecretHash::of("1000.device-code").to_hex(),
        "user_code_hash": SecretHash::of("BCDFGHJK").to_hex(),
        "client_id": tv.id,
        "scopes": device::SCOPE.replace(',', " "),
        "offline": true,
        "interval_secs": 30,
        "expires_at": now.plus(300).0,
    });
    let result = |reply: Reply| {
        assert_eq!(reply.status, 200, "{}", reply.body);
        reply.json()["result"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    let first = Call::signed_to(HANDOVER, "us", now, &secret(), &handover);
    assert_eq!(result(first.send(eu).await), "accepted");
    let second = Call::signed_to(HANDOVER, "us", now, &secret(), &handover);
    assert_eq!(result(second.send(eu).await), "conflict");
    let unsigned = Call {
        signature: None,
        ..Call::signed_to(HANDOVER, "us", now, &secret(), &handover)
    };
    assert_unauthorized(&unsigned.send(eu).await, "unsigned handover");

    // Each refusal by name; nothing is stored for them.
    let refusals = [
        ("client_id", json!("1000.NOBODY"), "client_not_enabled"),
        ("scopes", json!("Nobody.has.THIS"), "unknown_scope"),
        ("expires_at", json!(now.0), "expired"),
    ];
    for (i, (field, value, expected)) in refusals.into_iter().enumerate() {
        let mut body = handover.clone();
        body[field] = value;
        body["device_code_hash"] = json!(SecretHash::of(&format!("other {i}")).to_hex());
        body["user_code_hash"] = json!(SecretHash::of(&format!("OTHER{i}")).to_hex());
        let call = Call::signed_to(HANDOVER, "us", now, &secret(), &body);
        assert_eq!(result(call.send(eu).await), expected, "{field}");
    }
    let mut malformed = handover.clone();
    malformed["user_code_hash"] = json!("not hex");
    let call = Call::signed_to(HANDOVER, "us", now, &secret(), &malformed);
    assert_eq!(call.send(eu).await.status, 400);
    // A browser client may not use the device flow: not taken.
    let web = eu
        .client(
            ClientType::Server,
            &["https://app.example/cb"],
            Dialect::Zoho,
            None,
        )
        .await;
    let mut browser_client = handover.clone();
    browser_client["client_id"] = json!(web.id);
    browser_client["device_code_hash"] = json!(SecretHash::of("web").to_hex());
    let call = Call::signed_to(HANDOVER, "us", now, &secret(), &browser_client);
    assert_eq!(result(call.send(eu).await), "client_not_enabled");
}
