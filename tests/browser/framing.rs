//! T-024: grantd's pages refuse to be framed (clickjacking). A page of another origin puts
//! them in iframes; the browser must not show them there. Every one of them sends
//! `X-Frame-Options: DENY` and a CSP with `frame-ancestors 'none'`.

use fantoccini::Locator;
use grantd_core::ClientType;
use reqwest::Url;

use crate::{until, Env};

/// Opens the catcher's `/frames` page with `srcs` (absolute URLs) and its own `/plain` page as
/// a control, waits for every frame to load, and returns for each of `srcs` whether the
/// browser showed any of grantd's page inside it.
async fn shown_in_frames(env: &Env, srcs: &[String]) -> Vec<bool> {
    let b = &env.browser;
    let control = env.catcher.redirect_uri("/plain");
    let mut params: Vec<(&str, &str)> = srcs.iter().map(|s| ("src", s.as_str())).collect();
    params.push(("src", &control));
    let page = Url::parse_with_params(&env.catcher.redirect_uri("/frames"), &params).unwrap();
    b.goto(page.as_str()).await;
    until("every frame to load", || async {
        let frames = b.find_all("iframe").await.len();
        let loaded = b.find_all("iframe[data-loaded]").await.len();
        (frames == srcs.len() + 1 && loaded == frames).then_some(())
    })
    .await;

    let mut shown = Vec::new();
    for i in 0..=srcs.len() {
        b.wait_for(&format!("iframe#f{i}"))
            .await
            .enter_frame()
            .await
            .unwrap();
        // Anything of grantd's markup: its <main>, a form, its stylesheet.
        let found = b
            .client
            .find_all(Locator::Css(
                "main, form, link[href='/static/grantd.css'], #plain",
            ))
            .await
            .unwrap();
        shown.push(!found.is_empty());
        b.client.enter_parent_frame().await.unwrap();
    }
    assert_eq!(
        shown.pop(),
        Some(true),
        "the control page must be visible in its frame, or this test sees nothing"
    );
    shown
}

/// The anti-framing headers, over plain HTTP with `cookie` (may be empty).
async fn assert_frame_headers(env: &Env, url: &str, cookie: &str, status: u16) {
    let s = &env.server;
    let mut request = s.http.client.get(url);
    if !cookie.is_empty() {
        request = request.header("Cookie", cookie);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status().as_u16(), status, "{url}");
    let headers = response.headers();
    assert_eq!(
        headers.get("x-frame-options").and_then(|v| v.to_str().ok()),
        Some("DENY"),
        "X-Frame-Options of {url}"
    );
    let csp = headers
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(
        csp.split(';').any(|d| d.trim() == "frame-ancestors 'none'"),
        "CSP of {url}: {csp:?}"
    );
    let body = response.text().await.unwrap();
    assert!(body.contains("<main"), "{url} is a page: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t024_pages_refuse_to_be_framed() {
    Env::run("framing", async |env: &Env| {
        let (s, b) = (&env.server, &env.browser);
        let ada = s.user_named("ada@example.test", "Ada Lovelace").await;
        let redirect = env.catcher.redirect_uri("/cb");
        let client = s
            .named_client(ClientType::Server, "Framed app", &[&redirect], Some(&ada))
            .await;
        let consent = s.auth_url(&client, "ZohoCRM.modules.ALL", &[("prompt", "consent")]);
        let error = s.at("/oauth/v2/auth?response_type=code&client_id=1000.UNKNOWN");

        // Signed out: the login page (alone, and as the start of a flow) and the error page.
        let signed_out = [s.at("/"), consent.clone(), error.clone()];
        let shown = shown_in_frames(env, &signed_out).await;
        assert_eq!(shown, [false, false, false], "{signed_out:?}");
        b.screenshots("framed").await;
        assert_frame_headers(env, &s.at("/"), "", 200).await;
        assert_frame_headers(env, &consent, "", 200).await;
        assert_frame_headers(env, &error, "", 400).await;

        // Signed in (same-site frames get the session cookie): console, account, consent.
        b.sign_in_to_console(&ada).await;
        let signed_in = [
            s.at("/console"),
            s.at(&format!("/console/clients/{}?tab=secret", client.id)),
            s.at("/console/clients/new?type=server"),
            s.at("/account?tab=apps"),
            consent.clone(),
            error.clone(),
        ];
        let shown = shown_in_frames(env, &signed_in).await;
        assert_eq!(shown, [false; 6], "{signed_in:?}");

        let cookie = b.session_cookie().await;
        for url in &signed_in[..5] {
            assert_frame_headers(env, url, &cookie, 200).await;
        }
        assert_frame_headers(env, &error, &cookie, 400).await;
        assert_frame_headers(env, &s.at("/console/clients/1000.NOSUCH"), &cookie, 404).await;
        // The consent page really was the consent page.
        let page = s
            .http
            .client
            .get(&consent)
            .header("Cookie", &cookie)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(page.contains("name=\"decision\""), "{page}");
    })
    .await;
}
