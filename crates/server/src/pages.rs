//! Server-rendered pages (askama templates, compiled in). Every value is HTML-escaped by the
//! template engine; the CSRF token appears only in its form field.

use askama::Template;

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    message: &'a str,
}

#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage<'a> {
    pub csrf_token: &'a str,
    pub next: &'a str,
    pub email: &'a str,
    pub error: Option<&'a str>,
    pub client_name: Option<&'a str>,
    /// The second step: the password for `email` (else the first: the email).
    pub ask_password: bool,
    /// This data center, in the header.
    pub location: &'a str,
}

#[derive(Template)]
#[template(path = "consent.html")]
pub struct ConsentPage<'a> {
    pub client_name: &'a str,
    pub homepage: Option<&'a str>,
    pub user_email: &'a str,
    /// (scope, description)
    pub scopes: Vec<(String, String)>,
    pub offline: bool,
    pub csrf_token: &'a str,
    pub consent_id: &'a str,
    /// This data center, in the header.
    pub location: &'a str,
    /// Where the decision is posted: the authorization request's, or an enhance request's.
    pub action: &'a str,
}

/// The device flow's verification page: the user code (or, with data centers, the email that
/// says where the user signs in).
#[derive(Template)]
#[template(path = "device.html")]
pub struct DevicePage<'a> {
    pub csrf_token: &'a str,
    /// As typed, or `XXXX-XXXX` once known good.
    pub user_code: &'a str,
    pub ask_email: bool,
    /// The email step's pre-filled address (a `login_hint`), or empty.
    pub email: &'a str,
    pub error: Option<&'a str>,
}

/// The consent page for a device, with its user code to compare (RFC 8628 §5.4).
#[derive(Template)]
#[template(path = "device_consent.html")]
pub struct DeviceConsentPage<'a> {
    pub client_name: &'a str,
    pub homepage: Option<&'a str>,
    pub user_email: &'a str,
    pub user_code: &'a str,
    /// (scope, description)
    pub scopes: Vec<(String, String)>,
    pub offline: bool,
    pub csrf_token: &'a str,
    pub consent_id: &'a str,
}

/// What became of a device authorization, in plain words.
#[derive(Template)]
#[template(path = "device_done.html")]
pub struct DeviceDonePage<'a> {
    pub title: &'a str,
    pub message: &'a str,
    /// (label, URL)
    pub link: Option<(&'a str, &'a str)>,
}

pub const STYLESHEET: &str = include_str!("../static/grantd.css");
pub const SCRIPT: &str = include_str!("../static/console.js");

/// Renders a page; a template failure (which would be a bug) becomes the plain error page.
pub fn render(page: &impl Template) -> String {
    page.render().unwrap_or_else(|e| {
        tracing::error!(error = %e, "template failed");
        error("The page could not be shown.")
    })
}

pub fn error(message: &str) -> String {
    ErrorPage { message }
        .render()
        .unwrap_or_else(|_| "<!doctype html><title>Error</title><p>Error</p>".to_owned())
}
