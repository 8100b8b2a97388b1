//! Chunk encodings: how a run of one series' samples is laid out in bytes.
//!
//! Every chunk is self-describing given its [`Encoding`] byte (stored next to it by whoever
//! stores the chunk: the head chunk file, the block chunk file). Encodings are versioned by
//! their byte: a new layout gets a new byte, an old one is never changed in place.
//!
//! | byte | encoding | layout |
//! |------|----------|--------|
//! | 0 | [`Encoding::Raw`] | `n: u32 LE`, then `n` × `t_ms: i64 LE`, then `n` × `v: u64 LE` (f64 bits) |
//! | 1 | [`Encoding::XorFloat`] | header, delta-of-delta timestamp bit stream, Gorilla XOR value bit stream ([`float`]) |
//! | 2 | [`Encoding::DecimalFloat`] | header with decimal scale and value code, timestamp stream, mantissa deltas or delta-of-deltas (varbit or Rice, optionally divided by a common factor; none for a constant chunk) ([`float`]) |
//! | 3 | [`Encoding::Histogram`] | header, timestamp stream, one byte-aligned record per native histogram ([`histogram`]) |
//! | 4 | [`Encoding::SeekableFloat`] | sample count, version, inner encoding (1 or 2), seek point table, then the whole inner float chunk ([`seek_points`]) |
//! | 5 | [`Encoding::FloatSt`] | sample count, version, inner encoding (1, 2 or 4), inner length, the whole inner float chunk, then a start-timestamp column ([`st`]) |
//! | 6 | [`Encoding::HistogramSt`] | as 5 around a histogram chunk (inner encoding 3) ([`st`]) |
//!
//! `Raw` is uncompressed and exists for tests, tools and as the always-correct fallback.
//!
//! # Writing and reading
//! The head appends to a [`FloatChunkBuilder`] or [`HistogramChunkBuilder`] (its open chunk),
//! serves queries from `snapshot_bytes()`, and cuts the chunk with `finish()` at
//! [`SAMPLES_PER_CHUNK`] samples (floats) or [`HISTOGRAM_CHUNK_TARGET_BYTES`] (histograms).
//! Readers decode any encoding with [`ChunkIter`] (static dispatch, allocation-free per sample,
//! never a panic on corrupt bytes: the iterator stops and [`ChunkIter::err`] says why).
//!
//! Timestamps and values are separate columns in every compressed encoding: a seek scans the
//! timestamp column alone and then advances the value column by the count it skipped.

pub mod bits;
pub mod float;
pub mod float_iter;
pub mod histogram;
pub mod raw;
pub mod seek_points;
pub mod st;
#[cfg(test)]
mod st_tests;
#[cfg(test)]
mod seek_points_tests;
#[cfg(test)]
mod tests;
pub mod ts;
pub mod workload;

pub use float::{encode_floats, FloatChunkBuilder};
pub use seek_points::with_seek_points;
pub use histogram::HistogramChunkBuilder;
pub use st::{encode_floats_st, FloatStChunkBuilder, HistogramStChunkBuilder};

/// Samples per float chunk at which the head cuts its open chunk.
///
/// Measured with the node-exporter-like workload ([`workload`], 15 s scrapes; test
/// `chunkenc::tests::chunk_size_table`): bytes per sample are 1.67 / 1.37 / 1.22 / 1.14 at
/// 30 / 60 / 120 / 240 samples per chunk, while a full open chunk takes 324 / 358 / 403 / 641
/// bytes per series. Going from 120 to 240 saves 6 % of disk but costs 59 % more head memory
/// per series and doubles the linear scan of a seek into a chunk; going down to 60 costs 12 %
/// more disk. 120 samples is also 30 minutes at 15 s, Prometheus' cut (`tsdb/head_append.go`).
pub const SAMPLES_PER_CHUNK: usize = 120;

/// Encoded size at which the head cuts a histogram chunk, bytes (Prometheus'
/// `targetBytesPerHistogramChunk`: histogram samples are large and vary in size, so histogram
/// chunks are cut by size, with at most [`SAMPLES_PER_CHUNK`] samples).
pub const HISTOGRAM_CHUNK_TARGET_BYTES: usize = 1024;

/// What [`ChunkIter::at_histogram`] returns when the iterator is not on a histogram sample
/// (a caller bug): an empty histogram, schema 0, all counts zero.
pub static EMPTY_HISTOGRAM: FloatHistogram = FloatHistogram {
    counter_reset_hint: crate::histogram::CounterResetHint::Unknown,
    schema: 0,
    zero_threshold: 0.0,
    zero_count: 0.0,
    count: 0.0,
    sum: 0.0,
    positive_spans: Vec::new(),
    positive_buckets: Vec::new(),
    negative_spans: Vec::new(),
    negative_buckets: Vec::new(),
    custom_values: Vec::new(),
};

use std::sync::Arc;

use crate::histogram::FloatHistogram;

/// A chunk encoding, stored as one byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Encoding {
    /// Uncompressed columns (see the module table).
    Raw = 0,
    /// Float samples, delta-of-delta timestamps and Gorilla XOR values ([`float`]).
    XorFloat = 1,
    /// Float samples that are all exact decimals `m / 10^scale`: delta-of-delta timestamps and
    /// varbit mantissa deltas ([`float`]).
    DecimalFloat = 2,
    /// Native histogram samples ([`histogram`]).
    Histogram = 3,
    /// A long [`Encoding::XorFloat`] or [`Encoding::DecimalFloat`] chunk with a table of seek
    /// points, for seeks that resume value decoding mid-chunk ([`seek_points`]).
    SeekableFloat = 4,
    /// Float samples with per-sample start timestamps: a float chunk (1, 2 or 4) plus an ST
    /// column ([`st`]).
    FloatSt = 5,
    /// Native histogram samples with per-sample start timestamps: a histogram chunk plus an
    /// ST column ([`st`]).
    HistogramSt = 6,
}

impl Encoding {
    /// Decodes the stored byte.
    pub fn from_u8(b: u8) -> Option<Encoding> {
        match b {
            0 => Some(Encoding::Raw),
            1 => Some(Encoding::XorFloat),
            2 => Some(Encoding::DecimalFloat),
            3 => Some(Encoding::Histogram),
            4 => Some(Encoding::SeekableFloat),
            5 => Some(Encoding::FloatSt),
            6 => Some(Encoding::HistogramSt),
            _ => None,
        }
    }

    /// True for the encodings whose samples carry start timestamps ([`st`]).
    #[inline]
    pub fn has_st(self) -> bool {
        matches!(self, Encoding::FloatSt | Encoding::HistogramSt)
    }

    /// True for the encodings of native histogram samples.
    #[inline]
    pub fn is_histogram(self) -> bool {
        matches!(self, Encoding::Histogram | Encoding::HistogramSt)
    }
}

/// The number of samples in an encoded chunk, read from its header alone (no decoding): the
/// leading `n` (a `u32 LE` for [`Encoding::Raw`], a uvarint for every other encoding; see the
/// module table). For block statistics, which need counts but not samples.
///
/// # Errors
/// A description of the corruption if the header is truncated or the count overflows `u32`.
/// The rest of the chunk is not validated.
pub fn num_samples(encoding: Encoding, bytes: &[u8]) -> Result<u32, &'static str> {
    match encoding {
        Encoding::Raw => {
            let hdr = bytes.get(..4).ok_or("raw chunk: truncated sample count")?;
            Ok(u32::from_le_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]))
        }
        Encoding::XorFloat
        | Encoding::DecimalFloat
        | Encoding::Histogram
        | Encoding::SeekableFloat
        | Encoding::FloatSt
        | Encoding::HistogramSt => {
            let mut p = 0;
            let n = bits::get_uvarint(bytes, &mut p).ok_or("chunk: truncated sample count")?;
            u32::try_from(n).map_err(|_| "chunk: sample count too large")
        }
    }
}

/// The bytes of one encoded chunk, shared with whatever owns them (an mmap'd file, or a heap
/// buffer for a snapshot of an open head chunk). Cloning is a reference-count increment.
#[derive(Clone)]
pub struct ChunkBytes {
    owner: Arc<dyn AsRef<[u8]> + Send + Sync>,
    start: usize,
    end: usize,
}

impl ChunkBytes {
    /// Owns a heap buffer.
    pub fn from_vec(v: Vec<u8>) -> Self {
        let end = v.len();
        ChunkBytes { owner: Arc::new(v), start: 0, end }
    }

    /// A sub-range of a shared owner (e.g. one chunk inside an mmap'd file).
    ///
    /// # Panics
    /// If the range is outside the owner's bytes (a caller bug, not input).
    pub fn slice_of(owner: Arc<dyn AsRef<[u8]> + Send + Sync>, start: usize, end: usize) -> Self {
        assert!(start <= end && end <= (*owner).as_ref().len(), "chunk range out of bounds");
        ChunkBytes { owner, start, end }
    }

    /// The chunk's bytes.
    #[inline]
    pub fn as_slice(&self) -> &[u8] {
        &(*self.owner).as_ref()[self.start..self.end]
    }
}

impl std::fmt::Debug for ChunkBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ChunkBytes({} bytes)", self.end - self.start)
    }
}

/// One chunk of a series as a querier hands it out: its time bounds (inclusive, ms), its
/// encoding and its bytes.
#[derive(Clone, Debug)]
pub struct ChunkHandle {
    /// Timestamp of the first sample, ms.
    pub min_t_ms: i64,
    /// Timestamp of the last sample, ms.
    pub max_t_ms: i64,
    /// How `bytes` is laid out.
    pub encoding: Encoding,
    /// The encoded chunk.
    pub bytes: ChunkBytes,
}

/// What an iterator is positioned on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueType {
    /// Exhausted (or not started).
    None,
    /// A float sample: read it with `at()`.
    Float,
    /// A native histogram sample: read it with `at_histogram()`.
    Histogram,
}

/// A decoding iterator over one chunk. Static dispatch over the encodings; reusable across
/// chunks with [`ChunkIter::reset`] so that scanning many chunks allocates nothing per chunk.
pub enum ChunkIter<'a> {
    /// Over a [`Encoding::Raw`] chunk.
    Raw(raw::RawIter<'a>),
    /// Over a [`Encoding::XorFloat`], [`Encoding::DecimalFloat`] or [`Encoding::SeekableFloat`] chunk.
    Float(float_iter::FloatIter<'a>),
    /// Over a [`Encoding::Histogram`] chunk.
    Histogram(histogram::HistogramIter<'a>),
    /// Over a [`Encoding::FloatSt`] chunk.
    FloatSt(st::StIter<'a, float_iter::FloatIter<'a>>),
    /// Over a [`Encoding::HistogramSt`] chunk.
    HistogramSt(st::StIter<'a, histogram::HistogramIter<'a>>),
}

impl<'a> ChunkIter<'a> {
    /// An iterator positioned before the first sample of `bytes` in `encoding`. Corrupt bytes
    /// yield fewer samples (never a panic); the caller sees `err()`.
    pub fn new(encoding: Encoding, bytes: &'a [u8]) -> Self {
        match encoding {
            Encoding::Raw => ChunkIter::Raw(raw::RawIter::new(bytes)),
            Encoding::XorFloat | Encoding::DecimalFloat | Encoding::SeekableFloat => ChunkIter::Float(float_iter::FloatIter::new(encoding, bytes)),
            Encoding::Histogram => ChunkIter::Histogram(histogram::HistogramIter::new(bytes)),
            Encoding::FloatSt => ChunkIter::FloatSt(st::StIter::new_float(bytes)),
            Encoding::HistogramSt => ChunkIter::HistogramSt(st::StIter::new_histogram(bytes)),
        }
    }

    /// Re-targets the iterator at another chunk (a histogram iterator keeps its decode
    /// buffers, so scanning many histogram chunks allocates nothing per chunk).
    pub fn reset(&mut self, encoding: Encoding, bytes: &'a [u8]) {
        match (self, encoding) {
            (ChunkIter::Histogram(it), Encoding::Histogram) => it.reset(bytes),
            (ChunkIter::HistogramSt(it), Encoding::HistogramSt) => it.reset(bytes),
            (this, _) => *this = ChunkIter::new(encoding, bytes),
        }
    }

    /// Advances to the next sample.
    #[inline]
    pub fn next(&mut self) -> ValueType {
        match self {
            ChunkIter::Raw(it) => it.next(),
            ChunkIter::Float(it) => it.next(),
            ChunkIter::Histogram(it) => it.next(),
            ChunkIter::FloatSt(it) => it.next(),
            ChunkIter::HistogramSt(it) => it.next(),
        }
    }

    /// Advances to the first sample with `t >= t_ms` (stays put if already there).
    #[inline]
    pub fn seek(&mut self, t_ms: i64) -> ValueType {
        match self {
            ChunkIter::Raw(it) => it.seek(t_ms),
            ChunkIter::Float(it) => it.seek(t_ms),
            ChunkIter::Histogram(it) => it.seek(t_ms),
            ChunkIter::FloatSt(it) => it.seek(t_ms),
            ChunkIter::HistogramSt(it) => it.seek(t_ms),
        }
    }

    /// The current float sample `(t_ms, v)`. On a histogram sample (a caller bug: check the
    /// [`ValueType`]) this returns `(t_ms, NaN)`.
    #[inline]
    pub fn at(&self) -> (i64, f64) {
        match self {
            ChunkIter::Raw(it) => it.at(),
            ChunkIter::Float(it) => it.at(),
            ChunkIter::Histogram(it) => (it.t(), f64::NAN),
            ChunkIter::FloatSt(it) => it.inner.at(),
            ChunkIter::HistogramSt(it) => (it.inner.t(), f64::NAN),
        }
    }

    /// The current histogram sample. Only meaningful when positioned on
    /// [`ValueType::Histogram`]; on a float chunk (a caller bug) this returns the current
    /// timestamp and [`EMPTY_HISTOGRAM`] instead of panicking.
    pub fn at_histogram(&self) -> (i64, &FloatHistogram) {
        match self {
            ChunkIter::Histogram(it) => it.at_histogram(),
            ChunkIter::HistogramSt(it) => it.inner.at_histogram(),
            _ => (self.t(), &EMPTY_HISTOGRAM),
        }
    }

    /// The current sample's timestamp, ms.
    #[inline]
    pub fn t(&self) -> i64 {
        match self {
            ChunkIter::Raw(it) => it.at().0,
            ChunkIter::Float(it) => it.at().0,
            ChunkIter::Histogram(it) => it.t(),
            ChunkIter::FloatSt(it) => it.inner.at().0,
            ChunkIter::HistogramSt(it) => it.inner.t(),
        }
    }

    /// The current sample's start timestamp, ms; 0 when it has none (every encoding without
    /// an ST column).
    #[inline]
    pub fn st(&self) -> i64 {
        match self {
            ChunkIter::FloatSt(it) => it.st(),
            ChunkIter::HistogramSt(it) => it.st(),
            _ => 0,
        }
    }

    /// Set when the chunk's bytes were found to be corrupt.
    pub fn err(&self) -> Option<&'static str> {
        match self {
            ChunkIter::Raw(it) => it.err(),
            ChunkIter::Float(it) => it.err(),
            ChunkIter::Histogram(it) => it.err(),
            ChunkIter::FloatSt(it) => it.err(),
            ChunkIter::HistogramSt(it) => it.err(),
        }
    }
}
