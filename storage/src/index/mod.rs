//! Symbols, postings and the block index format.
//!
//! - [`symbols`]: [`Symbols`], the head's concurrent string interner (`u32` ids).
//! - [`mem`]: [`MemIndex`], the head's in-memory postings: one roaring bitmap of series ids per
//!   `name=value` pair, sorted values per name, sharded for concurrent appenders.
//! - [`postings`]: [`postings_for_matchers`], matcher evaluation with Prometheus semantics over
//!   any [`IndexReader`].
//! - [`stats`]: cardinality statistics (the data behind `/api/v1/status/tsdb`).
//!
//! Series ids are `u32`: the head's series ids, or a block's dense ids `0..n_series` (in label
//! order). Postings are `roaring::RoaringBitmap`s of those ids.

pub mod disk;
pub mod mem;
pub mod postings;
pub mod stats;
pub mod symbols;

#[cfg(test)]
pub(crate) mod tests;

use roaring::{MultiOps, RoaringBitmap};

use crate::error::Result;

pub use mem::MemIndex;
pub use postings::{intersect, postings_for_matchers};
pub use stats::{cardinality_stats, CardinalityStats, Stat};
pub use symbols::Symbols;

/// Read access to an index: the in-memory [`MemIndex`] of the head and the on-disk
/// on-disk index of a block answer the same questions.
///
/// A missing label pair is not an error: its postings are empty. Values are never `""`
/// (an empty value means the label is absent, Prometheus semantics).
pub trait IndexReader {
    /// The series ids carrying `name=value` (empty if none).
    ///
    /// # Errors
    /// [`crate::StorageError::Corruption`] if an on-disk postings list fails to decode.
    fn postings(&self, name: &str, value: &str) -> Result<RoaringBitmap>;

    /// Calls `f` with each value of label `name` that starts with `prefix` (`""`: every value),
    /// in ascending byte order. Only the values in the prefix range are visited.
    ///
    /// # Errors
    /// [`crate::StorageError::Corruption`] on a malformed on-disk table.
    fn visit_values(&self, name: &str, prefix: &str, f: &mut dyn FnMut(&str)) -> Result<()>;

    /// All label names, sorted, unique.
    ///
    /// # Errors
    /// [`crate::StorageError::Corruption`] on a malformed on-disk table.
    fn label_names(&self) -> Result<Vec<String>>;

    /// The ids of all series in the index.
    ///
    /// # Errors
    /// [`crate::StorageError::Corruption`] on a malformed on-disk table.
    fn all_postings(&self) -> Result<RoaringBitmap>;

    /// Number of series carrying `name=value`. Implementations may answer without
    /// materialising the postings.
    ///
    /// # Errors
    /// As [`IndexReader::postings`].
    fn postings_len(&self, name: &str, value: &str) -> Result<u64> {
        Ok(self.postings(name, value)?.len())
    }

    /// Values of label `name`, sorted, unique.
    ///
    /// # Errors
    /// As [`IndexReader::visit_values`].
    fn label_values(&self, name: &str) -> Result<Vec<String>> {
        let mut out = Vec::new();
        self.visit_values(name, "", &mut |v| out.push(v.to_string()))?;
        Ok(out)
    }

    /// The union of the postings of the values of `name` that start with `prefix` (`""`: all)
    /// and satisfy `pred`. Implementations read each matching value's postings directly while
    /// scanning, without looking the value up again.
    ///
    /// # Errors
    /// As [`IndexReader::postings`].
    fn postings_matching(&self, name: &str, prefix: &str, pred: &mut dyn FnMut(&str) -> bool) -> Result<RoaringBitmap> {
        let mut values: Vec<String> = Vec::new();
        self.visit_values(name, prefix, &mut |v| {
            if pred(v) {
                values.push(v.to_string());
            }
        })?;
        let refs: Vec<&str> = values.iter().map(String::as_str).collect();
        self.postings_union(name, &refs)
    }

    /// The union of the postings of `name=v` for each `v` in `values`.
    ///
    /// # Errors
    /// As [`IndexReader::postings`].
    fn postings_union(&self, name: &str, values: &[&str]) -> Result<RoaringBitmap> {
        let mut parts = Vec::with_capacity(values.len());
        for v in values {
            if !v.is_empty() {
                parts.push(self.postings(name, v)?);
            }
        }
        // One multi-way union: folding `|=` would re-merge the growing result once per value.
        Ok(parts.union())
    }
}
