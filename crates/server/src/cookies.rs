//! The two browser cookies: the session (after login) and the pre-session that binds the login
//! form's CSRF token. Both are random 256-bit values; the server stores only their hashes.
//! Their names carry the data center's location: cookies belong to a host, not a port, so
//! DCs on one host name (on different ports) would otherwise overwrite each other's.

use axum::http::header::COOKIE;
use axum::http::HeaderMap;

use grantd_core::secret::SessionToken;

use crate::app::Settings;

#[derive(Debug, Clone, Copy)]
pub enum Cookie {
    Session,
    PreSession,
}

impl Cookie {
    /// `__Host-` pins the cookie to this origin when it can be Secure (T-074).
    pub fn name(self, settings: &Settings) -> String {
        let prefix = if settings.secure_cookies() {
            "__Host-"
        } else {
            ""
        };
        let kind = match self {
            Cookie::Session => "session",
            Cookie::PreSession => "pre",
        };
        // A location is lower-case letters, digits and dashes (`datacenter::is_location`),
        // all of them allowed in a cookie name.
        format!("{prefix}grantd_{kind}_{}", settings.location)
    }

    pub fn read(self, headers: &HeaderMap, settings: &Settings) -> Option<SessionToken> {
        let name = self.name(settings);
        headers
            .get_all(COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(n, v)| *n == name && v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
            .map(|(_, v)| SessionToken::from_wire(v.to_owned()))
    }

    pub fn set(self, token: &SessionToken, max_age: i64, settings: &Settings) -> String {
        format!(
            "{}={}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{}",
            self.name(settings),
            token.expose(),
            if settings.secure_cookies() {
                "; Secure"
            } else {
                ""
            }
        )
    }

    pub fn clear(self, settings: &Settings) -> String {
        format!(
            "{}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{}",
            self.name(settings),
            if settings.secure_cookies() {
                "; Secure"
            } else {
                ""
            }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_location_and_the_host_prefix_over_https() {
        let mut settings = Settings::new("http://127.0.0.1:8081");
        settings.location = "eu".into();
        assert_eq!(Cookie::Session.name(&settings), "grantd_session_eu");
        assert_eq!(Cookie::PreSession.name(&settings), "grantd_pre_eu");
        let mut secure = Settings::new("https://accounts.example.in");
        secure.location = "in".into();
        assert_eq!(Cookie::Session.name(&secure), "__Host-grantd_session_in");
        assert_eq!(Cookie::PreSession.name(&secure), "__Host-grantd_pre_in");
    }
}
