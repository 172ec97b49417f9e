//! grantd's integration tests: the real server (`grantd_server::serve`, the same function the
//! binary runs) on an ephemeral port, with a `ManualClock`. Clients speak HTTP the way Zoho's
//! SDKs, standard libraries and browsers do (CONTRACT.md "What real clients send"); the browser
//! drives the real login and consent HTML.
//!
//! The suite runs twice: this binary (`it`) over an SQLite file in a temp dir, and
//! `tests/it_postgres.rs` (`it_postgres`), which loads this very file as a module, over a fresh
//! PostgreSQL database per server on the server `GRANTD_TEST_POSTGRES` names. Each binary's
//! root says which through `crate::POSTGRES`; every test begins with
//! `skip_without_postgres!()`, which skips it when PostgreSQL is wanted but not configured.
//!
//! One module per feature; tests named `tNNN_...` cover that case of SECURITY-CASES.md.
#![allow(clippy::unwrap_used, clippy::expect_used)]

/// The first statement of every test: in the PostgreSQL run without `GRANTD_TEST_POSTGRES`, says
/// that the test is skipped and why, and returns (the test passes). Elsewhere it does nothing.
macro_rules! skip_without_postgres {
    () => {
        if crate::skipped_without_postgres() {
            return;
        }
    };
}

/// This binary runs the suite on SQLite; `tests/it_postgres.rs` sets its own to `true`.
#[allow(dead_code)] // in `it_postgres`, where the root's own constant is the one read
pub const POSTGRES: bool = false;

mod backend;
mod cancellation;
mod dialects;
mod encodings;
mod limits;
mod login;
mod pkce;
mod redirect_flow;
mod redirect_uri;
mod refresh;
mod resource;
mod revoke;
mod security;
mod self_client;
mod storage;
mod token;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use reqwest::cookie::{CookieStore, Jar};
use reqwest::header::HeaderMap;
use reqwest::redirect::Policy;
use reqwest::Url;
use scraper::{Html, Selector};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;

use grantd_core::secret::Password;
use grantd_core::{ClientType, Dialect, ManualClock, Timestamp};
use grantd_server::admin::{self, ClientSpec, SelfCodeSpec};
use grantd_server::{App, Settings};

use backend::Database;
pub use backend::{Db, Param};

/// `{api_domain}` of every test server: never the server's own URL, never a Zoho URL.
pub const API_DOMAIN: &str = "https://api.test.example";
/// Every test user's password.
pub const PASSWORD: &str = "correct horse battery staple";
/// The scopes every test server registers (besides the built-in `AaaServer.profile.READ`).
pub const SCOPES: [&str; 6] = [
    "ZohoCRM.modules.ALL",
    "ZohoCRM.modules.READ",
    "ZohoCRM.settings.READ",
    "Demo.x.ALL",
    "Demo.x.READ",
    "Demo.y.READ",
];
/// A scope list that also lets the token read `/oauth/user/info`.
pub const CRM_AND_PROFILE: &str = "ZohoCRM.modules.ALL,AaaServer.profile.READ";
/// A well-formed PKCE verifier (RFC 7636 §4.1: 43 to 128 unreserved characters).
pub const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk.grantd~tests";

pub struct TestServer {
    pub url: String,
    pub clock: Arc<ManualClock>,
    /// A plain client: no cookies, no redirects followed.
    pub http: reqwest::Client,
    pub store: grantd_store::Store,
    pub app: App,
    /// One signed-in browser per user email, so helpers pay for Argon2 once per user.
    browsers: Mutex<HashMap<String, Arc<Browser>>>,
    /// The SQLite file's temp dir, or the PostgreSQL database, removed on drop; last, so that
    /// the handles above go first.
    database: Database,
}

/// `skip_without_postgres!()`: should this test return at once?
pub fn skipped_without_postgres() -> bool {
    backend::skipped()
}

pub async fn start() -> TestServer {
    start_with(|_| {}).await
}

pub async fn start_with(adjust: impl FnOnce(&mut Settings)) -> TestServer {
    let database = Database::create().await;
    let store = grantd_store::Store::open(&database.url(), backend::POOL_SIZE)
        .await
        .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let clock = Arc::new(ManualClock::default());
    let mut settings = Settings::new(&url);
    settings.location = "us".into();
    settings.api_domain = API_DOMAIN.into();
    adjust(&mut settings);
    let app = App::new(store.clone(), clock.clone(), settings);
    for scope in SCOPES {
        admin::add_scope(&store, scope, "a scope for tests")
            .await
            .unwrap();
    }
    tokio::spawn(grantd_server::serve(listener, app.clone()));
    TestServer {
        url,
        clock,
        http: plain_client(),
        store,
        app,
        browsers: Mutex::default(),
        database,
    }
}

fn plain_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

// ---- fixtures ------------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub struct TestUser {
    pub id: i64,
    pub email: String,
    pub name: String,
    pub password: String,
}

#[derive(Debug, Clone)]
pub struct TestClient {
    pub id: String,
    pub secret: Option<String>,
    /// The first registered redirect URI ("" for clients without any).
    pub redirect_uri: String,
    pub kind: ClientType,
    pub dialect: Dialect,
}

impl TestClient {
    /// `client_id` and, for confidential clients, `client_secret`: how Zoho's SDKs authenticate.
    pub fn body_auth(&self) -> Vec<(&'static str, String)> {
        let mut fields = vec![("client_id", self.id.clone())];
        if let Some(secret) = &self.secret {
            fields.push(("client_secret", secret.clone()));
        }
        fields
    }

    pub fn secret(&self) -> &str {
        self.secret.as_deref().expect("a confidential client")
    }
}

/// The tokens of a successful token response.
#[derive(Debug, Clone)]
pub struct Tokens {
    pub access: String,
    pub refresh: Option<String>,
    pub body: Value,
}

impl Tokens {
    pub fn refresh(&self) -> &str {
        self.refresh.as_deref().expect("a refresh token was issued")
    }
}

impl TestServer {
    pub fn now(&self) -> Timestamp {
        grantd_core::Clock::now(&*self.clock)
    }

    pub fn at(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// A user named "Ada Lovelace" with the shared test password.
    pub async fn user(&self, email: &str) -> TestUser {
        let name = "Ada Lovelace";
        let id = admin::add_user(
            &self.store,
            &self.app.passwords,
            email,
            name,
            &Password::from_wire(PASSWORD.into()),
            false,
            self.now(),
        )
        .await
        .unwrap();
        TestUser {
            id,
            email: email.into(),
            name: name.into(),
            password: PASSWORD.into(),
        }
    }

    pub async fn client(
        &self,
        kind: ClientType,
        redirect_uris: &[&str],
        dialect: Dialect,
        owner: Option<&TestUser>,
    ) -> TestClient {
        let spec = ClientSpec {
            kind,
            name: format!("Test {} app", kind.as_str().replace('-', " ")),
            homepage: Some("https://app.example".into()),
            redirect_uris: redirect_uris.iter().map(|u| u.to_string()).collect(),
            js_domain: None,
            owner_email: owner.map(|u| u.email.clone()),
            dialect,
        };
        let (id, secret) = admin::add_client(&self.store, &spec, self.now())
            .await
            .unwrap();
        assert_eq!(secret.is_some(), !kind.is_public(), "secret for {kind:?}");
        TestClient {
            id: id.as_str().to_owned(),
            secret: secret.map(|s| s.expose().to_owned()),
            redirect_uri: redirect_uris
                .first()
                .map(|u| u.to_string())
                .unwrap_or_default(),
            kind,
            dialect,
        }
    }

    /// A confidential, server-based client in the standard dialect.
    pub async fn server_client(&self, redirect_uri: &str) -> TestClient {
        self.client(ClientType::Server, &[redirect_uri], Dialect::Standard, None)
            .await
    }

    /// A confidential, server-based client in the zoho dialect.
    pub async fn zoho_client(&self, redirect_uri: &str) -> TestClient {
        self.client(ClientType::Server, &[redirect_uri], Dialect::Zoho, None)
            .await
    }

    /// A public mobile client (PKCE required).
    pub async fn mobile_client(&self, redirect_uri: &str) -> TestClient {
        self.client(ClientType::Mobile, &[redirect_uri], Dialect::Standard, None)
            .await
    }

    pub async fn self_client(&self, owner: &TestUser, dialect: Dialect) -> TestClient {
        self.client(ClientType::SelfClient, &[], dialect, Some(owner))
            .await
    }

    /// A Self Client code, as the console or `grantd code` makes it.
    pub async fn self_code(
        &self,
        client: &TestClient,
        owner: &TestUser,
        scopes: &str,
        minutes: i64,
    ) -> String {
        self.try_self_code(client, owner, scopes, minutes)
            .await
            .unwrap()
    }

    pub async fn try_self_code(
        &self,
        client: &TestClient,
        owner: &TestUser,
        scopes: &str,
        minutes: i64,
    ) -> Result<String, admin::AdminError> {
        let spec = SelfCodeSpec {
            client_id: client.id.clone(),
            user_email: owner.email.clone(),
            scopes: scopes.into(),
            minutes,
            description: Some("integration test".into()),
        };
        admin::self_client_code(&self.store, &spec, self.now(), &self.app.settings.limits)
            .await
            .map(|code| code.expose().to_owned())
    }

    pub fn browser(&self) -> Browser {
        Browser::new(&self.url)
    }

    /// `/oauth/v2/auth?response_type=code&client_id&scope&redirect_uri` plus `extra`; public
    /// clients get an S256 challenge for [`VERIFIER`] unless `extra` names one.
    pub fn auth_url(&self, client: &TestClient, scope: &str, extra: &[(&str, &str)]) -> String {
        let mut params: Vec<(&str, &str)> = vec![
            ("response_type", "code"),
            ("client_id", &client.id),
            ("scope", scope),
            ("redirect_uri", &client.redirect_uri),
        ];
        let challenge = s256(VERIFIER);
        if client.kind.is_public() && !extra.iter().any(|(k, _)| *k == "code_challenge") {
            params.push(("code_challenge", &challenge));
            params.push(("code_challenge_method", "S256"));
        }
        params.extend_from_slice(extra);
        self.auth_url_raw(&params)
    }

    /// `/oauth/v2/auth` with exactly these parameters.
    pub fn auth_url_raw(&self, params: &[(&str, &str)]) -> String {
        Url::parse_with_params(&self.at("/oauth/v2/auth"), params)
            .unwrap()
            .to_string()
    }

    /// Runs the redirect flow in `browser` (signing in and accepting consent as needed) and
    /// returns the code from the final redirect.
    pub async fn code(
        &self,
        browser: &Browser,
        user: &TestUser,
        client: &TestClient,
        scope: &str,
        extra: &[(&str, &str)],
    ) -> String {
        let flow = browser
            .authorize(&self.auth_url(client, scope, extra), user, Decision::Accept)
            .await;
        flow.redirect.code()
    }

    /// Code exchange as Zoho's Python SDK sends it (urlencoded, credentials in the body), with
    /// the verifier for public clients.
    pub async fn exchange(&self, client: &TestClient, code: &str) -> Reply {
        let mut fields = client.body_auth();
        fields.push(("grant_type", "authorization_code".into()));
        fields.push(("code", code.into()));
        if !client.redirect_uri.is_empty() {
            fields.push(("redirect_uri", client.redirect_uri.clone()));
        }
        if client.kind.is_public() {
            fields.push(("code_verifier", VERIFIER.into()));
        }
        self.post_form("/oauth/v2/token", &fields).await
    }

    /// The browser `user` is signed in with (created, and signed in, on first use).
    pub fn browser_of(&self, user: &TestUser) -> Arc<Browser> {
        let mut browsers = self.browsers.lock().unwrap();
        browsers
            .entry(user.email.clone())
            .or_insert_with(|| Arc::new(self.browser()))
            .clone()
    }

    /// A full redirect flow in the user's browser, then the code exchange, which must succeed.
    pub async fn tokens(
        &self,
        user: &TestUser,
        client: &TestClient,
        scope: &str,
        extra: &[(&str, &str)],
    ) -> Tokens {
        let browser = self.browser_of(user);
        let code = self.code(&browser, user, client, scope, extra).await;
        self.exchange(client, &code).await.tokens()
    }

    /// Offline tokens (a refresh token included) for `scope`; `prompt=consent` makes sure a
    /// refresh token is issued even when the user consented before.
    pub async fn offline_tokens(
        &self,
        user: &TestUser,
        client: &TestClient,
        scope: &str,
    ) -> Tokens {
        let tokens = self
            .tokens(
                user,
                client,
                scope,
                &[("access_type", "offline"), ("prompt", "consent")],
            )
            .await;
        assert!(
            tokens.refresh.is_some(),
            "no refresh token: {}",
            tokens.body
        );
        tokens
    }

    /// Refresh as Zoho's Python SDK sends it.
    pub async fn refresh(&self, client: &TestClient, refresh_token: &str) -> Reply {
        let mut fields = client.body_auth();
        fields.push(("grant_type", "refresh_token".into()));
        fields.push(("refresh_token", refresh_token.into()));
        self.post_form("/oauth/v2/token", &fields).await
    }

    /// Refresh as standard libraries send it, with a `scope`.
    pub async fn refresh_scoped(
        &self,
        client: &TestClient,
        refresh_token: &str,
        scope: &str,
    ) -> Reply {
        let mut fields = client.body_auth();
        fields.push(("grant_type", "refresh_token".into()));
        fields.push(("refresh_token", refresh_token.into()));
        fields.push(("scope", scope.into()));
        self.post_form("/oauth/v2/token", &fields).await
    }

    /// Revoke as Zoho's SDKs send it: the token only, no client authentication.
    pub async fn revoke(&self, token: &str) -> Reply {
        self.post_form("/oauth/v2/token/revoke", &[("token", token.to_owned())])
            .await
    }

    /// `GET /oauth/user/info` with `Authorization: Zoho-oauthtoken <token>`.
    pub async fn userinfo(&self, access_token: &str) -> Reply {
        self.userinfo_with(&format!("Zoho-oauthtoken {access_token}"))
            .await
    }

    pub async fn userinfo_with(&self, authorization: &str) -> Reply {
        let resp = self
            .http
            .get(self.at("/oauth/user/info"))
            .header("Authorization", authorization)
            .send()
            .await
            .unwrap();
        Reply::read(resp).await
    }

    /// Does this access token still open `/oauth/user/info`? (Its scope must include
    /// `AaaServer.profile.READ`.) Anything but 200 or 401 is a failure of its own.
    pub async fn access_works(&self, access_token: &str) -> bool {
        let reply = self.userinfo(access_token).await;
        match reply.status {
            200 => true,
            401 => {
                let challenge = reply.header("www-authenticate").unwrap_or_default();
                assert!(
                    challenge.contains("error=\"invalid_token\""),
                    "401 without the invalid_token challenge: {challenge:?}"
                );
                false
            }
            other => panic!("user info answered {other}: {}", reply.body),
        }
    }

    /// Does this refresh token still mint access tokens for `client`?
    pub async fn refresh_works(&self, client: &TestClient, refresh_token: &str) -> bool {
        let reply = self.refresh(client, refresh_token).await;
        match reply.status {
            200 => {
                reply.tokens();
                true
            }
            _ => {
                reply.assert_error(client.dialect, Wire::InvalidGrant);
                false
            }
        }
    }

    /// RFC 7662 introspection, the caller authenticated in the body.
    pub async fn introspect(&self, caller: &TestClient, token: &str) -> Reply {
        let mut fields = caller.body_auth();
        fields.push(("token", token.into()));
        self.post_form("/oauth/v2/introspect", &fields).await
    }

    // ---- raw requests ------------------------------------------------------------------

    /// POST an `application/x-www-form-urlencoded` body.
    pub async fn post_form<K: AsRef<str>, V: AsRef<str>>(
        &self,
        path: &str,
        fields: &[(K, V)],
    ) -> Reply {
        let fields: Vec<(&str, &str)> = fields
            .iter()
            .map(|(k, v)| (k.as_ref(), v.as_ref()))
            .collect();
        let resp = self
            .http
            .post(self.at(path))
            .form(&fields)
            .send()
            .await
            .unwrap();
        Reply::read(resp).await
    }

    /// POST a urlencoded body with HTTP Basic client authentication.
    pub async fn post_form_basic<K: AsRef<str>, V: AsRef<str>>(
        &self,
        path: &str,
        user: &str,
        password: &str,
        fields: &[(K, V)],
    ) -> Reply {
        let fields: Vec<(&str, &str)> = fields
            .iter()
            .map(|(k, v)| (k.as_ref(), v.as_ref()))
            .collect();
        let resp = self
            .http
            .post(self.at(path))
            .header("Authorization", basic(user, password))
            .form(&fields)
            .send()
            .await
            .unwrap();
        Reply::read(resp).await
    }

    /// POST a `multipart/form-data` body, as Zoho's Node SDK does.
    pub async fn post_multipart<K: AsRef<str>, V: AsRef<str>>(
        &self,
        path: &str,
        fields: &[(K, V)],
    ) -> Reply {
        let mut form = reqwest::multipart::Form::new();
        for (k, v) in fields {
            form = form.text(k.as_ref().to_owned(), v.as_ref().to_owned());
        }
        let resp = self
            .http
            .post(self.at(path))
            .multipart(form)
            .send()
            .await
            .unwrap();
        Reply::read(resp).await
    }

    /// POST with the parameters in the query string and an empty body, as Zoho's docs show.
    pub async fn post_query<K: AsRef<str>, V: AsRef<str>>(
        &self,
        path: &str,
        fields: &[(K, V)],
    ) -> Reply {
        let fields: Vec<(&str, &str)> = fields
            .iter()
            .map(|(k, v)| (k.as_ref(), v.as_ref()))
            .collect();
        let url = Url::parse_with_params(&self.at(path), &fields).unwrap();
        let resp = self.http.post(url).send().await.unwrap();
        Reply::read(resp).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        let resp = self.http.get(self.at(path)).send().await.unwrap();
        Reply::read(resp).await
    }

    // ---- the database, read beside the server -------------------------------------------

    /// A read-only look at the server's database (close it when done).
    pub async fn db(&self) -> Db {
        self.database.inspect().await
    }

    /// The SQLite file (`None` on PostgreSQL).
    pub fn db_path(&self) -> Option<&Path> {
        self.database.path()
    }

    /// `SELECT count(*) FROM {table}`.
    pub async fn rows(&self, table: &str) -> i64 {
        self.count(&format!("SELECT count(*) FROM {table}"), &[])
            .await
    }

    /// What a `SELECT count(*) ...` with `$1`, `$2`, ... bound to `params` returns.
    pub async fn count(&self, sql: &str, params: &[Param<'_>]) -> i64 {
        let db = self.db().await;
        let n = db.count(sql, params).await;
        db.close().await;
        n
    }
}

// ---- replies -------------------------------------------------------------------------------

/// A response, read completely.
#[derive(Debug, Clone)]
pub struct Reply {
    pub url: Url,
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
}

/// The internal errors of CONTRACT.md's dialect table, by row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    InvalidClient,
    InvalidGrant,
    RedirectUriMismatch,
    InvalidRequest,
    UnsupportedGrantType,
    InvalidScope,
    UnauthorizedClient,
    Throttled,
}

impl Wire {
    /// (status, error) in `dialect`, straight from CONTRACT.md's table.
    pub fn expect(self, dialect: Dialect) -> (u16, &'static str) {
        let (status, standard, zoho) = match self {
            Wire::InvalidClient => (401, "invalid_client", "invalid_client"),
            Wire::InvalidGrant => (400, "invalid_grant", "invalid_code"),
            Wire::RedirectUriMismatch => (400, "invalid_grant", "invalid_redirect_uri"),
            Wire::InvalidRequest => (400, "invalid_request", "invalid_request"),
            Wire::UnsupportedGrantType => (400, "unsupported_grant_type", "unsupported_grant_type"),
            Wire::InvalidScope => (400, "invalid_scope", "invalid_scope"),
            Wire::UnauthorizedClient => (400, "unauthorized_client", "unauthorized_client"),
            Wire::Throttled => (429, "Access Denied", "Access Denied"),
        };
        match dialect {
            Dialect::Standard => (status, standard),
            Dialect::Zoho => (200, zoho),
        }
    }
}

pub const THROTTLE_DESCRIPTION: &str =
    "You have made too many requests continuously. Please try again after some time.";

impl Reply {
    pub async fn read(resp: reqwest::Response) -> Reply {
        let url = resp.url().clone();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.text().await.unwrap_or_default();
        Reply {
            url,
            status,
            headers,
            body,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    pub fn header_all(&self, name: &str) -> Vec<String> {
        self.headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect()
    }

    /// The `Location` header, resolved against the request URL.
    pub fn location(&self) -> Option<Url> {
        self.header("location").map(|l| self.url.join(l).unwrap())
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}), status {}: {:?}", self.status, self.body))
    }

    /// A successful token response (CONTRACT.md): 200, no-store, the exact fields and shapes.
    pub fn tokens(&self) -> Tokens {
        assert_eq!(self.status, 200, "token request failed: {}", self.body);
        self.assert_no_store();
        let body = self.json();
        let access = body["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned();
        assert_token_shape(&access);
        let refresh = body.get("refresh_token").map(|r| {
            let r = r.as_str().expect("refresh_token is a string").to_owned();
            assert_token_shape(&r);
            r
        });
        assert_eq!(body["token_type"], "Bearer", "{body}");
        assert_eq!(body["api_domain"], API_DOMAIN, "{body}");
        assert!(
            body["expires_in"].is_i64(),
            "expires_in must be a number: {body}"
        );
        assert!(body["scope"].is_string(), "scope must be a string: {body}");
        assert!(body.get("expires_in_sec").is_none(), "{body}");
        assert!(body.get("error").is_none(), "{body}");
        Tokens {
            access,
            refresh,
            body,
        }
    }

    /// `Cache-Control: no-store` and `Pragma: no-cache` (RFC 6749 §5.1, T-106).
    pub fn assert_no_store(&self) {
        let cache = self.header("cache-control").unwrap_or_default();
        assert!(
            cache.contains("no-store"),
            "Cache-Control {cache:?} on {}",
            self.url
        );
        assert_eq!(
            self.header("pragma"),
            Some("no-cache"),
            "Pragma on {}",
            self.url
        );
    }

    /// A token-endpoint error: the status and name of `dialect` (CONTRACT.md), a JSON body with
    /// a description, `no-store`, only RFC 6749 §5.2 characters, and no token in it.
    pub fn assert_error(&self, dialect: Dialect, wire: Wire) {
        let (status, error) = wire.expect(dialect);
        assert_eq!(
            (self.status, self.json()["error"].as_str()),
            (status, Some(error)),
            "expected {wire:?} in {dialect:?}; body {}",
            self.body
        );
        self.assert_error_body();
        if wire == Wire::Throttled {
            assert_eq!(self.json()["status"], "failure", "{}", self.body);
            assert_eq!(self.json()["error_description"], THROTTLE_DESCRIPTION);
        }
    }

    /// The shape every JSON error body must have, whatever the error.
    pub fn assert_error_body(&self) {
        self.assert_no_store();
        let content_type = self.header("content-type").unwrap_or_default();
        assert!(
            content_type.starts_with("application/json"),
            "{content_type:?}"
        );
        let body = self.json();
        for key in ["error", "error_description"] {
            let text = body[key]
                .as_str()
                .unwrap_or_else(|| panic!("{key} missing in {body}"));
            assert!(!text.is_empty(), "{key} empty in {body}");
            // RFC 6749 §5.2: %x20-21 / %x23-5B / %x5D-7E (no quote, backslash or control char).
            assert!(
                text.bytes()
                    .all(|b| matches!(b, 0x20..=0x21 | 0x23..=0x5B | 0x5D..=0x7E)),
                "{key} has characters outside RFC 6749 §5.2: {text:?}"
            );
        }
        assert!(body.get("access_token").is_none() && body.get("refresh_token").is_none());
        assert!(
            !self.body.contains('\r') && !self.body.contains('\n') && !self.body.contains('\t')
        );
    }

    /// The authorization endpoint's HTML error page: 400, no `Location`, nothing issued.
    pub fn assert_error_page(&self) {
        assert_eq!(
            self.status, 400,
            "expected the error page for {}; got {}",
            self.url, self.body
        );
        assert!(
            self.header("location").is_none(),
            "error page with Location {:?}",
            self.header("location")
        );
        let content_type = self.header("content-type").unwrap_or_default();
        assert!(content_type.starts_with("text/html"), "{content_type:?}");
        assert!(!self.body.contains("code="), "{}", self.body);
    }

    /// Neither a code in a Location header nor a token in the body.
    pub fn assert_nothing_issued(&self) {
        if let Some(location) = self.header("location") {
            let url = self.url.join(location).unwrap();
            assert!(
                !url.query_pairs().any(|(k, _)| k == "code"),
                "a code was issued: {location}"
            );
        }
        assert!(!self.body.contains("access_token"), "{}", self.body);
        assert!(!self.body.contains("refresh_token\":"), "{}", self.body);
    }

    // ---- HTML ------------------------------------------------------------------------------

    pub fn html(&self) -> Html {
        Html::parse_document(&self.body)
    }

    /// Has an `<input name=...>` or `<button name=...>`.
    pub fn has_field(&self, name: &str) -> bool {
        let selector =
            Selector::parse(&format!("input[name=\"{name}\"], button[name=\"{name}\"]")).unwrap();
        self.html().select(&selector).next().is_some()
    }

    pub fn is_login_page(&self) -> bool {
        self.status == 200 && self.has_field("password") && self.has_field("email")
    }

    pub fn is_consent_page(&self) -> bool {
        self.status == 200 && self.has_field("decision")
    }

    /// The first `<form>` holding a field `name`, with its action resolved and every named
    /// `<input>` (hidden ones included) with its value. Submit buttons are left to the caller.
    pub fn form_with(&self, name: &str) -> Form {
        let html = self.html();
        let forms = Selector::parse("form").unwrap();
        let fields =
            Selector::parse(&format!("input[name=\"{name}\"], button[name=\"{name}\"]")).unwrap();
        let inputs = Selector::parse("input[name]").unwrap();
        let form = html
            .select(&forms)
            .find(|f| f.select(&fields).next().is_some())
            .unwrap_or_else(|| panic!("no form with {name:?} on {}: {}", self.url, self.body));
        let method = form.value().attr("method").unwrap_or("get");
        assert!(
            method.eq_ignore_ascii_case("post"),
            "form method {method:?}"
        );
        let action = match form.value().attr("action") {
            Some(a) if !a.is_empty() => self.url.join(a).unwrap(),
            _ => self.url.clone(),
        };
        let fields = form
            .select(&inputs)
            .filter(|i| {
                !i.value()
                    .attr("type")
                    .is_some_and(|t| t.eq_ignore_ascii_case("submit"))
            })
            .map(|i| {
                (
                    i.value().attr("name").unwrap().to_owned(),
                    i.value().attr("value").unwrap_or_default().to_owned(),
                )
            })
            .collect();
        Form { action, fields }
    }
}

/// A form as the browser would submit it.
#[derive(Debug, Clone)]
pub struct Form {
    pub action: Url,
    pub fields: Vec<(String, String)>,
}

impl Form {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Sets (or adds) a field.
    pub fn set(&mut self, name: &str, value: &str) -> &mut Self {
        match self.fields.iter_mut().find(|(n, _)| n == name) {
            Some(field) => field.1 = value.to_owned(),
            None => self.fields.push((name.to_owned(), value.to_owned())),
        }
        self
    }

    pub fn remove(&mut self, name: &str) -> &mut Self {
        self.fields.retain(|(n, _)| n != name);
        self
    }

    pub fn csrf_token(&self) -> &str {
        let token = self
            .get("csrf_token")
            .expect("every form carries a csrf_token");
        assert!(token.len() >= 32, "csrf_token too short: {token:?}");
        token
    }
}

// ---- the browser ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Accept,
    Reject,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Accept => "accept",
            Decision::Reject => "reject",
        }
    }
}

/// A cookie-keeping client that does not follow redirects, so every hop can be checked.
pub struct Browser {
    pub http: reqwest::Client,
    pub jar: Arc<Jar>,
    base: Url,
}

/// The end of a redirect flow: the redirect to the client, and what was shown on the way.
#[derive(Debug)]
pub struct Flow {
    pub redirect: Redirect,
    pub saw_login: bool,
    pub saw_consent: bool,
    /// The consent page, if one was shown.
    pub consent_page: Option<Reply>,
}

/// A redirect to the client's redirect URI, with its query parsed.
#[derive(Debug, Clone)]
pub struct Redirect {
    pub raw: String,
    pub url: Url,
    pub status: u16,
    pub params: Vec<(String, String)>,
}

impl Redirect {
    pub fn from_reply(reply: &Reply) -> Redirect {
        assert!(
            reply.status == 302 || reply.status == 303,
            "expected a redirect, got {}: {}",
            reply.status,
            reply.body
        );
        let raw = reply.header("location").expect("Location").to_owned();
        let url =
            Url::parse(&raw).unwrap_or_else(|e| panic!("Location {raw:?} is not absolute: {e}"));
        let params = url
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        Redirect {
            raw,
            url,
            status: reply.status,
            params,
        }
    }

    /// The single value of `name`.
    pub fn param(&self, name: &str) -> Option<&str> {
        let mut values = self.params.iter().filter(|(k, _)| k == name);
        let first = values.next().map(|(_, v)| v.as_str());
        assert!(values.next().is_none(), "{name} repeated in {}", self.raw);
        first
    }

    pub fn code(&self) -> String {
        let code = self
            .param("code")
            .unwrap_or_else(|| panic!("no code in {}", self.raw))
            .to_owned();
        assert_token_shape(&code);
        code
    }

    pub fn error(&self) -> Option<&str> {
        self.param("error")
    }
}

impl Browser {
    pub fn new(base: &str) -> Browser {
        let jar = Arc::new(Jar::default());
        let http = reqwest::Client::builder()
            .redirect(Policy::none())
            .cookie_provider(jar.clone())
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        Browser {
            http,
            jar,
            base: Url::parse(base).unwrap(),
        }
    }

    pub async fn get(&self, url: &str) -> Reply {
        let resp = self.http.get(url).send().await.unwrap();
        Reply::read(resp).await
    }

    /// Submits `form` (urlencoded) with `extra` fields appended.
    pub async fn submit(&self, form: &Form, extra: &[(&str, &str)]) -> Reply {
        self.submit_with(form, extra, &[]).await
    }

    pub async fn submit_with(
        &self,
        form: &Form,
        extra: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut fields: Vec<(&str, &str)> = form
            .fields
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        fields.extend_from_slice(extra);
        let mut request = self.http.post(form.action.clone()).form(&fields);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        Reply::read(request.send().await.unwrap()).await
    }

    /// Fills and submits the login form on `page`; the answer is returned as is.
    pub async fn sign_in_on(&self, page: &Reply, email: &str, password: &str) -> Reply {
        assert!(
            page.is_login_page(),
            "not the login page: {} {}",
            page.status,
            page.body
        );
        let mut form = page.form_with("password");
        form.csrf_token();
        assert!(
            form.get("next").is_some(),
            "the login form has no next field"
        );
        form.set("email", email).set("password", password);
        self.submit(&form, &[]).await
    }

    /// Signs in through the login page that `auth_url` shows; returns the 303 to `next`.
    pub async fn sign_in(&self, auth_url: &str, user: &TestUser) -> Reply {
        let page = self.get(auth_url).await;
        let reply = self.sign_in_on(&page, &user.email, &user.password).await;
        assert_eq!(reply.status, 303, "login failed: {}", reply.body);
        assert!(self.session().is_some(), "no session cookie after login");
        reply
    }

    /// Drives `/oauth/v2/auth` to the redirect to the client: signs in if the login page
    /// appears, answers the consent page with `decision`, follows the server's own redirects.
    pub async fn authorize(&self, auth_url: &str, user: &TestUser, decision: Decision) -> Flow {
        let mut page = self.get(auth_url).await;
        let mut flow_login = false;
        let mut consent_page = None;
        for _ in 0..8 {
            if page.is_login_page() {
                assert!(
                    !flow_login,
                    "the login page came back after signing in: {}",
                    page.body
                );
                flow_login = true;
                page = self.sign_in_on(&page, &user.email, &user.password).await;
                assert_eq!(page.status, 303, "login failed: {}", page.body);
                continue;
            }
            if page.is_consent_page() {
                assert!(consent_page.is_none(), "a second consent page");
                let form = page.form_with("decision");
                form.csrf_token();
                assert!(
                    form.get("consent_id").is_some(),
                    "no consent_id on the consent page"
                );
                consent_page = Some(page.clone());
                page = self.submit(&form, &[("decision", decision.as_str())]).await;
                assert_eq!(page.status, 302, "consent decision answered: {}", page.body);
                continue;
            }
            match page.location() {
                Some(next) if page.status == 302 || page.status == 303 => {
                    if self.is_own(&next) {
                        page = self.get(next.as_str()).await;
                    } else {
                        return Flow {
                            redirect: Redirect::from_reply(&page),
                            saw_login: flow_login,
                            saw_consent: consent_page.is_some(),
                            consent_page,
                        };
                    }
                }
                _ => panic!(
                    "unexpected answer {} at {}: {}",
                    page.status, page.url, page.body
                ),
            }
        }
        panic!("too many hops in the redirect flow");
    }

    /// A URL of the authorization server itself (as opposed to a client's redirect URI).
    fn is_own(&self, url: &Url) -> bool {
        url.origin() == self.base.origin() && url.path().starts_with("/oauth/v2/auth")
    }

    /// The value of a cookie the browser would send to the server.
    pub fn cookie(&self, name: &str) -> Option<String> {
        let header = self.jar.cookies(&self.base)?;
        header
            .to_str()
            .unwrap()
            .split(';')
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.to_owned())
            .filter(|v| !v.is_empty())
    }

    pub fn session(&self) -> Option<String> {
        self.cookie("grantd_session")
    }

    /// Plants a cookie, as an attacker or an old tab would.
    pub fn plant(&self, name: &str, value: &str) {
        self.jar
            .add_cookie_str(&format!("{name}={value}; Path=/"), &self.base);
    }
}

// ---- small helpers -------------------------------------------------------------------------

/// `1000.` + 32 hex + `.` + 32 hex (CONTRACT.md).
pub fn assert_token_shape(token: &str) {
    let parts: Vec<&str> = token.split('.').collect();
    assert!(
        parts.len() == 3
            && parts[0] == "1000"
            && parts[1..]
                .iter()
                .all(|p| p.len() == 32 && p.bytes().all(|b| b.is_ascii_hexdigit())),
        "not a 1000.hex.hex token: {token:?}"
    );
}

/// RFC 7636 S256, computed independently of grantd-core.
pub fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// `Basic base64(id:secret)`.
pub fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

/// Scopes of a response as a sorted list, whatever the separator.
pub fn scope_set(scope: &str) -> Vec<String> {
    let mut scopes: Vec<String> = scope
        .split([' ', ','])
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    scopes.sort();
    scopes
}

/// A well-formed token that no server issued.
pub fn unknown_token() -> String {
    format!("1000.{}.{}", "ab".repeat(16), "cd".repeat(16))
}
