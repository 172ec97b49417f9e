//! The device flow (CONTRACT.md "Device flow", RFC 8628), in both dialects, driven over plain
//! HTTP as Zoho's docs show it (POST with the parameters in the query string) and as RFC 8628
//! clients send it (urlencoded, HTTP Basic), with a browser answering at the verification
//! page: the code form, sign-in, consent, and the page that says what happened. Time moves by
//! the test clock only.

use grantd_core::{ClientType, Dialect};
use serde_json::Value;

use super::oidc;
use crate::{start, start_with, Decision, Http, Reply, TestClient, TestServer, TestUser};

pub(crate) const SCOPE: &str = "ZohoCRM.modules.ALL,AaaServer.profile.READ";
const RFC_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
const INVALID: &str = "This code has expired or is invalid";

pub(crate) async fn tv(server: &TestServer, dialect: Dialect) -> TestClient {
    server
        .client(ClientType::NonBrowser, &[], dialect, None)
        .await
}

/// What a device holds after asking for codes.
pub(crate) struct Codes {
    pub device_code: String,
    pub user_code: String,
    pub body: Value,
}

/// Zoho's `POST /oauth/v3/device/code`, parameters in the query string as Zoho's docs show.
pub(crate) async fn zoho_codes(
    server: &TestServer,
    client: &TestClient,
    access_type: &str,
) -> Codes {
    let reply = server
        .post_query(
            "/oauth/v3/device/code",
            &[
                ("client_id", client.id.as_str()),
                ("scope", SCOPE),
                ("grant_type", "device_request"),
                ("access_type", access_type),
                ("prompt", "consent"),
            ],
        )
        .await;
    codes(&reply)
}

/// RFC 8628 §3.1, urlencoded with HTTP Basic as standard libraries send it.
async fn rfc_codes(server: &TestServer, client: &TestClient) -> Codes {
    let reply = server
        .post_form_basic(
            "/oauth/v2/device_authorization",
            &client.id,
            client.secret(),
            &[
                ("scope", "ZohoCRM.modules.ALL AaaServer.profile.READ"),
                ("access_type", "offline"),
            ],
        )
        .await;
    codes(&reply)
}

fn codes(reply: &Reply) -> Codes {
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.assert_no_store();
    let body = reply.json();
    let text = |key: &str| {
        body[key]
            .as_str()
            .unwrap_or_else(|| panic!("no {key} in {body}"))
            .to_owned()
    };
    let user_code = text("user_code");
    assert_user_code_shape(&user_code);
    Codes {
        device_code: text("device_code"),
        user_code,
        body,
    }
}

/// `XXXX-XXXX` from an alphabet without 0/O, 1/I/L.
fn assert_user_code_shape(code: &str) {
    let (head, tail) = code.split_once('-').unwrap_or_else(|| panic!("{code:?}"));
    assert_eq!((head.len(), tail.len()), (4, 4), "{code:?}");
    assert!(
        head.chars()
            .chain(tail.chars())
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()),
        "{code:?}"
    );
    assert!(!code.contains(['0', 'O', '1', 'I', 'L']), "{code:?}");
}

/// Zoho's poll, `POST /oauth/v3/device/token` with the parameters in the query string.
pub(crate) async fn zoho_poll(
    server: &TestServer,
    client: &TestClient,
    device_code: &str,
) -> Reply {
    server
        .post_query(
            "/oauth/v3/device/token",
            &[
                ("client_id", client.id.as_str()),
                ("client_secret", client.secret()),
                ("grant_type", "device_token"),
                ("code", device_code),
            ],
        )
        .await
}

/// RFC 8628 §3.4 at the token endpoint, HTTP Basic.
pub(crate) async fn rfc_poll(server: &TestServer, client: &TestClient, device_code: &str) -> Reply {
    server
        .post_form_basic(
            "/oauth/v2/token",
            &client.id,
            client.secret(),
            &[("grant_type", RFC_GRANT), ("device_code", device_code)],
        )
        .await
}

/// A poll's error: Zoho's (status 200) or RFC 8628's (400), by name.
pub(crate) fn assert_poll_error(reply: &Reply, dialect: Dialect, error: &str) {
    let status = match dialect {
        Dialect::Zoho => 200,
        Dialect::Standard => 400,
    };
    assert_eq!(
        (reply.status, reply.json()["error"].as_str()),
        (status, Some(error)),
        "{}",
        reply.body
    );
    reply.assert_error_body();
}

/// The text a person reads on a page.
pub(crate) fn says(reply: &Reply, text: &str) -> bool {
    reply.body.contains(text)
}

/// The browser at the verification page: opens it (with `?user_code=` as
/// `verification_uri_complete` does, or bare), types the code into the form if it must, signs
/// in if asked, and answers the consent page; the final page.
async fn verify(
    server: &TestServer,
    browser: &Http,
    user: &TestUser,
    user_code: &str,
    complete_uri: bool,
    decision: Decision,
) -> Reply {
    let url = if complete_uri {
        server.at(&format!("/oauth/v3/device?user_code={user_code}"))
    } else {
        server.at("/oauth/v3/device")
    };
    let mut page = browser.get(url).await;
    let mut signed_in = false;
    for _ in 0..6 {
        if page.is_consent_page() {
            assert!(
                says(&page, user_code),
                "the consent page shows the code: {}",
                page.body
            );
            let form = page.form_with("decision");
            form.csrf_token();
            return browser
                .submit(&form, &[("decision", decision.as_str())])
                .await;
        }
        if page.is_login_page() {
            assert!(!signed_in, "asked to sign in twice: {}", page.body);
            signed_in = true;
            page = browser.sign_in_on(&page, &user.email, &user.password).await;
            continue;
        }
        if page.status == 303 {
            let next = page
                .location()
                .unwrap_or_else(|| panic!("a 303 without Location: {}", page.body));
            page = browser.get(next.as_str()).await;
            continue;
        }
        if page.status == 200 && page.has_field("user_code") {
            let mut form = page.form_with("user_code");
            form.csrf_token();
            if complete_uri {
                assert_eq!(form.get("user_code"), Some(user_code), "pre-filled");
            } else {
                form.set("user_code", user_code);
            }
            page = browser.submit(&form, &[]).await;
            continue;
        }
        panic!("unexpected page {}: {}", page.status, page.body);
    }
    panic!("too many steps at the verification page");
}

/// `verify` with Accept, which must end on the page that says the device is connected.
async fn approve(
    server: &TestServer,
    browser: &Http,
    user: &TestUser,
    user_code: &str,
    complete_uri: bool,
) {
    let done = verify(
        server,
        browser,
        user,
        user_code,
        complete_uri,
        Decision::Accept,
    )
    .await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(
        says(&done, "You can return to your device"),
        "{}",
        done.body
    );
}

/// Types `user_code` into the code form; the answer.
pub(crate) async fn enter_code(server: &TestServer, browser: &Http, user_code: &str) -> Reply {
    let page = browser.get(server.at("/oauth/v3/device")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let mut form = page.form_with("user_code");
    form.set("user_code", user_code);
    browser.submit(&form, &[]).await
}

#[tokio::test]
async fn zoho_device_flow_over_query_strings() {
    skip_without_postgres!();
    let server = start().await;
    let ada = server.user("ada@example.com").await;
    // A standard-dialect client: Zoho's endpoints answer in Zoho's dialect all the same.
    let client = tv(&server, Dialect::Standard).await;
    let codes = zoho_codes(&server, &client, "offline").await;
    let mut keys: Vec<&str> = codes
        .body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "device_code",
            "expires_in",
            "interval",
            "user_code",
            "verification_url"
        ]
    );
    assert_eq!(codes.body["expires_in"], 300);
    assert_eq!(codes.body["interval"], 30);
    assert_eq!(
        codes.body["verification_url"],
        server.at("/oauth/v3/device")
    );
    crate::assert_token_shape(&codes.device_code);

    let pending = zoho_poll(&server, &client, &codes.device_code).await;
    assert_poll_error(&pending, Dialect::Zoho, "authorization_pending");

    server.clock.advance(30);
    let browser = server.browser();
    approve(&server, &browser, &ada, &codes.user_code, false).await;

    server.clock.advance(30);
    let tokens = zoho_poll(&server, &client, &codes.device_code)
        .await
        .tokens();
    assert!(tokens.refresh.is_some(), "offline: {}", tokens.body);
    assert_eq!(
        crate::scope_set(tokens.body["scope"].as_str().unwrap()),
        crate::scope_set(SCOPE)
    );
    assert!(server.access_works(&tokens.access).await);
    assert!(server.refresh(&client, tokens.refresh()).await.status == 200);

    // Single use: the device code is spent.
    server.clock.advance(30);
    let again = zoho_poll(&server, &client, &codes.device_code).await;
    assert_poll_error(&again, Dialect::Zoho, "invalid_code");
}

#[tokio::test]
async fn rfc8628_flow_at_the_token_endpoint() {
    skip_without_postgres!();
    let server = start().await;
    let ada = server.user("ada@example.com").await;
    let client = tv(&server, Dialect::Standard).await;
    let codes = rfc_codes(&server, &client).await;
    let mut keys: Vec<&str> = codes
        .body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "device_code",
            "expires_in",
            "interval",
            "user_code",
            "verification_uri",
            "verification_uri_complete"
        ]
    );
    let uri = server.at("/oauth/v3/device");
    assert_eq!(codes.body["verification_uri"], uri);
    assert_eq!(
        codes.body["verification_uri_complete"],
        format!("{uri}?user_code={}", codes.user_code)
    );

    let pending = rfc_poll(&server, &client, &codes.device_code).await;
    assert_poll_error(&pending, Dialect::Standard, "authorization_pending");

    // verification_uri_complete: the form comes pre-filled.
    let browser = server.browser();
    approve(&server, &browser, &ada, &codes.user_code, true).await;
    server.clock.advance(30);
    let tokens = rfc_poll(&server, &client, &codes.device_code)
        .await
        .tokens();
    assert!(server.access_works(&tokens.access).await);
    let again = rfc_poll(&server, &client, &codes.device_code).await;
    assert_poll_error(&again, Dialect::Standard, "invalid_grant");

    // Signed in already: verification_uri_complete goes straight to the consent page.
    let online = server
        .post_form_basic(
            "/oauth/v2/device_authorization",
            &client.id,
            client.secret(),
            &[("scope", "AaaServer.profile.READ")],
        )
        .await;
    let online = self::codes(&online);
    let page = browser
        .get(online.body["verification_uri_complete"].as_str().unwrap())
        .await;
    assert!(page.is_consent_page(), "{}", page.body);
    let form = page.form_with("decision");
    browser.submit(&form, &[("decision", "accept")]).await;
    server.clock.advance(30);
    let tokens = rfc_poll(&server, &client, &online.device_code)
        .await
        .tokens();
    assert!(tokens.refresh.is_none(), "online: {}", tokens.body);
}

/// A poll in `dialect`'s form: Zoho's endpoint, or the RFC grant.
async fn poll_in(dialect: Dialect, server: &TestServer, client: &TestClient, code: &str) -> Reply {
    match dialect {
        Dialect::Zoho => zoho_poll(server, client, code).await,
        Dialect::Standard => rfc_poll(server, client, code).await,
    }
}

#[tokio::test]
async fn polling_too_fast_slows_down_and_the_interval_grows() {
    skip_without_postgres!();
    let server = start().await;
    for dialect in [Dialect::Zoho, Dialect::Standard] {
        let client = tv(&server, dialect).await;
        let code = match dialect {
            Dialect::Zoho => zoho_codes(&server, &client, "online").await,
            Dialect::Standard => rfc_codes(&server, &client).await,
        }
        .device_code;
        let poll_after = async |secs: i64, error: &str| {
            server.clock.advance(secs);
            let reply = poll_in(dialect, &server, &client, &code).await;
            assert_poll_error(&reply, dialect, error);
        };
        poll_after(0, "authorization_pending").await;
        poll_after(10, "slow_down").await;
        // The interval is 35 s now: 34 s later is still too soon (and it grows to 40 s) ...
        poll_after(34, "slow_down").await;
        poll_after(39, "slow_down").await;
        // ... and polling at the grown interval is answered normally.
        poll_after(45, "authorization_pending").await;
        poll_after(45, "authorization_pending").await;
    }
}

#[tokio::test]
async fn a_rejected_request_is_access_denied_in_both_dialects() {
    skip_without_postgres!();
    let server = start().await;
    let ada = server.user("ada@example.com").await;
    let browser = server.browser();
    for dialect in [Dialect::Zoho, Dialect::Standard] {
        let client = tv(&server, dialect).await;
        let (codes, zoho) = match dialect {
            Dialect::Zoho => (zoho_codes(&server, &client, "offline").await, true),
            Dialect::Standard => (rfc_codes(&server, &client).await, false),
        };
        let done = verify(
            &server,
            &browser,
            &ada,
            &codes.user_code,
            false,
            Decision::Reject,
        )
        .await;
        assert!(says(&done, "Access was denied"), "{}", done.body);
        server.clock.advance(30);
        let reply = if zoho {
            zoho_poll(&server, &client, &codes.device_code).await
        } else {
            rfc_poll(&server, &client, &codes.device_code).await
        };
        assert_poll_error(&reply, dialect, "access_denied");
        reply.assert_nothing_issued();
    }
}

#[tokio::test]
async fn codes_expire_after_five_minutes_in_both_dialects() {
    skip_without_postgres!();
    let server = start().await;
    let ada = server.user("ada@example.com").await;
    let client = tv(&server, Dialect::Standard).await;
    let zoho = zoho_codes(&server, &client, "offline").await;
    let rfc = rfc_codes(&server, &client).await;
    server.clock.advance(299);
    assert_poll_error(
        &zoho_poll(&server, &client, &zoho.device_code).await,
        Dialect::Zoho,
        "authorization_pending",
    );
    server.clock.advance(1);
    assert_poll_error(
        &zoho_poll(&server, &client, &zoho.device_code).await,
        Dialect::Zoho,
        "expired",
    );
    assert_poll_error(
        &rfc_poll(&server, &client, &rfc.device_code).await,
        Dialect::Standard,
        "expired_token",
    );
    // A Zoho-dialect client at the RFC grant hears Zoho's name, with Zoho's status.
    let zoho_client = tv(&server, Dialect::Zoho).await;
    let late = zoho_codes(&server, &zoho_client, "online").await;
    server.clock.advance(300);
    assert_poll_error(
        &rfc_poll(&server, &zoho_client, &late.device_code).await,
        Dialect::Zoho,
        "expired",
    );
    // The verification page no longer takes the code.
    let browser = server.browser();
    browser.sign_in(&server.at("/"), &ada).await;
    let page = enter_code(&server, &browser, &zoho.user_code).await;
    assert_eq!(page.status, 400);
    assert!(says(&page, INVALID), "{}", page.body);
}

#[tokio::test]
async fn a_user_code_is_used_once() {
    skip_without_postgres!();
    let server = start().await;
    let ada = server.user("ada@example.com").await;
    let bob = server.user_named("bob@example.com", "Bob").await;
    let client = tv(&server, Dialect::Zoho).await;
    let codes = zoho_codes(&server, &client, "offline").await;
    let ada_browser = server.browser();
    approve(&server, &ada_browser, &ada, &codes.user_code, false).await;
    // Nobody can answer it again: not Bob, not Ada, not with the code typed differently.
    let bob_browser = server.browser();
    bob_browser.sign_in(&server.at("/"), &bob).await;
    let lower = codes.user_code.to_lowercase().replace('-', " ");
    for (browser, typed) in [
        (&bob_browser, codes.user_code.as_str()),
        (&ada_browser, lower.as_str()),
    ] {
        let page = enter_code(&server, browser, typed).await;
        assert_eq!(page.status, 400, "{}", page.body);
        assert!(says(&page, INVALID), "{}", page.body);
    }
    server.clock.advance(30);
    let tokens = zoho_poll(&server, &client, &codes.device_code)
        .await
        .tokens();
    let info = server.userinfo(&tokens.access).await;
    assert_eq!(info.json()["Email"], "ada@example.com", "{}", info.body);
}

#[tokio::test]
async fn the_code_is_typed_in_any_case_with_or_without_the_dash() {
    skip_without_postgres!();
    let server = start().await;
    let ada = server.user("ada@example.com").await;
    let client = tv(&server, Dialect::Zoho).await;
    let codes = zoho_codes(&server, &client, "online").await;
    let browser = server.browser();
    browser.sign_in(&server.at("/"), &ada).await;
    let typed = format!(" {} ", codes.user_code.to_lowercase().replace('-', ""));
    let page = enter_code(&server, &browser, &typed).await;
    assert!(page.is_consent_page(), "{}", page.body);
    assert!(
        says(&page, &codes.user_code),
        "the code is shown to compare"
    );
}

#[tokio::test]
async fn user_code_guessing_is_throttled_per_source_and_globally() {
    skip_without_postgres!();
    let server = start_with(|settings| {
        settings.limits.device_guesses_per_source = 3;
        settings.limits.device_guesses_global = 5;
    })
    .await;
    let ada = server.user("ada@example.com").await;
    let client = tv(&server, Dialect::Zoho).await;
    let codes = zoho_codes(&server, &client, "online").await;
    let wrong = ["ABCD-EFGH", "HJKM-NPQR", "STUV-WXYZ", "2345-6789"];
    let wrong: Vec<&str> = wrong
        .into_iter()
        .filter(|w| *w != codes.user_code)
        .collect();

    // One source: three wrong codes, then even the right one is refused for the window.
    let guesser = server.browser_at(2);
    for typed in &wrong[..3] {
        let page = enter_code(&server, &guesser, typed).await;
        assert_eq!(page.status, 400, "{}", page.body);
        assert!(says(&page, INVALID));
    }
    let refused = enter_code(&server, &guesser, &codes.user_code).await;
    assert_eq!(refused.status, 429, "{}", refused.body);
    assert_eq!(refused.header("retry-after"), Some("600"));
    assert!(!refused.is_login_page() && !refused.is_consent_page());
    // Retry-After is what remains of the window, not the whole window again.
    server.clock.advance(100);
    let later = enter_code(&server, &guesser, &codes.user_code).await;
    assert_eq!(later.status, 429, "{}", later.body);
    assert_eq!(later.header("retry-after"), Some("500"));

    // Another source: two more wrong codes fill the global tally; then everyone is refused,
    // a signed-in owner with the right code included.
    let other = server.browser_at(3);
    for typed in &wrong[..2] {
        assert_eq!(enter_code(&server, &other, typed).await.status, 400);
    }
    let owner = server.browser_at(4);
    owner.sign_in(&server.at("/"), &ada).await;
    assert_eq!(
        enter_code(&server, &owner, &codes.user_code).await.status,
        429
    );

    // A right code never counts, and the windows end.
    server.clock.advance(600);
    let fresh = zoho_codes(&server, &client, "online").await;
    for _ in 0..5 {
        let page = enter_code(&server, &owner, &fresh.user_code).await;
        assert!(page.is_consent_page(), "{}", page.body);
    }
    let page = enter_code(&server, &guesser, wrong[0]).await;
    assert_eq!(page.status, 400, "{}", page.body);
}

#[tokio::test]
async fn only_non_browser_clients_use_the_device_flow() {
    skip_without_postgres!();
    let server = start().await;
    let ada = server.user("ada@example.com").await;
    let web = server.server_client("https://a.example/cb").await;
    let zoho_web = server.zoho_client("https://z.example/cb").await;
    let mobile = server.mobile_client("com.example.app:/cb").await;
    let own = server.self_client(&ada, Dialect::Standard).await;
    for client in [&web, &zoho_web, &mobile, &own] {
        let zoho = server
            .post_query(
                "/oauth/v3/device/code",
                &[
                    ("client_id", client.id.as_str()),
                    ("scope", SCOPE),
                    ("grant_type", "device_request"),
                ],
            )
            .await;
        assert_poll_error(&zoho, Dialect::Zoho, "unauthorized_client");
        let mut fields = client.body_auth();
        fields.push(("scope", SCOPE.into()));
        let rfc = server
            .post_form("/oauth/v2/device_authorization", &fields)
            .await;
        assert_poll_error(&rfc, client.dialect, "unauthorized_client");
    }
    // A confidential client polling the RFC grant with a made-up code is refused by type too.
    let poll = rfc_poll(&server, &web, &crate::unknown_token()).await;
    assert_poll_error(&poll, Dialect::Standard, "unauthorized_client");
    // An unknown client, and a wrong secret when one is sent.
    let unknown = server
        .post_query(
            "/oauth/v3/device/code",
            &[
                ("client_id", "1000.NOPE"),
                ("scope", SCOPE),
                ("grant_type", "device_request"),
            ],
        )
        .await;
    assert_poll_error(&unknown, Dialect::Zoho, "invalid_client");
    let client = tv(&server, Dialect::Standard).await;
    let wrong = server
        .post_form_basic(
            "/oauth/v2/device_authorization",
            &client.id,
            "not-the-secret",
            &[("scope", SCOPE)],
        )
        .await;
    assert_eq!(
        (wrong.status, wrong.json()["error"].as_str()),
        (401, Some("invalid_client"))
    );
    let codes = zoho_codes(&server, &client, "online").await;
    let stolen = server
        .post_query(
            "/oauth/v3/device/token",
            &[
                ("client_id", client.id.as_str()),
                ("client_secret", "not-the-secret"),
                ("grant_type", "device_token"),
                ("code", codes.device_code.as_str()),
            ],
        )
        .await;
    assert_poll_error(&stolen, Dialect::Zoho, "invalid_client");
}

#[tokio::test]
async fn malformed_device_requests_get_clear_errors() {
    skip_without_postgres!();
    let server = start().await;
    let client = tv(&server, Dialect::Zoho).await;
    let id = client.id.as_str();
    let cases: [(&[(&str, &str)], &str); 4] = [
        (
            &[
                ("client_id", id),
                ("scope", SCOPE),
                ("grant_type", "device_token"),
            ],
            "unsupported_grant_type",
        ),
        (
            &[("client_id", id), ("grant_type", "device_request")],
            "invalid_request",
        ),
        (
            &[
                ("client_id", id),
                ("scope", "Nope.x.READ"),
                ("grant_type", "device_request"),
            ],
            "invalid_scope",
        ),
        (
            &[
                ("client_id", id),
                ("scope", SCOPE),
                ("grant_type", "device_request"),
                ("access_type", "forever"),
            ],
            "invalid_request",
        ),
    ];
    for (fields, error) in cases {
        let reply = server.post_query("/oauth/v3/device/code", fields).await;
        assert_poll_error(&reply, Dialect::Zoho, error);
    }
    let poll = server
        .post_query(
            "/oauth/v3/device/token",
            &[
                ("client_id", id),
                ("client_secret", client.secret()),
                ("grant_type", "device_token"),
                ("code", &crate::unknown_token()),
            ],
        )
        .await;
    assert_poll_error(&poll, Dialect::Zoho, "invalid_code");
    let get = server.get("/oauth/v3/device/token").await;
    assert_eq!(get.status, 405);
}

#[tokio::test]
async fn the_verification_forms_are_csrf_protected() {
    skip_without_postgres!();
    let server = start().await;
    let ada = server.user("ada@example.com").await;
    let client = tv(&server, Dialect::Zoho).await;
    let codes = zoho_codes(&server, &client, "online").await;
    let browser = server.browser();
    let page = browser.get(server.at("/oauth/v3/device")).await;
    let mut form = page.form_with("user_code");
    form.set("user_code", &codes.user_code)
        .set("csrf_token", &"0".repeat(64));
    assert_eq!(browser.submit(&form, &[]).await.status, 403);
    // From another site, even with the right token.
    let mut form = page.form_with("user_code");
    form.set("user_code", &codes.user_code);
    let cross = browser
        .submit_with(&form, &[], &[("Origin", "https://evil.example")])
        .await;
    assert_eq!(cross.status, 403);
    // A consent form answered twice decides once.
    browser.sign_in(&server.at("/"), &ada).await;
    let consent = enter_code(&server, &browser, &codes.user_code).await;
    let form = consent.form_with("decision");
    let first = browser.submit(&form, &[("decision", "reject")]).await;
    assert!(says(&first, "Access was denied"), "{}", first.body);
    let second = browser.submit(&form, &[("decision", "accept")]).await;
    assert_eq!(second.status, 400);
    assert!(says(&second, INVALID), "{}", second.body);
    server.clock.advance(30);
    assert_poll_error(
        &zoho_poll(&server, &client, &codes.device_code).await,
        Dialect::Zoho,
        "access_denied",
    );
}

#[tokio::test]
async fn metadata_advertises_the_device_flow() {
    skip_without_postgres!();
    let server = start().await;
    let metadata = server
        .get("/.well-known/oauth-authorization-server")
        .await
        .json();
    assert_eq!(
        metadata["device_authorization_endpoint"],
        server.at("/oauth/v2/device_authorization")
    );
    let grants = metadata["grant_types_supported"].as_array().unwrap();
    assert!(grants.iter().any(|g| g == RFC_GRANT), "{metadata}");
}

/// OpenID Connect through the device flow: with `openid`, the poll that issues the tokens
/// returns an ID token as the code exchange does (no nonce: the flow has none), with the
/// approving user's sign-in time; its refresh token's ID tokens keep that auth_time.
#[tokio::test]
async fn with_openid_the_device_gets_an_id_token() {
    skip_without_postgres!();
    let server = start().await;
    let ada = server.user("ada@example.com").await;
    let client = tv(&server, Dialect::Standard).await;
    let reply = server
        .post_form_basic(
            "/oauth/v2/device_authorization",
            &client.id,
            client.secret(),
            &[("scope", "openid email"), ("access_type", "offline")],
        )
        .await;
    let codes = codes(&reply);
    let browser = server.browser();
    let signed_in_at = server.now().0;
    approve(&server, &browser, &ada, &codes.user_code, true).await;

    server.clock.advance(30);
    let tokens = rfc_poll(&server, &client, &codes.device_code)
        .await
        .tokens();
    let (_, claims) = oidc::verify(&server, &client, oidc::id_token(&tokens.body)).await;
    assert_eq!(claims["sub"], ada.id.to_string());
    assert_eq!(claims["aud"], client.id.as_str());
    assert_eq!(claims["auth_time"], signed_in_at);
    assert_eq!(claims["at_hash"], oidc::at_hash(&tokens.access));
    assert_eq!(claims["email"], "ada@example.com");
    assert!(claims.get("nonce").is_none(), "{claims}");

    server.clock.advance(600);
    let refreshed = server.refresh(&client, tokens.refresh()).await.tokens();
    let (_, claims) = oidc::verify(&server, &client, oidc::id_token(&refreshed.body)).await;
    assert_eq!(claims["auth_time"], signed_in_at);
    assert_eq!(claims["iat"], server.now().0);

    // Without openid, no ID token.
    let plain = rfc_codes(&server, &client).await;
    verify(
        &server,
        &browser,
        &ada,
        &plain.user_code,
        true,
        Decision::Accept,
    )
    .await;
    server.clock.advance(30);
    let tokens = rfc_poll(&server, &client, &plain.device_code)
        .await
        .tokens();
    assert!(tokens.body.get("id_token").is_none(), "{}", tokens.body);
}

/// As at `/oauth/v2/auth`: a `login_hint` for another account than the signed-in one asks for
/// that account's sign-in, never a consent as the wrong user; the signed-in account's own hint
/// goes straight to its consent page.
#[tokio::test]
async fn a_hint_for_another_account_asks_for_its_sign_in() {
    skip_without_postgres!();
    let server = start().await;
    let ada = server.user("ada@example.com").await;
    let bob = server.user("bob@example.com").await;
    let client = tv(&server, Dialect::Zoho).await;
    let codes = zoho_codes(&server, &client, "online").await;
    let browser = server.browser();
    browser.sign_in(&server.at("/"), &ada).await;
    let with_hint = |email: &str| {
        server.at(&format!(
            "/oauth/v3/device?user_code={}&login_hint={email}",
            codes.user_code
        ))
    };

    let own = browser.get(with_hint(&ada.email)).await;
    assert!(own.is_consent_page(), "{}", own.body);
    assert!(says(&own, &ada.email), "{}", own.body);

    let page = browser.get(with_hint(&bob.email)).await;
    assert!(page.is_login_page(), "{}", page.body);
    assert!(says(&page, &bob.email), "{}", page.body);
    let signed_in = browser.sign_in_on(&page, &bob.email, &bob.password).await;
    let consent = browser.get(signed_in.location().unwrap().as_str()).await;
    assert!(consent.is_consent_page(), "{}", consent.body);
    assert!(says(&consent, &bob.email), "{}", consent.body);
}
