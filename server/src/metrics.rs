//! Hearth's own metrics, served on `/metrics` in the OpenMetrics text format
//! (`prometheus-client`; Prometheus scrapes it natively).
//!
//! Server metrics are updated per request (counted once per request, not per sample). The
//! storage engine's numbers are plain atomics in [`storage::metrics::StorageMetrics`], read at
//! scrape time by a collector, so the storage crate needs no metrics library. Counters are
//! registered without `_total`; the encoder appends it (`hearth_samples_ingested_total`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use storage::metrics::{RejectReason, StorageMetrics};

/// The version reported by `hearth_build_info` and `/api/v1/status/buildinfo`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The git revision the binary was built from (12 hex digits), or `unknown`.
pub const REVISION: &str = env!("HEARTH_REVISION");
/// The git branch the binary was built from, or `unknown`.
pub const BRANCH: &str = env!("HEARTH_BRANCH");
/// The rustc version that built the binary.
pub const RUSTC_VERSION: &str = env!("HEARTH_RUSTC_VERSION");

/// Labels of `hearth_samples_rejected_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    /// Why: a storage [`storage::AppendError::reason`] or an ingest validation reason.
    pub reason: String,
}

/// Labels of `hearth_http_requests_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    /// The route pattern (`/api/v1/write`), never the raw path, to bound cardinality.
    pub handler: String,
    /// The status code.
    pub code: String,
}

/// Labels of `hearth_http_request_duration_seconds`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HandlerLabels {
    /// The route pattern.
    pub handler: String,
}

fn duration_histogram() -> Histogram {
    // 1 ms to ~65 s in ×4 steps: remote-write requests take ms, slow queries take seconds.
    Histogram::new(exponential_buckets(0.001, 4.0, 9))
}

/// Server-level metrics and the registry that exports them with the storage numbers.
#[derive(Debug)]
pub struct ServerMetrics {
    registry: Registry,
    /// `hearth_samples_ingested_total`: float samples committed through remote-write.
    pub samples_ingested: Counter,
    /// `hearth_histograms_ingested_total`: native histogram samples committed.
    pub histograms_ingested: Counter,
    /// `hearth_exemplars_ingested_total`: exemplars committed.
    pub exemplars_ingested: Counter,
    /// `hearth_samples_rejected_total{reason}`: samples refused (validation, order, limits).
    pub samples_rejected: Family<ReasonLabels, Counter>,
    /// `hearth_http_requests_total{handler,code}`.
    pub http_requests: Family<HttpLabels, Counter>,
    /// `hearth_http_request_duration_seconds{handler}`.
    pub http_duration: Family<HandlerLabels, Histogram, fn() -> Histogram>,
    /// `hearth_queries_in_flight`: queries being evaluated.
    pub queries_in_flight: Gauge,
    /// `hearth_ready`: 1 once storage is open and the WAL replayed.
    pub ready: Gauge,
    storage: Arc<OnceLock<Arc<StorageMetrics>>>,
    extra: Arc<RwLock<Vec<Arc<dyn ExtraCollector>>>>,
}

/// A further source of metrics registered after startup (the eBPF source, the usage queue). Encodes itself into
/// the same exposition.
pub trait ExtraCollector: std::fmt::Debug + Send + Sync + 'static {
    /// Writes the source's metric families.
    ///
    /// # Errors
    /// Formatting errors of the encoder.
    fn encode(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error>;
}

impl Default for ServerMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl ServerMetrics {
    /// Registers every family. Storage numbers appear once [`ServerMetrics::set_storage`] is
    /// called (after the database is open).
    pub fn new() -> ServerMetrics {
        let mut registry = Registry::default();
        let samples_ingested = Counter::default();
        let histograms_ingested = Counter::default();
        let exemplars_ingested = Counter::default();
        let samples_rejected = Family::<ReasonLabels, Counter>::default();
        let http_requests = Family::<HttpLabels, Counter>::default();
        let http_duration: Family<HandlerLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(duration_histogram);
        let queries_in_flight = Gauge::default();
        let ready = Gauge::default();
        registry.register(
            "hearth_samples_ingested",
            "Float samples committed through remote-write",
            samples_ingested.clone(),
        );
        registry.register(
            "hearth_histograms_ingested",
            "Native histogram samples committed through remote-write",
            histograms_ingested.clone(),
        );
        registry.register(
            "hearth_exemplars_ingested",
            "Exemplars committed through remote-write",
            exemplars_ingested.clone(),
        );
        registry.register(
            "hearth_samples_rejected",
            "Samples, histograms and series refused by ingest validation or storage, by reason",
            samples_rejected.clone(),
        );
        registry.register("hearth_http_requests", "HTTP requests by handler and status code", http_requests.clone());
        registry.register(
            "hearth_http_request_duration_seconds",
            "HTTP request latency by handler",
            http_duration.clone(),
        );
        registry.register("hearth_queries_in_flight", "Queries being evaluated", queries_in_flight.clone());
        registry.register("hearth_ready", "1 when storage is open and the WAL is replayed", ready.clone());
        let build_info = Family::<Vec<(String, String)>, Gauge>::default();
        build_info
            .get_or_create(&vec![
                ("version".to_string(), VERSION.to_string()),
                ("revision".to_string(), REVISION.to_string()),
                ("branch".to_string(), BRANCH.to_string()),
                ("rustversion".to_string(), RUSTC_VERSION.to_string()),
            ])
            .set(1);
        registry.register("hearth_build_info", "Build information; the value is 1", build_info);
        let storage = Arc::new(OnceLock::new());
        let extra = Arc::new(RwLock::new(Vec::new()));
        registry.register_collector(Box::new(StorageCollector { storage: storage.clone(), extra: extra.clone() }));
        ServerMetrics {
            registry,
            samples_ingested,
            histograms_ingested,
            exemplars_ingested,
            samples_rejected,
            http_requests,
            http_duration,
            queries_in_flight,
            ready,
            storage,
            extra,
        }
    }

    /// Starts exporting the storage engine's numbers (once; later calls are ignored).
    pub fn set_storage(&self, m: Arc<StorageMetrics>) {
        let _ = self.storage.set(m);
    }

    /// Starts exporting a further source; sources are encoded in the order they were added.
    pub fn add_extra(&self, c: Arc<dyn ExtraCollector>) {
        self.extra.write().unwrap_or_else(|e| e.into_inner()).push(c);
    }

    /// Counts `n` refusals for `reason`.
    pub fn reject(&self, reason: &str, n: u64) {
        if n > 0 {
            self.samples_rejected.get_or_create(&ReasonLabels { reason: reason.to_string() }).inc_by(n);
        }
    }

    /// Records one finished HTTP request.
    pub fn observe_request(&self, handler: &str, code: u16, seconds: f64) {
        self.http_requests
            .get_or_create(&HttpLabels { handler: handler.to_string(), code: code.to_string() })
            .inc();
        self.http_duration
            .get_or_create(&HandlerLabels { handler: handler.to_string() })
            .observe(seconds);
    }

    /// The exposition in OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        // Encoding into a String cannot fail; an error would only come from a collector.
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            tracing::warn!("encoding /metrics failed");
        }
        out
    }
}

/// Reads [`StorageMetrics`] at scrape time.
#[derive(Debug)]
struct StorageCollector {
    storage: Arc<OnceLock<Arc<StorageMetrics>>>,
    extra: Arc<RwLock<Vec<Arc<dyn ExtraCollector>>>>,
}

fn get(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

fn counter(enc: &mut DescriptorEncoder, name: &str, help: &str, v: u64) -> Result<(), std::fmt::Error> {
    let c = ConstCounter::new(v);
    c.encode(enc.encode_descriptor(name, help, None, MetricType::Counter)?)
}

fn counter_f64(enc: &mut DescriptorEncoder, name: &str, help: &str, v: f64) -> Result<(), std::fmt::Error> {
    let c = ConstCounter::new(v);
    c.encode(enc.encode_descriptor(name, help, None, MetricType::Counter)?)
}

fn gauge(enc: &mut DescriptorEncoder, name: &str, help: &str, v: i64) -> Result<(), std::fmt::Error> {
    let g = ConstGauge::new(v);
    g.encode(enc.encode_descriptor(name, help, None, MetricType::Gauge)?)
}

fn gauge_f64(enc: &mut DescriptorEncoder, name: &str, help: &str, v: f64) -> Result<(), std::fmt::Error> {
    let g = ConstGauge::new(v);
    g.encode(enc.encode_descriptor(name, help, None, MetricType::Gauge)?)
}

impl Collector for StorageCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for x in self.extra.read().unwrap_or_else(|e| e.into_inner()).iter() {
            x.encode(&mut enc)?;
        }
        let Some(m) = self.storage.get() else { return Ok(()) };
        let e = &mut enc;
        gauge(e, "hearth_head_series", "Series in the head block", get(&m.head_series) as i64)?;
        counter(e, "hearth_head_series_created", "Series created in the head", get(&m.head_series_created))?;
        counter(e, "hearth_head_series_removed", "Series garbage-collected from the head", get(&m.head_series_removed))?;
        {
            let mut me = e.encode_descriptor(
                "hearth_head_samples_appended",
                "Samples appended to the head, by type",
                None,
                MetricType::Counter,
            )?;
            for (ty, c) in [("float", &m.samples_appended), ("histogram", &m.histograms_appended)] {
                ConstCounter::new(get(c)).encode(me.encode_family(&[("type", ty)])?)?;
            }
        }
        counter(e, "hearth_head_exemplars_appended", "Exemplars appended to the head", get(&m.exemplars_appended))?;
        {
            let mut me = e.encode_descriptor(
                "hearth_head_samples_rejected",
                "Samples the head refused, by reason",
                None,
                MetricType::Counter,
            )?;
            for (r, name) in RejectReason::ALL {
                ConstCounter::new(get(&m.samples_rejected[r as usize])).encode(me.encode_family(&[("reason", name)])?)?;
            }
        }
        gauge(e, "hearth_head_chunks", "Chunks in the head, open and memory-mapped", get(&m.head_chunks) as i64)?;
        counter(e, "hearth_head_chunks_created", "Chunks created in the head", get(&m.head_chunks_created))?;
        // The time bounds are i64 ms stored in a u64 atomic; reinterpret the bits.
        gauge(e, "hearth_head_min_time_ms", "Lowest timestamp in the head, ms since the epoch", get(&m.head_min_time_ms) as i64)?;
        gauge(e, "hearth_head_max_time_ms", "Highest timestamp in the head, ms since the epoch", get(&m.head_max_time_ms) as i64)?;
        counter(e, "hearth_wal_written_bytes", "Bytes written to the WAL", get(&m.wal_bytes_written))?;
        counter(e, "hearth_wal_fsyncs", "WAL fsync calls", get(&m.wal_fsyncs))?;
        counter_f64(
            e,
            "hearth_wal_fsync_duration_seconds",
            "Time spent in WAL fsync",
            get(&m.wal_fsync_micros) as f64 / 1e6,
        )?;
        gauge(e, "hearth_wal_segments", "WAL segment files", get(&m.wal_segments) as i64)?;
        counter(e, "hearth_wal_corruptions", "Torn or corrupt WAL records dropped at replay", get(&m.wal_corruptions))?;
        gauge_f64(
            e,
            "hearth_wal_replay_duration_seconds",
            "Duration of the last WAL replay",
            get(&m.wal_replay_millis) as f64 / 1e3,
        )?;
        counter(e, "hearth_checkpoints", "WAL checkpoints written", get(&m.checkpoints))?;
        gauge(e, "hearth_blocks_loaded", "Persistent blocks loaded", get(&m.blocks_loaded) as i64)?;
        gauge(e, "hearth_storage_blocks_bytes", "Bytes of all blocks on disk", get(&m.blocks_bytes) as i64)?;
        counter(e, "hearth_compactions", "Compactions run", get(&m.compactions))?;
        counter(e, "hearth_compactions_failed", "Compactions that failed", get(&m.compactions_failed))?;
        counter_f64(
            e,
            "hearth_compaction_duration_seconds",
            "Time spent compacting",
            get(&m.compaction_millis) as f64 / 1e3,
        )?;
        {
            let mut me =
                e.encode_descriptor("hearth_blocks_deleted", "Blocks deleted, by reason", None, MetricType::Counter)?;
            ConstCounter::new(get(&m.blocks_deleted_retention)).encode(me.encode_family(&[("reason", "retention")])?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_has_the_required_families() {
        let m = ServerMetrics::new();
        m.samples_ingested.inc_by(3);
        m.reject("out_of_order", 2);
        m.observe_request("/api/v1/write", 204, 0.002);
        let sm = Arc::new(StorageMetrics::default());
        sm.head_series.store(7, Ordering::Relaxed);
        sm.samples_rejected[RejectReason::DuplicateTimestamp as usize].store(4, Ordering::Relaxed);
        m.set_storage(sm);
        let text = m.encode();
        for needle in [
            "hearth_samples_ingested_total 3",
            "hearth_samples_rejected_total{reason=\"out_of_order\"} 2",
            "hearth_http_requests_total{handler=\"/api/v1/write\",code=\"204\"} 1",
            "hearth_http_request_duration_seconds_count{handler=\"/api/v1/write\"} 1",
            "hearth_build_info{version=\"",
            "hearth_head_series 7",
            "hearth_head_samples_rejected_total{reason=\"duplicate_timestamp\"} 4",
            "# EOF",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in\n{text}");
        }
    }
}
