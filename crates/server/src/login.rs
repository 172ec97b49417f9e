//! Browser sign-in and sign-out, and the session they create. Sign-in asks for the email first
//! (`email_step`: which DC, which page) and then the password; a form with both (the page of
//! old, scripts, tests) goes straight to the password check. A login form is bound to a
//! pre-session cookie by its CSRF token (login CSRF, T-023); a successful login always starts a
//! fresh session (fixation, T-073); every failure reads the same and costs the same (T-071).
//! Each attempt is counted before its password is checked (`AccountVerbs::begin_sign_in`,
//! rules in `grantd_core::signin`), so throttling cannot be raced, and it is counted per
//! (account, source), so an attacker elsewhere cannot keep the owner out (T-068, T-070).

use axum::extract::{RawQuery, State};
use axum::http::header::{LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use grantd_core::secret::{Password, SessionToken};
use grantd_core::signin::{Attempt, Gate};
use grantd_core::source::Source;
use grantd_core::Timestamp;
use grantd_store::{AccountVerbs, SessionVerbs};

use crate::app::App;
use crate::cookies::Cookie;
use crate::email_step::{route_email, sign_in_page};
use crate::error::ErrorPage;
use crate::params::Params;
use crate::session::{
    current_session, is_cross_site, password_page, safe_next, see_other, user_agent,
};
use crate::source::RequestSource;

const LOGIN_FAILED: &str = "The email address or password is incorrect.";

/// `/`: the console for a signed-in browser, the login page otherwise (for `login_hint`, the
/// page that email gets, as if it had been typed).
pub async fn home(State(app): State<App>, headers: HeaderMap, query: RawQuery) -> Response {
    let now = app.clock.now();
    let params = Params::from_query(query.0.as_deref()).unwrap_or_default();
    let hint = params.get("login_hint").ok().flatten();
    match current_session(&app, &headers, now).await {
        Ok(Some(_)) => see_other("/console"),
        Ok(None) => sign_in_page(&app, &headers, "/console", hint, None).await,
        Err(e) => ErrorPage::from(e).into_response(),
    }
}

pub async fn sign_in(
    State(app): State<App>,
    RequestSource(source): RequestSource,
    headers: HeaderMap,
    params: Params,
) -> Response {
    let now = app.clock.now();
    let form = match SignInForm::parse(&app, &headers, &params) {
        Ok(form) => form,
        Err(page) => return page.into_response(),
    };
    let Some(password) = &form.password else {
        return route_email(&app, &headers, &form.next, &form.email, None).await;
    };
    let old_session = Cookie::Session.read(&headers, &app.settings);
    let agent = user_agent(&headers);
    match sign_in_flow(&app, &form.email, password, source, old_session, agent, now).await {
        Ok(SignIn::Failed) => password_page(
            &app,
            &headers,
            &form.next,
            &form.email,
            Some(LOGIN_FAILED),
            None,
        ),
        Ok(SignIn::Started(session)) => signed_in(&app, &session, &form.next),
        Err(page) => page.into_response(),
    }
}

/// The sign-in form, once its CSRF token has been checked against the pre-session.
struct SignInForm {
    /// A same-origin path to continue at (T-080).
    next: String,
    email: String,
    /// `None` on the email step: the form had no password field at all. An empty one is a
    /// password (a wrong one), as it always was.
    password: Option<Password>,
}

impl SignInForm {
    fn parse(app: &App, headers: &HeaderMap, params: &Params) -> Result<Self, ErrorPage> {
        let pre = Cookie::PreSession.read(headers, &app.settings);
        let csrf = params.text("csrf_token");
        let csrf_ok = pre.as_ref().is_some_and(|pre| pre.csrf_matches(csrf));
        if is_cross_site(headers, app) || !csrf_ok {
            return Err(ErrorPage::forbidden(
                "This sign-in form has expired or came from another site. Please go back and try again.",
            ));
        }
        Ok(Self {
            next: safe_next(params.get("next").ok().flatten()).to_owned(),
            email: params.text("email").to_owned(),
            password: params.all("password").next().map(|_| {
                Password::from_wire(
                    params
                        .get("password")
                        .ok()
                        .flatten()
                        .unwrap_or("")
                        .to_owned(),
                )
            }),
        })
    }
}

enum SignIn {
    /// Unknown email, wrong password or throttled attempt: one answer for all three (T-071).
    Failed,
    /// A fresh session (never the old one: fixation, T-073).
    Started(SessionToken),
}

async fn sign_in_flow(
    app: &App,
    email: &str,
    password: &Password,
    source: Source,
    old_session: Option<SessionToken>,
    user_agent: String,
    now: Timestamp,
) -> Result<SignIn, ErrorPage> {
    let limits = &app.settings.limits;
    // Unknown email, wrong password and throttled attempt do the same work before the answer
    // (T-071): this read, the attempt's write (keyed by the email as typed, whether or not it
    // names an account), and an Argon2 check (against the dummy hash unless both the account
    // exists and the attempt may be checked).
    let user = if email.len() <= 254 {
        app.store.user_by_email(email).await?
    } else {
        None
    };
    let attempt = Attempt::new(email, source);
    let gate = app.store.begin_sign_in(&attempt, now, limits).await?;
    let stored = match (&user, gate) {
        (Some(user), Gate::Check) => Some(user.password_hash.as_str()),
        _ => None,
    };
    let matched = app.passwords.verify(stored, password).await;
    let Some(user) = user.filter(|_| matched) else {
        return Ok(SignIn::Failed);
    };
    app.store.sign_in_succeeded(&attempt, now, limits).await?;
    if let Some(old) = old_session {
        app.store.remove_session(&old.hash()).await?;
    }
    let session = SessionToken::generate();
    let lifetime = limits.session_lifetime_secs;
    app.store
        .add_session(
            &session.hash(),
            user.id,
            &user_agent,
            now,
            now.plus(lifetime),
        )
        .await?;
    Ok(SignIn::Started(session))
}

/// 303 to `next` with the new session's cookie, and the pre-session's cleared.
fn signed_in(app: &App, session: &SessionToken, next: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    let headers = response.headers_mut();
    let lifetime = app.settings.limits.session_lifetime_secs;
    let cookies = [
        Cookie::Session.set(session, lifetime, &app.settings),
        Cookie::PreSession.clear(&app.settings),
    ];
    for cookie in cookies {
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            headers.append(SET_COOKIE, value);
        }
    }
    if let Ok(location) = HeaderValue::from_str(next) {
        headers.insert(LOCATION, location);
    }
    response
}

pub async fn sign_out(State(app): State<App>, headers: HeaderMap, params: Params) -> Response {
    let now = app.clock.now();
    let session = match current_session(&app, &headers, now).await {
        Ok(session) => session,
        Err(e) => return ErrorPage::from(e).into_response(),
    };
    let csrf = params.text("csrf_token");
    let Some((token, _)) = session.filter(|(t, _)| t.csrf_matches(csrf)) else {
        return ErrorPage::forbidden("This sign-out form has expired. Please try again.")
            .into_response();
    };
    if let Err(e) = app.store.remove_session(&token.hash()).await {
        return ErrorPage::from(e).into_response();
    }
    let mut response = StatusCode::SEE_OTHER.into_response();
    response
        .headers_mut()
        .insert(LOCATION, HeaderValue::from_static("/"));
    if let Ok(value) = HeaderValue::from_str(&Cookie::Session.clear(&app.settings)) {
        response.headers_mut().append(SET_COOKIE, value);
    }
    response
}
