//! The engine: parses a query, evaluates it over a [`SampleSource`] and shapes the result
//! (Prometheus `promql/engine.go`, `Engine.exec`).
//!
//! Instant queries are evaluated as a one-step range (`start == end`, interval 1 ms), which
//! keeps the order a function produced (`sort`, `topk`). Range queries return series sorted by
//! labels. Delayed `__name__` removal happens last; two series that end up with the same label
//! set are then an error.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use promql_parser::parser::value::ValueType as PType;
use promql_parser::parser::Expr;
use storage::{Querier, METRIC_NAME};

use crate::error::{QueryError, Result};
use crate::eval::{EvalCtx, EvalValue, Evaluator};
use crate::source::{QuerierSource, SampleSource};
use crate::value::{Matrix, QueryResult, Sample, Value};

/// Engine settings. Defaults are Prometheus' (`--query.lookback-delta=5m`,
/// `--query.timeout=2m`, `--query.max-samples=50000000`, subquery default step 1m).
#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// How far back an instant vector selector looks for a sample, ms. Default 300 000.
    pub lookback_delta_ms: i64,
    /// Wall-clock limit of one query; `None` for no limit. Default 2 minutes.
    pub timeout: Option<Duration>,
    /// Most samples one query may hold in memory at once. Default 50 000 000.
    pub max_samples: usize,
    /// Step of a subquery written without one (`[5m:]`), ms. Default 60 000.
    pub no_step_subquery_interval_ms: i64,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            lookback_delta_ms: 5 * 60 * 1000,
            timeout: Some(Duration::from_secs(120)),
            max_samples: 50_000_000,
            no_step_subquery_interval_ms: 60_000,
        }
    }
}

/// A PromQL engine. Cheap to share; holds no per-query state.
#[derive(Clone, Debug, Default)]
pub struct Engine {
    opts: EngineOptions,
}

impl Engine {
    /// An engine with `opts`.
    pub fn new(opts: EngineOptions) -> Engine {
        Engine { opts }
    }

    /// The settings.
    pub fn options(&self) -> &EngineOptions {
        &self.opts
    }

    /// Evaluates `query` at `t_ms` against a storage querier.
    ///
    /// # Errors
    /// [`QueryError::BadData`] if the query does not parse; [`QueryError::Execution`],
    /// [`QueryError::Timeout`], [`QueryError::TooManySamples`], [`QueryError::Storage`] or
    /// [`QueryError::Internal`] from evaluation.
    pub fn instant_query(&self, querier: &dyn Querier, query: &str, t_ms: i64) -> Result<QueryResult> {
        self.instant_query_source(&QuerierSource(querier), query, t_ms, None)
    }

    /// Evaluates `query` at every step `start_ms, start_ms + step_ms, ... <= end_ms`.
    ///
    /// # Errors
    /// As [`Engine::instant_query`]; also `BadData` if `end_ms < start_ms`, `step_ms <= 0`,
    /// or the query is not of scalar or instant-vector type.
    pub fn range_query(&self, querier: &dyn Querier, query: &str, start_ms: i64, end_ms: i64, step_ms: i64) -> Result<QueryResult> {
        self.range_query_source(&QuerierSource(querier), query, start_ms, end_ms, step_ms, None)
    }

    /// [`Engine::instant_query`] over any [`SampleSource`], with an optional cancel flag that
    /// the evaluation polls.
    ///
    /// # Errors
    /// As [`Engine::instant_query`], plus [`QueryError::Canceled`].
    pub fn instant_query_source(&self, src: &dyn SampleSource, query: &str, t_ms: i64, cancel: Option<&AtomicBool>) -> Result<QueryResult> {
        let expr = parse_with(query, 0, 0)?;
        self.exec(src, query, &expr, t_ms, t_ms, 1, true, cancel)
    }

    /// Evaluates an already parsed expression at `t_ms`; `query` is its text (annotation
    /// positions are located in it).
    ///
    /// # Errors
    /// As [`Engine::instant_query_source`].
    pub fn instant_query_expr(
        &self,
        src: &dyn SampleSource,
        expr: &Expr,
        query: &str,
        t_ms: i64,
        cancel: Option<&AtomicBool>,
    ) -> Result<QueryResult> {
        self.exec(src, query, expr, t_ms, t_ms, 1, true, cancel)
    }

    /// Evaluates an already parsed expression as a range query; `query` is its text.
    ///
    /// # Errors
    /// As [`Engine::range_query_source`].
    #[allow(clippy::too_many_arguments)]
    pub fn range_query_expr(
        &self,
        src: &dyn SampleSource,
        expr: &Expr,
        query: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
        cancel: Option<&AtomicBool>,
    ) -> Result<QueryResult> {
        if end_ms < start_ms || step_ms <= 0 {
            return Err(QueryError::BadData("invalid range query bounds".into()));
        }
        match expr.value_type() {
            PType::Scalar | PType::Vector => {}
            t => {
                return Err(QueryError::BadData(format!(
                    "invalid expression type {:?} for range query, must be Scalar or instant Vector",
                    type_word(t)
                )))
            }
        }
        self.exec(src, query, expr, start_ms, end_ms, step_ms, false, cancel)
    }

    /// [`Engine::range_query`] over any [`SampleSource`].
    ///
    /// # Errors
    /// As [`Engine::range_query`], plus [`QueryError::Canceled`].
    pub fn range_query_source(
        &self,
        src: &dyn SampleSource,
        query: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
        cancel: Option<&AtomicBool>,
    ) -> Result<QueryResult> {
        if end_ms < start_ms {
            return Err(QueryError::BadData("end timestamp must not be before start time".into()));
        }
        if step_ms <= 0 {
            return Err(QueryError::BadData(
                "zero or negative query resolution step widths are not accepted. Try a positive integer".into(),
            ));
        }
        let expr = parse_with(query, step_ms, end_ms - start_ms)?;
        match expr.value_type() {
            PType::Scalar | PType::Vector => {}
            t => {
                return Err(QueryError::BadData(format!(
                    "invalid expression type {:?} for range query, must be Scalar or instant Vector",
                    type_word(t)
                )))
            }
        }
        self.exec(src, query, &expr, start_ms, end_ms, step_ms, false, cancel)
    }

    #[allow(clippy::too_many_arguments)]
    fn exec(
        &self,
        src: &dyn SampleSource,
        query: &str,
        expr: &Expr,
        start: i64,
        end: i64,
        step: i64,
        instant: bool,
        cancel: Option<&AtomicBool>,
    ) -> Result<QueryResult> {
        let ctx = EvalCtx {
            src,
            query,
            lookback_ms: self.opts.lookback_delta_ms,
            no_step_subquery_interval_ms: self.opts.no_step_subquery_interval_ms,
            max_samples: self.opts.max_samples,
            deadline: self.opts.timeout.map(|d| Instant::now() + d),
            cancel,
            query_start_ms: start,
            query_end_ms: end,
            query_step_ms: step,
        };
        let run = || -> Result<QueryResult> {
            let mut ev = Evaluator::new(&ctx, start, end, step);
            let v = ev.eval(expr)?;
            let value = match v {
                EvalValue::String(s) => Value::String(start, s),
                EvalValue::Matrix(m) => shape(m, expr.value_type(), instant, start)?,
            };
            Ok(QueryResult { value, annotations: ev.annos, total_samples: ev.total_samples, total_series: ev.total_series })
        };
        match catch_unwind(AssertUnwindSafe(run)) {
            Ok(r) => r,
            Err(p) => {
                let msg = p
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| p.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "panic".into());
                Err(QueryError::Internal(msg))
            }
        }
    }
}

/// Parses a query with promql-parser, mapping errors to `bad_data`.
///
/// # Errors
/// [`QueryError::BadData`] with the parser's message.
pub fn parse(query: &str) -> Result<Expr> {
    parse_with(query, 0, 0)
}

/// [`parse`] with the step and range that `step()` and `range()` in duration expressions
/// stand for, ms.
///
/// # Errors
/// [`QueryError::BadData`] with the parser's message.
pub fn parse_with(query: &str, step_ms: i64, range_ms: i64) -> Result<Expr> {
    crate::preprocess::parse(query, step_ms, range_ms).map_err(|e| QueryError::BadData(format!("parse error: {e}")))
}

fn type_word(t: PType) -> &'static str {
    match t {
        PType::Vector => "instant vector",
        PType::Scalar => "scalar",
        PType::Matrix => "range vector",
        PType::String => "string",
    }
}

/// Applies delayed name removal, checks for duplicate label sets, and shapes the value.
fn shape(mut m: Matrix, t: PType, instant: bool, ts: i64) -> Result<Value> {
    for s in m.iter_mut() {
        if s.drop_name {
            s.metric = s.metric.retain(|n| n != METRIC_NAME && n != "__type__" && n != "__unit__");
            s.drop_name = false;
        }
    }
    if t != PType::Scalar {
        let mut seen = std::collections::HashSet::with_capacity(m.len());
        let mut dup = false;
        for s in &m {
            if !seen.insert(&s.metric) {
                dup = true;
                break;
            }
        }
        if dup {
            if instant {
                return Err(QueryError::Execution("vector cannot contain metrics with the same labelset".into()));
            }
            m = merge_same_labels(m)?;
        }
    }
    if instant {
        return Ok(match t {
            PType::Scalar => Value::Scalar(ts, m.first().and_then(|s| s.floats.first()).map_or(f64::NAN, |p| p.f)),
            PType::Matrix => {
                let mut m = m;
                m.sort_by(|a, b| a.metric.cmp(&b.metric));
                Value::Matrix(m)
            }
            _ => Value::Vector(
                m.into_iter()
                    .map(|s| {
                        let (f, h) = match s.histograms.into_iter().next() {
                            Some(hp) => (0.0, Some(hp.h)),
                            None => (s.floats.first().map_or(f64::NAN, |p| p.f), None),
                        };
                        Sample { metric: s.metric, t: ts, f, h, drop_name: false }
                    })
                    .collect(),
            ),
        });
    }
    m.retain(|s| !s.is_empty());
    m.sort_by(|a, b| a.metric.cmp(&b.metric));
    Ok(Value::Matrix(m))
}


/// Range results: series that share a label set after name removal are merged if they never
/// have a point at the same step; otherwise it is an error (as Prometheus does).
fn merge_same_labels(m: Matrix) -> Result<Matrix> {
    let dup = || QueryError::Execution("vector cannot contain metrics with the same labelset".into());
    let mut out: Matrix = Vec::with_capacity(m.len());
    let mut idx: std::collections::HashMap<storage::Labels, usize> = std::collections::HashMap::new();
    for s in m {
        match idx.get(&s.metric) {
            None => {
                idx.insert(s.metric.clone(), out.len());
                out.push(s);
            }
            Some(&i) => {
                let o = &mut out[i];
                let taken: std::collections::HashSet<i64> =
                    o.floats.iter().map(|p| p.t).chain(o.histograms.iter().map(|p| p.t)).collect();
                if s.floats.iter().map(|p| p.t).chain(s.histograms.iter().map(|p| p.t)).any(|t| taken.contains(&t)) {
                    return Err(dup());
                }
                o.floats.extend(s.floats);
                o.floats.sort_by_key(|p| p.t);
                o.histograms.extend(s.histograms);
                o.histograms.sort_by_key(|p| p.t);
            }
        }
    }
    Ok(out)
}
