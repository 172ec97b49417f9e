//! OAuth parameters from wherever clients put them: the query string, an urlencoded body or a
//! multipart body (CONTRACT.md). Bounded in count and size, strict about duplicates (RFC 6749
//! §3.1, §3.2), about bodies that are not forms (T-086) and about control characters
//! (CONTRACT.md: 400 `invalid_request`, before anything reaches the store). A request whose
//! parameters cannot be read is answered in its endpoint's format: JSON on the OAuth API, the
//! error page on browser pages.

use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Request};
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};

use grantd_core::OAuthError;

use crate::app::App;
use crate::error::{ApiError, ErrorPage};

/// More than any real client sends; a flood of fields is refused before it costs anything.
const MAX_PARAMS: usize = 64;
/// Longer than any real value (a `state`, a redirect URI); much shorter than the body limit.
const MAX_VALUE_LEN: usize = 4096;

#[derive(Debug, Default)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    pub fn from_query(query: Option<&str>) -> Result<Params, OAuthError> {
        let mut params = Params::default();
        if let Some(query) = query {
            params.extend_urlencoded(query.as_bytes())?;
        }
        Ok(params)
    }

    /// The value of `name`; an empty value counts as absent (RFC 6749 §3.1), a repeated one is
    /// an error.
    pub fn get(&self, name: &'static str) -> Result<Option<&str>, OAuthError> {
        let mut found = self.pairs.iter().filter(|(n, _)| n == name);
        let first = found.next();
        if found.next().is_some() {
            return Err(OAuthError::InvalidRequest(duplicate_message(name)));
        }
        Ok(first.map(|(_, v)| v.as_str()).filter(|v| !v.is_empty()))
    }

    /// A browser form's field as text: absent, empty or repeated all read as "" (forms are
    /// checked for what they must contain after this).
    pub fn text(&self, name: &'static str) -> &str {
        self.get(name).ok().flatten().unwrap_or("")
    }

    /// Every value of a field that may repeat (a form's list of redirect URIs).
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.pairs
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Like `get`, but absence is an error too.
    pub fn require(&self, name: &'static str) -> Result<&str, OAuthError> {
        self.get(name)?
            .ok_or(OAuthError::InvalidRequest(missing_message(name)))
    }

    fn push(&mut self, name: String, value: String) -> Result<(), OAuthError> {
        if self.pairs.len() >= MAX_PARAMS {
            return Err(OAuthError::InvalidRequest("too many parameters"));
        }
        if value.len() > MAX_VALUE_LEN || name.len() > 64 {
            return Err(OAuthError::InvalidRequest("a parameter is too long"));
        }
        // No field's grammar allows a control character (C0, DEL or C1; the forms have no
        // multi-line fields), and PostgreSQL refuses NUL outright: refused here, once, for all.
        if name.chars().chain(value.chars()).any(char::is_control) {
            return Err(OAuthError::InvalidRequest(
                "parameters must not contain control characters",
            ));
        }
        self.pairs.push((name, value));
        Ok(())
    }

    fn extend_urlencoded(&mut self, input: &[u8]) -> Result<(), OAuthError> {
        for (name, value) in form_urlencoded::parse(input) {
            // The parser replaces invalid UTF-8 with U+FFFD; such input is refused, not guessed at.
            if name.contains('\u{FFFD}') || value.contains('\u{FFFD}') {
                return Err(OAuthError::InvalidRequest("parameters must be UTF-8"));
            }
            self.push(name.into_owned(), value.into_owned())?;
        }
        Ok(())
    }
}

/// Parameters that cannot be read: on the API in the server's default dialect (the client, and
/// so its dialect, is not known yet), on a browser page as the error page.
#[derive(Debug)]
pub enum ParamsRejection {
    Api(ApiError),
    Page(ErrorPage),
}

impl IntoResponse for ParamsRejection {
    fn into_response(self) -> Response {
        match self {
            ParamsRejection::Api(error) => error.into_response(),
            ParamsRejection::Page(page) => page.into_response(),
        }
    }
}

impl FromRequest<App> for Params {
    type Rejection = ParamsRejection;

    async fn from_request(req: Request, app: &App) -> Result<Self, Self::Rejection> {
        let page = is_page(req.uri().path());
        let dialect = app.settings.default_dialect;
        Params::read(req, app).await.map_err(|e| {
            if page {
                ParamsRejection::Page(ErrorPage::bad_request(
                    "This request could not be read: it is malformed, too large, or contains control characters.",
                ))
            } else {
                ParamsRejection::Api(ApiError::new(e, dialect))
            }
        })
    }
}

/// The OAuth API lives under `/oauth/`, except the authorization endpoint, the device flow's
/// verification page and their consent forms, which are pages like everything outside
/// `/oauth/` (routes.rs).
fn is_page(path: &str) -> bool {
    !path.starts_with("/oauth/")
        || path == "/oauth/v2/auth"
        || path.starts_with("/oauth/v2/auth/")
        || path == "/oauth/v3/device"
        || path == "/oauth/v3/device/consent"
}

impl Params {
    async fn read(req: Request, state: &App) -> Result<Self, OAuthError> {
        let mut params = Params::from_query(req.uri().query())?;
        let content_type = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            });
        match content_type.as_deref() {
            Some("application/x-www-form-urlencoded") => {
                let body = Bytes::from_request(req, state).await.map_err(body_error)?;
                params.extend_urlencoded(&body)?;
            }
            Some("multipart/form-data") => {
                let mut multipart = Multipart::from_request(req, state)
                    .await
                    .map_err(|_| OAuthError::InvalidRequest("malformed multipart body"))?;
                while let Some(field) = multipart
                    .next_field()
                    .await
                    .map_err(|_| OAuthError::InvalidRequest("malformed multipart body"))?
                {
                    let name = field.name().unwrap_or_default().to_owned();
                    let value = field
                        .text()
                        .await
                        .map_err(|_| OAuthError::InvalidRequest("malformed multipart body"))?;
                    params.push(name, value)?;
                }
            }
            other => {
                // No body at all is fine (parameters in the query, as Zoho's docs show); any
                // other body is refused rather than ignored.
                let body = Bytes::from_request(req, state).await.map_err(body_error)?;
                if !body.is_empty() || other.is_some_and(|t| t.contains("json")) {
                    return Err(OAuthError::InvalidRequest(
                        "the body must be application/x-www-form-urlencoded or multipart/form-data",
                    ));
                }
            }
        }
        Ok(params)
    }
}

fn body_error(_: axum::extract::rejection::BytesRejection) -> OAuthError {
    OAuthError::InvalidRequest("the request body is too large or could not be read")
}

/// Error texts are `'static` so that a request can never put its own bytes into a response.
fn duplicate_message(name: &str) -> &'static str {
    match name {
        "client_id" => "client_id is repeated",
        "client_secret" => "client_secret is repeated",
        "code" => "code is repeated",
        "redirect_uri" => "redirect_uri is repeated",
        "grant_type" => "grant_type is repeated",
        "refresh_token" => "refresh_token is repeated",
        "scope" => "scope is repeated",
        "state" => "state is repeated",
        "token" => "token is repeated",
        _ => "a parameter is repeated",
    }
}

fn missing_message(name: &str) -> &'static str {
    match name {
        "client_id" => "client_id is required",
        "code" => "code is required",
        "grant_type" => "grant_type is required",
        "refresh_token" => "refresh_token is required",
        "response_type" => "response_type is required",
        "scope" => "scope is required",
        "token" => "token is required",
        _ => "a required parameter is missing",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_is_absent_and_duplicates_are_errors() {
        let params = Params::from_query(Some("a=&b=1&b=2&c=x%20y")).unwrap_or_default();
        assert_eq!(params.get("a"), Ok(None));
        assert!(params.get("b").is_err());
        assert_eq!(params.get("c"), Ok(Some("x y")));
    }

    #[test]
    fn t087_bad_encoding_is_refused_or_decoded() {
        assert!(Params::from_query(Some("scope=%ff%fe")).is_err());
        let plus = Params::from_query(Some("scope=A.b.READ+A.c.READ")).unwrap_or_default();
        assert_eq!(plus.get("scope"), Ok(Some("A.b.READ A.c.READ")));
        let truncated = Params::from_query(Some("scope=%2")).unwrap_or_default();
        assert_eq!(truncated.get("scope"), Ok(Some("%2")));
    }

    #[test]
    fn control_characters_are_refused_in_names_and_values() {
        for byte in (0x00..0x20).chain([0x7f]) {
            let encoded = format!("%{byte:02X}");
            for query in [format!("scope=a{encoded}b"), format!("client{encoded}id=x")] {
                assert!(Params::from_query(Some(&query)).is_err(), "{query}");
            }
        }
        // C1 controls (U+0080..U+009F), as UTF-8.
        assert!(Params::from_query(Some("state=%C2%85")).is_err());
        // Everything else printable stays, however unusual.
        let fine = Params::from_query(Some("name=Zo%C3%AB+%E2%9C%93")).unwrap_or_default();
        assert_eq!(fine.get("name"), Ok(Some("Zoë ✓")));
    }

    #[test]
    fn pages_and_api_endpoints_are_told_apart_by_path() {
        for page in [
            "/signin",
            "/console/clients",
            "/account/password",
            "/oauth/v2/auth",
        ] {
            assert!(is_page(page), "{page}");
        }
        assert!(is_page("/oauth/v2/auth/consent"));
        assert!(is_page("/oauth/v3/device"));
        assert!(is_page("/oauth/v3/device/consent"));
        for api in [
            "/oauth/v3/device/code",
            "/oauth/v3/device/token",
            "/oauth/v2/device_authorization",
            "/oauth/v2/token",
            "/oauth/v2/token/revoke",
            "/oauth/v2/introspect",
        ] {
            assert!(!is_page(api), "{api}");
        }
    }

    #[test]
    fn t083_too_many_fields() {
        let many: Vec<String> = (0..100).map(|i| format!("f{i}=1")).collect();
        assert!(Params::from_query(Some(&many.join("&"))).is_err());
    }
}
