//! Decoding iterator over [`super::Encoding::XorFloat`] and [`super::Encoding::DecimalFloat`]
//! chunks (layout in [`super::float`]).
//!
//! Timestamps and values are read from their own streams; [`FloatIter::seek`] scans the
//! timestamp column alone and then advances the value column by the number of samples skipped
//! (for decimal chunks that is an integer sum, no float work). Over an
//! [`super::Encoding::SeekableFloat`] chunk the value column first jumps to the last seek point
//! at or before the target sample ([`super::seek_points`]).

use super::bits::BitReader;
use super::bits::unzigzag;
use super::float::{decimal_value, parse_header, ValueCode};
use super::seek_points::{self, PointState};
use super::ts::TsReader;
use super::{Encoding, ValueType};

/// The value decoder's state after the first `c` values, `bits` into the value stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ValuePoint {
    pub(crate) c: u32,
    pub(crate) bits: usize,
    pub(crate) state: PointState,
}

#[derive(Clone, Copy, Debug)]
enum ValState {
    Xor { bits: u64, leading: u8, trailing: u8 },
    Decimal { scale: u8, code: ValueCode, m: i64, d: i64 },
}

/// Iterator over a float chunk. Allocation-free; never panics on corrupt bytes (it stops and
/// reports through [`FloatIter::err`]).
#[derive(Clone, Debug)]
pub struct FloatIter<'a> {
    n: u32,
    /// Samples whose timestamp has been read (the current sample is number `read_t`).
    read_t: u32,
    /// Samples whose value has been read.
    read_v: u32,
    ts: TsReader<'a>,
    vals: BitReader<'a>,
    v: f64,
    state: ValState,
    /// Set once `next`/`seek` ran past the last sample.
    done: bool,
    err: Option<&'static str>,
    /// Seek point table of a [`Encoding::SeekableFloat`] chunk (else empty).
    points: &'a [u8],
    /// First mantissa of a decimal chunk (seek points store mantissas relative to it).
    m0: i64,
}

impl<'a> FloatIter<'a> {
    /// Positioned before the first sample.
    pub fn new(enc: Encoding, b: &'a [u8]) -> Self {
        let mut it = FloatIter {
            n: 0,
            read_t: 0,
            read_v: 0,
            ts: TsReader::empty(),
            vals: BitReader::new(&[]),
            v: 0.0,
            state: ValState::Xor { bits: 0, leading: 0xff, trailing: 0 },
            done: false,
            err: None,
            points: &[],
            m0: 0,
        };
        let (enc, b) = if enc == Encoding::SeekableFloat {
            match seek_points::split(b) {
                Ok(seek_points::Parts { inner, n, table, rest }) => {
                    match num_inner(inner, rest) {
                        Some(m) if m == n => {}
                        _ => {
                            it.err = Some("seekable float chunk: sample count differs from the inner chunk's");
                            return it;
                        }
                    }
                    it.points = table;
                    (inner, rest)
                }
                Err(e) => {
                    it.err = Some(e);
                    return it;
                }
            }
        } else {
            (enc, b)
        };
        match parse_header(enc, b) {
            Ok(h) => {
                it.n = h.n;
                it.ts = h.ts;
                it.vals = BitReader::new(h.vals);
                if let Some((scale, code, m0)) = h.decimal {
                    it.state = ValState::Decimal { scale, code, m: m0, d: 0 };
                    it.m0 = m0;
                }
            }
            Err(e) => it.err = Some(e),
        }
        it
    }

    /// Number of samples in the chunk (0 if its header is corrupt).
    pub fn len(&self) -> u32 {
        self.n
    }

    /// True for an empty (or corrupt) chunk.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// The value decoder's state, when every value up to the current sample has been read
    /// (after `next`), for writing seek points.
    pub(crate) fn value_point(&self) -> Option<ValuePoint> {
        if self.read_v == 0 || self.read_v != self.read_t {
            return None;
        }
        let state = match self.state {
            ValState::Xor { bits, leading, trailing } => PointState::Xor { bits, leading, trailing },
            ValState::Decimal { code, m, d, .. } => {
                PointState::Decimal { m_rel: m.wrapping_sub(self.m0), d: code.dod.then_some(d) }
            }
        };
        Some(ValuePoint { c: self.read_v, bits: self.vals.position_bits(), state })
    }

    /// Moves the value decoder to the last seek point with `read_v < c <= read_t`, if any.
    /// False on a corrupt table.
    fn jump_to_point(&mut self) -> bool {
        let xor = matches!(self.state, ValState::Xor { .. });
        let dod = matches!(self.state, ValState::Decimal { code, .. } if code.dod);
        let (mut p, mut prev, mut best) = (0usize, (0u32, 0usize), None);
        loop {
            match seek_points::read_point(self.points, &mut p, prev, xor, dod) {
                Ok(Some(pt)) => {
                    if pt.c > self.read_t {
                        break;
                    }
                    if pt.c > self.read_v {
                        best = Some(pt);
                    }
                    prev = (pt.c, pt.bits);
                }
                Ok(None) => break,
                Err(e) => {
                    self.fail(e);
                    return false;
                }
            }
        }
        let Some(pt) = best else { return true };
        if pt.c < 2 || !self.vals.set_position_bits(pt.bits) {
            self.fail("seekable float chunk: seek point outside the value stream");
            return false;
        }
        match (&mut self.state, pt.state) {
            (ValState::Xor { bits, leading, trailing }, PointState::Xor { bits: b, leading: l, trailing: t }) => {
                (*bits, *leading, *trailing) = (b, l, t);
            }
            (ValState::Decimal { m, d, .. }, PointState::Decimal { m_rel, d: pd }) => {
                *m = self.m0.wrapping_add(m_rel);
                *d = pd.unwrap_or(0);
            }
            _ => {
                self.fail("seekable float chunk: seek point of the wrong kind");
                return false;
            }
        }
        self.read_v = pt.c;
        true
    }

    #[cold]
    fn fail(&mut self, e: &'static str) -> ValueType {
        self.err = Some(e);
        self.n = 0;
        self.done = true;
        ValueType::None
    }

    /// Reads the next timestamp; false at the end or on corruption.
    #[inline]
    fn next_t(&mut self) -> bool {
        if self.read_t >= self.n {
            self.done = true;
            return false;
        }
        if self.read_t > 0 && self.ts.advance().is_none() {
            self.fail("float chunk: truncated timestamp stream");
            return false;
        }
        self.read_t += 1;
        true
    }

    /// Reads values until `read_v == read_t`; false on corruption. Runs of zero codes
    /// (unchanged XOR values, zero mantissa deltas or delta-of-deltas in varbit or Rice `k = 0`)
    /// are skipped in one step each, and a constant chunk costs nothing, so a seek that skipped
    /// many timestamps does not pay per sample for repetitive values.
    #[inline]
    fn catch_up_values(&mut self) -> bool {
        if self.read_v == 0 && self.read_t > 0 {
            if let ValState::Xor { bits, .. } = &mut self.state {
                match self.vals.read_bits(64) {
                    Some(b) => *bits = b,
                    None => {
                        self.fail("float chunk: truncated or corrupt value stream");
                        return false;
                    }
                }
            }
            self.read_v = 1;
        }
        let ok = match &mut self.state {
            ValState::Decimal { code, m, d, .. } => {
                if code.constant {
                    self.read_v = self.read_t;
                    true
                } else {
                    catch_up_decimal(&mut self.vals, code, m, d, &mut self.read_v, self.read_t)
                }
            }
            ValState::Xor { bits, leading, trailing } => {
                let mut ok = true;
                while self.read_v < self.read_t {
                    // Runs only matter for seeks; `next` reads one value the plain way.
                    let z = if self.read_t - self.read_v >= 2 { self.vals.zero_run().min(self.read_t - self.read_v) } else { 0 };
                    if z > 0 {
                        self.vals.skip_bits(z);
                        self.read_v += z;
                    } else if read_xor(&mut self.vals, bits, leading, trailing) {
                        self.read_v += 1;
                    } else {
                        ok = false;
                        break;
                    }
                }
                ok
            }
        };
        if !ok {
            self.fail("float chunk: truncated or corrupt value stream");
            return false;
        }
        self.v = match self.state {
            ValState::Decimal { scale, m, .. } => decimal_value(m, scale),
            ValState::Xor { bits, .. } => f64::from_bits(bits),
        };
        true
    }

    /// Advances to the next sample.
    #[inline]
    pub fn next(&mut self) -> ValueType {
        if !self.next_t() {
            return ValueType::None;
        }
        // The common case, one value behind: the plain single-value step, without the run
        // detection seeks use.
        let ok = if self.read_v + 1 == self.read_t && self.read_v > 0 { self.step_value() } else { self.catch_up_values() };
        if !ok {
            return ValueType::None;
        }
        ValueType::Float
    }

    /// Reads exactly one value (`read_v >= 1`, `read_v + 1 == read_t`); false on corruption.
    #[inline(always)]
    fn step_value(&mut self) -> bool {
        let ok = match &mut self.state {
            ValState::Decimal { code, m, d, .. } => {
                if code.constant {
                    true
                } else {
                    let x = match code.rice {
                        None => self.vals.read_varbit(),
                        Some(k) => self.vals.read_rice(u32::from(k)).map(unzigzag),
                    };
                    match x {
                        Some(x) => {
                            *d = if code.dod { d.wrapping_add(x) } else { x };
                            *m = m.wrapping_add(d.wrapping_mul(code.factor));
                            true
                        }
                        None => false,
                    }
                }
            }
            ValState::Xor { bits, leading, trailing } => read_xor(&mut self.vals, bits, leading, trailing),
        };
        if !ok {
            self.fail("float chunk: truncated or corrupt value stream");
            return false;
        }
        self.read_v += 1;
        self.v = match self.state {
            ValState::Decimal { scale, m, .. } => decimal_value(m, scale),
            ValState::Xor { bits, .. } => f64::from_bits(bits),
        };
        true
    }

    /// Advances to the first sample with `t >= t_ms`; stays put if already there. Decodes
    /// forward from the current position only: the timestamp column first (runs of regular
    /// timestamps in one step, [`TsReader::advance_until`]), then the value column catches up
    /// by the count skipped.
    pub fn seek(&mut self, t_ms: i64) -> ValueType {
        if self.done {
            return ValueType::None;
        }
        if self.read_t > 0 && self.read_v == self.read_t && self.ts.t() >= t_ms {
            return ValueType::Float;
        }
        if self.read_t == 0 || self.ts.t() < t_ms {
            // Onto the first sample (t0), then through the stream.
            if !self.next_t() {
                return ValueType::None;
            }
            let left = self.n - self.read_t;
            match self.ts.advance_until(t_ms, left) {
                Some(k) => self.read_t += k,
                None => {
                    self.fail("float chunk: truncated timestamp stream");
                    return ValueType::None;
                }
            }
            if self.ts.t() < t_ms {
                self.done = true;
                return ValueType::None;
            }
        }
        if !self.points.is_empty() && self.read_t >= self.read_v + 2 && !self.jump_to_point() {
            return ValueType::None;
        }
        if !self.catch_up_values() {
            return ValueType::None;
        }
        ValueType::Float
    }

    /// The current sample `(t_ms, v)`.
    #[inline]
    pub fn at(&self) -> (i64, f64) {
        (self.ts.t(), self.v)
    }

    /// The corruption found, if any.
    pub fn err(&self) -> Option<&'static str> {
        self.err
    }
}

/// Sample count of an inner chunk by its header.
fn num_inner(enc: Encoding, b: &[u8]) -> Option<u32> {
    super::num_samples(enc, b).ok()
}

/// Catches the decimal value state up to sample `to` (`read_v` samples read so far, at least
/// the first). False on truncation.
#[inline]
fn catch_up_decimal(r: &mut BitReader<'_>, code: &ValueCode, m: &mut i64, d: &mut i64, read_v: &mut u32, to: u32) -> bool {
    // Zero codes are single zero bits in varbit and in Rice with k = 0.
    let zero_bits = matches!(code.rice, None | Some(0));
    while *read_v < to {
        if zero_bits && to - *read_v >= 2 {
            let z = r.zero_run().min(to - *read_v);
            if z > 0 {
                r.skip_bits(z);
                *read_v += z;
                if code.dod {
                    // Each zero delta-of-delta repeats the delta.
                    *m = m.wrapping_add(d.wrapping_mul(code.factor).wrapping_mul(i64::from(z)));
                } else {
                    *d = 0;
                }
                continue;
            }
        }
        let x = match code.rice {
            None => r.read_varbit(),
            Some(k) => r.read_rice(u32::from(k)).map(unzigzag),
        };
        let Some(x) = x else { return false };
        *d = if code.dod { d.wrapping_add(x) } else { x };
        *m = m.wrapping_add(d.wrapping_mul(code.factor));
        *read_v += 1;
    }
    true
}

/// One Gorilla XOR step (Prometheus `xorRead`). False on truncation or an impossible window.
#[inline]
fn read_xor(r: &mut BitReader<'_>, bits: &mut u64, leading: &mut u8, trailing: &mut u8) -> bool {
    let Some(ctrl) = r.read_bit() else { return false };
    if !ctrl {
        return true;
    }
    let Some(reuse) = r.read_bit().map(|b| !b) else { return false };
    if !reuse || *leading == 0xff {
        if reuse {
            return false; // a window reuse before any window was set
        }
        let Some(hdr) = r.read_bits(11) else { return false };
        let lz = (hdr >> 6) as u8;
        let mut sig = (hdr & 63) as u8;
        if sig == 0 {
            sig = 64;
        }
        if u32::from(lz) + u32::from(sig) > 64 {
            return false;
        }
        *leading = lz;
        *trailing = 64 - lz - sig;
    }
    let sig = 64 - u32::from(*leading) - u32::from(*trailing);
    let Some(x) = r.read_bits(sig) else { return false };
    *bits ^= x << *trailing;
    true
}
