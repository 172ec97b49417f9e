//! The device flow's success bodies (RFC 8628 §3.2, and Zoho's `/oauth/v3/device/code`). The
//! poll's answers are the token body (`token.rs`) or an error body (`error.rs`).

use std::fmt;

use serde::{Deserialize, Serialize};

/// RFC 8628 §3.2: `POST /oauth/v2/device_authorization`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceAuthorization {
    pub device_code: String,
    /// `XXXX-XXXX`.
    pub user_code: String,
    pub verification_uri: String,
    /// `verification_uri` with `?user_code=`, for a QR code or a link.
    pub verification_uri_complete: String,
    pub expires_in: i64,
    pub interval: i64,
}

/// Zoho's `POST /oauth/v3/device/code`: `{"user_code","device_code","verification_url",
/// "expires_in","interval"}`, in that order (CONTRACT.md "Device flow").
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZohoDeviceCode {
    pub user_code: String,
    pub device_code: String,
    pub verification_url: String,
    pub expires_in: i64,
    pub interval: i64,
}

/// Redacted like the secret types: a logged body never carries a usable device code.
impl fmt::Debug for DeviceAuthorization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceAuthorization")
            .field("device_code", &"..")
            .field("user_code", &"..")
            .field("verification_uri", &self.verification_uri)
            .field("expires_in", &self.expires_in)
            .field("interval", &self.interval)
            .finish()
    }
}

impl fmt::Debug for ZohoDeviceCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ZohoDeviceCode")
            .field("user_code", &"..")
            .field("device_code", &"..")
            .field("verification_url", &self.verification_url)
            .field("expires_in", &self.expires_in)
            .field("interval", &self.interval)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zoho_body_in_the_contract_order() {
        let body = ZohoDeviceCode {
            user_code: "WDJB-MJHT".into(),
            device_code: "1000.a.b".into(),
            verification_url: "https://accounts.example/oauth/v3/device".into(),
            expires_in: 300,
            interval: 30,
        };
        assert_eq!(
            serde_json::to_string(&body).unwrap_or_default(),
            r#"{"user_code":"WDJB-MJHT","device_code":"1000.a.b","verification_url":"https://accounts.example/oauth/v3/device","expires_in":300,"interval":30}"#
        );
        assert!(!format!("{body:?}").contains("1000."));
    }

    #[test]
    fn rfc_body() {
        let body = DeviceAuthorization {
            device_code: "1000.a.b".into(),
            user_code: "WDJB-MJHT".into(),
            verification_uri: "https://accounts.example/oauth/v3/device".into(),
            verification_uri_complete:
                "https://accounts.example/oauth/v3/device?user_code=WDJB-MJHT".into(),
            expires_in: 300,
            interval: 30,
        };
        let json = serde_json::to_string(&body).unwrap_or_default();
        assert_eq!(
            json,
            r#"{"device_code":"1000.a.b","user_code":"WDJB-MJHT","verification_uri":"https://accounts.example/oauth/v3/device","verification_uri_complete":"https://accounts.example/oauth/v3/device?user_code=WDJB-MJHT","expires_in":300,"interval":30}"#
        );
        assert_eq!(
            serde_json::from_str::<DeviceAuthorization>(&json).ok(),
            Some(body.clone())
        );
        assert!(!format!("{body:?}").contains("WDJB"));
    }
}
