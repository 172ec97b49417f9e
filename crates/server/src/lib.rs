//! grantd-server: the axum application. Handlers parse requests at the edge, call one flow,
//! and render; flows decide with `grantd-core` and persist with `grantd-store`.

pub mod admin;
mod app;
mod cookies;
mod error;
mod headers;
mod oauth;
mod pages;
mod params;
mod password;
mod routes;

pub use app::{App, Settings};
pub use password::Passwords;
pub use routes::router;

use std::future::Future;

use tokio::net::TcpListener;

/// Serves `app` on `listener` until `shutdown` resolves; requests in flight are finished.
pub async fn serve_until(
    listener: TcpListener,
    app: App,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(app))
        .with_graceful_shutdown(shutdown)
        .await
}

/// Serves `app` on `listener` forever (tests and embedding).
pub async fn serve(listener: TcpListener, app: App) -> std::io::Result<()> {
    serve_until(listener, app, std::future::pending()).await
}
