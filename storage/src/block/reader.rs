//! [`Block`]: an opened, validated, memory-mapped block.

use std::path::{Path, PathBuf};

use roaring::RoaringBitmap;

use super::meta::BlockMeta;
use super::{map_file, CHUNKS_DIRNAME, INDEX_FILENAME};
use crate::chunkenc::ChunkHandle;
use crate::chunks::{ChunkFiles, ChunkFilesOptions, ChunkRef};
use crate::error::{Result, StorageError};
use crate::index::disk::{ChunkMeta, DiskIndex};
use crate::index::IndexReader;
use crate::labels::Labels;

/// An immutable block (an [`IndexReader`] through its index, every method forwarded): its metadata, its index and its chunks, all read in place from memory
/// maps. `Send + Sync`; share it as `Arc<Block>` (queriers hold one, so a block being deleted
/// stays readable until the last query using it ends).
pub struct Block {
    dir: PathBuf,
    meta: BlockMeta,
    index: DiskIndex,
    chunks: ChunkFiles,
    size_bytes: u64,
}

impl std::fmt::Debug for Block {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Block").field("dir", &self.dir).field("meta", &self.meta).finish()
    }
}

impl Block {
    /// Opens the block in `dir`: reads `meta.json`, maps and validates the index (version,
    /// checksums, table bounds) and maps the chunk segments ([`ChunkFiles`]: headers checked;
    /// each chunk's CRC is checked when it is read).
    ///
    /// # Errors
    /// [`StorageError::Io`], [`StorageError::Corruption`] or
    /// [`StorageError::UnsupportedVersion`].
    pub fn open(dir: &Path) -> Result<Block> {
        let meta = BlockMeta::read(dir)?;
        let index_path = dir.join(INDEX_FILENAME);
        let map = map_file(&index_path)?;
        let index_bytes = (*map).as_ref().len() as u64;
        let index = DiskIndex::open(map, &index_path)?;
        let chunks = ChunkFiles::open(dir.join(CHUNKS_DIRNAME), ChunkFilesOptions::default())?;
        if u64::from(index.num_series()) != meta.stats.num_series {
            return Err(StorageError::Corruption {
                path: dir.join(super::meta::META_FILENAME),
                offset: 0,
                reason: format!("meta.json says {} series, index has {}", meta.stats.num_series, index.num_series()),
            });
        }
        let meta_bytes = std::fs::metadata(dir.join(super::meta::META_FILENAME)).map(|m| m.len()).unwrap_or(0);
        let size_bytes = index_bytes + chunks.size_bytes() + meta_bytes;
        Ok(Block { dir: dir.to_path_buf(), meta, index, chunks, size_bytes })
    }

    /// The block's metadata.
    pub fn meta(&self) -> &BlockMeta {
        &self.meta
    }

    /// The block's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Bytes on disk: index, chunk segments and `meta.json`.
    pub fn size_bytes(&self) -> u64 {
        self.size_bytes
    }

    /// The block's index.
    pub fn index(&self) -> &DiskIndex {
        &self.index
    }

    /// The labels and chunk metas of series `id` (`0..num_series`, in label order).
    ///
    /// # Errors
    /// [`StorageError::Corruption`].
    pub fn series(&self, id: u32) -> Result<(Labels, Vec<ChunkMeta>)> {
        self.index.series(id)
    }

    /// The chunk described by `meta` (its time bounds are the index's), a zero-copy slice of
    /// the mapped segment. Reads chunk files of either record version.
    ///
    /// # Errors
    /// [`StorageError::Corruption`] if the reference is bad or the chunk fails its checksum.
    pub fn chunk(&self, meta: &ChunkMeta) -> Result<ChunkHandle> {
        self.chunks.get_with_bounds(ChunkRef(meta.chunk_ref), meta.min_t_ms, meta.max_t_ms)
    }
}

impl IndexReader for Block {
    fn postings(&self, name: &str, value: &str) -> Result<RoaringBitmap> {
        self.index.postings(name, value)
    }

    fn visit_values(&self, name: &str, prefix: &str, f: &mut dyn FnMut(&str)) -> Result<()> {
        self.index.visit_values(name, prefix, f)
    }

    fn label_names(&self) -> Result<Vec<String>> {
        self.index.label_names()
    }

    fn all_postings(&self) -> Result<RoaringBitmap> {
        self.index.all_postings()
    }

    fn postings_len(&self, name: &str, value: &str) -> Result<u64> {
        self.index.postings_len(name, value)
    }

    fn postings_matching(&self, name: &str, prefix: &str, pred: &mut dyn FnMut(&str) -> bool) -> Result<RoaringBitmap> {
        self.index.postings_matching(name, prefix, pred)
    }

    fn postings_union(&self, name: &str, values: &[&str]) -> Result<RoaringBitmap> {
        self.index.postings_union(name, values)
    }
}
