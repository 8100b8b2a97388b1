//! Segment files: naming, the segment header, listing, and [`SegmentSink`], the single-threaded
//! writer of framed records into a numbered sequence of segment files (used by the WAL writer
//! and by checkpointing).

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Result, StorageError};

/// Magic bytes at the start of every segment file.
pub const SEGMENT_MAGIC: [u8; 4] = *b"HWAL";
/// The segment format version written today.
pub const SEGMENT_VERSION: u8 = 1;
/// Bytes of the segment header: magic, version, three zero bytes.
pub const SEGMENT_HEADER_BYTES: usize = 8;
/// Default size at which a segment is closed and the next one started: 128 MiB.
pub const DEFAULT_SEGMENT_BYTES: u64 = 128 << 20;

/// The segment header as written.
pub fn segment_header() -> [u8; SEGMENT_HEADER_BYTES] {
    let mut h = [0u8; SEGMENT_HEADER_BYTES];
    h[..4].copy_from_slice(&SEGMENT_MAGIC);
    h[4] = SEGMENT_VERSION;
    h
}

/// The file name of segment `n`: eight decimal digits (`00000001`).
pub fn segment_name(n: u64) -> String {
    format!("{n:08}")
}

/// The path of segment `n` in `dir`.
pub fn segment_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(segment_name(n))
}

/// The segment numbers in `dir`, ascending. Files whose names are not all digits are ignored;
/// a missing directory has no segments.
///
/// # Errors
/// [`StorageError::Io`] if the directory cannot be read.
pub fn list_segments(dir: &Path) -> Result<Vec<u64>> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(StorageError::io(format!("list WAL segments in {}", dir.display()), e)),
    };
    let mut out = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| StorageError::io(format!("list WAL segments in {}", dir.display()), e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit()) {
            if let Ok(n) = name.parse::<u64>() {
                if entry.file_type().map(|t| t.is_file()).unwrap_or(false) {
                    out.push(n);
                }
            }
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// Fsyncs a directory so that file creations, renames and deletions in it are durable.
///
/// # Errors
/// [`StorageError::Io`].
pub fn sync_dir(dir: &Path) -> Result<()> {
    let f = File::open(dir).map_err(|e| StorageError::io(format!("open dir {} for fsync", dir.display()), e))?;
    f.sync_all().map_err(|e| StorageError::io(format!("fsync dir {}", dir.display()), e))
}

/// Creates segment `n` in `dir` with its header written. Fails if it exists (a segment is
/// never reopened for writing: after a crash its tail may be torn).
pub(crate) fn create_segment(dir: &Path, n: u64, sync: bool) -> Result<File> {
    let path = segment_path(dir, n);
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| StorageError::io(format!("create WAL segment {}", path.display()), e))?;
    f.write_all(&segment_header())
        .map_err(|e| StorageError::io(format!("write WAL segment header {}", path.display()), e))?;
    if sync {
        f.sync_data().map_err(|e| StorageError::io(format!("fsync WAL segment {}", path.display()), e))?;
        sync_dir(dir)?;
    }
    Ok(f)
}

/// Writes framed records into segments `first, first+1, ...` of one directory, starting a new
/// segment when the next write would pass `segment_bytes` (a single write larger than that gets
/// a segment of its own). Not synchronised: the owner serialises calls.
pub struct SegmentSink {
    dir: PathBuf,
    segment_bytes: u64,
    sync_on_create: bool,
    seg: u64,
    file: File,
    offset: u64,
}

impl SegmentSink {
    /// Creates segment `first` in `dir` (which must exist).
    ///
    /// # Errors
    /// [`StorageError::Io`], also if the segment already exists.
    pub fn create(dir: &Path, first: u64, segment_bytes: u64, sync_on_create: bool) -> Result<Self> {
        let file = create_segment(dir, first, sync_on_create)?;
        Ok(SegmentSink {
            dir: dir.to_path_buf(),
            segment_bytes,
            sync_on_create,
            seg: first,
            file,
            offset: SEGMENT_HEADER_BYTES as u64,
        })
    }

    /// The number of the segment being written.
    pub fn segment(&self) -> u64 {
        self.seg
    }

    /// The file of the segment being written.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Bytes written to the current segment, header included.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Closes the current segment (fsynced when `sync`) and starts the next.
    ///
    /// # Errors
    /// [`StorageError::Io`].
    pub fn roll(&mut self, sync: bool) -> Result<u64> {
        if sync {
            self.sync()?;
        }
        let next = self.seg + 1;
        self.file = create_segment(&self.dir, next, self.sync_on_create)?;
        self.seg = next;
        self.offset = SEGMENT_HEADER_BYTES as u64;
        Ok(next)
    }

    /// Writes `bytes` (whole framed records) with one `write_all`, rolling over first if they
    /// do not fit. Returns whether a rollover happened.
    ///
    /// On a failed write the segment may end in a partial record; the next write then goes to a
    /// fresh segment so that nothing valid is ever written after garbage.
    ///
    /// # Errors
    /// [`StorageError::Io`].
    pub fn write(&mut self, bytes: &[u8], sync_on_roll: bool) -> Result<bool> {
        let mut rolled = false;
        if self.offset > SEGMENT_HEADER_BYTES as u64 && self.offset + bytes.len() as u64 > self.segment_bytes {
            self.roll(sync_on_roll)?;
            rolled = true;
        }
        if let Err(e) = self.file.write_all(bytes) {
            // Poison this segment: move on so later records are not written after a torn one.
            self.offset = u64::MAX / 2;
            return Err(StorageError::io(format!("write WAL segment {}", segment_path(&self.dir, self.seg).display()), e));
        }
        self.offset += bytes.len() as u64;
        Ok(rolled)
    }

    /// Fsyncs the current segment's data.
    ///
    /// # Errors
    /// [`StorageError::Io`].
    pub fn sync(&self) -> Result<()> {
        self.file
            .sync_data()
            .map_err(|e| StorageError::io(format!("fsync WAL segment {}", segment_path(&self.dir, self.seg).display()), e))
    }
}
