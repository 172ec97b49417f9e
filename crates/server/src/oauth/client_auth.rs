//! Client authentication at the token, revocation and introspection endpoints: `client_id` and
//! `client_secret` parameters (Zoho's SDKs) or HTTP Basic (most standard libraries), RFC 6749
//! §2.3.1. Every failure is the same `invalid_client`.

use axum::http::header::AUTHORIZATION;
use axum::http::HeaderMap;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use grantd_core::secret::ClientSecret;
use grantd_core::{Client, ClientId, Dialect, OAuthError};
use grantd_store::ConsoleVerbs;

use crate::app::App;
use crate::error::{ApiError, Failure};
use crate::params::Params;

/// Client ids are 35 characters; anything far longer is not looked up.
const MAX_CLIENT_ID_LEN: usize = 128;

/// What the request claims, parsed once: the secret is a secret type from here on.
#[derive(Debug, Default)]
pub struct Credentials {
    pub client_id: Option<ClientId>,
    pub secret: Option<ClientSecret>,
    /// Sent with HTTP Basic, so a 401 carries `WWW-Authenticate: Basic`.
    pub basic: bool,
}

impl Credentials {
    pub fn read(headers: &HeaderMap, params: &Params) -> Result<Credentials, OAuthError> {
        let mut credentials = Credentials::default();
        if let Some((id, secret)) = basic(headers)? {
            credentials = Credentials {
                client_id: Some(ClientId::new(id)),
                secret: Some(secret)
                    .filter(|s| !s.is_empty())
                    .map(ClientSecret::from_wire),
                basic: true,
            };
        }
        // Both ways at once must agree (CONTRACT.md).
        if let Some(id) = params.get("client_id")? {
            match &credentials.client_id {
                Some(basic_id) if basic_id.as_str() != id => return Err(OAuthError::InvalidClient),
                _ => credentials.client_id = Some(ClientId::new(id.to_owned())),
            }
        }
        if let Some(secret) = params.get("client_secret")? {
            match &credentials.secret {
                Some(basic_secret) if basic_secret.expose() != secret => {
                    return Err(OAuthError::InvalidClient)
                }
                _ => credentials.secret = Some(ClientSecret::from_wire(secret.to_owned())),
            }
        }
        Ok(credentials)
    }

    pub fn is_empty(&self) -> bool {
        self.client_id.is_none() && self.secret.is_none()
    }

    /// The client these credentials name, if it exists.
    pub async fn claimed_client(&self, app: &App) -> Result<Option<Client>, Failure> {
        match &self.client_id {
            Some(id) if id.as_str().len() <= MAX_CLIENT_ID_LEN => {
                Ok(app.store.client(id.as_str()).await?)
            }
            _ => Ok(None),
        }
    }
}

/// Who is calling, as far as the request says, and the dialect to answer in: the claimed
/// client's, or the server's default where the client is unknown.
pub struct Caller {
    pub credentials: Credentials,
    pub client: Option<Client>,
    pub dialect: Dialect,
    /// What a claimed but unknown client is told: with peers, that it is not enabled at this
    /// data center, since it may well be registered at another.
    unknown: OAuthError,
}

impl Caller {
    pub async fn identify(
        app: &App,
        headers: &HeaderMap,
        params: &Params,
    ) -> Result<Caller, ApiError> {
        let default = app.settings.default_dialect;
        let credentials = Credentials::read(headers, params).map_err(|e| ApiError {
            failure: e.into(),
            dialect: default,
            basic: headers.contains_key(AUTHORIZATION),
        })?;
        let client = credentials
            .claimed_client(app)
            .await
            .map_err(|e| ApiError::new(e, default))?;
        let dialect = client.as_ref().map_or(default, |c| c.dialect);
        // Built only when the client is unknown: nothing is allocated on the token endpoint's
        // path for a client that exists.
        let claimed_elsewhere = client.is_none()
            && credentials.client_id.is_some()
            && !app.settings.datacenters.is_empty();
        let unknown = if claimed_elsewhere {
            OAuthError::ClientNotEnabled {
                location: app.settings.location.clone(),
            }
        } else {
            OAuthError::InvalidClient
        };
        Ok(Caller {
            credentials,
            client,
            dialect,
            unknown,
        })
    }

    /// The client, if the credentials prove it: a confidential client must present its
    /// secret, a public client must not pretend to have one.
    pub fn authenticated(&self) -> Result<&Client, OAuthError> {
        let client = self.client.as_ref().ok_or_else(|| self.unknown.clone())?;
        let ok = match (&client.secret_hash, &self.credentials.secret) {
            (Some(_), Some(secret)) => client.secret_matches(secret.expose()),
            (None, None) => true,
            _ => false,
        };
        if ok {
            Ok(client)
        } else {
            Err(OAuthError::InvalidClient)
        }
    }

    /// The claimed client, its secret checked only when one was presented: RFC 8628 §3.1's
    /// device authorization request, which Zoho's docs make with `client_id` alone (a device
    /// code is worth nothing without the secret that its polls must present).
    pub fn identified(&self) -> Result<&Client, OAuthError> {
        if self.credentials.secret.is_some() {
            return self.authenticated();
        }
        self.client.as_ref().ok_or_else(|| self.unknown.clone())
    }

    /// An error in this caller's dialect.
    pub fn error(&self, failure: impl Into<Failure>) -> ApiError {
        ApiError {
            failure: failure.into(),
            dialect: self.dialect,
            basic: self.credentials.basic,
        }
    }
}

/// `Authorization: Basic base64(urlencode(id) ":" urlencode(secret))`.
fn basic(headers: &HeaderMap) -> Result<Option<(String, String)>, OAuthError> {
    let Some(value) = headers.get(AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| OAuthError::InvalidClient)?;
    let Some((scheme, encoded)) = value.split_once(' ') else {
        return Ok(None);
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(None);
    }
    if encoded.len() > 1024 {
        return Err(OAuthError::InvalidClient);
    }
    let decoded = STANDARD
        .decode(encoded.trim())
        .map_err(|_| OAuthError::InvalidClient)?;
    let decoded = String::from_utf8(decoded).map_err(|_| OAuthError::InvalidClient)?;
    let (id, secret) = decoded.split_once(':').ok_or(OAuthError::InvalidClient)?;
    let id = form_decode(id).ok_or(OAuthError::InvalidClient)?;
    let secret = form_decode(secret).ok_or(OAuthError::InvalidClient)?;
    if id.is_empty() {
        return Err(OAuthError::InvalidClient);
    }
    Ok(Some((id, secret)))
}

fn form_decode(raw: &str) -> Option<String> {
    let decoded: String = form_urlencoded::parse(format!("v={raw}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())?;
    (!decoded.contains('\u{FFFD}')).then_some(decoded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn header(raw: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_str(raw) {
            headers.insert(AUTHORIZATION, v);
        }
        headers
    }

    #[test]
    fn t063_basic_decoding() {
        let encoded = STANDARD.encode("id%3Ax:s%25%2B+t");
        assert_eq!(
            basic(&header(&format!("Basic {encoded}"))),
            Ok(Some(("id:x".into(), "s%+ t".into())))
        );
        for bad in ["Basic !!!", "Basic aWQ=", "Basic OnNlY3JldA=="] {
            assert_eq!(basic(&header(bad)), Err(OAuthError::InvalidClient), "{bad}");
        }
        let long = format!("Basic {}", "A".repeat(10_000));
        assert_eq!(basic(&header(&long)), Err(OAuthError::InvalidClient));
        assert_eq!(basic(&header("Bearer abc")), Ok(None));
    }
}
