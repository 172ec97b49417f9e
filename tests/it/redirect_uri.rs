//! Redirect URI validation (SECURITY-CASES.md 1.A): exact string matching at `/oauth/v2/auth`,
//! the loopback port exception for native clients, safe registration, and the binding of a
//! code to its redirect URI at the token endpoint.

use grantd_core::{ClientType, Dialect};
use grantd_server::admin::{self, AdminError, ClientSpec};
use grantd_store::ConsoleVerbs;

use crate::{start, Decision, Http, TestClient, TestServer, TestUser, Wire};

/// A browser signed in as a user who already consented to `client`, so that any request the
/// server accepted would be answered with a code at once.
async fn consented(server: &TestServer, client: &TestClient) -> (Http, TestUser) {
    let user = server.user("ada@example.com").await;
    let browser = server.browser();
    server
        .code(&browser, &user, client, "ZohoCRM.modules.ALL", &[])
        .await;
    (browser, user)
}

/// Each `redirect_uri` gets the HTML error page, from a signed-in browser that has consented
/// and from a fresh one, and no code is stored.
async fn assert_refused(server: &TestServer, browser: &Http, client: &TestClient, uris: &[&str]) {
    let codes_before = server.rows("grant_codes").await;
    let fresh = server.browser();
    for uri in uris {
        let url = server.auth_url_raw(&[
            ("response_type", "code"),
            ("client_id", &client.id),
            ("scope", "ZohoCRM.modules.ALL"),
            ("redirect_uri", uri),
            ("state", "xyz"),
        ]);
        for who in [browser, &fresh] {
            let reply = who.get(&url).await;
            reply.assert_error_page();
            assert!(!reply.body.contains("evil.test/cb\""), "{}", reply.body);
        }
    }
    assert_eq!(
        server.rows("grant_codes").await,
        codes_before,
        "a code was stored"
    );
}

/// How many clients the store holds.
async fn client_count(server: &TestServer) -> usize {
    match server.store.clients().await {
        Ok(clients) => clients.len(),
        Err(e) => panic!("listing clients: {e:?}"),
    }
}

async fn assert_registration_refused(server: &TestServer, kind: ClientType, uris: &[&str]) {
    let before = client_count(server).await;
    for uri in uris {
        let spec = ClientSpec {
            kind,
            name: "Bad app".into(),
            homepage: None,
            redirect_uris: vec![uri.to_string()],
            js_domain: None,
            owner_email: None,
            dialect: Dialect::Standard,
            introspect_any: false,
            id_token_alg: None,
        };
        let result = admin::add_client(&server.store, &spec, server.now()).await;
        assert!(
            matches!(result, Err(AdminError::Invalid(_))),
            "{uri:?} was accepted for a {} client: {result:?}",
            kind.as_str()
        );
    }
    assert_eq!(client_count(server).await, before, "a client was stored");
}

#[tokio::test]
async fn t001_prefix_or_path_extension_is_refused() {
    skip_without_postgres!();
    let server = start().await;
    let a = server.server_client("https://a.example/cb").await;
    let (browser, _) = consented(&server, &a).await;
    assert_refused(
        &server,
        &browser,
        &a,
        &[
            "https://a.example/cb/evil",
            "https://a.example/cbx",
            "https://a.example/c",
        ],
    )
    .await;
}

#[tokio::test]
async fn t002_host_suffix_and_embedded_url_are_refused() {
    skip_without_postgres!();
    let server = start().await;
    let a = server.server_client("https://a.example/cb").await;
    let (browser, _) = consented(&server, &a).await;
    assert_refused(
        &server,
        &browser,
        &a,
        &[
            "https://a.example.evil.test/cb",
            "https://evil.test/https://a.example/cb",
            "https://evil.test/cb",
        ],
    )
    .await;
}

#[tokio::test]
async fn t004_userinfo_and_backslash_tricks_are_refused() {
    skip_without_postgres!();
    let server = start().await;
    let a = server.server_client("https://a.example/cb").await;
    let (browser, _) = consented(&server, &a).await;
    assert_refused(
        &server,
        &browser,
        &a,
        &[
            "https://a.example@evil.test/cb",
            "https://a.example%40evil.test/cb",
            "https://a.example\\@evil.test/cb",
            "https://a.example:443@evil.test/cb",
            "https://a.example/cb@evil.test/cb",
        ],
    )
    .await;
}

#[tokio::test]
async fn t005_fragments_are_refused_in_requests_and_registrations() {
    skip_without_postgres!();
    let server = start().await;
    let a = server.server_client("https://a.example/cb").await;
    let (browser, _) = consented(&server, &a).await;
    assert_refused(
        &server,
        &browser,
        &a,
        &["https://a.example/cb#x", "https://a.example/cb#"],
    )
    .await;
    assert_registration_refused(
        &server,
        ClientType::Server,
        &["https://a.example/cb#x", "https://a.example/cb#"],
    )
    .await;
}

#[tokio::test]
async fn t006_case_differences_are_refused() {
    skip_without_postgres!();
    let server = start().await;
    let a = server.server_client("https://a.example/cb").await;
    let (browser, _) = consented(&server, &a).await;
    assert_refused(
        &server,
        &browser,
        &a,
        &[
            "https://a.example/CB",
            "HTTPS://A.EXAMPLE/cb",
            "https://A.example/cb",
        ],
    )
    .await;
}

#[tokio::test]
async fn t008_extra_or_changed_query_parameters_are_refused() {
    skip_without_postgres!();
    let server = start().await;
    let a = server.server_client("https://a.example/cb").await;
    let q = server.server_client("https://q.example/cb?tenant=7").await;
    let (browser, user) = consented(&server, &a).await;
    server
        .code(&browser, &user, &q, "ZohoCRM.modules.ALL", &[])
        .await;
    assert_refused(
        &server,
        &browser,
        &a,
        &[
            "https://a.example/cb?next=https://evil.test",
            "https://a.example/cb?",
        ],
    )
    .await;
    assert_refused(
        &server,
        &browser,
        &q,
        &[
            "https://q.example/cb?tenant=8",
            "https://q.example/cb",
            "https://q.example/cb?tenant=7&x=1",
            "https://q.example/cb?tenant=07",
        ],
    )
    .await;
}

#[tokio::test]
async fn t009_loopback_redirect_of_a_native_client_may_vary_in_port_only() {
    skip_without_postgres!();
    let server = start().await;
    let n = server.mobile_client("http://127.0.0.1/cb").await;
    let user = server.user("ada@example.com").await;
    let browser = server.browser();
    let mut at_port = n.clone();
    at_port.redirect_uri = "http://127.0.0.1:49152/cb".into();

    let flow = browser
        .authorize(
            &server.auth_url(&at_port, "ZohoCRM.modules.ALL", &[("state", "native")]),
            &user,
            Decision::Accept,
        )
        .await;

    let redirect = flow.redirect;
    assert!(
        redirect.raw.starts_with("http://127.0.0.1:49152/cb?"),
        "{}",
        redirect.raw
    );
    assert_eq!(redirect.param("state"), Some("native"));
    assert_eq!(redirect.param("iss"), Some(server.url.as_str()));
    // The token request names the URI used at /auth, port included; no secret, a verifier.
    let tokens = server.exchange(&at_port, &redirect.code()).await.tokens();
    assert_eq!(tokens.body["scope"], "ZohoCRM.modules.ALL");

    assert_refused(
        &server,
        &browser,
        &n,
        &[
            "http://127.0.0.1:49152/cb?x=1",
            "http://127.0.0.1:49152/other",
            "http://localhost:49152/cb",
            "http://[::1]:49152/cb",
            "http://127.0.0.1:49152@evil.test/cb",
            "http://127.0.0.1.evil.test/cb",
            "https://127.0.0.1:49152/cb",
        ],
    )
    .await;
}

#[tokio::test]
async fn t009_port_variation_is_only_for_native_clients() {
    skip_without_postgres!();
    let server = start().await;
    let web = server.server_client("http://127.0.0.1:8000/cb").await;
    let (browser, _) = consented(&server, &web).await;
    assert_refused(
        &server,
        &browser,
        &web,
        &["http://127.0.0.1:8001/cb", "http://127.0.0.1/cb"],
    )
    .await;
}

#[tokio::test]
async fn t012_unsafe_redirect_uris_are_refused_at_registration() {
    skip_without_postgres!();
    let server = start().await;
    let unsafe_uris = [
        "javascript:alert(1)",
        "javascript://a.example/%0aalert(1)",
        "data:text/html,<script>alert(1)</script>",
        "vbscript:msgbox(1)",
        "file:///etc/passwd",
        "https://*.example/cb",
        "https://a.example/*",
        "not a url",
        "/relative/cb",
    ];
    for kind in [ClientType::Server, ClientType::Client, ClientType::Mobile] {
        assert_registration_refused(&server, kind, &unsafe_uris).await;
    }
    // Plain http is for loopback only.
    assert_registration_refused(&server, ClientType::Server, &["http://a.example/cb"]).await;
    assert_registration_refused(&server, ClientType::Client, &["http://a.example/cb"]).await;
}

#[tokio::test]
async fn t013_registered_uri_carrying_code_or_state_is_refused() {
    skip_without_postgres!();
    let server = start().await;
    assert_registration_refused(
        &server,
        ClientType::Server,
        &[
            "https://a.example/cb?code=1",
            "https://a.example/cb?state=x",
            "https://a.example/cb?a=1&code=",
        ],
    )
    .await;
}

#[tokio::test]
async fn t014_omitted_redirect_uri_gets_the_error_page() {
    skip_without_postgres!();
    let server = start().await;
    let one = server.server_client("https://a.example/cb").await;
    let two = server
        .client(
            ClientType::Server,
            &["https://b.example/cb", "https://b.example/other"],
            Dialect::Standard,
            None,
        )
        .await;
    let (browser, user) = consented(&server, &one).await;
    server
        .code(&browser, &user, &two, "ZohoCRM.modules.ALL", &[])
        .await;
    let codes = server.rows("grant_codes").await;

    for client in [&one, &two] {
        for redirect in [None, Some("")] {
            let mut params = vec![
                ("response_type", "code"),
                ("client_id", client.id.as_str()),
                ("scope", "ZohoCRM.modules.ALL"),
                ("state", "s"),
            ];
            if let Some(value) = redirect {
                params.push(("redirect_uri", value));
            }
            let url = server.auth_url_raw(&params);
            browser.get(&url).await.assert_error_page();
            server.browser().get(&url).await.assert_error_page();
        }
    }
    assert_eq!(server.rows("grant_codes").await, codes);
}

#[tokio::test]
async fn t015_code_is_bound_to_its_redirect_uri_at_the_token_endpoint() {
    skip_without_postgres!();
    let server = start().await;
    let a = server.server_client("https://a.example/cb").await;
    let (browser, user) = consented(&server, &a).await;

    for redirect_uri in [
        Some("https://a.example/cb?x"),
        Some("https://a.example/cb/"),
        None,
    ] {
        let code = server
            .code(&browser, &user, &a, "ZohoCRM.modules.ALL", &[])
            .await;
        let mut fields = a.body_auth();
        fields.push(("grant_type", "authorization_code".into()));
        fields.push(("code", code.clone()));
        if let Some(uri) = redirect_uri {
            fields.push(("redirect_uri", uri.into()));
        }
        let reply = server.post_form("/oauth/v2/token", &fields).await;
        reply.assert_error(Dialect::Standard, Wire::RedirectUriMismatch);
        reply.assert_nothing_issued();
        assert_eq!(server.rows("access_tokens").await, 0);
    }
}

#[tokio::test]
async fn t077_unknown_client_never_redirects() {
    skip_without_postgres!();
    let server = start().await;
    let a = server.server_client("https://a.example/cb").await;
    let (browser, _) = consented(&server, &a).await;
    let cases: [&[(&str, &str)]; 4] = [
        &[("client_id", "nope"), ("redirect_uri", "https://evil.test")],
        &[
            ("client_id", "1000.ABCDEFGHIJKLMNOPQRSTUVWXYZ0123"),
            ("redirect_uri", "https://evil.test/cb"),
        ],
        &[
            ("client_id", "nope"),
            ("redirect_uri", "https://a.example/cb"),
        ],
        &[("redirect_uri", "https://a.example/cb")],
    ];
    for case in cases {
        let mut params = vec![
            ("response_type", "code"),
            ("scope", "ZohoCRM.modules.ALL"),
            ("state", "s"),
        ];
        params.extend_from_slice(case);
        let url = server.auth_url_raw(&params);
        browser.get(&url).await.assert_error_page();
        server.browser().get(&url).await.assert_error_page();
    }
    assert_eq!(server.rows("grant_codes").await, 1);
}

#[tokio::test]
async fn clients_without_redirect_flow_get_the_error_page() {
    skip_without_postgres!();
    let server = start().await;
    let owner = server.user("ada@example.com").await;
    let own = server.self_client(&owner, Dialect::Standard).await;
    let device = server
        .client(ClientType::NonBrowser, &[], Dialect::Standard, None)
        .await;
    for client in [&own, &device] {
        let url = server.auth_url_raw(&[
            ("response_type", "code"),
            ("client_id", &client.id),
            ("scope", "ZohoCRM.modules.ALL"),
            ("redirect_uri", "https://a.example/cb"),
        ]);
        server.browser().get(&url).await.assert_error_page();
    }
}
