//! Vector and matrix selectors (Prometheus `engine.go`: `evalSeries`, `matrixIterSlice`).
//!
//! * Instant vector selector at step `t`: reference time `r = (@ or t) - offset`; the newest
//!   sample in `(r - lookback_delta, r]` wins; if it is a staleness marker the series has no
//!   value at `t`. The output point carries time `t`.
//! * Range vector window at step `t`: samples in the left-open `(r - range, r]`, staleness
//!   markers removed.
//!
//! Each selected series is read once into columns; steps then binary-search them, and range
//! functions see windows as slices of a per-series buffer (no allocation per step).

use promql_parser::label::{MatchOp as PMatchOp, Matchers};
use promql_parser::parser::{AtModifier, MatrixSelector, Offset, VectorSelector};
use rayon::prelude::*;
use storage::{is_stale_nan, Labels, MatchOp, Matcher, METRIC_NAME};

use super::{EvalCtx, Evaluator};
use crate::error::{QueryError, Result};
use super::lazy::Load;
use crate::source::{RawSeries, Selected};
use crate::value::{Annotations, FPoint, HPoint, Matrix, Series};

/// Converts the parser's matchers to storage matchers. `or` groups are returned as separate
/// selections whose results are unioned.
pub(crate) fn to_matchers(name: &Option<String>, ms: &Matchers) -> Result<Vec<Vec<Matcher>>> {
    let conv = |list: &[promql_parser::label::Matcher]| -> Result<Vec<Matcher>> {
        let mut out = Vec::with_capacity(list.len() + 1);
        if let Some(n) = name {
            out.push(Matcher::equal(METRIC_NAME, n.clone()));
        }
        for m in list {
            if m.name == crate::preprocess::MODIFIER_LABEL {
                continue;
            }
            let op = match m.op {
                PMatchOp::Equal => MatchOp::Equal,
                PMatchOp::NotEqual => MatchOp::NotEqual,
                PMatchOp::Re(_) => MatchOp::RegexMatch,
                PMatchOp::NotRe(_) => MatchOp::RegexNoMatch,
            };
            out.push(Matcher::new(op, m.name.clone(), m.value.clone()).map_err(|e| QueryError::BadData(e.to_string()))?);
        }
        Ok(out)
    };
    if ms.or_matchers.is_empty() {
        Ok(vec![conv(&ms.matchers)?])
    } else {
        ms.or_matchers.iter().map(|g| conv(g)).collect()
    }
}

/// The extended-range modifier of a selector (`anchored`, `smoothed`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RangeMod {
    None,
    Anchored,
    Smoothed,
}

/// Reads the modifier the pre-parse rewrite attached to a selector.
pub(crate) fn selector_mod(vs: &VectorSelector) -> RangeMod {
    for m in vs.matchers.matchers.iter().chain(vs.matchers.or_matchers.iter().flatten()) {
        if m.name == crate::preprocess::MODIFIER_LABEL {
            return match m.value.as_str() {
                "anchored" => RangeMod::Anchored,
                "smoothed" => RangeMod::Smoothed,
                // "info" marks an info() data-label selector, "hist_stats" a selector read for
                // histogram statistics; neither is a range modifier.
                crate::preprocess::HIST_STATS => continue,
                _ => RangeMod::None,
            };
        }
    }
    RangeMod::None
}

/// True if the pre-parse pass marked `vs` as read for histogram statistics only.
fn is_hist_stats(vs: &VectorSelector) -> bool {
    vs.matchers.matchers.iter().chain(vs.matchers.or_matchers.iter().flatten())
        .any(|m| m.name == crate::preprocess::MODIFIER_LABEL && m.value == crate::preprocess::HIST_STATS)
}

/// Prometheus' `HistogramStatsIterator`: a histogram whose stored hint is unknown gets
/// `CounterReset` or `NotCounterReset` by comparing it with the previous histogram read
/// (stale markers skipped); the first histogram read stays unknown.
pub(super) fn detect_stats_hints(hists: &mut [HPoint]) {
    use storage::histogram::CounterResetHint as H;
    let mut prev: Option<std::sync::Arc<storage::FloatHistogram>> = None;
    for p in hists.iter_mut() {
        if is_stale_nan(p.h.sum) {
            continue;
        }
        if p.h.counter_reset_hint == H::Unknown {
            if let Some(last) = &prev {
                let hint = if crate::histogram::detect_reset(&p.h, last) { H::CounterReset } else { H::NotCounterReset };
                std::sync::Arc::make_mut(&mut p.h).counter_reset_hint = hint;
            }
        }
        prev = Some(p.h.clone());
    }
}

/// Per-series points with staleness markers removed, as range windows see them.
pub(crate) struct RangeSeries {
    pub metric: storage::Labels,
    /// Delayed name removal carried from a subquery's inner result.
    pub drop_name: bool,
    pub floats: Vec<FPoint>,
    pub hists: Vec<HPoint>,
    /// Start timestamps of `floats` / `hists` (ms, 0 = none), each either empty (the series
    /// has none: subquery results, series stored without them) or aligned with its points.
    pub float_sts: Vec<i64>,
    pub hist_sts: Vec<i64>,
    /// The series still compressed (labels moved to `metric`): the point columns above are
    /// then empty and [`RangeSeries::loaded`] decodes it per [`RangeInput::load`].
    pub stored: Option<Selected>,
}

impl Default for RangeSeries {
    fn default() -> Self {
        RangeSeries {
            metric: Labels::empty(),
            drop_name: false,
            floats: Vec::new(),
            hists: Vec::new(),
            float_sts: Vec::new(),
            hist_sts: Vec::new(),
            stored: None,
        }
    }
}

impl RangeSeries {

    /// The window `(lo, hi]` as slices.
    #[inline]
    pub fn window(&self, lo: i64, hi: i64) -> (&[FPoint], &[HPoint]) {
        let fa = self.floats.partition_point(|p| p.t <= lo);
        let fb = self.floats.partition_point(|p| p.t <= hi);
        let ha = self.hists.partition_point(|p| p.t <= lo);
        let hb = self.hists.partition_point(|p| p.t <= hi);
        (&self.floats[fa..fb.max(fa)], &self.hists[ha..hb.max(ha)])
    }
}

/// The input of a function over a range vector: series plus how windows are placed.
pub(crate) struct RangeInput {
    pub series: Vec<RangeSeries>,
    /// How the series still compressed are decoded (unused when all are decoded).
    pub load: Load,
    pub range_ms: i64,
    pub at: Option<AtModifier>,
    pub offset: Option<Offset>,
    /// The metric name as written (for annotations), if the input is a plain selector.
    pub selector_name: Option<String>,
    /// `anchored` / `smoothed`: windows reach back (and for smoothed forward) by the
    /// lookback delta.
    pub modifier: RangeMod,
}

/// What a range function sees for one window.
pub(crate) struct Window<'w> {
    pub floats: &'w [FPoint],
    pub hists: &'w [HPoint],
    /// Start timestamps of `floats` / `hists` (ms, 0 = none): empty when the series has none,
    /// else aligned with the points (Prometheus' `EvalNodeHelper.StartTimestamps`).
    pub float_sts: &'w [i64],
    pub hist_sts: &'w [i64],
    /// The step time.
    pub ts: i64,
    /// The window's (exclusive) start and (inclusive) end, ms.
    pub range_start: i64,
    pub range_end: i64,
    pub range_ms: i64,
    pub metric: &'w storage::Labels,
    /// The series' metric name (`""` if none), looked up once per series.
    pub name: &'w str,
    pub modifier: RangeMod,
}

/// A function's value for one window.
pub(crate) enum Out {
    F(f64),
    H(std::sync::Arc<storage::FloatHistogram>),
}

impl Evaluator<'_> {
    /// Selects the series of a selector, still compressed, with how to decode them: the
    /// samples in `[mint, maxt]`.
    fn select_raw(&mut self, vs: &VectorSelector, mint: i64, maxt: i64) -> Result<(Vec<Selected>, Load)> {
        let load = Load { mint_ms: mint, maxt_ms: maxt, hist_stats: is_hist_stats(vs) };
        let groups = to_matchers(&vs.name, &vs.matchers)?;
        // A grouping hint left for this node by the aggregation above it (see `hints`).
        let hint = match self.pending_hint.take() {
            Some(h) if h.node == super::hints::node_id(vs) => Some(h.hints),
            other => {
                self.pending_hint = other;
                None
            }
        };
        if groups.len() == 1 {
            let sel = match hint {
                Some(h) => self.ctx.src.select_series_hinted(&groups[0], mint, maxt, &h)?,
                None => self.ctx.src.select_series(&groups[0], mint, maxt)?,
            };
            self.total_series += sel.len() as u64;
            return Ok((sel, load));
        }
        let mut all: Vec<Selected> = Vec::new();
        for g in &groups {
            for s in self.ctx.src.select_series(g, mint, maxt)? {
                if !all.iter().any(|x| x.labels() == s.labels()) {
                    all.push(s);
                }
            }
        }
        all.sort_by(|a, b| a.labels().cmp(b.labels()));
        self.total_series += all.len() as u64;
        Ok((all, load))
    }

    /// Reference-time bounds over all steps.
    fn ref_bounds(&self, at: &Option<AtModifier>, offset: &Option<Offset>) -> (i64, i64) {
        let a = self.ref_time(self.start, at, offset);
        let b = self.ref_time(self.end, at, offset);
        (a.min(b), a.max(b))
    }

    /// An instant vector selector over all steps.
    pub fn eval_vector_selector(&mut self, vs: &VectorSelector) -> Result<Matrix> {
        if selector_mod(vs) == RangeMod::Smoothed {
            return self.eval_smoothed_selector(vs);
        }
        let lookback = self.ctx.lookback_ms;
        let (rmin, rmax) = self.ref_bounds(&vs.at, &vs.offset);
        let (sel, load) = self.select_raw(vs, rmin - lookback + 1, rmax)?;
        self.check("vector selector")?;
        let refs = self.step_refs(&vs.at, &vs.offset);
        self.map_selected(sel, load, false, "vector selector", |r, s| {
            if r.hists.is_empty() {
                s.floats.reserve_exact(steps_reaching(&refs, &r.floats, lookback, 0, |p| p.t));
            }
            let mut cur = (0, 0);
            for &(ts, rt) in &refs {
                match lookup(r, rt, lookback, &mut cur) {
                    Lookup::None => {}
                    Lookup::F(_, f) => s.floats.push(FPoint { t: ts, f }),
                    Lookup::H(_, h) => s.histograms.push(HPoint { t: ts, h: h.clone() }),
                }
            }
        })
    }

    /// `timestamp(selector)`: the timestamps of the samples the selector picks.
    pub fn eval_selector_timestamps(&mut self, vs: &VectorSelector) -> Result<Matrix> {
        let lookback = self.ctx.lookback_ms;
        let (rmin, rmax) = self.ref_bounds(&vs.at, &vs.offset);
        let (sel, load) = self.select_raw(vs, rmin - lookback + 1, rmax)?;
        let refs = self.step_refs(&vs.at, &vs.offset);
        self.map_selected(sel, load, true, "timestamp", |r, s| {
            let mut cur = (0, 0);
            for &(ts, rt) in &refs {
                match lookup(r, rt, lookback, &mut cur) {
                    Lookup::None => {}
                    Lookup::F(t, _) | Lookup::H(t, _) => s.floats.push(FPoint { t: ts, f: t as f64 / 1000.0 }),
                }
            }
        })
    }

    /// `start_timestamp(selector)`: the start timestamp, in seconds, of the sample the
    /// selector picks at each step (0 for a sample without one), Prometheus'
    /// `funcStartTimestamp` over the engine's `StartTimestamps`. Only a plain selector has
    /// start timestamps; any other argument gives an empty result (the caller's part).
    pub fn eval_selector_start_timestamps(&mut self, vs: &VectorSelector) -> Result<Matrix> {
        let lookback = self.ctx.lookback_ms;
        let (rmin, rmax) = self.ref_bounds(&vs.at, &vs.offset);
        let (sel, load) = self.select_raw(vs, rmin - lookback + 1, rmax)?;
        let refs = self.step_refs(&vs.at, &vs.offset);
        self.map_selected(sel, load, true, "start_timestamp", |r, s| {
            let mut cur = (0, 0);
            for &(ts, rt) in &refs {
                if let Some(st) = lookup_st(r, rt, lookback, &mut cur) {
                    s.floats.push(FPoint { t: ts, f: st as f64 / 1000.0 });
                }
            }
        })
    }

    /// The input of a range function whose argument is a matrix selector.
    pub fn range_input_selector(&mut self, ms: &MatrixSelector) -> Result<RangeInput> {
        let vs = &ms.vs;
        let range_ms = ms.range.as_millis() as i64;
        let modifier = selector_mod(vs);
        let lb = self.ctx.lookback_ms;
        let (before, after) = match modifier {
            RangeMod::None => (0, 0),
            RangeMod::Anchored => (lb, 0),
            RangeMod::Smoothed => (lb, lb),
        };
        let (rmin, rmax) = self.ref_bounds(&vs.at, &vs.offset);
        let (sel, load) = self.select_raw(vs, rmin - range_ms - before + 1, rmax + after)?;
        let series: Vec<RangeSeries> = sel
            .into_iter()
            .map(|mut s| RangeSeries { metric: s.take_labels(), stored: Some(s), ..Default::default() })
            .collect();
        Ok(RangeInput { series, load, range_ms, at: vs.at.clone(), offset: vs.offset.clone(), selector_name: vs.name.clone(), modifier })
    }

    /// A matrix selector evaluated on its own (instant query `foo[5m]`): the raw samples.
    pub fn eval_matrix_selector_raw(&mut self, ms: &MatrixSelector) -> Result<Matrix> {
        let input = self.range_input_selector(ms)?;
        self.raw_matrix(input)
    }

    /// The raw samples of a range input at the (single) evaluation time.
    pub fn raw_matrix(&mut self, input: RangeInput) -> Result<Matrix> {
        if self.steps() != 1 {
            return Err(QueryError::BadData(
                "invalid expression type \"range vector\" for range query, must be Scalar or instant Vector".into(),
            ));
        }
        let rt = self.ref_time(self.start, &input.at, &input.offset);
        let mut out = Vec::new();
        let (before, after) = self.mod_extent(input.modifier);
        let mut buf = RangeSeries::default();
        for src in &input.series {
            let s = src.loaded(&input.load, &mut buf);
            if input.modifier != RangeMod::None {
                let (f, h) = s.window(rt - input.range_ms - before, rt + after);
                if !h.is_empty() {
                    let m = if input.modifier == RangeMod::Anchored { "anchored" } else { "smoothed" };
                    return Err(QueryError::Execution(format!("{m} modifier is not supported with histograms")));
                }
                if f.is_empty() {
                    continue;
                }
                let ext = extend_floats(f, rt - input.range_ms, rt, input.modifier == RangeMod::Smoothed);
                if ext.is_empty() {
                    continue;
                }
                self.add_samples(ext.len())?;
                out.push(Series { metric: src.metric.clone(), floats: ext, histograms: Vec::new(), drop_name: src.drop_name });
                continue;
            }
            let (f, h) = s.window(rt - input.range_ms, rt);
            if f.is_empty() && h.is_empty() {
                continue;
            }
            self.add_samples(f.len() + h.len())?;
            out.push(Series { metric: src.metric.clone(), floats: f.to_vec(), histograms: h.to_vec(), drop_name: src.drop_name });
        }
        Ok(out)
    }

    /// Applies `f` to every window of every series of `input` (in parallel across series).
    /// `keep_name` keeps `__name__` on the output (last_over_time, first_over_time). The
    /// input's label sets move to the output series (no copy).
    pub fn apply_range_fn<F>(&mut self, input: RangeInput, keep_name: bool, f: F) -> Result<Matrix>
    where
        F: Fn(&Window<'_>, &mut AnnoSink<'_>) -> Option<Out> + Sync,
    {
        let steps = self.steps();
        let refs: Vec<(i64, i64)> =
            (0..steps).map(|i| (self.ts(i), self.ref_time(self.ts(i), &input.at, &input.offset))).collect();
        let ctx = self.ctx;
        let range_ms = input.range_ms;
        let (before, after) = self.mod_extent(input.modifier);
        let modifier = input.modifier;
        let load = input.load;
        let work = |buf: &mut RangeSeries, src: &RangeSeries| -> Result<(Series, Annotations, usize)> {
            let s = src.loaded(&load, buf);
            let mut annos = Annotations::default();
            let mut out = Series { metric: Labels::empty(), drop_name: !keep_name || src.drop_name, ..Default::default() };
            let mut peak = 0usize;
            let name = src.metric.metric_name().unwrap_or("");
            if s.hists.is_empty() {
                out.floats.reserve_exact(steps_reaching(&refs, &s.floats, range_ms + before, after, |p| p.t));
            } else if s.floats.is_empty() {
                out.histograms.reserve_exact(steps_reaching(&refs, &s.hists, range_ms + before, after, |p| p.t));
            }
            let mut cur = WindowCursor::default();
            for (i, &(ts, rt)) in refs.iter().enumerate() {
                if i % 1024 == 1023 {
                    check_ctx(ctx, "range function")?;
                }
                let (fl, hs) = cur.window(s, rt - range_ms - before, rt + after);
                peak = peak.max(fl.len() + hs.len());
                let (float_sts, hist_sts) = cur.sts(s);
                let w = Window {
                    floats: fl,
                    hists: hs,
                    float_sts,
                    hist_sts,
                    ts,
                    range_start: rt - range_ms,
                    range_end: rt,
                    range_ms,
                    metric: &src.metric,
                    name,
                    modifier,
                };
                let mut sink = AnnoSink { ctx, annos: &mut annos };
                match f(&w, &mut sink) {
                    None => {}
                    Some(Out::F(v)) => out.floats.push(FPoint { t: ts, f: v }),
                    Some(Out::H(h)) => out.histograms.push(HPoint { t: ts, h }),
                }
            }
            Ok((out, annos, peak))
        };
        let results: Vec<Result<(Series, Annotations, usize)>> = if super::lazy::parallel_worth(input.series.len(), self.steps()) {
            input.series.par_iter().map_init(RangeSeries::default, |buf, s| work(buf, s)).collect()
        } else {
            let mut buf = RangeSeries::default();
            input.series.iter().map(|s| work(&mut buf, s)).collect()
        };
        let mut out = Vec::with_capacity(results.len());
        let mut peak = 0;
        for (r, src) in results.into_iter().zip(input.series) {
            let (mut s, a, p) = r?;
            self.annos.merge(a);
            peak = peak.max(p);
            if !s.is_empty() {
                self.add_samples(s.len())?;
                s.metric = src.metric;
                out.push(s);
            }
        }
        // The largest window is held while the function runs (Prometheus counts it too).
        self.add_samples(peak)?;
        self.sub_samples(peak);
        Ok(out)
    }
}

/// How many steps' windows `(rt - before, rt + after]` can hold a point of `ps` (sorted by
/// time): the exact capacity of a series' output when every such step yields a point, and
/// an upper bound otherwise.
fn steps_reaching<T>(refs: &[(i64, i64)], ps: &[T], before: i64, after: i64, t: impl Fn(&T) -> i64) -> usize {
    let (Some(first), Some(last)) = (ps.first(), ps.last()) else { return 0 };
    let (first, last) = (t(first), t(last));
    refs.iter().filter(|&&(_, rt)| rt.saturating_add(after) >= first && rt.saturating_sub(before) < last).count()
}

/// Window bounds of one series carried from step to step: steps move forward in time, so
/// each bound advances by a short linear scan instead of a binary search over the series.
#[derive(Default)]
struct WindowCursor {
    fa: usize,
    fb: usize,
    ha: usize,
    hb: usize,
}

/// Moves `i` to the first point of `ps` after `bound` (`ps` sorted by time), forward from
/// `i`, or by binary search when `bound` moved backwards.
#[inline]
fn advance<T>(ps: &[T], t: impl Fn(&T) -> i64, i: usize, bound: i64) -> usize {
    if i > 0 && t(&ps[i - 1]) > bound {
        return ps.partition_point(|p| t(p) <= bound);
    }
    let mut i = i;
    while i < ps.len() && t(&ps[i]) <= bound {
        i += 1;
    }
    i
}

impl WindowCursor {
    /// The window `(lo, hi]` of `s`, as [`RangeSeries::window`] returns it.
    #[inline]
    fn window<'s>(&mut self, s: &'s RangeSeries, lo: i64, hi: i64) -> (&'s [FPoint], &'s [HPoint]) {
        self.fa = advance(&s.floats, |p| p.t, self.fa, lo);
        self.fb = advance(&s.floats, |p| p.t, self.fb.max(self.fa), hi);
        self.ha = advance(&s.hists, |p| p.t, self.ha, lo);
        self.hb = advance(&s.hists, |p| p.t, self.hb.max(self.ha), hi);
        (&s.floats[self.fa..self.fb.max(self.fa)], &s.hists[self.ha..self.hb.max(self.ha)])
    }

    /// The start timestamps of the window last returned by [`WindowCursor::window`] (empty
    /// slices for a series without them: one length check per window, nothing per sample).
    #[inline]
    fn sts<'s>(&self, s: &'s RangeSeries) -> (&'s [i64], &'s [i64]) {
        let f = if s.float_sts.is_empty() { &[][..] } else { &s.float_sts[self.fa..self.fb.max(self.fa)] };
        let h = if s.hist_sts.is_empty() { &[][..] } else { &s.hist_sts[self.ha..self.hb.max(self.ha)] };
        (f, h)
    }
}

impl Evaluator<'_> {
    /// How far windows of a modified selector reach before and after `(t - range, t]`.
    pub fn mod_extent(&self, m: RangeMod) -> (i64, i64) {
        let lb = self.ctx.lookback_ms;
        match m {
            RangeMod::None => (0, 0),
            RangeMod::Anchored => (lb, 0),
            RangeMod::Smoothed => (lb, lb),
        }
    }

    /// A `smoothed` instant vector selector: the value at each step interpolated linearly
    /// between the samples around it (within the lookback delta on either side), or carried
    /// forward from the last one.
    pub fn eval_smoothed_selector(&mut self, vs: &VectorSelector) -> Result<Matrix> {
        let lb = self.ctx.lookback_ms;
        let (rmin, rmax) = self.ref_bounds(&vs.at, &vs.offset);
        let (sel, load) = self.select_raw(vs, rmin - lb + 1, rmax + lb)?;
        let steps = self.steps();
        let mut out = Vec::new();
        let mut buf = RangeSeries::default();
        for mut one in sel {
            if !load.decode_range(&one, &mut buf) {
                continue;
            }
            let rs = &buf;
            let mut s = Series { metric: one.take_labels(), ..Default::default() };
            for si in 0..steps {
                let ts = self.ts(si);
                let dt = self.ref_time(ts, &vs.at, &vs.offset);
                let (f, h) = rs.window(dt - lb, dt + lb);
                if f.is_empty() && h.is_empty() {
                    continue;
                }
                if !f.is_empty() && !h.is_empty() {
                    let name = s.metric.metric_name().unwrap_or("").to_string();
                    self.warn(format!("encountered a mix of histograms and floats for metric name {name:?}"), &name);
                    continue;
                }
                if !h.is_empty() {
                    let i = h.partition_point(|p| p.t < dt);
                    if i < h.len() && h[i].t == dt {
                        s.histograms.push(HPoint { t: ts, h: h[i].h.clone() });
                    } else if i > 0 && i < h.len() {
                        let (p, n) = (&h[i - 1], &h[i]);
                        if p.h.uses_custom_buckets() != n.h.uses_custom_buckets() {
                            let name = s.metric.metric_name().unwrap_or("").to_string();
                            self.warn(
                                format!("vector contains a mix of histograms with exponential and custom buckets schemas for metric name {name:?}"),
                                &name,
                            );
                            continue;
                        }
                        use storage::histogram::CounterResetHint::Gauge;
                        let is_counter = p.h.counter_reset_hint != Gauge || n.h.counter_reset_hint != Gauge;
                        let frac = (dt - p.t) as f64 / (n.t - p.t) as f64;
                        let v = if is_counter && crate::histogram::detect_reset(&n.h, &p.h) {
                            crate::histogram::scale(&n.h, frac)
                        } else {
                            let mut annos = Vec::new();
                            let Ok(d) = crate::histogram::add_sub(&n.h, &p.h, true, &mut annos) else { continue };
                            let Ok(v) = crate::histogram::add_sub(&crate::histogram::scale(&d, frac), &p.h, false, &mut annos) else { continue };
                            v
                        };
                        s.histograms.push(HPoint { t: ts, h: std::sync::Arc::new(v) });
                    } else if i > 0 {
                        let mut v = (*h[i - 1].h).clone();
                        v.counter_reset_hint = storage::histogram::CounterResetHint::Unknown;
                        s.histograms.push(HPoint { t: ts, h: std::sync::Arc::new(v) });
                    }
                    continue;
                }
                let i = f.partition_point(|p| p.t < dt);
                if i < f.len() && f[i].t == dt {
                    s.floats.push(FPoint { t: ts, f: f[i].f });
                } else if i > 0 && i < f.len() {
                    s.floats.push(FPoint { t: ts, f: interpolate(f[i - 1], f[i], dt, false) });
                } else if i > 0 {
                    s.floats.push(FPoint { t: ts, f: f[i - 1].f });
                }
            }
            if !s.is_empty() {
                self.add_samples(s.len())?;
                out.push(s);
            }
        }
        Ok(out)
    }
}

/// Linear interpolation at `t`; for counters a decrease is read as a reset from 0.
pub(crate) fn interpolate(p1: FPoint, p2: FPoint, t: i64, is_counter: bool) -> f64 {
    let y1 = if is_counter && p2.f < p1.f { 0.0 } else { p1.f };
    y1 + (p2.f - y1) * (t - p1.t) as f64 / (p2.t - p1.t) as f64
}

/// Prometheus `extendFloats`: the samples of `(mint, maxt]` with boundary points at `mint`
/// and `maxt` (picked, or for `smoothed` interpolated).
pub(crate) fn extend_floats(f: &[FPoint], mint: i64, maxt: i64, smoothed: bool) -> Vec<FPoint> {
    let mut last = f.len() - 1;
    let first = f[..last].partition_point(|p| p.t <= mint).saturating_sub(1);
    if smoothed {
        last = f[..last].partition_point(|p| p.t < maxt);
    }
    if f[last].t <= mint {
        return Vec::new();
    }
    let left = if smoothed && f[first].t < mint && first + 1 < f.len() { interpolate(f[first], f[first + 1], mint, false) } else { f[first].f };
    let right = if smoothed && last > 0 && f[last].t > maxt { interpolate(f[last - 1], f[last], maxt, false) } else { f[last].f };
    let mut a = first;
    let mut b = last as i64;
    if f[a].t <= mint {
        a += 1;
    }
    if f[last].t >= maxt {
        b -= 1;
    }
    let mut out = Vec::with_capacity(f.len() + 2);
    out.push(FPoint { t: mint, f: left });
    if (a as i64) <= b {
        out.extend_from_slice(&f[a..=b as usize]);
    }
    out.push(FPoint { t: maxt, f: right });
    out
}

/// Collects annotations from parallel workers.
pub(crate) struct AnnoSink<'a> {
    ctx: &'a EvalCtx<'a>,
    annos: &'a mut Annotations,
}

impl AnnoSink<'_> {
    pub fn warn(&mut self, text: String, at: &str) {
        let p = pos_in(self.ctx.query, at);
        self.annos.warn(format!("PromQL warning: {text}{p}"));
    }

    pub fn info(&mut self, text: String, at: &str) {
        let p = pos_in(self.ctx.query, at);
        self.annos.info(format!("PromQL info: {text}{p}"));
    }
}

pub(crate) fn pos_in(q: &str, needle: &str) -> String {
    let idx = q.find(needle).unwrap_or(0);
    let line = q[..idx].matches('\n').count() + 1;
    let col = idx - q[..idx].rfind('\n').map_or(0, |p| p + 1) + 1;
    format!(" ({line}:{col})")
}

pub(super) fn check_ctx(ctx: &EvalCtx<'_>, site: &'static str) -> Result<()> {
    if let Some(c) = ctx.cancel {
        if c.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(QueryError::Canceled(site));
        }
    }
    if let Some(d) = ctx.deadline {
        if std::time::Instant::now() > d {
            return Err(QueryError::Timeout(site));
        }
    }
    Ok(())
}

enum Lookup<'a> {
    None,
    F(i64, f64),
    H(i64, &'a std::sync::Arc<storage::FloatHistogram>),
}

/// Which sample a vector selector picks at reference time `rt`: the newest float or histogram
/// sample in `(rt - lookback, rt]` (by index into `floats` / `hists`), if any.
enum Pick {
    F(usize),
    H(usize),
}

///
/// `cur` holds, per column, the number of points at or before the previous call's `rt`.
/// Successive steps never move `rt` back (`offset` shifts every step alike, `@` pins them),
/// so the next position is found by walking forward from there ([`advance`], which falls
/// back to a binary search if `rt` did move back): a series costs one pass over its points
/// for all steps instead of a binary search per step. Start each series with `(0, 0)`.
fn pick(r: &RawSeries, rt: i64, lookback: i64, cur: &mut (usize, usize)) -> Option<Pick> {
    cur.0 = advance(&r.floats, |p| p.t, cur.0, rt);
    cur.1 = advance(&r.hists, |p| p.t, cur.1, rt);
    let (fi, hi) = *cur;
    let f = (fi > 0 && r.floats[fi - 1].t > rt - lookback).then(|| fi - 1);
    let h = (hi > 0 && r.hists[hi - 1].t > rt - lookback).then(|| hi - 1);
    match (f, h) {
        (None, None) => None,
        (Some(i), None) => Some(Pick::F(i)),
        (None, Some(j)) => Some(Pick::H(j)),
        (Some(i), Some(j)) if r.floats[i].t > r.hists[j].t => Some(Pick::F(i)),
        (Some(_), Some(j)) => Some(Pick::H(j)),
    }
}

/// The newest sample in `(rt - lookback, rt]`, unless it is a staleness marker (`cur`: see
/// [`pick`]).
fn lookup<'r>(r: &'r RawSeries, rt: i64, lookback: i64, cur: &mut (usize, usize)) -> Lookup<'r> {
    match pick(r, rt, lookback, cur) {
        None => Lookup::None,
        Some(Pick::F(i)) if is_stale_nan(r.floats[i].f) => Lookup::None,
        Some(Pick::F(i)) => Lookup::F(r.floats[i].t, r.floats[i].f),
        Some(Pick::H(j)) => Lookup::H(r.hists[j].t, &r.hists[j].h),
    }
}

/// The start timestamp (0 if none) of the sample [`lookup`] picks, if it picks one.
fn lookup_st(r: &RawSeries, rt: i64, lookback: i64, cur: &mut (usize, usize)) -> Option<i64> {
    match pick(r, rt, lookback, cur)? {
        Pick::F(i) if is_stale_nan(r.floats[i].f) => None,
        Pick::F(i) => Some(r.float_sts.get(i).copied().unwrap_or(0)),
        Pick::H(j) => Some(r.hist_sts.get(j).copied().unwrap_or(0)),
    }
}
