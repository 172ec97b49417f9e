//! Zoho's newer revoke form, `POST /oauth/v2/revoke/token` (CONTRACT.md "Incremental
//! authorization", last paragraph): HTTP Basic client authentication, `token` and
//! `token_type`; `200 {"status":"success"}`; a wrong secret is `invalid_client` and the token
//! keeps working. The rule is the older endpoint's (revoke.rs tests it at length).

use grantd_core::Dialect;
use serde_json::json;

use crate::{ada_and_a, start, Reply, TestClient, TestServer, Wire};

const SCOPE: &str = "ZohoCRM.modules.ALL,AaaServer.profile.READ";
const PATH: &str = "/oauth/v2/revoke/token";

async fn revoke_basic(
    server: &TestServer,
    client: &TestClient,
    secret: &str,
    token: &str,
    token_type: &str,
) -> Reply {
    server
        .post_form_basic(
            PATH,
            &client.id,
            secret,
            &[("token", token), ("token_type", token_type)],
        )
        .await
}

fn assert_success(reply: &Reply) {
    assert_eq!(
        (reply.status, reply.json()),
        (200, json!({"status": "success"})),
        "{}",
        reply.body
    );
}

#[tokio::test]
async fn the_newer_form_revokes_refresh_and_access_tokens() {
    skip_without_postgres!();
    let (server, user, a) = ada_and_a().await;
    let tokens = server.offline_tokens(&user, &a, SCOPE).await;
    let reply = revoke_basic(&server, &a, a.secret(), &tokens.access, "access_token").await;
    assert_success(&reply);
    assert!(!server.access_works(&tokens.access).await);
    assert!(server.refresh_works(&a, tokens.refresh()).await);

    let minted = server.refresh(&a, tokens.refresh()).await.tokens();
    let reply = revoke_basic(&server, &a, a.secret(), tokens.refresh(), "refresh_token").await;
    assert_success(&reply);
    assert!(!server.refresh_works(&a, tokens.refresh()).await);
    assert!(
        !server.access_works(&minted.access).await,
        "an access token outlived its refresh token"
    );
}

#[tokio::test]
async fn a_wrong_secret_is_invalid_client_and_the_token_keeps_working() {
    skip_without_postgres!();
    let server = start().await;
    let user = server.user("ada@example.com").await;
    for client in [
        server.server_client("https://a.example/cb").await,
        server.zoho_client("https://z.example/cb").await,
    ] {
        let tokens = server.offline_tokens(&user, &client, SCOPE).await;
        let reply = revoke_basic(
            &server,
            &client,
            "not-the-secret",
            tokens.refresh(),
            "refresh_token",
        )
        .await;
        reply.assert_error(client.dialect, Wire::InvalidClient);
        if client.dialect == Dialect::Standard {
            assert!(reply
                .header("www-authenticate")
                .is_some_and(|h| h.starts_with("Basic")));
        }
        // Without any client authentication: the same.
        let bare = server
            .post_form(
                PATH,
                &[("token", tokens.refresh()), ("token_type", "refresh_token")],
            )
            .await;
        bare.assert_error(server.app.settings.default_dialect, Wire::InvalidClient);
        assert!(server.refresh_works(&client, tokens.refresh()).await);
        assert!(server.access_works(&tokens.access).await);
    }
}

#[tokio::test]
async fn another_clients_token_and_bad_token_types_are_refused() {
    skip_without_postgres!();
    let (server, user, a) = ada_and_a().await;
    let b = server.server_client("https://b.example/cb").await;
    let tokens = server.offline_tokens(&user, &a, SCOPE).await;
    // B cannot revoke A's token: answered as an unknown token (RFC 7009 §2.2), nothing done.
    let reply = revoke_basic(&server, &b, b.secret(), tokens.refresh(), "refresh_token").await;
    assert_success(&reply);
    assert!(server.refresh_works(&a, tokens.refresh()).await);
    let reply = revoke_basic(&server, &a, a.secret(), tokens.refresh(), "id_token").await;
    reply.assert_error(Dialect::Standard, Wire::InvalidRequest);
    assert!(server.refresh_works(&a, tokens.refresh()).await);
}

#[tokio::test]
async fn the_newer_form_reads_the_query_string_too() {
    skip_without_postgres!();
    let (server, user, a) = ada_and_a().await;
    let tokens = server.offline_tokens(&user, &a, SCOPE).await;
    let reply = server
        .post_query(
            PATH,
            &[
                ("client_id", a.id.as_str()),
                ("client_secret", a.secret()),
                ("token", tokens.refresh()),
                ("token_type", "refresh_token"),
            ],
        )
        .await;
    assert_success(&reply);
    assert!(!server.refresh_works(&a, tokens.refresh()).await);
    assert_eq!(server.get(PATH).await.status, 405);
}
