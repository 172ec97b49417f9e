//! grantd-bench: the load benchmark (docs/performance.md). For each token count it seeds a
//! fresh store, starts the real `grantd serve` release binary against it on an ephemeral
//! port, drives it over HTTP with keep-alive connections, and reports throughput, latency
//! percentiles, server CPU and peak RSS per scenario, as tables, JSON and PNG charts.
//!
//! `cargo build --release --bin grantd && cargo run --release -p grantd-bench -- --help`

mod http;
mod load;
mod ops;
mod report;
mod seed;
mod server;
mod timing;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use sqlx::{Connection, PgConnection};

use crate::load::Stream;
use crate::ops::{Fixture, Op};
use crate::report::{Report, Row, Run};
use crate::seed::Plan;
use crate::server::Server;

#[derive(Debug, Parser)]
#[command(
    name = "grantd-bench",
    about = "Load benchmark of grantd: seeds a store, starts `grantd serve`, drives it over HTTP",
    after_help = "Build the server first: cargo build --release --bin grantd\n\
                  Scenarios: ceiling userinfo introspect refresh exchange flow flow-consent \
                  login refresh-under-login mixed refresh-open introspect-open; and, only when \
                  named, login-timing (run last: it leaves user 1 throttled)"
)]
struct Args {
    /// Stored tokens per run (N refresh tokens and N access tokens); one run per value
    #[arg(long, value_delimiter = ',', default_value = "1000,100000")]
    tokens: Vec<u64>,
    /// Measured seconds per scenario
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Unmeasured seconds before each scenario's window
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Keep-alive connections per scenario
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Connections of the login flood in `refresh-under-login` [default: --connections]
    #[arg(long)]
    flood_connections: Option<usize>,
    /// Attempts of each kind in the login-timing scenario
    #[arg(long, default_value_t = 200)]
    timing_samples: usize,
    /// Only these scenarios (comma-separated) [default: all but login-timing]
    #[arg(long, value_delimiter = ',')]
    scenarios: Vec<String>,
    /// The open-loop scenarios' rate, as a fraction of the same run's closed-loop throughput
    #[arg(long, default_value_t = 0.7)]
    open_loop_fraction: f64,
    /// Also run on PostgreSQL (one node, then two): a URL of a database to connect to, where
    /// a fresh database is created for each token count and dropped afterwards
    #[arg(long, value_name = "URL")]
    postgres: Option<String>,
    /// Skip the SQLite runs (with --postgres)
    #[arg(long)]
    skip_sqlite: bool,
    /// Unredeemed authorization codes to seed [default: enough for the exchange scenario]
    #[arg(long)]
    codes: Option<u64>,
    /// Write the results as JSON
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Draw PNG charts into this directory
    #[arg(long, value_name = "DIR")]
    charts: Option<PathBuf>,
    /// Redraw the charts and tables from JSON files of earlier runs, without running anything
    #[arg(long, value_name = "FILE", num_args = 1..)]
    plot: Vec<PathBuf>,
    /// The grantd binary [default: $GRANTD_BIN, else target/release/grantd]
    #[arg(long, value_name = "PATH")]
    grantd: Option<PathBuf>,
    /// Where databases and server logs go
    #[arg(long, default_value = "target/grantd-bench")]
    work_dir: PathBuf,
    /// Keep the SQLite files after the run
    #[arg(long)]
    keep: bool,
    /// Run on the SQLite file an earlier `--keep` run left, without seeding it again (for
    /// profiling: the codes that run redeemed are gone, so `exchange` and `mixed` may fail)
    #[arg(long, requires = "keep")]
    reuse: bool,
    /// RUST_LOG of the server (`info`, its default, logs one line per request)
    #[arg(long, default_value = "info")]
    server_log: String,
    /// Run the server under this command, e.g. `valgrind --tool=callgrind` (split on spaces)
    #[arg(long, value_name = "CMD")]
    wrap: Option<String>,
    /// Threads of the load generator's runtime
    #[arg(long, default_value_t = 2)]
    client_threads: usize,
    /// CI mode: 1k tokens, 2 s per scenario, SQLite only; fails on any error or a zero rate
    #[arg(long)]
    smoke: bool,
}

/// Failed sign-ins' latency by kind (`timing.rs`); run after the others, only when named.
const LOGIN_TIMING: &str = "login-timing";

/// Every scenario, in the order they run on one server.
const SCENARIOS: [&str; 12] = [
    "ceiling",
    "userinfo",
    "introspect",
    "refresh",
    "exchange",
    "flow",
    "flow-consent",
    "login",
    "refresh-under-login",
    "mixed",
    "refresh-open",
    "introspect-open",
];

fn main() -> ExitCode {
    let mut args = Args::parse();
    if args.smoke {
        args.tokens = vec![1000];
        args.duration = 2.0;
        args.warmup = 0.3;
        if args.postgres.take().is_some() {
            eprintln!("--smoke runs on SQLite only; --postgres is ignored");
        }
        args.skip_sqlite = false;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.client_threads.max(1))
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Whether every scenario passed: no errors, a non-zero rate.
async fn run(args: Args) -> Result<bool> {
    if !args.plot.is_empty() {
        return plot(&args);
    }
    for name in &args.scenarios {
        if !SCENARIOS.contains(&name.as_str()) && name != LOGIN_TIMING {
            bail!("unknown scenario {name:?}; known: {}", SCENARIOS.join(", "));
        }
    }
    let binary = server::locate(args.grantd.as_deref())?;
    std::fs::create_dir_all(&args.work_dir)
        .with_context(|| format!("creating {}", args.work_dir.display()))?;
    let config = args.work_dir.join("grantd-bench.toml");
    // PostgreSQL has no default key-encryption key (its nodes must share one): give one.
    let kek = args.work_dir.join("grantd-bench.kek");
    if !kek.exists() {
        let mut bytes = [0u8; 32];
        std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut bytes)?;
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        std::fs::write(&kek, format!("{hex}\n"))?;
    }
    std::fs::write(
        &config,
        format!(
            "key_encryption_key_file = {:?}\n{}",
            kek.display().to_string(),
            server::CONFIG
        ),
    )?;
    let machine = report::Machine {
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
            .to_owned(),
        load_before: loadavg(),
        load_after: String::new(),
    };
    eprintln!(
        "grantd-bench: {} cores, load {}; server {}",
        machine.cores,
        machine.load_before,
        binary.display()
    );
    let mut report = Report {
        command: std::env::args().collect::<Vec<_>>().join(" "),
        machine,
        settings: report::Settings {
            duration_secs: args.duration,
            warmup_secs: args.warmup,
            connections: args.connections,
            flood_connections: args.flood_connections.unwrap_or(args.connections),
            client_threads: args.client_threads,
            open_loop_fraction: args.open_loop_fraction,
            server_log: args.server_log.clone(),
            server_config: server::CONFIG.into(),
        },
        runs: Vec::new(),
    };
    let bench = Bench {
        args: &args,
        binary: &binary,
        config: &config,
        ticks: server::clock_ticks(),
    };
    for &tokens in &args.tokens {
        if !args.skip_sqlite {
            let run = bench.sqlite(tokens).await?;
            println!("{}", report::table(&run));
            report.runs.push(run);
            write_json(&args, &report)?;
        }
        if let Some(url) = &args.postgres {
            for run in bench.postgres(url, tokens).await? {
                println!("{}", report::table(&run));
                report.runs.push(run);
            }
            write_json(&args, &report)?;
        }
    }
    report.machine.load_after = loadavg();
    write_json(&args, &report)?;
    let targets = report::targets(&report.runs);
    println!("{}", report::targets_table(&targets));
    let charts = args
        .charts
        .clone()
        .or_else(|| args.smoke.then(|| args.work_dir.join("smoke-charts")));
    if let Some(dir) = charts {
        for file in report::charts(&report.runs, &dir)? {
            eprintln!("chart: {file}");
        }
    }
    let mut ok = true;
    for run in &report.runs {
        for row in &run.rows {
            if row.errors > 0 || row.ops == 0 {
                eprintln!(
                    "FAILED: {} / {}: {} errors, {} operations",
                    run.label(),
                    row.scenario,
                    row.errors,
                    row.ops
                );
                ok = false;
            }
        }
    }
    Ok(ok)
}

fn plot(args: &Args) -> Result<bool> {
    let mut runs = Vec::new();
    for file in &args.plot {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        let report: Report =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", file.display()))?;
        runs.extend(report.runs);
    }
    for run in &runs {
        println!("{}", report::table(run));
        println!("{}", report::markdown(run));
    }
    println!("{}", report::targets_table(&report::targets(&runs)));
    let dir = args
        .charts
        .clone()
        .unwrap_or_else(|| args.work_dir.join("charts"));
    for file in report::charts(&runs, &dir)? {
        eprintln!("chart: {file}");
    }
    Ok(true)
}

fn write_json(args: &Args, report: &Report) -> Result<()> {
    if let Some(path) = &args.json {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, serde_json::to_string_pretty(report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split(' ')
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

struct Bench<'a> {
    args: &'a Args,
    binary: &'a Path,
    config: &'a Path,
    ticks: f64,
}

/// Codes the exchange scenario may consume: its rate here stays well below 6000/s.
fn codes_for(args: &Args, servers: u64) -> u64 {
    args.codes.unwrap_or_else(|| {
        let per_run = (6000.0 * (args.duration + args.warmup)).ceil() as u64;
        (per_run * servers).max(10_000)
    })
}

impl Bench<'_> {
    async fn sqlite(&self, tokens: u64) -> Result<Run> {
        let plan = Plan::new(tokens, codes_for(self.args, 1));
        let path = self.args.work_dir.join(format!("sqlite-{tokens}.db"));
        let files: Vec<PathBuf> = ["", "-wal", "-shm"]
            .iter()
            .map(|suffix| PathBuf::from(format!("{}{suffix}", path.display())))
            .collect();
        let path_text = path.display().to_string();
        let url = format!("sqlite://{path_text}");
        let seeded = if self.args.reuse && path.exists() {
            eprintln!("reusing {path_text} as an earlier run left it");
            seed::Seeded::default()
        } else {
            for file in &files {
                let _ = std::fs::remove_file(file);
            }
            grantd_store::Store::open(&url, 1)
                .await
                .with_context(|| format!("creating {path_text}"))?;
            eprintln!(
                "seeding {path_text}: {tokens} refresh + {tokens} access tokens, {} users, {} clients, {} codes",
                plan.total_users(),
                plan.clients,
                plan.codes
            );
            let seeded = seed::sqlite(&path_text, plan).await?;
            eprintln!(
                "seeded {} rows in {:.1} s",
                seeded.rows,
                seeded.elapsed.as_secs_f64()
            );
            seeded
        };
        let size: u64 = files
            .iter()
            .filter_map(|f| std::fs::metadata(f).ok())
            .map(|m| m.len())
            .sum();
        let fixture = Arc::new(Fixture::new(plan));
        let log = self
            .args
            .work_dir
            .join(format!("grantd-sqlite-{tokens}.log"));
        let server = Server::start(
            self.binary,
            &url,
            self.config,
            &log,
            &self.args.server_log,
            self.args.wrap.as_deref(),
        )?;
        let rows = self.scenarios(&fixture, &[&server], false).await;
        server.stop()?;
        let rows = rows?;
        if !self.args.keep {
            for file in &files {
                let _ = std::fs::remove_file(file);
            }
        }
        Ok(Run {
            backend: "sqlite".into(),
            nodes: 1,
            tokens,
            users: plan.total_users(),
            clients: plan.clients,
            codes: plan.codes,
            seed_secs: seeded.elapsed.as_secs_f64(),
            db_size_mb: Some(size as f64 / 1e6),
            rows,
        })
    }

    /// One fresh database, seeded once; one node, then two nodes sharing it.
    async fn postgres(&self, admin_url: &str, tokens: u64) -> Result<Vec<Run>> {
        let plan = Plan::new(tokens, codes_for(self.args, 2));
        let name = format!("grantd_bench_{}_{tokens}", std::process::id());
        let mut admin = PgConnection::connect(admin_url)
            .await
            .with_context(|| format!("connecting to {admin_url}"))?;
        sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
            .execute(&mut admin)
            .await?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .context("creating the benchmark database")?;
        let url = database_url(admin_url, &name);
        let result = self.postgres_runs(&url, plan, tokens).await;
        // Dropped whatever happened; FORCE ends sessions a failed run left behind.
        let dropped = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&mut admin)
            .await;
        let runs = result?;
        dropped.context("dropping the benchmark database")?;
        Ok(runs)
    }

    async fn postgres_runs(&self, url: &str, plan: Plan, tokens: u64) -> Result<Vec<Run>> {
        grantd_store::Store::open(url, 1)
            .await
            .context("migrating the benchmark database")?;
        eprintln!(
            "seeding PostgreSQL: {tokens} refresh + {tokens} access tokens, {} users, {} clients, {} codes",
            plan.total_users(),
            plan.clients,
            plan.codes
        );
        let seeded = seed::postgres(url, plan).await?;
        eprintln!(
            "seeded {} rows in {:.1} s",
            seeded.rows,
            seeded.elapsed.as_secs_f64()
        );
        let mut conn = PgConnection::connect(url).await?;
        let (bytes,): (i64,) = sqlx::query_as("SELECT pg_database_size(current_database())")
            .fetch_one(&mut conn)
            .await?;
        conn.close().await?;
        // The code pool is shared: the two-node run continues where the one-node run stopped.
        let fixture = Arc::new(Fixture::new(plan));
        let mut runs = Vec::new();
        for nodes in [1usize, 2] {
            let mut servers = Vec::new();
            for node in 0..nodes {
                let log = self
                    .args
                    .work_dir
                    .join(format!("grantd-postgres-{tokens}-{nodes}node-{node}.log"));
                servers.push(Server::start(
                    self.binary,
                    url,
                    self.config,
                    &log,
                    &self.args.server_log,
                    self.args.wrap.as_deref(),
                )?);
            }
            let refs: Vec<&Server> = servers.iter().collect();
            let rows = self.scenarios(&fixture, &refs, true).await;
            for server in servers {
                server.stop()?;
            }
            runs.push(Run {
                backend: "postgres".into(),
                nodes,
                tokens,
                users: plan.total_users(),
                clients: plan.clients,
                codes: plan.codes,
                seed_secs: seeded.elapsed.as_secs_f64(),
                db_size_mb: Some(bytes as f64 / 1e6),
                rows: rows?,
            });
        }
        Ok(runs)
    }

    fn wanted(&self, scenario: &str) -> bool {
        self.args.scenarios.is_empty() || self.args.scenarios.iter().any(|s| s == scenario)
    }

    /// Every wanted scenario against the running server(s), in `SCENARIOS` order.
    async fn scenarios(
        &self,
        fixture: &Arc<Fixture>,
        servers: &[&Server],
        postgres: bool,
    ) -> Result<Vec<Row>> {
        let c = self.args.connections;
        let flood = self.args.flood_connections.unwrap_or(c);
        let closed = |label: &str, op: Op, connections: usize| Stream {
            label: label.into(),
            op,
            connections,
            rate: None,
            offset: 0,
        };
        let mut rows: Vec<Row> = Vec::new();
        for (index, scenario) in SCENARIOS.iter().enumerate() {
            if !self.wanted(scenario) {
                continue;
            }
            let mut streams = match *scenario {
                "ceiling" => vec![closed("ceiling", Op::Ceiling, c)],
                "userinfo" => vec![closed("userinfo", Op::Userinfo, c)],
                "introspect" => vec![closed("introspect", Op::Introspect, c)],
                "refresh" => vec![closed("refresh", Op::Refresh, c)],
                "exchange" => vec![closed("exchange", Op::Exchange, c)],
                "flow" => vec![closed("flow", Op::Flow, c)],
                "flow-consent" => vec![closed("flow-consent", Op::FlowConsent, c)],
                "login" => vec![closed("login", Op::Login, c)],
                "refresh-under-login" => vec![
                    closed("refresh (login flood)", Op::Refresh, c),
                    closed("login (flood)", Op::Login, flood),
                ],
                "mixed" => vec![closed("mixed", Op::Mixed, c)],
                "refresh-open" | "introspect-open" => {
                    let op = if *scenario == "refresh-open" {
                        Op::Refresh
                    } else {
                        Op::Introspect
                    };
                    let Some(saturated) = rows.iter().find(|r| r.scenario == op.name()) else {
                        eprintln!(
                            "{scenario}: skipped (needs the closed-loop {} first)",
                            op.name()
                        );
                        continue;
                    };
                    let rate = (saturated.ops_per_sec * self.args.open_loop_fraction).max(1.0);
                    vec![Stream {
                        label: format!(
                            "{} @{:.0}% open loop",
                            op.name(),
                            self.args.open_loop_fraction * 100.0
                        ),
                        op,
                        connections: c,
                        rate: Some(rate),
                        offset: 0,
                    }]
                }
                _ => continue,
            };
            for stream in &mut streams {
                // Each scenario starts at another place in the token pools.
                stream.offset = (index as u64) * 1_000_003;
            }
            eprintln!("running {scenario} …");
            rows.extend(self.phase(fixture, servers, streams, postgres).await?);
        }
        if self.args.scenarios.iter().any(|s| s == LOGIN_TIMING) {
            eprintln!("running {LOGIN_TIMING} …");
            let users = fixture.plan.total_users();
            timing::login_timing(servers[0].addr, self.args.timing_samples, users).await?;
        }
        if let Some(ceiling) = rows
            .iter()
            .find(|r| r.scenario == "ceiling")
            .map(|r| r.ops_per_sec)
        {
            for row in &mut rows {
                row.vs_ceiling = Some(row.ops_per_sec / ceiling.max(f64::MIN_POSITIVE));
            }
        }
        Ok(rows)
    }

    /// One measured window: the streams run together; server CPU and peak RSS are read
    /// from /proc at the window's edges.
    async fn phase(
        &self,
        fixture: &Arc<Fixture>,
        servers: &[&Server],
        streams: Vec<Stream>,
        postgres: bool,
    ) -> Result<Vec<Row>> {
        let pids: Vec<String> = servers.iter().map(|s| s.pid.to_string()).collect();
        let addrs: Vec<SocketAddr> = servers.iter().map(|s| s.addr).collect();
        let peak_resets = pids.iter().all(|pid| server::reset_peak(pid));
        let warmup = Duration::from_secs_f64(self.args.warmup);
        let duration = Duration::from_secs_f64(self.args.duration);
        let start = Instant::now() + Duration::from_millis(50);
        let handle = tokio::spawn(load::run(
            fixture.clone(),
            addrs,
            streams,
            start,
            warmup,
            duration,
        ));
        let cpu = |pids: &[String]| -> Option<f64> {
            pids.iter()
                .map(|pid| server::cpu_seconds(pid, self.ticks))
                .sum()
        };
        tokio::time::sleep_until((start + warmup).into()).await;
        let database = || postgres.then(|| server::command_cpu_seconds("postgres", self.ticks));
        let db0 = database();
        let (server0, client0, at0) = (
            cpu(&pids),
            server::cpu_seconds("self", self.ticks),
            Instant::now(),
        );
        tokio::time::sleep_until((start + warmup + duration).into()).await;
        let db1 = database();
        let (server1, client1, at1) = (
            cpu(&pids),
            server::cpu_seconds("self", self.ticks),
            Instant::now(),
        );
        let results = handle.await??;
        let wall = at1.duration_since(at0).as_secs_f64().max(1e-9);
        let pct = |a: Option<f64>, b: Option<f64>| Some((b? - a?) / wall * 100.0);
        let peak_kb = pids
            .iter()
            .filter_map(|pid| server::status_kb(pid, "VmHWM"))
            .max();
        if !peak_resets {
            eprintln!("note: /proc/PID/clear_refs refused; peak RSS is since the server started");
        }
        let ms = |h: &hdrhistogram::Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        Ok(results
            .into_iter()
            .map(|r| {
                let secs = r.elapsed.as_secs_f64();
                let per_sec = |n: u64| if secs > 0.0 { n as f64 / secs } else { 0.0 };
                Row {
                    scenario: r.stream.label.clone(),
                    op: r.stream.op.name().into(),
                    mode: if r.stream.rate.is_some() {
                        "open"
                    } else {
                        "closed"
                    }
                    .into(),
                    connections: r.stream.connections,
                    rate: r.stream.rate,
                    ops: r.ops,
                    ops_per_sec: per_sec(r.ops),
                    http_per_sec: per_sec(r.http),
                    errors: r.errors,
                    error_samples: r.error_samples,
                    p50_ms: ms(&r.histogram, 0.50),
                    p90_ms: ms(&r.histogram, 0.90),
                    p99_ms: ms(&r.histogram, 0.99),
                    p999_ms: ms(&r.histogram, 0.999),
                    max_ms: r.histogram.max() as f64 / 1000.0,
                    vs_ceiling: None,
                    server_cpu_pct: pct(server0, server1),
                    client_cpu_pct: pct(client0, client1),
                    db_cpu_pct: pct(db0, db1),
                    peak_rss_mb: peak_kb.map(|kb| kb as f64 / 1024.0),
                    elapsed_secs: secs,
                    exhausted: r.exhausted,
                }
            })
            .collect())
    }
}

/// The admin URL with its database replaced by `name` (query parameters kept).
fn database_url(admin_url: &str, name: &str) -> String {
    let (base, query) = match admin_url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (admin_url, String::new()),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_and_path = &base[scheme_end..];
    let host = host_and_path.split('/').next().unwrap_or(host_and_path);
    format!("{}{host}/{name}{query}", &base[..scheme_end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_is_swapped_in_the_url() {
        assert_eq!(
            database_url("postgres://postgres@127.0.0.1:5432/postgres", "b"),
            "postgres://postgres@127.0.0.1:5432/b"
        );
        assert_eq!(
            database_url("postgres://u@h?sslmode=disable", "b"),
            "postgres://u@h/b?sslmode=disable"
        );
    }
}
