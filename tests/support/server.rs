//! grantd in process for a test: the real server (`grantd_server::serve`, the same function
//! the binary runs) on an ephemeral port, over a database of its own (`database.rs`), with a
//! `ManualClock` (STYLE.md §9); fixtures made through the admin flows as the CLI makes them;
//! requests as Zoho's SDKs, standard libraries and browsers send them (CONTRACT.md "What real
//! clients send"), and a browser's walk through the login and consent pages.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use reqwest::Url;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use grantd_core::secret::Password;
use grantd_core::{ClientType, Dialect, ManualClock, Timestamp};
use grantd_server::admin::{self, ClientSpec, SelfCodeSpec};
use grantd_server::{App, Settings};
use grantd_store::ConsoleVerbs;

use super::database::{Database, Db, Param, POOL_SIZE};
use super::http::{send, Http, Redirect, Reply};
use super::oauth::{auth_url, TestClient, TestUser, Tokens, Wire, API_DOMAIN, PASSWORD};

/// The scopes every test server registers (besides the built-in `AaaServer.profile.READ`),
/// with the descriptions the consent page shows.
pub const SCOPES: [(&str, &str); 6] = [
    ("ZohoCRM.modules.ALL", "Read and change your CRM records"),
    ("ZohoCRM.modules.READ", "a scope for tests"),
    ("ZohoCRM.settings.READ", "See your CRM settings"),
    ("Demo.x.ALL", "a scope for tests"),
    ("Demo.x.READ", "a scope for tests"),
    ("Demo.y.READ", "a scope for tests"),
];

pub struct TestServer {
    pub url: String,
    pub clock: Arc<ManualClock>,
    /// A plain client: no cookies, no redirects followed.
    pub http: Http,
    pub store: grantd_store::Store,
    pub app: App,
    /// One signed-in browser per user email, so helpers pay for Argon2 once per user.
    browsers: Mutex<HashMap<String, Arc<Http>>>,
    /// Notified to stop serving ([`TestServer::stop`]), and the serving task.
    stop: Arc<Notify>,
    served: Mutex<Option<JoinHandle<std::io::Result<()>>>>,
    /// The SQLite file's temp dir, or the PostgreSQL database, removed on drop; last, so that
    /// the handles above go first.
    database: Database,
}

impl TestServer {
    /// A server on `database`, location `us`, `api_domain` [`API_DOMAIN`], [`SCOPES`]
    /// registered; `adjust` changes any setting before it starts.
    pub async fn start(database: Database, adjust: impl FnOnce(&mut Settings)) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let clock = Arc::new(ManualClock::default());
        TestServer::start_on(database, listener, clock, adjust).await
    }

    /// The same on a listener bound beforehand (so that other servers can be told its URL
    /// before it starts, as data centers are) and with a clock it may share with them.
    pub async fn start_on(
        database: Database,
        listener: TcpListener,
        clock: Arc<ManualClock>,
        adjust: impl FnOnce(&mut Settings),
    ) -> TestServer {
        let store = grantd_store::Store::open(&database.url(), POOL_SIZE)
            .await
            .unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let mut settings = Settings::new(&url);
        settings.location = "us".into();
        settings.api_domain = API_DOMAIN.into();
        adjust(&mut settings);
        let app = App::new(store.clone(), clock.clone(), settings);
        for (scope, description) in SCOPES {
            admin::add_scope(&store, scope, description).await.unwrap();
        }
        let stop = Arc::new(Notify::new());
        let stopped = stop.clone();
        let served = tokio::spawn(grantd_server::serve_until(
            listener,
            app.clone(),
            async move { stopped.notified().await },
        ));
        TestServer {
            url,
            clock,
            http: Http::new(),
            store,
            app,
            browsers: Mutex::default(),
            stop,
            served: Mutex::new(Some(served)),
            database,
        }
    }

    /// Stops serving: idle connections close, the listener goes; returns once it has. The
    /// database stays, for the test to look at.
    pub async fn stop(&self) {
        self.stop.notify_one();
        let served = self.served.lock().unwrap().take();
        if let Some(served) = served {
            served.await.unwrap().unwrap();
        }
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
        self.user_named(email, "Ada Lovelace").await
    }

    /// A user with [`PASSWORD`]; the first one of a server is its administrator.
    pub async fn user_named(&self, email: &str, name: &str) -> TestUser {
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

    /// A client named after its type, with a homepage.
    pub async fn client(
        &self,
        kind: ClientType,
        redirect_uris: &[&str],
        dialect: Dialect,
        owner: Option<&TestUser>,
    ) -> TestClient {
        let name = format!("Test {} app", kind.as_str().replace('-', " "));
        self.register(ClientSpec {
            kind,
            name,
            homepage: Some("https://app.example".into()),
            redirect_uris: redirect_uris.iter().map(|u| u.to_string()).collect(),
            js_domain: None,
            owner_email: owner.map(|u| u.email.clone()),
            dialect,
            introspect_any: false,
            id_token_alg: None,
        })
        .await
    }

    /// A standard-dialect client named `name`, as `grantd client add` would register it (a
    /// homepage unless it is a Self Client).
    pub async fn named_client(
        &self,
        kind: ClientType,
        name: &str,
        redirect_uris: &[&str],
        owner: Option<&TestUser>,
    ) -> TestClient {
        self.register(ClientSpec {
            kind,
            name: name.into(),
            homepage: (kind != ClientType::SelfClient).then(|| "https://app.example".into()),
            redirect_uris: redirect_uris.iter().map(|u| u.to_string()).collect(),
            js_domain: None,
            owner_email: owner.map(|u| u.email.clone()),
            dialect: Dialect::Standard,
            introspect_any: false,
            id_token_alg: None,
        })
        .await
    }

    /// Registers `spec`; only confidential clients get a secret.
    pub async fn register(&self, spec: ClientSpec) -> TestClient {
        let (id, secret) = admin::add_client(&self.store, &spec, self.now())
            .await
            .unwrap();
        let kind = spec.kind;
        assert_eq!(secret.is_some(), !kind.is_public(), "secret for {kind:?}");
        TestClient {
            id: id.as_str().to_owned(),
            name: spec.name,
            secret: secret.map(|s| s.expose().to_owned()),
            redirect_uri: spec.redirect_uris.first().cloned().unwrap_or_default(),
            kind,
            dialect: spec.dialect,
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
        admin::self_client_code(
            &self.store,
            &spec,
            self.now(),
            &self.app.settings.limits,
            self.app.tag,
        )
        .await
        .map(|code| code.expose().to_owned())
    }

    /// A browser of this server: it keeps cookies.
    pub fn browser(&self) -> Http {
        Http::browser(&self.url)
    }

    /// A browser connecting from the loopback address `127.0.0.{last}`: another client
    /// address to the server, as sign-in throttling counts them.
    pub fn browser_at(&self, last: u8) -> Http {
        Http::browser_from(&self.url, std::net::Ipv4Addr::new(127, 0, 0, last).into())
    }

    /// `/oauth/v2/auth?response_type=code&client_id&scope&redirect_uri` plus `extra`; public
    /// clients get an S256 challenge for [`VERIFIER`] unless `extra` names one.
    pub fn auth_url(&self, client: &TestClient, scope: &str, extra: &[(&str, &str)]) -> String {
        auth_url(&self.url, client, scope, extra)
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
        browser: &Http,
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
        self.post_form("/oauth/v2/token", &client.exchange_fields(code))
            .await
    }

    /// `POST /oauth/v2/token` with exactly these fields, urlencoded.
    pub async fn token(&self, fields: &[(&str, &str)]) -> Reply {
        self.post_form("/oauth/v2/token", fields).await
    }

    /// The browser `user` is signed in with (created, and signed in, on first use).
    pub fn browser_of(&self, user: &TestUser) -> Arc<Http> {
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
        self.post_form("/oauth/v2/token", &client.refresh_fields(refresh_token))
            .await
    }

    /// Refresh as standard libraries send it, with a `scope`.
    pub async fn refresh_scoped(
        &self,
        client: &TestClient,
        refresh_token: &str,
        scope: &str,
    ) -> Reply {
        let mut fields = client.refresh_fields(refresh_token);
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
        send(
            self.http
                .client
                .get(self.at("/oauth/user/info"))
                .header("Authorization", authorization),
        )
        .await
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
        self.post_form("/oauth/v2/introspect", &caller.introspect_fields(token))
            .await
    }

    // ---- raw requests ------------------------------------------------------------------

    /// POST an `application/x-www-form-urlencoded` body.
    pub async fn post_form<K: AsRef<str>, V: AsRef<str>>(
        &self,
        path: &str,
        fields: &[(K, V)],
    ) -> Reply {
        self.http.post_form(self.at(path), fields).await
    }

    /// POST a urlencoded body with HTTP Basic client authentication.
    pub async fn post_form_basic<K: AsRef<str>, V: AsRef<str>>(
        &self,
        path: &str,
        user: &str,
        password: &str,
        fields: &[(K, V)],
    ) -> Reply {
        self.http
            .post_form_basic(self.at(path), user, password, fields)
            .await
    }

    /// POST a `multipart/form-data` body, as Zoho's Node SDK does.
    pub async fn post_multipart<K: AsRef<str>, V: AsRef<str>>(
        &self,
        path: &str,
        fields: &[(K, V)],
    ) -> Reply {
        self.http.post_multipart(self.at(path), fields).await
    }

    /// POST with the parameters in the query string and an empty body, as Zoho's docs show.
    pub async fn post_query<K: AsRef<str>, V: AsRef<str>>(
        &self,
        path: &str,
        fields: &[(K, V)],
    ) -> Reply {
        self.http.post_query(&self.at(path), fields).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.http.get(self.at(path)).await
    }

    /// The names of `user`'s clients, straight from the database.
    pub async fn client_names(&self, user: &TestUser) -> Vec<String> {
        self.store
            .clients_of(user.id)
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.name)
            .collect()
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

// ---- the browser's walk through the pages --------------------------------------------------

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

/// The end of a redirect flow: the redirect to the client, and what was shown on the way.
#[derive(Debug)]
pub struct Flow {
    pub redirect: Redirect,
    pub saw_login: bool,
    pub saw_consent: bool,
    /// The consent page, if one was shown.
    pub consent_page: Option<Reply>,
}

impl Http {
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
        url.origin() == self.base().origin() && url.path().starts_with("/oauth/v2/auth")
    }
}
