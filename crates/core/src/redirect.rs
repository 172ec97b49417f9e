//! Redirect URIs: what may be registered, and the exact-match rule that decides whether a
//! request's `redirect_uri` is one of them (RFC 6749 §3.1.2, RFC 9700 §2.1, RFC 8252 §7.3).

use std::fmt;

use url::{Host, Url};

use crate::client::ClientType;

const MAX_URI_LEN: usize = 2048;

/// A registered redirect URI, validated once at registration and compared as a string.
#[derive(Clone, PartialEq, Eq)]
pub struct RedirectUri(String);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedirectUriError {
    NotAUrl,
    Fragment,
    UnsafeScheme,
    PlainHttp,
    Wildcard,
    UserInfo,
    ReservedParameter,
    TooLong,
}

impl fmt::Display for RedirectUriError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NotAUrl => "is not an absolute URL",
            Self::Fragment => "must not contain a fragment (#)",
            Self::UnsafeScheme => "uses a scheme that is not allowed for this client type",
            Self::PlainHttp => "must use https (plain http is allowed only for loopback)",
            Self::Wildcard => "must not contain wildcards",
            Self::UserInfo => "must not contain user information",
            Self::ReservedParameter => "must not carry the code or state parameters",
            Self::TooLong => "is too long",
        })
    }
}

impl RedirectUri {
    /// Validates a URI for registration by a client of `kind`.
    pub fn register(raw: &str, kind: ClientType) -> Result<RedirectUri, RedirectUriError> {
        if raw.len() > MAX_URI_LEN {
            return Err(RedirectUriError::TooLong);
        }
        // Backslashes, spaces and control characters are parsed differently by browsers and
        // URL libraries; refusing them removes the disagreement (T-004).
        if raw
            .bytes()
            .any(|b| b <= b' ' || b == b'\\' || b == 0x7f || b >= 0x80)
        {
            return Err(RedirectUriError::NotAUrl);
        }
        if raw.contains('#') {
            return Err(RedirectUriError::Fragment);
        }
        if raw.contains('*') {
            return Err(RedirectUriError::Wildcard);
        }
        let url = Url::parse(raw).map_err(|_| RedirectUriError::NotAUrl)?;
        if !url.username().is_empty() || url.password().is_some() || raw.contains('@') {
            return Err(RedirectUriError::UserInfo);
        }
        match url.scheme() {
            "https" if url.host().is_some() => {}
            "http" if url.host().is_some() => {
                if !is_loopback(&url) {
                    return Err(RedirectUriError::PlainHttp);
                }
            }
            scheme if kind == ClientType::Mobile && is_private_use_scheme(scheme) => {}
            _ => return Err(RedirectUriError::UnsafeScheme),
        }
        if url
            .query_pairs()
            .any(|(name, _)| name == "code" || name == "state")
        {
            return Err(RedirectUriError::ReservedParameter);
        }
        Ok(RedirectUri(raw.to_owned()))
    }

    /// Wraps a value that was validated before it was stored.
    pub fn from_stored(raw: String) -> RedirectUri {
        RedirectUri(raw)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Does the `requested` URI name this registered one? Exact string comparison, except that
    /// a loopback IP literal may differ in port only (RFC 8252 §7.3), which native apps need.
    pub fn matches(&self, requested: &str, kind: ClientType) -> bool {
        if self.0 == requested {
            return true;
        }
        kind == ClientType::Mobile
            && match (
                without_loopback_port(&self.0),
                without_loopback_port(requested),
            ) {
                (Some(registered), Some(requested)) => registered == requested,
                _ => false,
            }
    }

    /// This URI with `params` appended, keeping its own query (CONTRACT.md, step 5).
    pub fn with_params(&self, params: &[(&str, &str)]) -> String {
        let mut out = self.0.clone();
        let mut serializer = form_urlencoded::Serializer::new(String::new());
        for (name, value) in params {
            serializer.append_pair(name, value);
        }
        let query = serializer.finish();
        if !query.is_empty() {
            out.push(if self.0.contains('?') { '&' } else { '?' });
            out.push_str(&query);
        }
        out
    }
}

impl fmt::Debug for RedirectUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

/// An absolute `http` or `https` URL with a host, as a client's homepage must be.
pub fn is_web_url(raw: &str) -> bool {
    raw.len() <= MAX_URI_LEN
        && !raw.bytes().any(|b| b <= b' ' || b == b'\\' || b >= 0x7f)
        && Url::parse(raw)
            .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        Some(Host::Domain(name)) => name == "localhost",
        None => false,
    }
}

/// RFC 8252 §7.1: a reverse-domain scheme such as `com.example.app`. Known dangerous schemes
/// never contain a dot, but are named anyway so the intent is plain.
fn is_private_use_scheme(scheme: &str) -> bool {
    !matches!(
        scheme,
        "javascript" | "data" | "vbscript" | "file" | "blob" | "about"
    ) && scheme.contains('.')
}

/// `http://127.0.0.1:1234/cb` → `http://127.0.0.1/cb`; `None` when the URI is not an
/// `http` loopback IP literal. Works on the raw string, so nothing is normalised away.
fn without_loopback_port(uri: &str) -> Option<String> {
    for authority in ["http://127.0.0.1", "http://[::1]"] {
        if let Some(rest) = uri.strip_prefix(authority) {
            let rest = match rest.strip_prefix(':') {
                Some(port_and_rest) => {
                    let digits = port_and_rest.bytes().take_while(u8::is_ascii_digit).count();
                    if digits == 0 || digits > 5 {
                        return None;
                    }
                    &port_and_rest[digits..]
                }
                None => rest,
            };
            if !(rest.is_empty() || rest.starts_with('/') || rest.starts_with('?')) {
                return None;
            }
            return Some(format!("{authority}{rest}"));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn web(raw: &str) -> Result<RedirectUri, RedirectUriError> {
        RedirectUri::register(raw, ClientType::Server)
    }

    #[test]
    fn t012_t013_t005_unsafe_registrations_are_refused() {
        for bad in [
            "javascript:alert(1)",
            "data:text/html,hi",
            "vbscript:msgbox",
            "http://a.example/cb",
            "https://*.example/cb",
            "https://a.example/cb#x",
            "https://a.example/cb?code=1",
            "https://a.example/cb?state=x",
            "https://a.example@evil.test/cb",
            "https://a.example\\@evil.test/cb",
            "/relative",
            "https://a.example/c b",
        ] {
            assert!(web(bad).is_err(), "{bad} should be refused");
        }
        assert!(web("https://a.example/cb").is_ok());
        assert!(web("http://127.0.0.1:8000/cb").is_ok());
        assert!(RedirectUri::register("com.example.app:/cb", ClientType::Mobile).is_ok());
        assert!(RedirectUri::register("com.example.app:/cb", ClientType::Server).is_err());
    }

    #[test]
    fn matching_is_exact() {
        let uri = RedirectUri::from_stored("https://a.example/cb".into());
        assert!(uri.matches("https://a.example/cb", ClientType::Server));
        for bad in [
            "https://a.example/cb/evil",
            "https://a.example/cbx",
            "https://a.example/CB",
            "HTTPS://A.EXAMPLE/cb",
            "https://a.example/cb?next=https://evil.test",
            "https://a.example/cb#x",
        ] {
            assert!(!uri.matches(bad, ClientType::Server), "{bad}");
        }
    }

    #[test]
    fn t009_loopback_may_vary_in_port_only() {
        let uri = RedirectUri::from_stored("http://127.0.0.1/cb".into());
        assert!(uri.matches("http://127.0.0.1:49152/cb", ClientType::Mobile));
        assert!(!uri.matches("http://127.0.0.1:49152/cb", ClientType::Server));
        for bad in [
            "http://127.0.0.1:49152/cb?x=1",
            "http://127.0.0.1:49152/other",
            "http://localhost:49152/cb",
            "http://[::1]:49152/cb",
            "http://127.0.0.1:49152@evil.test/cb",
            "http://127.0.0.1.evil.test/cb",
        ] {
            assert!(!uri.matches(bad, ClientType::Mobile), "{bad}");
        }
    }

    #[test]
    fn params_keep_the_registered_query() {
        let uri = RedirectUri::from_stored("https://q.example/cb?tenant=7".into());
        assert_eq!(
            uri.with_params(&[("code", "c"), ("state", "a b&c")]),
            "https://q.example/cb?tenant=7&code=c&state=a+b%26c"
        );
    }
}
