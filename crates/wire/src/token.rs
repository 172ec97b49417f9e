//! The token endpoint's success body (RFC 6749 §5.1, with Zoho's `api_domain`), for every
//! grant. Kept apart from the error body because SDKs tell the two apart by `error` alone.

use std::fmt;

use serde::{Deserialize, Serialize};

/// `{"access_token","refresh_token","scope","api_domain","token_type","expires_in"}`;
/// `refresh_token` is left out (not `null`) when none is issued, as on the refresh grant.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// Space-separated, in the registry's spelling.
    pub scope: String,
    pub api_domain: String,
    pub token_type: String,
    /// Seconds; Zoho's old `expires_in_sec` is not sent.
    pub expires_in: i64,
    /// OpenID Connect (OIDC Core §3.1.3.3): a signed JWT, only when `openid` was granted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
}

impl TokenResponse {
    /// A bearer token answer; the caller exposes the secrets it means to send.
    pub fn bearer(
        access_token: &str,
        refresh_token: Option<&str>,
        scope: String,
        api_domain: &str,
        expires_in: i64,
    ) -> Self {
        Self {
            access_token: access_token.to_owned(),
            refresh_token: refresh_token.map(str::to_owned),
            scope,
            api_domain: api_domain.to_owned(),
            token_type: "Bearer".to_owned(),
            expires_in,
            id_token: None,
        }
    }

    /// The same answer with an ID token.
    pub fn with_id_token(mut self, id_token: Option<String>) -> Self {
        self.id_token = id_token;
        self
    }
}

/// Redacted like the secret types, so a logged response never carries a usable token.
impl fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenResponse")
            .field("access_token", &"..")
            .field("refresh_token", &self.refresh_token.as_ref().map(|_| ".."))
            .field("scope", &self.scope)
            .field("api_domain", &self.api_domain)
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field("id_token", &self.id_token.as_ref().map(|_| ".."))
            .finish()
    }
}

/// Zoho's `POST /oauth/v2/token/scopeenhance` answer, exactly as its docs show it:
/// `{"access_token":"<enhance token>","token_type":"update_scope","expires_in":600}`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnhanceTokenResponse {
    pub access_token: String,
    pub token_type: String,
    pub expires_in: i64,
}

impl EnhanceTokenResponse {
    /// The caller exposes the enhance token it means to send.
    pub fn update_scope(enhance_token: &str, expires_in: i64) -> Self {
        Self {
            access_token: enhance_token.to_owned(),
            token_type: "update_scope".to_owned(),
            expires_in,
        }
    }
}

impl fmt::Debug for EnhanceTokenResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnhanceTokenResponse")
            .field("access_token", &"..")
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_grant_body_has_the_refresh_token_in_second_place() {
        let body = TokenResponse::bearer(
            "1000.a.b",
            Some("1000.c.d"),
            "ZohoCRM.modules.ALL".into(),
            "https://api.example",
            3600,
        );
        assert_eq!(
            serde_json::to_string(&body).unwrap_or_default(),
            r#"{"access_token":"1000.a.b","refresh_token":"1000.c.d","scope":"ZohoCRM.modules.ALL","api_domain":"https://api.example","token_type":"Bearer","expires_in":3600}"#
        );
    }

    #[test]
    fn refresh_grant_body_omits_the_refresh_token() {
        let body = TokenResponse::bearer(
            "1000.a.b",
            None,
            "A.b.READ C.d.READ".into(),
            "https://api.example",
            3600,
        );
        let json = serde_json::to_string(&body).unwrap_or_default();
        assert_eq!(
            json,
            r#"{"access_token":"1000.a.b","scope":"A.b.READ C.d.READ","api_domain":"https://api.example","token_type":"Bearer","expires_in":3600}"#
        );
        assert_eq!(
            serde_json::from_str::<TokenResponse>(&json).ok(),
            Some(body)
        );
    }

    #[test]
    fn enhance_token_body_is_zohos() {
        let body = EnhanceTokenResponse::update_scope("1000.e.f", 600);
        assert_eq!(
            serde_json::to_string(&body).unwrap_or_default(),
            r#"{"access_token":"1000.e.f","token_type":"update_scope","expires_in":600}"#
        );
        assert!(!format!("{body:?}").contains("1000."));
    }

    #[test]
    fn debug_hides_the_tokens() {
        let body = TokenResponse::bearer("1000.a.b", Some("1000.c.d"), "A.b.READ".into(), "x", 1);
        let debug = format!("{body:?}");
        assert!(!debug.contains("1000."), "{debug}");
    }
}
