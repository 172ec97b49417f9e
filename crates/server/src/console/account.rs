//! The account pages: profile and password (its guesses throttled like sign-ins), Connected
//! Apps (what the user authorized, and Revoke Access), and Sessions (signed-in browsers, each
//! with sign-out).

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;

use grantd_core::secret::Password;
use grantd_core::signin::{Attempt, Gate};
use grantd_core::ClientId;
use grantd_store::{AccountVerbs, ConsoleVerbs};

use super::datetime;
use crate::app::App;
use crate::error::ErrorPage;
use crate::pages;
use crate::params::Params;
use crate::session::{see_other, SignedIn};
use crate::source::RequestSource;

struct AppView {
    id: String,
    name: String,
    homepage: Option<String>,
    /// (scope, description in words)
    scopes: Vec<(String, String)>,
    granted: String,
    last_used: String,
    active: i64,
}

struct SessionView {
    handle: String,
    agent: String,
    created: String,
    current: bool,
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    nav: &'static str,
    /// This data center, in the header.
    location: String,
    is_admin: bool,
    csrf_token: String,
    tab: &'static str,
    notice: Option<&'static str>,
    error: Option<String>,
    email: String,
    name: String,
    apps: Vec<AppView>,
    sessions: Vec<SessionView>,
}

#[derive(Deserialize)]
pub struct AccountQuery {
    tab: Option<String>,
    done: Option<String>,
}

async fn page(app: &App, me: &SignedIn, tab: &'static str) -> Result<AccountPage, ErrorPage> {
    let mut apps = Vec::new();
    if tab == "apps" {
        let descriptions = app.store.scopes().await?;
        for connected in app.store.connected_apps(me.user.id).await? {
            let scopes = connected
                .scopes
                .iter()
                .map(|s| {
                    let words = descriptions
                        .iter()
                        .find(|(name, _)| name.eq_ignore_ascii_case(s.as_str()))
                        .map_or_else(|| s.as_str().to_owned(), |(_, d)| d.clone());
                    (s.as_str().to_owned(), words)
                })
                .collect();
            apps.push(AppView {
                id: connected.client_id.to_string(),
                name: connected.client_name,
                homepage: connected.homepage,
                scopes,
                granted: datetime(connected.first_granted_at),
                last_used: connected.last_used_at.map_or("Never".into(), datetime),
                active: connected.active_refresh_tokens,
            });
        }
    }
    let mut sessions = Vec::new();
    if tab == "sessions" {
        let mine = me.session.hash().to_hex();
        for s in app.store.sessions_of(me.user.id, me.now).await? {
            sessions.push(SessionView {
                current: s.handle == mine,
                handle: s.handle,
                agent: if s.user_agent.is_empty() {
                    "Unknown browser".into()
                } else {
                    s.user_agent
                },
                created: datetime(s.created_at),
            });
        }
    }
    Ok(AccountPage {
        nav: "account",
        location: me.location.clone(),
        is_admin: me.user.is_admin,
        csrf_token: me.csrf_token(),
        tab,
        notice: None,
        error: None,
        email: me.user.email.clone(),
        name: me.user.name.clone(),
        apps,
        sessions,
    })
}

fn tab_of(raw: Option<&str>) -> &'static str {
    match raw {
        Some("apps") => "apps",
        Some("sessions") => "sessions",
        _ => "profile",
    }
}

pub async fn show(
    State(app): State<App>,
    me: SignedIn,
    Query(query): Query<AccountQuery>,
) -> Result<Response, ErrorPage> {
    let mut view = page(&app, &me, tab_of(query.tab.as_deref())).await?;
    view.notice = match query.done.as_deref() {
        Some("revoked") => Some("Access revoked. The app's tokens no longer work."),
        Some("ended") => Some("That browser was signed out."),
        Some("saved") => Some("Saved."),
        Some("password") => Some("Password changed. Your other browsers were signed out."),
        _ => None,
    };
    Ok(Html(pages::render(&view)).into_response())
}

pub async fn update_profile(
    State(app): State<App>,
    me: SignedIn,
    headers: HeaderMap,
    params: Params,
) -> Result<Response, ErrorPage> {
    me.check_form(&app, &headers, &params)?;
    let name = params
        .get("name")
        .ok()
        .flatten()
        .unwrap_or("")
        .trim()
        .to_owned();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        let mut view = page(&app, &me, "profile").await?;
        view.error = Some("The name must have 1 to 100 printable characters.".into());
        return Ok((StatusCode::BAD_REQUEST, Html(pages::render(&view))).into_response());
    }
    app.store.set_user_name(me.user.id, &name).await?;
    Ok(see_other("/account?tab=profile&done=saved"))
}

pub async fn change_password(
    State(app): State<App>,
    me: SignedIn,
    RequestSource(source): RequestSource,
    headers: HeaderMap,
    params: Params,
) -> Result<Response, ErrorPage> {
    me.check_form(&app, &headers, &params)?;
    let field = |name: &'static str| params.text(name).to_owned();
    let current = Password::from_wire(field("current_password"));
    let new = Password::from_wire(field("new_password"));
    // A guess at the current password counts like a sign-in (issue 12): a stolen session must
    // not become an unthrottled password oracle. Refused guesses read as wrong ones.
    let limits = &app.settings.limits;
    let attempt = Attempt::new(&me.user.email, source);
    let gate = app.store.begin_sign_in(&attempt, me.now, limits).await?;
    let stored = (gate == Gate::Check).then_some(me.user.password_hash.as_str());
    let current_ok = app.passwords.verify(stored, &current).await;
    if current_ok {
        app.store
            .sign_in_succeeded(&attempt, me.now, limits)
            .await?;
    }
    let problem = if !current_ok {
        Some("The current password is incorrect.")
    } else if new.expose().chars().count() < 8 || new.expose().len() > 1024 {
        Some("The new password must have at least 8 characters.")
    } else {
        None
    };
    if let Some(problem) = problem {
        let mut view = page(&app, &me, "profile").await?;
        view.error = Some(problem.into());
        return Ok((StatusCode::BAD_REQUEST, Html(pages::render(&view))).into_response());
    }
    let hash = app
        .passwords
        .hash(&new)
        .await
        .ok_or(ErrorPage::bad_request("The password could not be changed."))?;
    app.store
        .set_password(me.user.id, &hash, &me.session.hash())
        .await?;
    Ok(see_other("/account?tab=profile&done=password"))
}

pub async fn revoke_app(
    State(app): State<App>,
    me: SignedIn,
    Path(client_id): Path<String>,
    headers: HeaderMap,
    params: Params,
) -> Result<Response, ErrorPage> {
    me.check_form(&app, &headers, &params)?;
    app.store
        .revoke_grant(me.user.id, &ClientId::new(client_id))
        .await?;
    Ok(see_other("/account?tab=apps&done=revoked"))
}

pub async fn end_session(
    State(app): State<App>,
    me: SignedIn,
    Path(handle): Path<String>,
    headers: HeaderMap,
    params: Params,
) -> Result<Response, ErrorPage> {
    me.check_form(&app, &headers, &params)?;
    app.store.remove_user_session(me.user.id, &handle).await?;
    Ok(see_other("/account?tab=sessions&done=ended"))
}
