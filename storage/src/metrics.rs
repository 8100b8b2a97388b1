//! Self-monitoring numbers of the storage engine. Plain atomics, updated once per batch by the
//! hot paths (count in locals, publish once) and read by the server's `/metrics` exporter.
//! Names in the comments are the exported metric names.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters and gauges of one [`crate::db::Db`]. Shared as `Arc<StorageMetrics>`.
#[derive(Debug, Default)]
pub struct StorageMetrics {
    /// `hearth_head_series`: series currently in the head (gauge).
    pub head_series: AtomicU64,
    /// `hearth_head_series_created_total`.
    pub head_series_created: AtomicU64,
    /// `hearth_head_series_removed_total` (garbage-collected after truncation).
    pub head_series_removed: AtomicU64,
    /// `hearth_head_samples_appended_total{type="float"}`.
    pub samples_appended: AtomicU64,
    /// `hearth_head_samples_appended_total{type="histogram"}`.
    pub histograms_appended: AtomicU64,
    /// `hearth_head_exemplars_appended_total`.
    pub exemplars_appended: AtomicU64,
    /// `hearth_head_samples_rejected_total{reason=...}`, indexed by [`RejectReason`].
    pub samples_rejected: [AtomicU64; RejectReason::COUNT],
    /// `hearth_head_chunks`: chunks in the head, open and mmap'd (gauge).
    pub head_chunks: AtomicU64,
    /// `hearth_head_chunks_created_total`.
    pub head_chunks_created: AtomicU64,
    /// `hearth_head_min_time_ms` / `hearth_head_max_time_ms` (gauges, ms).
    pub head_min_time_ms: AtomicU64,
    /// See `head_min_time_ms`.
    pub head_max_time_ms: AtomicU64,
    /// `hearth_wal_written_bytes_total`.
    pub wal_bytes_written: AtomicU64,
    /// `hearth_wal_fsyncs_total`.
    pub wal_fsyncs: AtomicU64,
    /// `hearth_wal_fsync_duration_seconds_total`, kept in microseconds.
    pub wal_fsync_micros: AtomicU64,
    /// `hearth_wal_segments` (gauge).
    pub wal_segments: AtomicU64,
    /// `hearth_wal_corruptions_total`: torn or corrupt records dropped at replay.
    pub wal_corruptions: AtomicU64,
    /// `hearth_wal_replay_duration_seconds`, kept in milliseconds (gauge, last start).
    pub wal_replay_millis: AtomicU64,
    /// `hearth_checkpoints_total`.
    pub checkpoints: AtomicU64,
    /// `hearth_blocks_loaded` (gauge).
    pub blocks_loaded: AtomicU64,
    /// `hearth_storage_blocks_bytes` (gauge): bytes of all blocks on disk.
    pub blocks_bytes: AtomicU64,
    /// `hearth_compactions_total`.
    pub compactions: AtomicU64,
    /// `hearth_compactions_failed_total`.
    pub compactions_failed: AtomicU64,
    /// `hearth_compaction_duration_seconds_total`, kept in milliseconds.
    pub compaction_millis: AtomicU64,
    /// `hearth_blocks_deleted_total{reason="retention"}`.
    pub blocks_deleted_retention: AtomicU64,
}

/// Why a sample was refused, as a dense index for [`StorageMetrics::samples_rejected`]. The
/// label values match [`crate::AppendError::reason`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RejectReason {
    /// Out of order.
    OutOfOrder = 0,
    /// Duplicate timestamp with a different value.
    DuplicateTimestamp = 1,
    /// Older than the head's lower bound.
    OutOfBounds = 2,
    /// Too far in the future.
    TooFarInFuture = 3,
    /// A series limit.
    SeriesLimit = 4,
    /// Anything else (invalid labels, histogram, unknown ref...).
    Other = 5,
}

impl RejectReason {
    /// Number of reasons.
    pub const COUNT: usize = 6;
    /// All reasons with their label values, for export.
    pub const ALL: [(RejectReason, &'static str); RejectReason::COUNT] = [
        (RejectReason::OutOfOrder, "out_of_order"),
        (RejectReason::DuplicateTimestamp, "duplicate_timestamp"),
        (RejectReason::OutOfBounds, "out_of_bounds"),
        (RejectReason::TooFarInFuture, "too_far_in_future"),
        (RejectReason::SeriesLimit, "series_limit"),
        (RejectReason::Other, "other"),
    ];

    /// The bucket an append error is counted in.
    pub fn of(e: &crate::AppendError) -> RejectReason {
        use crate::AppendError as E;
        match e {
            E::OutOfOrder { .. } => RejectReason::OutOfOrder,
            E::DuplicateTimestamp { .. } => RejectReason::DuplicateTimestamp,
            E::OutOfBounds { .. } => RejectReason::OutOfBounds,
            E::TooFarInFuture { .. } => RejectReason::TooFarInFuture,
            E::SeriesLimitPerMetric { .. } | E::SeriesLimitTotal { .. } => RejectReason::SeriesLimit,
            _ => RejectReason::Other,
        }
    }
}

impl StorageMetrics {
    /// Adds `n` to a counter.
    #[inline]
    pub fn add(c: &AtomicU64, n: u64) {
        if n != 0 {
            c.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Reads a counter or gauge.
    #[inline]
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}
