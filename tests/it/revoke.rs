//! `POST /oauth/v2/token/revoke` (RFC 7009 in Zoho's shape): revocation really revokes, only
//! the owner's tokens, and an unknown token answers per dialect.

use grantd_core::Dialect;
use serde_json::json;

use crate::{ada_and_a, start_with, unknown_token, Reply, TestClient, TestServer, Wire};

const SCOPE: &str = "ZohoCRM.modules.ALL,AaaServer.profile.READ";

fn assert_success(reply: &Reply) {
    assert_eq!(
        (reply.status, reply.json()),
        (200, json!({"status": "success"})),
        "{}",
        reply.body
    );
}

async fn revoke_authenticated(
    server: &TestServer,
    client: &TestClient,
    token: &str,
    hint: Option<&str>,
) -> Reply {
    let mut fields = client.body_auth();
    fields.push(("token", token.into()));
    if let Some(hint) = hint {
        fields.push(("token_type_hint", hint.into()));
    }
    server.post_form("/oauth/v2/token/revoke", &fields).await
}

#[tokio::test]
async fn t056_revocation_really_revokes_whatever_the_hint() {
    skip_without_postgres!();
    let (server, user, a) = ada_and_a().await;
    for hint in [
        Some("access_token"),
        Some("refresh_token"),
        None,
        Some("bogus_hint"),
    ] {
        // An access token.
        let tokens = server.offline_tokens(&user, &a, SCOPE).await;
        assert_success(&revoke_authenticated(&server, &a, &tokens.access, hint).await);
        assert!(
            !server.access_works(&tokens.access).await,
            "access token alive after revoke ({hint:?})"
        );
        assert!(server.refresh_works(&a, tokens.refresh()).await);

        // A refresh token, with the hint of the other kind: it dies with its access tokens.
        let hint = match hint {
            Some("access_token") => Some("refresh_token"),
            Some("refresh_token") => Some("access_token"),
            other => other,
        };
        let tokens = server.offline_tokens(&user, &a, SCOPE).await;
        let minted = server.refresh(&a, tokens.refresh()).await.tokens();
        assert_success(&revoke_authenticated(&server, &a, tokens.refresh(), hint).await);
        assert!(!server.refresh_works(&a, tokens.refresh()).await);
        assert!(!server.access_works(&tokens.access).await);
        assert!(!server.access_works(&minted.access).await);
        // Introspection agrees.
        assert_eq!(
            server.introspect(&a, tokens.refresh()).await.json(),
            json!({"active": false})
        );
        assert_eq!(
            server.introspect(&a, &minted.access).await.json(),
            json!({"active": false})
        );
    }
}

#[tokio::test]
async fn t048_refresh_after_revocation_fails_and_derived_access_tokens_die() {
    skip_without_postgres!();
    let (server, user, a) = ada_and_a().await;
    let tokens = server.offline_tokens(&user, &a, SCOPE).await;
    let minted: Vec<String> = {
        let mut v = Vec::new();
        for _ in 0..3 {
            v.push(server.refresh(&a, tokens.refresh()).await.tokens().access);
        }
        v
    };

    assert_success(&server.revoke(tokens.refresh()).await);

    server
        .refresh(&a, tokens.refresh())
        .await
        .assert_error(Dialect::Standard, Wire::InvalidGrant);
    assert!(!server.access_works(&tokens.access).await);
    for access in &minted {
        assert!(!server.access_works(access).await);
    }
    assert_eq!(server.rows("access_tokens").await, 0);
}

#[tokio::test]
async fn t054_revoking_another_clients_token_looks_like_an_unknown_token_and_does_nothing() {
    skip_without_postgres!();
    let (server, user, a) = ada_and_a().await;
    let b = server.server_client("https://b.example/cb").await;
    let tokens = server.offline_tokens(&user, &a, SCOPE).await;

    let foreign_refresh = revoke_authenticated(&server, &b, tokens.refresh(), None).await;
    let foreign_access = revoke_authenticated(&server, &b, &tokens.access, None).await;
    let unknown = revoke_authenticated(&server, &b, &unknown_token(), None).await;

    assert_success(&unknown);
    for reply in [&foreign_refresh, &foreign_access] {
        assert_eq!((reply.status, &reply.body), (unknown.status, &unknown.body));
    }
    assert!(server.refresh_works(&a, tokens.refresh()).await);
    assert!(server.access_works(&tokens.access).await);
}

#[tokio::test]
async fn t055_confidential_client_without_or_with_a_wrong_secret_is_invalid_client() {
    skip_without_postgres!();
    let (server, user, a) = ada_and_a().await;
    let tokens = server.offline_tokens(&user, &a, SCOPE).await;

    let without = server
        .post_form(
            "/oauth/v2/token/revoke",
            &[("token", tokens.refresh()), ("client_id", a.id.as_str())],
        )
        .await;
    without.assert_error(Dialect::Standard, Wire::InvalidClient);
    let wrong = server
        .post_form(
            "/oauth/v2/token/revoke",
            &[
                ("token", tokens.refresh()),
                ("client_id", a.id.as_str()),
                ("client_secret", &"f".repeat(42)),
            ],
        )
        .await;
    wrong.assert_error(Dialect::Standard, Wire::InvalidClient);
    let by_basic = server
        .post_form_basic(
            "/oauth/v2/token/revoke",
            &a.id,
            "wrong",
            &[("token", tokens.refresh())],
        )
        .await;
    by_basic.assert_error(Dialect::Standard, Wire::InvalidClient);
    assert!(by_basic
        .header("www-authenticate")
        .is_some_and(|h| h.to_ascii_lowercase().starts_with("basic")));

    assert!(server.refresh_works(&a, tokens.refresh()).await);
    assert!(server.access_works(&tokens.access).await);
}

#[tokio::test]
async fn unknown_token_is_success_in_standard_and_invalid_token_in_zoho() {
    skip_without_postgres!();
    let (server, _, a) = ada_and_a().await;
    let z = server.zoho_client("https://z.example/cb").await;

    assert_success(&server.revoke(&unknown_token()).await);
    assert_success(
        &revoke_authenticated(&server, &a, &unknown_token(), Some("refresh_token")).await,
    );
    let zoho = revoke_authenticated(&server, &z, &unknown_token(), None).await;
    assert_eq!(
        (zoho.status, zoho.json()["error"].as_str()),
        (400, Some("invalid_token")),
        "{}",
        zoho.body
    );

    // Without client authentication, the server's default dialect decides.
    let zoho_server = start_with(|s| s.default_dialect = Dialect::Zoho).await;
    let reply = zoho_server.revoke(&unknown_token()).await;
    assert_eq!(
        (reply.status, reply.json()["error"].as_str()),
        (400, Some("invalid_token")),
        "{}",
        reply.body
    );
    reply.assert_no_store();
}

#[tokio::test]
async fn revoking_twice_answers_like_an_unknown_token() {
    skip_without_postgres!();
    let (server, user, a) = ada_and_a().await;
    let tokens = server.offline_tokens(&user, &a, SCOPE).await;
    assert_success(&server.revoke(tokens.refresh()).await);
    assert_success(&server.revoke(tokens.refresh()).await);
}

#[tokio::test]
async fn revoke_needs_a_token_and_a_post() {
    skip_without_postgres!();
    let (server, user, a) = ada_and_a().await;
    let tokens = server.offline_tokens(&user, &a, SCOPE).await;

    server
        .post_form(
            "/oauth/v2/token/revoke",
            &[("token_type_hint", "access_token")],
        )
        .await
        .assert_error(Dialect::Standard, Wire::InvalidRequest);
    let url = reqwest::Url::parse_with_params(
        &server.at("/oauth/v2/token/revoke"),
        &[("token", tokens.access.as_str())],
    )
    .unwrap();
    let by_get = server.http.client.get(url).send().await.unwrap();
    assert_eq!(by_get.status().as_u16(), 405);
    assert!(server.access_works(&tokens.access).await);
}
