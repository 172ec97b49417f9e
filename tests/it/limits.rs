//! Every limit of CONTRACT.md's table at its boundary, with the injected clock: code lifetime,
//! Self Client code durations, access token lifetime, refresh tokens per (user, client),
//! refreshes per window, active access tokens per refresh token, codes per (user, client).

use grantd_core::Dialect;
use grantd_server::admin::AdminError;

use crate::{start, start_with, Decision, Param, TestServer, Wire, CRM_AND_PROFILE};

#[tokio::test]
async fn t033_code_lives_sixty_seconds() {
    skip_without_postgres!();
    let server = start().await;
    let user = server.user("ada@example.com").await;
    let a = server.server_client("https://a.example/cb").await;
    let browser = server.browser();
    let first = server.code(&browser, &user, &a, CRM_AND_PROFILE, &[]).await;
    let second = server.code(&browser, &user, &a, CRM_AND_PROFILE, &[]).await;

    server.clock.advance(59);
    server.exchange(&a, &first).await.tokens();
    server.clock.advance(2);
    let late = server.exchange(&a, &second).await;

    late.assert_error(Dialect::Standard, Wire::InvalidGrant);
    late.assert_nothing_issued();
    assert_eq!(server.rows("access_tokens").await, 1);
}

#[tokio::test]
async fn configured_code_lifetime_is_honoured() {
    skip_without_postgres!();
    let server = start_with(|s| s.limits.code_lifetime_secs = 120).await;
    let user = server.user("ada@example.com").await;
    let a = server.server_client("https://a.example/cb").await;
    let browser = server.browser();
    let first = server.code(&browser, &user, &a, CRM_AND_PROFILE, &[]).await;
    let second = server.code(&browser, &user, &a, CRM_AND_PROFILE, &[]).await;

    server.clock.advance(119);
    server.exchange(&a, &first).await.tokens();
    server.clock.advance(2);
    server
        .exchange(&a, &second)
        .await
        .assert_error(Dialect::Standard, Wire::InvalidGrant);
}

#[tokio::test]
async fn self_client_code_lives_its_chosen_duration() {
    skip_without_postgres!();
    let server = start().await;
    let owner = server.user("ada@example.com").await;
    let s = server.self_client(&owner, Dialect::Standard).await;

    for minutes in [3, 5, 7, 10] {
        let on_time = server.self_code(&s, &owner, CRM_AND_PROFILE, minutes).await;
        let late = server.self_code(&s, &owner, CRM_AND_PROFILE, minutes).await;
        server.clock.advance(minutes * 60 - 1);
        let tokens = server.exchange(&s, &on_time).await.tokens();
        assert!(
            tokens.refresh.is_some(),
            "a Self Client code always yields a refresh token"
        );
        server.clock.advance(2);
        server
            .exchange(&s, &late)
            .await
            .assert_error(Dialect::Standard, Wire::InvalidGrant);
    }
    for minutes in [0, 1, 2, 4, 6, 9, 11, 15, 60, -3] {
        let result = server
            .try_self_code(&s, &owner, CRM_AND_PROFILE, minutes)
            .await;
        assert!(
            matches!(result, Err(AdminError::Invalid(_))),
            "{minutes} min: {result:?}"
        );
    }
}

#[tokio::test]
async fn t101_access_token_lives_3600_seconds() {
    skip_without_postgres!();
    let server = start().await;
    let user = server.user("ada@example.com").await;
    let a = server.server_client("https://a.example/cb").await;
    let tokens = server.tokens(&user, &a, CRM_AND_PROFILE, &[]).await;
    assert_eq!(tokens.body["expires_in"], 3600);

    server.clock.advance(3599);
    assert!(
        server.access_works(&tokens.access).await,
        "dead before 3600 s"
    );
    server.clock.advance(2);
    assert!(
        !server.access_works(&tokens.access).await,
        "alive after 3600 s"
    );
}

#[tokio::test]
async fn t050_twenty_refresh_tokens_per_user_and_client_then_the_oldest_goes_with_its_access_tokens(
) {
    skip_without_postgres!();
    // Codes per client would stop 21 grants in a row; that limit has its own test.
    let server = start_with(|s| s.limits.codes_per_window = 1_000).await;
    let u1 = server.user("ada@example.com").await;
    let u2 = server.user("grace@example.com").await;
    let a = server.server_client("https://a.example/cb").await;
    let b = server.server_client("https://b.example/cb").await;
    let s = server.self_client(&u1, Dialect::Standard).await;
    // T-052: the neighbours of (U1, A), each with its own count.
    let u1_b = server.offline_tokens(&u1, &b, CRM_AND_PROFILE).await;
    let u2_a = server.offline_tokens(&u2, &a, CRM_AND_PROFILE).await;
    let self_code = server.self_code(&s, &u1, CRM_AND_PROFILE, 3).await;
    let u1_s = server.exchange(&s, &self_code).await.tokens();

    let mut grants = Vec::new();
    for _ in 0..20 {
        grants.push(server.offline_tokens(&u1, &a, CRM_AND_PROFILE).await);
    }
    // At the cap, all twenty live.
    for grant in &grants {
        assert!(server.access_works(&grant.access).await);
    }
    assert!(
        server.refresh_works(&a, grants[0].refresh()).await,
        "the 20th refresh token evicted one"
    );

    grants.push(server.offline_tokens(&u1, &a, CRM_AND_PROFILE).await);

    assert!(
        !server.refresh_works(&a, grants[0].refresh()).await,
        "the oldest survived the 21st"
    );
    assert!(
        !server.access_works(&grants[0].access).await,
        "the oldest's access token survived"
    );
    for grant in &grants[1..] {
        assert!(server.access_works(&grant.access).await);
        assert!(server.refresh_works(&a, grant.refresh()).await);
    }
    let n = server
        .count(
            "SELECT count(*) FROM refresh_tokens WHERE user_id = $1 AND client_id = $2",
            &[Param::Int(u1.id), Param::Text(&a.id)],
        )
        .await;
    assert_eq!(n, 20);
    for (client, tokens) in [(&b, &u1_b), (&a, &u2_a), (&s, &u1_s)] {
        assert!(server.access_works(&tokens.access).await);
        assert!(server.refresh_works(client, tokens.refresh()).await);
    }
}

#[tokio::test]
async fn t052_each_user_and_client_pair_has_its_own_cap() {
    skip_without_postgres!();
    let server = start_with(|s| {
        s.limits.codes_per_window = 1_000;
        s.limits.refresh_tokens_per_grant = 2;
    })
    .await;
    let u1 = server.user("ada@example.com").await;
    let u2 = server.user("grace@example.com").await;
    let a = server.server_client("https://a.example/cb").await;
    let b = server.server_client("https://b.example/cb").await;

    let mut u1_a = Vec::new();
    for _ in 0..2 {
        u1_a.push(server.offline_tokens(&u1, &a, CRM_AND_PROFILE).await);
    }
    let mut others = Vec::new();
    for _ in 0..2 {
        others.push((
            b.clone(),
            server.offline_tokens(&u1, &b, CRM_AND_PROFILE).await,
        ));
        others.push((
            a.clone(),
            server.offline_tokens(&u2, &a, CRM_AND_PROFILE).await,
        ));
    }
    // (U1, A) is full; its neighbours are full too, which evicted nothing of (U1, A).
    for grant in &u1_a {
        assert!(server.refresh_works(&a, grant.refresh()).await);
    }
    // One more for (U1, A) evicts its own oldest only.
    u1_a.push(server.offline_tokens(&u1, &a, CRM_AND_PROFILE).await);
    assert!(!server.refresh_works(&a, u1_a[0].refresh()).await);
    assert!(server.refresh_works(&a, u1_a[1].refresh()).await);
    for (client, tokens) in &others {
        assert!(server.refresh_works(client, tokens.refresh()).await);
    }
}

/// Offline tokens from a code exchanged at the current time.
async fn refreshable(server: &TestServer) -> (crate::TestClient, crate::Tokens) {
    let user = server.user("ada@example.com").await;
    let a = server.server_client("https://a.example/cb").await;
    let tokens = server.offline_tokens(&user, &a, CRM_AND_PROFILE).await;
    (a, tokens)
}

#[tokio::test]
async fn ten_refreshes_per_ten_minutes_then_the_throttle() {
    skip_without_postgres!();
    let server = start().await;
    let (a, tokens) = refreshable(&server).await;
    // Leave the exchange's own access token out of the window.
    server.clock.advance(601);

    for n in 1..=10 {
        let reply = server.refresh(&a, tokens.refresh()).await;
        assert_eq!(reply.status, 200, "refresh {n}: {}", reply.body);
    }
    let throttled = server.refresh(&a, tokens.refresh()).await;

    throttled.assert_error(Dialect::Standard, Wire::Throttled);
    throttled.assert_nothing_issued();
    let retry_after: i64 = throttled
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("Retry-After in seconds");
    assert!(
        (1..=600).contains(&retry_after),
        "Retry-After: {retry_after}"
    );
    // Still inside the ten minutes; then the window moves on and the refresh token works again.
    server.clock.advance(599);
    server
        .refresh(&a, tokens.refresh())
        .await
        .assert_error(Dialect::Standard, Wire::Throttled);
    server.clock.advance(2);
    server.refresh(&a, tokens.refresh()).await.tokens();
}

#[tokio::test]
async fn fifteen_active_access_tokens_per_refresh_token_then_the_oldest_is_invalidated() {
    skip_without_postgres!();
    let server = start().await;
    let (a, tokens) = refreshable(&server).await;
    // The exchange's access token is the first minted for this refresh token.
    let mut active = vec![tokens.access.clone()];
    // Ten per window, so spread the next fourteen over two windows, inside one hour.
    for batch in [10, 4] {
        server.clock.advance(601);
        for _ in 0..batch {
            active.push(server.refresh(&a, tokens.refresh()).await.tokens().access);
        }
    }
    assert_eq!(active.len(), 15);
    for (i, access) in active.iter().enumerate() {
        assert!(
            server.access_works(access).await,
            "token {} of 15 is dead",
            i + 1
        );
    }

    let sixteenth = server.refresh(&a, tokens.refresh()).await.tokens().access;

    assert!(server.access_works(&sixteenth).await);
    assert!(
        !server.access_works(&active[0]).await,
        "the oldest survived the 16th"
    );
    for access in &active[1..] {
        assert!(server.access_works(access).await);
    }
}

#[tokio::test]
async fn codes_per_user_and_client_ten_per_ten_minutes_then_access_denied() {
    skip_without_postgres!();
    let server = start().await;
    let user = server.user("ada@example.com").await;
    let grace = server.user("grace@example.com").await;
    let a = server.server_client("https://a.example/cb").await;
    let b = server.server_client("https://b.example/cb").await;
    let browser = server.browser();
    for n in 1..=10 {
        let url = server.auth_url(&a, CRM_AND_PROFILE, &[("state", &n.to_string())]);
        let flow = browser.authorize(&url, &user, Decision::Accept).await;
        assert_eq!(flow.redirect.param("state"), Some(n.to_string().as_str()));
        flow.redirect.code();
    }
    let url = server.auth_url(&a, CRM_AND_PROFILE, &[("state", "eleven")]);

    let refused = browser
        .authorize(&url, &user, Decision::Accept)
        .await
        .redirect;

    assert!(
        refused.raw.starts_with("https://a.example/cb?"),
        "{}",
        refused.raw
    );
    assert_eq!(refused.error(), Some("access_denied"));
    assert_eq!(refused.param("state"), Some("eleven"));
    assert_eq!(refused.param("iss"), Some(server.url.as_str()));
    assert_eq!(refused.param("code"), None);
    assert_eq!(server.rows("grant_codes").await, 10);
    // Another client is not affected.
    server.code(&browser, &user, &b, CRM_AND_PROFILE, &[]).await;
    // Nor is another user of the same client (issue 12: one user cannot spend the client's
    // codes for everyone).
    let graces = server
        .code(&server.browser(), &grace, &a, CRM_AND_PROFILE, &[])
        .await;
    server.exchange(&a, &graces).await.tokens();

    server.clock.advance(599);
    let still = browser
        .authorize(&url, &user, Decision::Accept)
        .await
        .redirect;
    assert_eq!(still.error(), Some("access_denied"));
    server.clock.advance(2);
    let again = browser
        .authorize(&url, &user, Decision::Accept)
        .await
        .redirect;
    assert_eq!(again.param("state"), Some("eleven"));
    again.code();
}

#[tokio::test]
async fn self_client_codes_are_refused_after_ten_per_ten_minutes() {
    skip_without_postgres!();
    let server = start().await;
    let owner = server.user("ada@example.com").await;
    let s = server.self_client(&owner, Dialect::Standard).await;
    for _ in 0..10 {
        server.self_code(&s, &owner, CRM_AND_PROFILE, 3).await;
    }

    let refused = server.try_self_code(&s, &owner, CRM_AND_PROFILE, 3).await;

    match refused {
        Err(AdminError::Conflict(message)) => {
            assert!(message.contains("too many codes"), "{message}");
        }
        other => panic!("the 11th code: {other:?}"),
    }
    assert_eq!(server.rows("grant_codes").await, 10);
    server.clock.advance(601);
    let code = server.self_code(&s, &owner, CRM_AND_PROFILE, 3).await;
    server.exchange(&s, &code).await.tokens();
}

#[tokio::test]
async fn client_credentials_ten_per_ten_minutes_and_fifteen_active_per_client() {
    skip_without_postgres!();
    let server = start().await;
    let owner = server.user("ada@example.com").await;
    let other = server.user("grace@example.com").await;
    let s = server.self_client(&owner, Dialect::Standard).await;
    let t = server.self_client(&other, Dialect::Standard).await;
    let mint = |client: &crate::TestClient| {
        let mut fields = client.body_auth();
        fields.push(("grant_type", "client_credentials".into()));
        fields.push(("scope", "AaaServer.profile.READ".into()));
        let server = &server;
        async move { server.post_form("/oauth/v2/token", &fields).await }
    };
    let mut active = Vec::new();
    for _ in 0..10 {
        active.push(mint(&s).await.tokens().access);
    }

    let throttled = mint(&s).await;

    throttled.assert_error(Dialect::Standard, Wire::Throttled);
    throttled.assert_nothing_issued();
    let retry_after: i64 = throttled
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("Retry-After in seconds");
    assert!((1..=600).contains(&retry_after), "{retry_after}");
    // Another Self Client has its own quota.
    let others = mint(&t).await.tokens().access;

    // The next window: five more make fifteen live; the sixteenth invalidates the oldest.
    server.clock.advance(601);
    for _ in 0..5 {
        active.push(mint(&s).await.tokens().access);
    }
    for (i, access) in active.iter().enumerate() {
        assert!(server.access_works(access).await, "token {} dead", i + 1);
    }
    let sixteenth = mint(&s).await.tokens().access;
    assert!(server.access_works(&sixteenth).await);
    assert!(!server.access_works(&active[0]).await, "the oldest lives");
    for access in &active[1..] {
        assert!(server.access_works(access).await);
    }
    assert!(server.access_works(&others).await);
}
