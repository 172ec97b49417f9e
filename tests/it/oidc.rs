//! OpenID Connect (issue 14, CONTRACT.md "OpenID Connect"): ID tokens from the code exchange
//! and the refresh grant, verified with `jsonwebtoken` against the JWKS the server publishes;
//! discovery; userinfo by scope; `nonce`, `prompt=none|login` and `max_age` at
//! `/oauth/v2/auth`; the ID-token algorithm per client (console, store), one active key per
//! algorithm and its rotation. Time moves with the server's `ManualClock`.

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
use grantd_core::{ClientType, Dialect};
use grantd_server::admin::ClientSpec;
use grantd_server::signing::{self, Kek};
use grantd_store::{ConsoleVerbs, KeyVerbs};

use crate::{ada_and_a, start, start_with, until, Decision, TestClient, TestServer, TestUser};

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
    // Every algorithm has a key, whichever the server default is; RS256 first.
    assert_eq!(
        config["id_token_signing_alg_values_supported"],
        json!(["RS256", "EdDSA"])
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
    assert_eq!(keys.keys.len(), 2, "one active key per algorithm");
    let key = serde_json::to_value(&keys.keys[0]).unwrap();
    assert_eq!(key["kty"], "RSA");
    assert_eq!(key["alg"], "RS256");
    assert_eq!(key["use"], "sig");
    assert!(key.get("d").is_none(), "never a private part: {key}");
    let key = serde_json::to_value(&keys.keys[1]).unwrap();
    assert_eq!(
        (
            key["kty"].as_str(),
            key["crv"].as_str(),
            key["alg"].as_str()
        ),
        (Some("OKP"), Some("Ed25519"), Some("EdDSA"))
    );
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

/// The published key ids.
async fn kids(server: &TestServer) -> Vec<String> {
    jwks(server)
        .await
        .keys
        .iter()
        .filter_map(|k| k.common.key_id.clone())
        .collect()
}

#[tokio::test]
async fn rotation_rotates_each_algorithms_key_and_old_tokens_of_each_stay_verifiable() {
    skip_without_postgres!();
    let kek = Kek::generate();
    let sealed = kek.clone();
    let server = start_with(move |s| {
        s.kek = Some(sealed);
        s.key_reload_interval = Duration::from_millis(50);
    })
    .await;
    let ada = server.user("ada@example.com").await;
    let rs = server.server_client("https://a.example/cb").await;
    let ed = eddsa_client(&server, "https://e.example/cb").await;
    let before_rs = server.tokens(&ada, &rs, OIDC, &[]).await;
    let before_ed = server.tokens(&ada, &ed, OIDC, &[]).await;
    let (old_rs, _) = verify(&server, &rs, id_token(&before_rs.body)).await;
    let (old_ed, _) = verify(&server, &ed, id_token(&before_ed.body)).await;
    assert_eq!(kids(&server).await, [old_rs.clone(), old_ed.clone()]);

    // As `grantd keys rotate` does it, beside the running server: every algorithm's key.
    let rotated = signing::rotate_all(&server.store, &kek, server.now(), 3600)
        .await
        .unwrap();
    let algs: Vec<SigningAlg> = rotated.iter().map(|(alg, _)| *alg).collect();
    assert_eq!(algs, SigningAlg::ALL);
    let (new_rs, new_ed) = (rotated[0].1.clone(), rotated[1].1.clone());
    until(
        Duration::from_secs(10),
        "the server to load the new keys",
        || {
            let server = &server;
            let new = [new_rs.clone(), new_ed.clone()];
            async move { (kids(server).await[..2] == new).then_some(()) }
        },
    )
    .await;
    let after_rs = server.tokens(&ada, &rs, OIDC, &[]).await;
    let after_ed = server.tokens(&ada, &ed, OIDC, &[]).await;
    assert_eq!(
        verify(&server, &rs, id_token(&after_rs.body)).await.0,
        new_rs
    );
    assert_eq!(
        verify(&server, &ed, id_token(&after_ed.body)).await.0,
        new_ed
    );

    // The old tokens still verify: their keys are still published.
    server.clock.advance(3599);
    assert_eq!(
        verify(&server, &rs, id_token(&before_rs.body)).await.0,
        old_rs
    );
    assert_eq!(
        verify(&server, &ed, id_token(&before_ed.body)).await.0,
        old_ed
    );
    assert_eq!(kids(&server).await.len(), 4);

    // Rotating one algorithm leaves the other's key alone.
    let newer_ed = signing::rotate(&server.store, &kek, SigningAlg::EdDsa, server.now(), 3600)
        .await
        .unwrap();
    until(
        Duration::from_secs(10),
        "the server to load the newer EdDSA key",
        || {
            let server = &server;
            let active = [new_rs.clone(), newer_ed.clone()];
            async move { (kids(server).await[..2] == active).then_some(()) }
        },
    )
    .await;
    let again = server.tokens(&ada, &rs, OIDC, &[]).await;
    assert_eq!(verify(&server, &rs, id_token(&again.body)).await.0, new_rs);

    // Once every token they signed has expired (plus the reload grace), the first keys go.
    server
        .clock
        .advance(1 + grantd_core::oidc::RETIRED_KEY_GRACE_SECS);
    until(
        Duration::from_secs(10),
        "the first keys to leave the JWKS",
        || {
            let server = &server;
            let old = [old_rs.clone(), old_ed.clone()];
            async move {
                let kids = kids(server).await;
                (!kids.iter().any(|k| old.contains(k))).then_some(kids)
            }
        },
    )
    .await;
    assert_eq!(
        kids(&server).await,
        [new_rs.clone(), newer_ed.clone(), new_ed.clone()]
    );
}

#[tokio::test]
async fn eddsa_as_the_server_default_and_a_client_may_still_choose_rs256() {
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
        json!(["RS256", "EdDSA"])
    );
    let kid = header.kid.unwrap();
    let published = jwks(&server).await;
    let key = serde_json::to_value(published.find(&kid).unwrap()).unwrap();
    assert_eq!(
        (key["kty"].as_str(), key["crv"].as_str()),
        (Some("OKP"), Some("Ed25519"))
    );
    // A client that chose RS256 keeps it, whatever the server default.
    let rs = server
        .register(ClientSpec {
            id_token_alg: Some(SigningAlg::Rs256),
            ..spec("https://r.example/cb")
        })
        .await;
    let tokens = server.tokens(&ada, &rs, OIDC, &[]).await;
    let header = jsonwebtoken::decode_header(id_token(&tokens.body)).unwrap();
    assert_eq!(header.alg, Algorithm::RS256);
    let (_, claims) = verify(&server, &rs, id_token(&tokens.body)).await;
    assert_eq!(claims["at_hash"], at_hash(&tokens.access));
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
async fn every_algorithm_has_a_key_from_the_first_start_and_a_changed_default_makes_none() {
    skip_without_postgres!();
    let kek = Kek::generate();
    let sealed = kek.clone();
    let server = start_with(move |s| s.kek = Some(sealed)).await;
    let summary = |keys: Vec<signing::KeySummary>| -> Vec<(String, String, bool)> {
        keys.into_iter()
            .map(|k| (k.alg, k.kid, k.retired_at.is_some()))
            .collect()
    };
    // Serving begins once the keys are made.
    assert_eq!(jwks(&server).await.keys.len(), 2);
    let before = summary(signing::list(&server.store, server.now()).await.unwrap());
    let algs: Vec<(&str, bool)> = before.iter().map(|k| (k.0.as_str(), k.2)).collect();
    assert_eq!(algs, [("RS256", false), ("EdDSA", false)]);
    // Another node (or the next start) with EdDSA as the default, on the same database and
    // key: the keys are already there, so it makes none.
    let mut settings = server.app.settings.clone();
    settings.kek = Some(kek.clone());
    settings.id_token_signing_alg = SigningAlg::EdDsa;
    let node = grantd_server::App::new(server.store.clone(), server.clock.clone(), settings);
    node.prepare_keys().await.unwrap();
    assert_eq!(
        summary(signing::list(&server.store, server.now()).await.unwrap()),
        before
    );
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

/// A database from before per-client algorithms has one active key; the first start after the
/// upgrade keeps it and makes the other algorithm's.
#[tokio::test]
async fn an_upgraded_server_keeps_its_key_and_makes_the_missing_algorithms() {
    skip_without_postgres!();
    let database = crate::Database::create(crate::POSTGRES).await;
    let store = grantd_store::Store::open(&database.url(), 2).await.unwrap();
    let clock = std::sync::Arc::new(grantd_core::ManualClock::default());
    let kek = Kek::generate();
    let now = grantd_core::Clock::now(clock.as_ref());
    let old = signing::generate(SigningAlg::EdDsa, &kek, now).unwrap();
    assert!(store.add_first_signing_key(&old).await.unwrap());
    let mut settings = grantd_server::Settings::new("http://127.0.0.1:9");
    settings.kek = Some(kek);
    let app = grantd_server::App::new(store.clone(), clock.clone(), settings);
    app.prepare_keys().await.unwrap();
    let keys = signing::list(&store, now).await.unwrap();
    let summary: Vec<(&str, bool)> = keys
        .iter()
        .map(|k| (k.alg.as_str(), k.retired_at.is_none()))
        .collect();
    assert_eq!(summary, [("RS256", true), ("EdDSA", true)]);
    assert_eq!(keys[1].kid, old.kid, "the key it had stays");
    assert!(app.keys.is_ready());
}

fn spec(redirect_uri: &str) -> ClientSpec {
    ClientSpec {
        kind: ClientType::Server,
        name: "Test server app".into(),
        homepage: Some("https://app.example".into()),
        redirect_uris: vec![redirect_uri.into()],
        js_domain: None,
        owner_email: None,
        dialect: Dialect::Standard,
        introspect_any: false,
        id_token_alg: None,
    }
}

/// A server-based client whose ID tokens are EdDSA, as `grantd client add --id-token-alg EdDSA`
/// registers it.
async fn eddsa_client(server: &TestServer, redirect_uri: &str) -> TestClient {
    server
        .register(ClientSpec {
            id_token_alg: Some(SigningAlg::EdDsa),
            ..spec(redirect_uri)
        })
        .await
}

fn alg_of(tokens: &Value) -> Algorithm {
    jsonwebtoken::decode_header(id_token(tokens)).unwrap().alg
}

#[tokio::test]
async fn each_client_gets_id_tokens_in_its_own_algorithm() {
    skip_without_postgres!();
    let (server, ada, rs) = ada_and_a().await;
    let ed = eddsa_client(&server, "https://e.example/cb").await;

    let eddsa = server
        .tokens(
            &ada,
            &ed,
            OIDC,
            &[("access_type", "offline"), ("nonce", "e")],
        )
        .await;
    assert_eq!(alg_of(&eddsa.body), Algorithm::EdDSA);
    let (kid, claims) = verify(&server, &ed, id_token(&eddsa.body)).await;
    let key = serde_json::to_value(jwks(&server).await.find(&kid).unwrap()).unwrap();
    assert_eq!(
        (key["kty"].as_str(), key["alg"].as_str()),
        (Some("OKP"), Some("EdDSA"))
    );
    let digest = sha2::Sha512::digest(eddsa.access.as_bytes());
    assert_eq!(claims["at_hash"], URL_SAFE_NO_PAD.encode(&digest[..32]));
    assert_eq!(claims["nonce"], "e");

    // The same server, another client: RS256, the server default.
    let rsa = server.tokens(&ada, &rs, OIDC, &[]).await;
    assert_eq!(alg_of(&rsa.body), Algorithm::RS256);
    let (rs_kid, claims) = verify(&server, &rs, id_token(&rsa.body)).await;
    assert_ne!(rs_kid, kid);
    assert_eq!(claims["at_hash"], at_hash(&rsa.access));

    // The refresh grant signs as the code exchange did.
    server.clock.advance(60);
    let refreshed = server.refresh(&ed, eddsa.refresh()).await.tokens();
    assert_eq!(alg_of(&refreshed.body), Algorithm::EdDSA);
    assert_eq!(verify(&server, &ed, id_token(&refreshed.body)).await.0, kid);
}

fn settings_url(server: &TestServer, client: &TestClient) -> String {
    server.at(&format!("/console/clients/{}?tab=settings", client.id))
}

/// Chooses `alg` in the OpenID Connect panel of `client`'s Settings tab, with the page's CSRF
/// token, as the browser submits the select.
async fn choose_alg(
    server: &TestServer,
    browser: &crate::Http,
    client: &TestClient,
    alg: &str,
) -> crate::Reply {
    let page = browser.get(settings_url(server, client)).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let csrf = page.form_with("name").csrf_token().to_owned();
    let action = server.at(&format!("/console/clients/{}/id-token-alg", client.id));
    assert!(page.body.contains(&format!(
        "action=\"/console/clients/{}/id-token-alg\"",
        client.id
    )));
    browser
        .post_form(
            action,
            &[("csrf_token", csrf.as_str()), ("id_token_alg", alg)],
        )
        .await
}

#[tokio::test]
async fn the_console_chooses_a_clients_id_token_algorithm_for_its_owner_only() {
    skip_without_postgres!();
    let server = start().await;
    let ada = server.user("ada@example.com").await;
    let bob = server.user("bob@example.com").await;
    let owned = |owner: &TestUser| {
        let email = owner.email.clone();
        let server = &server;
        async move {
            server
                .register(ClientSpec {
                    owner_email: Some(email),
                    ..spec("https://a.example/cb")
                })
                .await
        }
    };
    let app = owned(&ada).await;
    let browser = server.browser();
    browser.sign_in(&settings_url(&server, &app), &ada).await;
    let page = browser.get(settings_url(&server, &app)).await;
    assert!(
        page.body.contains("<strong>RS256</strong>"),
        "{}",
        page.body
    );
    assert!(page
        .body
        .contains(r#"<option value="" selected>Server default (RS256)</option>"#));
    assert_eq!(
        alg_of(&server.tokens(&ada, &app, OIDC, &[]).await.body),
        Algorithm::RS256
    );

    // EdDSA: saved, shown, and the next ID token is EdDSA.
    let saved = choose_alg(&server, &browser, &app, "EdDSA").await;
    assert_eq!(saved.status, 303, "{}", saved.body);
    let page = browser.get(saved.location().unwrap()).await;
    assert!(page.body.contains("Saved."), "{}", page.body);
    assert!(page.body.contains("<strong>EdDSA</strong>"));
    assert!(page
        .body
        .contains(r#"<option value="EdDSA" selected>EdDSA</option>"#));
    let tokens = server.tokens(&ada, &app, OIDC, &[]).await;
    assert_eq!(alg_of(&tokens.body), Algorithm::EdDSA);
    verify(&server, &app, id_token(&tokens.body)).await;

    // Back to the server default.
    assert_eq!(choose_alg(&server, &browser, &app, "").await.status, 303);
    let tokens = server.tokens(&ada, &app, OIDC, &[]).await;
    assert_eq!(alg_of(&tokens.body), Algorithm::RS256);

    // Not an algorithm: refused, nothing changes.
    let refused = choose_alg(&server, &browser, &app, "HS256").await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    let stored = server.store.client(&app.id).await.unwrap().unwrap();
    assert_eq!(stored.id_token_alg, None);

    // Bob, signed in with a valid form token of his own, cannot change Ada's client.
    let his = owned(&bob).await;
    let intruder = server.browser();
    intruder.sign_in(&settings_url(&server, &his), &bob).await;
    let his_page = intruder.get(settings_url(&server, &his)).await;
    let csrf = his_page.form_with("name").csrf_token().to_owned();
    let attempt = intruder
        .post_form(
            server.at(&format!("/console/clients/{}/id-token-alg", app.id)),
            &[("csrf_token", csrf.as_str()), ("id_token_alg", "EdDSA")],
        )
        .await;
    assert_eq!(attempt.status, 404, "{}", attempt.body);
    let stored = server.store.client(&app.id).await.unwrap().unwrap();
    assert_eq!(stored.id_token_alg, None);
    // Without the form token, not even the owner.
    let forged = browser
        .post_form(
            server.at(&format!("/console/clients/{}/id-token-alg", app.id)),
            &[("id_token_alg", "EdDSA")],
        )
        .await;
    assert_eq!(forged.status, 403, "{}", forged.body);
    let stored = server.store.client(&app.id).await.unwrap().unwrap();
    assert_eq!(stored.id_token_alg, None);
    // Bob may choose for his own.
    assert_eq!(
        choose_alg(&server, &intruder, &his, "EdDSA").await.status,
        303
    );
    let stored = server.store.client(&his.id).await.unwrap().unwrap();
    assert_eq!(stored.id_token_alg, Some(SigningAlg::EdDsa));
}
