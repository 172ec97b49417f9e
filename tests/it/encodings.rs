//! The request shapes real clients send (CONTRACT.md "What real clients send"), replayed
//! exactly: Zoho's Python SDK (urlencoded), Node SDK (multipart), Zoho's docs (query string on
//! a POST with an empty body), standard libraries (HTTP Basic, PKCE, space-separated scope,
//! `token_type_hint`).

use grantd_core::Dialect;

use crate::{s256, scope_set, start, Reply, TestServer, TestUser, VERIFIER};

const SCOPE: &str = "ZohoCRM.modules.ALL,AaaServer.profile.READ";

async fn setup() -> (TestServer, TestUser) {
    let server = start().await;
    let user = server.user("ada@example.com").await;
    (server, user)
}

#[tokio::test]
async fn zoho_python_sdk_urlencoded_exchange_refresh_and_revoke() {
    skip_without_postgres!();
    let (server, user) = setup().await;
    let a = server.server_client("https://a.example/cb").await;
    let code = server
        .code(
            &server.browser(),
            &user,
            &a,
            SCOPE,
            &[("access_type", "offline")],
        )
        .await;

    let exchanged = server
        .post_form(
            "/oauth/v2/token",
            &[
                ("client_id", a.id.as_str()),
                ("client_secret", a.secret()),
                ("code", code.as_str()),
                ("grant_type", "authorization_code"),
                ("redirect_uri", "https://a.example/cb"),
            ],
        )
        .await
        .tokens();
    let refreshed = server
        .post_form(
            "/oauth/v2/token",
            &[
                ("client_id", a.id.as_str()),
                ("client_secret", a.secret()),
                ("grant_type", "refresh_token"),
                ("refresh_token", exchanged.refresh()),
            ],
        )
        .await
        .tokens();
    assert!(
        refreshed.refresh.is_none(),
        "the refresh token is not rotated"
    );
    assert!(server.access_works(&refreshed.access).await);

    let revoked = server
        .post_form("/oauth/v2/token/revoke", &[("token", exchanged.refresh())])
        .await;
    assert_eq!(
        (revoked.status, revoked.json()),
        (200, serde_json::json!({"status": "success"}))
    );
    assert!(!server.access_works(&refreshed.access).await);
}

#[tokio::test]
async fn zoho_node_sdk_multipart_exchange_refresh_and_revoke() {
    skip_without_postgres!();
    let (server, user) = setup().await;
    let a = server.server_client("https://a.example/cb").await;
    let code = server
        .code(
            &server.browser(),
            &user,
            &a,
            SCOPE,
            &[("access_type", "offline")],
        )
        .await;

    let exchanged = server
        .post_multipart(
            "/oauth/v2/token",
            &[
                ("client_id", a.id.as_str()),
                ("client_secret", a.secret()),
                ("code", code.as_str()),
                ("grant_type", "authorization_code"),
                ("redirect_uri", "https://a.example/cb"),
            ],
        )
        .await
        .tokens();
    assert_eq!(
        scope_set(exchanged.body["scope"].as_str().unwrap()),
        scope_set(SCOPE)
    );
    let refreshed = server
        .post_multipart(
            "/oauth/v2/token",
            &[
                ("client_id", a.id.as_str()),
                ("client_secret", a.secret()),
                ("grant_type", "refresh_token"),
                ("refresh_token", exchanged.refresh()),
            ],
        )
        .await
        .tokens();
    assert!(server.access_works(&refreshed.access).await);

    let revoked = server
        .post_multipart("/oauth/v2/token/revoke", &[("token", exchanged.refresh())])
        .await;
    assert_eq!(
        (revoked.status, revoked.json()),
        (200, serde_json::json!({"status": "success"}))
    );
    assert!(!server.refresh_works(&a, exchanged.refresh()).await);
    assert!(!server.access_works(&refreshed.access).await);
}

#[tokio::test]
async fn zoho_docs_query_string_on_a_post_with_an_empty_body() {
    skip_without_postgres!();
    let (server, user) = setup().await;
    let a = server.server_client("https://a.example/cb").await;
    let code = server
        .code(
            &server.browser(),
            &user,
            &a,
            SCOPE,
            &[("access_type", "offline")],
        )
        .await;

    let exchanged = server
        .post_query(
            "/oauth/v2/token",
            &[
                ("code", code.as_str()),
                ("grant_type", "authorization_code"),
                ("client_id", a.id.as_str()),
                ("client_secret", a.secret()),
                ("redirect_uri", "https://a.example/cb"),
            ],
        )
        .await
        .tokens();
    let refreshed = server
        .post_query(
            "/oauth/v2/token",
            &[
                ("refresh_token", exchanged.refresh()),
                ("client_id", a.id.as_str()),
                ("client_secret", a.secret()),
                ("grant_type", "refresh_token"),
            ],
        )
        .await
        .tokens();
    assert!(server.access_works(&refreshed.access).await);

    let revoked = server
        .post_query(
            "/oauth/v2/token/revoke",
            &[("token", refreshed.access.as_str())],
        )
        .await;
    assert_eq!(
        (revoked.status, revoked.json()),
        (200, serde_json::json!({"status": "success"}))
    );
    assert!(!server.access_works(&refreshed.access).await);
    assert!(
        server.refresh_works(&a, exchanged.refresh()).await,
        "revoking an access token keeps its refresh token"
    );
}

#[tokio::test]
async fn standard_library_pkce_exchange_with_http_basic() {
    skip_without_postgres!();
    let (server, user) = setup().await;
    let a = server.server_client("https://a.example/cb").await;
    let challenge = s256(VERIFIER);
    let code = server
        .code(
            &server.browser(),
            &user,
            &a,
            "ZohoCRM.modules.ALL AaaServer.profile.READ",
            &[
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
                ("access_type", "offline"),
            ],
        )
        .await;

    let tokens = server
        .post_form_basic(
            "/oauth/v2/token",
            &a.id,
            a.secret(),
            &[
                ("code", code.as_str()),
                ("code_verifier", VERIFIER),
                ("grant_type", "authorization_code"),
                ("redirect_uri", "https://a.example/cb"),
            ],
        )
        .await
        .tokens();
    assert_eq!(
        scope_set(tokens.body["scope"].as_str().unwrap()),
        scope_set(SCOPE)
    );

    // Standard refresh: Basic, the granted scopes space-separated.
    let refreshed = server
        .post_form_basic(
            "/oauth/v2/token",
            &a.id,
            a.secret(),
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", tokens.refresh()),
                ("scope", "AaaServer.profile.READ ZohoCRM.modules.ALL"),
            ],
        )
        .await
        .tokens();
    assert_eq!(
        scope_set(refreshed.body["scope"].as_str().unwrap()),
        scope_set(SCOPE)
    );

    // Standard revoke: Basic, with a hint.
    let revoked = server
        .post_form_basic(
            "/oauth/v2/token/revoke",
            &a.id,
            a.secret(),
            &[
                ("token", tokens.refresh()),
                ("token_type_hint", "refresh_token"),
            ],
        )
        .await;
    assert_eq!(
        (revoked.status, revoked.json()),
        (200, serde_json::json!({"status": "success"}))
    );
    assert!(!server.access_works(&refreshed.access).await);
}

#[tokio::test]
async fn standard_library_refresh_and_revoke_with_credentials_in_the_body() {
    skip_without_postgres!();
    let (server, user) = setup().await;
    let a = server.server_client("https://a.example/cb").await;
    let tokens = server.offline_tokens(&user, &a, SCOPE).await;

    let refreshed = server
        .post_form(
            "/oauth/v2/token",
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", tokens.refresh()),
                ("scope", "ZohoCRM.modules.ALL AaaServer.profile.READ"),
                ("client_id", a.id.as_str()),
                ("client_secret", a.secret()),
            ],
        )
        .await
        .tokens();
    let revoked = server
        .post_form(
            "/oauth/v2/token/revoke",
            &[
                ("token", refreshed.access.as_str()),
                ("token_type_hint", "access_token"),
                ("client_id", a.id.as_str()),
                ("client_secret", a.secret()),
            ],
        )
        .await;
    assert_eq!(
        (revoked.status, revoked.json()),
        (200, serde_json::json!({"status": "success"}))
    );
    assert!(!server.access_works(&refreshed.access).await);
    assert!(server.access_works(&tokens.access).await);
}

#[tokio::test]
async fn strict_standard_client_reads_discovery_first() {
    skip_without_postgres!();
    let (server, user) = setup().await;
    let metadata = server.get("/.well-known/oauth-authorization-server").await;
    assert_eq!(metadata.status, 200);
    let metadata = metadata.json();
    assert_eq!(metadata["issuer"], server.url.as_str());

    // Then it uses exactly the advertised endpoints.
    let a = server.server_client("https://a.example/cb").await;
    let auth = reqwest::Url::parse_with_params(
        metadata["authorization_endpoint"].as_str().unwrap(),
        &[
            ("response_type", "code"),
            ("client_id", a.id.as_str()),
            ("scope", "ZohoCRM.modules.ALL AaaServer.profile.READ"),
            ("redirect_uri", "https://a.example/cb"),
            ("state", "discovered"),
        ],
    )
    .unwrap();
    let redirect = server
        .browser()
        .authorize(auth.as_str(), &user, crate::Decision::Accept)
        .await
        .redirect;
    assert_eq!(redirect.param("iss"), metadata["issuer"].as_str());
    let resp = server
        .http
        .client
        .post(metadata["token_endpoint"].as_str().unwrap())
        .header("Authorization", crate::basic(&a.id, a.secret()))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", redirect.code().as_str()),
            ("redirect_uri", "https://a.example/cb"),
        ])
        .send()
        .await
        .unwrap();
    let tokens = Reply::read(resp).await.tokens();
    let resp = server
        .http
        .client
        .post(metadata["revocation_endpoint"].as_str().unwrap())
        .header("Authorization", crate::basic(&a.id, a.secret()))
        .form(&[("token", tokens.access.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert!(!server.access_works(&tokens.access).await);
}

#[tokio::test]
async fn t087_percent_encoding_edge_cases_decode_correctly_or_fail_cleanly() {
    skip_without_postgres!();
    let (server, user) = setup().await;
    let a = server.server_client("https://a.example/cb").await;
    let tokens = server
        .offline_tokens(&user, &a, "Demo.x.READ,Demo.y.READ")
        .await;
    let prefix = format!(
        "grant_type=refresh_token&client_id={}&client_secret={}&refresh_token={}&scope=",
        a.id,
        a.secret(),
        tokens.refresh()
    );
    let send = |scope: &'static str| {
        let body = format!("{prefix}{scope}");
        let server = &server;
        async move {
            let resp = server
                .http
                .client
                .post(server.at("/oauth/v2/token"))
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(body)
                .send()
                .await
                .unwrap();
            Reply::read(resp).await
        }
    };

    for good in [
        "Demo.x.READ+Demo.y.READ",
        "Demo.x.READ%20Demo.y.READ",
        "Demo.x.READ%2CDemo.y.READ",
        "demo.x.read+DEMO.Y.READ",
    ] {
        let reply = send(good).await;
        let refreshed = reply.tokens();
        assert_eq!(
            scope_set(refreshed.body["scope"].as_str().unwrap()),
            ["Demo.x.READ", "Demo.y.READ"],
            "{good}"
        );
    }
    for bad in [
        "Demo.x.READ%2",
        "Demo.x.READ%zz",
        "Demo.x.READ%2520Demo.y.READ",
        "Demo.x.READ%ff%fe",
        "%",
        "Demo.x.READ%00",
    ] {
        let reply = send(bad).await;
        assert_eq!(reply.status, 400, "{bad}: {}", reply.body);
        let error = reply.json()["error"].as_str().unwrap().to_owned();
        assert!(
            error == "invalid_scope" || error == "invalid_request",
            "{bad}: {error}"
        );
        reply.assert_error(
            Dialect::Standard,
            if error == "invalid_scope" {
                crate::Wire::InvalidScope
            } else {
                crate::Wire::InvalidRequest
            },
        );
    }
}
