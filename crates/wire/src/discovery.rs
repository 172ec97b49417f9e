//! Discovery bodies: RFC 8414 authorization server metadata and Zoho's `/oauth/serverinfo`.
//! Separate because clients read them before any token exists, to find everything else.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// RFC 8414 §2, and OpenID Connect Discovery 1.0 §3 (`/.well-known/openid-configuration`
/// serves the same document). Fields in alphabetical order, as grantd has always sent them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    pub authorization_endpoint: String,
    /// RFC 9207: `iss` is on every authorization response.
    pub authorization_response_iss_parameter_supported: bool,
    pub claims_supported: Vec<String>,
    pub code_challenge_methods_supported: Vec<String>,
    /// RFC 8628 §4.
    pub device_authorization_endpoint: String,
    pub grant_types_supported: Vec<String>,
    pub id_token_signing_alg_values_supported: Vec<String>,
    pub introspection_endpoint: String,
    pub introspection_endpoint_auth_methods_supported: Vec<String>,
    /// `{accounts}` exactly: strict clients compare it byte for byte.
    pub issuer: String,
    pub jwks_uri: String,
    pub prompt_values_supported: Vec<String>,
    pub response_modes_supported: Vec<String>,
    pub response_types_supported: Vec<String>,
    pub revocation_endpoint: String,
    pub revocation_endpoint_auth_methods_supported: Vec<String>,
    pub scopes_supported: Vec<String>,
    pub subject_types_supported: Vec<String>,
    pub token_endpoint: String,
    pub token_endpoint_auth_methods_supported: Vec<String>,
    /// OpenID Connect's (`/oauth/v2/userinfo`); Zoho's `/oauth/user/info` is not in its format.
    pub userinfo_endpoint: String,
}

/// `GET /oauth/serverinfo`: `{"locations":{"us":"{accounts}",...},"result":"success"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerInfo {
    /// Data center code → its accounts server; ordered by code.
    pub locations: BTreeMap<String, String>,
    pub result: String,
}

impl ServerInfo {
    pub fn success(locations: BTreeMap<String, String>) -> Self {
        Self {
            locations,
            result: "success".to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn metadata_body() {
        let base = "https://accounts.example";
        let metadata = Metadata {
            authorization_endpoint: format!("{base}/oauth/v2/auth"),
            authorization_response_iss_parameter_supported: true,
            claims_supported: strings(&["sub", "email"]),
            code_challenge_methods_supported: strings(&["S256"]),
            device_authorization_endpoint: format!("{base}/oauth/v2/device_authorization"),
            grant_types_supported: strings(&["authorization_code", "refresh_token"]),
            id_token_signing_alg_values_supported: strings(&["RS256"]),
            introspection_endpoint: format!("{base}/oauth/v2/introspect"),
            introspection_endpoint_auth_methods_supported: strings(&["client_secret_basic"]),
            issuer: base.to_owned(),
            jwks_uri: format!("{base}/oauth/v2/keys"),
            prompt_values_supported: strings(&["none"]),
            response_modes_supported: strings(&["query"]),
            response_types_supported: strings(&["code"]),
            revocation_endpoint: format!("{base}/oauth/v2/token/revoke"),
            revocation_endpoint_auth_methods_supported: strings(&["none"]),
            scopes_supported: strings(&["openid"]),
            subject_types_supported: strings(&["public"]),
            token_endpoint: format!("{base}/oauth/v2/token"),
            token_endpoint_auth_methods_supported: strings(&["client_secret_post", "none"]),
            userinfo_endpoint: format!("{base}/oauth/v2/userinfo"),
        };
        assert_eq!(
            serde_json::to_string(&metadata).unwrap_or_default(),
            concat!(
                r#"{"authorization_endpoint":"https://accounts.example/oauth/v2/auth","#,
                r#""authorization_response_iss_parameter_supported":true,"#,
                r#""claims_supported":["sub","email"],"#,
                r#""code_challenge_methods_supported":["S256"],"#,
                r#""device_authorization_endpoint":"https://accounts.example/oauth/v2/device_authorization","#,
                r#""grant_types_supported":["authorization_code","refresh_token"],"#,
                r#""id_token_signing_alg_values_supported":["RS256"],"#,
                r#""introspection_endpoint":"https://accounts.example/oauth/v2/introspect","#,
                r#""introspection_endpoint_auth_methods_supported":["client_secret_basic"],"#,
                r#""issuer":"https://accounts.example","#,
                r#""jwks_uri":"https://accounts.example/oauth/v2/keys","#,
                r#""prompt_values_supported":["none"],"#,
                r#""response_modes_supported":["query"],"response_types_supported":["code"],"#,
                r#""revocation_endpoint":"https://accounts.example/oauth/v2/token/revoke","#,
                r#""revocation_endpoint_auth_methods_supported":["none"],"#,
                r#""scopes_supported":["openid"],"subject_types_supported":["public"],"#,
                r#""token_endpoint":"https://accounts.example/oauth/v2/token","#,
                r#""token_endpoint_auth_methods_supported":["client_secret_post","none"],"#,
                r#""userinfo_endpoint":"https://accounts.example/oauth/v2/userinfo"}"#
            )
        );
    }

    #[test]
    fn server_info_body() {
        let locations = BTreeMap::from([
            ("us".to_owned(), "https://accounts.example".to_owned()),
            ("eu".to_owned(), "https://accounts.example.eu".to_owned()),
        ]);
        assert_eq!(
            serde_json::to_string(&ServerInfo::success(locations)).unwrap_or_default(),
            r#"{"locations":{"eu":"https://accounts.example.eu","us":"https://accounts.example"},"result":"success"}"#
        );
    }
}
