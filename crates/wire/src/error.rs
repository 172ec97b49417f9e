//! The JSON error body (RFC 6749 §5.2, RFC 6750 §3.1), in both dialects. Which `error` name a
//! failure gets, and with which status, is `grantd_core::OAuthError::wire`'s one table; this
//! module only writes the body.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use grantd_core::{Dialect, OAuthError};

/// `{"error","error_description"}`; Zoho's throttle body adds `"status":"failure"`. A resource
/// endpoint's bearer error is `{"error"}` alone. Absent fields are left out, never `null`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: Cow<'static, str>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_description: Option<Cow<'static, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Cow<'static, str>>,
    /// Zoho's device flow `other_dc`: the data center the device must poll instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_location: Option<Cow<'static, str>>,
}

impl ErrorBody {
    /// `error` in `dialect`'s name, from core's table, with the error's fixed description.
    pub fn oauth(error: &OAuthError, dialect: Dialect) -> Self {
        let status = matches!(error, OAuthError::Throttled { .. }).then_some("failure");
        Self {
            error: Cow::Borrowed(error.wire(dialect).error),
            error_description: Some(error.description()),
            status: status.map(Cow::Borrowed),
            user_location: error.user_location().map(|l| Cow::Owned(l.to_owned())),
        }
    }

    /// A body outside the OAuth error table (method not allowed, store failures, Zoho's revoke).
    pub fn described(error: &'static str, description: &'static str) -> Self {
        Self {
            error: Cow::Borrowed(error),
            error_description: Some(Cow::Borrowed(description)),
            status: None,
            user_location: None,
        }
    }

    /// The same error with a description of its own (e.g. which data center issued a token).
    pub fn with_description(mut self, description: String) -> Self {
        self.error_description = Some(Cow::Owned(description));
        self
    }

    /// RFC 6750 §3.1: a resource endpoint names the error and nothing else.
    pub fn bare(error: &'static str) -> Self {
        Self {
            error: Cow::Borrowed(error),
            error_description: None,
            status: None,
            user_location: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(body: &ErrorBody) -> String {
        serde_json::to_string(body).unwrap_or_default()
    }

    #[test]
    fn bad_code_in_both_dialects() {
        let error = OAuthError::InvalidGrant("the code has expired");
        assert_eq!(
            json(&ErrorBody::oauth(&error, Dialect::Standard)),
            r#"{"error":"invalid_grant","error_description":"the code has expired"}"#
        );
        assert_eq!(
            json(&ErrorBody::oauth(&error, Dialect::Zoho)),
            r#"{"error":"invalid_code","error_description":"the code has expired"}"#
        );
    }

    #[test]
    fn redirect_mismatch_in_both_dialects() {
        let error = OAuthError::RedirectUriMismatch;
        let description = "redirect_uri does not match the one used in the authorization request";
        assert_eq!(
            json(&ErrorBody::oauth(&error, Dialect::Standard)),
            format!(r#"{{"error":"invalid_grant","error_description":"{description}"}}"#)
        );
        assert_eq!(
            json(&ErrorBody::oauth(&error, Dialect::Zoho)),
            format!(r#"{{"error":"invalid_redirect_uri","error_description":"{description}"}}"#)
        );
    }

    #[test]
    fn invalid_client_reads_the_same_in_both_dialects() {
        for dialect in [Dialect::Standard, Dialect::Zoho] {
            assert_eq!(
                json(&ErrorBody::oauth(&OAuthError::InvalidClient, dialect)),
                r#"{"error":"invalid_client","error_description":"client authentication failed"}"#
            );
        }
    }

    #[test]
    fn throttle_body_carries_status_failure_in_both_dialects() {
        let error = OAuthError::Throttled { retry_after: 30 };
        for dialect in [Dialect::Standard, Dialect::Zoho] {
            assert_eq!(
                json(&ErrorBody::oauth(&error, dialect)),
                r#"{"error":"Access Denied","error_description":"You have made too many requests continuously. Please try again after some time.","status":"failure"}"#
            );
        }
    }

    #[test]
    fn other_dc_names_the_users_location() {
        let error = OAuthError::OtherDc {
            location: "eu".into(),
            accounts: "https://accounts.example.eu".into(),
        };
        assert_eq!(
            json(&ErrorBody::oauth(&error, Dialect::Zoho)),
            r#"{"error":"other_dc","error_description":"the user's account is in data center eu; poll https://accounts.example.eu instead","user_location":"eu"}"#
        );
        assert_eq!(
            json(&ErrorBody::oauth(&OAuthError::ExpiredToken, Dialect::Zoho)),
            r#"{"error":"expired","error_description":"the device code has expired"}"#
        );
    }

    #[test]
    fn bodies_outside_the_table() {
        assert_eq!(
            json(&ErrorBody::described("invalid_request", "use POST")),
            r#"{"error":"invalid_request","error_description":"use POST"}"#
        );
        assert_eq!(
            json(&ErrorBody::bare("invalid_token")),
            r#"{"error":"invalid_token"}"#
        );
    }

    #[test]
    fn reads_back_what_it_writes() {
        let body = ErrorBody::oauth(&OAuthError::Throttled { retry_after: 1 }, Dialect::Zoho);
        let parsed: Option<ErrorBody> = serde_json::from_str(&json(&body)).ok();
        assert_eq!(parsed, Some(body));
        let bare: Option<ErrorBody> = serde_json::from_str(r#"{"error":"invalid_token"}"#).ok();
        assert_eq!(bare, Some(ErrorBody::bare("invalid_token")));
    }
}
