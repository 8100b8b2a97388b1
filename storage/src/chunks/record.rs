//! The byte format of chunk segment files (layout in [`super`]): file header and records.

use crate::chunkenc::bits::{get_uvarint, put_uvarint};
use crate::chunkenc::Encoding;

/// File magic, "HRTC" (Hearth chunks), big-endian.
pub const MAGIC: u32 = 0x4852_5443;
/// Format version written into each file header.
pub const VERSION: u8 = 1;
/// Bytes of the file header.
pub const FILE_HEADER_BYTES: usize = 8;
/// Fixed part of a record before the length varint: series ref, min t, max t, encoding.
pub const RECORD_FIXED_BYTES: usize = 8 + 8 + 8 + 1;
/// Bytes of the trailing checksum.
pub const CRC_BYTES: usize = 4;

/// The 8-byte file header.
pub fn file_header() -> [u8; FILE_HEADER_BYTES] {
    let mut h = [0u8; FILE_HEADER_BYTES];
    h[..4].copy_from_slice(&MAGIC.to_be_bytes());
    h[4] = VERSION;
    h
}

/// What a record says about its chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkMeta {
    /// The series the chunk belongs to (the head's or block's series ref, opaque here).
    pub series_ref: u64,
    /// First sample's timestamp, ms.
    pub min_t_ms: i64,
    /// Last sample's timestamp, ms.
    pub max_t_ms: i64,
    /// The chunk's encoding.
    pub encoding: Encoding,
}

/// Appends one record to `out`.
pub fn encode(out: &mut Vec<u8>, meta: &ChunkMeta, data: &[u8]) {
    let start = out.len();
    out.extend_from_slice(&meta.series_ref.to_le_bytes());
    out.extend_from_slice(&meta.min_t_ms.to_le_bytes());
    out.extend_from_slice(&meta.max_t_ms.to_le_bytes());
    out.push(meta.encoding as u8);
    put_uvarint(out, data.len() as u64);
    out.extend_from_slice(data);
    let crc = crc32c::crc32c(&out[start..]);
    out.extend_from_slice(&crc.to_le_bytes());
}

/// A record found at some offset.
#[derive(Clone, Copy, Debug)]
pub struct Parsed {
    pub meta: ChunkMeta,
    /// Offset of the chunk bytes, relative to the record start.
    pub data_start: usize,
    /// Length of the chunk bytes.
    pub data_len: usize,
    /// Whole record length including the checksum.
    pub record_len: usize,
}

/// Why no record could be read at an offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseEnd {
    /// Zero bytes (the preallocated, never written tail) or the end of the data: no more
    /// records. Real records never start with 26 zero bytes (their length is at least 1).
    Clean,
    /// A partial or damaged record.
    Bad(&'static str),
}

/// Parses the record starting at `b[0]`; `verify_crc` checks the checksum.
pub fn parse(b: &[u8], verify_crc: bool) -> Result<Parsed, ParseEnd> {
    if b.is_empty() {
        return Err(ParseEnd::Clean);
    }
    let probe = &b[..b.len().min(RECORD_FIXED_BYTES + 1)];
    if probe.iter().all(|&x| x == 0) {
        return Err(ParseEnd::Clean);
    }
    if b.len() < RECORD_FIXED_BYTES + 1 {
        return Err(ParseEnd::Bad("record header cut short"));
    }
    let u64_at = |i: usize| u64::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3], b[i + 4], b[i + 5], b[i + 6], b[i + 7]]);
    let encoding = Encoding::from_u8(b[24]).ok_or(ParseEnd::Bad("unknown chunk encoding"))?;
    let meta = ChunkMeta { series_ref: u64_at(0), min_t_ms: u64_at(8) as i64, max_t_ms: u64_at(16) as i64, encoding };
    let mut p = RECORD_FIXED_BYTES;
    let len = get_uvarint(b, &mut p).ok_or(ParseEnd::Bad("record length cut short"))?;
    let data_len = usize::try_from(len).map_err(|_| ParseEnd::Bad("record length too large"))?;
    let end = p.checked_add(data_len).filter(|&e| e.checked_add(CRC_BYTES).is_some_and(|x| x <= b.len()));
    let end = end.ok_or(ParseEnd::Bad("record extends past the end of the file"))?;
    if verify_crc {
        let want = u32::from_le_bytes([b[end], b[end + 1], b[end + 2], b[end + 3]]);
        if crc32c::crc32c(&b[..end]) != want {
            return Err(ParseEnd::Bad("record checksum mismatch"));
        }
    }
    Ok(Parsed { meta, data_start: p, data_len, record_len: end + CRC_BYTES })
}

/// Checks a file header. `Err(Some(version))` for a readable header of another version,
/// `Err(None)` for a missing or foreign header.
pub fn check_file_header(b: &[u8]) -> Result<(), Option<u8>> {
    let h = b.get(..FILE_HEADER_BYTES).ok_or(None)?;
    if h[..4] != MAGIC.to_be_bytes() {
        return Err(None);
    }
    if h[4] != VERSION {
        return Err(Some(h[4]));
    }
    Ok(())
}
