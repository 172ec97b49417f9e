//! The device flow across data centers (CONTRACT.md "Device flow": a user homed elsewhere makes
//! the poll answer `other_dc`, and the device then polls that DC). When the verification page
//! learns that the user lives at a peer, it hands the device authorization over
//! (`POST /dc/v1/device/handover`): the peer stores it, pending, under the same two codes, so
//! the user enters the code there and the device's next poll, told `other_dc` here, is
//! answered there. The peer accepts only a client it serves (registered or enabled there) that
//! may use the flow, and scopes it has.
//!
//! The one s2s call that writes. A replay within its 60 s window at another node of the same
//! DC (nonces are remembered per node) finds the codes already stored and changes nothing.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use grantd_core::device::{may_use_device_flow, DeviceGrant};
use grantd_core::secret::SecretHash;
use grantd_store::{ConsoleVerbs, DeviceVerbs, NewDeviceCode, StoreError};
use grantd_wire::datacenter::{DeviceHandover, DeviceHandoverResponse, HandoverResult};

use super::client::{PeerClient, PeerError};
use super::signed::SignedJson;
use crate::app::App;
use crate::error::{store_failure, Failure};
use crate::oauth::registered_scopes;

pub const DEVICE_HANDOVER_PATH: &str = "/dc/v1/device/handover";

/// `POST /dc/v1/device/handover`: stores the authorization if this DC can serve it.
pub async fn receive(
    State(app): State<App>,
    SignedJson { body, .. }: SignedJson<DeviceHandover>,
) -> Response {
    let Some((device_code_hash, user_code_hash)) = body.hashes() else {
        return (StatusCode::BAD_REQUEST, "malformed code hashes").into_response();
    };
    match store(&app, &body, device_code_hash, user_code_hash).await {
        Ok(result) => Json(DeviceHandoverResponse { result }).into_response(),
        Err(e) => store_failure(e),
    }
}

async fn store(
    app: &App,
    body: &DeviceHandover,
    device_code_hash: SecretHash,
    user_code_hash: SecretHash,
) -> Result<HandoverResult, StoreError> {
    let client = match app.store.client(&body.client_id).await? {
        Some(client) if may_use_device_flow(client.kind) => client,
        _ => return Ok(HandoverResult::ClientNotEnabled),
    };
    let scopes = match registered_scopes(app, &body.scopes).await {
        Ok(scopes) => scopes,
        Err(Failure::Store(e)) => return Err(e),
        Err(_) => return Ok(HandoverResult::UnknownScope),
    };
    let now = app.clock.now();
    let Some(grant) = DeviceGrant::handed_over(
        client.id,
        scopes,
        body.access_type(),
        body.interval_secs,
        grantd_core::Timestamp(body.expires_at),
        now,
        &app.settings.limits,
    ) else {
        return Ok(HandoverResult::Expired);
    };
    let new = NewDeviceCode {
        device_code_hash,
        user_code_hash,
        grant,
    };
    match app.store.add_device_code(&new, now).await {
        Ok(()) => Ok(HandoverResult::Accepted),
        Err(StoreError::Conflict(_)) => Ok(HandoverResult::Conflict),
        Err(e) => Err(e),
    }
}

impl PeerClient {
    /// Hands a device authorization to the peer `location`; its answer, or why there was none.
    pub async fn hand_over_device(
        &self,
        location: &str,
        handover: &DeviceHandover,
    ) -> Result<HandoverResult, PeerError> {
        let answer: DeviceHandoverResponse = self
            .post_json(location, DEVICE_HANDOVER_PATH, handover)
            .await?;
        Ok(answer.result)
    }
}
