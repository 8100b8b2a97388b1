//! Retention: which blocks are past the time or size limit, and crash-safe deletion.
//!
//! Deletion is whole blocks. [`delete_block`] renames `<ULID>/` to `<ULID>.tmp-for-deletion/`
//! (atomic: after a crash the block is either whole under its name or gone from the block
//! list) and then removes it; [`remove_leftovers`] finishes interrupted deletions and creations
//! at startup. Readers holding an `Arc<Block>` keep reading: mapped files stay valid after
//! unlinking.

use std::fs;
use std::path::{Path, PathBuf};

use ulid::Ulid;

use super::meta::BlockMeta;
use super::{fsync_dir, TMP_CREATION_SUFFIX, TMP_DELETION_SUFFIX};
use crate::error::{Result, StorageError};

/// Blocks past the time retention: those whose (exclusive) `max_time_ms` is at or before
/// `now_ms - retention_ms`, i.e. that hold no sample newer than the retention window.
/// `retention_ms <= 0` disables time retention.
///
/// Prometheus measures `now_ms` as the newest block's max time (`tsdb/db.go`
/// `BlocksToDelete`); pass that, or the wall clock, as the caller prefers.
pub fn beyond_time_retention(metas: &[BlockMeta], now_ms: i64, retention_ms: i64) -> Vec<Ulid> {
    if retention_ms <= 0 {
        return Vec::new();
    }
    let cutoff = now_ms.saturating_sub(retention_ms);
    metas.iter().filter(|m| m.max_time_ms <= cutoff).map(|m| m.ulid).collect()
}

/// Blocks past the size retention (Prometheus' `beyondSizeRetention`): walking from the newest
/// block (by `max_time_ms`) to the oldest and adding sizes to `other_bytes` (head chunks and WAL),
/// the first block that takes the total over `max_bytes` and every older block are returned.
/// `max_bytes == 0` disables size retention. `blocks` are `(meta, size_bytes)`.
pub fn beyond_size_retention(blocks: &[(BlockMeta, u64)], max_bytes: u64, other_bytes: u64) -> Vec<Ulid> {
    if max_bytes == 0 {
        return Vec::new();
    }
    let mut by_age: Vec<&(BlockMeta, u64)> = blocks.iter().collect();
    by_age.sort_by_key(|(m, _)| std::cmp::Reverse((m.max_time_ms, m.ulid)));
    let mut total = other_bytes;
    for (i, (_, size)) in by_age.iter().enumerate() {
        total = total.saturating_add(*size);
        if total > max_bytes {
            return by_age[i..].iter().map(|(m, _)| m.ulid).collect();
        }
    }
    Vec::new()
}

/// Deletes a block directory crash-safely: rename to `<name>.tmp-for-deletion`, fsync the
/// parent, remove the renamed directory.
///
/// # Errors
/// [`StorageError::Io`].
pub fn delete_block(block_dir: &Path) -> Result<()> {
    let parent = block_dir.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."));
    let name = block_dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = parent.join(format!("{name}{TMP_DELETION_SUFFIX}"));
    fs::rename(block_dir, &tmp)
        .map_err(|e| StorageError::io(format!("rename {} for deletion", block_dir.display()), e))?;
    fsync_dir(&parent)?;
    fs::remove_dir_all(&tmp).map_err(|e| StorageError::io(format!("remove {}", tmp.display()), e))
}

/// Removes the leftovers of interrupted block creations and deletions (`*.tmp-for-creation`,
/// `*.tmp-for-deletion`) in `blocks_dir`. Returns how many were removed. Call before opening
/// the blocks.
///
/// # Errors
/// [`StorageError::Io`].
pub fn remove_leftovers(blocks_dir: &Path) -> Result<usize> {
    let rd = match fs::read_dir(blocks_dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(StorageError::io(format!("read {}", blocks_dir.display()), e)),
    };
    let mut n = 0;
    for entry in rd {
        let entry = entry.map_err(|e| StorageError::io(format!("read {}", blocks_dir.display()), e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(TMP_CREATION_SUFFIX) || name.ends_with(TMP_DELETION_SUFFIX) {
            let p = entry.path();
            fs::remove_dir_all(&p).map_err(|e| StorageError::io(format!("remove {}", p.display()), e))?;
            n += 1;
        }
    }
    Ok(n)
}
