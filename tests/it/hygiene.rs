//! Input hygiene (issue 12, hole 5): a NUL or any other control character in any parameter of
//! any endpoint is 400 `invalid_request` (JSON on the API, the error page on browser pages),
//! never a 500, on both backends: PostgreSQL refuses NUL, so a 400 there shows the value never
//! reached the store.

use crate::{ada_and_a, Reply, TestServer};

/// C0 controls (NUL, SOH, TAB, LF, CR, ESC, US) and DEL.
const CONTROLS: [char; 8] = [
    '\0', '\u{1}', '\t', '\n', '\r', '\u{1b}', '\u{1f}', '\u{7f}',
];

/// `fields` with `poisoned`'s value carrying `control` in its middle.
fn poison(fields: &[(&str, &str)], poisoned: &str, control: char) -> Vec<(String, String)> {
    fields
        .iter()
        .map(|(name, value)| {
            let value = if *name == poisoned {
                let (head, tail) = value.split_at(value.len() / 2);
                format!("{head}{control}{tail}")
            } else {
                (*value).to_owned()
            };
            ((*name).to_owned(), value)
        })
        .collect()
}

fn assert_api_refusal(reply: &Reply, what: &str) {
    assert_eq!(reply.status, 400, "{what}: {}", reply.body);
    reply.assert_error_body();
    assert_eq!(reply.json()["error"], "invalid_request", "{what}");
}

fn assert_page_refusal(reply: &Reply, what: &str) {
    assert_eq!(reply.status, 400, "{what}: {}", reply.body);
    let content_type = reply.header("content-type").unwrap_or_default();
    assert!(
        content_type.starts_with("text/html"),
        "{what}: {content_type}"
    );
    assert!(reply.header("location").is_none(), "{what}");
}

#[tokio::test]
async fn control_characters_in_oauth_api_parameters_are_invalid_request() {
    skip_without_postgres!();
    let (server, user, a) = ada_and_a().await;
    let tokens = server
        .offline_tokens(&user, &a, "ZohoCRM.modules.ALL")
        .await;
    let secret = a.secret().to_owned();
    let refresh = tokens.refresh().to_owned();
    let endpoints: [(&str, Vec<(&str, &str)>); 4] = [
        (
            "/oauth/v2/token",
            vec![
                ("grant_type", "authorization_code"),
                ("client_id", a.id.as_str()),
                ("client_secret", secret.as_str()),
                ("code", "1000.0123456789abcdef"),
                ("redirect_uri", "https://a.example/cb"),
                ("scope", "ZohoCRM.modules.ALL"),
            ],
        ),
        (
            "/oauth/v2/token",
            vec![
                ("grant_type", "refresh_token"),
                ("client_id", a.id.as_str()),
                ("client_secret", secret.as_str()),
                ("refresh_token", refresh.as_str()),
            ],
        ),
        (
            "/oauth/v2/token/revoke",
            vec![("token", refresh.as_str()), ("client_id", a.id.as_str())],
        ),
        (
            "/oauth/v2/introspect",
            vec![
                ("token", refresh.as_str()),
                ("client_id", a.id.as_str()),
                ("client_secret", secret.as_str()),
            ],
        ),
    ];
    for control in CONTROLS {
        for (path, fields) in &endpoints {
            for (poisoned, _) in fields {
                let what = format!("{path} {poisoned} with {control:?}");
                let sent = poison(fields, poisoned, control);
                assert_api_refusal(&server.post_form(path, &sent).await, &what);
                assert_api_refusal(&server.post_multipart(path, &sent).await, &what);
                assert_api_refusal(&server.post_query(path, &sent).await, &what);
            }
        }
        // A control character in a parameter's name is refused the same way.
        let name = format!("client{control}id");
        let reply = server
            .post_form("/oauth/v2/token", &[(name.as_str(), "x")])
            .await;
        assert_api_refusal(&reply, &format!("a name with {control:?}"));
    }
    // The only control character a header value can carry is a tab: user info refuses the
    // token as unknown, and ignores what is in its query.
    let reply = server.userinfo_with("Bearer 1000.abc\tdef").await;
    assert_eq!(reply.status, 401, "{}", reply.body);
    let reply = server.get("/oauth/user/info?access_token=%00").await;
    assert_eq!(reply.status, 401, "{}", reply.body);
    // Nothing was lost: the refresh token still works.
    assert!(server.refresh_works(&a, refresh.as_str()).await);
}

#[tokio::test]
async fn control_characters_on_browser_pages_get_the_error_page() {
    skip_without_postgres!();
    let (server, user, a) = ada_and_a().await;
    let browser = server.browser();
    browser.sign_in(&server.at("/"), &user).await;
    let auth = [
        ("response_type", "code"),
        ("client_id", a.id.as_str()),
        ("redirect_uri", "https://a.example/cb"),
        ("scope", "ZohoCRM.modules.ALL"),
        ("state", "xyz"),
    ];
    let pages: [(&str, Vec<(&str, &str)>); 8] = [
        (
            "/signin",
            vec![
                ("email", "ada@example.com"),
                ("password", "correct horse"),
                ("next", "/console"),
            ],
        ),
        ("/signout", vec![("csrf_token", "0123456789abcdef")]),
        (
            "/oauth/v2/auth/consent",
            vec![("consent_id", "0123456789"), ("decision", "accept")],
        ),
        (
            "/console/clients",
            vec![
                ("type", "server"),
                ("name", "My app"),
                ("homepage", "https://app.example"),
                ("redirect_uri", "https://app.example/cb"),
            ],
        ),
        (
            "/console/scopes",
            vec![("name", "Demo.z.READ"), ("description", "Zed")],
        ),
        (
            "/console/users",
            vec![
                ("email", "bob@example.com"),
                ("name", "Bob"),
                ("password", "long enough"),
            ],
        ),
        ("/account/profile", vec![("name", "Ada King")]),
        (
            "/account/password",
            vec![
                ("current_password", "correct horse"),
                ("new_password", "new password"),
            ],
        ),
    ];
    for control in CONTROLS {
        for (poisoned, _) in auth {
            let sent = poison(&auth, poisoned, control);
            let url = reqwest::Url::parse_with_params(&server.at("/oauth/v2/auth"), &sent).unwrap();
            let reply = browser.get(url).await;
            assert_page_refusal(
                &reply,
                &format!("/oauth/v2/auth {poisoned} with {control:?}"),
            );
        }
        for (path, fields) in &pages {
            for (poisoned, _) in fields {
                let sent = poison(fields, poisoned, control);
                let reply = browser.post_form(server.at(path), &sent).await;
                assert_page_refusal(&reply, &format!("{path} {poisoned} with {control:?}"));
            }
        }
    }
    // Nothing was written: no client, scope or user was added, and the session still works.
    assert!(client_names_unchanged(&server, &user).await);
    let console = browser.get(server.at("/console")).await;
    assert_eq!(console.status, 200, "{}", console.body);
}

async fn client_names_unchanged(server: &TestServer, user: &crate::TestUser) -> bool {
    !server
        .client_names(user)
        .await
        .iter()
        .any(|name| name.starts_with("My"))
}
