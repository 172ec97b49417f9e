//! Zoho's incremental authorization (CONTRACT.md "Incremental authorization"): a refresh token
//! traded for an enhance token at `POST /oauth/v2/token/scopeenhance`, then the user's consent
//! for the extra scopes at `GET /oauth/v2/token/addextrascope`, driven over plain HTTP with the
//! parameters in the query string as Zoho's docs show it. Time moves by the test clock only.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use grantd_core::Dialect;
use reqwest::Url;

use crate::{
    ada_and_a, assert_token_shape, scope_set, Http, Redirect, Reply, TestClient, TestServer,
    TestUser, Wire,
};

const GRANTED: &str = "ZohoCRM.modules.READ,AaaServer.profile.READ";
const MORE: &str = "ZohoCRM.modules.READ,ZohoCRM.settings.READ,Demo.x.READ";

/// `POST /oauth/v2/token/scopeenhance`, the parameters in the query string.
async fn scope_enhance(server: &TestServer, client: &TestClient, refresh: &str) -> Reply {
    let secret = client.secret.clone().unwrap_or_default();
    server
        .post_query(
            "/oauth/v2/token/scopeenhance",
            &[
                ("client_id", client.id.as_str()),
                ("client_secret", secret.as_str()),
                ("grant_type", "update_scopes_token"),
                ("refresh_token", refresh),
            ],
        )
        .await
}

/// The enhance token of a successful answer, which must be exactly Zoho's body.
fn enhance_token(reply: &Reply) -> String {
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.assert_no_store();
    let body = reply.json();
    let mut keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort();
    assert_eq!(keys, ["access_token", "expires_in", "token_type"], "{body}");
    assert_eq!(body["token_type"], "update_scope", "{body}");
    assert_eq!(body["expires_in"], 600, "{body}");
    let token = body["access_token"].as_str().unwrap().to_owned();
    assert_token_shape(&token);
    token
}

fn add_extra_scope_url(
    server: &TestServer,
    client: &TestClient,
    scope: &str,
    enhance: &str,
    logout: bool,
) -> String {
    Url::parse_with_params(
        &server.at("/oauth/v2/token/addextrascope"),
        &[
            ("client_id", client.id.as_str()),
            ("response_type", "update_scopes"),
            ("redirect_uri", client.redirect_uri.as_str()),
            ("scope", scope),
            ("enhance_token", enhance),
            ("state", "s t&u"),
            ("logout", if logout { "true" } else { "false" }),
        ],
    )
    .unwrap()
    .to_string()
}

/// A granted refresh token for `GRANTED`, and a fresh enhance token for it.
async fn granted(server: &TestServer, user: &TestUser, a: &TestClient) -> (String, String) {
    let tokens = server.offline_tokens(user, a, GRANTED).await;
    let refresh = tokens.refresh().to_owned();
    let enhance = enhance_token(&scope_enhance(server, a, &refresh).await);
    (refresh, enhance)
}

/// The scopes a refresh without `scope` answers with: everything the grant holds.
async fn grant_scopes(server: &TestServer, a: &TestClient, refresh: &str) -> Vec<String> {
    let tokens = server.refresh(a, refresh).await.tokens();
    scope_set(tokens.body["scope"].as_str().unwrap())
}

/// Signs in on a login page if one is shown, following the server's own redirects, until the
/// consent page or a redirect to the client.
async fn drive(browser: &Http, server: &TestServer, url: &str, user: &TestUser) -> Reply {
    let mut page = browser.get(url).await;
    for _ in 0..4 {
        if page.is_login_page() {
            page = browser.sign_in_on(&page, &user.email, &user.password).await;
            continue;
        }
        match page.location() {
            Some(next) if next.as_str().starts_with(&server.url) => {
                page = browser.get(next.as_str()).await;
            }
            _ => return page,
        }
    }
    page
}

/// Answers the consent page; the redirect to the client.
async fn answer(browser: &Http, page: &Reply, decision: &str) -> Redirect {
    assert!(page.is_consent_page(), "{} {}", page.status, page.body);
    let form = page.form_with("decision");
    let reply = browser.submit(&form, &[("decision", decision)]).await;
    Redirect::from_reply(&reply)
}

fn shown_scopes(page: &Reply) -> Vec<String> {
    let html = page.html();
    let code = scraper::Selector::parse("ul.scopes code").unwrap();
    let mut shown: Vec<String> = html.select(&code).map(|c| c.inner_html()).collect();
    shown.sort();
    shown
}

#[tokio::test]
async fn accept_adds_only_the_extra_scopes_to_the_grant() {
    skip_without_postgres!();
    let (server, ada, a) = ada_and_a().await;
    let (refresh, enhance) = granted(&server, &ada, &a).await;
    // Not granted yet: a refresh may not widen.
    let wider = server
        .refresh_scoped(&a, &refresh, "ZohoCRM.settings.READ")
        .await;
    wider.assert_error(a.dialect, Wire::InvalidScope);

    let browser = server.browser_of(&ada);
    let url = add_extra_scope_url(&server, &a, MORE, &enhance, false);
    let page = drive(&browser, &server, &url, &ada).await;
    assert_eq!(
        shown_scopes(&page),
        ["Demo.x.READ", "ZohoCRM.settings.READ"],
        "only the scopes the grant lacks are asked for"
    );
    let redirect = answer(&browser, &page, "accept").await;
    assert!(
        redirect.raw.starts_with(&a.redirect_uri),
        "{}",
        redirect.raw
    );
    assert_eq!(redirect.param("status"), Some("success"));
    assert_eq!(redirect.param("state"), Some("s t&u"));
    assert_eq!(redirect.error(), None);

    let mut expected = scope_set(&format!("{GRANTED},{MORE}"));
    expected.sort();
    expected.dedup();
    let mut now = grant_scopes(&server, &a, &refresh).await;
    now.sort();
    assert_eq!(now, expected);
    let narrowed = server
        .refresh_scoped(&a, &refresh, "ZohoCRM.settings.READ")
        .await;
    let access = narrowed.tokens().access;
    let info = server.introspect(&a, &access).await.json();
    assert_eq!(info["active"], true, "{info}");
    assert_eq!(info["scope"], "ZohoCRM.settings.READ", "{info}");
    // The session stays without logout=true.
    assert!(browser.session().is_some());
}

#[tokio::test]
async fn reject_changes_nothing_and_uses_the_enhance_token() {
    skip_without_postgres!();
    let (server, ada, a) = ada_and_a().await;
    let (refresh, enhance) = granted(&server, &ada, &a).await;
    let before = grant_scopes(&server, &a, &refresh).await;
    let browser = server.browser_of(&ada);
    let url = add_extra_scope_url(&server, &a, MORE, &enhance, false);
    let page = drive(&browser, &server, &url, &ada).await;
    let redirect = answer(&browser, &page, "reject").await;
    assert_eq!(redirect.error(), Some("access_denied"));
    assert_eq!(redirect.param("state"), Some("s t&u"));
    assert_eq!(redirect.param("status"), None);
    assert_eq!(grant_scopes(&server, &a, &refresh).await, before);
    let again = Redirect::from_reply(&browser.get(&url).await);
    assert_eq!(again.error(), Some("invalid_request"), "used on decision");
}

#[tokio::test]
async fn an_enhance_token_is_single_use_and_lives_600_seconds() {
    skip_without_postgres!();
    let (server, ada, a) = ada_and_a().await;
    let (_, enhance) = granted(&server, &ada, &a).await;
    let browser = server.browser_of(&ada);
    let url = add_extra_scope_url(&server, &a, MORE, &enhance, false);
    let page = drive(&browser, &server, &url, &ada).await;
    let form = page.form_with("decision");
    assert_eq!(
        answer(&browser, &page, "accept").await.param("status"),
        Some("success")
    );
    // The same consent form again, and the same link again: nothing.
    let replay = browser.submit(&form, &[("decision", "accept")]).await;
    assert_eq!(replay.status, 400, "{}", replay.body);
    let again = Redirect::from_reply(&browser.get(&url).await);
    assert_eq!(again.error(), Some("invalid_request"));

    let (refresh, _) = granted(&server, &ada, &a).await;
    let young = enhance_token(&scope_enhance(&server, &a, &refresh).await);
    let old = enhance_token(&scope_enhance(&server, &a, &refresh).await);
    server.clock.advance(599);
    let page = browser
        .get(&add_extra_scope_url(
            &server,
            &a,
            "Demo.y.READ",
            &young,
            false,
        ))
        .await;
    assert!(page.is_consent_page(), "{}", page.body);
    server.clock.advance(1);
    let expired = browser
        .get(&add_extra_scope_url(
            &server,
            &a,
            "Demo.y.READ",
            &old,
            false,
        ))
        .await;
    assert_eq!(
        Redirect::from_reply(&expired).error(),
        Some("invalid_request")
    );
    // Answering a page shown before the expiry, after it, changes nothing either.
    let late = browser
        .submit(&page.form_with("decision"), &[("decision", "accept")])
        .await;
    assert_eq!(late.status, 400, "{}", late.body);
    assert!(!grant_scopes(&server, &a, &refresh)
        .await
        .contains(&"Demo.y.READ".to_owned()));
}

#[tokio::test]
async fn scopeenhance_authenticates_the_client_and_its_refresh_token() {
    skip_without_postgres!();
    let (server, ada, a) = ada_and_a().await;
    let zoho = server.zoho_client("https://z.example/cb").await;
    let refresh = server
        .offline_tokens(&ada, &a, GRANTED)
        .await
        .refresh()
        .to_owned();
    let zoho_refresh = server
        .offline_tokens(&ada, &zoho, GRANTED)
        .await
        .refresh()
        .to_owned();
    // A wrong secret: `invalid_client` for a standard client; Zoho's docs name it apart.
    let mut wrong = a.clone();
    wrong.secret = Some("0".repeat(42));
    scope_enhance(&server, &wrong, &refresh)
        .await
        .assert_error(Dialect::Standard, Wire::InvalidClient);
    let mut wrong = zoho.clone();
    wrong.secret = Some("0".repeat(42));
    let reply = scope_enhance(&server, &wrong, &zoho_refresh).await;
    assert_eq!(
        (reply.status, reply.json()["error"].as_str()),
        (200, Some("invalid_client_secret")),
        "{}",
        reply.body
    );
    reply.assert_error_body();
    let mut unknown = a.clone();
    unknown.id = "1000.UNKNOWNUNKNOWNUNKNOWNUNKNOWN12".into();
    scope_enhance(&server, &unknown, &refresh)
        .await
        .assert_error(Dialect::Standard, Wire::InvalidClient);

    // Another client's refresh token: the bad-grant error of the caller's dialect.
    scope_enhance(&server, &a, &zoho_refresh)
        .await
        .assert_error(Dialect::Standard, Wire::InvalidGrant);
    scope_enhance(&server, &zoho, &refresh)
        .await
        .assert_error(Dialect::Zoho, Wire::InvalidGrant);
    let revoked = server
        .offline_tokens(&ada, &a, GRANTED)
        .await
        .refresh()
        .to_owned();
    assert_eq!(server.revoke(&revoked).await.status, 200);
    scope_enhance(&server, &a, &revoked)
        .await
        .assert_error(Dialect::Standard, Wire::InvalidGrant);
    let wrong_grant = server
        .post_query(
            "/oauth/v2/token/scopeenhance",
            &[
                ("client_id", a.id.as_str()),
                ("client_secret", a.secret()),
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh.as_str()),
            ],
        )
        .await;
    wrong_grant.assert_error(Dialect::Standard, Wire::UnsupportedGrantType);
    // Both work for their own refresh tokens, the urlencoded body too.
    enhance_token(&scope_enhance(&server, &zoho, &zoho_refresh).await);
    let mut fields = a.body_auth();
    fields.push(("grant_type", "update_scopes_token".into()));
    fields.push(("refresh_token", refresh.clone()));
    enhance_token(
        &server
            .post_form("/oauth/v2/token/scopeenhance", &fields)
            .await,
    );

    // addextrascope: the enhance token of A presented as Z's is not Z's.
    let enhance = enhance_token(&scope_enhance(&server, &a, &refresh).await);
    let browser = server.browser_of(&ada);
    let as_zoho = add_extra_scope_url(&server, &zoho, MORE, &enhance, false);
    let refused = Redirect::from_reply(&browser.get(&as_zoho).await);
    assert_eq!(refused.error(), Some("invalid_request"));
    // An unregistered redirect URI: an error page, never a redirect.
    let mut elsewhere = a.clone();
    elsewhere.redirect_uri = "https://evil.example/cb".into();
    let page = browser
        .get(&add_extra_scope_url(
            &server, &elsewhere, MORE, &enhance, false,
        ))
        .await;
    page.assert_error_page();
    // Still A's to use.
    let page = drive(
        &browser,
        &server,
        &add_extra_scope_url(&server, &a, MORE, &enhance, false),
        &ada,
    )
    .await;
    assert!(page.is_consent_page(), "{}", page.body);
}

#[tokio::test]
async fn sign_in_first_then_logout_true_ends_the_session() {
    skip_without_postgres!();
    let (server, ada, a) = ada_and_a().await;
    let (refresh, enhance) = granted(&server, &ada, &a).await;
    let browser = server.browser();
    let url = add_extra_scope_url(&server, &a, "Demo.x.READ", &enhance, true);
    let first = browser.get(&url).await;
    assert!(first.is_login_page(), "{}", first.body);
    let page = drive(&browser, &server, &url, &ada).await;
    assert_eq!(shown_scopes(&page), ["Demo.x.READ"]);
    assert!(browser.session().is_some());
    let redirect = answer(&browser, &page, "accept").await;
    assert_eq!(redirect.param("status"), Some("success"));
    assert!(
        browser.session().is_none(),
        "logout=true clears the session cookie"
    );
    assert!(grant_scopes(&server, &a, &refresh)
        .await
        .contains(&"Demo.x.READ".to_owned()));
    // The session is gone at the server too: the next request asks to sign in again.
    let next = enhance_token(&scope_enhance(&server, &a, &refresh).await);
    let again = browser
        .get(&add_extra_scope_url(
            &server,
            &a,
            "Demo.y.READ",
            &next,
            false,
        ))
        .await;
    assert!(again.is_login_page(), "{}", again.body);
}

#[tokio::test]
async fn another_signed_in_user_is_refused_and_nothing_extra_is_approved_at_once() {
    skip_without_postgres!();
    let (server, ada, a) = ada_and_a().await;
    let bob = server.user("bob@example.com").await;
    let (refresh, enhance) = granted(&server, &ada, &a).await;
    server.offline_tokens(&bob, &a, GRANTED).await;
    let bobs = server.browser_of(&bob);
    let url = add_extra_scope_url(&server, &a, MORE, &enhance, false);
    let refused = bobs.get(&url).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(refused.header("location").is_none());
    // Ada still can; asking only for what the grant holds needs no page at all.
    let adas = server.browser_of(&ada);
    let covered = add_extra_scope_url(&server, &a, "ZohoCRM.modules.READ", &enhance, false);
    let redirect = Redirect::from_reply(&adas.get(&covered).await);
    assert_eq!(redirect.param("status"), Some("success"));
    let mut now = grant_scopes(&server, &a, &refresh).await;
    now.sort();
    let mut before = scope_set(GRANTED);
    before.sort();
    assert_eq!(now, before);
}
