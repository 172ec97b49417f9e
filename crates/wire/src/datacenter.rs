//! Bodies of the server-to-server API between data centers (`/dc/v1/...`, CONTRACT.md "Data
//! centers"). Only peers read these; the signature that authenticates them is
//! `grantd_core::peer_auth`'s.

use serde::{Deserialize, Serialize};

/// `POST /dc/v1/users/lookup`: is this email a user of yours?
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LookupRequest {
    pub email: String,
}

/// The answer to a [`LookupRequest`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LookupResponse {
    pub known: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_bodies() {
        let request = LookupRequest {
            email: "ada@example.com".into(),
        };
        assert_eq!(
            serde_json::to_string(&request).unwrap_or_default(),
            r#"{"email":"ada@example.com"}"#
        );
        assert_eq!(
            serde_json::to_string(&LookupResponse { known: true }).unwrap_or_default(),
            r#"{"known":true}"#
        );
        let read: Result<LookupResponse, _> = serde_json::from_str(r#"{"known":false}"#);
        assert_eq!(read.ok(), Some(LookupResponse { known: false }));
    }
}
