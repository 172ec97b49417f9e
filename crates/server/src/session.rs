//! The browser session, shared by the OAuth pages (authorize, consent) and the console: who is
//! signed in, the CSRF defences of every form (the session's token, Fetch Metadata and
//! Origin), and the login page that stands in for any page until someone is. Kept apart so
//! that `oauth` and `console` each depend on it, never on each other.

use axum::extract::FromRequestParts;
use axum::http::header::{LOCATION, ORIGIN, SET_COOKIE, USER_AGENT};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};

use grantd_core::secret::SessionToken;
use grantd_core::Timestamp;
use grantd_store::SessionVerbs;
use grantd_store::{StoreError, User};

use crate::app::App;
use crate::cookies::Cookie;
use crate::error::ErrorPage;
use crate::pages::{self, LoginPage};
use crate::params::Params;

/// The signed-in user of this browser, with the session token that proves it.
pub async fn current_session(
    app: &App,
    headers: &HeaderMap,
    now: Timestamp,
) -> Result<Option<(SessionToken, User)>, StoreError> {
    let Some(token) = Cookie::Session.read(headers, &app.settings) else {
        return Ok(None);
    };
    Ok(app
        .store
        .session_user(&token.hash(), now)
        .await?
        .map(|user| (token, user)))
}

/// A form POST from another site, by Fetch Metadata or Origin (OWASP CSRF cheat sheet). This
/// backs up the CSRF token; it never replaces it.
pub fn is_cross_site(headers: &HeaderMap, app: &App) -> bool {
    let fetch_site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
    if fetch_site.is_some_and(|site| !matches!(site, "same-origin" | "none")) {
        return true;
    }
    match headers.get(ORIGIN).map(|v| v.as_bytes()) {
        None => false,
        Some(origin) if origin == app.settings.public_url.as_bytes() => false,
        // Under `Referrer-Policy: no-referrer` browsers send `Origin: null` even on same-origin
        // POSTs; then only Fetch Metadata can vouch for the request.
        Some(b"null") => fetch_site != Some("same-origin"),
        Some(_) => true,
    }
}

/// Only same-origin paths may follow a login (T-080): `/x`, never `//host` or `/\host`.
pub fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(next)
            if next.starts_with('/')
                && !next.starts_with("//")
                && !next.starts_with("/\\")
                && next.len() <= 4096
                && !next.bytes().any(|b| b.is_ascii_control()) =>
        {
            next
        }
        _ => "/",
    }
}

/// Which step of sign-in a login page is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ask {
    /// The email, and a Next button.
    Email,
    /// The password, for the email shown.
    Password,
}

/// Renders the login page's first step (the email), creating the pre-session that binds its
/// CSRF token if needed.
pub fn login_page(
    app: &App,
    headers: &HeaderMap,
    next: &str,
    email: &str,
    error: Option<&str>,
    client_name: Option<&str>,
) -> Response {
    render_login(app, headers, Ask::Email, next, email, error, client_name)
}

/// Renders the login page's second step: the password for `email`.
pub fn password_page(
    app: &App,
    headers: &HeaderMap,
    next: &str,
    email: &str,
    error: Option<&str>,
    client_name: Option<&str>,
) -> Response {
    render_login(app, headers, Ask::Password, next, email, error, client_name)
}

fn render_login(
    app: &App,
    headers: &HeaderMap,
    ask: Ask,
    next: &str,
    email: &str,
    error: Option<&str>,
    client_name: Option<&str>,
) -> Response {
    let pre = PreSession::of(app, headers);
    let csrf_token = pre.csrf_token();
    let page = LoginPage {
        csrf_token: &csrf_token,
        next: safe_next(Some(next)),
        email,
        error,
        client_name,
        ask_password: ask == Ask::Password,
        location: &app.settings.location,
    };
    let mut response = Html(pages::render(&page)).into_response();
    pre.set_cookie(app, &mut response);
    response
}

/// What binds the CSRF token of a form shown before sign-in (the login form, the device
/// page's): the browser's pre-session, or a new one that the page's response must set.
pub struct PreSession {
    token: SessionToken,
    is_new: bool,
}

impl PreSession {
    pub fn of(app: &App, headers: &HeaderMap) -> Self {
        match Cookie::PreSession.read(headers, &app.settings) {
            Some(token) => Self {
                token,
                is_new: false,
            },
            None => Self {
                token: SessionToken::generate(),
                is_new: true,
            },
        }
    }

    pub fn csrf_token(&self) -> String {
        self.token.csrf_token()
    }

    /// Gives the browser a new pre-session's cookie; an existing one is left as it is.
    pub fn set_cookie(&self, app: &App, response: &mut Response) {
        if !self.is_new {
            return;
        }
        let lifetime = app.settings.limits.session_lifetime_secs;
        let cookie = Cookie::PreSession.set(&self.token, lifetime, &app.settings);
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            response.headers_mut().append(SET_COOKIE, value);
        }
    }
}

/// A request from a signed-in browser; otherwise the login page, returning here afterwards.
pub struct SignedIn {
    pub session: SessionToken,
    pub user: User,
    pub now: Timestamp,
    /// This data center's location, for the pages' header.
    pub location: String,
}

impl FromRequestParts<App> for SignedIn {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Self::Rejection> {
        let now = app.clock.now();
        match current_session(app, &parts.headers, now).await {
            Ok(Some((session, user))) => Ok(SignedIn {
                session,
                user,
                now,
                location: app.settings.location.clone(),
            }),
            Ok(None) => {
                let next = parts
                    .uri
                    .path_and_query()
                    .map_or("/console", |p| p.as_str());
                let next = if parts.method == axum::http::Method::GET {
                    next
                } else {
                    "/console"
                };
                Err(login_page(app, &parts.headers, next, "", None, None))
            }
            Err(e) => Err(ErrorPage::from(e).into_response()),
        }
    }
}

impl SignedIn {
    pub fn csrf_token(&self) -> String {
        self.session.csrf_token()
    }

    /// CSRF defence for every state-changing form: the session's token, and not cross-site.
    pub fn check_form(
        &self,
        app: &App,
        headers: &HeaderMap,
        params: &Params,
    ) -> Result<(), ErrorPage> {
        let token = params.text("csrf_token");
        if self.session.csrf_matches(token) && !is_cross_site(headers, app) {
            Ok(())
        } else {
            Err(ErrorPage::forbidden(
                "This form has expired or came from another site. Reload the page and try again.",
            ))
        }
    }
}

/// The browser's own description of itself, shortened, for the list of sessions.
pub fn user_agent(headers: &HeaderMap) -> String {
    headers
        .get(USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("Unknown browser")
        .chars()
        .take(200)
        .collect()
}

/// 303 to a same-origin path after a successful POST (post/redirect/get), or to a configured
/// peer's page (`home_sign_in_url`).
pub fn see_other(path: &str) -> Response {
    match HeaderValue::from_str(path) {
        Ok(location) => (StatusCode::SEE_OTHER, [(LOCATION, location)]).into_response(),
        Err(_) => ErrorPage::bad_request("Bad redirect.").into_response(),
    }
}

/// A consent page's Accept or Reject (authorization, device, extra scopes), once checked: sent
/// by the signed-in browser whose session the form's CSRF token belongs to, from this site.
pub struct ConsentAnswer {
    pub session: SessionToken,
    pub user: User,
    pub consent_id: String,
    pub accept: bool,
}

impl ConsentAnswer {
    /// `forbidden` is the page's message for a form from elsewhere or an ended session.
    pub async fn read(
        app: &App,
        headers: &HeaderMap,
        params: &Params,
        now: Timestamp,
        forbidden: &'static str,
    ) -> Result<Self, ErrorPage> {
        let csrf = params.text("csrf_token");
        let (session, user) = match current_session(app, headers, now).await? {
            Some((token, user)) if token.csrf_matches(csrf) && !is_cross_site(headers, app) => {
                (token, user)
            }
            _ => return Err(ErrorPage::forbidden(forbidden)),
        };
        let accept = match params.get("decision").ok().flatten() {
            Some("accept") => true,
            Some("reject") => false,
            _ => return Err(ErrorPage::bad_request("Choose Accept or Reject.")),
        };
        Ok(Self {
            session,
            user,
            consent_id: params.text("consent_id").to_owned(),
            accept,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t080_only_same_origin_paths_follow_a_login() {
        for bad in [
            "//evil.test",
            "/\\evil.test",
            "https:evil.test",
            "https://evil.test",
            "",
            "/a\r\nb",
        ] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad:?}");
        }
        assert_eq!(safe_next(Some("/oauth/v2/auth?x=1")), "/oauth/v2/auth?x=1");
    }
}
