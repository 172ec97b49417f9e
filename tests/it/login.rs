//! The login page and the browser session: failures that all look alike, lockout, session
//! fixation, login CSRF, sign-out, cookie flags.

use reqwest::Url;

use crate::{start, start_with, Decision, Http, Reply, TestServer, TestUser};

/// The login page with everything that may legitimately differ between two answers (the
/// echoed email, the per-browser CSRF token) replaced by placeholders.
fn normalized(page: &Reply, email: &str) -> String {
    let csrf = page.form_with("password").csrf_token().to_owned();
    page.body.replace(&csrf, "CSRF").replace(email, "EMAIL")
}

fn cookie_names(reply: &Reply) -> Vec<String> {
    let mut names: Vec<String> = reply
        .header_all("set-cookie")
        .iter()
        .map(|c| c.split('=').next().unwrap_or_default().to_owned())
        .collect();
    names.sort();
    names
}

/// An authorization URL whose first answer, without a session, is the login page.
async fn auth_url(server: &TestServer) -> String {
    let client = server.server_client("https://a.example/cb").await;
    server.auth_url(&client, "ZohoCRM.modules.ALL", &[])
}

async fn failed_login(browser: &Http, url: &str, email: &str, password: &str) -> Reply {
    let page = browser.get(url).await;
    let reply = browser.sign_in_on(&page, email, password).await;
    assert_eq!(
        reply.status, 200,
        "a failed login answers the login page again: {}",
        reply.body
    );
    assert!(reply.is_login_page(), "{}", reply.body);
    assert!(
        browser.session().is_none(),
        "a session after a failed login"
    );
    reply
}

/// Signs in from a fresh browser; whether it worked.
async fn sign_in_ok(server: &TestServer, url: &str, user: &TestUser) -> bool {
    let browser = server.browser();
    let page = browser.get(url).await;
    let reply = browser.sign_in_on(&page, &user.email, &user.password).await;
    match reply.status {
        303 => {
            assert!(browser.session().is_some());
            true
        }
        200 => {
            assert!(reply.is_login_page());
            assert!(browser.session().is_none());
            false
        }
        other => panic!("login answered {other}: {}", reply.body),
    }
}

#[tokio::test]
async fn t071_unknown_user_wrong_password_and_locked_account_look_the_same() {
    skip_without_postgres!();
    let server = start().await;
    let user = server.user("ada@example.com").await;
    let url = auth_url(&server).await;
    let browser = server.browser();
    let unknown_email = "bob@example.com";

    let unknown = failed_login(&browser, &url, unknown_email, "whatever it is").await;
    let wrong = failed_login(&browser, &url, &user.email, "wrong password").await;
    for _ in 0..4 {
        failed_login(&browser, &url, &user.email, "wrong password").await;
    }
    // Five failures: locked, so even the right password gets the same answer.
    let locked = failed_login(&browser, &url, &user.email, &user.password).await;

    assert_eq!(
        normalized(&unknown, unknown_email),
        normalized(&wrong, &user.email)
    );
    assert_eq!(
        normalized(&wrong, &user.email),
        normalized(&locked, &user.email)
    );
    assert_eq!(cookie_names(&unknown), cookie_names(&wrong));
    assert_eq!(cookie_names(&wrong), cookie_names(&locked));
    assert_eq!(unknown.status, wrong.status);
}

#[tokio::test]
async fn t068_account_locks_after_five_failures_for_fifteen_minutes() {
    skip_without_postgres!();
    let server = start().await;
    let user = server.user("ada@example.com").await;
    let url = auth_url(&server).await;
    let browser = server.browser();

    // Four failures do not lock, and a success starts the count again.
    for _ in 0..4 {
        failed_login(&browser, &url, &user.email, "wrong password").await;
    }
    assert!(
        sign_in_ok(&server, &url, &user).await,
        "locked after four failures"
    );

    for _ in 0..5 {
        failed_login(&browser, &url, &user.email, "wrong password").await;
    }
    assert!(
        !sign_in_ok(&server, &url, &user).await,
        "not locked after five failures"
    );
    server.clock.advance(15 * 60 + 1);
    assert!(
        sign_in_ok(&server, &url, &user).await,
        "still locked after 15 minutes"
    );
}

#[tokio::test]
async fn t073_session_id_changes_at_login_and_a_planted_one_is_not_authenticated() {
    skip_without_postgres!();
    let server = start().await;
    let user = server.user("ada@example.com").await;
    let client = server.server_client("https://a.example/cb").await;
    let planted = "ab".repeat(32);
    let browser = server.browser();
    browser.plant("grantd_session", &planted);
    let url = server.auth_url(&client, "ZohoCRM.modules.ALL", &[]);

    let page = browser.get(&url).await;
    assert!(
        page.is_login_page(),
        "a planted session id must not be authenticated"
    );
    browser.sign_in(&url, &user).await;

    let session = browser.session().unwrap();
    assert_ne!(session, planted);
    assert_ne!(Some(session.clone()), browser.cookie("grantd_pre"));
    // The planted value, in the attacker's own browser, is still not signed in.
    let attacker = server.browser();
    attacker.plant("grantd_session", &planted);
    assert!(attacker.get(&url).await.is_login_page());
    // The new value is.
    let victim_copy = server.browser();
    victim_copy.plant("grantd_session", &session);
    assert!(victim_copy.get(&url).await.is_consent_page());
}

#[tokio::test]
async fn t023_login_without_a_valid_csrf_token_is_refused() {
    skip_without_postgres!();
    let server = start().await;
    let attacker_user = server.user("mallory@example.com").await;
    let client = server.server_client("https://a.example/cb").await;
    let url = server.auth_url(&client, "ZohoCRM.modules.ALL", &[]);
    let victim = server.browser();
    let attacker = server.browser();
    let victim_page = victim.get(&url).await;
    let attacker_page = attacker.get(&url).await;
    let mut form = victim_page.form_with("password");
    form.set("email", &attacker_user.email)
        .set("password", &attacker_user.password);

    // No token at all.
    let mut without = form.clone();
    without.remove("csrf_token");
    let reply = victim.submit(&without, &[]).await;
    assert_eq!(reply.status, 403, "{}", reply.body);
    assert!(victim.session().is_none());

    // The attacker's own token, with the victim's cookies.
    let mut foreign = form.clone();
    foreign.set(
        "csrf_token",
        attacker_page.form_with("password").csrf_token(),
    );
    let reply = victim.submit(&foreign, &[]).await;
    assert_eq!(reply.status, 403, "{}", reply.body);
    assert!(victim.session().is_none());

    // A cross-site POST from a browser that never saw the form.
    let stranger = server.browser();
    let reply = stranger.submit(&form, &[]).await;
    assert_eq!(reply.status, 403, "{}", reply.body);
    assert!(stranger.session().is_none());

    assert!(
        victim.get(&url).await.is_login_page(),
        "the victim got signed in"
    );
    assert_eq!(server.rows("sessions").await, 0);
}

#[tokio::test]
async fn t075_signout_ends_the_session_on_the_server() {
    skip_without_postgres!();
    let server = start().await;
    let user = server.user("ada@example.com").await;
    let client = server.server_client("https://a.example/cb").await;
    let browser = server.browser();
    let url = server.auth_url(&client, "ZohoCRM.modules.ALL", &[]);
    browser.sign_in(&url, &user).await;
    let session = browser.session().unwrap();
    let consent = browser.get(&url).await;
    let csrf = consent.form_with("decision").csrf_token().to_owned();

    // Without the token, sign-out is refused (logout CSRF) and the session lives on.
    let refused = browser
        .client
        .post(server.at("/signout"))
        .form(&[("x", "y")])
        .send()
        .await
        .unwrap();
    assert!(refused.status().is_client_error(), "{}", refused.status());
    assert!(browser.get(&url).await.is_consent_page());

    let reply = browser
        .client
        .post(server.at("/signout"))
        .form(&[("csrf_token", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert!(
        reply.status().is_success() || reply.status().is_redirection(),
        "sign-out answered {}",
        reply.status()
    );
    assert_eq!(server.rows("sessions").await, 0);

    // The old cookie, replayed, is not signed in.
    let replay = server.browser();
    replay.plant("grantd_session", &session);
    assert!(replay.get(&url).await.is_login_page());
    assert!(browser.get(&url).await.is_login_page());
}

#[tokio::test]
async fn t075_session_ends_after_its_lifetime() {
    skip_without_postgres!();
    let server = start().await;
    let user = server.user("ada@example.com").await;
    let client = server.server_client("https://a.example/cb").await;
    let browser = server.browser();
    let url = server.auth_url(&client, "ZohoCRM.modules.ALL", &[]);
    browser.sign_in(&url, &user).await;

    server.clock.advance(12 * 3600 - 1);
    assert!(
        browser.get(&url).await.is_consent_page(),
        "the session ended early"
    );
    server.clock.advance(2);
    assert!(
        browser.get(&url).await.is_login_page(),
        "the session outlived 12 hours"
    );
}

#[tokio::test]
async fn t074_cookies_are_secure_and_host_prefixed_with_an_https_public_url() {
    skip_without_postgres!();
    let server = start_with(|s| s.public_url = "https://accounts.test.example".into()).await;
    let user = server.user("ada@example.com").await;
    let client = server.server_client("https://a.example/cb").await;
    let url = server.auth_url(&client, "ZohoCRM.modules.ALL", &[]);
    // reqwest's jar keeps Secure cookies away from http, so carry the cookie by hand.
    let page = Reply::read(server.http.client.get(&url).send().await.unwrap()).await;
    assert!(page.is_login_page());
    let pre = page
        .header_all("set-cookie")
        .into_iter()
        .find(|c| c.starts_with("__Host-"))
        .expect("a __Host- cookie for the login form");
    assert!(pre.contains("; Secure") && pre.contains("Path=/"), "{pre}");
    let pair = pre.split(';').next().unwrap().to_owned();
    let form = page.form_with("password");
    let mut fields = form.fields.clone();
    for field in fields.iter_mut() {
        match field.0.as_str() {
            "email" => field.1 = user.email.clone(),
            "password" => field.1 = user.password.clone(),
            _ => {}
        }
    }
    let action = Url::parse(&url).unwrap().join(form.action.path()).unwrap();
    let reply = server
        .http
        .client
        .post(action)
        .header("Cookie", pair)
        .form(&fields)
        .send()
        .await
        .unwrap();
    let reply = Reply::read(reply).await;

    assert_eq!(reply.status, 303, "{}", reply.body);
    let session = reply
        .header_all("set-cookie")
        .into_iter()
        .find(|c| c.starts_with("__Host-grantd_session="))
        .expect("the session cookie is __Host-grantd_session");
    for flag in ["Secure", "HttpOnly", "Path=/"] {
        assert!(session.contains(flag), "{flag} missing: {session}");
    }
    assert!(
        !session.to_ascii_lowercase().contains("domain="),
        "{session}"
    );
}

#[tokio::test]
async fn login_then_reject_then_accept_in_one_session() {
    skip_without_postgres!();
    let server = start().await;
    let user = server.user("ada@example.com").await;
    let client = server.server_client("https://a.example/cb").await;
    let browser = server.browser();
    let url = server.auth_url(&client, "ZohoCRM.modules.ALL", &[("state", "1")]);

    let rejected = browser.authorize(&url, &user, Decision::Reject).await;
    assert!(rejected.saw_login);
    assert_eq!(rejected.redirect.error(), Some("access_denied"));
    // A rejection records no consent: the next request asks again, without a new login.
    let accepted = browser.authorize(&url, &user, Decision::Accept).await;
    assert!(!accepted.saw_login && accepted.saw_consent);
    accepted.redirect.code();
}
