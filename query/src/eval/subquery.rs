//! Subqueries (Prometheus `engine.go`, `SubqueryExpr` case): the inner expression is evaluated
//! as a range query whose steps are aligned to absolute time: the first step is the first
//! multiple of the subquery step at or after `start - offset - range`, the last at or before
//! `end - offset`. A subquery without a step uses the engine's default (1m).

use promql_parser::parser::SubqueryExpr;

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
            .map(|s| RangeSeries { metric: s.metric, drop_name: s.drop_name, floats: s.floats, hists: s.histograms })
            .collect();
        Ok(RangeInput { series, range_ms, at: sq.at.clone(), offset: sq.offset.clone(), selector_name: None, modifier: super::selector::RangeMod::None })
    }

    /// A subquery evaluated on its own (instant query): its raw points in the window.
    pub fn eval_subquery_raw(&mut self, sq: &SubqueryExpr) -> Result<Matrix> {
        let input = self.range_input_subquery(sq)?;
        self.raw_matrix(input)
    }
}
