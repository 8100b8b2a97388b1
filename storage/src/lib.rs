//! Hearth's storage engine: where every sample is written and read.
//!
//! This crate knows no HTTP, protobuf, PromQL or async runtime. Ingest writes through
//! [`Appender`]; the query engine and usage analytics read through [`Querier`]. Everything else
//! is how those two promises are kept.
//!
//! # Data path
//!
//! ```text
//!  Appender::append ──► per-series order check ──► pending batch (refs, t_ms, v)
//!        commit ──► WAL (series + samples records, one write; fsync per policy)
//!               ──► series' open chunk (columnar, compressed) ──► full chunk cut
//!                                                           ──► head chunk file (mmap'd)
//!  Db background: head spans > 1.5 × block range ──► compact oldest range into a block
//!                 (index + chunks + meta.json, mmap'd, immutable) ──► truncate head + WAL
//!                 checkpoint ──► merge small blocks ──► delete blocks past retention
//!  Querier::select ──► postings for matchers (head and each block) ──► series sorted by
//!                 labels ──► chunks from head and blocks ──► SeriesIterator (clipped, deduped)
//! ```
//!
//! # Modules
//! - [`labels`], [`matcher`], [`histogram`]: the data model (Prometheus semantics).
//! - [`api`]: the [`Appender`] and [`Querier`] traits, [`SeriesRef`], exemplars, metadata.
//! - [`series`]: [`Series`] and [`SeriesIterator`], the shape of a select result.
//! - [`chunkenc`]: chunk encodings (delta-of-delta timestamps and XOR values, column-wise).
//! - [`chunks`]: chunk segment files (head chunk files and block chunk files), mmap'd.
//! - [`mmap`]: every `unsafe` memory-mapping call of the crate, in one place.
//! - [`index`]: symbol interning, roaring-bitmap postings, matcher → postings evaluation, and
//!   the on-disk block index format.
//! - [`wal`]: the write-ahead log: segments, versioned CRC-checked records, checkpoints.
//! - [`head`]: the in-memory head block: series, appender, reader, WAL replay, truncation.
//! - [`block`]: persistent blocks: writer, reader, compaction, retention.
//! - [`db`]: [`Db`], the head plus blocks, its options and background maintenance.
//! - [`metrics`]: self-monitoring counters the server exports.
//! - [`usage`]: durable per-day usage of each metric (who reads what), for the unused-metrics
//!   report.
//! - [`encoding`]: varints and a bounds-checked byte reader shared by the formats.
//!
//! Each on-disk format has its byte layout in its module doc and a version byte.
#![warn(missing_docs)]

pub mod api;
pub mod block;
pub mod chunkenc;
pub mod chunks;
pub mod db;
pub mod encoding;
pub mod error;
pub mod head;
pub mod histogram;
pub mod index;
pub mod labels;
pub mod matcher;
pub mod metrics;
pub mod mmap;
pub mod series;
pub mod usage;
pub mod wal;

pub use api::{
    is_stale_nan, stale_nan, Appender, CommitStats, Exemplar, Metadata, MetricType, Querier, SeriesRef,
    STALE_NAN_BITS,
};
pub use chunkenc::ValueType;
pub use error::{AppendError, Result, StorageError};
pub use histogram::FloatHistogram;
pub use labels::{Label, Labels, METRIC_NAME};
pub use matcher::{MatchOp, Matcher};
pub use series::{Series, SeriesIterator};
