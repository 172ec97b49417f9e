//! What resource endpoints answer with a valid token: Zoho's `/oauth/user/info` and RFC 7662
//! introspection. Separate from the token body: these describe a token, they never carry one.

use serde::{Deserialize, Serialize};

/// `GET /oauth/user/info`, in Zoho's capitalised names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfo {
    #[serde(rename = "Display_Name")]
    pub display_name: String,
    #[serde(rename = "Email")]
    pub email: String,
    #[serde(rename = "First_Name")]
    pub first_name: String,
    #[serde(rename = "Last_Name")]
    pub last_name: String,
    #[serde(rename = "ZUID")]
    pub zuid: i64,
}

impl UserInfo {
    /// First and last name are the display name split at its first space, as Zoho shows them.
    pub fn new(zuid: i64, email: &str, display_name: &str) -> Self {
        let (first, last) = grantd_core::oidc::split_name(display_name);
        Self {
            display_name: display_name.to_owned(),
            email: email.to_owned(),
            first_name: first.to_owned(),
            last_name: last.to_owned(),
            zuid,
        }
    }
}

/// RFC 7662 §2.2: `{"active":false}` and nothing else for a token the caller may not see;
/// otherwise its scope, client, subject and type, and `exp` for access tokens only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Introspection {
    pub active: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// RFC 7662 §2.2: "as defined in Section 5.1 of OAuth 2.0", so `Bearer`, the type every
    /// token response names; not which kind of token it is (an access token has `exp`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_type: Option<String>,
}

impl Introspection {
    pub fn inactive() -> Self {
        Self {
            active: false,
            client_id: None,
            exp: None,
            scope: None,
            sub: None,
            token_type: None,
        }
    }

    /// A live token; `exp` (seconds since the epoch) only for access tokens, as refresh
    /// tokens do not expire.
    pub fn active(scope: String, client_id: &str, sub: String, exp: Option<i64>) -> Self {
        Self {
            active: true,
            client_id: Some(client_id.to_owned()),
            exp,
            scope: Some(scope),
            sub: Some(sub),
            token_type: Some("Bearer".to_owned()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(body: &impl Serialize) -> String {
        serde_json::to_string(body).unwrap_or_default()
    }

    #[test]
    fn user_info_in_zoho_names() {
        assert_eq!(
            json(&UserInfo::new(123, "ada@example.com", "Ada King Lovelace")),
            r#"{"Display_Name":"Ada King Lovelace","Email":"ada@example.com","First_Name":"Ada","Last_Name":"King Lovelace","ZUID":123}"#
        );
        assert_eq!(
            json(&UserInfo::new(1, "a@example.com", "Ada")),
            r#"{"Display_Name":"Ada","Email":"a@example.com","First_Name":"Ada","Last_Name":"","ZUID":1}"#
        );
    }

    #[test]
    fn introspection_active_and_inactive() {
        assert_eq!(json(&Introspection::inactive()), r#"{"active":false}"#);
        assert_eq!(
            json(&Introspection::active(
                "A.b.READ".into(),
                "1000.X",
                "7".into(),
                Some(1_700_000_000)
            )),
            r#"{"active":true,"client_id":"1000.X","exp":1700000000,"scope":"A.b.READ","sub":"7","token_type":"Bearer"}"#
        );
        assert_eq!(
            json(&Introspection::active(
                "A.b.READ".into(),
                "1000.X",
                "7".into(),
                None
            )),
            r#"{"active":true,"client_id":"1000.X","scope":"A.b.READ","sub":"7","token_type":"Bearer"}"#
        );
    }

    #[test]
    fn inactive_reads_back() {
        let parsed: Option<Introspection> = serde_json::from_str(r#"{"active":false}"#).ok();
        assert_eq!(parsed, Some(Introspection::inactive()));
    }
}
