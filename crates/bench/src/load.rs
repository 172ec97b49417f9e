//! The load generator: streams of operations over keep-alive connections, measured in one
//! window after a warm-up.
//!
//! - Closed loop (throughput): each connection sends its next request as soon as the last one
//!   is answered.
//! - Open loop (latency): operation j is *due* at `start + j / rate`, whatever happened to
//!   earlier ones; a worker that is free sends it at that time, and one that is late sends it
//!   at once. Latency runs from the due time, so a server stall shows up as the queue behind
//!   it (no coordinated omission, as in wrk2). Timers fire at millisecond granularity, so the
//!   figures may be up to 1 ms pessimistic.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use hdrhistogram::Histogram;

use crate::http::Conn;
use crate::ops::{self, Fixture, Op, Outcome, WorkerState};

#[derive(Debug, Clone)]
pub struct Stream {
    pub label: String,
    pub op: Op,
    pub connections: usize,
    /// `Some(ops/s)`: open loop at that rate; `None`: closed loop.
    pub rate: Option<f64>,
    /// Added to every operation index, so each run of a scenario starts on other tokens.
    pub offset: u64,
}

pub struct StreamResult {
    pub stream: Stream,
    /// Operations measured: completions within the window (closed loop), or operations due
    /// within it (open loop).
    pub ops: u64,
    pub http: u64,
    /// Failed operations, warm-up included: any one is a bug in the server or the benchmark.
    pub errors: u64,
    pub error_samples: Vec<String>,
    /// Microseconds per operation, successful or not.
    pub histogram: Histogram<u64>,
    /// The measured span: the window, or less if a pool ran out.
    pub elapsed: Duration,
    pub exhausted: bool,
}

struct Window {
    start: Instant,
    measure_from: Instant,
    end: Instant,
}

struct WorkerResult {
    ops: u64,
    http: u64,
    errors: u64,
    samples: Vec<String>,
    histogram: Histogram<u64>,
    exhausted_at: Option<Instant>,
}

/// Longer than any operation takes even under a login flood (about 2 s at p99.9).
const OPERATION_TIMEOUT: Duration = Duration::from_secs(30);

fn histogram() -> Result<Histogram<u64>> {
    // 1 µs to 10 min, three significant digits.
    Histogram::new_with_bounds(1, 600_000_000, 3).map_err(|e| anyhow!("histogram: {e}"))
}

/// Runs every stream at once from `start`: `warmup`, then the measured `duration`.
pub async fn run(
    fixture: Arc<Fixture>,
    addrs: Vec<SocketAddr>,
    streams: Vec<Stream>,
    start: Instant,
    warmup: Duration,
    duration: Duration,
) -> Result<Vec<StreamResult>> {
    let window = Arc::new(Window {
        start,
        measure_from: start + warmup,
        end: start + warmup + duration,
    });
    let mut handles = Vec::new();
    for stream in &streams {
        let counter = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let mut workers = Vec::new();
        for w in 0..stream.connections {
            let conn = Conn::new(addrs[w % addrs.len()])?;
            workers.push(tokio::spawn(worker(
                fixture.clone(),
                stream.clone(),
                conn,
                counter.clone(),
                stop.clone(),
                window.clone(),
            )));
        }
        handles.push(workers);
    }
    let mut results = Vec::new();
    for (stream, workers) in streams.into_iter().zip(handles) {
        let mut merged = histogram()?;
        let (mut ops, mut http, mut errors) = (0, 0, 0);
        let mut samples = Vec::new();
        let mut exhausted_at: Option<Instant> = None;
        for worker in workers {
            let r = worker.await??;
            ops += r.ops;
            http += r.http;
            errors += r.errors;
            merged
                .add(&r.histogram)
                .map_err(|e| anyhow!("histogram: {e}"))?;
            for s in r.samples {
                if samples.len() < 5 && !samples.contains(&s) {
                    samples.push(s);
                }
            }
            if let Some(at) = r.exhausted_at {
                exhausted_at = Some(exhausted_at.map_or(at, |e| e.min(at)));
            }
        }
        let end = exhausted_at.unwrap_or(window.end).min(window.end);
        results.push(StreamResult {
            stream,
            ops,
            http,
            errors,
            error_samples: samples,
            histogram: merged,
            elapsed: end.saturating_duration_since(window.measure_from),
            exhausted: exhausted_at.is_some(),
        });
    }
    Ok(results)
}

async fn worker(
    fixture: Arc<Fixture>,
    stream: Stream,
    mut conn: Conn,
    counter: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    window: Arc<Window>,
) -> Result<WorkerResult> {
    let mut result = WorkerResult {
        ops: 0,
        http: 0,
        errors: 0,
        samples: Vec::new(),
        histogram: histogram()?,
        exhausted_at: None,
    };
    let mut state = WorkerState::default();
    tokio::time::sleep_until(window.start.into()).await;
    loop {
        let j = counter.fetch_add(1, Ordering::Relaxed);
        let due = match stream.rate {
            Some(rate) => {
                let due = window.start + Duration::from_secs_f64(j as f64 / rate);
                if due >= window.end {
                    break;
                }
                tokio::time::sleep_until(due.into()).await;
                due
            }
            None => Instant::now(),
        };
        if due >= window.end || stop.load(Ordering::Relaxed) {
            break;
        }
        let operation = ops::execute(
            &fixture,
            stream.op,
            j.wrapping_add(stream.offset),
            &mut conn,
            &mut state,
        );
        // A server that stops answering fails the operation instead of hanging the run.
        let outcome = match tokio::time::timeout(OPERATION_TIMEOUT, operation).await {
            Ok(outcome) => outcome,
            Err(_) => {
                conn.reset();
                Outcome::Failed {
                    http: 1,
                    why: format!(
                        "{}: no answer within {} s",
                        stream.op.name(),
                        OPERATION_TIMEOUT.as_secs()
                    ),
                }
            }
        };
        let done = Instant::now();
        let counted = match stream.rate {
            // Open loop: every operation due in the window, however late it finishes.
            Some(_) => due >= window.measure_from,
            // Closed loop: the completions within the window.
            None => done >= window.measure_from && done <= window.end,
        };
        let micros = done.duration_since(due).as_micros() as u64;
        match outcome {
            Outcome::Ok { http } => {
                if counted {
                    result.ops += 1;
                    result.http += u64::from(http);
                    result.histogram.saturating_record(micros.max(1));
                }
            }
            Outcome::Failed { http, why } => {
                result.errors += 1;
                if counted {
                    result.http += u64::from(http);
                    result.histogram.saturating_record(micros.max(1));
                }
                if result.samples.len() < 3 {
                    result.samples.push(why);
                }
                if result.errors > 1000 && result.ops == 0 {
                    // Nothing works; the rest of the window would only repeat it.
                    break;
                }
            }
            Outcome::Exhausted => {
                stop.store(true, Ordering::Relaxed);
                result.exhausted_at = Some(done);
                break;
            }
        }
    }
    Ok(result)
}
