//! Hostile browsers and hostile input (SECURITY-CASES.md 1.B, 1.I, 1.J): consent CSRF and
//! replay, reflection and header injection, oversized and too many parameters, and the headers
//! every response carries.

use std::time::{Duration, Instant};

use grantd_core::Dialect;

use crate::{
    ada_and_a, unknown_token, Http, Redirect, Reply, TestClient, TestServer, TestUser, Wire,
    CRM_AND_PROFILE,
};

/// A signed-in browser showing the consent page for `url`.
async fn at_consent(server: &TestServer, user: &TestUser, url: &str) -> (Http, Reply) {
    let browser = server.browser();
    browser.sign_in(url, user).await;
    let page = browser.get(url).await;
    assert!(page.is_consent_page(), "{} {}", page.status, page.body);
    (browser, page)
}

#[tokio::test]
async fn t020_consent_without_a_valid_token_or_from_another_site_is_forbidden() {
    skip_without_postgres!();
    let (server, user, a) = ada_and_a().await;
    let url = server.auth_url(&a, CRM_AND_PROFILE, &[("state", "victim")]);
    let (victim, page) = at_consent(&server, &user, &url).await;
    let (_, attacker_page) = at_consent(&server, &user, &url).await;
    let form = page.form_with("decision");
    let accept = [("decision", "accept")];

    let mut without = form.clone();
    without.remove("csrf_token");
    let mut foreign = form.clone();
    foreign.set(
        "csrf_token",
        attacker_page.form_with("decision").csrf_token(),
    );
    let mut empty = form.clone();
    empty.set("csrf_token", "");
    let attempts = [
        victim.submit(&without, &accept).await,
        victim.submit(&foreign, &accept).await,
        victim.submit(&empty, &accept).await,
        victim
            .submit_with(&form, &accept, &[("Origin", "https://evil.test")])
            .await,
        victim
            .submit_with(&form, &accept, &[("Sec-Fetch-Site", "cross-site")])
            .await,
        victim
            .submit_with(&form, &accept, &[("Origin", "null")])
            .await,
    ];
    for (i, reply) in attempts.iter().enumerate() {
        assert_eq!(reply.status, 403, "attempt {i}: {}", reply.body);
        reply.assert_nothing_issued();
    }
    assert_eq!(server.rows("grant_codes").await, 0);
    assert_eq!(server.rows("consents").await, 0);

    // The forgeries did not use up the user's own decision; a same-origin submit works.
    let own = victim
        .submit_with(
            &form,
            &accept,
            &[("Origin", &server.url), ("Sec-Fetch-Site", "same-origin")],
        )
        .await;
    let redirect = Redirect::from_reply(&own);
    redirect.code();
    assert_eq!(redirect.param("state"), Some("victim"));
}

/// Issue 12: a consent decided after its client, or the redirect URI it names, was removed
/// (while the page was open) is an error page: no code, no redirect to the URI, never a 500.
#[tokio::test]
async fn a_consent_decided_after_its_client_or_redirect_uri_went_is_an_error_page() {
    skip_without_postgres!();
    use grantd_core::{ClientId, ClientType, RedirectUri};
    use grantd_store::{ClientUpdate, ConsoleVerbs};

    let server = crate::start().await;
    let user = server.user("ada@example.com").await;
    let kept = "https://a.example/kept";
    let a = server
        .client(
            ClientType::Server,
            &["https://a.example/cb", kept],
            Dialect::Standard,
            Some(&user),
        )
        .await;
    let b = server.server_client("https://b.example/cb").await;

    // The redirect URI goes: both decisions are refused with the page.
    let url = server.auth_url(&a, CRM_AND_PROFILE, &[("state", "gone-uri")]);
    let (browser, accept_page) = at_consent(&server, &user, &url).await;
    let reject_page = browser.get(&url).await;
    assert!(reject_page.is_consent_page());
    let update = ClientUpdate {
        name: a.name.clone(),
        homepage: None,
        redirect_uris: vec![RedirectUri::from_stored(kept.into())],
        js_domain: None,
        dialect: Dialect::Standard,
        introspect_any: None,
    };
    let id = ClientId::new(a.id.clone());
    assert!(server
        .store
        .update_client(&id, user.id, &update)
        .await
        .unwrap());
    for (page, decision) in [(&accept_page, "accept"), (&reject_page, "reject")] {
        let reply = browser
            .submit(&page.form_with("decision"), &[("decision", decision)])
            .await;
        reply.assert_error_page();
        assert!(
            reply.body.contains("no longer registered"),
            "{}",
            reply.body
        );
    }

    // The client goes: the same page, not a 500.
    let url = server.auth_url(&b, CRM_AND_PROFILE, &[("state", "gone-client")]);
    let (browser, page) = at_consent(&server, &user, &url).await;
    assert!(server.store.remove_client(&b.id).await.unwrap());
    let reply = browser
        .submit(&page.form_with("decision"), &[("decision", "accept")])
        .await;
    reply.assert_error_page();
    assert!(
        reply.body.contains("no longer registered"),
        "{}",
        reply.body
    );

    assert_eq!(server.rows("grant_codes").await, 0);
    assert_eq!(server.rows("consents").await, 0);
}

#[tokio::test]
async fn t022_consent_by_get_is_405_and_a_replayed_consent_is_400() {
    skip_without_postgres!();
    let (server, user, a) = ada_and_a().await;
    let url = server.auth_url(&a, CRM_AND_PROFILE, &[]);
    let (browser, page) = at_consent(&server, &user, &url).await;
    let form = page.form_with("decision");

    let mut by_get = form.action.clone();
    by_get
        .query_pairs_mut()
        .extend_pairs(form.fields.iter())
        .append_pair("decision", "accept");
    let get = browser.get(by_get.as_str()).await;
    assert_eq!(get.status, 405, "{}", get.body);
    get.assert_nothing_issued();
    assert_eq!(server.rows("grant_codes").await, 0);

    let first = browser.submit(&form, &[("decision", "accept")]).await;
    Redirect::from_reply(&first).code();
    let replay = browser.submit(&form, &[("decision", "accept")]).await;
    assert_eq!(replay.status, 400, "{}", replay.body);
    replay.assert_nothing_issued();
    let reject_replay = browser.submit(&form, &[("decision", "reject")]).await;
    assert_eq!(reject_replay.status, 400, "{}", reject_replay.body);
    assert_eq!(server.rows("grant_codes").await, 1);
}

#[tokio::test]
async fn consent_form_expires() {
    skip_without_postgres!();
    let (server, user, a) = ada_and_a().await;
    let url = server.auth_url(&a, CRM_AND_PROFILE, &[("state", "late")]);
    let (browser, page) = at_consent(&server, &user, &url).await;
    let form = page.form_with("decision");

    server.clock.advance(601);
    let reply = browser.submit(&form, &[("decision", "accept")]).await;

    assert_eq!(reply.status, 400, "{}", reply.body);
    reply.assert_nothing_issued();
    assert_eq!(server.rows("grant_codes").await, 0);
}

#[tokio::test]
async fn consent_decision_must_be_accept_or_reject() {
    skip_without_postgres!();
    let (server, user, a) = ada_and_a().await;
    let url = server.auth_url(&a, CRM_AND_PROFILE, &[]);
    let (browser, page) = at_consent(&server, &user, &url).await;
    let form = page.form_with("decision");
    for decision in ["", "ACCEPT", "yes"] {
        let reply = browser.submit(&form, &[("decision", decision)]).await;
        reply.assert_nothing_issued();
        assert!(
            reply.status == 400 || Redirect::from_reply(&reply).error() == Some("access_denied"),
            "{decision:?}: {}",
            reply.status
        );
    }
    assert_eq!(server.rows("grant_codes").await, 0);
}

const SCRIPT: &str = "<script>alert(1)</script>";

fn assert_no_injection(reply: &Reply) {
    for cookie in reply.header_all("set-cookie") {
        assert!(
            !cookie.starts_with("x=") && !cookie.starts_with("y="),
            "injected cookie: {cookie}"
        );
    }
    assert!(
        !reply.body.contains(SCRIPT),
        "unescaped script in {}: {}",
        reply.url,
        reply.body
    );
    if let Some(location) = reply.header("location") {
        assert!(
            !location.contains('\r') && !location.contains('\n') && !location.contains(' '),
            "{location:?}"
        );
    }
}

#[tokio::test]
async fn t079_reflected_input_is_escaped_and_injects_no_header() {
    skip_without_postgres!();
    let (server, user, a) = ada_and_a().await;
    let state = format!("{SCRIPT}\"'%0d%0aSet-Cookie:x=1");

    // state, through the login page and back, byte for byte.
    let url = server.auth_url(&a, CRM_AND_PROFILE, &[("state", &state)]);
    let browser = server.browser();
    let login = browser.get(&url).await;
    assert!(login.is_login_page());
    assert_no_injection(&login);
    let csp = login.header("content-security-policy").unwrap_or_default();
    assert!(
        !csp.contains("unsafe-inline")
            && (csp.contains("default-src 'none'") || csp.contains("script-src")),
        "{csp}"
    );
    let flow = browser
        .authorize(&url, &user, crate::Decision::Accept)
        .await;
    assert_eq!(flow.redirect.param("state"), Some(state.as_str()));
    assert_no_injection(flow.consent_page.as_ref().unwrap());

    // Real CR/LF in state: never a header of its own; echoed exactly if echoed at all.
    let crlf = "a\r\nSet-Cookie: y=2\r\n\r\n<b>";
    let reply = browser
        .get(&server.auth_url(&a, CRM_AND_PROFILE, &[("state", crlf)]))
        .await;
    assert_no_injection(&reply);
    assert!(reply.status < 500, "{}", reply.status);
    if reply.status == 302 {
        let redirect = Redirect::from_reply(&reply);
        if redirect.param("state").is_some() {
            assert_eq!(redirect.param("state"), Some(crlf));
        }
    }

    // client_id: the error page escapes it.
    let hostile = format!("{SCRIPT}\r\nSet-Cookie: x=1");
    let page = browser
        .get(&server.auth_url_raw(&[
            ("response_type", "code"),
            ("client_id", &hostile),
            ("scope", CRM_AND_PROFILE),
            ("redirect_uri", "https://a.example/cb"),
        ]))
        .await;
    page.assert_error_page();
    assert_no_injection(&page);

    // scope: an error redirect, safely encoded.
    let reply = browser
        .get(&server.auth_url_raw(&[
            ("response_type", "code"),
            ("client_id", &a.id),
            ("scope", SCRIPT),
            ("redirect_uri", "https://a.example/cb"),
            ("state", "s"),
        ]))
        .await;
    assert_no_injection(&reply);
    let redirect = Redirect::from_reply(&reply);
    assert_eq!(redirect.error(), Some("invalid_scope"));
    assert_eq!(redirect.param("iss"), Some(server.url.as_str()));
    // With CR/LF in it, the request is refused before anything else (CONTRACT.md: a control
    // character in any parameter is invalid_request): the error page, no redirect.
    let page = browser
        .get(&server.auth_url_raw(&[
            ("response_type", "code"),
            ("client_id", &a.id),
            ("scope", &hostile),
            ("redirect_uri", "https://a.example/cb"),
            ("state", "s"),
        ]))
        .await;
    page.assert_error_page();
    assert_no_injection(&page);

    // The post-login target: only this server's own relative URLs are followed.
    for next in [
        hostile.as_str(),
        "//evil.test/x",
        "https://evil.test/",
        "/\\evil.test",
        "https:evil.test",
    ] {
        let fresh = server.browser();
        let page = fresh.get(&url).await;
        let mut form = page.form_with("email");
        form.set("email", &user.email)
            .set("password", &user.password)
            .set("next", next);
        let reply = fresh.submit(&form, &[]).await;
        assert_no_injection(&reply);
        assert!(reply.status < 500, "{next:?}: {}", reply.status);
        if let Some(target) = reply.location() {
            assert_eq!(
                target.origin(),
                reqwest::Url::parse(&server.url).unwrap().origin(),
                "{next:?} sent the browser to {target}"
            );
        }
    }
}

/// Some 4xx, or the connection refused outright; never a success, a redirect or a 5xx.
fn assert_refused(result: Result<Reply, reqwest::Error>, what: &str, took: Duration) {
    assert!(took < Duration::from_secs(5), "{what} took {took:?}");
    if let Ok(reply) = result {
        assert!(
            matches!(reply.status, 400 | 413 | 414 | 431),
            "{what}: {} {}",
            reply.status,
            &reply.body[..reply.body.len().min(200)]
        );
        reply.assert_nothing_issued();
    }
}

async fn timed(request: reqwest::RequestBuilder) -> (Result<Reply, reqwest::Error>, Duration) {
    let started = Instant::now();
    let result = match request.send().await {
        Ok(resp) => Ok(Reply::read(resp).await),
        Err(e) => Err(e),
    };
    (result, started.elapsed())
}

/// `POST /oauth/v2/token` with a urlencoded `form`, for [`timed`].
fn token_post(
    server: &TestServer,
    form: &(impl serde::Serialize + ?Sized),
) -> reqwest::RequestBuilder {
    server
        .http
        .client
        .post(server.at("/oauth/v2/token"))
        .form(form)
}

async fn assert_healthy(server: &TestServer, a: &TestClient, user: &TestUser) {
    let reply = server.get("/.well-known/oauth-authorization-server").await;
    assert_eq!(reply.status, 200);
    let tokens = server.tokens(user, a, CRM_AND_PROFILE, &[]).await;
    assert!(server.access_works(&tokens.access).await);
}

#[tokio::test]
async fn t082_very_long_parameters_are_refused_quickly() {
    skip_without_postgres!();
    let (server, user, a) = ada_and_a().await;
    let browser = server.browser_of(&user);
    server.code(&browser, &user, &a, CRM_AND_PROFILE, &[]).await;
    let codes = server.rows("grant_codes").await;
    let mb = "s".repeat(1 << 20);
    let scope = "Demo.x.READ,".repeat(100 * 1024 / 12);
    let redirect = format!("https://a.example/cb?{}", "r".repeat(64 * 1024));
    fn auth<'a>(client_id: &'a str, params: Vec<(&'a str, &'a str)>) -> Vec<(&'a str, &'a str)> {
        let mut all = vec![("response_type", "code"), ("client_id", client_id)];
        all.extend(params);
        all
    }
    let cases = [
        (
            "state 1 MB (GET)",
            auth(
                &a.id,
                vec![
                    ("scope", CRM_AND_PROFILE),
                    ("redirect_uri", &a.redirect_uri),
                    ("state", &mb),
                ],
            ),
        ),
        (
            "scope 100 KB (GET)",
            auth(
                &a.id,
                vec![("scope", &scope), ("redirect_uri", &a.redirect_uri)],
            ),
        ),
        (
            "redirect_uri 64 KB (GET)",
            auth(
                &a.id,
                vec![("scope", CRM_AND_PROFILE), ("redirect_uri", &redirect)],
            ),
        ),
    ];
    for (what, params) in &cases {
        let (result, took) = timed(browser.client.get(server.auth_url_raw(params))).await;
        assert_refused(result, what, took);
        let (result, took) = timed(
            browser
                .client
                .post(server.at("/oauth/v2/auth"))
                .form(params),
        )
        .await;
        assert_refused(result, &format!("{what} by POST"), took);
    }
    assert_eq!(server.rows("grant_codes").await, codes);

    // A 1 MB code at the token endpoint: refused, in JSON.
    let mut fields = a.body_auth();
    fields.push(("grant_type", "authorization_code".into()));
    fields.push(("code", mb.clone()));
    let (result, took) = timed(token_post(&server, &fields)).await;
    assert!(took < Duration::from_secs(5));
    let reply = result.expect("an answer");
    assert!(matches!(reply.status, 400 | 413), "{}", reply.status);
    reply.assert_nothing_issued();
    assert_healthy(&server, &a, &user).await;
    // Last, so that the rest is checked either way: every token-endpoint answer is JSON.
    assert_json_error("a 1 MB code", &reply);
}

/// CONTRACT.md: JSON bodies for every token-endpoint answer, errors included.
fn assert_json_error(what: &str, reply: &Reply) {
    let content_type = reply.header("content-type").unwrap_or_default();
    assert!(
        content_type.starts_with("application/json"),
        "{what}: the token endpoint answered {} with {content_type:?}: {:?}",
        reply.status,
        reply.body
    );
    reply.assert_error_body();
}

#[tokio::test]
async fn t083_too_many_parameters_are_refused_cheaply() {
    skip_without_postgres!();
    let (server, user, a) = ada_and_a().await;
    let tokens = server.offline_tokens(&user, &a, CRM_AND_PROFILE).await;

    // 10,000 form fields at the token endpoint.
    let mut fields = a.body_auth();
    fields.push(("grant_type", "refresh_token".into()));
    fields.push(("refresh_token", tokens.refresh().into()));
    for i in 0..10_000 {
        fields.push(("f", i.to_string()));
    }
    let (result, took) = timed(token_post(&server, &fields)).await;
    assert!(took < Duration::from_secs(5), "{took:?}");
    let many_fields = result.expect("an answer");
    assert!(
        matches!(many_fields.status, 400 | 413),
        "{}",
        many_fields.status
    );
    many_fields.assert_nothing_issued();

    // 10,000 scope tokens, at refresh and at /auth.
    let many = vec!["Demo.x.READ"; 10_000].join(",");
    let (result, took) = timed(token_post(
        &server,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", tokens.refresh()),
            ("client_id", &a.id),
            ("client_secret", a.secret()),
            ("scope", &many),
        ],
    ))
    .await;
    assert!(took < Duration::from_secs(5), "{took:?}");
    let many_scopes = result.expect("an answer");
    assert!(
        matches!(many_scopes.status, 400 | 413),
        "{}",
        many_scopes.status
    );
    many_scopes.assert_nothing_issued();
    let url = server.auth_url(&a, &many, &[]);
    let (result, took) = timed(server.browser_of(&user).client.get(url)).await;
    assert!(took < Duration::from_secs(5), "{took:?}");
    if let Ok(reply) = result {
        reply.assert_nothing_issued();
        assert!(
            reply.status < 500 && reply.status != 200,
            "{}",
            reply.status
        );
    }

    // 1,000 cookies.
    let cookies: Vec<String> = (0..1_000).map(|i| format!("c{i}=v{i}")).collect();
    let (result, took) = timed(
        server
            .http
            .client
            .get(server.auth_url(&a, CRM_AND_PROFILE, &[]))
            .header("Cookie", cookies.join("; ")),
    )
    .await;
    assert!(took < Duration::from_secs(5), "{took:?}");
    if let Ok(reply) = result {
        assert!(
            matches!(reply.status, 200 | 400 | 413 | 431),
            "{}",
            reply.status
        );
        reply.assert_nothing_issued();
    }
    assert!(server.refresh_works(&a, tokens.refresh()).await);
    assert_healthy(&server, &a, &user).await;
    assert_json_error("10,000 fields", &many_fields);
    assert_json_error("10,000 scopes", &many_scopes);
}

fn assert_security_headers(reply: &Reply, what: &str) {
    assert_eq!(reply.header("x-frame-options"), Some("DENY"), "{what}");
    let csp = reply.header("content-security-policy").unwrap_or_default();
    assert!(
        csp.contains("frame-ancestors 'none'"),
        "{what}: CSP {csp:?}"
    );
    assert_eq!(
        reply.header("referrer-policy"),
        Some("no-referrer"),
        "{what}"
    );
    reply.assert_no_store();
    assert!(
        reply.header("access-control-allow-origin").is_none(),
        "{what}: CORS"
    );
}

#[tokio::test]
async fn t024_t026_every_response_carries_the_framing_referrer_and_cache_headers() {
    skip_without_postgres!();
    let (server, user, a) = ada_and_a().await;
    let url = server.auth_url(&a, CRM_AND_PROFILE, &[("access_type", "offline")]);
    let browser = server.browser();
    let mut replies: Vec<(&str, Reply)> = Vec::new();
    let login = browser.get(&url).await;
    replies.push(("login page", login.clone()));
    let failed = browser
        .sign_in_on(&login, &user.email, "wrong password")
        .await;
    replies.push(("failed login", failed.clone()));
    let forged = server
        .browser()
        .sign_in_on(&login, &user.email, &user.password)
        .await;
    assert_eq!(forged.status, 403);
    replies.push(("forbidden login", forged));
    let signed_in = browser
        .sign_in_on(&failed, &user.email, &user.password)
        .await;
    assert_eq!(signed_in.status, 303);
    replies.push(("login answer", signed_in));
    let consent = browser.get(&url).await;
    replies.push(("consent page", consent.clone()));
    let decided = browser
        .submit(&consent.form_with("decision"), &[("decision", "accept")])
        .await;
    let code = Redirect::from_reply(&decided).code();
    replies.push(("consent answer", decided));
    replies.push((
        "error page",
        browser
            .get(&server.auth_url_raw(&[("client_id", "nope")]))
            .await,
    ));
    let exchanged = server.exchange(&a, &code).await;
    let tokens = exchanged.tokens();
    replies.push(("token", exchanged));
    replies.push(("token error", server.exchange(&a, &unknown_token()).await));
    replies.push(("user info", server.userinfo(&tokens.access).await));
    replies.push(("introspection", server.introspect(&a, &tokens.access).await));
    replies.push((
        "metadata",
        server.get("/.well-known/oauth-authorization-server").await,
    ));
    replies.push(("serverinfo", server.get("/oauth/serverinfo").await));
    replies.push(("revoke", server.revoke(tokens.refresh()).await));
    replies.push(("not found", server.get("/no/such/page").await));
    for (what, reply) in &replies {
        assert_security_headers(reply, what);
    }
    assert_eq!(
        server.exchange(&a, &code).await.json()["error"],
        "invalid_grant"
    );
}

#[tokio::test]
async fn t027_no_cors_at_the_authorization_endpoint() {
    skip_without_postgres!();
    let (server, _, a) = ada_and_a().await;
    let url = server.auth_url(&a, CRM_AND_PROFILE, &[]);
    let get = server
        .http
        .client
        .get(&url)
        .header("Origin", "https://evil.test")
        .send()
        .await
        .unwrap();
    assert!(get.headers().get("access-control-allow-origin").is_none());
    let preflight = server
        .http
        .client
        .request(reqwest::Method::OPTIONS, &url)
        .header("Origin", "https://evil.test")
        .header("Access-Control-Request-Method", "POST")
        .send()
        .await
        .unwrap();
    assert!(preflight
        .headers()
        .get("access-control-allow-origin")
        .is_none());
    assert!(!preflight.status().is_server_error());
}

#[tokio::test]
async fn nothing_lost_after_a_barrage_of_bad_requests() {
    skip_without_postgres!();
    let (server, user, a) = ada_and_a().await;
    let tokens = server.offline_tokens(&user, &a, CRM_AND_PROFILE).await;
    let b = server.server_client("https://b.example/cb").await;
    let injections = [
        "'",
        "' OR '1'='1",
        "1) OR (1=1",
        "%' --",
        "\\",
        "';SELECT randomblob(1000000000);--",
    ];
    for bad in injections {
        for reply in [
            server.refresh(&a, bad).await,
            server.exchange(&a, bad).await,
            server.revoke(bad).await,
            server.introspect(&b, bad).await,
            server
                .post_form(
                    "/oauth/v2/token",
                    &[
                        ("grant_type", "refresh_token"),
                        ("refresh_token", tokens.refresh()),
                        ("client_id", bad),
                        ("client_secret", bad),
                    ],
                )
                .await,
        ] {
            assert!(
                reply.status < 500,
                "{bad:?}: {} {}",
                reply.status,
                reply.body
            );
            reply.assert_nothing_issued();
        }
        let page = server
            .browser()
            .get(&server.auth_url_raw(&[
                ("response_type", "code"),
                ("client_id", bad),
                ("redirect_uri", bad),
                ("scope", bad),
            ]))
            .await;
        page.assert_error_page();
    }
    server
        .refresh(&b, tokens.refresh())
        .await
        .assert_error(Dialect::Standard, Wire::InvalidGrant);
    assert!(server.access_works(&tokens.access).await);
    assert!(server.refresh_works(&a, tokens.refresh()).await);
}
