//! Data centers (issue 13, CONTRACT.md "Data centers") end to end: three real `grantd serve`
//! processes, us, eu and in, on 127.0.0.1, each with its own database and a configuration that
//! lists all three, sharing one dc secret (tests/support/datacenters.rs). One browser (cookies
//! per host, whatever the port, as real browsers keep them) and one client backend talk HTTP to
//! them:
//!
//! - every DC's `/oauth/serverinfo` lists all three;
//! - an eu user starting at us gives the email at us, is sent to eu, gives the password there
//!   once, consents, and the client gets eu's code, `location`, `accounts-server` and `iss`;
//! - eu's code and tokens work at eu (with eu's `api_domain`) and are refused at us with a
//!   description naming eu and its accounts server;
//! - a client registered at us and enabled for eu with a secret of its own works at eu with
//!   that secret only, is refused at in, and is refused at eu soon after `disable-dc`; a
//!   rotated home secret is in force at eu within seconds;
//! - with eu killed, us still serves its own users, and names eu to an eu user;
//! - the server-to-server API refuses unsigned, wrongly signed, stale and replayed requests;
//! - `grantd user add` refuses an email another DC has;
//! - Zoho's Python SDK (`zohocrmsdk8-0`) exchanges a code and refreshes at eu;
//! - a client registered at us with `--id-token-alg EdDSA` gets EdDSA ID tokens at eu too.
//!
//! Every scenario runs on SQLite (`sqlite::...`) and on PostgreSQL (`postgres::...`, each DC a
//! fresh database of its own; skipped, with a note, without `GRANTD_TEST_POSTGRES`). Nothing
//! sleeps for a fixed time: waits poll with a deadline.

// `allow-unwrap-in-tests` (clippy.toml) covers the `#[test]` functions only; the scenarios and
// their helpers fail the test the same way.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::Command;
use std::time::Instant;

use reqwest::Url;
use serde_json::{json, Value};

use grantd_core::{ClientType, Dialect};
use support::datacenters::{Backend, Dc, S2s, Trio, LOCATIONS, PROPAGATION};
use support::http::{send, until, Http, Redirect, Reply};
use support::node::{consent_at, exchange, refresh, user_info, FAST, REDIRECT_URI};
use support::oauth::{auth_url, unknown_token, TestClient, Wire, PASSWORD};

/// The built-in profile scope, so tokens open `/oauth/user/info`.
const SCOPE: &str = "AaaServer.profile.READ";
const STATE: &str = "dc state/ä";
const US_USER: &str = "ada@us.example";
const EU_USER: &str = "emmy@eu.example";

/// Runs each scenario `name(backend, test)` as `sqlite::name` and `postgres::name`; attributes
/// given before a name apply to both.
macro_rules! on_both_backends {
    ($($(#[$attr:meta])* $name:ident,)*) => {
        mod sqlite {
            $(
                $(#[$attr])*
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Backend::Sqlite, concat!("sqlite::", stringify!($name)))
                        .await
                }
            )*
        }
        mod postgres {
            $(
                $(#[$attr])*
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(
                        super::Backend::Postgres,
                        concat!("postgres::", stringify!($name)),
                    )
                    .await
                }
            )*
        }
    };
}

on_both_backends! {
    serverinfo_lists_every_data_center,
    an_eu_user_starting_at_us_signs_in_once_at_eu,
    codes_and_tokens_work_only_where_they_were_issued,
    a_client_enabled_with_its_own_secret_works_there_only_until_disabled,
    a_rotated_home_secret_reaches_eu_within_seconds,
    with_eu_down_us_serves_its_users_and_names_eu_to_eu_users,
    the_server_to_server_api_refuses_what_is_not_signed_now_once,
    user_add_refuses_an_email_another_data_center_has,
    zoho_python_sdk_exchanges_and_refreshes_at_eu,
    a_device_begun_at_us_is_approved_and_polled_at_eu,
    a_clients_id_token_algorithm_is_the_same_at_every_data_center,
}

// ---- the scenarios -------------------------------------------------------------------------------

async fn serverinfo_lists_every_data_center(backend: Backend, test: &str) {
    let Some(trio) = Trio::start(backend, test).await else {
        return;
    };
    let expected: serde_json::Map<String, Value> = trio
        .dcs
        .iter()
        .map(|dc| (dc.location.to_owned(), json!(dc.url)))
        .collect();
    assert_eq!(expected.len(), LOCATIONS.len());
    let http = Http::new();
    for dc in &trio.dcs {
        let reply = http.get(dc.at("/oauth/serverinfo")).await;
        assert_eq!(
            reply.status_and_json(),
            (200, json!({"result": "success", "locations": expected})),
            "at {}",
            dc.location
        );
    }
}

async fn an_eu_user_starting_at_us_signs_in_once_at_eu(backend: Backend, test: &str) {
    let Some(trio) = Trio::start(backend, test).await else {
        return;
    };
    trio.eu().add_user(EU_USER);
    let (client, _) = enabled_at_eu(&trio, false).await;
    let (browser, redirect) = routed_to_eu(&trio, &client).await;
    let eu = trio.eu();
    assert_eq!(redirect.param("location"), Some("eu"), "{}", redirect.raw);
    assert_eq!(
        redirect.param("accounts-server"),
        Some(eu.url.as_str()),
        "{}",
        redirect.raw
    );
    assert_eq!(
        redirect.param("iss"),
        Some(eu.url.as_str()),
        "{}",
        redirect.raw
    );
    assert_eq!(redirect.param("state"), Some(STATE), "{}", redirect.raw);
    // Signed in at eu only: its session cookie, named for its location, and none of us's.
    assert!(browser.cookie("grantd_session_eu").is_some());
    assert!(browser.cookie("grantd_session_us").is_none());
}

async fn codes_and_tokens_work_only_where_they_were_issued(backend: Backend, test: &str) {
    let Some(trio) = Trio::start(backend, test).await else {
        return;
    };
    let (us, eu) = (trio.us(), trio.eu());
    eu.add_user(EU_USER);
    let (client, at_eu) = enabled_at_eu(&trio, false).await;
    let code = routed_to_eu(&trio, &client).await.1.code();
    let http = Http::new();

    // At us the client is at home and authenticates; the code is eu's. Refused, unspent.
    let wrong = send(exchange(&http, &us.url, &client, &code)).await;
    wrong.assert_error(Dialect::Standard, Wire::InvalidGrant);
    assert_issued_by(&wrong, "grant code", eu);

    let tokens = send(exchange(&http, &eu.url, &at_eu, &code)).await;
    let body = token_response(&tokens, eu);
    let access = body["access_token"].as_str().unwrap().to_owned();
    let refresh_token = body["refresh_token"].as_str().unwrap().to_owned();
    assert_profile(&http, eu, &access, EU_USER).await;

    let info = send(user_info(&http, &us.url, &access)).await;
    assert_eq!(info.status, 401, "eu's access token at us: {}", info.body);
    assert_eq!(info.json()["error"], "invalid_token", "{}", info.body);
    assert_issued_by(&info, "access token", eu);

    let refused = send(refresh(&http, &us.url, &client, &refresh_token)).await;
    refused.assert_error(Dialect::Standard, Wire::InvalidGrant);
    assert_issued_by(&refused, "refresh token", eu);

    // Nothing at us touched them: they still work at eu.
    let refreshed = send(refresh(&http, &eu.url, &at_eu, &refresh_token)).await;
    let access = token_response(&refreshed, eu)["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_profile(&http, eu, &access, EU_USER).await;
}

async fn a_client_enabled_with_its_own_secret_works_there_only_until_disabled(
    backend: Backend,
    test: &str,
) {
    let Some(trio) = Trio::start(backend, test).await else {
        return;
    };
    let (us, eu, india) = (trio.us(), trio.eu(), trio.india());
    eu.add_user(EU_USER);
    let (client, at_eu) = enabled_at_eu(&trio, true).await;
    let http = Http::new();

    // The home secret is not eu's; the code stays unspent for the right one.
    let browser = Http::browser(&eu.url);
    let code = sign_in_at_home(&browser, eu, &auth(eu, &client), EU_USER)
        .await
        .code();
    let home_secret = send(exchange(&http, &eu.url, &client, &code)).await;
    home_secret.assert_error(Dialect::Standard, Wire::InvalidClient);
    let tokens = send(exchange(&http, &eu.url, &at_eu, &code)).await;
    let body = token_response(&tokens, eu);
    let access = body["access_token"].as_str().unwrap().to_owned();
    let refresh_token = body["refresh_token"].as_str().unwrap().to_owned();
    assert_profile(&http, eu, &access, EU_USER).await;
    // eu's secret is not the home secret either.
    let at_us = send(exchange(&http, &us.url, &at_eu, &unknown_token())).await;
    at_us.assert_error(Dialect::Standard, Wire::InvalidClient);

    // in never had it enabled: refused, saying so, with either secret.
    for (secret, which) in [(&client, "home secret"), (&at_eu, "eu's secret")] {
        let what = format!("in to refuse the client ({which}) as not enabled there");
        until(PROPAGATION, &what, || {
            let request = exchange(&http, &india.url, secret, &unknown_token());
            async move { not_enabled(&send(request).await, "in").then_some(()) }
        })
        .await;
    }

    us.disable_dc(&client, "eu");
    let disabled = Instant::now();
    until(PROPAGATION, "eu to refuse the disabled client", || {
        let request = refresh(&http, &eu.url, &at_eu, &refresh_token);
        async move { not_enabled(&send(request).await, "eu").then_some(()) }
    })
    .await;
    eprintln!(
        "disable-dc took effect at eu after {:?}",
        disabled.elapsed()
    );
    // Its tokens at eu went with it.
    until(
        PROPAGATION,
        "eu to refuse the disabled client's access token",
        || {
            let request = user_info(&http, &eu.url, &access);
            async move { (send(request).await.status == 401).then_some(()) }
        },
    )
    .await;
}

async fn a_rotated_home_secret_reaches_eu_within_seconds(backend: Backend, test: &str) {
    let Some(trio) = Trio::start(backend, test).await else {
        return;
    };
    let (client, _) = enabled_at_eu(&trio, false).await;
    let args = ["client", "rotate-secret", &client.id, "--json"];
    let rotated: Value = serde_json::from_str(trio.us().admin(&args).trim()).unwrap();
    let mut new = client.clone();
    new.secret = Some(rotated["client_secret"].as_str().unwrap().to_owned());
    let http = Http::new();
    let eu = trio.eu();
    let rotated_at = Instant::now();
    until(PROPAGATION, "eu to take the new secret only", || {
        let old_secret = exchange(&http, &eu.url, &client, &unknown_token());
        let new_secret = exchange(&http, &eu.url, &new, &unknown_token());
        async move {
            let (old_secret, new_secret) = (send(old_secret).await, send(new_secret).await);
            let refused =
                old_secret.status == 401 && old_secret.json()["error"] == "invalid_client";
            let taken = new_secret.status == 400 && new_secret.json()["error"] == "invalid_grant";
            (refused && taken).then_some(())
        }
    })
    .await;
    eprintln!(
        "the rotated secret was in force at eu after {:?}",
        rotated_at.elapsed()
    );
}

async fn with_eu_down_us_serves_its_users_and_names_eu_to_eu_users(backend: Backend, test: &str) {
    let Some(mut trio) = Trio::start(backend, test).await else {
        return;
    };
    trio.us().add_user(US_USER);
    trio.eu().add_user(EU_USER);
    let (client, _) = enabled_at_eu(&trio, false).await;
    // us learns where the eu user lives by sending them there.
    {
        let browser = Http::browser(&trio.us().url);
        let page = browser.get(&auth(trio.us(), &client)).await;
        let routed = enter_email(&browser, &page, EU_USER).await;
        assert_eq!(routed.status, 303, "{}", routed.body);
        assert_origin(&routed.location().unwrap(), trio.eu());
    }
    let eu_url = trio.eu().url.clone();
    trio.kill("eu");
    let (us, eu_gone) = (trio.us(), &eu_url);

    // A us user, end to end at us, as fast as ever.
    let http = Http::new();
    let browser = Http::browser(&us.url);
    let code = sign_in_at_home(&browser, us, &auth(us, &client), US_USER)
        .await
        .code();
    let tokens = send(exchange(&http, &us.url, &client, &code)).await;
    let access = token_response(&tokens, us)["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_profile(&http, us, &access, US_USER).await;

    // The eu user at us: an error page naming eu, at once; no password asked.
    let browser = Http::browser(&us.url);
    let page = browser.get(&auth(us, &client)).await;
    let reply = enter_email(&browser, &page, EU_USER).await;
    assert_eq!(reply.status, 503, "{}", reply.body);
    assert!(
        reply
            .header("content-type")
            .unwrap_or_default()
            .starts_with("text/html"),
        "{:?}",
        reply.header("content-type")
    );
    assert!(!reply.has_field("password"), "{}", reply.body);
    let text = reply.body.to_lowercase();
    assert!(text.contains("data center eu"), "{}", reply.body);
    assert!(reply.body.contains(eu_gone.as_str()), "{}", reply.body);
    assert!(text.contains("try again later"), "{}", reply.body);

    // An email nobody knows (and nobody remembers) gets the password page, as ever.
    let page = browser.get(&auth(us, &client)).await;
    let reply = enter_email(&browser, &page, "nobody@nowhere.example").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply.has_field("password"), "{}", reply.body);
}

async fn the_server_to_server_api_refuses_what_is_not_signed_now_once(
    backend: Backend,
    test: &str,
) {
    let Some(trio) = Trio::start(backend, test).await else {
        return;
    };
    let us = trio.us();
    us.add_user(US_USER);
    let http = Http::new();
    let secret = trio.secret.as_slice();

    let unsigned = S2s::lookup("in", US_USER);
    assert_unauthorized(&send(unsigned.request(&http, us, None)).await, "unsigned");

    let other_key = S2s::lookup("in", US_USER);
    let signature = other_key.signature(b"another secret, also at least 32 bytes long");
    let reply = send(other_key.request(&http, us, Some(&signature))).await;
    assert_unauthorized(&reply, "signed with another secret");

    let mut tampered = S2s::lookup("in", US_USER);
    let signature = tampered.signature(secret);
    tampered.body = serde_json::to_vec(&json!({"email": "someone@else.example"})).unwrap();
    let reply = send(tampered.request(&http, us, Some(&signature))).await;
    assert_unauthorized(&reply, "a body changed after signing");

    let stranger = S2s::lookup("xx", US_USER);
    let reply = send(stranger.request(&http, us, Some(&stranger.signature(secret)))).await;
    assert_unauthorized(&reply, "signed, from a DC that is not configured");

    for (skew, what) in [(-120, "120 s old"), (120, "120 s ahead")] {
        let mut stale = S2s::lookup("in", US_USER);
        stale.timestamp += skew;
        let signature = stale.signature(secret);
        let reply = send(stale.request(&http, us, Some(&signature))).await;
        assert_unauthorized(&reply, what);
    }

    let fresh = S2s::lookup("in", US_USER);
    let signature = fresh.signature(secret);
    let reply = send(fresh.request(&http, us, Some(&signature))).await;
    assert_eq!(reply.status_and_json(), (200, json!({"known": true})));
    let unknown = S2s::lookup("in", "nobody@nowhere.example");
    let reply = send(unknown.request(&http, us, Some(&unknown.signature(secret)))).await;
    assert_eq!(reply.status_and_json(), (200, json!({"known": false})));

    // The same request, byte for byte, once more.
    let replayed = send(fresh.request(&http, us, Some(&signature))).await;
    assert_unauthorized(&replayed, "replayed");
}

async fn user_add_refuses_an_email_another_data_center_has(backend: Backend, test: &str) {
    let Some(trio) = Trio::start(backend, test).await else {
        return;
    };
    trio.eu().add_user(EU_USER);
    let args = [
        "user",
        "add",
        "--email",
        EU_USER,
        "--name",
        "Emmy Noether",
        "--password-stdin",
    ];
    let output = trio.us().grantd(&args, Some(&format!("{PASSWORD}\n")));
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    // Naming the DC that has it (beyond the address, which has "eu" in it too).
    let stderr = String::from_utf8_lossy(&output.stderr).replace(EU_USER, "");
    assert!(stderr.contains("eu"), "{stderr}");
    // Refused at in too, whichever peer has it.
    let output = trio.india().grantd(&args, Some(&format!("{PASSWORD}\n")));
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr).replace(EU_USER, "");
    assert!(stderr.contains("eu"), "{stderr}");
    // An email nobody has is added.
    trio.us().add_user(US_USER);
}

async fn zoho_python_sdk_exchanges_and_refreshes_at_eu(backend: Backend, test: &str) {
    if !zoho_sdk_importable(test) {
        return;
    }
    let Some(trio) = Trio::start(backend, test).await else {
        return;
    };
    let eu = trio.eu();
    eu.add_user(EU_USER);
    let (client, at_eu) = enabled_at_eu(&trio, false).await;
    let browser = Http::browser(&eu.url);
    let code = sign_in_at_home(&browser, eu, &auth(eu, &client), EU_USER)
        .await
        .code();

    let work = tempfile::tempdir().unwrap();
    let mut python = Command::new("python3");
    python
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/zoho_sdk/exchange_and_refresh.py"
        ))
        .args(["--accounts", &eu.url, "--api-domain", &eu.api_domain])
        .args(["--client-id", &at_eu.id, "--client-secret", at_eu.secret()])
        .args(["--redirect-uri", REDIRECT_URI, "--code", &code])
        .arg("--work")
        .arg(work.path());
    let output = support::node::run(python, &["(the Zoho SDK script)"], None);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let sdk_log = std::fs::read_to_string(work.path().join("sdk.log")).unwrap_or_default();
    assert!(
        output.status.success(),
        "the SDK failed: {stdout}\n{}\nSDK log:\n{sdk_log}",
        String::from_utf8_lossy(&output.stderr)
    );
    let result: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(result["token_url"], eu.at("/oauth/v2/token"), "{result}");
    let (exchanged, refreshed) = (&result["exchange"], &result["refresh"]);
    for row in [exchanged, refreshed] {
        assert_eq!(row["client_id"], client.id.as_str(), "{result}");
        assert_eq!(row["api_domain"], eu.api_domain.as_str(), "{result}");
        let access = row["access_token"].as_str().unwrap();
        assert_profile(&Http::new(), eu, access, EU_USER).await;
    }
    assert_ne!(
        exchanged["access_token"], refreshed["access_token"],
        "{result}"
    );
    // A confidential client keeps its refresh token.
    assert_eq!(
        exchanged["refresh_token"], refreshed["refresh_token"],
        "{result}"
    );
}

/// A client's ID-token algorithm travels with it (`SharedClient`'s
/// `id_token_signed_response_alg`): registered at us with EdDSA, it gets EdDSA ID tokens at eu,
/// signed with eu's own key, from the code exchange and from a refresh.
async fn a_clients_id_token_algorithm_is_the_same_at_every_data_center(
    backend: Backend,
    test: &str,
) {
    let Some(trio) = Trio::start(backend, test).await else {
        return;
    };
    let eu = trio.eu();
    eu.add_user(EU_USER);
    let client = trio.us().add_client(
        ClientType::Server,
        "EdDSA app",
        &["--id-token-alg", "EdDSA"],
    );
    let shown: Value = serde_json::from_str(
        trio.us()
            .admin(&["client", "show", &client.id, "--json"])
            .trim(),
    )
    .unwrap();
    assert_eq!(shown["id_token_alg"], "EdDSA", "{shown}");
    let (client, at_eu) = known_at_eu(&trio, client, false).await;
    let code = routed_to_eu_for(&trio, &client, "email openid")
        .await
        .1
        .code();
    let http = Http::new();
    let tokens = send(exchange(&http, &eu.url, &at_eu, &code)).await;
    let body = token_response(&tokens, eu);
    let kid = assert_eddsa_from(&http, eu, &at_eu, &body).await;

    let refresh_token = body["refresh_token"].as_str().unwrap();
    let refreshed = send(refresh(&http, &eu.url, &at_eu, refresh_token)).await;
    let body = token_response(&refreshed, eu);
    assert_eq!(assert_eddsa_from(&http, eu, &at_eu, &body).await, kid);
}

/// The response's ID token is EdDSA and verifies with the key `dc` publishes under its `kid`;
/// returns the `kid`.
async fn assert_eddsa_from(http: &Http, dc: &Dc, client: &TestClient, body: &Value) -> String {
    let id_token = body["id_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no id_token: {body}"));
    let header = jsonwebtoken::decode_header(id_token).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::EdDSA);
    let kid = header.kid.unwrap();
    let reply = http.get(dc.at("/oauth/v2/keys")).await;
    let keys: jsonwebtoken::jwk::JwkSet = serde_json::from_str(&reply.body).unwrap();
    let jwk = keys
        .find(&kid)
        .unwrap_or_else(|| panic!("{kid} is not published at {}", dc.location));
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
    validation.set_audience(&[&client.id]);
    validation.set_issuer(&[&dc.url]);
    // The nodes run on the machine's clock, so expiry is checked as a relying party would.
    let claims = jsonwebtoken::decode::<Value>(id_token, &key, &validation)
        .unwrap_or_else(|e| panic!("the ID token does not verify: {e}"))
        .claims;
    assert_eq!(claims["email"], EU_USER, "{claims}");
    kid
}

// ---- helpers -------------------------------------------------------------------------------------

/// `/oauth/v2/auth` at `dc` for `client`, offline (a refresh token), with [`STATE`].
/// CONTRACT.md "Device flow": a TV registered at us (and enabled at eu) asks us for codes; the
/// eu user types the code at us, gives the email there, and is sent to eu's verification page
/// (the authorization handed over), signs in and approves there; the device, told `other_dc`
/// by us, polls eu with the code it has and gets eu's tokens.
async fn a_device_begun_at_us_is_approved_and_polled_at_eu(backend: Backend, test: &str) {
    let Some(trio) = Trio::start(backend, test).await else {
        return;
    };
    let (us, eu) = (trio.us(), trio.eu());
    eu.add_user(EU_USER);
    let tv = us.add_client(ClientType::NonBrowser, "TV app", &[]);
    us.enable_dc(&tv, "eu", false);
    let http = Http::new();
    // Zoho's docs put the parameters in the query string.
    let zoho = |dc: &Dc, path: &str, params: Vec<(&'static str, String)>| {
        http.client.post(format!("{}{path}", dc.url)).query(&params)
    };
    let poll = |dc: &Dc, device_code: &str| {
        let mut params = tv.body_auth();
        params.push(("grant_type", "device_token".into()));
        params.push(("code", device_code.to_owned()));
        zoho(dc, "/oauth/v3/device/token", params)
    };
    until(PROPAGATION, "eu to learn the enabled client", || {
        let request = poll(eu, "1000.not-a-device-code");
        async move {
            let reply = send(request).await;
            (reply.status == 200 && reply.json()["error"] == "invalid_code").then_some(())
        }
    })
    .await;
    let asked = send(zoho(
        us,
        "/oauth/v3/device/code",
        vec![
            ("client_id", tv.id.clone()),
            ("scope", SCOPE.into()),
            ("grant_type", "device_request".into()),
            ("access_type", "offline".into()),
        ],
    ))
    .await;
    assert_eq!(asked.status, 200, "{}", asked.body);
    let codes = asked.json();
    let (device_code, user_code) = (
        codes["device_code"].as_str().unwrap(),
        codes["user_code"].as_str().unwrap(),
    );
    assert_eq!(
        codes["verification_url"],
        format!("{}/oauth/v3/device", us.url)
    );

    // At us: the code, then the email, which sends the browser to eu with both.
    let browser = Http::browser(&us.url);
    let page = browser.get(format!("{}/oauth/v3/device", us.url)).await;
    let mut form = page.form_with("user_code");
    form.csrf_token();
    form.set("user_code", user_code);
    let email_step = browser.submit(&form, &[]).await;
    let routed = enter_email(&browser, &email_step, EU_USER).await;
    assert_eq!(routed.status, 303, "not sent on: {}", routed.body);
    let there = routed.location().unwrap();
    assert_origin(&there, eu);
    assert_eq!(there.path(), "/oauth/v3/device", "{there}");
    let moved = send(poll(us, device_code)).await;
    assert_eq!(moved.json()["error"], "other_dc", "{}", moved.body);
    assert_eq!(moved.json()["user_location"], "eu", "{}", moved.body);

    // At eu: only the password, then the consent page with the same code.
    let page = browser.get(there.as_str()).await;
    let signed_in = enter_password(&browser, &page, EU_USER).await;
    assert_eq!(signed_in.status, 303, "sign-in failed: {}", signed_in.body);
    let consent = browser.get(signed_in.location().unwrap().as_str()).await;
    assert!(consent.is_consent_page(), "{}", consent.body);
    assert!(consent.body.contains(user_code), "{}", consent.body);
    let form = consent.form_with("decision");
    let done = browser.submit(&form, &[("decision", "accept")]).await;
    assert!(
        done.body.contains("You can return to your device"),
        "{}",
        done.body
    );

    let issued = send(poll(eu, device_code)).await;
    let tokens = token_response(&issued, eu);
    let access = tokens["access_token"].as_str().unwrap();
    assert_profile(&http, eu, access, EU_USER).await;
}

fn auth(dc: &Dc, client: &TestClient) -> String {
    auth_scoped(dc, client, SCOPE)
}

fn auth_scoped(dc: &Dc, client: &TestClient, scope: &str) -> String {
    auth_url(
        &dc.url,
        client,
        scope,
        &[("access_type", "offline"), ("state", STATE)],
    )
}

/// A client registered at us and enabled for eu (with a secret of its own there, or the home
/// secret), once eu knows it: the client as at us, and as at eu.
async fn enabled_at_eu(trio: &Trio, own_secret: bool) -> (TestClient, TestClient) {
    let client = trio.us().add_server_client("Multi DC app");
    known_at_eu(trio, client, own_secret).await
}

/// `client`, registered at us, enabled for eu, once eu knows it.
async fn known_at_eu(
    trio: &Trio,
    client: TestClient,
    own_secret: bool,
) -> (TestClient, TestClient) {
    let at_eu = trio.us().enable_dc(&client, "eu", own_secret);
    let http = Http::new();
    let eu = trio.eu();
    // Known and authenticated, a client gets the bad-code answer for a code nobody issued.
    until(PROPAGATION, "eu to learn the enabled client", || {
        let request = exchange(&http, &eu.url, &at_eu, &unknown_token());
        async move {
            let reply = send(request).await;
            (reply.status == 400 && reply.json()["error"] == "invalid_grant").then_some(())
        }
    })
    .await;
    (client, at_eu)
}

/// The first step of sign-in on `page`: a form asking for the email (and not yet a password);
/// submits `email` alone.
async fn enter_email(browser: &Http, page: &Reply, email: &str) -> Reply {
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.has_field("email") && !page.has_field("password"),
        "not the email page: {}",
        page.body
    );
    let mut form = page.form_with("email");
    form.csrf_token();
    form.set("email", email);
    let reply = browser.submit(&form, &[]).await;
    assert!(
        reply.elapsed < FAST,
        "the email step took {:?}",
        reply.elapsed
    );
    reply
}

/// The second step on the password page for `email`: submits the password.
async fn enter_password(browser: &Http, page: &Reply, email: &str) -> Reply {
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.has_field("password"),
        "not the password page: {}",
        page.body
    );
    assert!(
        page.body.contains(email),
        "the email is shown: {}",
        page.body
    );
    let mut form = page.form_with("password");
    assert_eq!(form.get("email"), Some(email), "{form:?}");
    form.csrf_token();
    form.set("password", PASSWORD);
    browser.submit(&form, &[]).await
}

/// Signs in as `email` at its home `dc` from `auth_url` (the email, then the password), and
/// consents; the redirect with the code.
async fn sign_in_at_home(browser: &Http, dc: &Dc, auth_url: &str, email: &str) -> Redirect {
    let page = browser.get(auth_url).await;
    let password_page = enter_email(browser, &page, email).await;
    let signed_in = enter_password(browser, &password_page, email).await;
    assert_eq!(signed_in.status, 303, "sign-in failed: {}", signed_in.body);
    let next = signed_in.location().unwrap();
    assert_origin(&next, dc);
    consent_at(browser, next.as_str(), &dc.url)
        .await
        .redirect_with_code()
}

/// The eu user starts at us, gives the email there, is sent to eu with the same request and
/// `login_hint`, gives only the password at eu, and consents: the browser, and the redirect.
async fn routed_to_eu(trio: &Trio, client: &TestClient) -> (Http, Redirect) {
    routed_to_eu_for(trio, client, SCOPE).await
}

/// The same for `scope`.
async fn routed_to_eu_for(trio: &Trio, client: &TestClient, scope: &str) -> (Http, Redirect) {
    let (us, eu) = (trio.us(), trio.eu());
    let browser = Http::browser(&us.url);
    let start = Url::parse(&auth_scoped(us, client, scope)).unwrap();
    let page = browser.get(start.as_str()).await;
    let routed = enter_email(&browser, &page, EU_USER).await;
    assert_eq!(routed.status, 303, "not sent on: {}", routed.body);
    let to = routed.location().unwrap();
    assert_origin(&to, eu);
    assert_eq!(to.path(), "/oauth/v2/auth", "{to}");
    let sent: Vec<(String, String)> = to.query_pairs().into_owned().collect();
    for pair in start.query_pairs().into_owned() {
        assert!(sent.contains(&pair), "{pair:?} lost on the way to eu: {to}");
    }
    assert!(
        sent.contains(&("login_hint".to_owned(), EU_USER.to_owned())),
        "{to}"
    );

    // At eu the hinted email is local: the password, asked once.
    let page = browser.get(to.as_str()).await;
    let signed_in = enter_password(&browser, &page, EU_USER).await;
    assert_eq!(
        signed_in.status, 303,
        "sign-in at eu failed: {}",
        signed_in.body
    );
    let next = signed_in.location().unwrap();
    assert_origin(&next, eu);
    let redirect = consent_at(&browser, next.as_str(), &eu.url)
        .await
        .redirect_with_code();
    (browser, redirect)
}

/// A successful token response from `dc`: its body, whose `api_domain` is `dc`'s.
fn token_response(reply: &Reply, dc: &Dc) -> Value {
    assert_eq!(
        reply.status, 200,
        "token request at {}: {}",
        dc.location, reply.body
    );
    reply.assert_no_store();
    let body = reply.json();
    assert_eq!(body["api_domain"], dc.api_domain.as_str(), "{body}");
    assert_eq!(body["token_type"], "Bearer", "{body}");
    assert!(body["access_token"].is_string(), "{body}");
    body
}

/// `access` opens `dc`'s `/oauth/user/info` as `email`.
async fn assert_profile(http: &Http, dc: &Dc, access: &str, email: &str) {
    let info = send(user_info(http, &dc.url, access)).await;
    assert_eq!(
        info.status, 200,
        "user info at {}: {}",
        dc.location, info.body
    );
    assert_eq!(info.json()["Email"], email, "{}", info.body);
}

/// The answer's `error_description` (and, at a resource endpoint, its `WWW-Authenticate`
/// challenge) names the DC that issued the `kind` (`grant code`, `access token`, ...) and its
/// accounts server.
fn assert_issued_by(reply: &Reply, kind: &str, dc: &Dc) {
    let named = format!(
        "this {kind} was issued by data center {}; use {}",
        dc.location, dc.url
    );
    assert_eq!(
        reply.json()["error_description"],
        named.as_str(),
        "{kind} at the wrong DC: {}",
        reply.body
    );
    if reply.status == 401 {
        let challenge = reply.header("www-authenticate").unwrap_or_default();
        assert!(challenge.contains(&named), "{challenge}");
    }
}

/// `invalid_client`, saying the client is not enabled for data center `location`.
fn not_enabled(reply: &Reply, location: &str) -> bool {
    let body = reply.try_json().unwrap_or_default();
    reply.status == 401
        && body["error"] == "invalid_client"
        && body["error_description"]
            .as_str()
            .unwrap_or_default()
            .contains(&format!("not enabled for data center {location}"))
}

/// The server-to-server API's refusal: 401 `unauthorized`, nothing else said.
fn assert_unauthorized(reply: &Reply, what: &str) {
    assert_eq!(reply.status, 401, "{what}: {}", reply.body);
    assert_eq!(
        reply.json()["error"],
        "unauthorized",
        "{what}: {}",
        reply.body
    );
    assert!(
        reply.json().get("known").is_none(),
        "{what}: {}",
        reply.body
    );
}

fn assert_origin(url: &Url, dc: &Dc) {
    assert_eq!(
        url.origin().ascii_serialization(),
        dc.url,
        "expected {} ({}), got {url}",
        dc.location,
        dc.url
    );
}

/// Whether python3 can import Zoho's SDK; without it the test says it is skipped, unless
/// `GRANTD_REQUIRE_ZOHO_SDK=1` (CI installs it) makes that a failure.
fn zoho_sdk_importable(test: &str) -> bool {
    let imported = Command::new("python3")
        .args(["-c", "import zohocrmsdk"])
        .output()
        .is_ok_and(|output| output.status.success());
    if !imported {
        assert_ne!(
            std::env::var("GRANTD_REQUIRE_ZOHO_SDK").as_deref(),
            Ok("1"),
            "GRANTD_REQUIRE_ZOHO_SDK=1 but python3 cannot import zohocrmsdk \
             (pip install zohocrmsdk8-0)"
        );
        let line = format!(
            "skipped {test}: python3 cannot import zohocrmsdk (pip install zohocrmsdk8-0)\n"
        );
        // Straight to stderr, in one write: libtest captures `eprintln!` of passing tests.
        let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
    }
    imported
}
