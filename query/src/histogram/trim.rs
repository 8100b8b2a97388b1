//! The histogram trim operators `</` and `>/` (Prometheus `FloatHistogram.TrimBuckets`):
//! keep the observations below (or above) a value, interpolating inside the bucket that holds
//! it, and re-estimate count and sum from bucket midpoints.

use storage::FloatHistogram;

use super::{bucket_bound, compact, expand, fraction_below, Bucket};

fn midpoint(lo: f64, hi: f64, positive: bool, linear: bool) -> f64 {
    if lo.is_infinite() {
        if hi.is_infinite() {
            return 0.0;
        }
        return if hi > 0.0 { hi / 2.0 } else { hi };
    }
    if hi.is_infinite() {
        return lo;
    }
    if linear {
        return (lo + hi) / 2.0;
    }
    let g = (lo * hi).abs().sqrt();
    if positive {
        g
    } else {
        -g
    }
}

fn zero_if_inf(x: f64) -> f64 {
    if x.is_infinite() {
        0.0
    } else {
        x
    }
}

/// `(kept count, midpoint of the kept part)` for a bucket with an infinite bound.
fn trim_infinite(upper_trim: bool, b: &Bucket, rhs: f64) -> (f64, f64) {
    if b.lower == f64::NEG_INFINITY {
        if upper_trim {
            if rhs >= b.upper {
                return (b.count, 0.0);
            }
            if rhs > 0.0 && b.upper > 0.0 && b.upper.is_finite() {
                return (b.count * rhs / b.upper, rhs / 2.0);
            }
            if b.upper <= 0.0 {
                return (b.count, rhs);
            }
            return (0.0, zero_if_inf(b.upper));
        }
        if rhs >= 0.0 && b.upper > rhs && b.upper.is_finite() {
            return (b.count * (1.0 - rhs / b.upper), (rhs + b.upper) / 2.0);
        }
        return (0.0, zero_if_inf(b.upper));
    }
    // Upper bound +Inf.
    if upper_trim {
        return (0.0, zero_if_inf(b.lower));
    }
    if rhs >= b.lower {
        return (b.count, rhs);
    }
    (0.0, zero_if_inf(b.lower))
}

fn trim_bucket(b: &Bucket, rhs: f64, upper_trim: bool, positive: bool, custom: bool) -> (f64, f64) {
    if b.lower == f64::NEG_INFINITY || b.upper == f64::INFINITY {
        return trim_infinite(upper_trim, b, rhs);
    }
    let under = if rhs <= b.lower {
        0.0
    } else if rhs >= b.upper {
        b.count
    } else {
        b.count * fraction_below(b, rhs, custom)
    };
    if upper_trim {
        (under, midpoint(b.lower, rhs, positive, custom))
    } else {
        (b.count - under, midpoint(rhs, b.upper, positive, custom))
    }
}

/// The histogram trim operators (Prometheus `FloatHistogram.TrimBuckets`): `h </ v` keeps the
/// observations below `v`, `h >/ v` those above, interpolating inside the bucket that
/// contains `v`. Count and sum are re-estimated from bucket midpoints when anything was cut.
pub(crate) fn trim(h: &FloatHistogram, rhs: f64, upper_trim: bool) -> FloatHistogram {
    let mut o = h.clone();
    let custom = h.uses_custom_buckets();
    let (mut count, mut sum) = (0.0, 0.0);
    let mut trimmed = false;
    let (mut has_pos, mut has_neg) = (false, false);
    for positive in [true, false] {
        let (spans, counts) = if positive { (&h.positive_spans, &h.positive_buckets) } else { (&h.negative_spans, &h.negative_buckets) };
        let mut new_counts = counts.clone();
        for (k, (i, c)) in expand(spans, counts).into_iter().enumerate() {
            if c == 0.0 {
                continue;
            }
            let b = if custom {
                let iu = i as usize;
                let lower = if iu == 0 { f64::NEG_INFINITY } else { h.custom_values.get(iu - 1).copied().unwrap_or(f64::INFINITY) };
                Bucket { lower, upper: h.custom_values.get(iu).copied().unwrap_or(f64::INFINITY), count: c }
            } else if positive {
                Bucket { lower: bucket_bound(i - 1, h.schema), upper: bucket_bound(i, h.schema), count: c }
            } else {
                Bucket { lower: -bucket_bound(i, h.schema), upper: -bucket_bound(i - 1, h.schema), count: c }
            };
            if positive {
                has_pos = true;
            } else {
                has_neg = true;
            }
            let keep_all = if upper_trim { b.upper <= rhs } else { b.lower >= rhs };
            let partial = if upper_trim { b.lower < rhs } else { b.upper > rhs };
            if keep_all {
                count += c;
                sum += midpoint(b.lower, b.upper, positive, custom) * c;
            } else if partial {
                let (keep, mid) = trim_bucket(&b, rhs, upper_trim, positive, custom);
                count += keep;
                sum += mid * keep;
                if new_counts[k] != keep {
                    new_counts[k] = keep;
                    trimmed = true;
                }
            } else {
                new_counts[k] = 0.0;
                trimmed = true;
            }
        }
        if positive {
            o.positive_buckets = new_counts;
        } else {
            o.negative_buckets = new_counts;
        }
    }
    if h.zero_count > 0.0 {
        let (mut lo, mut hi) = (-h.zero_threshold, h.zero_threshold);
        if has_neg && !has_pos {
            hi = 0.0;
        }
        if has_pos && !has_neg {
            lo = 0.0;
        }
        let (keep, mid) = if upper_trim {
            if rhs <= lo {
                (0.0, 0.0)
            } else if rhs >= hi {
                (h.zero_count, (lo + hi) / 2.0)
            } else {
                (h.zero_count * (rhs - lo) / (hi - lo), (lo + rhs) / 2.0)
            }
        } else if rhs <= lo {
            (h.zero_count, (lo + hi) / 2.0)
        } else if rhs >= hi {
            (0.0, 0.0)
        } else {
            (h.zero_count * (hi - rhs) / (hi - lo), (rhs + hi) / 2.0)
        };
        if o.zero_count != keep {
            o.zero_count = keep;
            trimmed = true;
        }
        sum += mid * keep;
        count += keep;
    }
    if trimmed {
        o.count = count;
        o.sum = sum;
        compact(&mut o);
    }
    o
}
