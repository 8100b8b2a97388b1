//! Counter-reset hints assigned to native-histogram samples on append, as Prometheus' head
//! does (`tsdb/chunkenc/float_histogram.go`: `appendable`, `AppendFloatHistogram`, and the
//! iterator's `counterResetHint`).
//!
//! Prometheus keeps the hint per chunk (a header) and derives each sample's hint on read:
//! - gauge histograms read as [`CounterResetHint::Gauge`];
//! - the first sample of a counter chunk reads as [`CounterResetHint::Unknown`], even if the
//!   chunk was started because of a counter reset and its header says so: a chunk may be read
//!   out of context (the previous chunk gone, or chunks merged from several blocks), so
//!   nothing is promised and PromQL detects the reset itself by comparing the samples
//!   (`histogram_meta.go` `counterResetHint`, Prometheus issue 15346);
//! - every later sample of a counter chunk reads as [`CounterResetHint::NotCounterReset`]: a
//!   sample that is not appendable to the chunk (a reset, a schema or zero-threshold change, a
//!   change of custom bounds, a stale marker followed by a real sample) starts a new chunk.
//!
//! One deliberate difference: a change of custom bucket bounds (NHCB) reads as unknown, not
//! as a reset (see [`appendable`]).
//!
//! Hearth's histogram chunks store a hint per sample, so the head computes the hint a
//! Prometheus reader would see and stores that; readers return it unchanged. Where Prometheus
//! starts a new chunk only to carry a different header, Hearth keeps appending to the same chunk
//! with the hint the new chunk's first sample would have had.

use crate::api::is_stale_nan;
use crate::histogram::{CounterResetHint, FloatHistogram, Span, CUSTOM_BUCKETS_SCHEMA};

/// Whether a counter histogram can continue a chunk whose newest sample is `prev`
/// (Prometheus `FloatHistogramAppender.appendable`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Appendable {
    /// Same layout (or only new buckets), nothing decreased.
    Yes,
    /// A counter reset: the count, the zero bucket or a bucket decreased, a populated bucket
    /// disappeared, or the sample says so explicitly.
    CounterReset,
    /// Not a reset, but the chunk cannot continue: schema, zero threshold or custom bounds
    /// changed, or the previous sample was a stale marker and this one is not.
    No,
}

/// Prometheus' `appendable` for a counter histogram `h` after `prev` (both counter samples).
pub(crate) fn appendable(prev: &FloatHistogram, h: &FloatHistogram) -> Appendable {
    if h.counter_reset_hint == CounterResetHint::CounterReset {
        return Appendable::CounterReset;
    }
    if is_stale_nan(h.sum) {
        return Appendable::Yes;
    }
    if is_stale_nan(prev.sum) {
        return Appendable::No;
    }
    if h.count < prev.count {
        return Appendable::CounterReset;
    }
    if h.schema != prev.schema || h.zero_threshold != prev.zero_threshold {
        return Appendable::No;
    }
    if h.schema == CUSTOM_BUCKETS_SCHEMA && !same_bounds(&h.custom_values, &prev.custom_values) {
        // Prometheus' chunk appender calls this a reset, but its PromQL reconciles mismatched
        // custom buckets (intersecting the bounds) rather than restarting the counter, and
        // the upstream test corpus expects `resets()` to count none here: a new chunk whose
        // first sample reads as unknown, like a schema change.
        return Appendable::No;
    }
    if h.zero_count < prev.zero_count {
        return Appendable::CounterReset;
    }
    if bucket_decreased(&prev.positive_spans, &prev.positive_buckets, &h.positive_spans, &h.positive_buckets)
        || bucket_decreased(&prev.negative_spans, &prev.negative_buckets, &h.negative_spans, &h.negative_buckets)
    {
        return Appendable::CounterReset;
    }
    Appendable::Yes
}

/// Custom bucket bounds equal (Prometheus `FloatBucketsMatch`: bit-exact, NaN-safe).
fn same_bounds(a: &[f64], b: &[f64]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

/// Absolute bucket indexes of a span layout, in order, paired with their counts.
fn buckets<'a>(spans: &'a [Span], counts: &'a [f64]) -> impl Iterator<Item = (i64, f64)> + 'a {
    let mut idx = 0i64;
    spans
        .iter()
        .flat_map(move |s| {
            idx += i64::from(s.offset);
            let start = idx;
            idx += i64::from(s.length);
            start..start + i64::from(s.length)
        })
        .zip(counts.iter().copied())
}

/// True if a bucket of `prev` decreased in `cur`, or a populated bucket of `prev` is missing
/// from `cur` (new buckets in `cur` and vanished empty buckets are fine). Both layouts are
/// walked in index order, as Prometheus' `expandFloatSpansAndBuckets`.
fn bucket_decreased(prev_spans: &[Span], prev: &[f64], cur_spans: &[Span], cur: &[f64]) -> bool {
    let mut a = buckets(prev_spans, prev).peekable();
    let mut b = buckets(cur_spans, cur).peekable();
    loop {
        match (a.peek().copied(), b.peek().copied()) {
            (Some((ai, ac)), Some((bi, bc))) => {
                if ai == bi {
                    if ac > bc {
                        return true;
                    }
                    a.next();
                    b.next();
                } else if ai < bi {
                    if ac != 0.0 {
                        return true;
                    }
                    a.next();
                } else {
                    b.next();
                }
            }
            (Some((_, ac)), None) => {
                if ac != 0.0 {
                    return true;
                }
                a.next();
            }
            (None, _) => return false,
        }
    }
}

/// The hint to store for histogram `h` appended after `prev` (the series' newest sample, if
/// it is a histogram): [`CounterResetHint::Gauge`], [`CounterResetHint::NotCounterReset`] or
/// [`CounterResetHint::Unknown`], never [`CounterResetHint::CounterReset`] (a reset starts a
/// Prometheus chunk, whose first sample reads as unknown). `continues` is true when `h` goes into the chunk that holds `prev`
/// (false when the head starts a new chunk for it: the first histogram, after floats, or a
/// chunk cut for size or time).
pub(crate) fn hint_for(prev: Option<&FloatHistogram>, h: &FloatHistogram, continues: bool) -> CounterResetHint {
    if h.counter_reset_hint == CounterResetHint::Gauge {
        return CounterResetHint::Gauge;
    }
    if is_stale_nan(h.sum) {
        // Prometheus reads a stale histogram back without a hint.
        return CounterResetHint::Unknown;
    }
    if h.counter_reset_hint == CounterResetHint::CounterReset {
        // An explicit reset starts a new Prometheus chunk: its first sample reads as unknown.
        return CounterResetHint::Unknown;
    }
    let Some(prev) = prev else { return CounterResetHint::Unknown };
    if prev.counter_reset_hint == CounterResetHint::Gauge {
        // A gauge chunk never takes a counter sample: a new chunk, header unknown.
        return CounterResetHint::Unknown;
    }
    match (appendable(prev, h), continues) {
        (Appendable::Yes, true) => CounterResetHint::NotCounterReset,
        // A new chunk (a reset, a layout change, or a cut for size or time): its first sample
        // reads as unknown.
        (Appendable::CounterReset | Appendable::Yes | Appendable::No, _) => CounterResetHint::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use CounterResetHint::*;

    fn h(count: f64, zero: f64, spans: &[(i32, u32)], b: &[f64]) -> FloatHistogram {
        FloatHistogram {
            schema: 0,
            zero_threshold: 0.001,
            zero_count: zero,
            count,
            sum: count * 2.0,
            positive_spans: spans.iter().map(|&(offset, length)| Span { offset, length }).collect(),
            positive_buckets: b.to_vec(),
            ..FloatHistogram::default()
        }
    }

    #[test]
    fn resets_by_count_zero_bucket_and_buckets() {
        let prev = h(10.0, 2.0, &[(0, 2)], &[3.0, 5.0]);
        assert_eq!(appendable(&prev, &h(11.0, 2.0, &[(0, 2)], &[3.0, 6.0])), Appendable::Yes);
        assert_eq!(appendable(&prev, &h(9.0, 2.0, &[(0, 2)], &[3.0, 4.0])), Appendable::CounterReset);
        assert_eq!(appendable(&prev, &h(10.0, 1.0, &[(0, 2)], &[4.0, 5.0])), Appendable::CounterReset);
        assert_eq!(appendable(&prev, &h(12.0, 2.0, &[(0, 2)], &[2.0, 8.0])), Appendable::CounterReset);
        // A new bucket is fine; a populated bucket vanishing is a reset, an empty one is not.
        assert_eq!(appendable(&prev, &h(12.0, 2.0, &[(0, 3)], &[3.0, 5.0, 2.0])), Appendable::Yes);
        assert_eq!(appendable(&prev, &h(12.0, 2.0, &[(1, 1)], &[10.0])), Appendable::CounterReset);
        let with_empty = h(10.0, 2.0, &[(0, 3)], &[0.0, 3.0, 5.0]);
        assert_eq!(appendable(&with_empty, &h(10.0, 2.0, &[(1, 2)], &[3.0, 5.0])), Appendable::Yes);
        // Schema or threshold change: a new chunk without a reset.
        let mut other = h(11.0, 2.0, &[(0, 2)], &[3.0, 6.0]);
        other.schema = 1;
        assert_eq!(appendable(&prev, &other), Appendable::No);
        other.schema = 0;
        other.zero_threshold = 0.01;
        assert_eq!(appendable(&prev, &other), Appendable::No);
    }

    #[test]
    fn custom_bounds_change_starts_an_unknown_chunk() {
        let mut prev = h(10.0, 0.0, &[(0, 2)], &[3.0, 7.0]);
        prev.schema = CUSTOM_BUCKETS_SCHEMA;
        prev.zero_threshold = 0.0;
        prev.custom_values = vec![1.0, 2.0];
        let mut cur = prev.clone();
        cur.count = 11.0;
        assert_eq!(appendable(&prev, &cur), Appendable::Yes);
        cur.custom_values = vec![1.0, 3.0];
        assert_eq!(appendable(&prev, &cur), Appendable::No);
        assert_eq!(hint_for(Some(&prev), &cur, true), CounterResetHint::Unknown);
    }

    #[test]
    fn hints_as_prometheus_reads_them() {
        let prev = h(10.0, 2.0, &[(0, 2)], &[3.0, 5.0]);
        let up = h(11.0, 2.0, &[(0, 2)], &[3.0, 6.0]);
        let down = h(1.0, 0.0, &[(0, 2)], &[0.0, 1.0]);
        assert_eq!(hint_for(None, &up, false), Unknown);
        assert_eq!(hint_for(Some(&prev), &up, true), NotCounterReset);
        assert_eq!(hint_for(Some(&prev), &up, false), Unknown, "first sample of a chunk cut for size");
        // A reset starts a Prometheus chunk, whose first sample reads as unknown (issue 15346).
        assert_eq!(hint_for(Some(&prev), &down, true), Unknown);
        assert_eq!(hint_for(Some(&prev), &down, false), Unknown);
        let explicit = FloatHistogram { counter_reset_hint: CounterReset, ..up.clone() };
        assert_eq!(hint_for(Some(&prev), &explicit, true), Unknown);
        assert_eq!(hint_for(None, &explicit, false), Unknown);
        let gauge = FloatHistogram { counter_reset_hint: Gauge, ..down.clone() };
        assert_eq!(hint_for(Some(&prev), &gauge, true), Gauge);
        assert_eq!(hint_for(Some(&gauge), &up, true), Unknown, "counter after gauge starts a chunk");
        let stale = FloatHistogram { sum: crate::api::stale_nan(), ..FloatHistogram::default() };
        assert_eq!(hint_for(Some(&prev), &stale, true), Unknown);
        assert_eq!(hint_for(Some(&stale), &up, true), Unknown, "real sample after a stale marker");
    }
}
