//! Account › Connected Apps in the browser: Revoke Access ends the app's tokens, and only
//! that app's.

use grantd_core::ClientType;
use serde_json::Value;

use crate::{Env, TestClient};

/// Runs the redirect flow for `client` in the browser (the user is signed in already) and
/// exchanges the code for offline tokens.
async fn grant(env: &Env, client: &TestClient) -> Value {
    let (s, b) = (&env.server, &env.browser);
    b.goto(&s.auth_url(
        client,
        "ZohoCRM.modules.ALL,AaaServer.profile.READ",
        &[("access_type", "offline")],
    ))
    .await;
    b.click("button[name=decision][value=accept]").await;
    let params = env.landed_at("/cb").await;
    let (status, tokens) = s
        .token(&[
            ("grant_type", "authorization_code"),
            ("client_id", &client.id),
            ("client_secret", client.secret.as_deref().unwrap()),
            ("redirect_uri", &client.redirect_uri),
            ("code", &params["code"]),
        ])
        .await
        .status_and_json();
    assert_eq!(status, 200, "{tokens}");
    assert!(tokens["refresh_token"].is_string(), "{tokens}");
    tokens
}

async fn user_info_status(env: &Env, access_token: &str) -> u16 {
    let s = &env.server;
    s.http
        .client
        .get(s.at("/oauth/user/info"))
        .header("Authorization", format!("Bearer {access_token}"))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// (d) Revoke Access (a `<details>` confirmation) makes the app's refresh token fail with
/// `invalid_grant`; another connected app keeps working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoke_access_ends_the_apps_tokens() {
    Env::run("revoke_access", async |env: &Env| {
        let (s, b) = (&env.server, &env.browser);
        let ada = s.user_named("ada@example.test", "Ada Lovelace").await;
        let redirect = env.catcher.redirect_uri("/cb");
        let reports = s
            .named_client(ClientType::Server, "Ada Reports", &[&redirect], None)
            .await;
        let mail = s
            .named_client(ClientType::Server, "Mail Merge", &[&redirect], None)
            .await;

        b.sign_in_to_console(&ada).await;
        let reports_tokens = grant(env, &reports).await;
        let mail_tokens = grant(env, &mail).await;
        let token = |t: &Value, k: &str| t[k].as_str().unwrap().to_owned();
        let (reports_refresh, reports_access) = (
            token(&reports_tokens, "refresh_token"),
            token(&reports_tokens, "access_token"),
        );
        let mail_refresh = token(&mail_tokens, "refresh_token");
        let (status, body) = s
            .refresh(&reports, &reports_refresh)
            .await
            .status_and_json();
        assert_eq!(status, 200, "{body}");

        b.goto("/account").await;
        b.tab("apps").await;
        b.wait_for("article.app-card").await;
        let cards = b.find_all("article.app-card").await;
        assert_eq!(cards.len(), 2);
        let text = b.text("section.panel").await;
        for expected in [
            "Ada Reports",
            "Mail Merge",
            "Read and change your CRM records",
            "ZohoCRM.modules.ALL",
        ] {
            assert!(text.contains(expected), "{expected} missing from {text}");
        }
        b.screenshots("connected-apps").await;

        // The card of Ada Reports: its confirmation is closed until asked for.
        let card = format!(
            "article.app-card:has(form[action='/account/apps/{}/revoke'])",
            reports.id
        );
        assert_eq!(b.text(&format!("{card} h2")).await, "Ada Reports");
        let confirm = b.wait_for(&format!("{card} button.danger")).await;
        assert!(!confirm.is_displayed().await.unwrap());
        b.click(&format!("{card} details.confirm summary")).await;
        assert_eq!(confirm.text().await.unwrap(), "Yes, revoke access");
        b.click(&format!("{card} button.danger")).await;

        let notice = b.text(".notice").await;
        assert!(notice.contains("Access revoked"), "{notice}");
        let remaining = b.find_all("article.app-card h2").await;
        assert_eq!(remaining.len(), 1);
        assert_eq!(remaining[0].text().await.unwrap(), "Mail Merge");

        let (status, body) = s
            .refresh(&reports, &reports_refresh)
            .await
            .status_and_json();
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_grant")),
            "the revoked app's refresh token: {body}"
        );
        assert_eq!(
            user_info_status(env, &reports_access).await,
            401,
            "the revoked app's access token"
        );
        let (status, body) = s.refresh(&mail, &mail_refresh).await.status_and_json();
        assert_eq!(status, 200, "the other app keeps working: {body}");
        assert_eq!(
            user_info_status(env, mail_tokens["access_token"].as_str().unwrap()).await,
            200
        );
    })
    .await;
}
