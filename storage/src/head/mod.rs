//! The in-memory head block: the newest data, written through [`HeadAppender`] and read
//! through [`HeadQuerier`], made durable by the WAL and bounded in memory by the chunk store.
//!
//! # Design
//!
//! - **Series** (`series.rs`): a canonical label set maps to a dense `u32` id, which is its
//!   [`SeriesRef`] and its id in the postings ([`MemIndex`], roaring bitmaps). Series hold
//!   interned symbol ids, not strings. Lookups by label hash go through 256 read-locked shards;
//!   each series has its own small mutex for its chunk state, so appenders on many threads do
//!   not serialise on one lock. Ids are never reused: after garbage collection a label set
//!   that comes back gets a new id.
//! - **Write path** ([`append`]): an appender validates each sample against its series at once
//!   (Prometheus' order rules), buffers it, and at commit writes all records with one WAL
//!   `write()` (fsync per [`FsyncPolicy`]), then appends to the series' open chunks. A series
//!   definition is logged when the series is created, ahead of the next commit.
//! - **Chunks**: a series' open chunk is cut at [`crate::chunkenc::SAMPLES_PER_CHUNK`] samples
//!   (histograms: also at [`crate::chunkenc::HISTOGRAM_CHUNK_TARGET_BYTES`]), on a change of
//!   sample type, and at every multiple of the block range (`chunk_range_ms`, default 2 h), so no
//!   chunk spans two block ranges. Full chunks go to the mmap'd `chunks_head/` files; the
//!   series keeps only a reference and the time bounds.
//! - **Counter-reset hints** (`hints.rs`): each native-histogram sample is stored with the
//!   hint a Prometheus head would report for it (reset detected against the previous sample,
//!   not-reset inside a chunk, unknown at a chunk start or layout change, gauge).
//! - **Read path** ([`read`]): postings for matchers, series sorted by labels, handles to the
//!   mmap'd chunks plus a snapshot of the open chunk, clipped by [`crate::SeriesIterator`].
//! - **Replay** ([`replay`]): on open, the chunk files are scanned for each series' full
//!   chunks, then the newest WAL checkpoint and segments rebuild series, index, metadata,
//!   exemplars and open chunks (skipping samples already in an mmap'd chunk).
//! - **Lower bound and compaction**: [`Head::set_min_valid_time`] refuses older appends and
//!   waits for commits in flight (commits re-check the bound and drop older samples, as
//!   Prometheus' `headAppender.Commit` does), so [`Head::series_chunks`] afterwards sees the
//!   complete range; reads keep showing the range until [`Head::truncate`].
//! - **Truncation** ([`gc`]): [`Head::truncate`] drops chunks before a time, garbage-collects
//!   series left without data, raises the lower bound, checkpoints the WAL (the checkpoint
//!   carries the bound, so it survives a restart) and removes chunk files no longer needed.
//!
//! # Directory layout
//! ```text
//! <dir>/wal/          WAL segments and checkpoints (see crate::wal)
//! <dir>/chunks_head/  mmap'd chunk segment files (see crate::chunks)
//! ```

pub mod append;
mod chunk_store;
mod label_table;
pub mod exemplars;
pub mod gc;
pub mod read;
pub mod replay;
pub(crate) mod series;
mod hints;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use crate::api::{Metadata, SeriesRef};
use crate::error::{AppendError, Result, StorageError};
use crate::index::{postings_for_matchers, MemIndex, Symbols};
use crate::labels::{Labels, LabelsError};
use crate::matcher::Matcher;
use crate::metrics::StorageMetrics;
use crate::wal::{FsyncPolicy, WalOptions, WalWriter};

pub use append::HeadAppender;
pub use exemplars::{SeriesExemplars, DEFAULT_MAX_EXEMPLARS};
pub use gc::TruncateStats;
pub use read::{HeadQuerier, HeadSeriesChunks};
pub use replay::ReplayInfo;

use chunk_store::ChunkStore;
use exemplars::ExemplarStore;
use series::{CutPolicy, MemSeries, SeriesMaps};

/// Default block range: 2 hours in ms. Chunks never span a multiple of it.
pub const DEFAULT_CHUNK_RANGE_MS: i64 = 7_200_000;

/// Options of a [`Head`]. Every field has a default (see [`HeadOptions::default`]).
#[derive(Clone, Debug)]
pub struct HeadOptions {
    /// Block range, ms: open chunks are cut at its multiples since the epoch. Default 2 h
    /// (7,200,000).
    pub chunk_range_ms: i64,
    /// Float samples per chunk before it is cut. Default
    /// [`crate::chunkenc::SAMPLES_PER_CHUNK`] (120).
    pub samples_per_chunk: usize,
    /// Maximum number of series in the head; creating one more is
    /// [`AppendError::SeriesLimitTotal`]. Default `None` (unlimited).
    pub max_series: Option<usize>,
    /// Maximum number of series per metric name; [`AppendError::SeriesLimitPerMetric`].
    /// Default `None` (unlimited).
    pub max_series_per_metric: Option<usize>,
    /// How far past the wall clock a sample may be, ms; later is
    /// [`AppendError::TooFarInFuture`]. Default `None` (no limit, as Prometheus).
    pub max_future_ms: Option<i64>,
    /// The initial lower bound: samples older are [`AppendError::OutOfBounds`]. The database
    /// sets it to the newest block's max time. Default `i64::MIN`.
    pub min_valid_t_ms: i64,
    /// Capacity of the exemplar ring buffer. Default [`DEFAULT_MAX_EXEMPLARS`] (100,000);
    /// 0 disables exemplar storage.
    pub max_exemplars: usize,
    /// WAL segment size and fsync policy. Default 128 MiB, [`FsyncPolicy::Always`].
    pub wal: WalOptions,
    /// Where the head publishes its counters. Default: a fresh set.
    pub metrics: Arc<StorageMetrics>,
}

impl Default for HeadOptions {
    fn default() -> Self {
        HeadOptions {
            chunk_range_ms: DEFAULT_CHUNK_RANGE_MS,
            samples_per_chunk: crate::chunkenc::SAMPLES_PER_CHUNK,
            max_series: None,
            max_series_per_metric: None,
            max_future_ms: None,
            min_valid_t_ms: i64::MIN,
            max_exemplars: DEFAULT_MAX_EXEMPLARS,
            wal: WalOptions { fsync: FsyncPolicy::Always, ..WalOptions::default() },
            metrics: Arc::new(StorageMetrics::default()),
        }
    }
}

/// The head block. Cheap to clone (an `Arc`); `Send + Sync`; appenders and queriers may be
/// used from many threads at once.
#[derive(Clone)]
pub struct Head {
    inner: Arc<HeadInner>,
}

/// Resident memory of the head, estimated from its structures, bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HeadMemory {
    /// Series structs, their interned labels and chunk state (open chunks included).
    pub series_bytes: usize,
    /// The two series maps.
    pub maps_bytes: usize,
    /// Postings.
    pub index_bytes: usize,
    /// Interned strings.
    pub symbols_bytes: usize,
    /// Number of series.
    pub series: usize,
}

impl HeadMemory {
    /// Total bytes.
    pub fn total_bytes(&self) -> usize {
        self.series_bytes + self.maps_bytes + self.index_bytes + self.symbols_bytes
    }
}

pub(crate) struct HeadInner {
    pub dir: PathBuf,
    pub opts: HeadOptions,
    pub metrics: Arc<StorageMetrics>,
    pub symbols: Arc<Symbols>,
    pub index: Arc<MemIndex>,
    pub series: SeriesMaps,
    /// Next series id to issue; ids start at 1 and are never reused.
    pub next_id: AtomicU32,
    /// Series currently in the head (for the total limit).
    pub series_count: AtomicUsize,
    /// Series per metric name symbol id; kept only when a per-metric limit is set.
    pub per_metric: Mutex<HashMap<u32, u32>>,
    pub wal: WalWriter,
    pub chunks: ChunkStore,
    pub cut: CutPolicy,
    /// Lower bound for appends, ms.
    pub min_valid_t: AtomicI64,
    /// Lower bound for reads, ms: data below it is in blocks (raised by truncation and at open,
    /// not by [`Head::set_min_valid_time`], so a range being compacted stays readable until its
    /// block is published and the head truncated).
    pub read_min_t: AtomicI64,
    /// Commits hold it shared from their lower-bound re-check to the end of their apply;
    /// raising the lower bound takes it exclusively once, so after
    /// [`Head::set_min_valid_time`] returns no commit can still add samples below the bound.
    pub commit_gate: RwLock<()>,
    /// Oldest and newest sample time in the head, ms (`i64::MAX` / `i64::MIN` when empty).
    pub min_t: AtomicI64,
    pub max_t: AtomicI64,
    /// Truncation generation (see `SeriesState::gen`).
    pub gen: AtomicU32,
    pub exemplars: Mutex<ExemplarStore>,
    pub metadata: RwLock<HashMap<String, Metadata>>,
    pub next_appender_id: AtomicU64,
    /// Reused appender buffers, so a steady stream of transactions allocates nothing.
    pub buffer_pool: Mutex<Vec<append::AppendBuffers>>,
    /// Serialises truncations.
    pub truncate_lock: Mutex<()>,
    pub replay_info: ReplayInfo,
}

impl Head {
    /// Opens (or creates) the head in `dir`: scans `chunks_head/`, replays the WAL, and opens
    /// the WAL for writing in a new segment. A torn last WAL record is dropped with a warning.
    ///
    /// # Errors
    /// [`StorageError::Io`] on I/O failure, [`StorageError::UnsupportedVersion`] for files from
    /// an unknown format version, [`StorageError::Corruption`] for damaged chunk files.
    pub fn open(dir: impl AsRef<Path>, opts: HeadOptions) -> Result<Head> {
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir).map_err(|e| StorageError::io(format!("create head dir {}", dir.display()), e))?;
        replay::open(dir, opts).map(|inner| Head { inner: Arc::new(inner) })
    }

    /// A new write transaction. Appenders are independent: use one per thread or request.
    pub fn appender(&self) -> HeadAppender {
        HeadAppender::new(Arc::clone(&self.inner))
    }

    /// A reader over the head's current data.
    pub fn querier(&self) -> HeadQuerier {
        HeadQuerier::new(Arc::clone(&self.inner))
    }

    /// The head's directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Oldest sample time in the head, ms; `i64::MAX` when the head is empty.
    pub fn min_time(&self) -> i64 {
        self.inner.min_t.load(Ordering::Acquire)
    }

    /// Newest sample time in the head, ms; `i64::MIN` when the head is empty.
    pub fn max_time(&self) -> i64 {
        self.inner.max_t.load(Ordering::Acquire)
    }

    /// The lower bound for appends, ms: older samples are [`AppendError::OutOfBounds`].
    pub fn min_valid_time(&self) -> i64 {
        self.inner.min_valid_t.load(Ordering::Acquire)
    }

    /// Raises the lower bound for appends (never lowers it) and waits for commits in flight:
    /// when it returns, no sample older than `t_ms` can enter the head any more (appends are
    /// refused with [`AppendError::OutOfBounds`], and a transaction that accepted such a sample
    /// earlier drops it at commit, as Prometheus does). Call it before reading a range for
    /// compaction with [`Head::series_chunks`]. Reads are not affected until
    /// [`Head::truncate`].
    pub fn set_min_valid_time(&self, t_ms: i64) {
        self.inner.min_valid_t.fetch_max(t_ms, Ordering::AcqRel);
        drop(self.inner.commit_gate.write());
    }

    /// Number of series in the head.
    pub fn num_series(&self) -> usize {
        self.inner.series_count.load(Ordering::Relaxed)
    }

    /// The head's postings index (an [`crate::index::IndexReader`]), e.g. for
    /// [`crate::index::cardinality_stats`].
    pub fn index(&self) -> &Arc<MemIndex> {
        &self.inner.index
    }

    /// The head's symbol table.
    pub fn symbols(&self) -> &Arc<Symbols> {
        &self.inner.symbols
    }

    /// The counters the head publishes to.
    pub fn metrics(&self) -> &Arc<StorageMetrics> {
        &self.inner.metrics
    }

    /// The labels of series `r`, if it is in the head.
    pub fn series_labels(&self, r: SeriesRef) -> Option<Labels> {
        let id = u32::try_from(r.0).ok()?;
        self.inner.series.get(id).map(|s| s.labels(&self.inner.symbols))
    }

    /// Exemplars of the series matching `matchers` with `t_ms` in `[mint_ms, maxt_ms]`,
    /// grouped per series and sorted by labels (Prometheus `/api/v1/query_exemplars`).
    ///
    /// # Errors
    /// [`StorageError`] from postings evaluation.
    pub fn exemplars(&self, matchers: &[Matcher], mint_ms: i64, maxt_ms: i64) -> Result<Vec<SeriesExemplars>> {
        if matchers.is_empty() {
            return Ok(Vec::new());
        }
        let ids = postings_for_matchers(&*self.inner.index, matchers)?;
        let by_series = self.inner.exemplars.lock().select(&ids, mint_ms, maxt_ms);
        let mut out: Vec<SeriesExemplars> = by_series
            .into_iter()
            .filter_map(|(id, exemplars)| {
                let s = self.inner.series.get(id)?;
                Some(SeriesExemplars { labels: s.labels(&self.inner.symbols), exemplars })
            })
            .collect();
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok(out)
    }

    /// Metadata per metric name (the newest written wins), sorted by name.
    pub fn metadata(&self) -> BTreeMap<String, Metadata> {
        self.inner.metadata.read().iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// What the last open replayed.
    pub fn replay_info(&self) -> ReplayInfo {
        self.inner.replay_info
    }

    /// Writes buffered WAL records and fsyncs the WAL, whatever the policy (for shutdown).
    ///
    /// # Errors
    /// [`StorageError::Io`].
    pub fn sync_wal(&self) -> Result<()> {
        self.inner.wal.sync()
    }

    /// Bytes of full chunks in the `chunks_head/` files (on disk, mapped on demand; not
    /// counted in [`Head::memory`]).
    pub fn chunk_files_bytes(&self) -> u64 {
        self.inner.chunks.size_bytes()
    }

    /// Resident memory estimate of the head's structures.
    pub fn memory(&self) -> HeadMemory {
        let mut series_bytes = 0;
        let mut n = 0;
        self.inner.series.for_each(|s| {
            series_bytes += s.memory_bytes();
            n += 1;
        });
        HeadMemory {
            series_bytes,
            maps_bytes: self.inner.series.memory_bytes(),
            index_bytes: self.inner.index.memory_bytes(),
            symbols_bytes: self.inner.symbols.memory_bytes(),
            series: n,
        }
    }
}

impl HeadInner {
    /// The series `r` refers to.
    #[inline]
    pub(crate) fn series_by_ref(&self, r: SeriesRef) -> Option<Arc<MemSeries>> {
        self.series.get(u32::try_from(r.0).ok()?)
    }

    /// Resolves `labels` to a series, creating it (and logging its definition to the WAL
    /// buffer) if needed. Returns the series and whether it was created.
    pub(crate) fn get_or_create(&self, labels: &Labels) -> Result<(Arc<MemSeries>, bool), AppendError> {
        let hash = series::labels_hash(labels);
        if let Some(s) = self.series.get_by_labels(hash, labels, &self.symbols) {
            return Ok((s, false));
        }
        validate_labels(labels)?;
        if let Some(limit) = self.opts.max_series {
            if self.series_count.fetch_add(1, Ordering::AcqRel) >= limit {
                self.series_count.fetch_sub(1, Ordering::AcqRel);
                return Err(AppendError::SeriesLimitTotal { limit });
            }
        } else {
            self.series_count.fetch_add(1, Ordering::AcqRel);
        }
        let pairs: Box<[(u32, u32)]> =
            labels.iter().map(|l| (self.symbols.intern(&l.name), self.symbols.intern(&l.value))).collect();
        let name_id = labels.metric_name().map(|n| self.symbols.intern(n));
        if let (Some(limit), Some(name_id)) = (self.opts.max_series_per_metric, name_id) {
            let mut pm = self.per_metric.lock();
            let c = pm.entry(name_id).or_insert(0);
            if *c as usize >= limit {
                drop(pm);
                self.series_count.fetch_sub(1, Ordering::AcqRel);
                return Err(AppendError::SeriesLimitPerMetric {
                    metric: labels.metric_name().unwrap_or_default().to_string(),
                    limit,
                });
            }
            *c += 1;
        }
        let id = self.next_id.fetch_add(1, Ordering::AcqRel);
        let s = Arc::new(MemSeries::new(id, pairs, self.gen.load(Ordering::Acquire)));
        // The definition is buffered for the WAL while the series becomes findable by labels,
        // so no transaction can commit a sample for it ahead of its definition.
        let (s, created) = self.series.insert(hash, labels, s, &self.symbols, || {
            self.wal.buffer(|buf| {
                crate::wal::record::encode_series(
                    buf,
                    [(SeriesRef(u64::from(id)), labels.iter().map(|l| (l.name.as_str(), l.value.as_str())))],
                )
            })
        });
        if !created {
            // Another appender created the same series first: undo our accounting.
            self.series_count.fetch_sub(1, Ordering::AcqRel);
            if let (Some(_), Some(name_id)) = (self.opts.max_series_per_metric, name_id) {
                if let Some(c) = self.per_metric.lock().get_mut(&name_id) {
                    *c = c.saturating_sub(1);
                }
            }
            return Ok((s, false));
        }
        self.index.add_interned(id, &s.labels);
        StorageMetrics::add(&self.metrics.head_series_created, 1);
        self.metrics.head_series.fetch_add(1, Ordering::Relaxed);
        Ok((s, true))
    }

    /// Widens the head's time bounds to include `[mint, maxt]`.
    pub(crate) fn widen_bounds(&self, mint: i64, maxt: i64) {
        if mint <= maxt {
            let old_min = self.min_t.fetch_min(mint, Ordering::AcqRel);
            let old_max = self.max_t.fetch_max(maxt, Ordering::AcqRel);
            if mint < old_min {
                self.metrics.head_min_time_ms.store(mint as u64, Ordering::Relaxed);
            }
            if maxt > old_max {
                self.metrics.head_max_time_ms.store(maxt as u64, Ordering::Relaxed);
            }
        }
    }
}

/// The identity rules the head enforces on a new series: a non-empty metric name and
/// non-empty label names (the label set itself is canonical by construction).
fn validate_labels(labels: &Labels) -> Result<(), LabelsError> {
    if labels.metric_name().is_none_or(str::is_empty) {
        return Err(LabelsError::MissingMetricName);
    }
    if labels.iter().any(|l| l.name.is_empty()) {
        return Err(LabelsError::EmptyName);
    }
    Ok(())
}

#[cfg(test)]
mod tests;
