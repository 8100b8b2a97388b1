//! Errors of the remote-write path, each with the HTTP status the server must answer.
//!
//! Two levels, because a remote-write request is partly ingestible (Prometheus
//! `storage/remote/write_handler.go`):
//! - [`IngestError`]: the whole request is refused before anything is appended (unsupported
//!   media type 415, body too large 413, undecodable snappy or protobuf 400).
//! - [`Rejection`]: one series, sample, histogram or exemplar is refused; the rest of the
//!   request is still appended, and [`super::IngestReport`] says whether the response must be
//!   400 (so the sender drops the request instead of retrying it forever) or 204.
//!
//! Storage failures at commit are the caller's (`storage::StorageError`, 5xx): they never
//! reach this crate.

use storage::AppendError;

/// The request as a whole cannot be ingested; nothing of it was appended.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum IngestError {
    /// The Content-Type is not one of the remote-write media types (remote-write 2.0 spec,
    /// "Content-Type"): `application/x-protobuf` optionally with `proto=prometheus.WriteRequest`
    /// or `proto=io.prometheus.write.v2.Request`. 415.
    #[error("unsupported media type {content_type:?}: expected application/x-protobuf with proto=prometheus.WriteRequest or proto=io.prometheus.write.v2.Request")]
    UnsupportedMediaType {
        /// The header as received.
        content_type: String,
    },
    /// The Content-Encoding is not `snappy`. 415.
    #[error("unsupported content encoding {content_encoding:?}: only snappy is supported")]
    UnsupportedEncoding {
        /// The header as received.
        content_encoding: String,
    },
    /// The snappy header announces more decompressed bytes than the limit; refused before
    /// decompressing. 413.
    #[error("decompressed body of {decompressed_bytes} bytes exceeds the limit of {limit_bytes} bytes")]
    BodyTooLarge {
        /// Size announced by the snappy header, bytes.
        decompressed_bytes: u64,
        /// [`super::Limits::max_decompressed_bytes`].
        limit_bytes: u64,
    },
    /// The body is not valid snappy block-format data. 400.
    #[error("corrupt snappy body: {reason}")]
    Snappy {
        /// The decompressor's description.
        reason: String,
    },
    /// The decompressed body is not a valid protobuf message of the announced type. 400.
    #[error("malformed protobuf at byte {offset}: {reason}")]
    Protobuf {
        /// What was wrong.
        reason: &'static str,
        /// Byte offset in the decompressed body.
        offset: usize,
    },
}

impl IngestError {
    /// The HTTP status the server answers with: 415, 413 or 400.
    pub fn http_status(&self) -> u16 {
        match self {
            IngestError::UnsupportedMediaType { .. } | IngestError::UnsupportedEncoding { .. } => 415,
            IngestError::BodyTooLarge { .. } => 413,
            IngestError::Snappy { .. } | IngestError::Protobuf { .. } => 400,
        }
    }

    /// A short, stable reason for metrics labels (`reason="body_too_large"`).
    pub fn reason(&self) -> &'static str {
        match self {
            IngestError::UnsupportedMediaType { .. } => "unsupported_media_type",
            IngestError::UnsupportedEncoding { .. } => "unsupported_encoding",
            IngestError::BodyTooLarge { .. } => "body_too_large",
            IngestError::Snappy { .. } => "corrupt_snappy",
            IngestError::Protobuf { .. } => "malformed_protobuf",
        }
    }
}

/// Why one series (and so all its samples), one sample, histogram or exemplar was refused.
/// Validation rules follow Prometheus' receiver and Mimir's distributor limits.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Rejection {
    /// A label name is the empty string.
    #[error("empty label name")]
    EmptyLabelName,
    /// A label name is not valid under the configured [`super::NameValidation`].
    #[error("invalid label name {name:?}")]
    InvalidLabelName {
        /// The name (cut to 256 bytes).
        name: String,
    },
    /// A label name or value is not valid UTF-8.
    #[error("label name or value is not valid UTF-8")]
    InvalidUtf8,
    /// The `__name__` value is not a valid metric name under the configured validation.
    #[error("invalid metric name {name:?}")]
    InvalidMetricName {
        /// The metric name (cut to 256 bytes).
        name: String,
    },
    /// The same label name appears twice in one series.
    #[error("duplicate label name {name:?}")]
    DuplicateLabelName {
        /// The repeated name.
        name: String,
    },
    /// No `__name__` label, or an empty one.
    #[error("series has no metric name (__name__)")]
    MissingMetricName,
    /// More labels than [`super::Limits::max_labels_per_series`].
    #[error("series has {count} labels, more than the limit of {limit}")]
    TooManyLabels {
        /// Labels in the series.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// A label name longer than [`super::Limits::max_label_name_bytes`].
    #[error("label name of {len_bytes} bytes exceeds the limit of {limit_bytes} bytes")]
    LabelNameTooLong {
        /// Length of the name, bytes.
        len_bytes: usize,
        /// The limit, bytes.
        limit_bytes: usize,
    },
    /// A label value longer than [`super::Limits::max_label_value_bytes`].
    #[error("value of label {name:?} is {len_bytes} bytes, more than the limit of {limit_bytes} bytes")]
    LabelValueTooLong {
        /// The label's name.
        name: String,
        /// Length of the value, bytes.
        len_bytes: usize,
        /// The limit, bytes.
        limit_bytes: usize,
    },
    /// A 2.0 `labels_refs` list of odd length.
    #[error("labels_refs has odd length {len}")]
    OddLabelRefs {
        /// The list's length.
        len: usize,
    },
    /// A 2.0 symbol reference past the end of the symbols table.
    #[error("symbol reference {symbol_ref} out of range: the request has {symbols} symbols")]
    BadSymbolRef {
        /// The reference.
        symbol_ref: u32,
        /// Length of `Request.symbols`.
        symbols: usize,
    },
    /// A sample further in the future than [`super::Limits::max_future_ms`] allows.
    #[error("sample timestamp {t_ms} ms is too far in the future (newest accepted {max_t_ms} ms)")]
    TooFarInFuture {
        /// The sample's timestamp, ms since the epoch.
        t_ms: i64,
        /// The newest timestamp accepted at ingestion time, ms since the epoch.
        max_t_ms: i64,
    },
    /// A native histogram that breaks Prometheus' histogram rules.
    #[error("invalid native histogram: {0}")]
    InvalidHistogram(&'static str),
    /// Exemplar labels longer than the OpenMetrics limit of 128 UTF-8 characters.
    #[error("exemplar labels have {runes} characters, more than the limit of {limit}")]
    ExemplarLabelsTooLong {
        /// Characters in names and values together.
        runes: usize,
        /// [`super::Limits::max_exemplar_label_runes`].
        limit: usize,
    },
    /// Storage refused the series, sample, histogram or exemplar (order rules, series limits).
    #[error(transparent)]
    Append(#[from] AppendError),
}

impl Rejection {
    /// The HTTP status this rejection calls for: always 400 (the sender must not retry).
    pub fn http_status(&self) -> u16 {
        400
    }

    /// A short, stable reason for metrics labels.
    pub fn reason(&self) -> &'static str {
        match self {
            Rejection::EmptyLabelName => "empty_label_name",
            Rejection::InvalidLabelName { .. } => "invalid_label_name",
            Rejection::InvalidUtf8 => "invalid_utf8",
            Rejection::InvalidMetricName { .. } => "invalid_metric_name",
            Rejection::DuplicateLabelName { .. } => "duplicate_label_name",
            Rejection::MissingMetricName => "missing_metric_name",
            Rejection::TooManyLabels { .. } => "too_many_labels",
            Rejection::LabelNameTooLong { .. } => "label_name_too_long",
            Rejection::LabelValueTooLong { .. } => "label_value_too_long",
            Rejection::OddLabelRefs { .. } => "odd_label_refs",
            Rejection::BadSymbolRef { .. } => "bad_symbol_ref",
            Rejection::TooFarInFuture { .. } => "too_far_in_future",
            Rejection::InvalidHistogram(_) => "invalid_histogram",
            Rejection::ExemplarLabelsTooLong { .. } => "exemplar_labels_too_long",
            Rejection::Append(e) => e.reason(),
        }
    }
}

/// Cuts a string for an error message at a char boundary at most `max` bytes in.
pub(crate) fn cut(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}
