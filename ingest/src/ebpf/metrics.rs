//! Self-monitoring of eBPF ingestion, for Hearth's `/metrics` and
//! `/api/v1/status/runtimeinfo`. Counters are atomics published once per drained batch.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Counters of a running ingestion. Shared (`Arc`) between the ingestion task and the server.
#[derive(Debug, Default)]
pub struct EbpfMetrics {
    /// `hearth_ebpf_events_read_total`: ring buffer records read.
    pub events_read: AtomicU64,
    /// `hearth_ebpf_events_dropped_total`: records the kernel could not queue (ring buffer
    /// full), the sum of the per-CPU reserve failure counters.
    pub events_dropped: AtomicU64,
    /// `hearth_ebpf_events_unparsable_total`: records that were not an HTTP/1.x request.
    pub events_unparsable: AtomicU64,
    /// `hearth_ebpf_requests_total`: requests aggregated.
    pub requests: AtomicU64,
    /// `hearth_ebpf_flushes_total`: committed flushes.
    pub flushes: AtomicU64,
    /// `hearth_ebpf_flush_failures_total`: flushes whose commit failed.
    pub flush_failures: AtomicU64,
    /// `hearth_ebpf_samples_appended_total`: samples written.
    pub samples_appended: AtomicU64,
    /// `hearth_ebpf_samples_rejected_total`: samples the appender refused.
    pub samples_rejected: AtomicU64,
    /// `hearth_ebpf_target_pids`: processes selected by `--ebpf.exe-path` (gauge).
    pub target_pids: AtomicU64,
    status: Mutex<StatusInner>,
}

#[derive(Debug, Default, Clone)]
struct StatusInner {
    attached_programs: Vec<String>,
    last_error: Option<String>,
}

/// A snapshot for `/api/v1/status/runtimeinfo` (field names as they would appear in JSON).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EbpfStatus {
    /// Programs attached, as `name (attach point)`.
    pub attached_programs: Vec<String>,
    /// Events read so far.
    pub events_read: u64,
    /// Events dropped in the kernel so far.
    pub events_dropped: u64,
    /// Unparsable events so far.
    pub events_unparsable: u64,
    /// Requests aggregated so far.
    pub requests: u64,
    /// The newest error of the running task (a failed flush), if any.
    pub last_error: Option<String>,
}

impl EbpfMetrics {
    /// Names of the attached programs.
    pub fn attached_programs(&self) -> Vec<String> {
        self.lock().attached_programs.clone()
    }

    pub(crate) fn set_attached(&self, programs: Vec<String>) {
        self.lock().attached_programs = programs;
    }

    pub(crate) fn set_error(&self, e: Option<String>) {
        self.lock().last_error = e;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, StatusInner> {
        // A poisoned lock only means a panic elsewhere mid-update of two strings; the data is
        // still usable.
        self.status.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The current status.
    pub fn status(&self) -> EbpfStatus {
        let s = self.lock().clone();
        EbpfStatus {
            attached_programs: s.attached_programs,
            events_read: self.events_read.load(Ordering::Relaxed),
            events_dropped: self.events_dropped.load(Ordering::Relaxed),
            events_unparsable: self.events_unparsable.load(Ordering::Relaxed),
            requests: self.requests.load(Ordering::Relaxed),
            last_error: s.last_error,
        }
    }

    /// Counters as `(metric name, help, value)`, for the server's exposition.
    pub fn counters(&self) -> Vec<(&'static str, &'static str, u64)> {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        vec![
            ("hearth_ebpf_events_read_total", "Ring buffer records read.", l(&self.events_read)),
            ("hearth_ebpf_events_dropped_total", "Records dropped in the kernel (ring buffer full).", l(&self.events_dropped)),
            ("hearth_ebpf_events_unparsable_total", "Records that were not HTTP/1.x requests.", l(&self.events_unparsable)),
            ("hearth_ebpf_requests_total", "HTTP requests aggregated.", l(&self.requests)),
            ("hearth_ebpf_flushes_total", "Committed flushes of the RED series.", l(&self.flushes)),
            ("hearth_ebpf_flush_failures_total", "Flushes whose commit failed.", l(&self.flush_failures)),
            ("hearth_ebpf_samples_appended_total", "Samples written by flushes.", l(&self.samples_appended)),
            ("hearth_ebpf_samples_rejected_total", "Samples refused by the appender.", l(&self.samples_rejected)),
        ]
    }
}
