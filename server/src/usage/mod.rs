//! Usage analytics: which metrics are read, by whom and how often, what each costs, and which
//! are unused.
//!
//! - [`queue`]: the bounded queue the query handlers push each call onto (O(1), never
//!   blocking; a full queue drops and counts) and the worker thread that records them.
//! - [`recorder`]: [`recorder::UsageRecorder`], run by that worker; resolves a call to the
//!   metric names it actually selected and records a [`storage::usage::UsageEvent`] in the
//!   durable [`storage::usage::UsageStore`].
//! - [`info`]: what `info()` reads beyond its written selectors.
//! - [`metrics`]: the queue's counters for `/metrics`.
//! - [`analyze`]: static analysis of Grafana dashboards and Prometheus rule files
//!   (`hearth analyze`), persisted as `static_refs.json` in the usage directory.
//! - [`cost`]: series, samples/s and bytes per metric from the head and blocks.
//! - [`report`]: the usage and unused-metrics reports (JSON, CSV, relabel snippet).
//! - [`http`]: `GET /api/v1/status/metric_usage` and `GET /api/v1/status/unused_metrics`.
//! - [`cli`]: `hearth analyze` and `hearth usage` (a table from a running server's API).
//!
//! [`UsageService`] ties them together for the server: it owns the store, the recorder, the
//! static references and the per-block cost cache, flushes the store about once a second and
//! writes `hearth_metric_queries_total{metric="..."}` counters into the database every
//! [`UsageConfig::export_interval`] (ordinary series, so Grafana graphs them next to
//! everything else; one series per metric name read).

pub mod analyze;
pub mod cli;
pub mod cost;
pub mod http;
pub mod info;
pub mod metrics;
pub mod queue;
pub mod recorder;
pub mod report;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use serde::Deserialize;
use storage::db::Db;
use storage::usage::{day_of, UsageOptions, UsageStore};
use storage::{Appender, Labels, Matcher, MatchOp, Querier, StorageError, METRIC_NAME};

use analyze::StaticRefs;
use cost::CostCache;
use queue::RecordQueue;
use recorder::{PendingCall, UsageRecorder};
use report::MetricUsageRow;

/// How long a report waits for queued calls to be recorded.
pub const REPORT_SYNC_TIMEOUT: Duration = Duration::from_secs(10);

/// The name of the exported usage counter.
pub const QUERIES_METRIC: &str = "hearth_metric_queries_total";

/// Errors of the usage module.
#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    /// The usage store or the database failed.
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A file's contents are not what was expected.
    #[error("{path}: {message}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A request parameter is invalid.
    #[error("{0}")]
    BadParam(String),
}

/// The `usage:` section of the configuration file. Every field has a default.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct UsageConfig {
    /// Record usage at all. Default true.
    pub enabled: bool,
    /// Where the usage store lives. Default `<storage.path>/usage`.
    pub dir: Option<PathBuf>,
    /// Days of usage kept. Default 90.
    pub retention_days: i64,
    /// Grafana dashboards (a directory of JSON files, searched recursively) analysed at start.
    pub grafana_dashboards: Option<PathBuf>,
    /// Prometheus rule files analysed at start.
    pub rule_files: Vec<PathBuf>,
    /// How often `hearth_metric_queries_total` is written into the database, seconds.
    /// Default 15 (a scrape interval: one sample per read metric per interval).
    pub export_interval_seconds: u64,
    /// Calls waiting to be recorded at most; beyond it calls are dropped (and counted), never
    /// waited for. Default [`queue::DEFAULT_QUEUE_CAPACITY`] (4096).
    pub queue_capacity: usize,
}

impl Default for UsageConfig {
    fn default() -> Self {
        UsageConfig {
            enabled: true,
            dir: None,
            retention_days: 90,
            grafana_dashboards: None,
            rule_files: Vec::new(),
            export_interval_seconds: 15,
            queue_capacity: queue::DEFAULT_QUEUE_CAPACITY,
        }
    }
}

impl UsageConfig {
    /// The usage directory for a database at `data_dir`.
    pub fn dir_for(&self, data_dir: &Path) -> PathBuf {
        self.dir.clone().unwrap_or_else(|| data_dir.join("usage"))
    }

    /// [`UsageConfig::export_interval_seconds`] as a duration (at least one second).
    pub fn export_interval(&self) -> Duration {
        Duration::from_secs(self.export_interval_seconds.max(1))
    }
}

/// Milliseconds since the epoch, now.
pub fn now_ms() -> i64 {
    storage::db::now_ms()
}

/// Parses a report window such as `1d`, `30d`, `12h` into milliseconds (Prometheus duration
/// syntax).
///
/// # Errors
/// [`UsageError::BadParam`] for an unparsable or zero window.
pub fn parse_window(s: &str) -> Result<i64, UsageError> {
    let d = crate::units::parse_duration(s).map_err(|e| UsageError::BadParam(format!("invalid window {s:?}: {}", e.0)))?;
    let ms = d.as_millis().min(i64::MAX as u128) as i64;
    if ms <= 0 {
        return Err(UsageError::BadParam(format!("invalid window {s:?}: must be positive")));
    }
    Ok(ms)
}

/// The usage subsystem of a running server. `Send + Sync`; share as `Arc`.
pub struct UsageService {
    db: Db,
    dir: PathBuf,
    recorder: Arc<UsageRecorder>,
    /// Calls handed over by the handlers, recorded by its worker thread.
    queue: RecordQueue,
    /// `static_refs.json` (from `hearth analyze`) merged with the configured paths' analysis;
    /// replaced whole on reload.
    static_refs: RwLock<StaticRefs>,
    /// From the configuration, analysed at open and on reload.
    config_refs: StaticRefs,
    costs: CostCache,
    export_interval_ms: i64,
    last_export_ms: parking_lot::Mutex<i64>,
    /// The background flusher, aborted by [`stop`].
    background: parking_lot::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl std::fmt::Debug for UsageService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UsageService").field("dir", &self.dir).field("cached_blocks", &self.costs.cached_blocks()).finish()
    }
}

/// Opens the usage service for `db` as `cfg` says, publishes it into `slot` and starts its
/// background flusher. Call from within the Tokio runtime (the blocking pool is fine). A
/// failure is logged and the server runs without usage analytics: they must never keep the
/// database from serving.
pub fn start(slot: &http::UsageSlot, db: Db, cfg: &UsageConfig) {
    if !cfg.enabled {
        tracing::info!("usage analytics disabled");
        return;
    }
    match UsageService::open(db, cfg, now_ms()) {
        Ok(svc) => {
            let svc = Arc::new(svc);
            let h = svc.spawn_background();
            *svc.background.lock() = Some(h);
            tracing::info!(dir = %svc.dir().display(), "usage analytics recording");
            let _ = slot.set(svc);
        }
        Err(e) => tracing::error!(error = %e, "usage analytics not started; continuing without them"),
    }
}

/// Records the queued calls, stops the worker and the background flusher and makes recorded
/// usage durable; call at shutdown, before the database closes.
pub fn stop(slot: &http::UsageSlot) {
    if let Some(svc) = slot.get() {
        svc.queue.stop();
        if let Some(h) = svc.background.lock().take() {
            h.abort();
        }
        if let Err(e) = svc.close(now_ms()) {
            tracing::error!(error = %e, "saving usage at shutdown failed");
        }
    }
}

impl UsageService {
    /// Opens the usage store in `cfg`'s directory (default `<db dir>/usage`), loads
    /// `static_refs.json` and analyses the configured dashboards and rule files.
    ///
    /// Also starts the recording worker ([`queue`]), stopped when the service is dropped or
    /// by [`stop`].
    ///
    /// # Errors
    /// [`UsageError`] if the store cannot be opened, `static_refs.json` is unreadable or the
    /// worker thread cannot be spawned.
    pub fn open(db: Db, cfg: &UsageConfig, now_ms: i64) -> Result<UsageService, UsageError> {
        let dir = cfg.dir_for(db.dir());
        let opts = UsageOptions { retention_days: cfg.retention_days.max(1), ..UsageOptions::default() };
        let store = Arc::new(UsageStore::open(&dir, opts, now_ms)?);
        let mut config_refs = StaticRefs { generated_t_ms: now_ms, files: Vec::new() };
        if let Some(d) = &cfg.grafana_dashboards {
            for p in analyze::dashboard_files(d)? {
                config_refs.files.push(analyze::analyze_dashboard_file(&p));
            }
        }
        for p in &cfg.rule_files {
            config_refs.files.push(analyze::analyze_rule_file(p));
        }
        for f in &config_refs.files {
            for e in &f.errors {
                tracing::warn!(file = %f.path, error = %e, "usage: static analysis problem");
            }
        }
        let recorder = Arc::new(UsageRecorder::new(store));
        let queue = RecordQueue::start(Arc::clone(&recorder), db.clone(), cfg.queue_capacity)
            .map_err(|source| UsageError::Io { path: dir.clone(), source })?;
        let svc = UsageService {
            db,
            recorder,
            queue,
            static_refs: RwLock::new(StaticRefs::default()),
            config_refs,
            costs: CostCache::default(),
            export_interval_ms: cfg.export_interval().as_millis() as i64,
            last_export_ms: parking_lot::Mutex::new(now_ms),
            background: parking_lot::Mutex::new(None),
            dir,
        };
        svc.reload_static_refs()?;
        Ok(svc)
    }

    /// Re-reads `static_refs.json` (after a `hearth analyze` run).
    ///
    /// # Errors
    /// [`UsageError`] for an unreadable file; the previous references are kept.
    pub fn reload_static_refs(&self) -> Result<(), UsageError> {
        let mut refs = StaticRefs::load(&self.dir)?.unwrap_or_default();
        refs.files.extend(self.config_refs.files.iter().cloned());
        *self.static_refs.write() = refs;
        Ok(())
    }

    /// The recorder the handlers call.
    pub fn recorder(&self) -> &Arc<UsageRecorder> {
        &self.recorder
    }

    /// The queue the handlers push calls onto.
    pub fn queue(&self) -> &RecordQueue {
        &self.queue
    }

    /// Hands `call` to the recording worker: O(1), never blocks; false (counted as dropped)
    /// when the queue is full.
    pub fn submit(&self, call: PendingCall) -> bool {
        self.queue.push(call)
    }

    /// The usage directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The database.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Makes recorded usage durable ([`UsageStore::flush`]) and, when the export interval has
    /// passed, writes one `hearth_metric_queries_total{metric=...}` sample per metric read
    /// since start into the database, at `now_ms`.
    ///
    /// # Errors
    /// [`UsageError::Storage`] from the store or the append.
    pub fn flush(&self, now_ms: i64) -> Result<(), UsageError> {
        self.recorder.store().flush(now_ms)?;
        let due = {
            let mut last = self.last_export_ms.lock();
            let due = now_ms - *last >= self.export_interval_ms;
            if due {
                *last = now_ms;
            }
            due
        };
        if due {
            self.export_counters(now_ms)?;
        }
        Ok(())
    }

    /// Writes the counters now, whatever the interval.
    ///
    /// # Errors
    /// [`UsageError::Storage`] from the append or commit.
    pub fn export_counters(&self, now_ms: i64) -> Result<(), UsageError> {
        let counters = self.recorder.counters();
        if counters.is_empty() {
            return Ok(());
        }
        let mut app = self.db.appender();
        for (metric, n) in &counters {
            let labels = Labels::from_pairs([(METRIC_NAME, QUERIES_METRIC), ("metric", metric.as_str())]);
            if let Err(e) = app.append_labels(&labels, now_ms, *n as f64) {
                // One refused sample (say, out of order after a clock step) must not lose the rest.
                tracing::debug!(error = %e, metric = %metric, "usage counter sample refused");
            }
        }
        app.commit()?;
        Ok(())
    }

    /// Flushes and writes each changed day's summary; call at shutdown.
    ///
    /// # Errors
    /// [`UsageError::Storage`].
    pub fn close(&self, now_ms: i64) -> Result<(), UsageError> {
        self.recorder.store().flush(now_ms)?;
        self.recorder.store().snapshot(now_ms)?;
        Ok(())
    }

    /// Starts the background task: flush every second, snapshot every 5 minutes, until the
    /// returned handle is aborted or the runtime stops. Call [`UsageService::close`] after.
    pub fn spawn_background(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let svc = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut n: u64 = 0;
            loop {
                tick.tick().await;
                n += 1;
                let s = Arc::clone(&svc);
                let r = tokio::task::spawn_blocking(move || {
                    let now = now_ms();
                    s.flush(now)?;
                    if n.is_multiple_of(300) {
                        s.recorder.store().snapshot(now)?;
                    }
                    Ok::<(), UsageError>(())
                })
                .await;
                match r {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::warn!(error = %e, "usage flush failed; retrying"),
                    Err(e) => tracing::warn!(error = %e, "usage flush task failed"),
                }
            }
        })
    }

    /// Metric names the static references select: the literal names plus the open selectors
    /// resolved against the index.
    pub fn referenced(&self) -> BTreeSet<String> {
        let refs = self.static_refs.read();
        let mut out = refs.metrics();
        let q = self.db.querier();
        for s in refs.open_selectors() {
            let mut ms = Vec::new();
            for (n, op, v) in &s.matchers {
                let op = match op.as_str() {
                    "=" => MatchOp::Equal,
                    "!=" => MatchOp::NotEqual,
                    "=~" => MatchOp::RegexMatch,
                    _ => MatchOp::RegexNoMatch,
                };
                if let Ok(m) = Matcher::new(op, n.clone(), v.clone()) {
                    ms.push(m);
                }
            }
            // A selector left with no matcher (all were on variables) cannot be resolved:
            // it would mark every metric used.
            if ms.is_empty() {
                continue;
            }
            out.extend(q.label_values(METRIC_NAME, &ms, i64::MIN, i64::MAX).unwrap_or_default());
        }
        out
    }

    /// One row per metric in storage over the window of `window_ms` ending at `now_ms` (whole
    /// UTC days: the window covers the days from `day_of(now - window)` to today).
    ///
    /// # Errors
    /// [`UsageError::Storage`] from the cost computation.
    ///
    /// Waits (at most [`REPORT_SYNC_TIMEOUT`]) until the calls queued before it are recorded,
    /// so a report includes every call answered before it was asked for.
    pub fn rows(&self, window_ms: i64, now_ms: i64) -> Result<Vec<MetricUsageRow>, UsageError> {
        if !self.queue.sync(REPORT_SYNC_TIMEOUT) {
            tracing::warn!("usage report: queued calls not all recorded in time; reporting without them");
        }
        let costs = cost::costs(&self.db, &self.costs)?;
        let usage = self.usage_in(window_ms, now_ms);
        Ok(report::rows(&costs, &usage, &self.referenced()))
    }

    /// Recorded usage per metric over the window.
    pub fn usage_in(&self, window_ms: i64, now_ms: i64) -> BTreeMap<String, storage::usage::MetricDayUsage> {
        let from_t = now_ms.saturating_sub(window_ms);
        let mut m = self.recorder.store().usage(day_of(from_t), day_of(now_ms));
        // The store keeps whole days: a metric whose newest read in those days is older than
        // the window's start was not read in the window. Counts of a metric read both before
        // and inside the window include the first day's earlier reads.
        m.retain(|_, u| u.last_t_ms >= from_t);
        m
    }
}
