//! The usage store: which metrics are read, by whom, and how much, per day.
//!
//! Every query Hearth evaluates (instant, range, series, label names and values, exemplars)
//! reports a [`UsageEvent`]: the metric names it actually selected, the label names it used
//! (matchers, `by`/`without`, `on`/`ignoring`, `label_replace`), who asked ([`Client`]) and what
//! it cost. The store folds events into one [`MetricDayUsage`] per (UTC day, metric name), so its
//! size grows with metrics × days, not with queries, and keeps them durably for
//! [`UsageOptions::retention_days`] (default 90).
//!
//! This module knows no PromQL and no HTTP: resolving a query to metric names is the caller's
//! job (see the server's usage recorder).
//!
//! # Write path and durability
//! [`UsageStore::record`] updates the in-memory aggregate and a *delta* for the same key under
//! one mutex: a few hash-map updates, no I/O, so queries are not slowed down. [`UsageStore::flush`]
//! (called about once a second by the server, and at shutdown) appends the pending deltas to
//! `usage/deltas.log` with one `write(2)`: a crash loses at most the events since the last
//! flush. [`UsageStore::snapshot`] (every few minutes, when the log passes
//! [`UsageOptions::max_log_bytes`], and at shutdown) writes each changed day's complete aggregate
//! to `usage/<day>.sum` (temp file + rename) and empties the log, so the log stays small and
//! start-up reads the summaries plus a short log. Days older than the retention are deleted
//! whole.
//!
//! # Layouts (version 1)
//! Integers are unsigned LEB128 varints unless noted; strings are a varint length then UTF-8.
//! ```text
//! entry      day varint (days since 1970-01-01, UTC) | metric string
//!            | queries | series | samples | duration_us | last_t_ms (zigzag varint)
//!            | n_labels, n_labels × string
//!            | n_clients, n_clients × (client string | count)
//! deltas.log header: magic "HUSL" | version u8 = 1
//!            records: len u32 LE | crc32c u32 LE of payload | payload
//!            payload: n_entries varint, entries (each a delta to add)
//! <day>.sum  magic "HUSS" | version u8 = 1 | crc32c u32 LE of the rest | n_entries varint | entries
//! ```
//! A torn or corrupt log record ends replay of the log (with a warning); everything before it
//! is kept. A corrupt summary file is reported as [`StorageError::Corruption`].

mod codec;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use parking_lot::Mutex;

use crate::error::{Result, StorageError};

pub use codec::{LOG_MAGIC, SUM_MAGIC, USAGE_FORMAT_VERSION};

/// Milliseconds per day.
pub const DAY_MS: i64 = 86_400_000;

/// The UTC day number (days since the epoch) of `t_ms`.
pub fn day_of(t_ms: i64) -> i64 {
    t_ms.div_euclid(DAY_MS)
}

/// What kind of call read the data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReadKind {
    /// `/api/v1/query`.
    InstantQuery,
    /// `/api/v1/query_range`.
    RangeQuery,
    /// `/api/v1/series`.
    Series,
    /// `/api/v1/labels` with `match[]`.
    LabelNames,
    /// `/api/v1/label/<name>/values` with `match[]`.
    LabelValues,
    /// `/api/v1/query_exemplars`.
    Exemplars,
}

/// Who asked: Grafana's headers, the User-Agent and the authenticated user. Empty fields are
/// unknown.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Client {
    /// `X-Dashboard-Uid`.
    pub dashboard_uid: String,
    /// `X-Panel-Id`.
    pub panel_id: String,
    /// `X-Grafana-Org-Id`.
    pub org_id: String,
    /// `X-Grafana-User`.
    pub grafana_user: String,
    /// `X-Rule-Uid` (Grafana-managed alert rules).
    pub rule_uid: String,
    /// `User-Agent`.
    pub user_agent: String,
    /// The user Hearth authenticated (basic auth), if any.
    pub auth_user: String,
}

impl Client {
    /// A short, stable identity for reports: the most specific thing known, e.g.
    /// `dashboard=abc panel=4 org=1`, `rule=xyz`, `user=alice`, or the User-Agent's product.
    pub fn key(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        if !self.dashboard_uid.is_empty() {
            parts.push(format!("dashboard={}", self.dashboard_uid));
            if !self.panel_id.is_empty() {
                parts.push(format!("panel={}", self.panel_id));
            }
        }
        if !self.rule_uid.is_empty() {
            parts.push(format!("rule={}", self.rule_uid));
        }
        if !self.org_id.is_empty() && !parts.is_empty() {
            parts.push(format!("org={}", self.org_id));
        }
        let user = if self.grafana_user.is_empty() { &self.auth_user } else { &self.grafana_user };
        if !user.is_empty() {
            parts.push(format!("user={user}"));
        }
        if parts.is_empty() {
            let product = self.user_agent.split_whitespace().next().unwrap_or("");
            parts.push(if product.is_empty() { "unknown".to_string() } else { format!("agent={product}") });
        }
        parts.join(" ")
    }
}

/// One metric a call read, with the label names it used on it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MetricRead {
    /// The metric name (`__name__`) actually selected.
    pub metric: String,
    /// Label names the call used on it (matchers, grouping, matching, label_replace sources).
    pub labels: Vec<String>,
}

/// One evaluated call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageEvent {
    /// When it ran, ms since the epoch (decides the day).
    pub t_ms: i64,
    /// What kind of call.
    pub kind: ReadKind,
    /// Metrics it read. Empty for calls that read none (autocomplete of all names).
    pub reads: Vec<MetricRead>,
    /// Who asked.
    pub client: Client,
    /// Series the call touched (selected).
    pub series: u64,
    /// Samples the call loaded.
    pub samples: u64,
    /// Evaluation time, microseconds.
    pub duration_us: u64,
}

/// Usage of one metric over one day, or summed over a window.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MetricDayUsage {
    /// Calls that read the metric.
    pub queries: u64,
    /// Series of the calls that read it (summed over calls).
    pub series: u64,
    /// Samples of the calls that read it (summed over calls).
    pub samples: u64,
    /// Evaluation time of those calls, microseconds (summed).
    pub duration_us: u64,
    /// Newest call time, ms (`i64::MIN` if never).
    pub last_t_ms: i64,
    /// Label names used on the metric (at most [`UsageOptions::max_labels_per_metric`]).
    pub labels: BTreeSet<String>,
    /// Calls per client key (at most [`UsageOptions::max_clients_per_metric`]; the rest are
    /// counted under `other`).
    pub clients: BTreeMap<String, u64>,
}

impl MetricDayUsage {
    fn empty() -> Self {
        MetricDayUsage { last_t_ms: i64::MIN, ..Default::default() }
    }

    /// Adds `other` into `self`, keeping the bounds.
    pub fn merge(&mut self, other: &MetricDayUsage, opts: &UsageOptions) {
        self.queries += other.queries;
        self.series += other.series;
        self.samples += other.samples;
        self.duration_us += other.duration_us;
        self.last_t_ms = self.last_t_ms.max(other.last_t_ms);
        for l in &other.labels {
            if self.labels.len() < opts.max_labels_per_metric || self.labels.contains(l) {
                self.labels.insert(l.clone());
            }
        }
        for (c, n) in &other.clients {
            add_client(&mut self.clients, c, *n, opts.max_clients_per_metric);
        }
    }
}

/// The bucket clients beyond the per-metric bound are counted in.
pub const OTHER_CLIENTS: &str = "other";

fn add_client(clients: &mut BTreeMap<String, u64>, key: &str, n: u64, max: usize) {
    if let Some(c) = clients.get_mut(key) {
        *c += n;
    } else if clients.len() < max {
        clients.insert(key.to_string(), n);
    } else {
        *clients.entry(OTHER_CLIENTS.to_string()).or_insert(0) += n;
    }
}

/// Options of a [`UsageStore`]. Every field has a default.
#[derive(Clone, Debug)]
pub struct UsageOptions {
    /// Days of usage kept; older days are deleted whole. Default 90.
    pub retention_days: i64,
    /// Distinct clients kept per metric and day; more are counted as `other`. Default 64.
    pub max_clients_per_metric: usize,
    /// Distinct label names kept per metric and day. Default 256.
    pub max_labels_per_metric: usize,
    /// When the delta log passes this many bytes, [`UsageStore::flush`] also snapshots.
    /// Default 8 MiB.
    pub max_log_bytes: u64,
}

impl Default for UsageOptions {
    fn default() -> Self {
        UsageOptions { retention_days: 90, max_clients_per_metric: 64, max_labels_per_metric: 256, max_log_bytes: 8 << 20 }
    }
}

/// The store. `Send + Sync`; share it as `Arc<UsageStore>`.
pub struct UsageStore {
    dir: PathBuf,
    opts: UsageOptions,
    state: Mutex<State>,
    /// The open delta log; separate from `state` so a flush's write does not block `record`.
    log: Mutex<LogFile>,
}

struct State {
    /// day -> metric -> aggregate.
    days: BTreeMap<i64, HashMap<String, MetricDayUsage>>,
    /// Changes since the last flush, same shape.
    pending: BTreeMap<i64, HashMap<String, MetricDayUsage>>,
    /// Days changed since the last snapshot.
    dirty_days: BTreeSet<i64>,
}

struct LogFile {
    file: File,
    bytes: u64,
}

const LOG_NAME: &str = "deltas.log";

impl UsageStore {
    /// Opens (or creates) the store in `dir`: loads every `<day>.sum`, then replays
    /// `deltas.log` (stopping at a torn record with a warning), then drops days past retention
    /// relative to `now_ms`.
    ///
    /// # Errors
    /// [`StorageError::Io`], or [`StorageError::Corruption`] / [`StorageError::UnsupportedVersion`]
    /// for a damaged or newer summary file.
    pub fn open(dir: impl AsRef<Path>, opts: UsageOptions, now_ms: i64) -> Result<UsageStore> {
        let dir = dir.as_ref().to_path_buf();
        fs::create_dir_all(&dir).map_err(|e| StorageError::io(format!("create {}", dir.display()), e))?;
        let mut days: BTreeMap<i64, HashMap<String, MetricDayUsage>> = BTreeMap::new();
        for (day, path) in list_summaries(&dir)? {
            let bytes = fs::read(&path).map_err(|e| StorageError::io(format!("read {}", path.display()), e))?;
            let entries = codec::decode_summary(&bytes, &path)?;
            let m = days.entry(day).or_default();
            for (_, metric, u) in entries {
                m.entry(metric).or_insert_with(MetricDayUsage::empty).merge(&u, &opts);
            }
        }
        let log_path = dir.join(LOG_NAME);
        let mut dirty_days = BTreeSet::new();
        if let Ok(bytes) = fs::read(&log_path) {
            let (entries, torn_at) = codec::decode_log(&bytes, &log_path)?;
            if let Some(off) = torn_at {
                tracing::warn!(path = %log_path.display(), offset = off, "usage log ends in a torn or corrupt record; dropped the rest");
            }
            for (day, metric, u) in entries {
                days.entry(day).or_default().entry(metric).or_insert_with(MetricDayUsage::empty).merge(&u, &opts);
                dirty_days.insert(day);
            }
        }
        let store = UsageStore {
            log: Mutex::new(LogFile { file: codec::create_log(&log_path, true)?, bytes: 0 }),
            dir,
            opts,
            state: Mutex::new(State { days, pending: BTreeMap::new(), dirty_days }),
        };
        // Fold the replayed log into summaries at once, so the fresh log starts empty.
        store.snapshot(now_ms)?;
        Ok(store)
    }

    /// Records one call. In memory only; durable at the next [`UsageStore::flush`].
    pub fn record(&self, ev: &UsageEvent) {
        self.record_calls(ev, 1);
    }

    /// Records `calls` calls that read the same metrics with the same labels, from the same
    /// client, on the day of `ev.t_ms` (the newest of them): `ev.series`, `ev.samples` and
    /// `ev.duration_us` are their sums. The server's recording worker coalesces a dashboard's
    /// repeated queries this way. In memory only; durable at the next [`UsageStore::flush`].
    pub fn record_calls(&self, ev: &UsageEvent, calls: u64) {
        if ev.reads.is_empty() || calls == 0 {
            return;
        }
        let day = day_of(ev.t_ms);
        let client = ev.client.key();
        let mut delta = MetricDayUsage::empty();
        delta.queries = calls;
        delta.series = ev.series;
        delta.samples = ev.samples;
        delta.duration_us = ev.duration_us;
        delta.last_t_ms = ev.t_ms;
        delta.clients.insert(client, calls);
        let mut guard = self.state.lock();
        let st = &mut *guard;
        for r in &ev.reads {
            let mut d = delta.clone();
            d.labels = r.labels.iter().cloned().collect();
            for map in [&mut st.days, &mut st.pending] {
                map.entry(day)
                    .or_default()
                    .entry(r.metric.clone())
                    .or_insert_with(MetricDayUsage::empty)
                    .merge(&d, &self.opts);
            }
        }
        st.dirty_days.insert(day);
    }

    /// Appends everything recorded since the last flush to the delta log (one write), and
    /// snapshots when the log has grown past [`UsageOptions::max_log_bytes`].
    ///
    /// # Errors
    /// [`StorageError::Io`]; the pending deltas are kept for the next try.
    pub fn flush(&self, now_ms: i64) -> Result<()> {
        let pending = std::mem::take(&mut self.state.lock().pending);
        if pending.is_empty() {
            return Ok(());
        }
        let record = codec::encode_log_record(pending.iter().flat_map(|(d, m)| m.iter().map(move |(k, u)| (*d, k.as_str(), u))));
        let big = {
            let mut log = self.log.lock();
            if let Err(e) = log.file.write_all(&record) {
                drop(log);
                // Put the deltas back (merging with what arrived meanwhile).
                let mut st = self.state.lock();
                for (d, m) in pending {
                    for (k, u) in m {
                        st.pending.entry(d).or_default().entry(k).or_insert_with(MetricDayUsage::empty).merge(&u, &self.opts);
                    }
                }
                return Err(StorageError::io("append usage log", e));
            }
            log.bytes += record.len() as u64;
            log.bytes > self.opts.max_log_bytes
        };
        if big {
            self.snapshot(now_ms)?;
        }
        Ok(())
    }

    /// Writes every changed day's full aggregate to its summary file, empties the delta log,
    /// and deletes days past retention (relative to `now_ms`).
    ///
    /// # Errors
    /// [`StorageError::Io`].
    pub fn snapshot(&self, now_ms: i64) -> Result<()> {
        let mut log = self.log.lock();
        // Pending deltas are in `days` already; after the summaries are written the log may be
        // emptied, so pending deltas are folded in by clearing them now.
        let (to_write, expired) = {
            let mut st = self.state.lock();
            st.pending.clear();
            let oldest_kept = day_of(now_ms) - self.opts.retention_days + 1;
            let expired: Vec<i64> = st.days.range(..oldest_kept).map(|(d, _)| *d).collect();
            for d in &expired {
                st.days.remove(d);
            }
            let dirty = std::mem::take(&mut st.dirty_days);
            let to_write: Vec<(i64, Vec<u8>)> = dirty
                .into_iter()
                .filter(|d| *d >= oldest_kept)
                .filter_map(|d| st.days.get(&d).map(|m| (d, codec::encode_summary(d, m))))
                .collect();
            (to_write, oldest_kept)
        };
        for (day, bytes) in &to_write {
            let path = self.dir.join(format!("{day}.sum"));
            write_atomically(&path, bytes)?;
        }
        *log = LogFile { file: codec::create_log(&self.dir.join(LOG_NAME), true)?, bytes: 0 };
        drop(log);
        for (day, path) in list_summaries(&self.dir)? {
            if day < expired {
                fs::remove_file(&path).map_err(|e| StorageError::io(format!("remove {}", path.display()), e))?;
            }
        }
        Ok(())
    }

    /// Usage per metric name summed over the UTC days `[from_day, to_day]`.
    pub fn usage(&self, from_day: i64, to_day: i64) -> BTreeMap<String, MetricDayUsage> {
        let st = self.state.lock();
        let mut out: BTreeMap<String, MetricDayUsage> = BTreeMap::new();
        for (_, metrics) in st.days.range(from_day..=to_day) {
            for (name, u) in metrics {
                out.entry(name.clone()).or_insert_with(MetricDayUsage::empty).merge(u, &self.opts);
            }
        }
        out
    }

    /// Days that hold usage, oldest first.
    pub fn days(&self) -> Vec<i64> {
        self.state.lock().days.keys().copied().collect()
    }

    /// Bytes the store uses on disk.
    pub fn disk_bytes(&self) -> u64 {
        fs::read_dir(&self.dir)
            .map(|rd| rd.flatten().filter_map(|e| e.metadata().ok()).map(|m| m.len()).sum())
            .unwrap_or(0)
    }
}

/// `(day, path)` of every `<day>.sum` in `dir`.
fn list_summaries(dir: &Path) -> Result<Vec<(i64, PathBuf)>> {
    let rd = fs::read_dir(dir).map_err(|e| StorageError::io(format!("read {}", dir.display()), e))?;
    let mut out = Vec::new();
    for e in rd.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(day) = name.strip_suffix(".sum").and_then(|d| d.parse::<i64>().ok()) {
            out.push((day, e.path()));
        }
    }
    out.sort();
    Ok(out)
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("sum.tmp");
    let io = |what: &str, e| StorageError::io(format!("{what} {}", tmp.display()), e);
    let mut f = File::create(&tmp).map_err(|e| io("create", e))?;
    f.write_all(bytes).map_err(|e| io("write", e))?;
    f.sync_data().map_err(|e| io("sync", e))?;
    fs::rename(&tmp, path).map_err(|e| io("rename", e))?;
    Ok(())
}
