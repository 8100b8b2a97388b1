//! Subqueries (Prometheus `engine.go`, `SubqueryExpr` case): the inner expression is evaluated
//! as a range query whose steps are aligned to absolute time: the first step is the first
//! multiple of the subquery step at or after `start - offset - range`, the last at or before
//! `end - offset`. A subquery without a step uses the engine's default (1m).
//!
//! Native-histogram samples of the inner result have a `CounterReset`/`NotCounterReset` hint
//! reset to `Unknown` (gauge histograms keep theirs), as Prometheus does since PR #15987: the
//! inner steps are not the stored samples, so a hint describing the stored predecessor says
//! nothing about the previous subquery step, and functions over the subquery (`increase`,
//! `rate`, `resets`) must detect resets afresh.

use std::sync::Arc;

use promql_parser::parser::SubqueryExpr;
use storage::histogram::CounterResetHint;
use storage::FloatHistogram;

use super::selector::{RangeInput, RangeSeries};
use super::{offset_ms, Evaluator};
use crate::error::Result;
use crate::value::Matrix;

impl Evaluator<'_> {
    /// The subquery's inner result, as a range input for a function over it.
    pub fn range_input_subquery(&mut self, sq: &SubqueryExpr) -> Result<RangeInput> {
        let range_ms = sq.range.as_millis() as i64;
        let step = match sq.step {
            Some(d) if d.as_millis() > 0 => d.as_millis() as i64,
            _ => self.ctx.no_step_subquery_interval_ms,
        };
        let a = self.ref_time(self.start, &sq.at, &sq.offset);
        let b = self.ref_time(self.end, &sq.at, &sq.offset);
        let (rmin, rmax) = (a.min(b), a.max(b));
        let lo = rmin - range_ms;
        let mut start = step * lo.div_euclid(step);
        if start <= lo {
            start += step;
        }
        let _ = offset_ms(&sq.offset);
        let mut inner = Evaluator::new(self.ctx, start, rmax, step);
        inner.cur_samples = self.cur_samples;
        let m = if start > rmax { Vec::new() } else { inner.eval_matrix(&sq.expr)? };
        self.cur_samples = inner.cur_samples;
        self.total_samples += inner.total_samples;
        self.total_series += inner.total_series;
        self.annos.merge(std::mem::take(&mut inner.annos));
        let series = m
            .into_iter()
            .map(|mut s| {
                for p in &mut s.histograms {
                    reset_counter_reset_hint(&mut p.h);
                }
                // Subquery steps are computed points, not stored samples: they carry no start
                // timestamps (Prometheus cuts ST propagation at a subquery).
                RangeSeries {
                    metric: s.metric,
                    drop_name: s.drop_name,
                    floats: s.floats,
                    hists: s.histograms,
                    float_sts: Vec::new(),
                    hist_sts: Vec::new(),
                    stored: None,
                }
            })
            .collect();
        Ok(RangeInput { series, load: super::lazy::Load::default(), range_ms, at: sq.at.clone(), offset: sq.offset.clone(), selector_name: None, modifier: super::selector::RangeMod::None })
    }

    /// A subquery evaluated on its own (instant query): its raw points in the window.
    pub fn eval_subquery_raw(&mut self, sq: &SubqueryExpr) -> Result<Matrix> {
        let input = self.range_input_subquery(sq)?;
        self.raw_matrix(input)
    }
}

/// Sets a `CounterReset`/`NotCounterReset` hint to `Unknown` (copying the histogram only when it
/// is shared and must change); `Unknown` and `Gauge` stay.
fn reset_counter_reset_hint(h: &mut Arc<FloatHistogram>) {
    if matches!(h.counter_reset_hint, CounterResetHint::CounterReset | CounterResetHint::NotCounterReset) {
        Arc::make_mut(h).counter_reset_hint = CounterResetHint::Unknown;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_hint(hint: CounterResetHint) -> Arc<FloatHistogram> {
        Arc::new(FloatHistogram { counter_reset_hint: hint, count: 3.0, sum: 1.5, ..Default::default() })
    }

    #[test]
    fn counter_hints_become_unknown_gauge_stays() {
        for (from, to) in [
            (CounterResetHint::CounterReset, CounterResetHint::Unknown),
            (CounterResetHint::NotCounterReset, CounterResetHint::Unknown),
            (CounterResetHint::Unknown, CounterResetHint::Unknown),
            (CounterResetHint::Gauge, CounterResetHint::Gauge),
        ] {
            let mut h = with_hint(from);
            let shared = h.clone();
            reset_counter_reset_hint(&mut h);
            assert_eq!(h.counter_reset_hint, to, "from {from:?}");
            assert_eq!(h.count, 3.0);
            // The shared original (e.g. a cached selector point) is never modified.
            assert_eq!(shared.counter_reset_hint, from);
        }
    }
}
