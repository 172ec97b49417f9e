//! `POST /oauth/v2/token`: the authorization_code, refresh_token and client_credentials grants
//! (RFC 6749 §4.1.3, §6, §4.4; CONTRACT.md) and RFC 8628's device_code grant (its flow is
//! `device.rs`'s). The hot path: one SHA-256 per secret, one read of
//! the client, one write transaction. The handler authenticates the caller, parses one
//! `TokenRequest`, calls its flow and renders what was `Issued`.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;

use grantd_core::datacenter::unknown_here;
use grantd_core::grant::{refresh_scopes, CodeGrant, SignIn};
use grantd_core::oidc::{self, IdTokenFor, Subject};
use grantd_core::secret::{AccessToken, DeviceCode, GrantCode, RefreshToken};
use grantd_core::{Client, ClientType, OAuthError, Scopes, Timestamp};
use grantd_store::{AccessIssue, NewAccess, NewTokens, Redemption, RefreshOutcome};
use grantd_store::{AccountVerbs, TokenVerbs};
use grantd_wire::TokenResponse;

use super::client_auth::Caller;
use super::device::{self, DEVICE_CODE_GRANT};
use super::registered_scopes;
use crate::app::App;
use crate::error::Failure;
use crate::params::Params;

pub async fn token(State(app): State<App>, headers: HeaderMap, params: Params) -> Response {
    let now = app.clock.now();
    let caller = match Caller::identify(&app, &headers, &params).await {
        Ok(caller) => caller,
        Err(e) => return e.into_response(),
    };
    let issued = match authenticated_request(&app, &params, &caller).await {
        Ok((client, request)) => grant(&app, client, request, now).await,
        Err(failure) => Err(failure),
    };
    match issued {
        Ok(issued) => Json(issued.render(&app)).into_response(),
        Err(failure) => caller.error(failure).into_response(),
    }
}

/// Authenticates the caller, then parses the one grant it asks for.
async fn authenticated_request<'c>(
    app: &App,
    params: &Params,
    caller: &'c Caller,
) -> Result<(&'c Client, TokenRequest), Failure> {
    let client = caller.authenticated()?;
    Ok((client, TokenRequest::parse(app, params, client).await?))
}

/// OIDC Core §3.1.3.3 and §12.2: with `openid` granted, an ID token for the access token just
/// issued, signed with the client's algorithm's key in memory. The user is read only then.
pub(super) async fn id_token(
    app: &App,
    client: &Client,
    user_id: i64,
    scopes: &Scopes,
    sign_in: &SignIn,
    access: &AccessToken,
    now: Timestamp,
) -> Result<Option<String>, Failure> {
    if !oidc::is_openid(scopes) {
        return Ok(None);
    }
    let alg = oidc::id_token_alg(client, app.settings.id_token_signing_alg);
    let keys = app.keys.current();
    if !keys.can_sign(alg) {
        return Err(Failure::Internal(format!(
            "no {alg} ID-token signing key is loaded"
        )));
    }
    // Deleted between the grant and now: its cascade took the tokens too, so this grant is
    // as good as unknown.
    let user = app
        .store
        .user(user_id)
        .await?
        .ok_or(OAuthError::InvalidGrant(
            "the user of this grant no longer exists",
        ))?;
    let claims = oidc::id_token_claims(
        IdTokenFor {
            issuer: &app.settings.public_url,
            client_id: client.id.as_str(),
            user: Subject {
                id: user.id,
                email: &user.email,
                name: &user.name,
            },
            scopes,
            // Grants from before OpenID Connect: the best known bound is now.
            auth_time: sign_in.auth_time.unwrap_or(now),
            nonce: sign_in.nonce.as_deref(),
            access_token: access.expose(),
            alg,
            lifetime_secs: app.settings.limits.access_token_lifetime_secs,
        },
        now,
    );
    keys.sign(alg, &claims)
        .map(Some)
        .map_err(|e| Failure::Internal(e.to_string()))
}

/// Runs the grant's flow.
async fn grant(
    app: &App,
    client: &Client,
    request: TokenRequest,
    now: Timestamp,
) -> Result<Issued, Failure> {
    match request {
        TokenRequest::AuthorizationCode {
            code,
            redirect_uri,
            code_verifier,
        } => exchange(app, client, code, redirect_uri, code_verifier, now).await,
        TokenRequest::RefreshToken {
            refresh_token,
            scopes,
        } => refresh(app, client, refresh_token, scopes, now).await,
        TokenRequest::ClientCredentials { owner, scopes } => {
            client_credentials(app, client, owner, scopes, now).await
        }
        TokenRequest::DeviceCode { device_code } => {
            device::poll(app, client, device_code, now).await
        }
    }
}

/// A token request, parsed once for the authenticated client.
#[derive(Debug)]
enum TokenRequest {
    /// RFC 6749 §4.1.3 (and RFC 7636 §4.5): a code from the redirect flow or the console.
    AuthorizationCode {
        code: GrantCode,
        /// Compared byte for byte with the code's own (absent for Self Client codes); never
        /// followed, so not parsed further.
        redirect_uri: Option<String>,
        code_verifier: Option<String>,
    },
    /// RFC 6749 §6: `scopes`, when sent, are registered scopes the grant must cover.
    RefreshToken {
        refresh_token: RefreshToken,
        scopes: Option<Scopes>,
    },
    /// RFC 6749 §4.4, for a Self Client: access to its owner's own data.
    ClientCredentials { owner: i64, scopes: Scopes },
    /// RFC 8628 §3.4: a device polls with its device code.
    DeviceCode { device_code: DeviceCode },
}

impl TokenRequest {
    /// Reads the parameters of `grant_type` in a fixed order, so the first problem is the one
    /// reported; scopes are checked against the registry here, once.
    async fn parse(app: &App, params: &Params, client: &Client) -> Result<Self, Failure> {
        match params.require("grant_type")? {
            "authorization_code" => Ok(TokenRequest::AuthorizationCode {
                code: GrantCode::from_wire(params.require("code")?.to_owned()),
                redirect_uri: params.get("redirect_uri")?.map(str::to_owned),
                code_verifier: params.get("code_verifier")?.map(str::to_owned),
            }),
            "refresh_token" => {
                let refresh_token =
                    RefreshToken::from_wire(params.require("refresh_token")?.to_owned());
                let scopes = match params.get("scope")? {
                    Some(raw) => Some(registered_scopes(app, raw).await?),
                    None => None,
                };
                Ok(TokenRequest::RefreshToken {
                    refresh_token,
                    scopes,
                })
            }
            "client_credentials" => {
                // Who may use the grant is checked before its parameters.
                let owner = match (client.kind, client.owner_id) {
                    (ClientType::SelfClient, Some(owner)) => owner,
                    _ => {
                        return Err(OAuthError::UnauthorizedClient(
                            "only a Self Client may use the client_credentials grant",
                        )
                        .into())
                    }
                };
                let scopes = registered_scopes(app, params.require("scope")?).await?;
                Ok(TokenRequest::ClientCredentials { owner, scopes })
            }
            DEVICE_CODE_GRANT => Ok(TokenRequest::DeviceCode {
                device_code: DeviceCode::from_wire(params.require("device_code")?.to_owned()),
            }),
            _ => Err(OAuthError::UnsupportedGrantType.into()),
        }
    }
}

/// What a grant issued, before it is written on the wire.
pub(super) struct Issued {
    pub(super) access: AccessToken,
    /// Only where the grant issues one (CONTRACT.md): a code exchange's, a public client's
    /// rotated one on refresh, an offline device grant's; never on client_credentials.
    pub(super) refresh: Option<RefreshToken>,
    pub(super) scopes: Scopes,
    /// With `openid`: the ID token (a JWS, not a secret of ours: it proves, it opens nothing).
    pub(super) id_token: Option<String>,
}

impl Issued {
    /// The success body (RFC 6749 §5.1, with Zoho's `api_domain`): the one place a token's
    /// secret is exposed to the wire.
    pub(super) fn render(&self, app: &App) -> TokenResponse {
        TokenResponse::bearer(
            self.access.expose(),
            self.refresh.as_ref().map(RefreshToken::expose),
            self.scopes.to_stored(),
            &app.settings.api_domain,
            app.settings.limits.access_token_lifetime_secs,
        )
        .with_id_token(self.id_token.clone())
    }
}

/// RFC 6749 §4.1.3: redeem a code from the redirect flow or the Self Client console.
async fn exchange(
    app: &App,
    client: &Client,
    code: GrantCode,
    redirect_uri: Option<String>,
    verifier: Option<String>,
    now: Timestamp,
) -> Result<Issued, Failure> {
    let limits = &app.settings.limits;
    let access = AccessToken::generate(app.tag);
    let refresh = RefreshToken::generate(app.tag);
    let tokens = NewTokens {
        access: NewAccess {
            hash: access.hash(),
            expires_at: now.plus(limits.access_token_lifetime_secs),
        },
        refresh_hash: refresh.hash(),
    };
    // The store may decide on its writer thread, so the rule gets its own copy of the request.
    let presenter = client.clone();
    let decide = move |grant: &CodeGrant| {
        grant.check_redemption(
            &presenter,
            redirect_uri.as_deref(),
            verifier.as_deref(),
            now,
        )
    };
    match app
        .store
        .redeem_code(&code.hash(), decide, &tokens, now, limits)
        .await?
    {
        Redemption::Unknown => Err(unknown_here(
            code.expose(),
            "grant code",
            &app.settings.datacenters,
            OAuthError::InvalidGrant("the code is invalid or expired"),
        )
        .into()),
        Redemption::Rejected(rejection) => Err(rejection.error().into()),
        Redemption::Issued(grant) => {
            let id_token = id_token(
                app,
                client,
                grant.user_id,
                &grant.scopes,
                &grant.oidc,
                &access,
                now,
            )
            .await?;
            Ok(Issued {
                access,
                refresh: grant.issue_refresh_token.then_some(refresh),
                scopes: grant.scopes,
                id_token,
            })
        }
    }
}

/// RFC 6749 §6: a new access token for a refresh token. A confidential client's refresh token
/// is not rotated (Zoho's model); a public client's is (RFC 9700 §2.2.2): the response carries
/// its successor, and the one presented is retired.
async fn refresh(
    app: &App,
    client: &Client,
    token: RefreshToken,
    requested: Option<Scopes>,
    now: Timestamp,
) -> Result<Issued, Failure> {
    let limits = &app.settings.limits;
    let access = AccessToken::generate(app.tag);
    let successor = client
        .kind
        .rotates_refresh_tokens()
        .then(|| RefreshToken::generate(app.tag));
    let rotate_to = successor.as_ref().map(RefreshToken::hash);
    let outcome = app
        .store
        .refresh(
            &token.hash(),
            &client.id,
            |grant| refresh_scopes(&grant.scopes, requested),
            &NewAccess {
                hash: access.hash(),
                expires_at: now.plus(limits.access_token_lifetime_secs),
            },
            rotate_to.as_ref(),
            now,
            limits,
        )
        .await?;
    match outcome {
        RefreshOutcome::Unknown => Err(unknown_here(
            token.expose(),
            "refresh token",
            &app.settings.datacenters,
            OAuthError::InvalidGrant("the refresh token is invalid or revoked"),
        )
        .into()),
        RefreshOutcome::Replayed => Err(OAuthError::InvalidGrant(
            "the refresh token was already used; every token of its grant is revoked",
        )
        .into()),
        RefreshOutcome::Rejected(e) => Err(e.into()),
        RefreshOutcome::Throttled { retry_after } => {
            Err(OAuthError::Throttled { retry_after }.into())
        }
        RefreshOutcome::Issued {
            user_id,
            scopes,
            auth_time,
        } => {
            // OIDC Core §12.2: the same auth_time as the first ID token, and no nonce.
            let sign_in = SignIn {
                auth_time,
                nonce: None,
            };
            let id_token = id_token(app, client, user_id, &scopes, &sign_in, &access, now).await?;
            Ok(Issued {
                access,
                refresh: successor,
                scopes,
                id_token,
            })
        }
    }
}

/// RFC 6749 §4.4, for Self Clients only: the owner's own access, without a refresh token,
/// within the client's mint throttle and cap on active tokens (CONTRACT.md "Limits").
async fn client_credentials(
    app: &App,
    client: &Client,
    owner: i64,
    scopes: Scopes,
    now: Timestamp,
) -> Result<Issued, Failure> {
    let limits = &app.settings.limits;
    let access = AccessToken::generate(app.tag);
    let new = NewAccess {
        hash: access.hash(),
        expires_at: now.plus(limits.access_token_lifetime_secs),
    };
    match app
        .store
        .add_access_token(&new, &client.id, owner, &scopes, now, limits)
        .await?
    {
        // No one signed in, so no ID token, whatever the scopes.
        AccessIssue::Issued => Ok(Issued {
            access,
            refresh: None,
            scopes,
            id_token: None,
        }),
        AccessIssue::Throttled { retry_after } => Err(OAuthError::Throttled { retry_after }.into()),
    }
}
