//! `GET|POST /oauth/v2/auth` and the consent decision (RFC 6749 §4.1.1–4.1.2, CONTRACT.md).
//! Until the client and redirect URI are verified, every error is an HTML page; after, errors
//! go back to that URI only, with `state` and `iss` (RFC 9207).

use axum::extract::State;
use axum::http::header::LOCATION;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use serde::{Deserialize, Serialize};

use grantd_core::authorization::{issues_refresh_token, must_ask_consent};
use grantd_core::grant::{AccessType, CodeGrant};
use grantd_core::secret::{random_id, GrantCode, SecretHash, SessionToken};
use grantd_core::{
    Client, ClientId, CodeChallenge, OAuthError, Prompt, RedirectUri, Scopes, Timestamp,
};
use grantd_store::{CodeIssue, ConsentRecord, NewCode, User};

use super::registered_scopes;
use crate::app::App;
use crate::error::{ApiError, ErrorPage, Failure};
use crate::pages::{self, ConsentPage};
use crate::params::Params;
use crate::session::{current_session, is_cross_site, login_page};

/// A verified authorization request: the client exists and `redirect_uri` is one of its own.
/// Kept as JSON while the consent page is open.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct AuthRequest {
    client_id: String,
    redirect_uri: String,
    /// The registered URI that `redirect_uri` matched (they differ only in a loopback port);
    /// consent is remembered for it.
    registered_uri: String,
    state: Option<String>,
    scopes: String,
    offline: bool,
    prompt_consent: bool,
    code_challenge: Option<String>,
}

/// Where errors and codes go once the redirect URI is verified.
struct Verified<'a> {
    redirect_uri: &'a str,
    state: Option<&'a str>,
}

impl Verified<'_> {
    fn deny(&self, app: &App, error: &OAuthError) -> Response {
        let mut params = vec![("error", error.redirect_name())];
        if let Some(state) = self.state {
            params.push(("state", state));
        }
        params.push(("iss", &app.settings.public_url));
        redirect(&RedirectUri::from_stored(self.redirect_uri.to_owned()).with_params(&params))
    }
}

fn redirect(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(value) => (StatusCode::FOUND, [(LOCATION, value)]).into_response(),
        Err(_) => ErrorPage::bad_request("The redirect URI cannot be used.").into_response(),
    }
}

pub async fn authorize(
    State(app): State<App>,
    headers: HeaderMap,
    params: Result<Params, ApiError>,
) -> Response {
    let now = app.clock.now();
    let params = match params {
        Ok(params) => params,
        Err(_) => {
            return ErrorPage::bad_request("The authorization request is malformed.")
                .into_response()
        }
    };
    // Step 1: the client and its redirect URI, or an error page and nothing else.
    let client = match verify_client(&app, &params).await {
        Ok(client) => client,
        Err(page) => return page.into_response(),
    };
    let Ok(Some(redirect_uri)) = params.get("redirect_uri") else {
        return ErrorPage::bad_request("The redirect_uri parameter is missing or repeated.")
            .into_response();
    };
    let Some(registered) = client.redirect_uri(redirect_uri) else {
        return ErrorPage::bad_request("The redirect_uri is not registered for this application.")
            .into_response();
    };
    // A repeated state cannot be echoed faithfully, so it is dropped along with the request.
    let state = params.get("state").ok().flatten();
    let verified = Verified {
        redirect_uri,
        state,
    };
    let request = match parse_request(&app, &params, &client, redirect_uri, registered, state).await
    {
        Ok(request) => request,
        Err(Failure::OAuth(e)) => return verified.deny(&app, &e),
        Err(Failure::Store(e)) => return ErrorPage::from(e).into_response(),
    };
    // Step 2: who is asking.
    let (session, user) = match current_session(&app, &headers, now).await {
        Ok(Some(found)) => found,
        Ok(None) => {
            return login_page(
                &app,
                &headers,
                &request.login_next(),
                "",
                None,
                Some(&client.name),
            )
        }
        Err(e) => return ErrorPage::from(e).into_response(),
    };
    // Step 3: consent, unless already given for all of these scopes and this redirect URI
    // (T-028: silent approval only for what the user has seen).
    let scopes = Scopes::from_stored(&request.scopes);
    let prior = match app
        .store
        .consent_for(user.id, &client.id, &request.registered_uri)
        .await
    {
        Ok(prior) => prior,
        Err(e) => return ErrorPage::from(e).into_response(),
    };
    let covered = prior.as_ref().is_some_and(|p| p.covers_all(&scopes));
    if must_ask_consent(request.prompt(), covered) {
        return consent_page(&app, &session, &user, &client, &request, now)
            .await
            .unwrap_or_else(IntoResponse::into_response);
    }
    // Approved without asking: a consent exists, so this is not the first one.
    let refresh = issues_refresh_token(request.access_type(), request.prompt(), false);
    issue_code(&app, &request, &user, false, refresh, now).await
}

async fn verify_client(app: &App, params: &Params) -> Result<Client, ErrorPage> {
    let client_id = params
        .get("client_id")
        .ok()
        .flatten()
        .ok_or(ErrorPage::bad_request(
            "The client_id parameter is missing or repeated.",
        ))?;
    let client = if client_id.len() <= 128 {
        app.store.client(client_id).await?
    } else {
        None
    };
    match client {
        Some(client) if client.kind.uses_redirects() => Ok(client),
        Some(_) => Err(ErrorPage::bad_request(
            "This application cannot use browser sign-in.",
        )),
        None => Err(ErrorPage::bad_request("The application is not known here.")),
    }
}

/// Every check after the redirect URI is verified; each failure is redirected.
async fn parse_request(
    app: &App,
    params: &Params,
    client: &Client,
    redirect_uri: &str,
    registered: &RedirectUri,
    state: Option<&str>,
) -> Result<AuthRequest, Failure> {
    params.get("state")?;
    match params.get("response_type")? {
        Some("code") => {}
        Some(_) => return Err(OAuthError::UnsupportedResponseType.into()),
        None => return Err(OAuthError::InvalidRequest("response_type is required").into()),
    }
    let scopes = registered_scopes(app, params.require("scope")?).await?;
    let offline = match AccessType::parse(params.get("access_type")?) {
        Some(access) => access == AccessType::Offline,
        None => {
            return Err(OAuthError::InvalidRequest("access_type must be online or offline").into())
        }
    };
    let prompt = Prompt::parse(params.get("prompt")?);
    let challenge = params.get("code_challenge")?;
    let method = params.get("code_challenge_method")?;
    let code_challenge = CodeChallenge::from_request(client.kind, challenge, method)?;
    Ok(AuthRequest {
        client_id: client.id.to_string(),
        redirect_uri: redirect_uri.to_owned(),
        registered_uri: registered.as_str().to_owned(),
        state: state.map(str::to_owned),
        scopes: scopes.to_stored(),
        offline,
        prompt_consent: prompt == Prompt::Consent,
        code_challenge: code_challenge.map(|c| c.as_str().to_owned()),
    })
}

impl AuthRequest {
    /// The same request as a same-origin URL, to continue after login.
    fn login_next(&self) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        query
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.client_id)
            .append_pair("redirect_uri", &self.redirect_uri)
            .append_pair("scope", &self.scopes)
            .append_pair(
                "access_type",
                if self.offline { "offline" } else { "online" },
            );
        if let Some(state) = &self.state {
            query.append_pair("state", state);
        }
        if self.prompt_consent {
            query.append_pair("prompt", "consent");
        }
        if let Some(challenge) = &self.code_challenge {
            query
                .append_pair("code_challenge", challenge)
                .append_pair("code_challenge_method", "S256");
        }
        format!("/oauth/v2/auth?{}", query.finish())
    }

    fn prompt(&self) -> Prompt {
        if self.prompt_consent {
            Prompt::Consent
        } else {
            Prompt::Default
        }
    }

    fn access_type(&self) -> AccessType {
        if self.offline {
            AccessType::Offline
        } else {
            AccessType::Online
        }
    }

    fn verified(&self) -> Verified<'_> {
        Verified {
            redirect_uri: &self.redirect_uri,
            state: self.state.as_deref(),
        }
    }
}

async fn consent_page(
    app: &App,
    session: &SessionToken,
    user: &User,
    client: &Client,
    request: &AuthRequest,
    now: Timestamp,
) -> Result<Response, ErrorPage> {
    let scopes = Scopes::from_stored(&request.scopes);
    let described = app
        .store
        .registered(&scopes)
        .await?
        .map_err(|_| ErrorPage::bad_request("A requested scope is no longer registered."))?;
    let consent_id = random_id();
    let json = serde_json::to_string(request)
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
        offline: request.offline,
        csrf_token: &csrf_token,
        consent_id: &consent_id,
    };
    Ok(Html(pages::render(&page)).into_response())
}

/// `POST /oauth/v2/auth/consent`: the user's Accept or Reject.
pub async fn decide(State(app): State<App>, headers: HeaderMap, params: Params) -> Response {
    let now = app.clock.now();
    match decision(&app, &headers, &params, now).await {
        Ok(response) => response,
        Err(page) => page.into_response(),
    }
}

async fn decision(
    app: &App,
    headers: &HeaderMap,
    params: &Params,
    now: Timestamp,
) -> Result<Response, ErrorPage> {
    const FORBIDDEN: &str = "This consent form has expired or came from another site.";
    let session = current_session(app, headers, now).await?;
    let csrf = params.text("csrf_token");
    let (session, user) = match session {
        Some((token, user)) if token.csrf_matches(csrf) && !is_cross_site(headers, app) => {
            (token, user)
        }
        _ => return Err(ErrorPage::forbidden(FORBIDDEN)),
    };
    let consent_id = params.text("consent_id");
    let accept = match params.get("decision").ok().flatten() {
        Some("accept") => true,
        Some("reject") => false,
        _ => return Err(ErrorPage::bad_request("Choose Accept or Reject.")),
    };
    // Taken, not read: a replayed form finds nothing (T-022).
    let pending = app
        .store
        .take_pending_consent(&SecretHash::of(consent_id), &session.hash(), now)
        .await?
        .ok_or(ErrorPage::bad_request(
            "This consent request was already answered or has expired.",
        ))?;
    let request: AuthRequest = serde_json::from_str(&pending)
        .map_err(|_| ErrorPage::bad_request("This consent request cannot be read."))?;
    if !accept {
        return Ok(request.verified().deny(
            app,
            &OAuthError::AccessDenied("the user rejected the request"),
        ));
    }
    let client_id = ClientId::new(request.client_id.clone());
    let first_consent = app.store.consent(user.id, &client_id).await?.is_none();
    let refresh = issues_refresh_token(request.access_type(), request.prompt(), first_consent);
    Ok(issue_code(app, &request, &user, true, refresh, now).await)
}

async fn issue_code(
    app: &App,
    request: &AuthRequest,
    user: &User,
    record_consent: bool,
    issue_refresh_token: bool,
    now: Timestamp,
) -> Response {
    let verified = request.verified();
    let scopes = Scopes::from_stored(&request.scopes);
    let code = GrantCode::generate();
    let new = NewCode {
        grant: CodeGrant {
            code_hash: code.hash(),
            client_id: ClientId::new(request.client_id.clone()),
            user_id: user.id,
            redirect_uri: Some(request.redirect_uri.clone()),
            scopes: scopes.clone(),
            issue_refresh_token,
            code_challenge: request.code_challenge.clone(),
            expires_at: now.plus(app.settings.limits.code_lifetime_secs),
            redeemed_at: None,
        },
        description: None,
        record_consent: record_consent.then(|| ConsentRecord {
            scopes,
            redirect_uri: request.registered_uri.clone(),
        }),
    };
    match app.store.add_code(&new, now, &app.settings.limits).await {
        Ok(CodeIssue::Issued) => {}
        Ok(CodeIssue::Throttled { .. }) => {
            return verified.deny(
                app,
                &OAuthError::AccessDenied("too many codes for this client"),
            )
        }
        Err(e) => return ErrorPage::from(e).into_response(),
    }
    let settings = &app.settings;
    let mut params = vec![
        ("code", code.expose()),
        ("location", settings.location.as_str()),
        ("accounts-server", settings.public_url.as_str()),
    ];
    if let Some(state) = verified.state {
        params.push(("state", state));
    }
    params.push(("iss", settings.public_url.as_str()));
    redirect(&RedirectUri::from_stored(request.redirect_uri.clone()).with_params(&params))
}
