//! grantd, the binary: parses the command line, resolves configuration, then either runs the
//! server (`serve.rs`) or one administration command (`admin.rs`). Everything it does to data
//! goes through `grantd_server::admin` and `grantd_store`; this crate only translates to and
//! from the terminal.

mod admin;
mod cli;
mod config;
mod serve;

use std::fmt;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use grantd_core::datacenter::DcTag;
use grantd_server::admin::{AdminError, Here};
use grantd_store::{Store, StoreError, DEFAULT_POOL_SIZE};

use crate::cli::{Cli, Command};
use crate::config::{FileConfig, ServeConfig};

fn main() -> ExitCode {
    // Usage errors exit with 2 and `--help` with 0, from inside clap.
    let cli = Cli::parse();
    init_logging(matches!(cli.command, Command::Serve(_)));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return fail(&Failure(format!("cannot start the async runtime: {e}"))),
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => fail(&failure),
    }
}

async fn run(cli: Cli) -> Result<(), Failure> {
    let file = FileConfig::load(cli.config.as_deref())?;
    let database = config::database_url(cli.database.as_deref(), &file)?;
    match cli.command {
        Command::Serve(args) => {
            let config = ServeConfig::resolve(&args, &file)?;
            serve::run(&database, config).await
        }
        Command::Migrate => {
            open(&database).await?;
            emit("the database schema is up to date")
        }
        Command::User(command) => admin::user(&open(&database).await?, command, &file).await,
        Command::Client(command) => {
            let dc = ServeConfig::for_admin(&file)?;
            let here = Here {
                location: &dc.location,
                peers: &dc.datacenters,
            };
            admin::client(&open(&database).await?, command, &here).await
        }
        Command::Scope(command) => admin::scope(&open(&database).await?, command).await,
        Command::Code(args) => {
            let dc = ServeConfig::for_admin(&file)?;
            let issuer = DcTag::of(&dc.location);
            admin::code(&open(&database).await?, args, &dc.limits, issuer).await
        }
    }
}

/// Opens the store, applying pending migrations; safe while `serve` runs on the same file.
async fn open(database: &str) -> Result<Store, Failure> {
    Store::open(database, pool_size())
        .await
        .map_err(|e| Failure(format!("cannot open the database: {e}")))
}

/// PostgreSQL connections per process: `GRANTD_DB_POOL_SIZE`, default 16 (docs/deploy.md).
pub fn pool_size() -> u32 {
    std::env::var("GRANTD_DB_POOL_SIZE")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(DEFAULT_POOL_SIZE)
}

/// Logs go to stderr, so stdout carries only results (JSON or the "listening" line).
fn init_logging(serving: bool) {
    let fallback = if serving { "info" } else { "warn" };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(fallback));
    // Fails only if a subscriber is already installed, which then does the job.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

/// A command that failed: its message goes to stderr and grantd exits with status 1.
#[derive(Debug)]
pub struct Failure(pub String);

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<String> for Failure {
    fn from(message: String) -> Self {
        Failure(message)
    }
}

impl From<AdminError> for Failure {
    fn from(e: AdminError) -> Self {
        Failure(e.to_string())
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure(e.to_string())
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Failure(e.to_string())
    }
}

/// Writes one line to stdout and flushes it (a closed pipe is an error, not a panic).
pub fn emit(line: impl fmt::Display) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()?;
    Ok(())
}

fn fail(failure: &Failure) -> ExitCode {
    let _ = writeln!(std::io::stderr(), "error: {failure}");
    ExitCode::FAILURE
}
