//! Using an access token: `/oauth/user/info` (RFC 6750 bearer usage, with Zoho's
//! `Zoho-oauthtoken` scheme) and `/oauth/v2/introspect` (RFC 7662). Validation is one indexed
//! read by hash on the reader pool; no cache, so a revocation is seen at once.

use axum::extract::State;
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use grantd_core::secret::SecretHash;
use grantd_core::{Scope, Timestamp};

use super::client_auth::Caller;
use crate::app::App;
use crate::error::{store_failure, Failure};
use crate::params::Params;
use grantd_store::TokenVerbs;

const PROFILE_SCOPE: &str = "AaaServer.profile.READ";

pub async fn user_info(State(app): State<App>, headers: HeaderMap) -> Response {
    let now = app.clock.now();
    let Some(token) = bearer(&headers) else {
        return challenge(StatusCode::UNAUTHORIZED, None);
    };
    let (grant, user) = match app.store.access_owner(&SecretHash::of(token), now).await {
        Ok(Some(found)) => found,
        Ok(None) => return challenge(StatusCode::UNAUTHORIZED, Some("invalid_token")),
        Err(e) => return store_failure(e),
    };
    if !grant
        .scopes
        .covers(&Scope::from_stored(PROFILE_SCOPE.into()))
    {
        return challenge(StatusCode::FORBIDDEN, Some("insufficient_scope"));
    }
    let (first, last) = user.name.split_once(' ').unwrap_or((&user.name, ""));
    Json(json!({
        "ZUID": user.id,
        "Email": user.email,
        "Display_Name": user.name,
        "First_Name": first,
        "Last_Name": last,
    }))
    .into_response()
}

/// The token of `Authorization: Bearer <t>` or `Zoho-oauthtoken <t>`; never from the URL.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let known =
        scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("zoho-oauthtoken");
    let token = token.trim();
    (known && !token.is_empty() && token.len() <= 256).then_some(token)
}

/// RFC 6750 §3: the challenge names the error, and for a missing scope, the scope needed.
fn challenge(status: StatusCode, error: Option<&'static str>) -> Response {
    let header = match error {
        None => "Bearer realm=\"grantd\"".to_owned(),
        Some("insufficient_scope") => format!(
            "Bearer realm=\"grantd\", error=\"insufficient_scope\", scope=\"{PROFILE_SCOPE}\""
        ),
        Some(error) => format!("Bearer realm=\"grantd\", error=\"{error}\""),
    };
    let body = match error {
        Some(error) => json!({"error": error}),
        None => {
            json!({"error": "invalid_request", "error_description": "an access token is required"})
        }
    };
    let mut response = (status, Json(body)).into_response();
    if let Ok(value) = HeaderValue::from_str(&header) {
        response.headers_mut().insert(WWW_AUTHENTICATE, value);
    }
    response
}

/// RFC 7662: the caller authenticates as a client; any live token can be introspected.
pub async fn introspect(State(app): State<App>, headers: HeaderMap, params: Params) -> Response {
    let now = app.clock.now();
    let caller = match Caller::identify(&app, &headers, &params).await {
        Ok(caller) => caller,
        Err(e) => return e.into_response(),
    };
    match introspection(&app, &params, &caller, now).await {
        Ok(body) => Json(body).into_response(),
        Err(failure) => caller.error(failure).into_response(),
    }
}

async fn introspection(
    app: &App,
    params: &Params,
    caller: &Caller,
    now: Timestamp,
) -> Result<serde_json::Value, Failure> {
    let client = caller.authenticated()?;
    if client.secret_hash.is_none() {
        // Public clients cannot authenticate, so they cannot introspect.
        return Err(grantd_core::OAuthError::InvalidClient.into());
    }
    let token = params.require("token")?;
    let _hint = params.get("token_type_hint")?;
    Ok(
        match app.store.token_info(&SecretHash::of(token), now).await? {
            Some(info) => {
                let mut body = json!({
                    "active": true,
                    "scope": info.scopes.to_stored(),
                    "client_id": info.client_id.as_str(),
                    "sub": info.user_id.to_string(),
                    "token_type": if info.expires_at.is_some() { "access_token" } else { "refresh_token" },
                });
                if let Some(exp) = info.expires_at {
                    body["exp"] = json!(exp.0);
                }
                body
            }
            None => json!({"active": false}),
        },
    )
}
