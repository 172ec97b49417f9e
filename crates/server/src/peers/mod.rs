//! The server-to-server API between data centers (CONTRACT.md "Data centers"): requests to
//! `/dc/v1/...` are verified by one extractor (`signed`), calls to peers are signed and bounded
//! in time by one client (`client`), and the user lookup that routes sign-in to a user's home
//! DC is `lookup`'s. How a request is signed is `grantd_core::peer_auth`'s; the bodies are
//! `grantd_wire::datacenter`'s.
//!
//! Every s2s call but the device handover is a read, and the handover stores codes that can be
//! stored once. A nonce is remembered per node (in memory, 120 s), so a request replayed at
//! another node of the same DC within its 60 s window is answered again; it can only read what
//! the original already read, or store what is already stored, so it gains nothing.

mod client;
pub mod client_sync;
mod device_handover;
mod lookup;
mod signed;

use axum::routing::{get, post};
use axum::Router;

pub use client::{PeerClient, PeerError, CONNECT_TIMEOUT, TOTAL_TIMEOUT};
pub use device_handover::DEVICE_HANDOVER_PATH;
pub use lookup::{find_home, Home, Survey, LOOKUP_PATH};
pub use signed::{NonceGuard, Signed, SignedJson};

use crate::app::App;

/// The `/dc/v1/...` routes; `routes.rs` mounts them only when this DC has a dc secret, so a DC
/// without one answers 404 there.
pub(crate) fn routes() -> Router<App> {
    Router::new()
        .route(LOOKUP_PATH, post(lookup::lookup))
        .route(client_sync::CLIENTS_PATH, get(client_sync::clients))
        .route(DEVICE_HANDOVER_PATH, post(device_handover::receive))
}
