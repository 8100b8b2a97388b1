//! The on-disk block index: file `<block>/index`, written once by [`IndexWriter`], read through
//! a memory map by [`DiskIndex`].
//!
//! # Layout (version 1)
//! All integers are little-endian. `uvarint` is LEB128 (7 bits per byte, low groups first, at
//! most 10 bytes); `varint` is a zigzag-encoded `uvarint`. Every section is followed by the
//! CRC32C (Castagnoli) of its bytes, and the table of contents by the CRC32C of its 80 bytes.
//!
//! ```text
//! header      magic u32 = 0x4849_4458 ("HIDX" read as a big-endian u32; stored LE)
//!             version u8 = 1
//! section 1   symbols
//!             count u32
//!             ends: count × u32      end offset of symbol i in `bytes` (start = ends[i-1], or 0)
//!             bytes                  the symbols' UTF-8 bytes, back to back
//!             crc32c u32
//!             Symbols are every label name and value, sorted by bytes and unique, so a symbol
//!             ref (its position) orders like its string.
//! section 2   series
//!             count u32              series ids are 0..count, in label order (Labels ordering)
//!             offsets: count × u64   start of each entry, relative to the section start
//!             entries, each:
//!               n_labels uvarint, then n_labels × (name_ref uvarint, value_ref uvarint),
//!                 sorted by name
//!               n_chunks uvarint, then per chunk (sorted by min_t):
//!                 min_t varint: the first chunk's min_t_ms; later chunks: min_t_ms minus the
//!                   previous chunk's max_t_ms
//!                 max_t_ms - min_t_ms uvarint
//!                 chunk_ref uvarint  (the chunk's [`crate::chunks`] reference, as u64)
//!             crc32c u32
//! section 3   postings data: for each label pair, the series ids as a roaring bitmap in the
//!             portable RoaringFormatSpec serialization, back to back
//!             crc32c u32
//! section 4   postings table, sorted by (name_ref, value_ref)
//!             count u32
//!             count × { name_ref u32, value_ref u32, offset u64 (in section 3), len u32 }
//!             crc32c u32
//! section 5   label names, sorted by name_ref
//!             count u32
//!             count × { name_ref u32, first u32, count u32 }  its pairs' range in section 4
//!             crc32c u32
//! TOC         5 × { offset u64 (from file start), len u64 (without the crc) }, sections 1..5
//!             crc32c u32 of the 80 TOC bytes
//! footer      version u8 = 1, magic u32
//! ```
//!
//! All postings (every series) is `0..count` and is not stored.
//!
//! # Validation
//! [`DiskIndex::open`] checks magic, version, the TOC and every section checksum, that symbols
//! are valid UTF-8 and sorted, and that every table entry points inside its section, so a
//! flipped byte is a typed [`crate::StorageError`] at open, never a panic later. Series
//! entries are additionally bounds-checked when decoded.

mod reader;
mod writer;

pub use reader::DiskIndex;
pub use writer::IndexWriter;

/// First four bytes of an index file (and its last four).
pub const MAGIC: u32 = 0x4849_4458;
/// The format version written by this build.
pub const VERSION: u8 = 1;
/// Bytes of the header: magic + version.
pub const HEADER_LEN: usize = 5;
/// Bytes of the TOC entries.
pub const TOC_LEN: usize = 80;
/// Bytes after the last section: TOC, its crc, version, magic.
pub const FOOTER_LEN: usize = TOC_LEN + 4 + 1 + 4;
/// Bytes of one postings table entry.
pub const POSTINGS_ENTRY_LEN: usize = 20;
/// Bytes of one label names entry.
pub const NAME_ENTRY_LEN: usize = 12;

/// One chunk of a series as the index records it: time bounds (inclusive, ms since the epoch)
/// and where the chunk lives in the block's chunk files.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChunkMeta {
    /// Timestamp of the chunk's first sample, ms.
    pub min_t_ms: i64,
    /// Timestamp of the chunk's last sample, ms.
    pub max_t_ms: i64,
    /// The chunk's reference in the block's chunk segment files.
    pub chunk_ref: u64,
}

pub(crate) use crate::encoding::{put_uvarint, put_varint};

/// A bounds-checked cursor over bytes; every read returns `None` past the end or on overflow.
pub(crate) struct Cursor<'a> {
    pub(crate) b: &'a [u8],
    pub(crate) pos: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(b: &'a [u8]) -> Self {
        Cursor { b, pos: 0 }
    }

    pub(crate) fn uvarint(&mut self) -> Option<u64> {
        crate::encoding::get_uvarint(self.b, &mut self.pos)
    }

    pub(crate) fn varint(&mut self) -> Option<i64> {
        crate::encoding::get_varint(self.b, &mut self.pos)
    }
}

#[cfg(test)]
mod tests;
