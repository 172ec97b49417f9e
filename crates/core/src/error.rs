//! OAuth errors and the one table that maps each to both wire dialects (CONTRACT.md "Error
//! dialects"). The server renders; this module decides names and status codes.

use std::borrow::Cow;

use crate::client::Dialect;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OAuthError {
    /// Missing, duplicated or malformed parameter; the text says which.
    InvalidRequest(&'static str),
    /// Unknown client, wrong or missing secret: always the same answer.
    InvalidClient,
    /// Zoho's incremental authorization names a known client's wrong secret apart
    /// (CONTRACT.md "Incremental authorization": `invalid_client_secret`); standard clients
    /// hear `invalid_client` as everywhere.
    InvalidClientSecret,
    /// Bad, used or expired code; revoked or unknown refresh token; failed PKCE.
    InvalidGrant(&'static str),
    /// A code or token minted by another data center (its tag says which): the bad-grant
    /// error, with a description that sends the caller to the right accounts server.
    IssuedElsewhere(Elsewhere),
    /// A client this data center does not serve: registered elsewhere and not enabled here.
    ClientNotEnabled {
        location: String,
    },
    /// The token request's `redirect_uri` differs from the one the code was issued for.
    RedirectUriMismatch,
    UnsupportedGrantType,
    UnsupportedResponseType,
    InvalidScope(&'static str),
    UnauthorizedClient(&'static str),
    AccessDenied(&'static str),
    /// `prompt=none` without a (fresh enough) session (OIDC Core §3.1.2.6).
    LoginRequired,
    /// `prompt=none`, and the user has not consented to all of this.
    ConsentRequired,
    /// `prompt=none`, and something else would need a page.
    InteractionRequired(&'static str),
    /// RFC 8628 §3.5: the user has not answered at the verification page yet.
    AuthorizationPending,
    /// RFC 8628 §3.5: polled sooner than the interval; the interval grew by 5 seconds.
    SlowDown,
    /// RFC 8628 §3.5 `expired_token` (Zoho: `expired`): the device code's time is up.
    ExpiredToken,
    /// Zoho's device flow: the user's account lives at another data center, where the device
    /// must poll instead.
    OtherDc {
        location: String,
        accounts: String,
    },
    /// Too many requests; the client may retry after this many seconds.
    Throttled {
        retry_after: i64,
    },
}

/// Where a code or token presented here was issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Elsewhere {
    /// "grant code", "refresh token", "access token".
    pub what: &'static str,
    pub location: String,
    pub accounts: String,
}

impl Elsewhere {
    pub fn description(&self) -> String {
        format!(
            "this {} was issued by data center {}; use {}",
            self.what, self.location, self.accounts
        )
    }
}

/// How an error travels: the HTTP status and the `error` name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wire {
    pub status: u16,
    pub error: &'static str,
}

pub const THROTTLE_DESCRIPTION: &str =
    "You have made too many requests continuously. Please try again after some time.";

impl OAuthError {
    /// The dialect table. Zoho answers every token-endpoint error with 200 and its own names.
    pub fn wire(&self, dialect: Dialect) -> Wire {
        let (status, standard, zoho) = match self {
            OAuthError::InvalidClient | OAuthError::ClientNotEnabled { .. } => {
                (401, "invalid_client", "invalid_client")
            }
            OAuthError::InvalidClientSecret => (401, "invalid_client", "invalid_client_secret"),
            OAuthError::InvalidGrant(_) | OAuthError::IssuedElsewhere(_) => {
                (400, "invalid_grant", "invalid_code")
            }
            OAuthError::RedirectUriMismatch => (400, "invalid_grant", "invalid_redirect_uri"),
            OAuthError::InvalidRequest(_) => (400, "invalid_request", "invalid_request"),
            OAuthError::UnsupportedGrantType => {
                (400, "unsupported_grant_type", "unsupported_grant_type")
            }
            OAuthError::UnsupportedResponseType => (
                400,
                "unsupported_response_type",
                "unsupported_response_type",
            ),
            OAuthError::InvalidScope(_) => (400, "invalid_scope", "invalid_scope"),
            OAuthError::UnauthorizedClient(_) => {
                (400, "unauthorized_client", "unauthorized_client")
            }
            OAuthError::AccessDenied(_) => (400, "access_denied", "access_denied"),
            OAuthError::LoginRequired => (400, "login_required", "login_required"),
            OAuthError::ConsentRequired => (400, "consent_required", "consent_required"),
            OAuthError::InteractionRequired(_) => {
                (400, "interaction_required", "interaction_required")
            }
            OAuthError::AuthorizationPending => {
                (400, "authorization_pending", "authorization_pending")
            }
            OAuthError::SlowDown => (400, "slow_down", "slow_down"),
            OAuthError::ExpiredToken => (400, "expired_token", "expired"),
            OAuthError::OtherDc { .. } => (400, "other_dc", "other_dc"),
            OAuthError::Throttled { .. } => (429, "Access Denied", "Access Denied"),
        };
        match dialect {
            Dialect::Standard => Wire {
                status,
                error: standard,
            },
            Dialect::Zoho => Wire {
                status: 200,
                error: zoho,
            },
        }
    }

    /// Zoho's `other_dc` names the data center to poll in a field of its own.
    pub fn user_location(&self) -> Option<&str> {
        match self {
            OAuthError::OtherDc { location, .. } => Some(location),
            _ => None,
        }
    }

    /// The `error` name in an authorization redirect (RFC 6749 §4.1.2.1), where only the
    /// standard names exist.
    pub fn redirect_name(&self) -> &'static str {
        self.wire(Dialect::Standard).error
    }

    pub fn description(&self) -> Cow<'static, str> {
        Cow::Borrowed(match self {
            OAuthError::InvalidRequest(why)
            | OAuthError::InvalidGrant(why)
            | OAuthError::InvalidScope(why)
            | OAuthError::UnauthorizedClient(why)
            | OAuthError::AccessDenied(why)
            | OAuthError::InteractionRequired(why) => why,
            OAuthError::LoginRequired => "the user must sign in",
            OAuthError::ConsentRequired => "the user must consent",
            OAuthError::InvalidClient | OAuthError::InvalidClientSecret => {
                "client authentication failed"
            }
            OAuthError::IssuedElsewhere(elsewhere) => return Cow::Owned(elsewhere.description()),
            OAuthError::ClientNotEnabled { location } => {
                return Cow::Owned(format!(
                    "this client is not registered at, or not enabled for data center {location}"
                ))
            }
            OAuthError::RedirectUriMismatch => {
                "redirect_uri does not match the one used in the authorization request"
            }
            OAuthError::UnsupportedGrantType => "the grant_type is not supported",
            OAuthError::UnsupportedResponseType => "only response_type=code is supported",
            OAuthError::Throttled { .. } => THROTTLE_DESCRIPTION,
            OAuthError::AuthorizationPending => "the user has not yet answered the request",
            OAuthError::SlowDown => "polling too often; wait 5 seconds longer between polls",
            OAuthError::ExpiredToken => "the device code has expired",
            OAuthError::OtherDc { location, accounts } => {
                return Cow::Owned(format!(
                    "the user's account is in data center {location}; poll {accounts} instead"
                ))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zoho_dialect_always_answers_200() {
        let all = [
            OAuthError::InvalidClient,
            OAuthError::InvalidClientSecret,
            OAuthError::InvalidGrant("x"),
            OAuthError::RedirectUriMismatch,
            OAuthError::InvalidRequest("x"),
            OAuthError::UnsupportedGrantType,
            OAuthError::InvalidScope("x"),
            OAuthError::Throttled { retry_after: 1 },
        ];
        for e in &all {
            assert_eq!(e.wire(Dialect::Zoho).status, 200, "{e:?}");
            assert_ne!(e.wire(Dialect::Standard).status, 200, "{e:?}");
        }
        assert_eq!(
            OAuthError::InvalidGrant("x").wire(Dialect::Zoho).error,
            "invalid_code"
        );
        assert_eq!(
            OAuthError::RedirectUriMismatch
                .wire(Dialect::Standard)
                .error,
            "invalid_grant"
        );
    }

    #[test]
    fn device_flow_errors_in_both_dialects() {
        // RFC 8628 §3.5 names; Zoho says `expired` where the RFC says `expired_token`.
        let cases = [
            (
                OAuthError::AuthorizationPending,
                "authorization_pending",
                "authorization_pending",
            ),
            (OAuthError::SlowDown, "slow_down", "slow_down"),
            (
                OAuthError::AccessDenied("x"),
                "access_denied",
                "access_denied",
            ),
            (OAuthError::ExpiredToken, "expired_token", "expired"),
        ];
        for (error, standard, zoho) in cases {
            assert_eq!(
                error.wire(Dialect::Standard),
                Wire {
                    status: 400,
                    error: standard
                }
            );
            assert_eq!(
                error.wire(Dialect::Zoho),
                Wire {
                    status: 200,
                    error: zoho
                }
            );
        }
        let other = OAuthError::OtherDc {
            location: "eu".into(),
            accounts: "https://accounts.example.eu".into(),
        };
        assert_eq!(other.wire(Dialect::Zoho).error, "other_dc");
        assert_eq!(other.user_location(), Some("eu"));
        assert!(other.description().contains("https://accounts.example.eu"));
        assert_eq!(OAuthError::SlowDown.user_location(), None);
    }
}
