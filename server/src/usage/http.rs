//! `GET /api/v1/status/metric_usage` and `GET /api/v1/status/unused_metrics`, in Prometheus'
//! envelope `{"status":"success","data":...}`, or CSV with `format=csv`.
//!
//! `metric_usage` parameters: `window` (default `30d`), `sort` (`series`, `bytes`, `queries`,
//! `name`, `last_queried`; default `series`), `order` (`asc`|`desc`; default `desc`, `asc` for
//! `name`), `limit` (0 or absent: all), `offset` (default 0), `format` (`json`|`csv`).
//! Data: `{"window", "total", "metrics": [row...]}` (rows as [`MetricUsageRow`]).
//!
//! `unused_metrics` parameters: `window` (default `30d`), `format`. Data: [`UnusedReport`];
//! the CSV lists the unused metrics' rows.
//!
//! The service is published into a [`UsageSlot`] once storage has opened; until then both
//! answer 503 `unavailable` like the other storage-backed endpoints.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use query::Annotations;
use storage::usage::ReadKind;
use storage::Matcher;

use super::recorder::{CallStats, OwnedInput, PendingCall, RawCaller};
use super::report::{self, MetricUsageRow, SortKey, UnusedReport};
use super::{now_ms, parse_window, UsageError, UsageService};
use crate::api::json::success_serde;
use crate::error::{ApiFailure, ServerError};

/// Where the running service is published once storage is open.
pub type UsageSlot = Arc<OnceLock<Arc<UsageService>>>;

/// The report routes, for merging into the server's router (any outer state).
pub fn routes<S: Clone + Send + Sync + 'static>(slot: UsageSlot) -> Router<S> {
    Router::new()
        .route("/api/v1/status/metric_usage", get(metric_usage))
        .route("/api/v1/status/unused_metrics", get(unused_metrics))
        .with_state(slot)
}

impl From<UsageError> for ServerError {
    fn from(e: UsageError) -> ServerError {
        match e {
            UsageError::BadParam(m) => ServerError::BadData(m),
            other => ServerError::Internal(other.to_string()),
        }
    }
}

/// Hands `call` to the usage worker when the service is running ([`super::queue`]): O(1),
/// never blocks; resolving selectors against the index happens on the worker, after the
/// response. A full queue drops the call (counted in `/metrics`).
pub fn record_in_background(slot: &UsageSlot, call: PendingCall) {
    if let Some(svc) = slot.get() {
        svc.submit(call);
    }
}

/// The query handlers' hook: records an instant (`start_ms == end_ms`) or range query over
/// `[start_ms - lookback_ms, end_ms]` that selected `series` series and loaded `samples`
/// samples in `elapsed`. O(1) work here (the query text moved in, seven header values cloned);
/// a no-op until the service runs or when it is disabled.
#[allow(clippy::too_many_arguments)]
pub fn record_query(
    slot: &UsageSlot,
    kind: ReadKind,
    query: String,
    start_ms: i64,
    end_ms: i64,
    lookback_ms: i64,
    headers: &HeaderMap,
    series: u64,
    samples: u64,
    elapsed: Duration,
) {
    if slot.get().is_none() {
        return;
    }
    record_in_background(
        slot,
        PendingCall {
            kind,
            input: OwnedInput::Query(query),
            mint_ms: start_ms.saturating_sub(lookback_ms),
            maxt_ms: end_ms,
            t_ms: now_ms(),
            caller: RawCaller::from_headers(headers),
            stats: CallStats { series, samples, duration_us: elapsed.as_micros().min(u64::MAX as u128) as u64 },
        },
    );
}

/// The series / labels / label-values handlers' hook: records a call with `match[]` sets
/// (empty: none given, which reads no metric) over `[start_ms, end_ms]` that returned
/// `series` series (0 for label calls: the worker counts the series their sets select). A
/// no-op until the service runs.
#[allow(clippy::too_many_arguments)]
pub fn record_match(
    slot: &UsageSlot,
    kind: ReadKind,
    sets: &[Vec<Matcher>],
    start_ms: i64,
    end_ms: i64,
    headers: &HeaderMap,
    series: u64,
    elapsed: Duration,
) {
    if slot.get().is_none() || sets.is_empty() {
        return;
    }
    record_in_background(
        slot,
        PendingCall {
            kind,
            input: OwnedInput::Matchers(sets.to_vec()),
            mint_ms: start_ms,
            maxt_ms: end_ms,
            t_ms: now_ms(),
            caller: RawCaller::from_headers(headers),
            stats: CallStats { series, samples: 0, duration_us: elapsed.as_micros().min(u64::MAX as u128) as u64 },
        },
    );
}

fn service(slot: &UsageSlot) -> Result<Arc<UsageService>, ServerError> {
    slot.get().cloned().ok_or_else(|| ServerError::Unavailable("usage analytics are not ready: storage is opening".into()))
}

fn csv_response(body: String) -> Response {
    let mut r = body.into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8"));
    r
}

fn wants_csv(p: &HashMap<String, String>) -> Result<bool, ServerError> {
    match p.get("format").map(String::as_str) {
        None | Some("") | Some("json") => Ok(false),
        Some("csv") => Ok(true),
        Some(f) => Err(ServerError::BadData(format!("invalid format {f:?}: want json or csv"))),
    }
}

fn usize_param(p: &HashMap<String, String>, name: &str) -> Result<usize, ServerError> {
    match p.get(name).map(String::as_str) {
        None | Some("") => Ok(0),
        Some(v) => v.parse().map_err(|_| ServerError::BadData(format!("invalid {name} {v:?}: want a non-negative integer"))),
    }
}

/// The report computed on the blocking pool (a first report over big blocks reads their index).
async fn rows_for(svc: Arc<UsageService>, window_ms: i64) -> Result<Vec<MetricUsageRow>, ServerError> {
    tokio::task::spawn_blocking(move || svc.rows(window_ms, now_ms()))
        .await
        .map_err(|e| ServerError::Internal(format!("usage report task failed: {e}")))?
        .map_err(ServerError::from)
}

#[derive(serde::Serialize)]
struct UsageData<'a> {
    window: &'a str,
    total: usize,
    metrics: &'a [MetricUsageRow],
}

/// `GET /api/v1/status/metric_usage`.
pub async fn metric_usage(State(slot): State<UsageSlot>, Query(p): Query<HashMap<String, String>>) -> Result<Response, ApiFailure> {
    let svc = service(&slot)?;
    let window = p.get("window").filter(|w| !w.is_empty()).cloned().unwrap_or_else(|| "30d".into());
    let window_ms = parse_window(&window).map_err(ServerError::from)?;
    let sort = match p.get("sort").map(String::as_str) {
        None | Some("") => SortKey::Series,
        Some(s) => SortKey::parse(s).ok_or_else(|| ServerError::BadData(format!("invalid sort {s:?}: want series, bytes, queries, name or last_queried")))?,
    };
    let desc = match p.get("order").map(String::as_str) {
        None | Some("") => sort != SortKey::Name,
        Some("desc") => true,
        Some("asc") => false,
        Some(o) => return Err(ServerError::BadData(format!("invalid order {o:?}: want asc or desc")).into()),
    };
    let (limit, offset) = (usize_param(&p, "limit")?, usize_param(&p, "offset")?);
    let csv = wants_csv(&p)?;
    let mut rows = rows_for(svc, window_ms).await?;
    report::sort_rows(&mut rows, sort, desc);
    let total = rows.len();
    let end = if limit == 0 { total } else { offset.saturating_add(limit).min(total) };
    let page = &rows[offset.min(total)..end];
    if csv {
        return Ok(csv_response(report::to_csv(page)));
    }
    Ok(success_serde(&UsageData { window: &window, total, metrics: page }, &Annotations::default()))
}

/// `GET /api/v1/status/unused_metrics`.
pub async fn unused_metrics(State(slot): State<UsageSlot>, Query(p): Query<HashMap<String, String>>) -> Result<Response, ApiFailure> {
    let svc = service(&slot)?;
    let window = p.get("window").filter(|w| !w.is_empty()).cloned().unwrap_or_else(|| "30d".into());
    let window_ms = parse_window(&window).map_err(ServerError::from)?;
    let csv = wants_csv(&p)?;
    let rows = rows_for(svc, window_ms).await?;
    let rep: UnusedReport = report::unused_report(&window, &rows);
    if csv {
        return Ok(csv_response(report::to_csv(&rep.unused)));
    }
    Ok(success_serde(&rep, &Annotations::default()))
}
