//! The first step of sign-in: where an email signs in (CONTRACT.md "Data centers"). A local
//! user is asked for the password here; an email a peer knows is sent to that DC, with the
//! same request and `login_hint`; a user whose remembered home DC does not answer is told so by
//! name (503); an email no one knows is asked for a password like any other, and fails later
//! with the generic answer (T-071). The same routing serves `login_hint` on `/oauth/v2/auth`
//! and `/`. Every redirect goes to a configured peer's URL, never to one from the request.

use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};

use grantd_core::datacenter::home_sign_in_url;
use grantd_core::oidc;
use grantd_store::{AccountVerbs, StoreError};

use crate::app::App;
use crate::error::ErrorPage;
use crate::pages;
use crate::peers::{find_home, Home};
use crate::session::{login_page, password_page, safe_next, see_other};

/// Longer than any email address (RFC 5321 §4.5.3.1): looked up nowhere.
const MAX_EMAIL_LEN: usize = 254;

const ENTER_EMAIL: &str = "Enter your email address.";

/// The next page for `email`, typed on the email page or given as `login_hint`; `next` is
/// where sign-in continues (made safe again here: T-080).
pub async fn route_email(
    app: &App,
    headers: &HeaderMap,
    next: &str,
    email: &str,
    client_name: Option<&str>,
) -> Response {
    let next = safe_next(Some(next));
    if email.is_empty() {
        return login_page(app, headers, next, "", Some(ENTER_EMAIL), client_name);
    }
    match sign_in_at(app, email).await {
        Ok(SignInAt::Here) => password_page(app, headers, next, email, None, client_name),
        Ok(SignInAt::Peer(location)) => match app.settings.datacenters.get(&location) {
            Some(peer) => see_other(&home_sign_in_url(&peer.accounts, next, email)),
            None => password_page(app, headers, next, email, None, client_name),
        },
        Ok(SignInAt::Unreachable(location)) => unreachable_home(app, &location),
        Err(e) => ErrorPage::from(e).into_response(),
    }
}

/// Where an email signs in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignInAt {
    /// Here: a local user, or an email no one knows (asked for a password like any other,
    /// failing later with the generic answer).
    Here,
    /// At the peer that has this user.
    Peer(String),
    /// At the peer where it was last found, which does not answer now.
    Unreachable(String),
}

pub async fn sign_in_at(app: &App, email: &str) -> Result<SignInAt, StoreError> {
    if email.len() <= MAX_EMAIL_LEN && app.store.user_by_email(email).await?.is_some() {
        return Ok(SignInAt::Here);
    }
    Ok(match find_home(app, email).await? {
        Home::Peer(location) => SignInAt::Peer(location),
        Home::Unreachable(location) => SignInAt::Unreachable(location),
        Home::Unknown => SignInAt::Here,
    })
}

/// The login page for a request that may carry a `login_hint`: the email step for a plausible
/// hint (so a hint is routed like a typed email), the empty email page otherwise.
pub async fn sign_in_page(
    app: &App,
    headers: &HeaderMap,
    next: &str,
    hint: Option<&str>,
    client_name: Option<&str>,
) -> Response {
    match hint.and_then(oidc::login_hint_email) {
        Some(email) => route_email(app, headers, next, email, client_name).await,
        None => login_page(app, headers, next, "", None, client_name),
    }
}

/// 503: the user's home DC (by `email_homes`) did not answer; a password page there could not
/// work, and one here would be the wrong one.
pub(crate) fn unreachable_home(app: &App, location: &str) -> Response {
    let accounts = app
        .settings
        .datacenters
        .get(location)
        .map_or("", |peer| peer.accounts.as_str());
    let message = format!(
        "Your account is in data center {location} ({accounts}), which cannot be reached right \
         now. Please try again later."
    );
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Html(pages::error(&message)),
    )
        .into_response()
}
