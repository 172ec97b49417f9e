//! The one HTTP client of the tests ([`Http`]) and the one answer type ([`Reply`]): a client
//! that never follows a redirect (every hop is checked), plain or keeping cookies as a browser
//! does, and an answer read completely, with how long it took. Forms and redirects are read
//! from replies here; what an OAuth answer must contain is `oauth.rs`'s business.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::cookie::{CookieStore, Jar};
use reqwest::header::HeaderMap;
use reqwest::redirect::Policy;
use reqwest::{IntoUrl, RequestBuilder, Url};
use scraper::{Html, Selector};
use serde_json::Value;

/// How long one request may take before it fails the test.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A client that follows no redirects; made with [`Http::browser`], it also keeps cookies (for
/// a host whatever the port, as browsers do, so a session moves from node to node).
#[derive(Clone)]
pub struct Http {
    /// The reqwest client, for requests the helpers below do not make.
    pub client: reqwest::Client,
    jar: Option<Arc<Jar>>,
    /// The authorization server a browser signs in to: where [`Http::cookie`] looks.
    base: Option<Url>,
}

impl Http {
    /// No cookies: a client application's backend, a script, `curl`.
    pub fn new() -> Http {
        Http {
            client: builder().build().unwrap(),
            jar: None,
            base: None,
        }
    }

    /// A browser of the authorization server at `base`: it keeps cookies.
    pub fn browser(base: &str) -> Http {
        let jar = Arc::new(Jar::default());
        Http {
            client: builder().cookie_provider(jar.clone()).build().unwrap(),
            jar: Some(jar),
            base: Some(Url::parse(base).unwrap()),
        }
    }

    /// A browser whose connections come from `local` (another loopback address such as
    /// 127.0.0.2), so the server sees another client address.
    pub fn browser_from(base: &str, local: std::net::IpAddr) -> Http {
        let jar = Arc::new(Jar::default());
        Http {
            client: builder()
                .cookie_provider(jar.clone())
                .local_address(local)
                .build()
                .unwrap(),
            jar: Some(jar),
            base: Some(Url::parse(base).unwrap()),
        }
    }

    /// The server this browser belongs to.
    pub fn base(&self) -> &Url {
        self.base.as_ref().expect("a browser (Http::browser)")
    }

    pub async fn get(&self, url: impl IntoUrl) -> Reply {
        send(self.client.get(url)).await
    }

    /// POST an `application/x-www-form-urlencoded` body.
    pub async fn post_form<K: AsRef<str>, V: AsRef<str>>(
        &self,
        url: impl IntoUrl,
        fields: &[(K, V)],
    ) -> Reply {
        send(self.client.post(url).form(&pairs(fields))).await
    }

    /// POST a urlencoded body with HTTP Basic authentication.
    pub async fn post_form_basic<K: AsRef<str>, V: AsRef<str>>(
        &self,
        url: impl IntoUrl,
        user: &str,
        password: &str,
        fields: &[(K, V)],
    ) -> Reply {
        let request = self
            .client
            .post(url)
            .header("Authorization", basic(user, password))
            .form(&pairs(fields));
        send(request).await
    }

    /// POST a `multipart/form-data` body, as Zoho's Node SDK does.
    pub async fn post_multipart<K: AsRef<str>, V: AsRef<str>>(
        &self,
        url: impl IntoUrl,
        fields: &[(K, V)],
    ) -> Reply {
        let mut form = reqwest::multipart::Form::new();
        for (k, v) in fields {
            form = form.text(k.as_ref().to_owned(), v.as_ref().to_owned());
        }
        send(self.client.post(url).multipart(form)).await
    }

    /// POST with the parameters in the query string and an empty body, as Zoho's docs show.
    pub async fn post_query<K: AsRef<str>, V: AsRef<str>>(
        &self,
        url: &str,
        fields: &[(K, V)],
    ) -> Reply {
        let url = Url::parse_with_params(url, &pairs(fields)).unwrap();
        send(self.client.post(url)).await
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
        let mut fields = pairs(&form.fields);
        fields.extend_from_slice(extra);
        let mut request = self.client.post(form.action.clone()).form(&fields);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        send(request).await
    }

    /// Fills and submits the login form on `page` (the email page or the password page) with
    /// the email and the password at once, as a script does; the answer is returned as is.
    pub async fn sign_in_on(&self, page: &Reply, email: &str, password: &str) -> Reply {
        assert!(
            page.is_login_page(),
            "not the login page: {} {}",
            page.status,
            page.body
        );
        let mut form = page.form_with("email");
        form.csrf_token();
        assert!(
            form.get("next").is_some(),
            "the login form has no next field"
        );
        form.set("email", email).set("password", password);
        self.submit(&form, &[]).await
    }

    /// The value of a cookie the browser would send to its server.
    pub fn cookie(&self, name: &str) -> Option<String> {
        let jar = self.jar.as_ref().expect("a browser (Http::browser)");
        let header = jar.cookies(self.base())?;
        header
            .to_str()
            .unwrap()
            .split(';')
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.to_owned())
            .filter(|v| !v.is_empty())
    }

    /// The session cookie of the data center `us` (every test server's unless told otherwise).
    pub fn session(&self) -> Option<String> {
        self.session_in("us")
    }

    /// The session cookie of the data center `location` (cookie names carry it).
    pub fn session_in(&self, location: &str) -> Option<String> {
        self.cookie(&format!("grantd_session_{location}"))
    }

    /// Plants a cookie, as an attacker or an old tab would.
    pub fn plant(&self, name: &str, value: &str) {
        let jar = self.jar.as_ref().expect("a browser (Http::browser)");
        jar.add_cookie_str(&format!("{name}={value}; Path=/"), self.base());
    }
}

impl Default for Http {
    fn default() -> Self {
        Http::new()
    }
}

fn builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .timeout(REQUEST_TIMEOUT)
}

fn pairs<K: AsRef<str>, V: AsRef<str>>(fields: &[(K, V)]) -> Vec<(&str, &str)> {
    fields
        .iter()
        .map(|(k, v)| (k.as_ref(), v.as_ref()))
        .collect()
}

/// `Basic base64(user:password)`.
pub fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

/// Sends `request` and reads the answer; a failed request fails the test.
pub async fn send(request: RequestBuilder) -> Reply {
    Reply::of(request)
        .await
        .unwrap_or_else(|e| panic!("request failed: {e}"))
}

/// Polls `probe` until it yields a value, every 50 ms; fails the test after `limit`.
pub async fn until<T, F, Fut>(limit: Duration, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
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
    /// From sending to the end of the body (zero when [`Reply::read`] got the response only).
    pub elapsed: Duration,
}

impl Reply {
    /// Sends `request` and reads the answer, timed; the error (with when it came) if there was
    /// no complete answer, for callers that expect failures.
    pub async fn of(request: RequestBuilder) -> Result<Reply, String> {
        let start = Instant::now();
        let response = request
            .send()
            .await
            .map_err(|e| format!("{e:?} after {:?}", start.elapsed()))?;
        let mut reply = Reply::try_read(response)
            .await
            .map_err(|e| format!("{e} after {:?}", start.elapsed()))?;
        reply.elapsed = start.elapsed();
        Ok(reply)
    }

    /// Reads a response sent elsewhere (a body that cannot be read counts as empty).
    pub async fn read(response: reqwest::Response) -> Reply {
        let (url, status, headers) = Reply::head(&response);
        let body = response.text().await.unwrap_or_default();
        Reply {
            url,
            status,
            headers,
            body,
            elapsed: Duration::ZERO,
        }
    }

    async fn try_read(response: reqwest::Response) -> Result<Reply, String> {
        let (url, status, headers) = Reply::head(&response);
        let body = response.text().await.map_err(|e| format!("{e:?}"))?;
        Ok(Reply {
            url,
            status,
            headers,
            body,
            elapsed: Duration::ZERO,
        })
    }

    fn head(response: &reqwest::Response) -> (Url, u16, HeaderMap) {
        (
            response.url().clone(),
            response.status().as_u16(),
            response.headers().clone(),
        )
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

    /// The status and the body, which must be JSON.
    pub fn status_and_json(&self) -> (u16, Value) {
        (self.status, self.json())
    }

    /// The body as JSON, if it is JSON.
    pub fn try_json(&self) -> Option<Value> {
        serde_json::from_str(&self.body).ok()
    }

    // ---- HTML ------------------------------------------------------------------------------

    pub fn html(&self) -> Html {
        Html::parse_document(&self.body)
    }

    /// Has an `<input name=...>` or `<button name=...>`.
    pub fn has_field(&self, name: &str) -> bool {
        self.html().select(&field(name)).next().is_some()
    }

    /// A sign-in page: either step (the email page with its Next button, or the password page
    /// for an email), each a form posting to `/signin` with an `email` field.
    pub fn is_login_page(&self) -> bool {
        let form = Selector::parse("form[action=\"/signin\"] input[name=\"email\"]").unwrap();
        self.status == 200 && self.html().select(&form).next().is_some()
    }

    /// The email step of sign-in: an email field, no password field yet.
    pub fn is_email_page(&self) -> bool {
        self.is_login_page() && !self.has_field("password")
    }

    /// The password step of sign-in, for the email it names.
    pub fn is_password_page(&self) -> bool {
        self.is_login_page() && self.has_field("password")
    }

    pub fn is_consent_page(&self) -> bool {
        self.status == 200 && self.has_field("decision")
    }

    /// The first `<form>` holding a field `name`, with its action resolved and every named
    /// `<input>` (hidden ones included) with its value. Submit buttons are left to the caller.
    pub fn form_with(&self, name: &str) -> Form {
        let html = self.html();
        let forms = Selector::parse("form").unwrap();
        let fields = field(name);
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

/// `input[name=...]` or `button[name=...]`.
fn field(name: &str) -> Selector {
    Selector::parse(&format!("input[name=\"{name}\"], button[name=\"{name}\"]")).unwrap()
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

    /// The same form posted to the same path on another server (another node of a cluster).
    pub fn sent_to(&self, base: &str) -> Form {
        let mut action = Url::parse(base).unwrap().join(self.action.path()).unwrap();
        action.set_query(self.action.query());
        Form {
            action,
            fields: self.fields.clone(),
        }
    }

    pub fn csrf_token(&self) -> &str {
        let token = self
            .get("csrf_token")
            .expect("every form carries a csrf_token");
        assert!(token.len() >= 32, "csrf_token too short: {token:?}");
        token
    }
}

/// A redirect to a client's redirect URI, with its query parsed.
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

    /// The code, which must have a token's shape.
    pub fn code(&self) -> String {
        let code = self
            .param("code")
            .unwrap_or_else(|| panic!("no code in {}", self.raw))
            .to_owned();
        super::oauth::assert_token_shape(&code);
        code
    }

    pub fn error(&self) -> Option<&str> {
        self.param("error")
    }
}
