//! `POST /oauth/v2/token/revoke` (RFC 7009, in Zoho's shape). Holding the token is the
//! authority, as Zoho's SDKs send no client credentials; when credentials are sent they must be
//! right, and only that client's tokens can be revoked.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use grantd_core::secret::SecretHash;
use grantd_core::Dialect;

use super::client_auth::{dialect_of, Credentials};
use crate::app::App;
use crate::error::{ApiError, Failure};
use crate::params::Params;

pub async fn revoke(State(app): State<App>, headers: HeaderMap, params: Params) -> Response {
    let default = app.settings.default_dialect;
    let credentials = match Credentials::read(&headers, &params) {
        Ok(c) => c,
        Err(e) => return ApiError::new(e, default).into_response(),
    };
    let client = match credentials.claimed_client(&app).await {
        Ok(client) => client,
        Err(e) => return ApiError::new(e, default).into_response(),
    };
    let dialect = dialect_of(client.as_ref(), &app);
    match revoke_token(&app, &params, &credentials, client).await {
        Ok(true) => success(),
        // RFC 7009 §2.2: an unknown token is not an error; Zoho says invalid_token.
        Ok(false) => match dialect {
            Dialect::Standard => success(),
            Dialect::Zoho => (
                StatusCode::BAD_REQUEST,
                Json(
                    json!({"error": "invalid_token", "error_description": "the token is invalid"}),
                ),
            )
                .into_response(),
        },
        Err(failure) => ApiError {
            failure,
            dialect,
            basic: credentials.basic,
        }
        .into_response(),
    }
}

fn success() -> Response {
    Json(json!({"status": "success"})).into_response()
}

/// Whether a token was found and revoked. Another client's token counts as unknown, so the
/// endpoint cannot be used to probe for tokens (T-054).
async fn revoke_token(
    app: &App,
    params: &Params,
    credentials: &Credentials,
    client: Option<grantd_core::Client>,
) -> Result<bool, Failure> {
    // `token_type_hint` is accepted and not needed: both kinds are found by hash.
    let _hint = params.get("token_type_hint")?;
    let token = params.require("token")?;
    let owner = if credentials.is_empty() {
        None
    } else {
        Some(credentials.verify(client)?.id)
    };
    Ok(app
        .store
        .revoke(&SecretHash::of(token), owner.as_ref())
        .await?)
}
