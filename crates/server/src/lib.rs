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
    let sweeper = tokio::spawn(sweep_forever(app.clone()));
    let pullers = peers::client_sync::spawn(&app);
    let limits = app.settings.http.clone();
    let served = connection::serve(listener, router(app), limits, shutdown).await;
    sweeper.abort();
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

/// Serves `app` on `listener` forever (tests and embedding).
pub async fn serve(listener: TcpListener, app: App) -> std::io::Result<()> {
    serve_until(listener, app, std::future::pending()).await
}
