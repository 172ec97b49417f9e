//! The redirect flow in the browser: a server-based client registered through Add Client, then
//! the real login and consent pages, Accept and Reject.

use grantd_core::{ClientType, Dialect};

use crate::{assert_token_shape, Env};

/// A `state` that must come back byte for byte: reserved and non-ASCII characters included.
const STATE: &str = "s/1 ä+&=?#x";

/// (b) Register a server-based client with two redirect URIs through the Add Client form
/// (the second row added with "+ Add another URI", which console.js reveals), then run the
/// redirect flow to the second URI through the login and consent pages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_client_from_the_form_runs_the_redirect_flow() {
    Env::run("server_client_flow", async |env: &Env| {
        let (s, b) = (&env.server, &env.browser);
        let ada = s.user_named("ada@example.test", "Ada Lovelace").await;
        let first = env.catcher.redirect_uri("/cb");
        let second = env.catcher.redirect_uri("/cb2");

        b.sign_in_to_console(&ada).await;
        b.click("a[href='/console/clients/new']").await;
        b.screenshots("add-client-types").await;
        b.click("a[href='/console/clients/new?type=server']").await;
        b.fill("#name", "Ada CRM Sync").await;
        b.fill("#homepage", "https://crm-sync.example").await;
        b.fill("#redirect_uri_1", &first).await;
        assert!(!b.exists("#redirect_uri_2").await);
        b.click("button[data-add-row]").await;
        b.fill("#redirect_uri_2", &second).await;
        // The new row is labelled for screen readers like the first.
        let label = b.wait_for("label[for=redirect_uri_2]").await;
        assert_eq!(
            label.prop("textContent").await.unwrap().as_deref(),
            Some("Redirect URI 2")
        );
        b.screenshots("add-client").await;
        b.click("form[action='/console/clients'] button[type=submit]")
            .await;

        let client_id = b.text("#client-id").await;
        let secret = b.text("#client-secret").await;
        assert_eq!(b.text(".notice").await, "Client created.");
        assert_eq!(b.text("h1").await, "Ada CRM Sync");

        // Both URIs were registered, in order.
        b.tab("settings").await;
        b.wait_for("#redirect_uri_2").await;
        let mut uris = Vec::new();
        for field in b.find_all("input[name=redirect_uri]").await {
            uris.push(field.prop("value").await.unwrap().unwrap_or_default());
        }
        assert_eq!(uris, [first.clone(), second.clone()]);

        // The console lists it (next to a Self Client, for a fuller picture).
        s.named_client(ClientType::SelfClient, "Nightly scripts", &[], Some(&ada))
            .await;
        b.goto("/console").await;
        let list = b.text("table.list").await;
        assert!(
            list.contains("Ada CRM Sync") && list.contains(&client_id),
            "{list}"
        );
        b.screenshots("console").await;
        b.sign_out().await;

        // The app sends Ada to grantd; she signs in and sees the consent page.
        let client = crate::TestClient {
            id: client_id.clone(),
            name: "Ada CRM Sync".into(),
            secret: Some(secret.clone()),
            redirect_uri: second.clone(),
            kind: ClientType::Server,
            dialect: Dialect::Standard,
        };
        let auth = s.auth_url(
            &client,
            "ZohoCRM.modules.ALL,AaaServer.profile.READ",
            &[("access_type", "offline"), ("state", STATE)],
        );
        b.goto(&auth).await;
        assert!(
            b.text("p.lead").await.contains("Ada CRM Sync"),
            "the login page names the app"
        );
        b.sign_in(&ada).await;

        b.wait_for("button[name=decision][value=accept]").await;
        assert!(b.text("h1").await.contains("Ada CRM Sync"));
        let asks = b.text("ul.scopes").await;
        assert!(
            asks.contains("Read and change your CRM records")
                && asks.contains("ZohoCRM.modules.ALL"),
            "{asks}"
        );
        assert!(asks.contains("AaaServer.profile.READ"), "{asks}");
        assert!(b.body_text().await.contains(&ada.email));
        assert!(
            b.text("p.note").await.contains("until you revoke it"),
            "offline access is announced"
        );
        b.screenshots("consent").await;
        b.click("button[name=decision][value=accept]").await;

        let params = env.landed_at("/cb2").await;
        let code = &params["code"];
        assert_token_shape(code);
        assert_eq!(params["state"], STATE);
        assert_eq!(params["location"], "us");
        assert_eq!(params["accounts-server"], s.url);
        assert_eq!(params["iss"], s.url);
        assert!(!params.contains_key("error"));

        let (status, body) = s
            .token(&[
                ("grant_type", "authorization_code"),
                ("client_id", &client_id),
                ("client_secret", &secret),
                ("redirect_uri", &second),
                ("code", code),
            ])
            .await
            .status_and_json();
        assert_eq!(status, 200, "{body}");
        assert_token_shape(body["access_token"].as_str().unwrap());
        assert_token_shape(body["refresh_token"].as_str().unwrap());

        // The code was single-use.
        let (status, body) = s
            .token(&[
                ("grant_type", "authorization_code"),
                ("client_id", &client_id),
                ("client_secret", &secret),
                ("redirect_uri", &second),
                ("code", code),
            ])
            .await
            .status_and_json();
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_grant"))
        );
    })
    .await;
}

/// (c) Reject on the consent page sends `error=access_denied` (with `state`) and no code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reject_redirects_with_access_denied() {
    Env::run("reject", async |env: &Env| {
        let (s, b) = (&env.server, &env.browser);
        let ada = s.user_named("ada@example.test", "Ada Lovelace").await;
        let redirect = env.catcher.redirect_uri("/cb");
        let client = s
            .named_client(ClientType::Server, "Pushy Newsletter", &[&redirect], None)
            .await;

        b.goto(&s.auth_url(&client, "ZohoCRM.settings.READ", &[("state", STATE)]))
            .await;
        b.sign_in(&ada).await;
        b.wait_for("button[name=decision][value=reject]").await;
        assert!(b.text("h1").await.contains("Pushy Newsletter"));
        assert!(
            !b.exists("p.note").await,
            "online access says nothing about keeping it"
        );
        b.click("button[name=decision][value=reject]").await;

        let params = env.landed_at("/cb").await;
        assert_eq!(params["error"], "access_denied");
        assert_eq!(params["state"], STATE);
        assert_eq!(params["iss"], s.url);
        assert!(!params.contains_key("code"), "{params:?}");

        // Nothing was granted: asking again shows the consent page again.
        b.goto(&s.auth_url(&client, "ZohoCRM.settings.READ", &[]))
            .await;
        b.wait_for("button[name=decision][value=reject]").await;
        b.goto("/account?tab=apps").await;
        assert!(b
            .text("section.panel")
            .await
            .contains("not authorized any application"));
    })
    .await;
}
