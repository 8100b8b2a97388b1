//! A block's chunk segment files, `<block>/chunks/NNNNNN`: written once by
//! [`ChunkSegmentWriter`], memory-mapped and read in place by [`ChunkSegmentReader`].
//!
//! # Layout (version 1)
//! ```text
//! segment file  magic u32 LE = 0x4843_484B ("HCHK")
//!               version u8 = 1
//!               3 zero bytes (the first record starts 8-byte aligned)
//!               records, back to back:
//!                 encoding u8         (crate::chunkenc::Encoding)
//!                 len uvarint         bytes of the encoded chunk
//!                 chunk bytes
//!                 crc32c u32 LE       over the encoding byte and the chunk bytes
//! ```
//! Files are named `000001`, `000002`... and a new one is started before a record would take a
//! file past [`SEGMENT_MAX_BYTES`]. A chunk's reference (`u64`) is
//! `(segment_number << 32) | offset_of_its_record`. Every read checks bounds and the record's
//! CRC, so a flipped byte is a typed [`StorageError::Corruption`], never a panic.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::chunkenc::{ChunkBytes, ChunkHandle, Encoding};
use crate::error::{Result, StorageError};
use crate::index::disk::put_uvarint;
use crate::index::disk::Cursor;

use super::mmap::map_file;

/// Magic number at the start of every segment file.
pub const SEGMENT_MAGIC: u32 = 0x4843_484B;
/// Segment format version.
pub const SEGMENT_VERSION: u8 = 1;
/// Bytes of the segment header.
pub const SEGMENT_HEADER_LEN: usize = 8;
/// Largest segment file, bytes (512 MiB, Prometheus' block chunk segment size).
pub const SEGMENT_MAX_BYTES: u64 = 512 << 20;

/// Name of segment `n` (1-based): six digits.
pub fn segment_name(n: u32) -> String {
    format!("{n:06}")
}

/// Appends chunks to the segment files of a new block's `chunks/` directory.
pub struct ChunkSegmentWriter {
    dir: PathBuf,
    seq: u32,
    file: Option<BufWriter<File>>,
    pos: u64,
    max_bytes: u64,
    /// Bytes written in all segments.
    written: u64,
}

impl ChunkSegmentWriter {
    /// Creates `dir` (the block's `chunks/`) and prepares to write segments into it.
    ///
    /// # Errors
    /// [`StorageError::Io`].
    pub fn create(dir: &Path) -> Result<Self> {
        Self::with_max_bytes(dir, SEGMENT_MAX_BYTES)
    }

    /// As [`ChunkSegmentWriter::create`] with another segment size limit (tests).
    ///
    /// # Errors
    /// [`StorageError::Io`].
    pub fn with_max_bytes(dir: &Path, max_bytes: u64) -> Result<Self> {
        fs::create_dir_all(dir).map_err(|e| StorageError::io(format!("create {}", dir.display()), e))?;
        Ok(ChunkSegmentWriter { dir: dir.to_path_buf(), seq: 0, file: None, pos: 0, max_bytes, written: 0 })
    }

    fn io(&self, e: std::io::Error) -> StorageError {
        StorageError::io(format!("write chunk segment {}", self.dir.join(segment_name(self.seq)).display()), e)
    }

    fn cut(&mut self) -> Result<()> {
        self.finish_segment()?;
        self.seq += 1;
        let path = self.dir.join(segment_name(self.seq));
        let f = File::create(&path).map_err(|e| StorageError::io(format!("create {}", path.display()), e))?;
        let mut w = BufWriter::with_capacity(1 << 20, f);
        let mut header = [0u8; SEGMENT_HEADER_LEN];
        header[..4].copy_from_slice(&SEGMENT_MAGIC.to_le_bytes());
        header[4] = SEGMENT_VERSION;
        w.write_all(&header).map_err(|e| self.io(e))?;
        self.file = Some(w);
        self.pos = SEGMENT_HEADER_LEN as u64;
        self.written += SEGMENT_HEADER_LEN as u64;
        Ok(())
    }

    fn finish_segment(&mut self) -> Result<()> {
        if let Some(w) = self.file.take() {
            let f = w.into_inner().map_err(|e| self.io(e.into_error()))?;
            f.sync_all().map_err(|e| self.io(e))?;
        }
        Ok(())
    }

    /// Appends one encoded chunk; returns its reference.
    ///
    /// # Errors
    /// [`StorageError::Io`].
    pub fn append(&mut self, encoding: Encoding, bytes: &[u8]) -> Result<u64> {
        let mut head = Vec::with_capacity(11);
        head.push(encoding as u8);
        put_uvarint(&mut head, bytes.len() as u64);
        let rec_len = (head.len() + bytes.len() + 4) as u64;
        if self.file.is_none() || (self.pos + rec_len > self.max_bytes && self.pos > SEGMENT_HEADER_LEN as u64) {
            self.cut()?;
        }
        let offset = self.pos;
        let crc = crc32c::crc32c_append(crc32c::crc32c(&[encoding as u8]), bytes);
        let w = self.file.as_mut().expect("a segment is open after cut");
        let r = w.write_all(&head).and_then(|_| w.write_all(bytes)).and_then(|_| w.write_all(&crc.to_le_bytes()));
        r.map_err(|e| self.io(e))?;
        self.pos += rec_len;
        self.written += rec_len;
        Ok((u64::from(self.seq) << 32) | offset)
    }

    /// Flushes and fsyncs the last segment and the directory; returns the bytes written.
    ///
    /// # Errors
    /// [`StorageError::Io`].
    pub fn finish(mut self) -> Result<u64> {
        self.finish_segment()?;
        super::fsync_dir(&self.dir)?;
        Ok(self.written)
    }
}

/// The memory-mapped segments of a block's `chunks/` directory.
pub struct ChunkSegmentReader {
    dir: PathBuf,
    /// Segment `n` is `segments[n - 1]`.
    segments: Vec<Arc<dyn AsRef<[u8]> + Send + Sync>>,
    size_bytes: u64,
}

impl ChunkSegmentReader {
    /// Maps every segment of `dir` (numbered `000001`... without gaps) and checks its header.
    ///
    /// # Errors
    /// [`StorageError::Io`] if a file cannot be read; [`StorageError::Corruption`] for a
    /// gap in the numbering or a bad header; [`StorageError::UnsupportedVersion`].
    pub fn open(dir: &Path) -> Result<Self> {
        let mut nums: Vec<u32> = Vec::new();
        let rd = fs::read_dir(dir).map_err(|e| StorageError::io(format!("read {}", dir.display()), e))?;
        for entry in rd {
            let entry = entry.map_err(|e| StorageError::io(format!("read {}", dir.display()), e))?;
            if let Some(n) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) {
                nums.push(n);
            }
        }
        nums.sort_unstable();
        let mut segments = Vec::with_capacity(nums.len());
        let mut size_bytes = 0;
        for (i, n) in nums.iter().enumerate() {
            let path = dir.join(segment_name(*n));
            if *n as usize != i + 1 {
                return Err(StorageError::Corruption { path, offset: 0, reason: "chunk segment numbering has a gap".into() });
            }
            let map = map_file(&path)?;
            let b: &[u8] = (*map).as_ref();
            if b.len() < SEGMENT_HEADER_LEN || b[..4] != SEGMENT_MAGIC.to_le_bytes() {
                return Err(StorageError::Corruption { path, offset: 0, reason: "bad chunk segment header".into() });
            }
            if b[4] != SEGMENT_VERSION {
                return Err(StorageError::UnsupportedVersion { path, version: b[4] });
            }
            size_bytes += b.len() as u64;
            segments.push(map);
        }
        Ok(ChunkSegmentReader { dir: dir.to_path_buf(), segments, size_bytes })
    }

    /// Total bytes of the segment files.
    pub fn size_bytes(&self) -> u64 {
        self.size_bytes
    }

    /// The chunk at `chunk_ref`, as a zero-copy slice of the mapped segment, with the given
    /// time bounds (from the index).
    ///
    /// # Errors
    /// [`StorageError::Corruption`] if the reference is out of range, the record malformed, its
    /// encoding unknown or its checksum wrong.
    pub fn get(&self, chunk_ref: u64, min_t_ms: i64, max_t_ms: i64) -> Result<ChunkHandle> {
        let seq = (chunk_ref >> 32) as usize;
        let offset = (chunk_ref & 0xffff_ffff) as usize;
        let corrupt = |reason: &str| StorageError::Corruption {
            path: self.dir.join(segment_name(seq as u32)),
            offset: offset as u64,
            reason: reason.to_string(),
        };
        let seg = seq.checked_sub(1).and_then(|i| self.segments.get(i)).ok_or_else(|| corrupt("chunk segment out of range"))?;
        let b: &[u8] = (**seg).as_ref();
        if offset < SEGMENT_HEADER_LEN || offset >= b.len() {
            return Err(corrupt("chunk offset out of range"));
        }
        let enc_byte = b[offset];
        let encoding = Encoding::from_u8(enc_byte).ok_or_else(|| corrupt("unknown chunk encoding"))?;
        let mut c = Cursor::new(&b[offset + 1..]);
        let len = c.uvarint().ok_or_else(|| corrupt("bad chunk length"))?;
        let start = offset + 1 + c.pos;
        let end = usize::try_from(len).ok().and_then(|l| start.checked_add(l)).filter(|e| e + 4 <= b.len());
        let end = end.ok_or_else(|| corrupt("chunk extends past its segment"))?;
        let want = u32::from_le_bytes(b[end..end + 4].try_into().map_err(|_| corrupt("short crc"))?);
        if crc32c::crc32c_append(crc32c::crc32c(&[enc_byte]), &b[start..end]) != want {
            return Err(corrupt("chunk checksum mismatch"));
        }
        Ok(ChunkHandle { min_t_ms, max_t_ms, encoding, bytes: ChunkBytes::slice_of(Arc::clone(seg), start, end) })
    }
}
