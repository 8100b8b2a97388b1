//! The server's error type and the one place where errors become HTTP statuses.
//!
//! Every handler fails with a [`ServerError`]; [`ServerError::status`] is the only mapping to a
//! status code. Two renderings exist because the two protocols differ: the query API wraps the
//! error in Prometheus' JSON envelope ([`ApiFailure`], `{"status":"error","errorType":..}`),
//! remote-write answers in plain text ([`WriteFailure`]), which is what Prometheus' sender logs.
//!
//! Status codes follow Prometheus (`web/api/v1/api.go` `returnAPIError`, and the remote-write
//! spec): bad input is 400 and never retried, 413/415 for body size and type, 5xx only when the
//! server could not persist or evaluate, so that a sender retries exactly the retryable cases.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// Everything a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Malformed or invalid input: a parameter, a query, a remote-write payload or samples
    /// (`bad_data`, 400).
    #[error("{0}")]
    BadData(String),
    /// The request body is larger than allowed, compressed or decompressed (413).
    #[error("{0}")]
    TooLarge(String),
    /// Content type or encoding not supported (415).
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The query failed while evaluating (`execution`, 422), e.g. too many samples.
    #[error("{0}")]
    Execution(String),
    /// The query ran past its timeout (`timeout`, 503).
    #[error("{0}")]
    Timeout(String),
    /// The client went away or the server is shutting down (`canceled`, 499).
    #[error("{0}")]
    Canceled(String),
    /// Storage is still opening (WAL replay) or closing (`unavailable`, 503).
    #[error("{0}")]
    Unavailable(String),
    /// Storage failed to persist or read (`internal`, 500): the sender should retry.
    #[error("{0}")]
    Storage(#[from] storage::StorageError),
    /// A bug or unexpected failure (`internal`, 500).
    #[error("{0}")]
    Internal(String),
    /// Unknown path or label (`not_found`, 404).
    #[error("{0}")]
    NotFound(String),
}

impl ServerError {
    /// The HTTP status of this error: the single mapping of the server.
    pub fn status(&self) -> StatusCode {
        match self {
            ServerError::BadData(_) => StatusCode::BAD_REQUEST,
            ServerError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ServerError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ServerError::Execution(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ServerError::Timeout(_) | ServerError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            // 499 is nginx's "client closed request", which Prometheus uses for `canceled`.
            ServerError::Canceled(_) => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
            ServerError::Storage(_) | ServerError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ServerError::NotFound(_) => StatusCode::NOT_FOUND,
        }
    }

    /// Prometheus' `errorType` for the JSON envelope.
    pub fn error_type(&self) -> &'static str {
        match self {
            ServerError::BadData(_) | ServerError::TooLarge(_) | ServerError::UnsupportedMediaType(_) => "bad_data",
            ServerError::Execution(_) => "execution",
            ServerError::Timeout(_) => "timeout",
            ServerError::Canceled(_) => "canceled",
            ServerError::Unavailable(_) => "unavailable",
            ServerError::Storage(_) | ServerError::Internal(_) => "internal",
            ServerError::NotFound(_) => "not_found",
        }
    }
}

impl From<ingest::remote_write::IngestError> for ServerError {
    fn from(e: ingest::remote_write::IngestError) -> Self {
        use ingest::remote_write::IngestError as E;
        let msg = e.to_string();
        match e {
            E::UnsupportedMediaType { .. } | E::UnsupportedEncoding { .. } => ServerError::UnsupportedMediaType(msg),
            E::BodyTooLarge { .. } => ServerError::TooLarge(msg),
            E::Snappy { .. } | E::Protobuf { .. } => ServerError::BadData(msg),
        }
    }
}

impl From<query::QueryError> for ServerError {
    fn from(e: query::QueryError) -> Self {
        use query::QueryError as E;
        let msg = e.to_string();
        match e {
            E::BadData(_) => ServerError::BadData(msg),
            E::Execution(_) | E::TooManySamples(_) => ServerError::Execution(msg),
            E::Timeout(_) => ServerError::Timeout(msg),
            E::Canceled(_) => ServerError::Canceled(msg),
            E::Storage(_) | E::Internal(_) => ServerError::Internal(msg),
        }
    }
}

/// The query API's JSON envelope for an error.
#[derive(Serialize)]
struct ErrorEnvelope<'a> {
    status: &'static str,
    #[serde(rename = "errorType")]
    error_type: &'static str,
    error: &'a str,
}

/// A [`ServerError`] rendered as Prometheus' JSON error envelope.
#[derive(Debug)]
pub struct ApiFailure(pub ServerError);

impl<E: Into<ServerError>> From<E> for ApiFailure {
    fn from(e: E) -> Self {
        ApiFailure(e.into())
    }
}

impl IntoResponse for ApiFailure {
    fn into_response(self) -> Response {
        let msg = self.0.to_string();
        let body = serde_json::to_vec(&ErrorEnvelope { status: "error", error_type: self.0.error_type(), error: &msg })
            .unwrap_or_default();
        let mut r = (self.0.status(), body).into_response();
        r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        r
    }
}

/// A [`ServerError`] rendered as a plain-text body (remote-write and the `/-/` endpoints).
#[derive(Debug)]
pub struct WriteFailure(pub ServerError);

impl<E: Into<ServerError>> From<E> for WriteFailure {
    fn from(e: E) -> Self {
        WriteFailure(e.into())
    }
}

impl IntoResponse for WriteFailure {
    fn into_response(self) -> Response {
        let mut msg = self.0.to_string();
        msg.push('\n');
        (self.0.status(), msg).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_match_prometheus() {
        assert_eq!(ServerError::BadData(String::new()).status(), 400);
        assert_eq!(ServerError::Execution(String::new()).status(), 422);
        assert_eq!(ServerError::Timeout(String::new()).status(), 503);
        assert_eq!(ServerError::Canceled(String::new()).status().as_u16(), 499);
        assert_eq!(ServerError::Internal(String::new()).status(), 500);
        assert_eq!(ServerError::Storage(storage::StorageError::Closed).status(), 500);
        assert_eq!(ServerError::TooLarge(String::new()).status(), 413);
        assert_eq!(ServerError::UnsupportedMediaType(String::new()).status(), 415);
        let e: ServerError = ingest::remote_write::IngestError::BodyTooLarge { decompressed_bytes: 2, limit_bytes: 1 }.into();
        assert_eq!(e.status(), 413);
        let e: ServerError = ingest::remote_write::IngestError::Snappy { reason: "x".into() }.into();
        assert_eq!(e.status(), 400);
        let e: ServerError = ingest::remote_write::IngestError::UnsupportedEncoding { content_encoding: "gzip".into() }.into();
        assert_eq!(e.status(), 415);
        let e: ServerError = query::QueryError::TooManySamples("query execution").into();
        assert_eq!((e.status().as_u16(), e.error_type()), (422, "execution"));
        let e: ServerError = query::QueryError::Timeout("query execution").into();
        assert_eq!((e.status().as_u16(), e.error_type()), (503, "timeout"));
    }

    #[tokio::test]
    async fn api_failure_is_the_json_envelope() {
        let r = ApiFailure(ServerError::BadData("invalid parameter \"query\"".into())).into_response();
        assert_eq!(r.status(), 400);
        let body = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["status"], "error");
        assert_eq!(v["errorType"], "bad_data");
        assert_eq!(v["error"], "invalid parameter \"query\"");
    }
}
