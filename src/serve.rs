//! `grantd serve`: opens the store, binds, announces the address, and serves until Ctrl-C or
//! SIGTERM. The HTTP application itself is `grantd_server`'s.

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::Notify;

use grantd_core::SystemClock;
use grantd_server::App;
use grantd_store::Store;

use crate::config::ServeConfig;
use crate::{emit, Failure};

pub async fn run(database: &str, config: ServeConfig) -> Result<(), Failure> {
    let store = Store::open(database, crate::pool_size())
        .await
        .map_err(|e| Failure(format!("cannot open the database: {e}")))?;
    let listener = TcpListener::bind(&config.listen)
        .await
        .map_err(|e| Failure(format!("cannot listen on {}: {e}", config.listen)))?;
    let bound = listener.local_addr()?;
    let settings = config.settings(bound);
    // Handlers are installed before the address is announced, so a supervisor (or a test) that
    // sends SIGTERM right after reading it gets a graceful stop, not the default kill.
    let stop = watch_signals()?;
    let app = App::new(store, Arc::new(SystemClock), settings);
    app.passwords.check_dummy().map_err(Failure)?;

    emit(format_args!("grantd listening on http://{bound}"))?;
    if config.public_url.is_none() && bound.ip().is_unspecified() {
        tracing::warn!(
            public_url = %app.settings.public_url,
            "listening on all interfaces without --public-url; clients need a reachable issuer URL"
        );
    }
    tracing::info!(
        public_url = %app.settings.public_url,
        api_domain = %app.settings.api_domain,
        location = %app.settings.location,
        peers = ?app.settings.datacenters.keys().collect::<Vec<_>>(),
        default_dialect = app.settings.default_dialect.as_str(),
        "serving"
    );

    grantd_server::serve_until(listener, app, async move { stop.notified().await })
        .await
        .map_err(|e| Failure(format!("the server stopped: {e}")))?;
    tracing::info!("stopped");
    Ok(())
}

/// Notifies on the first SIGTERM or Ctrl-C; a second one exits at once, for the case where a
/// client holds a request open and the operator does not want to wait.
fn watch_signals() -> Result<Arc<Notify>, Failure> {
    let stop = Arc::new(Notify::new());
    let mut signals = Signals::install()?;
    let notify = stop.clone();
    tokio::spawn(async move {
        let name = signals.next().await;
        tracing::info!("{name} received; finishing requests in flight");
        // `notify_one` keeps a permit if shutdown has not started waiting yet.
        notify.notify_one();
        let name = signals.next().await;
        tracing::warn!("second {name}; exiting without waiting");
        std::process::exit(1);
    });
    Ok(stop)
}

#[cfg(unix)]
struct Signals {
    terminate: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
}

#[cfg(unix)]
impl Signals {
    fn install() -> Result<Self, Failure> {
        use tokio::signal::unix::{signal, SignalKind};
        let failed = |e: std::io::Error| Failure(format!("cannot install signal handlers: {e}"));
        Ok(Self {
            terminate: signal(SignalKind::terminate()).map_err(failed)?,
            interrupt: signal(SignalKind::interrupt()).map_err(failed)?,
        })
    }

    async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.terminate.recv() => "SIGTERM",
            _ = self.interrupt.recv() => "Ctrl-C",
        }
    }
}

#[cfg(not(unix))]
struct Signals;

#[cfg(not(unix))]
impl Signals {
    fn install() -> Result<Self, Failure> {
        Ok(Self)
    }

    async fn next(&mut self) -> &'static str {
        match tokio::signal::ctrl_c().await {
            Ok(()) => "Ctrl-C",
            // Without a handler the process can only be killed; never stop on our own.
            Err(_) => std::future::pending().await,
        }
    }
}
