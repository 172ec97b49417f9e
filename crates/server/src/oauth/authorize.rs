//! `GET|POST /oauth/v2/auth` and the consent decision (RFC 6749 §4.1.1–4.1.2, CONTRACT.md).
//! Until the client and redirect URI are verified, every error is an HTML page; after, errors
//! go back to that URI only, with `state` and `iss` (RFC 9207). Handlers parse the request
//! once into an `AuthorizationRequest`, the flows below decide the next `Step`, and `render`
//! turns it into a page or a redirect.

use axum::extract::State;
use axum::http::header::LOCATION;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use serde::{Deserialize, Serialize};

use grantd_core::authorization::{issues_refresh_token, must_ask_consent};
use grantd_core::grant::{AccessType, CodeGrant, SignIn};
use grantd_core::oidc::{self, Interaction};
use grantd_core::secret::{random_id, GrantCode, SecretHash, SessionToken};
use grantd_core::{
    Client, ClientId, CodeChallenge, OAuthError, Prompt, RedirectUri, Scopes, Timestamp,
};
use grantd_store::{CodeIssue, ConsentRecord, NewCode, StoreError, User};
use grantd_store::{ConsoleVerbs, SessionVerbs, TokenVerbs};

use super::registered_scopes;
use crate::app::App;
use crate::email_step::sign_in_page;
use crate::error::{ErrorPage, Failure};
use crate::pages::{self, ConsentPage};
use crate::params::{Params, ParamsRejection};
use crate::session::{current_session, login_page, ConsentAnswer};

/// Where the consent page of `/oauth/v2/auth` posts its decision.
const CONSENT_ACTION: &str = "/oauth/v2/auth/consent";

/// Client ids are 35 characters; anything far longer is not looked up.
const MAX_CLIENT_ID_LEN: usize = 128;

pub async fn authorize(
    State(app): State<App>,
    headers: HeaderMap,
    params: Result<Params, ParamsRejection>,
) -> Response {
    let now = app.clock.now();
    let Ok(params) = params else {
        return ErrorPage::bad_request("The authorization request is malformed.").into_response();
    };
    // Step 1: the client, its redirect URI, then everything else; or an error page or redirect.
    let (client, request) = match AuthorizationRequest::parse(&app, &params).await {
        Ok(parsed) => parsed,
        Err(Refused::Page(page)) => return page.into_response(),
        Err(Refused::Answer(answer)) => return answer.render(&app),
    };
    // Step 2: who is asking.
    let signed_in = match current_session(&app, &headers, now).await {
        Ok(signed_in) => signed_in,
        Err(e) => return ErrorPage::from(e).into_response(),
    };
    match authorization(&app, &client, request, signed_in, now).await {
        // A `login_hint` (sent by the client, or by the DC that routed the user here) is
        // routed as if typed on the email page: asked for once, at the user's home DC.
        Ok(Step::SignIn(request)) => {
            let hint = request.oidc.login_hint.as_deref();
            let next = request.login_next();
            sign_in_page(&app, &headers, &next, hint, Some(&client.name)).await
        }
        Ok(step) => step.render(&app, &headers, &client),
        Err(page) => page.into_response(),
    }
}

/// `POST /oauth/v2/auth/consent`: the user's Accept or Reject.
pub async fn decide(State(app): State<App>, headers: HeaderMap, params: Params) -> Response {
    const FORBIDDEN: &str = "This consent form has expired or came from another site.";
    let now = app.clock.now();
    let answer = match ConsentAnswer::read(&app, &headers, &params, now, FORBIDDEN).await {
        Ok(answer) => answer,
        Err(page) => return page.into_response(),
    };
    match decision_flow(&app, answer, now).await {
        Ok(answer) => answer.render(&app),
        Err(page) => page.into_response(),
    }
}

/// A verified authorization request, parsed once: the client exists, `redirect_uri` is one of
/// its own, and every other parameter is checked and typed.
#[derive(Debug, Clone)]
struct AuthorizationRequest {
    client_id: ClientId,
    /// Where codes and errors go, with the `state` to echo.
    target: Target,
    /// The registered URI that the request's `redirect_uri` matched (they differ only in a
    /// loopback port); consent is remembered for it.
    registered_uri: RedirectUri,
    /// Registered scopes, in the registry's spelling.
    scopes: Scopes,
    access_type: AccessType,
    prompt: Prompt,
    code_challenge: Option<CodeChallenge>,
    /// OpenID Connect's parameters (`nonce`, `prompt=none|login`, `max_age`).
    oidc: OidcParams,
    /// When the user signed in, once a session is found (the ID token's `auth_time`).
    auth_time: Option<Timestamp>,
}

/// OpenID Connect's part of an authorization request (OIDC Core §3.1.2.1).
#[derive(Debug, Clone, Default)]
struct OidcParams {
    nonce: Option<String>,
    interaction: Interaction,
    max_age: Option<i64>,
    login_hint: Option<String>,
}

/// Where errors and codes go once the redirect URI is verified.
#[derive(Debug, Clone)]
struct Target {
    /// As the client sent it; it matched a registered URI, so it is as safe as that one.
    redirect_uri: RedirectUri,
    /// Byte for byte as received; a repeated `state` cannot be echoed and is dropped.
    state: Option<String>,
}

/// Why a request goes no further: an error page while the redirect URI is unverified, an
/// answer at that URI afterwards.
enum Refused {
    Page(ErrorPage),
    Answer(Answer),
}

impl AuthorizationRequest {
    /// Verifies the client and redirect URI first (failures are pages, never redirects), then
    /// reads the rest in a fixed order, so the first problem is the one reported.
    async fn parse(app: &App, params: &Params) -> Result<(Client, Self), Refused> {
        let client = verify_client(app, params).await.map_err(Refused::Page)?;
        let (redirect_uri, registered) =
            verify_redirect_uri(&client, params).map_err(Refused::Page)?;
        let target = Target {
            redirect_uri: RedirectUri::from_stored(redirect_uri.to_owned()),
            state: params.get("state").ok().flatten().map(str::to_owned),
        };
        let registered_uri = registered.clone();
        match Self::parse_verified(app, params, &client, target.clone(), registered_uri).await {
            Ok(request) => Ok((client, request)),
            Err(Failure::OAuth(error)) => Err(Refused::Answer(Answer::Error { target, error })),
            Err(Failure::Store(e)) => Err(Refused::Page(ErrorPage::from(e))),
            Err(Failure::Internal(why)) => Err(Refused::Page(ErrorPage::internal(&why))),
        }
    }

    /// Every check after the redirect URI is verified; each failure is redirected.
    async fn parse_verified(
        app: &App,
        params: &Params,
        client: &Client,
        target: Target,
        registered_uri: RedirectUri,
    ) -> Result<Self, Failure> {
        params.get("state")?;
        match params.get("response_type")? {
            Some("code") => {}
            Some(_) => return Err(OAuthError::UnsupportedResponseType.into()),
            None => return Err(OAuthError::InvalidRequest("response_type is required").into()),
        }
        let scopes = registered_scopes(app, params.require("scope")?).await?;
        let access_type = AccessType::parse(params.get("access_type")?).ok_or(
            OAuthError::InvalidRequest("access_type must be online or offline"),
        )?;
        let prompt = Prompt::parse(params.get("prompt")?);
        let challenge = params.get("code_challenge")?;
        let method = params.get("code_challenge_method")?;
        let code_challenge = CodeChallenge::from_request(client.kind, challenge, method)?;
        let oidc = OidcParams {
            nonce: oidc::parse_nonce(params.get("nonce")?)?,
            interaction: Interaction::parse(params.get("prompt")?)?,
            max_age: oidc::parse_max_age(params.get("max_age")?)?,
            login_hint: params.get("login_hint")?.map(str::to_owned),
        };
        Ok(Self {
            client_id: client.id.clone(),
            target,
            registered_uri,
            scopes,
            access_type,
            prompt,
            code_challenge,
            oidc,
            auth_time: None,
        })
    }

    /// Whether the session's sign-in time matters: for the ID token, or for `max_age`.
    fn needs_sign_in_time(&self) -> bool {
        oidc::is_openid(&self.scopes) || self.oidc.max_age.is_some()
    }

    /// The same request as a same-origin URL, to continue after login.
    fn login_next(&self) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        query
            .append_pair("response_type", "code")
            .append_pair("client_id", self.client_id.as_str())
            .append_pair("redirect_uri", self.target.redirect_uri.as_str())
            .append_pair("scope", &self.scopes.to_stored())
            .append_pair(
                "access_type",
                match self.access_type {
                    AccessType::Offline => "offline",
                    AccessType::Online => "online",
                },
            );
        if let Some(state) = &self.target.state {
            query.append_pair("state", state);
        }
        if self.prompt == Prompt::Consent {
            query.append_pair("prompt", "consent");
        }
        if let Some(challenge) = &self.code_challenge {
            query
                .append_pair("code_challenge", challenge.as_str())
                .append_pair("code_challenge_method", "S256");
        }
        // Not `prompt=login`: the sign-in it asked for is the one about to happen.
        if let Some(nonce) = &self.oidc.nonce {
            query.append_pair("nonce", nonce);
        }
        if let Some(max_age) = self.oidc.max_age {
            query.append_pair("max_age", &max_age.to_string());
        }
        format!("/oauth/v2/auth?{}", query.finish())
    }
}

/// The request's `redirect_uri` and the registered URI it matches; an error page otherwise
/// (never a redirect to an unverified URI).
pub(crate) fn verify_redirect_uri<'p, 'c>(
    client: &'c Client,
    params: &'p Params,
) -> Result<(&'p str, &'c RedirectUri), ErrorPage> {
    let Ok(Some(redirect_uri)) = params.get("redirect_uri") else {
        return Err(ErrorPage::bad_request(
            "The redirect_uri parameter is missing or repeated.",
        ));
    };
    let Some(registered) = client.redirect_uri(redirect_uri) else {
        return Err(ErrorPage::bad_request(
            "The redirect_uri is not registered for this application.",
        ));
    };
    Ok((redirect_uri, registered))
}

/// The client a browser request names, if it exists here and may use browser sign-in; an
/// error page otherwise.
pub(crate) async fn verify_client(app: &App, params: &Params) -> Result<Client, ErrorPage> {
    let client_id = params
        .get("client_id")
        .ok()
        .flatten()
        .ok_or(ErrorPage::bad_request(
            "The client_id parameter is missing or repeated.",
        ))?;
    let client = if client_id.len() <= MAX_CLIENT_ID_LEN {
        app.store.client(client_id).await?
    } else {
        None
    };
    match client {
        Some(client) if client.kind.uses_redirects() => Ok(client),
        Some(_) => Err(ErrorPage::bad_request(
            "This application cannot use browser sign-in.",
        )),
        None if app.settings.datacenters.is_empty() => {
            Err(ErrorPage::bad_request("The application is not known here."))
        }
        // It may well be registered at another data center, and not enabled here.
        None => Err(ErrorPage::bad_request(format!(
            "The application is not registered at, or not enabled for data center {}.",
            app.settings.location
        ))),
    }
}

/// What the authorization endpoint does next.
enum Step {
    /// No one is signed in: the login page, continuing with this request afterwards.
    SignIn(AuthorizationRequest),
    /// Ask the user; the request waits in the store as a pending consent.
    AskConsent(ConsentPrompt),
    /// Back to the client.
    Answer(Answer),
}

/// What the consent page shows, for a request kept under `consent_id`.
struct ConsentPrompt {
    consent_id: String,
    csrf_token: String,
    user_email: String,
    /// (scope, description)
    scopes: Vec<(String, String)>,
    offline: bool,
}

/// The answer at the verified redirect URI: a code, or an error.
enum Answer {
    Code { target: Target, code: GrantCode },
    Error { target: Target, error: OAuthError },
}

/// Steps 2–4 for a verified request: sign in, consent unless already given for all of these
/// scopes and this redirect URI (T-028: silent approval only for what the user has seen), then
/// a code. `prompt=none` turns every page into an error at the redirect URI (OIDC Core
/// §3.1.2.6); `prompt=login` and `max_age` turn an existing session into a sign-in page.
async fn authorization(
    app: &App,
    client: &Client,
    mut request: AuthorizationRequest,
    signed_in: Option<(SessionToken, User)>,
    now: Timestamp,
) -> Result<Step, ErrorPage> {
    let silent = request.oidc.interaction.none;
    let Some((session, user)) = signed_in else {
        return Ok(sign_in_or(request, silent, OAuthError::LoginRequired));
    };
    // Signed in, but not as the account the client asked for: switching accounts is a page.
    if oidc::hint_names_another_user(request.oidc.login_hint.as_deref(), &user.email) {
        let error =
            OAuthError::InteractionRequired("another account is signed in than login_hint names");
        return Ok(sign_in_or(request, silent, error));
    }
    if request.needs_sign_in_time() || request.oidc.interaction.login {
        let started = app.store.session_started(&session.hash(), now).await?;
        let fresh = started.is_some_and(|at| {
            oidc::session_is_fresh_enough(request.oidc.interaction, request.oidc.max_age, at, now)
        });
        if !fresh {
            return Ok(sign_in_or(request, silent, OAuthError::LoginRequired));
        }
        request.auth_time = started;
    }
    let prior = app
        .store
        .consent_for(user.id, &client.id, request.registered_uri.as_str())
        .await?;
    let covered = prior
        .as_ref()
        .is_some_and(|p| p.covers_all(&request.scopes));
    if must_ask_consent(request.prompt, covered) {
        if silent {
            return Ok(Step::Answer(Answer::Error {
                target: request.target,
                error: OAuthError::ConsentRequired,
            }));
        }
        let prompt = ask_consent(app, &session, &user, &request, now).await?;
        return Ok(Step::AskConsent(prompt));
    }
    // Approved without asking: a consent exists, so this is not the first one.
    let refresh = issues_refresh_token(request.access_type, request.prompt, false);
    let answer = issue_code(app, request, &user, false, refresh, now).await?;
    Ok(Step::Answer(answer))
}

/// The sign-in page, or with `prompt=none` the error that stands for it.
fn sign_in_or(request: AuthorizationRequest, silent: bool, error: OAuthError) -> Step {
    if silent {
        Step::Answer(Answer::Error {
            target: request.target,
            error,
        })
    } else {
        Step::SignIn(request)
    }
}

/// Keeps the request as a pending consent bound to this session, for the consent page.
async fn ask_consent(
    app: &App,
    session: &SessionToken,
    user: &User,
    request: &AuthorizationRequest,
    now: Timestamp,
) -> Result<ConsentPrompt, ErrorPage> {
    let described = app
        .store
        .registered(&request.scopes)
        .await?
        .map_err(|_| ErrorPage::bad_request("A requested scope is no longer registered."))?;
    let consent_id = random_id();
    let json = serde_json::to_string(&PendingRequest::from(request))
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
    Ok(ConsentPrompt {
        consent_id,
        csrf_token: session.csrf_token(),
        user_email: user.email.clone(),
        scopes: described,
        offline: request.access_type == AccessType::Offline,
    })
}

/// Takes the pending request the form answers (a replayed form finds nothing, T-022), and
/// denies it or issues its code.
async fn decision_flow(
    app: &App,
    decision: ConsentAnswer,
    now: Timestamp,
) -> Result<Answer, ErrorPage> {
    let (session, user) = (&decision.session, &decision.user);
    let pending = app
        .store
        .take_pending_consent(&SecretHash::of(&decision.consent_id), &session.hash(), now)
        .await?
        .ok_or(ErrorPage::bad_request(
            "This consent request was already answered or has expired.",
        ))?;
    let request: AuthorizationRequest = serde_json::from_str::<PendingRequest>(&pending)
        .map_err(|_| ErrorPage::bad_request("This consent request cannot be read."))?
        .into();
    let request = still_registered(app, request).await?;
    if !decision.accept {
        return Ok(Answer::Error {
            target: request.target,
            error: OAuthError::AccessDenied("the user rejected the request"),
        });
    }
    let first_consent = app
        .store
        .consent(user.id, &request.client_id)
        .await?
        .is_none();
    let refresh = issues_refresh_token(request.access_type, request.prompt, first_consent);
    issue_code(app, request, user, true, refresh, now).await
}

/// The pending request, if its client still exists and still registers its redirect URI:
/// either may have been removed while the consent page was open, and then neither a code nor
/// the rejection may go there (RFC 6749 §4.1.2.1: never redirect to an unverified URI). The
/// registered URI it matches now is the one consent is remembered for.
async fn still_registered(
    app: &App,
    mut request: AuthorizationRequest,
) -> Result<AuthorizationRequest, ErrorPage> {
    let client = app.store.client(request.client_id.as_str()).await?;
    let registered = client
        .as_ref()
        .filter(|client| client.kind.uses_redirects())
        .and_then(|client| client.redirect_uri(request.target.redirect_uri.as_str()));
    match registered {
        Some(uri) => {
            request.registered_uri = uri.clone();
            Ok(request)
        }
        None => Err(ErrorPage::bad_request(NO_LONGER_REGISTERED)),
    }
}

const NO_LONGER_REGISTERED: &str =
    "This application or its redirect URI is no longer registered, so nothing was sent to it.";

/// Stores a code for the request (and the consent, when the user just gave it), within the
/// per-(user, client) code throttle.
async fn issue_code(
    app: &App,
    request: AuthorizationRequest,
    user: &User,
    record_consent: bool,
    issue_refresh_token: bool,
    now: Timestamp,
) -> Result<Answer, ErrorPage> {
    let code = GrantCode::generate(app.tag);
    let new = NewCode {
        grant: CodeGrant {
            code_hash: code.hash(),
            client_id: request.client_id,
            user_id: user.id,
            redirect_uri: Some(request.target.redirect_uri.as_str().to_owned()),
            scopes: request.scopes.clone(),
            issue_refresh_token,
            code_challenge: request.code_challenge.map(|c| c.as_str().to_owned()),
            expires_at: now.plus(app.settings.limits.code_lifetime_secs),
            redeemed_at: None,
            oidc: SignIn {
                auth_time: request.auth_time,
                nonce: request.oidc.nonce,
            },
        },
        description: None,
        record_consent: record_consent.then(|| ConsentRecord {
            scopes: request.scopes,
            redirect_uri: request.registered_uri.as_str().to_owned(),
        }),
    };
    let target = request.target;
    let issued = match app.store.add_code(&new, now, &app.settings.limits).await {
        Ok(issued) => issued,
        // The client went between the check and the write (SQLite reports the code's foreign
        // key as a conflict): the same page as when the check sees it gone.
        Err(StoreError::Conflict(_)) => return Err(ErrorPage::bad_request(NO_LONGER_REGISTERED)),
        Err(e) => return Err(e.into()),
    };
    Ok(match issued {
        CodeIssue::Issued => Answer::Code { target, code },
        CodeIssue::Throttled { .. } => Answer::Error {
            target,
            error: OAuthError::AccessDenied("too many codes for this user and client"),
        },
    })
}

impl Step {
    fn render(self, app: &App, headers: &HeaderMap, client: &Client) -> Response {
        match self {
            Step::SignIn(request) => login_page(
                app,
                headers,
                &request.login_next(),
                "",
                None,
                Some(&client.name),
            ),
            Step::AskConsent(prompt) => {
                let page = ConsentPage {
                    client_name: &client.name,
                    homepage: client.homepage.as_deref(),
                    user_email: &prompt.user_email,
                    scopes: prompt.scopes,
                    offline: prompt.offline,
                    csrf_token: &prompt.csrf_token,
                    consent_id: &prompt.consent_id,
                    location: &app.settings.location,
                    action: CONSENT_ACTION,
                };
                Html(pages::render(&page)).into_response()
            }
            Step::Answer(answer) => answer.render(app),
        }
    }
}

impl Answer {
    /// CONTRACT.md step 5: `code`, `location`, `accounts-server`, `state` when sent, and `iss`;
    /// an error carries `error`, `state` and `iss`. The URI's own query is kept.
    fn render(self, app: &App) -> Response {
        let settings = &app.settings;
        let (target, mut params) = match &self {
            Answer::Code { target, code } => (
                target,
                vec![
                    ("code", code.expose()),
                    ("location", settings.location.as_str()),
                    ("accounts-server", settings.public_url.as_str()),
                ],
            ),
            Answer::Error { target, error } => (target, vec![("error", error.redirect_name())]),
        };
        if let Some(state) = &target.state {
            params.push(("state", state));
        }
        params.push(("iss", settings.public_url.as_str()));
        redirect(&target.redirect_uri.with_params(&params))
    }
}

pub(crate) fn redirect(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(value) => (StatusCode::FOUND, [(LOCATION, value)]).into_response(),
        Err(_) => ErrorPage::bad_request("The redirect URI cannot be used.").into_response(),
    }
}

/// A request waiting for consent, as kept in `pending_consents` (JSON). The shape predates the
/// typed request and must stay readable across an upgrade, so it is written field for field.
#[derive(Debug, Serialize, Deserialize)]
struct PendingRequest {
    client_id: String,
    redirect_uri: String,
    registered_uri: String,
    state: Option<String>,
    /// Space-separated, as `Scopes::to_stored` writes them.
    scopes: String,
    offline: bool,
    prompt_consent: bool,
    code_challenge: Option<String>,
    /// OpenID Connect: left out when absent, so older pending consents read the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nonce: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    auth_time: Option<i64>,
}

impl From<&AuthorizationRequest> for PendingRequest {
    fn from(request: &AuthorizationRequest) -> Self {
        Self {
            client_id: request.client_id.as_str().to_owned(),
            redirect_uri: request.target.redirect_uri.as_str().to_owned(),
            registered_uri: request.registered_uri.as_str().to_owned(),
            state: request.target.state.clone(),
            scopes: request.scopes.to_stored(),
            offline: request.access_type == AccessType::Offline,
            prompt_consent: request.prompt == Prompt::Consent,
            code_challenge: request
                .code_challenge
                .as_ref()
                .map(|c| c.as_str().to_owned()),
            nonce: request.oidc.nonce.clone(),
            auth_time: request.auth_time.map(|t| t.0),
        }
    }
}

/// Every field was checked before it was kept, so it is read back as is.
impl From<PendingRequest> for AuthorizationRequest {
    fn from(pending: PendingRequest) -> Self {
        Self {
            client_id: ClientId::new(pending.client_id),
            target: Target {
                redirect_uri: RedirectUri::from_stored(pending.redirect_uri),
                state: pending.state,
            },
            registered_uri: RedirectUri::from_stored(pending.registered_uri),
            scopes: Scopes::from_stored(&pending.scopes),
            access_type: if pending.offline {
                AccessType::Offline
            } else {
                AccessType::Online
            },
            prompt: if pending.prompt_consent {
                Prompt::Consent
            } else {
                Prompt::Default
            },
            code_challenge: pending.code_challenge.map(CodeChallenge::from_stored),
            // Only what a code needs: the page has been shown, so prompt and max_age are spent.
            oidc: OidcParams {
                nonce: pending.nonce,
                ..OidcParams::default()
            },
            auth_time: pending.auth_time.map(Timestamp),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pending consent written before the typed request existed.
    const STORED: &str = r#"{"client_id":"1000.ABC","redirect_uri":"http://127.0.0.1:5000/cb","registered_uri":"http://127.0.0.1/cb","state":"s t","scopes":"A.b.READ Demo.x.ALL","offline":true,"prompt_consent":false,"code_challenge":"E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"}"#;

    #[test]
    fn pending_consents_read_and_write_the_same_json() {
        let pending: Option<PendingRequest> = serde_json::from_str(STORED).ok();
        let request = pending.map(AuthorizationRequest::from);
        assert_eq!(
            request.as_ref().map(|r| r.access_type),
            Some(AccessType::Offline)
        );
        assert_eq!(request.as_ref().map(|r| r.prompt), Some(Prompt::Default));
        let written = request
            .as_ref()
            .and_then(|r| serde_json::to_string(&PendingRequest::from(r)).ok());
        assert_eq!(written.as_deref(), Some(STORED));
    }

    #[test]
    fn login_next_repeats_the_request() {
        let pending: Option<PendingRequest> = serde_json::from_str(STORED).ok();
        let next = pending.map(|p| AuthorizationRequest::from(p).login_next());
        assert_eq!(
            next.as_deref(),
            Some(concat!(
                "/oauth/v2/auth?response_type=code&client_id=1000.ABC",
                "&redirect_uri=http%3A%2F%2F127.0.0.1%3A5000%2Fcb&scope=A.b.READ+Demo.x.ALL",
                "&access_type=offline&state=s+t",
                "&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
                "&code_challenge_method=S256"
            ))
        );
    }
}
