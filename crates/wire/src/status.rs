//! One-key status bodies: revoke's `{"status":"success"}` (what Zoho's SDKs check, byte for
//! byte) and the health check's `{"status":"ok"}`. Separate from errors: they carry no `error`.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    pub status: Cow<'static, str>,
}

impl Status {
    /// A revocation that succeeded (or, RFC 7009 §2.2, found nothing to revoke).
    pub fn success() -> Self {
        Self {
            status: Cow::Borrowed("success"),
        }
    }

    /// `/healthz`: the process answers.
    pub fn ok() -> Self {
        Self {
            status: Cow::Borrowed("ok"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_bodies() {
        let json = |s: &Status| serde_json::to_string(s).unwrap_or_default();
        assert_eq!(json(&Status::success()), r#"{"status":"success"}"#);
        assert_eq!(json(&Status::ok()), r#"{"status":"ok"}"#);
    }
}
