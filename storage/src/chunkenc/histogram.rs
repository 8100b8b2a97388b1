//! Native histogram chunks: [`Encoding::Histogram`], its builder [`HistogramChunkBuilder`] and
//! iterator [`HistogramIter`].
//!
//! # Layout
//!
//! ```text
//! Histogram (encoding byte 3)
//!   n        uvarint   number of samples; an empty chunk is this byte (0) alone
//!   ts hdr   t0 varint, ts_mode u8, [grid interval varint], ts_len uvarint ([`super::ts`])
//!   ts       ts_len bytes: the timestamp bit stream, exactly as the float chunks
//!   records  n records, byte-aligned, one per sample:
//!     flags  u8        bits 0-1 counter-reset hint (0 unknown, 1 reset, 2 not reset,
//!                      3 gauge); bit 2 set: a layout follows; bits 3-7 zero
//!     layout (present in the first record and whenever it changed):
//!       schema          varint
//!       zero_threshold  8 bytes, f64 bits LE
//!       positive spans  uvarint count, then per span: varint offset, uvarint length
//!       negative spans  the same
//!       buckets         uvarint positive bucket count, uvarint negative bucket count
//!       custom_values   uvarint count, then each as fxor against the previous bound (first: 0)
//!     values: count, sum, zero_count, each positive bucket, each negative bucket, as
//!       fxor(value, previous) = uvarint(reverse_bits(bits(value) XOR bits(previous)))
//!       where previous is the same field of the previous record (0 for the first record);
//!       for buckets, the previous record's same bucket if this record has no layout, else 0
//! ```
//!
//! Reversing the XOR's bits turns the zero low mantissa bits of "round" counts into leading
//! zeros, so LEB128 drops them: an unchanged value costs 1 byte, a small count change 2-3.
//! The layout (spans, schema, threshold, bounds) is stored only when it changes, as Prometheus'
//! histogram chunks do (`tsdb/chunkenc/float_histogram.go` cuts a new chunk instead).
//! All fields, NaN payloads included, round-trip bit-for-bit.

use super::bits::{get_uvarint, get_varint, put_uvarint, put_varint};
use super::ts::{TsReader, TsWriter};
use super::{Encoding, ValueType};
use crate::histogram::{CounterResetHint, FloatHistogram, Span};

const FLAG_LAYOUT: u8 = 1 << 2;
const FLAG_HINT_MASK: u8 = 0b11;

#[inline]
fn put_fxor(out: &mut Vec<u8>, v: f64, prev: f64) {
    put_uvarint(out, (v.to_bits() ^ prev.to_bits()).reverse_bits());
}

#[inline]
fn get_fxor(b: &[u8], p: &mut usize, prev: f64) -> Option<f64> {
    let x = get_uvarint(b, p)?.reverse_bits();
    Some(f64::from_bits(prev.to_bits() ^ x))
}

fn same_f64s(a: &[f64], b: &[f64]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

fn same_layout(a: &FloatHistogram, b: &FloatHistogram) -> bool {
    a.schema == b.schema
        && a.zero_threshold.to_bits() == b.zero_threshold.to_bits()
        && a.positive_spans == b.positive_spans
        && a.negative_spans == b.negative_spans
        && a.positive_buckets.len() == b.positive_buckets.len()
        && a.negative_buckets.len() == b.negative_buckets.len()
        && same_f64s(&a.custom_values, &b.custom_values)
}

/// Copies `src` into `dst` reusing `dst`'s vectors (derived `clone_from` would reallocate).
fn copy_histogram(dst: &mut FloatHistogram, src: &FloatHistogram) {
    dst.counter_reset_hint = src.counter_reset_hint;
    dst.schema = src.schema;
    dst.zero_threshold = src.zero_threshold;
    dst.zero_count = src.zero_count;
    dst.count = src.count;
    dst.sum = src.sum;
    dst.positive_spans.clone_from(&src.positive_spans);
    dst.positive_buckets.clone_from(&src.positive_buckets);
    dst.negative_spans.clone_from(&src.negative_spans);
    dst.negative_buckets.clone_from(&src.negative_buckets);
    dst.custom_values.clone_from(&src.custom_values);
}

fn put_spans(out: &mut Vec<u8>, spans: &[Span]) {
    put_uvarint(out, spans.len() as u64);
    for s in spans {
        put_varint(out, i64::from(s.offset));
        put_uvarint(out, u64::from(s.length));
    }
}

/// The head's open histogram chunk. Appends are allocation-free once the buffers have grown
/// (the previous sample is kept, reusing its vectors, to XOR against).
#[derive(Clone, Debug, Default)]
pub struct HistogramChunkBuilder {
    ts: TsWriter,
    recs: Vec<u8>,
    prev: FloatHistogram,
}

impl HistogramChunkBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of samples appended.
    pub fn len(&self) -> usize {
        self.ts.n as usize
    }

    /// True before the first append.
    pub fn is_empty(&self) -> bool {
        self.ts.n == 0
    }

    /// Timestamp of the first sample, ms (`None` when empty).
    pub fn min_t(&self) -> Option<i64> {
        (self.ts.n > 0).then_some(self.ts.t0)
    }

    /// Timestamp of the last sample, ms (`None` when empty).
    pub fn max_t(&self) -> Option<i64> {
        (self.ts.n > 0).then_some(self.ts.t_prev)
    }

    /// Encoded size of a snapshot now, bytes (compare with
    /// [`super::HISTOGRAM_CHUNK_TARGET_BYTES`]).
    pub fn size_bytes(&self) -> usize {
        if self.ts.n == 0 {
            return 1;
        }
        super::bits::uvarint_len(u64::from(self.ts.n)) + self.ts.size_bytes() + self.recs.len()
    }

    /// Resident bytes: the struct plus heap buffers (streams and the kept previous sample).
    pub fn memory_bytes(&self) -> usize {
        let p = &self.prev;
        std::mem::size_of::<Self>()
            + self.ts.w.capacity_bytes()
            + self.recs.capacity()
            + (p.positive_spans.capacity() + p.negative_spans.capacity()) * std::mem::size_of::<Span>()
            + (p.positive_buckets.capacity() + p.negative_buckets.capacity() + p.custom_values.capacity()) * 8
    }

    /// Appends a histogram sample. Any histogram is stored as given (even one failing
    /// [`FloatHistogram::validate`]; the head validates before appending).
    ///
    /// # Panics
    /// After `u32::MAX` samples (the head cuts chunks long before).
    pub fn append(&mut self, t_ms: i64, h: &FloatHistogram) {
        self.append_with_hint(t_ms, h, h.counter_reset_hint);
    }

    /// As [`Self::append`], storing `hint` as the sample's counter-reset hint instead of the
    /// one `h` carries (the head assigns hints on append, see `head::hints`).
    ///
    /// # Panics
    /// After `u32::MAX` samples (the head cuts chunks long before).
    pub fn append_with_hint(&mut self, t_ms: i64, h: &FloatHistogram, hint: CounterResetHint) {
        assert!(self.ts.n < u32::MAX, "chunk sample count overflow");
        let first = self.ts.n == 0;
        if first {
            self.recs.clear();
        }
        self.ts.append(t_ms);
        let layout = first || !same_layout(&self.prev, h);
        let out = &mut self.recs;
        out.push((hint as u8 & FLAG_HINT_MASK) | if layout { FLAG_LAYOUT } else { 0 });
        let zero = FloatHistogram::default();
        let prev = if first { &zero } else { &self.prev };
        if layout {
            put_varint(out, i64::from(h.schema));
            out.extend_from_slice(&h.zero_threshold.to_bits().to_le_bytes());
            put_spans(out, &h.positive_spans);
            put_spans(out, &h.negative_spans);
            put_uvarint(out, h.positive_buckets.len() as u64);
            put_uvarint(out, h.negative_buckets.len() as u64);
            put_uvarint(out, h.custom_values.len() as u64);
            let mut last = 0.0;
            for &c in &h.custom_values {
                put_fxor(out, c, last);
                last = c;
            }
        }
        put_fxor(out, h.count, prev.count);
        put_fxor(out, h.sum, prev.sum);
        put_fxor(out, h.zero_count, prev.zero_count);
        if layout {
            for &b in h.positive_buckets.iter().chain(&h.negative_buckets) {
                put_fxor(out, b, 0.0);
            }
        } else {
            for (&b, &p) in h.positive_buckets.iter().zip(&prev.positive_buckets) {
                put_fxor(out, b, p);
            }
            for (&b, &p) in h.negative_buckets.iter().zip(&prev.negative_buckets) {
                put_fxor(out, b, p);
            }
        }
        copy_histogram(&mut self.prev, h);
    }

    fn write(&self, best_ts: bool) -> (Encoding, Vec<u8>) {
        let mut out = Vec::with_capacity(self.size_bytes());
        put_uvarint(&mut out, u64::from(self.ts.n));
        if self.ts.n > 0 {
            if best_ts {
                let grid = self.ts.write_best(&mut out);
                grid.as_ref().unwrap_or(&self.ts.w).copy_to(&mut out);
            } else {
                self.ts.write_dod(&mut out).copy_to(&mut out);
            }
            out.extend_from_slice(&self.recs);
        }
        (Encoding::Histogram, out)
    }

    /// The chunk as it stands (for queries over the open head chunk); the builder is unchanged.
    pub fn snapshot_bytes(&self) -> (Encoding, Vec<u8>) {
        self.write(false)
    }

    /// The final chunk (the smaller timestamp mode); empties the builder (keeping its
    /// buffers) for the next chunk.
    pub fn finish(&mut self) -> (Encoding, Vec<u8>) {
        let out = self.write(true);
        self.ts.clear();
        self.recs.clear();
        out
    }
}

/// Iterator over a histogram chunk. Decodes into one reused [`FloatHistogram`]: no
/// allocation per sample once its vectors have grown. Never panics on corrupt bytes.
#[derive(Clone, Debug)]
pub struct HistogramIter<'a> {
    n: u32,
    read_t: u32,
    read_h: u32,
    ts: TsReader<'a>,
    recs: &'a [u8],
    pos: usize,
    h: FloatHistogram,
    done: bool,
    err: Option<&'static str>,
}

impl<'a> HistogramIter<'a> {
    /// Positioned before the first sample.
    pub fn new(b: &'a [u8]) -> Self {
        let mut it = HistogramIter {
            n: 0,
            read_t: 0,
            read_h: 0,
            ts: TsReader::empty(),
            recs: &[],
            pos: 0,
            h: FloatHistogram::default(),
            done: false,
            err: None,
        };
        it.reset(b);
        it
    }

    /// Re-targets at another chunk, keeping the decode buffers.
    pub fn reset(&mut self, b: &'a [u8]) {
        self.n = 0;
        self.read_t = 0;
        self.read_h = 0;
        self.ts = TsReader::empty();
        self.recs = &[];
        self.pos = 0;
        self.done = false;
        self.err = None;
        if let Err(e) = self.parse_header(b) {
            self.err = Some(e);
        }
    }

    fn parse_header(&mut self, b: &'a [u8]) -> Result<(), &'static str> {
        let mut p = 0;
        let n = get_uvarint(b, &mut p).ok_or("histogram chunk: truncated sample count")?;
        let n = u32::try_from(n).map_err(|_| "histogram chunk: sample count too large")?;
        if n == 0 {
            return if p == b.len() { Ok(()) } else { Err("histogram chunk: bytes after an empty chunk") };
        }
        let (t0, step, ts_len) = TsReader::parse_header(b, &mut p)?;
        let end = p.checked_add(ts_len).filter(|&e| e <= b.len());
        let end = end.ok_or("histogram chunk: timestamp stream longer than the chunk")?;
        self.n = n;
        self.ts = TsReader::new(t0, step, &b[p..end]);
        self.recs = &b[end..];
        Ok(())
    }

    #[cold]
    fn fail(&mut self, e: &'static str) -> ValueType {
        self.err = Some(e);
        self.n = 0;
        self.done = true;
        ValueType::None
    }

    fn next_t(&mut self) -> bool {
        if self.read_t >= self.n {
            self.done = true;
            return false;
        }
        if self.read_t > 0 && self.ts.advance().is_none() {
            self.fail("histogram chunk: truncated timestamp stream");
            return false;
        }
        self.read_t += 1;
        true
    }

    fn catch_up(&mut self) -> bool {
        while self.read_h < self.read_t {
            if let Err(e) = self.read_record() {
                self.fail(e);
                return false;
            }
            self.read_h += 1;
        }
        true
    }

    fn read_spans(b: &[u8], p: &mut usize, spans: &mut Vec<Span>) -> Result<(), &'static str> {
        const E: &str = "histogram chunk: corrupt spans";
        let count = get_uvarint(b, p).ok_or(E)?;
        // Each span takes at least two bytes: bound the count by what is left.
        if count > (b.len() - *p) as u64 / 2 {
            return Err(E);
        }
        spans.clear();
        for _ in 0..count {
            let offset = i32::try_from(get_varint(b, p).ok_or(E)?).map_err(|_| E)?;
            let length = u32::try_from(get_uvarint(b, p).ok_or(E)?).map_err(|_| E)?;
            spans.push(Span { offset, length });
        }
        Ok(())
    }

    fn read_record(&mut self) -> Result<(), &'static str> {
        const E: &str = "histogram chunk: truncated record";
        let b = self.recs;
        let p = &mut self.pos;
        let first = self.read_h == 0;
        let flags = *b.get(*p).ok_or(E)?;
        *p += 1;
        if flags & !(FLAG_HINT_MASK | FLAG_LAYOUT) != 0 {
            return Err("histogram chunk: unknown record flags");
        }
        let layout = flags & FLAG_LAYOUT != 0;
        if first && !layout {
            return Err("histogram chunk: first record without a layout");
        }
        let h = &mut self.h;
        h.counter_reset_hint = CounterResetHint::from_u8(flags & FLAG_HINT_MASK);
        if first {
            h.count = 0.0;
            h.sum = 0.0;
            h.zero_count = 0.0;
        }
        if layout {
            let schema = get_varint(b, p).ok_or(E)?;
            h.schema = i32::try_from(schema).map_err(|_| "histogram chunk: schema out of range")?;
            let zt = b.get(*p..*p + 8).ok_or(E)?;
            h.zero_threshold = f64::from_bits(u64::from_le_bytes([zt[0], zt[1], zt[2], zt[3], zt[4], zt[5], zt[6], zt[7]]));
            *p += 8;
            Self::read_spans(b, p, &mut h.positive_spans)?;
            Self::read_spans(b, p, &mut h.negative_spans)?;
            let npos = get_uvarint(b, p).ok_or(E)?;
            let nneg = get_uvarint(b, p).ok_or(E)?;
            let ncustom = get_uvarint(b, p).ok_or(E)?;
            // Every bucket and bound takes at least one byte.
            let left = (b.len() - *p) as u64;
            if npos > left || nneg > left || ncustom > left || npos + nneg + ncustom > left {
                return Err("histogram chunk: bucket counts exceed the chunk");
            }
            h.custom_values.clear();
            let mut last = 0.0;
            for _ in 0..ncustom {
                last = get_fxor(b, p, last).ok_or(E)?;
                h.custom_values.push(last);
            }
            h.positive_buckets.clear();
            h.positive_buckets.resize(npos as usize, 0.0);
            h.negative_buckets.clear();
            h.negative_buckets.resize(nneg as usize, 0.0);
        }
        h.count = get_fxor(b, p, h.count).ok_or(E)?;
        h.sum = get_fxor(b, p, h.sum).ok_or(E)?;
        h.zero_count = get_fxor(b, p, h.zero_count).ok_or(E)?;
        // After a layout the buckets were zeroed above, so XOR against them is against 0.
        for x in h.positive_buckets.iter_mut().chain(h.negative_buckets.iter_mut()) {
            *x = get_fxor(b, p, *x).ok_or(E)?;
        }
        Ok(())
    }

    /// Advances to the next sample.
    pub fn next(&mut self) -> ValueType {
        if !self.next_t() || !self.catch_up() {
            return ValueType::None;
        }
        ValueType::Histogram
    }

    /// Advances to the first sample with `t >= t_ms`; stays put if already there.
    pub fn seek(&mut self, t_ms: i64) -> ValueType {
        if self.done {
            return ValueType::None;
        }
        if self.read_t > 0 && self.read_h == self.read_t && self.ts.t() >= t_ms {
            return ValueType::Histogram;
        }
        if self.read_t == 0 || self.ts.t() < t_ms {
            if !self.next_t() {
                return ValueType::None;
            }
            match self.ts.advance_until(t_ms, self.n - self.read_t) {
                Some(k) => self.read_t += k,
                None => return self.fail("histogram chunk: truncated timestamp stream"),
            }
            if self.ts.t() < t_ms {
                self.done = true;
                return ValueType::None;
            }
        }
        if !self.catch_up() {
            return ValueType::None;
        }
        ValueType::Histogram
    }

    /// The current timestamp, ms.
    pub fn t(&self) -> i64 {
        self.ts.t()
    }

    /// The current sample.
    pub fn at_histogram(&self) -> (i64, &FloatHistogram) {
        (self.ts.t(), &self.h)
    }

    /// The corruption found, if any.
    pub fn err(&self) -> Option<&'static str> {
        self.err
    }
}
