//! The head's series: [`MemSeries`] (interned labels + per-series state behind its own small
//! lock) and [`SeriesMaps`], the sharded lookup by id and by label hash.
//!
//! # Locking
//! - [`SeriesMaps`] has 256 shards per map, each a `parking_lot::RwLock`: a lookup takes one
//!   shard's read lock for one probe (a vector index by id, a linear-probing
//!   [`super::label_table::LabelTable`] by label hash), so appenders on many threads rarely meet.
//! - [`MemSeries::state`] is a `Mutex` per series: appends to different series never contend,
//!   and the critical sections are an order check or one chunk append.
//! - Lock order: a map shard, then (after releasing it) a series; never the reverse.

use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use crate::chunkenc::{
    ChunkBytes, ChunkHandle, Encoding, FloatChunkBuilder, FloatStChunkBuilder, HistogramChunkBuilder, HistogramStChunkBuilder,
};
use crate::histogram::FloatHistogram;
use crate::index::Symbols;
use crate::labels::{Label, Labels};

use super::chunk_store::{ChunkStore, StoredChunk};
use super::label_table::LabelTable;

/// Number of shards of each series map (a power of two).
const SHARDS: usize = 256;

/// A hasher for integer keys that are ids or already-hashed values (xxh3 of labels): the
/// murmur3 64-bit finaliser, so every output bit depends on every input bit (the maps are
/// sharded by some key bits, and hashbrown uses both the low and the top bits).
#[derive(Default, Clone, Copy)]
pub(crate) struct IdHasher(u64);

#[inline]
fn fmix64(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = fmix64(self.0 ^ u64::from(b));
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.0 = fmix64(self.0 ^ u64::from(n));
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = fmix64(self.0 ^ n);
    }
}

pub(crate) type IdBuild = BuildHasherDefault<IdHasher>;

/// What kind of sample a series' newest sample (or its open chunk) holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    None,
    Float,
    Histogram,
}

/// The open (still growing) chunk of a series. The `St` variants carry start timestamps
/// ([`crate::chunkenc::st`]): a series gets one when a sample with a start timestamp arrives,
/// so series without start timestamps keep the plain encodings.
pub(crate) enum OpenChunk {
    None,
    Float(FloatChunkBuilder),
    Histogram(Box<HistogramChunkBuilder>),
    FloatSt(Box<FloatStChunkBuilder>),
    HistogramSt(Box<HistogramStChunkBuilder>),
}

impl OpenChunk {
    pub(crate) fn len(&self) -> usize {
        match self {
            OpenChunk::None => 0,
            OpenChunk::Float(b) => b.len(),
            OpenChunk::Histogram(b) => b.len(),
            OpenChunk::FloatSt(b) => b.len(),
            OpenChunk::HistogramSt(b) => b.len(),
        }
    }

    pub(crate) fn bounds(&self) -> Option<(i64, i64)> {
        match self {
            OpenChunk::None => None,
            OpenChunk::Float(b) => Some((b.min_t()?, b.max_t()?)),
            OpenChunk::Histogram(b) => Some((b.min_t()?, b.max_t()?)),
            OpenChunk::FloatSt(b) => Some((b.min_t()?, b.max_t()?)),
            OpenChunk::HistogramSt(b) => Some((b.min_t()?, b.max_t()?)),
        }
    }

    pub(crate) fn kind(&self) -> Kind {
        match self {
            OpenChunk::None => Kind::None,
            OpenChunk::Float(_) | OpenChunk::FloatSt(_) => Kind::Float,
            OpenChunk::Histogram(_) | OpenChunk::HistogramSt(_) => Kind::Histogram,
        }
    }

    /// True if the open chunk has a start-timestamp column.
    pub(crate) fn has_st(&self) -> bool {
        matches!(self, OpenChunk::FloatSt(_) | OpenChunk::HistogramSt(_))
    }

    /// A copy of the chunk as it stands, for a query.
    pub(crate) fn snapshot(&self) -> Option<ChunkHandle> {
        let (min_t_ms, max_t_ms) = self.bounds()?;
        let (encoding, bytes) = match self {
            OpenChunk::None => return None,
            OpenChunk::Float(b) => b.snapshot_bytes(),
            OpenChunk::Histogram(b) => b.snapshot_bytes(),
            OpenChunk::FloatSt(b) => b.snapshot_bytes(),
            OpenChunk::HistogramSt(b) => b.snapshot_bytes(),
        };
        Some(ChunkHandle { min_t_ms, max_t_ms, encoding, bytes: ChunkBytes::from_vec(bytes) })
    }

    pub(crate) fn memory_bytes(&self) -> usize {
        match self {
            OpenChunk::None => 0,
            OpenChunk::Float(b) => b.memory_bytes(),
            OpenChunk::Histogram(b) => b.memory_bytes(),
            OpenChunk::FloatSt(b) => b.memory_bytes(),
            OpenChunk::HistogramSt(b) => b.memory_bytes(),
        }
    }
}

/// A full chunk of a series: its time bounds and where its bytes are.
pub(crate) struct ClosedChunk {
    pub min_t: i64,
    pub max_t: i64,
    pub loc: StoredChunk,
}

/// Where a sample goes: the chunk-cutting parameters of the head.
#[derive(Clone, Copy)]
pub(crate) struct CutPolicy {
    /// Cut float chunks at this many samples.
    pub samples_per_chunk: usize,
    /// Cut histogram chunks past this many bytes.
    pub histogram_chunk_bytes: usize,
    /// Block range, ms: no chunk spans a multiple of it.
    pub chunk_range_ms: i64,
}

/// Everything mutable about one series. Guarded by [`MemSeries::state`].
pub(crate) struct SeriesState {
    pub open: OpenChunk,
    /// The open chunk's last query snapshot and the open chunk's sample count when it was
    /// taken: queries that find the open chunk unchanged share it (a reference count)
    /// instead of copying the chunk again, as dashboards refreshing between two scrapes do.
    /// Cleared whenever the open chunk changes (append, cut, garbage collection), so it
    /// never outlives the chunk state it shows; see [`SeriesState::open_snapshot`].
    pub snapshot: Option<(usize, ChunkHandle)>,
    /// Full chunks, oldest first, non-overlapping.
    pub closed: Vec<ClosedChunk>,
    /// Newest committed sample: timestamp (`i64::MIN` if none), value bits (floats), kind.
    pub last_t: i64,
    pub last_v: u64,
    pub last_kind: Kind,
    /// The newest committed histogram, kept only for histogram series (exact-duplicate check).
    pub last_h: Option<Box<FloatHistogram>>,
    /// The newest sample an uncommitted appender has accepted, and which appender: so that one
    /// transaction's own samples are order-checked against each other at append time.
    pub pending_owner: u64,
    pub pending_t: i64,
    pub pending_v: u64,
    pub pending_kind: Kind,
    /// Samples accepted by appenders and not yet committed or rolled back. A series with
    /// pending samples is never garbage-collected.
    pub pending: u32,
    /// The truncation generation the series was created in: garbage collection spares series
    /// created since the last truncation (an appender may hold their ref without samples yet).
    pub gen: u32,
    /// Set by garbage collection when the series is removed from the maps.
    pub deleted: bool,
}

impl SeriesState {
    fn new(gen: u32) -> Self {
        SeriesState {
            open: OpenChunk::None,
            snapshot: None,
            closed: Vec::new(),
            last_t: i64::MIN,
            last_v: 0,
            last_kind: Kind::None,
            last_h: None,
            pending_owner: 0,
            pending_t: i64::MIN,
            pending_v: 0,
            pending_kind: Kind::None,
            pending: 0,
            gen,
            deleted: false,
        }
    }

    /// Oldest timestamp held (closed or open), if any.
    pub(crate) fn min_t(&self) -> Option<i64> {
        self.closed.first().map(|c| c.min_t).or_else(|| self.open.bounds().map(|b| b.0))
    }

    /// Newest timestamp held, if any.
    pub(crate) fn max_t(&self) -> Option<i64> {
        self.open.bounds().map(|b| b.1).or_else(|| self.closed.last().map(|c| c.max_t))
    }

    /// True if the open chunk must be cut before a sample of `kind` at `t_ms` with start
    /// timestamp `st_ms` (a plain chunk is cut when the first sample with a start timestamp
    /// arrives; an ST chunk takes samples without one too).
    fn must_cut(&self, kind: Kind, st_ms: i64, t_ms: i64, p: &CutPolicy) -> bool {
        let Some((min_t, _)) = self.open.bounds() else { return false };
        if self.open.kind() != kind || (st_ms != 0 && !self.open.has_st()) {
            return true;
        }
        let range_end = min_t.div_euclid(p.chunk_range_ms).saturating_add(1).saturating_mul(p.chunk_range_ms);
        if t_ms >= range_end {
            return true;
        }
        match &self.open {
            OpenChunk::Float(b) => b.len() >= p.samples_per_chunk,
            OpenChunk::FloatSt(b) => b.len() >= p.samples_per_chunk,
            OpenChunk::Histogram(b) => b.len() >= p.samples_per_chunk || b.size_bytes() >= p.histogram_chunk_bytes,
            OpenChunk::HistogramSt(b) => b.len() >= p.samples_per_chunk || b.size_bytes() >= p.histogram_chunk_bytes,
            OpenChunk::None => false,
        }
    }

    /// Moves the open chunk to the chunk store (or keeps it in memory if the write fails).
    /// Returns 1 if a chunk was cut.
    fn cut(&mut self, series_id: u32, store: &ChunkStore) -> u64 {
        self.snapshot = None;
        let Some((min_t, max_t)) = self.open.bounds() else { return 0 };
        let (encoding, bytes): (Encoding, Vec<u8>) = match &mut self.open {
            OpenChunk::Float(b) => b.finish(),
            OpenChunk::Histogram(b) => b.finish(),
            OpenChunk::FloatSt(b) => b.finish(),
            OpenChunk::HistogramSt(b) => b.finish(),
            OpenChunk::None => return 0,
        };
        let loc = store.write(series_id, min_t, max_t, encoding, bytes);
        self.closed.push(ClosedChunk { min_t, max_t, loc });
        1
    }

    /// Appends a committed float sample (start timestamp `st_ms`, 0 for none) to the chunks.
    /// The caller has checked order. Returns the number of chunks cut (0 or 1).
    pub(crate) fn append_float(&mut self, id: u32, st_ms: i64, t_ms: i64, v: f64, p: &CutPolicy, store: &ChunkStore) -> u64 {
        self.snapshot = None;
        let mut cut = 0;
        if self.must_cut(Kind::Float, st_ms, t_ms, p) {
            cut = self.cut(id, store);
        }
        match &mut self.open {
            OpenChunk::Float(b) if !b.is_empty() || st_ms == 0 => b.append(t_ms, v),
            OpenChunk::FloatSt(b) => b.append(st_ms, t_ms, v),
            open => {
                if st_ms == 0 {
                    let mut b = FloatChunkBuilder::new();
                    b.append(t_ms, v);
                    *open = OpenChunk::Float(b);
                } else {
                    let mut b = Box::<FloatStChunkBuilder>::default();
                    b.append(st_ms, t_ms, v);
                    *open = OpenChunk::FloatSt(b);
                }
            }
        }
        self.last_t = t_ms;
        self.last_v = v.to_bits();
        self.last_kind = Kind::Float;
        self.last_h = None;
        cut
    }

    /// Appends a committed histogram sample to the chunks. The caller has checked order.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn append_histogram(
        &mut self,
        id: u32,
        st_ms: i64,
        t_ms: i64,
        h: &FloatHistogram,
        p: &CutPolicy,
        store: &ChunkStore,
    ) -> u64 {
        self.snapshot = None;
        let mut cut = 0;
        let must_cut = self.must_cut(Kind::Histogram, st_ms, t_ms, p);
        let continues = !must_cut && self.open.kind() == Kind::Histogram && self.open.len() > 0;
        let prev = if self.last_kind == Kind::Histogram { self.last_h.as_deref() } else { None };
        let hint = super::hints::hint_for(prev, h, continues);
        if must_cut {
            cut = self.cut(id, store);
        }
        match &mut self.open {
            OpenChunk::Histogram(b) if !b.is_empty() || st_ms == 0 => b.append_with_hint(t_ms, h, hint),
            OpenChunk::HistogramSt(b) => b.append_with_hint(st_ms, t_ms, h, hint),
            open => {
                if st_ms == 0 {
                    let mut b = Box::<HistogramChunkBuilder>::default();
                    b.append_with_hint(t_ms, h, hint);
                    *open = OpenChunk::Histogram(b);
                } else {
                    let mut b = Box::<HistogramStChunkBuilder>::default();
                    b.append_with_hint(st_ms, t_ms, h, hint);
                    *open = OpenChunk::HistogramSt(b);
                }
            }
        }
        self.last_t = t_ms;
        self.last_kind = Kind::Histogram;
        match &mut self.last_h {
            Some(prev) => (**prev).clone_from(h),
            None => self.last_h = Some(Box::new(h.clone())),
        }
        cut
    }

    /// The order rule for a committed-state check: `Ok(true)` to append, `Ok(false)` for an
    /// exact duplicate (dropped silently), `Err` with the newest timestamp otherwise.
    pub(crate) fn check_float(&self, t_ms: i64, v: f64) -> Result<bool, OrderViolation> {
        check(self.last_t, self.last_kind, t_ms, Kind::Float, || self.last_v == v.to_bits())
    }

    /// As [`SeriesState::check_float`], for a histogram.
    pub(crate) fn check_histogram(&self, t_ms: i64, h: &FloatHistogram) -> Result<bool, OrderViolation> {
        check(self.last_t, self.last_kind, t_ms, Kind::Histogram, || {
            self.last_h.as_deref().is_some_and(|p| histograms_identical(p, h))
        })
    }

    /// Chunks overlapping `[mint, maxt]` as query handles, oldest first.
    ///
    /// # Errors
    /// [`crate::StorageError::Corruption`] if a chunk file no longer holds a chunk.
    pub(crate) fn chunks_in(&mut self, mint: i64, maxt: i64, store: &ChunkStore, out: &mut Vec<ChunkHandle>) -> crate::Result<()> {
        // Closed chunks are sorted and non-overlapping: the overlapping ones are one run.
        let first = self.closed.partition_point(|c| c.max_t < mint);
        let closed = &self.closed[first..];
        let closed = &closed[..closed.partition_point(|c| c.min_t <= maxt)];
        let open = self.open.bounds().is_some_and(|(a, b)| b >= mint && a <= maxt);
        // Exact capacity: a select keeps one such vector per series.
        out.reserve_exact(closed.len() + usize::from(open));
        for c in closed {
            out.push(store.handle(&c.loc, c.min_t, c.max_t)?);
        }
        if open {
            if let Some(h) = self.open_snapshot() {
                out.push(h);
            }
        }
        Ok(())
    }

    /// A snapshot of the open chunk for a query: the kept one ([`SeriesState::snapshot`]) if
    /// the open chunk has not changed since it was taken (same sample count and time bounds;
    /// every change also clears it), else a new copy, which is kept.
    fn open_snapshot(&mut self) -> Option<ChunkHandle> {
        let len = self.open.len();
        let bounds = self.open.bounds()?;
        if let Some((n, h)) = &self.snapshot {
            if *n == len && (h.min_t_ms, h.max_t_ms) == bounds {
                return Some(h.clone());
            }
        }
        let h = self.open.snapshot()?;
        self.snapshot = Some((len, h.clone()));
        Some(h)
    }

    /// True if the series holds a sample in `[mint, maxt]`'s chunk ranges.
    pub(crate) fn overlaps(&self, mint: i64, maxt: i64) -> bool {
        match (self.min_t(), self.max_t()) {
            (Some(a), Some(b)) => b >= mint && a <= maxt,
            _ => false,
        }
    }

    /// Resident bytes of the state's heap parts (open chunk, chunk list, kept histogram).
    pub(crate) fn memory_bytes(&self) -> usize {
        self.open.memory_bytes()
            + self.snapshot.as_ref().map_or(0, |(_, h)| h.bytes.as_slice().len())
            + self.closed.capacity() * std::mem::size_of::<ClosedChunk>()
            + self.closed.iter().map(|c| c.loc.memory_bytes()).sum::<usize>()
            + self.last_h.as_ref().map_or(0, |_| std::mem::size_of::<FloatHistogram>())
    }
}

/// An order rule broken by a sample, before it is mapped to an [`crate::AppendError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OrderViolation {
    OutOfOrder { newest_t_ms: i64 },
    Duplicate,
    TypeConflict,
}

#[inline]
fn check(last_t: i64, last_kind: Kind, t_ms: i64, kind: Kind, same_value: impl FnOnce() -> bool) -> Result<bool, OrderViolation> {
    if last_kind == Kind::None || t_ms > last_t {
        return Ok(true);
    }
    if t_ms < last_t {
        return Err(OrderViolation::OutOfOrder { newest_t_ms: last_t });
    }
    if last_kind != kind {
        return Err(OrderViolation::TypeConflict);
    }
    if same_value() {
        Ok(false)
    } else {
        Err(OrderViolation::Duplicate)
    }
}

/// The order rule against a transaction's own newest pending sample of the series, after the
/// committed-state check returned `fresh`. A histogram at the same timestamp as a pending one is
/// reported as a duplicate; the appender then compares it with its buffered histogram.
#[inline]
pub(crate) fn check_pending(st: &SeriesState, t_ms: i64, kind: Kind, v_bits: u64, fresh: bool) -> Result<bool, OrderViolation> {
    if st.pending_kind == Kind::None || t_ms > st.pending_t {
        return Ok(fresh);
    }
    if t_ms < st.pending_t {
        return Err(OrderViolation::OutOfOrder { newest_t_ms: st.pending_t });
    }
    if st.pending_kind != kind {
        return Err(OrderViolation::TypeConflict);
    }
    if kind == Kind::Float && st.pending_v == v_bits {
        return Ok(false);
    }
    Err(OrderViolation::Duplicate)
}

/// Bit-exact equality of two histograms (NaN-safe), for the exact-duplicate rule. The
/// counter-reset hint is not compared (Prometheus' `FloatHistogram.Equals` ignores it too): the
/// head assigns hints itself, so a stored sample's hint may differ from the re-sent one's.
pub(crate) fn histograms_identical(a: &FloatHistogram, b: &FloatHistogram) -> bool {
    let f = |x: &[f64], y: &[f64]| x.len() == y.len() && x.iter().zip(y).all(|(p, q)| p.to_bits() == q.to_bits());
    a.schema == b.schema
        && a.zero_threshold.to_bits() == b.zero_threshold.to_bits()
        && a.zero_count.to_bits() == b.zero_count.to_bits()
        && a.count.to_bits() == b.count.to_bits()
        && a.sum.to_bits() == b.sum.to_bits()
        && a.positive_spans == b.positive_spans
        && a.negative_spans == b.negative_spans
        && f(&a.positive_buckets, &b.positive_buckets)
        && f(&a.negative_buckets, &b.negative_buckets)
        && f(&a.custom_values, &b.custom_values)
}

/// One series of the head.
pub(crate) struct MemSeries {
    /// Dense id; the series' [`crate::SeriesRef`] and its id in the postings.
    pub id: u32,
    /// `(name, value)` symbol ids, sorted by name string (the order of [`Labels`]).
    pub labels: Box<[(u32, u32)]>,
    /// Per-series lock: see the module doc.
    pub state: Mutex<SeriesState>,
}

impl MemSeries {
    pub(crate) fn new(id: u32, labels: Box<[(u32, u32)]>, gen: u32) -> Self {
        MemSeries { id, labels, state: Mutex::new(SeriesState::new(gen)) }
    }

    /// The label set, resolved to strings.
    pub(crate) fn labels(&self, symbols: &Symbols) -> Labels {
        Labels::from_sorted_unchecked(
            self.labels
                .iter()
                .map(|&(n, v)| Label::new(symbols.resolve(n).unwrap_or_default(), symbols.resolve(v).unwrap_or_default()))
                .collect(),
        )
    }

    /// The labels whose name id is in `names` (sorted ids), resolved to strings: the part of
    /// the label set a grouping reads ([`crate::api::SelectHints::grouping`]).
    pub(crate) fn labels_named(&self, symbols: &Symbols, names: &[u32]) -> Labels {
        Labels::from_sorted_unchecked(
            self.labels
                .iter()
                .filter(|(n, _)| names.binary_search(n).is_ok())
                .map(|&(n, v)| Label::new(symbols.resolve(n).unwrap_or_default(), symbols.resolve(v).unwrap_or_default()))
                .collect(),
        )
    }

    /// True if this series' labels equal `labels` (no allocation).
    pub(crate) fn labels_eq(&self, symbols: &Symbols, labels: &Labels) -> bool {
        self.labels.len() == labels.len()
            && self.labels.iter().zip(labels.iter()).all(|(&(n, v), l)| {
                symbols.resolve(n) == Some(l.name.as_str()) && symbols.resolve(v) == Some(l.value.as_str())
            })
    }

    /// Resident bytes of this series (struct, labels, state heap parts).
    pub(crate) fn memory_bytes(&self) -> usize {
        std::mem::size_of::<MemSeries>()
            + 16 // Arc counters
            + self.labels.len() * 8
            + self.state.lock().memory_bytes()
    }
}

/// The head's series by id and by label hash, each sharded 256 ways.
///
/// Ids are dense and never reused, so the by-id side is a plain vector per shard, indexed by
/// `id >> 8` (shard `id & 255`): a lookup is one read lock and one index, no hashing. Slots of
/// garbage-collected series stay `None` (8 bytes per id ever issued).
/// One by-id shard: slot `id >> 8` holds series `id` (or `None`).
type IdShard = RwLock<Vec<Option<Arc<MemSeries>>>>;

pub(crate) struct SeriesMaps {
    by_id: Box<[IdShard]>,
    by_hash: Box<[RwLock<LabelTable>]>,
}

#[inline]
fn id_shard(id: u32) -> usize {
    id as usize & (SHARDS - 1)
}

#[inline]
fn id_slot(id: u32) -> usize {
    id as usize >> SHARDS.trailing_zeros()
}

#[inline]
fn hash_shard(h: u64) -> usize {
    (h >> 56) as usize & (SHARDS - 1)
}

impl SeriesMaps {
    pub(crate) fn new() -> Self {
        SeriesMaps {
            by_id: (0..SHARDS).map(|_| RwLock::new(Vec::new())).collect(),
            by_hash: (0..SHARDS).map(|_| RwLock::new(LabelTable::new())).collect(),
        }
    }

    #[inline]
    pub(crate) fn get(&self, id: u32) -> Option<Arc<MemSeries>> {
        self.by_id[id_shard(id)].read().get(id_slot(id))?.clone()
    }

    fn put_id(&self, s: Arc<MemSeries>) {
        let mut shard = self.by_id[id_shard(s.id)].write();
        let slot = id_slot(s.id);
        if shard.len() <= slot {
            shard.resize(slot + 1, None);
        }
        shard[slot] = Some(s);
    }

    /// The series with exactly `labels` (whose hash is `hash`), if any.
    pub(crate) fn get_by_labels(&self, hash: u64, labels: &Labels, symbols: &Symbols) -> Option<Arc<MemSeries>> {
        self.by_hash[hash_shard(hash)].read().find(hash, |s| s.labels_eq(symbols, labels)).cloned()
    }

    /// Inserts `s` unless a series with the same labels got there first; returns the series
    /// that is in the map and whether it is `s`.
    ///
    /// `s` is reachable by id before it is reachable by labels (so a ref handed out by a
    /// lookup always resolves), and `on_insert` runs under the label-hash shard's write lock
    /// once `s` has won: whatever it does (log the series definition to the WAL) happens
    /// before any other thread can find `s` by its labels.
    pub(crate) fn insert(
        &self,
        hash: u64,
        labels: &Labels,
        s: Arc<MemSeries>,
        symbols: &Symbols,
        on_insert: impl FnOnce(),
    ) -> (Arc<MemSeries>, bool) {
        self.put_id(Arc::clone(&s));
        let mut shard = self.by_hash[hash_shard(hash)].write();
        if let Some(e) = shard.find(hash, |x| x.labels_eq(symbols, labels)).cloned() {
            drop(shard);
            // Nobody learnt the losing id: clear its slot.
            if let Some(slot) = self.by_id[id_shard(s.id)].write().get_mut(id_slot(s.id)) {
                *slot = None;
            }
            return (e, false);
        }
        shard.insert(hash, Arc::clone(&s));
        on_insert();
        drop(shard);
        (s, true)
    }

    /// Inserts a series known to be new (WAL replay: ids and labels come from the log).
    pub(crate) fn insert_replayed(&self, hash: u64, s: Arc<MemSeries>) {
        self.by_hash[hash_shard(hash)].write().insert(hash, Arc::clone(&s));
        self.put_id(s);
    }

    /// Removes series `id` (whose labels hash to `hash`).
    pub(crate) fn remove(&self, hash: u64, id: u32) {
        self.by_hash[hash_shard(hash)].write().remove(hash, id);
        if let Some(slot) = self.by_id[id_shard(id)].write().get_mut(id_slot(id)) {
            *slot = None;
        }
    }

    /// Calls `f` with every series (shard by shard; no lock held while `f` runs).
    pub(crate) fn for_each(&self, mut f: impl FnMut(&Arc<MemSeries>)) {
        for shard in self.by_id.iter() {
            let batch: Vec<Arc<MemSeries>> = shard.read().iter().flatten().cloned().collect();
            for s in &batch {
                f(s);
            }
        }
    }

    /// Resident bytes of the two maps (entries and control bytes; not the series).
    pub(crate) fn memory_bytes(&self) -> usize {
        let id: usize = self.by_id.iter().map(|s| s.read().capacity() * 8).sum();
        let h: usize = self.by_hash.iter().map(|s| s.read().memory_bytes()).sum();
        id + h
    }
}

thread_local! {
    /// Reused buffer for [`labels_hash`]: the label pairs laid out for one-shot hashing.
    static HASH_BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Hashes `(name, value)` pairs for the series maps: xxh3 over `name 0xff value 0xff ...`
/// (0xff never occurs in UTF-8), laid out in a reused thread-local buffer and hashed in one
/// shot, which is several times faster than streaming 2n small updates. An in-memory key only,
/// never persisted.
fn hash_pairs<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>) -> u64 {
    HASH_BUF.with(|b| {
        let mut b = b.borrow_mut();
        b.clear();
        for (n, v) in pairs {
            b.extend_from_slice(n.as_bytes());
            b.push(0xff);
            b.extend_from_slice(v.as_bytes());
            b.push(0xff);
        }
        xxhash_rust::xxh3::xxh3_64(&b)
    })
}

/// The hash the series maps are keyed by.
#[inline]
pub(crate) fn labels_hash(labels: &Labels) -> u64 {
    hash_pairs(labels.iter().map(|l| (l.name.as_str(), l.value.as_str())))
}

/// The hash of a series from its interned labels (same value as [`labels_hash`]).
pub(crate) fn interned_hash(labels: &[(u32, u32)], symbols: &Symbols) -> u64 {
    hash_pairs(
        labels.iter().map(|&(n, v)| (symbols.resolve(n).unwrap_or_default(), symbols.resolve(v).unwrap_or_default())),
    )
}

#[allow(dead_code)]
fn _assert_send_sync() {
    fn f<T: Send + Sync>() {}
    f::<MemSeries>();
    f::<SeriesMaps>();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> CutPolicy {
        CutPolicy { samples_per_chunk: 3, histogram_chunk_bytes: 1024, chunk_range_ms: 100 }
    }

    #[test]
    fn interned_and_string_hashes_agree() {
        let symbols = Symbols::new();
        let l = Labels::from_pairs([("__name__", "up"), ("job", "a")]);
        let pairs: Vec<(u32, u32)> = l.iter().map(|x| (symbols.intern(&x.name), symbols.intern(&x.value))).collect();
        assert_eq!(labels_hash(&l), interned_hash(&pairs, &symbols));
        assert_ne!(labels_hash(&l), labels_hash(&Labels::from_pairs([("__name__", "upj"), ("ob", "a")])));
    }

    #[test]
    fn order_rules() {
        let mut st = SeriesState::new(0);
        assert_eq!(st.check_float(5, 1.0), Ok(true));
        st.last_t = 5;
        st.last_v = 1.0f64.to_bits();
        st.last_kind = Kind::Float;
        assert_eq!(st.check_float(4, 1.0), Err(OrderViolation::OutOfOrder { newest_t_ms: 5 }));
        assert_eq!(st.check_float(5, 1.0), Ok(false), "exact duplicate is dropped");
        assert_eq!(st.check_float(5, 2.0), Err(OrderViolation::Duplicate));
        assert_eq!(st.check_float(6, 2.0), Ok(true));
        assert_eq!(st.check_histogram(5, &FloatHistogram::default()), Err(OrderViolation::TypeConflict));
        st.last_v = crate::STALE_NAN_BITS;
        assert_eq!(st.check_float(5, crate::stale_nan()), Ok(false), "stale marker compares bit-wise");
        assert_eq!(st.check_float(5, f64::NAN), Err(OrderViolation::Duplicate), "other NaNs differ from the stale marker");
    }

    #[test]
    fn open_chunk_snapshot_is_shared_until_the_chunk_changes() {
        let dir = tempfile::tempdir().unwrap();
        let store = ChunkStore::open(dir.path()).unwrap();
        let mut st = SeriesState::new(0);
        let p = policy();
        st.append_float(1, 0, 100, 1.0, &p, &store);
        st.append_float(1, 0, 101, 2.0, &p, &store);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        st.chunks_in(0, 1_000, &store, &mut a).unwrap();
        st.chunks_in(0, 1_000, &store, &mut b).unwrap();
        assert_eq!(a.len(), 1);
        assert!(std::ptr::eq(a[0].bytes.as_slice(), b[0].bytes.as_slice()), "unchanged chunk: one copy shared");
        st.append_float(1, 0, 102, 3.0, &p, &store);
        let mut c = Vec::new();
        st.chunks_in(0, 1_000, &store, &mut c).unwrap();
        let samples = |h: &ChunkHandle| {
            let mut it = crate::chunkenc::ChunkIter::new(h.encoding, h.bytes.as_slice());
            let mut v = Vec::new();
            while it.next() == crate::ValueType::Float {
                v.push(it.at());
            }
            v
        };
        assert_eq!(samples(&a[0]), vec![(100, 1.0), (101, 2.0)], "an earlier snapshot keeps its samples");
        assert_eq!(samples(&c[0]), vec![(100, 1.0), (101, 2.0), (102, 3.0)]);
        assert_eq!(c[0].max_t_ms, 102);
    }

    #[test]
    fn cuts_at_sample_count_and_block_boundary() {
        let dir = tempfile::tempdir().unwrap();
        let store = ChunkStore::open(dir.path()).unwrap();
        let mut st = SeriesState::new(0);
        let p = policy();
        let mut cuts = 0;
        for t in [10, 20, 30, 40, 99, 100, 101] {
            cuts += st.append_float(1, 0, t, t as f64, &p, &store);
        }
        // [10,20,30] cut at count, [40,99] cut at the boundary 100, [100,101] open.
        assert_eq!(cuts, 2);
        let b: Vec<(i64, i64)> = st.closed.iter().map(|c| (c.min_t, c.max_t)).collect();
        assert_eq!(b, vec![(10, 30), (40, 99)]);
        assert_eq!(st.open.bounds(), Some((100, 101)));
        let mut hs = Vec::new();
        st.chunks_in(35, 100, &store, &mut hs).unwrap();
        assert_eq!(hs.len(), 2);
    }
}
