//! Head truncation: what happens after the database has compacted `[.., mint)` into a block.
//!
//! [`Head::truncate`] raises the append lower bound to `mint`, drops every chunk that ends
//! before it, garbage-collects series left without data (removing them from the maps and the
//! postings), checkpoints the WAL (keeping live series and samples at or after `mint`) and
//! deletes WAL segments and chunk files no longer needed.
//!
//! A series is spared while an uncommitted transaction holds samples for it, and when it never
//! had a sample and was created since the previous truncation (an appender may have resolved
//! its ref and not yet appended). A transaction that resolved a ref before the series' last
//! data was truncated away gets [`crate::AppendError::UnknownSeriesRef`] and resolves again. Garbage collection holds the series' lock while it removes the series from the
//! maps, and marks it deleted, so a transaction that still holds the series sees
//! [`crate::AppendError::UnknownSeriesRef`] instead of writing into a dropped series.

use std::sync::atomic::Ordering;

use roaring::RoaringBitmap;

use crate::error::Result;
use crate::metrics::StorageMetrics;
use crate::wal;

use super::series::{interned_hash, Kind, OpenChunk};
use super::Head;

/// What a truncation did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TruncateStats {
    /// Chunks dropped (full and open).
    pub chunks_removed: u64,
    /// Series garbage-collected.
    pub series_removed: u64,
    /// WAL segments deleted by the checkpoint.
    pub wal_segments_deleted: u64,
    /// Chunk files deleted.
    pub chunk_files_deleted: u64,
}

impl Head {
    /// Drops all data before `mint_ms` (exclusive: samples at `mint_ms` stay) and everything
    /// that only served it; see the module doc. Appends older than `mint_ms` are refused as
    /// [`crate::AppendError::OutOfBounds`] afterwards. Concurrent appends and reads go on.
    ///
    /// # Errors
    /// [`crate::StorageError::Io`] from the WAL checkpoint or the chunk files; the in-memory
    /// truncation has happened by then, and a later truncation retries the disk part.
    pub fn truncate(&self, mint_ms: i64) -> Result<TruncateStats> {
        let head = &self.inner;
        let _serial = head.truncate_lock.lock();
        // The bound only rises: truncating below it changes nothing already dropped.
        let mint_ms = head.min_valid_t.fetch_max(mint_ms, Ordering::AcqRel).max(mint_ms);
        // No commit in flight may still add samples below the bound after this point.
        drop(head.commit_gate.write());
        head.read_min_t.fetch_max(mint_ms, Ordering::AcqRel);
        let cur_gen = head.gen.fetch_add(1, Ordering::AcqRel);
        let mut stats = TruncateStats::default();
        let mut removed = RoaringBitmap::new();
        let mut affected: Vec<(u32, u32)> = Vec::new();
        let mut new_min = i64::MAX;
        let mut new_max = i64::MIN;

        head.series.for_each(|s| {
            let mut st = s.state.lock();
            let before = st.closed.len();
            st.closed.retain(|c| c.max_t >= mint_ms);
            stats.chunks_removed += (before - st.closed.len()) as u64;
            if st.open.bounds().is_some_and(|(_, maxt)| maxt < mint_ms) {
                st.open = OpenChunk::None;
                st.snapshot = None;
                stats.chunks_removed += 1;
            }
            if let (Some(a), Some(b)) = (st.min_t(), st.max_t()) {
                new_min = new_min.min(a);
                new_max = new_max.max(b);
                return;
            }
            if st.pending > 0 || st.deleted || (st.last_kind == Kind::None && st.gen >= cur_gen) {
                return;
            }
            // Remove while holding the series lock (series -> shard order is safe: no code
            // locks a series while holding a map shard).
            st.deleted = true;
            head.series.remove(interned_hash(&s.labels, &head.symbols), s.id);
            removed.insert(s.id);
            affected.extend_from_slice(&s.labels);
        });

        let n_removed = removed.len();
        if n_removed > 0 {
            head.index.delete_affected(&removed, affected.iter().copied());
            head.exemplars.lock().forget(&removed);
            head.series_count.fetch_sub(n_removed as usize, Ordering::AcqRel);
            if head.opts.max_series_per_metric.is_some() {
                let name_id = head.symbols.lookup(crate::labels::METRIC_NAME);
                let mut pm = head.per_metric.lock();
                for &(n, v) in &affected {
                    if Some(n) == name_id {
                        if let Some(c) = pm.get_mut(&v) {
                            *c = c.saturating_sub(1);
                        }
                    }
                }
            }
            head.metrics.head_series.fetch_sub(n_removed, Ordering::Relaxed);
            StorageMetrics::add(&head.metrics.head_series_removed, n_removed);
        }
        stats.series_removed = n_removed;
        let chunks_gauge = head.metrics.head_chunks.load(Ordering::Relaxed);
        head.metrics.head_chunks.store(chunks_gauge.saturating_sub(stats.chunks_removed), Ordering::Relaxed);

        // Time bounds: what is left (or empty), never below the new lower bound.
        if new_min != i64::MAX {
            new_min = new_min.max(mint_ms);
        }
        // Commits only add samples at or after `mint`, so raising min_t to what is left is
        // safe; max_t never goes down while data remains (a concurrent commit may be newer).
        head.min_t.store(new_min, Ordering::Release);
        if new_max == i64::MIN {
            head.max_t.store(new_max, Ordering::Release);
        }
        head.metrics.head_min_time_ms.store(new_min as u64, Ordering::Relaxed);
        head.metrics.head_max_time_ms.store(new_max as u64, Ordering::Relaxed);

        // Disk: WAL checkpoint of everything written so far, then old chunk files.
        let last = head.wal.cut_segment()?;
        let keep = |r: crate::api::SeriesRef| head.series_by_ref(r).is_some();
        let cp = wal::checkpoint(head.wal.dir(), last, &keep, mint_ms, &head.metrics)?;
        stats.wal_segments_deleted = cp.segments_deleted;
        stats.chunk_files_deleted = head.chunks.truncate_before(mint_ms)?;
        Ok(stats)
    }
}
