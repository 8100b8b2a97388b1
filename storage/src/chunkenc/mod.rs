//! Chunk encodings: how a run of one series' samples is laid out in bytes.
//!
//! Every chunk is self-describing given its [`Encoding`] byte (stored next to it by whoever
//! stores the chunk: the head chunk file, the block chunk file). Encodings are versioned by
//! their byte: a new layout gets a new byte, an old one is never changed in place.
//!
//! | byte | encoding | layout |
//! |------|----------|--------|
//! | 0 | [`Encoding::Raw`] | `n: u32 LE`, then `n` × `t_ms: i64 LE`, then `n` × `v: u64 LE` (f64 bits) |
//!
//! `Raw` is uncompressed and exists for tests, tools and as the always-correct fallback.

pub mod raw;

use std::sync::Arc;

use crate::histogram::FloatHistogram;

/// A chunk encoding, stored as one byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Encoding {
    /// Uncompressed columns (see the module table).
    Raw = 0,
}

impl Encoding {
    /// Decodes the stored byte.
    pub fn from_u8(b: u8) -> Option<Encoding> {
        match b {
            0 => Some(Encoding::Raw),
            _ => None,
        }
    }
}

/// The bytes of one encoded chunk, shared with whatever owns them (an mmap'd file, or a heap
/// buffer for a snapshot of an open head chunk). Cloning is a reference-count increment.
#[derive(Clone)]
pub struct ChunkBytes {
    owner: Arc<dyn AsRef<[u8]> + Send + Sync>,
    start: usize,
    end: usize,
}

impl ChunkBytes {
    /// Owns a heap buffer.
    pub fn from_vec(v: Vec<u8>) -> Self {
        let end = v.len();
        ChunkBytes { owner: Arc::new(v), start: 0, end }
    }

    /// A sub-range of a shared owner (e.g. one chunk inside an mmap'd file).
    ///
    /// # Panics
    /// If the range is outside the owner's bytes (a caller bug, not input).
    pub fn slice_of(owner: Arc<dyn AsRef<[u8]> + Send + Sync>, start: usize, end: usize) -> Self {
        assert!(start <= end && end <= (*owner).as_ref().len(), "chunk range out of bounds");
        ChunkBytes { owner, start, end }
    }

    /// The chunk's bytes.
    #[inline]
    pub fn as_slice(&self) -> &[u8] {
        &(*self.owner).as_ref()[self.start..self.end]
    }
}

impl std::fmt::Debug for ChunkBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ChunkBytes({} bytes)", self.end - self.start)
    }
}

/// One chunk of a series as a querier hands it out: its time bounds (inclusive, ms), its
/// encoding and its bytes.
#[derive(Clone, Debug)]
pub struct ChunkHandle {
    /// Timestamp of the first sample, ms.
    pub min_t_ms: i64,
    /// Timestamp of the last sample, ms.
    pub max_t_ms: i64,
    /// How `bytes` is laid out.
    pub encoding: Encoding,
    /// The encoded chunk.
    pub bytes: ChunkBytes,
}

/// What an iterator is positioned on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueType {
    /// Exhausted (or not started).
    None,
    /// A float sample: read it with `at()`.
    Float,
    /// A native histogram sample: read it with `at_histogram()`.
    Histogram,
}

/// A decoding iterator over one chunk. Static dispatch over the encodings; reusable across
/// chunks with [`ChunkIter::reset`] so that scanning many chunks allocates nothing per chunk.
pub enum ChunkIter<'a> {
    /// Over a [`Encoding::Raw`] chunk.
    Raw(raw::RawIter<'a>),
}

impl<'a> ChunkIter<'a> {
    /// An iterator positioned before the first sample of `bytes` in `encoding`. Corrupt bytes
    /// yield fewer samples (never a panic); the caller sees `err()`.
    pub fn new(encoding: Encoding, bytes: &'a [u8]) -> Self {
        match encoding {
            Encoding::Raw => ChunkIter::Raw(raw::RawIter::new(bytes)),
        }
    }

    /// Re-targets the iterator at another chunk.
    pub fn reset(&mut self, encoding: Encoding, bytes: &'a [u8]) {
        *self = ChunkIter::new(encoding, bytes);
    }

    /// Advances to the next sample.
    #[inline]
    pub fn next(&mut self) -> ValueType {
        match self {
            ChunkIter::Raw(it) => it.next(),
        }
    }

    /// Advances to the first sample with `t >= t_ms` (stays put if already there).
    #[inline]
    pub fn seek(&mut self, t_ms: i64) -> ValueType {
        match self {
            ChunkIter::Raw(it) => it.seek(t_ms),
        }
    }

    /// The current float sample `(t_ms, v)`.
    #[inline]
    pub fn at(&self) -> (i64, f64) {
        match self {
            ChunkIter::Raw(it) => it.at(),
        }
    }

    /// The current histogram sample. Only valid when positioned on [`ValueType::Histogram`].
    pub fn at_histogram(&self) -> (i64, &FloatHistogram) {
        match self {
            ChunkIter::Raw(_) => unreachable!("raw chunks hold only floats"),
        }
    }

    /// The current sample's timestamp, ms.
    #[inline]
    pub fn t(&self) -> i64 {
        self.at().0
    }

    /// Set when the chunk's bytes were found to be corrupt.
    pub fn err(&self) -> Option<&'static str> {
        match self {
            ChunkIter::Raw(it) => it.err(),
        }
    }
}
