//! `POST /oauth/v2/token`: the authorization_code, refresh_token and client_credentials grants
//! (RFC 6749 §4.1.3, §6, §4.4; CONTRACT.md). The hot path: one SHA-256 per secret, one read of
//! the client, one write transaction.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;

use grantd_core::grant::refresh_scopes;
use grantd_core::secret::{AccessToken, GrantCode, RefreshToken};
use grantd_core::{Client, ClientType, OAuthError, Scopes, Timestamp};
use grantd_store::{NewAccess, NewTokens, Redemption, RefreshOutcome};
use grantd_wire::TokenResponse;

use super::client_auth::Caller;
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
    match grant(&app, &params, &caller, now).await {
        Ok(issued) => Json(issued).into_response(),
        Err(failure) => caller.error(failure).into_response(),
    }
}

/// The success body (RFC 6749 §5.1, with Zoho's `api_domain`): the one place a token's
/// secret is exposed to the wire.
fn token_response(
    app: &App,
    access: &AccessToken,
    refresh: Option<&RefreshToken>,
    scopes: &Scopes,
) -> TokenResponse {
    TokenResponse::bearer(
        access.expose(),
        refresh.map(RefreshToken::expose),
        scopes.to_stored(),
        &app.settings.api_domain,
        app.settings.limits.access_token_lifetime_secs,
    )
}

async fn grant(
    app: &App,
    params: &Params,
    caller: &Caller,
    now: Timestamp,
) -> Result<TokenResponse, Failure> {
    let client = caller.authenticated()?;
    match params.require("grant_type")? {
        "authorization_code" => exchange(app, params, client, now).await,
        "refresh_token" => refresh(app, params, client, now).await,
        "client_credentials" => client_credentials(app, params, client, now).await,
        _ => Err(OAuthError::UnsupportedGrantType.into()),
    }
}

/// RFC 6749 §4.1.3: redeem a code from the redirect flow or the Self Client console.
async fn exchange(
    app: &App,
    params: &Params,
    client: &Client,
    now: Timestamp,
) -> Result<TokenResponse, Failure> {
    let code = GrantCode::from_wire(params.require("code")?.to_owned());
    let redirect_uri = params.get("redirect_uri")?;
    let verifier = params.get("code_verifier")?;
    let limits = &app.settings.limits;
    let access = AccessToken::generate();
    let refresh = RefreshToken::generate();
    let tokens = NewTokens {
        access: NewAccess {
            hash: access.hash(),
            expires_at: now.plus(limits.access_token_lifetime_secs),
        },
        refresh_hash: refresh.hash(),
    };
    // The store may decide on its writer thread, so the rule gets its own copy of the request.
    let (presenter, redirect_uri, verifier) = (
        client.clone(),
        redirect_uri.map(str::to_owned),
        verifier.map(str::to_owned),
    );
    let decide = move |grant: &grantd_core::grant::CodeGrant| {
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
        Redemption::Unknown => {
            Err(OAuthError::InvalidGrant("the code is invalid or expired").into())
        }
        Redemption::Rejected(rejection) => Err(rejection.error().into()),
        Redemption::Issued(grant) => {
            let refresh = grant.issue_refresh_token.then_some(&refresh);
            Ok(token_response(app, &access, refresh, &grant.scopes))
        }
    }
}

/// RFC 6749 §6: a new access token for a refresh token; the refresh token is not rotated.
async fn refresh(
    app: &App,
    params: &Params,
    client: &Client,
    now: Timestamp,
) -> Result<TokenResponse, Failure> {
    let token = RefreshToken::from_wire(params.require("refresh_token")?.to_owned());
    let requested = match params.get("scope")? {
        Some(raw) => Some(registered_scopes(app, raw).await?),
        None => None,
    };
    let limits = &app.settings.limits;
    let access = AccessToken::generate();
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
            now,
            limits,
        )
        .await?;
    match outcome {
        RefreshOutcome::Unknown => {
            Err(OAuthError::InvalidGrant("the refresh token is invalid or revoked").into())
        }
        RefreshOutcome::Rejected(e) => Err(e.into()),
        RefreshOutcome::Throttled { retry_after } => {
            Err(OAuthError::Throttled { retry_after }.into())
        }
        RefreshOutcome::Issued { scopes, .. } => Ok(token_response(app, &access, None, &scopes)),
    }
}

/// RFC 6749 §4.4, for Self Clients only: the owner's own access, without a refresh token.
async fn client_credentials(
    app: &App,
    params: &Params,
    client: &Client,
    now: Timestamp,
) -> Result<TokenResponse, Failure> {
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
    let access = AccessToken::generate();
    let new = NewAccess {
        hash: access.hash(),
        expires_at: now.plus(app.settings.limits.access_token_lifetime_secs),
    };
    app.store
        .add_access_token(&new, &client.id, owner, &scopes, now)
        .await?;
    Ok(token_response(app, &access, None, &scopes))
}
