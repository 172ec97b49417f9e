//! Enabling a client at other data centers (CONTRACT.md "Data centers"): the console's Multi-DC
//! panel, and the admin flows behind it and `grantd client enable-dc`. The peers are only named
//! here; what they pull is the store's `clients_enabled_for` (conformance suite), and the whole
//! path across real processes is tests/datacenters.rs.

use grantd_core::datacenter::Peer;
use grantd_core::secret::{generate_client_id, SecretHash};
use grantd_core::{Client, ClientId, ClientType, Dialect};
use grantd_server::admin::{self, AdminError, Here};
use grantd_store::ConsoleVerbs;

use crate::{start, start_with, Reply, TestClient, TestServer, TestUser};

async fn us_with_peers() -> TestServer {
    start_with(|settings| {
        for code in ["eu", "in"] {
            settings.datacenters.insert(
                code.into(),
                Peer {
                    accounts: format!("https://accounts.example.{code}"),
                    api_domain: format!("https://api.example.{code}"),
                },
            );
        }
    })
    .await
}

async fn owned(server: &TestServer, kind: ClientType, owner: &TestUser) -> TestClient {
    let uris: &[&str] = if kind.uses_redirects() {
        &["https://app.example/cb"]
    } else {
        &[]
    };
    server
        .client(kind, uris, Dialect::Standard, Some(owner))
        .await
}

fn settings_url(server: &TestServer, client: &TestClient) -> String {
    server.at(&format!("/console/clients/{}?tab=settings", client.id))
}

/// Presses one of the panel's buttons for `location`, as the page's own form would.
async fn press(
    server: &TestServer,
    browser: &crate::Http,
    client: &TestClient,
    location: &str,
    action: &str,
) -> Reply {
    let page = browser.get(settings_url(server, client)).await;
    let form = page.form_with("location");
    let csrf = form.get("csrf_token").unwrap_or_default().to_owned();
    browser
        .post_form(
            form.action.clone(),
            &[
                ("csrf_token", csrf.as_str()),
                ("location", location),
                ("action", action),
            ],
        )
        .await
}

fn text_of(reply: &Reply, selector: &str) -> Option<String> {
    let selector = scraper::Selector::parse(selector).ok()?;
    reply
        .html()
        .select(&selector)
        .next()
        .map(|e| e.text().collect())
}

async fn served_at(server: &TestServer, location: &str) -> Vec<Client> {
    let served = server.store.clients_enabled_for(location).await;
    served.unwrap_or_else(|e| panic!("clients enabled for {location}: {e}"))
}

#[tokio::test]
async fn the_multi_dc_panel_enables_with_the_home_or_an_own_secret_and_disables() {
    skip_without_postgres!();
    let server = us_with_peers().await;
    let ada = server.user("ada@example.com").await;
    let app = owned(&server, ClientType::Server, &ada).await;
    let browser = server.browser();
    browser.sign_in(&settings_url(&server, &app), &ada).await;

    let page = browser.get(settings_url(&server, &app)).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Multi-DC"), "{}", page.body);
    assert_eq!(page.body.matches("Not enabled").count(), 2, "{}", page.body);
    assert!(page.body.contains("https://accounts.example.eu"));

    // eu gets a secret of its own, shown once; only it works there.
    let reply = press(&server, &browser, &app, "eu", "own_secret").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply.body.contains("Enabled, own secret"), "{}", reply.body);
    let eu_secret = text_of(&reply, "#dc-secret").expect("the new secret is shown");
    assert_eq!(eu_secret.len(), 42);
    let at_eu = served_at(&server, "eu").await;
    assert_eq!(at_eu.len(), 1);
    assert!(at_eu[0].secret_matches(&eu_secret));
    assert!(!at_eu[0].secret_matches(app.secret()));
    let again = browser.get(settings_url(&server, &app)).await;
    assert!(!again.body.contains(&eu_secret), "the secret is shown once");

    // in gets the home secret.
    let reply = press(&server, &browser, &app, "in", "enable").await;
    assert!(
        reply.body.contains("Enabled, home secret"),
        "{}",
        reply.body
    );
    assert!(text_of(&reply, "#dc-secret").is_none());
    assert!(served_at(&server, "in").await[0].secret_matches(app.secret()));

    // Disabled at eu: eu no longer gets the client.
    let reply = press(&server, &browser, &app, "eu", "disable").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(served_at(&server, "eu").await.is_empty());
    assert_eq!(served_at(&server, "in").await.len(), 1);

    // A data center that is not configured is refused, with the reason on the page.
    let reply = press(&server, &browser, &app, "jp", "enable").await;
    assert_eq!(reply.status, 400);
    assert!(reply.body.contains("no data center"), "{}", reply.body);
}

#[tokio::test]
async fn public_and_self_clients_and_single_dcs_get_what_fits_them() {
    skip_without_postgres!();
    let server = us_with_peers().await;
    let ada = server.user("ada@example.com").await;
    let browser = server.browser();

    // A public client is enabled with no secret, and cannot have one of its own.
    let mobile = owned(&server, ClientType::Mobile, &ada).await;
    browser.sign_in(&settings_url(&server, &mobile), &ada).await;
    let page = browser.get(settings_url(&server, &mobile)).await;
    assert!(page.body.contains("Multi-DC") && !page.body.contains("own secret</button>"));
    let refused = press(&server, &browser, &mobile, "eu", "own_secret").await;
    assert_eq!(refused.status, 400);
    assert!(refused.body.contains("public client"), "{}", refused.body);
    assert!(served_at(&server, "eu").await.is_empty());
    press(&server, &browser, &mobile, "eu", "enable").await;
    assert_eq!(served_at(&server, "eu").await[0].secret_hash, None);

    // A Self Client stays home: no panel.
    let own = owned(&server, ClientType::SelfClient, &ada).await;
    let page = browser.get(settings_url(&server, &own)).await;
    assert_eq!(page.status, 200);
    assert!(!page.body.contains("Multi-DC"), "{}", page.body);

    // A single data center has no panel at all.
    let single = start().await;
    let bo = single.user("bo@example.com").await;
    let app = owned(&single, ClientType::Server, &bo).await;
    let browser = single.browser();
    browser.sign_in(&settings_url(&single, &app), &bo).await;
    let page = browser.get(settings_url(&single, &app)).await;
    assert_eq!(page.status, 200);
    assert!(!page.body.contains("Multi-DC"), "{}", page.body);
}

#[tokio::test]
async fn a_mirrored_client_is_served_here_but_changed_only_at_home() {
    skip_without_postgres!();
    let server = us_with_peers().await;
    let ada = server.user("ada@example.com").await;
    let template = owned(&server, ClientType::Server, &ada).await;
    let template = server.store.client(&template.id).await.unwrap().unwrap();
    let id = generate_client_id();
    let mirrored = Client {
        id: ClientId::new(id.clone()),
        secret_hash: Some(SecretHash::of("the secret that works here")),
        owner_id: None,
        ..template
    };
    server
        .store
        .mirror_clients("eu", &[mirrored], server.now())
        .await
        .unwrap();

    // Served: its secret authenticates it here (the bogus refresh token is what fails).
    let authenticated = server
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", "1000.x.y"),
            ("client_id", &id),
            ("client_secret", "the secret that works here"),
        ])
        .await;
    authenticated.assert_invalid_grant();
    let wrong = server
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", "1000.x.y"),
            ("client_id", &id),
            ("client_secret", "another"),
        ])
        .await;
    assert_eq!(wrong.status, 401, "{}", wrong.body);

    // Changed only at its home.
    let here = Here {
        location: "us",
        peers: &server.app.settings.datacenters,
    };
    let refusals = [
        admin::rotate_secret(&server.store, &id).await.map(drop),
        admin::remove_client(&server.store, &id).await,
        admin::enable_dc(&server.store, &here, &id, "in", false, server.now())
            .await
            .map(drop),
        admin::disable_dc(&server.store, &id, "in").await,
    ];
    for refusal in refusals {
        assert!(
            matches!(&refusal, Err(AdminError::Invalid(why)) if why.contains("registered at data center eu")),
            "{refusal:?}"
        );
    }
    assert!(server.store.client(&id).await.unwrap().is_some());
}

#[tokio::test]
async fn an_unknown_client_is_told_it_is_not_enabled_at_this_data_center() {
    skip_without_postgres!();
    let server = us_with_peers().await;
    let reply = server
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", "1000.x.y"),
            ("client_id", "1000.REGISTEREDELSEWHERE"),
            ("client_secret", "s"),
        ])
        .await;
    assert_eq!(reply.status, 401, "{}", reply.body);
    assert_eq!(reply.json()["error"], "invalid_client");
    let description = reply.json()["error_description"].to_string();
    assert!(
        description.contains("not enabled for data center us"),
        "{description}"
    );

    // The authorization endpoint says the same on its error page.
    let page = server
        .get("/oauth/v2/auth?response_type=code&client_id=1000.REGISTEREDELSEWHERE&scope=openid")
        .await;
    page.assert_error_page();
    assert!(
        page.body.contains("not enabled for data center us"),
        "{}",
        page.body
    );

    // A single data center keeps the plain answer.
    let single = start().await;
    let reply = single
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", "1000.x.y"),
            ("client_id", "1000.UNKNOWN"),
            ("client_secret", "s"),
        ])
        .await;
    assert_eq!(
        reply.json()["error_description"],
        "client authentication failed"
    );
}
