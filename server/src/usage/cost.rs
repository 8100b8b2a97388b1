//! What each metric costs: active series, samples/s ingested, bytes on disk, and the label
//! names its series carry.
//!
//! # How each figure is computed
//! - **Active series**: the head's series with that `__name__` (one pass over the head's
//!   series, which also yields their label names and chunks).
//! - **Samples/s**: the samples of the metric's head series in the last 5 minutes before the
//!   head's newest sample, divided by 300. Only chunks overlapping that window are decoded
//!   (usually the open chunk), so the pass is cheap; it is an estimate of the ingest rate, exact
//!   for regularly scraped series.
//! - **Bytes**: per block, the sum of the chunk bytes of the metric's series (the encoded chunk
//!   data in the block's segment files; index bytes are not attributed). Blocks are immutable,
//!   so a block's per-metric sums are computed once and cached by block ULID; a block that
//!   disappears (compaction, retention) leaves the cache at the next report. The head's share is
//!   the bytes of its chunks (open chunk included), recomputed per report.
//! - **Label names**: the union over head and block series of the metric.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use parking_lot::Mutex;
use storage::db::Db;
use storage::{Series, ValueType};

use super::UsageError;

/// Window of the samples/s estimate, ms.
pub const RATE_WINDOW_MS: i64 = 300_000;

/// One metric's cost.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MetricCost {
    /// Series in the head.
    pub series: u64,
    /// Series in blocks (a series in several blocks counts once per block).
    pub block_series: u64,
    /// Samples per second ingested (see the module doc).
    pub samples_per_second: f64,
    /// Chunk bytes in the head.
    pub head_bytes: u64,
    /// Chunk bytes in blocks.
    pub block_bytes: u64,
    /// Label names on its series, `__name__` excluded.
    pub labels: BTreeSet<String>,
}

impl MetricCost {
    /// Head and block bytes.
    pub fn bytes(&self) -> u64 {
        self.head_bytes + self.block_bytes
    }
}

#[derive(Default)]
struct BlockMetric {
    series: u64,
    bytes: u64,
    labels: BTreeSet<String>,
}

/// Per-block sums, cached by ULID.
#[derive(Default)]
pub struct CostCache {
    blocks: Mutex<HashMap<String, Arc<HashMap<String, BlockMetric>>>>,
}

impl CostCache {
    /// Blocks currently cached.
    pub fn cached_blocks(&self) -> usize {
        self.blocks.lock().len()
    }
}

fn block_metrics(block: &storage::block::Block) -> Result<HashMap<String, BlockMetric>, UsageError> {
    let mut out: HashMap<String, BlockMetric> = HashMap::new();
    let n = block.index().num_series();
    for id in 0..n {
        let (labels, metas) = block.series(id)?;
        let name = labels.metric_name().unwrap_or("").to_string();
        let mut bytes = 0u64;
        for m in &metas {
            bytes += block.chunk(m)?.bytes.as_slice().len() as u64;
        }
        let e = out.entry(name).or_default();
        e.series += 1;
        e.bytes += bytes;
        for l in labels.iter() {
            if l.name != storage::METRIC_NAME && !e.labels.contains(&l.name) {
                e.labels.insert(l.name.clone());
            }
        }
    }
    Ok(out)
}

/// The cost of every metric in `db`, by name.
///
/// # Errors
/// [`UsageError::Storage`] from the head or a block (corruption).
pub fn costs(db: &Db, cache: &CostCache) -> Result<BTreeMap<String, MetricCost>, UsageError> {
    let mut out: BTreeMap<String, MetricCost> = BTreeMap::new();
    let head = db.head();
    let newest = head.max_time();
    let from = newest.saturating_sub(RATE_WINDOW_MS) + 1;
    for s in head.series_chunks(i64::MIN, i64::MAX)? {
        let name = s.labels.metric_name().unwrap_or("").to_string();
        let c = out.entry(name).or_default();
        c.series += 1;
        for l in s.labels.iter() {
            if l.name != storage::METRIC_NAME && !c.labels.contains(&l.name) {
                c.labels.insert(l.name.clone());
            }
        }
        c.head_bytes += s.chunks.iter().map(|ch| ch.bytes.as_slice().len() as u64).sum::<u64>();
        let recent: Vec<_> = s.chunks.into_iter().filter(|ch| ch.max_t_ms >= from).collect();
        if !recent.is_empty() {
            let series = Series { labels: s.labels, chunks: recent, mint_ms: from, maxt_ms: newest };
            let mut it = series.iter();
            let mut n = 0u64;
            while it.next() != ValueType::None {
                n += 1;
            }
            c.samples_per_second += n as f64 / (RATE_WINDOW_MS as f64 / 1000.0);
        }
    }
    let blocks = db.blocks();
    let live: BTreeSet<String> = blocks.iter().map(|b| b.meta().ulid.to_string()).collect();
    for b in blocks.iter() {
        let ulid = b.meta().ulid.to_string();
        let cached = cache.blocks.lock().get(&ulid).cloned();
        let per = match cached {
            Some(p) => p,
            None => {
                // Computed outside the lock: a big block takes a while, other reports wait only
                // for the map.
                let p = Arc::new(block_metrics(b)?);
                cache.blocks.lock().insert(ulid.clone(), Arc::clone(&p));
                p
            }
        };
        for (name, m) in per.iter() {
            let c = out.entry(name.clone()).or_default();
            c.block_series += m.series;
            c.block_bytes += m.bytes;
            for l in &m.labels {
                if !c.labels.contains(l) {
                    c.labels.insert(l.clone());
                }
            }
        }
    }
    cache.blocks.lock().retain(|u, _| live.contains(u));
    out.remove("");
    Ok(out)
}
