//! The rate family (Prometheus `functions.go`): `rate`, `increase` and `delta` with
//! extrapolation to the window boundaries (`extrapolatedRate`, `histogramRate`), their
//! `anchored` / `smoothed` variants without extrapolation (`extendedRate`,
//! `extendedHistogramRate`), and `irate` / `idelta` (`instantValue`).
//!
//! Start timestamps (Prometheus 3.x, [`super::start_ts`]): for `rate`/`increase`, `irate` and
//! `resets`, a sample whose start timestamp says its counter restarted since the previous
//! sample counts as a counter reset, and when the first sample of a window has a start
//! timestamp inside the window, a zero sample at that start timestamp replaces extrapolation
//! to the left (which also gives a value for a window with a single sample). `delta`, `idelta`
//! and the `anchored`/`smoothed` variants do not use them.

use std::sync::Arc;

use storage::FloatHistogram;

use super::selector::{interpolate, AnnoSink, Out, RangeMod, Window};
use super::start_ts::{is_st_reset, overlap_warning, st_at, st_overlaps};
use crate::histogram as hist;
use crate::value::FPoint;

fn counter_name_ok(name: &str) -> bool {
    name.ends_with("_total") || name.ends_with("_sum") || name.ends_with("_count") || name.ends_with("_bucket")
}

/// Prometheus `extendedRate`: rate/increase/delta over an `anchored` or `smoothed` window,
/// from the value at the range start (the sample at or before it, or for `smoothed` the
/// value interpolated there) to the value at the range end, without extrapolation.
fn extended_rate(w: &Window<'_>, is_counter: bool, is_rate: bool) -> Option<Out> {
    let f = w.floats;
    let smoothed = w.modifier == RangeMod::Smoothed;
    let (rs, re) = (w.range_start, w.range_end);
    let mut last = f.len() - 1;
    let mut first = f[..last].partition_point(|p| p.t <= rs).saturating_sub(1);
    if smoothed {
        last = f[..last].partition_point(|p| p.t < re);
    }
    if f[last].t <= rs {
        return None;
    }
    if smoothed && f[first].t > re {
        return None;
    }
    let left = if smoothed && f[first].t < rs && first + 1 < f.len() { interpolate(f[first], f[first + 1], rs, is_counter) } else { f[first].f };
    let right = if smoothed && last > 0 && f[last].t > re { interpolate(f[last - 1], f[last], re, is_counter) } else { f[last].f };
    let mut result = right - left;
    if is_counter {
        if f[first].t <= rs {
            first += 1;
        }
        let mut lst = last as i64;
        if f[last].t >= re {
            lst -= 1;
        }
        let inner: &[FPoint] = if (first as i64) <= lst { &f[first..=lst as usize] } else { &[] };
        let mut corr = 0.0;
        let mut prev = left;
        for p in inner {
            if p.f < prev {
                corr += prev;
            }
            prev = p.f;
        }
        if right < prev {
            corr += prev;
        }
        result += corr;
    }
    if is_rate {
        result /= w.range_ms as f64 / 1000.0;
    }
    Some(Out::F(result))
}

/// Prometheus `extrapolatedRate`.
pub(crate) fn extrapolated_rate(w: &Window<'_>, is_counter: bool, is_rate: bool, a: &mut AnnoSink<'_>, pos: &str) -> Option<Out> {
    let name = w.name;
    if w.modifier != RangeMod::None {
        if !w.floats.is_empty() && !w.hists.is_empty() {
            a.warn(format!("encountered a mix of histograms and floats for metric name {name:?}"), pos);
            return None;
        }
        if !w.hists.is_empty() {
            return extended_histogram_rate(w, is_counter, is_rate, a, pos);
        }
        if w.floats.is_empty() {
            return None;
        }
        return extended_rate(w, is_counter, is_rate);
    }
    if !w.floats.is_empty() && !w.hists.is_empty() {
        a.warn(format!("encountered a mix of histograms and floats for metric name {name:?}"), pos);
        return None;
    }
    let (first_t, last_t, n_minus_1, mut result_f, mut result_h, first_f, first_hc, sts);
    if !w.hists.is_empty() {
        n_minus_1 = w.hists.len() - 1;
        first_t = w.hists[0].t;
        last_t = w.hists[n_minus_1].t;
        sts = w.hist_sts;
        result_h = if w.hists.len() > 1 { Some(histogram_rate(w.hists, sts, is_counter, name, a, pos)?) } else { None };
        result_f = 0.0;
        first_f = 0.0;
        first_hc = w.hists[0].h.count;
    } else if !w.floats.is_empty() {
        n_minus_1 = w.floats.len() - 1;
        first_t = w.floats[0].t;
        last_t = w.floats[n_minus_1].t;
        result_f = w.floats[n_minus_1].f - w.floats[0].f;
        result_h = None;
        first_f = w.floats[0].f;
        first_hc = 0.0;
        // delta() reads no start timestamps (Prometheus leaves them out for gauges).
        sts = if is_counter { w.float_sts } else { &[] };
        if is_counter {
            if sts.is_empty() {
                let mut prev = w.floats[0].f;
                for p in &w.floats[1..] {
                    if p.f < prev {
                        result_f += prev;
                    }
                    prev = p.f;
                }
            } else {
                let mut overlap_seen = false;
                for i in 1..w.floats.len() {
                    let (prev, cur) = (w.floats[i - 1], w.floats[i]);
                    let (prev_st, cur_st) = (st_at(sts, i - 1), st_at(sts, i));
                    if !overlap_seen && st_overlaps(prev_st, prev.t, cur_st) {
                        a.warn(overlap_warning(name), pos);
                        overlap_seen = true;
                    }
                    if cur.f < prev.f || is_st_reset(prev_st, prev.t, cur_st, cur.t) {
                        result_f += prev.f;
                    }
                }
            }
        }
    } else {
        return None;
    }
    let st0 = if is_counter { st_at(sts, 0) } else { 0 };
    let st_start = st0 != 0 && st0 > w.range_start && st0 < first_t;
    if !st_start && n_minus_1 == 0 {
        // One sample and no start timestamp to measure the increase from.
        return None;
    }
    if is_counter && !w.floats.is_empty() && !name.is_empty() && !counter_name_ok(name) {
        a.info(format!("metric might not be a counter, name does not end in _total/_sum/_count/_bucket: {name:?}"), pos);
    }
    let mut to_start = (first_t - w.range_start) as f64 / 1000.0;
    let mut to_end = (w.range_end - last_t) as f64 / 1000.0;
    let mut sampled = (last_t - first_t) as f64 / 1000.0;
    let avg_between = if n_minus_1 > 0 { sampled / n_minus_1 as f64 } else { 0.0 };
    let threshold = avg_between * 1.1;
    if st_start {
        // A zero sample at the first sample's start timestamp, inside the window, replaces
        // extrapolation to the left.
        to_start = 0.0;
        sampled = (last_t - st0) as f64 / 1000.0;
        if w.hists.is_empty() {
            result_f += first_f;
        } else {
            let first = &w.hists[0].h;
            result_h = Some(match result_h.take() {
                None => (**first).clone(),
                Some(h) => {
                    let mut annos = Vec::new();
                    match hist::add_sub(&h, first, false, &mut annos) {
                        Ok(h) => h,
                        Err(_) => {
                            a.warn(format!("vector contains a mix of histograms with exponential and custom buckets schemas for metric name {name:?}"), pos);
                            return None;
                        }
                    }
                }
            });
        }
    } else {
        if to_start >= threshold {
            to_start = avg_between / 2.0;
        }
        if is_counter {
            let mut to_zero = to_start;
            if let Some(h) = &result_h {
                if h.count > 0.0 && first_hc >= 0.0 {
                    to_zero = sampled * (first_hc / h.count);
                }
            } else if result_f > 0.0 && first_f >= 0.0 {
                to_zero = sampled * (first_f / result_f);
            }
            if to_zero < to_start {
                to_start = to_zero;
            }
        }
    }
    if to_end >= threshold {
        to_end = avg_between / 2.0;
    }
    let mut factor = if sampled != 0.0 { (sampled + to_start + to_end) / sampled } else { 1.0 };
    if is_rate {
        factor /= w.range_ms as f64 / 1000.0;
    }
    match result_h.take() {
        Some(h) => Some(Out::H(Arc::new(hist::scale(&h, factor)))),
        None => {
            result_f *= factor;
            Some(Out::F(result_f))
        }
    }
}

/// Prometheus `histogramRate`: last minus first, adding back what was lost at each counter
/// reset. A reset between the first two samples replaces the first by an empty histogram of
/// the second's layout, so that an incompatible first sample does not matter. `sts` are the
/// samples' start timestamps (empty: none); a start-timestamp reset counts as a reset.
fn histogram_rate(
    hs: &[crate::value::HPoint],
    sts: &[i64],
    is_counter: bool,
    name: &str,
    a: &mut AnnoSink<'_>,
    pos: &str,
) -> Option<FloatHistogram> {
    use storage::histogram::CounterResetHint::Gauge;
    let last = &hs[hs.len() - 1].h;
    let mixed_schemas = |a: &mut AnnoSink<'_>| {
        a.warn(format!("vector contains a mix of histograms with exponential and custom buckets schemas for metric name {name:?}"), pos);
    };
    if is_counter && (hs[0].h.counter_reset_hint == Gauge || last.counter_reset_hint == Gauge) {
        a.warn(format!("this native histogram metric is not a counter: {name:?}"), pos);
    }
    let mut prev0: FloatHistogram = (*hs[0].h).clone();
    let st_reset = |i: usize| !sts.is_empty() && is_st_reset(st_at(sts, i - 1), hs[i - 1].t, st_at(sts, i), hs[i].t);
    if is_counter && (st_reset(1) || hist::detect_reset(&hs[1].h, &hs[0].h)) {
        prev0 = FloatHistogram {
            schema: hs[1].h.schema,
            custom_values: hs[1].h.custom_values.clone(),
            ..FloatHistogram::default()
        };
    }
    let custom = prev0.uses_custom_buckets();
    if last.uses_custom_buckets() != custom {
        mixed_schemas(a);
        return None;
    }
    if is_counter {
        let mut gauge_seen = false;
        for p in &hs[1..hs.len() - 1] {
            if p.h.counter_reset_hint == Gauge && !gauge_seen {
                a.warn(format!("this native histogram metric is not a counter: {name:?}"), pos);
                gauge_seen = true;
            }
            if p.h.uses_custom_buckets() != custom {
                mixed_schemas(a);
                return None;
            }
        }
    }
    let mut annos = Vec::new();
    let mut res = match hist::add_sub(last, &prev0, true, &mut annos) {
        Ok(h) => h,
        Err(_) => {
            mixed_schemas(a);
            return None;
        }
    };
    report_reconciled(&annos, "subtraction", a, pos);
    if is_counter {
        let mut annos = Vec::new();
        let mut prev: &FloatHistogram = &prev0;
        let mut overlap_seen = false;
        for (i, p) in hs.iter().enumerate().skip(1) {
            if !overlap_seen && !sts.is_empty() && st_overlaps(st_at(sts, i - 1), hs[i - 1].t, st_at(sts, i)) {
                a.warn(overlap_warning(name), pos);
                overlap_seen = true;
            }
            if st_reset(i) || hist::detect_reset(&p.h, prev) {
                match hist::add_sub(&res, prev, false, &mut annos) {
                    Ok(h) => res = h,
                    Err(_) => {
                        mixed_schemas(a);
                        return None;
                    }
                }
            }
            prev = &p.h;
        }
        report_reconciled(&annos, "addition", a, pos);
    } else if hs[0].h.counter_reset_hint != Gauge || last.counter_reset_hint != Gauge {
        a.warn(format!("this native histogram metric is not a gauge: {name:?}"), pos);
    }
    res.counter_reset_hint = Gauge;
    hist::compact(&mut res);
    Some(res)
}

/// Reports the infos of histogram arithmetic (mismatched custom buckets reconciled during
/// `op`); conflicting counter-reset hints are dropped, as the rate functions handle counter
/// resets themselves.
fn report_reconciled(annos: &hist::HistAnnos, op: &str, a: &mut AnnoSink<'_>, pos: &str) {
    for &(warn, t) in annos {
        if !warn {
            a.info(format!("{t} {op}"), pos);
        }
    }
}

/// Prometheus `instantValue` (irate, idelta).
pub(crate) fn instant_value(w: &Window<'_>, is_rate: bool, a: &mut AnnoSink<'_>, pos: &str) -> Option<Out> {
    // Merge the last two samples of both kinds, each with its start timestamp.
    let mut last: Vec<(i64, Option<f64>, Option<&Arc<FloatHistogram>>, i64)> = Vec::new();
    for (k, p) in w.floats.iter().enumerate().rev().take(2) {
        last.push((p.t, Some(p.f), None, st_at(w.float_sts, k)));
    }
    for (k, p) in w.hists.iter().enumerate().rev().take(2) {
        last.push((p.t, None, Some(&p.h), st_at(w.hist_sts, k)));
    }
    last.sort_by(|x, y| y.0.cmp(&x.0));
    if last.len() < 2 {
        return None;
    }
    let (lt, lf, lh, lst) = last[0];
    let (pt, pf, ph, pst) = last[1];
    let dt = lt - pt;
    if dt == 0 {
        return None;
    }
    let st_reset = is_rate && is_st_reset(pst, pt, lst, lt);
    match (lf, pf, lh, ph) {
        (Some(l), Some(p), _, _) => {
            let mut v = if is_rate && (l < p || st_reset) { l } else { l - p };
            if is_rate {
                v /= dt as f64 / 1000.0;
            }
            Some(Out::F(v))
        }
        (_, _, Some(l), Some(p)) => {
            use storage::histogram::CounterResetHint::Gauge;
            let name = w.metric.metric_name().unwrap_or("");
            if is_rate && (l.counter_reset_hint == Gauge || p.counter_reset_hint == Gauge) {
                a.warn(format!("this native histogram metric is not a counter: {name:?}"), pos);
            } else if !is_rate && (l.counter_reset_hint != Gauge || p.counter_reset_hint != Gauge) {
                a.warn(format!("this native histogram metric is not a gauge: {name:?}"), pos);
            }
            // A counter reset (for irate) leaves the last sample as it is, so a change of bucket
            // layout across the reset is no incompatibility. Conflicting counter-reset hints
            // are ignored here: resets are handled explicitly.
            let mut h = if is_rate && (st_reset || hist::detect_reset(l, p)) {
                (**l).clone()
            } else {
                let mut annos = Vec::new();
                let h = match hist::add_sub(l, p, true, &mut annos) {
                    Ok(h) => h,
                    Err(e) => {
                        a.warn(format!("{e} for metric name {name:?}"), pos);
                        return None;
                    }
                };
                report_reconciled(&annos, "subtraction", a, pos);
                h
            };
            if is_rate {
                h = hist::div(&h, dt as f64 / 1000.0);
            }
            h.counter_reset_hint = storage::histogram::CounterResetHint::Gauge;
            hist::compact(&mut h);
            Some(Out::H(Arc::new(h)))
        }
        _ => {
            let name = w.metric.metric_name().unwrap_or("");
            a.warn(format!("encountered a mix of histograms and floats for metric name {name:?}"), pos);
            None
        }
    }
}


/// Linear interpolation between two histograms at `t`; for counters a reset between them is
/// read as a restart from zero (Prometheus `interpolateHistograms`).
fn interpolate_hist(
    p1: &crate::value::HPoint,
    p2: &crate::value::HPoint,
    t: i64,
    is_counter: bool,
    annos: &mut hist::HistAnnos,
) -> Result<FloatHistogram, &'static str> {
    if t == p1.t {
        return Ok((*p1.h).clone());
    }
    if t == p2.t {
        return Ok((*p2.h).clone());
    }
    let frac = (t - p1.t) as f64 / (p2.t - p1.t) as f64;
    if is_counter && hist::detect_reset(&p2.h, &p1.h) {
        return Ok(hist::scale(&p2.h, frac));
    }
    let d = hist::add_sub(&p2.h, &p1.h, true, annos)?;
    hist::add_sub(&hist::scale(&d, frac), &p1.h, false, annos)
}

/// Prometheus `extendedHistogramRate`: rate/increase/delta of histograms over an `anchored`
/// or `smoothed` window.
fn extended_histogram_rate(w: &Window<'_>, is_counter: bool, is_rate: bool, a: &mut AnnoSink<'_>, pos: &str) -> Option<Out> {
    use storage::histogram::CounterResetHint::Gauge;
    let h = w.hists;
    let name = w.metric.metric_name().unwrap_or("").to_string();
    let smoothed = w.modifier == RangeMod::Smoothed;
    let (rs, re) = (w.range_start, w.range_end);
    let mut last = h.len() - 1;
    let first = h[..last].partition_point(|p| p.t <= rs).saturating_sub(1);
    if smoothed {
        last = h[..last].partition_point(|p| p.t < re);
    }
    if h[last].t <= rs || (smoothed && h[first].t > re) {
        return None;
    }
    let custom = h[first].h.uses_custom_buckets();
    let mut not_counter = false;
    for p in &h[first..=last] {
        if p.h.uses_custom_buckets() != custom {
            a.warn(format!("vector contains a mix of histograms with exponential and custom buckets schemas for metric name {name:?}"), pos);
            return None;
        }
        if is_counter && p.h.counter_reset_hint == Gauge {
            not_counter = true;
        }
    }
    if not_counter {
        a.warn(format!("this native histogram metric is not a counter: {name:?}"), pos);
    }
    let mut annos: hist::HistAnnos = Vec::new();
    let left = if smoothed && h[first].t < rs && first + 1 < h.len() {
        interpolate_hist(&h[first], &h[first + 1], rs, is_counter, &mut annos).ok()?
    } else {
        (*h[first].h).clone()
    };
    let right = if smoothed && last > 0 && h[last].t > re {
        interpolate_hist(&h[last - 1], &h[last], re, is_counter, &mut annos).ok()?
    } else {
        (*h[last].h).clone()
    };
    if !is_counter && (left.counter_reset_hint != Gauge || right.counter_reset_hint != Gauge) {
        a.warn(format!("this native histogram metric is not a gauge: {name:?}"), pos);
    }
    let mut result = hist::add_sub(&right, &left, true, &mut annos).ok()?;
    if is_counter {
        let mut lo = first + 1;
        let mut prev: FloatHistogram = left.clone();
        if smoothed && h[first].t < rs && first + 1 < h.len() && hist::detect_reset(&h[first + 1].h, &h[first].h) {
            prev = (*h[first + 1].h).clone();
            lo += 1;
        }
        let hi = last as i64 - 1;
        if (lo as i64) <= hi + 1 {
            let mut correction: Option<FloatHistogram> = None;
            let mut add = |c: &FloatHistogram, annos: &mut hist::HistAnnos| -> Option<()> {
                correction = Some(match correction.take() {
                    None => c.clone(),
                    Some(acc) => hist::add_sub(&acc, c, false, annos).ok()?,
                });
                Some(())
            };
            if (lo as i64) <= hi {
                for p in &h[lo..=hi as usize] {
                    if hist::detect_reset(&p.h, &prev) {
                        add(&prev, &mut annos)?;
                    }
                    prev = (*p.h).clone();
                }
            }
            if hist::detect_reset(&right, &prev) {
                add(&prev, &mut annos)?;
            }
            if let Some(c) = correction {
                result = hist::add_sub(&result, &c, false, &mut annos).ok()?;
            }
        }
    }
    for (warn, t) in annos {
        let text = format!("{t} subtraction");
        if warn {
            a.warn(text, pos);
        } else {
            a.info(text, pos);
        }
    }
    if is_rate {
        result = hist::scale(&result, 1000.0 / w.range_ms as f64);
    }
    result.counter_reset_hint = Gauge;
    hist::compact(&mut result);
    Some(Out::H(Arc::new(result)))
}
