//! Prometheus remote-write 1.0 and 2.0 receiving: content negotiation, snappy decompression,
//! protobuf decoding, validation, and appends into one storage transaction.
//!
//! # How the server uses it
//! ```text
//! let mut decoder = Decoder::new();                 // one per worker; buffers are reused
//! // per request, after capping the body at limits.max_compressed_body_bytes():
//! let mut app = db.appender();
//! match decoder.ingest(content_type, content_encoding, &body, &mut app, &limits, now_ms) {
//!     Err(e) => { app.rollback(); respond(e.http_status(), e.to_string()) }   // 400/413/415
//!     Ok(report) => match app.commit() {
//!         Err(_) => respond(500, ..),                                          // retryable
//!         Ok(_) => respond(report.http_status(), report.error_message()        // 204 or 400
//!                          + report.response_headers()),
//!     },
//! }
//! ```
//!
//! # Design
//! - [`content`]: Content-Type / Content-Encoding negotiation per the 2.0 spec (415 otherwise).
//! - [`decode`]: [`Decoder`], snappy into a reused buffer with the size checked from the snappy
//!   header first (413), then a zero-copy walk of the wire format; no allocation per sample.
//! - [`ingest`](mod@ingest): validation (Prometheus' receiver rules plus Mimir's label limits),
//!   2.0 symbol resolution, histogram conversion, created timestamps, metadata, exemplars;
//!   partial success with a 400 as Prometheus does. The result is an [`IngestReport`].
//! - `histogram`: the native histogram message and its conversion to absolute counts.
//! - [`error`]: [`IngestError`] (whole request) and [`Rejection`] (one item), each with its
//!   HTTP status.
//! - [`limits`]: [`Limits`] and their defaults.
//! - [`encode`]: building and compressing requests from plain data (tests, benchmarks).
//! - [`proto`]: prost types generated from `ingest/proto/*.proto` at build time (protox, no
//!   `protoc` needed).
//! - [`testing`]: [`NoopAppender`] and [`RecordingAppender`].
//!
//! Sources: the remote-write 1.0 and 2.0 specifications (prometheus.io/docs/specs/), and
//! Prometheus' `storage/remote/write_handler.go` and `prompb/`.

pub mod content;
pub mod decode;
pub mod encode;
pub mod error;
mod histogram;
pub mod ingest;
pub mod limits;
pub mod proto;
pub mod series_cache;
pub mod testing;
mod wire;

pub use content::{
    negotiate, ProtoVersion, CONTENT_ENCODING, CONTENT_TYPE_V1, CONTENT_TYPE_V2, HEADER_EXEMPLARS_WRITTEN,
    HEADER_HISTOGRAMS_WRITTEN, HEADER_SAMPLES_WRITTEN, MEDIA_TYPE,
};
pub use decode::{Decoder, Request};
pub use encode::{ExemplarData, HistogramData, HistogramValue, IntHistogram, SeriesData, WriteRequestData};
pub use error::{IngestError, Rejection};
pub use ingest::{IngestReport, ItemKind, RejectedItem};
pub use limits::{Limits, NameValidation};
pub use testing::{NoopAppender, RecordingAppender};
