//! Float chunks: [`Encoding::XorFloat`] and [`Encoding::DecimalFloat`], and the head's
//! append-side [`FloatChunkBuilder`].
//!
//! # Layout
//!
//! Both encodings store timestamps and values in two separate bit streams (column-wise), so a
//! reader can scan or seek the timestamp column without decoding a single value. The
//! timestamp column (delta-of-delta or grid residuals) is described in [`super::ts`]. All integers
//! in the header are LEB128 (`uvarint`) or zig-zag LEB128 (`varint`); bit streams are MSB
//! first and zero-padded to a whole byte (see [`super::bits`]).
//!
//! ```text
//! XorFloat (encoding byte 1)
//!   n        uvarint   number of samples; an empty chunk is this byte (0) alone
//!   ts hdr   t0 varint, ts_mode u8, [grid interval varint], ts_len uvarint ([`super::ts`])
//!   ts       ts_len bytes: the timestamp bit stream ([`super::ts`])
//!   values   rest: v0 as 64 raw bits, then per sample Gorilla XOR against the previous value:
//!            `0` same value; `10` + meaningful bits inside the previous leading/trailing-zero
//!            window; `11` + 5 bits leading zeros (capped at 31) + 6 bits length (64 stored
//!            as 0) + the meaningful bits (Prometheus `xorWrite`)
//!
//! DecimalFloat (encoding byte 2): every value is m / 10^scale for an integer mantissa
//! |m| <= 2^53 and 0 <= scale <= 18, exactly (bit-for-bit, checked at append)
//!   n        uvarint   number of samples (>= 1)
//!   ts hdr   as in XorFloat
//!   scale    u8        decimal exponent
//!   mode     u8        bit 0: the stream holds delta-of-deltas (else deltas);
//!                      bit 1: Rice code (else varbit); bit 2: a delta factor follows;
//!                      or exactly 8: constant, every value is m0 and the value stream
//!                      is empty; other values invalid
//!   k        u8        (Rice only) the Rice parameter, 0..=56
//!   factor   uvarint   (bit 2 only) F >= 2: every d_i is a multiple of F and the stream
//!                      codes d_i / F (memory in 4 KiB pages, disk bytes in sectors)
//!   m0       varint    first mantissa
//!   ts       ts_len bytes, as in XorFloat
//!   values   rest: for samples 1..n, x_i = d_i (deltas) or d_i - d_{i-1} with d_0 = 0
//!            (delta-of-deltas), where d_i = m_i - m_{i-1} (wrapping); each x_i as
//!            varbit(x_i), or Rice: zigzag(x_i) as (x >> k) ones, a zero, the k low bits,
//!            with quotients >= 20 escaped as 20 ones and 64 raw bits ([`super::bits`])
//! ```
//!
//! A value decodes as `(m as f64) / 10^scale` (both operands exact, one correctly rounded
//! IEEE division), and the builder only takes that path for a value whose decoding is
//! bit-identical to it. Everything else (NaN including Prometheus' stale marker, ±Inf, -0.0,
//! values with more than 18 decimals or 16 significant digits) switches the chunk to XOR, which
//! stores raw bits. Integers (counters) are the `scale = 0` case; gauges with a few decimals
//! (load averages, temperatures, CPU seconds) use a small `scale`. This is the "integer mode"
//! Prometheus lacks; VictoriaMetrics uses a similar decimal mantissa/exponent.
//!
//! # Choosing the encoding
//! While appending, the builder keeps one value stream: decimal deltas while every value so far
//! is decimal (raising the chunk's scale rewrites the stream, at most 18 times per chunk), else
//! XOR. [`FloatChunkBuilder::finish`] then prices deltas and delta-of-deltas (each in varbit
//! and in Rice code around the parameter their mean suggests) and XOR for the whole chunk and
//! keeps the smallest. Rice suits noisy increments (byte counters, random walks), whose
//! spread varbit's coarse buckets round up, and likewise the two timestamp modes. Snapshots of the open
//! chunk skip the pricing (delta-of-delta timestamps, the builder's current value stream).

use super::bits::{get_uvarint, get_varint, put_uvarint, put_varint, rice_bits, zigzag, BitReader, BitWriter};
use super::ts::{TsReader, TsWriter};
use super::float_iter::ValuePoint;
use super::seek_points::{self, PointState};
use super::Encoding;

/// Samples between the seek points the head's open chunk keeps for its snapshots
/// ([`FloatChunkBuilder::snapshot_bytes`]): a query's seek into the open chunk (an instant
/// query's lookback window ends at its newest sample) decodes at most this many values.
pub const HEAD_SEEK_POINT_INTERVAL: u32 = 16;

/// Least value-stream bits between two open-chunk seek points (or the chunk start and the
/// first point) for the later point to be kept: runs of zero codes are skipped in one step
/// anyway, so a point there would only cost bytes.
pub const HEAD_MIN_POINT_SPAN_BITS: usize = 128;

/// Largest decimal exponent of [`Encoding::DecimalFloat`]. `10^18` is exact in f64 (every
/// power of ten up to 10^22 is), which makes decoding one exact-operand division.
pub const MAX_SCALE: u8 = 18;

/// Largest mantissa magnitude: 2^53, so `m as f64` is exact.
const MAX_MANTISSA: i64 = 1 << 53;

pub(crate) const POW10: [f64; 19] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17,
    1e18,
];

/// The value a `(mantissa, scale)` pair decodes to. Encoder check and decoder share it, so an
/// accepted value always decodes to the same bits.
#[inline]
pub(crate) fn decimal_value(m: i64, scale: u8) -> f64 {
    if scale == 0 {
        m as f64
    } else {
        (m as f64) / POW10[scale as usize]
    }
}

/// `Some(m)` if `v` is exactly `m / 10^scale` with `|m| <= 2^53`.
#[inline]
pub(crate) fn to_mantissa(v: f64, scale: u8) -> Option<i64> {
    let x = v * POW10[scale as usize];
    // NaN fails this comparison, as do infinities and out-of-range values.
    #[allow(clippy::neg_cmp_op_on_partial_ord)]
    if !(x.abs() <= MAX_MANTISSA as f64) {
        return None;
    }
    // Round half away from zero without `f64::round` (a libm call on baseline x86-64):
    // truncation is exact for |x| <= 2^53, and the bit check below decides anyway.
    let t = x as i64;
    let frac = x - t as f64;
    let m = if frac >= 0.5 {
        t + 1
    } else if frac <= -0.5 {
        t - 1
    } else {
        t
    };
    (decimal_value(m, scale).to_bits() == v.to_bits()).then_some(m)
}

/// Bits [`BitWriter::write_varbit`] uses for `v`.
#[inline]
pub(crate) fn varbit_bits(v: i64) -> usize {
    let a = v.unsigned_abs();
    // Bucket with payload p holds -(2^(p-1)-1)..=2^(p-1): |v| <= 2^(p-1) suffices except for
    // the exact negative edge, which the test below catches.
    let fits = |p: u32| {
        let half = 1i64 << (p - 1);
        -(half - 1) <= v && v <= half
    };
    if a == 0 {
        1
    } else if fits(3) {
        5
    } else if fits(6) {
        9
    } else if fits(9) {
        13
    } else if fits(12) {
        17
    } else if fits(18) {
        24
    } else if fits(25) {
        32
    } else if fits(56) {
        64
    } else {
        72
    }
}

/// Gorilla XOR value encoder state (Prometheus `xorWrite`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct XorState {
    pub(crate) prev: u64,
    /// Leading zeros of the current window; 0xff before the first window.
    pub(crate) leading: u8,
    pub(crate) trailing: u8,
}

impl XorState {
    pub(crate) fn new(first: u64) -> Self {
        XorState { prev: first, leading: 0xff, trailing: 0 }
    }

    /// Writes `v` (raw f64 bits) into `w` (or only counts the bits when `w` is `None`).
    /// Returns the bits used.
    #[inline]
    pub(crate) fn put(&mut self, v: u64, w: Option<&mut BitWriter>) -> usize {
        let delta = v ^ self.prev;
        self.prev = v;
        if delta == 0 {
            if let Some(w) = w {
                w.write_bit(false);
            }
            return 1;
        }
        let lz = (delta.leading_zeros() as u8).min(31);
        let tz = delta.trailing_zeros() as u8;
        if self.leading != 0xff && lz >= self.leading && tz >= self.trailing {
            let sig = 64 - u32::from(self.leading) - u32::from(self.trailing);
            if let Some(w) = w {
                w.write_bits(0b10, 2);
                w.write_bits(delta >> self.trailing, sig);
            }
            2 + sig as usize
        } else {
            self.leading = lz;
            self.trailing = tz;
            let sig = 64 - u32::from(lz) - u32::from(tz);
            if let Some(w) = w {
                // `11`, 5 bits leading, 6 bits length (64 wraps to 0): 13 bits in one write.
                let hdr = (0b11u64 << 11) | (u64::from(lz) << 6) | u64::from(sig & 63);
                w.write_bits(hdr, 13);
                w.write_bits(delta >> tz, sig);
            }
            13 + sig as usize
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Values {
    /// Every value so far is `m / 10^scale`; the value stream holds mantissa deltas.
    Decimal { scale: u8, m0: i64, m_prev: i64 },
    /// Gorilla XOR; the first value is the first 64 bits of the stream.
    Xor(XorState),
}

/// The head's open float chunk: appends samples in amortised O(1) without allocating (except
/// when a stream buffer grows), answers queries with [`Self::snapshot_bytes`] and produces the
/// final chunk with [`Self::finish`].
///
/// Memory: the struct (~120 bytes) plus the two streams' buffers, about 1 byte per sample for
/// typical scrape data; see [`Self::memory_bytes`].
///
/// Timestamps should be increasing (the head refuses out-of-order samples); the encoding
/// itself round-trips any `i64` sequence, but [`super::ChunkIter::seek`] assumes order.
#[derive(Clone, Debug)]
pub struct FloatChunkBuilder {
    ts: TsWriter,
    vals: BitWriter,
    values: Values,
    /// Seek point table in [`seek_points`]' layout, a point every [`HEAD_SEEK_POINT_INTERVAL`]
    /// samples, valid for the current value stream (cleared when it is rewritten).
    points: Vec<u8>,
    /// `(c, bits)` of the last point in `points`, `(0, 0)` when there is none.
    last_point: (u32, usize),
}

impl Default for FloatChunkBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl FloatChunkBuilder {
    /// An empty builder. Allocates nothing until the first append.
    pub fn new() -> Self {
        FloatChunkBuilder {
            ts: TsWriter::default(),
            vals: BitWriter::default(),
            values: Values::Decimal { scale: 0, m0: 0, m_prev: 0 },
            points: Vec::new(),
            last_point: (0, 0),
        }
    }

    /// Number of samples appended.
    #[inline]
    pub fn len(&self) -> usize {
        self.ts.n as usize
    }

    /// True before the first append.
    #[inline]
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

    /// Resident bytes: the struct plus the streams' heap buffers.
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>() + self.ts.w.capacity_bytes() + self.vals.capacity_bytes() + self.points.capacity()
    }

    /// Encoded size if the chunk were snapshot now, bytes.
    pub fn size_bytes(&self) -> usize {
        use super::bits::uvarint_len;
        let inner = self.inner_size_bytes();
        if self.points.is_empty() {
            return inner;
        }
        // The seekable wrapper: n, version, inner encoding, table length, table.
        uvarint_len(u64::from(self.ts.n)) + 2 + uvarint_len(self.points.len() as u64) + self.points.len() + inner
    }

    /// Encoded size of the plain chunk (what [`Self::snapshot_bytes`] wraps in seek points),
    /// bytes.
    fn inner_size_bytes(&self) -> usize {
        use super::bits::uvarint_len;
        if self.ts.n == 0 {
            return 1;
        }
        let dec = match self.values {
            Values::Decimal { m0, .. } => 2 + uvarint_len(zigzag(m0)),
            Values::Xor(_) => 0,
        };
        uvarint_len(u64::from(self.ts.n)) + self.ts.size_bytes() + dec + self.vals.byte_len()
    }

    /// Appends a sample. Any `f64` is kept bit-for-bit (NaN payloads included).
    ///
    /// # Panics
    /// After `u32::MAX` samples (the head cuts chunks at [`super::SAMPLES_PER_CHUNK`]).
    #[inline]
    pub fn append(&mut self, t_ms: i64, v: f64) {
        assert!(self.ts.n < u32::MAX, "chunk sample count overflow");
        if self.ts.n == 0 {
            self.start(t_ms, v);
            return;
        }
        if self.vals.spare_bytes() < 12 {
            self.grow_vals();
        }
        // Values first: a mode switch re-reads the value stream, which must hold exactly
        // `len() - 1` entries at that point.
        match &mut self.values {
            Values::Decimal { scale, m_prev, .. } => {
                if let Some(m) = to_mantissa(v, *scale) {
                    self.vals.write_varbit(m.wrapping_sub(*m_prev));
                    *m_prev = m;
                } else {
                    self.append_slow(v);
                }
            }
            Values::Xor(x) => {
                x.put(v.to_bits(), Some(&mut self.vals));
            }
        }
        self.ts.append(t_ms);
        if self.ts.n.is_multiple_of(HEAD_SEEK_POINT_INTERVAL) {
            self.record_point();
        }
    }

    /// Adds the value decoder's state after the first `len()` values to the seek point table
    /// (if the value stream grew by at least [`HEAD_MIN_POINT_SPAN_BITS`] since the last point).
    fn record_point(&mut self) {
        let (c, bits) = (self.ts.n, self.vals.bit_len());
        if c < 2 || bits < self.last_point.1 + HEAD_MIN_POINT_SPAN_BITS {
            return;
        }
        let state = match self.values {
            // Snapshots code mantissa deltas in varbit: the state is the last mantissa.
            Values::Decimal { m0, m_prev, .. } => PointState::Decimal { m_rel: m_prev.wrapping_sub(m0), d: None },
            Values::Xor(x) => PointState::Xor { bits: x.prev, leading: x.leading, trailing: x.trailing },
        };
        seek_points::put_point(&mut self.points, self.last_point, &ValuePoint { c, bits, state });
        self.last_point = (c, bits);
    }

    /// Forgets the seek points (the value stream is being rewritten).
    fn clear_points(&mut self) {
        self.points.clear();
        self.last_point = (0, 0);
    }

    fn start(&mut self, t_ms: i64, v: f64) {
        if self.vals.capacity_bytes() == 0 {
            // Sized for a typical full chunk of scrape data, to avoid early regrowth.
            self.vals = BitWriter::with_capacity(64);
        }
        self.ts.append(t_ms);
        self.values = match (0..=MAX_SCALE).find_map(|s| to_mantissa(v, s).map(|m| (s, m))) {
            Some((scale, m)) => Values::Decimal { scale, m0: m, m_prev: m },
            None => {
                self.vals.write_bits(v.to_bits(), 64);
                Values::Xor(XorState::new(v.to_bits()))
            }
        };
    }

    /// Grows the value stream to its predicted size at [`super::SAMPLES_PER_CHUNK`] samples
    /// (plus 1/8), at least by a quarter: doubling would leave a full chunk's buffer up to
    /// half empty, and the open chunk's memory counts against the head's per-series budget.
    #[cold]
    fn grow_vals(&mut self) {
        let used = self.vals.byte_len();
        let n = self.len().max(1);
        let predicted = used * super::SAMPLES_PER_CHUNK / n + used / 8 + 16;
        self.vals.reserve_total(predicted.max(used + used / 4 + 16));
    }

    /// A value that does not fit the current decimal scale: raise the scale or switch to XOR.
    #[cold]
    fn append_slow(&mut self, v: f64) {
        let Values::Decimal { scale, .. } = self.values else { return };
        self.clear_points();
        let found = (scale + 1..=MAX_SCALE).find_map(|s| to_mantissa(v, s).map(|m| (s, m)));
        if let Some((new_scale, m)) = found {
            if self.rescale(new_scale) {
                if let Values::Decimal { m_prev, .. } = &mut self.values {
                    self.vals.write_varbit(m.wrapping_sub(*m_prev));
                    *m_prev = m;
                }
                return;
            }
        }
        self.switch_to_xor();
        if let Values::Xor(x) = &mut self.values {
            x.put(v.to_bits(), Some(&mut self.vals));
        }
    }

    /// Mantissas of the samples so far (decimal mode), oldest first, via `f`.
    fn for_each_mantissa(&self, mut f: impl FnMut(i64)) {
        let Values::Decimal { m0, .. } = self.values else { return };
        let bytes = self.vals.to_padded_vec();
        let mut r = BitReader::new(&bytes);
        let mut m = m0;
        f(m);
        for _ in 1..self.ts.n {
            // The stream was written by this builder: it holds n-1 varbits.
            let d = r.read_varbit().unwrap_or(0);
            m = m.wrapping_add(d);
            f(m);
        }
    }

    /// Multiplies every mantissa by `10^(new_scale - scale)`. False (nothing changed) if a
    /// mantissa would leave the exact range.
    fn rescale(&mut self, new_scale: u8) -> bool {
        let Values::Decimal { scale, .. } = self.values else { return false };
        let factor = 10i64.pow(u32::from(new_scale - scale));
        let mut w = BitWriter::with_capacity(self.vals.byte_len() + 16);
        let mut ok = true;
        let (mut first, mut prev) = (None, 0i64);
        self.for_each_mantissa(|m| match m.checked_mul(factor) {
            Some(x) if ok && x.abs() <= MAX_MANTISSA => {
                if first.is_none() {
                    first = Some(x);
                } else {
                    w.write_varbit(x.wrapping_sub(prev));
                }
                prev = x;
            }
            _ => ok = false,
        });
        // The value appended by the caller completes the n-th sample; nothing written yet for it.
        if !ok {
            return false;
        }
        self.vals = w;
        self.values = Values::Decimal { scale: new_scale, m0: first.unwrap_or(0), m_prev: prev };
        true
    }

    /// Rewrites the decimal value stream as XOR.
    fn switch_to_xor(&mut self) {
        let Values::Decimal { scale, .. } = self.values else { return };
        let mut w = BitWriter::with_capacity(self.vals.byte_len() * 2 + 16);
        let mut st: Option<XorState> = None;
        self.for_each_mantissa(|m| {
            let bits = decimal_value(m, scale).to_bits();
            match st.as_mut() {
                None => {
                    w.write_bits(bits, 64);
                    st = Some(XorState::new(bits));
                }
                Some(x) => {
                    x.put(bits, Some(&mut w));
                }
            }
        });
        self.vals = w;
        self.values = Values::Xor(st.unwrap_or(XorState::new(0)));
    }

    /// The chunk as it stands, for queries reading the open head chunk. The builder is not
    /// changed. Returns the encoding and the bytes (one allocation of the chunk's size).
    ///
    /// Once the chunk has seek points (from [`HEAD_SEEK_POINT_INTERVAL`] samples on, where the
    /// value stream is not mostly zero codes) the snapshot is an [`Encoding::SeekableFloat`]
    /// wrapping the plain chunk, so that a seek near the chunk's end resumes value decoding at
    /// most [`HEAD_SEEK_POINT_INTERVAL`] samples before its target.
    pub fn snapshot_bytes(&self) -> (Encoding, Vec<u8>) {
        if self.points.is_empty() {
            let mut out = Vec::with_capacity(self.size_bytes());
            let enc = self.write_chunk(&mut out, &self.vals, ValueCode::DELTA_VARBIT, false);
            return (enc, out);
        }
        let mut out = Vec::with_capacity(self.size_bytes());
        let inner = match self.values {
            Values::Decimal { .. } => Encoding::DecimalFloat,
            Values::Xor(_) => Encoding::XorFloat,
        };
        seek_points::put_wrapper_header(&mut out, self.ts.n, inner, &self.points);
        let enc = self.write_chunk(&mut out, &self.vals, ValueCode::DELTA_VARBIT, false);
        debug_assert_eq!(enc, inner);
        (Encoding::SeekableFloat, out)
    }

    /// Finishes the chunk: prices delta, delta-of-delta and XOR value streams, returns the
    /// smallest encoding and its bytes, and empties the builder (keeping its buffers) for the
    /// next chunk.
    pub fn finish(&mut self) -> (Encoding, Vec<u8>) {
        let out = self.finished_bytes();
        self.ts.clear();
        self.vals.clear();
        self.clear_points();
        out
    }

    /// What [`Self::finish`] returns, without resetting the builder.
    pub fn finished_bytes(&self) -> (Encoding, Vec<u8>) {
        let mut out = Vec::with_capacity(self.inner_size_bytes());
        let Values::Decimal { scale, m0, .. } = self.values else {
            let enc = self.write_chunk(&mut out, &self.vals, ValueCode::DELTA_VARBIT, true);
            return (enc, out);
        };
        if self.ts.n == 0 {
            return self.snapshot_bytes();
        }
        // Two allocations per chunk: the mantissas and their deltas, priced under every code.
        let mut ms = Vec::with_capacity(self.len());
        self.for_each_mantissa(|m| ms.push(m));
        let mut ds: Vec<i64> = ms.windows(2).map(|w| w[1].wrapping_sub(w[0])).collect();
        // Common factor of all deltas (memory gauges move in 4096-byte pages, disk byte
        // counters in 512-byte sectors): code deltas / factor. Stops at 1, usually early.
        let mut g = 0u64;
        for d in &ds {
            g = gcd(g, d.unsigned_abs());
            if g == 1 {
                break;
            }
        }
        let factor = if g > 1 && g <= i64::MAX as u64 { g as i64 } else { 1 };
        if factor > 1 {
            ds.iter_mut().for_each(|d| *d /= factor);
        }
        let dod = |i: usize| if i == 0 { ds[0] } else { ds[i].wrapping_sub(ds[i - 1]) };
        // A factor costs its uvarint in the header; a Rice parameter one byte.
        let factor_bits = if factor > 1 { super::bits::uvarint_len(factor as u64) * 8 } else { 0 };
        let base = ValueCode { dod: false, rice: None, factor: 1, constant: false };
        let mut best = (self.vals.bit_len(), base);
        if ds.iter().all(|&d| d == 0) {
            // A constant chunk (a third of node-exporter's series): no value stream at all.
            best = (0, ValueCode { constant: true, ..base });
        }
        let mut consider = |bits: usize, code: ValueCode| {
            if bits < best.0 {
                best = (bits, code);
            }
        };
        // Pass 1: varbit sizes and the means that pick the Rice parameters.
        let (mut vb, mut sum) = ([0usize; 2], [0u128; 2]);
        for i in 0..ds.len() {
            let x = [ds[i], dod(i)];
            for m in 0..2 {
                vb[m] += varbit_bits(x[m]);
                sum[m] += u128::from(zigzag(x[m]));
            }
        }
        let ks: [[u32; 3]; 2] = std::array::from_fn(|m| {
            let k0 = 127 - ((sum[m] / ds.len().max(1) as u128) | 1).leading_zeros();
            [k0.saturating_sub(1), k0.min(56), (k0 + 1).min(56)]
        });
        // Pass 2: Rice sizes for three parameters per sequence.
        let mut rb = [[0usize; 3]; 2];
        for i in 0..ds.len() {
            let x = [ds[i], dod(i)];
            for m in 0..2 {
                let z = zigzag(x[m]);
                for (c, &k) in ks[m].iter().enumerate() {
                    rb[m][c] += rice_bits(z, k);
                }
            }
        }
        for m in 0..2 {
            consider(factor_bits + vb[m], ValueCode { dod: m == 1, rice: None, factor, constant: false });
            for c in 0..3 {
                let code = ValueCode { dod: m == 1, rice: Some(ks[m][c] as u8), factor, constant: false };
                consider(factor_bits + 8 + rb[m][c], code);
            }
        }
        // XOR carries v0 inside its stream; decimal carries 2 header bytes plus m0.
        let mut xs = XorState::new(decimal_value(m0, scale).to_bits());
        let xor_bits = 64 + ms[1..].iter().map(|&m| xs.put(decimal_value(m, scale).to_bits(), None)).sum::<usize>();
        let dec_hdr_bits = (2 + super::bits::uvarint_len(zigzag(m0))) * 8;
        if xor_bits.div_ceil(8) * 8 < best.0.div_ceil(8) * 8 + dec_hdr_bits {
            let mut c = self.clone();
            c.switch_to_xor();
            let enc = c.write_chunk(&mut out, &c.vals, ValueCode::DELTA_VARBIT, true);
            return (enc, out);
        }
        let code = best.1;
        if code == base {
            let enc = self.write_chunk(&mut out, &self.vals, code, true);
            return (enc, out);
        }
        let mut w = BitWriter::with_capacity(best.0.div_ceil(8));
        for i in (0..ds.len()).filter(|_| !code.constant) {
            let x = if code.dod { dod(i) } else { ds[i] };
            match code.rice {
                Some(k) => w.write_rice(zigzag(x), u32::from(k)),
                None => w.write_varbit(x),
            }
        }
        let enc = self.write_chunk(&mut out, &w, code, true);
        (enc, out)
    }

    /// Releases spare buffer capacity (e.g. for an open chunk of a series that went idle).
    pub fn shrink_to_fit(&mut self) {
        self.ts.w.shrink_to_fit();
        self.vals.shrink_to_fit();
        self.points.shrink_to_fit();
    }

    /// Writes the chunk with value stream `vals` (decimal `mode` 0 or 1); `best_ts` prices
    /// the timestamp modes (finish) instead of copying the delta-of-delta stream (snapshot).
    fn write_chunk(&self, out: &mut Vec<u8>, vals: &BitWriter, code: ValueCode, best_ts: bool) -> Encoding {
        put_uvarint(out, u64::from(self.ts.n));
        if self.ts.n == 0 {
            return Encoding::XorFloat;
        }
        let grid = if best_ts { self.ts.write_best(out) } else { None };
        if !best_ts {
            self.ts.write_dod(out);
        }
        let enc = match self.values {
            Values::Decimal { scale, m0, .. } => {
                out.push(scale);
                out.push(code.mode_byte());
                if let Some(k) = code.rice {
                    out.push(k);
                }
                if code.factor > 1 {
                    put_uvarint(out, code.factor as u64);
                }
                put_varint(out, m0);
                Encoding::DecimalFloat
            }
            Values::Xor(_) => Encoding::XorFloat,
        };
        grid.as_ref().unwrap_or(&self.ts.w).copy_to(out);
        vals.copy_to(out);
        enc
    }
}

/// How a decimal chunk's mantissas are coded: deltas or delta-of-deltas, in varbit or in
/// Rice code with parameter `k`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ValueCode {
    pub(crate) dod: bool,
    pub(crate) rice: Option<u8>,
    /// Every mantissa delta is a multiple of this (>= 1); the stream holds delta / factor.
    pub(crate) factor: i64,
    /// Every mantissa equals `m0`: the value stream is empty.
    pub(crate) constant: bool,
}

impl ValueCode {
    const DELTA_VARBIT: ValueCode = ValueCode { dod: false, rice: None, factor: 1, constant: false };

    fn mode_byte(self) -> u8 {
        if self.constant {
            return 8;
        }
        u8::from(self.dod) | if self.rice.is_some() { 2 } else { 0 } | if self.factor > 1 { 4 } else { 0 }
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Encodes sorted samples given as parallel columns into the smallest float encoding.
///
/// # Panics
/// If the columns differ in length (a caller bug).
pub fn encode_floats(ts: &[i64], vs: &[f64]) -> (Encoding, Vec<u8>) {
    assert_eq!(ts.len(), vs.len(), "column lengths differ");
    let mut b = FloatChunkBuilder::new();
    for (&t, &v) in ts.iter().zip(vs) {
        b.append(t, v);
    }
    b.finish()
}

/// Parsed header of a float chunk.
pub(crate) struct FloatHeader<'a> {
    pub(crate) n: u32,
    pub(crate) ts: TsReader<'a>,
    pub(crate) vals: &'a [u8],
    /// `None` for XOR, else `(scale, value code, m0)`.
    pub(crate) decimal: Option<(u8, ValueCode, i64)>,
}

/// Parses a float chunk header; `Err` describes the corruption.
pub(crate) fn parse_header(enc: Encoding, b: &[u8]) -> Result<FloatHeader<'_>, &'static str> {
    let mut p = 0;
    let n = get_uvarint(b, &mut p).ok_or("float chunk: truncated sample count")?;
    let n = u32::try_from(n).map_err(|_| "float chunk: sample count too large")?;
    if n == 0 {
        if p != b.len() {
            return Err("float chunk: bytes after an empty chunk");
        }
        return Ok(FloatHeader { n, ts: TsReader::empty(), vals: &[], decimal: None });
    }
    let (t0, step, ts_len) = TsReader::parse_header(b, &mut p)?;
    let decimal = if enc == Encoding::DecimalFloat {
        let scale = *b.get(p).ok_or("decimal chunk: truncated scale")?;
        let mode = *b.get(p + 1).ok_or("decimal chunk: truncated mode")?;
        p += 2;
        if scale > MAX_SCALE {
            return Err("decimal chunk: scale out of range");
        }
        if mode > 8 || (mode & 8 != 0 && mode != 8) {
            return Err("decimal chunk: unknown value mode");
        }
        let constant = mode == 8;
        let rice = if mode & 2 != 0 {
            let k = *b.get(p).ok_or("decimal chunk: truncated Rice parameter")?;
            p += 1;
            if k > 56 {
                return Err("decimal chunk: Rice parameter out of range");
            }
            Some(k)
        } else {
            None
        };
        let factor = if mode & 4 != 0 {
            let f = get_uvarint(b, &mut p).ok_or("decimal chunk: truncated delta factor")?;
            i64::try_from(f).ok().filter(|&f| f > 1).ok_or("decimal chunk: delta factor out of range")?
        } else {
            1
        };
        let m0 = get_varint(b, &mut p).ok_or("decimal chunk: truncated first mantissa")?;
        Some((scale, ValueCode { dod: mode & 1 != 0, rice, factor, constant }, m0))
    } else {
        None
    };
    let ts_end = p.checked_add(ts_len).filter(|&e| e <= b.len());
    let ts_end = ts_end.ok_or("float chunk: timestamp stream longer than the chunk")?;
    Ok(FloatHeader { n, ts: TsReader::new(t0, step, &b[p..ts_end]), vals: &b[ts_end..], decimal })
}
