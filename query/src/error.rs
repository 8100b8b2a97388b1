//! The engine's one error enum. Each variant is one of Prometheus' API error types
//! (`bad_data`, `execution`, `timeout`, `canceled`, `internal`), so the server maps them to HTTP
//! status codes in one place (Prometheus `web/api/v1/api.go`: bad_data → 400, execution → 422,
//! timeout → 503, canceled → 503, internal → 500).

/// Why a query did not produce a result.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QueryError {
    /// The query text does not parse, or a parameter is out of range (`bad_data`).
    #[error("{0}")]
    BadData(String),
    /// Evaluation failed on the data (`execution`), e.g. duplicate label sets or a type error
    /// only visible at run time.
    #[error("{0}")]
    Execution(String),
    /// The query ran longer than `EngineOptions::timeout`.
    #[error("query timed out in {0}")]
    Timeout(&'static str),
    /// The caller cancelled the query.
    #[error("query was canceled in {0}")]
    Canceled(&'static str),
    /// More samples would be held in memory than `EngineOptions::max_samples` allows.
    #[error("query processing would load too many samples into memory in {0}")]
    TooManySamples(&'static str),
    /// Storage failed while the query read it.
    #[error("storage error: {0}")]
    Storage(String),
    /// A bug: evaluation panicked. The panic message is kept.
    #[error("unexpected error: {0}")]
    Internal(String),
}

impl QueryError {
    /// The Prometheus API `errorType` for this error.
    pub fn error_type(&self) -> &'static str {
        match self {
            QueryError::BadData(_) => "bad_data",
            QueryError::Execution(_) | QueryError::TooManySamples(_) => "execution",
            QueryError::Timeout(_) => "timeout",
            QueryError::Canceled(_) => "canceled",
            QueryError::Storage(_) | QueryError::Internal(_) => "internal",
        }
    }
}

impl From<storage::StorageError> for QueryError {
    fn from(e: storage::StorageError) -> Self {
        QueryError::Storage(e.to_string())
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = QueryError> = std::result::Result<T, E>;
