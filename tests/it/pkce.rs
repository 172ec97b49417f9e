//! PKCE (RFC 7636, S256 only) for public clients: a mobile client N with a loopback redirect
//! URI whose port varies (RFC 8252 §7.3), and the cases of SECURITY-CASES.md 1.D.

use grantd_core::Dialect;

use crate::{s256, start, Decision, Redirect, TestClient, TestServer, TestUser, Wire, VERIFIER};

const SCOPE: &str = "ZohoCRM.modules.ALL,AaaServer.profile.READ";

async fn setup() -> (TestServer, TestUser, TestClient) {
    let server = start().await;
    let user = server.user("ada@example.com").await;
    let mut n = server.mobile_client("http://127.0.0.1/cb").await;
    n.redirect_uri = "http://127.0.0.1:50123/cb".into();
    (server, user, n)
}

fn exchange_fields(
    n: &TestClient,
    code: &str,
    verifier: Option<&str>,
) -> Vec<(&'static str, String)> {
    let mut fields = vec![
        ("client_id", n.id.clone()),
        ("grant_type", "authorization_code".into()),
        ("code", code.into()),
        ("redirect_uri", n.redirect_uri.clone()),
    ];
    if let Some(v) = verifier {
        fields.push(("code_verifier", v.into()));
    }
    fields
}

#[tokio::test]
async fn mobile_client_with_s256_and_a_loopback_port_gets_tokens_without_a_secret() {
    skip_without_postgres!();
    let (server, user, n) = setup().await;
    let browser = server.browser();
    for port in ["50123", "61000"] {
        let mut at = n.clone();
        at.redirect_uri = format!("http://127.0.0.1:{port}/cb");
        let url = server.auth_url(&at, SCOPE, &[("state", port), ("access_type", "offline")]);
        let redirect = browser
            .authorize(&url, &user, Decision::Accept)
            .await
            .redirect;
        assert!(
            redirect
                .raw
                .starts_with(&format!("http://127.0.0.1:{port}/cb?")),
            "{}",
            redirect.raw
        );
        assert_eq!(redirect.param("state"), Some(port));
        let tokens = server
            .post_form(
                "/oauth/v2/token",
                &exchange_fields(&at, &redirect.code(), Some(VERIFIER)),
            )
            .await
            .tokens();
        assert!(server.access_works(&tokens.access).await);
        if let Some(refresh) = &tokens.refresh {
            // A public client refreshes with its id alone.
            server.refresh(&at, refresh).await.tokens();
        }
    }
}

#[tokio::test]
async fn t039_missing_or_wrong_verifier_issues_nothing() {
    skip_without_postgres!();
    let (server, user, n) = setup().await;
    let browser = server.browser();
    let wrong = format!("{}x", VERIFIER);

    let code = server.code(&browser, &user, &n, SCOPE, &[]).await;
    let missing = server
        .post_form("/oauth/v2/token", &exchange_fields(&n, &code, None))
        .await;
    assert_eq!(missing.status, 400, "{}", missing.body);
    let error = missing.json()["error"].as_str().unwrap().to_owned();
    assert!(
        error == "invalid_grant" || error == "invalid_request",
        "{error}"
    );
    missing.assert_error_body();

    let code = server.code(&browser, &user, &n, SCOPE, &[]).await;
    let reply = server
        .post_form("/oauth/v2/token", &exchange_fields(&n, &code, Some(&wrong)))
        .await;
    reply.assert_error(Dialect::Standard, Wire::InvalidGrant);
    reply.assert_nothing_issued();
    assert_eq!(server.rows("access_tokens").await, 0);
}

#[tokio::test]
async fn t041_public_client_without_pkce_is_refused() {
    skip_without_postgres!();
    let (server, user, n) = setup().await;
    let browser = server.browser();
    // Signed in and consented, so a code would be issued at once if the request passed.
    server.code(&browser, &user, &n, SCOPE, &[]).await;
    let codes = server.rows("grant_codes").await;
    let url = server.auth_url_raw(&[
        ("response_type", "code"),
        ("client_id", &n.id),
        ("scope", SCOPE),
        ("redirect_uri", &n.redirect_uri),
        ("state", "nopkce"),
    ]);

    let reply = browser.get(&url).await;

    reply.assert_nothing_issued();
    if reply.status == 400 {
        reply.assert_error_page();
    } else {
        let redirect = Redirect::from_reply(&reply);
        assert_eq!(
            redirect.error(),
            Some("invalid_request"),
            "{}",
            redirect.raw
        );
        assert_eq!(redirect.param("state"), Some("nopkce"));
        assert_eq!(redirect.param("iss"), Some(server.url.as_str()));
    }
    assert_eq!(server.rows("grant_codes").await, codes);
}

#[tokio::test]
async fn t043_a_failed_verifier_burns_the_code() {
    skip_without_postgres!();
    let (server, user, n) = setup().await;
    let code = server.code(&server.browser(), &user, &n, SCOPE, &[]).await;

    server
        .post_form(
            "/oauth/v2/token",
            &exchange_fields(&n, &code, Some(&"w".repeat(43))),
        )
        .await
        .assert_error(Dialect::Standard, Wire::InvalidGrant);
    let right = server
        .post_form(
            "/oauth/v2/token",
            &exchange_fields(&n, &code, Some(VERIFIER)),
        )
        .await;

    right.assert_error(Dialect::Standard, Wire::InvalidGrant);
    right.assert_nothing_issued();
}

#[tokio::test]
async fn t044_malformed_or_empty_challenges_are_invalid_request() {
    skip_without_postgres!();
    let (server, user, n) = setup().await;
    let a = server.server_client("https://a.example/cb").await;
    let browser = server.browser();
    server.code(&browser, &user, &n, SCOPE, &[]).await;
    let codes = server.rows("grant_codes").await;
    let long = "a".repeat(10_000);
    let bad_chars = format!("{}!", "a".repeat(50));
    let plain = s256(VERIFIER);
    let cases: [(&str, &str); 5] = [
        ("abcdefghij", "S256"),
        (long.as_str(), "S256"),
        (bad_chars.as_str(), "S256"),
        ("", "S256"),
        (plain.as_str(), "plain"),
    ];
    for (challenge, method) in cases {
        let url = server.auth_url_raw(&[
            ("response_type", "code"),
            ("client_id", &n.id),
            ("scope", SCOPE),
            ("redirect_uri", &n.redirect_uri),
            ("state", "bad"),
            ("code_challenge", challenge),
            ("code_challenge_method", method),
        ]);
        let reply = browser.get(&url).await;
        reply.assert_nothing_issued();
        if reply.status == 400 {
            reply.assert_error_page();
        } else {
            let redirect = Redirect::from_reply(&reply);
            assert_eq!(
                redirect.error(),
                Some("invalid_request"),
                "{}: {}",
                &challenge[..challenge.len().min(20)],
                redirect.raw
            );
            assert_eq!(redirect.param("state"), Some("bad"));
        }
    }
    assert_eq!(server.rows("grant_codes").await, codes);

    // For a confidential client an empty challenge is simply absent: the flow works without one.
    let code = server
        .code(
            &browser,
            &user,
            &a,
            SCOPE,
            &[("code_challenge", ""), ("code_challenge_method", "")],
        )
        .await;
    server.exchange(&a, &code).await.tokens();
}

#[tokio::test]
async fn verifier_without_a_challenge_is_refused() {
    skip_without_postgres!();
    let (server, user, _) = setup().await;
    let a = server.server_client("https://a.example/cb").await;
    let code = server.code(&server.browser(), &user, &a, SCOPE, &[]).await;
    let mut fields = a.body_auth();
    fields.push(("grant_type", "authorization_code".into()));
    fields.push(("code", code));
    fields.push(("redirect_uri", a.redirect_uri.clone()));
    fields.push(("code_verifier", VERIFIER.into()));

    let reply = server.post_form("/oauth/v2/token", &fields).await;

    assert_eq!(reply.status, 400, "{}", reply.body);
    reply.assert_nothing_issued();
}
