//! `POST /oauth/v2/token/revoke` (RFC 7009, in Zoho's shape), and Zoho's newer form
//! `POST /oauth/v2/revoke/token`. At the older one holding the token is the authority, as
//! Zoho's SDKs send no client credentials; when credentials are sent they must be right, and
//! only that client's tokens can be revoked. The newer form always authenticates the client
//! (HTTP Basic, as Zoho's docs show it) and names the `token_type`; otherwise it is the same
//! rule, `revoke_token`, with the same answers.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use grantd_core::secret::SecretHash;
use grantd_core::{Dialect, OAuthError};
use grantd_store::TokenVerbs;
use grantd_wire::{ErrorBody, Status};

use super::client_auth::Caller;
use crate::app::App;
use crate::error::Failure;
use crate::params::Params;

pub async fn revoke(State(app): State<App>, headers: HeaderMap, params: Params) -> Response {
    let caller = match Caller::identify(&app, &headers, &params).await {
        Ok(caller) => caller,
        Err(e) => return e.into_response(),
    };
    let revoked = match presented_token(&params) {
        Ok(token) => revoke_token(&app, &caller, &token).await,
        Err(e) => Err(e.into()),
    };
    answer(&caller, revoked)
}

/// `POST /oauth/v2/revoke/token` (Zoho's newer form): client authentication, `token` and
/// `token_type` (`refresh_token` or `access_token`). A wrong secret is `invalid_client` and
/// revokes nothing.
pub async fn revoke_newer(State(app): State<App>, headers: HeaderMap, params: Params) -> Response {
    let caller = match Caller::identify(&app, &headers, &params).await {
        Ok(caller) => caller,
        Err(e) => return e.into_response(),
    };
    let revoked = match newer_request(&params, &caller) {
        Ok(token) => revoke_token(&app, &caller, &token).await,
        Err(e) => Err(e.into()),
    };
    answer(&caller, revoked)
}

/// Success, or the unknown token in the caller's dialect, or the error.
fn answer(caller: &Caller, revoked: Result<Revocation, Failure>) -> Response {
    match revoked {
        Ok(Revocation::Revoked) => success(),
        // RFC 7009 §2.2: an unknown token is not an error; Zoho says invalid_token, with a 400
        // (CONTRACT.md "Error dialects", the one row outside core's table: it is not an error
        // in the standard dialect).
        Ok(Revocation::Unknown) => match caller.dialect {
            Dialect::Standard => success(),
            Dialect::Zoho => (
                StatusCode::BAD_REQUEST,
                Json(ErrorBody::described(
                    "invalid_token",
                    "the token is invalid",
                )),
            )
                .into_response(),
        },
        Err(failure) => caller.error(failure).into_response(),
    }
}

/// The newer form's token: the client must authenticate, and `token_type`, when sent, must
/// name one of the two kinds (both are found by hash, so it only has to be right).
fn newer_request(params: &Params, caller: &Caller) -> Result<SecretHash, OAuthError> {
    if caller.credentials.is_empty() {
        return Err(OAuthError::InvalidClient);
    }
    match params.get("token_type")? {
        None | Some("refresh_token") | Some("access_token") => {}
        Some(_) => {
            return Err(OAuthError::InvalidRequest(
                "token_type must be refresh_token or access_token",
            ))
        }
    }
    Ok(SecretHash::of(params.require("token")?))
}

fn success() -> Response {
    Json(Status::success()).into_response()
}

/// The `token` to revoke, as the hash it is found by. `token_type_hint` is accepted and not
/// needed: both kinds are found by hash.
fn presented_token(params: &Params) -> Result<SecretHash, OAuthError> {
    params.get("token_type_hint")?;
    Ok(SecretHash::of(params.require("token")?))
}

enum Revocation {
    Revoked,
    /// Unknown, already revoked, or another client's: the same answer (T-054).
    Unknown,
}

/// Revokes the token (a refresh token with every access token minted from it). Without client
/// credentials holding the token is the authority; with them, they must be right and the
/// token must be that client's, so the endpoint cannot be used to probe for tokens (T-054).
async fn revoke_token(
    app: &App,
    caller: &Caller,
    token: &SecretHash,
) -> Result<Revocation, Failure> {
    let owner = if caller.credentials.is_empty() {
        None
    } else {
        Some(&caller.authenticated()?.id)
    };
    Ok(if app.store.revoke(token, owner).await? {
        Revocation::Revoked
    } else {
        Revocation::Unknown
    })
}
