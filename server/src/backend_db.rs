//! [`Backend`] over [`storage::db::Db`], and the translation of the configuration into
//! [`DbOptions`]. The only module of the server that names concrete storage types.

use std::collections::BTreeMap;
use std::sync::Arc;

use ingest::remote_write::{Decoder, Limits};
use storage::db::{Db, DbOptions};
use storage::head::HeadOptions;
use storage::metrics::StorageMetrics;
use storage::wal::{FsyncPolicy, WalOptions};
use storage::{Exemplar, Labels, Matcher, Metadata, Querier, StorageError};

use crate::backend::{ingest_request, Backend, TsdbStats, WriteInput, WriteOutcome};
use crate::config::{Config, WalFsync};
use crate::error::ServerError;
use crate::server::Opened;

/// The database options the configuration asks for.
pub fn db_options(c: &Config) -> DbOptions {
    let fsync = match c.storage.wal_fsync {
        WalFsync::Always => FsyncPolicy::Always,
        WalFsync::Interval => FsyncPolicy::Interval(c.storage.wal_fsync_interval),
        WalFsync::Never => FsyncPolicy::Never,
    };
    let nonzero = |n: usize| (n > 0).then_some(n);
    DbOptions {
        head: HeadOptions {
            max_series: nonzero(c.limits.max_active_series),
            max_series_per_metric: nonzero(c.limits.max_series_per_metric),
            wal: WalOptions { fsync, ..WalOptions::default() },
            ..HeadOptions::default()
        },
        retention_ms: c.storage.retention_time.as_millis().min(i64::MAX as u128) as i64,
        retention_bytes: c.storage.retention_size_bytes,
        ..DbOptions::default()
    }
}

/// Opens the database at the configured path and starts its maintenance thread; when the
/// server is ready, hands the database to the admin API (snapshots), usage analytics and the
/// eBPF source.
///
/// # Errors
/// The storage error's message (lock held by another process, corruption, I/O).
pub fn open(c: &Config) -> Result<Opened, String> {
    let db = Db::open(&c.storage.path, db_options(c)).map_err(|e| e.to_string())?;
    db.start_maintenance();
    let for_sources = db.clone();
    Ok(Opened {
        backend: Arc::new(DbBackend(db)),
        on_ready: Box::new(move |state| {
            // The admin API's snapshotter (`POST /api/v1/admin/tsdb/snapshot`).
            state.snapshots.set(Arc::new(for_sources.clone()));
            crate::usage::start(&state.usage, for_sources.clone(), &state.config.usage);
            state.metrics.add_extra(Arc::new(crate::usage::metrics::UsageCollector(state.usage.clone())));
            crate::ebpf::start(state, for_sources);
        }),
    })
}

/// The database as a [`Backend`].
pub struct DbBackend(pub Db);

impl Backend for DbBackend {
    fn querier(&self) -> Result<Arc<dyn Querier>, StorageError> {
        Ok(Arc::new(self.0.querier()))
    }

    fn remote_write(&self, decoder: &mut Decoder, input: WriteInput<'_>, limits: &Limits) -> Result<WriteOutcome, ServerError> {
        ingest_request(self.0.appender(), decoder, input, limits)
    }

    fn metadata(&self, metric: Option<&str>, limit: usize) -> Vec<(String, Metadata)> {
        let all = self.0.head().metadata();
        let it = all.into_iter().filter(|(name, _)| metric.is_none_or(|m| m == name));
        if limit > 0 {
            it.take(limit).collect()
        } else {
            it.collect()
        }
    }

    fn exemplars(&self, matcher_sets: &[Vec<Matcher>], mint_ms: i64, maxt_ms: i64) -> Result<Vec<(Labels, Vec<Exemplar>)>, StorageError> {
        // Selectors may overlap: merge per series, keeping each exemplar once.
        let mut by_series: BTreeMap<Labels, Vec<Exemplar>> = BTreeMap::new();
        for m in matcher_sets {
            for se in self.0.head().exemplars(m, mint_ms, maxt_ms)? {
                let list = by_series.entry(se.labels).or_default();
                for e in se.exemplars {
                    if !list.contains(&e) {
                        list.push(e);
                    }
                }
            }
        }
        for list in by_series.values_mut() {
            list.sort_by_key(|e| e.t_ms);
        }
        Ok(by_series.into_iter().collect())
    }

    fn tsdb_stats(&self, limit: usize) -> TsdbStats {
        let head = self.0.head();
        let m = self.0.metrics();
        let (min_t, max_t) = (head.min_time(), head.max_time());
        let mut out = TsdbStats {
            num_series: head.num_series() as u64,
            chunk_count: StorageMetrics::get(&m.head_chunks),
            num_label_pairs: head.index().num_pairs() as u64,
            // An empty head reports i64::MAX / i64::MIN; Prometheus shows 0 then.
            min_time_ms: if min_t <= max_t { min_t } else { 0 },
            max_time_ms: if min_t <= max_t { max_t } else { 0 },
            ..TsdbStats::default()
        };
        match self.0.head_stats(limit) {
            Ok(st) => {
                let conv = |v: Vec<storage::index::Stat>| v.into_iter().map(|s| (s.name, s.count)).collect();
                out.series_count_by_metric_name = conv(st.series_count_by_metric_name);
                out.label_value_count_by_label_name = conv(st.label_value_count_by_label_name);
                out.memory_in_bytes_by_label_name = conv(st.memory_in_bytes_by_label_name);
                out.series_count_by_label_value_pair = conv(st.series_count_by_label_value_pair);
            }
            Err(e) => tracing::warn!(error = %e, "computing head cardinality statistics failed"),
        }
        out
    }

    fn storage_metrics(&self) -> Arc<StorageMetrics> {
        Arc::clone(self.0.metrics())
    }

    fn close(&self) -> Result<(), StorageError> {
        self.0.close()
    }
}
