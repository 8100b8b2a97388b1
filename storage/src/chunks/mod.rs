//! Chunk segment files: full chunks appended to preallocated, memory-mapped files. The head
//! writes its cut chunks here (Prometheus' `chunks_head/`), blocks keep their chunks here
//! (Prometheus' `<block>/chunks/`).
//!
//! # Layout
//!
//! A directory of segment files named by their sequence number, six or more decimal digits
//! (`000001`, `000002`, ...). Each file:
//!
//! ```text
//! header   magic u32 BE 0x48525443 ("HRTC") | version u8 (1 or 2) | 3 zero bytes  (8 bytes)
//! records  repeated, back to back from offset 8, in the file's version:
//!
//!   version 1 (RecordFormat::V1, the head's chunks_head/)
//!     series_ref  u64 LE    owner of the chunk (opaque to this module)
//!     min_t_ms    i64 LE    first sample's timestamp
//!     max_t_ms    i64 LE    last sample's timestamp
//!     encoding    u8        `chunkenc::Encoding` byte
//!     len         uvarint   chunk byte length, >= 1
//!     bytes       len bytes the encoded chunk
//!     crc32c      u32 LE    Castagnoli CRC of every preceding byte of this record
//!
//!   version 2 (RecordFormat::V2, blocks: the block index holds each chunk's series and
//!   time bounds, so the record does not repeat them; 25 bytes per chunk less)
//!     encoding    u8        `chunkenc::Encoding` byte
//!     len         uvarint   chunk byte length, >= 1
//!     bytes       len bytes the encoded chunk
//!     crc32c      u32 LE    Castagnoli CRC of every preceding byte of this record
//!
//! tail     zero bytes up to the preallocated size (the active file), or nothing (a sealed
//!          file is trimmed to its last record)
//! ```
//!
//! A record never starts with its fixed part and the first length byte all zero (the length is
//! at least 1), which is how a reader tells the zero tail from a record.
//!
//! A directory writes the version its [`ChunkFilesOptions::format`] says and reads files of
//! both versions, each file by its own header, so blocks written with version 1 stay readable
//! through [`ChunkFiles::get_with_bounds`]. The calls that need what only a version 1 record
//! holds ([`ChunkFiles::get`], [`ChunkFiles::get_with_meta`], [`ChunkFiles::iterate_all`])
//! refuse a version 2 file with [`StorageError::UnsupportedVersion`].
//!
//! A [`ChunkRef`] is `seq << 32 | offset` of the record's first byte, so refs sort in write
//! order and never equal 0 (offsets start at 8).
//!
//! # Concurrency
//! One writer ([`ChunkFiles::append`], serialised by a mutex) and any number of readers
//! ([`ChunkFiles::get`], lock-free apart from a brief read lock on the segment list). A new
//! segment is created under a temporary name, given its header, preallocated to
//! [`ChunkFilesOptions::max_segment_bytes`], renamed into place and mapped read-only once,
//! whole. Records are written with `pwrite` beyond the mapping's published length, and a ref is
//! returned only after the record is written and published (see [`crate::mmap`]), so a reader
//! never sees a partial record. Chunks handed out are zero-copy slices of the mapping kept
//! alive by an `Arc`: removing a file does not invalidate them.
//!
//! # Crash safety
//! After a restart the writer never appends to an existing file: the first append starts a
//! new segment. [`ChunkFiles::iterate_all`] walks every file up to its zero tail and stops a
//! file at a torn or corrupt record, reporting it; the caller (head replay) falls back to the
//! WAL for what was lost. Durability needs [`ChunkFiles::sync`] (the head syncs before it
//! truncates the WAL past the chunks).

mod record;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

pub use record::{ChunkMeta, RecordFormat};
use record::{ParseEnd, FILE_HEADER_BYTES};

use crate::chunkenc::{ChunkBytes, ChunkHandle, Encoding};
use crate::error::{Result, StorageError};
use crate::mmap::MappedFile;

/// Default size at which the writer starts a new segment file: 128 MiB.
pub const DEFAULT_MAX_SEGMENT_BYTES: u64 = 128 << 20;

/// Where a chunk lives: segment sequence number (high 32 bits) and byte offset of its record
/// (low 32 bits).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ChunkRef(pub u64);

impl ChunkRef {
    /// Packs a segment sequence number and offset.
    pub fn new(seq: u32, offset: u32) -> Self {
        ChunkRef((u64::from(seq) << 32) | u64::from(offset))
    }

    /// The segment file's sequence number.
    pub fn seq(self) -> u32 {
        (self.0 >> 32) as u32
    }

    /// Byte offset of the record in its segment.
    pub fn offset(self) -> u32 {
        self.0 as u32
    }
}

/// Knobs of a chunk file directory.
#[derive(Clone, Debug)]
pub struct ChunkFilesOptions {
    /// Preallocated size of a segment; a record that does not fit starts a new segment.
    /// Default [`DEFAULT_MAX_SEGMENT_BYTES`] (128 MiB); at most `u32::MAX` (offsets are 32
    /// bits), at least 4 KiB.
    pub max_segment_bytes: u64,
    /// The record layout new segments are written in. Default [`RecordFormat::V1`] (records
    /// carry series ref and time bounds, as head replay needs); blocks write
    /// [`RecordFormat::V2`]. Existing files are read in whatever version they hold.
    pub format: RecordFormat,
}

impl Default for ChunkFilesOptions {
    fn default() -> Self {
        ChunkFilesOptions { max_segment_bytes: DEFAULT_MAX_SEGMENT_BYTES, format: RecordFormat::V1 }
    }
}

/// One segment file, shared by readers.
#[derive(Debug)]
struct Segment {
    seq: u32,
    path: PathBuf,
    /// The record layout of this file (its header's version).
    format: RecordFormat,
    map: Arc<MappedFile>,
    /// Largest `max_t_ms` of its records; `i64::MIN` when empty, `UNKNOWN_MAX_T` until an
    /// opened (not written by us) file is scanned, and for good for an opened version 2 file
    /// (its records hold no time bounds).
    max_t_ms: AtomicI64,
}

/// Sentinel for [`Segment::max_t_ms`] of an opened file not yet scanned.
const UNKNOWN_MAX_T: i64 = i64::MAX;

/// The segment the writer appends to.
#[derive(Debug)]
struct Active {
    file: File,
    seg: Arc<Segment>,
    /// Next write offset (= the segment's published length).
    offset: u64,
}

#[derive(Debug)]
struct Writer {
    active: Option<Active>,
    next_seq: u32,
    /// Reused record buffer: no allocation per append once grown.
    buf: Vec<u8>,
}

/// A directory of chunk segment files: one writer, many concurrent readers. Share it as
/// `Arc<ChunkFiles>`.
#[derive(Debug)]
pub struct ChunkFiles {
    dir: PathBuf,
    opts: ChunkFilesOptions,
    /// Every segment by sequence number. Read-locked briefly by `get`; write-locked when a
    /// segment is added or removed.
    segments: RwLock<BTreeMap<u32, Arc<Segment>>>,
    /// Serialises appends, rollover, sync and removal of files.
    writer: Mutex<Writer>,
}

/// What [`ChunkFiles::iterate_all`] found.
#[derive(Debug, Default)]
pub struct IterateReport {
    /// Records passed to the callback.
    pub chunks: u64,
    /// Files that ended in a torn or corrupt record (one [`StorageError::Corruption`] per
    /// file, with the record's offset). Records after it in that file were not visited.
    pub corruptions: Vec<StorageError>,
    /// Where each corruption is, as the ref a record there would have; parallel to
    /// `corruptions`, in ref order (so `corrupt_at.first()` is the earliest).
    pub corrupt_at: Vec<ChunkRef>,
}

/// A segment as listed by [`ChunkFiles::segments`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentInfo {
    /// Sequence number.
    pub seq: u32,
    /// Bytes of records written (the published length, header included).
    pub size_bytes: u64,
    /// True for the segment the writer is appending to.
    pub active: bool,
}

fn io_err(context: String, source: io::Error) -> StorageError {
    StorageError::io(context, source)
}

fn segment_name(seq: u32) -> String {
    format!("{seq:06}")
}

impl ChunkFiles {
    /// Opens (creating if needed) the directory and maps every existing segment read-only.
    /// Nothing is written until the first [`Self::append`], which starts a new segment.
    /// Leftover temporary files of an interrupted segment creation are removed.
    ///
    /// # Errors
    /// I/O errors; [`StorageError::Corruption`] for a segment without a valid header;
    /// [`StorageError::UnsupportedVersion`] for a segment of another format version;
    /// [`StorageError::Io`] with `InvalidInput` for options out of range.
    pub fn open(dir: impl AsRef<Path>, opts: ChunkFilesOptions) -> Result<ChunkFiles> {
        let dir = dir.as_ref().to_path_buf();
        if !(4096..=u64::from(u32::MAX)).contains(&opts.max_segment_bytes) {
            let e = io::Error::new(io::ErrorKind::InvalidInput, "max_segment_bytes must be in 4 KiB..=4 GiB");
            return Err(io_err("chunk files options".into(), e));
        }
        fs::create_dir_all(&dir).map_err(|e| io_err(format!("create chunk dir {}", dir.display()), e))?;
        let mut segments = BTreeMap::new();
        let entries = fs::read_dir(&dir).map_err(|e| io_err(format!("list chunk dir {}", dir.display()), e))?;
        for entry in entries {
            let entry = entry.map_err(|e| io_err(format!("list chunk dir {}", dir.display()), e))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.ends_with(".tmp") {
                let p = entry.path();
                fs::remove_file(&p).map_err(|e| io_err(format!("remove {}", p.display()), e))?;
                continue;
            }
            let Ok(seq) = name.parse::<u32>() else { continue };
            if name.len() < 6 || !name.bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            let seg = Self::open_segment(seq, entry.path())?;
            segments.insert(seq, Arc::new(seg));
        }
        let next_seq = segments.keys().next_back().map_or(1, |s| s + 1);
        Ok(ChunkFiles {
            dir,
            opts,
            segments: RwLock::new(segments),
            writer: Mutex::new(Writer { active: None, next_seq, buf: Vec::new() }),
        })
    }

    fn open_segment(seq: u32, path: PathBuf) -> Result<Segment> {
        let file = File::open(&path).map_err(|e| io_err(format!("open chunk segment {}", path.display()), e))?;
        let len = file.metadata().map_err(|e| io_err(format!("stat {}", path.display()), e))?.len();
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        let map = MappedFile::map(&file, len).map_err(|e| io_err(format!("mmap {}", path.display()), e))?;
        let format = match record::check_file_header(map.bytes()) {
            Ok(f) => f,
            Err(Some(version)) => return Err(StorageError::UnsupportedVersion { path, version }),
            Err(None) => {
                return Err(StorageError::Corruption { path, offset: 0, reason: "missing or foreign chunk file header".into() })
            }
        };
        Ok(Segment { seq, path, format, map: Arc::new(map), max_t_ms: AtomicI64::new(UNKNOWN_MAX_T) })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends one chunk and returns its ref once it is written and readable. Starts a new
    /// segment when the record does not fit the current one (or after open). Not durable until
    /// [`Self::sync`]. In [`RecordFormat::V2`] `series_ref` and the time bounds are not stored
    /// (the caller's index keeps them); `max_t_ms` still bounds the segment for
    /// [`Self::truncate_before`] while this instance lives.
    ///
    /// # Errors
    /// I/O errors; `InvalidInput` for empty `data` or a record larger than a segment.
    pub fn append(&self, series_ref: u64, min_t_ms: i64, max_t_ms: i64, encoding: Encoding, data: &[u8]) -> Result<ChunkRef> {
        let mut w = self.writer.lock();
        let w = &mut *w;
        let meta = ChunkMeta { series_ref, min_t_ms, max_t_ms, encoding };
        w.buf.clear();
        record::encode(&mut w.buf, self.opts.format, &meta, data);
        let rec_len = w.buf.len() as u64;
        let max = self.opts.max_segment_bytes;
        if data.is_empty() || rec_len > max - FILE_HEADER_BYTES as u64 {
            let e = io::Error::new(io::ErrorKind::InvalidInput, format!("chunk of {} bytes: empty or larger than a segment", data.len()));
            return Err(io_err("append chunk".into(), e));
        }
        let fits = w.active.as_ref().is_some_and(|a| a.offset + rec_len <= max);
        if !fits {
            self.seal_locked(w)?;
            self.start_segment(w)?;
        }
        let Some(a) = w.active.as_mut() else {
            return Err(StorageError::Closed);
        };
        a.file
            .write_all_at(&w.buf, a.offset)
            .map_err(|e| io_err(format!("write chunk to {}", a.seg.path.display()), e))?;
        let r = ChunkRef::new(a.seg.seq, a.offset as u32);
        a.offset += rec_len;
        a.seg.map.publish(a.offset as usize);
        a.seg.max_t_ms.fetch_max(max_t_ms, Ordering::Relaxed);
        Ok(r)
    }

    fn start_segment(&self, w: &mut Writer) -> Result<()> {
        let seq = w.next_seq;
        let path = self.dir.join(segment_name(seq));
        let tmp = self.dir.join(format!("{}.tmp", segment_name(seq)));
        let ctx = |what: &str| format!("{what} chunk segment {}", tmp.display());
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(|e| io_err(ctx("create"), e))?;
        file.write_all_at(&record::file_header(self.opts.format), 0).map_err(|e| io_err(ctx("write header of"), e))?;
        file.set_len(self.opts.max_segment_bytes).map_err(|e| io_err(ctx("preallocate"), e))?;
        fs::rename(&tmp, &path).map_err(|e| io_err(ctx("rename"), e))?;
        let map = MappedFile::map(&file, FILE_HEADER_BYTES).map_err(|e| io_err(ctx("mmap"), e))?;
        let seg = Arc::new(Segment { seq, path, format: self.opts.format, map: Arc::new(map), max_t_ms: AtomicI64::new(i64::MIN) });
        self.segments.write().insert(seq, seg.clone());
        w.next_seq = seq.checked_add(1).ok_or(StorageError::Corruption {
            path: self.dir.clone(),
            offset: 0,
            reason: "segment sequence numbers exhausted".into(),
        })?;
        w.active = Some(Active { file, seg, offset: FILE_HEADER_BYTES as u64 });
        Ok(())
    }

    /// Finishes the active segment: fsync, trim the preallocated tail. No-op without one.
    fn seal_locked(&self, w: &mut Writer) -> Result<()> {
        match w.active.take() {
            Some(a) => seal_active(a),
            None => Ok(()),
        }
    }

    /// Seals the active segment (fsync, trim its preallocated tail); the next append starts a
    /// new one. Blocks call this after writing their last chunk.
    ///
    /// # Errors
    /// I/O errors.
    pub fn seal(&self) -> Result<()> {
        let mut w = self.writer.lock();
        self.seal_locked(&mut w)
    }

    /// Makes every appended chunk durable (fsync of the active segment and the directory).
    ///
    /// # Errors
    /// I/O errors.
    pub fn sync(&self) -> Result<()> {
        let w = self.writer.lock();
        if let Some(a) = &w.active {
            a.file.sync_data().map_err(|e| io_err(format!("fsync chunk segment {}", a.seg.path.display()), e))?;
        }
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io_err(format!("fsync chunk dir {}", self.dir.display()), e))
    }

    fn segment(&self, seq: u32) -> Option<Arc<Segment>> {
        self.segments.read().get(&seq).cloned()
    }

    /// Finds and checks the record at `r`: its segment, parsed record and absolute offset.
    fn record_at(&self, r: ChunkRef) -> Result<(Arc<Segment>, record::Parsed, usize)> {
        let Some(seg) = self.segment(r.seq()) else {
            return Err(StorageError::Corruption {
                path: self.dir.join(segment_name(r.seq())),
                offset: u64::from(r.offset()),
                reason: "chunk ref names a segment that does not exist".into(),
            });
        };
        let b = seg.map.bytes();
        let off = r.offset() as usize;
        let corrupt = |reason: &str| StorageError::Corruption {
            path: seg.path.clone(),
            offset: off as u64,
            reason: reason.to_string(),
        };
        if off < FILE_HEADER_BYTES || off >= b.len() {
            return Err(corrupt("chunk ref outside the segment's written data"));
        }
        let p = match record::parse(&b[off..], seg.format, true) {
            Ok(p) => p,
            Err(ParseEnd::Clean) => return Err(corrupt("chunk ref points at no record")),
            Err(ParseEnd::Bad(reason)) => return Err(corrupt(reason)),
        };
        Ok((seg, p, off))
    }

    /// The chunk at `r` with the time bounds the caller keeps for it (a block's index),
    /// zero-copy; works for records of either version (a version 1 record's own bounds are
    /// not consulted). The checksum is verified.
    ///
    /// # Errors
    /// [`StorageError::Corruption`] for a ref that points at no valid record (unknown segment,
    /// offset outside the written data, checksum mismatch).
    pub fn get_with_bounds(&self, r: ChunkRef, min_t_ms: i64, max_t_ms: i64) -> Result<ChunkHandle> {
        let (seg, p, off) = self.record_at(r)?;
        let start = off + p.data_start;
        let owner: Arc<dyn AsRef<[u8]> + Send + Sync> = seg.map.clone();
        let bytes = ChunkBytes::slice_of(owner, start, start + p.data_len);
        Ok(ChunkHandle { min_t_ms, max_t_ms, encoding: p.encoding, bytes })
    }

    /// The chunk at `r` of a version 1 file with its record's metadata, zero-copy (the bytes
    /// are a slice of the mapping). The checksum is verified.
    ///
    /// # Errors
    /// [`StorageError::Corruption`] for a ref that points at no valid record (unknown segment,
    /// offset outside the written data, checksum mismatch);
    /// [`StorageError::UnsupportedVersion`] for a record of a version 2 file, which holds no
    /// metadata (read it with [`Self::get_with_bounds`]).
    pub fn get_with_meta(&self, r: ChunkRef) -> Result<(ChunkMeta, ChunkHandle)> {
        let (seg, p, off) = self.record_at(r)?;
        let Some(meta) = p.meta else {
            return Err(StorageError::UnsupportedVersion { path: seg.path.clone(), version: seg.format.version() });
        };
        let start = off + p.data_start;
        let owner: Arc<dyn AsRef<[u8]> + Send + Sync> = seg.map.clone();
        let bytes = ChunkBytes::slice_of(owner, start, start + p.data_len);
        let h = ChunkHandle { min_t_ms: meta.min_t_ms, max_t_ms: meta.max_t_ms, encoding: p.encoding, bytes };
        Ok((meta, h))
    }

    /// The chunk at `r` of a version 1 file, zero-copy. See [`Self::get_with_meta`].
    ///
    /// # Errors
    /// As [`Self::get_with_meta`].
    pub fn get(&self, r: ChunkRef) -> Result<ChunkHandle> {
        self.get_with_meta(r).map(|(_, h)| h)
    }

    /// Calls `f` for every record of every segment, in ref order (startup replay). A file
    /// stops at its zero tail, or at a torn or corrupt record, which is reported in the
    /// returned [`IterateReport`] (the walk goes on with the next file). An error returned by
    /// `f` stops the walk and is returned.
    ///
    /// # Errors
    /// Whatever `f` returns; [`StorageError::UnsupportedVersion`] for a version 2 file (its
    /// records carry no series ref or time bounds to replay), before any callback.
    pub fn iterate_all(&self, mut f: impl FnMut(ChunkRef, &ChunkMeta, &[u8]) -> Result<()>) -> Result<IterateReport> {
        let segs: Vec<Arc<Segment>> = self.segments.read().values().cloned().collect();
        if let Some(s) = segs.iter().find(|s| s.format != RecordFormat::V1) {
            return Err(StorageError::UnsupportedVersion { path: s.path.clone(), version: s.format.version() });
        }
        let mut report = IterateReport::default();
        for seg in segs {
            let b = seg.map.bytes();
            let mut off = FILE_HEADER_BYTES;
            let mut max_t = i64::MIN;
            while off < b.len() {
                match record::parse(&b[off..], seg.format, true) {
                    Ok(record::Parsed { meta: Some(meta), data_start, data_len, record_len, .. }) => {
                        let data = &b[off + data_start..off + data_start + data_len];
                        // Offsets fit in u32: segments are at most u32::MAX bytes.
                        f(ChunkRef::new(seg.seq, off as u32), &meta, data)?;
                        report.chunks += 1;
                        max_t = max_t.max(meta.max_t_ms);
                        off += record_len;
                    }
                    // Version 1 records always carry their metadata (checked above).
                    Ok(_) | Err(ParseEnd::Clean) => break,
                    Err(ParseEnd::Bad(reason)) => {
                        report.corruptions.push(StorageError::Corruption {
                            path: seg.path.clone(),
                            offset: off as u64,
                            reason: reason.into(),
                        });
                        report.corrupt_at.push(ChunkRef::new(seg.seq, off as u32));
                        break;
                    }
                }
            }
            let _ = seg.max_t_ms.compare_exchange(UNKNOWN_MAX_T, max_t, Ordering::Relaxed, Ordering::Relaxed);
        }
        Ok(report)
    }

    /// The segments, oldest first.
    pub fn segments(&self) -> Vec<SegmentInfo> {
        let w = self.writer.lock();
        let active = w.active.as_ref().map(|a| a.seg.seq);
        self.segments
            .read()
            .values()
            .map(|s| SegmentInfo { seq: s.seq, size_bytes: s.map.published_bytes() as u64, active: Some(s.seq) == active })
            .collect()
    }

    /// Total bytes of written records in all segments, headers included.
    pub fn size_bytes(&self) -> u64 {
        self.segments.read().values().map(|s| s.map.published_bytes() as u64).sum()
    }

    /// Deletes every segment with a sequence number below `seq`, except the active one.
    /// Chunks already handed out stay readable (their mapping outlives the file). Returns the
    /// number of files removed.
    ///
    /// # Errors
    /// I/O errors (the segments removed before the failure stay removed).
    pub fn remove_files_before(&self, seq: u32) -> Result<usize> {
        self.remove_where(|s| s.seq < seq)
    }

    /// Deletes every sealed segment whose chunks all end before `min_t_ms` (head truncation,
    /// retention). Segments opened from disk are scanned once to learn their time range.
    /// Returns the number of files removed.
    ///
    /// # Errors
    /// I/O errors.
    pub fn truncate_before(&self, min_t_ms: i64) -> Result<usize> {
        self.remove_where(|s| {
            let mut max_t = s.max_t_ms.load(Ordering::Relaxed);
            if max_t == UNKNOWN_MAX_T {
                max_t = scan_max_t(s);
                s.max_t_ms.store(max_t, Ordering::Relaxed);
            }
            max_t < min_t_ms
        })
    }

    fn remove_where(&self, mut pred: impl FnMut(&Segment) -> bool) -> Result<usize> {
        let w = self.writer.lock();
        let active = w.active.as_ref().map(|a| a.seg.seq);
        let victims: Vec<Arc<Segment>> =
            self.segments.read().values().filter(|s| Some(s.seq) != active && pred(s)).cloned().collect();
        let mut removed = 0;
        for s in victims {
            self.segments.write().remove(&s.seq);
            fs::remove_file(&s.path).map_err(|e| io_err(format!("remove chunk segment {}", s.path.display()), e))?;
            removed += 1;
        }
        Ok(removed)
    }
}

/// Trims the preallocated tail of a segment to its records and fsyncs it.
fn seal_active(a: Active) -> Result<()> {
    let ctx = |what: &str| format!("{what} chunk segment {}", a.seg.path.display());
    a.file.set_len(a.offset).map_err(|e| io_err(ctx("trim"), e))?;
    a.file.sync_all().map_err(|e| io_err(ctx("fsync"), e))?;
    Ok(())
}

/// Largest `max_t_ms` among the readable records of a segment (`i64::MIN` if none);
/// [`UNKNOWN_MAX_T`] for a version 2 file, whose records hold no time bounds (such a file is
/// never removed by time).
fn scan_max_t(s: &Segment) -> i64 {
    if s.format != RecordFormat::V1 {
        return UNKNOWN_MAX_T;
    }
    let b = s.map.bytes();
    let mut off = FILE_HEADER_BYTES;
    let mut max_t = i64::MIN;
    while off < b.len() {
        match record::parse(&b[off..], s.format, false) {
            Ok(record::Parsed { meta: Some(meta), record_len, .. }) => {
                max_t = max_t.max(meta.max_t_ms);
                off += record_len;
            }
            _ => break,
        }
    }
    max_t
}

impl Drop for ChunkFiles {
    fn drop(&mut self) {
        let Some(a) = self.writer.get_mut().active.take() else { return };
        if let Err(e) = seal_active(a) {
            tracing::warn!(error = %e, dir = %self.dir.display(), "sealing the active chunk segment on close failed");
        }
    }
}
