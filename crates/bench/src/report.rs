//! What a run found: the JSON model (written with `--json`, read back with `--plot`), the
//! tables, the targets checked against the figures, and the PNG charts.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::{anyhow, Result};
use plotters::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub command: String,
    pub machine: Machine,
    pub settings: Settings,
    pub runs: Vec<Run>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Machine {
    pub cores: usize,
    pub kernel: String,
    /// `/proc/loadavg` before and after: a busy machine makes noisy figures.
    pub load_before: String,
    pub load_after: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Settings {
    pub duration_secs: f64,
    pub warmup_secs: f64,
    pub connections: usize,
    pub flood_connections: usize,
    pub client_threads: usize,
    pub open_loop_fraction: f64,
    pub server_log: String,
    pub server_config: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Run {
    pub backend: String,
    pub nodes: usize,
    pub tokens: u64,
    pub users: u64,
    pub clients: u64,
    pub codes: u64,
    pub seed_secs: f64,
    pub db_size_mb: Option<f64>,
    pub rows: Vec<Row>,
}

impl Run {
    pub fn label(&self) -> String {
        if self.backend == "sqlite" {
            "sqlite".into()
        } else {
            format!("{}-{}node", self.backend, self.nodes)
        }
    }

    pub fn row(&self, scenario: &str) -> Option<&Row> {
        self.rows.iter().find(|r| r.scenario == scenario)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Row {
    pub scenario: String,
    pub op: String,
    /// `closed` (throughput) or `open` (latency at a fixed rate).
    pub mode: String,
    pub connections: usize,
    pub rate: Option<f64>,
    pub ops: u64,
    pub ops_per_sec: f64,
    pub http_per_sec: f64,
    pub errors: u64,
    pub error_samples: Vec<String>,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    /// ops/s over the `ceiling` scenario's ops/s of the same run.
    pub vs_ceiling: Option<f64>,
    /// Server CPU over the window, in % of one core (all nodes together).
    pub server_cpu_pct: Option<f64>,
    /// The load generator's own CPU, in % of one core: it shares the machine.
    pub client_cpu_pct: Option<f64>,
    /// PostgreSQL's CPU (all `postgres` processes), in % of one core; none for SQLite, which
    /// runs inside the server.
    #[serde(default)]
    pub db_cpu_pct: Option<f64>,
    /// VmHWM of the server (the largest node) during the scenario.
    pub peak_rss_mb: Option<f64>,
    pub elapsed_secs: f64,
    pub exhausted: bool,
}

fn cell(value: Option<f64>, decimals: usize) -> String {
    value.map_or("-".into(), |v| format!("{v:.decimals$}"))
}

pub fn table(run: &Run) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n{} · {} tokens ({} users, {} clients) · seeded in {:.1} s{}",
        run.label(),
        run.tokens,
        run.users,
        run.clients,
        run.seed_secs,
        run.db_size_mb
            .map_or(String::new(), |mb| format!(" · database {mb:.0} MB"))
    );
    let _ = writeln!(
        out,
        "{:<28} {:>6} {:>9} {:>9} {:>8} {:>8} {:>8} {:>7} {:>6} {:>7} {:>7} {:>7} {:>7}",
        "scenario",
        "conns",
        "ops/s",
        "http/s",
        "p50 ms",
        "p99 ms",
        "p99.9",
        "vs ceil",
        "errors",
        "srv cpu",
        "db cpu",
        "gen cpu",
        "rss MB"
    );
    for r in &run.rows {
        let _ = writeln!(
            out,
            "{:<28} {:>6} {:>9.0} {:>9.0} {:>8.2} {:>8.2} {:>8.2} {:>7} {:>6} {:>6}% {:>6}% {:>6}% {:>7}{}",
            r.scenario,
            r.connections,
            r.ops_per_sec,
            r.http_per_sec,
            r.p50_ms,
            r.p99_ms,
            r.p999_ms,
            cell(r.vs_ceiling, 3),
            r.errors,
            cell(r.server_cpu_pct, 0),
            cell(r.db_cpu_pct, 0),
            cell(r.client_cpu_pct, 0),
            cell(r.peak_rss_mb, 0),
            if r.exhausted { "  (code pool ran out)" } else { "" }
        );
        for sample in &r.error_samples {
            let _ = writeln!(out, "    error: {sample}");
        }
    }
    out
}

/// The same table in Markdown, for docs/performance.md.
pub fn markdown(run: &Run) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| scenario | conns | ops/s | HTTP req/s | p50 ms | p99 ms | p99.9 ms | vs ceiling | errors | server CPU | database CPU | load-gen CPU | peak RSS MB |\n|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
    );
    for r in &run.rows {
        let _ = writeln!(
            out,
            "| {} | {} | {:.0} | {:.0} | {:.2} | {:.2} | {:.2} | {} | {} | {}% | {} | {}% | {} |",
            r.scenario,
            r.connections,
            r.ops_per_sec,
            r.http_per_sec,
            r.p50_ms,
            r.p99_ms,
            r.p999_ms,
            cell(r.vs_ceiling, 3),
            r.errors,
            cell(r.server_cpu_pct, 0),
            r.db_cpu_pct.map_or("-".into(), |v| format!("{v:.0}%")),
            cell(r.client_cpu_pct, 0),
            cell(r.peak_rss_mb, 0),
        );
    }
    out
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Target {
    pub target: String,
    pub measured: String,
    /// `None`: not measured in this run.
    pub met: Option<bool>,
}

fn target(name: &str, measured: Option<(f64, String)>, ok: impl Fn(f64) -> bool) -> Target {
    match measured {
        Some((value, text)) => Target {
            target: name.into(),
            measured: text,
            met: Some(ok(value)),
        },
        None => Target {
            target: name.into(),
            measured: "not measured".into(),
            met: None,
        },
    }
}

/// The targets, from the runs at hand: SQLite at 10k tokens (else the smallest run)
/// unless the target names another backend or size.
pub fn targets(runs: &[Run]) -> Vec<Target> {
    let mut sqlite: Vec<&Run> = runs.iter().filter(|r| r.backend == "sqlite").collect();
    sqlite.sort_by_key(|r| r.tokens);
    // The reference size is 10k tokens; without it, the smallest run.
    let small = sqlite
        .iter()
        .find(|r| r.tokens == 10_000)
        .or(sqlite.first())
        .copied();
    let large = sqlite.last().copied();
    let ratio = |run: Option<&Run>, scenario: &str| {
        run.and_then(|r| r.row(scenario)).and_then(|row| {
            row.vs_ceiling.map(|v| {
                (
                    v,
                    format!(
                        "{v:.3} of ceiling ({:.0} ops/s, {} tokens)",
                        row.ops_per_sec,
                        run.map_or(0, |r| r.tokens)
                    ),
                )
            })
        })
    };
    let mut out = vec![
        target(
            "refresh ≥ 0.30 of ceiling (SQLite, durable)",
            ratio(small, "refresh"),
            |v| v >= 0.30,
        ),
        target(
            "exchange ≥ 0.20 of ceiling",
            ratio(small, "exchange"),
            |v| v >= 0.20,
        ),
        target(
            "introspect ≥ 0.60 of ceiling",
            ratio(small, "introspect"),
            |v| v >= 0.60,
        ),
        target(
            "userinfo ≥ 0.60 of ceiling",
            ratio(small, "userinfo"),
            |v| v >= 0.60,
        ),
        target("flow ≥ 0.05 of ceiling", ratio(small, "flow"), |v| {
            v >= 0.05
        }),
    ];
    for op in ["refresh", "introspect"] {
        let measured = small.and_then(|r| {
            r.rows
                .iter()
                .find(|row| row.op == op && row.mode == "open")
                .map(|row| {
                    (
                        row.p99_ms,
                        format!(
                            "p99 {:.2} ms at {:.0} ops/s ({} errors)",
                            row.p99_ms,
                            row.rate.unwrap_or(0.0),
                            row.errors
                        ),
                    )
                })
        });
        out.push(target(
            &format!("{op} p99 ≤ 10 ms at 70 % of saturation (open loop)"),
            measured,
            |v| v <= 10.0,
        ));
    }
    let flood = small.and_then(|r| {
        let flooded = r.row("refresh (login flood)")?;
        let alone = r.row("refresh")?;
        let v = flooded.ops_per_sec / alone.ops_per_sec.max(f64::MIN_POSITIVE);
        Some((
            v,
            format!(
                "{v:.2} ({:.0} vs {:.0} ops/s)",
                flooded.ops_per_sec, alone.ops_per_sec
            ),
        ))
    });
    out.push(target(
        "refresh under a login flood ≥ 0.5 of unflooded",
        flood,
        |v| v >= 0.5,
    ));
    let scale = match (small, large) {
        (Some(s), Some(l)) if l.tokens > s.tokens => {
            let pair = |scenario: &str| Some((s.row(scenario)?, l.row(scenario)?));
            pair("refresh").map(|(a, b)| (a, b, s.tokens, l.tokens))
        }
        _ => None,
    };
    out.push(target(
        "refresh throughput, largest vs smallest token count ≥ 0.8 (issue: 10M vs 10k)",
        scale.map(|(a, b, sn, ln)| {
            let v = b.ops_per_sec / a.ops_per_sec.max(f64::MIN_POSITIVE);
            (v, format!("{v:.2} ({ln} vs {sn} tokens)"))
        }),
        |v| v >= 0.8,
    ));
    out.push(target(
        "refresh p99, largest vs smallest token count ≤ 1.5× (issue: 10M vs 10k)",
        scale.map(|(a, b, sn, ln)| {
            let v = b.p99_ms / a.p99_ms.max(f64::MIN_POSITIVE);
            (v, format!("{v:.2}× ({ln} vs {sn} tokens)"))
        }),
        |v| v <= 1.5,
    ));
    out.push(target(
        "peak RSS ≤ 256 MB (issue: at 10M tokens)",
        large.and_then(|l| {
            let peak = l
                .rows
                .iter()
                .filter_map(|r| r.peak_rss_mb)
                .fold(0.0, f64::max);
            (peak > 0.0).then(|| (peak, format!("{peak:.0} MB at {} tokens", l.tokens)))
        }),
        |v| v <= 256.0,
    ));
    let pg2 = runs
        .iter()
        .filter(|r| r.backend == "postgres" && r.nodes == 2)
        .min_by_key(|r| r.tokens);
    out.push(target(
        "refresh on PostgreSQL, two nodes ≥ 0.10 of ceiling",
        ratio(pg2, "refresh"),
        |v| v >= 0.10,
    ));
    out
}

pub fn targets_table(targets: &[Target]) -> String {
    let mut out = String::from("\ntargets\n");
    for t in targets {
        let mark = match t.met {
            Some(true) => "met    ",
            Some(false) => "NOT MET",
            None => "-      ",
        };
        let _ = writeln!(out, "  {mark}  {:<78} {}", t.target, t.measured);
    }
    out
}

/// Scenarios drawn on the charts (closed loop, one line each).
const CHARTED: [&str; 8] = [
    "ceiling",
    "introspect",
    "userinfo",
    "refresh",
    "exchange",
    "flow",
    "mixed",
    "login",
];

/// Throughput and p99 against the number of stored tokens, one pair of PNGs per backend.
/// Text is drawn with DejaVu Sans embedded from the `dejavu` crate, so no system font or
/// fontconfig is needed.
pub fn charts(runs: &[Run], dir: &Path) -> Result<Vec<String>> {
    plotters::style::register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular())
        .map_err(|_| anyhow!("the embedded font is invalid"))?;
    std::fs::create_dir_all(dir)?;
    let mut by_label: BTreeMap<String, Vec<&Run>> = BTreeMap::new();
    for run in runs {
        by_label.entry(run.label()).or_default().push(run);
    }
    let mut written = Vec::new();
    for (label, mut group) in by_label {
        group.sort_by_key(|r| r.tokens);
        let series: Vec<Series> = CHARTED
            .iter()
            .map(|scenario| {
                let points = group
                    .iter()
                    .filter_map(|run| {
                        let row = run.row(scenario)?;
                        Some((run.tokens as f64, row.ops_per_sec, row.p99_ms))
                    })
                    .collect();
                (*scenario, points)
            })
            .filter(|(_, points): &Series| !points.is_empty())
            .collect();
        if series.is_empty() {
            continue;
        }
        let throughput = dir.join(format!("throughput-{label}.png"));
        draw(&throughput, &label, &series, Metric::Throughput)?;
        let p99 = dir.join(format!("p99-{label}.png"));
        draw(&p99, &label, &series, Metric::P99)?;
        written.push(throughput.display().to_string());
        written.push(p99.display().to_string());
    }
    Ok(written)
}

/// A scenario's points: (stored tokens, ops/s, p99 ms).
type Series<'a> = (&'a str, Vec<(f64, f64, f64)>);

#[derive(Clone, Copy)]
enum Metric {
    Throughput,
    P99,
}

fn draw(path: &Path, label: &str, series: &[Series], metric: Metric) -> Result<()> {
    let value = |p: &(f64, f64, f64)| match metric {
        Metric::Throughput => p.1,
        Metric::P99 => p.2,
    };
    let xs = series.iter().flat_map(|(_, ps)| ps.iter().map(|p| p.0));
    let x_min = xs.clone().fold(f64::INFINITY, f64::min) / 2.0;
    let x_max = xs.fold(0.0, f64::max) * 2.0;
    let ys = series
        .iter()
        .flat_map(|(_, ps)| ps.iter().map(value))
        .filter(|v| *v > 0.0);
    let y_min = (ys.clone().fold(f64::INFINITY, f64::min) / 2.0).max(1e-3);
    // Head room above the data for the legend.
    let y_max = ys.fold(0.0, f64::max).max(y_min) * 12.0;
    let (title, y_desc) = match metric {
        Metric::Throughput => (
            format!("throughput vs stored tokens ({label})"),
            "operations/s (log)",
        ),
        Metric::P99 => (
            format!("p99 latency vs stored tokens ({label})"),
            "p99 ms (log)",
        ),
    };
    let root = BitMapBackend::new(path, (960, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 24))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(72)
        .build_cartesian_2d((x_min..x_max).log_scale(), (y_min..y_max).log_scale())
        .map_err(|e| anyhow!("{e}"))?;
    chart
        .configure_mesh()
        .x_desc("stored refresh + access tokens, each (log)")
        .y_desc(y_desc)
        // Only the decades are labelled: the token counts are 1k, 10k, ... 10M.
        .x_label_formatter(&|x| {
            let decade = 10f64.powf(x.log10().round());
            if (x / decade - 1.0).abs() < 1e-6 {
                human(*x)
            } else {
                String::new()
            }
        })
        .y_label_formatter(&|y| human(*y))
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(|e| anyhow!("{e}"))?;
    for (i, (name, points)) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let data: Vec<(f64, f64)> = points
            .iter()
            .map(|p| (p.0, value(p)))
            .filter(|(_, v)| *v > 0.0)
            .collect();
        chart
            .draw_series(LineSeries::new(data.clone(), color.stroke_width(2)))
            .map_err(|e| anyhow!("{e}"))?
            .label(*name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart
            .draw_series(data.into_iter().map(|p| Circle::new(p, 4, color.filled())))
            .map_err(|e| anyhow!("{e}"))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(|e| anyhow!("{e}"))?;
    root.present().map_err(|e| anyhow!("{e}"))?;
    Ok(())
}

/// 1000 → "1k", 2500000 → "2.5M", 0.25 → "0.25".
fn human(v: f64) -> String {
    let (value, suffix) = if v >= 1e6 {
        (v / 1e6, "M")
    } else if v >= 1e3 {
        (v / 1e3, "k")
    } else {
        (v, "")
    };
    let text = if value >= 100.0 || value.fract() == 0.0 {
        format!("{value:.0}")
    } else if value >= 1.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    };
    format!("{text}{suffix}")
}
