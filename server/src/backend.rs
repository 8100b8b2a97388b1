//! What the HTTP layer needs from the database, as one object-safe trait ([`Backend`]), so that
//! handlers never see the concrete storage types (GreptimeDB's handler-trait layering) and can
//! be tested against a small in-memory implementation.
//!
//! [`ingest_request`] is the write path shared by every implementation: decode, append into
//! one transaction, commit. It is generic over [`storage::Appender`] because an appender
//! transaction's `commit(self)` consumes it and so cannot go through a trait object.

use std::sync::Arc;

use ingest::remote_write::{Decoder, IngestReport, Limits};
use storage::metrics::StorageMetrics;
use storage::{Appender, CommitStats, Exemplar, Labels, Matcher, Metadata, Querier, StorageError};

use crate::error::ServerError;

/// One remote-write request as the HTTP layer received it.
#[derive(Debug, Clone, Copy)]
pub struct WriteInput<'a> {
    /// `Content-Type` header, if any.
    pub content_type: Option<&'a str>,
    /// `Content-Encoding` header, if any.
    pub content_encoding: Option<&'a str>,
    /// The compressed body.
    pub body: &'a [u8],
    /// Ingestion time, ms since the epoch (bounds future timestamps).
    pub now_ms: i64,
}

/// What a committed remote-write request did.
#[derive(Debug, Clone)]
pub struct WriteOutcome {
    /// Ingest's account: written and refused items, and whether the answer is 400.
    pub report: IngestReport,
    /// What the storage transaction committed.
    pub committed: CommitStats,
}

/// Head statistics for `/api/v1/status/tsdb` (Prometheus `TSDBStatus`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TsdbStats {
    /// Series in the head.
    pub num_series: u64,
    /// Chunks in the head.
    pub chunk_count: u64,
    /// Label pairs in the head.
    pub num_label_pairs: u64,
    /// Lowest timestamp in the head, ms.
    pub min_time_ms: i64,
    /// Highest timestamp in the head, ms.
    pub max_time_ms: i64,
    /// Top metric names by series count, descending.
    pub series_count_by_metric_name: Vec<(String, u64)>,
    /// Top label names by number of distinct values, descending.
    pub label_value_count_by_label_name: Vec<(String, u64)>,
    /// Top label names by bytes of their values, descending.
    pub memory_in_bytes_by_label_name: Vec<(String, u64)>,
    /// Top label pairs by series count, descending.
    pub series_count_by_label_value_pair: Vec<(String, u64)>,
}

/// The database as the HTTP layer uses it. Methods may block (I/O, fsync): callers run them
/// on the blocking pool.
pub trait Backend: Send + Sync + 'static {
    /// A read view of head and blocks as of now.
    ///
    /// # Errors
    /// [`StorageError`] if a view cannot be opened (closed database, I/O).
    fn querier(&self) -> Result<Arc<dyn Querier>, StorageError>;

    /// Decodes and ingests one remote-write request in one transaction and commits it.
    ///
    /// # Errors
    /// [`ServerError`] from decoding (400/413/415) or from the commit (5xx).
    fn remote_write(&self, decoder: &mut Decoder, input: WriteInput<'_>, limits: &Limits) -> Result<WriteOutcome, ServerError>;

    /// Metadata per metric name, optionally for one metric; at most `limit` metrics when
    /// `limit > 0`.
    fn metadata(&self, metric: Option<&str>, limit: usize) -> Vec<(String, Metadata)>;

    /// Exemplars of the series matching any of `matcher_sets` in `[mint_ms, maxt_ms]`, per
    /// series sorted by labels, oldest first.
    ///
    /// # Errors
    /// [`StorageError`] from the index.
    fn exemplars(&self, matcher_sets: &[Vec<Matcher>], mint_ms: i64, maxt_ms: i64) -> Result<Vec<(Labels, Vec<Exemplar>)>, StorageError>;

    /// Head statistics with the top `limit` entries of each list.
    fn tsdb_stats(&self, limit: usize) -> TsdbStats;

    /// The engine's self-monitoring counters.
    fn storage_metrics(&self) -> Arc<StorageMetrics>;

    /// Syncs the WAL and closes the database; later calls fail with `Closed`.
    ///
    /// # Errors
    /// [`StorageError`] if the final sync failed.
    fn close(&self) -> Result<(), StorageError>;
}

/// The write path: decode with `decoder` (reused across requests), append into `app`, commit.
///
/// A request whose body cannot be decoded is rolled back and refused whole. A decodable one is
/// committed even when some items were refused (Prometheus' partial-write semantics); the
/// report then asks for a 400 naming the first refusals.
///
/// # Errors
/// [`ServerError`] from [`ingest::remote_write::IngestError`] (400/413/415) or a failed
/// commit ([`ServerError::Storage`], 500).
pub fn ingest_request<A: Appender>(
    mut app: A,
    decoder: &mut Decoder,
    input: WriteInput<'_>,
    limits: &Limits,
) -> Result<WriteOutcome, ServerError> {
    match decoder.ingest(input.content_type, input.content_encoding, input.body, &mut app, limits, input.now_ms) {
        Err(e) => {
            app.rollback();
            Err(e.into())
        }
        Ok(report) => {
            let committed = app.commit()?;
            Ok(WriteOutcome { report, committed })
        }
    }
}
