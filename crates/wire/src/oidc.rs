//! OpenID Connect bodies: the JSON Web Key Set at `/oauth/v2/keys` (RFC 7517), each key as
//! `signing_keys` stores its public half. Userinfo and ID-token claims are
//! `grantd_core::oidc::{UserClaims, IdTokenClaims}`, built there by the rules of the scopes.

use serde::{Deserialize, Serialize};

pub use grantd_core::oidc::{IdTokenClaims, UserClaims};

/// One public key (RFC 7517 §4; RSA per RFC 7518 §6.3, Ed25519 per RFC 8037 §2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    /// `RSA` or `OKP`.
    pub kty: String,
    #[serde(rename = "use")]
    pub use_: String,
    pub alg: String,
    pub kid: String,
    /// RSA: modulus and exponent, base64url big-endian.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
    /// OKP: `Ed25519` and the public key, base64url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
}

impl Jwk {
    pub fn rsa(kid: &str, alg: &str, n: String, e: String) -> Self {
        Self {
            kty: "RSA".into(),
            use_: "sig".into(),
            alg: alg.into(),
            kid: kid.into(),
            n: Some(n),
            e: Some(e),
            crv: None,
            x: None,
        }
    }

    pub fn ed25519(kid: &str, x: String) -> Self {
        Self {
            kty: "OKP".into(),
            use_: "sig".into(),
            alg: "EdDSA".into(),
            kid: kid.into(),
            n: None,
            e: None,
            crv: Some("Ed25519".into()),
            x: Some(x),
        }
    }
}

/// `GET /oauth/v2/keys`: every published key, the active one first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct JwkSet {
    pub keys: Vec<Jwk>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwks_body() {
        let set = JwkSet {
            keys: vec![
                Jwk::rsa("k1", "RS256", "0vx7".into(), "AQAB".into()),
                Jwk::ed25519("k2", "11qY".into()),
            ],
        };
        assert_eq!(
            serde_json::to_string(&set).unwrap_or_default(),
            concat!(
                r#"{"keys":[{"kty":"RSA","use":"sig","alg":"RS256","kid":"k1","n":"0vx7","e":"AQAB"},"#,
                r#"{"kty":"OKP","use":"sig","alg":"EdDSA","kid":"k2","crv":"Ed25519","x":"11qY"}]}"#
            )
        );
    }
}
