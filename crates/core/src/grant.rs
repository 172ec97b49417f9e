//! Grant codes and tokens as data, and the rules about them: liveness, what a redemption must
//! match, and which scopes a refresh may ask for.

use crate::client::{Client, ClientId};
use crate::clock::Timestamp;
use crate::error::OAuthError;
use crate::pkce;
use crate::scope::Scopes;
use crate::secret::SecretHash;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessType {
    Online,
    Offline,
}

impl AccessType {
    pub fn parse(raw: Option<&str>) -> Option<AccessType> {
        match raw {
            None => Some(AccessType::Online),
            Some(v) if v.eq_ignore_ascii_case("online") => Some(AccessType::Online),
            Some(v) if v.eq_ignore_ascii_case("offline") => Some(AccessType::Offline),
            Some(_) => None,
        }
    }
}

/// What a grant code stands for. A code is bound to all of it (CONTRACT.md step 6).
#[derive(Debug, Clone)]
pub struct CodeGrant {
    pub code_hash: SecretHash,
    pub client_id: ClientId,
    pub user_id: i64,
    /// `None` for Self Client codes, which are made in the console rather than redirected.
    pub redirect_uri: Option<String>,
    pub scopes: Scopes,
    pub issue_refresh_token: bool,
    pub code_challenge: Option<String>,
    pub expires_at: Timestamp,
    pub redeemed_at: Option<Timestamp>,
    /// What an ID token issued for the code needs of the authorization request.
    pub oidc: SignIn,
}

/// OpenID Connect's part of a grant (OIDC Core §2): when the user signed in, and the
/// request's `nonce`. Empty for grants made before OpenID Connect, and for `client_credentials`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SignIn {
    /// The browser session's sign-in time (`auth_time`); a Self Client code's creation.
    pub auth_time: Option<Timestamp>,
    /// Codes only: an ID token from a refresh carries no nonce (OIDC Core §12.2).
    pub nonce: Option<String>,
}

impl CodeGrant {
    pub fn is_live(&self, now: Timestamp) -> bool {
        now < self.expires_at
    }

    /// Codes that expired before this may be deleted. A used code is kept a day past its
    /// expiry so that a late replay is still recognised and revokes what it issued (RFC 6749
    /// §4.1.2); an unknown code could not.
    pub fn forgettable_before(now: Timestamp) -> Timestamp {
        now.minus(86_400)
    }

    /// Every check of RFC 6749 §4.1.3 and RFC 7636 §4.6 except single use, which the store
    /// enforces. The order matters: a code presented by another client is not burned, so an
    /// attacker holding a stolen code cannot deny it to its owner (T-032).
    pub fn check_redemption(
        &self,
        client: &Client,
        redirect_uri: Option<&str>,
        code_verifier: Option<&str>,
        now: Timestamp,
    ) -> Result<(), Rejection> {
        if self.client_id != client.id {
            return Err(Rejection::keep(OAuthError::InvalidGrant(
                "the code was issued to another client",
            )));
        }
        if self.redeemed_at.is_some() {
            return Err(Rejection::Replayed);
        }
        if !self.is_live(now) {
            return Err(Rejection::burn(OAuthError::InvalidGrant(
                "the code has expired",
            )));
        }
        if let Some(expected) = &self.redirect_uri {
            if redirect_uri != Some(expected.as_str()) {
                return Err(Rejection::burn(OAuthError::RedirectUriMismatch));
            }
        }
        match (&self.code_challenge, code_verifier) {
            (Some(challenge), Some(verifier)) => {
                if !pkce::verify_s256(verifier, challenge) {
                    // T-043: a failed verifier burns the code, so it cannot be guessed at.
                    return Err(Rejection::burn(OAuthError::InvalidGrant(
                        "code_verifier does not match the code_challenge",
                    )));
                }
            }
            (Some(_), None) => {
                return Err(Rejection::burn(OAuthError::InvalidGrant(
                    "code_verifier is required for this code",
                )))
            }
            (None, Some(_)) => {
                return Err(Rejection::burn(OAuthError::InvalidGrant(
                    "code_verifier sent for a code issued without code_challenge",
                )))
            }
            (None, None) => {}
        }
        Ok(())
    }
}

/// Why a redemption failed, and what it does to the code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// Refuse, and burn (mark used) or keep the code.
    Refuse { error: OAuthError, burn: bool },
    /// RFC 6749 §4.1.2: a used code was presented again; revoke what it issued.
    Replayed,
}

impl Rejection {
    fn burn(error: OAuthError) -> Self {
        Rejection::Refuse { error, burn: true }
    }
    fn keep(error: OAuthError) -> Self {
        Rejection::Refuse { error, burn: false }
    }
    pub fn error(&self) -> OAuthError {
        match self {
            Rejection::Refuse { error, .. } => error.clone(),
            Rejection::Replayed => OAuthError::InvalidGrant("the code has already been used"),
        }
    }
}

/// A stored refresh token's grant.
#[derive(Debug, Clone)]
pub struct RefreshGrant {
    pub id: i64,
    pub client_id: ClientId,
    pub user_id: i64,
    pub scopes: Scopes,
    /// When the user signed in for the code this refresh token was issued for.
    pub auth_time: Option<Timestamp>,
}

/// RFC 6749 §6: a refresh may repeat or narrow the granted scopes, never widen them.
pub fn refresh_scopes(granted: &Scopes, requested: Option<Scopes>) -> Result<Scopes, OAuthError> {
    match requested {
        None => Ok(granted.clone()),
        Some(requested) if granted.covers_all(&requested) => Ok(requested),
        Some(_) => Err(OAuthError::InvalidScope(
            "the requested scope exceeds the scope originally granted",
        )),
    }
}

/// A validated access token, as resource endpoints see it.
#[derive(Debug, Clone)]
pub struct AccessGrant {
    pub client_id: ClientId,
    pub user_id: i64,
    pub scopes: Scopes,
    pub expires_at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::{ClientType, Dialect};
    use crate::scope::Scopes;

    fn client(id: &str) -> Client {
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
            created_at: Timestamp(0),
            introspect_any: false,
            home: None,
            id_token_alg: None,
        }
    }

    fn code(challenge: Option<&str>) -> CodeGrant {
        CodeGrant {
            code_hash: SecretHash::of("c"),
            client_id: ClientId::new("A".into()),
            user_id: 1,
            redirect_uri: Some("https://a.example/cb".into()),
            scopes: Scopes::parse("A.b.READ").unwrap_or_default(),
            issue_refresh_token: false,
            code_challenge: challenge.map(str::to_owned),
            expires_at: Timestamp(160),
            redeemed_at: None,
            oidc: SignIn::default(),
        }
    }

    #[test]
    fn code_boundaries() {
        let code = code(None);
        let uri = Some("https://a.example/cb");
        assert!(code
            .check_redemption(&client("A"), uri, None, Timestamp(159))
            .is_ok());
        assert!(code
            .check_redemption(&client("A"), uri, None, Timestamp(160))
            .is_err());
        let other = code.check_redemption(&client("B"), uri, None, Timestamp(100));
        assert!(matches!(other, Err(Rejection::Refuse { burn: false, .. })));
        let wrong_uri = code.check_redemption(
            &client("A"),
            Some("https://a.example/cb?x"),
            None,
            Timestamp(100),
        );
        assert_eq!(
            wrong_uri.map_err(|r| r.error()),
            Err(OAuthError::RedirectUriMismatch)
        );
        let verifier_without_challenge =
            code.check_redemption(&client("A"), uri, Some(&"a".repeat(43)), Timestamp(100));
        assert!(verifier_without_challenge.is_err());
    }

    #[test]
    fn refresh_never_widens() {
        let granted = Scopes::parse("Demo.x.ALL").unwrap_or_default();
        let narrower = Scopes::parse("Demo.x.READ").ok();
        assert!(refresh_scopes(&granted, narrower).is_ok());
        let wider = Scopes::parse("Demo.x.READ,Demo.y.READ").ok();
        assert!(refresh_scopes(&granted, wider).is_err());
        assert_eq!(refresh_scopes(&granted, None), Ok(granted));
    }
}
