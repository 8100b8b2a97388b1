//! Where the head's full chunks live: the head's view of the mmap'd chunk segment files in
//! `chunks_head/` ([`ChunkFiles`]).
//!
//! A full chunk is handed over once, when its series cuts it; the series keeps the returned
//! [`StoredChunk`] (a [`ChunkRef`]) and its time bounds, so resident memory is the open chunks
//! and the index. If writing a chunk file fails, the chunk stays on the heap instead (with a
//! warning): the data is in the WAL either way, and the head keeps serving it.

use std::path::Path;

use crate::chunkenc::{ChunkBytes, ChunkHandle, Encoding};
use crate::chunks::{ChunkFiles, ChunkFilesOptions, ChunkRef};
use crate::error::{Result, StorageError};

/// A full chunk's location.
pub(crate) enum StoredChunk {
    /// In a chunk segment file.
    Disk(ChunkRef),
    /// On the heap (a chunk file write failed).
    Mem(Box<(Encoding, ChunkBytes)>),
}

impl StoredChunk {
    /// Heap bytes this location holds beyond its own size.
    pub(crate) fn memory_bytes(&self) -> usize {
        match self {
            StoredChunk::Disk(_) => 0,
            StoredChunk::Mem(b) => std::mem::size_of::<(Encoding, ChunkBytes)>() + b.1.as_slice().len() + 16,
        }
    }
}

/// The head's full-chunk store.
pub(crate) struct ChunkStore {
    files: ChunkFiles,
}

impl ChunkStore {
    /// Opens the chunk files in `dir` (created if missing).
    ///
    /// # Errors
    /// [`StorageError`] from [`ChunkFiles::open`].
    pub(crate) fn open(dir: &Path) -> Result<ChunkStore> {
        let files = ChunkFiles::open(dir, ChunkFilesOptions::default())?;
        Ok(ChunkStore { files })
    }

    /// Stores a full chunk of series `series_id` with samples in `[min_t, max_t]`.
    pub(crate) fn write(&self, series_id: u32, min_t: i64, max_t: i64, encoding: Encoding, bytes: Vec<u8>) -> StoredChunk {
        match self.files.append(u64::from(series_id), min_t, max_t, encoding, &bytes) {
            Ok(r) => StoredChunk::Disk(r),
            Err(e) => {
                tracing::warn!(error = %e, series = series_id, "writing a head chunk file failed; keeping the chunk in memory");
                StoredChunk::Mem(Box::new((encoding, ChunkBytes::from_vec(bytes))))
            }
        }
    }

    /// A query handle for a stored chunk (zero-copy for chunks on disk).
    ///
    /// # Errors
    /// [`StorageError::Corruption`] if the chunk file no longer holds a valid record there.
    pub(crate) fn handle(&self, loc: &StoredChunk, min_t: i64, max_t: i64) -> Result<ChunkHandle> {
        match loc {
            StoredChunk::Disk(r) => self.files.get(*r),
            StoredChunk::Mem(b) => Ok(ChunkHandle { min_t_ms: min_t, max_t_ms: max_t, encoding: b.0, bytes: b.1.clone() }),
        }
    }

    /// Calls `f(series_id, min_t, max_t, location)` for every chunk in the files, in write
    /// order. A torn or corrupt record ends its file (with a warning), and every chunk written
    /// after it, in later files too, is skipped: a series' chunks must be contiguous for WAL
    /// replay to skip exactly the samples they hold, and the WAL still has the rest.
    ///
    /// # Errors
    /// [`StorageError`] from reading the files.
    pub(crate) fn scan(&self, f: &mut dyn FnMut(u32, i64, i64, StoredChunk)) -> Result<()> {
        let mut all: Vec<(ChunkRef, u64, i64, i64)> = Vec::new();
        let report = self.files.iterate_all(|r, meta, _| {
            all.push((r, meta.series_ref, meta.min_t_ms, meta.max_t_ms));
            Ok(())
        })?;
        let mut first_bad: Option<ChunkRef> = None;
        for e in &report.corruptions {
            tracing::warn!(error = %e, "head chunk file ends in a torn or corrupt record; replaying its data from the WAL");
            if let StorageError::Corruption { path, offset, .. } = e {
                let seq = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.parse::<u32>().ok());
                if let Some(seq) = seq {
                    let r = ChunkRef::new(seq, u32::try_from(*offset).unwrap_or(u32::MAX));
                    first_bad = Some(first_bad.map_or(r, |b| b.min(r)));
                }
            }
        }
        for (r, series, min_t, max_t) in all {
            if first_bad.is_some_and(|b| r >= b) {
                continue;
            }
            let Ok(id) = u32::try_from(series) else { continue };
            f(id, min_t, max_t, StoredChunk::Disk(r));
        }
        Ok(())
    }

    /// Deletes chunk files whose chunks all end before `mint`; returns the files deleted.
    ///
    /// # Errors
    /// [`StorageError::Io`].
    pub(crate) fn truncate_before(&self, mint: i64) -> Result<u64> {
        Ok(self.files.truncate_before(mint)? as u64)
    }

    /// Bytes of chunk records on disk.
    pub(crate) fn size_bytes(&self) -> u64 {
        self.files.size_bytes()
    }
}
