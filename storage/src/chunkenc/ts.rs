//! The timestamp column shared by every compressed encoding.
//!
//! # Layout (inside each chunk, after the sample count `n >= 1`)
//!
//! ```text
//!   t0        varint   first timestamp, ms
//!   ts_mode   u8       0: delta-of-delta, 1: grid, 2: regular (t_i = t0 + i*D, no stream)
//!   interval  varint   (modes 1 and 2) the grid step D, ms
//!   ts_len    uvarint  byte length of the timestamp bit stream
//!   ...encoding-specific header..., then the ts_len stream bytes, then the value column
//! ```
//!
//! Stream, for samples `1..n`, in wrapping `i64` arithmetic:
//! - mode 0 (Prometheus): `varbit(delta_i - delta_{i-1})`, `delta_i = t_i - t_{i-1}`,
//!   `delta_0 = 0`.
//! - mode 1 (grid): `varbit(r_i)`, `r_i = t_i - (g_{i-1} + D)`, where the grid point
//!   `g_0 = t0` and `g_i = t_i` if `r_i == r_{i-1}` (with `r_0 = 0`), else `g_{i-1} + D`.
//!   A scrape that is late by `j` ms costs one non-zero residual (delta-of-delta spends three:
//!   `j, -2j, j`); a lasting shift re-anchors the grid after two equal residuals.
//!
//! Mode 2 is mode 1 with every residual zero, stored without a stream (`ts_len` = 0).
//!
//! The head's builder writes mode 0 as it appends; `finish` prices the grid with `D` = the
//! majority delta of the chunk (Boyer-Moore vote) and keeps the smaller stream.

use super::bits::{get_uvarint, get_varint, put_uvarint, put_varint, BitReader, BitWriter};
use super::float::varbit_bits;

/// Appends timestamps as delta-of-deltas (mode 0).
#[derive(Clone, Debug, Default)]
pub(crate) struct TsWriter {
    pub(crate) n: u32,
    pub(crate) t0: i64,
    pub(crate) t_prev: i64,
    t_delta: i64,
    pub(crate) w: BitWriter,
}

impl TsWriter {
    #[inline]
    pub(crate) fn append(&mut self, t_ms: i64) {
        if self.n == 0 {
            if self.w.capacity_bytes() == 0 {
                self.w = BitWriter::with_capacity(24);
            }
            self.t0 = t_ms;
            self.t_delta = 0;
        } else {
            let delta = t_ms.wrapping_sub(self.t_prev);
            self.w.write_varbit(delta.wrapping_sub(self.t_delta));
            self.t_delta = delta;
        }
        self.t_prev = t_ms;
        self.n += 1;
    }

    pub(crate) fn clear(&mut self) {
        self.n = 0;
        self.w.clear();
    }

    /// Header bytes plus stream bytes of the mode-0 column.
    pub(crate) fn size_bytes(&self) -> usize {
        let l = self.w.byte_len();
        super::bits::uvarint_len(zigzag(self.t0)) + 1 + super::bits::uvarint_len(l as u64) + l
    }

    /// Timestamps appended so far, oldest first.
    fn for_each(&self, mut f: impl FnMut(i64)) {
        if self.n == 0 {
            return;
        }
        let bytes = self.w.to_padded_vec();
        let mut r = BitReader::new(&bytes);
        let (mut t, mut d) = (self.t0, 0i64);
        f(t);
        for _ in 1..self.n {
            // Written by this writer: it holds n-1 varbits.
            d = d.wrapping_add(r.read_varbit().unwrap_or(0));
            t = t.wrapping_add(d);
            f(t);
        }
    }

    /// The column as written (mode 0): returns the header bytes in `hdr` and the stream.
    pub(crate) fn write_dod(&self, hdr: &mut Vec<u8>) -> &BitWriter {
        put_varint(hdr, self.t0);
        hdr.push(0);
        put_uvarint(hdr, self.w.byte_len() as u64);
        &self.w
    }

    /// The smaller of the two modes: writes the header into `hdr`; returns a grid stream
    /// when the grid wins (`None`: use `self.w`, the delta-of-delta stream).
    pub(crate) fn write_best(&self, hdr: &mut Vec<u8>) -> Option<BitWriter> {
        if self.n < 3 {
            self.write_dod(hdr);
            return None;
        }
        // One allocation: the timestamps. Majority delta by Boyer-Moore vote.
        let mut ts = Vec::with_capacity(self.n as usize);
        self.for_each(|t| ts.push(t));
        let (mut cand, mut votes) = (0i64, 0u32);
        for w in ts.windows(2) {
            let d = w[1].wrapping_sub(w[0]);
            if votes == 0 {
                cand = d;
                votes = 1;
            } else if d == cand {
                votes += 1;
            } else {
                votes -= 1;
            }
        }
        let mut g = GridState::new(self.t0, cand);
        let grid_bits: usize = ts[1..].iter().map(|&t| varbit_bits(g.residual(t))).sum();
        let extra_hdr = super::bits::uvarint_len(zigzag(cand));
        if grid_bits == (self.n - 1) as usize {
            // Every residual is zero: perfectly regular, no stream at all.
            put_varint(hdr, self.t0);
            hdr.push(2);
            put_varint(hdr, cand);
            put_uvarint(hdr, 0);
            return Some(BitWriter::default());
        }
        if grid_bits.div_ceil(8) + extra_hdr >= self.w.byte_len() {
            self.write_dod(hdr);
            return None;
        }
        let mut w = BitWriter::with_capacity(grid_bits.div_ceil(8));
        let mut g = GridState::new(self.t0, cand);
        ts[1..].iter().for_each(|&t| w.write_varbit(g.residual(t)));
        put_varint(hdr, self.t0);
        hdr.push(1);
        put_varint(hdr, cand);
        put_uvarint(hdr, w.byte_len() as u64);
        Some(w)
    }
}

#[inline]
fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

/// Grid predictor state (mode 1), shared by writer and reader.
#[derive(Clone, Copy, Debug)]
struct GridState {
    g: i64,
    step: i64,
    r_prev: i64,
}

impl GridState {
    fn new(t0: i64, step: i64) -> Self {
        GridState { g: t0, step, r_prev: 0 }
    }

    /// Residual of the next timestamp `t`, advancing the grid.
    #[inline]
    fn residual(&mut self, t: i64) -> i64 {
        let r = t.wrapping_sub(self.g.wrapping_add(self.step));
        self.advance(t, r);
        r
    }

    /// Timestamp for residual `r`, advancing the grid.
    #[inline]
    fn timestamp(&mut self, r: i64) -> i64 {
        let t = self.g.wrapping_add(self.step).wrapping_add(r);
        self.advance(t, r);
        t
    }

    #[inline]
    fn advance(&mut self, t: i64, r: i64) {
        self.g = if r == self.r_prev { t } else { self.g.wrapping_add(self.step) };
        self.r_prev = r;
    }
}

/// Decodes a timestamp column.
#[derive(Clone, Debug)]
pub(crate) struct TsReader<'a> {
    r: BitReader<'a>,
    t: i64,
    /// Mode 0: the previous delta.
    delta: i64,
    grid: Option<GridState>,
    /// Mode 2: every residual is zero and there is no stream.
    regular: bool,
}

impl<'a> TsReader<'a> {
    pub(crate) fn empty() -> Self {
        TsReader { r: BitReader::new(&[]), t: i64::MIN, delta: 0, grid: None, regular: false }
    }

    /// Parses the column header at `b[*p..]`; returns the reader (positioned before the
    /// first timestamp; its stream starts `stream_at` bytes into `b`, after whatever header the
    /// caller reads in between) and the stream length.
    #[allow(clippy::type_complexity)]
    pub(crate) fn parse_header(b: &[u8], p: &mut usize) -> Result<(i64, Option<(i64, bool)>, usize), &'static str> {
        let t0 = get_varint(b, p).ok_or("chunk: truncated first timestamp")?;
        let mode = *b.get(*p).ok_or("chunk: truncated timestamp mode")?;
        *p += 1;
        let step = match mode {
            0 => None,
            1 | 2 => Some(get_varint(b, p).ok_or("chunk: truncated grid interval")?),
            _ => return Err("chunk: unknown timestamp mode"),
        };
        let len = get_uvarint(b, p).ok_or("chunk: truncated timestamp stream length")?;
        let len = usize::try_from(len).map_err(|_| "chunk: timestamp stream too long")?;
        if mode == 2 && len != 0 {
            return Err("chunk: regular timestamps with a stream");
        }
        Ok((t0, step.map(|s| (s, mode == 2)), len))
    }

    /// `step`: the grid interval and whether the chunk is perfectly regular (mode 2).
    pub(crate) fn new(t0: i64, step: Option<(i64, bool)>, stream: &'a [u8]) -> Self {
        TsReader {
            r: BitReader::new(stream),
            t: t0,
            delta: 0,
            grid: step.map(|(s, _)| GridState::new(t0, s)),
            regular: step.is_some_and(|(_, r)| r),
        }
    }

    /// The current timestamp.
    #[inline]
    pub(crate) fn t(&self) -> i64 {
        self.t
    }

    /// Advances to the next timestamp (not for the first sample: that is `t0`).
    #[inline(always)]
    pub(crate) fn advance(&mut self) -> Option<i64> {
        let x = if self.regular { 0 } else { self.r.read_varbit()? };
        self.t = match &mut self.grid {
            None => {
                self.delta = self.delta.wrapping_add(x);
                self.t.wrapping_add(self.delta)
            }
            Some(g) => g.timestamp(x),
        };
        Some(self.t)
    }
}

impl TsReader<'_> {
    /// Advances over at most `left` more timestamps until the current one is `>= target`;
    /// returns how many were read (`None` on a truncated stream). Equivalent to calling
    /// [`Self::advance`] in a loop, but O(1) for a regular column (mode 2) and one step per run
    /// of zero residuals or delta-of-deltas otherwise: each zero in such a run moves the
    /// timestamp by the same interval (the previous delta in mode 0; the grid step in mode 1,
    /// where a zero residual also re-anchors the grid on the sample), so a run can be jumped
    /// by a multiplication.
    pub(crate) fn advance_until(&mut self, target: i64, left: u32) -> Option<u32> {
        let mut n = 0u32;
        while n < left && self.t < target {
            // The next timestamps if the stream holds `z` zeros: base + j * d for j = 1..=z.
            let (base, d) = match &self.grid {
                None => (self.t, self.delta),
                Some(g) => (g.g, g.step),
            };
            let z = if self.regular { left - n } else { self.r.zero_run().min(left - n) };
            if z >= 2 && d > 0 {
                // Fewest steps reaching the target, in i128 so no step count overflows.
                let need = (i128::from(target) - i128::from(base) + i128::from(d) - 1).div_euclid(i128::from(d));
                let j = need.clamp(1, i128::from(z)) as u32;
                self.t = base.wrapping_add(d.wrapping_mul(i64::from(j)));
                if let Some(g) = &mut self.grid {
                    g.g = self.t;
                    g.r_prev = 0;
                }
                if !self.regular {
                    self.r.skip_bits(j);
                }
                n += j;
                continue;
            }
            self.advance()?;
            n += 1;
        }
        Some(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(ts: &[i64]) -> (u8, usize) {
        let mut w = TsWriter::default();
        ts.iter().for_each(|&t| w.append(t));
        let mut hdr = Vec::new();
        let grid = w.write_best(&mut hdr);
        let mut bytes = hdr.clone();
        grid.as_ref().unwrap_or(&w.w).copy_to(&mut bytes);
        let mut p = 0;
        let (t0, step, len) = TsReader::parse_header(&bytes, &mut p).unwrap();
        assert_eq!(p + len, bytes.len());
        let mut r = TsReader::new(t0, step, &bytes[p..]);
        let mut got = vec![r.t()];
        for _ in 1..ts.len() {
            got.push(r.advance().unwrap());
        }
        assert_eq!(got, ts);
        (bytes[super::super::bits::uvarint_len(zigzag(ts[0]))], bytes.len())
    }

    /// `advance_until` lands where a loop of `advance` does, from every start and target.
    #[test]
    fn advance_until_matches_stepwise_advance() {
        let mut jitter: Vec<i64> = (0..120).map(|i| 1_000 + i * 15_000).collect();
        jitter[1] += 3;
        jitter[50] += 7;
        jitter[51] += 7;
        jitter[80] -= 20;
        let regular: Vec<i64> = (0..120).map(|i| 7 + i * 15_000).collect();
        let growing: Vec<i64> = (0..50).map(|i| i * i * 10).collect();
        let steady_dod: Vec<i64> = (0..90).map(|i| if i < 40 { i * 1_000 } else { 40_000 + (i - 40) * 3_000 }).collect();
        for ts in [jitter, regular, growing, steady_dod] {
            let mut w = TsWriter::default();
            ts.iter().for_each(|&t| w.append(t));
            for best in [false, true] {
                let mut hdr = Vec::new();
                let grid = if best {
                    w.write_best(&mut hdr)
                } else {
                    w.write_dod(&mut hdr);
                    None
                };
                let mut bytes = hdr.clone();
                grid.as_ref().unwrap_or(&w.w).copy_to(&mut bytes);
                let mut p = 0;
                let (t0, step, _) = TsReader::parse_header(&bytes, &mut p).unwrap();
                for start in [0usize, 1, 7, 33] {
                    for target in [ts[0] - 5, ts[1], ts[ts.len() / 2] + 1, ts[ts.len() - 1], ts[ts.len() - 1] + 1] {
                        let start = start.min(ts.len() - 1);
                        let mut r = TsReader::new(t0, step, &bytes[p..]);
                        for _ in 0..start {
                            r.advance().unwrap();
                        }
                        let left = (ts.len() - 1 - start) as u32;
                        let got = r.advance_until(target, left).unwrap();
                        let want = ts[start..].iter().position(|&t| t >= target).unwrap_or(ts.len() - 1 - start);
                        assert_eq!((got as usize, r.t()), (want, ts[start + want]), "start {start} target {target} best {best}");
                        // The reader continues correctly after the jump.
                        for &t in &ts[start + want + 1..] {
                            assert_eq!(r.advance(), Some(t));
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn grid_wins_on_jitter_and_dod_on_irregular() {
        let mut ts: Vec<i64> = (0..120).map(|i| 1_000 + i * 15_000).collect();
        ts[1] += 3; // the first delta is off: the grid uses the majority delta
        ts[50] += 7;
        ts[51] += 7;
        ts[80] -= 20;
        let (mode, _) = round_trip(&ts);
        assert_eq!(mode, 1);
        let regular: Vec<i64> = (0..120).map(|i| 7 + i * 15_000).collect();
        let (mode, len) = round_trip(&regular);
        assert_eq!((mode, len), (2, 6));
        let growing: Vec<i64> = (0..50).map(|i| i * i * 10).collect();
        let (mode, _) = round_trip(&growing);
        assert_eq!(mode, 0);
        round_trip(&[5, i64::MIN, i64::MAX, 0, -1, 7]);
    }
}
