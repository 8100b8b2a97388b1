//! Histogram functions (Prometheus `functions.go` and `quantile.go`): `histogram_quantile`
//! over native histograms and over classic `le` buckets (with the monotonicity fix and +Inf
//! handling of `BucketQuantile`), `histogram_fraction`, `histogram_count/sum/avg` and
//! `histogram_stddev/stdvar`.

use std::collections::HashMap;

use promql_parser::parser::Expr;
use storage::{FloatHistogram, Labels};

use super::aggregate::{fmt_go, kahan_inc};
use super::Evaluator;
use crate::error::{QueryError, Result};
use crate::histogram as hist;
use crate::value::{Matrix, Sample, Vector};

/// A classic bucket: upper bound and cumulative count.
#[derive(Clone, Copy, Debug)]
struct CBucket {
    upper: f64,
    count: f64,
}

/// Prometheus `BucketQuantile`: `(value, forced_monotonic)`.
fn bucket_quantile(q: f64, buckets: &mut Vec<CBucket>) -> (f64, bool) {
    if q.is_nan() {
        return (f64::NAN, false);
    }
    if q < 0.0 {
        return (f64::NEG_INFINITY, false);
    }
    if q > 1.0 {
        return (f64::INFINITY, false);
    }
    buckets.sort_by(|a, b| a.upper.total_cmp(&b.upper));
    if buckets.last().is_none_or(|b| b.upper != f64::INFINITY) {
        return (f64::NAN, false);
    }
    coalesce(buckets);
    let forced = ensure_monotonic(buckets);
    if buckets.len() < 2 {
        return (f64::NAN, forced);
    }
    let observations = buckets[buckets.len() - 1].count;
    if observations == 0.0 {
        return (f64::NAN, forced);
    }
    let mut rank = q * observations;
    let n = buckets.len() - 1;
    let b = buckets[..n].partition_point(|x| x.count < rank);
    if b == n {
        return (buckets[n - 1].upper, forced);
    }
    if b == 0 && buckets[0].upper <= 0.0 {
        return (buckets[0].upper, forced);
    }
    let mut start = 0.0;
    let end = buckets[b].upper;
    let mut count = buckets[b].count;
    if b > 0 {
        start = buckets[b - 1].upper;
        count -= buckets[b - 1].count;
        rank -= buckets[b - 1].count;
    }
    (start + (end - start) * (rank / count), forced)
}

fn coalesce(b: &mut Vec<CBucket>) {
    let mut out: Vec<CBucket> = Vec::with_capacity(b.len());
    for x in b.drain(..) {
        match out.last_mut() {
            Some(l) if l.upper == x.upper => l.count += x.count,
            _ => out.push(x),
        }
    }
    *b = out;
}

/// Returns true if a decrease had to be removed.
fn ensure_monotonic(b: &mut [CBucket]) -> bool {
    let mut forced = false;
    let mut prev = b[0].count;
    for x in b.iter_mut().skip(1) {
        let cur = x.count;
        if cur == prev {
            continue;
        }
        if almost_equal(prev, cur, 1e-12) {
            x.count = prev;
            continue;
        }
        if cur < prev {
            x.count = prev;
            forced = true;
            continue;
        }
        prev = cur;
    }
    forced
}

fn almost_equal(a: f64, b: f64, eps: f64) -> bool {
    if a == b {
        return true;
    }
    let abs = a.abs() + b.abs();
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || abs < f64::MIN_POSITIVE {
        return diff < eps * f64::MIN_POSITIVE;
    }
    diff / abs.min(f64::MAX) < eps
}

/// Parses an `le` label value as Prometheus does (Go `strconv.ParseFloat`).
fn parse_le(s: &str) -> Option<f64> {
    match s {
        "+Inf" | "Inf" | "+inf" | "inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => s.parse::<f64>().ok(),
    }
}

impl Evaluator<'_> {
    /// `histogram_*` functions over instant vectors.
    pub fn eval_histogram_fn(&mut self, name: &str, args: &[&Expr]) -> Result<Matrix> {
        let name = name.to_string();
        match name.as_str() {
            "histogram_quantile" => self.range_eval(args, |ev, vs, _| {
                let q = vs[0].first().map_or(f64::NAN, |s| s.f);
                let input = std::mem::take(&mut vs[1]);
                Ok(ev.histogram_quantiles(&[q], None, input, "histogram_quantile"))
            }),
            "histogram_quantiles" => {
                let label = args.get(1).and_then(|a| super::functions::string_arg(a)).unwrap_or_default();
                if !storage::labels::is_valid_label_name(&label) {
                    return Err(QueryError::Execution(format!("invalid quantile label name {label:?}")));
                }
                self.range_eval(args, |ev, vs, _| {
                    let qs: Vec<f64> = vs[2..].iter().map(|v| v.first().map_or(f64::NAN, |s| s.f)).collect();
                    let input = std::mem::take(&mut vs[0]);
                    Ok(ev.histogram_quantiles(&qs, Some(&label), input, "histogram_quantiles"))
                })
            }
            "histogram_fraction" => self.range_eval(args, |ev, vs, _| {
                let (Some(lo), Some(hi)) = (vs[0].first().map(|s| s.f), vs[1].first().map(|s| s.f)) else {
                    return Ok(Vec::new());
                };
                let input = std::mem::take(&mut vs[2]);
                Ok(ev.histogram_fraction(lo, hi, input))
            }),
            "histogram_count" => self.range_eval(args, |_, vs, _| Ok(hist_only(std::mem::take(&mut vs[0]), |h| h.count))),
            "histogram_sum" => self.range_eval(args, |_, vs, _| Ok(hist_only(std::mem::take(&mut vs[0]), |h| h.sum))),
            "histogram_avg" => self.range_eval(args, |_, vs, _| Ok(hist_only(std::mem::take(&mut vs[0]), |h| h.sum / h.count))),
            "histogram_stddev" | "histogram_stdvar" => {
                let sd = name == "histogram_stddev";
                self.range_eval(args, move |_, vs, _| {
                    Ok(hist_only(std::mem::take(&mut vs[0]), |h| {
                        let v = hist_variance(h);
                        if sd {
                            v.sqrt()
                        } else {
                            v
                        }
                    }))
                })
            }
            other => Err(QueryError::BadData(format!("function {other:?} is not supported"))),
        }
    }

    /// `histogram_quantile` (one `q`, no label) and `histogram_quantiles` (several, each
    /// written into `label`), over native histograms and classic bucket groups.
    fn histogram_quantiles(&mut self, qs: &[f64], label: Option<&str>, input: Vector, fname: &str) -> Vector {
        for &q in qs {
            if !(0.0..=1.0).contains(&q) {
                self.warn_param(format!("quantile value should be between 0 and 1, got {}", fmt_go(q)), fname);
            }
        }
        let arg_idx = if label.is_some() { 0 } else { 1 };
        let Split { natives, order, groups } = self.split_histograms(input, fname, arg_idx);
        let mut out = Vec::new();
        for &q in qs {
            let with_q = |m: &Labels| match label {
                Some(l) => m.with(l, &format_openmetrics_float(q)),
                None => m.clone(),
            };
            for s in &natives {
                let h = s.h.as_ref().expect("native");
                let (v, note) = hist::quantile(q, h);
                let name = s.metric.metric_name().unwrap_or("").to_string();
                match note {
                    hist::NanNote::None => {}
                    hist::NanNote::ResultNaN => self.info_arg(
                        format!("input to histogram_quantile has NaN observations, result is NaN for metric name {name:?}"),
                        fname,
                        arg_idx,
                    ),
                    hist::NanNote::Skewed => self.info_arg(
                        format!("input to histogram_quantile has NaN observations, result is skewed higher for metric name {name:?}"),
                        fname,
                        arg_idx,
                    ),
                }
                out.push(Sample { metric: with_q(&s.metric), t: s.t, f: v, h: None, drop_name: true });
            }
            for key in &order {
                let Some((metric, buckets)) = groups.get(key) else { continue };
                let mut b = buckets.clone();
                let (v, forced) = bucket_quantile(q, &mut b);
                if forced {
                    let name = metric.metric_name().unwrap_or("").to_string();
                    self.info_arg(
                        format!("input to histogram_quantile needed to be fixed for monotonicity (see https://prometheus.io/docs/prometheus/latest/querying/functions/#histogram_quantile) for metric name {name:?}"),
                        fname,
                        arg_idx,
                    );
                }
                out.push(Sample { metric: with_q(metric), t: 0, f: v, h: None, drop_name: true });
            }
        }
        out
    }

    /// Prometheus `resetHistograms`: splits the input of `histogram_quantile(s)` and
    /// `histogram_fraction` (argument `arg_idx` of `fname`) into native histograms and classic
    /// bucket groups (keyed by the labels without `le`). A float without a parsable `le` is
    /// dropped with a warning; a native histogram and a classic group with the same labels are
    /// both dropped with a warning.
    fn split_histograms(&mut self, input: Vector, fname: &str, arg_idx: usize) -> Split {
        let mut natives: Vec<Sample> = Vec::new();
        let mut order: Vec<Labels> = Vec::new();
        let mut groups: HashMap<Labels, (Labels, Vec<CBucket>)> = HashMap::new();
        for s in input {
            if s.h.is_some() {
                natives.push(s);
                continue;
            }
            let Some(le) = s.metric.get("le").and_then(parse_le) else {
                let name = s.metric.metric_name().unwrap_or("").to_string();
                let raw = s.metric.get("le").unwrap_or("");
                let text = if name.is_empty() {
                    format!("bucket label \"le\" is missing or has a malformed value of {raw:?}")
                } else {
                    format!("bucket label \"le\" is missing or has a malformed value of {raw:?} for metric name {name:?}")
                };
                self.warn_arg(text, fname, arg_idx);
                continue;
            };
            let key = s.metric.without("le");
            let g = groups.entry(key.clone()).or_insert_with(|| {
                order.push(key.clone());
                (key.clone(), Vec::new())
            });
            g.1.push(CBucket { upper: le, count: s.f });
        }
        natives.retain(|s| {
            if groups.get(&s.metric).is_some_and(|g| !g.1.is_empty()) {
                let name = s.metric.metric_name().unwrap_or("").to_string();
                self.warn_arg(format!("vector contains a mix of classic and native histograms for metric name {name:?}"), fname, arg_idx);
                groups.remove(&s.metric);
                false
            } else {
                true
            }
        });
        Split { natives, order, groups }
    }

    /// `histogram_fraction(lower, upper, v)` over native histograms (with the NaN-observation
    /// info) and classic bucket groups (Prometheus `funcHistogramFraction`).
    fn histogram_fraction(&mut self, lower: f64, upper: f64, input: Vector) -> Vector {
        const FNAME: &str = "histogram_fraction";
        let Split { natives, order, mut groups } = self.split_histograms(input, FNAME, 2);
        let mut out = Vec::with_capacity(natives.len() + order.len());
        for s in natives {
            let Some(h) = s.h.as_ref() else { continue };
            let (f, nan_observations) = hist::fraction(lower, upper, h);
            if nan_observations {
                let name = s.metric.metric_name().unwrap_or("").to_string();
                self.info_arg(
                    format!("input to histogram_fraction has NaN observations, which are excluded from all fractions for metric name {name:?}"),
                    FNAME,
                    2,
                );
            }
            out.push(Sample { f, h: None, drop_name: true, ..s });
        }
        for key in order {
            let Some((metric, mut b)) = groups.remove(&key) else { continue };
            out.push(Sample { metric, t: 0, f: bucket_fraction(lower, upper, &mut b), h: None, drop_name: true });
        }
        out
    }
}

/// Prometheus `labels.FormatOpenMetricsFloat`: Go's shortest `%g` form, with `.0` appended to
/// integers.
fn format_openmetrics_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf".into() } else { "-Inf".into() };
    }
    let s = fmt_go(f);
    if s.contains('.') || s.contains('e') {
        s
    } else {
        format!("{s}.0")
    }
}

/// The input of the histogram functions split by kind (see `split_histograms`).
struct Split {
    natives: Vec<Sample>,
    /// Classic group keys in first-seen order.
    order: Vec<Labels>,
    groups: HashMap<Labels, (Labels, Vec<CBucket>)>,
}

/// Prometheus `BucketFraction` over one classic bucket group.
fn bucket_fraction(lower: f64, upper: f64, b: &mut Vec<CBucket>) -> f64 {
    b.sort_by(|x, y| x.upper.total_cmp(&y.upper));
    if b.last().is_none_or(|x| x.upper != f64::INFINITY) {
        return f64::NAN;
    }
    coalesce(b);
    let count = b[b.len() - 1].count;
    if count == 0.0 || lower.is_nan() || upper.is_nan() {
        return f64::NAN;
    }
    if lower >= upper {
        return 0.0;
    }
    let (mut rank, mut lr, mut ur) = (0.0, 0.0, 0.0);
    let (mut ls, mut us) = (false, false);
    // The first bucket starts at 0 if its upper bound is positive (positive buckets only),
    // otherwise at -Inf.
    let first_lower = if b[0].upper <= 0.0 { f64::NEG_INFINITY } else { 0.0 };
    for i in 0..b.len() {
        let lb = if i > 0 { b[i - 1].upper } else { first_lower };
        let ub = b[i].upper;
        let bc = b[i].count;
        // No interpolation inside a bucket of infinite width: the -Inf bucket counts in full,
        // the +Inf bucket not at all.
        let interp = |v: f64| {
            if lb == f64::NEG_INFINITY {
                bc
            } else if ub.is_infinite() {
                rank
            } else {
                rank + (bc - rank) * (v - lb) / (ub - lb)
            }
        };
        if !ls && lb >= lower {
            lr = rank;
            ls = true;
        }
        if !us && lb >= upper {
            ur = rank;
            us = true;
        }
        if ls && us {
            break;
        }
        if !ls && lb < lower && ub > lower {
            lr = interp(lower);
            ls = true;
        }
        if !us && lb < upper && ub > upper {
            ur = interp(upper);
            us = true;
        }
        if ls && us {
            break;
        }
        rank = bc;
    }
    if !ls || lr > count {
        lr = count;
    }
    if !us || ur > count {
        ur = count;
    }
    (ur - lr) / count
}

/// Applies `f` to histogram samples; float samples are dropped.
fn hist_only(v: Vector, f: impl Fn(&FloatHistogram) -> f64) -> Vector {
    v.into_iter()
        .filter_map(|s| {
            let h = s.h.as_ref()?;
            let val = f(h);
            Some(Sample { f: val, h: None, drop_name: true, ..s })
        })
        .collect()
}

/// Prometheus `histogram_stdvar`: bucket midpoints (geometric for exponential buckets,
/// arithmetic for custom, 0 for the zero bucket) weighted by counts, around `sum / count`.
fn hist_variance(h: &FloatHistogram) -> f64 {
    let mean = h.sum / h.count;
    let (mut var, mut c) = (0.0, 0.0);
    for b in hist::all_buckets(h) {
        if b.count == 0.0 {
            continue;
        }
        let val = if h.uses_custom_buckets() {
            (b.upper + b.lower) / 2.0
        } else if b.lower <= 0.0 && b.upper >= 0.0 {
            0.0
        } else {
            let v = (b.upper * b.lower).sqrt();
            if b.upper < 0.0 {
                -v
            } else {
                v
            }
        };
        let d = val - mean;
        (var, c) = kahan_inc(b.count * d * d, var, c);
    }
    (var + c) / h.count
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classic_quantile_interpolates() {
        let mut b = vec![
            CBucket { upper: 1.0, count: 10.0 },
            CBucket { upper: 2.0, count: 20.0 },
            CBucket { upper: f64::INFINITY, count: 20.0 },
        ];
        // rank 10 of 20 lands at the top of the first bucket.
        assert_eq!(bucket_quantile(0.5, &mut b).0, 1.0);
        assert_eq!(bucket_quantile(0.75, &mut b).0, 1.5);
        assert_eq!(bucket_quantile(1.0, &mut b).0, 2.0);
    }

    #[test]
    fn classic_quantile_fixes_monotonicity() {
        let mut b = vec![
            CBucket { upper: 1.0, count: 10.0 },
            CBucket { upper: 2.0, count: 8.0 },
            CBucket { upper: f64::INFINITY, count: 10.0 },
        ];
        let (_, forced) = bucket_quantile(0.5, &mut b);
        assert!(forced);
    }
}
