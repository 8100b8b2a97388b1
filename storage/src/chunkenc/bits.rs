//! Bit streams and integer codes shared by the compressed chunk encodings.
//!
//! - Bit streams are written most-significant bit first; a stream's last byte is padded with
//!   zero bits. Readers know how many items to read (the chunk header's sample count), so the
//!   padding is never read as data.
//! - `varbit` is Prometheus' `putVarbitInt` bucketing (`tsdb/chunkenc/varbit.go`): a unary
//!   prefix of up to eight 1 bits picks the payload width, the payload is the value's low bits in
//!   two's complement. Bucket `k` (number of leading 1 bits before a 0, or 8) holds:
//!
//!   | prefix | payload bits | range |
//!   |--------|--------------|-------|
//!   | `0` | 0 | 0 |
//!   | `10` | 3 | -3..=4 |
//!   | `110` | 6 | -31..=32 |
//!   | `1110` | 9 | -255..=256 |
//!   | `11110` | 12 | -2047..=2048 |
//!   | `111110` | 18 | -131071..=131072 |
//!   | `1111110` | 25 | -16777215..=16777216 |
//!   | `11111110` | 56 | ±2^55 |
//!   | `11111111` | 64 | any `i64` |
//! - `uvarint` / `varint` are LEB128 (the signed form zig-zag first), as Go's `encoding/binary`.

/// Payload width of each varbit bucket, indexed by the number of leading 1 bits.
const VARBIT_PAYLOAD: [u32; 9] = [0, 3, 6, 9, 12, 18, 25, 56, 64];

/// Appends bits to a byte vector, MSB first. Holds up to 31 not yet flushed bits in `acc`.
#[derive(Clone, Debug, Default)]
pub struct BitWriter {
    buf: Vec<u8>,
    acc: u64,
    /// Bits in `acc` (always < 32 between calls).
    nbits: u32,
}

impl BitWriter {
    /// An empty stream with room for `cap_bytes` before its first growth.
    pub fn with_capacity(cap_bytes: usize) -> Self {
        BitWriter { buf: Vec::with_capacity(cap_bytes), acc: 0, nbits: 0 }
    }

    /// Writes the low `n` bits of `v` (`n <= 64`).
    #[inline]
    pub fn write_bits(&mut self, v: u64, n: u32) {
        debug_assert!(n <= 64);
        if n > 32 {
            self.write_small(v >> 32, n - 32);
            self.write_small(v & 0xffff_ffff, 32);
        } else {
            self.write_small(v, n);
        }
    }

    #[inline]
    fn write_small(&mut self, v: u64, n: u32) {
        let v = v & mask(n);
        self.acc = (self.acc << n) | v;
        self.nbits += n;
        if self.nbits >= 32 {
            self.nbits -= 32;
            let out = (self.acc >> self.nbits) as u32;
            self.buf.extend_from_slice(&out.to_be_bytes());
            self.acc &= mask(self.nbits);
        }
    }

    /// Writes one bit.
    #[inline]
    pub fn write_bit(&mut self, bit: bool) {
        self.write_small(u64::from(bit), 1);
    }

    /// Writes `v` in the varbit code (see the module doc).
    #[inline]
    pub fn write_varbit(&mut self, v: i64) {
        let u = v as u64;
        if v == 0 {
            self.write_small(0, 1);
        } else if bit_range(v, 3) {
            self.write_small((0b10 << 3) | (u & mask(3)), 5);
        } else if bit_range(v, 6) {
            self.write_small((0b110 << 6) | (u & mask(6)), 9);
        } else if bit_range(v, 9) {
            self.write_small((0b1110 << 9) | (u & mask(9)), 13);
        } else if bit_range(v, 12) {
            self.write_small((0b11110 << 12) | (u & mask(12)), 17);
        } else if bit_range(v, 18) {
            self.write_small((0b111110 << 18) | (u & mask(18)), 24);
        } else if bit_range(v, 25) {
            self.write_small((0b1111110 << 25) | (u & mask(25)), 32);
        } else if bit_range(v, 56) {
            self.write_bits((0b11111110 << 56) | (u & mask(56)), 64);
        } else {
            self.write_small(0b11111111, 8);
            self.write_bits(u, 64);
        }
    }

    /// Writes `v` in the Rice code with parameter `k <= 56` (see [`rice_bits`]).
    #[inline]
    pub fn write_rice(&mut self, v: u64, k: u32) {
        let q = v >> k;
        if q < RICE_ESCAPE {
            // q ones, a zero, then the k low bits.
            let ones = (1u64 << q) - 1;
            self.write_bits(ones << 1, q as u32 + 1);
            self.write_bits(v, k);
        } else {
            self.write_bits((1u64 << RICE_ESCAPE) - 1, RICE_ESCAPE as u32);
            self.write_bits(v, 64);
        }
    }

    /// Bits written so far.
    pub fn bit_len(&self) -> usize {
        self.buf.len() * 8 + self.nbits as usize
    }

    /// Bytes the stream occupies once padded.
    pub fn byte_len(&self) -> usize {
        self.buf.len() + (self.nbits as usize).div_ceil(8)
    }

    /// Heap bytes held.
    pub fn capacity_bytes(&self) -> usize {
        self.buf.capacity()
    }

    /// Bytes that can be written before the buffer must grow.
    #[inline]
    pub fn spare_bytes(&self) -> usize {
        self.buf.capacity() - self.buf.len()
    }

    /// Grows the buffer to hold `total` bytes (no-op if it already does), exactly: the
    /// caller predicts the final size better than doubling does.
    pub fn reserve_total(&mut self, total: usize) {
        self.buf.reserve_exact(total.saturating_sub(self.buf.len()));
    }

    /// Appends the stream, padded to whole bytes, to `out`.
    pub fn copy_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.buf);
        if self.nbits > 0 {
            let pad = self.nbits.div_ceil(8) * 8;
            let tail = self.acc << (pad - self.nbits);
            let bytes = (tail as u32).to_be_bytes();
            out.extend_from_slice(&bytes[4 - (pad / 8) as usize..]);
        }
    }

    /// The stream padded to whole bytes, as a new vector.
    pub fn to_padded_vec(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.byte_len());
        self.copy_to(&mut v);
        v
    }

    /// Empties the stream, keeping its buffer.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.acc = 0;
        self.nbits = 0;
    }

    /// Releases spare capacity (the stream will not grow much more).
    pub fn shrink_to_fit(&mut self) {
        self.buf.shrink_to_fit();
    }
}

/// Quotients at or above this are escaped: `RICE_ESCAPE` ones, then the value as 64 raw bits.
pub const RICE_ESCAPE: u64 = 20;

/// Bits the Rice code with parameter `k` spends on `v`: unary quotient `v >> k` (ones, then a
/// zero), then the `k` low bits; quotients of [`RICE_ESCAPE`] or more are escaped.
#[inline]
pub fn rice_bits(v: u64, k: u32) -> usize {
    let q = v >> k;
    if q < RICE_ESCAPE {
        q as usize + 1 + k as usize
    } else {
        RICE_ESCAPE as usize + 64
    }
}

/// Zig-zag: small magnitudes of either sign to small unsigned values.
#[inline]
pub fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

/// Inverse of [`zigzag`].
#[inline]
pub fn unzigzag(u: u64) -> i64 {
    ((u >> 1) as i64) ^ -((u & 1) as i64)
}

/// `true` if `v` fits the varbit bucket with `nbits` payload bits:
/// `-(2^(nbits-1) - 1) <= v <= 2^(nbits-1)`.
#[inline]
fn bit_range(v: i64, nbits: u32) -> bool {
    let half = 1i64 << (nbits - 1);
    -(half - 1) <= v && v <= half
}

#[inline]
fn mask(n: u32) -> u64 {
    if n >= 64 {
        u64::MAX
    } else {
        (1u64 << n) - 1
    }
}

/// Reads a bit stream written by [`BitWriter`]. Every read is bounds-checked and returns `None`
/// past the end (corrupt or truncated input), never panics.
#[derive(Clone, Debug)]
pub struct BitReader<'a> {
    b: &'a [u8],
    /// Position in bits.
    pos: usize,
}

impl<'a> BitReader<'a> {
    /// A reader at the first bit of `b`.
    pub fn new(b: &'a [u8]) -> Self {
        BitReader { b, pos: 0 }
    }

    /// The next up to 57 bits without consuming them, zero-padded past the end, left-aligned
    /// in the returned word.
    #[inline(always)]
    fn window(&self) -> u64 {
        let byte = self.pos >> 3;
        let w = match self.b.get(byte..byte + 8) {
            Some(s) => u64::from_be_bytes([s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]]),
            None => {
                let mut tmp = [0u8; 8];
                let rest = self.b.get(byte..).unwrap_or(&[]);
                tmp[..rest.len()].copy_from_slice(rest);
                u64::from_be_bytes(tmp)
            }
        };
        w << (self.pos & 7)
    }

    #[inline(always)]
    fn remaining_bits(&self) -> usize {
        (self.b.len() * 8).saturating_sub(self.pos)
    }

    /// Reads `n <= 64` bits.
    #[inline]
    pub fn read_bits(&mut self, n: u32) -> Option<u64> {
        if n == 0 {
            return Some(0);
        }
        if n as usize > self.remaining_bits() {
            return None;
        }
        if n <= 56 {
            let v = self.window() >> (64 - n);
            self.pos += n as usize;
            Some(v)
        } else {
            let hi = self.window() >> 32;
            self.pos += 32;
            let lo = self.window() >> (64 - (n - 32));
            self.pos += (n - 32) as usize;
            Some((hi << (n - 32)) | lo)
        }
    }

    /// Reads one bit.
    #[inline]
    pub fn read_bit(&mut self) -> Option<bool> {
        self.read_bits(1).map(|b| b == 1)
    }

    /// Reads a varbit-coded integer (see the module doc).
    #[inline(always)]
    pub fn read_varbit(&mut self) -> Option<i64> {
        let w = self.window();
        let ones = w.leading_ones().min(8);
        let prefix = if ones == 8 { 8 } else { ones + 1 };
        let nbits = VARBIT_PAYLOAD[ones as usize];
        let total = prefix + nbits;
        if total as usize > self.remaining_bits() {
            return None;
        }
        if nbits == 0 {
            self.pos += 1;
            return Some(0);
        }
        let u = if total <= 57 {
            // Prefix and payload are both in the window already loaded.
            self.pos += total as usize;
            (w << prefix) >> (64 - nbits)
        } else {
            self.pos += prefix as usize;
            self.read_bits(nbits)?
        };
        if nbits == 64 {
            return Some(u as i64);
        }
        let v = if u > (1u64 << (nbits - 1)) { u.wrapping_sub(1u64 << nbits) } else { u };
        Some(v as i64)
    }

    /// Reads a Rice-coded value with parameter `k <= 56` (see [`rice_bits`]).
    #[inline]
    pub fn read_rice(&mut self, k: u32) -> Option<u64> {
        let w = self.window();
        let q = u64::from(w.leading_ones()).min(RICE_ESCAPE);
        if q == RICE_ESCAPE {
            if RICE_ESCAPE as usize > self.remaining_bits() {
                return None;
            }
            self.pos += RICE_ESCAPE as usize;
            return self.read_bits(64);
        }
        let total = q as u32 + 1 + k;
        if total as usize > self.remaining_bits() {
            return None;
        }
        let low = if total <= 57 {
            self.pos += total as usize;
            if k == 0 {
                0
            } else {
                (w << (q as u32 + 1)) >> (64 - k)
            }
        } else {
            self.pos += q as usize + 1;
            self.read_bits(k)?
        };
        Some((q << k) | low)
    }

    /// Number of consecutive zero bits at the reader's position, at most 57 and at most the
    /// bits left (a run of zeros is a run of zero varbits, unchanged XOR values or zero Rice
    /// codes with `k = 0`: seeks skip such runs in one step).
    #[inline(always)]
    pub fn zero_run(&self) -> u32 {
        let w = self.window() | (1u64 << 6); // the window holds at least 57 valid bits (63..=7)
        (w.leading_zeros() as usize).min(self.remaining_bits()) as u32
    }

    /// Position in bits from the start of the stream.
    #[inline]
    pub fn position_bits(&self) -> usize {
        self.pos
    }

    /// Moves to bit `pos`; false (reader unchanged) if `pos` is past the end of the stream.
    #[inline]
    pub fn set_position_bits(&mut self, pos: usize) -> bool {
        if pos > self.b.len() * 8 {
            return false;
        }
        self.pos = pos;
        true
    }

    /// Skips `n` bits (the caller has checked they exist, e.g. with [`Self::zero_run`]);
    /// past the end the reader stays exhausted.
    #[inline(always)]
    pub fn skip_bits(&mut self, n: u32) {
        self.pos = (self.pos + n as usize).min(self.b.len() * 8);
    }

    /// Skips a varbit-coded integer without materialising it.
    #[inline]
    pub fn skip_varbit(&mut self) -> Option<()> {
        let ones = self.window().leading_ones().min(8);
        let prefix = if ones == 8 { 8 } else { ones + 1 };
        let total = prefix as usize + VARBIT_PAYLOAD[ones as usize] as usize;
        if total > self.remaining_bits() {
            return None;
        }
        self.pos += total;
        Some(())
    }
}

pub use crate::encoding::{get_uvarint, get_varint, put_uvarint, put_varint, uvarint_len};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varbit_bucket_edges_round_trip() {
        let vals = [
            0i64, 1, -1, 4, -3, 5, -4, 32, -31, 33, 256, -255, 257, 2048, -2047, 2049, 131072, -131071,
            131073, 16777216, -16777215, 16777217, 1 << 55, -(1 << 55) + 1, 1 << 56, i64::MIN, i64::MAX,
        ];
        let mut w = BitWriter::default();
        for &v in &vals {
            w.write_varbit(v);
            w.write_bit(true);
        }
        let b = w.to_padded_vec();
        assert_eq!(b.len(), w.byte_len());
        let mut r = BitReader::new(&b);
        for &v in &vals {
            assert_eq!(r.read_varbit(), Some(v));
            assert_eq!(r.read_bit(), Some(true));
        }
    }

    #[test]
    fn zero_run_counts_zero_bits_within_the_stream() {
        let mut w = BitWriter::default();
        w.write_bits(0, 5);
        w.write_bit(true);
        w.write_bits(0, 63);
        w.write_bit(true);
        w.write_bits(0, 3);
        let b = w.to_padded_vec();
        let mut r = BitReader::new(&b);
        assert_eq!(r.zero_run(), 5);
        r.skip_bits(6);
        assert_eq!(r.zero_run(), 57, "capped at the window");
        r.skip_bits(57);
        assert_eq!(r.zero_run(), 6);
        r.skip_bits(7);
        // 3 written zero bits plus 7 padding bits remain (73 bits in 10 bytes).
        assert_eq!(r.zero_run(), 10);
        r.skip_bits(100);
        assert_eq!(r.zero_run(), 0);
        assert_eq!(r.read_bit(), None);
    }

    #[test]
    fn rice_round_trip_with_escape() {
        let vals = [0u64, 1, 2, 3, 7, 8, 100, 1 << 20, u64::MAX, 12345];
        for k in [0u32, 1, 3, 8, 20, 56] {
            let mut w = BitWriter::default();
            let mut bits = 0;
            for &v in &vals {
                w.write_rice(v, k);
                bits += rice_bits(v, k);
            }
            assert_eq!(w.bit_len(), bits, "k={k}");
            let b = w.to_padded_vec();
            let mut r = BitReader::new(&b);
            for &v in &vals {
                assert_eq!(r.read_rice(k), Some(v), "k={k}");
            }
        }
        for v in [0i64, -1, 1, i64::MIN, i64::MAX] {
            assert_eq!(unzigzag(zigzag(v)), v);
        }
    }

    #[test]
    fn bits_and_varints_round_trip() {
        let mut w = BitWriter::default();
        for n in 0..=64u32 {
            w.write_bits(u64::MAX.wrapping_mul(n as u64 + 7), n);
        }
        let b = w.to_padded_vec();
        let mut r = BitReader::new(&b);
        for n in 0..=64u32 {
            assert_eq!(r.read_bits(n), Some(u64::MAX.wrapping_mul(n as u64 + 7) & mask(n)), "n={n}");
        }
        let mut v = Vec::new();
        for x in [0i64, -1, 1, i64::MIN, i64::MAX, 300] {
            put_varint(&mut v, x);
        }
        put_uvarint(&mut v, u64::MAX);
        assert_eq!(uvarint_len(u64::MAX), 10);
        assert_eq!(uvarint_len(127), 1);
        assert_eq!(uvarint_len(128), 2);
        let mut p = 0;
        for x in [0i64, -1, 1, i64::MIN, i64::MAX, 300] {
            assert_eq!(get_varint(&v, &mut p), Some(x));
        }
        assert_eq!(get_uvarint(&v, &mut p), Some(u64::MAX));
        assert_eq!(get_uvarint(&v, &mut p), None);
    }
}
