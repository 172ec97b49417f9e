//! `GET /oauth/v2/token/addextrascope` and its consent form `POST
//! /oauth/v2/token/addextrascope/consent` (Zoho's incremental authorization, CONTRACT.md): the
//! browser brings an enhance token from `scopeenhance` (`enhance.rs`) with the scopes the client
//! would add. The client and redirect URI are verified as `/oauth/v2/auth` verifies them (the
//! same functions); the user signs in if needed, and must be the grant's user; the consent page
//! asks only for the scopes the grant lacks (`EnhanceGrant::extra_scopes`). Accept adds them
//! to that refresh token's grant and redirects with `status=success`, reject redirects with
//! `error=access_denied`; either way the enhance token is used up, and with `logout=true` the
//! browser session ends.

use axum::extract::State;
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{Html, IntoResponse, Response};
use serde::{Deserialize, Serialize};

use grantd_core::enhance::{EnhanceDecision, EnhanceGrant};
use grantd_core::secret::{random_id, SecretHash, SessionToken};
use grantd_core::{Client, ClientId, OAuthError, RedirectUri, Scopes, Timestamp};
use grantd_store::{ConsoleVerbs, EnhanceVerbs, SessionVerbs, User};

use super::authorize::{redirect, verify_client, verify_redirect_uri};
use super::registered_scopes;
use crate::app::App;
use crate::cookies::Cookie;
use crate::email_step::sign_in_page;
use crate::error::{ErrorPage, Failure};
use crate::pages::{self, ConsentPage};
use crate::params::{Params, ParamsRejection};
use crate::session::{current_session, ConsentAnswer};

pub const ADD_EXTRA_SCOPE_PATH: &str = "/oauth/v2/token/addextrascope";
pub const DECISION_PATH: &str = "/oauth/v2/token/addextrascope/consent";

const OTHER_USER: &str = "You are signed in with another account than the one this request is \
    for. Sign out, then open the application's link again.";
const ANSWERED: &str =
    "This request was already answered or has expired. Return to the application and start again.";
const FORBIDDEN: &str = "This consent form has expired or came from another site.";
const NO_LONGER_REGISTERED: &str =
    "This application or its redirect URI is no longer registered, so nothing was sent to it.";

pub async fn show(
    State(app): State<App>,
    headers: HeaderMap,
    params: Result<Params, ParamsRejection>,
) -> Response {
    let now = app.clock.now();
    let Ok(params) = params else {
        return ErrorPage::bad_request("The request is malformed.").into_response();
    };
    let client = match verify_client(&app, &params).await {
        Ok(client) => client,
        Err(page) => return page.into_response(),
    };
    let (redirect_uri, _) = match verify_redirect_uri(&client, &params) {
        Ok(verified) => verified,
        Err(page) => return page.into_response(),
    };
    let target = Target {
        redirect_uri: RedirectUri::from_stored(redirect_uri.to_owned()),
        state: params.get("state").ok().flatten().map(str::to_owned),
    };
    let request = match EnhanceRequest::parse(&app, &params, &client, target).await {
        Ok(request) => request,
        Err((target, Failure::OAuth(error))) => return target.error(error),
        Err((_, Failure::Store(e))) => return ErrorPage::from(e).into_response(),
        Err((_, Failure::Internal(why))) => return ErrorPage::internal(&why).into_response(),
    };
    match flow(&app, &headers, &client, request, now).await {
        Ok(response) => response,
        Err(page) => page.into_response(),
    }
}

/// `POST /oauth/v2/token/addextrascope/consent`: the user's Accept or Reject.
pub async fn decide(State(app): State<App>, headers: HeaderMap, params: Params) -> Response {
    let now = app.clock.now();
    let answer = match ConsentAnswer::read(&app, &headers, &params, now, FORBIDDEN).await {
        Ok(answer) => answer,
        Err(page) => return page.into_response(),
    };
    match decision_flow(&app, &answer, now).await {
        Ok(response) => response,
        Err(page) => page.into_response(),
    }
}

/// Where the answer goes, once the redirect URI is verified.
#[derive(Debug, Clone)]
struct Target {
    redirect_uri: RedirectUri,
    /// Byte for byte as received.
    state: Option<String>,
}

impl Target {
    fn answer(&self, first: (&str, &str)) -> Response {
        let mut params = vec![first];
        if let Some(state) = &self.state {
            params.push(("state", state));
        }
        redirect(&self.redirect_uri.with_params(&params))
    }

    fn success(&self) -> Response {
        self.answer(("status", "success"))
    }

    fn error(&self, error: OAuthError) -> Response {
        self.answer(("error", error.redirect_name()))
    }
}

/// A verified addextrascope request.
struct EnhanceRequest {
    client_id: ClientId,
    target: Target,
    /// Registered scopes, in the registry's spelling.
    scopes: Scopes,
    /// As sent: it goes back into the URL sign-in returns to, and is found by its hash.
    enhance_token: String,
    logout: bool,
}

impl EnhanceRequest {
    /// Every check after the redirect URI is verified, in a fixed order; each failure is
    /// redirected.
    async fn parse(
        app: &App,
        params: &Params,
        client: &Client,
        target: Target,
    ) -> Result<Self, (Target, Failure)> {
        match Self::parse_verified(app, params).await {
            Ok((scopes, enhance_token, logout)) => Ok(Self {
                client_id: client.id.clone(),
                target,
                scopes,
                enhance_token,
                logout,
            }),
            Err(failure) => Err((target, failure)),
        }
    }

    async fn parse_verified(app: &App, params: &Params) -> Result<(Scopes, String, bool), Failure> {
        params.get("state")?;
        match params.get("response_type")? {
            Some("update_scopes") => {}
            Some(_) => return Err(OAuthError::UnsupportedResponseType.into()),
            None => return Err(OAuthError::InvalidRequest("response_type is required").into()),
        }
        let scopes = registered_scopes(app, params.require("scope")?).await?;
        let enhance_token = params.require("enhance_token")?.to_owned();
        let logout = match params.get("logout")? {
            None | Some("false") => false,
            Some("true") => true,
            Some(_) => {
                return Err(OAuthError::InvalidRequest("logout must be true or false").into())
            }
        };
        Ok((scopes, enhance_token, logout))
    }

    fn token_hash(&self) -> SecretHash {
        SecretHash::of(&self.enhance_token)
    }

    /// The same request as a same-origin URL, to continue after sign-in.
    fn login_next(&self) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        query
            .append_pair("client_id", self.client_id.as_str())
            .append_pair("response_type", "update_scopes")
            .append_pair("redirect_uri", self.target.redirect_uri.as_str())
            .append_pair("scope", &self.scopes.to_stored())
            .append_pair("enhance_token", &self.enhance_token);
        if let Some(state) = &self.target.state {
            query.append_pair("state", state);
        }
        query.append_pair("logout", if self.logout { "true" } else { "false" });
        format!("{ADD_EXTRA_SCOPE_PATH}?{}", query.finish())
    }
}

/// The enhance token must be live and this client's; then sign-in, the grant's user, and the
/// consent page for what the grant lacks (nothing lacking: approved at once).
async fn flow(
    app: &App,
    headers: &HeaderMap,
    client: &Client,
    request: EnhanceRequest,
    now: Timestamp,
) -> Result<Response, ErrorPage> {
    let grant = app.store.enhance_grant(&request.token_hash(), now).await?;
    let Some(grant) = grant.filter(|grant| grant.client_id == client.id) else {
        return Ok(request.target.error(OAuthError::InvalidRequest(
            "the enhance token is invalid, expired or used",
        )));
    };
    let Some((session, user)) = current_session(app, headers, now).await? else {
        let next = request.login_next();
        return Ok(sign_in_page(app, headers, &next, None, Some(&client.name)).await);
    };
    if user.id != grant.user_id {
        return Err(ErrorPage::forbidden(OTHER_USER));
    }
    let pending = PendingEnhance::new(&request, &grant);
    if pending.extra().is_empty() {
        return finish(app, &session, &user, pending, true, now).await;
    }
    ask_consent(app, &session, &user, client, &pending, now).await
}

async fn ask_consent(
    app: &App,
    session: &SessionToken,
    user: &User,
    client: &Client,
    pending: &PendingEnhance,
    now: Timestamp,
) -> Result<Response, ErrorPage> {
    let described = app
        .store
        .registered(&pending.extra())
        .await?
        .map_err(|_| ErrorPage::bad_request("A requested scope is no longer registered."))?;
    let consent_id = random_id();
    let json = serde_json::to_string(pending)
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
    let page = ConsentPage {
        client_name: &client.name,
        homepage: client.homepage.as_deref(),
        user_email: &user.email,
        scopes: described,
        offline: false,
        csrf_token: &csrf_token,
        consent_id: &consent_id,
        location: &app.settings.location,
        action: DECISION_PATH,
    };
    Ok(Html(pages::render(&page)).into_response())
}

/// Takes the pending request the form answers (a replayed form finds nothing) and finishes it.
async fn decision_flow(
    app: &App,
    answer: &ConsentAnswer,
    now: Timestamp,
) -> Result<Response, ErrorPage> {
    let pending = app
        .store
        .take_pending_consent(
            &SecretHash::of(&answer.consent_id),
            &answer.session.hash(),
            now,
        )
        .await?
        .ok_or(ErrorPage::bad_request(ANSWERED))?;
    let pending: PendingEnhance = serde_json::from_str(&pending)
        .map_err(|_| ErrorPage::bad_request("This consent request cannot be read."))?;
    finish(
        app,
        &answer.session,
        &answer.user,
        pending,
        answer.accept,
        now,
    )
    .await
}

/// Uses the enhance token up with the user's decision, answers at the redirect URI (if it is
/// still registered), and ends the session when the request asked for it.
async fn finish(
    app: &App,
    session: &SessionToken,
    user: &User,
    pending: PendingEnhance,
    accept: bool,
    now: Timestamp,
) -> Result<Response, ErrorPage> {
    let client_id = ClientId::new(pending.client_id.clone());
    let client = app.store.client(client_id.as_str()).await?;
    let registered = client
        .as_ref()
        .filter(|client| client.kind.uses_redirects())
        .and_then(|client| client.redirect_uri(&pending.redirect_uri))
        .cloned()
        .ok_or(ErrorPage::bad_request(NO_LONGER_REGISTERED))?;
    let decision = if accept {
        EnhanceDecision::Accept {
            extra: pending.extra(),
            redirect_uri: registered.as_str().to_owned(),
        }
    } else {
        EnhanceDecision::Reject
    };
    let hash = SecretHash::from_hex(&pending.enhance).ok_or(ErrorPage::bad_request(ANSWERED))?;
    if !app
        .store
        .use_enhance_token(&hash, &client_id, user.id, &decision, now)
        .await?
    {
        return Err(ErrorPage::bad_request(ANSWERED));
    }
    let target = Target {
        redirect_uri: RedirectUri::from_stored(pending.redirect_uri),
        state: pending.state,
    };
    let mut response = if accept {
        target.success()
    } else {
        target.error(OAuthError::AccessDenied("the user rejected the request"))
    };
    if pending.logout {
        app.store.remove_session(&session.hash()).await?;
        if let Ok(value) = HeaderValue::from_str(&Cookie::Session.clear(&app.settings)) {
            response.headers_mut().append(SET_COOKIE, value);
        }
    }
    Ok(response)
}

/// An enhance request waiting in `pending_consents`: the enhance token's hash, never the token.
#[derive(Debug, Serialize, Deserialize)]
struct PendingEnhance {
    enhance: String,
    client_id: String,
    redirect_uri: String,
    state: Option<String>,
    /// The extra scopes only, space-separated (`Scopes::to_stored`).
    extra: String,
    logout: bool,
}

impl PendingEnhance {
    fn new(request: &EnhanceRequest, grant: &EnhanceGrant) -> Self {
        Self {
            enhance: request.token_hash().to_hex(),
            client_id: request.client_id.as_str().to_owned(),
            redirect_uri: request.target.redirect_uri.as_str().to_owned(),
            state: request.target.state.clone(),
            extra: grant.extra_scopes(&request.scopes).to_stored(),
            logout: request.logout,
        }
    }

    fn extra(&self) -> Scopes {
        Scopes::from_stored(&self.extra)
    }
}
