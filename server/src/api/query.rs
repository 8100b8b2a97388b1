//! `/api/v1/query`, `/api/v1/query_range` and `/api/v1/format_query`.
//!
//! Evaluation runs on the blocking pool, at most `--query.max-concurrency` at once (later
//! queries wait for a permit, as in Prometheus' active query tracker). When the client goes
//! away, the handler future is dropped, and a guard sets the engine's cancel flag so the
//! evaluation stops at its next check. A query whose same shape last evaluated cheaply runs
//! on the request's task or thread instead, saving thread hand-offs (see [`query_cost`]); it
//! cannot be cancelled that way, which costs at most about as long as its last run.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{Request, State};
use axum::response::Response;
use query::source::QuerierSource;
use query::{Annotations, Engine, EngineOptions};
use storage::usage::ReadKind;

use super::json::{success, success_serde, write_query_data};
use super::query_cost::{self, Placement};
use super::read_params;
use crate::app::Shared;
use crate::error::{ApiFailure, ServerError};

/// Prometheus' cap on points per series of a range query (`web/api/v1/api.go`).
pub const MAX_POINTS_PER_SERIES: i64 = 11_000;

/// Last evaluation times of recent query shapes, which decide where a query runs (see
/// [`query_cost`]). Process-wide: a query's cost does not depend on the connection.
static COSTS: LazyLock<query_cost::CostTable> = LazyLock::new(query_cost::CostTable::default);

/// The process-wide cost table, for tests that steer where a query runs.
#[cfg(test)]
pub(crate) fn costs() -> &'static query_cost::CostTable {
    &COSTS
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// Sets the flag when dropped unless disarmed: a dropped handler cancels its evaluation.
struct CancelOnDrop(Arc<AtomicBool>, bool);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if self.1 {
            self.0.store(true, Ordering::Relaxed);
        }
    }
}

enum Kind {
    Instant { t_ms: i64 },
    Range { start_ms: i64, end_ms: i64, step_ms: i64 },
}

async fn evaluate(
    s: &Shared,
    query: String,
    kind: Kind,
    params: &super::params::Params,
    headers: &axum::http::HeaderMap,
) -> Result<Response, ServerError> {
    let started = std::time::Instant::now();
    let timeout = params.timeout(s.config.query.timeout)?;
    let lookback_delta_ms = match params.duration_ms("lookback_delta")? {
        Some(ms) if ms > 0 => ms,
        _ => s.config.query.lookback_delta.as_millis() as i64,
    };
    let engine = Engine::new(EngineOptions {
        lookback_delta_ms,
        timeout: Some(timeout),
        max_samples: s.config.query.max_samples,
        ..EngineOptions::default()
    });
    let backend = s.storage.backend()?;
    let _permit = s
        .queries
        .acquire()
        .await
        .map_err(|_| ServerError::Unavailable("query engine is shutting down".into()))?;
    s.metrics.queries_in_flight.inc();
    let cancel = Arc::new(AtomicBool::new(false));
    let mut guard = CancelOnDrop(cancel.clone(), true);
    let (read_kind, start_ms, end_ms, range_steps) = match kind {
        Kind::Instant { t_ms } => (ReadKind::InstantQuery, t_ms, t_ms, None),
        Kind::Range { start_ms, end_ms, step_ms } => {
            (ReadKind::RangeQuery, start_ms, end_ms, Some((end_ms - start_ms) / step_ms + 1))
        }
    };
    let query_text = query.clone();
    let work = move || -> Result<(String, Annotations, u64, u64), ServerError> {
        let querier = backend.querier()?;
        let src = QuerierSource(&*querier);
        let r = match kind {
            Kind::Instant { t_ms } => engine.instant_query_source(&src, &query, t_ms, Some(&cancel)),
            Kind::Range { start_ms, end_ms, step_ms } => {
                engine.range_query_source(&src, &query, start_ms, end_ms, step_ms, Some(&cancel))
            }
        }?;
        let mut out = String::with_capacity(256);
        write_query_data(&mut out, &r.value);
        Ok((out, r.annotations, r.total_series, r.total_samples))
    };
    let cost_key = query_cost::key(&COSTS, &query_text, range_steps);
    let eval_started = std::time::Instant::now();
    let placement = COSTS.placement(cost_key);
    if placement != Placement::Pool {
        COSTS.count_in_place();
    }
    // A panic outside the engine (which catches its own) fails this query alone, as a
    // panicking blocking task does.
    let task: Result<_, String> = match placement {
        Placement::Direct => {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)).map_err(|_| "panicked".to_string())
        }
        Placement::InPlace => {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| tokio::task::block_in_place(work)))
                .map_err(|_| "panicked".to_string())
        }
        Placement::Pool => tokio::task::spawn_blocking(work).await.map_err(|e| e.to_string()),
    };
    let took = eval_started.elapsed();
    guard.1 = false;
    s.metrics.queries_in_flight.dec();
    let (data, annotations, series, samples) = match task {
        Ok(Ok(r)) => {
            COSTS.record(cost_key, took, r.2);
            r
        }
        Ok(Err(e)) => {
            // Failures are remembered as expensive: a query that timed out or was cancelled
            // must keep its cancellation the next time.
            COSTS.record(cost_key, took.max(query_cost::INLINE_MAX * 2), u64::MAX);
            return Err(e);
        }
        Err(e) => return Err(ServerError::Internal(format!("query task failed: {e}"))),
    };
    crate::usage::http::record_query(
        &s.usage,
        read_kind,
        query_text,
        start_ms,
        end_ms,
        lookback_delta_ms,
        headers,
        series,
        samples,
        started.elapsed(),
    );
    Ok(success(&data, &annotations))
}

/// `GET|POST /api/v1/query?query=&time=&timeout=&lookback_delta=`.
pub async fn instant(State(s): State<Shared>, req: Request) -> Result<Response, ApiFailure> {
    let headers = req.headers().clone();
    let p = read_params(req).await?;
    let query = p.get("query").unwrap_or("").to_string();
    let t_ms = p.time_or("time", now_ms())?;
    Ok(evaluate(&s, query, Kind::Instant { t_ms }, &p, &headers).await?)
}

/// `GET|POST /api/v1/query_range?query=&start=&end=&step=&timeout=`.
pub async fn range(State(s): State<Shared>, req: Request) -> Result<Response, ApiFailure> {
    let headers = req.headers().clone();
    let p = read_params(req).await?;
    let query = p.get("query").unwrap_or("").to_string();
    let start_ms = required_time(&p, "start")?;
    let end_ms = required_time(&p, "end")?;
    if end_ms < start_ms {
        return Err(ServerError::BadData("end timestamp must not be before start time".into()).into());
    }
    let step_ms = match p.get("step") {
        None | Some("") => return Err(bad_param("step", "cannot parse \"\" to a valid duration").into()),
        Some(_) => p.duration_ms("step")?.unwrap_or(0),
    };
    if step_ms <= 0 {
        return Err(ServerError::BadData(
            "zero or negative query resolution step widths are not accepted. Try a positive integer".into(),
        )
        .into());
    }
    // Prometheus divides in whole seconds' float: (end - start) / step > 11000.
    if (end_ms - start_ms) / step_ms > MAX_POINTS_PER_SERIES {
        return Err(ServerError::BadData(
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)"
                .into(),
        )
        .into());
    }
    Ok(evaluate(&s, query, Kind::Range { start_ms, end_ms, step_ms }, &p, &headers).await?)
}

fn bad_param(name: &str, msg: &str) -> ServerError {
    ServerError::BadData(format!("invalid parameter {name:?}: {msg}"))
}

fn required_time(p: &super::params::Params, name: &str) -> Result<i64, ServerError> {
    match p.non_empty(name) {
        None => Err(bad_param(name, "cannot parse \"\" to a valid timestamp")),
        Some(_) => p.time_or(name, 0),
    }
}

/// `GET|POST /api/v1/format_query?query=`: the query pretty-printed by promql-parser.
pub async fn format(req: Request) -> Result<Response, ApiFailure> {
    let p = read_params(req).await?;
    let q = p.get("query").unwrap_or("");
    let expr = promql_parser::parser::parse(q)
        .map_err(|e| bad_param("query", &format!("parse error: {e}")))?;
    Ok(success_serde(&expr.prettify(), &Annotations::default()))
}

/// `GET|POST /api/v1/query_exemplars?query=&start=&end=`: exemplars of every selector of the
/// query, `[{"seriesLabels": {...}, "exemplars": [{"labels", "value", "timestamp"}]}]`.
pub async fn exemplars(State(s): State<Shared>, req: Request) -> Result<Response, ApiFailure> {
    let started = std::time::Instant::now();
    let headers = req.headers().clone();
    let p = read_params(req).await?;
    let sets = super::params::query_selectors(p.get("query").unwrap_or(""))?;
    let recorded_sets = sets.clone();
    let start = p.time_or("start", super::params::MIN_TIME_MS)?;
    let end = p.time_or("end", super::params::MAX_TIME_MS)?;
    if end < start {
        return Err(ServerError::BadData("end timestamp must not be before start timestamp".into()).into());
    }
    let backend = s.storage.backend()?;
    let found = tokio::task::spawn_blocking(move || backend.exemplars(&sets, start, end))
        .await
        .map_err(|e| ServerError::Internal(format!("storage task failed: {e}")))??;
    crate::usage::http::record_match(
        &s.usage,
        ReadKind::Exemplars,
        &recorded_sets,
        start,
        end,
        &headers,
        found.len() as u64,
        started.elapsed(),
    );
    let mut out = String::from("[");
    for (i, (labels, list)) in found.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"seriesLabels\":");
        super::json::write_labels(&mut out, labels);
        out.push_str(",\"exemplars\":[");
        for (j, e) in list.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            out.push_str("{\"labels\":");
            super::json::write_labels(&mut out, &e.labels);
            out.push_str(",\"value\":\"");
            out.push_str(&super::json::fmt_f64(e.value));
            out.push_str("\",\"timestamp\":");
            super::json::write_ts(&mut out, e.t_ms);
            out.push('}');
        }
        out.push_str("]}");
    }
    out.push(']');
    Ok(success(&out, &Annotations::default()))
}
