//! Hearth with eBPF HTTP ingestion, started fresh for one observed round: a temporary data
//! directory, a free loopback port, `--ebpf.enable --ebpf.open-ports <port> --ebpf.interval 1s`.
//!
//! Readiness is `/-/ready` answering 200 *and* `/api/v1/status/runtimeinfo` reporting
//! `data.ebpf.state == "running"` with at least one attached program (a failed attach is
//! reported there with its error, and is an error here: an overhead figure with nothing
//! attached would be meaningless). Counters come from `/metrics` (the
//! `hearth_ebpf_*_total` family of `ingest::ebpf::EbpfMetrics::counters`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use bench::systems::{free_loopback_port, log_tail, spawn, ChildGuard};
use bench::{BenchError, Result};

/// How often bounded waits poll.
const POLL: Duration = Duration::from_millis(100);

/// A running Hearth observing one port.
pub struct Hearth {
    guard: ChildGuard,
    port: u16,
    log: PathBuf,
    /// Keeps the data directory (and the log) until the run is over.
    _dir: tempfile::TempDir,
}

/// The eBPF source's counters at one instant (`/metrics`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct EbpfCounters {
    /// `hearth_ebpf_events_read_total`.
    pub events_read: u64,
    /// `hearth_ebpf_events_dropped_total`.
    pub events_dropped: u64,
    /// `hearth_ebpf_events_unparsable_total`.
    pub events_unparsable: u64,
    /// `hearth_ebpf_requests_total`.
    pub requests: u64,
}

/// The value of an unlabelled sample `name` in a text exposition, if present.
pub fn exposition_value(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(name)?;
        let rest = rest.strip_prefix(' ')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// Kernel names of Hearth's programs (`ebpf::PROGRAMS`, `INGRESS_PROGRAM`, `EGRESS_PROGRAM` and
/// `SEND_FALLBACK`, at most 15 bytes: not truncated); only the attached ones run.
const PROGRAM_NAMES: &[&str] = &["hearth_state", "hearth_recv", "hearth_ingress", "hearth_egress", "hearth_send"];

/// Run time and run count of Hearth's programs (`bpftool prog show -j`'s `run_time_ns`,
/// `run_cnt`, present while `kernel.bpf_stats_enabled` is 1), summed over loaded copies;
/// `None` when bpftool is missing or reports no statistics.
pub fn program_stats() -> Option<(u64, u64)> {
    let out = Command::new("bpftool").args(["prog", "show", "-j"]).output().ok()?;
    let progs: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    let mut total = None;
    for p in progs.as_array()?.iter().filter(|p| p.get("name").and_then(|n| n.as_str()).is_some_and(|n| PROGRAM_NAMES.contains(&n))) {
        // bpftool leaves both out for a program that has not run yet.
        let ns = p.get("run_time_ns").and_then(|v| v.as_u64()).unwrap_or(0);
        let cnt = p.get("run_cnt").and_then(|v| v.as_u64()).unwrap_or(0);
        let (a, b) = total.unwrap_or((0, 0));
        total = Some((a + ns, b + cnt));
    }
    // No runs counted at all: the statistics are off.
    total.filter(|&(_, runs)| runs > 0)
}

/// Sets `kernel.bpf_stats_enabled` (on: [`program_stats`] has figures) and restores the
/// previous value on drop. The statistics cost two clock reads per program run.
pub struct BpfStats {
    previous: Option<String>,
}

const BPF_STATS: &str = "/proc/sys/kernel/bpf_stats_enabled";

impl BpfStats {
    /// Sets the statistics on or off for the guard's life; a no-op guard when the sysctl cannot
    /// be written.
    pub fn set(on: bool) -> BpfStats {
        let previous = std::fs::read_to_string(BPF_STATS).ok();
        if std::fs::write(BPF_STATS, if on { "1" } else { "0" }).is_err() {
            return BpfStats { previous: None };
        }
        BpfStats { previous }
    }
}

impl Drop for BpfStats {
    fn drop(&mut self) {
        if let Some(p) = &self.previous {
            let _ = std::fs::write(BPF_STATS, p.trim());
        }
    }
}

impl Hearth {
    /// Starts `bin` observing `observe_port` and waits (up to `timeout`) until it is ready with
    /// eBPF programs attached.
    ///
    /// # Errors
    /// [`BenchError::Process`] with the log's tail when it exits, reports the eBPF source
    /// failed, or is not ready in time.
    pub fn start(bin: &Path, observe_port: u16, http: &reqwest::blocking::Client, timeout: Duration) -> Result<Hearth> {
        let dir = tempfile::Builder::new().prefix("hearth-ebpf-overhead").tempdir().map_err(|e| BenchError::io("temp dir", e))?;
        let port = free_loopback_port()?;
        let log = dir.path().join("hearth.log");
        let mut cmd = Command::new(bin);
        cmd.arg("--web.listen-address")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--storage.tsdb.path")
            .arg(dir.path().join("data"))
            .args(["--ebpf.enable", "--ebpf.open-ports", &observe_port.to_string(), "--ebpf.interval", "1s"]);
        let guard = spawn(cmd, &log)?;
        let mut h = Hearth { guard, port, log, _dir: dir };
        h.wait_attached(http, timeout)?;
        Ok(h)
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn fail(&self, what: String) -> BenchError {
        BenchError::Process(format!("hearth: {what}\n--- log tail ---\n{}", log_tail(&self.log, 4000)))
    }

    fn wait_attached(&mut self, http: &reqwest::blocking::Client, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let mut last = String::from("no answer yet");
        while Instant::now() < deadline {
            if let Some(status) = self.guard.exited() {
                return Err(self.fail(format!("exited with {status} before it was ready")));
            }
            let ready = http.get(self.url("/-/ready")).send().map(|r| r.status().is_success()).unwrap_or(false);
            if ready {
                let info: Option<serde_json::Value> =
                    http.get(self.url("/api/v1/status/runtimeinfo")).send().ok().and_then(|r| r.json().ok());
                if let Some(ebpf) = info.as_ref().and_then(|v| v.pointer("/data/ebpf")) {
                    let state = ebpf.get("state").and_then(|s| s.as_str()).unwrap_or("");
                    let attached = ebpf.get("attachedPrograms").and_then(|a| a.as_array()).map_or(0, Vec::len);
                    if state == "failed" {
                        return Err(self.fail(format!("eBPF source failed to start: {ebpf}")));
                    }
                    if state == "running" && attached > 0 {
                        return Ok(());
                    }
                    last = ebpf.to_string();
                }
            }
            std::thread::sleep(POLL);
        }
        Err(self.fail(format!("not ready with eBPF attached after {timeout:?} (last status: {last})")))
    }

    /// The process id (for `/proc` figures).
    pub fn pid(&self) -> u32 {
        self.guard.pid()
    }

    /// The eBPF counters now.
    ///
    /// # Errors
    /// [`BenchError::Process`] when `/metrics` cannot be read or lacks a counter.
    pub fn counters(&self, http: &reqwest::blocking::Client) -> Result<EbpfCounters> {
        let text = http
            .get(self.url("/metrics"))
            .send()
            .and_then(|r| r.text())
            .map_err(|e| BenchError::Http { system: "hearth".into(), source: e })?;
        let get = |name: &str| {
            exposition_value(&text, name).map(|v| v as u64).ok_or_else(|| self.fail(format!("/metrics has no {name}")))
        };
        Ok(EbpfCounters {
            events_read: get("hearth_ebpf_events_read_total")?,
            events_dropped: get("hearth_ebpf_events_dropped_total")?,
            events_unparsable: get("hearth_ebpf_events_unparsable_total")?,
            requests: get("hearth_ebpf_requests_total")?,
        })
    }

    /// Polls the counters until `events_read` has not moved for 300 ms (the ring buffer is
    /// drained at least every 100 ms), up to `timeout`.
    ///
    /// # Errors
    /// As [`Hearth::counters`].
    pub fn settled_counters(&self, http: &reqwest::blocking::Client, timeout: Duration) -> Result<EbpfCounters> {
        let deadline = Instant::now() + timeout;
        let mut prev = self.counters(http)?;
        let mut stable_since = Instant::now();
        while Instant::now() < deadline {
            std::thread::sleep(POLL);
            let now = self.counters(http)?;
            if now != prev {
                prev = now;
                stable_since = Instant::now();
            } else if stable_since.elapsed() >= Duration::from_millis(300) {
                break;
            }
        }
        Ok(prev)
    }

    /// The value of an instant query whose answer is one sample (0 when the vector is empty).
    ///
    /// # Errors
    /// [`BenchError::Query`] when the answer is not a success with a vector.
    pub fn query_scalar(&self, http: &reqwest::blocking::Client, promql: &str) -> Result<f64> {
        let qerr = |reason: String| BenchError::Query { system: "hearth".into(), query: promql.into(), reason };
        let v: serde_json::Value = http
            .get(self.url("/api/v1/query"))
            .query(&[("query", promql)])
            .send()
            .and_then(|r| r.json())
            .map_err(|e| qerr(e.to_string()))?;
        if v.get("status").and_then(|s| s.as_str()) != Some("success") {
            return Err(qerr(v.to_string()));
        }
        let result = v.pointer("/data/result").and_then(|r| r.as_array()).ok_or_else(|| qerr(v.to_string()))?;
        match result.first() {
            None => Ok(0.0),
            Some(s) => s
                .pointer("/value/1")
                .and_then(|x| x.as_str())
                .and_then(|x| x.parse().ok())
                .ok_or_else(|| qerr(v.to_string())),
        }
    }

    /// Waits (up to `timeout`) until a flush has written `expected` requests, i.e. until
    /// `promql` answers `expected`, and returns the last answer.
    ///
    /// # Errors
    /// As [`Hearth::query_scalar`].
    pub fn query_until(&self, http: &reqwest::blocking::Client, promql: &str, expected: f64, timeout: Duration) -> Result<f64> {
        let deadline = Instant::now() + timeout;
        loop {
            let v = self.query_scalar(http, promql)?;
            if v == expected || Instant::now() >= deadline {
                return Ok(v);
            }
            std::thread::sleep(POLL);
        }
    }

    /// SIGTERM, then SIGKILL after 10 s; whether it exited cleanly.
    pub fn stop(mut self) -> bool {
        self.guard.terminate(Duration::from_secs(10))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_unlabelled_counters_from_an_exposition() {
        let text = "# HELP hearth_ebpf_events_read Ring buffer records read.\n\
                    # TYPE hearth_ebpf_events_read counter\n\
                    hearth_ebpf_events_read_total 778360\n\
                    hearth_ebpf_events_read_total_other 5\n\
                    hearth_ebpf_events_dropped_total 0\n";
        assert_eq!(exposition_value(text, "hearth_ebpf_events_read_total"), Some(778_360.0));
        assert_eq!(exposition_value(text, "hearth_ebpf_events_dropped_total"), Some(0.0));
        assert_eq!(exposition_value(text, "hearth_ebpf_requests_total"), None);
    }
}
