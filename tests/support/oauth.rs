//! What the tests know of OAuth on the wire: test users and clients, the token requests as
//! Zoho's SDKs send them, and what a right answer is (a token response's exact shape,
//! CONTRACT.md's error table by dialect, the authorization endpoint's error page).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use reqwest::Url;
use serde_json::Value;
use sha2::{Digest, Sha256};

use grantd_core::{ClientType, Dialect};

use super::http::Reply;

/// Every test user's password.
pub const PASSWORD: &str = "correct horse battery staple";
/// `{api_domain}` of every in-process test server: never the server's own URL, never Zoho's.
pub const API_DOMAIN: &str = "https://api.test.example";
/// A well-formed PKCE verifier (RFC 7636 §4.1: 43 to 128 unreserved characters).
pub const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk.grantd~tests";
pub const THROTTLE_DESCRIPTION: &str =
    "You have made too many requests continuously. Please try again after some time.";

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
    pub name: String,
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

    /// A code exchange as Zoho's Python SDK sends it (urlencoded, credentials in the body),
    /// with the `redirect_uri` if the client has one and [`VERIFIER`] for public clients.
    pub fn exchange_fields(&self, code: &str) -> Vec<(&'static str, String)> {
        let mut fields = self.body_auth();
        fields.push(("grant_type", "authorization_code".into()));
        fields.push(("code", code.into()));
        if !self.redirect_uri.is_empty() {
            fields.push(("redirect_uri", self.redirect_uri.clone()));
        }
        if self.kind.is_public() {
            fields.push(("code_verifier", VERIFIER.into()));
        }
        fields
    }

    /// A refresh as Zoho's Python SDK sends it.
    pub fn refresh_fields(&self, refresh_token: &str) -> Vec<(&'static str, String)> {
        let mut fields = self.body_auth();
        fields.push(("grant_type", "refresh_token".into()));
        fields.push(("refresh_token", refresh_token.into()));
        fields
    }

    /// RFC 7662 introspection, the caller authenticated in the body.
    pub fn introspect_fields(&self, token: &str) -> Vec<(&'static str, String)> {
        let mut fields = self.body_auth();
        fields.push(("token", token.into()));
        fields
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

    /// The names of the response's fields, sorted.
    pub fn fields(&self) -> Vec<&str> {
        let mut keys: Vec<&str> = self
            .body
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort();
        keys
    }
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

impl Reply {
    /// A successful token response (CONTRACT.md) from an in-process test server: 200,
    /// no-store, the exact fields and shapes.
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

    /// A successful token response; its access token.
    pub fn access_token(&self) -> String {
        assert_eq!(self.status, 200, "token request failed: {}", self.body);
        self.json()["access_token"].as_str().unwrap().to_owned()
    }

    /// A successful token response; its refresh token, which must be there.
    pub fn refresh_token(&self) -> String {
        assert_eq!(self.status, 200, "token request failed: {}", self.body);
        self.json()["refresh_token"]
            .as_str()
            .unwrap_or_else(|| panic!("no refresh token: {}", self.body))
            .to_owned()
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

    /// RFC 6749 `invalid_grant` in the standard dialect: the status and the name only.
    pub fn assert_invalid_grant(&self) {
        assert_eq!(
            (self.status, self.json()["error"].as_str()),
            (400, Some("invalid_grant")),
            "{}",
            self.body
        );
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
}

/// `{base}/oauth/v2/auth?response_type=code&client_id&scope&redirect_uri` plus `extra`;
/// public clients get an S256 challenge for [`VERIFIER`] unless `extra` names one.
pub fn auth_url(base: &str, client: &TestClient, scope: &str, extra: &[(&str, &str)]) -> String {
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
    Url::parse_with_params(&format!("{base}/oauth/v2/auth"), &params)
        .unwrap()
        .to_string()
}

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
