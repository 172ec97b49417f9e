//! The refresh_token grant: when a refresh token is issued at all, what a refresh returns, and
//! the scope rules of RFC 6749 §6 (repeat or narrow, never widen).

use grantd_core::Dialect;

use crate::{ada_and_a, scope_set, Wire};

#[tokio::test]
async fn refresh_returns_the_exchange_body_without_a_refresh_token() {
    skip_without_postgres!();
    let (server, user, a) = ada_and_a().await;
    let tokens = server
        .offline_tokens(&user, &a, "ZohoCRM.modules.ALL,AaaServer.profile.READ")
        .await;

    let refreshed = server.refresh(&a, tokens.refresh()).await.tokens();

    let keys = refreshed.fields();
    assert_eq!(
        keys,
        [
            "access_token",
            "api_domain",
            "expires_in",
            "scope",
            "token_type"
        ]
    );
    assert_eq!(refreshed.body["expires_in"], 3600);
    assert_eq!(refreshed.body["scope"], tokens.body["scope"]);
    assert_ne!(refreshed.access, tokens.access);
    // Both access tokens work; the refresh token keeps working (it is not rotated).
    assert!(server.access_works(&tokens.access).await);
    assert!(server.access_works(&refreshed.access).await);
    assert!(server.refresh_works(&a, tokens.refresh()).await);
}

#[tokio::test]
async fn refresh_token_only_for_offline_on_first_consent_or_with_prompt_consent() {
    skip_without_postgres!();
    let (server, user, a) = ada_and_a().await;
    let browser = server.browser();
    let scope = "ZohoCRM.modules.ALL";
    let exchange = |extra: &'static [(&'static str, &'static str)]| {
        let (server, browser, user, a) = (&server, &browser, &user, &a);
        async move {
            let code = server.code(browser, user, a, scope, extra).await;
            server.exchange(a, &code).await.tokens()
        }
    };

    let first = exchange(&[("access_type", "offline")]).await;
    assert!(
        first.refresh.is_some(),
        "offline, first consent: {}",
        first.body
    );
    let again = exchange(&[("access_type", "offline")]).await;
    assert!(
        again.refresh.is_none(),
        "offline, consent already given: {}",
        again.body
    );
    let prompted = exchange(&[("access_type", "offline"), ("prompt", "consent")]).await;
    assert!(
        prompted.refresh.is_some(),
        "offline with prompt=consent: {}",
        prompted.body
    );
    let online = exchange(&[("access_type", "online"), ("prompt", "consent")]).await;
    assert!(online.refresh.is_none(), "online: {}", online.body);
    let default = exchange(&[]).await;
    assert!(
        default.refresh.is_none(),
        "access_type defaults to online: {}",
        default.body
    );
    // New scopes show the consent page again, but it is not the first consent.
    let wider = browser
        .authorize(
            &server.auth_url(
                &a,
                "ZohoCRM.modules.ALL,Demo.x.READ",
                &[("access_type", "offline")],
            ),
            &user,
            crate::Decision::Accept,
        )
        .await;
    assert!(wider.saw_consent);
    let widened = server.exchange(&a, &wider.redirect.code()).await.tokens();
    assert!(
        widened.refresh.is_none(),
        "offline, not the first consent: {}",
        widened.body
    );

    // Online from the first consent: no refresh token either.
    let b = server.server_client("https://b.example/cb").await;
    let code = server.code(&browser, &user, &b, scope, &[]).await;
    assert!(server.exchange(&b, &code).await.tokens().refresh.is_none());
    assert_eq!(server.rows("refresh_tokens").await, 2);
}

#[tokio::test]
async fn t045_refresh_cannot_widen_the_granted_scope() {
    skip_without_postgres!();
    let (server, user, a) = ada_and_a().await;
    let tokens = server.offline_tokens(&user, &a, "Demo.x.READ").await;

    for wider in [
        "Demo.x.READ Demo.y.READ",
        "Demo.y.READ",
        "Demo.x.ALL",
        "Demo.x.READ,AaaServer.profile.READ",
    ] {
        let reply = server.refresh_scoped(&a, tokens.refresh(), wider).await;
        reply.assert_error(Dialect::Standard, Wire::InvalidScope);
        reply.assert_nothing_issued();
    }
    // An unknown or malformed scope is invalid_scope too.
    for bad in ["Nope.x.READ", "Demo.x"] {
        server
            .refresh_scoped(&a, tokens.refresh(), bad)
            .await
            .assert_error(Dialect::Standard, Wire::InvalidScope);
    }
    assert_eq!(server.rows("access_tokens").await, 1);
}

#[tokio::test]
async fn t046_refresh_may_narrow_and_an_omitted_scope_means_the_original() {
    skip_without_postgres!();
    let (server, user, a) = ada_and_a().await;
    let tokens = server
        .offline_tokens(&user, &a, "Demo.x.READ,Demo.y.READ")
        .await;

    let narrow = server
        .refresh_scoped(&a, tokens.refresh(), "Demo.x.READ")
        .await
        .tokens();
    assert_eq!(narrow.body["scope"], "Demo.x.READ");
    let info = server.introspect(&a, &narrow.access).await.json();
    assert_eq!(info["active"], true);
    assert_eq!(info["scope"], "Demo.x.READ");

    let full = server.refresh(&a, tokens.refresh()).await.tokens();
    assert_eq!(
        scope_set(full.body["scope"].as_str().unwrap()),
        ["Demo.x.READ", "Demo.y.READ"]
    );
    let info = server.introspect(&a, &full.access).await.json();
    assert_eq!(
        scope_set(info["scope"].as_str().unwrap()),
        ["Demo.x.READ", "Demo.y.READ"]
    );
}

#[tokio::test]
async fn refresh_under_an_all_scope_may_ask_for_an_operation_below_it() {
    skip_without_postgres!();
    let (server, user, a) = ada_and_a().await;
    let tokens = server
        .offline_tokens(&user, &a, "ZohoCRM.modules.ALL")
        .await;

    let read = server
        .refresh_scoped(&a, tokens.refresh(), "zohocrm.MODULES.read")
        .await
        .tokens();
    assert_eq!(
        read.body["scope"], "ZohoCRM.modules.READ",
        "canonical spelling"
    );
    server
        .refresh_scoped(&a, tokens.refresh(), "ZohoCRM.settings.READ")
        .await
        .assert_error(Dialect::Standard, Wire::InvalidScope);
}

#[tokio::test]
async fn t047_another_clients_refresh_token_is_invalid_grant() {
    skip_without_postgres!();
    let (server, user, a) = ada_and_a().await;
    let b = server.server_client("https://b.example/cb").await;
    let tokens = server
        .offline_tokens(&user, &a, "ZohoCRM.modules.ALL")
        .await;

    let reply = server.refresh(&b, tokens.refresh()).await;

    reply.assert_error(Dialect::Standard, Wire::InvalidGrant);
    reply.assert_nothing_issued();
    assert!(server.refresh_works(&a, tokens.refresh()).await);
}

#[tokio::test]
async fn unknown_malformed_or_access_tokens_do_not_refresh() {
    skip_without_postgres!();
    let (server, user, a) = ada_and_a().await;
    let tokens = server
        .offline_tokens(&user, &a, "ZohoCRM.modules.ALL")
        .await;
    for bad in [
        crate::unknown_token(),
        tokens.access.clone(),
        "x".into(),
        tokens.refresh().to_uppercase(),
    ] {
        server
            .refresh(&a, &bad)
            .await
            .assert_error(Dialect::Standard, Wire::InvalidGrant);
    }
    // A missing refresh_token parameter is a malformed request.
    let mut fields = a.body_auth();
    fields.push(("grant_type", "refresh_token".into()));
    server
        .post_form("/oauth/v2/token", &fields)
        .await
        .assert_error(Dialect::Standard, Wire::InvalidRequest);
}

/// CONTRACT.md (token endpoint), RFC 9700 §2.2.2: a public client's (here a client-based app
/// with PKCE) refresh returns a new refresh token and retires the one presented; presenting a
/// retired one revokes the whole family, the current refresh token and its access tokens.
#[tokio::test]
async fn public_clients_refresh_tokens_rotate_and_a_replay_revokes_the_family() {
    skip_without_postgres!();
    let server = crate::start().await;
    let user = server.user("ada@example.com").await;
    let spa = server
        .client(
            grantd_core::ClientType::Client,
            &["https://spa.example/cb"],
            Dialect::Standard,
            None,
        )
        .await;
    assert!(spa.secret.is_none(), "a public client");
    let scope = "ZohoCRM.modules.ALL,AaaServer.profile.READ";
    let first = server.offline_tokens(&user, &spa, scope).await;
    let r1 = first.refresh().to_owned();

    let second = server.refresh(&spa, &r1).await.tokens();
    let r2 = second.refresh().to_owned();
    assert_ne!(r2, r1);
    assert_eq!(second.body["scope"], first.body["scope"]);
    let third = server.refresh(&spa, &r2).await.tokens();
    let r3 = third.refresh().to_owned();
    assert_ne!(r3, r2);
    for access in [&first.access, &second.access, &third.access] {
        assert!(server.access_works(access).await);
    }

    // The retired r1 comes back (stolen, or replayed): refused, and the family is revoked.
    let replay = server.refresh(&spa, &r1).await;
    replay.assert_error(Dialect::Standard, Wire::InvalidGrant);
    replay.assert_nothing_issued();
    server
        .refresh(&spa, &r3)
        .await
        .assert_error(Dialect::Standard, Wire::InvalidGrant);
    for access in [&first.access, &second.access, &third.access] {
        assert!(!server.access_works(access).await);
    }
    assert_eq!(server.rows("refresh_tokens").await, 0);
}
