//! The one extractor every `/dc/v1/...` handler takes: it reads the body, checks the caller's
//! timestamp (±60 s of this node's clock), the HMAC-SHA256 signature over method, path,
//! timestamp, nonce and body (`grantd_core::peer_auth`), that the caller names a configured
//! peer, and that the nonce is new to this node. Any failure is a 401 JSON answer and one
//! `warn!` line with the reason and the caller's claimed DC, never the secret or the signature.
//! A DC without a dc secret has no `/dc/v1` routes; should one be reached anyway, it is a 404.

use std::sync::Mutex;

use axum::body::Bytes;
use axum::extract::{FromRequest, OriginalUri, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;

use grantd_core::datacenter::is_location;
use grantd_core::peer_auth::{self, Admission, NonceCache, Presented, Refusal};
use grantd_core::Timestamp;
use grantd_wire::ErrorBody;

use crate::app::App;
use crate::routes::BODY_LIMIT;

/// Nonces one node remembers at most: at 120 s each, over 500 signed calls a second.
const NONCE_CAPACITY: usize = 65_536;

/// A verified call from a peer: who it says it is (a configured peer's location) and the body
/// exactly as signed.
#[derive(Debug)]
pub struct Signed {
    pub caller: String,
    pub body: Bytes,
}

/// A verified call whose body is JSON of type `T`; a body that is not is a 400.
#[derive(Debug)]
pub struct SignedJson<T> {
    pub caller: String,
    pub body: T,
}

/// The nonces this node has seen, behind a lock held for one look-up.
#[derive(Debug)]
pub struct NonceGuard(Mutex<NonceCache>);

impl NonceGuard {
    pub fn new() -> Self {
        Self(Mutex::new(NonceCache::new(NONCE_CAPACITY)))
    }

    fn admit(&self, nonce: &str, now: Timestamp) -> Admission {
        // A poisoned lock only means a panic elsewhere mid-insert; the map is still usable.
        let mut cache = self.0.lock().unwrap_or_else(|e| e.into_inner());
        cache.admit(nonce, now)
    }
}

impl Default for NonceGuard {
    fn default() -> Self {
        Self::new()
    }
}

impl FromRequest<App> for Signed {
    type Rejection = Response;

    async fn from_request(request: Request, app: &App) -> Result<Self, Response> {
        let Some(secret) = app.settings.dc_secret.as_ref() else {
            return Err(StatusCode::NOT_FOUND.into_response());
        };
        let now = app.clock.now();
        let (parts, body) = request.into_parts();
        let claimed = header(&parts, peer_auth::DC_HEADER).unwrap_or("");
        // The claimed DC goes into the log only if it has a location's harmless shape.
        let shown = if is_location(claimed) {
            claimed
        } else {
            "(none)"
        };
        let Ok(body) = axum::body::to_bytes(body, BODY_LIMIT).await else {
            tracing::warn!(caller = shown, "server-to-server request body unreadable");
            let body = ErrorBody::described("invalid_request", "the body cannot be read");
            return Err((StatusCode::BAD_REQUEST, Json(body)).into_response());
        };
        // Nested routers see their path without the prefix: the signature covers the path the
        // caller sent.
        let path = parts
            .extensions
            .get::<OriginalUri>()
            .map_or(&parts.uri, |original| &original.0)
            .path_and_query()
            .map_or("/", |p| p.as_str());
        let presented = Presented {
            method: parts.method.as_str(),
            path,
            timestamp: header(&parts, peer_auth::TIMESTAMP_HEADER),
            nonce: header(&parts, peer_auth::NONCE_HEADER),
            signature: header(&parts, peer_auth::SIGNATURE_HEADER),
            body: &body,
        };
        let checked = peer_auth::verify(secret, &presented, now).and_then(|_| {
            if !app.settings.datacenters.contains_key(claimed) {
                return Err(Refusal::UnknownCaller);
            }
            // Only signed requests reach the cache, so no one without the secret fills it.
            match app.nonces.admit(presented.nonce.unwrap_or(""), now) {
                Admission::Fresh => Ok(()),
                Admission::Replayed => Err(Refusal::Replayed),
                Admission::Full => Err(Refusal::TooMany),
            }
        });
        match checked {
            Ok(()) => Ok(Signed {
                caller: claimed.to_owned(),
                body,
            }),
            Err(refusal) => {
                tracing::warn!(
                    reason = refusal.reason(),
                    caller = shown,
                    path = parts.uri.path(),
                    "refused a server-to-server request"
                );
                Err(unauthorized(refusal))
            }
        }
    }
}

impl<T: DeserializeOwned> FromRequest<App> for SignedJson<T> {
    type Rejection = Response;

    async fn from_request(request: Request, app: &App) -> Result<Self, Response> {
        let Signed { caller, body } = Signed::from_request(request, app).await?;
        match serde_json::from_slice(&body) {
            Ok(body) => Ok(SignedJson { caller, body }),
            Err(_) => {
                let body =
                    ErrorBody::described("invalid_request", "the body is not the expected JSON");
                Err((StatusCode::BAD_REQUEST, Json(body)).into_response())
            }
        }
    }
}

fn header<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts.headers.get(name).and_then(|v| v.to_str().ok())
}

/// `401 {"error":"unauthorized","error_description":...}`; the description is the fixed
/// reason, never anything the caller sent.
fn unauthorized(refusal: Refusal) -> Response {
    let body = ErrorBody::described("unauthorized", refusal.reason());
    (StatusCode::UNAUTHORIZED, Json(body)).into_response()
}
