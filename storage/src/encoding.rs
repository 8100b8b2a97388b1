//! Byte-level helpers shared by the on-disk formats: LEB128 varints and a bounds-checked
//! reader that returns `None` instead of panicking on short or malformed input.

/// Appends `v` as an unsigned LEB128 varint (1 to 10 bytes).
#[inline]
pub fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Appends `v` zigzag-encoded as a varint, so small negative numbers stay short.
#[inline]
pub fn put_varint(out: &mut Vec<u8>, v: i64) {
    put_uvarint(out, ((v << 1) ^ (v >> 63)) as u64);
}

/// Bytes [`put_uvarint`] writes for `v` (1 to 10).
#[inline]
pub fn uvarint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

/// Reads an unsigned LEB128 varint of at most 64 bits from `b[*pos..]`, advancing `pos` past
/// the bytes read. `None` on truncation (then `*pos == b.len()`) or on a value over 64 bits
/// (then exactly 10 bytes were read).
#[inline]
pub fn get_uvarint(b: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*pos)?;
        *pos += 1;
        if shift == 63 && byte > 1 {
            return None; // more than 64 bits
        }
        v |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Some(v);
        }
    }
    None
}

/// Reads a zigzag varint (see [`get_uvarint`]).
#[inline]
pub fn get_varint(b: &[u8], pos: &mut usize) -> Option<i64> {
    let u = get_uvarint(b, pos)?;
    Some(((u >> 1) as i64) ^ -((u & 1) as i64))
}

/// Appends a varint length and the string's bytes.
pub fn put_str(out: &mut Vec<u8>, s: &str) {
    put_uvarint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

/// A bounds-checked reader over bytes. Every read returns `None` past the end or on a
/// malformed value, and then the reader's position is unspecified.
pub struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `b`.
    pub fn new(b: &'a [u8]) -> Self {
        Reader { b, pos: 0 }
    }

    /// Bytes consumed so far.
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// True when every byte has been read.
    pub fn is_empty(&self) -> bool {
        self.pos >= self.b.len()
    }

    /// An unsigned LEB128 varint of at most 64 bits.
    pub fn uvarint(&mut self) -> Option<u64> {
        get_uvarint(self.b, &mut self.pos)
    }

    /// A zigzag varint.
    pub fn varint(&mut self) -> Option<i64> {
        get_varint(self.b, &mut self.pos)
    }

    /// The next `n` bytes.
    pub fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.b.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }

    /// A varint length and that many bytes of UTF-8.
    pub fn str(&mut self) -> Option<&'a str> {
        let n = usize::try_from(self.uvarint()?).ok()?;
        std::str::from_utf8(self.bytes(n)?).ok()
    }

    /// A little-endian `u32`.
    pub fn u32_le(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.bytes(4)?.try_into().ok()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_and_reject_overflow() {
        let mut b = Vec::new();
        for v in [0u64, 1, 127, 128, 300, u64::MAX] {
            put_uvarint(&mut b, v);
        }
        for v in [0i64, -1, 63, -64, i64::MIN, i64::MAX] {
            put_varint(&mut b, v);
        }
        put_str(&mut b, "héllo");
        let mut r = Reader::new(&b);
        for v in [0u64, 1, 127, 128, 300, u64::MAX] {
            assert_eq!(r.uvarint(), Some(v));
        }
        for v in [0i64, -1, 63, -64, i64::MIN, i64::MAX] {
            assert_eq!(r.varint(), Some(v));
        }
        assert_eq!(r.str(), Some("héllo"));
        assert!(r.is_empty());
        assert_eq!(r.uvarint(), None);
        assert_eq!(Reader::new(&[0xff; 11]).uvarint(), None, "more than 64 bits");
        assert_eq!(Reader::new(&[0x05, b'a']).str(), None, "length past the end");
    }
}
