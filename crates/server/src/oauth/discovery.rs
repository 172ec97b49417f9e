//! Discovery: RFC 8414 metadata, Zoho's `/oauth/serverinfo`, and a health check. Every URL
//! comes from configuration, never from the request's Host header (T-094).

use axum::extract::State;
use axum::response::IntoResponse;
use axum::Json;
use serde_json::json;

use crate::app::App;

pub async fn metadata(State(app): State<App>) -> impl IntoResponse {
    let base = &app.settings.public_url;
    Json(json!({
        "issuer": base,
        "authorization_endpoint": format!("{base}/oauth/v2/auth"),
        "token_endpoint": format!("{base}/oauth/v2/token"),
        "revocation_endpoint": format!("{base}/oauth/v2/token/revoke"),
        "introspection_endpoint": format!("{base}/oauth/v2/introspect"),
        "userinfo_endpoint": format!("{base}/oauth/user/info"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": true,
    }))
}

pub async fn server_info(State(app): State<App>) -> impl IntoResponse {
    let mut locations = serde_json::Map::new();
    locations.insert(
        app.settings.location.clone(),
        json!(app.settings.public_url),
    );
    Json(json!({"result": "success", "locations": locations}))
}

pub async fn health() -> impl IntoResponse {
    Json(json!({"status": "ok"}))
}
