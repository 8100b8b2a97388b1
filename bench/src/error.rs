//! The one error type of the bench crate.

use std::time::Duration;

/// What can go wrong while generating, sending, or comparing.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A configuration value is out of its documented range.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// Encoding a remote-write request failed.
    #[error("encoding a remote-write request: {0}")]
    Encode(String),
    /// A server answered a remote-write request with a non-2xx status.
    #[error("{system}: remote-write request {request} answered HTTP {status}: {body}")]
    WriteRejected {
        /// Which system answered.
        system: String,
        /// Index of the request in its shard's sequence.
        request: usize,
        /// The HTTP status code.
        status: u16,
        /// The first bytes of the response body.
        body: String,
    },
    /// An HTTP request failed below the HTTP status level (connect, reset, timeout).
    #[error("{system}: HTTP: {source}")]
    Http {
        /// Which system was addressed.
        system: String,
        /// The transport error.
        source: reqwest::Error,
    },
    /// A query answered an error or an unparseable body.
    #[error("{system}: query {query:?}: {reason}")]
    Query {
        /// Which system answered.
        system: String,
        /// The PromQL expression.
        query: String,
        /// What was wrong.
        reason: String,
    },
    /// A bounded wait ran out.
    #[error("{what}: gave up after {after:?}")]
    Timeout {
        /// What was waited for.
        what: String,
        /// How long was waited.
        after: Duration,
    },
    /// Starting, stopping or installing a process failed.
    #[error("{0}")]
    Process(String),
    /// A filesystem or process I/O error.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
}

impl BenchError {
    /// Wraps an I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        BenchError::Io { context: context.into(), source }
    }
}

/// The bench crate's result.
pub type Result<T, E = BenchError> = std::result::Result<T, E>;
