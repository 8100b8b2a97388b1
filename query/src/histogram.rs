//! Native histogram arithmetic for the engine (Prometheus `model/histogram/float_histogram.go`
//! and `promql/quantile.go`): addition and subtraction across schemas and zero thresholds,
//! scaling, compaction, bucket iteration with bounds, quantiles and fractions.
//!
//! Work is done on a sparse map `bucket index → count` per sign, which makes schema reduction
//! (merging `2^(a-b)` neighbouring buckets) and zero-bucket widening simple; the result is
//! turned back into spans. Compensated sums and means live in `kahan`, the trim operators
//! in `trim`.

mod kahan;
mod trim;

use std::collections::BTreeMap;

use storage::histogram::{CounterResetHint, Span, CUSTOM_BUCKETS_SCHEMA};
use storage::{FloatHistogram, Labels};

pub(crate) use kahan::HistAcc;
pub(crate) use trim::trim;

/// One bucket with its bounds. `lower`/`upper` are inclusive/exclusive per sign as in
/// Prometheus; for iteration only the values matter.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Bucket {
    pub lower: f64,
    pub upper: f64,
    pub count: f64,
}

/// Expands spans + counts into `(index, count)` pairs.
pub(crate) fn expand(spans: &[Span], counts: &[f64]) -> Vec<(i32, f64)> {
    let mut out = Vec::with_capacity(counts.len());
    let mut idx = 0i32;
    let mut ci = 0usize;
    // The first span's offset is the absolute start index; later ones are gaps.
    for s in spans {
        idx += s.offset;
        for _ in 0..s.length {
            if let Some(&c) = counts.get(ci) {
                out.push((idx, c));
            }
            idx += 1;
            ci += 1;
        }
    }
    out
}

/// Builds spans + counts from sorted `(index, count)` pairs, dropping zero counts.
pub(crate) fn collapse(pairs: impl IntoIterator<Item = (i32, f64)>) -> (Vec<Span>, Vec<f64>) {
    collapse_keep(pairs.into_iter().filter(|&(_, c)| c != 0.0))
}

/// Upper bound of exponential bucket `idx` at `schema`: `2^(idx * 2^-schema)`.
pub(crate) fn bucket_bound(idx: i32, schema: i32) -> f64 {
    if schema <= 0 {
        let e = (idx as i64) << (-schema) as i64;
        return ldexp(1.0, e);
    }
    let per = 1i64 << schema;
    let i = idx as i64;
    let exp = i.div_euclid(per);
    let frac = i.rem_euclid(per);
    ldexp(2f64.powf(frac as f64 / per as f64), exp)
}

fn ldexp(x: f64, e: i64) -> f64 {
    if e > 2000 {
        return f64::INFINITY;
    }
    if e < -2100 {
        return 0.0;
    }
    let mut r = x;
    let mut e = e;
    while e > 1000 {
        r *= 2f64.powi(1000);
        e -= 1000;
    }
    while e < -1000 {
        r *= 2f64.powi(-1000);
        e += 1000;
    }
    r * 2f64.powi(e as i32)
}

/// All buckets in ascending value order: negative (most negative first), zero, positive.
pub(crate) fn all_buckets(h: &FloatHistogram) -> Vec<Bucket> {
    let mut out = Vec::new();
    if h.uses_custom_buckets() {
        for (i, c) in expand(&h.positive_spans, &h.positive_buckets) {
            let i = i as usize;
            let lower = if i == 0 { f64::NEG_INFINITY } else { h.custom_values.get(i - 1).copied().unwrap_or(f64::INFINITY) };
            let upper = h.custom_values.get(i).copied().unwrap_or(f64::INFINITY);
            out.push(Bucket { lower, upper, count: c });
        }
        return out;
    }
    // Prometheus `allFloatBucketIterator`: the zero bucket only when populated, and bucket
    // bounds that reach into the zero bucket clamped to the zero threshold.
    let zt = h.zero_threshold;
    let mut neg = expand(&h.negative_spans, &h.negative_buckets);
    neg.reverse();
    for (i, c) in neg {
        let upper = -bucket_bound(i - 1, h.schema);
        out.push(Bucket { lower: -bucket_bound(i, h.schema), upper: if upper < 0.0 && upper > -zt { -zt } else { upper }, count: c });
    }
    if h.zero_count > 0.0 {
        out.push(Bucket { lower: -zt, upper: zt, count: h.zero_count });
    }
    for (i, c) in expand(&h.positive_spans, &h.positive_buckets) {
        let lower = bucket_bound(i - 1, h.schema);
        out.push(Bucket { lower: if lower > 0.0 && lower < zt { zt } else { lower }, upper: bucket_bound(i, h.schema), count: c });
    }
    out
}

/// `h / s` (Prometheus `FloatHistogram.Div`): dividing by zero sets count, sum and zero count
/// to ±Inf or NaN and removes all buckets; a negative divisor makes the result a gauge.
pub(crate) fn div(h: &FloatHistogram, s: f64) -> FloatHistogram {
    if s != 0.0 {
        return scale(h, 1.0 / s);
    }
    let mut o = h.clone();
    o.count /= s;
    o.sum /= s;
    o.zero_count /= s;
    o.positive_spans.clear();
    o.positive_buckets.clear();
    o.negative_spans.clear();
    o.negative_buckets.clear();
    o
}

/// `h * f` (Prometheus `FloatHistogram.Mul`): a negative factor makes the result a gauge.
pub(crate) fn scale(h: &FloatHistogram, f: f64) -> FloatHistogram {
    let mut o = h.clone();
    if f < 0.0 {
        o.counter_reset_hint = CounterResetHint::Gauge;
    }
    o.count *= f;
    o.sum *= f;
    o.zero_count *= f;
    for b in o.positive_buckets.iter_mut() {
        *b *= f;
    }
    for b in o.negative_buckets.iter_mut() {
        *b *= f;
    }
    o
}

/// Reduces bucket index `i` from schema `from` to the coarser `to`.
fn reduce_index(i: i32, from: i32, to: i32) -> i32 {
    let shift = from - to;
    // Bucket i at schema s covers (base^(i-1), base^i]; at schema s-d the index is ceil(i / 2^d).
    ((i as i64 - 1).div_euclid(1 << shift) + 1) as i32
}

fn to_map(spans: &[Span], counts: &[f64], from: i32, to: i32, zt: f64, zero: &mut f64) -> BTreeMap<i32, f64> {
    let mut m = BTreeMap::new();
    for (i, c) in expand(spans, counts) {
        let j = if from == to || from == CUSTOM_BUCKETS_SCHEMA { i } else { reduce_index(i, from, to) };
        // Prometheus `zeroCountForLargerThreshold`: a bucket whose lower bound (in absolute
        // value, at its own schema) is below the widened threshold joins the zero bucket.
        if from != CUSTOM_BUCKETS_SCHEMA && zt > 0.0 && bucket_bound(i - 1, from) < zt {
            *zero += c;
            continue;
        }
        *m.entry(j).or_insert(0.0) += c;
    }
    m
}

/// The custom bounds of `a` and `b` reconciled: the bounds both have (Prometheus keeps the
/// intersection so that each merged bucket is a union of original buckets).
fn common_bounds(a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter().copied().filter(|x| b.contains(x)).collect()
}

fn rebucket_custom(h: &FloatHistogram, bounds: &[f64]) -> BTreeMap<i32, f64> {
    let mut m = BTreeMap::new();
    for (i, c) in expand(&h.positive_spans, &h.positive_buckets) {
        let upper = h.custom_values.get(i as usize).copied().unwrap_or(f64::INFINITY);
        let j = bounds.partition_point(|&b| b < upper) as i32;
        *m.entry(j).or_insert(0.0) += c;
    }
    m
}

/// Annotation texts raised by histogram arithmetic: `(is_warning, text)`. The caller adds the
/// operation (`addition`, `subtraction`, `aggregation`): texts end in "during" or
/// "during histogram" as Prometheus' annotations do.
pub(crate) type HistAnnos = Vec<(bool, &'static str)>;

/// `a + b` or `a - b`.
///
/// # Errors
/// The warning text when an exponential and a custom-bucket histogram meet.
pub(crate) fn add_sub(a: &FloatHistogram, b: &FloatHistogram, sub: bool, annos: &mut HistAnnos) -> Result<FloatHistogram, &'static str> {
    let sign = if sub { -1.0 } else { 1.0 };
    let ac = a.uses_custom_buckets();
    let bc = b.uses_custom_buckets();
    if ac != bc {
        return Err("vector contains a mix of histograms with exponential and custom buckets schemas");
    }
    let hint = combine_hints(a.counter_reset_hint, b.counter_reset_hint, annos);
    if ac {
        let (bounds, am, bm) = if a.custom_values == b.custom_values {
            let mut z = 0.0;
            (
                a.custom_values.clone(),
                to_map(&a.positive_spans, &a.positive_buckets, CUSTOM_BUCKETS_SCHEMA, CUSTOM_BUCKETS_SCHEMA, 0.0, &mut z),
                to_map(&b.positive_spans, &b.positive_buckets, CUSTOM_BUCKETS_SCHEMA, CUSTOM_BUCKETS_SCHEMA, 0.0, &mut z),
            )
        } else {
            annos.push((false, "mismatched custom buckets were reconciled during"));
            let bounds = common_bounds(&a.custom_values, &b.custom_values);
            let am = rebucket_custom(a, &bounds);
            let bm = rebucket_custom(b, &bounds);
            (bounds, am, bm)
        };
        let mut m = am;
        for (i, c) in bm {
            *m.entry(i).or_insert(0.0) += sign * c;
        }
        let (spans, counts) = collapse_keep(m);
        return Ok(FloatHistogram {
            counter_reset_hint: hint,
            schema: CUSTOM_BUCKETS_SCHEMA,
            zero_threshold: 0.0,
            zero_count: 0.0,
            count: a.count + sign * b.count,
            sum: a.sum + sign * b.sum,
            positive_spans: spans,
            positive_buckets: counts,
            negative_spans: Vec::new(),
            negative_buckets: Vec::new(),
            custom_values: bounds,
        });
    }
    let schema = a.schema.min(b.schema);
    let zt = reconciled_zero_threshold(a, b);
    let mut zero = a.zero_count + sign * b.zero_count;
    let mut za = 0.0;
    let mut zb = 0.0;
    let mut pa = to_map(&a.positive_spans, &a.positive_buckets, a.schema, schema, if zt > a.zero_threshold { zt } else { 0.0 }, &mut za);
    let mut na = to_map(&a.negative_spans, &a.negative_buckets, a.schema, schema, if zt > a.zero_threshold { zt } else { 0.0 }, &mut za);
    let pb = to_map(&b.positive_spans, &b.positive_buckets, b.schema, schema, if zt > b.zero_threshold { zt } else { 0.0 }, &mut zb);
    let nb = to_map(&b.negative_spans, &b.negative_buckets, b.schema, schema, if zt > b.zero_threshold { zt } else { 0.0 }, &mut zb);
    zero += za + sign * zb;
    for (i, c) in pb {
        *pa.entry(i).or_insert(0.0) += sign * c;
    }
    for (i, c) in nb {
        *na.entry(i).or_insert(0.0) += sign * c;
    }
    let (ps, pc) = collapse_keep(pa);
    let (ns, nc) = collapse_keep(na);
    Ok(FloatHistogram {
        counter_reset_hint: hint,
        schema,
        zero_threshold: zt,
        zero_count: zero,
        count: a.count + sign * b.count,
        sum: a.sum + sign * b.sum,
        positive_spans: ps,
        positive_buckets: pc,
        negative_spans: ns,
        negative_buckets: nc,
        custom_values: Vec::new(),
    })
}

/// Prometheus `reconcileZeroBuckets`: the smallest zero threshold at least as wide as both
/// that lies inside no populated bucket of either histogram.
fn reconciled_zero_threshold(a: &FloatHistogram, b: &FloatHistogram) -> f64 {
    let mut zt = a.zero_threshold.max(b.zero_threshold);
    if a.zero_threshold == b.zero_threshold {
        return zt;
    }
    let sides = |h: &FloatHistogram| (expand(&h.positive_spans, &h.positive_buckets), expand(&h.negative_spans, &h.negative_buckets));
    let ((pa, na), (pb, nb)) = (sides(a), sides(b));
    // Each round moves the threshold up to a bucket bound of one of them, so it ends within
    // the number of buckets of both.
    for _ in 0..=(pa.len() + na.len() + pb.len() + nb.len()) {
        let ta = if zt > a.zero_threshold { larger_threshold(a.schema, &pa, &na, zt) } else { zt };
        let tb = if zt > b.zero_threshold { larger_threshold(b.schema, &pb, &nb, zt) } else { zt };
        let next = ta.max(tb);
        if next == zt {
            break;
        }
        zt = next;
    }
    zt
}

fn combine_hints(a: CounterResetHint, b: CounterResetHint, annos: &mut HistAnnos) -> CounterResetHint {
    // Prometheus `FloatHistogram.adjustCounterReset`.
    use CounterResetHint::*;
    if a == b {
        return a;
    }
    match (a, b) {
        (Gauge, _) | (_, Gauge) => Gauge,
        (Unknown, _) | (_, Unknown) => Unknown,
        _ => {
            annos.push((true, "conflicting counter resets during histogram"));
            Unknown
        }
    }
}

/// Builds spans + counts from sorted `(index, count)` pairs, keeping zero counts (so a zero
/// bucket between populated ones stays in its span).
fn collapse_keep(pairs: impl IntoIterator<Item = (i32, f64)>) -> (Vec<Span>, Vec<f64>) {
    let mut spans: Vec<Span> = Vec::new();
    let mut counts = Vec::new();
    let mut next: Option<i32> = None;
    for (i, c) in pairs {
        match next {
            Some(n) if n == i => spans.last_mut().expect("span exists").length += 1,
            Some(n) => spans.push(Span { offset: i - n, length: 1 }),
            None => spans.push(Span { offset: i, length: 1 }),
        }
        counts.push(c);
        next = Some(i + 1);
    }
    (spans, counts)
}

/// Drops zero-count buckets and merges spans (Prometheus `Compact(0)`).
pub(crate) fn compact(h: &mut FloatHistogram) {
    let (ps, pc) = collapse(expand(&h.positive_spans, &h.positive_buckets));
    let (ns, nc) = collapse(expand(&h.negative_spans, &h.negative_buckets));
    h.positive_spans = ps;
    h.positive_buckets = pc;
    h.negative_spans = ns;
    h.negative_buckets = nc;
}

/// Exact equality after compaction (the `==` operator on histograms).
pub(crate) fn equals(a: &FloatHistogram, b: &FloatHistogram) -> bool {
    let mut a = a.clone();
    let mut b = b.clone();
    compact(&mut a);
    compact(&mut b);
    a.schema == b.schema
        && a.zero_threshold == b.zero_threshold
        && a.zero_count == b.zero_count
        && a.count == b.count
        && (a.sum == b.sum || (a.sum.is_nan() && b.sum.is_nan()))
        && a.positive_spans == b.positive_spans
        && a.positive_buckets == b.positive_buckets
        && a.negative_spans == b.negative_spans
        && a.negative_buckets == b.negative_buckets
        && a.custom_values == b.custom_values
}

/// True if `cur` shows a counter reset relative to `prev` (Prometheus `DetectReset`): the
/// hint decides if it is `CounterReset` or `NotCounterReset`; otherwise a lower count, a
/// change between exponential and custom buckets, a higher schema, a narrower zero bucket, a
/// lower zero count (after widening `prev`'s zero bucket to `cur`'s threshold) or any bucket
/// that went down (after merging `prev` to `cur`'s schema) is a reset. Custom buckets with
/// different bounds are compared on the bounds both have.
pub(crate) fn detect_reset(cur: &FloatHistogram, prev: &FloatHistogram) -> bool {
    match cur.counter_reset_hint {
        CounterResetHint::CounterReset => return true,
        CounterResetHint::NotCounterReset => return false,
        CounterResetHint::Gauge | CounterResetHint::Unknown => {}
    }
    if cur.count < prev.count {
        return true;
    }
    if cur.uses_custom_buckets() {
        if !prev.uses_custom_buckets() {
            return true;
        }
        if cur.custom_values != prev.custom_values {
            return custom_bounds_reset(cur, prev);
        }
    } else if prev.uses_custom_buckets() {
        return true;
    }
    if cur.schema > prev.schema {
        return true;
    }
    if cur.zero_threshold < prev.zero_threshold {
        return true;
    }
    let (prev_zero, threshold) = zero_count_for_larger_threshold(prev, cur.zero_threshold);
    if threshold != cur.zero_threshold {
        // The new threshold lies inside a populated bucket of `prev`.
        return true;
    }
    if cur.zero_count < prev_zero {
        return true;
    }
    let custom = cur.uses_custom_buckets();
    for (cs, cc, ps, pc) in [
        (&cur.positive_spans, &cur.positive_buckets, &prev.positive_spans, &prev.positive_buckets),
        (&cur.negative_spans, &cur.negative_buckets, &prev.negative_spans, &prev.negative_buckets),
    ] {
        let above = |i: i32| custom || bucket_bound(i, cur.schema) > cur.zero_threshold;
        let now = merged(cs, cc, cur.schema, cur.schema);
        for (i, c) in merged(ps, pc, prev.schema, cur.schema) {
            if !above(i) {
                continue;
            }
            match now.get(&i) {
                Some(&n) if n < c => return true,
                Some(_) => {}
                None if c != 0.0 => return true,
                None => {}
            }
        }
    }
    false
}

/// Buckets merged from schema `from` to the coarser (or equal) `to`, zero counts kept.
fn merged(spans: &[Span], counts: &[f64], from: i32, to: i32) -> BTreeMap<i32, f64> {
    let mut m = BTreeMap::new();
    for (i, c) in expand(spans, counts) {
        let j = if from == to || from == CUSTOM_BUCKETS_SCHEMA { i } else { reduce_index(i, from, to) };
        *m.entry(j).or_insert(0.0) += c;
    }
    m
}

/// Prometheus `detectResetWithMismatchedCustomBounds`: at each bound both histograms have (and
/// at +Inf), the counts of the buckets up to it that were not yet compared must not go down.
fn custom_bounds_reset(cur: &FloatHistogram, prev: &FloatHistogram) -> bool {
    let with_upper = |h: &FloatHistogram| -> Vec<(f64, f64)> {
        expand(&h.positive_spans, &h.positive_buckets)
            .into_iter()
            .map(|(i, c)| (h.custom_values.get(i as usize).copied().unwrap_or(f64::INFINITY), c))
            .collect()
    };
    let (cb, pb) = (with_upper(cur), with_upper(prev));
    let (mut ci, mut pi) = (0, 0);
    for bound in common_bounds(&cur.custom_values, &prev.custom_values).into_iter().chain(std::iter::once(f64::INFINITY)) {
        let (mut cs, mut ps) = (0.0, 0.0);
        while ci < cb.len() && cb[ci].0 <= bound {
            cs += cb[ci].1;
            ci += 1;
        }
        while pi < pb.len() && pb[pi].0 <= bound {
            ps += pb[pi].1;
            pi += 1;
        }
        if cs < ps {
            return true;
        }
    }
    false
}

/// Prometheus `zeroCountForLargerThreshold`: `h`'s zero count if its zero bucket were widened
/// to `larger` (≥ `h.zero_threshold`), and the threshold actually reached (see
/// [`larger_threshold`]).
pub(crate) fn zero_count_for_larger_threshold(h: &FloatHistogram, larger: f64) -> (f64, f64) {
    if larger == h.zero_threshold || h.uses_custom_buckets() {
        return (h.zero_count, larger);
    }
    let pos = expand(&h.positive_spans, &h.positive_buckets);
    let neg = expand(&h.negative_spans, &h.negative_buckets);
    let threshold = larger_threshold(h.schema, &pos, &neg, larger);
    let inside = |&&(i, _): &&(i32, f64)| bucket_bound(i - 1, h.schema) < threshold;
    let zero = h.zero_count + pos.iter().filter(inside).map(|p| p.1).sum::<f64>() + neg.iter().filter(inside).map(|p| p.1).sum::<f64>();
    (zero, threshold)
}

/// The zero threshold reached when widening a zero bucket to `larger`: if `larger` falls
/// inside a populated bucket (of either sign), it moves up to that bucket's upper bound, and
/// the buckets to merge into the zero bucket are then exactly those whose lower bound (in
/// absolute value) is below the result. `pos`/`neg` are `(index, count)` in index order.
pub(crate) fn larger_threshold(schema: i32, pos: &[(i32, f64)], neg: &[(i32, f64)], larger: f64) -> f64 {
    let mut larger = larger;
    // Each round either finishes or raises `larger` past a populated negative bucket, so the
    // number of rounds is bounded by the number of negative buckets.
    'outer: for _ in 0..=neg.len() {
        for (negative, side) in [(false, pos), (true, neg)] {
            for &(i, c) in side {
                if bucket_bound(i - 1, schema) >= larger {
                    break;
                }
                let upper = bucket_bound(i, schema);
                if upper > larger {
                    if c != 0.0 {
                        larger = upper;
                        if negative {
                            continue 'outer;
                        }
                    }
                    break;
                }
            }
        }
        return larger;
    }
    larger
}

/// What [`quantile`] noticed about NaN observations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NanNote {
    None,
    /// The result is NaN because of NaN observations.
    ResultNaN,
    /// The result is skewed higher by NaN observations.
    Skewed,
}

/// Prometheus `HistogramQuantile` for native histograms.
pub(crate) fn quantile(q: f64, h: &FloatHistogram) -> (f64, NanNote) {
    if q < 0.0 {
        return (f64::NEG_INFINITY, NanNote::None);
    }
    if q > 1.0 {
        return (f64::INFINITY, NanNote::None);
    }
    if h.count == 0.0 || q.is_nan() {
        return (f64::NAN, NanNote::None);
    }
    let buckets = all_buckets(h);
    let forward = h.sum.is_nan() || q < 0.5;
    let mut rank = if forward { q * h.count } else { (1.0 - q) * h.count };
    let mut count = 0.0;
    let mut bucket = Bucket { lower: 0.0, upper: 0.0, count: 0.0 };
    let order: Vec<usize> = if forward { (0..buckets.len()).collect() } else { (0..buckets.len()).rev().collect() };
    let mut pos = 0;
    while pos < order.len() {
        let b = buckets[order[pos]];
        pos += 1;
        bucket = b;
        if b.count == 0.0 {
            continue;
        }
        count += b.count;
        if count >= rank {
            break;
        }
    }
    if !h.uses_custom_buckets() && bucket.lower < 0.0 && bucket.upper > 0.0 {
        if h.negative_buckets.is_empty() && !h.positive_buckets.is_empty() {
            bucket.lower = 0.0;
        } else if h.positive_buckets.is_empty() && !h.negative_buckets.is_empty() {
            bucket.upper = 0.0;
        }
    } else if h.uses_custom_buckets() {
        if bucket.lower == f64::NEG_INFINITY {
            if bucket.upper <= 0.0 {
                return (bucket.upper, NanNote::None);
            }
            bucket.lower = 0.0;
        } else if bucket.upper == f64::INFINITY {
            return (bucket.lower, NanNote::None);
        }
    }
    if count > h.count {
        count = h.count;
    }
    if count < rank {
        if h.sum.is_nan() {
            return (f64::NAN, NanNote::ResultNaN);
        }
        return (bucket.upper, NanNote::None);
    }
    if forward {
        rank -= count - bucket.count;
    } else {
        rank = count - rank;
    }
    let mut note = NanNote::None;
    if h.sum.is_nan() {
        let mut total = count;
        while pos < order.len() {
            total += buckets[order[pos]].count;
            pos += 1;
        }
        if total < h.count {
            note = NanNote::Skewed;
        }
    }
    let fraction = rank / bucket.count;
    if h.uses_custom_buckets() || (bucket.lower <= 0.0 && bucket.upper >= 0.0) {
        return (bucket.lower + (bucket.upper - bucket.lower) * fraction, note);
    }
    let log_lower = bucket.lower.abs().log2();
    let log_upper = bucket.upper.abs().log2();
    if bucket.lower > 0.0 {
        return ((log_lower + (log_upper - log_lower) * fraction).exp2(), note);
    }
    (-((log_upper + (log_lower - log_upper) * (1.0 - fraction)).exp2()), note)
}

/// Prometheus `HistogramFraction`: the estimated share of observations in `[lower, upper]`,
/// and whether NaN observations (a NaN sum with fewer bucket observations than `count`) were
/// left out of it, which Prometheus reports as an info.
pub(crate) fn fraction(lower: f64, upper: f64, h: &FloatHistogram) -> (f64, bool) {
    if h.count == 0.0 || lower.is_nan() || upper.is_nan() {
        return (f64::NAN, false);
    }
    if lower >= upper {
        return (0.0, false);
    }
    let custom = h.uses_custom_buckets();
    let (mut count, mut rank, mut lower_rank, mut upper_rank) = (0.0, 0.0, 0.0, 0.0);
    let (mut lower_set, mut upper_set) = (false, false);
    let buckets = all_buckets(h);
    let mut pos = 0;
    while pos < buckets.len() {
        let mut b = buckets[pos];
        pos += 1;
        count += b.count;
        let mut zero_bucket = false;
        // Prometheus applies this to every bucket that spans 0, custom ones included.
        if b.lower <= 0.0 && b.upper >= 0.0 {
            zero_bucket = true;
            if h.negative_buckets.is_empty() && !h.positive_buckets.is_empty() {
                b.lower = 0.0;
            } else if h.positive_buckets.is_empty() && !h.negative_buckets.is_empty() {
                b.upper = 0.0;
            }
        }
        let linear = custom || zero_bucket;
        let interpolate = |v: f64| -> f64 {
            if linear && b.lower == f64::NEG_INFINITY {
                // Nothing is known about the distribution inside a bucket of infinite width.
                return b.count;
            }
            rank + b.count * fraction_below(&b, v, linear)
        };
        if !lower_set && b.lower >= lower {
            lower_rank = rank;
            lower_set = true;
        }
        if !upper_set && b.lower >= upper {
            upper_rank = rank;
            upper_set = true;
        }
        if lower_set && upper_set {
            break;
        }
        if !lower_set && b.lower < lower && b.upper > lower {
            lower_rank = interpolate(lower);
            lower_set = true;
        }
        if !upper_set && b.lower < upper && b.upper > upper {
            upper_rank = interpolate(upper);
            upper_set = true;
        }
        if lower_set && upper_set {
            break;
        }
        rank += b.count;
    }
    let mut nan_observations = false;
    if h.sum.is_nan() {
        count += buckets[pos..].iter().map(|b| b.count).sum::<f64>();
        nan_observations = count < h.count;
    } else {
        count = h.count;
    }
    if !lower_set || lower_rank > count {
        lower_rank = count;
    }
    if !upper_set || upper_rank > count {
        upper_rank = count;
    }
    ((upper_rank - lower_rank) / h.count, nan_observations)
}

/// Prometheus `FloatHistogram.String()`, used as a `count_values` label value.
pub(crate) fn to_string(h: &FloatHistogram) -> String {
    let mut s = format!("{{count:{}, sum:{}", h.count, h.sum);
    for b in all_buckets(h) {
        if b.count == 0.0 {
            continue;
        }
        s.push_str(&format!(", ({}:{}]:{}", b.lower, b.upper, b.count));
    }
    s.push('}');
    s
}

/// Prometheus' `labels.Hash()` (xxHash64 over `name 0xff value 0xff ...`), used where the hash
/// decides an outcome (`limit_ratio`).
pub(crate) fn prom_labels_hash(l: &Labels) -> u64 {
    let mut buf = Vec::with_capacity(l.byte_len() + 2 * l.len());
    for lab in l.iter() {
        buf.extend_from_slice(lab.name.as_bytes());
        buf.push(0xff);
        buf.extend_from_slice(lab.value.as_bytes());
        buf.push(0xff);
    }
    xxhash_rust::xxh64::xxh64(&buf, 0)
}

/// The share of bucket `b` at or below `v` (strictly inside the finite bounds): linear for
/// custom and zero buckets, on a log2 scale for exponential buckets (mirrored for negative).
pub(crate) fn fraction_below(b: &Bucket, v: f64, linear: bool) -> f64 {
    if linear {
        return (v - b.lower) / (b.upper - b.lower);
    }
    let (ll, lu, lv) = (b.lower.abs().log2(), b.upper.abs().log2(), v.abs().log2());
    if v > 0.0 {
        (lv - ll) / (lu - ll)
    } else {
        1.0 - (lv - lu) / (ll - lu)
    }
}
