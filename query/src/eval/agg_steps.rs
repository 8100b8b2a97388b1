//! Aggregations over all steps without per-step label work (the fast path of
//! [`Evaluator::eval_aggregate`]).
//!
//! [`Evaluator::range_eval`] turns its argument matrix into one [`crate::value::Vector`] per
//! step, which clones every input series' label set at every step, and the aggregation then
//! derives and hashes each sample's grouping labels again. Here the grouping key of each input
//! series is computed once per query; each step walks the series' points by cursor and feeds
//! the values to the group's accumulator ([`Evaluator::accumulate`], the same code the
//! per-step path uses, so results and annotations are identical). Label sets are cloned only
//! for output series, once each.
//!
//! Handles every operator except `count_values` and `limit_ratio`, whose output labels depend
//! on the values or on each sample's label hash; those keep the per-step path.

use std::collections::HashMap;

use promql_parser::parser::LabelModifier;
use storage::Labels;

use super::aggregate::{cmp_asc_nan_last, cmp_desc_nan_last, fmt_go, group_key, group_labels, Group};
use super::{step_point, Evaluator, StepPoint};
use crate::error::{QueryError, Result};
use crate::value::{FPoint, HPoint, Matrix, Sample, Series};

/// True for the operators [`Evaluator::aggregate_steps`] evaluates.
pub(super) fn handles(op: &str) -> bool {
    !matches!(op, "count_values" | "limit_ratio")
}

/// Operators whose float accumulation is inlined in the step loop.
#[derive(Clone, Copy)]
enum FloatOp {
    Sum,
    Count,
    Other,
}

/// Output series of an aggregation, created in first-emitted order and gathered by key
/// (group, or input label set) as `range_eval` gathers them by label set.
struct OutSeries {
    out: Matrix,
    /// Output series index and the last step time it got a point, per key.
    slot: Vec<Option<(usize, i64)>>,
    /// An instant evaluation keeps every sample as its own series, in output order.
    instant: bool,
}

impl OutSeries {
    fn new(keys: usize, instant: bool) -> OutSeries {
        OutSeries { out: Vec::new(), slot: vec![None; keys], instant }
    }

    fn push(&mut self, key: usize, metric: impl FnOnce() -> Labels, s: Sample, ts: i64) -> Result<()> {
        let i = match self.slot[key] {
            Some((i, last)) if !self.instant => {
                if last == ts {
                    return Err(QueryError::Execution("vector cannot contain metrics with the same labelset".into()));
                }
                self.slot[key] = Some((i, ts));
                i
            }
            _ => {
                self.out.push(Series { metric: metric(), drop_name: s.drop_name, ..Default::default() });
                self.slot[key] = Some((self.out.len() - 1, ts));
                self.out.len() - 1
            }
        };
        let ser = &mut self.out[i];
        match s.h {
            Some(h) => ser.histograms.push(HPoint { t: ts, h }),
            None => ser.floats.push(FPoint { t: ts, f: s.f }),
        }
        Ok(())
    }
}

impl Evaluator<'_> {
    /// `op` (not `count_values`/`limit_ratio`) over `input` at every step, with the numeric
    /// parameter's value per step (`NaN` where absent). `input_points` is what the arguments
    /// hold in memory (released at the end, as `range_eval` does).
    pub(super) fn aggregate_steps(
        &mut self,
        op: &str,
        params: &[f64],
        input: Matrix,
        input_points: usize,
        modifier: &Option<LabelModifier>,
        pos: &str,
    ) -> Result<Matrix> {
        let k_op = matches!(op, "topk" | "bottomk" | "limitk");
        let float_op = match op {
            "sum" => FloatOp::Sum,
            "count" | "group" => FloatOp::Count,
            _ => FloatOp::Other,
        };
        // Group of each input series, keys computed once per series.
        let mut group_of: Vec<usize> = Vec::with_capacity(input.len());
        let mut group_labels_list: Vec<Labels> = Vec::new();
        let mut by_key: HashMap<u64, usize> = HashMap::new();
        let mut key_buf: Vec<u8> = Vec::with_capacity(128);
        for s in &input {
            let key = group_key(&s.metric, modifier, &mut key_buf);
            let g = *by_key.entry(key).or_insert_with(|| {
                group_labels_list.push(group_labels(&s.metric, modifier));
                group_labels_list.len() - 1
            });
            group_of.push(g);
        }
        // k operators output input samples: their key is the input series' label set (input
        // series normally have distinct ones; equal ones share an output series).
        let mut label_id: Vec<usize> = Vec::new();
        let mut label_first: Vec<usize> = Vec::new();
        if k_op {
            let mut ids: HashMap<&Labels, usize> = HashMap::with_capacity(input.len());
            for (sidx, s) in input.iter().enumerate() {
                let id = *ids.entry(&s.metric).or_insert_with(|| {
                    label_first.push(sidx);
                    label_first.len() - 1
                });
                label_id.push(id);
            }
        }
        let steps = self.steps();
        let mut cursors = vec![(0usize, 0usize); input.len()];
        let mut out = OutSeries::new(if k_op { label_first.len() } else { group_labels_list.len() }, steps == 1);
        // Per-step state, reused across steps.
        let mut order: Vec<usize> = Vec::new();
        let mut slots: Vec<Option<Group>> = (0..group_labels_list.len()).map(|_| None).collect();
        let mut members: Vec<Vec<(f64, usize)>> = if k_op { vec![Vec::new(); group_labels_list.len()] } else { Vec::new() };
        let mut step_out: Vec<(usize, Sample)> = Vec::new();
        for (si, &param) in params.iter().enumerate().take(steps) {
            if si % 256 == 0 {
                self.check("range evaluation")?;
            }
            let ts = self.ts(si);
            order.clear();
            step_out.clear();
            if k_op {
                self.k_step(op, param, &input, &group_of, &mut cursors, &mut members, &mut order, &mut step_out, ts, pos)?;
            } else {
                if op == "quantile" && !(0.0..=1.0).contains(&param) {
                    self.warn_param(format!("quantile value should be between 0 and 1, got {}", fmt_go(param)), pos);
                }
                for (sidx, s) in input.iter().enumerate() {
                    let Some(p) = step_point(s, &mut cursors[sidx], ts) else { continue };
                    let gid = group_of[sidx];
                    let g = slots[gid].get_or_insert_with(|| {
                        order.push(gid);
                        Group::new(Labels::empty())
                    });
                    if s.drop_name {
                        g.drop_name = true;
                    }
                    // Float sums and counts inline what `accumulate` does for them.
                    match (p, float_op) {
                        (StepPoint::F(v), FloatOp::Sum) => {
                            g.seen = true;
                            g.has_float = true;
                            let (f, c) = super::aggregate::kahan_inc(v, g.f, g.c);
                            g.f = f;
                            g.c = c;
                            continue;
                        }
                        (StepPoint::F(_), FloatOp::Count) => {
                            g.seen = true;
                            g.has_float = true;
                            g.count += 1.0;
                            continue;
                        }
                        _ => {}
                    }
                    let sample = match p {
                        StepPoint::F(f) => Sample { metric: Labels::empty(), t: ts, f, h: None, drop_name: s.drop_name },
                        StepPoint::H(i) => Sample {
                            metric: Labels::empty(),
                            t: ts,
                            f: 0.0,
                            h: Some(s.histograms[i].h.clone()),
                            drop_name: s.drop_name,
                        },
                    };
                    self.accumulate(op, g, sample, pos);
                }
                for &gid in &order {
                    let g = slots[gid].take().expect("group of this step");
                    if let Some(s) = self.finish_group(op, param, g, pos) {
                        step_out.push((gid, s));
                    }
                }
            }
            self.add_samples(step_out.len())?;
            for (key, s) in step_out.drain(..) {
                if k_op {
                    out.push(label_id[key], || input[key].metric.clone(), s, ts)?;
                } else {
                    out.push(key, || group_labels_list[key].clone(), s, ts)?;
                }
            }
        }
        self.sub_samples(input_points);
        Ok(out.out)
    }

    /// One step of `topk`/`bottomk`/`limitk`: pushes `(input series, sample)` for the kept
    /// samples, groups in first-seen order, each group sorted as the per-step path sorts it.
    #[allow(clippy::too_many_arguments)]
    fn k_step(
        &mut self,
        op: &str,
        param: f64,
        input: &Matrix,
        group_of: &[usize],
        cursors: &mut [(usize, usize)],
        members: &mut [Vec<(f64, usize)>],
        order: &mut Vec<usize>,
        step_out: &mut Vec<(usize, Sample)>,
        ts: i64,
        pos: &str,
    ) -> Result<()> {
        if param.is_nan() || param.abs() > 9.2e18 {
            return Err(QueryError::Execution(format!("Scalar value {} overflows int64", fmt_go(param))));
        }
        let k = param as i64;
        // Cursors must still advance over this step's points when nothing is kept.
        let keep = k >= 1;
        for (sidx, s) in input.iter().enumerate() {
            let Some(p) = step_point(s, &mut cursors[sidx], ts) else { continue };
            if !keep {
                continue;
            }
            let f = match p {
                StepPoint::F(f) => f,
                StepPoint::H(_) if op != "limitk" => {
                    self.info(format!("ignored histogram in {op} aggregation"), pos);
                    continue;
                }
                StepPoint::H(_) => 0.0,
            };
            let gid = group_of[sidx];
            let m = &mut members[gid];
            if m.is_empty() {
                order.push(gid);
            }
            m.push((f, sidx));
        }
        if !keep {
            return Ok(());
        }
        let k = k as usize;
        for &gid in order.iter() {
            let m = &mut members[gid];
            match op {
                "limitk" => m.truncate(k),
                _ => {
                    let cmp = if op == "topk" { cmp_desc_nan_last } else { cmp_asc_nan_last };
                    // Stable order: ties keep input order, as a stable sort of the group does.
                    let full = |a: &(f64, usize), b: &(f64, usize)| cmp(a.0, b.0).then(a.1.cmp(&b.1));
                    if m.len() > k && k <= SMALL_K {
                        keep_best(m, k, full);
                    } else {
                        if m.len() > k {
                            m.select_nth_unstable_by(k - 1, full);
                            m.truncate(k);
                        }
                        m.sort_by(full);
                    }
                }
            }
            for &(_, sidx) in m.iter() {
                let s = &input[sidx];
                let cur = cursors[sidx];
                let sample = if cur.0 < s.floats.len() && s.floats[cur.0].t == ts {
                    Sample { metric: Labels::empty(), t: ts, f: s.floats[cur.0].f, h: None, drop_name: s.drop_name }
                } else {
                    Sample {
                        metric: Labels::empty(),
                        t: ts,
                        f: 0.0,
                        h: Some(s.histograms[cur.1].h.clone()),
                        drop_name: s.drop_name,
                    }
                };
                step_out.push((sidx, sample));
            }
            m.clear();
        }
        Ok(())
    }
}

/// Up to this `k`, [`keep_best`] picks a `topk`/`bottomk` group's members; above it a
/// selection (`select_nth_unstable_by`) does, whose cost does not grow with `k`.
const SMALL_K: usize = 32;

/// Reduces `m` to its `k` first elements in `cmp`'s order (a total order), sorted: one pass
/// that keeps the best `k` seen so far in a sorted prefix of `m` and inserts an element only
/// if it beats the current `k`-th. For a dashboard's `topk(10, ...)` over a thousand series
/// most elements cost one comparison, where a selection moves and compares each several
/// times. The result is the same as selecting then sorting: with a total order the `k` first
/// elements are unique.
fn keep_best<T: Copy>(m: &mut Vec<T>, k: usize, cmp: impl Fn(&T, &T) -> std::cmp::Ordering) {
    debug_assert!(k >= 1 && m.len() > k);
    m[..k].sort_by(&cmp);
    for i in k..m.len() {
        let x = m[i];
        if cmp(&x, &m[k - 1]) != std::cmp::Ordering::Less {
            continue;
        }
        // Insert x into the sorted prefix, dropping its last element.
        let pos = m[..k].partition_point(|y| cmp(y, &x) == std::cmp::Ordering::Less);
        m.copy_within(pos..k - 1, pos + 1);
        m[pos] = x;
    }
    m.truncate(k);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_best_equals_select_then_sort() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let cmp = |a: &(f64, usize), b: &(f64, usize)| cmp_desc_nan_last(a.0, b.0).then(a.1.cmp(&b.1));
        for round in 0..200 {
            let n = 2 + round % 150;
            // Few distinct values (ties broken by index), NaNs and infinities included.
            let m: Vec<(f64, usize)> = (0..n)
                .map(|i| {
                    let v = match rng.random_range(0..12) {
                        0 => f64::NAN,
                        1 => f64::INFINITY,
                        2 => f64::NEG_INFINITY,
                        r => f64::from(r % 5),
                    };
                    (v, i)
                })
                .collect();
            for k in 1..n.min(SMALL_K + 1) {
                let mut want = m.clone();
                want.select_nth_unstable_by(k - 1, cmp);
                want.truncate(k);
                want.sort_by(cmp);
                let mut got = m.clone();
                keep_best(&mut got, k, cmp);
                let bits = |v: &[(f64, usize)]| v.iter().map(|p| (p.0.to_bits(), p.1)).collect::<Vec<_>>();
                assert_eq!(bits(&got), bits(&want), "n {n} k {k}");
            }
        }
    }
}
