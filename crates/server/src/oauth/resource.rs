//! Using an access token: `/oauth/user/info` (RFC 6750 bearer usage, with Zoho's
//! `Zoho-oauthtoken` scheme) and `/oauth/v2/introspect` (RFC 7662). Validation is one indexed
//! read by hash on the reader pool; no cache, so a revocation is seen at once.

use axum::extract::State;
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use grantd_core::datacenter::issued_elsewhere;
use grantd_core::secret::SecretHash;
use grantd_core::{Client, OAuthError, Scope};
use grantd_store::TokenVerbs;
use grantd_wire::{ErrorBody, Introspection, UserInfo};

use super::client_auth::Caller;
use crate::app::App;
use crate::error::store_failure;
use crate::params::Params;

const PROFILE_SCOPE: &str = "AaaServer.profile.READ";

pub async fn user_info(State(app): State<App>, headers: HeaderMap) -> Response {
    let now = app.clock.now();
    let Some(token) = bearer(&headers) else {
        return challenge(StatusCode::UNAUTHORIZED, None);
    };
    let (grant, user) = match app.store.access_owner(&SecretHash::of(token), now).await {
        Ok(Some(found)) => found,
        Ok(None) => return unknown_token(&app, token),
        Err(e) => return store_failure(e),
    };
    if !grant
        .scopes
        .covers(&Scope::from_stored(PROFILE_SCOPE.into()))
    {
        return challenge(StatusCode::FORBIDDEN, Some("insufficient_scope"));
    }
    Json(UserInfo::new(user.id, &user.email, &user.name)).into_response()
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

/// 401 `invalid_token`; for a token another data center minted, with a description naming it
/// (the challenge's `error_description`, RFC 6750 §3, and the body's).
fn unknown_token(app: &App, token: &str) -> Response {
    let Some(elsewhere) = issued_elsewhere(token, "access token", &app.settings.datacenters) else {
        return challenge(StatusCode::UNAUTHORIZED, Some("invalid_token"));
    };
    let description = elsewhere.description();
    let mut response = (
        StatusCode::UNAUTHORIZED,
        Json(ErrorBody::bare("invalid_token").with_description(description.clone())),
    )
        .into_response();
    let header = format!(
        "Bearer realm=\"grantd\", error=\"invalid_token\", error_description=\"{description}\""
    );
    if let Ok(value) = HeaderValue::from_str(&header) {
        response.headers_mut().insert(WWW_AUTHENTICATE, value);
    }
    response
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
        Some(error) => ErrorBody::bare(error),
        None => ErrorBody::described("invalid_request", "an access token is required"),
    };
    let mut response = (status, Json(body)).into_response();
    if let Ok(value) = HeaderValue::from_str(&header) {
        response.headers_mut().insert(WWW_AUTHENTICATE, value);
    }
    response
}

/// RFC 7662: the caller authenticates as a client and sees its own live tokens; a client
/// flagged as a resource server sees every live token (`Client::may_introspect`). Anything
/// else is `{"active":false}`, the same answer as an unknown token.
pub async fn introspect(State(app): State<App>, headers: HeaderMap, params: Params) -> Response {
    let now = app.clock.now();
    let caller = match Caller::identify(&app, &headers, &params).await {
        Ok(caller) => caller,
        Err(e) => return e.into_response(),
    };
    let (client, token) = match introspection_request(&caller, &params) {
        Ok(request) => request,
        Err(e) => return caller.error(e).into_response(),
    };
    match app.store.token_info(&token, now).await {
        Ok(Some(info)) if client.may_introspect(&info.client_id) => Json(Introspection::active(
            info.scopes.to_stored(),
            info.client_id.as_str(),
            info.user_id.to_string(),
            info.expires_at.map(|exp| exp.0),
        ))
        .into_response(),
        Ok(_) => Json(Introspection::inactive()).into_response(),
        Err(e) => caller.error(e).into_response(),
    }
}

/// The caller, once it has proved it is a confidential client, and the token to introspect,
/// as the hash it is found by.
fn introspection_request<'c>(
    caller: &'c Caller,
    params: &Params,
) -> Result<(&'c Client, SecretHash), OAuthError> {
    let client = caller.authenticated()?;
    if client.secret_hash.is_none() {
        // Public clients cannot authenticate, so they cannot introspect.
        return Err(OAuthError::InvalidClient);
    }
    let token = SecretHash::of(params.require("token")?);
    params.get("token_type_hint")?;
    Ok((client, token))
}
