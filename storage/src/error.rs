//! The storage crate's errors: one enum for what a single append can be refused for
//! ([`AppendError`], the caller branches on it per sample) and one for failures of the engine
//! itself ([`StorageError`], I/O and corruption; the server maps these to 5xx).

use std::path::PathBuf;

use crate::api::SeriesRef;
use crate::labels::LabelsError;

/// Why one sample, histogram, exemplar or series was refused. The rest of the transaction is
/// unaffected: the caller may go on appending and commit the valid part (remote-write semantics).
///
/// Order rules are Prometheus' defaults (no out-of-order window): see `tsdb/head_append.go`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AppendError {
    /// Older than the newest sample of its series.
    #[error("out of order sample: timestamp {t_ms} ms is older than the series' newest {newest_t_ms} ms")]
    OutOfOrder {
        /// The refused sample's timestamp, ms since the epoch.
        t_ms: i64,
        /// The series' newest timestamp, ms since the epoch.
        newest_t_ms: i64,
    },
    /// Same timestamp as the series' newest sample but a different value (bit-wise).
    #[error("duplicate sample for timestamp {t_ms} ms with a different value")]
    DuplicateTimestamp {
        /// The timestamp, ms since the epoch.
        t_ms: i64,
    },
    /// Older than the head's lower bound (that range is already compacted into a block).
    #[error("out of bounds: timestamp {t_ms} ms is older than the head's minimum valid time {min_valid_t_ms} ms")]
    OutOfBounds {
        /// The refused sample's timestamp, ms since the epoch.
        t_ms: i64,
        /// The oldest timestamp the head accepts, ms since the epoch.
        min_valid_t_ms: i64,
    },
    /// Further in the future than the configured tolerance.
    #[error("too far in the future: timestamp {t_ms} ms is after {max_valid_t_ms} ms")]
    TooFarInFuture {
        /// The refused sample's timestamp, ms since the epoch.
        t_ms: i64,
        /// The newest timestamp accepted now, ms since the epoch.
        max_valid_t_ms: i64,
    },
    /// The label set is not a valid series identity.
    #[error("invalid labels: {0}")]
    InvalidLabels(#[from] LabelsError),
    /// Creating the series would exceed the per-metric series limit.
    #[error("series limit per metric exceeded: metric {metric:?} already has {limit} series")]
    SeriesLimitPerMetric {
        /// The metric name.
        metric: String,
        /// The configured limit.
        limit: usize,
    },
    /// Creating the series would exceed the total active series limit.
    #[error("active series limit exceeded: {limit} series")]
    SeriesLimitTotal {
        /// The configured limit.
        limit: usize,
    },
    /// The ref was not issued by this head (or its series was garbage-collected).
    #[error("unknown series ref {0:?}")]
    UnknownSeriesRef(SeriesRef),
    /// A histogram that breaks the native-histogram invariants.
    #[error("invalid native histogram: {0}")]
    InvalidHistogram(&'static str),
    /// A float sample on a series that holds histograms in the open chunk, or the reverse,
    /// at the same timestamp.
    #[error("sample type conflicts with the series' existing sample at {t_ms} ms")]
    TypeConflict {
        /// The timestamp, ms since the epoch.
        t_ms: i64,
    },
    /// A sample with a start timestamp given to an appender that cannot store start
    /// timestamps (the default [`crate::Appender::append_st`]); the sample is not written.
    #[error("sample at {t_ms} ms carries a start timestamp this appender cannot store")]
    StartTimestampUnsupported {
        /// The sample's timestamp, ms since the epoch.
        t_ms: i64,
    },
    /// An exemplar older than the newest exemplar of its series.
    #[error("out of order exemplar at {t_ms} ms")]
    ExemplarOutOfOrder {
        /// The exemplar's timestamp, ms since the epoch.
        t_ms: i64,
    },
}

impl AppendError {
    /// A short, stable reason for metrics labels (`reason="out_of_order"`).
    pub fn reason(&self) -> &'static str {
        match self {
            AppendError::OutOfOrder { .. } => "out_of_order",
            AppendError::DuplicateTimestamp { .. } => "duplicate_timestamp",
            AppendError::OutOfBounds { .. } => "out_of_bounds",
            AppendError::TooFarInFuture { .. } => "too_far_in_future",
            AppendError::InvalidLabels(_) => "invalid_labels",
            AppendError::SeriesLimitPerMetric { .. } => "series_limit_per_metric",
            AppendError::SeriesLimitTotal { .. } => "series_limit_total",
            AppendError::UnknownSeriesRef(_) => "unknown_series",
            AppendError::InvalidHistogram(_) => "invalid_histogram",
            AppendError::TypeConflict { .. } => "type_conflict",
            AppendError::StartTimestampUnsupported { .. } => "start_timestamp_unsupported",
            AppendError::ExemplarOutOfOrder { .. } => "exemplar_out_of_order",
        }
    }
}

/// A failure of the engine itself: the data could not be persisted or read. Never caused by
/// the content of a request.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// An I/O error, with what was being done.
    #[error("{context}: {source}")]
    Io {
        /// What the engine was doing (`"write WAL segment 000012"`).
        context: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// On-disk data that fails its checksum or layout checks.
    #[error("corruption in {path}: offset {offset}: {reason}")]
    Corruption {
        /// The file.
        path: PathBuf,
        /// Byte offset of the bad record.
        offset: u64,
        /// What was wrong.
        reason: String,
    },
    /// A file written by a newer (or unknown) format version.
    #[error("unsupported format version {version} in {path}")]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// The version byte found.
        version: u8,
    },
    /// The database is closed or closing.
    #[error("storage is closed")]
    Closed,
}

impl StorageError {
    /// Wraps an I/O error with context.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        StorageError::Io { context: context.into(), source }
    }
}

/// Convenience alias.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;
