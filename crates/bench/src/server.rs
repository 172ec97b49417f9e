//! The server under test: the real `grantd serve` release binary as a child process, on an
//! ephemeral port, and what `/proc` says about its CPU time and memory.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

/// The `grantd` binary to run: `--grantd`, else `$GRANTD_BIN`, else the workspace's
/// `target/release/grantd` (honouring `CARGO_TARGET_DIR`).
pub fn locate(explicit: Option<&Path>) -> Result<PathBuf> {
    let path = match explicit {
        Some(path) => path.to_owned(),
        None => match std::env::var_os("GRANTD_BIN") {
            Some(path) => PathBuf::from(path),
            None => {
                let target = std::env::var_os("CARGO_TARGET_DIR")
                    .map(PathBuf::from)
                    .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
                target.join("release/grantd")
            }
        },
    };
    if !path.is_file() {
        bail!(
            "the grantd release binary is not at {}; build it first with \
             `cargo build --release --bin grantd`, or pass --grantd PATH",
            path.display()
        );
    }
    Ok(path)
}

/// The `--config` file every benchmarked server gets. Only the throttles change, and only
/// because a benchmark asks for far more than a client would: thousands of refreshes per
/// second over a pool of tokens, and thousands of codes per second over a few clients.
pub const CONFIG: &str = "\
# Written by grantd-bench. The default throttles (10 refreshes per refresh token and 10 codes
# per client per 10 minutes) would stop a load test within a second; the checks still run.
# Every sign-in comes from this one address, and each counts until its password is checked, so
# a flood on many connections would reach the per-address sign-in limit with none failing.
[limits]
refreshes_per_window = 1000000000
codes_per_window = 1000000000
signin_failures_per_source = 1000000000
";

pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    pub pid: u32,
}

impl Server {
    /// Starts `grantd serve` and waits for its `grantd listening on http://ADDR` line.
    pub fn start(
        binary: &Path,
        database: &str,
        config: &Path,
        log: &Path,
        log_level: &str,
        wrap: Option<&str>,
    ) -> Result<Server> {
        let log_file = std::fs::File::create(log)
            .with_context(|| format!("creating the server log {}", log.display()))?;
        let mut command = match wrap.map(|w| w.split_whitespace().collect::<Vec<_>>()) {
            Some(words) if !words.is_empty() => {
                let mut command = Command::new(words[0]);
                command.args(&words[1..]).arg(binary);
                command
            }
            _ => Command::new(binary),
        };
        let mut child = command
            .args(["serve", "--listen", "127.0.0.1:0", "--database", database])
            .arg("--config")
            .arg(config)
            .env("RUST_LOG", log_level)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file))
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| anyhow!("no stdout from grantd"))?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = tx.send(line);
            }
            // Keep reading, so the server never blocks on a full pipe.
            for _ in lines {}
        });
        let pid = child.id();
        let line = match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                let tail = std::fs::read_to_string(log).unwrap_or_default();
                bail!(
                    "grantd did not announce its address; its log ({}) ends with:\n{}",
                    log.display(),
                    tail.lines().rev().take(10).collect::<Vec<_>>().join("\n")
                );
            }
        };
        let addr = line
            .strip_prefix("grantd listening on http://")
            .and_then(|a| a.trim().parse().ok())
            .ok_or_else(|| anyhow!("unexpected first line from grantd: {line:?}"))?;
        eprintln!(
            "grantd (pid {pid}) listening on {addr}; log: {}",
            log.display()
        );
        Ok(Server { child, addr, pid })
    }

    /// SIGTERM (a graceful stop, as an operator's), then a kill if it does not exit in time.
    pub fn stop(mut self) -> Result<()> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if self.child.try_wait()?.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.child.kill()?;
        self.child.wait()?;
        bail!("grantd did not stop within 15 s of SIGTERM")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // After `stop` this finds the process gone; on an early return it must not outlive us.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Clock ticks per second of /proc's CPU times.
pub fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// utime + stime of a process, in seconds (all its threads).
pub fn cpu_seconds(pid: &str, ticks: f64) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces; fields resume after its closing parenthesis.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / ticks)
}

/// CPU seconds of every process running `command` (PostgreSQL's backends and background
/// workers are all `postgres`), so a PostgreSQL run can report the database's CPU too. Other
/// databases of the same cluster count as well; the benchmark's are the busy ones.
pub fn command_cpu_seconds(command: &str, ticks: f64) -> f64 {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|pid| pid.bytes().all(|b| b.is_ascii_digit()))
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|comm| comm.trim() == command)
        })
        .filter_map(|pid| cpu_seconds(&pid, ticks))
        .sum()
}

/// A `/proc/PID/status` field in kB (VmHWM: peak resident set; VmRSS: current).
pub fn status_kb(pid: &str, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Resets VmHWM to the current RSS (`clear_refs` 5, Linux 4.0+), so each scenario reports its
/// own peak. False if the kernel refused, in which case VmHWM is the peak since start.
pub fn reset_peak(pid: &str) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}
