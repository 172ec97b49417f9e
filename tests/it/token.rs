//! `POST /oauth/v2/token` for the authorization_code grant: the success body, single use,
//! client authentication, and requests it must refuse without issuing or burning anything.

use futures::future::join_all;
use grantd_core::Dialect;
use grantd_server::admin;

use crate::{start, Reply, TestClient, TestServer, TestUser, Wire, CRM_AND_PROFILE};

/// A server, a user, client A and a fresh code for A.
async fn with_code() -> (TestServer, TestUser, TestClient, String) {
    let server = start().await;
    let user = server.user("ada@example.com").await;
    let a = server.server_client("https://a.example/cb").await;
    let code = server
        .code(
            &server.browser(),
            &user,
            &a,
            CRM_AND_PROFILE,
            &[("access_type", "offline")],
        )
        .await;
    (server, user, a, code)
}

fn exchange_fields(client: &TestClient, code: &str) -> Vec<(&'static str, String)> {
    vec![
        ("grant_type", "authorization_code".into()),
        ("code", code.into()),
        ("redirect_uri", client.redirect_uri.clone()),
    ]
}

#[tokio::test]
async fn code_exchange_answers_the_contract_body() {
    skip_without_postgres!();
    let (server, user, a, code) = with_code().await;

    let reply = server.exchange(&a, &code).await;

    let tokens = reply.tokens();
    assert!(reply
        .header("content-type")
        .unwrap()
        .starts_with("application/json"));
    let keys = tokens.fields();
    assert_eq!(
        keys,
        [
            "access_token",
            "api_domain",
            "expires_in",
            "refresh_token",
            "scope",
            "token_type"
        ]
    );
    assert_eq!(tokens.body["expires_in"], 3600);
    assert_eq!(
        tokens.body["scope"],
        "AaaServer.profile.READ ZohoCRM.modules.ALL"
    );
    assert_ne!(tokens.access, tokens.refresh.clone().unwrap());
    let info = server.userinfo(&tokens.access).await;
    assert_eq!(info.status, 200, "{}", info.body);
    assert_eq!(info.json()["Email"], user.email.as_str());
}

#[tokio::test]
async fn t029_replayed_code_revokes_its_tokens() {
    skip_without_postgres!();
    let (server, _, a, code) = with_code().await;
    let tokens = server.exchange(&a, &code).await.tokens();
    assert!(server.access_works(&tokens.access).await);

    server.clock.advance(1);
    let replay = server.exchange(&a, &code).await;

    replay.assert_error(Dialect::Standard, Wire::InvalidGrant);
    replay.assert_nothing_issued();
    assert!(
        !server.access_works(&tokens.access).await,
        "the access token survived a replay"
    );
    assert!(
        !server.refresh_works(&a, tokens.refresh()).await,
        "the refresh token survived a replay"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_redemptions_of_one_code_give_exactly_one_success() {
    skip_without_postgres!();
    let (server, _, a, code) = with_code().await;

    let replies: Vec<Reply> = join_all((0..20).map(|_| server.exchange(&a, &code))).await;

    let winners: Vec<&Reply> = replies.iter().filter(|r| r.status == 200).collect();
    assert_eq!(
        winners.len(),
        1,
        "{:?}",
        replies.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    for loser in replies.iter().filter(|r| r.status != 200) {
        loser.assert_error(Dialect::Standard, Wire::InvalidGrant);
    }
    let tokens = winners[0].tokens();
    // Every later attempt was a replay, which revokes what the code issued (CONTRACT.md §6).
    assert!(!server.access_works(&tokens.access).await);
    assert_eq!(server.rows("refresh_tokens").await, 0);
}

#[tokio::test]
async fn t032_code_is_bound_to_its_client() {
    skip_without_postgres!();
    let (server, _, a, code) = with_code().await;
    let b = server.server_client("https://b.example/cb").await;
    let mut fields = b.body_auth();
    fields.extend(exchange_fields(&a, &code));

    let reply = server.post_form("/oauth/v2/token", &fields).await;

    reply.assert_error(Dialect::Standard, Wire::InvalidGrant);
    reply.assert_nothing_issued();
    assert_eq!(server.rows("access_tokens").await, 0);
    // grantd's policy: the attempt does not burn A's code, so a thief cannot deny it to A.
    server.exchange(&a, &code).await.tokens();
}

#[tokio::test]
async fn t060_wrong_secret_is_invalid_client_and_burns_nothing() {
    skip_without_postgres!();
    let (server, _, a, code) = with_code().await;
    let wrong = "0".repeat(42);

    let by_basic = server
        .post_form_basic(
            "/oauth/v2/token",
            &a.id,
            &wrong,
            &exchange_fields(&a, &code),
        )
        .await;
    by_basic.assert_error(Dialect::Standard, Wire::InvalidClient);
    let challenge = by_basic
        .header("www-authenticate")
        .expect("WWW-Authenticate on a Basic 401");
    assert!(
        challenge.to_ascii_lowercase().starts_with("basic"),
        "{challenge}"
    );

    let mut fields = vec![
        ("client_id", a.id.clone()),
        ("client_secret", wrong.clone()),
    ];
    fields.extend(exchange_fields(&a, &code));
    let by_body = server.post_form("/oauth/v2/token", &fields).await;
    by_body.assert_error(Dialect::Standard, Wire::InvalidClient);

    // Another client's valid secret is just as wrong.
    let b = server.server_client("https://b.example/cb").await;
    let mut fields = vec![
        ("client_id", a.id.clone()),
        ("client_secret", b.secret().to_owned()),
    ];
    fields.extend(exchange_fields(&a, &code));
    server
        .post_form("/oauth/v2/token", &fields)
        .await
        .assert_error(Dialect::Standard, Wire::InvalidClient);

    assert_eq!(server.rows("access_tokens").await, 0);
    server.exchange(&a, &code).await.tokens();
}

#[tokio::test]
async fn t061_missing_secret_for_a_confidential_client_is_invalid_client() {
    skip_without_postgres!();
    let (server, _, a, code) = with_code().await;
    for secret in [None, Some("")] {
        let mut fields = vec![
            ("client_id", a.id.clone()),
            ("code_verifier", crate::VERIFIER.to_owned()),
        ];
        if let Some(secret) = secret {
            fields.push(("client_secret", secret.into()));
        }
        fields.extend(exchange_fields(&a, &code));
        let reply = server.post_form("/oauth/v2/token", &fields).await;
        reply.assert_error(Dialect::Standard, Wire::InvalidClient);
        reply.assert_nothing_issued();
    }
    // No client at all.
    server
        .post_form("/oauth/v2/token", &exchange_fields(&a, &code))
        .await
        .assert_error(Dialect::Standard, Wire::InvalidClient);
    assert_eq!(server.rows("access_tokens").await, 0);
}

#[tokio::test]
async fn t063_basic_header_is_form_decoded_and_malformed_ones_are_refused() {
    skip_without_postgres!();
    let (server, _, a, code) = with_code().await;
    let fields = exchange_fields(&a, &code);
    let malformed = [
        "Basic !!!not-base64!!!".to_owned(),
        format!("Basic {}", base64_of(&a.id)),
        format!("Basic {}", base64_of(&format!(":{}", a.secret()))),
        format!("Basic {}", "QUFB".repeat(2_500)),
        "Basic".to_owned(),
        format!(
            "Basic {}",
            base64_of(&format!("{}:{}%zz", a.id, a.secret()))
        ),
    ];
    for header in &malformed {
        let resp = server
            .http
            .client
            .post(server.at("/oauth/v2/token"))
            .header("Authorization", header.as_str())
            .form(&fields)
            .send()
            .await
            .unwrap();
        let reply = Reply::read(resp).await;
        assert!(
            matches!(reply.status, 400 | 401),
            "{} for {}: {}",
            reply.status,
            &header[..header.len().min(40)],
            reply.body
        );
        let error = reply.json()["error"].as_str().unwrap().to_owned();
        assert!(
            error == "invalid_client" || error == "invalid_request",
            "{error}"
        );
        reply.assert_error_body();
    }
    assert_eq!(server.rows("access_tokens").await, 0);

    // RFC 6749 §2.3.1: id and secret are form-encoded before base64; `%2E` is `.`.
    let encoded_id = a.id.replacen('.', "%2E", 1);
    let encoded_secret = format!("%{:02X}{}", a.secret().as_bytes()[0], &a.secret()[1..]);
    server
        .post_form_basic("/oauth/v2/token", &encoded_id, &encoded_secret, &fields)
        .await
        .tokens();
}

fn base64_of(raw: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(raw)
}

#[tokio::test]
async fn basic_and_body_naming_different_clients_is_invalid_client() {
    skip_without_postgres!();
    let (server, _, a, code) = with_code().await;
    let b = server.server_client("https://b.example/cb").await;
    let mut fields = vec![("client_id", b.id.clone())];
    fields.extend(exchange_fields(&a, &code));

    let reply = server
        .post_form_basic("/oauth/v2/token", &a.id, a.secret(), &fields)
        .await;
    reply.assert_error(Dialect::Standard, Wire::InvalidClient);

    // The same id both ways is fine.
    let mut fields = vec![("client_id", a.id.clone())];
    fields.extend(exchange_fields(&a, &code));
    server
        .post_form_basic("/oauth/v2/token", &a.id, a.secret(), &fields)
        .await
        .tokens();
}

#[tokio::test]
async fn t066_rotated_secret_replaces_the_old_one_at_once() {
    skip_without_postgres!();
    let (server, _, a, code) = with_code().await;
    let new = admin::rotate_secret(&server.store, &a.id).await.unwrap();
    assert_eq!(new.expose().len(), 42);
    assert!(new
        .expose()
        .bytes()
        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));

    let old = server.exchange(&a, &code).await;
    old.assert_error(Dialect::Standard, Wire::InvalidClient);
    let rotated = TestClient {
        secret: Some(new.expose().to_owned()),
        ..a.clone()
    };
    server.exchange(&rotated, &code).await.tokens();
}

#[tokio::test]
async fn t067_grants_the_client_may_not_use_are_refused() {
    skip_without_postgres!();
    let (server, user, a, _) = with_code().await;
    let cases = [
        (
            vec![
                ("grant_type", "password"),
                ("username", user.email.as_str()),
                ("password", user.password.as_str()),
            ],
            Wire::UnsupportedGrantType,
        ),
        (vec![("grant_type", "implicit")], Wire::UnsupportedGrantType),
        (
            vec![("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer")],
            Wire::UnsupportedGrantType,
        ),
        (vec![("scope", "ZohoCRM.modules.ALL")], Wire::InvalidRequest),
    ];
    for (params, wire) in cases {
        let mut fields: Vec<(&str, String)> = a.body_auth();
        fields.extend(params.into_iter().map(|(k, v)| (k, v.to_owned())));
        let reply = server.post_form("/oauth/v2/token", &fields).await;
        reply.assert_error(Dialect::Standard, wire);
        reply.assert_nothing_issued();
    }
    // client_credentials is for Self Clients only.
    let mut fields = a.body_auth();
    fields.push(("grant_type", "client_credentials".into()));
    fields.push(("scope", "ZohoCRM.modules.ALL".into()));
    let reply = server.post_form("/oauth/v2/token", &fields).await;
    assert_eq!(reply.status, 400, "{}", reply.body);
    let error = reply.json()["error"].as_str().unwrap().to_owned();
    assert!(
        error == "unauthorized_client" || error == "unsupported_grant_type",
        "{error}"
    );
    reply.assert_error_body();
    assert_eq!(server.rows("access_tokens").await, 0);

    // The implicit flow (response_type=token) does not exist: refused before any sign-in.
    let codes = server.rows("grant_codes").await;
    let url = server.auth_url_raw(&[
        ("response_type", "token"),
        ("client_id", &a.id),
        ("scope", CRM_AND_PROFILE),
        ("redirect_uri", &a.redirect_uri),
        ("state", "implicit"),
    ]);
    let reply = server.browser_of(&user).get(&url).await;
    reply.assert_nothing_issued();
    let redirect = crate::Redirect::from_reply(&reply);
    assert_eq!(redirect.error(), Some("unsupported_response_type"));
    assert_eq!(redirect.param("state"), Some("implicit"));
    assert!(!redirect.raw.contains("access_token") && !redirect.raw.contains('#'));
    assert_eq!(server.rows("grant_codes").await, codes);
}

#[tokio::test]
async fn t086_bodies_that_are_not_forms_are_refused_and_burn_nothing() {
    skip_without_postgres!();
    let (server, _, a, code) = with_code().await;
    let json = serde_json::json!({
        "grant_type": "authorization_code", "code": code, "client_id": a.id,
        "client_secret": a.secret(), "redirect_uri": a.redirect_uri,
    })
    .to_string();
    let mut form = url_encode(&a.body_auth());
    form.push('&');
    form.push_str(&url_encode(&exchange_fields(&a, &code)));
    let cases: [(Option<&str>, &str); 4] = [
        (Some("application/json"), json.as_str()),
        (Some("text/plain"), form.as_str()),
        (None, form.as_str()),
        (
            Some("application/xml"),
            "<grant_type>authorization_code</grant_type>",
        ),
    ];
    for (content_type, body) in cases {
        let mut request = server
            .http
            .client
            .post(server.at("/oauth/v2/token"))
            .body(body.to_owned());
        if let Some(t) = content_type {
            request = request.header("Content-Type", t);
        }
        let reply = Reply::read(request.send().await.unwrap()).await;
        assert!(
            matches!(reply.status, 400 | 415),
            "{content_type:?}: {} {}",
            reply.status,
            reply.body
        );
        if reply.status == 400 {
            assert_eq!(reply.json()["error"], "invalid_request", "{content_type:?}");
            reply.assert_error_body();
        }
        reply.assert_nothing_issued();
    }
    assert_eq!(server.rows("access_tokens").await, 0);

    // The ordinary content type with a charset parameter is accepted.
    let resp = server
        .http
        .client
        .post(server.at("/oauth/v2/token"))
        .header(
            "Content-Type",
            "application/x-www-form-urlencoded; charset=UTF-8",
        )
        .body(form)
        .send()
        .await
        .unwrap();
    Reply::read(resp).await.tokens();
}

pub fn url_encode(fields: &[(&str, String)]) -> String {
    // What `Url::parse_with_params` puts in a query string, without a URL around it.
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish()
}

#[tokio::test]
async fn t091_token_endpoint_refuses_other_methods_and_keeps_the_code() {
    skip_without_postgres!();
    let (server, _, a, code) = with_code().await;
    let mut fields = a.body_auth();
    fields.extend(exchange_fields(&a, &code));
    let url = reqwest::Url::parse_with_params(&server.at("/oauth/v2/token"), &fields).unwrap();

    for method in [
        reqwest::Method::GET,
        reqwest::Method::HEAD,
        reqwest::Method::PUT,
        reqwest::Method::DELETE,
        reqwest::Method::PATCH,
    ] {
        let reply = Reply::read(
            server
                .http
                .client
                .request(method.clone(), url.clone())
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(reply.status, 405, "{method}: {}", reply.body);
        reply.assert_nothing_issued();
    }
    assert_eq!(server.rows("access_tokens").await, 0);
    server.exchange(&a, &code).await.tokens();
}

#[tokio::test]
async fn t106_every_token_response_carries_no_store_and_no_cache() {
    skip_without_postgres!();
    let (server, _, a, code) = with_code().await;
    let mut replies = vec![server.exchange(&a, &code).await];
    let tokens = replies[0].tokens();
    replies.push(server.refresh(&a, tokens.refresh()).await);
    replies.push(server.exchange(&a, &code).await);
    replies.push(
        server
            .post_form("/oauth/v2/token", &[("grant_type", "nope")])
            .await,
    );
    replies.push(
        server
            .post_form(
                "/oauth/v2/token/revoke",
                &[("token", tokens.access.as_str())],
            )
            .await,
    );
    for reply in &replies {
        reply.assert_no_store();
    }
    assert_eq!(replies[1].status, 200);
    assert_eq!(replies[2].status, 400);
}

#[tokio::test]
async fn token_error_bodies_never_echo_the_request() {
    skip_without_postgres!();
    let server = start().await;
    let hostile = "x\"}<script>alert(1)</script>\r\nSet-Cookie: x=1\t%0d%0a";
    let fields = [
        ("grant_type", hostile),
        ("client_id", hostile),
        ("client_secret", hostile),
        ("code", hostile),
        ("redirect_uri", hostile),
        ("scope", hostile),
    ];
    let reply = server.post_form("/oauth/v2/token", &fields).await;
    assert!(matches!(reply.status, 400 | 401), "{}", reply.status);
    reply.assert_error_body();
    assert!(
        !reply.body.contains("<script") && !reply.body.contains("alert"),
        "{}",
        reply.body
    );
    assert!(reply.header_all("set-cookie").is_empty());
    let reply = server
        .post_form("/oauth/v2/token", &[("grant_type", hostile)])
        .await;
    reply.assert_error_body();
    assert!(
        !reply.body.contains("<script") && !reply.body.contains("alert"),
        "{}",
        reply.body
    );
}
