//! [`BlockWriter`]: writes a new block directory, atomically.
//!
//! Everything is written under `<blocks_dir>/<ULID>.tmp-for-creation/`, fsynced, and the
//! directory is renamed to `<blocks_dir>/<ULID>/` only when complete, so a crash leaves either
//! no block or a whole one (leftover temp directories are removed by
//! [`super::retention::remove_leftovers`]).

use std::fs;
use std::path::{Path, PathBuf};

use ulid::Ulid;

use super::meta::{BlockCompaction, BlockMeta, BlockStats, BLOCK_VERSION};
use super::{fsync_dir, CHUNKS_DIRNAME, INDEX_FILENAME, TMP_CREATION_SUFFIX};
use crate::chunkenc::{num_samples, ChunkHandle};
use super::rechunk::{rechunk, Scratch, BLOCK_CHUNK_MAX_SAMPLES};
use crate::chunks::{ChunkFiles, ChunkFilesOptions, RecordFormat};
use crate::error::{Result, StorageError};
use crate::index::disk::{ChunkMeta, IndexWriter};
use crate::labels::Labels;

/// Builds one block from series given in label order.
///
/// ```text
/// let mut w = BlockWriter::create(blocks_dir, mint_ms, maxt_ms)?;   // maxt exclusive
/// for (labels, chunks) in series_sorted_by_labels { w.add_series(&labels, &chunks)?; }
/// let meta = w.finish()?;                                            // now <blocks_dir>/<ulid>/
/// ```
/// Dropping an unfinished writer removes its temp directory.
pub struct BlockWriter {
    parent: PathBuf,
    tmp: PathBuf,
    meta: BlockMeta,
    index: IndexWriter,
    chunks: Option<ChunkFiles>,
    metas: Vec<ChunkMeta>,
    /// Most samples per merged float chunk (default [`BLOCK_CHUNK_MAX_SAMPLES`]).
    max_chunk_samples: usize,
    /// Re-chunked chunks of the series being added (reused).
    merged: Vec<ChunkHandle>,
    scratch: Scratch,
    finished: bool,
}

impl BlockWriter {
    /// Starts a level-1 block (cut from the head) covering `[min_time_ms, max_time_ms)`.
    ///
    /// # Errors
    /// [`StorageError::Io`] if the temp directory cannot be created.
    pub fn create(blocks_dir: &Path, min_time_ms: i64, max_time_ms: i64) -> Result<Self> {
        let ulid = Ulid::new();
        let compaction = BlockCompaction { level: 1, sources: vec![ulid], parents: Vec::new() };
        Self::create_with(blocks_dir, ulid, min_time_ms, max_time_ms, compaction)
    }

    /// Starts a block with the given id and lineage (used by compaction).
    ///
    /// # Errors
    /// [`StorageError::Io`] if the temp directory cannot be created.
    pub fn create_with(
        blocks_dir: &Path,
        ulid: Ulid,
        min_time_ms: i64,
        max_time_ms: i64,
        compaction: BlockCompaction,
    ) -> Result<Self> {
        Self::create_in_format(blocks_dir, ulid, min_time_ms, max_time_ms, compaction, RecordFormat::V2)
    }

    /// [`Self::create_with`] writing chunk records in `format` (tests write version 1 blocks
    /// to check that they stay readable).
    pub(crate) fn create_in_format(
        blocks_dir: &Path,
        ulid: Ulid,
        min_time_ms: i64,
        max_time_ms: i64,
        compaction: BlockCompaction,
        format: RecordFormat,
    ) -> Result<Self> {
        let tmp = blocks_dir.join(format!("{ulid}{TMP_CREATION_SUFFIX}"));
        if tmp.exists() {
            fs::remove_dir_all(&tmp).map_err(|e| StorageError::io(format!("remove {}", tmp.display()), e))?;
        }
        fs::create_dir_all(&tmp).map_err(|e| StorageError::io(format!("create {}", tmp.display()), e))?;
        let opts = ChunkFilesOptions { format, ..ChunkFilesOptions::default() };
        let chunks = ChunkFiles::open(tmp.join(CHUNKS_DIRNAME), opts)?;
        Ok(BlockWriter {
            parent: blocks_dir.to_path_buf(),
            tmp,
            meta: BlockMeta {
                ulid,
                min_time_ms,
                max_time_ms,
                stats: BlockStats::default(),
                compaction,
                version: BLOCK_VERSION,
            },
            index: IndexWriter::new(),
            chunks: Some(chunks),
            metas: Vec::new(),
            max_chunk_samples: BLOCK_CHUNK_MAX_SAMPLES,
            merged: Vec::new(),
            scratch: Scratch::default(),
            finished: false,
        })
    }

    /// Sets the most samples per float chunk that re-chunking builds (default
    /// [`BLOCK_CHUNK_MAX_SAMPLES`]); chunks already bigger are kept whole. A value at or below
    /// the incoming chunks' size (e.g. [`crate::chunkenc::SAMPLES_PER_CHUNK`]) keeps the
    /// head's chunks as they are. For benchmarks and tools comparing chunk sizes.
    pub fn with_max_chunk_samples(mut self, max_samples: usize) -> Self {
        self.max_chunk_samples = max_samples;
        self
    }

    /// The new block's id.
    pub fn ulid(&self) -> Ulid {
        self.meta.ulid
    }

    /// Series added so far (series without chunks are not counted).
    pub fn num_series(&self) -> u64 {
        self.meta.stats.num_series
    }

    /// Adds the next series with its chunks (any order; stored sorted by `min_t_ms`). A series
    /// without chunks is skipped. Time-adjacent float chunks are merged into chunks of up to
    /// [`BLOCK_CHUNK_MAX_SAMPLES`] samples ([`super::rechunk`]); samples are unchanged.
    ///
    /// # Errors
    /// [`StorageError::Io`] if a chunk cannot be written.
    ///
    /// # Panics
    /// If `labels` does not sort strictly after the previous series' (caller bug).
    pub fn add_series(&mut self, labels: &Labels, chunks: &[ChunkHandle]) -> Result<()> {
        if chunks.is_empty() {
            return Ok(());
        }
        let w = self.chunks.as_mut().expect("chunk writer lives until finish");
        self.metas.clear();
        let mut order: Vec<&ChunkHandle> = chunks.iter().collect();
        order.sort_by_key(|c| (c.min_t_ms, c.max_t_ms));
        self.merged.clear();
        rechunk(&order, self.max_chunk_samples, &mut self.scratch, &mut self.merged);
        // A version 1 record's owner is the series' id in this block (version 2 stores none).
        let series_id = u64::from(self.index.num_series());
        for c in &self.merged {
            let chunk_ref = w.append(series_id, c.min_t_ms, c.max_t_ms, c.encoding, c.bytes.as_slice())?.0;
            self.meta.stats.num_samples += count_samples(c);
            self.metas.push(ChunkMeta { min_t_ms: c.min_t_ms, max_t_ms: c.max_t_ms, chunk_ref });
        }
        self.meta.stats.num_chunks += self.merged.len() as u64;
        self.meta.stats.num_series += 1;
        self.index.add_series(labels, &self.metas);
        Ok(())
    }

    /// Writes the index and `meta.json`, fsyncs everything and renames the directory into
    /// place. Returns the block's metadata; the block is then at `<blocks_dir>/<ulid>/`.
    ///
    /// # Errors
    /// [`StorageError::Io`].
    pub fn finish(mut self) -> Result<BlockMeta> {
        let chunks = self.chunks.take().expect("finish runs once");
        // Seal: fsync and trim the last segment's preallocated tail; then fsync the directory.
        chunks.seal()?;
        chunks.sync()?;
        let index = std::mem::take(&mut self.index);
        index.write(&self.tmp.join(INDEX_FILENAME))?;
        self.meta.write(&self.tmp)?;
        fsync_dir(&self.tmp)?;
        let dst = self.parent.join(self.meta.ulid.to_string());
        fs::rename(&self.tmp, &dst)
            .map_err(|e| StorageError::io(format!("rename {} to {}", self.tmp.display(), dst.display()), e))?;
        fsync_dir(&self.parent)?;
        self.finished = true;
        Ok(self.meta.clone())
    }
}

impl Drop for BlockWriter {
    fn drop(&mut self) {
        if !self.finished {
            // Best effort: a leftover is also removed at the next open of the blocks dir.
            let _ = fs::remove_dir_all(&self.tmp);
        }
    }
}

/// Number of samples in a chunk, from its header (no decoding: see
/// [`crate::chunkenc::num_samples`]); 0 for a chunk whose header is unreadable.
pub(crate) fn count_samples(c: &ChunkHandle) -> u64 {
    num_samples(c.encoding, c.bytes.as_slice()).map_or(0, u64::from)
}
