//! Opening a head: rebuild series, postings, chunks, exemplars and metadata from disk.
//!
//! 1. Scan `chunks_head/`: every full chunk with its series id and time bounds.
//! 2. Replay the WAL (newest checkpoint, then later segments, in order; see
//!    [`crate::wal::replay`]): series records create series with their logged ids and pick up
//!    their scanned chunks; samples newer than a series' last scanned chunk rebuild its open
//!    chunk (older ones are already in a chunk file and are skipped); exemplars and metadata
//!    refill their stores. A torn or corrupt record drops the rest of its segment with a
//!    warning and the start goes on.
//! 3. For a series whose newest sample is in a scanned chunk, read that chunk's last sample so
//!    the order rules (duplicate checks included) hold across the restart.
//! 4. Open the WAL for writing in a fresh segment.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::{Mutex, RwLock};

use crate::api::Exemplar;
use crate::chunkenc::{ChunkIter, ValueType};
use crate::error::Result;
use crate::index::{MemIndex, Symbols};
use crate::wal::record::{self, DecodeError, RecordType, RefExemplar, RefHistogramSample, RefSample, RefSeries};
use crate::wal::{self, WalWriter};

use super::chunk_store::ChunkStore;
use super::exemplars::ExemplarStore;
use super::series::{labels_hash, ClosedChunk, CutPolicy, Kind, MemSeries, SeriesMaps};
use super::{HeadInner, HeadOptions};

/// What the last open of the head replayed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReplayInfo {
    /// Series rebuilt.
    pub series: u64,
    /// Float and histogram samples applied to open chunks.
    pub samples: u64,
    /// Samples skipped because an mmap'd chunk already holds them.
    pub samples_in_chunks: u64,
    /// Samples dropped: unknown series, below the lower bound, or out of order.
    pub samples_dropped: u64,
    /// Full chunks picked up from `chunks_head/`.
    pub mmapped_chunks: u64,
    /// WAL records read.
    pub wal_records: u64,
    /// WAL segment tails dropped after a torn or corrupt record.
    pub wal_corruptions: u64,
    /// The checkpoint replay started from, if any.
    pub checkpoint: Option<u64>,
    /// Wall time of the whole open, ms.
    pub duration_ms: u64,
}

/// Builds the head's state from `dir` (see the module doc).
pub(crate) fn open(dir: PathBuf, opts: HeadOptions) -> Result<HeadInner> {
    let started = Instant::now();
    let metrics = Arc::clone(&opts.metrics);
    let symbols = Arc::new(Symbols::new());
    let index = Arc::new(MemIndex::new(Arc::clone(&symbols)));
    let series = SeriesMaps::new();
    let chunks = ChunkStore::open(&dir.join("chunks_head"))?;
    let cut = CutPolicy {
        samples_per_chunk: opts.samples_per_chunk.max(1),
        histogram_chunk_bytes: crate::chunkenc::HISTOGRAM_CHUNK_TARGET_BYTES,
        chunk_range_ms: opts.chunk_range_ms.max(1),
    };
    // Raised by lower-bound records (checkpoints carry the last truncation's bound).
    let mut min_valid = opts.min_valid_t_ms;
    let mut info = ReplayInfo::default();

    // 1. Full chunks on disk, per series id, oldest first.
    let mut on_disk: HashMap<u32, Vec<ClosedChunk>> = HashMap::new();
    let mut max_chunk_id = 0u32;
    chunks.scan(&mut |id, min_t, max_t, loc| {
        max_chunk_id = max_chunk_id.max(id);
        on_disk.entry(id).or_default().push(ClosedChunk { min_t, max_t, loc });
    })?;
    for v in on_disk.values_mut() {
        v.sort_by_key(|c| c.min_t);
    }

    // 2. The WAL.
    let mut next_id = max_chunk_id.saturating_add(1).max(1);
    let mut series_count = 0usize;
    let mut per_metric: HashMap<u32, u32> = HashMap::new();
    let name_sym = symbols.intern(crate::labels::METRIC_NAME);
    let mut exemplars = ExemplarStore::new(opts.max_exemplars);
    let mut metadata = HashMap::new();
    let (mut mint, mut maxt) = (i64::MAX, i64::MIN);
    let mut chunks_created = 0u64;
    let mut sbuf: Vec<RefSeries> = Vec::new();
    let mut smp: Vec<RefSample> = Vec::new();
    let mut hbuf: Vec<RefHistogramSample> = Vec::new();
    let mut ebuf: Vec<RefExemplar> = Vec::new();
    let mut mbuf = Vec::new();
    let wal_dir = dir.join("wal");

    let stats = wal::replay(&wal_dir, &metrics, |payload| -> Result<(), DecodeError> {
        match record::record_type(payload)? {
            RecordType::Series => {
                sbuf.clear();
                record::decode_series(payload, &mut sbuf)?;
                for rs in sbuf.drain(..) {
                    let Ok(id) = u32::try_from(rs.series_ref.0) else {
                        return Err(DecodeError::Invalid("series ref exceeds u32"));
                    };
                    if series.get(id).is_some() {
                        continue;
                    }
                    let pairs: Box<[(u32, u32)]> =
                        rs.labels.iter().map(|l| (symbols.intern(&l.name), symbols.intern(&l.value))).collect();
                    let s = Arc::new(MemSeries::new(id, pairs, 0));
                    if let Some(mut closed) = on_disk.remove(&id) {
                        // Chunks wholly before the lower bound are already in blocks.
                        closed.retain(|c| c.max_t >= min_valid);
                        let mut st = s.state.lock();
                        info.mmapped_chunks += closed.len() as u64;
                        if let Some(last) = closed.last() {
                            // The value is read from the chunk after replay (step 3).
                            st.last_t = last.max_t;
                        }
                        st.closed = closed;
                    }
                    index.add_interned(id, &s.labels);
                    if let Some(&(_, v)) = s.labels.iter().find(|(n, _)| *n == name_sym) {
                        *per_metric.entry(v).or_insert(0) += 1;
                    }
                    series.insert_replayed(labels_hash(&rs.labels), s);
                    next_id = next_id.max(id.saturating_add(1));
                    series_count += 1;
                }
            }
            RecordType::Samples | RecordType::SamplesSt => {
                smp.clear();
                record::decode_samples(payload, &mut smp)?;
                for x in &smp {
                    let Some(s) = u32::try_from(x.series_ref.0).ok().and_then(|id| series.get(id)) else {
                        info.samples_dropped += 1;
                        continue;
                    };
                    if x.t_ms < min_valid {
                        info.samples_dropped += 1;
                        continue;
                    }
                    let mut st = s.state.lock();
                    if st.closed.last().is_some_and(|c| x.t_ms <= c.max_t) {
                        info.samples_in_chunks += 1;
                        continue;
                    }
                    match st.check_float(x.t_ms, x.v) {
                        Ok(true) => {
                            chunks_created += st.append_float(s.id, x.st_ms, x.t_ms, x.v, &cut, &chunks);
                            info.samples += 1;
                            mint = mint.min(x.t_ms);
                            maxt = maxt.max(x.t_ms);
                        }
                        Ok(false) => {}
                        Err(_) => info.samples_dropped += 1,
                    }
                }
            }
            RecordType::HistogramSamples | RecordType::HistogramSamplesSt => {
                hbuf.clear();
                record::decode_histograms(payload, &mut hbuf)?;
                for x in &hbuf {
                    let Some(s) = u32::try_from(x.series_ref.0).ok().and_then(|id| series.get(id)) else {
                        info.samples_dropped += 1;
                        continue;
                    };
                    if x.t_ms < min_valid {
                        info.samples_dropped += 1;
                        continue;
                    }
                    let mut st = s.state.lock();
                    let closed_max_t = st.closed.last().map(|c| c.max_t);
                    if closed_max_t.is_some_and(|m| x.t_ms <= m) {
                        if closed_max_t == Some(x.t_ms) {
                            // The newest sample in the chunk files: the previous sample the
                            // next one's counter-reset hint is computed against.
                            st.last_kind = Kind::Histogram;
                            st.last_h = Some(Box::new(x.h.clone()));
                        }
                        info.samples_in_chunks += 1;
                        continue;
                    }
                    match st.check_histogram(x.t_ms, &x.h) {
                        Ok(true) => {
                            chunks_created += st.append_histogram(s.id, x.st_ms, x.t_ms, &x.h, &cut, &chunks);
                            info.samples += 1;
                            mint = mint.min(x.t_ms);
                            maxt = maxt.max(x.t_ms);
                        }
                        Ok(false) => {}
                        Err(_) => info.samples_dropped += 1,
                    }
                }
            }
            RecordType::Exemplars => {
                ebuf.clear();
                record::decode_exemplars(payload, &mut ebuf)?;
                for e in ebuf.drain(..) {
                    if let Ok(id) = u32::try_from(e.series_ref.0) {
                        if series.get(id).is_some() {
                            exemplars.add(id, Exemplar { labels: e.labels, value: e.value, t_ms: e.t_ms });
                        }
                    }
                }
            }
            RecordType::MinValidTime => min_valid = min_valid.max(record::decode_min_valid_time(payload)?),
            RecordType::Metadata => {
                mbuf.clear();
                record::decode_metadata(payload, &mut mbuf)?;
                for m in mbuf.drain(..) {
                    metadata.insert(m.metric, m.metadata);
                }
            }
        }
        Ok(())
    })?;
    info.wal_records = stats.records;
    info.wal_corruptions = stats.corruptions;
    info.checkpoint = stats.checkpoint;

    // 3. Series whose newest sample is in a chunk file: read it for the order rules, and
    //    take every series' bounds.
    let mut n_chunks = 0u64;
    series.for_each(|s| {
        let mut st = s.state.lock();
        n_chunks += st.closed.len() as u64 + u64::from(st.open.len() > 0);
        if let (Some(a), Some(b)) = (st.min_t(), st.max_t()) {
            mint = mint.min(a);
            maxt = maxt.max(b);
        }
        if st.last_kind != Kind::None {
            return;
        }
        let Some(last) = st.closed.last() else { return };
        let Ok(h) = chunks.handle(&last.loc, last.min_t, last.max_t) else { return };
        let mut it = ChunkIter::new(h.encoding, h.bytes.as_slice());
        let (mut kind, mut t, mut v, mut hist) = (Kind::None, i64::MIN, 0u64, None);
        loop {
            match it.next() {
                ValueType::Float => {
                    let (tt, vv) = it.at();
                    (kind, t, v, hist) = (Kind::Float, tt, vv.to_bits(), None);
                }
                ValueType::Histogram => {
                    let (tt, hh) = it.at_histogram();
                    (kind, t, hist) = (Kind::Histogram, tt, Some(hh.clone()));
                }
                ValueType::None => break,
            }
        }
        if kind != Kind::None {
            st.last_t = t;
            st.last_v = v;
            st.last_kind = kind;
            st.last_h = hist.map(Box::new);
        }
    });
    info.series = series_count as u64;

    // 4. The WAL writer, in a fresh segment after everything replayed.
    let wal = WalWriter::open(&wal_dir, opts.wal, stats.last_segment + 1, Arc::clone(&metrics))?;
    info.duration_ms = started.elapsed().as_millis() as u64;

    metrics.head_series.store(series_count as u64, Ordering::Relaxed);
    metrics.head_chunks.store(n_chunks, Ordering::Relaxed);
    crate::metrics::StorageMetrics::add(&metrics.head_chunks_created, chunks_created);
    metrics.wal_replay_millis.store(info.duration_ms, Ordering::Relaxed);
    metrics.head_min_time_ms.store(mint as u64, Ordering::Relaxed);
    metrics.head_max_time_ms.store(maxt as u64, Ordering::Relaxed);
    if info.wal_corruptions > 0 {
        tracing::warn!(corruptions = info.wal_corruptions, "head opened after dropping torn or corrupt WAL records");
    }
    tracing::info!(
        series = info.series,
        samples = info.samples,
        mmapped_chunks = info.mmapped_chunks,
        duration_ms = info.duration_ms,
        "head replayed"
    );

    let per_metric = if opts.max_series_per_metric.is_some() { per_metric } else { HashMap::new() };
    Ok(HeadInner {
        dir,
        min_valid_t: AtomicI64::new(min_valid),
        read_min_t: AtomicI64::new(min_valid),
        commit_gate: RwLock::new(()),
        metrics,
        symbols,
        index,
        series,
        next_id: AtomicU32::new(next_id),
        series_count: AtomicUsize::new(series_count),
        per_metric: Mutex::new(per_metric),
        wal,
        chunks,
        cut,
        min_t: AtomicI64::new(mint),
        max_t: AtomicI64::new(maxt),
        gen: AtomicU32::new(1),
        exemplars: Mutex::new(exemplars),
        metadata: RwLock::new(metadata),
        next_appender_id: AtomicU64::new(1),
        buffer_pool: Mutex::new(Vec::new()),
        truncate_lock: Mutex::new(()),
        replay_info: info,
        opts,
    })
}
