//! Read-only memory maps of block files (index, chunk segments).
//!
//! This is the block's only `unsafe` code. It belongs in [`crate::mmap`] (the crate's single
//! place for mapping code) once that module offers a read-only file map; until then it lives
//! here, in one function.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use memmap2::Mmap;

use crate::error::{Result, StorageError};

/// Maps `path` read-only; the map is shared by every chunk or index slice handed out from it.
///
/// # Errors
/// [`StorageError::Io`] if the file cannot be opened or mapped.
pub fn map_file(path: &Path) -> Result<Arc<dyn AsRef<[u8]> + Send + Sync>> {
    let f = File::open(path).map_err(|e| StorageError::io(format!("open {}", path.display()), e))?;
    // SAFETY: block files are immutable once their block directory is renamed into place: no
    // process writes or truncates them while mapped (blocks are deleted by renaming the directory
    // and removing it only after every reader has dropped its `Arc` of the block; the kernel keeps
    // unlinked mapped pages alive). A map of an immutable file is valid for the life of `Mmap`.
    let map = unsafe { Mmap::map(&f) }.map_err(|e| StorageError::io(format!("mmap {}", path.display()), e))?;
    Ok(Arc::new(map))
}
