//! Chunks whose samples carry start timestamps (ST): [`Encoding::FloatSt`] and
//! [`Encoding::HistogramSt`].
//!
//! A start timestamp is the time, ms since the epoch, from which a sample's value accumulates
//! (OpenTelemetry's and Prometheus' "created" or start time); 0 means unknown, Prometheus'
//! convention. A counter with a known start has the same ST on every sample until it resets
//! ("cumulative" shape); a delta series has on every sample the previous sample's timestamp
//! ("delta" shape). The column below codes those two shapes in one and two bits per sample.
//!
//! The wrapped chunk is the plain float or histogram chunk, unchanged: only series that have
//! start timestamps use these encodings (the head opens one when a series' first sample with an
//! ST arrives), so series without start timestamps pay nothing.
//!
//! # Layout
//!
//! ```text
//! FloatSt (encoding byte 5) / HistogramSt (encoding byte 6)
//!   n          uvarint  number of samples (the inner chunk's, repeated so that
//!                       [`super::num_samples`] reads every encoding's count the same way)
//!   version    u8       1
//!   inner      u8       the inner chunk's encoding: FloatSt wraps 1 (XorFloat), 2 (DecimalFloat)
//!                       or 4 (SeekableFloat); HistogramSt wraps 3 (Histogram)
//!   inner_len  uvarint  bytes of the inner chunk
//!   inner      inner_len bytes: the whole inner chunk, in its own layout
//!   st column  bit stream (MSB first, zero-padded to a byte), one code per sample in order;
//!              "previous" is the sample before it in this chunk (for the first sample: ST 0,
//!              no timestamp):
//!                0                  ST equals the previous sample's ST       (cumulative)
//!                10                 ST equals the previous sample's timestamp (delta)
//!                11  varbit(st - t) any other ST, relative to the sample's own timestamp
//! ```
//!
//! `varbit` is the signed bucketed code of [`super::bits`]. Measured cost of the column (test
//! `st_column_bits_per_sample`): 1 bit per sample for a cumulative series and 2 bits per sample
//! for a delta series, after the first sample's explicit code.

use super::bits::{get_uvarint, put_uvarint, BitReader, BitWriter};
use super::float_iter::FloatIter;
use super::histogram::HistogramIter;
use super::{Encoding, FloatChunkBuilder, HistogramChunkBuilder, ValueType};
use crate::histogram::{CounterResetHint, FloatHistogram};

/// The layout version written after the sample count.
const VERSION: u8 = 1;

/// Writes the ST column (see the module doc).
#[derive(Clone, Debug, Default)]
pub struct StColumnWriter {
    w: BitWriter,
    prev_st: i64,
    /// The previous sample's timestamp; `None` before the first sample.
    prev_t: Option<i64>,
}

impl StColumnWriter {
    /// Codes `st_ms` for a sample at `t_ms`.
    pub fn append(&mut self, st_ms: i64, t_ms: i64) {
        if st_ms == self.prev_st {
            self.w.write_bit(false);
        } else if Some(st_ms) == self.prev_t {
            self.w.write_bits(0b10, 2);
        } else {
            self.w.write_bits(0b11, 2);
            self.w.write_varbit(st_ms.wrapping_sub(t_ms));
        }
        self.prev_st = st_ms;
        self.prev_t = Some(t_ms);
    }

    /// Bits written so far.
    pub fn bit_len(&self) -> usize {
        self.w.bit_len()
    }

    /// Bytes the column takes once padded.
    pub fn byte_len(&self) -> usize {
        self.w.byte_len()
    }

    /// Resident bytes.
    pub fn memory_bytes(&self) -> usize {
        self.w.capacity_bytes()
    }

    /// Empties the column, keeping its buffer.
    pub fn clear(&mut self) {
        self.w.clear();
        self.prev_st = 0;
        self.prev_t = None;
    }

    /// Appends the padded column to `out`.
    pub fn copy_to(&self, out: &mut Vec<u8>) {
        self.w.copy_to(out);
    }
}

/// Reads the ST column in step with the inner chunk's samples.
#[derive(Clone, Debug)]
struct StColumnReader<'a> {
    r: BitReader<'a>,
    prev_st: i64,
    prev_t: Option<i64>,
}

impl<'a> StColumnReader<'a> {
    fn new(b: &'a [u8]) -> Self {
        StColumnReader { r: BitReader::new(b), prev_st: 0, prev_t: None }
    }

    /// The ST of the next sample, at `t_ms`; `None` if the column is truncated.
    #[inline]
    fn next(&mut self, t_ms: i64) -> Option<i64> {
        let st = if !self.r.read_bit()? {
            self.prev_st
        } else if !self.r.read_bit()? {
            self.prev_t?
        } else {
            t_ms.wrapping_add(self.r.read_varbit()?)
        };
        self.prev_st = st;
        self.prev_t = Some(t_ms);
        Some(st)
    }
}

/// Assembles an ST chunk from its inner chunk and column.
fn assemble(inner_enc: Encoding, inner: &[u8], n: usize, col: &StColumnWriter) -> Vec<u8> {
    let mut out = Vec::with_capacity(inner.len() + col.byte_len() + 16);
    put_uvarint(&mut out, n as u64);
    out.push(VERSION);
    out.push(inner_enc as u8);
    put_uvarint(&mut out, inner.len() as u64);
    out.extend_from_slice(inner);
    col.copy_to(&mut out);
    out
}

/// The parts of an ST chunk.
struct Parts<'a> {
    inner_enc: Encoding,
    inner: &'a [u8],
    column: &'a [u8],
}

fn split(outer: Encoding, b: &[u8]) -> Result<Parts<'_>, &'static str> {
    let mut p = 0;
    let n = get_uvarint(b, &mut p).ok_or("st chunk: truncated sample count")?;
    let version = *b.get(p).ok_or("st chunk: truncated header")?;
    if version != VERSION {
        return Err("st chunk: unknown version");
    }
    let inner_enc = b.get(p + 1).and_then(|&e| Encoding::from_u8(e)).ok_or("st chunk: bad inner encoding")?;
    let ok = match outer {
        Encoding::FloatSt => matches!(inner_enc, Encoding::XorFloat | Encoding::DecimalFloat | Encoding::SeekableFloat),
        Encoding::HistogramSt => inner_enc == Encoding::Histogram,
        _ => false,
    };
    if !ok {
        return Err("st chunk: inner encoding does not match");
    }
    p += 2;
    let len = get_uvarint(b, &mut p).ok_or("st chunk: truncated inner length")?;
    let end = usize::try_from(len).ok().and_then(|l| p.checked_add(l)).filter(|&e| e <= b.len());
    let end = end.ok_or("st chunk: inner chunk longer than the chunk")?;
    let inner = &b[p..end];
    if super::num_samples(inner_enc, inner).ok().map(u64::from) != Some(n) {
        return Err("st chunk: sample count differs from the inner chunk's");
    }
    Ok(Parts { inner_enc, inner, column: &b[end..] })
}

/// Builds a [`Encoding::FloatSt`] chunk: the head's open chunk for a series with start
/// timestamps.
#[derive(Default)]
pub struct FloatStChunkBuilder {
    inner: FloatChunkBuilder,
    col: StColumnWriter,
}

impl FloatStChunkBuilder {
    /// An empty chunk.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a sample (`t_ms` greater than the previous one's); `st_ms` 0 means no ST.
    pub fn append(&mut self, st_ms: i64, t_ms: i64, v: f64) {
        self.inner.append(t_ms, v);
        self.col.append(st_ms, t_ms);
    }

    /// Samples in the chunk.
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// True before the first sample.
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }

    /// First timestamp, ms.
    pub fn min_t(&self) -> Option<i64> {
        self.inner.min_t()
    }

    /// Last timestamp, ms.
    pub fn max_t(&self) -> Option<i64> {
        self.inner.max_t()
    }

    /// Resident bytes.
    pub fn memory_bytes(&self) -> usize {
        self.inner.memory_bytes() + self.col.memory_bytes()
    }

    /// The chunk as it stands (the builder is unchanged).
    pub fn snapshot_bytes(&self) -> (Encoding, Vec<u8>) {
        let (enc, b) = self.inner.snapshot_bytes();
        (Encoding::FloatSt, assemble(enc, &b, self.len(), &self.col))
    }

    /// The final chunk; empties the builder for the next chunk.
    pub fn finish(&mut self) -> (Encoding, Vec<u8>) {
        let n = self.len();
        let (enc, b) = self.inner.finish();
        let out = assemble(enc, &b, n, &self.col);
        self.col.clear();
        (Encoding::FloatSt, out)
    }
}

/// Builds a [`Encoding::HistogramSt`] chunk.
#[derive(Default)]
pub struct HistogramStChunkBuilder {
    inner: HistogramChunkBuilder,
    col: StColumnWriter,
}

impl HistogramStChunkBuilder {
    /// An empty chunk.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a sample with its counter-reset hint; `st_ms` 0 means no ST.
    pub fn append_with_hint(&mut self, st_ms: i64, t_ms: i64, h: &FloatHistogram, hint: CounterResetHint) {
        self.inner.append_with_hint(t_ms, h, hint);
        self.col.append(st_ms, t_ms);
    }

    /// Samples in the chunk.
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// True before the first sample.
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }

    /// First timestamp, ms.
    pub fn min_t(&self) -> Option<i64> {
        self.inner.min_t()
    }

    /// Last timestamp, ms.
    pub fn max_t(&self) -> Option<i64> {
        self.inner.max_t()
    }

    /// Encoded size so far, bytes (the head cuts histogram chunks by size).
    pub fn size_bytes(&self) -> usize {
        self.inner.size_bytes() + self.col.byte_len()
    }

    /// Resident bytes.
    pub fn memory_bytes(&self) -> usize {
        self.inner.memory_bytes() + self.col.memory_bytes()
    }

    /// The chunk as it stands (the builder is unchanged).
    pub fn snapshot_bytes(&self) -> (Encoding, Vec<u8>) {
        let (enc, b) = self.inner.snapshot_bytes();
        (Encoding::HistogramSt, assemble(enc, &b, self.len(), &self.col))
    }

    /// The final chunk; empties the builder for the next chunk.
    pub fn finish(&mut self) -> (Encoding, Vec<u8>) {
        let n = self.len();
        let (enc, b) = self.inner.finish();
        let out = assemble(enc, &b, n, &self.col);
        self.col.clear();
        (Encoding::HistogramSt, out)
    }
}

/// Encodes float samples (sorted by time, same length as `sts`) as one [`Encoding::FloatSt`]
/// chunk, for tests and tools.
///
/// # Panics
/// If `ts`, `vs` and `sts` differ in length (a caller bug).
pub fn encode_floats_st(ts: &[i64], vs: &[f64], sts: &[i64]) -> Vec<u8> {
    assert!(ts.len() == vs.len() && ts.len() == sts.len(), "column lengths differ");
    let mut b = FloatStChunkBuilder::new();
    for ((&t, &v), &st) in ts.iter().zip(vs).zip(sts) {
        b.append(st, t, v);
    }
    b.finish().1
}

/// The inner iterator of an ST chunk.
pub trait InnerIter {
    /// Advances to the next sample.
    fn next(&mut self) -> ValueType;
    /// The current timestamp, ms.
    fn t(&self) -> i64;
    /// The corruption found, if any.
    fn err(&self) -> Option<&'static str>;
}

impl InnerIter for FloatIter<'_> {
    #[inline]
    fn next(&mut self) -> ValueType {
        FloatIter::next(self)
    }
    #[inline]
    fn t(&self) -> i64 {
        self.at().0
    }
    fn err(&self) -> Option<&'static str> {
        FloatIter::err(self)
    }
}

impl InnerIter for HistogramIter<'_> {
    #[inline]
    fn next(&mut self) -> ValueType {
        HistogramIter::next(self)
    }
    #[inline]
    fn t(&self) -> i64 {
        HistogramIter::t(self)
    }
    fn err(&self) -> Option<&'static str> {
        HistogramIter::err(self)
    }
}

/// Iterates an ST chunk: the inner chunk's samples, each with its ST. A seek decodes forward
/// sample by sample (the column has no seek points; a chunk holds at most a head chunk's
/// samples, ST chunks are not merged on compaction). Never panics on corrupt bytes.
#[derive(Clone, Debug)]
pub struct StIter<'a, I> {
    /// The inner chunk's iterator.
    pub inner: I,
    col: StColumnReader<'a>,
    st: i64,
    state: ValueType,
    err: Option<&'static str>,
}

impl<'a> StIter<'a, FloatIter<'a>> {
    /// Over a [`Encoding::FloatSt`] chunk.
    pub fn new_float(b: &'a [u8]) -> Self {
        match split(Encoding::FloatSt, b) {
            Ok(p) => StIter::with(FloatIter::new(p.inner_enc, p.inner), p.column, None),
            Err(e) => StIter::with(FloatIter::new(Encoding::XorFloat, &[]), &[], Some(e)),
        }
    }
}

impl<'a> StIter<'a, HistogramIter<'a>> {
    /// Over a [`Encoding::HistogramSt`] chunk.
    pub fn new_histogram(b: &'a [u8]) -> Self {
        match split(Encoding::HistogramSt, b) {
            Ok(p) => StIter::with(HistogramIter::new(p.inner), p.column, None),
            Err(e) => StIter::with(HistogramIter::new(&[]), &[], Some(e)),
        }
    }

    /// Re-targets at another [`Encoding::HistogramSt`] chunk, keeping the decode buffers.
    pub fn reset(&mut self, b: &'a [u8]) {
        self.st = 0;
        self.state = ValueType::None;
        match split(Encoding::HistogramSt, b) {
            Ok(p) => {
                self.inner.reset(p.inner);
                self.col = StColumnReader::new(p.column);
                self.err = None;
            }
            Err(e) => {
                self.inner.reset(&[]);
                self.col = StColumnReader::new(&[]);
                self.err = Some(e);
            }
        }
    }
}

impl<'a, I: InnerIter> StIter<'a, I> {
    fn with(inner: I, column: &'a [u8], err: Option<&'static str>) -> Self {
        StIter { inner, col: StColumnReader::new(column), st: 0, state: ValueType::None, err }
    }

    /// Advances to the next sample. Not inlined: [`super::ChunkIter::next`] dispatches to it
    /// next to the plain encodings' decoders, whose inlining it must not crowd out (series
    /// without start timestamps are the common path).
    #[inline(never)]
    pub fn next(&mut self) -> ValueType {
        if self.err.is_some() {
            return ValueType::None;
        }
        let vt = self.inner.next();
        if vt == ValueType::None {
            self.state = ValueType::None;
            return vt;
        }
        match self.col.next(self.inner.t()) {
            Some(st) => {
                self.st = st;
                self.state = vt;
                vt
            }
            None => {
                self.err = Some("st chunk: truncated start timestamp column");
                self.state = ValueType::None;
                ValueType::None
            }
        }
    }

    /// Advances to the first sample with `t >= t_ms`; stays put if already there.
    #[inline(never)]
    pub fn seek(&mut self, t_ms: i64) -> ValueType {
        if self.state != ValueType::None && self.inner.t() >= t_ms {
            return self.state;
        }
        loop {
            let vt = self.next();
            if vt == ValueType::None || self.inner.t() >= t_ms {
                return vt;
            }
        }
    }

    /// The current sample's start timestamp, ms (0: none).
    #[inline]
    pub fn st(&self) -> i64 {
        self.st
    }

    /// The corruption found, if any (the inner chunk's or the column's).
    pub fn err(&self) -> Option<&'static str> {
        self.err.or_else(|| self.inner.err())
    }
}
