//! Administrator pages: the scope registry and the user list (with each user's sign-in
//! back-off to clear).

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;

use grantd_core::secret::Password;
use grantd_store::{AccountVerbs, ConsoleVerbs};

use crate::admin::{self, AdminError};
use crate::app::App;
use crate::error::ErrorPage;
use crate::pages;
use crate::params::Params;
use crate::session::{see_other, SignedIn};

fn require_admin(me: &SignedIn) -> Result<(), ErrorPage> {
    if me.user.is_admin {
        Ok(())
    } else {
        Err(ErrorPage {
            status: StatusCode::NOT_FOUND,
            message: "There is no such page.".into(),
        })
    }
}

#[derive(Template)]
#[template(path = "console/scopes.html")]
struct ScopesPage {
    nav: &'static str,
    /// This data center, in the header.
    location: String,
    is_admin: bool,
    csrf_token: String,
    scopes: Vec<(String, String)>,
    notice: Option<&'static str>,
    error: Option<String>,
    name: String,
    description: String,
}

pub async fn scopes(State(app): State<App>, me: SignedIn) -> Result<Response, ErrorPage> {
    require_admin(&me)?;
    let page = ScopesPage {
        nav: "scopes",
        location: me.location.clone(),
        is_admin: true,
        csrf_token: me.csrf_token(),
        scopes: app.store.scopes().await?,
        notice: None,
        error: None,
        name: String::new(),
        description: String::new(),
    };
    Ok(Html(pages::render(&page)).into_response())
}

pub async fn add_scope(
    State(app): State<App>,
    me: SignedIn,
    headers: HeaderMap,
    params: Params,
) -> Result<Response, ErrorPage> {
    require_admin(&me)?;
    me.check_form(&app, &headers, &params)?;
    let name = params
        .get("name")
        .ok()
        .flatten()
        .unwrap_or("")
        .trim()
        .to_owned();
    let description = params
        .get("description")
        .ok()
        .flatten()
        .unwrap_or("")
        .to_owned();
    match admin::add_scope(&app.store, &name, &description).await {
        Ok(()) => Ok(see_other("/console/scopes")),
        Err(AdminError::Store(e)) => Err(e.into()),
        Err(error) => {
            let page = ScopesPage {
                nav: "scopes",
                location: me.location.clone(),
                is_admin: true,
                csrf_token: me.csrf_token(),
                scopes: app.store.scopes().await?,
                notice: None,
                error: Some(error.to_string()),
                name,
                description,
            };
            Ok((StatusCode::BAD_REQUEST, Html(pages::render(&page))).into_response())
        }
    }
}

#[derive(Template)]
#[template(path = "console/users.html")]
struct UsersPage {
    nav: &'static str,
    /// This data center, in the header.
    location: String,
    is_admin: bool,
    csrf_token: String,
    /// (email, name, role)
    users: Vec<(String, String, &'static str)>,
    notice: Option<&'static str>,
    error: Option<String>,
    email: String,
    name: String,
}

async fn users_page(app: &App, me: &SignedIn) -> Result<UsersPage, ErrorPage> {
    Ok(UsersPage {
        nav: "users",
        location: me.location.clone(),
        is_admin: true,
        csrf_token: me.csrf_token(),
        users: app
            .store
            .users()
            .await?
            .into_iter()
            .map(|u| {
                (
                    u.email,
                    u.name,
                    if u.is_admin { "Administrator" } else { "User" },
                )
            })
            .collect(),
        notice: None,
        error: None,
        email: String::new(),
        name: String::new(),
    })
}

#[derive(Deserialize)]
pub struct UsersQuery {
    done: Option<String>,
}

pub async fn users(
    State(app): State<App>,
    me: SignedIn,
    Query(query): Query<UsersQuery>,
) -> Result<Response, ErrorPage> {
    require_admin(&me)?;
    let mut page = users_page(&app, &me).await?;
    if query.done.as_deref() == Some("unlocked") {
        page.notice = Some("Sign-in back-off cleared: the user can sign in again from anywhere.");
    }
    Ok(Html(pages::render(&page)).into_response())
}

/// Clears a user's sign-in back-off from every source (`admin::unlock_user`).
pub async fn unlock_user(
    State(app): State<App>,
    me: SignedIn,
    headers: HeaderMap,
    params: Params,
) -> Result<Response, ErrorPage> {
    require_admin(&me)?;
    me.check_form(&app, &headers, &params)?;
    match admin::unlock_user(&app.store, params.text("email")).await {
        Ok(_) => Ok(see_other("/console/users?done=unlocked")),
        Err(AdminError::Store(e)) => Err(e.into()),
        Err(error) => {
            let mut page = users_page(&app, &me).await?;
            page.error = Some(error.to_string());
            Ok((StatusCode::BAD_REQUEST, Html(pages::render(&page))).into_response())
        }
    }
}

pub async fn add_user(
    State(app): State<App>,
    me: SignedIn,
    headers: HeaderMap,
    params: Params,
) -> Result<Response, ErrorPage> {
    require_admin(&me)?;
    me.check_form(&app, &headers, &params)?;
    let field = |name: &'static str| params.text(name).to_owned();
    let password = Password::from_wire(field("password"));
    let admin_flag = params.get("admin").ok().flatten() == Some("yes");
    let result = admin::add_user(
        &app.store,
        &app.passwords,
        &field("email"),
        &field("name"),
        &password,
        admin_flag,
        me.now,
    )
    .await;
    match result {
        Ok(_) => Ok(see_other("/console/users")),
        Err(AdminError::Store(e)) => Err(e.into()),
        Err(error) => {
            let mut page = users_page(&app, &me).await?;
            page.error = Some(error.to_string());
            page.email = field("email");
            page.name = field("name");
            Ok((StatusCode::BAD_REQUEST, Html(pages::render(&page))).into_response())
        }
    }
}
