//! Registered clients: their types (CONTRACT.md "Client types"), what each may do, and the
//! error dialect each one speaks.

use std::fmt;
use std::str::FromStr;

use crate::oidc::SigningAlg;
use crate::redirect::RedirectUri;
use crate::secret::SecretHash;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientId(String);

impl ClientId {
    pub fn new(id: String) -> Self {
        Self(id)
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientType {
    Server,
    Client,
    Mobile,
    NonBrowser,
    SelfClient,
}

impl ClientType {
    pub const ALL: [ClientType; 5] = [
        ClientType::Server,
        ClientType::Client,
        ClientType::Mobile,
        ClientType::NonBrowser,
        ClientType::SelfClient,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ClientType::Server => "server",
            ClientType::Client => "client",
            ClientType::Mobile => "mobile",
            ClientType::NonBrowser => "non-browser",
            ClientType::SelfClient => "self",
        }
    }

    /// Public clients cannot keep a secret, so they must prove possession with PKCE.
    pub fn is_public(self) -> bool {
        matches!(self, ClientType::Client | ClientType::Mobile)
    }

    /// RFC 9700 §2.2.2: a public client's refresh tokens are neither sender-constrained nor
    /// guarded by a secret, so each refresh rotates them (a new one, the old one retired, a
    /// retired one presented revokes the family). Confidential clients keep Zoho's permanent
    /// refresh tokens (CONTRACT.md).
    pub fn rotates_refresh_tokens(self) -> bool {
        self.is_public()
    }

    /// Types that take part in the redirect flow and so must register redirect URIs.
    pub fn uses_redirects(self) -> bool {
        matches!(
            self,
            ClientType::Server | ClientType::Client | ClientType::Mobile
        )
    }
}

impl FromStr for ClientType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ClientType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| format!("unknown client type {s:?} (expected server, client, mobile, non-browser or self)"))
    }
}

/// How token-endpoint errors are written (CONTRACT.md "Error dialects").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Dialect {
    #[default]
    Standard,
    Zoho,
}

impl Dialect {
    pub fn as_str(self) -> &'static str {
        match self {
            Dialect::Standard => "standard",
            Dialect::Zoho => "zoho",
        }
    }
}

impl FromStr for Dialect {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "standard" => Ok(Dialect::Standard),
            "zoho" => Ok(Dialect::Zoho),
            other => Err(format!(
                "unknown error dialect {other:?} (expected standard or zoho)"
            )),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Client {
    pub id: ClientId,
    pub kind: ClientType,
    pub name: String,
    pub homepage: Option<String>,
    pub redirect_uris: Vec<RedirectUri>,
    pub secret_hash: Option<SecretHash>,
    pub owner_id: Option<i64>,
    pub dialect: Dialect,
    /// The JavaScript origin of a client-based app, shown in the console.
    pub js_domain: Option<String>,
    pub created_at: crate::Timestamp,
    /// A resource server: it may introspect every client's tokens (`grantd client add
    /// --introspect-any`, or the console's Settings tab for administrators).
    pub introspect_any: bool,
    /// `None`: registered here. `Some(location)`: registered at that data center, enabled
    /// here, and mirrored from its registry; changed only there.
    pub home: Option<String>,
    /// The algorithm its ID tokens are signed with; `None`: the server's
    /// `id_token_signing_alg` (`oidc::id_token_alg`).
    pub id_token_alg: Option<SigningAlg>,
}

impl Client {
    /// The registered URI that `requested` names, if any.
    pub fn redirect_uri(&self, requested: &str) -> Option<&RedirectUri> {
        self.redirect_uris
            .iter()
            .find(|uri| uri.matches(requested, self.kind))
    }

    /// RFC 7662 §2.1 leaves to the server which tokens a caller may introspect (§4: a
    /// client fishing with another's tokens learns nothing): its own, or every token for a
    /// client flagged as a resource server. Anything else is answered `{"active":false}`.
    pub fn may_introspect(&self, token_client: &ClientId) -> bool {
        self.introspect_any || self.id == *token_client
    }

    /// Constant-time check of a presented secret; public clients have none to check.
    pub fn secret_matches(&self, presented: &str) -> bool {
        self.secret_hash
            .is_some_and(|hash| hash == SecretHash::of(presented))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(id: &str, introspect_any: bool) -> Client {
        Client {
            id: ClientId::new(id.into()),
            kind: ClientType::Server,
            name: "A".into(),
            homepage: None,
            redirect_uris: vec![],
            secret_hash: None,
            owner_id: None,
            dialect: Dialect::Standard,
            js_domain: None,
            created_at: crate::Timestamp(0),
            introspect_any,
            home: None,
            id_token_alg: None,
        }
    }

    #[test]
    fn only_public_clients_rotate_refresh_tokens() {
        let rotating: Vec<ClientType> = ClientType::ALL
            .into_iter()
            .filter(|t| t.rotates_refresh_tokens())
            .collect();
        assert_eq!(rotating, [ClientType::Client, ClientType::Mobile]);
    }

    #[test]
    fn a_client_introspects_its_own_tokens_and_a_resource_server_every_token() {
        let (a, b) = (
            ClientId::new("1000.A".into()),
            ClientId::new("1000.B".into()),
        );
        assert!(client("1000.A", false).may_introspect(&a));
        assert!(!client("1000.A", false).may_introspect(&b));
        assert!(client("1000.R", true).may_introspect(&a));
        assert!(client("1000.R", true).may_introspect(&b));
    }
}
