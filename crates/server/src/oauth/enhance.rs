//! `POST /oauth/v2/token/scopeenhance` (Zoho's incremental authorization, CONTRACT.md): a client
//! trades one of its refresh tokens (`grant_type=update_scopes_token`) for an enhance token,
//! which `addextrascope` (`enhance_page.rs`) takes to ask the user for more scopes. The answer
//! is Zoho's `{"access_token":..,"token_type":"update_scope","expires_in":600}`; errors are the
//! token endpoint's, in the client's dialect.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;

use grantd_core::datacenter::unknown_here;
use grantd_core::enhance::ENHANCE_TOKEN_LIFETIME_SECS;
use grantd_core::secret::{EnhanceToken, RefreshToken};
use grantd_core::{OAuthError, Timestamp};
use grantd_store::{EnhanceVerbs, NewEnhanceToken};
use grantd_wire::EnhanceTokenResponse;

use super::client_auth::Caller;
use crate::app::App;
use crate::error::Failure;
use crate::params::Params;

pub const UPDATE_SCOPES_GRANT: &str = "update_scopes_token";

pub async fn scope_enhance(State(app): State<App>, headers: HeaderMap, params: Params) -> Response {
    let now = app.clock.now();
    let caller = match Caller::identify(&app, &headers, &params).await {
        Ok(caller) => caller,
        Err(e) => return e.into_response(),
    };
    match enhance_token(&app, &params, &caller, now).await {
        Ok(token) => Json(EnhanceTokenResponse::update_scope(
            token.expose(),
            ENHANCE_TOKEN_LIFETIME_SECS,
        ))
        .into_response(),
        Err(failure) => caller.error(failure).into_response(),
    }
}

/// The client first, then the grant type, then the refresh token, which must be this client's.
async fn enhance_token(
    app: &App,
    params: &Params,
    caller: &Caller,
    now: Timestamp,
) -> Result<EnhanceToken, Failure> {
    let client = caller
        .authenticated()
        .map_err(|e| match (e, &caller.client) {
            // Known, but the secret is wrong: Zoho's docs name this apart here.
            (OAuthError::InvalidClient, Some(_)) => OAuthError::InvalidClientSecret,
            (e, _) => e,
        })?;
    if params.require("grant_type")? != UPDATE_SCOPES_GRANT {
        return Err(OAuthError::UnsupportedGrantType.into());
    }
    let refresh = RefreshToken::from_wire(params.require("refresh_token")?.to_owned());
    let token = EnhanceToken::generate(app.tag);
    let new = NewEnhanceToken {
        hash: token.hash(),
        expires_at: now.plus(ENHANCE_TOKEN_LIFETIME_SECS),
    };
    if app
        .store
        .add_enhance_token(&refresh.hash(), &client.id, &new, now)
        .await?
    {
        return Ok(token);
    }
    Err(unknown_here(
        refresh.expose(),
        "refresh token",
        &app.settings.datacenters,
        OAuthError::InvalidGrant("the refresh token is invalid, revoked or another client's"),
    )
    .into())
}
