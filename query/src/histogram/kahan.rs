//! Kahan-compensated sums and means of native histograms, as Prometheus computes `sum`, `avg`,
//! `sum_over_time` and `avg_over_time` (`FloatHistogram.KahanAdd` with a compensation
//! histogram, `engine.go` aggregation and `funcAvgOverTime`).
//!
//! Every count (total, sum, zero bucket, each bucket) is a running Kahan–Babuška pair
//! `(value, compensation)`. A mean is the compensated sum divided by the number of inputs as
//! long as no value overflows to ±Inf; once one would, the mean switches to the incremental
//! form `mean = mean * (n-1)/n + h/n` (values and compensations scaled alike), which stays
//! finite for inputs near `f64::MAX`.

use std::collections::BTreeMap;

use storage::histogram::CounterResetHint;
use storage::FloatHistogram;

use super::{bucket_bound, collapse, common_bounds, expand, larger_threshold, reduce_index};
use crate::eval::aggregate::kahan_inc;

/// Text of the error when exponential and custom-bucket histograms meet.
const MIXED_SCHEMAS: &str = "vector contains a mix of histograms with exponential and custom buckets schemas";

/// A compensated value.
#[derive(Clone, Copy, Debug, Default)]
struct K {
    v: f64,
    c: f64,
}

impl K {
    fn inc(&mut self, x: f64) {
        (self.v, self.c) = kahan_inc(x, self.v, self.c);
    }

    /// Adds another compensated value (its value, then its compensation).
    fn merge(&mut self, o: K) {
        self.inc(o.v);
        self.inc(o.c);
    }

    fn mul(&mut self, f: f64) {
        self.v *= f;
        self.c *= f;
    }

    fn div(&mut self, d: f64) {
        self.v /= d;
        self.c /= d;
    }
}

/// A histogram of compensated counts, kept sparse by bucket index.
#[derive(Clone, Debug)]
struct KHist {
    hint: CounterResetHint,
    schema: i32,
    zero_threshold: f64,
    custom_values: Vec<f64>,
    count: K,
    sum: K,
    zero: K,
    pos: BTreeMap<i32, K>,
    neg: BTreeMap<i32, K>,
}

fn to_k_map(pairs: Vec<(i32, f64)>) -> BTreeMap<i32, K> {
    pairs.into_iter().map(|(i, v)| (i, K { v, c: 0.0 })).collect()
}

fn values(m: &BTreeMap<i32, K>) -> Vec<(i32, f64)> {
    m.iter().map(|(&i, k)| (i, k.v)).collect()
}

impl KHist {
    fn new(h: &FloatHistogram) -> Self {
        KHist {
            hint: h.counter_reset_hint,
            schema: h.schema,
            zero_threshold: h.zero_threshold,
            custom_values: h.custom_values.clone(),
            count: K { v: h.count, c: 0.0 },
            sum: K { v: h.sum, c: 0.0 },
            zero: K { v: h.zero_count, c: 0.0 },
            pos: to_k_map(expand(&h.positive_spans, &h.positive_buckets)),
            neg: to_k_map(expand(&h.negative_spans, &h.negative_buckets)),
        }
    }

    fn for_each(&mut self, mut f: impl FnMut(&mut K)) {
        f(&mut self.count);
        f(&mut self.sum);
        f(&mut self.zero);
        self.pos.values_mut().for_each(&mut f);
        self.neg.values_mut().for_each(&mut f);
    }

    /// Prometheus `HasOverflow`: any value is ±Inf.
    fn overflow(&self) -> bool {
        let inf = |k: &K| k.v.is_infinite();
        inf(&self.count) || inf(&self.sum) || inf(&self.zero) || self.pos.values().any(inf) || self.neg.values().any(inf)
    }

    /// Prometheus `adjustCounterReset`; true on a CounterReset/NotCounterReset collision.
    fn adjust_hint(&mut self, other: CounterResetHint) -> bool {
        use CounterResetHint::*;
        match (self.hint, other) {
            (a, b) if a == b => false,
            (Gauge, _) => false,
            (_, Gauge) => {
                self.hint = Gauge;
                false
            }
            (Unknown, _) => false,
            (_, Unknown) => {
                self.hint = Unknown;
                false
            }
            _ => {
                self.hint = Unknown;
                true
            }
        }
    }

    /// Widens the zero bucket to at least `larger`, merging the buckets it swallows.
    fn widen_zero(&mut self, larger: f64) {
        let threshold = larger_threshold(self.schema, &values(&self.pos), &values(&self.neg), larger);
        let schema = self.schema;
        for side in [&mut self.pos, &mut self.neg] {
            let inside: Vec<i32> = side.keys().copied().take_while(|&i| bucket_bound(i - 1, schema) < threshold).collect();
            for i in inside {
                if let Some(k) = side.remove(&i) {
                    self.zero.merge(k);
                }
            }
        }
        self.zero_threshold = threshold;
    }

    /// `self += h / divisor`, reconciling schemas, zero buckets and custom bounds as
    /// Prometheus' `KahanAdd` does. Returns whether custom bounds were reconciled.
    ///
    /// # Errors
    /// The Prometheus warning text when exponential and custom-bucket histograms meet;
    /// `self` is unchanged then.
    fn add(&mut self, h: &FloatHistogram, divisor: f64) -> Result<bool, &'static str> {
        let custom = self.schema == storage::histogram::CUSTOM_BUCKETS_SCHEMA;
        if custom != h.uses_custom_buckets() {
            return Err(MIXED_SCHEMAS);
        }
        self.adjust_hint(h.counter_reset_hint);
        let scaled = |x: f64| if divisor == 1.0 { x } else { x / divisor };
        self.count.inc(scaled(h.count));
        self.sum.inc(scaled(h.sum));
        if custom {
            return Ok(self.add_custom(h, scaled));
        }
        // Zero buckets: widen whichever is narrower until both thresholds agree.
        let mut other_zero = h.zero_count;
        let mut other_threshold = h.zero_threshold;
        // Each round raises one threshold to a bucket bound of the other histogram; bounded
        // by the number of buckets of both.
        for _ in 0..=(h.positive_buckets.len() + h.negative_buckets.len() + self.pos.len() + self.neg.len()) {
            if other_threshold == self.zero_threshold {
                break;
            }
            if self.zero_threshold > other_threshold {
                (other_zero, other_threshold) = super::zero_count_for_larger_threshold(h, self.zero_threshold);
            }
            if other_threshold > self.zero_threshold {
                self.widen_zero(other_threshold);
            }
        }
        self.zero.inc(scaled(other_zero));
        if h.schema < self.schema {
            let (from, to) = (self.schema, h.schema);
            for side in [&mut self.pos, &mut self.neg] {
                let mut reduced: BTreeMap<i32, K> = BTreeMap::new();
                for (i, k) in std::mem::take(side) {
                    reduced.entry(reduce_index(i, from, to)).or_default().merge(k);
                }
                *side = reduced;
            }
            self.schema = to;
        }
        let (schema, threshold) = (self.schema, self.zero_threshold);
        for (side, spans, counts) in [(&mut self.pos, &h.positive_spans, &h.positive_buckets), (&mut self.neg, &h.negative_spans, &h.negative_buckets)] {
            for (i, c) in expand(spans, counts) {
                let j = if h.schema > schema { reduce_index(i, h.schema, schema) } else { i };
                // Buckets inside the zero bucket are already part of `other_zero`.
                if bucket_bound(j, schema) <= threshold {
                    continue;
                }
                side.entry(j).or_default().inc(scaled(c));
            }
        }
        Ok(false)
    }

    /// The custom-bucket part of [`KHist::add`]; true if the bounds were reconciled to the
    /// bounds both have.
    fn add_custom(&mut self, h: &FloatHistogram, scaled: impl Fn(f64) -> f64) -> bool {
        if self.custom_values == h.custom_values {
            for (i, c) in expand(&h.positive_spans, &h.positive_buckets) {
                self.pos.entry(i).or_default().inc(scaled(c));
            }
            return false;
        }
        let bounds = common_bounds(&self.custom_values, &h.custom_values);
        let target = |upper: f64| bounds.partition_point(|&b| b < upper) as i32;
        let mut m: BTreeMap<i32, K> = BTreeMap::new();
        for (i, k) in std::mem::take(&mut self.pos) {
            let upper = self.custom_values.get(i as usize).copied().unwrap_or(f64::INFINITY);
            m.entry(target(upper)).or_default().merge(k);
        }
        for (i, c) in expand(&h.positive_spans, &h.positive_buckets) {
            let upper = h.custom_values.get(i as usize).copied().unwrap_or(f64::INFINITY);
            m.entry(target(upper)).or_default().inc(scaled(c));
        }
        self.pos = m;
        self.custom_values = bounds;
        true
    }

    /// The compensated result `(value + compensation) / divisor`, compacted.
    fn finish(self, divisor: f64) -> FloatHistogram {
        let total = |k: K| if divisor == 1.0 { k.v + k.c } else { k.v / divisor + k.c / divisor };
        let (ps, pc) = collapse(self.pos.into_iter().map(|(i, k)| (i, total(k))));
        let (ns, nc) = collapse(self.neg.into_iter().map(|(i, k)| (i, total(k))));
        FloatHistogram {
            counter_reset_hint: self.hint,
            schema: self.schema,
            zero_threshold: self.zero_threshold,
            zero_count: total(self.zero),
            count: total(self.count),
            sum: total(self.sum),
            positive_spans: ps,
            positive_buckets: pc,
            negative_spans: ns,
            negative_buckets: nc,
            custom_values: self.custom_values,
        }
    }
}

/// Running sum or mean of histograms with Prometheus' accuracy rules (module doc).
///
/// Shape: `HistAcc::new(first, mean)`, then `add` for each further histogram in input order,
/// then `finish`. The annotations Prometheus raises are read off the accumulator:
/// [`HistAcc::reconciled`] ("mismatched custom buckets were reconciled during aggregation",
/// info) and [`HistAcc::counter_reset_collision`] ("conflicting counter resets during
/// histogram aggregation", warning).
#[derive(Clone, Debug)]
pub(crate) struct HistAcc {
    acc: KHist,
    n: f64,
    mean: bool,
    incremental: bool,
    reconciled: bool,
    reset_seen: bool,
    not_reset_seen: bool,
}

impl HistAcc {
    /// Starts a sum (`mean == false`) or a mean with `first`.
    pub(crate) fn new(first: &FloatHistogram, mean: bool) -> Self {
        let mut a = HistAcc {
            acc: KHist::new(first),
            n: 1.0,
            mean,
            incremental: false,
            reconciled: false,
            reset_seen: false,
            not_reset_seen: false,
        };
        a.track(first.counter_reset_hint);
        a
    }

    fn track(&mut self, hint: CounterResetHint) {
        match hint {
            CounterResetHint::CounterReset => self.reset_seen = true,
            CounterResetHint::NotCounterReset => self.not_reset_seen = true,
            CounterResetHint::Unknown | CounterResetHint::Gauge => {}
        }
    }

    /// Adds `h`.
    ///
    /// # Errors
    /// The Prometheus warning text (without the metric name) when exponential and
    /// custom-bucket histograms meet; the accumulator is unchanged and the caller drops the
    /// group as Prometheus does.
    pub(crate) fn add(&mut self, h: &FloatHistogram) -> Result<(), &'static str> {
        if (self.acc.schema == storage::histogram::CUSTOM_BUCKETS_SCHEMA) != h.uses_custom_buckets() {
            return Err(MIXED_SCHEMAS);
        }
        self.track(h.counter_reset_hint);
        self.n += 1.0;
        if !self.mean {
            self.reconciled |= self.acc.add(h, 1.0)?;
            return Ok(());
        }
        if !self.incremental {
            let mut next = self.acc.clone();
            self.reconciled |= next.add(h, 1.0)?;
            if !next.overflow() {
                self.acc = next;
                return Ok(());
            }
            // The direct sum would overflow: continue with the mean of what came so far.
            self.incremental = true;
            let before = self.n - 1.0;
            self.acc.for_each(|k| k.div(before));
        }
        let q = (self.n - 1.0) / self.n;
        self.acc.for_each(|k| k.mul(q));
        let n = self.n;
        self.reconciled |= self.acc.add(h, n)?;
        Ok(())
    }

    /// True if mismatched custom bounds were reconciled along the way.
    pub(crate) fn reconciled(&self) -> bool {
        self.reconciled
    }

    /// True if both a `CounterReset` and a `NotCounterReset` hint were added.
    pub(crate) fn counter_reset_collision(&self) -> bool {
        self.reset_seen && self.not_reset_seen
    }

    /// The sum or mean, with zero buckets dropped (Prometheus `Compact(0)`).
    pub(crate) fn finish(self) -> FloatHistogram {
        let divisor = if self.mean && !self.incremental { self.n } else { 1.0 };
        self.acc.finish(divisor)
    }
}

#[cfg(test)]
mod tests {
    use storage::histogram::{Span, CUSTOM_BUCKETS_SCHEMA};

    use super::*;

    fn exp(count: f64, sum: f64, buckets: &[f64]) -> FloatHistogram {
        FloatHistogram {
            count,
            sum,
            positive_spans: vec![Span { offset: 0, length: buckets.len() as u32 }],
            positive_buckets: buckets.to_vec(),
            ..FloatHistogram::default()
        }
    }

    #[test]
    fn sum_compensates_cancelling_sums() {
        // 3.1 + 1e100 - 1e100 + 1.3 is 4.4 only with compensation.
        let mut a = HistAcc::new(&exp(1.0, 3.1, &[1.0]), false);
        for s in [1e100, -1e100, 1.3] {
            a.add(&exp(1.0, s, &[1.0])).expect("same schema");
        }
        let h = a.finish();
        assert!((h.sum - 4.4).abs() < 1e-12, "sum {}", h.sum);
        assert_eq!(h.count, 4.0);
        assert_eq!(h.positive_buckets, vec![4.0]);
    }

    #[test]
    fn mean_switches_to_incremental_before_overflow() {
        let big = f64::MAX / 1.5;
        let mut a = HistAcc::new(&exp(big, 1.0, &[big]), true);
        a.add(&exp(big, 2.0, &[big])).expect("same schema");
        let h = a.finish();
        assert!(h.count.is_finite() && (h.count / big - 1.0).abs() < 1e-12, "count {}", h.count);
        assert!((h.sum - 1.5).abs() < 1e-12);
        assert!((h.positive_buckets[0] / big - 1.0).abs() < 1e-12);
    }

    #[test]
    fn mean_reduces_schema_and_reconciles_zero_buckets() {
        let fine = FloatHistogram {
            schema: 1,
            count: 4.0,
            sum: 8.0,
            positive_spans: vec![Span { offset: 1, length: 2 }],
            positive_buckets: vec![2.0, 2.0],
            ..FloatHistogram::default()
        };
        let coarse = FloatHistogram { zero_threshold: 0.001, zero_count: 2.0, ..exp(4.0, 4.0, &[0.0, 2.0]) };
        let mut a = HistAcc::new(&fine, true);
        a.add(&coarse).expect("same kind");
        let h = a.finish();
        assert_eq!(h.schema, 0);
        assert_eq!(h.zero_threshold, 0.001);
        assert_eq!((h.count, h.sum, h.zero_count), (4.0, 6.0, 1.0));
        // Schema-1 buckets 1 and 2 both fall into schema-0 bucket 1.
        assert_eq!(expand(&h.positive_spans, &h.positive_buckets), vec![(1, 3.0)]);
    }

    #[test]
    fn custom_bounds_are_reconciled_and_mixes_refused() {
        let a5 = FloatHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            count: 3.0,
            sum: 3.0,
            custom_values: vec![5.0, 10.0],
            positive_spans: vec![Span { offset: 0, length: 2 }],
            positive_buckets: vec![1.0, 2.0],
            ..FloatHistogram::default()
        };
        let b5 = FloatHistogram { custom_values: vec![5.0], positive_buckets: vec![3.0, 0.0], ..a5.clone() };
        let mut a = HistAcc::new(&a5, false);
        assert_eq!(a.add(&exp(1.0, 1.0, &[1.0])), Err(MIXED_SCHEMAS));
        a.add(&b5).expect("both custom");
        assert!(a.reconciled());
        let h = a.finish();
        assert_eq!(h.custom_values, vec![5.0]);
        assert_eq!(expand(&h.positive_spans, &h.positive_buckets), vec![(0, 4.0), (1, 2.0)]);
    }

    #[test]
    fn counter_reset_collision_is_reported() {
        let reset = FloatHistogram { counter_reset_hint: CounterResetHint::CounterReset, ..exp(1.0, 1.0, &[1.0]) };
        let not_reset = FloatHistogram { counter_reset_hint: CounterResetHint::NotCounterReset, ..exp(1.0, 1.0, &[1.0]) };
        let mut a = HistAcc::new(&reset, true);
        assert!(!a.counter_reset_collision());
        a.add(&not_reset).expect("same schema");
        assert!(a.counter_reset_collision());
        assert_eq!(a.finish().counter_reset_hint, CounterResetHint::Unknown);
    }
}
