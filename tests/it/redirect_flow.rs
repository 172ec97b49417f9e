//! The redirect flow through the real login and consent pages (CONTRACT.md
//! `/oauth/v2/auth`, steps 2 to 5).

use std::collections::BTreeSet;

use grantd_core::{ClientType, Dialect};

use crate::{scope_set, start, start_with, Decision, Redirect, CRM_AND_PROFILE};

/// Every character class that tends to get lost or re-encoded on the way: spaces, `+`, `&`,
/// `=`, `%`-sequences, `#`, quotes, angle brackets, backslash, non-ASCII.
const NASTY_STATE: &str = "a b+c&d=e%20f%2Bg/?#x;y,z'\"<tag>\\~!*()[]{}|^`$@ é☃𝄞";

#[tokio::test]
async fn accept_redirects_with_code_location_accounts_server_state_and_iss() {
    skip_without_postgres!();
    let server = start_with(|s| s.location = "eu".into()).await;
    let user = server.user("ada@example.com").await;
    let client = server.server_client("https://a.example/cb").await;
    let browser = server.browser();
    let url = server.auth_url(&client, "ZohoCRM.modules.ALL", &[("state", NASTY_STATE)]);

    let flow = browser.authorize(&url, &user, Decision::Accept).await;

    assert!(flow.saw_login && flow.saw_consent);
    let redirect = flow.redirect;
    assert_eq!(redirect.status, 302);
    assert!(
        redirect.raw.starts_with("https://a.example/cb?"),
        "{}",
        redirect.raw
    );
    assert!(!redirect.raw.contains('#'), "{}", redirect.raw);
    let names: BTreeSet<&str> = redirect.params.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        BTreeSet::from(["code", "location", "accounts-server", "state", "iss"]),
        "{}",
        redirect.raw
    );
    redirect.code();
    assert_eq!(redirect.param("location"), Some("eu"));
    assert_eq!(redirect.param("accounts-server"), Some(server.url.as_str()));
    assert_eq!(redirect.param("iss"), Some(server.url.as_str()));
    // Byte for byte, after the one level of URL decoding every client applies.
    assert_eq!(redirect.param("state"), Some(NASTY_STATE));

    let tokens = server.exchange(&client, &redirect.code()).await.tokens();
    assert_eq!(tokens.body["scope"], "ZohoCRM.modules.ALL");
    assert_eq!(tokens.body["expires_in"], 3600);
}

#[tokio::test]
async fn reject_redirects_with_access_denied_state_and_iss() {
    skip_without_postgres!();
    let server = start().await;
    let user = server.user("ada@example.com").await;
    let client = server.server_client("https://a.example/cb").await;
    let url = server.auth_url(&client, "ZohoCRM.modules.ALL", &[("state", NASTY_STATE)]);

    let flow = server
        .browser()
        .authorize(&url, &user, Decision::Reject)
        .await;

    let redirect = flow.redirect;
    assert_eq!(redirect.status, 302);
    assert!(
        redirect.raw.starts_with("https://a.example/cb?"),
        "{}",
        redirect.raw
    );
    assert_eq!(redirect.error(), Some("access_denied"));
    assert_eq!(redirect.param("state"), Some(NASTY_STATE));
    assert_eq!(redirect.param("iss"), Some(server.url.as_str()));
    assert_eq!(redirect.param("code"), None);
    assert_eq!(server.rows("grant_codes").await, 0);
    assert_eq!(server.rows("consents").await, 0);
}

#[tokio::test]
async fn state_is_left_out_when_not_sent() {
    skip_without_postgres!();
    let server = start().await;
    let user = server.user("ada@example.com").await;
    let client = server.server_client("https://a.example/cb").await;
    let url = server.auth_url(&client, "ZohoCRM.modules.ALL", &[]);

    let redirect = server
        .browser()
        .authorize(&url, &user, Decision::Accept)
        .await
        .redirect;

    redirect.code();
    assert_eq!(redirect.param("state"), None, "{}", redirect.raw);
    assert_eq!(redirect.param("iss"), Some(server.url.as_str()));
}

#[tokio::test]
async fn registered_redirect_uri_keeps_its_own_query() {
    skip_without_postgres!();
    let server = start().await;
    let user = server.user("ada@example.com").await;
    let q = server.server_client("https://q.example/cb?tenant=7").await;
    let url = server.auth_url(&q, "ZohoCRM.modules.ALL", &[("state", "s1")]);

    let redirect = server
        .browser()
        .authorize(&url, &user, Decision::Accept)
        .await
        .redirect;

    assert!(
        redirect.raw.starts_with("https://q.example/cb?tenant=7&"),
        "{}",
        redirect.raw
    );
    assert_eq!(redirect.param("tenant"), Some("7"));
    assert_eq!(redirect.param("state"), Some("s1"));
    assert_eq!(redirect.url.path(), "/cb");
    // The token request names the registered URI, query included.
    let tokens = server.exchange(&q, &redirect.code()).await.tokens();
    assert_eq!(tokens.body["scope"], "ZohoCRM.modules.ALL");
}

#[tokio::test]
async fn login_page_has_the_fixed_form_and_the_request_continues_after_login() {
    skip_without_postgres!();
    let server = start().await;
    let user = server.user("ada@example.com").await;
    let client = server.server_client("https://a.example/cb").await;
    let browser = server.browser();
    let url = server.auth_url(&client, "ZohoCRM.modules.ALL", &[("state", "s1")]);

    let page = browser.get(&url).await;
    assert!(page.is_login_page(), "{} {}", page.status, page.body);
    assert!(
        !page
            .header_all("set-cookie")
            .iter()
            .any(|c| c.starts_with("grantd_session_us=")),
        "a session before login"
    );
    let form = page.form_with("email");
    assert!(form.get("csrf_token").is_some() && form.get("email").is_some());
    let next = form.get("next").unwrap().to_owned();
    assert!(next.starts_with("/oauth/v2/auth?"), "next = {next:?}");

    let after = browser.sign_in_on(&page, &user.email, &user.password).await;
    assert_eq!(after.status, 303, "{}", after.body);
    assert_eq!(after.header("location"), Some(next.as_str()));
    let session = after
        .header_all("set-cookie")
        .into_iter()
        .find(|c| c.starts_with("grantd_session_us="))
        .expect("a session cookie");
    assert!(session.contains("HttpOnly"), "{session}");
    assert!(session.contains("Path=/"), "{session}");
    assert!(
        session.contains("SameSite=Lax") || session.contains("SameSite=Strict"),
        "{session}"
    );
    assert!(
        !session.to_ascii_lowercase().contains("domain="),
        "{session}"
    );
    let value = browser.session().unwrap();
    assert!(
        value.len() >= 32,
        "a session id of at least 128 bits: {value:?}"
    );

    let consent = browser.get(after.location().unwrap().as_str()).await;
    assert!(
        consent.is_consent_page(),
        "{} {}",
        consent.status,
        consent.body
    );
    assert!(
        consent.body.contains("Test server app"),
        "the consent page names the client"
    );
    assert!(
        consent.body.contains("ZohoCRM.modules.ALL"),
        "the consent page names the scope"
    );
    let form = consent.form_with("decision");
    form.csrf_token();
    let redirect = Redirect::from_reply(&browser.submit(&form, &[("decision", "accept")]).await);
    redirect.code();
    assert_eq!(redirect.param("state"), Some("s1"));
}

#[tokio::test]
async fn consent_is_remembered_for_granted_scopes_and_asked_again_for_new_ones() {
    skip_without_postgres!();
    let server = start().await;
    let user = server.user("ada@example.com").await;
    let client = server.server_client("https://a.example/cb").await;
    let browser = server.browser();
    let granted = "ZohoCRM.modules.ALL,Demo.x.READ";

    let first = browser
        .authorize(
            &server.auth_url(&client, granted, &[]),
            &user,
            Decision::Accept,
        )
        .await;
    assert!(first.saw_consent);

    // Same scopes, then a subset: approved at once.
    for scope in [granted, "Demo.x.READ"] {
        let again = browser
            .authorize(
                &server.auth_url(&client, scope, &[("state", "again")]),
                &user,
                Decision::Accept,
            )
            .await;
        assert!(
            !again.saw_login && !again.saw_consent,
            "consent asked again for {scope}"
        );
        assert_eq!(again.redirect.param("state"), Some("again"));
        let tokens = server
            .exchange(&client, &again.redirect.code())
            .await
            .tokens();
        assert_eq!(
            scope_set(tokens.body["scope"].as_str().unwrap()),
            scope_set(scope)
        );
    }

    // A scope not yet granted: the consent page again, listing it.
    let wider = browser
        .authorize(
            &server.auth_url(&client, "Demo.y.READ,Demo.x.READ", &[]),
            &user,
            Decision::Accept,
        )
        .await;
    assert!(wider.saw_consent);
    assert!(wider.consent_page.unwrap().body.contains("Demo.y.READ"));

    // prompt=consent always asks.
    let prompted = browser
        .authorize(
            &server.auth_url(&client, "Demo.x.READ", &[("prompt", "consent")]),
            &user,
            Decision::Accept,
        )
        .await;
    assert!(prompted.saw_consent);
    prompted.redirect.code();
}

#[tokio::test]
async fn authorization_by_post_works_like_get() {
    skip_without_postgres!();
    let server = start().await;
    let user = server.user("ada@example.com").await;
    let client = server.server_client("https://a.example/cb").await;
    let browser = server.browser();
    server
        .code(&browser, &user, &client, CRM_AND_PROFILE, &[])
        .await;

    let resp = browser
        .client
        .post(server.at("/oauth/v2/auth"))
        .form(&[
            ("response_type", "code"),
            ("client_id", client.id.as_str()),
            ("scope", CRM_AND_PROFILE),
            ("redirect_uri", client.redirect_uri.as_str()),
            ("state", "by post"),
        ])
        .send()
        .await
        .unwrap();
    let redirect = Redirect::from_reply(&crate::Reply::read(resp).await);

    assert_eq!(redirect.param("state"), Some("by post"));
    let tokens = server.exchange(&client, &redirect.code()).await.tokens();
    assert!(server.access_works(&tokens.access).await);
}

#[tokio::test]
async fn other_authorization_errors_redirect_with_state_and_iss() {
    skip_without_postgres!();
    let server = start().await;
    let client = server.server_client("https://a.example/cb").await;
    let browser = server.browser();
    let base = [
        ("client_id", client.id.as_str()),
        ("redirect_uri", "https://a.example/cb"),
        ("state", "st"),
    ];
    let cases: [(&[(&str, &str)], &str); 5] = [
        (
            &[("response_type", "token"), ("scope", "ZohoCRM.modules.ALL")],
            "unsupported_response_type",
        ),
        (&[("response_type", "code")], "invalid_request"),
        (&[("scope", "ZohoCRM.modules.ALL")], "invalid_request"),
        (
            &[
                ("response_type", "code"),
                ("scope", "ZohoCRM.modules.ALL"),
                ("access_type", "forever"),
            ],
            "invalid_request",
        ),
        (
            &[
                ("response_type", "code"),
                ("scope", "ZohoCRM.modules.ALL"),
                ("code_challenge", &"a".repeat(43)),
                ("code_challenge_method", "plain"),
            ],
            "invalid_request",
        ),
    ];
    for (params, error) in cases {
        let mut all: Vec<(&str, &str)> = base.to_vec();
        all.extend_from_slice(params);
        let reply = browser.get(&server.auth_url_raw(&all)).await;
        let redirect = Redirect::from_reply(&reply);
        assert!(
            redirect.raw.starts_with("https://a.example/cb?"),
            "{}",
            redirect.raw
        );
        assert_eq!(
            redirect.error(),
            Some(error),
            "{params:?}: {}",
            redirect.raw
        );
        assert_eq!(redirect.param("state"), Some("st"));
        assert_eq!(redirect.param("iss"), Some(server.url.as_str()));
        reply.assert_nothing_issued();
    }
    assert_eq!(server.rows("grant_codes").await, 0);
}

#[tokio::test]
async fn t018_error_redirects_carry_state_and_iss() {
    skip_without_postgres!();
    let server = start().await;
    let user = server.user("ada@example.com").await;
    let client = server.server_client("https://a.example/cb").await;
    let browser = server.browser();
    // Signed in and consented, so only the scope stands between the request and a code.
    server
        .code(&browser, &user, &client, "ZohoCRM.modules.ALL", &[])
        .await;
    let codes = server.rows("grant_codes").await;

    for scope in [
        "Nope.bad",
        "Nope.bad.READ",
        "ZohoCRM.modules.ALL,Nope.bad.READ",
        "ZohoCRM.modules.WRITE",
    ] {
        for who in [&browser, &server.browser()] {
            let url = server.auth_url(&client, scope, &[("state", NASTY_STATE)]);
            let reply = who.get(&url).await;
            reply.assert_nothing_issued();
            let redirect = Redirect::from_reply(&reply);
            assert!(
                redirect.raw.starts_with("https://a.example/cb?"),
                "{}",
                redirect.raw
            );
            assert_eq!(
                redirect.error(),
                Some("invalid_scope"),
                "{scope}: {}",
                redirect.raw
            );
            assert_eq!(redirect.param("state"), Some(NASTY_STATE));
            assert_eq!(redirect.param("iss"), Some(server.url.as_str()));
        }
    }
    assert_eq!(server.rows("grant_codes").await, codes);
}

#[tokio::test]
async fn t028_consent_for_one_redirect_uri_is_not_reused_for_another() {
    skip_without_postgres!();
    let server = start().await;
    let user = server.user("ada@example.com").await;
    let mut client = server
        .client(
            ClientType::Server,
            &["https://a.example/cb", "https://a.example/other"],
            Dialect::Standard,
            None,
        )
        .await;
    let browser = server.browser();
    let first = browser
        .authorize(
            &server.auth_url(&client, "Demo.x.READ", &[]),
            &user,
            Decision::Accept,
        )
        .await;
    assert!(first.saw_consent);

    // The same client and scope, but the other registered redirect URI: asked again.
    client.redirect_uri = "https://a.example/other".into();
    let other = browser
        .authorize(
            &server.auth_url(&client, "Demo.x.READ", &[]),
            &user,
            Decision::Accept,
        )
        .await;
    assert!(
        other.saw_consent,
        "silent approval for an unconsented redirect URI"
    );
    assert!(other.redirect.raw.starts_with("https://a.example/other?"));

    // Both URIs are now consented: no consent page for either.
    for uri in ["https://a.example/cb", "https://a.example/other"] {
        client.redirect_uri = uri.into();
        let again = browser
            .authorize(
                &server.auth_url(&client, "Demo.x.READ", &[]),
                &user,
                Decision::Accept,
            )
            .await;
        assert!(!again.saw_consent, "consent asked again for {uri}");
    }
}
