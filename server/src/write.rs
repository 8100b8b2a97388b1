//! `POST /api/v1/write`: the Prometheus remote-write 1.0 and 2.0 receiver.
//!
//! Per request: the `Content-Length` (and the bytes actually read) are capped at the largest
//! snappy encoding of the decompressed-size limit (413 past it); a [`Decoder`] is taken from a
//! pool (its buffers are reused across requests); decoding, appending and the commit (with its
//! fsync) run on the blocking pool so no async worker waits on the disk.
//!
//! Answers (remote-write spec, Prometheus `write_handler.go`): 204 when everything was written;
//! 400 when the body is malformed or any item was refused (the valid part is still committed,
//! the body names the first refusals); 413 for a body over the limit; 415 for an unsupported
//! `Content-Type` or `Content-Encoding`; 500 only when the commit failed, so the sender retries.
//! A 2.0 request's response always carries the three `X-Prometheus-Remote-Write-*-Written`
//! headers, failures included.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use ingest::remote_write::decode::SeriesCache;
use ingest::remote_write::{
    negotiate, Decoder, IngestReport, Limits, ProtoVersion, HEADER_EXEMPLARS_WRITTEN, HEADER_HISTOGRAMS_WRITTEN,
    HEADER_SAMPLES_WRITTEN,
};
use parking_lot::Mutex;

use crate::app::Shared;
use crate::backend::{WriteInput, WriteOutcome};
use crate::config;
use crate::error::{ServerError, WriteFailure};

/// How many refusals the response body names; the rest are counted.
const REJECTIONS_IN_BODY: usize = 10;

/// How many refusals are kept per request for the `reason` label of
/// `hearth_samples_rejected_total`; beyond, they count as `reason="other"`.
const REJECTIONS_TRACKED: usize = 1000;

/// The receiver's shared parts: limits and a pool of decoders.
#[derive(Debug)]
pub struct Receiver {
    /// Ingest limits derived from the configuration.
    pub limits: Limits,
    /// Idle decoders; at most `pool_max` are kept so that a burst does not pin one
    /// decompression buffer per request forever. A mutex because takes and returns are a push
    /// or pop.
    pool: Mutex<Vec<Decoder>>,
    pool_max: usize,
    /// Known series by label bytes, shared by every decoder: a known series skips label
    /// validation and the head's lookup by labels. The storage is published once per process
    /// (`StorageSlot`), so the refs it holds always belong to it.
    series_cache: Arc<SeriesCache>,
}

/// 0 in the configuration disables a limit; ingest takes a number, so 0 becomes "no limit".
fn or_unlimited(n: usize) -> usize {
    if n == 0 {
        usize::MAX
    } else {
        n
    }
}

impl Receiver {
    /// A receiver with limits from the configuration.
    pub fn new(c: &config::Limits) -> Receiver {
        let limits = Limits {
            max_decompressed_bytes: c.max_decompressed_body_bytes,
            max_labels_per_series: or_unlimited(c.max_labels_per_series),
            max_label_name_bytes: or_unlimited(c.max_label_name_bytes),
            max_label_value_bytes: or_unlimited(c.max_label_value_bytes),
            max_reported_rejections: REJECTIONS_TRACKED,
            ..Limits::default()
        };
        let pool_max = std::thread::available_parallelism().map_or(4, |n| n.get() * 2);
        Receiver { limits, pool: Mutex::new(Vec::new()), pool_max, series_cache: Arc::new(SeriesCache::default()) }
    }

    fn take(&self) -> Decoder {
        self.pool.lock().pop().unwrap_or_else(|| Decoder::with_series_cache(Arc::clone(&self.series_cache)))
    }

    fn give_back(&self, d: Decoder) {
        let mut p = self.pool.lock();
        if p.len() < self.pool_max {
            p.push(d);
        }
    }
}

fn header_str(h: &HeaderMap, name: HeaderName) -> Option<&str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

fn add_written_headers(r: &mut Response, samples: u64, histograms: u64, exemplars: u64) {
    for (name, n) in [
        (HEADER_SAMPLES_WRITTEN, samples),
        (HEADER_HISTOGRAMS_WRITTEN, histograms),
        (HEADER_EXEMPLARS_WRITTEN, exemplars),
    ] {
        if let (Ok(k), Ok(v)) = (HeaderName::try_from(name), HeaderValue::from_str(&n.to_string())) {
            r.headers_mut().insert(k, v);
        }
    }
}

/// The response body for a report with refusals: the first few, then the totals.
fn rejection_message(r: &IngestReport) -> String {
    let mut s = String::new();
    for (i, x) in r.rejections.iter().take(REJECTIONS_IN_BODY).enumerate() {
        if i > 0 {
            s.push_str("; ");
        }
        s.push_str(&x.rejection.to_string());
        s.push_str(" for series ");
        s.push_str(&x.series);
        if let Some(t) = x.t_ms {
            s.push_str(&format!(" at timestamp {t} ms"));
        }
    }
    s.push_str(&format!(
        " ({} series, {} samples, {} histograms, {} exemplars refused; {} samples, {} histograms, {} exemplars written)\n",
        r.series_rejected,
        r.samples_rejected,
        r.histograms_rejected,
        r.exemplars_rejected,
        r.samples_written,
        r.histograms_written,
        r.exemplars_written
    ));
    s
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// The `POST /api/v1/write` handler.
pub async fn handler(State(s): State<Shared>, headers: HeaderMap, body: Body) -> Response {
    let content_type = header_str(&headers, header::CONTENT_TYPE).map(str::to_string);
    let content_encoding = header_str(&headers, header::CONTENT_ENCODING).map(str::to_string);
    // Decided from the Content-Type alone, so that a 2.0 request refused for its encoding
    // still gets the 2.0 headers.
    let is_v2 = matches!(negotiate(content_type.as_deref(), None), Ok(ProtoVersion::V2));
    let result = receive(&s, content_type, content_encoding, headers, body).await;
    let (mut r, written) = match result {
        Ok(out) => {
            let m = &s.metrics;
            m.samples_ingested.inc_by(out.committed.samples);
            m.histograms_ingested.inc_by(out.committed.histograms);
            m.exemplars_ingested.inc_by(out.committed.exemplars);
            let rep = &out.report;
            let refused = rep.series_rejected + rep.samples_rejected + rep.histograms_rejected + rep.exemplars_rejected;
            for x in &rep.rejections {
                m.reject(x.rejection.reason(), 1);
            }
            m.reject("other", refused.saturating_sub(rep.rejections.len() as u64));
            let r = if rep.bad_request {
                let msg = rejection_message(rep);
                tracing::debug!(error = %msg.trim_end(), "remote-write request partly refused");
                (StatusCode::BAD_REQUEST, msg).into_response()
            } else {
                StatusCode::NO_CONTENT.into_response()
            };
            (r, (rep.samples_written, rep.histograms_written, rep.exemplars_written))
        }
        Err(e) => {
            if matches!(e, ServerError::Storage(_) | ServerError::Internal(_)) {
                tracing::error!(error = %e, "remote-write commit failed");
            }
            (WriteFailure(e).into_response(), (0, 0, 0))
        }
    };
    if is_v2 {
        add_written_headers(&mut r, written.0, written.1, written.2);
    }
    r
}

async fn receive(
    s: &Shared,
    content_type: Option<String>,
    content_encoding: Option<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<WriteOutcome, ServerError> {
    // Refuse unsupported types before reading the body.
    negotiate(content_type.as_deref(), content_encoding.as_deref())?;
    let max_body = s.write.limits.max_compressed_body_bytes();
    if let Some(len) = header_str(&headers, header::CONTENT_LENGTH).and_then(|v| v.parse::<u64>().ok()) {
        if len > max_body as u64 {
            return Err(ServerError::TooLarge(format!(
                "request body of {len} bytes exceeds the limit of {max_body} bytes"
            )));
        }
    }
    let body = axum::body::to_bytes(body, max_body).await.map_err(|e| {
        // to_bytes fails for a body over the limit or a broken connection.
        if std::error::Error::source(&e).is_some_and(|s| s.is::<http_body_util::LengthLimitError>()) {
            ServerError::TooLarge(format!("request body exceeds the limit of {max_body} bytes"))
        } else {
            ServerError::BadData(format!("reading request body: {e}"))
        }
    })?;
    let backend = s.storage.backend()?;
    let mut decoder = s.write.take();
    let limits = s.write.limits.clone();
    let (decoder, result) = tokio::task::spawn_blocking(move || {
        let input = WriteInput {
            content_type: content_type.as_deref(),
            content_encoding: content_encoding.as_deref(),
            body: &body,
            now_ms: now_ms(),
        };
        let r = backend.remote_write(&mut decoder, input, &limits);
        (decoder, r)
    })
    .await
    .map_err(|e| ServerError::Internal(format!("remote-write task failed: {e}")))?;
    s.write.give_back(decoder);
    result
}
