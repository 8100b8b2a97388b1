//! Series decoded one at a time: a selector keeps its selection compressed
//! ([`Selected`]) and each series is decoded inside its own per-series work into a buffer
//! reused by the next series on the same thread, so an evaluation holds the decoded points
//! of the series in flight (one per worker thread), never of the whole selection.
//! Prometheus' engine does the same for a range-vector function over a range query: it
//! walks each series across all steps and drops its samples before the next.
//!
//! Accounting for `--query.max-samples` is unchanged: selecting counts nothing; the output
//! points and the largest range window held are counted by the callers, as before.

use rayon::prelude::*;
use storage::{is_stale_nan, Labels};

use super::selector::{check_ctx, detect_stats_hints, RangeSeries};
use super::Evaluator;
use crate::error::Result;
use crate::source::{RawSeries, Selected};
use crate::value::{FPoint, Matrix, Series};

/// At or above this much work, in series × output steps, the per-series work of a selector
/// runs across the rayon pool; below it, on the calling thread. A series costs ~1-2 µs per step
/// to decode and look up, so 1024 units are ~1-2 ms of work: below that, waking the pool's
/// workers (and their idle spinning afterwards, on this 2-core class of machine) costs more than
/// it saves. Measured on 100k series × 24 h (session 4, load ~3, medians of 6 × 21 requests):
/// `avg(1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes)` (2 × 110 series,
/// instant) 1.80 ms with the old 64-series rule, 1.58 ms on one thread; `count by (mode)`
/// over 3,520 series stays parallel (7.1 ms; 9.6 ms on one thread).
const PARALLEL_MIN_WORK: usize = 1024;

/// Whether the per-series work over `series` series and `steps` output steps (1 for an instant
/// query) is worth running across the rayon pool; see [`PARALLEL_MIN_WORK`].
pub(crate) fn parallel_worth(series: usize, steps: usize) -> bool {
    series.saturating_mul(steps.max(1)) >= PARALLEL_MIN_WORK
}

/// How the series of a selection are decoded: the sample range `[mint_ms, maxt_ms]` and
/// whether histogram counter-reset hints are detected on read (`histogram_stats` selectors).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Load {
    pub mint_ms: i64,
    pub maxt_ms: i64,
    pub hist_stats: bool,
}

impl Load {
    /// Decodes `sel` into `buf` (capacity reused, labels untouched); whether it has samples.
    pub fn decode(&self, sel: &Selected, buf: &mut RawSeries) -> bool {
        if !sel.decode_into(self.mint_ms, self.maxt_ms, buf) {
            return false;
        }
        if self.hist_stats {
            detect_stats_hints(&mut buf.hists);
        }
        true
    }

    /// Decodes `sel` into the range-window buffer `buf` with staleness markers removed (and
    /// their start timestamps with them); whether any point is left.
    pub fn decode_range(&self, sel: &Selected, buf: &mut RangeSeries) -> bool {
        let mut raw = RawSeries {
            labels: Labels::empty(),
            floats: std::mem::take(&mut buf.floats),
            hists: std::mem::take(&mut buf.hists),
            float_sts: std::mem::take(&mut buf.float_sts),
            hist_sts: std::mem::take(&mut buf.hist_sts),
        };
        let any = self.decode(sel, &mut raw);
        buf.floats = raw.floats;
        buf.hists = raw.hists;
        buf.float_sts = raw.float_sts;
        buf.hist_sts = raw.hist_sts;
        if !any {
            return false;
        }
        strip_stale(&mut buf.floats, &mut buf.float_sts);
        !(buf.floats.is_empty() && buf.hists.is_empty())
    }
}

/// Removes staleness markers from `floats` in place, and the matching entries of `sts`
/// when it is aligned with `floats` (it is empty for series without start timestamps).
pub(crate) fn strip_stale(floats: &mut Vec<FPoint>, sts: &mut Vec<i64>) {
    if !floats.iter().any(|p| is_stale_nan(p.f)) {
        return;
    }
    if sts.len() == floats.len() {
        let mut k = 0;
        for i in 0..floats.len() {
            if !is_stale_nan(floats[i].f) {
                floats[k] = floats[i];
                sts[k] = sts[i];
                k += 1;
            }
        }
        floats.truncate(k);
        sts.truncate(k);
    } else {
        floats.retain(|p| !is_stale_nan(p.f));
    }
}

impl RangeSeries {
    /// This series' points: itself when already decoded (subquery results), else its stored
    /// chunks decoded into `buf` per `load` (`buf`'s metric is not set; read it from `self`).
    pub fn loaded<'b>(&'b self, load: &Load, buf: &'b mut RangeSeries) -> &'b RangeSeries {
        match &self.stored {
            None => self,
            Some(sel) => {
                if !load.decode_range(sel, buf) {
                    buf.floats.clear();
                    buf.hists.clear();
                    buf.float_sts.clear();
                    buf.hist_sts.clear();
                }
                buf
            }
        }
    }
}

impl Evaluator<'_> {
    /// Runs `f` over every selected series, each decoded per `load` into a per-thread buffer
    /// just before (in parallel across series for large selections), and collects the
    /// non-empty output series in selection order, counting their points against the
    /// sample limit. The output series takes the selection's labels (moved) and `drop_name`.
    pub(crate) fn map_selected<F>(&mut self, sel: Vec<Selected>, load: Load, drop_name: bool, site: &'static str, f: F) -> Result<Matrix>
    where
        F: Fn(&RawSeries, &mut Series) + Sync,
    {
        let ctx = self.ctx;
        let run = |buf: &mut RawSeries, (i, mut s): (usize, Selected)| -> Result<Option<Series>> {
            if i % 64 == 63 {
                check_ctx(ctx, site)?;
            }
            if !load.decode(&s, buf) {
                return Ok(None);
            }
            let mut out = Series { metric: s.take_labels(), drop_name, ..Default::default() };
            f(buf, &mut out);
            Ok(if out.is_empty() { None } else { Some(out) })
        };
        let results: Vec<Result<Option<Series>>> = if parallel_worth(sel.len(), self.steps()) {
            sel.into_par_iter().enumerate().map_init(RawSeries::default, run).collect()
        } else {
            let mut buf = RawSeries::default();
            sel.into_iter().enumerate().map(|x| run(&mut buf, x)).collect()
        };
        let mut out = Vec::with_capacity(results.len());
        for r in results {
            if let Some(s) = r? {
                self.add_samples(s.len())?;
                out.push(s);
            }
        }
        Ok(out)
    }

    /// `(step time, reference time)` of every step for a selector's `@` and `offset`.
    pub(crate) fn step_refs(&self, at: &Option<promql_parser::parser::AtModifier>, offset: &Option<promql_parser::parser::Offset>) -> Vec<(i64, i64)> {
        (0..self.steps()).map(|i| (self.ts(i), self.ref_time(self.ts(i), at, offset))).collect()
    }
}
