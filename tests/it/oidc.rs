//! OpenID Connect (issue 14, CONTRACT.md "OpenID Connect"): ID tokens from the code exchange
//! and the refresh grant, verified with `jsonwebtoken` against the JWKS the server publishes;
//! discovery; userinfo by scope; `nonce`, `prompt=none|login` and `max_age` at
//! `/oauth/v2/auth`; key rotation. Time moves with the server's `ManualClock`.

// The helpers below fail the test the way a test does, by panicking (as `tests/support` does).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use grantd_core::oidc::SigningAlg;
use grantd_server::signing::{self, Kek};

use crate::{ada_and_a, start_with, until, Decision, TestClient, TestServer, TestUser};

const OIDC: &str = "openid email profile";

/// The published keys, read the way a relying party reads them: discovery, then `jwks_uri`.
async fn jwks(server: &TestServer) -> JwkSet {
    let config = server.get("/.well-known/openid-configuration").await.json();
    let uri = config["jwks_uri"].as_str().unwrap();
    assert_eq!(uri, server.at("/oauth/v2/keys"));
    let reply = server.http.get(uri).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    serde_json::from_str(&reply.body).unwrap()
}

/// The ID token's claims, once its signature verifies with the published key its header
/// names, for `client` and this issuer. Expiry is checked against the server's clock, not the
/// machine's (the test clock stands in 2026).
pub(crate) async fn verify(
    server: &TestServer,
    client: &TestClient,
    id_token: &str,
) -> (String, Value) {
    let header = jsonwebtoken::decode_header(id_token).unwrap();
    let kid = header.kid.clone().expect("the header names its key");
    let keys = jwks(server).await;
    let jwk = keys
        .find(&kid)
        .unwrap_or_else(|| panic!("key {kid} is not published"));
    let key = DecodingKey::from_jwk(jwk).unwrap();
    let mut validation = Validation::new(header.alg);
    validation.set_audience(&[&client.id]);
    validation.set_issuer(&[&server.url]);
    validation.validate_exp = false;
    validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
    let claims = jsonwebtoken::decode::<Value>(id_token, &key, &validation)
        .unwrap_or_else(|e| panic!("the ID token does not verify: {e}"))
        .claims;
    let now = server.now().0;
    assert!(claims["exp"].as_i64().unwrap() > now, "{claims}");
    (kid, claims)
}

pub(crate) fn id_token(tokens: &Value) -> &str {
    tokens["id_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no id_token: {tokens}"))
}

pub(crate) fn at_hash(access_token: &str) -> String {
    URL_SAFE_NO_PAD.encode(&Sha256::digest(access_token.as_bytes())[..16])
}

/// A code for `client` through `browser` (signing in and consenting as needed).
async fn code_in(
    server: &TestServer,
    browser: &crate::Http,
    user: &TestUser,
    client: &TestClient,
    extra: &[(&str, &str)],
) -> crate::Flow {
    browser
        .authorize(
            &server.auth_url(client, OIDC, extra),
            user,
            Decision::Accept,
        )
        .await
}

#[tokio::test]
async fn the_code_exchange_returns_an_id_token_the_published_keys_verify() {
    skip_without_postgres!();
    let (server, ada, a) = ada_and_a().await;
    let signed_in_at = server.now().0;
    let tokens = server
        .tokens(&ada, &a, OIDC, &[("nonce", "n-0S6_WzA2Mj"), ("state", "s")])
        .await;
    let (_, claims) = verify(&server, &a, id_token(&tokens.body)).await;
    let now = server.now().0;
    assert_eq!(claims["iss"], server.url.as_str());
    assert_eq!(claims["sub"], ada.id.to_string());
    assert_eq!(claims["aud"], a.id.as_str());
    assert_eq!(claims["iat"], now);
    assert_eq!(claims["exp"], now + 3600);
    assert_eq!(claims["auth_time"], signed_in_at);
    assert_eq!(claims["nonce"], "n-0S6_WzA2Mj");
    assert_eq!(claims["at_hash"], at_hash(&tokens.access));
    assert_eq!(claims["email"], "ada@example.com");
    assert_eq!(claims["email_verified"], true);
    assert_eq!(claims["name"], "Ada Lovelace");
    assert_eq!(claims["given_name"], "Ada");
    assert_eq!(claims["family_name"], "Lovelace");
    // `scope` still lists what was granted, in the registry's spelling.
    assert_eq!(tokens.body["scope"], "email openid profile");
    // RS256 by default.
    let header = jsonwebtoken::decode_header(id_token(&tokens.body)).unwrap();
    assert_eq!(header.alg, Algorithm::RS256);
}

#[tokio::test]
async fn claims_follow_the_scopes_and_no_openid_means_no_id_token() {
    skip_without_postgres!();
    let (server, ada, a) = ada_and_a().await;
    let only_openid = server.tokens(&ada, &a, "openid", &[]).await;
    let (_, claims) = verify(&server, &a, id_token(&only_openid.body)).await;
    for absent in ["email", "email_verified", "name", "given_name", "nonce"] {
        assert!(claims.get(absent).is_none(), "{absent}: {claims}");
    }
    let email = server.tokens(&ada, &a, "openid email", &[]).await;
    let (_, claims) = verify(&server, &a, id_token(&email.body)).await;
    assert_eq!(claims["email"], "ada@example.com");
    assert!(claims.get("name").is_none(), "{claims}");

    let plain = server.tokens(&ada, &a, crate::CRM_AND_PROFILE, &[]).await;
    assert!(plain.body.get("id_token").is_none(), "{}", plain.body);
}

#[tokio::test]
async fn refresh_gives_a_fresh_id_token_with_the_same_auth_time() {
    skip_without_postgres!();
    let (server, ada, a) = ada_and_a().await;
    let signed_in_at = server.now().0;
    let first = server
        .tokens(
            &ada,
            &a,
            OIDC,
            &[("access_type", "offline"), ("nonce", "first")],
        )
        .await;
    server.clock.advance(600);
    let refreshed = server.refresh(&a, first.refresh()).await.tokens();
    let (_, claims) = verify(&server, &a, id_token(&refreshed.body)).await;
    assert_eq!(claims["iat"], server.now().0);
    assert_eq!(claims["auth_time"], signed_in_at);
    assert_eq!(claims["at_hash"], at_hash(&refreshed.access));
    assert!(
        claims.get("nonce").is_none(),
        "no nonce on refresh: {claims}"
    );
    assert_eq!(claims["email"], "ada@example.com");

    // A refresh that narrows openid away gets no ID token.
    let narrowed = server
        .refresh_scoped(&a, first.refresh(), "email")
        .await
        .tokens();
    assert!(narrowed.body.get("id_token").is_none(), "{}", narrowed.body);
}

#[tokio::test]
async fn discovery_documents_describe_openid_connect() {
    skip_without_postgres!();
    let server = start_with(|_| {}).await;
    let url = &server.url;
    let config = server.get("/.well-known/openid-configuration").await;
    assert_eq!(config.status, 200);
    let config = config.json();
    assert_eq!(config["issuer"], url.as_str());
    assert_eq!(config["jwks_uri"], format!("{url}/oauth/v2/keys"));
    assert_eq!(
        config["userinfo_endpoint"],
        format!("{url}/oauth/v2/userinfo")
    );
    assert_eq!(
        config["authorization_endpoint"],
        format!("{url}/oauth/v2/auth")
    );
    assert_eq!(config["token_endpoint"], format!("{url}/oauth/v2/token"));
    assert_eq!(
        config["id_token_signing_alg_values_supported"],
        json!(["RS256"])
    );
    assert_eq!(config["subject_types_supported"], json!(["public"]));
    assert_eq!(config["response_types_supported"], json!(["code"]));
    for scope in ["openid", "email", "profile"] {
        assert!(
            config["scopes_supported"]
                .as_array()
                .unwrap()
                .contains(&json!(scope)),
            "{scope}"
        );
    }
    // RFC 8414's document grew the same fields.
    let metadata = server
        .get("/.well-known/oauth-authorization-server")
        .await
        .json();
    assert_eq!(metadata, config);

    let keys = jwks(&server).await;
    assert_eq!(keys.keys.len(), 1);
    let key = serde_json::to_value(&keys.keys[0]).unwrap();
    assert_eq!(key["kty"], "RSA");
    assert_eq!(key["alg"], "RS256");
    assert_eq!(key["use"], "sig");
    assert!(key.get("d").is_none(), "never a private part: {key}");
}

#[tokio::test]
async fn userinfo_answers_by_scope_and_needs_openid() {
    skip_without_postgres!();
    let (server, ada, a) = ada_and_a().await;
    let userinfo = |token: String, scheme: &'static str| {
        let server = &server;
        async move {
            crate::send(
                server
                    .http
                    .client
                    .get(server.at("/oauth/v2/userinfo"))
                    .header("Authorization", format!("{scheme} {token}")),
            )
            .await
        }
    };
    let all = server.tokens(&ada, &a, OIDC, &[]).await;
    let reply = userinfo(all.access.clone(), "Bearer").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        reply.json(),
        json!({
            "sub": ada.id.to_string(),
            "email": "ada@example.com",
            "email_verified": true,
            "name": "Ada Lovelace",
            "given_name": "Ada",
            "family_name": "Lovelace",
        })
    );
    // Zoho's scheme and POST work too.
    let zoho = userinfo(all.access.clone(), "Zoho-oauthtoken").await;
    assert_eq!(zoho.status, 200, "{}", zoho.body);
    let posted = crate::send(
        server
            .http
            .client
            .post(server.at("/oauth/v2/userinfo"))
            .bearer_auth(&all.access),
    )
    .await;
    assert_eq!(posted.json(), reply.json());

    let only_openid = server.tokens(&ada, &a, "openid", &[]).await;
    let reply = userinfo(only_openid.access, "Bearer").await;
    assert_eq!(reply.json(), json!({ "sub": ada.id.to_string() }));

    let without = server.tokens(&ada, &a, crate::CRM_AND_PROFILE, &[]).await;
    let reply = userinfo(without.access, "Bearer").await;
    assert_eq!(reply.status, 403, "{}", reply.body);
    let challenge = reply.header("www-authenticate").unwrap();
    assert!(challenge.contains("insufficient_scope") && challenge.contains("scope=\"openid\""));

    let bogus = userinfo("1000.nope.nope".into(), "Bearer").await;
    assert_eq!(bogus.status, 401);
    assert!(bogus
        .header("www-authenticate")
        .unwrap()
        .contains("invalid_token"));
    let missing = server.get("/oauth/v2/userinfo").await;
    assert_eq!(missing.status, 401);

    // An expired token opens nothing.
    server.clock.advance(3600);
    assert_eq!(userinfo(all.access, "Bearer").await.status, 401);
}

#[tokio::test]
async fn prompt_none_without_a_session_is_login_required() {
    skip_without_postgres!();
    let (server, _ada, a) = ada_and_a().await;
    let url = server.auth_url(&a, OIDC, &[("prompt", "none"), ("state", "x y")]);
    let reply = server.browser().get(&url).await;
    let redirect = crate::Redirect::from_reply(&reply);
    assert!(
        redirect.raw.starts_with("https://a.example/cb?"),
        "{}",
        redirect.raw
    );
    assert_eq!(redirect.error(), Some("login_required"));
    assert_eq!(redirect.param("state"), Some("x y"));
    assert_eq!(redirect.param("iss"), Some(server.url.as_str()));
    assert_eq!(redirect.param("code"), None);
}

#[tokio::test]
async fn prompt_none_with_a_session_but_no_consent_is_consent_required() {
    skip_without_postgres!();
    let (server, ada, a) = ada_and_a().await;
    let browser = server.browser();
    browser.sign_in(&server.auth_url(&a, OIDC, &[]), &ada).await;
    let url = server.auth_url(&a, OIDC, &[("prompt", "none"), ("state", "s")]);
    let redirect = crate::Redirect::from_reply(&browser.get(&url).await);
    assert_eq!(redirect.error(), Some("consent_required"));
    assert_eq!(redirect.param("state"), Some("s"));
    assert_eq!(redirect.param("iss"), Some(server.url.as_str()));
}

#[tokio::test]
async fn prompt_none_with_a_session_and_consent_answers_without_a_page() {
    skip_without_postgres!();
    let (server, ada, a) = ada_and_a().await;
    let browser = server.browser();
    let first = code_in(&server, &browser, &ada, &a, &[]).await;
    assert!(first.saw_login && first.saw_consent);
    server.clock.advance(30);
    let url = server.auth_url(&a, OIDC, &[("prompt", "none"), ("nonce", "silent")]);
    let reply = browser.get(&url).await;
    let redirect = crate::Redirect::from_reply(&reply);
    let tokens = server.exchange(&a, &redirect.code()).await.tokens();
    let (_, claims) = verify(&server, &a, id_token(&tokens.body)).await;
    assert_eq!(claims["nonce"], "silent");
    assert_eq!(claims["auth_time"], server.now().0 - 30);

    // prompt=none with any other value is malformed.
    let url = server.auth_url(&a, OIDC, &[("prompt", "none login")]);
    let redirect = crate::Redirect::from_reply(&browser.get(&url).await);
    assert_eq!(redirect.error(), Some("invalid_request"));
}

#[tokio::test]
async fn max_age_forces_a_new_sign_in_once_the_session_is_older() {
    skip_without_postgres!();
    let (server, ada, a) = ada_and_a().await;
    let browser = server.browser();
    code_in(&server, &browser, &ada, &a, &[]).await;
    let first_sign_in = server.now().0;

    // Within max_age the session will do.
    server.clock.advance(60);
    let within = code_in(&server, &browser, &ada, &a, &[("max_age", "60")]).await;
    assert!(!within.saw_login && !within.saw_consent);
    let tokens = server.exchange(&a, &within.redirect.code()).await.tokens();
    let (_, claims) = verify(&server, &a, id_token(&tokens.body)).await;
    assert_eq!(claims["auth_time"], first_sign_in);

    // Past it, the login page; the ID token then tells the new sign-in.
    server.clock.advance(1);
    let past = code_in(
        &server,
        &browser,
        &ada,
        &a,
        &[("max_age", "60"), ("nonce", "m")],
    )
    .await;
    assert!(past.saw_login && !past.saw_consent);
    let tokens = server.exchange(&a, &past.redirect.code()).await.tokens();
    let (_, claims) = verify(&server, &a, id_token(&tokens.body)).await;
    assert_eq!(claims["auth_time"], server.now().0);
    assert_eq!(claims["nonce"], "m");

    // With prompt=none, a session too old is login_required.
    server.clock.advance(61);
    let url = server.auth_url(&a, OIDC, &[("max_age", "60"), ("prompt", "none")]);
    let redirect = crate::Redirect::from_reply(&browser.get(&url).await);
    assert_eq!(redirect.error(), Some("login_required"));

    // A malformed max_age goes back to the client.
    let url = server.auth_url(&a, OIDC, &[("max_age", "-1")]);
    let redirect = crate::Redirect::from_reply(&browser.get(&url).await);
    assert_eq!(redirect.error(), Some("invalid_request"));
}

#[tokio::test]
async fn prompt_login_signs_in_again_even_with_a_session() {
    skip_without_postgres!();
    let (server, ada, a) = ada_and_a().await;
    let browser = server.browser();
    code_in(&server, &browser, &ada, &a, &[]).await;
    let old_session = browser.session();
    server.clock.advance(5);
    let again = code_in(&server, &browser, &ada, &a, &[("prompt", "login")]).await;
    assert!(again.saw_login, "prompt=login shows the login page");
    assert!(!again.saw_consent);
    assert_ne!(browser.session(), old_session, "a new session");
    let tokens = server.exchange(&a, &again.redirect.code()).await.tokens();
    let (_, claims) = verify(&server, &a, id_token(&tokens.body)).await;
    assert_eq!(claims["auth_time"], server.now().0);
}

#[tokio::test]
async fn rotation_keeps_old_tokens_verifiable_and_signs_new_ones_with_the_new_key() {
    skip_without_postgres!();
    let kek = Kek::generate();
    let sealed = kek.clone();
    let server = start_with(move |s| {
        s.kek = Some(sealed);
        s.key_reload_interval = Duration::from_millis(50);
    })
    .await;
    let ada = server.user("ada@example.com").await;
    let a = server.server_client("https://a.example/cb").await;
    let before = server.tokens(&ada, &a, OIDC, &[]).await;
    let (old_kid, _) = verify(&server, &a, id_token(&before.body)).await;

    // As `grantd keys rotate` does it, beside the running server.
    let new_kid = signing::rotate(&server.store, &kek, SigningAlg::Rs256, server.now(), 3600)
        .await
        .unwrap();
    until(
        Duration::from_secs(10),
        "the server to load the new key",
        || {
            let server = &server;
            let kid = new_kid.clone();
            async move { jwks(server).await.find(&kid).map(|_| ()) }
        },
    )
    .await;
    let after = server.tokens(&ada, &a, OIDC, &[]).await;
    let (kid, _) = verify(&server, &a, id_token(&after.body)).await;
    assert_eq!(kid, new_kid);
    // The old token still verifies: its key is still published.
    server.clock.advance(3599);
    let (kid, _) = verify(&server, &a, id_token(&before.body)).await;
    assert_eq!(kid, old_kid);
    let published = jwks(&server).await;
    assert_eq!(published.keys.len(), 2);

    // Once every token it signed has expired (plus the reload grace), it goes.
    server
        .clock
        .advance(1 + grantd_core::oidc::RETIRED_KEY_GRACE_SECS);
    until(
        Duration::from_secs(10),
        "the old key to leave the JWKS",
        || {
            let server = &server;
            let old_kid = old_kid.clone();
            async move { jwks(server).await.find(&old_kid).is_none().then_some(()) }
        },
    )
    .await;
    assert_eq!(jwks(&server).await.keys.len(), 1);
}

#[tokio::test]
async fn eddsa_when_configured() {
    skip_without_postgres!();
    let server = start_with(|s| s.id_token_signing_alg = SigningAlg::EdDsa).await;
    let ada = server.user("ada@example.com").await;
    let a = server.server_client("https://a.example/cb").await;
    let tokens = server.tokens(&ada, &a, OIDC, &[]).await;
    let header = jsonwebtoken::decode_header(id_token(&tokens.body)).unwrap();
    assert_eq!(header.alg, Algorithm::EdDSA);
    let (_, claims) = verify(&server, &a, id_token(&tokens.body)).await;
    // OIDC Core §3.1.3.6 with Ed25519's hash, SHA-512.
    let digest = sha2::Sha512::digest(tokens.access.as_bytes());
    assert_eq!(claims["at_hash"], URL_SAFE_NO_PAD.encode(&digest[..32]));
    let config = server.get("/.well-known/openid-configuration").await.json();
    assert_eq!(
        config["id_token_signing_alg_values_supported"],
        json!(["EdDSA"])
    );
    let key = serde_json::to_value(&jwks(&server).await.keys[0]).unwrap();
    assert_eq!(
        (key["kty"].as_str(), key["crv"].as_str()),
        (Some("OKP"), Some("Ed25519"))
    );
}

#[tokio::test]
async fn public_clients_get_id_tokens_with_pkce() {
    skip_without_postgres!();
    let (server, ada, _) = ada_and_a().await;
    let app = server.mobile_client("com.example.app:/cb").await;
    let tokens = server
        .tokens(&ada, &app, "openid", &[("nonce", "mobile")])
        .await;
    let (_, claims) = verify(&server, &app, id_token(&tokens.body)).await;
    assert_eq!(claims["aud"], app.id.as_str());
    assert_eq!(claims["nonce"], "mobile");
}

#[tokio::test]
async fn the_console_shows_openid_connect_settings_and_the_keys_to_administrators() {
    skip_without_postgres!();
    let server = start_with(|_| {}).await;
    let admin = server.user("root@example.com").await;
    let ada = server.user("ada@example.com").await;
    let app = server
        .client(
            grantd_core::ClientType::Server,
            &["https://app.example/cb"],
            grantd_core::Dialect::Standard,
            Some(&ada),
        )
        .await;
    let settings = server.at(&format!("/console/clients/{}?tab=settings", app.id));
    let browser = server.browser();
    browser.sign_in(&settings, &ada).await;
    let page = browser.get(settings.as_str()).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("OpenID Connect"), "{}", page.body);
    assert!(page.body.contains("<strong>RS256</strong>"));
    assert!(page
        .body
        .contains(&format!("{}/.well-known/openid-configuration", server.url)));
    for scope in [
        "<code>openid</code>",
        "<code>email</code>",
        "<code>profile</code>",
    ] {
        assert!(page.body.contains(scope), "{scope}");
    }
    // Keys are the administrators' page only.
    assert_eq!(browser.get(server.at("/console/keys")).await.status, 404);

    let root = server.browser();
    root.sign_in(&server.at("/console/keys"), &admin).await;
    let keys = root.get(server.at("/console/keys")).await;
    assert_eq!(keys.status, 200);
    let kid = jwks(&server).await.keys[0].common.key_id.clone().unwrap();
    assert!(keys.body.contains(&kid), "{}", keys.body);
    assert!(keys.body.contains("RS256") && keys.body.contains("active"));
}

#[tokio::test]
async fn a_changed_signing_algorithm_makes_a_new_key_and_keeps_the_old_one_published() {
    skip_without_postgres!();
    let kek = Kek::generate();
    let sealed = kek.clone();
    let server = start_with(move |s| s.kek = Some(sealed)).await;
    let before = jwks(&server).await;
    assert_eq!(before.keys.len(), 1);
    // Another node (or the next start) configured for EdDSA, on the same database and key.
    let mut settings = server.app.settings.clone();
    settings.kek = Some(kek);
    settings.id_token_signing_alg = SigningAlg::EdDsa;
    let node = grantd_server::App::new(server.store.clone(), server.clock.clone(), settings);
    node.prepare_keys().await.unwrap();
    let keys = signing::list(&server.store, server.now()).await.unwrap();
    let summary: Vec<_> = keys
        .iter()
        .map(|k| (k.alg.as_str(), k.retired_at.is_some()))
        .collect();
    assert_eq!(summary, [("EdDSA", false), ("RS256", true)]);
    // Opening the keys with another key-encryption key fails, and says why.
    let mut wrong = server.app.settings.clone();
    wrong.kek = Some(Kek::generate());
    wrong.id_token_signing_alg = SigningAlg::EdDsa;
    let stranger = grantd_server::App::new(server.store.clone(), server.clock.clone(), wrong);
    let refused = stranger.prepare_keys().await.unwrap_err().to_string();
    assert!(refused.contains("key-encryption key"), "{refused}");
}

/// A session for another account than `login_hint` names will not do: without `prompt=none`
/// the sign-in page for that account (switching accounts); with it, `interaction_required` at
/// the redirect URI, since switching is a page. The signed-in account's own hint changes
/// nothing.
#[tokio::test]
async fn a_login_hint_for_another_account_is_interaction_required_or_a_new_sign_in() {
    skip_without_postgres!();
    let (server, ada, a) = ada_and_a().await;
    let bob = server.user("bob@example.com").await;
    let browser = server.browser();
    code_in(&server, &browser, &ada, &a, &[]).await;

    let silent = [
        ("prompt", "none"),
        ("login_hint", bob.email.as_str()),
        ("state", "s"),
    ];
    let redirect =
        crate::Redirect::from_reply(&browser.get(&server.auth_url(&a, OIDC, &silent)).await);
    assert_eq!(
        redirect.error(),
        Some("interaction_required"),
        "{}",
        redirect.raw
    );
    assert_eq!(redirect.param("state"), Some("s"));
    assert_eq!(redirect.param("iss"), Some(server.url.as_str()));
    assert_eq!(redirect.param("code"), None);

    let own = [("prompt", "none"), ("login_hint", ada.email.as_str())];
    let redirect =
        crate::Redirect::from_reply(&browser.get(&server.auth_url(&a, OIDC, &own)).await);
    assert!(!redirect.code().is_empty(), "{}", redirect.raw);

    let switch = [("login_hint", bob.email.as_str())];
    let page = browser.get(&server.auth_url(&a, OIDC, &switch)).await;
    assert!(page.is_password_page(), "{}", page.body);
    assert!(page.body.contains(&bob.email), "{}", page.body);
    let flow = browser
        .authorize(&server.auth_url(&a, OIDC, &switch), &bob, Decision::Accept)
        .await;
    let tokens = server.exchange(&a, &flow.redirect.code()).await.tokens();
    let (_, claims) = verify(&server, &a, id_token(&tokens.body)).await;
    assert_eq!(claims["sub"], bob.id.to_string());
}
