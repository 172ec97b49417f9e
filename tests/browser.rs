//! grantd in a real browser: headless Chromium, driven over WebDriver by a chromedriver this
//! binary starts itself, against the real server (`grantd_server::serve`) on an ephemeral port
//! over a real SQLite file, with a `ManualClock` (STYLE.md §9). Tokens are then used over plain
//! HTTP the way clients do. A small "catcher" listener plays the client application: it
//! receives redirects at `/cb` and serves the pages that try to frame grantd.
//!
//! Every test starts its own chromedriver and browser (a fresh profile), so tests share no
//! state and run in parallel. Without `/usr/bin/chromium` and `/usr/bin/chromedriver` each test
//! says why and passes, unless `GRANTD_REQUIRE_BROWSER=1` (CI) makes that a failure.
//!
//! Nothing here sleeps for a fixed time: every wait polls a condition with a bounded deadline.
//! Screenshots go to `target/screenshots/` at 1440 and 360 px wide.

// `allow-unwrap-in-tests` (clippy.toml) covers the `#[test]` functions only; this crate's
// helpers (the WebDriver browser, the client application it talks to) fail the test the same
// way.
#![allow(clippy::unwrap_used, clippy::expect_used)]

// A crate root's modules live beside it; these live in tests/browser/ so that Cargo does not
// take each of them for a test binary of its own.
#[path = "browser/account.rs"]
mod account;
#[path = "browser/console.rs"]
mod console;
#[path = "browser/flow.rs"]
mod flow;
#[path = "browser/framing.rs"]
mod framing;

mod support;

use std::collections::HashMap;
use std::future::Future;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::response::Html;
use axum::routing::get;
use axum::Router;
use fantoccini::elements::Element;
use fantoccini::wd::Capabilities;
use fantoccini::{Client, ClientBuilder, Locator};
use futures::FutureExt;
use reqwest::Url;
use serde_json::{json, Value};
use tempfile::TempDir;
use tokio::net::TcpListener;

use support::database::Database;
pub use support::oauth::{
    assert_token_shape, unknown_token, TestClient, TestUser, API_DOMAIN, PASSWORD,
};
pub use support::server::TestServer;

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// How long any one wait may take before the test fails.
const WAIT: Duration = Duration::from_secs(15);
/// How often a wait looks again.
const POLL: Duration = Duration::from_millis(50);

// ---- skipping ------------------------------------------------------------------------------

/// Whether a browser test can run here. Without Chromium it prints why and answers false, or
/// fails when `GRANTD_REQUIRE_BROWSER=1` (as in CI, where a skipped suite would hide a
/// missing install step).
fn browser_available(test: &str) -> bool {
    let missing: Vec<&str> = [CHROMIUM, CHROMEDRIVER]
        .into_iter()
        .filter(|p| !Path::new(p).exists())
        .collect();
    if missing.is_empty() {
        return true;
    }
    let why = format!(
        "{} missing (Debian: apt-get install chromium chromium-driver)",
        missing.join(" and ")
    );
    if std::env::var("GRANTD_REQUIRE_BROWSER").as_deref() == Ok("1") {
        panic!("{test}: GRANTD_REQUIRE_BROWSER=1 but {why}");
    }
    // Straight to stderr, past the test harness's capture, so the skip is seen.
    let _ = writeln!(std::io::stderr(), "skipping browser test {test}: {why}");
    false
}

// ---- waiting -------------------------------------------------------------------------------

/// Polls `probe` until it yields a value; fails the test after [`WAIT`].
pub async fn until<T, F, Fut>(what: &str, probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    support::http::until(WAIT, what, probe).await
}

// ---- chromedriver --------------------------------------------------------------------------

/// A chromedriver process on a free local port, killed with everything it started (Chromium)
/// when dropped, even if the test panicked.
struct Chromedriver {
    child: Child,
    url: String,
}

impl Chromedriver {
    async fn start(log: &Path) -> Chromedriver {
        // The free port is found before chromedriver binds it, so another process may take it
        // in between; then chromedriver exits and another port is tried.
        for _ in 0..3 {
            if let Some(driver) = Chromedriver::try_start(log).await {
                return driver;
            }
        }
        panic!(
            "chromedriver exited three times: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
    }

    /// None if chromedriver exited before it was ready.
    async fn try_start(log: &Path) -> Option<Chromedriver> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log_file = std::fs::File::create(log).unwrap();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            // Its own process group, so Drop can end Chromium too if a session is left open.
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {CHROMEDRIVER}: {e}"));
        let mut driver = Chromedriver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let status_url = format!("{}/status", driver.url);
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .unwrap();
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = driver.child.try_wait().unwrap() {
                eprintln!("chromedriver on port {port} exited with {status}");
                return None;
            }
            if let Ok(response) = http.get(&status_url).send().await {
                if let Ok(body) = response.json::<Value>().await {
                    if body["value"]["ready"] == json!(true) {
                        return Some(driver);
                    }
                }
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver not ready after {WAIT:?}"
            );
            tokio::time::sleep(POLL).await;
        }
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        // Only while chromedriver is still running (not yet reaped) is its pid surely still
        // its process group's id; then end the whole group: chromedriver and any Chromium it
        // left behind.
        if let Ok(None) = self.child.try_wait() {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", self.child.id())])
                .stderr(Stdio::null())
                .status();
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// ---- the browser ---------------------------------------------------------------------------

/// One headless Chromium with a fresh profile, and the chromedriver that drives it.
pub struct Browser {
    pub client: Client,
    /// The grantd server's base URL, for relative paths.
    base: String,
    test: String,
    _driver: Chromedriver,
    _profile: TempDir,
}

impl Browser {
    async fn start(base: &str, test: &str) -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let driver = Chromedriver::start(&profile.path().join("chromedriver.log")).await;
        let data_dir = profile.path().join("chromium");
        let mut caps = Capabilities::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--disable-quic",
                    "--disable-dev-shm-usage",
                    "--hide-scrollbars",
                    "--window-size=1440,900",
                    format!("--user-data-dir={}", data_dir.display()),
                ],
            }),
        );
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&driver.url)
            .await
            .unwrap_or_else(|e| panic!("no WebDriver session: {e}"));
        Browser {
            client,
            base: base.to_owned(),
            test: test.to_owned(),
            _driver: driver,
            _profile: profile,
        }
    }

    fn url_of(&self, path_or_url: &str) -> String {
        if path_or_url.starts_with('/') {
            format!("{}{path_or_url}", self.base)
        } else {
            path_or_url.to_owned()
        }
    }

    /// Opens a page (a path on the grantd server, or any URL) and waits for it to load.
    pub async fn goto(&self, path_or_url: &str) {
        self.client.goto(&self.url_of(path_or_url)).await.unwrap();
    }

    pub async fn url(&self) -> Url {
        self.client.current_url().await.unwrap()
    }

    /// Waits for an element; on time-out, fails with the page's URL and text. A lookup made
    /// while a form's submission is navigating fails ("aborted by navigation"); that counts as
    /// not found yet, not as the end of the wait.
    pub async fn wait_for(&self, css: &str) -> Element {
        let deadline = Instant::now() + WAIT;
        loop {
            match self.client.find(Locator::Css(css)).await {
                Ok(element) => return element,
                Err(e) if Instant::now() >= deadline => panic!(
                    "no {css:?} after {WAIT:?} ({e}) at {}:\n{}",
                    self.url().await,
                    self.body_text().await
                ),
                Err(_) => tokio::time::sleep(POLL).await,
            }
        }
    }

    /// Waits until nothing matches `css` (e.g. the page that had it is gone).
    pub async fn wait_gone(&self, css: &str) {
        until(&format!("{css:?} to disappear"), || async {
            let found = self.client.find_all(Locator::Css(css)).await.unwrap();
            found.is_empty().then_some(())
        })
        .await;
    }

    pub async fn find_all(&self, css: &str) -> Vec<Element> {
        self.client.find_all(Locator::Css(css)).await.unwrap()
    }

    pub async fn exists(&self, css: &str) -> bool {
        !self.find_all(css).await.is_empty()
    }

    pub async fn text(&self, css: &str) -> String {
        self.wait_for(css).await.text().await.unwrap()
    }

    pub async fn body_text(&self) -> String {
        match self.client.find(Locator::Css("body")).await {
            Ok(body) => body.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    pub async fn attr(&self, css: &str, name: &str) -> Option<String> {
        self.wait_for(css).await.attr(name).await.unwrap()
    }

    /// The current value of a form field (what the user sees, not the HTML attribute).
    pub async fn value(&self, css: &str) -> String {
        self.wait_for(css)
            .await
            .prop("value")
            .await
            .unwrap()
            .unwrap_or_default()
    }

    /// Clears a field and types `text` into it, as a user would.
    pub async fn fill(&self, css: &str, text: &str) {
        let field = self.wait_for(css).await;
        field.clear().await.unwrap();
        field.send_keys(text).await.unwrap();
        assert_eq!(self.value(css).await, text, "typing into {css}");
    }

    /// Clicks a visible element (waiting until it is shown, as JS may reveal it).
    pub async fn click(&self, css: &str) {
        let element = self.wait_for(css).await;
        until(&format!("{css:?} to be displayed"), || async {
            element.is_displayed().await.unwrap().then_some(())
        })
        .await;
        element.click().await.unwrap();
    }

    /// Clicks the tab `?tab={name}` (of a client or the account) and waits for it to open.
    pub async fn tab(&self, name: &str) {
        self.click(&format!("nav.tabs a[href$='?tab={name}']"))
            .await;
        self.wait_for(&format!(
            "nav.tabs a[aria-current=page][href$='?tab={name}']"
        ))
        .await;
    }

    /// Signs in on the login page the browser shows now, as a person does: the email, Next,
    /// then the password on the page that asks for it.
    pub async fn sign_in(&self, user: &TestUser) {
        self.wait_for("form[action='/signin'] input[name=email]")
            .await;
        self.fill("input[name=email]", &user.email).await;
        self.click("form[action='/signin'] button[type=submit]")
            .await;
        self.wait_for("form[action='/signin'] input[name=password]")
            .await;
        self.fill("input[name=password]", PASSWORD).await;
        self.click("form[action='/signin'] button[type=submit]")
            .await;
        self.wait_gone("form[action='/signin']").await;
        // Fail fast and say why when the server answers with its error page instead.
        if let Some(error) = self.find_all("main.card .error").await.first() {
            panic!(
                "signing in as {} failed at {}: {}",
                user.email,
                self.url().await,
                error.text().await.unwrap()
            );
        }
    }

    /// Opens the console, signing in on the way, and waits for it.
    pub async fn sign_in_to_console(&self, user: &TestUser) {
        self.goto("/console").await;
        self.sign_in(user).await;
        self.wait_for("a[href='/console/clients/new']").await;
    }

    pub async fn sign_out(&self) {
        self.click("form.signout button").await;
        self.wait_for("form[action='/signin']").await;
    }

    /// `Cookie:` header value with this browser's grantd session (HttpOnly, so read through
    /// WebDriver), for checks made over plain HTTP.
    pub async fn session_cookie(&self) -> String {
        let cookie = self
            .client
            .get_named_cookie("grantd_session_us")
            .await
            .expect("a grantd_session_us cookie");
        format!("grantd_session_us={}", cookie.value())
    }

    /// Resizes the viewport to `width` and the page's full height (capped), so the screenshot
    /// shows the whole page as a person at that width would scroll through it.
    async fn fit(&self, width: u32) {
        self.client.set_window_size(width, 900).await.unwrap();
        let inner = self
            .client
            .execute("return [window.innerWidth, window.innerHeight]", vec![])
            .await
            .unwrap();
        let (inner_w, inner_h) = (
            inner[0].as_u64().unwrap() as u32,
            inner[1].as_u64().unwrap() as u32,
        );
        // The window may have a frame around its viewport; make up for it.
        let (extra_w, extra_h) = (
            width.saturating_sub(inner_w),
            900u32.saturating_sub(inner_h),
        );
        let height = self
            .client
            .execute(
                "return Math.max(document.documentElement.scrollHeight, document.body.scrollHeight)",
                vec![],
            )
            .await
            .unwrap()
            .as_u64()
            .unwrap() as u32;
        let height = height.clamp(600, 2400);
        self.client
            .set_window_size(width + extra_w, height + extra_h)
            .await
            .unwrap();
        let actual = self
            .client
            .execute("return window.innerWidth", vec![])
            .await
            .unwrap();
        assert_eq!(actual, json!(width), "viewport width for the screenshot");
    }

    /// Saves `target/screenshots/{name}-{width}.png` at 1440 and 360 px wide, then restores
    /// the default window. Also checks that nothing is wider than the viewport at 360 px.
    pub async fn screenshots(&self, name: &str) {
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).unwrap();
        for width in [1440, 360] {
            self.fit(width).await;
            let png = self.client.screenshot().await.unwrap();
            std::fs::write(dir.join(format!("{name}-{width}.png")), png).unwrap();
            let overflow = self
                .client
                .execute(
                    "return document.documentElement.scrollWidth - window.innerWidth",
                    vec![],
                )
                .await
                .unwrap();
            assert!(
                overflow.as_i64().unwrap() <= 0,
                "{name} at {width} px scrolls sideways by {overflow} px ({})",
                self.test
            );
        }
        self.client.set_window_size(1440, 900).await.unwrap();
    }
}

/// `target/screenshots`, next to the `target/tmp` Cargo gives integration tests.
fn screenshot_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("screenshots")
}

// ---- the client application ----------------------------------------------------------------

/// A tiny web server on its own port: `/cb` and `/cb2` are redirect URIs that record what
/// arrives;
/// `/frames?src=URL&src=URL` is a page of another origin that puts those URLs in iframes;
/// `/plain` is an ordinary page that allows framing (the control for `/frames`).
pub struct Catcher {
    pub url: String,
    received: Arc<Mutex<Vec<String>>>,
}

impl Catcher {
    async fn start() -> Catcher {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let received: Arc<Mutex<Vec<String>>> = Arc::default();
        let router = Router::new()
            .route("/cb", get(callback))
            .route("/cb2", get(callback))
            .route("/frames", get(frames))
            .route("/plain", get(|| async { Html(PLAIN_PAGE) }))
            .with_state(received.clone());
        tokio::spawn(async move { axum::serve(listener, router).await });
        Catcher { url, received }
    }

    /// `http://127.0.0.1:PORT/cb`: a loopback redirect URI, allowed for server clients.
    pub fn redirect_uri(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// The query strings that arrived at the redirect URI, in order.
    pub fn received(&self) -> Vec<String> {
        self.received.lock().unwrap().clone()
    }
}

const PLAIN_PAGE: &str =
    "<!doctype html><title>plain</title><h1 id=plain>An ordinary page of the client app</h1>";

async fn callback(
    State(received): State<Arc<Mutex<Vec<String>>>>,
    uri: axum::http::Uri,
) -> Html<&'static str> {
    received
        .lock()
        .unwrap()
        .push(uri.query().unwrap_or_default().to_owned());
    Html("<!doctype html><title>callback</title><h1 id=callback>The app got your answer</h1>")
}

/// Each iframe marks itself loaded (the load event fires for a blocked frame too), so a test
/// can wait for every frame to settle before it looks inside.
async fn frames(Query(query): Query<Vec<(String, String)>>) -> Html<String> {
    let mut page = String::from("<!doctype html><title>framer</title><h1>Framed</h1>\n");
    for (i, (_, src)) in query.iter().filter(|(k, _)| k == "src").enumerate() {
        let src = src.replace('&', "&amp;").replace('"', "&quot;");
        page.push_str(&format!(
            "<iframe id=f{i} src=\"{src}\" width=320 height=240 onload=\"this.dataset.loaded=1\"></iframe>\n"
        ));
    }
    Html(page)
}

// ---- one test's world ----------------------------------------------------------------------

/// The server, the client app and a browser for one test.
pub struct Env {
    pub server: TestServer,
    pub catcher: Catcher,
    pub browser: Browser,
}

impl Env {
    /// Runs `body` with a fresh server, catcher and browser, or skips (see
    /// [`browser_available`]). The browser session is closed afterwards whatever happened,
    /// then the test's panic, if any, carries on.
    pub async fn run(test: &str, body: impl AsyncFnOnce(&Env)) {
        if !browser_available(test) {
            return;
        }
        let server = TestServer::start(Database::sqlite(), |_| {}).await;
        let catcher = Catcher::start().await;
        let browser = Browser::start(&server.url, test).await;
        let env = Env {
            server,
            catcher,
            browser,
        };
        let outcome = AssertUnwindSafe(body(&env)).catch_unwind().await;
        let Env { browser, .. } = env;
        let Browser {
            client,
            _driver: driver,
            ..
        } = browser;
        // Bounded: a wedged browser must not hang the suite; the driver guard ends it anyway.
        let _ = tokio::time::timeout(WAIT, client.close()).await;
        drop(driver);
        if let Err(panic) = outcome {
            std::panic::resume_unwind(panic);
        }
    }

    /// Parses the query of a redirect that reached the catcher.
    pub fn params(query: &str) -> HashMap<String, String> {
        let mut params = HashMap::new();
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            let previous = params.insert(k.clone().into_owned(), v.into_owned());
            assert!(previous.is_none(), "{k} repeated in {query}");
        }
        params
    }

    /// Waits for the browser to land on the catcher's `path` and returns that redirect's query
    /// (as the browser shows it, and as the app received it: they must agree).
    pub async fn landed_at(&self, path: &str) -> HashMap<String, String> {
        let expected = self.catcher.redirect_uri(path);
        let url = until(&format!("the browser to reach {expected}"), || async {
            let url = self.browser.url().await;
            url.as_str().starts_with(&expected).then_some(url)
        })
        .await;
        self.browser.wait_for("#callback").await;
        let query = url.query().unwrap_or_default().to_owned();
        assert_eq!(
            self.catcher.received().last(),
            Some(&query),
            "the app received what the browser shows"
        );
        Env::params(&query)
    }
}
