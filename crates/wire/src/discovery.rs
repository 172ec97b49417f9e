//! Discovery bodies: RFC 8414 authorization server metadata and Zoho's `/oauth/serverinfo`.
//! Separate because clients read them before any token exists, to find everything else.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// RFC 8414 §2. Fields in alphabetical order, as grantd has always sent them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    pub authorization_endpoint: String,
    /// RFC 9207: `iss` is on every authorization response.
    pub authorization_response_iss_parameter_supported: bool,
    pub code_challenge_methods_supported: Vec<String>,
    /// RFC 8628 §4.
    pub device_authorization_endpoint: String,
    pub grant_types_supported: Vec<String>,
    pub introspection_endpoint: String,
    pub introspection_endpoint_auth_methods_supported: Vec<String>,
    /// `{accounts}` exactly: strict clients compare it byte for byte.
    pub issuer: String,
    pub response_modes_supported: Vec<String>,
    pub response_types_supported: Vec<String>,
    pub revocation_endpoint: String,
    pub revocation_endpoint_auth_methods_supported: Vec<String>,
    pub token_endpoint: String,
    pub token_endpoint_auth_methods_supported: Vec<String>,
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
            code_challenge_methods_supported: strings(&["S256"]),
            device_authorization_endpoint: format!("{base}/oauth/v2/device_authorization"),
            grant_types_supported: strings(&["authorization_code", "refresh_token"]),
            introspection_endpoint: format!("{base}/oauth/v2/introspect"),
            introspection_endpoint_auth_methods_supported: strings(&["client_secret_basic"]),
            issuer: base.to_owned(),
            response_modes_supported: strings(&["query"]),
            response_types_supported: strings(&["code"]),
            revocation_endpoint: format!("{base}/oauth/v2/token/revoke"),
            revocation_endpoint_auth_methods_supported: strings(&["none"]),
            token_endpoint: format!("{base}/oauth/v2/token"),
            token_endpoint_auth_methods_supported: strings(&["client_secret_post", "none"]),
            userinfo_endpoint: format!("{base}/oauth/user/info"),
        };
        assert_eq!(
            serde_json::to_string(&metadata).unwrap_or_default(),
            concat!(
                r#"{"authorization_endpoint":"https://accounts.example/oauth/v2/auth","#,
                r#""authorization_response_iss_parameter_supported":true,"#,
                r#""code_challenge_methods_supported":["S256"],"#,
                r#""device_authorization_endpoint":"https://accounts.example/oauth/v2/device_authorization","#,
                r#""grant_types_supported":["authorization_code","refresh_token"],"#,
                r#""introspection_endpoint":"https://accounts.example/oauth/v2/introspect","#,
                r#""introspection_endpoint_auth_methods_supported":["client_secret_basic"],"#,
                r#""issuer":"https://accounts.example","#,
                r#""response_modes_supported":["query"],"response_types_supported":["code"],"#,
                r#""revocation_endpoint":"https://accounts.example/oauth/v2/token/revoke","#,
                r#""revocation_endpoint_auth_methods_supported":["none"],"#,
                r#""token_endpoint":"https://accounts.example/oauth/v2/token","#,
                r#""token_endpoint_auth_methods_supported":["client_secret_post","none"],"#,
                r#""userinfo_endpoint":"https://accounts.example/oauth/user/info"}"#
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
