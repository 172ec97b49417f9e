//! The device flow's verification page, `GET|POST /oauth/v3/device` and its consent form
//! `POST /oauth/v3/device/consent` (RFC 8628 §3.3; CONTRACT.md "Device flow"): the user types
//! the code the device shows (pre-filled from `verification_uri_complete`), signs in if needed
//! (the login page, returning here with the code), accepts or rejects on a consent page that
//! repeats the code to compare (§5.4), and is told plainly what happened.
//!
//! Every typed code is looked up within the guess throttle (`DeviceVerbs::find_device_code`):
//! wrong codes count per source and globally, a right one does not; only a code that was found
//! leads to a consent, which is kept as a pending consent bound to the session, so the decision
//! cannot be used to try codes. Forms carry the session's CSRF token (the pre-session's before
//! sign-in, like the login form). With data centers, a browser that is not signed in is asked
//! for its email first: a user homed at another data center (`peers::find_home`) is not signed
//! in here; the device is told `other_dc` with that location instead.

use axum::extract::State;
use axum::http::header::{RETRY_AFTER, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use serde::{Deserialize, Serialize};

use grantd_core::device::{DeviceGrant, UserCode};
use grantd_core::grant::AccessType;
use grantd_core::secret::{random_id, SecretHash, SessionToken};
use grantd_core::source::Source;
use grantd_core::Timestamp;
use grantd_store::{
    AccountVerbs, ConsoleVerbs, DeviceDecision, DeviceLookup, DeviceVerbs, SessionVerbs, User,
};

use super::device::{user_code_hash, VERIFICATION_PATH};
use crate::app::App;
use crate::cookies::Cookie;
use crate::error::ErrorPage;
use crate::pages::{self, DeviceConsentPage, DeviceDonePage, DevicePage};
use crate::params::{Params, ParamsRejection};
use crate::peers::{find_home, Home};
use crate::session::{current_session, is_cross_site, login_page, password_page, ConsentAnswer};
use crate::source::RequestSource;

const INVALID: &str =
    "This code has expired or is invalid. Check the code on your device and try again.";
const THROTTLED: &str =
    "Too many wrong codes were entered. Please wait a few minutes, then try again.";
const FORBIDDEN: &str =
    "This form has expired or came from another site. Reload the page and try again.";

/// `GET /oauth/v3/device[?user_code=...]`: the code form, pre-filled; a signed-in browser that
/// brings a code (from `verification_uri_complete`, or back from signing in) goes straight to
/// that code's consent page.
pub async fn show(
    State(app): State<App>,
    RequestSource(source): RequestSource,
    headers: HeaderMap,
    params: Result<Params, ParamsRejection>,
) -> Response {
    let now = app.clock.now();
    let Ok(params) = params else {
        return ErrorPage::bad_request("This request could not be read.").into_response();
    };
    let typed = params.text("user_code");
    let signed_in = match current_session(&app, &headers, now).await {
        Ok(signed_in) => signed_in,
        Err(e) => return ErrorPage::from(e).into_response(),
    };
    match signed_in {
        Some((session, user)) if !typed.is_empty() => {
            match look_up(&app, typed, source, now).await {
                Ok(Found::Code(code, grant)) => {
                    ask_consent(&app, &session, &user, &code, &grant, now).await
                }
                Ok(Found::Not(error, status)) => {
                    entry(&app, &headers, Some(&session), typed, Some(error), status)
                }
                Err(page) => page.into_response(),
            }
        }
        Some((session, _)) => entry(&app, &headers, Some(&session), typed, None, StatusCode::OK),
        None => entry(&app, &headers, None, typed, None, StatusCode::OK),
    }
}

/// `POST /oauth/v3/device`: a typed code (and, with data centers, the email of who will
/// approve it).
pub async fn submit(
    State(app): State<App>,
    RequestSource(source): RequestSource,
    headers: HeaderMap,
    params: Params,
) -> Response {
    let now = app.clock.now();
    let signed_in = match current_session(&app, &headers, now).await {
        Ok(signed_in) => signed_in,
        Err(e) => return ErrorPage::from(e).into_response(),
    };
    if !form_is_ours(&app, &headers, &params, signed_in.as_ref().map(|(s, _)| s)) {
        return ErrorPage::forbidden(FORBIDDEN).into_response();
    }
    let typed = params.text("user_code");
    let session = signed_in.as_ref().map(|(s, _)| s);
    let (code, grant) = match look_up(&app, typed, source, now).await {
        Ok(Found::Code(code, grant)) => (code, grant),
        Ok(Found::Not(error, status)) => {
            return entry(&app, &headers, session, typed, Some(error), status)
        }
        Err(page) => return page.into_response(),
    };
    if let Some((session, user)) = &signed_in {
        return ask_consent(&app, session, user, &code, &grant, now).await;
    }
    let client_name = match app.store.client(grant.client_id.as_str()).await {
        Ok(client) => client.map(|c| c.name).unwrap_or_default(),
        Err(e) => return ErrorPage::from(e).into_response(),
    };
    if app.peers.is_none() {
        return login_page(
            &app,
            &headers,
            &return_to(&code),
            "",
            None,
            Some(&client_name),
        );
    }
    match params.get("email").ok().flatten() {
        Some(email) => by_email(&app, &headers, &code, email, &client_name, now).await,
        None => email_step(&app, &headers, &code),
    }
}

/// `POST /oauth/v3/device/consent`: the user's Accept or Reject.
pub async fn decide(State(app): State<App>, headers: HeaderMap, params: Params) -> Response {
    let now = app.clock.now();
    let answer = match ConsentAnswer::read(&app, &headers, &params, now, FORBIDDEN).await {
        Ok(answer) => answer,
        Err(page) => return page.into_response(),
    };
    match decision_flow(
        &app,
        &answer.session,
        &answer.user,
        &answer.consent_id,
        answer.accept,
        now,
    )
    .await
    {
        Ok(Outcome::Approved) => done(
            StatusCode::OK,
            "Device connected",
            "You can return to your device.",
            None,
        ),
        Ok(Outcome::Denied) => done(
            StatusCode::OK,
            "Access was denied",
            "Access was denied. Your device will be told; you can close this page.",
            None,
        ),
        Ok(Outcome::Gone) => done(
            StatusCode::BAD_REQUEST,
            "Code not accepted",
            "This code has expired or is invalid. Start again on your device.",
            None,
        ),
        Err(page) => page.into_response(),
    }
}

/// The answer to a typed code.
enum Found {
    Code(UserCode, DeviceGrant),
    /// Why not, and the status to show it with.
    Not(&'static str, StatusCode),
}

/// Looks a typed code up within the guess throttle. A code that cannot be one (wrong length,
/// a look-alike) is not looked up: it cannot match, so there is nothing to count.
async fn look_up(
    app: &App,
    typed: &str,
    source: Source,
    now: Timestamp,
) -> Result<Found, ErrorPage> {
    let Some(code) = UserCode::parse(typed) else {
        return Ok(Found::Not(INVALID, StatusCode::BAD_REQUEST));
    };
    let limits = &app.settings.limits;
    let found = app
        .store
        .find_device_code(&user_code_hash(&code), &source, now, limits)
        .await?;
    Ok(match found {
        DeviceLookup::Found(grant) => Found::Code(code, grant),
        DeviceLookup::Unknown => Found::Not(INVALID, StatusCode::BAD_REQUEST),
        DeviceLookup::Throttled { .. } => Found::Not(THROTTLED, StatusCode::TOO_MANY_REQUESTS),
    })
}

/// The form's CSRF token is the session's, or before sign-in the pre-session's (as on the
/// login form), and the POST is not cross-site.
fn form_is_ours(
    app: &App,
    headers: &HeaderMap,
    params: &Params,
    session: Option<&SessionToken>,
) -> bool {
    let csrf = params.text("csrf_token");
    let pre = Cookie::PreSession.read(headers, &app.settings);
    let matches =
        session.is_some_and(|s| s.csrf_matches(csrf)) || pre.is_some_and(|p| p.csrf_matches(csrf));
    matches && !is_cross_site(headers, app)
}

/// Where sign-in returns to: this page with the code, which then goes to its consent page.
fn return_to(code: &UserCode) -> String {
    format!("{VERIFICATION_PATH}?user_code={}", code.display())
}

/// The code form (or, with `ask_email`, the email step) with the CSRF token of the session, or
/// of a pre-session made here if the browser has none yet (as the login page does).
fn page(
    app: &App,
    headers: &HeaderMap,
    session: Option<&SessionToken>,
    user_code: &str,
    ask_email: bool,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let (csrf_token, new_pre) = match session {
        Some(session) => (session.csrf_token(), None),
        None => {
            let existing = Cookie::PreSession.read(headers, &app.settings);
            let pre = existing.clone().unwrap_or_else(SessionToken::generate);
            (pre.csrf_token(), existing.is_none().then_some(pre))
        }
    };
    let body = pages::render(&DevicePage {
        csrf_token: &csrf_token,
        user_code,
        ask_email,
        error,
    });
    let mut response = (status, Html(body)).into_response();
    if let Some(pre) = new_pre {
        let lifetime = app.settings.limits.session_lifetime_secs;
        let cookie = Cookie::PreSession.set(&pre, lifetime, &app.settings);
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            response.headers_mut().append(SET_COOKIE, value);
        }
    }
    if status == StatusCode::TOO_MANY_REQUESTS {
        let window = app.settings.limits.device_guess_window_secs.max(1);
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(window));
    }
    response
}

fn entry(
    app: &App,
    headers: &HeaderMap,
    session: Option<&SessionToken>,
    typed: &str,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    // Only what could be a code goes back into the form.
    let shown: String = typed.chars().take(32).collect();
    page(app, headers, session, &shown, false, error, status)
}

fn email_step(app: &App, headers: &HeaderMap, code: &UserCode) -> Response {
    page(
        app,
        headers,
        None,
        &code.display(),
        true,
        None,
        StatusCode::OK,
    )
}

/// With data centers: where the user whose email this is signs in. A user of this DC (or one
/// unknown everywhere, who then meets the generic failure) gets the password page; a user homed
/// at another DC is not signed in here: the device code is marked `other_dc`, so the device's
/// next poll names that DC (CONTRACT.md), and the page says so.
async fn by_email(
    app: &App,
    headers: &HeaderMap,
    code: &UserCode,
    email: &str,
    client_name: &str,
    now: Timestamp,
) -> Response {
    let next = return_to(code);
    let local = if email.len() <= 254 {
        app.store.user_by_email(email).await
    } else {
        Ok(None)
    };
    match local {
        Ok(Some(_)) => return password_page(app, headers, &next, email, None, Some(client_name)),
        Ok(None) => {}
        Err(e) => return ErrorPage::from(e).into_response(),
    }
    let home = match find_home(app, email).await {
        Ok(home) => home,
        Err(e) => return ErrorPage::from(e).into_response(),
    };
    let accounts = |location: &str| {
        app.settings
            .datacenters
            .get(location)
            .map(|peer| peer.accounts.clone())
            .unwrap_or_default()
    };
    match home {
        Home::Peer(location) => {
            let decision = DeviceDecision::OtherDc {
                location: location.clone(),
            };
            let hash = user_code_hash(code);
            match app.store.decide_device_code(&hash, &decision, now).await {
                Ok(true) => {}
                Ok(false) => return gone(),
                Err(e) => return ErrorPage::from(e).into_response(),
            }
            let there = accounts(&location);
            let message = format!(
                "Your account is in data center {location} ({there}). Your device has been told \
                 to continue there: start again on your device, then enter its new code at \
                 {there}{VERIFICATION_PATH}."
            );
            let link = format!("{there}{VERIFICATION_PATH}");
            done(
                StatusCode::OK,
                "Continue in your data center",
                &message,
                Some(("Go to your data center's device page", &link)),
            )
        }
        Home::Unreachable(location) => {
            let message = format!(
                "Your account is in data center {location} ({}), which cannot be reached right \
                 now. Please try again later.",
                accounts(&location)
            );
            done(
                StatusCode::SERVICE_UNAVAILABLE,
                "Try again later",
                &message,
                None,
            )
        }
        // Like a local user's: the password page, then the generic failure (as sign-in does).
        Home::Unknown => password_page(app, headers, &next, email, None, Some(client_name)),
    }
}

/// A found code awaiting this user: its consent page, the code kept as a pending consent of
/// this session so that only this answer can decide it.
async fn ask_consent(
    app: &App,
    session: &SessionToken,
    user: &User,
    code: &UserCode,
    grant: &DeviceGrant,
    now: Timestamp,
) -> Response {
    match consent_page(app, session, user, code, grant, now).await {
        Ok(page) => page,
        Err(page) => page.into_response(),
    }
}

async fn consent_page(
    app: &App,
    session: &SessionToken,
    user: &User,
    code: &UserCode,
    grant: &DeviceGrant,
    now: Timestamp,
) -> Result<Response, ErrorPage> {
    let Some(client) = app.store.client(grant.client_id.as_str()).await? else {
        return Ok(gone());
    };
    let described = app
        .store
        .registered(&grant.scopes)
        .await?
        .map_err(|_| ErrorPage::bad_request("A requested scope is no longer registered."))?;
    let consent_id = random_id();
    let pending = PendingDevice {
        device: user_code_hash(code).to_hex(),
    };
    let json = serde_json::to_string(&pending)
        .map_err(|_| ErrorPage::bad_request("The request cannot be kept."))?;
    let lifetime = app.settings.limits.pending_consent_lifetime_secs;
    app.store
        .add_pending_consent(
            &SecretHash::of(&consent_id),
            &session.hash(),
            &json,
            now.plus(lifetime),
        )
        .await?;
    let csrf_token = session.csrf_token();
    let page = DeviceConsentPage {
        client_name: &client.name,
        homepage: client.homepage.as_deref(),
        user_email: &user.email,
        user_code: &code.display(),
        scopes: described,
        offline: grant.access_type == AccessType::Offline,
        csrf_token: &csrf_token,
        consent_id: &consent_id,
    };
    Ok(Html(pages::render(&page)).into_response())
}

/// A device consent waiting in `pending_consents`: the user code's hash, never the code.
#[derive(Debug, Serialize, Deserialize)]
struct PendingDevice {
    device: String,
}

enum Outcome {
    Approved,
    Denied,
    /// Already decided, expired, or never this session's.
    Gone,
}

/// Takes the pending consent the form answers (a replayed form finds nothing) and records the
/// decision on its device code, once.
async fn decision_flow(
    app: &App,
    session: &SessionToken,
    user: &User,
    consent_id: &str,
    approve: bool,
    now: Timestamp,
) -> Result<Outcome, ErrorPage> {
    let Some(pending) = app
        .store
        .take_pending_consent(&SecretHash::of(consent_id), &session.hash(), now)
        .await?
    else {
        return Ok(Outcome::Gone);
    };
    let Some(hash) = serde_json::from_str::<PendingDevice>(&pending)
        .ok()
        .and_then(|p| SecretHash::from_hex(&p.device))
    else {
        return Ok(Outcome::Gone);
    };
    let decision = if approve {
        DeviceDecision::Approve { user_id: user.id }
    } else {
        DeviceDecision::Deny
    };
    let decided = app.store.decide_device_code(&hash, &decision, now).await?;
    Ok(match (decided, approve) {
        (false, _) => Outcome::Gone,
        (true, true) => Outcome::Approved,
        (true, false) => Outcome::Denied,
    })
}

fn gone() -> Response {
    done(StatusCode::BAD_REQUEST, "Code not accepted", INVALID, None)
}

fn done(status: StatusCode, title: &str, message: &str, link: Option<(&str, &str)>) -> Response {
    let page = DeviceDonePage {
        title,
        message,
        link,
    };
    (status, Html(pages::render(&page))).into_response()
}
