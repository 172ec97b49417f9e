//! Bodies of the server-to-server API between data centers (`/dc/v1/...`, CONTRACT.md "Data
//! centers"). Only peers read these; the signature that authenticates them is
//! `grantd_core::peer_auth`'s.

use std::str::FromStr;

use serde::{Deserialize, Serialize};

use grantd_core::device::DeviceGrant;
use grantd_core::grant::AccessType;
use grantd_core::oidc::SigningAlg;
use grantd_core::secret::SecretHash;
use grantd_core::{Client, ClientId, ClientType, Dialect, RedirectUri, Timestamp};

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

/// `GET /dc/v1/clients`: the clients registered at the answering DC and enabled at the caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedClients {
    pub clients: Vec<SharedClient>,
}

/// One client as its home serves it to a DC it is enabled at: what that DC needs to
/// authenticate it and run its flows, with the secret only as the hash that works there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedClient {
    pub client_id: String,
    pub client_type: String,
    pub name: String,
    pub homepage: Option<String>,
    pub redirect_uris: Vec<String>,
    pub dialect: String,
    pub js_domain: Option<String>,
    /// Hex SHA-256; `null` for a public client.
    pub secret_hash: Option<String>,
    /// The algorithm its ID tokens are signed with (OpenID Connect Dynamic Client
    /// Registration's name), so it signs the same way at every data center; absent: each
    /// server's default. A peer from before this field sends none, which reads as absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token_signed_response_alg: Option<String>,
}

impl From<&Client> for SharedClient {
    fn from(client: &Client) -> Self {
        Self {
            client_id: client.id.to_string(),
            client_type: client.kind.as_str().to_owned(),
            name: client.name.clone(),
            homepage: client.homepage.clone(),
            redirect_uris: client
                .redirect_uris
                .iter()
                .map(|uri| uri.as_str().to_owned())
                .collect(),
            dialect: client.dialect.as_str().to_owned(),
            js_domain: client.js_domain.clone(),
            secret_hash: client.secret_hash.as_ref().map(SecretHash::to_hex),
            id_token_signed_response_alg: client.id_token_alg.map(|alg| alg.as_str().to_owned()),
        }
    }
}

impl SharedClient {
    /// The client as mirrored from `home`; `None` for a record this version cannot read (an
    /// unknown type or algorithm, a malformed hash), or a Self Client, which never leaves home.
    pub fn to_client(&self, home: &str, now: Timestamp) -> Option<Client> {
        let kind = ClientType::from_str(&self.client_type).ok()?;
        if kind == ClientType::SelfClient {
            return None;
        }
        let secret_hash = match &self.secret_hash {
            Some(hex) => Some(SecretHash::from_hex(hex)?),
            None => None,
        };
        let id_token_alg = match &self.id_token_signed_response_alg {
            Some(alg) => Some(SigningAlg::parse(alg)?),
            None => None,
        };
        Some(Client {
            id: ClientId::new(self.client_id.clone()),
            kind,
            name: self.name.clone(),
            homepage: self.homepage.clone(),
            redirect_uris: self
                .redirect_uris
                .iter()
                .map(|uri| RedirectUri::from_stored(uri.clone()))
                .collect(),
            secret_hash,
            owner_id: None,
            dialect: Dialect::from_str(&self.dialect).ok()?,
            js_domain: self.js_domain.clone(),
            created_at: now,
            introspect_any: false,
            home: Some(home.to_owned()),
            id_token_alg,
        })
    }
}

/// `POST /dc/v1/device/handover`: a device authorization begun at the caller, handed to the DC
/// where the user who answers it lives, so that the device polls there with the code it has
/// (CONTRACT.md "Device flow"). Both codes travel only as their SHA-256, in hex.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceHandover {
    pub device_code_hash: String,
    pub user_code_hash: String,
    pub client_id: String,
    pub scopes: String,
    pub offline: bool,
    pub interval_secs: i64,
    pub expires_at: i64,
}

impl DeviceHandover {
    pub fn new(
        device_code_hash: &SecretHash,
        user_code_hash: &SecretHash,
        grant: &DeviceGrant,
    ) -> Self {
        Self {
            device_code_hash: device_code_hash.to_hex(),
            user_code_hash: user_code_hash.to_hex(),
            client_id: grant.client_id.to_string(),
            scopes: grant.scopes.to_stored(),
            offline: grant.access_type == AccessType::Offline,
            interval_secs: grant.interval_secs,
            expires_at: grant.expires_at.0,
        }
    }

    /// The two hashes; `None` if either is not one.
    pub fn hashes(&self) -> Option<(SecretHash, SecretHash)> {
        Some((
            SecretHash::from_hex(&self.device_code_hash)?,
            SecretHash::from_hex(&self.user_code_hash)?,
        ))
    }

    pub fn access_type(&self) -> AccessType {
        if self.offline {
            AccessType::Offline
        } else {
            AccessType::Online
        }
    }
}

/// The answer to a [`DeviceHandover`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceHandoverResponse {
    pub result: HandoverResult,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HandoverResult {
    /// Stored: the user may enter the code there, and the device poll there.
    Accepted,
    /// The client is not registered at, or not enabled for, the receiving DC (or may not use
    /// the device flow there).
    ClientNotEnabled,
    /// A scope the receiving DC does not have.
    UnknownScope,
    /// It expired on the way.
    Expired,
    /// The receiving DC already has an authorization with one of these codes.
    Conflict,
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

    #[test]
    fn a_device_handover_carries_hashes_only() {
        let grant = DeviceGrant {
            client_id: ClientId::new("1000.TV".into()),
            scopes: grantd_core::Scopes::from_stored("Demo.x.READ openid"),
            access_type: AccessType::Offline,
            status: grantd_core::device::DeviceStatus::Pending,
            interval_secs: 35,
            last_poll_at: None,
            expires_at: Timestamp(1_800_000_300),
        };
        let (device, user) = (SecretHash::of("device"), SecretHash::of("ABCD2345"));
        let handover = DeviceHandover::new(&device, &user, &grant);
        let json = serde_json::to_string(&handover).unwrap_or_default();
        assert!(
            !json.contains("\"device\"") && !json.contains("ABCD2345"),
            "{json}"
        );
        let read: Option<DeviceHandover> = serde_json::from_str(&json).ok();
        assert_eq!(read.as_ref(), Some(&handover));
        assert_eq!(handover.hashes(), Some((device, user)));
        assert_eq!(handover.access_type(), AccessType::Offline);
        let broken = DeviceHandover {
            user_code_hash: "zz".into(),
            ..handover
        };
        assert_eq!(broken.hashes(), None);
        assert_eq!(
            serde_json::to_string(&DeviceHandoverResponse {
                result: HandoverResult::ClientNotEnabled
            })
            .unwrap_or_default(),
            r#"{"result":"client_not_enabled"}"#
        );
    }

    #[test]
    fn a_shared_client_round_trips_and_never_carries_a_secret() {
        let shared = SharedClient {
            client_id: "1000.ABC".into(),
            client_type: "server".into(),
            name: "A".into(),
            homepage: Some("https://a.example".into()),
            redirect_uris: vec!["https://a.example/cb".into()],
            dialect: "zoho".into(),
            js_domain: None,
            secret_hash: Some(SecretHash::of("s").to_hex()),
            id_token_signed_response_alg: Some("EdDSA".into()),
        };
        let client = shared.to_client("us", Timestamp(7));
        let client = client.as_ref();
        assert_eq!(client.map(|c| c.home.as_deref()), Some(Some("us")));
        assert!(client.is_some_and(|c| c.secret_matches("s") && c.owner_id.is_none()));
        assert_eq!(client.map(SharedClient::from), Some(shared.clone()));
        let json = serde_json::to_string(&shared).unwrap_or_default();
        assert!(!json.contains("\"s\""), "{json}");

        for broken in [
            SharedClient {
                client_type: "self".into(),
                ..shared.clone()
            },
            SharedClient {
                client_type: "robot".into(),
                ..shared.clone()
            },
            SharedClient {
                secret_hash: Some("zz".into()),
                ..shared.clone()
            },
            SharedClient {
                dialect: "klingon".into(),
                ..shared.clone()
            },
            SharedClient {
                id_token_signed_response_alg: Some("HS256".into()),
                ..shared.clone()
            },
        ] {
            assert!(broken.to_client("us", Timestamp(7)).is_none(), "{broken:?}");
        }
    }

    #[test]
    fn a_shared_client_carries_its_id_token_algorithm_and_an_older_peers_body_still_parses() {
        let client = |body: &str| {
            serde_json::from_str::<SharedClient>(body)
                .ok()
                .and_then(|shared| shared.to_client("us", Timestamp(7)))
                .map(|c| c.id_token_alg)
        };
        let older = r#"{"client_id":"1000.A","client_type":"server","name":"A","homepage":null,
            "redirect_uris":["https://a.example/cb"],"dialect":"standard","js_domain":null,
            "secret_hash":null}"#;
        assert_eq!(client(older), Some(None));
        let eddsa = older.replace(
            r#""secret_hash":null"#,
            r#""secret_hash":null,"id_token_signed_response_alg":"EdDSA""#,
        );
        assert_eq!(client(&eddsa), Some(Some(SigningAlg::EdDsa)));
        // The server default is not sent, so such a body is what older peers expect.
        let default: Option<SharedClient> = serde_json::from_str(older).ok();
        let json = serde_json::to_string(&default).unwrap_or_default();
        assert!(
            json.contains("client_id") && !json.contains("id_token"),
            "{json}"
        );
    }
}
