//! Functions over range vectors (Prometheus `functions.go`): the rate family with
//! extrapolation (`extrapolatedRate`), `irate`/`idelta`, `deriv`/`predict_linear` (least
//! squares with Kahan sums), `changes`, `resets`, the `*_over_time` family and
//! `double_exponential_smoothing`.
//!
//! Windows are left-open `(t - range, t]` with staleness markers removed (see
//! [`super::selector`]). Each function sees a window as two slices (floats, histograms).

use std::sync::Arc;

use promql_parser::parser::Expr;
use storage::FloatHistogram;

use super::aggregate::{fmt_go, kahan_inc, quantile};
use super::functions::{absent_labels, unwrap_parens};
use super::rate::{extrapolated_rate, instant_value};
use super::selector::{AnnoSink, Out, RangeInput, RangeMod, Window};
use super::Evaluator;
use crate::error::{QueryError, Result};
use crate::histogram as hist;
use crate::value::{FPoint, Matrix, Series};

impl Evaluator<'_> {
    fn range_input(&mut self, e: &Expr) -> Result<RangeInput> {
        match unwrap_parens(e) {
            Expr::MatrixSelector(ms) => self.range_input_selector(ms),
            Expr::Subquery(sq) => self.range_input_subquery(sq),
            _ => Err(QueryError::BadData("expected a range vector argument".into())),
        }
    }

    /// A call whose argument `mi` is a range vector.
    pub fn eval_range_call(&mut self, name: &str, args: &[&Expr], mi: usize) -> Result<Matrix> {
        // Scalar parameters, one value per step.
        let mut params: Vec<Vec<f64>> = Vec::new();
        for (i, a) in args.iter().enumerate() {
            if i != mi {
                params.push(self.eval_scalar_steps(a)?);
            }
        }
        let input = self.range_input(args[mi])?;
        match input.modifier {
            RangeMod::Anchored if !matches!(name, "changes" | "delta" | "increase" | "rate" | "resets") => {
                return Err(QueryError::Execution(format!(
                    "anchored modifier can only be used with: changes, delta, increase, rate, resets - not with {name}"
                )));
            }
            RangeMod::Smoothed if !matches!(name, "delta" | "increase" | "rate") => {
                return Err(QueryError::Execution(format!(
                    "smoothed modifier can only be used with: delta, increase, rate - not with {name}"
                )));
            }
            _ => {}
        }
        let start = self.start;
        let step = self.interval;
        let param = move |k: usize, ts: i64| -> f64 {
            let i = ((ts - start) / step) as usize;
            params.get(k).and_then(|p| p.get(i)).copied().unwrap_or(f64::NAN)
        };
        let sel = input.selector_name.clone().unwrap_or_default();
        let pos = if sel.is_empty() { name.to_string() } else { sel.clone() };
        match name {
            "rate" | "increase" | "delta" => {
                let is_counter = name != "delta";
                let is_rate = name == "rate";
                self.apply_range_fn(input, false, |w, a| extrapolated_rate(w, is_counter, is_rate, a, &pos))
            }
            "irate" | "idelta" => {
                let is_rate = name == "irate";
                self.apply_range_fn(input, false, |w, a| instant_value(w, is_rate, a, &pos))
            }
            "deriv" => self.apply_range_fn(input, false, |w, a| {
                if !floats_only_window(w, a, "deriv") || w.floats.len() < 2 {
                    return None;
                }
                let (slope, _) = linear_regression(w.floats, w.floats[0].t);
                Some(Out::F(slope))
            }),
            "predict_linear" => self.apply_range_fn(input, false, |w, a| {
                if !floats_only_window(w, a, "predict_linear") || w.floats.len() < 2 {
                    return None;
                }
                let d = param(0, w.ts);
                let (slope, intercept) = linear_regression(w.floats, w.ts);
                Some(Out::F(slope * d + intercept))
            }),
            "changes" | "resets" => {
                let resets = name == "resets";
                self.apply_range_fn(input, false, |w, _| {
                    if w.floats.is_empty() && w.hists.is_empty() {
                        return None;
                    }
                    if w.modifier == RangeMod::Anchored {
                        let rs = w.range_start;
                        let lf = w.floats.partition_point(|p| p.t <= rs) as i64 - 1;
                        let lh = w.hists.partition_point(|p| p.t <= rs) as i64 - 1;
                        if lf + 1 >= w.floats.len() as i64 && lh + 1 >= w.hists.len() as i64 {
                            return None;
                        }
                        let (ff, fh) = if lf < 0 && lh < 0 {
                            (0, 0)
                        } else if lh < 0 || (lf >= 0 && w.floats[lf as usize].t >= w.hists[lh as usize].t) {
                            (lf.max(0) as usize, (lh + 1) as usize)
                        } else {
                            ((lf + 1) as usize, lh.max(0) as usize)
                        };
                        let sub = Window {
                            floats: &w.floats[ff..],
                            hists: &w.hists[fh..],
                            float_sts: w.float_sts.get(ff..).unwrap_or(&[]),
                            hist_sts: w.hist_sts.get(fh..).unwrap_or(&[]),
                            ..*w
                        };
                        return Some(Out::F(count_changes(&sub, resets)));
                    }
                    Some(Out::F(count_changes(w, resets)))
                })
            }
            "absent_over_time" => self.absent_over_time(&input, args[mi]),
            "double_exponential_smoothing" => {
                for si in 0..self.steps() {
                    let ts = self.ts(si);
                    let (sf, tf) = (param(0, ts), param(1, ts));
                    if !(sf > 0.0 && sf < 1.0) {
                        return Err(QueryError::Execution(format!("invalid smoothing factor. Expected: 0 < sf < 1, got: {sf:.6}")));
                    }
                    if !(tf > 0.0 && tf < 1.0) {
                        return Err(QueryError::Execution(format!("invalid trend factor. Expected: 0 < tf < 1, got: {tf:.6}")));
                    }
                }
                self.apply_range_fn(input, false, |w, a| {
                    if !floats_only_window(w, a, "double_exponential_smoothing") {
                        return None;
                    }
                    let (sf, tf) = (param(0, w.ts), param(1, w.ts));
                    des(w.floats, sf, tf).map(Out::F)
                })
            }
            "quantile_over_time" => {
                for si in 0..self.steps() {
                    let q = param(0, self.ts(si));
                    if !(0.0..=1.0).contains(&q) {
                        self.warn_param(format!("quantile value should be between 0 and 1, got {}", fmt_go(q)), "quantile_over_time");
                    }
                }
                self.apply_range_fn(input, false, |w, a| {
                    if !floats_only_window(w, a, "quantile_over_time") {
                        return None;
                    }
                    let mut v: Vec<f64> = w.floats.iter().map(|p| p.f).collect();
                    Some(Out::F(quantile(param(0, w.ts), &mut v)))
                })
            }
            other => {
                let f = over_time_fn(other).ok_or_else(|| QueryError::BadData(format!("function {other:?} is not supported")))?;
                let keep_name = matches!(other, "last_over_time" | "first_over_time");
                let fname = other.to_string();
                self.apply_range_fn(input, keep_name, |w, a| f(w, a, &fname, &pos))
            }
        }
    }

    fn absent_over_time(&mut self, input: &RangeInput, arg: &Expr) -> Result<Matrix> {
        let labels = absent_labels(arg);
        let refs = self.step_refs(&input.at, &input.offset);
        let mut s = Series { metric: labels, ..Default::default() };
        // One pass per series (each decoded once), marking the steps where it has a sample.
        let mut present = vec![false; refs.len()];
        let mut buf = super::selector::RangeSeries::default();
        for src in &input.series {
            let r = src.loaded(&input.load, &mut buf);
            for (p, &(_, rt)) in present.iter_mut().zip(&refs) {
                if !*p {
                    let (f, h) = r.window(rt - input.range_ms, rt);
                    *p = !f.is_empty() || !h.is_empty();
                }
            }
        }
        for (&p, &(ts, _)) in present.iter().zip(&refs) {
            if !p {
                s.floats.push(FPoint { t: ts, f: 1.0 });
            }
        }
        Ok(if s.is_empty() { Vec::new() } else { vec![s] })
    }
}

/// An `*_over_time` function: window, annotation sink, function name, and the needle that
/// locates the range argument for annotation positions.
type OverTime = fn(&Window<'_>, &mut AnnoSink<'_>, &str, &str) -> Option<Out>;

fn mixed(w: &Window<'_>, a: &mut AnnoSink<'_>, fname: &str) -> bool {
    if !w.floats.is_empty() && !w.hists.is_empty() {
        let name = w.metric.metric_name().unwrap_or("");
        a.warn(format!("encountered a mix of histograms and floats for metric name {name:?}"), fname);
        return true;
    }
    false
}

/// True if the window has floats to work on; histograms next to floats are ignored with an
/// info (a window of histograms only yields nothing, silently).
fn floats_only_window(w: &Window<'_>, a: &mut AnnoSink<'_>, fname: &str) -> bool {
    if w.floats.is_empty() {
        return false;
    }
    if !w.hists.is_empty() {
        a.info(format!("ignored histograms in a range vector passed to {fname}"), fname);
    }
    true
}

fn over_time_fn(name: &str) -> Option<OverTime> {
    Some(match name {
        "sum_over_time" => |w, a, _, at| {
            if mixed(w, a, at) {
                return None;
            }
            if !w.hists.is_empty() {
                return sum_hists(w.hists, a, at, false).map(|h| Out::H(Arc::new(h)));
            }
            if w.floats.is_empty() {
                return None;
            }
            let (mut s, mut c) = (0.0, 0.0);
            for p in w.floats {
                (s, c) = kahan_inc(p.f, s, c);
            }
            Some(Out::F(s + c))
        },
        "avg_over_time" => |w, a, _, at| {
            if mixed(w, a, at) {
                return None;
            }
            if !w.hists.is_empty() {
                return sum_hists(w.hists, a, at, true).map(|h| Out::H(Arc::new(h)));
            }
            if w.floats.is_empty() {
                return None;
            }
            Some(Out::F(avg(w.floats)))
        },
        "count_over_time" => |w, _, _, _| {
            let n = w.floats.len() + w.hists.len();
            if n == 0 {
                None
            } else {
                Some(Out::F(n as f64))
            }
        },
        "min_over_time" | "max_over_time" => {
            if name == "min_over_time" {
                |w, a, n, _| {
                    if !floats_only_window(w, a, n) {
                        return None;
                    }
                    let mut m = w.floats[0].f;
                    for p in &w.floats[1..] {
                        if p.f < m || m.is_nan() {
                            m = p.f;
                        }
                    }
                    Some(Out::F(m))
                }
            } else {
                |w, a, n, _| {
                    if !floats_only_window(w, a, n) {
                        return None;
                    }
                    let mut m = w.floats[0].f;
                    for p in &w.floats[1..] {
                        if p.f > m || m.is_nan() {
                            m = p.f;
                        }
                    }
                    Some(Out::F(m))
                }
            }
        }
        "stddev_over_time" => |w, a, n, _| {
            if !floats_only_window(w, a, n) {
                return None;
            }
            Some(Out::F(variance(w.floats).sqrt()))
        },
        "stdvar_over_time" => |w, a, n, _| {
            if !floats_only_window(w, a, n) {
                return None;
            }
            Some(Out::F(variance(w.floats)))
        },
        "mad_over_time" => |w, a, n, _| {
            if !floats_only_window(w, a, n) {
                return None;
            }
            if w.floats.iter().any(|p| p.f.is_nan()) {
                return Some(Out::F(f64::NAN));
            }
            let mut v: Vec<f64> = w.floats.iter().map(|p| p.f).collect();
            let med = quantile(0.5, &mut v);
            let mut d: Vec<f64> = w.floats.iter().map(|p| (p.f - med).abs()).collect();
            Some(Out::F(quantile(0.5, &mut d)))
        },
        "last_over_time" => |w, _, _, _| {
            let lf = w.floats.last();
            let lh = w.hists.last();
            match (lf, lh) {
                (None, None) => None,
                (Some(f), None) => Some(Out::F(f.f)),
                (None, Some(h)) => Some(Out::H(h.h.clone())),
                (Some(f), Some(h)) => {
                    if f.t > h.t {
                        Some(Out::F(f.f))
                    } else {
                        Some(Out::H(h.h.clone()))
                    }
                }
            }
        },
        "first_over_time" => |w, _, _, _| {
            let ff = w.floats.first();
            let fh = w.hists.first();
            match (ff, fh) {
                (None, None) => None,
                (Some(f), None) => Some(Out::F(f.f)),
                (None, Some(h)) => Some(Out::H(h.h.clone())),
                (Some(f), Some(h)) => {
                    if f.t < h.t {
                        Some(Out::F(f.f))
                    } else {
                        Some(Out::H(h.h.clone()))
                    }
                }
            }
        },
        "present_over_time" => |w, _, _, _| {
            if w.floats.is_empty() && w.hists.is_empty() {
                None
            } else {
                Some(Out::F(1.0))
            }
        },
        "ts_of_last_over_time" => |w, _, _, _| {
            let t = w.floats.last().map(|p| p.t).max(w.hists.last().map(|p| p.t))?;
            Some(Out::F(t as f64 / 1000.0))
        },
        "ts_of_first_over_time" => |w, _, _, _| {
            let a = w.floats.first().map(|p| p.t);
            let b = w.hists.first().map(|p| p.t);
            let t = match (a, b) {
                (Some(x), Some(y)) => x.min(y),
                (x, y) => x.or(y)?,
            };
            Some(Out::F(t as f64 / 1000.0))
        },
        "ts_of_min_over_time" => |w, a, n, _| {
            if !floats_only_window(w, a, n) {
                return None;
            }
            let mut best = w.floats[0];
            for p in &w.floats[1..] {
                if p.f <= best.f || best.f.is_nan() {
                    best = *p;
                }
            }
            Some(Out::F(best.t as f64 / 1000.0))
        },
        "ts_of_max_over_time" => |w, a, n, _| {
            if !floats_only_window(w, a, n) {
                return None;
            }
            let mut best = w.floats[0];
            for p in &w.floats[1..] {
                if p.f >= best.f || best.f.is_nan() {
                    best = *p;
                }
            }
            Some(Out::F(best.t as f64 / 1000.0))
        },
        _ => return None,
    })
}

/// Kahan-compensated sum (or mean) of a window's histograms (Prometheus `funcSumOverTime`,
/// `funcAvgOverTime`).
fn sum_hists(hs: &[crate::value::HPoint], a: &mut AnnoSink<'_>, fname: &str, mean: bool) -> Option<FloatHistogram> {
    let mut acc = hist::HistAcc::new(&hs[0].h, mean);
    for p in &hs[1..] {
        if let Err(e) = acc.add(&p.h) {
            a.warn(e.to_string(), fname);
            return None;
        }
    }
    if acc.counter_reset_collision() {
        a.warn("conflicting counter resets during histogram aggregation".to_string(), fname);
    }
    if acc.reconciled() {
        a.info("mismatched custom buckets were reconciled during aggregation".to_string(), fname);
    }
    Some(acc.finish())
}

/// Mean with Kahan summation, switching to an incremental mean if the sum overflows.
fn avg(ps: &[FPoint]) -> f64 {
    if ps.len() == 1 {
        return ps[0].f;
    }
    let (mut sum, mut c) = (ps[0].f, 0.0);
    let mut incremental = false;
    let mut mean = 0.0;
    let mut count = 1.0;
    for p in &ps[1..] {
        count += 1.0;
        if !incremental {
            let (ns, nc) = kahan_inc(p.f, sum, c);
            if ns.is_infinite() && !p.f.is_infinite() && !sum.is_infinite() {
                incremental = true;
                mean = (sum + c) / (count - 1.0);
                c = 0.0;
            } else {
                sum = ns;
                c = nc;
                continue;
            }
        }
        if mean.is_infinite() {
            if p.f.is_infinite() && mean.signum() != p.f.signum() {
                mean = f64::NAN;
            }
            continue;
        }
        let (m, nc) = kahan_inc(p.f / count - mean / count, mean, c);
        mean = m;
        c = nc;
    }
    if incremental {
        mean + c
    } else {
        (sum + c) / count
    }
}

fn variance(ps: &[FPoint]) -> f64 {
    let (mut count, mut mean, mut cm, mut aux, mut ca) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for p in ps {
        count += 1.0;
        let delta = p.f - (mean + cm);
        (mean, cm) = kahan_inc(delta / count, mean, cm);
        (aux, ca) = kahan_inc(delta * (p.f - (mean + cm)), aux, ca);
    }
    (aux + ca) / count
}

/// Least-squares fit with x in seconds relative to `intercept_t` (Prometheus
/// `linearRegression`).
pub(crate) fn linear_regression(ps: &[FPoint], intercept_t: i64) -> (f64, f64) {
    let init = ps[0].f;
    let mut const_y = true;
    let (mut n, mut sx, mut cx, mut sy, mut cy, mut sxy, mut cxy, mut sx2, mut cx2) = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
    for (i, p) in ps.iter().enumerate() {
        if const_y && i > 0 && p.f != init {
            const_y = false;
        }
        n += 1.0;
        let x = (p.t - intercept_t) as f64 / 1e3;
        (sx, cx) = kahan_inc(x, sx, cx);
        (sy, cy) = kahan_inc(p.f, sy, cy);
        (sxy, cxy) = kahan_inc(x * p.f, sxy, cxy);
        (sx2, cx2) = kahan_inc(x * x, sx2, cx2);
    }
    if const_y {
        if init.is_infinite() {
            return (f64::NAN, f64::NAN);
        }
        return (0.0, init);
    }
    sx += cx;
    sy += cy;
    sxy += cxy;
    sx2 += cx2;
    let cov = sxy - sx * sy / n;
    let var = sx2 - sx * sx / n;
    let slope = cov / var;
    (slope, sy / n - slope * sx / n)
}

fn des(ps: &[FPoint], sf: f64, tf: f64) -> Option<f64> {
    if ps.len() < 2 {
        return None;
    }
    let (mut s0, mut s1) = (0.0, ps[0].f);
    let mut b = ps[1].f - ps[0].f;
    for (i, p) in ps.iter().enumerate().skip(1) {
        let x = sf * p.f;
        if i > 1 {
            b = tf * (s1 - s0) + (1.0 - tf) * b;
        }
        let y = (1.0 - sf) * (s1 + b);
        s0 = s1;
        s1 = x + y;
    }
    Some(s1)
}

/// `changes` / `resets` over floats and histograms merged in time order; a switch between a
/// float and a histogram counts as a change and as a reset. For `resets`, a start-timestamp
/// reset ([`super::start_ts::is_st_reset`]) between two samples of the same kind counts too
/// (Prometheus 3.x); `changes` ignores start timestamps.
fn count_changes(w: &Window<'_>, resets: bool) -> f64 {
    use super::start_ts::{is_st_reset, st_at};
    let (mut i, mut j) = (0, 0);
    // (value, histogram, t_ms, st_ms)
    let mut prev: Option<(Option<f64>, Option<&FloatHistogram>, i64, i64)> = None;
    let mut n = 0.0;
    while i < w.floats.len() || j < w.hists.len() {
        let take_float = j >= w.hists.len() || (i < w.floats.len() && w.floats[i].t < w.hists[j].t);
        let cur: (Option<f64>, Option<&FloatHistogram>, i64, i64) = if take_float {
            i += 1;
            (Some(w.floats[i - 1].f), None, w.floats[i - 1].t, st_at(w.float_sts, i - 1))
        } else {
            j += 1;
            (None, Some(&*w.hists[j - 1].h), w.hists[j - 1].t, st_at(w.hist_sts, j - 1))
        };
        if let Some(p) = prev {
            let st_reset = resets && is_st_reset(p.3, p.2, cur.3, cur.2);
            let changed = match (p, cur) {
                ((Some(a), ..), (Some(b), ..)) => {
                    if resets {
                        b < a || st_reset
                    } else {
                        b != a && !(a.is_nan() && b.is_nan())
                    }
                }
                ((_, Some(a), ..), (_, Some(b), ..)) => {
                    if resets {
                        st_reset || hist::detect_reset(b, a)
                    } else {
                        !hist::equals(a, b)
                    }
                }
                _ => true,
            };
            if changed {
                n += 1.0;
            }
        }
        prev = Some(cur);
    }
    n
}
