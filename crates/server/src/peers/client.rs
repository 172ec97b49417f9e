//! Calls to other data centers: one `reqwest` client (rustls, no redirects followed), every
//! request signed (`grantd_core::peer_auth`), connecting within 1 s and answered within 2 s.
//! A peer that is down, slow, refuses or answers nonsense is a `PeerError`, never a hang or a
//! panic, so a DC keeps serving its own users whatever its peers do.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderValue, CONTENT_TYPE};
use reqwest::redirect::Policy;
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::Serialize;

use grantd_core::datacenter::Peer;
use grantd_core::peer_auth::{self, DcSecret};
use grantd_core::Clock;

pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
pub const TOTAL_TIMEOUT: Duration = Duration::from_secs(2);
/// Far above any answer a peer gives (a DC's client records), far below what costs memory.
const MAX_ANSWER_BYTES: usize = 8 * 1024 * 1024;

/// Why a call to a peer gave no answer. Never carries the secret or a signature.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("{0} is not a configured data center")]
    NotAPeer(String),
    /// Not connected, timed out, or the connection broke.
    #[error("unreachable: {0}")]
    Unreachable(String),
    /// Answered with a status other than 200 (a 401: the secrets or clocks differ).
    #[error("answered HTTP {0}")]
    Status(u16),
    #[error("answered something unreadable: {0}")]
    Malformed(String),
}

/// Signs and sends calls to this DC's peers. Cheap to clone.
#[derive(Clone)]
pub struct PeerClient(Arc<Inner>);

struct Inner {
    http: reqwest::Client,
    secret: DcSecret,
    /// This DC's location, sent as `X-Grantd-DC`.
    location: String,
    peers: BTreeMap<String, Peer>,
    clock: Arc<dyn Clock>,
}

impl PeerClient {
    pub fn new(
        location: &str,
        secret: DcSecret,
        peers: BTreeMap<String, Peer>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, PeerError> {
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(TOTAL_TIMEOUT)
            // A peer's answer is its own; a redirect elsewhere would carry the signature away.
            .redirect(Policy::none())
            .user_agent(concat!("grantd/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| PeerError::Unreachable(format!("cannot make an HTTP client: {e}")))?;
        Ok(Self(Arc::new(Inner {
            http,
            secret,
            location: location.to_owned(),
            peers,
            clock,
        })))
    }

    /// Every peer's location, in order.
    pub fn locations(&self) -> impl Iterator<Item = &str> {
        self.0.peers.keys().map(String::as_str)
    }

    pub fn peer(&self, location: &str) -> Option<&Peer> {
        self.0.peers.get(location)
    }

    /// A signed `GET {accounts}{path}` at the peer `location`, its JSON answer read as `T`.
    pub async fn get_json<T: DeserializeOwned>(
        &self,
        location: &str,
        path: &str,
    ) -> Result<T, PeerError> {
        self.call(Method::GET, location, path, Vec::new()).await
    }

    /// A signed `POST {accounts}{path}` with `body` as JSON, its JSON answer read as `T`.
    pub async fn post_json<B: Serialize, T: DeserializeOwned>(
        &self,
        location: &str,
        path: &str,
        body: &B,
    ) -> Result<T, PeerError> {
        let body = serde_json::to_vec(body).map_err(|e| PeerError::Malformed(e.to_string()))?;
        self.call(Method::POST, location, path, body).await
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        location: &str,
        path: &str,
        body: Vec<u8>,
    ) -> Result<T, PeerError> {
        let inner = &self.0;
        let peer = inner
            .peers
            .get(location)
            .ok_or_else(|| PeerError::NotAPeer(location.to_owned()))?;
        let timestamp = inner.clock.now();
        let nonce = peer_auth::new_nonce();
        let signature = peer_auth::sign(
            &inner.secret,
            method.as_str(),
            path,
            timestamp,
            &nonce,
            &body,
        );
        let mut request = inner
            .http
            .request(method, format!("{}{path}", peer.accounts))
            .header(peer_auth::DC_HEADER, &inner.location)
            .header(peer_auth::TIMESTAMP_HEADER, timestamp.0.to_string())
            .header(peer_auth::NONCE_HEADER, nonce)
            .header(peer_auth::SIGNATURE_HEADER, signature);
        if !body.is_empty() {
            request = request
                .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
                .body(body);
        }
        let mut response = request.send().await.map_err(unreachable)?;
        if response.status() != reqwest::StatusCode::OK {
            return Err(PeerError::Status(response.status().as_u16()));
        }
        let mut answer = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(unreachable)? {
            if answer.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(PeerError::Malformed("the answer is too large".into()));
            }
            answer.extend_from_slice(&chunk);
        }
        serde_json::from_slice(&answer).map_err(|e| PeerError::Malformed(e.to_string()))
    }
}

/// reqwest's error with its source chain (the refused connection, the timeout), which its own
/// `Display` leaves out.
fn unreachable(e: reqwest::Error) -> PeerError {
    let mut message = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    PeerError::Unreachable(message)
}

impl std::fmt::Debug for PeerClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerClient")
            .field("location", &self.0.location)
            .field("peers", &self.0.peers.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}
