//! Clients across data centers: a client's home serves the records of the clients it enables
//! at a peer (`GET /dc/v1/clients`), and every DC pulls those of each peer every
//! `dc_sync_interval` (3 s by default) into its own `clients` table (`mirror_clients`). Pulling
//! means a change made at home by any means (the console, `grantd client ...` on the database,
//! another node) reaches every DC within one interval plus one call (2 s at most), with no
//! outbox to keep; a peer that is down leaves its clients as last fetched, so the DCs it
//! enabled them at go on serving their own users.

use std::time::Duration;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use grantd_core::Client;
use grantd_store::ConsoleVerbs;
use grantd_wire::datacenter::{SharedClient, SharedClients};

use super::{PeerClient, Signed};
use crate::app::App;
use crate::error::store_failure;

pub const CLIENTS_PATH: &str = "/dc/v1/clients";

/// `GET /dc/v1/clients`: the clients registered here and enabled at the calling DC.
pub async fn clients(State(app): State<App>, signed: Signed) -> Response {
    match app.store.clients_enabled_for(&signed.caller).await {
        Ok(clients) => Json(SharedClients {
            clients: clients.iter().map(SharedClient::from).collect(),
        })
        .into_response(),
        Err(e) => store_failure(e),
    }
}

/// One pulling task per peer, for as long as the server runs; none for a single DC.
pub fn spawn(app: &App) -> Vec<JoinHandle<()>> {
    let Some(peers) = app.peers.clone() else {
        return Vec::new();
    };
    peers
        .locations()
        .map(|location| {
            tokio::spawn(pull_forever(
                app.clone(),
                peers.clone(),
                location.to_owned(),
                app.settings.dc_sync_interval,
            ))
        })
        .collect()
}

async fn pull_forever(app: App, peers: PeerClient, home: String, every: Duration) {
    let mut interval = tokio::time::interval(every);
    interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // What was last written, so an unchanged list costs one call and no write.
    let mut mirrored: Option<Vec<SharedClient>> = None;
    let mut reachable = true;
    loop {
        interval.tick().await;
        let list = match peers.get_json::<SharedClients>(&home, CLIENTS_PATH).await {
            Ok(list) => list.clients,
            Err(e) => {
                if reachable {
                    tracing::warn!(peer = %home, error = %e,
                        "cannot fetch the clients enabled here; serving them as last fetched");
                    reachable = false;
                }
                continue;
            }
        };
        if !reachable {
            tracing::info!(peer = %home, "fetching clients again");
            reachable = true;
        }
        if mirrored.as_ref() == Some(&list) {
            continue;
        }
        let now = app.clock.now();
        let clients: Vec<Client> = list
            .iter()
            .filter_map(|c| c.to_client(&home, now))
            .collect();
        if clients.len() < list.len() {
            tracing::warn!(peer = %home, skipped = list.len() - clients.len(),
                "some client records could not be read (a newer peer?)");
        }
        match app.store.mirror_clients(&home, &clients, now).await {
            Ok(()) => {
                tracing::info!(peer = %home, clients = clients.len(), "clients mirrored");
                mirrored = Some(list);
            }
            Err(e) => tracing::warn!(peer = %home, error = %e, "cannot mirror the clients"),
        }
    }
}
