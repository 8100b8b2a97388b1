//! The workload generator: what a Prometheus server scraping a Kubernetes cluster would send
//! over remote-write, deterministic from a seed.
//!
//! # Shape
//!
//! The cluster is built from *nodes*; each node runs `pods_per_node` pods (default 10):
//!
//! - each node is a node-exporter target (`job="node"`, 57 series): `node_cpu_seconds_total
//!   {cpu,mode}` (4 CPUs × 8 modes, counters in 1/100 s as the kernel's USER_HZ), `node_memory_*
//!   _bytes` (page-aligned random-walk gauges), `node_network_{receive,transmit}_{bytes,packets}
//!   _total{device}`, `node_filesystem_{size,free,avail}_bytes{device,mountpoint,fstype}`,
//!   `node_load{1,5,15}`, `node_disk_{read,written}_bytes_total{device}`, `node_boot_time_seconds`;
//! - each pod is an application target (`job=<deployment>`, 75 series): `http_requests_total
//!   {method,code,handler}`, the classic histogram `http_request_duration_seconds_{bucket{le},sum,
//!   count}{handler}` with Prometheus' default buckets, and `process_*`/`go_goroutines`;
//! - and 11 series per pod come from kube-state-metrics (`job="kube-state-metrics"`):
//!   `kube_pod_info`, `kube_pod_status_phase{phase}`, `kube_pod_container_status_{running,ready,
//!   waiting,terminated,restarts_total}`.
//!
//! Targets are added node by node until the configured series count is reached; the last target
//! is cut short so that exactly `series` series are active at every scrape.
//!
//! # Values
//!
//! Counters only grow (by a random-walking rate) except when their pod restarts (probability
//! `restart_probability` per pod and scrape), when they start again from zero; a restart is
//! reported in [`Step::resets`]. Gauges random-walk within bounds with realistic resolution
//! (page-aligned bytes, two decimals for load averages). Histogram buckets are filled from a
//! log-logistic latency distribution whose median random-walks, so buckets are cumulative
//! (monotonic in `le`) at every scrape and `_count` equals the `+Inf` bucket and the sum of
//! `http_requests_total` of the handler.
//!
//! # Time
//!
//! Scrape round `k` covers `[start + k·interval, start + (k+1)·interval)`; each target scrapes at
//! its own fixed offset within the interval (as Prometheus spreads targets), a multiple of 10 ms.
//! Queries evaluated at times ≡ 5 ms (mod 10 ms) therefore never have a sample exactly on a
//! range-window or lookback edge, where Prometheus 2.x (closed-left windows) and others differ.
//!
//! # Churn
//!
//! With `churn_interval_ms`, every pod is replaced once per interval (each pod at its own phase):
//! the old pod's series get a staleness marker (as Prometheus writes when a target disappears)
//! and the new pod's series, with a new name, IP and uid, start from zero.

mod targets;
#[cfg(test)]
mod tests;
mod values;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::error::{BenchError, Result};
pub use targets::{NODE_SERIES, POD_SERIES};
use targets::{NodeTarget, PodTarget};

/// The bit pattern of Prometheus' staleness marker (`value.StaleNaN`).
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// The configuration of a [`Workload`]. Every field has a documented default
/// ([`WorkloadConfig::default`]). Serialized as is (field names are a format: `compare
/// --keep-data` writes it into its metadata file, see [`crate::reuse`]).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct WorkloadConfig {
    /// Seed of every random choice. Same seed and config, same samples. Default 1.
    pub seed: u64,
    /// Number of active series at every scrape (10k to 1M+). Default 10,000.
    pub series: usize,
    /// Scrape interval in ms. Default 15,000.
    pub scrape_interval_ms: i64,
    /// Span of the generated data in ms; the number of scrape rounds is `span / interval`.
    /// Default 3 h.
    pub span_ms: i64,
    /// End of the data (exclusive), t_ms; rounded down to a multiple of the interval. Use now
    /// for "live" data, or a time in the past for backfill.
    pub end_t_ms: i64,
    /// Every pod is replaced once per this many ms; `None` disables churn. Default `None`.
    pub churn_interval_ms: Option<i64>,
    /// Pods per node. Default 10.
    pub pods_per_node: usize,
    /// Probability that a pod restarts (its counters reset) at a given scrape.
    /// Default 1/1440 (about once per 6 h at 15 s).
    pub restart_probability: f64,
}

impl Default for WorkloadConfig {
    fn default() -> Self {
        WorkloadConfig {
            seed: 1,
            series: 10_000,
            scrape_interval_ms: 15_000,
            span_ms: 3 * 3_600_000,
            end_t_ms: 1_700_000_000_000,
            churn_interval_ms: None,
            pods_per_node: 10,
            restart_probability: 1.0 / 1440.0,
        }
    }
}

/// What a series measures: the Prometheus metric type of its family, and for histograms which
/// part of it. Used for remote-write metadata and by the tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// Monotonic counter (`_total`).
    Counter,
    /// Gauge.
    Gauge,
    /// An info-style gauge whose value is always 1 (`kube_pod_info`).
    Info,
    /// A `_bucket` series of a classic histogram.
    HistogramBucket,
    /// The `_sum` series of a classic histogram.
    HistogramSum,
    /// The `_count` series of a classic histogram.
    HistogramCount,
}

/// A series: its labels (sorted by name, `__name__` first) and kind.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesMeta {
    /// Label pairs sorted by name.
    pub labels: Vec<(String, String)>,
    /// What the series measures.
    pub kind: MetricKind,
    /// Index of the target (node or pod slot) that exposes it.
    pub target: u32,
}

impl SeriesMeta {
    /// The value of label `name`, if present.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// Index of a series in [`Workload::series`].
pub type SeriesId = u32;

/// One sample: series, timestamp (t_ms) and value (may be a staleness marker).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// The series.
    pub series: SeriesId,
    /// Timestamp, ms since the epoch.
    pub t_ms: i64,
    /// Value; `f64::from_bits(STALE_NAN_BITS)` marks the series stale.
    pub v: f64,
}

/// The output of one scrape round.
#[derive(Debug, Default)]
pub struct Step {
    /// Samples of every target, target by target; each series appears at most once.
    pub samples: Vec<Sample>,
    /// Targets whose counters reset (pod restarted) in this round.
    pub resets: Vec<u32>,
}

/// Per-target randomness and label context shared by the target generators.
pub(crate) struct Ctx {
    pub(crate) rng: ChaCha8Rng,
    pub(crate) seed: u64,
    pub(crate) interval_s: f64,
    pub(crate) restart_probability: f64,
}

pub(crate) enum Target {
    Node(NodeTarget),
    Pod(PodTarget),
}

/// The generator: call [`Workload::next_step`] until it returns `false`.
pub struct Workload {
    cfg: WorkloadConfig,
    ctx: Ctx,
    targets: Vec<Target>,
    series: Vec<SeriesMeta>,
    start_t_ms: i64,
    steps: u64,
    next: u64,
}

impl Workload {
    /// Builds the cluster for `cfg`.
    ///
    /// # Errors
    /// [`BenchError::Config`] when the series count is 0, the interval is not a positive
    /// multiple of 10 ms, the span is shorter than one interval, or the churn interval is not
    /// positive.
    pub fn new(cfg: WorkloadConfig) -> Result<Self> {
        if cfg.series == 0 || cfg.series > u32::MAX as usize / 4 {
            return Err(BenchError::Config(format!("series must be in 1..=1e9, got {}", cfg.series)));
        }
        if cfg.scrape_interval_ms < 10 || cfg.scrape_interval_ms % 10 != 0 {
            return Err(BenchError::Config("scrape interval must be a positive multiple of 10 ms".into()));
        }
        if cfg.span_ms < cfg.scrape_interval_ms {
            return Err(BenchError::Config("span must be at least one scrape interval".into()));
        }
        if cfg.churn_interval_ms.is_some_and(|c| c < cfg.scrape_interval_ms) {
            return Err(BenchError::Config("churn interval must be at least one scrape interval".into()));
        }
        if cfg.pods_per_node == 0 || !(0.0..=1.0).contains(&cfg.restart_probability) {
            return Err(BenchError::Config("pods per node must be >= 1 and restart probability in [0, 1]".into()));
        }
        let steps = (cfg.span_ms / cfg.scrape_interval_ms) as u64;
        let end = cfg.end_t_ms - cfg.end_t_ms.rem_euclid(cfg.scrape_interval_ms);
        let start_t_ms = end - steps as i64 * cfg.scrape_interval_ms;
        let mut ctx = Ctx {
            rng: ChaCha8Rng::seed_from_u64(cfg.seed),
            seed: cfg.seed,
            interval_s: cfg.scrape_interval_ms as f64 / 1000.0,
            restart_probability: cfg.restart_probability,
        };
        let mut targets = Vec::new();
        let mut series = Vec::new();
        let mut remaining = cfg.series;
        let mut node = 0usize;
        let mut pod_slot = 0usize;
        'build: while remaining > 0 {
            let limit = remaining.min(NODE_SERIES);
            let id = targets.len() as u32;
            targets.push(Target::Node(NodeTarget::new(&mut ctx, id, node, limit, start_t_ms, &mut series)));
            remaining -= limit;
            for _ in 0..cfg.pods_per_node {
                if remaining == 0 {
                    break 'build;
                }
                let limit = remaining.min(POD_SERIES);
                let id = targets.len() as u32;
                let pod = PodTarget::new(&mut ctx, id, pod_slot, node, limit, &cfg, start_t_ms, &mut series);
                targets.push(Target::Pod(pod));
                remaining -= limit;
                pod_slot += 1;
            }
            node += 1;
        }
        Ok(Workload { cfg, ctx, targets, series, start_t_ms, steps, next: 0 })
    }

    /// The configuration.
    pub fn config(&self) -> &WorkloadConfig {
        &self.cfg
    }

    /// Every series created so far (grows with churn), indexed by [`SeriesId`].
    pub fn series(&self) -> &[SeriesMeta] {
        &self.series
    }

    /// Start of the first scrape round, t_ms (a multiple of the interval).
    pub fn start_t_ms(&self) -> i64 {
        self.start_t_ms
    }

    /// End of the last scrape round (exclusive), t_ms.
    pub fn end_t_ms(&self) -> i64 {
        self.start_t_ms + self.steps as i64 * self.cfg.scrape_interval_ms
    }

    /// Number of scrape rounds.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Number of targets (nodes and pod slots).
    pub fn targets(&self) -> usize {
        self.targets.len()
    }

    /// Generates the next scrape round into `out` (cleared first). Returns `false`, leaving
    /// `out` empty, when every round has been generated.
    pub fn next_step(&mut self, out: &mut Step) -> bool {
        out.samples.clear();
        out.resets.clear();
        if self.next >= self.steps {
            return false;
        }
        let round_t_ms = self.start_t_ms + self.next as i64 * self.cfg.scrape_interval_ms;
        for target in &mut self.targets {
            match target {
                Target::Node(n) => n.scrape(&mut self.ctx, round_t_ms, &mut out.samples),
                Target::Pod(p) => p.scrape(&mut self.ctx, round_t_ms, &self.cfg, &mut self.series, out),
            }
        }
        self.next += 1;
        true
    }
}
