//! Aggregation operators (Prometheus `engine.go`: `rangeEvalAgg`, `aggregation`,
//! `aggregationK`, `aggregationCountValues`).
//!
//! Groups are keyed by the `by` labels (or all labels but the `without` ones and `__name__`);
//! output groups appear in the order their first input appears. `sum` and `avg` use Kahan
//! summation (`avg` falls back to an incremental mean if the running sum overflows), `stddev`
//! and `stdvar` Welford's online algorithm, `min`/`max` let any number replace a NaN.

use std::collections::HashMap;
use std::sync::Arc;

use promql_parser::parser::{AggregateExpr, Expr, LabelModifier};
use storage::{FloatHistogram, Labels, METRIC_NAME};
use xxhash_rust::xxh3::xxh3_64;

use super::Evaluator;
use crate::error::{QueryError, Result};
use crate::histogram as hist;
use crate::value::{Sample, Vector};

/// Kahan–Babuška summation step (Prometheus `kahanSumInc`).
#[inline]
pub(crate) fn kahan_inc(inc: f64, sum: f64, c: f64) -> (f64, f64) {
    let t = sum + inc;
    let c = if t.is_infinite() {
        0.0
    } else if sum.abs() >= inc.abs() {
        c + ((sum - t) + inc)
    } else {
        c + ((inc - t) + sum)
    };
    (t, c)
}

/// Prometheus `quantile`: linear interpolation between the closest ranks.
pub(crate) fn quantile(q: f64, values: &mut [f64]) -> f64 {
    if values.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    values.sort_by(|a, b| a.total_cmp(b));
    // NaNs sort last under total_cmp for positive NaN; Prometheus sorts NaN first (Go's
    // sort.Float64s). Move them to the front.
    let nan_count = values.iter().filter(|v| v.is_nan()).count();
    if nan_count > 0 {
        values.rotate_right(nan_count);
    }
    let n = values.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let weight = rank - rank.floor();
    values[lower as usize] * (1.0 - weight) + values[upper as usize] * weight
}

pub(super) struct Group {
    metric: Labels,
    pub(super) drop_name: bool,
    pub(super) seen: bool,
    pub(super) f: f64,
    pub(super) c: f64,
    pub(super) count: f64,
    mean: f64,
    incremental: bool,
    /// Sum or mean of the group's histograms.
    h: Option<hist::HistAcc>,
    pub(super) has_float: bool,
    has_hist: bool,
    values: Vec<f64>,
    incompatible: bool,
}

impl Group {
    pub(super) fn new(metric: Labels) -> Group {
        Group {
            metric,
            drop_name: false,
            seen: false,
            f: 0.0,
            c: 0.0,
            count: 0.0,
            mean: 0.0,
            incremental: false,
            h: None,
            has_float: false,
            has_hist: false,
            values: Vec::new(),
            incompatible: false,
        }
    }
}

/// Grouping key and output labels of a sample.
pub(super) fn group_labels(m: &Labels, modifier: &Option<LabelModifier>) -> Labels {
    match modifier {
        None => Labels::empty(),
        Some(LabelModifier::Include(by)) => m.retain(|n| by.labels.iter().any(|x| x == n)),
        Some(LabelModifier::Exclude(w)) => m.retain(|n| n != METRIC_NAME && !w.labels.iter().any(|x| x == n)),
    }
}

/// `labels_key(&group_labels(m, modifier))` without building the group's label set; `buf`
/// is scratch space reused across calls.
pub(super) fn group_key(m: &Labels, modifier: &Option<LabelModifier>, buf: &mut Vec<u8>) -> u64 {
    buf.clear();
    for lab in m.iter() {
        let keep = match modifier {
            None => false,
            Some(LabelModifier::Include(by)) => by.labels.iter().any(|x| *x == lab.name),
            Some(LabelModifier::Exclude(w)) => lab.name != METRIC_NAME && !w.labels.iter().any(|x| *x == lab.name),
        };
        if keep {
            buf.extend_from_slice(lab.name.as_bytes());
            buf.push(0xff);
            buf.extend_from_slice(lab.value.as_bytes());
            buf.push(0xff);
        }
    }
    xxh3_64(buf)
}

pub(super) fn labels_key(l: &Labels) -> u64 {
    let mut buf = Vec::with_capacity(64);
    for lab in l.iter() {
        buf.extend_from_slice(lab.name.as_bytes());
        buf.push(0xff);
        buf.extend_from_slice(lab.value.as_bytes());
        buf.push(0xff);
    }
    xxh3_64(&buf)
}

impl Evaluator<'_> {
    /// An aggregation over all steps.
    pub fn eval_aggregate(&mut self, a: &AggregateExpr) -> Result<crate::value::Matrix> {
        let op = a.op.to_string();
        let modifier = a.modifier.clone();
        let param_str = match a.param.as_deref() {
            Some(Expr::StringLiteral(s)) => Some(s.val.clone()),
            Some(Expr::Paren(p)) => match p.expr.as_ref() {
                Expr::StringLiteral(s) => Some(s.val.clone()),
                _ => None,
            },
            _ => None,
        };
        if op == "count_values" {
            let label = param_str.clone().unwrap_or_default();
            if !storage::labels::is_valid_label_name(&label) {
                return Err(QueryError::Execution(format!("invalid label name {label:?}")));
            }
        }
        let mut args: Vec<&Expr> = Vec::new();
        let has_num_param = a.param.is_some() && param_str.is_none();
        if has_num_param {
            args.push(a.param.as_deref().expect("checked"));
        }
        args.push(&a.expr);
        let pos_text = op.clone();
        if super::agg_steps::handles(&op) {
            let params = match has_num_param {
                true => self.eval_matrix(args[0])?,
                false => Vec::new(),
            };
            self.pending_hint = super::hints::grouping_hint(a);
            let input = self.eval_matrix(&a.expr);
            self.pending_hint = None;
            let input = input?;
            let input_points = params.iter().chain(input.iter()).map(|s| s.len()).sum::<usize>();
            let steps = self.steps();
            let mut per_step = vec![f64::NAN; steps];
            if let Some(s) = params.first() {
                let mut pts = s.floats.iter().peekable();
                for (i, v) in per_step.iter_mut().enumerate() {
                    let ts = self.ts(i);
                    while pts.peek().is_some_and(|p| p.t < ts) {
                        pts.next();
                    }
                    if let Some(p) = pts.peek().filter(|p| p.t == ts) {
                        *v = p.f;
                    }
                }
            }
            return self.aggregate_steps(&op, &per_step, input, input_points, &modifier, &pos_text);
        }
        self.range_eval(&args, |ev, vs, _ts| {
            let param = if has_num_param { vs[0].first().map(|s| s.f).unwrap_or(f64::NAN) } else { f64::NAN };
            let input = std::mem::take(vs.last_mut().expect("expr arg"));
            ev.aggregate_step(&op, param, param_str.as_deref(), input, &modifier, &pos_text)
        })
    }

    fn aggregate_step(
        &mut self,
        op: &str,
        param: f64,
        param_str: Option<&str>,
        input: Vector,
        modifier: &Option<LabelModifier>,
        pos: &str,
    ) -> Result<Vector> {
        match op {
            "topk" | "bottomk" | "limitk" | "limit_ratio" => return self.aggregate_k(op, param, input, modifier, pos),
            "count_values" => return Ok(count_values(param_str.unwrap_or(""), input, modifier)),
            "quantile" => {
                if !(0.0..=1.0).contains(&param) {
                    self.warn_param(format!("quantile value should be between 0 and 1, got {}", fmt_go(param)), pos);
                }
            }
            _ => {}
        }
        let mut order: Vec<u64> = Vec::new();
        let mut groups: HashMap<u64, Group> = HashMap::new();
        for s in input {
            let gl = group_labels(&s.metric, modifier);
            let key = labels_key(&gl);
            let g = groups.entry(key).or_insert_with(|| {
                order.push(key);
                Group::new(gl)
            });
            if s.drop_name {
                g.drop_name = true;
            }
            self.accumulate(op, g, s, pos);
        }
        let mut out = Vec::with_capacity(order.len());
        for key in order {
            let g = groups.remove(&key).expect("group exists");
            if let Some(s) = self.finish_group(op, param, g, pos) {
                out.push(s);
            }
        }
        Ok(out)
    }

    pub(super) fn accumulate(&mut self, op: &str, g: &mut Group, s: Sample, pos: &str) {
        let first = !g.seen;
        g.seen = true;
        match s.h {
            Some(h) => {
                g.has_hist = true;
                match op {
                    "sum" | "avg" => {
                        g.count += 1.0;
                        if g.incompatible {
                            return;
                        }
                        match g.h.as_mut() {
                            None => g.h = Some(hist::HistAcc::new(&h, op == "avg")),
                            Some(acc) => {
                                let was_reconciled = acc.reconciled();
                                match acc.add(&h) {
                                    Ok(()) => {
                                        if acc.reconciled() && !was_reconciled {
                                            self.info_at_arg("mismatched custom buckets were reconciled during aggregation", pos);
                                        }
                                    }
                                    Err(e) => {
                                        self.warn(e.to_string(), pos);
                                        g.incompatible = true;
                                    }
                                }
                            }
                        }
                    }
                    "count" | "group" => g.count += 1.0,
                    "min" | "max" | "stddev" | "stdvar" | "quantile" => {
                        self.info(format!("ignored histogram in {op} aggregation"), pos);
                    }
                    _ => {}
                }
            }
            None => {
                g.has_float = true;
                let v = s.f;
                match op {
                    "sum" => {
                        let (f, c) = kahan_inc(v, g.f, g.c);
                        g.f = f;
                        g.c = c;
                    }
                    "avg" => {
                        g.count += 1.0;
                        if first || g.count == 1.0 {
                            g.f = v;
                            g.c = 0.0;
                            g.mean = v;
                        } else if !g.incremental {
                            let (f, c) = kahan_inc(v, g.f, g.c);
                            if f.is_infinite() && !v.is_infinite() && !g.f.is_infinite() {
                                g.incremental = true;
                                g.mean = (g.f + g.c) / (g.count - 1.0);
                                g.c = 0.0;
                            } else {
                                g.f = f;
                                g.c = c;
                            }
                        }
                        if g.incremental {
                            if g.mean.is_infinite() {
                                if v.is_infinite() && g.mean.signum() != v.signum() {
                                    g.mean = f64::NAN;
                                }
                            } else {
                                let (m, c) = kahan_inc(v / g.count - g.mean / g.count, g.mean, g.c);
                                g.mean = m;
                                g.c = c;
                            }
                        }
                    }
                    "count" | "group" => g.count += 1.0,
                    "min" => {
                        if first || g.f > v || g.f.is_nan() {
                            g.f = v;
                        }
                    }
                    "max" => {
                        if first || g.f < v || g.f.is_nan() {
                            g.f = v;
                        }
                    }
                    "stddev" | "stdvar" => {
                        g.count += 1.0;
                        let delta = v - g.mean;
                        g.mean += delta / g.count;
                        g.f += delta * (v - g.mean);
                    }
                    "quantile" => g.values.push(v),
                    _ => {}
                }
            }
        }
    }

    /// Warning `text` at the position of the expression argument of aggregation `op`, where
    /// Prometheus raises histogram-aggregation annotations (`e.Expr.PositionRange()`).
    fn warn_at_arg(&mut self, text: &str, op: &str) {
        let p = agg_arg_pos(self.ctx.query, op);
        self.annos.warn(format!("PromQL warning: {text}{p}"));
    }

    /// As [`Self::warn_at_arg`], for an info annotation.
    fn info_at_arg(&mut self, text: &str, op: &str) {
        let p = agg_arg_pos(self.ctx.query, op);
        self.annos.info(format!("PromQL info: {text}{p}"));
    }

    pub(super) fn finish_group(&mut self, op: &str, param: f64, mut g: Group, pos: &str) -> Option<Sample> {
        let metric = g.metric.clone();
        let mk = |f: f64, h: Option<Arc<FloatHistogram>>| Sample { metric: metric.clone(), t: 0, f, h, drop_name: g.drop_name };
        match op {
            "sum" | "avg" => {
                if g.has_hist && g.has_float {
                    let name = g.metric.metric_name().unwrap_or("").to_string();
                    let _ = name;
                    self.warn("encountered a mix of histograms and floats for aggregation".to_string(), pos);
                    return None;
                }
                if g.has_hist {
                    if g.incompatible {
                        return None;
                    }
                    let acc = g.h.take()?;
                    if acc.counter_reset_collision() {
                        self.warn_at_arg("conflicting counter resets during histogram aggregation", pos);
                    }
                    return Some(mk(0.0, Some(Arc::new(acc.finish()))));
                }
                if op == "sum" {
                    Some(mk(g.f + g.c, None))
                } else if g.incremental {
                    Some(mk(g.mean + g.c, None))
                } else {
                    Some(mk((g.f + g.c) / g.count, None))
                }
            }
            "count" => Some(mk(g.count, None)),
            "group" => Some(mk(1.0, None)),
            "min" | "max" => {
                if !g.has_float {
                    return None;
                }
                Some(mk(g.f, None))
            }
            "stddev" | "stdvar" => {
                if !g.has_float {
                    return None;
                }
                let var = g.f / g.count;
                Some(mk(if op == "stddev" { var.sqrt() } else { var }, None))
            }
            "quantile" => {
                if !g.has_float {
                    return None;
                }
                Some(mk(quantile(param, &mut g.values), None))
            }
            _ => None,
        }
    }

    fn aggregate_k(&mut self, op: &str, param: f64, input: Vector, modifier: &Option<LabelModifier>, pos: &str) -> Result<Vector> {
        let mut order: Vec<u64> = Vec::new();
        let mut groups: HashMap<u64, Vec<Sample>> = HashMap::new();
        if op == "limit_ratio" {
            if param.is_nan() {
                return Err(QueryError::Execution("Ratio value is NaN".to_string()));
            }
            let ratio = param.clamp(-1.0, 1.0);
            if param != ratio {
                self.warn_param(format!("ratio value should be between -1 and 1, got {}, capping to {}", fmt_go(param), fmt_go(ratio)), pos);
            }
            let mut out = Vec::new();
            for s in input {
                let off = hist::prom_labels_hash(&s.metric) as f64 / u64::MAX as f64;
                let keep = if ratio >= 0.0 { off < ratio } else { off >= 1.0 + ratio };
                if keep {
                    out.push(s);
                }
            }
            return Ok(out);
        }
        if param.is_nan() || param.abs() > 9.2e18 {
            return Err(QueryError::Execution(format!("Scalar value {} overflows int64", fmt_go(param))));
        }
        let k = param as i64;
        if k < 1 {
            return Ok(Vec::new());
        }
        let k = k as usize;
        for s in input {
            if s.h.is_some() && op != "limitk" {
                self.info(format!("ignored histogram in {op} aggregation"), pos);
                continue;
            }
            let key = labels_key(&group_labels(&s.metric, modifier));
            let g = groups.entry(key).or_insert_with(|| {
                order.push(key);
                Vec::new()
            });
            g.push(s);
        }
        let mut out = Vec::new();
        for key in order {
            let mut g = groups.remove(&key).expect("group exists");
            match op {
                "limitk" => g.truncate(k),
                "topk" => {
                    // Descending, NaN last (Prometheus treats NaN as smallest for topk).
                    g.sort_by(|a, b| cmp_desc_nan_last(a.f, b.f));
                    g.truncate(k);
                }
                _ => {
                    g.sort_by(|a, b| cmp_asc_nan_last(a.f, b.f));
                    g.truncate(k);
                }
            }
            out.extend(g);
        }
        Ok(out)
    }
}

pub(super) fn cmp_desc_nan_last(a: f64, b: f64) -> std::cmp::Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Greater,
        (false, true) => std::cmp::Ordering::Less,
        _ => b.partial_cmp(&a).expect("not NaN"),
    }
}

pub(super) fn cmp_asc_nan_last(a: f64, b: f64) -> std::cmp::Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Greater,
        (false, true) => std::cmp::Ordering::Less,
        _ => a.partial_cmp(&b).expect("not NaN"),
    }
}

fn count_values(label: &str, input: Vector, modifier: &Option<LabelModifier>) -> Vector {
    let mut order: Vec<(u64, Labels)> = Vec::new();
    let mut counts: HashMap<u64, f64> = HashMap::new();
    for s in input {
        let v = match &s.h {
            Some(h) => hist::to_string(h),
            None => fmt_go(s.f),
        };
        let gl = group_labels(&s.metric, modifier).with(label, &v);
        let key = labels_key(&gl);
        let c = counts.entry(key).or_insert_with(|| {
            order.push((key, gl.clone()));
            0.0
        });
        *c += 1.0;
    }
    order
        .into_iter()
        .map(|(k, l)| Sample { metric: l, t: 0, f: counts[&k], h: None, drop_name: false })
        .collect()
}

/// Go's `strconv.FormatFloat(f, 'f', -1, 64)` for typical values, `+Inf`/`-Inf`/`NaN`.
pub(crate) fn fmt_go(f: f64) -> String {
    if f.is_nan() {
        "NaN".into()
    } else if f == f64::INFINITY {
        "+Inf".into()
    } else if f == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        let s = format!("{f}");
        s
    }
}

/// ` (line:col)` of the expression argument of the first aggregation `op` in query text `q`:
/// `op`, then optionally `by (..)`/`without (..)`, then `(`, then the argument (after the
/// parameter and its comma for `topk`, `quantile` and the like). Falls back to the position of
/// `op` itself (1:1 if absent). Aggregations that sum histograms (`sum`, `avg`) take no
/// parameter, so the argument is the first one in the parentheses.
pub(crate) fn agg_arg_pos(q: &str, op: &str) -> String {
    let b = q.as_bytes();
    let mut from = 0;
    let mut found = None;
    while let Some(off) = q[from..].find(op) {
        let i = from + off;
        from = i + op.len();
        let before_ok = i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_' || b[i - 1] == b':');
        if !before_ok {
            continue;
        }
        if let Some(open) = agg_open_paren(q, from) {
            found = Some(open + 1);
            break;
        }
    }
    let idx = match found {
        Some(start) => {
            let rest = &q[start..];
            start + (rest.len() - rest.trim_start().len())
        }
        None => q.find(op).unwrap_or(0),
    };
    let line = q[..idx].matches('\n').count() + 1;
    let col = idx - q[..idx].rfind('\n').map_or(0, |p| p + 1) + 1;
    format!(" ({line}:{col})")
}

/// Index of the `(` that opens an aggregation's arguments, given the index just after its
/// name: skips whitespace and one `by (..)`/`without (..)` clause. `None` if the text there is
/// not an aggregation call.
fn agg_open_paren(q: &str, mut k: usize) -> Option<usize> {
    let skip_ws = |k: usize| k + (q[k..].len() - q[k..].trim_start().len());
    k = skip_ws(k);
    for kw in ["by", "without"] {
        let r = &q[k..];
        if r.len() > kw.len() && r[..kw.len()].eq_ignore_ascii_case(kw) {
            let after = skip_ws(k + kw.len());
            if q[after..].starts_with('(') {
                let close = q[after..].find(')')?;
                k = skip_ws(after + close + 1);
            }
            break;
        }
    }
    q[k..].starts_with('(').then_some(k)
}

#[cfg(test)]
mod tests {
    use super::agg_arg_pos;

    #[test]
    fn aggregation_argument_positions() {
        assert_eq!(agg_arg_pos("histogram_count(sum(metric))", "sum"), " (1:21)");
        assert_eq!(agg_arg_pos("sum by (job) ( x )", "sum"), " (1:16)");
        assert_eq!(agg_arg_pos("histogram_sum(sum_over_time(x[5m])) + avg without(a)(y)", "avg"), " (1:54)");
        assert_eq!(agg_arg_pos("sum_over_time(x[5m])\n+ sum(\n  y)", "sum"), " (3:3)");
        assert_eq!(agg_arg_pos("x", "sum"), " (1:1)");
    }
}
