//! The API console in the browser: a Self Client and its code dialog, form errors shown by
//! their fields, another user's client, and Regenerate.

use grantd_core::ClientType;
use grantd_store::ConsoleVerbs;
use serde_json::Value;

use crate::{assert_token_shape, Env, TestClient};

fn assert_client_id_shape(id: &str) {
    let rest = id.strip_prefix("1000.").unwrap_or("");
    assert!(
        rest.len() == 30
            && rest
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()),
        "not a client id: {id:?}"
    );
}

fn assert_secret_shape(secret: &str) {
    assert!(
        secret.len() == 42
            && secret
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "not a client secret: {secret:?}"
    );
}

/// "Expires in M:SS" with at most `minutes` left.
fn assert_countdown(text: &str, minutes: u64) {
    let left = text
        .strip_prefix("Expires in ")
        .and_then(|t| t.split_once(':'))
        .and_then(|(m, s)| Some(m.parse::<u64>().ok()? * 60 + s.parse::<u64>().ok()?))
        .unwrap_or_else(|| panic!("not a countdown: {text:?}"));
    assert!(
        left <= minutes * 60 && left > minutes * 60 - 60,
        "countdown {text:?} for a {minutes}-minute code"
    );
}

/// (a) Sign in, create a Self Client, generate a 5-minute code, read it from the dialog and
/// exchange it at the token endpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_client_code_from_the_dialog_exchanges_for_tokens() {
    Env::run("self_client_code", async |env: &Env| {
        let (s, b) = (&env.server, &env.browser);
        let ada = s.user_named("ada@example.test", "Ada Lovelace").await;

        b.goto("/console").await;
        b.screenshots("login").await;
        b.sign_in(&ada).await;
        b.wait_for("a[href='/console/clients/new']").await;
        assert!(b.exists("section.empty").await, "a new user has no clients");

        b.click("a[href='/console/clients/new']").await;
        b.click("a[href='/console/clients/new?type=self']").await;
        b.wait_for("input[name=type][value=self]").await;
        assert!(
            !b.exists("#homepage").await,
            "a Self Client has no homepage"
        );
        assert!(!b.exists("[data-add-row]").await, "nor redirect URIs");
        b.fill("#name", "Nightly scripts").await;
        b.click("form[action='/console/clients'] button[type=submit]")
            .await;

        let client_id = b.text("#client-id").await;
        let secret = b.text("#client-secret").await;
        assert_client_id_shape(&client_id);
        assert_secret_shape(&secret);
        assert_eq!(b.text(".notice").await, "Client created.");
        assert!(
            b.wait_for("button[data-copy=client-secret]")
                .await
                .is_displayed()
                .await
                .unwrap(),
            "console.js reveals the Copy buttons"
        );

        b.tab("code").await;
        b.fill("#scope", "ZohoCRM.modules.ALL,AaaServer.profile.READ")
            .await;
        b.wait_for("#duration")
            .await
            .select_by_value("5")
            .await
            .unwrap();
        b.fill("#description", "nightly export").await;
        b.click("form[action$='/codes'] button[type=submit]").await;

        b.wait_for("dialog.code-dialog[open]").await;
        let code = b.text("#grant-code").await;
        assert_token_shape(&code);
        assert_eq!(
            b.attr(".countdown", "data-expires-in").await.as_deref(),
            Some("300")
        );
        // console.js replaces "Valid for 5 minutes." with a live countdown.
        let countdown = crate::until("the countdown to start", || async {
            let text = b.text(".countdown").await;
            text.starts_with("Expires in").then_some(text)
        })
        .await;
        assert_countdown(&countdown, 5);
        assert!(b.text("table.list").await.contains("Not used yet"));
        b.screenshots("self-client-dialog").await;

        b.click("dialog.code-dialog form[method=dialog] button")
            .await;
        b.wait_gone("dialog.code-dialog[open]").await;

        let (status, body) = s
            .token(&[
                ("grant_type", "authorization_code"),
                ("client_id", &client_id),
                ("client_secret", &secret),
                ("code", &code),
            ])
            .await
            .status_and_json();
        assert_eq!(status, 200, "{body}");
        assert_token_shape(body["access_token"].as_str().unwrap());
        assert_token_shape(body["refresh_token"].as_str().unwrap());
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(body["expires_in"], 3600);
        assert_eq!(body["api_domain"], crate::API_DOMAIN);
        let mut scopes: Vec<&str> = body["scope"].as_str().unwrap().split([' ', ',']).collect();
        scopes.sort();
        assert_eq!(scopes, ["AaaServer.profile.READ", "ZohoCRM.modules.ALL"]);

        // The token is Ada's.
        let info: Value = s
            .http
            .client
            .get(s.at("/oauth/user/info"))
            .header(
                "Authorization",
                format!("Zoho-oauthtoken {}", body["access_token"].as_str().unwrap()),
            )
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(info["Email"], ada.email);

        // The code is shown only once; the list now says it was used.
        b.goto(&format!("/console/clients/{client_id}?tab=code"))
            .await;
        assert!(b.text("table.list").await.contains("Used"));
        assert!(!b.exists("#grant-code").await);

        b.goto("/console").await;
        let row = b.text("table.list tbody tr").await;
        assert!(
            row.contains("Nightly scripts")
                && row.contains("Self Client")
                && row.contains(&client_id),
            "{row}"
        );
    })
    .await;
}

/// (e) Invalid input is shown next to its field, the input is kept, and nothing is saved:
/// neither by Add Client nor by a client's Settings.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_input_is_shown_by_its_field_and_saves_nothing() {
    Env::run("invalid_input", async |env: &Env| {
        let (s, b) = (&env.server, &env.browser);
        let ada = s.user_named("ada@example.test", "Ada Lovelace").await;
        b.sign_in_to_console(&ada).await;

        b.goto("/console/clients/new?type=server").await;
        b.fill("#name", "Bad <name>!").await;
        b.fill("#homepage", "https://app.example").await;
        b.fill("#redirect_uri_1", "javascript:alert(1)").await;
        b.click("form[action='/console/clients'] button[type=submit]")
            .await;

        let name_error = b.wait_for("#name-error").await;
        assert!(
            name_error.text().await.unwrap().contains("client name"),
            "{}",
            name_error.text().await.unwrap()
        );
        assert_eq!(
            b.attr("#name", "aria-invalid").await.as_deref(),
            Some("true")
        );
        assert!(b
            .attr("#name", "aria-describedby")
            .await
            .unwrap_or_default()
            .split(' ')
            .any(|id| id == "name-error"));
        let uri_error = b.text("fieldset.uris .field-error").await;
        assert!(uri_error.contains("javascript:alert(1)"), "{uri_error}");
        assert!(!b.exists("#homepage-error").await, "the homepage was fine");
        // Next to the field: just below it, before the next field.
        let (_, name_y, _, name_h) = b.wait_for("#name").await.rectangle().await.unwrap();
        let (_, error_y, _, _) = name_error.rectangle().await.unwrap();
        let (_, homepage_y, _, _) = b.wait_for("#homepage").await.rectangle().await.unwrap();
        assert!(
            error_y > name_y + name_h - 1.0
                && error_y < name_y + name_h + 60.0
                && error_y < homepage_y,
            "the name error ({error_y}) is not by the name field ({name_y}+{name_h})"
        );
        // What was typed is still there.
        assert_eq!(b.value("#name").await, "Bad <name>!");
        assert_eq!(b.value("#redirect_uri_1").await, "javascript:alert(1)");
        b.screenshots("add-client-errors").await;
        assert!(s.client_names(&ada).await.is_empty(), "nothing was saved");

        // Name fixed, URI still bad: still nothing saved, and only the URI is complained about.
        b.fill("#name", "Good name").await;
        b.click("form[action='/console/clients'] button[type=submit]")
            .await;
        b.wait_gone("#name-error").await;
        assert!(b
            .text("fieldset.uris .field-error")
            .await
            .contains("javascript:"));
        assert!(s.client_names(&ada).await.is_empty(), "nothing was saved");
        b.goto("/console").await;
        assert!(
            b.exists("section.empty").await,
            "the console lists no client"
        );

        // Settings of an existing client: a javascript: URI is refused there too.
        let redirect = env.catcher.redirect_uri("/cb");
        let client = s
            .named_client(ClientType::Server, "Kept app", &[&redirect], Some(&ada))
            .await;
        b.goto(&format!("/console/clients/{}?tab=settings", client.id))
            .await;
        b.fill("#name", "Renamed app").await;
        b.fill("#redirect_uri_1", "javascript:alert(document.cookie)")
            .await;
        b.click("form[action$='/settings'] button[type=submit]")
            .await;
        assert_eq!(
            b.text("section.panel > .error").await,
            "Nothing was saved. Correct the fields below."
        );
        assert!(b
            .text("fieldset.uris .field-error")
            .await
            .contains("javascript:alert(document.cookie)"));
        assert_eq!(
            b.value("#redirect_uri_1").await,
            "javascript:alert(document.cookie)"
        );
        let stored = s.store.client(&client.id).await.unwrap().unwrap();
        assert_eq!(stored.name, "Kept app");
        let uris: Vec<&str> = stored.redirect_uris.iter().map(|u| u.as_str()).collect();
        assert_eq!(uris, [redirect.as_str()]);

        // A bad name alone, in Settings.
        b.goto(&format!("/console/clients/{}?tab=settings", client.id))
            .await;
        b.fill("#name", "   ").await;
        b.click("form[action$='/settings'] button[type=submit]")
            .await;
        b.wait_for("#name-error").await;
        assert_eq!(
            b.attr("#name", "aria-invalid").await.as_deref(),
            Some("true")
        );
        assert_eq!(s.client_names(&ada).await, ["Kept app"]);
    })
    .await;
}

/// (f) A second user cannot open the first user's client: the page is "not found", the same
/// as for a client that does not exist, and a forged Regenerate changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_users_client_is_not_found() {
    Env::run("another_users_client", async |env: &Env| {
        let (s, b) = (&env.server, &env.browser);
        let ada = s.user_named("ada@example.test", "Ada Lovelace").await;
        let bob = s.user_named("bob@example.test", "Bob Example").await;
        let redirect = env.catcher.redirect_uri("/cb");
        let adas = s
            .named_client(
                ClientType::Server,
                "Ada private app",
                &[&redirect],
                Some(&ada),
            )
            .await;

        b.sign_in_to_console(&bob).await;
        assert!(
            b.exists("section.empty").await,
            "Bob's console lists nothing"
        );
        assert!(!b.body_text().await.contains("Ada private app"));

        for tab in ["", "?tab=secret", "?tab=settings", "?tab=code"] {
            b.goto(&format!("/console/clients/{}{tab}", adas.id)).await;
            let message = b.text("main .error").await;
            assert_eq!(message, "There is no such client in your console.", "{tab}");
            assert!(!b.body_text().await.contains("Ada private app"));
            assert!(!b.exists("#client-id").await);
        }
        b.screenshots("not-found").await;

        // The status, over HTTP with Bob's session: 404, like an id nobody has.
        let cookie = b.session_cookie().await;
        for id in [adas.id.as_str(), "1000.NOSUCHCLIENT0000000000000000000"] {
            let response = s
                .http
                .client
                .get(s.at(&format!("/console/clients/{id}")))
                .header("Cookie", &cookie)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 404, "{id}");
        }

        // Bob's own, valid CSRF token does not let him regenerate Ada's secret.
        b.goto("/console").await;
        let csrf = b
            .attr("form.signout input[name=csrf_token]", "value")
            .await
            .unwrap();
        let response = s
            .http
            .client
            .post(s.at(&format!("/console/clients/{}/secret", adas.id)))
            .header("Cookie", &cookie)
            .form(&[("csrf_token", csrf.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404);
        let body = response.text().await.unwrap();
        assert!(!body.contains("client-secret"), "{body}");
        let (status, reply) = s
            .refresh(&adas, &crate::unknown_token())
            .await
            .status_and_json();
        assert_eq!(
            (status, reply["error"].as_str()),
            (400, Some("invalid_grant")),
            "Ada's secret still authenticates: {reply}"
        );
    })
    .await;
}

/// (g) Regenerate (behind a `<details>` confirmation): the old secret stops working, the new
/// one works, and it is shown once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regenerate_retires_the_old_secret() {
    Env::run("regenerate", async |env: &Env| {
        let (s, b) = (&env.server, &env.browser);
        let ada = s.user_named("ada@example.test", "Ada Lovelace").await;
        let client = s
            .named_client(ClientType::SelfClient, "Ada scripts", &[], Some(&ada))
            .await;
        let old = client.secret.clone().unwrap();
        let code = s.self_code(&client, &ada, "ZohoCRM.modules.ALL", 3).await;
        let (status, tokens) = s
            .token(&[
                ("grant_type", "authorization_code"),
                ("client_id", &client.id),
                ("client_secret", &old),
                ("code", &code),
            ])
            .await
            .status_and_json();
        assert_eq!(status, 200, "{tokens}");
        let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();

        b.sign_in_to_console(&ada).await;
        b.click(&format!("a[href='/console/clients/{}']", client.id))
            .await;
        b.tab("secret").await;
        assert_eq!(b.text("#client-id").await, client.id);
        assert!(
            !b.exists("#client-secret").await,
            "a stored secret is never shown"
        );
        assert!(!b.body_text().await.contains(&old));
        let confirm = b.wait_for("details.confirm button.danger").await;
        assert!(
            !confirm.is_displayed().await.unwrap(),
            "the confirmation is closed until asked for"
        );
        b.click("details.confirm summary").await;
        b.click("details.confirm button.danger").await;

        let new = b.text("#client-secret").await;
        assert_secret_shape(&new);
        assert_ne!(new, old);
        assert!(b
            .text(".notice")
            .await
            .contains("the old one no longer works"));

        // The page after Regenerate is a page like any other: its tabs work.
        b.tab("settings").await;
        b.tab("secret").await;
        assert!(!b.exists("#client-secret").await, "shown once");

        // The client as its app knows it, with the secret before or after Regenerate.
        let with_secret = |secret: &str| TestClient {
            secret: Some(secret.to_owned()),
            ..client.clone()
        };
        let (status, reply) = s
            .refresh(&with_secret(&old), &refresh)
            .await
            .status_and_json();
        assert_eq!(
            (status, reply["error"].as_str()),
            (401, Some("invalid_client")),
            "the old secret: {reply}"
        );
        let (status, reply) = s
            .refresh(&with_secret(&new), &refresh)
            .await
            .status_and_json();
        assert_eq!(status, 200, "the new secret: {reply}");
        assert_token_shape(reply["access_token"].as_str().unwrap());
        let (status, _) = s
            .refresh(&with_secret(&old), &refresh)
            .await
            .status_and_json();
        assert_eq!(status, 401, "the old secret stays dead");

        // Shown once: a reload shows the mask again.
        b.goto(&format!("/console/clients/{}?tab=secret", client.id))
            .await;
        b.wait_for("#client-id").await;
        assert!(!b.exists("#client-secret").await);
        assert!(!b.body_text().await.contains(&new));
    })
    .await;
}
