//! Every `unsafe` memory-mapping call of the crate, in one place.
//!
//! A [`MappedFile`] is a read-only, shared mapping of a whole file plus a *published length*:
//! the prefix of the file that is complete and will never change again. Readers only ever see
//! that prefix ([`MappedFile::bytes`]); a single writer appends beyond it with `pwrite` on its
//! own file descriptor and then calls [`MappedFile::publish`]. On Linux the page cache is
//! shared between `pwrite` and `MAP_SHARED` mappings, so published bytes are visible through
//! the mapping once `publish` (a release store) is observed by the reader's acquire load.
//!
//! # Rules that keep the mappings sound
//! 1. A file mapped here is written only by this process, only beyond its published length,
//!    and never rewritten below it. Nobody else may modify the data directory's files while
//!    the database runs (the same assumption Prometheus makes for its mmap'd chunk files).
//! 2. A file may be shortened (preallocated tail trimmed), but never below its published
//!    length: pages past the end of a file raise SIGBUS, and nothing reads past the published
//!    length.
//! 3. Slices handed out borrow the `MappedFile`, which owns the mapping: the mapping outlives
//!    every slice. Unlinking the file does not unmap it.

use std::fs::File;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A read-only mapping of a whole file and the length of its immutable, complete prefix.
#[derive(Debug)]
pub struct MappedFile {
    map: memmap2::Mmap,
    /// Bytes `[0, published)` are complete and immutable. Only grows. Release on store,
    /// acquire on load, so a reader that sees a length also sees the bytes written before it.
    published: AtomicUsize,
}

impl MappedFile {
    /// Maps all of `file` (its current length) read-only, with `published_bytes` of it
    /// published (clamped to the mapped length).
    ///
    /// # Errors
    /// The OS refusing the mapping.
    pub fn map(file: &File, published_bytes: usize) -> io::Result<MappedFile> {
        // SAFETY: memmap2 requires that the file is not modified in ways that break Rust's
        // aliasing rules while mapped. Per the module rules, bytes below the published length
        // are never modified, bytes above it are never exposed as a slice (see `bytes`), and
        // the file is never truncated below the published length; no other process writes the
        // data directory.
        let map = unsafe { memmap2::MmapOptions::new().map(file)? };
        let published = AtomicUsize::new(published_bytes.min(map.len()));
        Ok(MappedFile { map, published })
    }

    /// Bytes mapped (the file's length when mapped), including any unpublished tail.
    pub fn mapped_bytes(&self) -> usize {
        self.map.len()
    }

    /// Length of the complete prefix, bytes.
    #[inline]
    pub fn published_bytes(&self) -> usize {
        self.published.load(Ordering::Acquire)
    }

    /// Publishes `[0, len)` as complete. Call only after those bytes are written (with
    /// `pwrite` on the same file) and will never change again.
    ///
    /// # Panics
    /// If `len` exceeds the mapping or is smaller than the published length: both are bugs in
    /// the single writer, not input.
    pub fn publish(&self, len: usize) {
        assert!(len <= self.map.len(), "publish beyond the mapping");
        let old = self.published.swap(len, Ordering::AcqRel);
        assert!(old <= len, "published length must not shrink");
    }

    /// The published prefix.
    #[inline]
    pub fn bytes(&self) -> &[u8] {
        let len = self.published_bytes();
        // SAFETY: `map.as_ptr()` is valid for `map.len()` bytes for as long as `self.map`
        // lives, which the returned borrow of `self` guarantees; `len <= map.len()` (clamped in
        // `map`, asserted in `publish`). The bytes in `[0, len)` are complete and never
        // modified again (module rule 1), so a shared slice over them is sound even while the
        // writer fills bytes after `len`, which this slice does not cover.
        unsafe { std::slice::from_raw_parts(self.map.as_ptr(), len) }
    }
}

impl AsRef<[u8]> for MappedFile {
    fn as_ref(&self) -> &[u8] {
        self.bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileExt;

    #[test]
    fn published_prefix_grows_with_pwrite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let f = File::options().read(true).write(true).create(true).truncate(true).open(&path).unwrap();
        f.set_len(4096).unwrap();
        let m = MappedFile::map(&f, 0).unwrap();
        assert_eq!(m.mapped_bytes(), 4096);
        assert!(m.bytes().is_empty());
        f.write_all_at(b"hello", 0).unwrap();
        m.publish(5);
        assert_eq!(m.bytes(), b"hello");
        f.write_all_at(b" world", 5).unwrap();
        assert_eq!(m.bytes(), b"hello", "unpublished bytes stay hidden");
        m.publish(11);
        assert_eq!(m.as_ref(), b"hello world");
        // Trimming the unpublished tail keeps the published prefix readable.
        f.set_len(11).unwrap();
        assert_eq!(m.bytes(), b"hello world");
    }
}
