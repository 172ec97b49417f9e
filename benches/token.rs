//! The token endpoint's hot path, in process (the router without sockets, so the figures are
//! grantd's own work): a refresh_token grant, which is one client read, two SHA-256 hashes and
//! one durable write transaction; the validation of an access token at `/oauth/user/info`;
//! and, for scale, SHA-256 of a token against Argon2id of a password.
//!
//! `cargo bench --bench token`. Quote ratios between these figures, not absolute times.

// A benchmark is no test to clippy (`allow-unwrap-in-tests` does not reach it); a failed setup
// step here should stop the run with its error, as in a test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use criterion::{criterion_group, criterion_main, Criterion};
use tower::ServiceExt;

use grantd_core::secret::{Password, SecretHash};
use grantd_core::{ClientType, Dialect, Limits, ManualClock};
use grantd_server::admin::{self, ClientSpec, SelfCodeSpec};
use grantd_server::{App, Settings};

struct Fixture {
    router: axum::Router,
    client_id: String,
    client_secret: String,
    refresh_token: String,
    access_token: String,
    _dir: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store =
        grantd_store::Store::open(&format!("sqlite://{}/bench.db", dir.path().display()), 4)
            .await
            .unwrap();
    let clock = Arc::new(ManualClock::default());
    let mut settings = Settings::new("http://127.0.0.1:8080");
    // The throttle would stop a benchmark that refreshes one token in a loop.
    settings.limits = Limits {
        refreshes_per_window: i64::MAX,
        active_access_tokens_per_refresh: 1_000_000,
        ..Limits::default()
    };
    let app = App::new(store.clone(), clock.clone(), settings);
    let now = grantd_core::Clock::now(&*clock);
    let password = Password::from_wire("correct horse battery".into());
    admin::add_user(
        &store,
        &app.passwords,
        "bench@example.com",
        "Bench User",
        &password,
        false,
        now,
    )
    .await
    .unwrap();
    let spec = ClientSpec {
        kind: ClientType::SelfClient,
        name: "Bench".into(),
        homepage: None,
        redirect_uris: vec![],
        js_domain: None,
        owner_email: Some("bench@example.com".into()),
        dialect: Dialect::Standard,
        introspect_any: false,
        id_token_alg: None,
    };
    let (client_id, secret) = admin::add_client(&store, &spec, now).await.unwrap();
    let code = admin::self_client_code(
        &store,
        &SelfCodeSpec {
            client_id: client_id.to_string(),
            user_email: "bench@example.com".into(),
            scopes: "AaaServer.profile.READ".into(),
            minutes: 10,
            description: None,
        },
        now,
        &Limits::default(),
        app.tag,
    )
    .await
    .unwrap();
    let router = grantd_server::router(app);
    let client_secret = secret.unwrap().expose().to_owned();
    let body = form(&[
        ("grant_type", "authorization_code"),
        ("client_id", client_id.as_str()),
        ("client_secret", &client_secret),
        ("code", code.expose()),
    ]);
    let response = router.clone().oneshot(post_token(body)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
        .await
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    Fixture {
        router,
        client_id: client_id.to_string(),
        client_secret,
        refresh_token: json["refresh_token"].as_str().unwrap().to_owned(),
        access_token: json["access_token"].as_str().unwrap().to_owned(),
        _dir: dir,
    }
}

fn form(pairs: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

fn post_token(body: String) -> Request<Body> {
    Request::post("/oauth/v2/token")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(body))
        .unwrap()
}

fn token_endpoint(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let f = rt.block_on(fixture());
    let refresh_body = form(&[
        ("grant_type", "refresh_token"),
        ("client_id", &f.client_id),
        ("client_secret", &f.client_secret),
        ("refresh_token", &f.refresh_token),
    ]);
    c.bench_function("refresh_token grant (durable commit)", |b| {
        b.to_async(&rt).iter(|| async {
            let response = f
                .router
                .clone()
                .oneshot(post_token(refresh_body.clone()))
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::OK);
        })
    });
    let auth = format!("Zoho-oauthtoken {}", f.access_token);
    c.bench_function("access token validation (/oauth/user/info)", |b| {
        b.to_async(&rt).iter(|| async {
            let request = Request::get("/oauth/user/info")
                .header(header::AUTHORIZATION, &auth)
                .body(Body::empty())
                .unwrap();
            let response = f.router.clone().oneshot(request).await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
        })
    });
    c.bench_function("healthz (router floor)", |b| {
        b.to_async(&rt).iter(|| async {
            let request = Request::get("/healthz").body(Body::empty()).unwrap();
            let response = f.router.clone().oneshot(request).await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
        })
    });
}

fn hashing(c: &mut Criterion) {
    let token = "1000.0123456789abcdef0123456789abcdef.0123456789abcdef0123456789abcdef";
    c.bench_function("SHA-256 of a token", |b| {
        b.iter(|| SecretHash::of(std::hint::black_box(token)))
    });
    use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
    let salt = SaltString::encode_b64(b"benchmark-salt16").unwrap();
    let phc = argon2::Argon2::default()
        .hash_password(b"correct horse battery", &salt)
        .unwrap()
        .to_string();
    let parsed = PasswordHash::new(&phc).unwrap();
    let mut group = c.benchmark_group("password");
    group.sample_size(10);
    group.bench_function("Argon2id verify (login only)", |b| {
        b.iter(|| {
            argon2::Argon2::default()
                .verify_password(b"correct horse battery", &parsed)
                .is_ok()
        })
    });
    group.finish();
}

criterion_group!(benches, token_endpoint, hashing);
criterion_main!(benches);
