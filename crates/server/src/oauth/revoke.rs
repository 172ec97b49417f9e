//! `POST /oauth/v2/token/revoke` (RFC 7009, in Zoho's shape). Holding the token is the
//! authority, as Zoho's SDKs send no client credentials; when credentials are sent they must be
//! right, and only that client's tokens can be revoked.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use grantd_core::secret::SecretHash;
use grantd_core::Dialect;
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
    match revoke_token(&app, &params, &caller).await {
        Ok(true) => success(),
        // RFC 7009 §2.2: an unknown token is not an error; Zoho says invalid_token.
        Ok(false) => match caller.dialect {
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

fn success() -> Response {
    Json(Status::success()).into_response()
}

/// Whether a token was found and revoked. Another client's token counts as unknown, so the
/// endpoint cannot be used to probe for tokens (T-054).
async fn revoke_token(app: &App, params: &Params, caller: &Caller) -> Result<bool, Failure> {
    // `token_type_hint` is accepted and not needed: both kinds are found by hash.
    let _hint = params.get("token_type_hint")?;
    let token = params.require("token")?;
    let owner = if caller.credentials.is_empty() {
        None
    } else {
        Some(&caller.authenticated()?.id)
    };
    Ok(app.store.revoke(&SecretHash::of(token), owner).await?)
}
