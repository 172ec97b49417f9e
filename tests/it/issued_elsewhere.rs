//! Codes and tokens work only at the data center that minted them (CONTRACT.md "Data
//! centers"): presented at another DC, after the client authenticates there, they get the
//! dialect's bad-grant error with a description naming the issuing DC and its accounts server,
//! decided from the token alone. Two in-process DCs, us and eu, each with its own database; the
//! peers' URLs are only named, never called.

use grantd_core::datacenter::Peer;
use grantd_core::{ClientType, Dialect};
use grantd_server::Settings;

use crate::{start_with, unknown_token, TestServer, Wire, CRM_AND_PROFILE};

const EU_ACCOUNTS: &str = "https://accounts.example.eu";

fn as_dc(location: &str, peer: (&str, &str)) -> impl FnOnce(&mut Settings) {
    let location = location.to_owned();
    let (code, accounts) = (peer.0.to_owned(), peer.1.to_owned());
    move |settings: &mut Settings| {
        settings.location = location;
        settings.datacenters.insert(
            code,
            Peer {
                accounts,
                api_domain: "https://api.example.test".into(),
            },
        );
    }
}

async fn us_and_eu() -> (TestServer, TestServer) {
    let us = start_with(as_dc("us", ("eu", EU_ACCOUNTS))).await;
    let eu = start_with(as_dc("eu", ("us", "https://accounts.example.com"))).await;
    (us, eu)
}

fn description(reply: &crate::Reply) -> String {
    reply.json()["error_description"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn a_code_or_refresh_token_from_another_dc_names_it() {
    skip_without_postgres!();
    let (us, eu) = us_and_eu().await;
    for dialect in [Dialect::Standard, Dialect::Zoho] {
        let eu_user = eu.user(&format!("{dialect:?}@example.eu")).await;
        let redirect = ["https://app.example/cb"];
        let eu_client = eu
            .client(ClientType::Server, &redirect, dialect, None)
            .await;
        let us_client = us
            .client(ClientType::Server, &redirect, dialect, None)
            .await;
        let code = eu
            .code(
                &eu.browser(),
                &eu_user,
                &eu_client,
                CRM_AND_PROFILE,
                &[("access_type", "offline")],
            )
            .await;

        // The caller authenticates at us with us's client; the code is eu's.
        let reply = us.exchange(&us_client, &code).await;
        let wrong_dc = format!("this grant code was issued by data center eu; use {EU_ACCOUNTS}");
        assert_eq!(description(&reply), wrong_dc, "{dialect:?}: {}", reply.body);
        reply.assert_error(dialect, Wire::InvalidGrant);

        // The code is untouched by the attempt at us: eu still redeems it.
        let tokens = eu.exchange(&eu_client, &code).await.tokens();
        let reply = us.refresh(&us_client, tokens.refresh()).await;
        assert_eq!(
            description(&reply),
            format!("this refresh token was issued by data center eu; use {EU_ACCOUNTS}"),
            "{dialect:?}"
        );
        reply.assert_error(dialect, Wire::InvalidGrant);

        // A client that fails to authenticate at us learns nothing about the code.
        let mut impostor = us_client.clone();
        impostor.secret = impostor.secret.map(|s| format!("{s}x"));
        let reply = us.refresh(&impostor, tokens.refresh()).await;
        assert!(
            !description(&reply).contains("data center"),
            "{}",
            reply.body
        );
    }
}

#[tokio::test]
async fn an_access_token_from_another_dc_is_invalid_token_naming_it() {
    skip_without_postgres!();
    let (us, eu) = us_and_eu().await;
    let user = eu.user("ada@example.eu").await;
    let client = eu.server_client("https://app.example/cb").await;
    let tokens = eu.tokens(&user, &client, CRM_AND_PROFILE, &[]).await;
    assert_eq!(eu.userinfo(&tokens.access).await.status, 200);

    let reply = us.userinfo(&tokens.access).await;
    let named = format!("this access token was issued by data center eu; use {EU_ACCOUNTS}");
    assert_eq!(reply.status, 401, "{}", reply.body);
    assert_eq!(reply.json()["error"], "invalid_token");
    assert_eq!(description(&reply), named);
    let challenge = reply.header("www-authenticate").unwrap_or_default();
    assert!(
        challenge.contains("error=\"invalid_token\"") && challenge.contains(&named),
        "{challenge}"
    );
}

#[tokio::test]
async fn unknown_tokens_of_this_dc_or_of_no_dc_name_nobody() {
    skip_without_postgres!();
    let (us, _eu) = us_and_eu().await;
    let user = us.user("ada@example.com").await;
    let client = us.server_client("https://app.example/cb").await;
    let tokens = us.offline_tokens(&user, &client, CRM_AND_PROFILE).await;
    assert_eq!(us.revoke(tokens.refresh()).await.status, 200);
    for token in [tokens.refresh().to_owned(), unknown_token()] {
        let reply = us.refresh(&client, &token).await;
        reply.assert_invalid_grant();
        assert!(
            !description(&reply).contains("data center"),
            "{}",
            reply.body
        );
        let reply = us.userinfo(&token).await;
        assert_eq!(
            (reply.status, reply.json()["error"].clone()),
            (401, "invalid_token".into())
        );
        assert!(
            reply.json().get("error_description").is_none(),
            "{}",
            reply.body
        );
    }

    // Without peers, a DC names nobody either, whoever minted the token.
    let eu = start_with(as_dc("eu", ("us", "https://accounts.example.com"))).await;
    let single = start_with(|_| {}).await;
    let eu_user = eu.user("bo@example.eu").await;
    let eu_client = eu.server_client("https://app.example/cb").await;
    let eu_tokens = eu.tokens(&eu_user, &eu_client, CRM_AND_PROFILE, &[]).await;
    let reply = single.userinfo(&eu_tokens.access).await;
    assert_eq!(reply.status, 401);
    assert!(
        reply.json().get("error_description").is_none(),
        "{}",
        reply.body
    );
}
