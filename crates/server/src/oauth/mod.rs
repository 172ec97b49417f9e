//! The OAuth endpoints, one module each, and what they share.

pub mod authorize;
pub mod client_auth;
pub mod device;
pub mod device_page;
pub mod discovery;
pub mod enhance;
pub mod enhance_page;
pub mod resource;
pub mod revoke;
pub mod token;

use grantd_core::{OAuthError, Scopes};

use crate::admin::in_registry_spelling;
use crate::app::App;
use crate::error::Failure;

/// Parses a scope list and checks it against the registry, in the registry's spelling.
pub(crate) async fn registered_scopes(app: &App, raw: &str) -> Result<Scopes, Failure> {
    let parsed = Scopes::parse(raw)
        .map_err(|_| OAuthError::InvalidScope("the scope parameter is malformed"))?;
    in_registry_spelling(&app.store, &parsed)
        .await?
        .map_err(|_| OAuthError::InvalidScope("a requested scope is not registered").into())
}
