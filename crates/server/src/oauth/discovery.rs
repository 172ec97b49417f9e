//! Discovery: RFC 8414 metadata (also OpenID Connect Discovery's
//! `/.well-known/openid-configuration`), the JWKS, Zoho's `/oauth/serverinfo`, and a health
//! check. Every URL comes from configuration, never from the request's Host header (T-094).

use axum::extract::State;
use axum::Json;

use grantd_core::datacenter::accounts_servers;
use grantd_core::oidc::{self, SigningAlg};
use grantd_wire::{JwkSet, Metadata, ServerInfo, Status};

use super::device::DEVICE_CODE_GRANT;
use crate::app::App;

pub async fn metadata(State(app): State<App>) -> Json<Metadata> {
    let base = &app.settings.public_url;
    let list = |items: &[&str]| items.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    Json(Metadata {
        authorization_endpoint: format!("{base}/oauth/v2/auth"),
        authorization_response_iss_parameter_supported: true,
        claims_supported: list(&[
            "sub",
            "iss",
            "aud",
            "exp",
            "iat",
            "auth_time",
            "nonce",
            "at_hash",
            "email",
            "email_verified",
            "name",
            "given_name",
            "family_name",
        ]),
        code_challenge_methods_supported: list(&["S256"]),
        device_authorization_endpoint: format!("{base}/oauth/v2/device_authorization"),
        grant_types_supported: list(&[
            "authorization_code",
            "refresh_token",
            "client_credentials",
            DEVICE_CODE_GRANT,
        ]),
        // Every algorithm has a key, and each client picks one (RS256 first).
        id_token_signing_alg_values_supported: list(&SigningAlg::ALL.map(SigningAlg::as_str)),
        introspection_endpoint: format!("{base}/oauth/v2/introspect"),
        introspection_endpoint_auth_methods_supported: list(&[
            "client_secret_basic",
            "client_secret_post",
        ]),
        issuer: base.clone(),
        jwks_uri: format!("{base}/oauth/v2/keys"),
        prompt_values_supported: list(&["none", "login", "consent"]),
        response_modes_supported: list(&["query"]),
        response_types_supported: list(&["code"]),
        revocation_endpoint: format!("{base}/oauth/v2/token/revoke"),
        revocation_endpoint_auth_methods_supported: list(&[
            "client_secret_basic",
            "client_secret_post",
            "none",
        ]),
        // Scopes registered by operators are theirs to announce; the built-in ones are ours.
        scopes_supported: list(&oidc::SCOPES),
        subject_types_supported: list(&["public"]),
        token_endpoint: format!("{base}/oauth/v2/token"),
        token_endpoint_auth_methods_supported: list(&[
            "client_secret_basic",
            "client_secret_post",
            "none",
        ]),
        userinfo_endpoint: format!("{base}/oauth/v2/userinfo"),
    })
}

/// `GET /oauth/v2/keys` (RFC 7517): every published signing key, from memory.
pub async fn jwks(State(app): State<App>) -> Json<JwkSet> {
    Json(app.keys.current().jwks().clone())
}

/// Zoho's data center list: this DC and every peer configured.
pub async fn server_info(State(app): State<App>) -> Json<ServerInfo> {
    let settings = &app.settings;
    let own = (settings.location.as_str(), settings.public_url.as_str());
    Json(ServerInfo::success(accounts_servers(
        own,
        &settings.datacenters,
    )))
}

pub async fn health() -> Json<Status> {
    Json(Status::ok())
}
