//! Using tokens: `/oauth/user/info` with both authorization schemes, RFC 7662 introspection,
//! and discovery (RFC 8414 metadata, Zoho's serverinfo).

use serde_json::json;

use crate::{ada_and_a, start, start_with, unknown_token, Decision, CRM_AND_PROFILE};

#[tokio::test]
async fn user_info_with_zoho_oauthtoken_and_bearer() {
    skip_without_postgres!();
    let (server, user, a) = ada_and_a().await;
    let tokens = server.tokens(&user, &a, CRM_AND_PROFILE, &[]).await;

    for scheme in ["Zoho-oauthtoken", "Bearer"] {
        let reply = server
            .userinfo_with(&format!("{scheme} {}", tokens.access))
            .await;
        assert_eq!(reply.status, 200, "{scheme}: {}", reply.body);
        let info = reply.json();
        assert_eq!(info["ZUID"], json!(user.id), "{info}");
        assert_eq!(info["Email"], user.email.as_str());
        assert_eq!(info["Display_Name"], user.name.as_str());
        assert_eq!(info["First_Name"], "Ada");
        assert_eq!(info["Last_Name"], "Lovelace");
        reply.assert_no_store();
    }
}

#[tokio::test]
async fn user_info_refuses_bad_tokens_with_the_bearer_challenge() {
    skip_without_postgres!();
    let (server, user, a) = ada_and_a().await;
    let tokens = server
        .tokens(&user, &a, CRM_AND_PROFILE, &[("access_type", "offline")])
        .await;
    let bad = [
        format!("Zoho-oauthtoken {}", unknown_token()),
        format!("Bearer {}", unknown_token()),
        format!("Bearer {}", tokens.refresh()),
        format!("Bearer {}x", tokens.access),
        format!("Bearer {}", tokens.access.to_uppercase()),
    ];
    for authorization in &bad {
        let reply = server.userinfo_with(authorization).await;
        assert_eq!(reply.status, 401, "{authorization}: {}", reply.body);
        let challenge = reply.header("www-authenticate").expect("WWW-Authenticate");
        assert!(challenge.starts_with("Bearer"), "{challenge}");
        assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
        assert!(!reply.body.contains("Lovelace"));
    }
    // No token, another scheme, or the token in the URL: not authenticated.
    let none = server.get("/oauth/user/info").await;
    assert_eq!(none.status, 401);
    assert!(none
        .header("www-authenticate")
        .is_some_and(|c| c.starts_with("Bearer")));
    let basic = server
        .userinfo_with(&crate::basic("x", &tokens.access))
        .await;
    assert_eq!(basic.status, 401);
    let in_url = server
        .get(&format!("/oauth/user/info?access_token={}", tokens.access))
        .await;
    assert_eq!(
        in_url.status, 401,
        "a token in the URL must not be accepted"
    );
}

#[tokio::test]
async fn user_info_without_the_profile_scope_is_insufficient_scope() {
    skip_without_postgres!();
    let (server, user, a) = ada_and_a().await;
    let tokens = server.tokens(&user, &a, "ZohoCRM.modules.ALL", &[]).await;

    let reply = server
        .userinfo_with(&format!("Bearer {}", tokens.access))
        .await;

    assert_eq!(reply.status, 403, "{}", reply.body);
    let challenge = reply.header("www-authenticate").expect("WWW-Authenticate");
    assert!(
        challenge.starts_with("Bearer") && challenge.contains("error=\"insufficient_scope\""),
        "{challenge}"
    );
    assert!(!reply.body.contains(&user.email));
}

/// A confidential client flagged as a resource server (`client add --introspect-any`).
async fn resource_server(server: &crate::TestServer) -> crate::TestClient {
    server
        .register(grantd_server::admin::ClientSpec {
            kind: grantd_core::ClientType::Server,
            name: "Resource server".into(),
            homepage: None,
            redirect_uris: vec!["https://rs.example/cb".into()],
            js_domain: None,
            owner_email: None,
            dialect: grantd_core::Dialect::Standard,
            introspect_any: true,
            id_token_alg: None,
        })
        .await
}

#[tokio::test]
async fn introspection_reports_live_tokens_and_nothing_else() {
    skip_without_postgres!();
    let (server, user, a) = ada_and_a().await;
    let rs = resource_server(&server).await;
    let issued_at = server.now().0;
    let tokens = server.offline_tokens(&user, &a, CRM_AND_PROFILE).await;

    // The caller may authenticate in the body (here the token's own client) or with Basic
    // (here a resource server, which sees every client's tokens).
    let by_body = server.introspect(&a, &tokens.access).await;
    let by_basic = server
        .post_form_basic(
            "/oauth/v2/introspect",
            &rs.id,
            rs.secret(),
            &[("token", tokens.access.as_str())],
        )
        .await;
    for reply in [&by_body, &by_basic] {
        assert_eq!(reply.status, 200, "{}", reply.body);
        let info = reply.json();
        assert_eq!(info["active"], true);
        assert_eq!(
            crate::scope_set(info["scope"].as_str().unwrap()),
            ["AaaServer.profile.READ", "ZohoCRM.modules.ALL"]
        );
        assert_eq!(info["client_id"], a.id.as_str());
        assert!(
            info["sub"].as_str().is_some_and(|s| !s.is_empty()),
            "{info}"
        );
        assert_eq!(info["exp"], json!(issued_at + 3600));
        // RFC 7662 §2.2: the RFC 6749 §5.1 type, not which kind of token it is.
        assert_eq!(info["token_type"], "Bearer");
        reply.assert_no_store();
    }
    let refresh = server.introspect(&a, tokens.refresh()).await.json();
    assert_eq!(
        (refresh["active"].clone(), refresh["client_id"].clone()),
        (json!(true), json!(a.id))
    );
    assert_eq!(refresh["token_type"], "Bearer");
    assert!(refresh.get("exp").is_none(), "{refresh}");

    // Unknown, garbage, revoked and expired tokens are all simply inactive.
    let inactive = json!({"active": false});
    assert_eq!(
        server.introspect(&a, &unknown_token()).await.json(),
        inactive
    );
    assert_eq!(server.introspect(&a, "garbage").await.json(), inactive);
    let other = server.tokens(&user, &a, CRM_AND_PROFILE, &[]).await;
    server.revoke(&other.access).await;
    assert_eq!(server.introspect(&a, &other.access).await.json(), inactive);
    server.clock.advance(3601);
    assert_eq!(server.introspect(&a, &tokens.access).await.json(), inactive);
}

/// Issue 12: a client may introspect only the tokens issued to itself; another client, even
/// an authenticated confidential one, learns nothing (the answer of an unknown token), unless
/// it is flagged as a resource server.
#[tokio::test]
async fn introspection_shows_a_client_only_its_own_tokens() {
    skip_without_postgres!();
    let (server, user, a) = ada_and_a().await;
    let b = server.server_client("https://b.example/cb").await;
    let rs = resource_server(&server).await;
    let of_a = server.offline_tokens(&user, &a, CRM_AND_PROFILE).await;
    let of_b = server.offline_tokens(&user, &b, CRM_AND_PROFILE).await;
    let inactive = json!({"active": false});

    for token in [of_a.access.as_str(), of_a.refresh()] {
        assert_eq!(server.introspect(&b, token).await.json(), inactive);
        assert_eq!(server.introspect(&a, token).await.json()["active"], true);
        assert_eq!(server.introspect(&rs, token).await.json()["active"], true);
    }
    for token in [of_b.access.as_str(), of_b.refresh()] {
        assert_eq!(server.introspect(&a, token).await.json(), inactive);
        assert_eq!(
            server.introspect(&b, token).await.json()["client_id"],
            b.id.as_str()
        );
        assert_eq!(
            server.introspect(&rs, token).await.json()["client_id"],
            b.id.as_str()
        );
    }
    // Introspecting another client's token changes nothing for it.
    assert!(server.access_works(&of_a.access).await);
    assert!(server.refresh_works(&a, of_a.refresh()).await);
}

#[tokio::test]
async fn introspection_requires_client_authentication() {
    skip_without_postgres!();
    let (server, user, a) = ada_and_a().await;
    let tokens = server.tokens(&user, &a, CRM_AND_PROFILE, &[]).await;

    let anonymous = server
        .post_form("/oauth/v2/introspect", &[("token", tokens.access.as_str())])
        .await;
    anonymous.assert_error(grantd_core::Dialect::Standard, crate::Wire::InvalidClient);
    let wrong = server
        .post_form_basic(
            "/oauth/v2/introspect",
            &a.id,
            "wrong",
            &[("token", tokens.access.as_str())],
        )
        .await;
    wrong.assert_error(grantd_core::Dialect::Standard, crate::Wire::InvalidClient);
    assert!(!wrong.body.contains("active"));
}

#[tokio::test]
async fn t019_discovery_metadata_names_the_configured_issuer_and_endpoints() {
    skip_without_postgres!();
    let server = start().await;
    let reply = server.get("/.well-known/oauth-authorization-server").await;
    assert_eq!(reply.status, 200);
    assert!(reply
        .header("content-type")
        .unwrap()
        .starts_with("application/json"));
    let meta = reply.json();
    let url = &server.url;
    assert_eq!(meta["issuer"], url.as_str());
    assert_eq!(
        meta["authorization_endpoint"],
        format!("{url}/oauth/v2/auth")
    );
    assert_eq!(meta["token_endpoint"], format!("{url}/oauth/v2/token"));
    assert_eq!(
        meta["revocation_endpoint"],
        format!("{url}/oauth/v2/token/revoke")
    );
    assert_eq!(
        meta["introspection_endpoint"],
        format!("{url}/oauth/v2/introspect")
    );
    assert_eq!(meta["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(meta["authorization_response_iss_parameter_supported"], true);
    assert!(
        !reply.body.contains("api.test.example/oauth"),
        "endpoints live on {{accounts}}"
    );
}

#[tokio::test]
async fn t019_iss_and_accounts_server_come_from_configuration_not_the_host_header() {
    skip_without_postgres!();
    // http, so the browser's cookies still flow to the test server over plain HTTP.
    let public = "http://accounts.eu.test.example";
    let server = start_with(|s| {
        s.public_url = public.into();
        s.location = "eu".into();
    })
    .await;
    let user = server.user("ada@example.com").await;
    let a = server.server_client("https://a.example/cb").await;
    let url = server.auth_url(&a, "ZohoCRM.modules.ALL", &[("state", "eu")]);

    let redirect = server
        .browser()
        .authorize(&url, &user, Decision::Accept)
        .await
        .redirect;

    assert_eq!(redirect.param("iss"), Some(public));
    assert_eq!(redirect.param("accounts-server"), Some(public));
    assert_eq!(redirect.param("location"), Some("eu"));
    let meta = server
        .http
        .client
        .get(server.at("/.well-known/oauth-authorization-server"))
        .header("Host", "evil.test")
        .send()
        .await
        .unwrap();
    let meta: serde_json::Value = meta.json().await.unwrap();
    assert_eq!(meta["issuer"], public);
    assert_eq!(meta["token_endpoint"], format!("{public}/oauth/v2/token"));
}

#[tokio::test]
async fn serverinfo_lists_this_data_center() {
    skip_without_postgres!();
    let server = start_with(|s| s.location = "in".into()).await;
    let reply = server.get("/oauth/serverinfo").await;
    assert_eq!(reply.status, 200);
    let info = reply.json();
    assert_eq!(info["result"], "success");
    assert_eq!(info["locations"]["in"], server.url.as_str());
}

/// CONTRACT.md "Data centers": every DC's serverinfo lists every DC configured, itself too.
#[tokio::test]
async fn serverinfo_lists_every_configured_data_center() {
    skip_without_postgres!();
    let peer = |accounts: &str, api_domain: &str| grantd_core::datacenter::Peer {
        accounts: accounts.into(),
        api_domain: api_domain.into(),
    };
    let server = start_with(|s| {
        s.datacenters.insert(
            "eu".into(),
            peer("https://accounts.example.eu", "https://api.example.eu"),
        );
        s.datacenters.insert(
            "in".into(),
            peer("https://accounts.example.in", "https://api.example.in"),
        );
    })
    .await;
    let reply = server.get("/oauth/serverinfo").await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.json(),
        json!({
            "result": "success",
            "locations": {
                "eu": "https://accounts.example.eu",
                "in": "https://accounts.example.in",
                "us": server.url.as_str(),
            }
        })
    );
}
