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
//! for its email first: for a user homed at another data center (`peers::find_home`) the
//! authorization is handed over to that DC (`peers::device_handover`), the device is told
//! `other_dc` with that location, and the browser goes on to that DC's verification page with
//! the code and the email, where the user signs in and answers.

use axum::extract::State;
use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use serde::{Deserialize, Serialize};

use grantd_core::datacenter::home_sign_in_url;
use grantd_core::device::{DeviceGrant, UserCode};
use grantd_core::grant::AccessType;
use grantd_core::oidc;
use grantd_core::secret::{random_id, SecretHash, SessionToken};
use grantd_core::source::Source;
use grantd_core::Timestamp;
use grantd_store::{ConsoleVerbs, DeviceDecision, DeviceLookup, DeviceVerbs, SessionVerbs, User};
use grantd_wire::datacenter::{DeviceHandover, HandoverResult};

use super::device::{user_code_hash, VERIFICATION_PATH};
use crate::app::App;
use crate::cookies::Cookie;
use crate::email_step::{sign_in_at, unreachable_home, SignInAt};
use crate::error::ErrorPage;
use crate::pages::{self, DeviceConsentPage, DeviceDonePage, DevicePage};
use crate::params::{Params, ParamsRejection};
use crate::session::{
    current_session, is_cross_site, login_page, password_page, see_other, ConsentAnswer, PreSession,
};
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
    // Only a hint that could be an email is acted on (and looked up).
    let hint = oidc::login_hint_email(params.text("login_hint")).unwrap_or("");
    let signed_in = match current_session(&app, &headers, now).await {
        Ok(signed_in) => signed_in,
        Err(e) => return ErrorPage::from(e).into_response(),
    };
    let session = signed_in.as_ref().map(|(s, _)| s);
    // Only a code (with, signed out, an email) leads on; the form alone is not looked up.
    let wanted = !typed.is_empty() && (session.is_some() || !hint.is_empty());
    if !wanted {
        return entry(&app, &headers, session, typed, None);
    }
    let found = match look_up(&app, typed, source, now).await {
        Ok(Found::Code(found)) => found,
        Ok(Found::Not(refusal)) => return entry(&app, &headers, session, typed, Some(refusal)),
        Err(page) => return page.into_response(),
    };
    match &signed_in {
        // As at `/oauth/v2/auth`, a hint for another account than the signed-in one asks for
        // that account's sign-in.
        Some((session, user)) if !oidc::hint_names_another_user(Some(hint), &user.email) => {
            ask_consent(&app, session, user, &found, now).await
        }
        // Sent here by the DC where the device began (`home_sign_in_url`), or a link with a
        // hint: that email's next step, but never a handover on a GET.
        _ => signed_out(&app, &headers, &found, hint, Handover::Never, now).await,
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
    let found = match look_up(&app, typed, source, now).await {
        Ok(Found::Code(found)) => found,
        Ok(Found::Not(refusal)) => return entry(&app, &headers, session, typed, Some(refusal)),
        Err(page) => return page.into_response(),
    };
    if let Some((session, user)) = &signed_in {
        return ask_consent(&app, session, user, &found, now).await;
    }
    match params.get("email").ok().flatten() {
        Some(email) => signed_out(&app, &headers, &found, email, Handover::Allowed, now).await,
        None if app.peers.is_some() => email_step(&app, &headers, &found.code, ""),
        None => signed_out(&app, &headers, &found, "", Handover::Never, now).await,
    }
}

/// `POST /oauth/v3/device/consent`: the user's Accept or Reject.
pub async fn decide(State(app): State<App>, headers: HeaderMap, params: Params) -> Response {
    let now = app.clock.now();
    let answer = match ConsentAnswer::read(&app, &headers, &params, now, FORBIDDEN).await {
        Ok(answer) => answer,
        Err(page) => return page.into_response(),
    };
    match decision_flow(&app, &answer, now).await {
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

/// A typed code that names an authorization waiting for its user.
struct Typed {
    code: UserCode,
    /// What a handover to the user's home DC carries.
    device_code_hash: SecretHash,
    grant: DeviceGrant,
}

/// The answer to a typed code.
enum Found {
    Code(Typed),
    Not(Refusal),
}

/// Why a typed code leads nowhere.
#[derive(Debug, Clone, Copy)]
enum Refusal {
    Invalid,
    /// Too many wrong codes; looked up again after this many seconds.
    Throttled {
        retry_after: i64,
    },
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
        return Ok(Found::Not(Refusal::Invalid));
    };
    let limits = &app.settings.limits;
    let found = app
        .store
        .find_device_code(&user_code_hash(&code), &source, now, limits)
        .await?;
    Ok(match found {
        DeviceLookup::Found {
            device_code_hash,
            grant,
        } => Found::Code(Typed {
            code,
            device_code_hash,
            grant,
        }),
        DeviceLookup::Unknown => Found::Not(Refusal::Invalid),
        DeviceLookup::Throttled { retry_after } => Found::Not(Refusal::Throttled { retry_after }),
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
/// of the pre-session before sign-in (as the login page does).
fn page(
    app: &App,
    headers: &HeaderMap,
    session: Option<&SessionToken>,
    form: DevicePage<'_>,
    refusal: Option<Refusal>,
) -> Response {
    let pre = session.is_none().then(|| PreSession::of(app, headers));
    let csrf_token = match (session, &pre) {
        (Some(session), _) => session.csrf_token(),
        (None, Some(pre)) => pre.csrf_token(),
        (None, None) => String::new(),
    };
    let body = pages::render(&DevicePage {
        csrf_token: &csrf_token,
        error: refusal.map(Refusal::message),
        ..form
    });
    let status = refusal.map_or(StatusCode::OK, Refusal::status);
    let mut response = (status, Html(body)).into_response();
    if let Some(pre) = pre {
        pre.set_cookie(app, &mut response);
    }
    if let Some(Refusal::Throttled { retry_after }) = refusal {
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(retry_after.max(1)));
    }
    response
}

impl Refusal {
    fn message(self) -> &'static str {
        match self {
            Refusal::Invalid => INVALID,
            Refusal::Throttled { .. } => THROTTLED,
        }
    }

    fn status(self) -> StatusCode {
        match self {
            Refusal::Invalid => StatusCode::BAD_REQUEST,
            Refusal::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
        }
    }
}

fn entry(
    app: &App,
    headers: &HeaderMap,
    session: Option<&SessionToken>,
    typed: &str,
    refusal: Option<Refusal>,
) -> Response {
    // Only what could be a code goes back into the form.
    let shown: String = typed.chars().take(32).collect();
    let form = DevicePage {
        csrf_token: "",
        user_code: &shown,
        ask_email: false,
        email: "",
        error: None,
    };
    page(app, headers, session, form, refusal)
}

fn email_step(app: &App, headers: &HeaderMap, code: &UserCode, email: &str) -> Response {
    let form = DevicePage {
        csrf_token: "",
        user_code: &code.display(),
        ask_email: true,
        email,
        error: None,
    };
    page(app, headers, None, form, None)
}

/// Whether finding the user's home at a peer may hand the authorization over (a POST of the
/// email step), or only shows the email step again (a GET: no state changes on a link).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Handover {
    Allowed,
    Never,
}

/// A browser not signed in (or as another account than `email`) with a found code and the email
/// of who will approve it: the password page for a user of this DC (or one unknown everywhere,
/// who then meets the generic failure, as sign-in does). With data centers, a user homed at
/// another DC is not signed in here: the authorization is handed over there and the browser
/// follows it. Without data centers and without an email, the login page.
async fn signed_out(
    app: &App,
    headers: &HeaderMap,
    found: &Typed,
    email: &str,
    handover: Handover,
    now: Timestamp,
) -> Response {
    let next = return_to(&found.code);
    let client_name = match app.store.client(found.grant.client_id.as_str()).await {
        Ok(client) => client.map(|c| c.name).unwrap_or_default(),
        Err(e) => return ErrorPage::from(e).into_response(),
    };
    let client_name = Some(client_name.as_str());
    if app.peers.is_none() || email.is_empty() {
        return login_page(app, headers, &next, email, None, client_name);
    }
    match sign_in_at(app, email).await {
        Ok(SignInAt::Here) => password_page(app, headers, &next, email, None, client_name),
        Ok(SignInAt::Peer(location)) if handover == Handover::Allowed => {
            hand_over(app, found, &location, email, client_name, now).await
        }
        Ok(SignInAt::Peer(_)) => email_step(app, headers, &found.code, email),
        Ok(SignInAt::Unreachable(location)) => unreachable_home(app, &location),
        Err(e) => ErrorPage::from(e).into_response(),
    }
}

/// Hands the authorization to `location`, the user's home; once that DC has it, marks it
/// `other_dc` here (the device's next poll names that DC, CONTRACT.md) and sends the browser
/// to that DC's verification page with the code and the email.
async fn hand_over(
    app: &App,
    found: &Typed,
    location: &str,
    email: &str,
    client_name: Option<&str>,
    now: Timestamp,
) -> Response {
    let (Some(peers), Some(peer)) = (&app.peers, app.settings.datacenters.get(location)) else {
        return gone();
    };
    let user_code_hash = user_code_hash(&found.code);
    let handover = DeviceHandover::new(&found.device_code_hash, &user_code_hash, &found.grant);
    let app_name = client_name.unwrap_or("This app");
    match peers.hand_over_device(location, &handover).await {
        Ok(HandoverResult::Accepted) => {}
        Ok(HandoverResult::ClientNotEnabled) => {
            let message = format!(
                "Your account is in data center {location}, where {app_name} is not available. \
                 Its developer can enable it there; until then it cannot use your account."
            );
            return done(StatusCode::FORBIDDEN, "Not available", &message, None);
        }
        Ok(HandoverResult::UnknownScope) => {
            let message = format!(
                "Your account is in data center {location}, which does not offer all the \
                 access {app_name} asks for."
            );
            return done(StatusCode::FORBIDDEN, "Not available", &message, None);
        }
        Ok(HandoverResult::Conflict) => {
            return done(
                StatusCode::CONFLICT,
                "Start again",
                "This code cannot be used in your data center. Start again on your device.",
                None,
            )
        }
        Ok(HandoverResult::Expired) => return gone(),
        Err(e) => {
            tracing::warn!(peer = %location, error = %e, "a data center did not take a device authorization");
            return unreachable_home(app, location);
        }
    }
    let moved = DeviceDecision::OtherDc {
        location: location.to_owned(),
    };
    match app
        .store
        .decide_device_code(&user_code_hash, &moved, now)
        .await
    {
        // Decided here meanwhile (another tab): the copy there is never polled, and expires.
        Ok(false) => gone(),
        Ok(true) => see_other(&home_sign_in_url(
            &peer.accounts,
            &return_to(&found.code),
            email,
        )),
        Err(e) => ErrorPage::from(e).into_response(),
    }
}

/// A found code awaiting this user: its consent page, the code kept as a pending consent of
/// this session so that only this answer can decide it.
async fn ask_consent(
    app: &App,
    session: &SessionToken,
    user: &User,
    found: &Typed,
    now: Timestamp,
) -> Response {
    match consent_page(app, session, user, &found.code, &found.grant, now).await {
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
    answer: &ConsentAnswer,
    now: Timestamp,
) -> Result<Outcome, ErrorPage> {
    let Some(pending) = app
        .store
        .take_pending_consent(
            &SecretHash::of(&answer.consent_id),
            &answer.session.hash(),
            now,
        )
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
    let decision = if answer.accept {
        DeviceDecision::Approve {
            user_id: answer.user.id,
            auth_time: app
                .store
                .session_started(&answer.session.hash(), now)
                .await?,
        }
    } else {
        DeviceDecision::Deny
    };
    let decided = app.store.decide_device_code(&hash, &decision, now).await?;
    Ok(match (decided, answer.accept) {
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
