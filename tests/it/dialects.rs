//! Every row of CONTRACT.md's "Error dialects" table, in both dialects: `standard` answers the
//! RFC status and name, `zoho` answers 200 and Zoho's name. The client's dialect decides; where
//! the client is unknown, the server's default does.

use grantd_core::Dialect;
use serde_json::json;

use crate::{
    start, start_with, unknown_token, TestClient, TestServer, TestUser, Wire, CRM_AND_PROFILE,
};

/// A server with a user and two server-based clients: A (standard) and Z (zoho).
async fn setup() -> (TestServer, TestUser, [TestClient; 2]) {
    let server = start().await;
    let user = server.user("ada@example.com").await;
    let a = server.server_client("https://a.example/cb").await;
    let z = server.zoho_client("https://z.example/cb").await;
    assert_eq!((a.dialect, z.dialect), (Dialect::Standard, Dialect::Zoho));
    (server, user, [a, z])
}

async fn fresh_code(server: &TestServer, user: &TestUser, client: &TestClient) -> String {
    let browser = server.browser_of(user);
    server
        .code(
            &browser,
            user,
            client,
            CRM_AND_PROFILE,
            &[("access_type", "offline"), ("prompt", "consent")],
        )
        .await
}

#[tokio::test]
async fn row_unknown_client_and_wrong_secret() {
    skip_without_postgres!();
    let (server, user, clients) = setup().await;
    for client in &clients {
        let code = fresh_code(&server, &user, client).await;
        let wrong = TestClient {
            secret: Some("0".repeat(42)),
            ..client.clone()
        };
        server
            .exchange(&wrong, &code)
            .await
            .assert_error(client.dialect, Wire::InvalidClient);
        server
            .refresh(&wrong, &unknown_token())
            .await
            .assert_error(client.dialect, Wire::InvalidClient);
    }
    // An unknown client speaks the server's default dialect.
    for default in [Dialect::Standard, Dialect::Zoho] {
        let server = start_with(|s| s.default_dialect = default).await;
        let fields = [
            ("client_id", "1000.UNKNOWNUNKNOWNUNKNOWNUNKNOWN00"),
            ("client_secret", "abc"),
            ("grant_type", "authorization_code"),
            ("code", &unknown_token()),
        ];
        server
            .post_form("/oauth/v2/token", &fields)
            .await
            .assert_error(default, Wire::InvalidClient);
    }
}

#[tokio::test]
async fn row_bad_used_or_expired_code_and_revoked_or_unknown_refresh_token() {
    skip_without_postgres!();
    let (server, user, clients) = setup().await;
    for client in &clients {
        let d = client.dialect;
        // Unknown and malformed codes.
        server
            .exchange(client, &unknown_token())
            .await
            .assert_error(d, Wire::InvalidGrant);
        server
            .exchange(client, "not-a-code")
            .await
            .assert_error(d, Wire::InvalidGrant);
        // A used code.
        let code = fresh_code(&server, &user, client).await;
        let tokens = server.exchange(client, &code).await.tokens();
        server
            .exchange(client, &code)
            .await
            .assert_error(d, Wire::InvalidGrant);
        // An expired code.
        let code = fresh_code(&server, &user, client).await;
        server.clock.advance(61);
        server
            .exchange(client, &code)
            .await
            .assert_error(d, Wire::InvalidGrant);
        // Unknown and revoked refresh tokens (the replay above revoked this one).
        server
            .refresh(client, &unknown_token())
            .await
            .assert_error(d, Wire::InvalidGrant);
        server
            .refresh(client, tokens.refresh())
            .await
            .assert_error(d, Wire::InvalidGrant);
    }
}

#[tokio::test]
async fn row_redirect_uri_mismatch_at_the_token_endpoint() {
    skip_without_postgres!();
    let (server, user, clients) = setup().await;
    for client in &clients {
        let code = fresh_code(&server, &user, client).await;
        let mut fields = client.body_auth();
        fields.push(("grant_type", "authorization_code".into()));
        fields.push(("code", code));
        fields.push(("redirect_uri", "https://evil.test/cb".into()));
        let reply = server.post_form("/oauth/v2/token", &fields).await;
        reply.assert_error(client.dialect, Wire::RedirectUriMismatch);
        reply.assert_nothing_issued();
    }
}

#[tokio::test]
async fn row_missing_or_malformed_parameter() {
    skip_without_postgres!();
    let (server, _, clients) = setup().await;
    for client in &clients {
        // No code.
        let mut fields = client.body_auth();
        fields.push(("grant_type", "authorization_code".into()));
        fields.push(("redirect_uri", client.redirect_uri.clone()));
        server
            .post_form("/oauth/v2/token", &fields)
            .await
            .assert_error(client.dialect, Wire::InvalidRequest);
        // No grant_type.
        let mut fields = client.body_auth();
        fields.push(("code", unknown_token()));
        server
            .post_form("/oauth/v2/token", &fields)
            .await
            .assert_error(client.dialect, Wire::InvalidRequest);
        // A repeated parameter (RFC 6749 §3.2).
        let mut fields = client.body_auth();
        fields.push(("grant_type", "refresh_token".into()));
        fields.push(("refresh_token", unknown_token()));
        fields.push(("refresh_token", unknown_token()));
        server
            .post_form("/oauth/v2/token", &fields)
            .await
            .assert_error(client.dialect, Wire::InvalidRequest);
    }
}

#[tokio::test]
async fn row_unsupported_grant_type() {
    skip_without_postgres!();
    let (server, _, clients) = setup().await;
    for client in &clients {
        for grant_type in ["password", "token", "AUTHORIZATION_CODE"] {
            let mut fields = client.body_auth();
            fields.push(("grant_type", grant_type.into()));
            server
                .post_form("/oauth/v2/token", &fields)
                .await
                .assert_error(client.dialect, Wire::UnsupportedGrantType);
        }
    }
}

#[tokio::test]
async fn row_scope_not_allowed() {
    skip_without_postgres!();
    let (server, user, clients) = setup().await;
    for client in &clients {
        let code = fresh_code(&server, &user, client).await;
        let tokens = server.exchange(client, &code).await.tokens();
        for scope in ["ZohoCRM.settings.READ", "Nope.x.READ"] {
            server
                .refresh_scoped(client, tokens.refresh(), scope)
                .await
                .assert_error(client.dialect, Wire::InvalidScope);
        }
    }
}

#[tokio::test]
async fn row_throttled() {
    skip_without_postgres!();
    let (server, user, clients) = setup().await;
    for client in &clients {
        let code = fresh_code(&server, &user, client).await;
        let tokens = server.exchange(client, &code).await.tokens();
        let mut last = server.refresh(client, tokens.refresh()).await;
        for _ in 0..10 {
            if last.status != 200 || last.json().get("error").is_some() {
                break;
            }
            last = server.refresh(client, tokens.refresh()).await;
        }
        last.assert_error(client.dialect, Wire::Throttled);
        if client.dialect == Dialect::Standard {
            assert!(last
                .header("retry-after")
                .is_some_and(|v| v.parse::<u64>().is_ok_and(|s| s > 0)));
        }
    }
}

#[tokio::test]
async fn row_revoke_of_an_unknown_token() {
    skip_without_postgres!();
    let (server, _, clients) = setup().await;
    let expected = [
        (200, json!({"status": "success"})),
        (400, json!("invalid_token")),
    ];
    for (client, (status, body)) in clients.iter().zip(expected) {
        let mut fields = client.body_auth();
        fields.push(("token", unknown_token()));
        let reply = server.post_form("/oauth/v2/token/revoke", &fields).await;
        assert_eq!(reply.status, status, "{:?}: {}", client.dialect, reply.body);
        match client.dialect {
            Dialect::Standard => assert_eq!(reply.json(), body),
            Dialect::Zoho => assert_eq!(reply.json()["error"], body),
        }
        reply.assert_no_store();
    }
}

#[tokio::test]
async fn zoho_dialect_never_changes_success_bodies() {
    skip_without_postgres!();
    let (server, user, clients) = setup().await;
    let z = &clients[1];
    let code = fresh_code(&server, &user, z).await;
    let tokens = server.exchange(z, &code).await.tokens();
    let refreshed = server.refresh(z, tokens.refresh()).await.tokens();
    assert!(server.access_works(&refreshed.access).await);
    let revoked = server.revoke(tokens.refresh()).await;
    assert_eq!(
        (revoked.status, revoked.json()),
        (200, json!({"status": "success"}))
    );
}
