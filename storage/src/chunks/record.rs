//! The byte format of chunk segment files (layout in [`super`]): file header and records of
//! both versions.

use crate::chunkenc::bits::{get_uvarint, put_uvarint};
use crate::chunkenc::Encoding;

/// File magic, "HRTC" (Hearth chunks), big-endian.
pub const MAGIC: u32 = 0x4852_5443;
/// Version byte of files whose records carry their series ref and time bounds (the head's).
pub const VERSION_1: u8 = 1;
/// Version byte of files whose records hold only encoding, length, bytes and checksum (blocks,
/// whose index holds the series and time bounds of every chunk).
pub const VERSION_2: u8 = 2;
/// Bytes of the file header.
pub const FILE_HEADER_BYTES: usize = 8;
/// Fixed part of a version 1 record before the length varint: series ref, min t, max t,
/// encoding.
pub const RECORD_FIXED_BYTES_V1: usize = 8 + 8 + 8 + 1;
/// Fixed part of a version 2 record before the length varint: encoding.
pub const RECORD_FIXED_BYTES_V2: usize = 1;
/// Bytes of the trailing checksum.
pub const CRC_BYTES: usize = 4;

/// Which record layout a chunk directory writes (see the module doc of [`super`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum RecordFormat {
    /// Version 1: each record carries its series ref and time bounds, so the files alone are
    /// enough to rebuild which chunk belongs where (the head's `chunks_head/`, replayed on
    /// start). The default.
    #[default]
    V1,
    /// Version 2: encoding, length, bytes, checksum; 25 bytes per chunk smaller. For blocks,
    /// whose index already records each chunk's series and time bounds.
    V2,
}

impl RecordFormat {
    /// The version byte of files in this format.
    pub fn version(self) -> u8 {
        match self {
            RecordFormat::V1 => VERSION_1,
            RecordFormat::V2 => VERSION_2,
        }
    }

    /// The format of a version byte, `None` for an unknown one.
    pub fn from_version(v: u8) -> Option<RecordFormat> {
        match v {
            VERSION_1 => Some(RecordFormat::V1),
            VERSION_2 => Some(RecordFormat::V2),
            _ => None,
        }
    }

    /// Bytes before the length varint.
    fn fixed_bytes(self) -> usize {
        match self {
            RecordFormat::V1 => RECORD_FIXED_BYTES_V1,
            RecordFormat::V2 => RECORD_FIXED_BYTES_V2,
        }
    }
}

/// The 8-byte file header of a file in `format`.
pub fn file_header(format: RecordFormat) -> [u8; FILE_HEADER_BYTES] {
    let mut h = [0u8; FILE_HEADER_BYTES];
    h[..4].copy_from_slice(&MAGIC.to_be_bytes());
    h[4] = format.version();
    h
}

/// What a version 1 record says about its chunk.
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

/// Appends one record in `format` to `out` (a version 2 record keeps only `meta.encoding`).
pub fn encode(out: &mut Vec<u8>, format: RecordFormat, meta: &ChunkMeta, data: &[u8]) {
    let start = out.len();
    if format == RecordFormat::V1 {
        out.extend_from_slice(&meta.series_ref.to_le_bytes());
        out.extend_from_slice(&meta.min_t_ms.to_le_bytes());
        out.extend_from_slice(&meta.max_t_ms.to_le_bytes());
    }
    out.push(meta.encoding as u8);
    put_uvarint(out, data.len() as u64);
    out.extend_from_slice(data);
    let crc = crc32c::crc32c(&out[start..]);
    out.extend_from_slice(&crc.to_le_bytes());
}

/// A record found at some offset.
#[derive(Clone, Copy, Debug)]
pub struct Parsed {
    /// The chunk's encoding.
    pub encoding: Encoding,
    /// Series ref and time bounds: `Some` for a version 1 record, `None` for version 2.
    pub meta: Option<ChunkMeta>,
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
    /// records. Real records never start with their fixed part and the length's first byte
    /// all zero (the length is at least 1).
    Clean,
    /// A partial or damaged record.
    Bad(&'static str),
}

/// Parses the record of a file in `format` starting at `b[0]`; `verify_crc` checks the
/// checksum.
pub fn parse(b: &[u8], format: RecordFormat, verify_crc: bool) -> Result<Parsed, ParseEnd> {
    if b.is_empty() {
        return Err(ParseEnd::Clean);
    }
    let fixed = format.fixed_bytes();
    let probe = &b[..b.len().min(fixed + 1)];
    if probe.iter().all(|&x| x == 0) {
        return Err(ParseEnd::Clean);
    }
    if b.len() < fixed + 1 {
        return Err(ParseEnd::Bad("record header cut short"));
    }
    let encoding = Encoding::from_u8(b[fixed - 1]).ok_or(ParseEnd::Bad("unknown chunk encoding"))?;
    let meta = match format {
        RecordFormat::V1 => {
            let u64_at =
                |i: usize| u64::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3], b[i + 4], b[i + 5], b[i + 6], b[i + 7]]);
            Some(ChunkMeta { series_ref: u64_at(0), min_t_ms: u64_at(8) as i64, max_t_ms: u64_at(16) as i64, encoding })
        }
        RecordFormat::V2 => None,
    };
    let mut p = fixed;
    let len = get_uvarint(b, &mut p).ok_or(ParseEnd::Bad("record length cut short"))?;
    let data_len = usize::try_from(len).map_err(|_| ParseEnd::Bad("record length too large"))?;
    if data_len == 0 {
        return Err(ParseEnd::Bad("record of an empty chunk"));
    }
    let end = p.checked_add(data_len).filter(|&e| e.checked_add(CRC_BYTES).is_some_and(|x| x <= b.len()));
    let end = end.ok_or(ParseEnd::Bad("record extends past the end of the file"))?;
    if verify_crc {
        let want = u32::from_le_bytes([b[end], b[end + 1], b[end + 2], b[end + 3]]);
        if crc32c::crc32c(&b[..end]) != want {
            return Err(ParseEnd::Bad("record checksum mismatch"));
        }
    }
    Ok(Parsed { encoding, meta, data_start: p, data_len, record_len: end + CRC_BYTES })
}

/// Checks a file header and returns the file's record format. `Err(Some(version))` for a
/// readable header of an unknown version, `Err(None)` for a missing or foreign header.
pub fn check_file_header(b: &[u8]) -> Result<RecordFormat, Option<u8>> {
    let h = b.get(..FILE_HEADER_BYTES).ok_or(None)?;
    if h[..4] != MAGIC.to_be_bytes() {
        return Err(None);
    }
    RecordFormat::from_version(h[4]).ok_or(Some(h[4]))
}
