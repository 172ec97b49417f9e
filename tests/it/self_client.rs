//! The Self Client: a code made in the console (`admin::self_client_code`), exchanged without a
//! redirect URI, refreshed, revoked; and `client_credentials`.

use grantd_core::{ClientType, Dialect};
use grantd_server::admin::{self, AdminError, ClientSpec};
use serde_json::json;

use crate::{scope_set, start, TestClient, TestServer, TestUser, Wire, CRM_AND_PROFILE};

async fn setup() -> (TestServer, TestUser, TestClient) {
    let server = start().await;
    let owner = server.user("ada@example.com").await;
    let s = server.self_client(&owner, Dialect::Standard).await;
    (server, owner, s)
}

#[tokio::test]
async fn self_client_code_exchange_refresh_revoke_then_refresh_fails() {
    skip_without_postgres!();
    let (server, owner, s) = setup().await;
    let code = server.self_code(&s, &owner, CRM_AND_PROFILE, 3).await;
    crate::assert_token_shape(&code);

    // Zoho's Python SDK: client_id, client_secret, code, grant_type; no redirect_uri.
    let tokens = server
        .post_form(
            "/oauth/v2/token",
            &[
                ("client_id", s.id.as_str()),
                ("client_secret", s.secret()),
                ("code", code.as_str()),
                ("grant_type", "authorization_code"),
            ],
        )
        .await
        .tokens();
    assert!(
        tokens.refresh.is_some(),
        "Self Client codes always yield a refresh token"
    );
    assert_eq!(
        scope_set(tokens.body["scope"].as_str().unwrap()),
        ["AaaServer.profile.READ", "ZohoCRM.modules.ALL"]
    );
    let info = server.userinfo(&tokens.access).await;
    assert_eq!(info.status, 200);
    assert_eq!(info.json()["Email"], owner.email.as_str());

    let refreshed = server.refresh(&s, tokens.refresh()).await.tokens();
    assert!(refreshed.refresh.is_none());
    assert!(server.access_works(&refreshed.access).await);

    let revoked = server.revoke(tokens.refresh()).await;
    assert_eq!(
        (revoked.status, revoked.json()),
        (200, json!({"status": "success"}))
    );

    server
        .refresh(&s, tokens.refresh())
        .await
        .assert_error(Dialect::Standard, Wire::InvalidGrant);
    assert!(!server.access_works(&tokens.access).await);
    assert!(!server.access_works(&refreshed.access).await);
}

#[tokio::test]
async fn t035_self_client_code_is_single_use_bound_to_its_client_its_duration_and_its_scope() {
    skip_without_postgres!();
    let (server, owner, s) = setup().await;
    let a = server.server_client("https://a.example/cb").await;
    let scope = "Demo.x.READ";

    // Once, and not twice.
    let code = server.self_code(&s, &owner, scope, 3).await;
    let tokens = server.exchange(&s, &code).await.tokens();
    let again = server.exchange(&s, &code).await;
    again.assert_error(Dialect::Standard, Wire::InvalidGrant);
    again.assert_nothing_issued();

    // Not by another client, even a valid one.
    let code = server.self_code(&s, &owner, scope, 3).await;
    let mut fields = a.body_auth();
    fields.push(("grant_type", "authorization_code".into()));
    fields.push(("code", code.clone()));
    let stolen = server.post_form("/oauth/v2/token", &fields).await;
    stolen.assert_error(Dialect::Standard, Wire::InvalidGrant);
    stolen.assert_nothing_issued();

    // The replay revoked what the first code issued (CONTRACT.md §6).
    assert!(!server.refresh_works(&s, tokens.refresh()).await);

    // Never for more than its scope.
    let code = server.self_code(&s, &owner, scope, 3).await;
    let tokens = server.exchange(&s, &code).await.tokens();
    assert_eq!(tokens.body["scope"], scope);
    server
        .refresh_scoped(&s, tokens.refresh(), "Demo.x.READ Demo.y.READ")
        .await
        .assert_error(Dialect::Standard, Wire::InvalidScope);
    assert_eq!(server.rows("refresh_tokens").await, 1);
    assert!(server.refresh_works(&s, tokens.refresh()).await);

    // Not after its duration.
    let late = server.self_code(&s, &owner, scope, 3).await;
    server.clock.advance(3 * 60 + 1);
    server
        .exchange(&s, &late)
        .await
        .assert_error(Dialect::Standard, Wire::InvalidGrant);
    assert_eq!(server.rows("refresh_tokens").await, 1);
}

#[tokio::test]
async fn client_credentials_gives_a_self_client_an_access_token_only() {
    skip_without_postgres!();
    let (server, owner, s) = setup().await;
    let mut fields = s.body_auth();
    fields.push(("grant_type", "client_credentials".into()));
    fields.push(("scope", "AaaServer.profile.READ".into()));

    let tokens = server.post_form("/oauth/v2/token", &fields).await.tokens();

    assert!(tokens.refresh.is_none(), "{}", tokens.body);
    assert_eq!(tokens.body["scope"], "AaaServer.profile.READ");
    let info = server.userinfo(&tokens.access).await;
    assert_eq!(info.json()["Email"], owner.email.as_str());

    for (scope, wire) in [
        (Some("Nope.x.READ"), Wire::InvalidScope),
        (Some("bad"), Wire::InvalidScope),
        (None, Wire::InvalidRequest),
    ] {
        let mut fields = s.body_auth();
        fields.push(("grant_type", "client_credentials".into()));
        if let Some(scope) = scope {
            fields.push(("scope", scope.into()));
        }
        server
            .post_form("/oauth/v2/token", &fields)
            .await
            .assert_error(Dialect::Standard, wire);
    }
    // Basic works too, and a wrong secret does not.
    let reply = server
        .post_form_basic(
            "/oauth/v2/token",
            &s.id,
            s.secret(),
            &[
                ("grant_type", "client_credentials"),
                ("scope", "ZohoCRM.modules.READ"),
            ],
        )
        .await;
    assert_eq!(reply.tokens().body["scope"], "ZohoCRM.modules.READ");
    server
        .post_form_basic(
            "/oauth/v2/token",
            &s.id,
            "nope",
            &[
                ("grant_type", "client_credentials"),
                ("scope", "ZohoCRM.modules.READ"),
            ],
        )
        .await
        .assert_error(Dialect::Standard, Wire::InvalidClient);
}

#[tokio::test]
async fn self_client_codes_are_refused_for_the_wrong_client_user_or_scope() {
    skip_without_postgres!();
    let (server, owner, s) = setup().await;
    let a = server.server_client("https://a.example/cb").await;
    let other = server.user("grace@example.com").await;

    let refusals = [
        (a.id.clone(), owner.email.clone(), CRM_AND_PROFILE),
        (s.id.clone(), other.email.clone(), CRM_AND_PROFILE),
        (s.id.clone(), owner.email.clone(), "Nope.x.READ"),
        (s.id.clone(), owner.email.clone(), "not a scope"),
    ];
    for (client_id, email, scopes) in refusals {
        let spec = admin::SelfCodeSpec {
            client_id: client_id.clone(),
            user_email: email.clone(),
            scopes: scopes.into(),
            minutes: 3,
            description: None,
        };
        let result = admin::self_client_code(
            &server.store,
            &spec,
            server.now(),
            &server.app.settings.limits,
            server.app.tag,
        )
        .await;
        assert!(
            matches!(result, Err(AdminError::Invalid(_))),
            "{client_id} {email} {scopes}: {result:?}"
        );
    }
    let unknown = admin::SelfCodeSpec {
        client_id: "1000.NOPE".into(),
        user_email: owner.email.clone(),
        scopes: CRM_AND_PROFILE.into(),
        minutes: 3,
        description: None,
    };
    let result = admin::self_client_code(
        &server.store,
        &unknown,
        server.now(),
        &server.app.settings.limits,
        server.app.tag,
    )
    .await;
    assert!(matches!(result, Err(AdminError::NotFound(_))), "{result:?}");
    assert_eq!(server.rows("grant_codes").await, 0);

    // One Self Client per user.
    let second = ClientSpec {
        kind: ClientType::SelfClient,
        name: "Second".into(),
        homepage: None,
        redirect_uris: vec![],
        js_domain: None,
        owner_email: Some(owner.email.clone()),
        dialect: Dialect::Standard,
        introspect_any: false,
        id_token_alg: None,
    };
    let result = admin::add_client(&server.store, &second, server.now()).await;
    assert!(matches!(result, Err(AdminError::Conflict(_))), "{result:?}");
    let ownerless = ClientSpec {
        js_domain: None,
        owner_email: None,
        ..second
    };
    let result = admin::add_client(&server.store, &ownerless, server.now()).await;
    assert!(matches!(result, Err(AdminError::Invalid(_))), "{result:?}");
}
