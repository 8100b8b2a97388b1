//! [`Encoding::SeekableFloat`]: a long float chunk with a table of seek points, so that a seek
//! into it resumes the value decoder mid-chunk instead of decoding every value from the start.
//!
//! Timestamp seeks are O(1) on regular columns ([`super::ts`]); a value seek decodes the value
//! column from the chunk start (runs of zero codes in one step, everything else per sample).
//! Blocks hold chunks of up to 480 samples ([`crate::block::BLOCK_CHUNK_MAX_SAMPLES`]); a seek
//! point every [`SEEK_POINT_INTERVAL`] samples bounds a seek's value decoding by that interval,
//! as in a head-sized chunk.
//!
//! # Layout
//!
//! ```text
//! SeekableFloat (encoding byte 4)
//!   n          uvarint  number of samples (the inner chunk's, repeated so that
//!                       [`super::num_samples`] reads every encoding's count the same way)
//!   version    u8       1
//!   inner      u8       the inner chunk's encoding: 1 (XorFloat) or 2 (DecimalFloat)
//!   table_len  uvarint  bytes of the seek point table
//!   table      seek points in increasing order, each the value decoder's state after
//!              reading the first c values (2 <= c <= n):
//!                c delta     uvarint  c minus the previous point's c (the first: minus 0), >= 1
//!                bits delta  uvarint  bit offset into the inner value stream after those c
//!                                     values, minus the previous point's (the first: minus 0)
//!                XorFloat:     leading u8 (0xff: no window yet, else <= 31), trailing u8
//!                              (leading + trailing < 64), the last value's bits u64 LE
//!                DecimalFloat: m - m0 varint (the last mantissa, relative to the first);
//!                              in delta-of-delta mode also d varint (the last delta)
//!   inner      rest: the whole inner chunk, in its own layout ([`super::float`])
//! ```
//!
//! The head's open chunk keeps points of this layout as it appends, every
//! [`super::float::HEAD_SEEK_POINT_INTERVAL`] samples, and its snapshots for queries are this
//! encoding once it has one ([`super::FloatChunkBuilder::snapshot_bytes`]): an instant query
//! seeks near the open chunk's end.
//!
//! A point is written only where the value stream between it and the previous point (or the
//! chunk start) holds at least [`MIN_POINT_SPAN_BITS`] bits: where values are runs of zero
//! codes a seek skips them in one step anyway, and the point would be pure overhead. A chunk
//! that gets no point keeps its inner encoding (no wrapper).

use super::bits::{get_uvarint, get_varint, put_uvarint, put_varint};
use super::float_iter::{FloatIter, ValuePoint};
use super::{Encoding, ValueType};

/// Samples between candidate seek points (a head chunk's size, [`super::SAMPLES_PER_CHUNK`]).
pub const SEEK_POINT_INTERVAL: u32 = 120;

/// Least value-stream bits between two seek points (or the chunk start and the first point)
/// for the later point to be written: decoding fewer is cheaper than the point's bytes.
pub const MIN_POINT_SPAN_BITS: usize = 512;

const VERSION: u8 = 1;

/// Wraps a float chunk (`enc` [`Encoding::XorFloat`] or [`Encoding::DecimalFloat`]) with seek
/// points as the module doc says. Returns the input unchanged for other encodings, chunks of
/// at most [`SEEK_POINT_INTERVAL`] samples, chunks where no point is worth its bytes, and
/// chunks that fail to decode.
pub fn with_seek_points(enc: Encoding, bytes: Vec<u8>) -> (Encoding, Vec<u8>) {
    if !matches!(enc, Encoding::XorFloat | Encoding::DecimalFloat) {
        return (enc, bytes);
    }
    let mut table = Vec::new();
    let n;
    {
        let mut it = FloatIter::new(enc, &bytes);
        n = it.len();
        if n <= SEEK_POINT_INTERVAL {
            return (enc, bytes);
        }
        let (mut last_c, mut last_bits) = (0u32, 0usize);
        let mut read = 0u32;
        while it.next() == ValueType::Float {
            read += 1;
            if !read.is_multiple_of(SEEK_POINT_INTERVAL) || read == n {
                continue;
            }
            let Some(p) = it.value_point() else { continue };
            if p.bits - last_bits < MIN_POINT_SPAN_BITS {
                continue;
            }
            put_point(&mut table, (last_c, last_bits), &p);
            (last_c, last_bits) = (p.c, p.bits);
        }
        if it.err().is_some() || read != n || table.is_empty() {
            return (enc, bytes);
        }
    }
    let mut out = Vec::with_capacity(bytes.len() + table.len() + 8);
    put_wrapper_header(&mut out, n, enc, &table);
    out.extend_from_slice(&bytes);
    (Encoding::SeekableFloat, out)
}

/// Writes the wrapper's header up to and including the seek point table (`n` samples, inner
/// encoding `inner`); the inner chunk follows.
pub(crate) fn put_wrapper_header(out: &mut Vec<u8>, n: u32, inner: Encoding, table: &[u8]) {
    put_uvarint(out, u64::from(n));
    out.push(VERSION);
    out.push(inner as u8);
    put_uvarint(out, table.len() as u64);
    out.extend_from_slice(table);
}

/// Appends seek point `p` to `table`, coded relative to the previous point `prev` (`(c, bits)`,
/// `(0, 0)` for the first); `p.c > prev.0` and `p.bits >= prev.1`.
pub(crate) fn put_point(table: &mut Vec<u8>, prev: (u32, usize), p: &ValuePoint) {
    put_uvarint(table, u64::from(p.c - prev.0));
    put_uvarint(table, (p.bits - prev.1) as u64);
    match p.state {
        PointState::Xor { bits, leading, trailing } => {
            table.push(leading);
            table.push(trailing);
            table.extend_from_slice(&bits.to_le_bytes());
        }
        PointState::Decimal { m_rel, d } => {
            put_varint(table, m_rel);
            if let Some(d) = d {
                put_varint(table, d);
            }
        }
    }
}

/// The value decoder's state at a seek point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PointState {
    Xor { bits: u64, leading: u8, trailing: u8 },
    /// `m_rel` = m - m0; `d` present in delta-of-delta mode.
    Decimal { m_rel: i64, d: Option<i64> },
}

/// The parts of a [`Encoding::SeekableFloat`] chunk.
pub(crate) struct Parts<'a> {
    /// The inner chunk's encoding.
    pub(crate) inner: Encoding,
    /// The sample count of the wrapper (the caller checks it against the inner chunk's).
    pub(crate) n: u32,
    pub(crate) table: &'a [u8],
    /// The inner chunk.
    pub(crate) rest: &'a [u8],
}

/// Splits a [`Encoding::SeekableFloat`] chunk into its [`Parts`]. `Err` describes the
/// corruption.
pub(crate) fn split(b: &[u8]) -> Result<Parts<'_>, &'static str> {
    let mut p = 0;
    let n = get_uvarint(b, &mut p).ok_or("seekable float chunk: truncated sample count")?;
    let n = u32::try_from(n).map_err(|_| "seekable float chunk: sample count too large")?;
    let version = *b.get(p).ok_or("seekable float chunk: truncated version")?;
    if version != VERSION {
        return Err("seekable float chunk: unknown version");
    }
    let inner = match b.get(p + 1) {
        Some(1) => Encoding::XorFloat,
        Some(2) => Encoding::DecimalFloat,
        Some(_) => return Err("seekable float chunk: inner encoding not a float encoding"),
        None => return Err("seekable float chunk: truncated inner encoding"),
    };
    p += 2;
    let len = get_uvarint(b, &mut p).ok_or("seekable float chunk: truncated table length")?;
    let end = usize::try_from(len).ok().and_then(|l| p.checked_add(l)).filter(|&e| e <= b.len());
    let end = end.ok_or("seekable float chunk: table longer than the chunk")?;
    Ok(Parts { inner, n, table: &b[p..end], rest: &b[end..] })
}

/// Reads the seek point after `prev` (`(c, bits)` of the previous point, `(0, 0)` at the
/// start) at `*p` in `table`. `None` at the end of the table; `Err` on corruption.
pub(crate) fn read_point(
    table: &[u8],
    p: &mut usize,
    prev: (u32, usize),
    xor: bool,
    dod: bool,
) -> Result<Option<ValuePoint>, &'static str> {
    if *p >= table.len() {
        return Ok(None);
    }
    const BAD: &str = "seekable float chunk: corrupt seek point";
    let dc = get_uvarint(table, p).ok_or(BAD)?;
    let db = get_uvarint(table, p).ok_or(BAD)?;
    let c = u32::try_from(dc).ok().filter(|&d| d >= 1).and_then(|d| prev.0.checked_add(d)).ok_or(BAD)?;
    let bits = usize::try_from(db).ok().and_then(|d| prev.1.checked_add(d)).ok_or(BAD)?;
    let state = if xor {
        let s = table.get(*p..*p + 10).ok_or(BAD)?;
        *p += 10;
        let (leading, trailing) = (s[0], s[1]);
        let ok = if leading == 0xff { trailing == 0 } else { leading <= 31 && u32::from(leading) + u32::from(trailing) < 64 };
        if !ok {
            return Err(BAD);
        }
        let bits = u64::from_le_bytes([s[2], s[3], s[4], s[5], s[6], s[7], s[8], s[9]]);
        PointState::Xor { bits, leading, trailing }
    } else {
        let m_rel = get_varint(table, p).ok_or(BAD)?;
        let d = if dod { Some(get_varint(table, p).ok_or(BAD)?) } else { None };
        PointState::Decimal { m_rel, d }
    };
    Ok(Some(ValuePoint { c, bits, state }))
}
