//! grantd-server: the axum application. Handlers parse requests at the edge, call one flow,
//! and render; flows decide with `grantd-core` and persist with `grantd-store`.

pub mod admin;
mod app;
mod connection;
mod console;
mod cookies;
mod email_step;
mod error;
mod headers;
mod login;
mod oauth;
mod pages;
mod params;
mod password;
pub mod peers;
mod routes;
mod session;
pub mod signing;
mod source;

pub use app::{App, Settings};
pub use connection::HttpLimits;
pub use password::Passwords;
pub use routes::router;

use std::future::Future;
use std::time::Duration;

use grantd_store::TokenVerbs;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// How often expired rows are swept away.
const SWEEP_INTERVAL: Duration = Duration::from_secs(600);

/// Serves `app` on `listener` until `shutdown` resolves; requests in flight are finished.
pub async fn serve_until(
    listener: TcpListener,
    app: App,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    if !app.keys.is_ready() {
        // Embedding and tests; `grantd serve` prepares them itself, and refuses to start on
        // failure.
        if let Err(e) = app.prepare_keys().await {
            tracing::error!(error = %e, "no ID-token signing key: OpenID Connect is unavailable");
        }
    }
    let sweeper = tokio::spawn(sweep_forever(app.clone()));
    let key_reloader = tokio::spawn(reload_keys_forever(app.clone()));
    let pullers = peers::client_sync::spawn(&app);
    let limits = app.settings.http.clone();
    let served = connection::serve(listener, router(app), limits, shutdown).await;
    sweeper.abort();
    key_reloader.abort();
    pullers.iter().for_each(JoinHandle::abort);
    served
}

async fn sweep_forever(app: App) {
    let mut interval = tokio::time::interval(SWEEP_INTERVAL);
    interval.tick().await; // the first tick is immediate; nothing has expired at start-up
    loop {
        interval.tick().await;
        if let Err(e) = app.store.sweep(app.clock.now()).await {
            tracing::warn!(error = %e, "sweeping expired rows failed");
        }
    }
}

/// Rereads the signing keys now and then, so a rotation by `grantd keys rotate` (or another
/// node) is seen within `key_reload_interval`, without a read per request.
async fn reload_keys_forever(app: App) {
    let mut interval = tokio::time::interval(app.settings.key_reload_interval);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    interval.tick().await;
    loop {
        interval.tick().await;
        if let Err(e) = app.keys.reload(&app.store, app.clock.now()).await {
            tracing::warn!(error = %e, "reloading the signing keys failed; keeping the ones held");
        }
    }
}

/// Serves `app` on `listener` forever (tests and embedding).
pub async fn serve(listener: TcpListener, app: App) -> std::io::Result<()> {
    serve_until(listener, app, std::future::pending()).await
}
