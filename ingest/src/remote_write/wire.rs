//! A minimal, allocation-free reader of the protobuf wire format
//! (<https://protobuf.dev/programming-guides/encoding/>), just what the remote-write walker in
//! [`super::decode`] needs: tags, varints, zig-zag, fixed64, length-delimited slices, skipping
//! unknown fields, and packed or unpacked repeated scalars (a proto3 parser must accept both).
//!
//! Every read is bounds-checked and returns [`WireError`] instead of panicking: the input is
//! untrusted network data.

use super::error::IngestError;

/// Wire type 0: varint.
pub(crate) const VARINT: u8 = 0;
/// Wire type 1: 8 bytes little-endian.
pub(crate) const FIXED64: u8 = 1;
/// Wire type 2: varint length, then that many bytes.
pub(crate) const LEN: u8 = 2;
/// Wire type 5: 4 bytes little-endian.
pub(crate) const FIXED32: u8 = 5;

/// A wire-format violation: what was wrong and at which byte offset of the decompressed body.
pub(crate) fn err(reason: &'static str, offset: usize) -> IngestError {
    IngestError::Protobuf { reason, offset }
}

/// A cursor over one message's bytes. `base` is the offset of `buf[0]` in the whole body, for
/// error messages.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    base: usize,
}

impl<'a> Reader<'a> {
    /// A reader over `buf`, which starts at byte `base` of the body.
    pub(crate) fn new(buf: &'a [u8], base: usize) -> Self {
        Reader { buf, pos: 0, base }
    }

    /// True when every byte has been consumed.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// Offset of the cursor in the whole body.
    #[inline]
    pub(crate) fn offset(&self) -> usize {
        self.base + self.pos
    }

    /// Reads a base-128 varint (at most 10 bytes).
    #[inline]
    pub(crate) fn varint(&mut self) -> Result<u64, IngestError> {
        // Fast path: tags and most lengths of remote-write messages fit in one byte.
        if let Some(&b) = self.buf.get(self.pos) {
            if b < 0x80 {
                self.pos += 1;
                return Ok(u64::from(b));
            }
        }
        self.varint_slow()
    }

    #[inline(never)]
    fn varint_slow(&mut self) -> Result<u64, IngestError> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let Some(&b) = self.buf.get(self.pos) else {
                return Err(err("truncated varint", self.offset()));
            };
            self.pos += 1;
            if i == 9 && b > 1 {
                return Err(err("varint overflows 64 bits", self.offset()));
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(err("varint longer than 10 bytes", self.offset()))
    }

    /// Reads a field tag: `(field number, wire type)`.
    #[inline]
    pub(crate) fn tag(&mut self) -> Result<(u32, u8), IngestError> {
        let at = self.offset();
        let key = self.varint()?;
        let field = key >> 3;
        if field == 0 || field > u64::from(u32::MAX >> 3) {
            return Err(err("invalid field number", at));
        }
        Ok((field as u32, (key & 7) as u8))
    }

    /// Reads 8 little-endian bytes.
    #[inline]
    pub(crate) fn fixed64(&mut self) -> Result<u64, IngestError> {
        let end = self.pos.checked_add(8).filter(|&e| e <= self.buf.len());
        let Some(end) = end else {
            return Err(err("truncated fixed64", self.offset()));
        };
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.buf[self.pos..end]);
        self.pos = end;
        Ok(u64::from_le_bytes(b))
    }

    /// Reads a `double`.
    #[inline]
    pub(crate) fn double(&mut self) -> Result<f64, IngestError> {
        self.fixed64().map(f64::from_bits)
    }

    /// Reads a length-delimited field's bytes; returns them and their offset in the body.
    #[inline]
    pub(crate) fn bytes(&mut self) -> Result<(&'a [u8], usize), IngestError> {
        let len = self.varint()?;
        let start = self.pos;
        let end = usize::try_from(len)
            .ok()
            .and_then(|l| start.checked_add(l))
            .filter(|&e| e <= self.buf.len());
        let Some(end) = end else {
            return Err(err("length-delimited field runs past its message", self.offset()));
        };
        self.pos = end;
        Ok((&self.buf[start..end], self.base + start))
    }

    /// Skips a field of an unknown number (forward compatibility). Groups (wire types 3 and 4,
    /// deprecated since proto2 and never used by remote-write) are refused.
    pub(crate) fn skip(&mut self, wire_type: u8) -> Result<(), IngestError> {
        match wire_type {
            VARINT => self.varint().map(drop),
            FIXED64 => self.fixed64().map(drop),
            LEN => self.bytes().map(drop),
            FIXED32 => {
                let end = self.pos.checked_add(4).filter(|&e| e <= self.buf.len());
                match end {
                    Some(e) => {
                        self.pos = e;
                        Ok(())
                    }
                    None => Err(err("truncated fixed32", self.offset())),
                }
            }
            _ => Err(err("unsupported wire type", self.offset())),
        }
    }

    /// Checks that a known field arrived with the wire type its declaration implies.
    #[inline]
    pub(crate) fn expect(&self, got: u8, want: u8) -> Result<(), IngestError> {
        if got == want {
            Ok(())
        } else {
            Err(err("wrong wire type for field", self.offset()))
        }
    }

    /// Reads one or more varint elements of a repeated scalar field, packed (wire type 2) or
    /// not (wire type 0), calling `f` for each.
    #[inline]
    pub(crate) fn repeated_varint(
        &mut self,
        wire_type: u8,
        mut f: impl FnMut(u64),
    ) -> Result<(), IngestError> {
        match wire_type {
            VARINT => {
                f(self.varint()?);
                Ok(())
            }
            LEN => {
                let (b, at) = self.bytes()?;
                let mut r = Reader::new(b, at);
                while !r.is_empty() {
                    f(r.varint()?);
                }
                Ok(())
            }
            _ => Err(err("wrong wire type for repeated varint field", self.offset())),
        }
    }

    /// Reads one or more `double` elements, packed (wire type 2, a multiple of 8 bytes) or not
    /// (wire type 1), calling `f` for each.
    #[inline]
    pub(crate) fn repeated_double(
        &mut self,
        wire_type: u8,
        mut f: impl FnMut(f64),
    ) -> Result<(), IngestError> {
        match wire_type {
            FIXED64 => {
                f(self.double()?);
                Ok(())
            }
            LEN => {
                let (b, at) = self.bytes()?;
                if b.len() % 8 != 0 {
                    return Err(err("packed double field length is not a multiple of 8", at));
                }
                for c in b.chunks_exact(8) {
                    let mut a = [0u8; 8];
                    a.copy_from_slice(c);
                    f(f64::from_bits(u64::from_le_bytes(a)));
                }
                Ok(())
            }
            _ => Err(err("wrong wire type for repeated double field", self.offset())),
        }
    }
}

/// Zig-zag decoding of a `sint64`.
#[inline]
pub(crate) fn zigzag64(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Zig-zag decoding of a `sint32` (the varint is truncated to 32 bits first, as prost does).
#[inline]
pub(crate) fn zigzag32(v: u64) -> i32 {
    let v = v as u32;
    ((v >> 1) as i32) ^ -((v & 1) as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_edges() {
        let mut r = Reader::new(&[0xac, 0x02], 0);
        assert_eq!(r.varint().unwrap(), 300);
        assert!(r.is_empty());
        let max = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        assert_eq!(Reader::new(&max, 0).varint().unwrap(), u64::MAX);
        let over = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02];
        assert!(Reader::new(&over, 0).varint().is_err());
        assert!(Reader::new(&[0x80], 0).varint().is_err());
    }

    #[test]
    fn zigzag() {
        assert_eq!(zigzag64(0), 0);
        assert_eq!(zigzag64(1), -1);
        assert_eq!(zigzag64(2), 1);
        assert_eq!(zigzag64(u64::MAX), i64::MIN);
        assert_eq!(zigzag32(3), -2);
        assert_eq!(zigzag32(0xffff_fffe), i32::MAX);
    }

    #[test]
    fn bytes_past_end_is_an_error() {
        let mut r = Reader::new(&[0x05, 1, 2], 7);
        match r.bytes() {
            Err(IngestError::Protobuf { offset, .. }) => assert_eq!(offset, 8),
            other => panic!("unexpected {other:?}"),
        }
    }
}
