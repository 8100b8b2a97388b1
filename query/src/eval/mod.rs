//! The evaluator: walks a parsed expression over the steps of a query.
//!
//! Every vector- or scalar-typed node evaluates to a [`Matrix`] holding one point per step at
//! which it has a value (Prometheus `promql/engine.go`, `evaluator.eval`): scalars are one series
//! without labels, instant vectors one series per label set. Operators and instant-vector
//! functions go through [`Evaluator::range_eval`], which slices its argument matrices into one
//! [`Vector`] per step, applies the operation and reassembles the outputs by label set.
//! Functions over range vectors (matrix selectors and subqueries) go through
//! [`selector::RangeInput`], which slides the window `(t - range, t]` over each series' columns.
//!
//! Concerns live in submodules: [`selector`] (vector/matrix selectors, offsets, `@`),
//! [`subquery`], [`binary`] (operators and vector matching), [`aggregate`], [`functions`]
//! (instant-vector functions), [`range_fns`] (the `*_over_time`, rate family), [`hist_fns`]
//! (histogram functions).

pub(crate) mod agg_steps;
pub(crate) mod aggregate;
pub(crate) mod binary;
pub(crate) mod functions;
pub(crate) mod hints;
pub(crate) mod hist_fns;
pub(crate) mod info;
pub(crate) mod lazy;
pub(crate) mod range_fns;
pub(crate) mod rate;
pub(crate) mod selector;
pub(crate) mod start_ts;
pub(crate) mod subquery;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use promql_parser::parser::{AtModifier, Expr, Offset};
use promql_parser::parser::value::ValueType as PType;
use storage::{FloatHistogram, Labels};

use crate::error::{QueryError, Result};
use crate::source::SampleSource;
use crate::value::{Annotations, FPoint, HPoint, Matrix, Sample, Series, Vector};

/// The value of a node: a matrix over the steps, or a string.
pub(crate) enum EvalValue {
    Matrix(Matrix),
    String(String),
}

/// Settings shared by the evaluators of one query.
pub(crate) struct EvalCtx<'a> {
    pub src: &'a dyn SampleSource,
    pub query: &'a str,
    pub lookback_ms: i64,
    pub no_step_subquery_interval_ms: i64,
    pub max_samples: usize,
    pub deadline: Option<Instant>,
    pub cancel: Option<&'a AtomicBool>,
    /// Start and end of the whole query, for `@ start()` / `@ end()`.
    pub query_start_ms: i64,
    pub query_end_ms: i64,
    /// Step of the whole query, ms (1 for instant queries).
    pub query_step_ms: i64,
}

/// One evaluation over `[start, end]` with `interval` between steps.
pub(crate) struct Evaluator<'a> {
    pub ctx: &'a EvalCtx<'a>,
    pub start: i64,
    pub end: i64,
    pub interval: i64,
    pub cur_samples: usize,
    pub total_samples: u64,
    /// Series selected from storage so far, over all selectors (see `QueryResult::total_series`).
    pub total_series: u64,
    pub annos: Annotations,
    /// A grouping hint waiting for its selector ([`hints::PendingHint`]), set by an
    /// aggregation just before it evaluates its argument.
    pub pending_hint: Option<hints::PendingHint>,
}

impl<'a> Evaluator<'a> {
    pub fn new(ctx: &'a EvalCtx<'a>, start: i64, end: i64, interval: i64) -> Self {
        Evaluator {
            ctx,
            start,
            end,
            interval,
            cur_samples: 0,
            total_samples: 0,
            total_series: 0,
            annos: Annotations::default(),
            pending_hint: None,
        }
    }

    /// Number of steps.
    pub fn steps(&self) -> usize {
        ((self.end - self.start) / self.interval + 1).max(0) as usize
    }

    /// Timestamp of step `i`.
    #[inline]
    pub fn ts(&self, i: usize) -> i64 {
        self.start + i as i64 * self.interval
    }

    /// Cooperative timeout and cancellation check.
    pub fn check(&self, site: &'static str) -> Result<()> {
        if let Some(c) = self.ctx.cancel {
            if c.load(Ordering::Relaxed) {
                return Err(QueryError::Canceled(site));
            }
        }
        if let Some(d) = self.ctx.deadline {
            if Instant::now() > d {
                return Err(QueryError::Timeout(site));
            }
        }
        Ok(())
    }

    /// Accounts `n` more samples held in memory.
    pub fn add_samples(&mut self, n: usize) -> Result<()> {
        self.cur_samples += n;
        self.total_samples += n as u64;
        if self.cur_samples > self.ctx.max_samples {
            return Err(QueryError::TooManySamples("query execution"));
        }
        Ok(())
    }

    /// Releases `n` samples.
    pub fn sub_samples(&mut self, n: usize) {
        self.cur_samples = self.cur_samples.saturating_sub(n);
    }

    /// `(line:col)` of the first occurrence of `needle` in the query, as Prometheus appends to
    /// annotations (it points at the node that raised them; we locate the node's text).
    pub fn pos(&self, needle: &str) -> String {
        let q = self.ctx.query;
        let idx = q.find(needle).unwrap_or(0);
        let line = q[..idx].matches('\n').count() + 1;
        let col = idx - q[..idx].rfind('\n').map_or(0, |p| p + 1) + 1;
        format!(" ({line}:{col})")
    }

    /// `(line:col)` of the first argument of the call or aggregation `name(`.
    pub fn pos_param(&self, name: &str) -> String {
        let q = self.ctx.query;
        let pat = format!("{name}(");
        let Some(i) = q.find(&pat) else { return self.pos(name) };
        let rest = &q[i + pat.len()..];
        let skip = rest.len() - rest.trim_start().len();
        let idx = i + pat.len() + skip;
        let line = q[..idx].matches('\n').count() + 1;
        let col = idx - q[..idx].rfind('\n').map_or(0, |p| p + 1) + 1;
        format!(" ({line}:{col})")
    }

    /// `(line:col)` of argument `idx` of the call `name(`, found by scanning the text for
    /// top-level commas.
    pub fn pos_arg(&self, name: &str, idx: usize) -> String {
        let q = self.ctx.query;
        let pat = format!("{name}(");
        let Some(i) = q.find(&pat) else { return self.pos(name) };
        let mut depth = 0i32;
        let mut n = 0;
        let start = i + pat.len();
        let mut arg_start = start;
        let bytes = q.as_bytes();
        let mut in_str: Option<u8> = None;
        for (k, &c) in bytes.iter().enumerate().skip(start) {
            if let Some(qc) = in_str {
                if c == qc {
                    in_str = None;
                }
                continue;
            }
            match c {
                b'"' | b'\'' | b'`' => in_str = Some(c),
                b'(' | b'[' | b'{' => depth += 1,
                b')' | b']' | b'}' => {
                    if depth == 0 {
                        break;
                    }
                    depth -= 1;
                }
                b',' if depth == 0 => {
                    if n == idx {
                        break;
                    }
                    n += 1;
                    arg_start = k + 1;
                }
                _ => {}
            }
        }
        let rest = &q[arg_start..];
        let idx = arg_start + (rest.len() - rest.trim_start().len());
        let line = q[..idx].matches('\n').count() + 1;
        let col = idx - q[..idx].rfind('\n').map_or(0, |p| p + 1) + 1;
        format!(" ({line}:{col})")
    }

    pub fn warn_arg(&mut self, text: String, name: &str, idx: usize) {
        let p = self.pos_arg(name, idx);
        self.annos.warn(format!("PromQL warning: {text}{p}"));
    }

    pub fn info_arg(&mut self, text: String, name: &str, idx: usize) {
        let p = self.pos_arg(name, idx);
        self.annos.info(format!("PromQL info: {text}{p}"));
    }

    pub fn warn_param(&mut self, text: String, name: &str) {
        let p = self.pos_param(name);
        self.annos.warn(format!("PromQL warning: {text}{p}"));
    }

    pub fn warn(&mut self, text: String, at: &str) {
        let p = self.pos(at);
        self.annos.warn(format!("PromQL warning: {text}{p}"));
    }

    pub fn info(&mut self, text: String, at: &str) {
        let p = self.pos(at);
        self.annos.info(format!("PromQL info: {text}{p}"));
    }

    /// Evaluates a node.
    pub fn eval(&mut self, e: &Expr) -> Result<EvalValue> {
        self.check("expression evaluation")?;
        match e {
            Expr::Paren(p) => self.eval(&p.expr),
            Expr::NumberLiteral(n) => Ok(EvalValue::Matrix(self.scalar_matrix(|_| n.val))),
            Expr::StringLiteral(s) => Ok(EvalValue::String(s.val.clone())),
            Expr::Unary(u) => {
                let v = self.eval_matrix(&u.expr)?;
                let mut m = v;
                for s in m.iter_mut() {
                    for p in s.floats.iter_mut() {
                        p.f = -p.f;
                    }
                    for p in s.histograms.iter_mut() {
                        let mut h = crate::histogram::scale(&p.h, -1.0);
                        h.counter_reset_hint = storage::histogram::CounterResetHint::Gauge;
                        p.h = std::sync::Arc::new(h);
                    }
                    if !s.metric.is_empty() {
                        s.drop_name = true;
                    }
                }
                Ok(EvalValue::Matrix(m))
            }
            Expr::VectorSelector(vs) => Ok(EvalValue::Matrix(self.eval_vector_selector(vs)?)),
            Expr::MatrixSelector(ms) => Ok(EvalValue::Matrix(self.eval_matrix_selector_raw(ms)?)),
            Expr::Subquery(sq) => Ok(EvalValue::Matrix(self.eval_subquery_raw(sq)?)),
            Expr::Binary(b) => Ok(EvalValue::Matrix(self.eval_binary(b)?)),
            Expr::Aggregate(a) => Ok(EvalValue::Matrix(self.eval_aggregate(a)?)),
            Expr::Call(c) => self.eval_call(c),
            Expr::Extension(_) => Err(QueryError::BadData("extension expressions are not supported".into())),
        }
    }

    /// Evaluates a node that must yield a matrix.
    pub fn eval_matrix(&mut self, e: &Expr) -> Result<Matrix> {
        match self.eval(e)? {
            EvalValue::Matrix(m) => Ok(m),
            EvalValue::String(_) => Err(QueryError::Execution("unexpected string value".into())),
        }
    }

    /// A scalar as a matrix: one label-less series with a point at every step.
    pub fn scalar_matrix(&self, f: impl Fn(i64) -> f64) -> Matrix {
        let n = self.steps();
        let mut floats = Vec::with_capacity(n);
        for i in 0..n {
            let t = self.ts(i);
            floats.push(FPoint { t, f: f(t) });
        }
        vec![Series { metric: Labels::empty(), floats, histograms: Vec::new(), drop_name: false }]
    }

    /// Evaluates a scalar-typed node to one value per step.
    pub fn eval_scalar_steps(&mut self, e: &Expr) -> Result<Vec<f64>> {
        let m = self.eval_matrix(e)?;
        let n = self.steps();
        let mut out = vec![f64::NAN; n];
        if let Some(s) = m.first() {
            for p in &s.floats {
                let i = ((p.t - self.start) / self.interval) as usize;
                if i < n {
                    out[i] = p.f;
                }
            }
        }
        Ok(out)
    }

    /// Applies `f` step by step to the values of `args` (Prometheus `rangeEval`). Scalar-typed
    /// arguments arrive as one-sample vectors; string arguments are skipped (the caller reads
    /// them from the AST). Output samples are gathered into series by label set.
    pub fn range_eval(
        &mut self,
        args: &[&Expr],
        mut f: impl FnMut(&mut Self, &mut [Vector], i64) -> Result<Vector>,
    ) -> Result<Matrix> {
        let mut mats: Vec<Option<Matrix>> = Vec::with_capacity(args.len());
        let mut input_points = 0usize;
        for a in args {
            if a.value_type() == PType::String {
                mats.push(None);
                continue;
            }
            let m = self.eval_matrix(a)?;
            input_points += m.iter().map(|s| s.len()).sum::<usize>();
            mats.push(Some(m));
        }
        let mut cursors: Vec<Vec<(usize, usize)>> =
            mats.iter().map(|m| m.as_ref().map_or(Vec::new(), |m| vec![(0, 0); m.len()])).collect();
        let mut vectors: Vec<Vector> = vec![Vec::new(); args.len()];
        let steps = self.steps();
        let mut out: Matrix = Vec::new();
        // Output series by label set, and the time of each one's last point. A step's outputs
        // usually come in the previous step's order: output `k` is first compared with the
        // series the previous step's output `k` went to, and hashed only when that differs.
        let mut index: HashMap<Labels, usize> = HashMap::new();
        let mut last_ts: Vec<i64> = Vec::new();
        let mut prev_slots: Vec<usize> = Vec::new();
        let mut slots: Vec<usize> = Vec::new();
        for si in 0..steps {
            if si % 256 == 0 {
                self.check("range evaluation")?;
            }
            let ts = self.ts(si);
            for (ai, m) in mats.iter().enumerate() {
                let v = &mut vectors[ai];
                v.clear();
                let Some(m) = m else { continue };
                for (sidx, s) in m.iter().enumerate() {
                    let cur = &mut cursors[ai][sidx];
                    while cur.0 < s.floats.len() && s.floats[cur.0].t < ts {
                        cur.0 += 1;
                    }
                    while cur.1 < s.histograms.len() && s.histograms[cur.1].t < ts {
                        cur.1 += 1;
                    }
                    if cur.0 < s.floats.len() && s.floats[cur.0].t == ts {
                        v.push(Sample {
                            metric: s.metric.clone(),
                            t: ts,
                            f: s.floats[cur.0].f,
                            h: None,
                            drop_name: s.drop_name,
                        });
                    } else if cur.1 < s.histograms.len() && s.histograms[cur.1].t == ts {
                        v.push(Sample {
                            metric: s.metric.clone(),
                            t: ts,
                            f: 0.0,
                            h: Some(s.histograms[cur.1].h.clone()),
                            drop_name: s.drop_name,
                        });
                    }
                }
            }
            let result = f(self, &mut vectors, ts)?;
            self.add_samples(result.len())?;
            if steps == 1 {
                // An instant evaluation keeps the function's order (sort, topk...).
                self.sub_samples(input_points);
                return Ok(result
                    .into_iter()
                    .map(|s| {
                        let mut ser = Series { metric: s.metric, drop_name: s.drop_name, ..Default::default() };
                        match s.h {
                            Some(h) => ser.histograms.push(HPoint { t: ts, h }),
                            None => ser.floats.push(FPoint { t: ts, f: s.f }),
                        }
                        ser
                    })
                    .collect());
            }
            slots.clear();
            for (k, s) in result.into_iter().enumerate() {
                let guess = prev_slots.get(k).copied().filter(|&g| out[g].metric == s.metric);
                let slot = match guess.or_else(|| index.get(&s.metric).copied()) {
                    Some(slot) => {
                        if last_ts[slot] == ts {
                            return Err(QueryError::Execution(
                                "vector cannot contain metrics with the same labelset".into(),
                            ));
                        }
                        slot
                    }
                    None => {
                        index.insert(s.metric.clone(), out.len());
                        out.push(Series { metric: s.metric, drop_name: s.drop_name, ..Default::default() });
                        last_ts.push(ts);
                        out.len() - 1
                    }
                };
                last_ts[slot] = ts;
                slots.push(slot);
                let ser = &mut out[slot];
                match s.h {
                    Some(h) => ser.histograms.push(HPoint { t: ts, h }),
                    None => ser.floats.push(FPoint { t: ts, f: s.f }),
                }
            }
            std::mem::swap(&mut prev_slots, &mut slots);
        }
        self.sub_samples(input_points);
        Ok(out)
    }

    /// An element-wise function over every step: `args[0]` is the instant vector, the other
    /// arguments are scalars (per step: the first point of the argument at that step, `None`
    /// where it has none, as `vs[k].first()` in [`Evaluator::range_eval`]).
    ///
    /// Same results, errors, annotations and sample accounting as `range_eval` over a closure
    /// that maps each sample of `vs[0]` on its own, but each input series' output labels and
    /// `drop_name` (`relabel`: `None` keeps the input's labels) are computed once per series
    /// and looked up by series index per step; label sets are cloned once per output series.
    /// `f(ev, ts, params, value, histogram)` gives a sample's output value, `None` to drop it.
    pub fn range_map(
        &mut self,
        args: &[&Expr],
        relabel: impl Fn(&Series) -> (Option<Labels>, bool),
        f: impl FnMut(&mut Self, i64, &[Option<f64>], f64, Option<&Arc<FloatHistogram>>) -> Option<(f64, Option<Arc<FloatHistogram>>)>,
    ) -> Result<Matrix> {
        self.range_map_at(args, 0, relabel, f)
    }

    /// [`Evaluator::range_map`] with the instant vector at `args[vector_arg]` (arguments are
    /// still evaluated in order; `params` holds the others, in order), e.g. a vector-scalar
    /// operator whose vector is on the right.
    pub fn range_map_at(
        &mut self,
        args: &[&Expr],
        vector_arg: usize,
        relabel: impl Fn(&Series) -> (Option<Labels>, bool),
        mut f: impl FnMut(&mut Self, i64, &[Option<f64>], f64, Option<&Arc<FloatHistogram>>) -> Option<(f64, Option<Arc<FloatHistogram>>)>,
    ) -> Result<Matrix> {
        let mut input: Matrix = Vec::new();
        let mut params_in: Vec<Matrix> = Vec::with_capacity(args.len().saturating_sub(1));
        let mut input_points = 0usize;
        for (ai, a) in args.iter().enumerate() {
            let m = if a.value_type() == PType::String { Vec::new() } else { self.eval_matrix(a)? };
            input_points += m.iter().map(|s| s.len()).sum::<usize>();
            if ai == vector_arg {
                input = m;
            } else {
                params_in.push(m);
            }
        }
        let input = &input;
        // Output identity of each input series, once per query.
        let mapped: Vec<(Option<Labels>, bool)> = input.iter().map(&relabel).collect();
        let out_labels = |i: usize| mapped[i].0.as_ref().unwrap_or(&input[i].metric);
        let mut keys: HashMap<&Labels, usize> = HashMap::with_capacity(input.len());
        let mut key_first: Vec<usize> = Vec::new();
        let key_of: Vec<usize> = (0..input.len())
            .map(|i| {
                *keys.entry(out_labels(i)).or_insert_with(|| {
                    key_first.push(i);
                    key_first.len() - 1
                })
            })
            .collect();
        drop(keys);
        let steps = self.steps();
        let mut cursors = vec![(0usize, 0usize); input.len()];
        let mut param_cursors: Vec<Vec<(usize, usize)>> = params_in.iter().map(|m| vec![(0, 0); m.len()]).collect();
        let mut params: Vec<Option<f64>> = vec![None; params_in.len()];
        // Output series index and the step (+1) of its last point, per output key.
        let mut slot: Vec<Option<(usize, usize)>> = vec![None; key_first.len()];
        let mut step_out: Vec<(usize, f64, Option<Arc<FloatHistogram>>)> = Vec::new();
        let mut out: Matrix = Vec::new();
        for si in 0..steps {
            if si % 256 == 0 {
                self.check("range evaluation")?;
            }
            let ts = self.ts(si);
            for (k, m) in params_in.iter().enumerate() {
                params[k] = None;
                for (sidx, s) in m.iter().enumerate() {
                    if let Some((v, _)) = point_at(s, &mut param_cursors[k][sidx], ts) {
                        if params[k].is_none() {
                            params[k] = Some(v);
                        }
                    }
                }
            }
            step_out.clear();
            for (sidx, s) in input.iter().enumerate() {
                let Some((v, h)) = point_at(s, &mut cursors[sidx], ts) else { continue };
                if let Some((v, h)) = f(self, ts, &params, v, h) {
                    step_out.push((sidx, v, h));
                }
            }
            self.add_samples(step_out.len())?;
            if steps == 1 {
                // An instant evaluation keeps every sample as its own series, in input order.
                self.sub_samples(input_points);
                return Ok(step_out
                    .drain(..)
                    .map(|(sidx, v, h)| one_point_series(out_labels(sidx).clone(), mapped[sidx].1, ts, v, h))
                    .collect());
            }
            for (sidx, v, h) in step_out.drain(..) {
                let key = key_of[sidx];
                let i = match slot[key] {
                    Some((_, last)) if last == si + 1 => {
                        return Err(QueryError::Execution("vector cannot contain metrics with the same labelset".into()));
                    }
                    Some((i, _)) => i,
                    None => {
                        out.push(Series { metric: out_labels(sidx).clone(), drop_name: mapped[sidx].1, ..Default::default() });
                        out.len() - 1
                    }
                };
                slot[key] = Some((i, si + 1));
                let ser = &mut out[i];
                match h {
                    Some(h) => ser.histograms.push(HPoint { t: ts, h }),
                    None => ser.floats.push(FPoint { t: ts, f: v }),
                }
            }
        }
        self.sub_samples(input_points);
        Ok(out)
    }

    /// The reference time of a selector at step `ts`: the `@` time if any, minus the offset.
    pub fn ref_time(&self, ts: i64, at: &Option<AtModifier>, offset: &Option<Offset>) -> i64 {
        let base = match at {
            None => ts,
            Some(a) => self.at_time(a),
        };
        base - offset_ms(offset)
    }

    /// Milliseconds of an `@` modifier.
    pub fn at_time(&self, a: &AtModifier) -> i64 {
        match a {
            AtModifier::Start => self.ctx.query_start_ms,
            AtModifier::End => self.ctx.query_end_ms,
            AtModifier::At(t) => system_time_ms(*t),
        }
    }
}

/// Milliseconds of an offset (negative for `offset -5m`).
pub(crate) fn offset_ms(o: &Option<Offset>) -> i64 {
    match o {
        None => 0,
        Some(Offset::Pos(d)) => d.as_millis() as i64,
        Some(Offset::Neg(d)) => -(d.as_millis() as i64),
    }
}

/// Milliseconds since the epoch of a `SystemTime`, negative before the epoch.
pub(crate) fn system_time_ms(t: std::time::SystemTime) -> i64 {
    match t.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => d.as_millis() as i64,
        Err(e) => -(e.duration().as_millis() as i64),
    }
}

/// A series' point at a range evaluation's step: a float value, or the index of a histogram
/// point in `Series::histograms`.
#[derive(Clone, Copy, Debug)]
pub(super) enum StepPoint {
    F(f64),
    H(usize),
}

/// Advances a series' `(float, histogram)` cursor to step time `ts` and returns its point
/// there, floats first (the inner result of a range evaluation has at most one point per
/// step). Shared by every step loop over an evaluated range (`range_eval`, aggregations,
/// binary operators).
#[inline]
pub(super) fn step_point(s: &Series, cur: &mut (usize, usize), ts: i64) -> Option<StepPoint> {
    while cur.0 < s.floats.len() && s.floats[cur.0].t < ts {
        cur.0 += 1;
    }
    while cur.1 < s.histograms.len() && s.histograms[cur.1].t < ts {
        cur.1 += 1;
    }
    if cur.0 < s.floats.len() && s.floats[cur.0].t == ts {
        Some(StepPoint::F(s.floats[cur.0].f))
    } else if cur.1 < s.histograms.len() && s.histograms[cur.1].t == ts {
        Some(StepPoint::H(cur.1))
    } else {
        None
    }
}

/// [`step_point`] as a value: a histogram's float value is 0.
#[inline]
pub(super) fn point_at<'a>(s: &'a Series, cur: &mut (usize, usize), ts: i64) -> Option<(f64, Option<&'a Arc<FloatHistogram>>)> {
    match step_point(s, cur, ts)? {
        StepPoint::F(f) => Some((f, None)),
        StepPoint::H(i) => Some((0.0, Some(&s.histograms[i].h))),
    }
}

/// A series holding one point.
fn one_point_series(metric: Labels, drop_name: bool, ts: i64, f: f64, h: Option<Arc<FloatHistogram>>) -> Series {
    let mut ser = Series { metric, drop_name, ..Default::default() };
    match h {
        Some(h) => ser.histograms.push(HPoint { t: ts, h }),
        None => ser.floats.push(FPoint { t: ts, f }),
    }
    ser
}
