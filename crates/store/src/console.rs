//! What the API console and the account pages read and change: a user's own clients and Self
//! Client codes, the apps they authorized, their browser sessions, their password.

use grantd_core::{ClientId, Dialect, RedirectUri, Scopes, Timestamp};

/// A Self Client code as the console lists it: never the code itself.
#[derive(Debug, Clone)]
pub struct CodeSummary {
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    pub redeemed_at: Option<Timestamp>,
    pub scopes: Scopes,
    pub description: Option<String>,
}

/// A client the user has authorized, for the Connected Apps page.
#[derive(Debug, Clone)]
pub struct ConnectedApp {
    pub client_id: ClientId,
    pub client_name: String,
    pub homepage: Option<String>,
    pub scopes: Scopes,
    pub first_granted_at: Timestamp,
    pub last_used_at: Option<Timestamp>,
    pub active_refresh_tokens: i64,
}

/// A signed-in browser. `handle` names it without revealing the cookie (it is the hex of the
/// stored hash, which is useless without the cookie).
#[derive(Debug, Clone)]
pub struct SessionSummary {
    pub handle: String,
    pub created_at: Timestamp,
    pub user_agent: String,
}

/// What the client settings form may change.
#[derive(Debug, Clone)]
pub struct ClientUpdate {
    pub name: String,
    pub homepage: Option<String>,
    pub redirect_uris: Vec<RedirectUri>,
    pub js_domain: Option<String>,
    pub dialect: Dialect,
}
