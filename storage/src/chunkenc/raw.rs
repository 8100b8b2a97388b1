//! [`super::Encoding::Raw`]: uncompressed columns. Layout: `n: u32 LE`, `n` × `t_ms: i64 LE`,
//! `n` × `f64 bits: u64 LE`. Used by tests and tools; the head and blocks use compressed
//! encodings.

use super::ValueType;

/// Encodes samples given as parallel columns.
///
/// # Panics
/// If the columns differ in length or hold more than `u32::MAX` samples (caller bugs).
pub fn encode(ts: &[i64], vs: &[f64]) -> Vec<u8> {
    assert_eq!(ts.len(), vs.len(), "column lengths differ");
    let n = u32::try_from(ts.len()).expect("too many samples for one chunk");
    let mut out = Vec::with_capacity(4 + ts.len() * 16);
    out.extend_from_slice(&n.to_le_bytes());
    for t in ts {
        out.extend_from_slice(&t.to_le_bytes());
    }
    for v in vs {
        out.extend_from_slice(&v.to_bits().to_le_bytes());
    }
    out
}

/// Iterator over a raw chunk.
pub struct RawIter<'a> {
    ts: &'a [u8],
    vs: &'a [u8],
    n: usize,
    /// Index of the current sample; `usize::MAX` before the first `next`.
    i: usize,
    err: Option<&'static str>,
}

impl<'a> RawIter<'a> {
    /// Positions before the first sample. A truncated chunk reads as empty with `err()` set.
    pub fn new(b: &'a [u8]) -> Self {
        let empty = RawIter { ts: &[], vs: &[], n: 0, i: usize::MAX, err: None };
        let Some(hdr) = b.get(..4) else {
            return RawIter { err: Some("raw chunk shorter than its header"), ..empty };
        };
        let n = u32::from_le_bytes(hdr.try_into().expect("4 bytes")) as usize;
        let need = n.checked_mul(16).and_then(|x| x.checked_add(4));
        if need != Some(b.len()) {
            return RawIter { err: Some("raw chunk length does not match its sample count"), ..empty };
        }
        RawIter { ts: &b[4..4 + n * 8], vs: &b[4 + n * 8..], n, i: usize::MAX, err: None }
    }

    /// Advances.
    pub fn next(&mut self) -> ValueType {
        let next = self.i.wrapping_add(1);
        if next >= self.n {
            self.i = self.n;
            return ValueType::None;
        }
        self.i = next;
        ValueType::Float
    }

    /// First sample with `t >= t_ms`.
    pub fn seek(&mut self, t_ms: i64) -> ValueType {
        if self.i == usize::MAX && self.next() == ValueType::None {
            return ValueType::None;
        }
        while self.i < self.n {
            if self.at().0 >= t_ms {
                return ValueType::Float;
            }
            self.i += 1;
        }
        ValueType::None
    }

    /// Current sample.
    pub fn at(&self) -> (i64, f64) {
        let i = self.i.min(self.n.saturating_sub(1));
        if self.n == 0 {
            return (i64::MIN, 0.0);
        }
        let t = i64::from_le_bytes(self.ts[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
        let v = f64::from_bits(u64::from_le_bytes(self.vs[i * 8..i * 8 + 8].try_into().expect("8 bytes")));
        (t, v)
    }

    /// Corruption, if any.
    pub fn err(&self) -> Option<&'static str> {
        self.err
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_seek() {
        let b = encode(&[1, 5, 9], &[1.0, f64::NAN, -3.0]);
        let mut it = RawIter::new(&b);
        assert_eq!(it.next(), ValueType::Float);
        assert_eq!(it.at(), (1, 1.0));
        assert_eq!(it.seek(6), ValueType::Float);
        assert_eq!(it.at(), (9, -3.0));
        assert_eq!(it.next(), ValueType::None);
    }

    #[test]
    fn truncated_is_error_not_panic() {
        let b = encode(&[1, 2], &[1.0, 2.0]);
        let mut it = RawIter::new(&b[..b.len() - 1]);
        assert_eq!(it.next(), ValueType::None);
        assert!(it.err().is_some());
    }
}
