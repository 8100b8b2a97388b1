//! Persistent blocks: immutable, memory-mapped directories holding all series of a time range.
//!
//! # Directory
//! ```text
//! <blocks_dir>/<ULID>/
//!     meta.json      what the block holds (meta.rs; Prometheus' BlockMeta shape)
//!     index          symbols, series, postings (layout: crate::index::disk)
//!     chunks/000001  chunk segment files (layout: crate::chunks), sealed; written with
//!                    record version 2 (no per-chunk series ref or time bounds: the index
//!                    has them); version 1 blocks are read as well
//! ```
//! A block is written under `<ULID>.tmp-for-creation/` and renamed into place when complete;
//! it is deleted by renaming it to `<ULID>.tmp-for-deletion/` and then removing it, so a crash
//! never leaves a half block under a ULID name ([`retention::remove_leftovers`] cleans up).
//!
//! # Driving blocks (what `Db` does)
//! - cut the head: [`BlockWriter::create`], [`BlockWriter::add_series`] in label order,
//!   [`BlockWriter::finish`];
//! - open: [`list_block_dirs`] then [`Block::open`] for each; query through
//!   [`BlockQuerier::new`]`(Arc<Block>)` (a [`crate::Querier`]);
//! - compact: [`compact::plan`] over the blocks' metas with [`compact::block_ranges`], then
//!   [`compact::compact`] the planned blocks and delete them with [`retention::delete_block`];
//! - retention: [`retention::beyond_time_retention`], [`retention::beyond_size_retention`],
//!   then [`retention::delete_block`].
//!
//! Series ids inside a block are dense `u32`s in label order, so select output is sorted for
//! free and all postings is the range `0..num_series`.

pub mod compact;
pub mod meta;
pub mod querier;
pub mod reader;
pub mod rechunk;
pub mod retention;
pub mod writer;

#[cfg(test)]
mod tests;

use std::fs;
use std::path::{Path, PathBuf};

use ulid::Ulid;

use crate::error::{Result, StorageError};
use crate::mmap::MappedFile;

pub use meta::{BlockCompaction, BlockMeta, BlockStats};
pub use rechunk::{BLOCK_CHUNK_MAX_SAMPLES, MIN_MERGE_SAVING_PERCENT};
pub use querier::BlockQuerier;
pub use reader::Block;
pub use writer::BlockWriter;

/// Name of the index file inside a block.
pub const INDEX_FILENAME: &str = "index";
/// Name of the chunk segment directory inside a block.
pub const CHUNKS_DIRNAME: &str = "chunks";
/// Suffix of a block directory being written.
pub const TMP_CREATION_SUFFIX: &str = ".tmp-for-creation";
/// Suffix of a block directory being deleted.
pub const TMP_DELETION_SUFFIX: &str = ".tmp-for-deletion";

/// The block directories in `blocks_dir` (names that parse as a ULID), sorted by ULID. A
/// missing `blocks_dir` has none.
///
/// # Errors
/// [`StorageError::Io`] if the directory cannot be read.
pub fn list_block_dirs(blocks_dir: &Path) -> Result<Vec<(Ulid, PathBuf)>> {
    let rd = match fs::read_dir(blocks_dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(StorageError::io(format!("read {}", blocks_dir.display()), e)),
    };
    let mut out = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| StorageError::io(format!("read {}", blocks_dir.display()), e))?;
        let Some(name) = entry.file_name().to_str().map(str::to_string) else { continue };
        let Ok(ulid) = Ulid::from_string(&name) else { continue };
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            out.push((ulid, entry.path()));
        }
    }
    out.sort_unstable_by_key(|(u, _)| *u);
    Ok(out)
}

/// Fsyncs a directory so that entries created or renamed in it are durable.
///
/// # Errors
/// [`StorageError::Io`].
pub(crate) fn fsync_dir(dir: &Path) -> Result<()> {
    let f = fs::File::open(dir).map_err(|e| StorageError::io(format!("open {}", dir.display()), e))?;
    f.sync_all().map_err(|e| StorageError::io(format!("fsync {}", dir.display()), e))
}

/// Maps a complete, immutable block file read-only (all of it published).
///
/// # Errors
/// [`StorageError::Io`] if the file cannot be opened or mapped.
pub(crate) fn map_file(path: &Path) -> Result<std::sync::Arc<dyn AsRef<[u8]> + Send + Sync>> {
    let f = fs::File::open(path).map_err(|e| StorageError::io(format!("open {}", path.display()), e))?;
    let len = f.metadata().map_err(|e| StorageError::io(format!("stat {}", path.display()), e))?.len();
    let len = usize::try_from(len).unwrap_or(usize::MAX);
    let map = MappedFile::map(&f, len).map_err(|e| StorageError::io(format!("mmap {}", path.display()), e))?;
    Ok(std::sync::Arc::new(map))
}
