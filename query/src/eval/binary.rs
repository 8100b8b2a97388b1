//! Binary operators (Prometheus `engine.go`: `VectorBinop`, `VectorAnd/Or/Unless`,
//! `VectorscalarBinop`, `vectorElemBinop`, `resultMetric`).
//!
//! * Matching signature: with `on(l...)` the listed labels; otherwise every label except
//!   `__name__` and the `ignoring(...)` ones.
//! * One-to-one: each side's signature must be unique on the side that must be unique;
//!   result labels are the left side's, reduced to the `on` labels (or without the `ignoring`
//!   ones). `group_left`/`group_right` make the other side the "one" side and copy its extra
//!   labels. Arithmetic drops `__name__` (delayed, see `Sample::drop_name`); comparisons
//!   filter and keep the left value unless `bool` is given.
//! * `fill(v)`, `fill_left(v)`, `fill_right(v)`: a side without a match is replaced by `v`.
//! * Range queries: vector-vector arithmetic and comparisons compute each series' signature and
//!   output labels once per series, not per step (`vector_vector_range`); instant queries and
//!   `and`/`or`/`unless` go through the per-step path.

use std::collections::HashMap;
use std::sync::Arc;

use promql_parser::parser::{BinModifier, BinaryExpr, Expr, LabelModifier, VectorMatchCardinality};
use promql_parser::parser::value::ValueType as PType;
use storage::{FloatHistogram, Labels, METRIC_NAME};
use xxhash_rust::xxh3::xxh3_64;

use super::{point_at, Evaluator};
use crate::error::{QueryError, Result};
use crate::histogram as hist;
use crate::value::{FPoint, HPoint, Matrix, Sample, Series, Vector};

/// The operator, decoded once.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Op {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    Atan2,
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
    And,
    Or,
    Unless,
    /// `</` (keep the observations below the right-hand value).
    TrimUpper,
    /// `>/` (keep the observations above the right-hand value).
    TrimLower,
}

impl Op {
    pub fn parse(s: &str) -> Option<Op> {
        Some(match s {
            "+" => Op::Add,
            "-" => Op::Sub,
            "*" => Op::Mul,
            "/" => Op::Div,
            "%" => Op::Mod,
            "^" => Op::Pow,
            "atan2" => Op::Atan2,
            "==" => Op::Eq,
            "!=" => Op::Ne,
            ">" => Op::Gt,
            "<" => Op::Lt,
            ">=" => Op::Ge,
            "<=" => Op::Le,
            "and" => Op::And,
            "or" => Op::Or,
            "unless" => Op::Unless,
            _ => return None,
        })
    }

    pub fn is_comparison(self) -> bool {
        matches!(self, Op::Eq | Op::Ne | Op::Gt | Op::Lt | Op::Ge | Op::Le)
    }

    fn is_set(self) -> bool {
        matches!(self, Op::And | Op::Or | Op::Unless)
    }

    fn drops_name(self) -> bool {
        matches!(self, Op::Add | Op::Sub | Op::Mul | Op::Div | Op::Mod | Op::Pow | Op::Atan2)
    }

    fn symbol(self) -> &'static str {
        match self {
            Op::Add => "+",
            Op::Sub => "-",
            Op::Mul => "*",
            Op::Div => "/",
            Op::Mod => "%",
            Op::Pow => "^",
            Op::Atan2 => "atan2",
            Op::Eq => "==",
            Op::Ne => "!=",
            Op::Gt => ">",
            Op::Lt => "<",
            Op::Ge => ">=",
            Op::Le => "<=",
            Op::And => "and",
            Op::Or => "or",
            Op::Unless => "unless",
            Op::TrimUpper => "</",
            Op::TrimLower => ">/",
        }
    }
}

/// Float operator (`vectorElemBinop` for floats): `(value, keep)`.
pub(crate) fn float_op(op: Op, l: f64, r: f64) -> (f64, bool) {
    match op {
        Op::Add => (l + r, true),
        Op::Sub => (l - r, true),
        Op::Mul => (l * r, true),
        Op::Div => (l / r, true),
        Op::Mod => (go_mod(l, r), true),
        Op::Pow => (l.powf(r), true),
        Op::Atan2 => (l.atan2(r), true),
        Op::Eq => (l, l == r),
        Op::Ne => (l, l != r),
        Op::Gt => (l, l > r),
        Op::Lt => (l, l < r),
        Op::Ge => (l, l >= r),
        Op::Le => (l, l <= r),
        Op::And | Op::Or | Op::Unless => (l, true),
        // Trim needs a histogram on the left: a float pair is dropped (see `elem_op`).
        Op::TrimUpper | Op::TrimLower => (l, false),
    }
}

/// Go's `math.Mod`: the result has the sign of `l`; NaN for `r == 0` or infinite `l`.
fn go_mod(l: f64, r: f64) -> f64 {
    if r == 0.0 || l.is_infinite() || l.is_nan() || r.is_nan() {
        return f64::NAN;
    }
    l % r
}

/// Result of applying an operator to two samples.
enum Elem {
    F(f64, bool),
    H(Arc<FloatHistogram>, bool),
    /// Incompatible operand types: the sample is dropped with an info.
    Incompatible(&'static str, &'static str),
}

impl Evaluator<'_> {
    fn elem_op(&mut self, op: Op, lf: f64, lh: Option<&Arc<FloatHistogram>>, rf: f64, rh: Option<&Arc<FloatHistogram>>) -> Elem {
        match (lh, rh) {
            (None, None) if matches!(op, Op::TrimUpper | Op::TrimLower) => Elem::Incompatible("float", "float"),
            (None, None) => {
                let (v, k) = float_op(op, lf, rf);
                Elem::F(v, k)
            }
            (Some(a), Some(b)) => match op {
                Op::Add | Op::Sub => {
                    let mut annos = Vec::new();
                    match hist::add_sub(a, b, op == Op::Sub, &mut annos) {
                        Ok(mut h) => {
                            if op == Op::Sub {
                                h.counter_reset_hint = storage::histogram::CounterResetHint::Gauge;
                            }
                            hist::compact(&mut h);
                            for (w, t) in annos {
                                let text = format!("{t} {}", if op == Op::Add { "addition" } else { "subtraction" });
                                if w {
                                    self.warn(text, "");
                                } else {
                                    self.info(text, "");
                                }
                            }
                            Elem::H(Arc::new(h), true)
                        }
                        Err(t) => {
                            self.warn(t.to_string(), "");
                            Elem::Incompatible("", "")
                        }
                    }
                }
                Op::Eq => Elem::H(a.clone(), hist::equals(a, b)),
                Op::Ne => Elem::H(a.clone(), !hist::equals(a, b)),
                _ => Elem::Incompatible("histogram", "histogram"),
            },
            (Some(a), None) => match op {
                Op::Mul => Elem::H(Arc::new(hist::scale(a, rf)), true),
                Op::TrimUpper | Op::TrimLower => Elem::H(Arc::new(hist::trim(a, rf, op == Op::TrimUpper)), true),
                Op::Div => Elem::H(Arc::new(hist::div(a, rf)), true),
                _ => Elem::Incompatible("histogram", "float"),
            },
            (None, Some(b)) => match op {
                Op::Mul => Elem::H(Arc::new(hist::scale(b, lf)), true),
                _ => Elem::Incompatible("float", "histogram"),
            },
        }
    }

    fn incompatible_info(&mut self, op: Op, l: &'static str, r: &'static str) {
        if l.is_empty() {
            return;
        }
        self.info(
            format!("incompatible sample types encountered for binary operator {:?}: {l} {} {r}", op.symbol(), op.symbol()),
            "",
        );
    }

    /// A binary expression over all steps.
    pub fn eval_binary(&mut self, b: &BinaryExpr) -> Result<Matrix> {
        let op_name = b.op.to_string();
        let op = Op::parse(&op_name).ok_or_else(|| QueryError::BadData(format!("unknown operator {op_name}")))?;
        self.eval_binary_op(op, b)
    }

    /// The trim operator `</` (`upper`) or `>/` between two instant vectors, `b` being the
    /// comparison node the parser saw (its matching modifiers apply): each matched pair's
    /// histogram is trimmed at the float (Prometheus `FloatHistogram.TrimBuckets`); other type
    /// pairs are dropped with an info, as for the other operators.
    pub fn eval_trim_matched(&mut self, b: &BinaryExpr, upper: bool) -> Result<Matrix> {
        self.eval_binary_op(if upper { Op::TrimUpper } else { Op::TrimLower }, b)
    }

    fn eval_binary_op(&mut self, op: Op, b: &BinaryExpr) -> Result<Matrix> {
        let lt = b.lhs.value_type();
        let rt = b.rhs.value_type();
        let return_bool = b.modifier.as_ref().is_some_and(|m| m.return_bool);
        match (lt, rt) {
            (PType::Scalar, PType::Scalar) => {
                let l = self.eval_scalar_steps(&b.lhs)?;
                let r = self.eval_scalar_steps(&b.rhs)?;
                let start = self.start;
                let step = self.interval;
                Ok(self.scalar_matrix(|t| {
                    let i = ((t - start) / step) as usize;
                    let (v, keep) = float_op(op, l[i], r[i]);
                    if op.is_comparison() {
                        if keep {
                            1.0
                        } else {
                            0.0
                        }
                    } else {
                        v
                    }
                }))
            }
            (PType::Vector, PType::Scalar) | (PType::Scalar, PType::Vector) => {
                let swap = lt == PType::Scalar;
                self.range_eval(&[&b.lhs, &b.rhs], |ev, vs, _ts| {
                    let (vec_i, sc_i) = if swap { (1, 0) } else { (0, 1) };
                    let Some(sc) = vs[sc_i].first().map(|s| s.f) else { return Ok(Vec::new()) };
                    let input = std::mem::take(&mut vs[vec_i]);
                    Ok(ev.vector_scalar(op, input, sc, swap, return_bool))
                })
            }
            (PType::Vector, PType::Vector) => {
                let modifier = b.modifier.clone().unwrap_or_default();
                if !op.is_set() && self.steps() > 1 {
                    return self.vector_vector_range(op, &b.lhs, &b.rhs, &modifier);
                }
                self.range_eval(&[&b.lhs, &b.rhs], |ev, vs, _ts| {
                    let l = std::mem::take(&mut vs[0]);
                    let r = std::mem::take(&mut vs[1]);
                    if op.is_set() {
                        Ok(set_op(op, l, r, &modifier))
                    } else {
                        ev.vector_vector(op, l, r, &modifier)
                    }
                })
            }
            _ => Err(QueryError::BadData("binary expression must contain only scalar and instant vector types".to_string())),
        }
    }

    fn vector_scalar(&mut self, op: Op, input: Vector, sc: f64, swap: bool, return_bool: bool) -> Vector {
        let mut out = Vec::with_capacity(input.len());
        for mut s in input {
            let (lf, lh, rf, rh) = if swap { (sc, None, s.f, s.h.as_ref()) } else { (s.f, s.h.as_ref(), sc, None) };
            let (mut f, mut h, mut keep) = match self.elem_op(op, lf, lh, rf, rh) {
                Elem::F(v, k) => (v, None, k),
                Elem::H(h, k) => (0.0, Some(h), k),
                Elem::Incompatible(a, b) => {
                    self.incompatible_info(op, a, b);
                    continue;
                }
            };
            if op.is_comparison() && swap {
                f = rf;
                h = rh.cloned();
            }
            if return_bool {
                f = if keep { 1.0 } else { 0.0 };
                h = None;
                keep = true;
            }
            if keep {
                s.f = f;
                s.h = h;
                if op.drops_name() || return_bool {
                    s.drop_name = true;
                }
                out.push(s);
            }
        }
        out
    }

    fn vector_vector(&mut self, op: Op, lhs: Vector, rhs: Vector, m: &BinModifier) -> Result<Vector> {
        let fill_l = m.fill_values.lhs;
        let fill_r = m.fill_values.rhs;
        if (lhs.is_empty() && fill_l.is_none()) || (rhs.is_empty() && fill_r.is_none()) {
            return Ok(Vec::new());
        }
        let return_bool = m.return_bool;
        let one_to_many = matches!(m.card, VectorMatchCardinality::OneToMany(_));
        let include: Vec<String> = match &m.card {
            VectorMatchCardinality::ManyToOne(l) | VectorMatchCardinality::OneToMany(l) => l.labels.clone(),
            _ => Vec::new(),
        };
        let one_to_one = matches!(m.card, VectorMatchCardinality::OneToOne);
        // "many" side first.
        // With group_right the sides swap but the fill values do not (Prometheus applies them to
        // the swapped vectors).
        let (many, one, fill_many, fill_one) = if one_to_many { (rhs, lhs, fill_l, fill_r) } else { (lhs, rhs, fill_l, fill_r) };
        let mut one_sigs: HashMap<u64, usize> = HashMap::with_capacity(one.len());
        for (i, s) in one.iter().enumerate() {
            let sig = signature(&s.metric, &m.matching);
            if let Some(&prev) = one_sigs.get(&sig) {
                let side = if one_to_many { "left" } else { "right" };
                return Err(QueryError::Execution(format!(
                    "found duplicate series for the match group {} on the {side} hand-side of the operation: [{}, {}];many-to-many matching not allowed: matching labels must be unique on one side",
                    match_group(&s.metric, &m.matching),
                    one[prev].metric,
                    s.metric
                )));
            }
            one_sigs.insert(sig, i);
        }
        let mut matched: HashMap<u64, Vec<u64>> = HashMap::new();
        let mut one_used = vec![false; one.len()];
        let mut out = Vec::new();
        for ms in &many {
            let sig = signature(&ms.metric, &m.matching);
            let (os_metric, of, oh, oidx): (Labels, f64, Option<Arc<FloatHistogram>>, Option<usize>) = match one_sigs.get(&sig) {
                Some(&i) => (one[i].metric.clone(), one[i].f, one[i].h.clone(), Some(i)),
                None => match fill_one {
                    Some(v) => (sig_labels(&ms.metric, &m.matching), v, None, None),
                    None => continue,
                },
            };
            if let Some(i) = oidx {
                one_used[i] = true;
            }
            let (lf, lh, rf, rh) =
                if one_to_many { (of, oh.as_ref(), ms.f, ms.h.as_ref()) } else { (ms.f, ms.h.as_ref(), of, oh.as_ref()) };
            let Some(s) = self.combine(op, lf, lh, rf, rh, &ms.metric, &os_metric, m, one_to_one, &include, return_bool, ms.drop_name)? else {
                continue;
            };
            let e = matched.entry(sig).or_default();
            if one_to_one {
                if !e.is_empty() {
                    return Err(QueryError::Execution(
                        "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)".into(),
                    ));
                }
                e.push(0);
            } else {
                let h = s.metric.hash64();
                if e.contains(&h) {
                    return Err(QueryError::Execution(
                        "multiple matches for labels: grouping labels must ensure unique matches".into(),
                    ));
                }
                e.push(h);
            }
            out.push(s);
        }
        if let Some(v) = fill_many {
            for (i, os) in one.iter().enumerate() {
                if one_used[i] {
                    continue;
                }
                let virt = sig_labels(&os.metric, &m.matching);
                let (lf, lh, rf, rh) = if one_to_many { (os.f, os.h.as_ref(), v, None) } else { (v, None, os.f, os.h.as_ref()) };
                if let Some(s) = self.combine(op, lf, lh, rf, rh, &virt, &os.metric, m, one_to_one, &include, return_bool, false)? {
                    out.push(s);
                }
            }
        }
        Ok(out)
    }

    /// The value of one vector-vector match: `None` when a comparison filters it out or the
    /// operand types are incompatible (with an info); with `bool`, comparisons give 0/1.
    fn binop_value(
        &mut self,
        op: Op,
        lf: f64,
        lh: Option<&Arc<FloatHistogram>>,
        rf: f64,
        rh: Option<&Arc<FloatHistogram>>,
        return_bool: bool,
    ) -> Option<(f64, Option<Arc<FloatHistogram>>)> {
        let (f, h, keep) = match self.elem_op(op, lf, lh, rf, rh) {
            Elem::F(v, k) => (v, None, k),
            Elem::H(h, k) => (0.0, Some(h), k),
            Elem::Incompatible(a, b) => {
                self.incompatible_info(op, a, b);
                return None;
            }
        };
        if return_bool {
            Some((if keep { 1.0 } else { 0.0 }, None))
        } else if keep {
            Some((f, h))
        } else {
            None
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn combine(
        &mut self,
        op: Op,
        lf: f64,
        lh: Option<&Arc<FloatHistogram>>,
        rf: f64,
        rh: Option<&Arc<FloatHistogram>>,
        many_metric: &Labels,
        one_metric: &Labels,
        m: &BinModifier,
        one_to_one: bool,
        include: &[String],
        return_bool: bool,
        many_drop: bool,
    ) -> Result<Option<Sample>> {
        let Some((f, h)) = self.binop_value(op, lf, lh, rf, rh, return_bool) else { return Ok(None) };
        let metric = result_metric(many_metric, one_metric, m, one_to_one, include);
        Ok(Some(Sample {
            metric,
            t: 0,
            f,
            h,
            drop_name: return_bool || op.drops_name() || many_drop,
        }))
    }
}

/// Output series of a vector-vector range evaluation, indexed by label set; each output label
/// set is hashed once, when its series is created.
struct RangeOut {
    series: Matrix,
    index: HashMap<Labels, usize>,
    /// Per output series: `step + 1` of its last point, for the per-step duplicate check.
    last: Vec<usize>,
}

impl RangeOut {
    fn slot(&mut self, metric: Labels, drop_name: bool) -> usize {
        if let Some(&i) = self.index.get(&metric) {
            return i;
        }
        self.series.push(Series { metric: metric.clone(), drop_name, ..Default::default() });
        self.last.push(0);
        self.index.insert(metric, self.series.len() - 1);
        self.series.len() - 1
    }

    fn push(&mut self, slot: usize, ts: i64, f: f64, h: Option<Arc<FloatHistogram>>) {
        let ser = &mut self.series[slot];
        match h {
            Some(h) => ser.histograms.push(HPoint { t: ts, h }),
            None => ser.floats.push(FPoint { t: ts, f }),
        }
    }
}

/// Output-label cache key of a "many" series when its labels do not depend on a "one" series.
const NO_ONE: usize = usize::MAX;

impl Evaluator<'_> {
    /// A non-set vector-vector operator over a range of steps (more than one).
    ///
    /// Same semantics and errors as [`Evaluator::range_eval`] over
    /// [`Evaluator::vector_vector`] at every step, but each series' matching signature
    /// (`signature`, as a dense id) and output labels (`resultMetric`) are computed once per
    /// series, not once per step: a step only advances cursors and looks the "one" side up
    /// by signature id in a vector.
    fn vector_vector_range(&mut self, op: Op, lhs: &Expr, rhs: &Expr, m: &BinModifier) -> Result<Matrix> {
        let l = self.eval_matrix(lhs)?;
        let r = self.eval_matrix(rhs)?;
        let input_points: usize = l.iter().chain(r.iter()).map(|s| s.len()).sum();
        let (fill_l, fill_r) = (m.fill_values.lhs, m.fill_values.rhs);
        let return_bool = m.return_bool;
        let one_to_many = matches!(m.card, VectorMatchCardinality::OneToMany(_));
        let one_to_one = matches!(m.card, VectorMatchCardinality::OneToOne);
        let include: Vec<String> = match &m.card {
            VectorMatchCardinality::ManyToOne(g) | VectorMatchCardinality::OneToMany(g) => g.labels.clone(),
            _ => Vec::new(),
        };
        // As in `vector_vector`: group_right swaps the sides, not the fill values.
        let (many, one, fill_many, fill_one) = if one_to_many { (r, l, fill_l, fill_r) } else { (l, r, fill_l, fill_r) };

        let mut sig_ids: HashMap<u64, usize> = HashMap::with_capacity(many.len() + one.len());
        let mut sig_id = |lab: &Labels| {
            let n = sig_ids.len();
            *sig_ids.entry(signature(lab, &m.matching)).or_insert(n)
        };
        let many_sig: Vec<usize> = many.iter().map(|s| sig_id(&s.metric)).collect();
        let one_sig: Vec<usize> = one.iter().map(|s| sig_id(&s.metric)).collect();
        let nsig = sig_ids.len();

        // Per-step scratch, stamped with `step + 1` so nothing is cleared between steps.
        let mut one_at: Vec<(usize, usize)> = vec![(0, 0); nsig];
        let mut sig_matched: Vec<usize> = vec![0; nsig];
        let mut one_used: Vec<usize> = vec![0; one.len()];
        let mut many_cur = vec![(0usize, 0usize); many.len()];
        let mut one_cur = vec![(0usize, 0usize); one.len()];
        let mut many_val: Vec<(f64, Option<Arc<FloatHistogram>>)> = vec![(0.0, None); many.len()];
        let mut one_val: Vec<(f64, Option<Arc<FloatHistogram>>)> = vec![(0.0, None); one.len()];
        let mut many_here: Vec<usize> = Vec::with_capacity(many.len());
        let mut one_here: Vec<usize> = Vec::with_capacity(one.len());
        // group_left/group_right: (signature id, output series) pairs produced at this step.
        let mut grouped: std::collections::HashSet<(usize, usize)> = std::collections::HashSet::new();

        // Output series per "many" series, keyed by the "one" series it was matched with (only
        // when `group_x(labels)` copies labels from it; otherwise the key is constant).
        let mut many_slot: Vec<Option<(usize, usize)>> = vec![None; many.len()];
        let mut fill_slot: Vec<Option<usize>> = vec![None; one.len()];
        let mut out = RangeOut { series: Vec::new(), index: HashMap::new(), last: Vec::new() };

        for si in 0..self.steps() {
            if si % 256 == 0 {
                self.check("range evaluation")?;
            }
            let ts = self.ts(si);
            let stamp = si + 1;
            many_here.clear();
            one_here.clear();
            for (i, s) in many.iter().enumerate() {
                if let Some((f, h)) = point_at(s, &mut many_cur[i], ts) {
                    many_val[i] = (f, h.cloned());
                    many_here.push(i);
                }
            }
            for (i, s) in one.iter().enumerate() {
                if let Some((f, h)) = point_at(s, &mut one_cur[i], ts) {
                    one_val[i] = (f, h.cloned());
                    one_here.push(i);
                }
            }
            let (l_len, r_len) = if one_to_many { (one_here.len(), many_here.len()) } else { (many_here.len(), one_here.len()) };
            if (l_len == 0 && fill_l.is_none()) || (r_len == 0 && fill_r.is_none()) {
                self.add_samples(0)?;
                continue;
            }
            for &i in &one_here {
                let sg = one_sig[i];
                if one_at[sg].0 == stamp {
                    let side = if one_to_many { "left" } else { "right" };
                    return Err(QueryError::Execution(format!(
                        "found duplicate series for the match group {} on the {side} hand-side of the operation: [{}, {}];many-to-many matching not allowed: matching labels must be unique on one side",
                        match_group(&one[i].metric, &m.matching),
                        one[one_at[sg].1].metric,
                        one[i].metric
                    )));
                }
                one_at[sg] = (stamp, i);
            }
            grouped.clear();
            let mut produced = 0usize;
            let mut same_labelset = false;
            for &i in &many_here {
                let sg = many_sig[i];
                let oidx = if one_at[sg].0 == stamp { Some(one_at[sg].1) } else { None };
                let (of, oh) = match oidx {
                    Some(j) => {
                        one_used[j] = stamp;
                        (one_val[j].0, one_val[j].1.as_ref())
                    }
                    None => match fill_one {
                        Some(v) => (v, None),
                        None => continue,
                    },
                };
                let (mf, mh) = (many_val[i].0, many_val[i].1.as_ref());
                let (lf, lh, rf, rh) = if one_to_many { (of, oh, mf, mh) } else { (mf, mh, of, oh) };
                let Some((f, h)) = self.binop_value(op, lf, lh, rf, rh, return_bool) else { continue };
                if one_to_one {
                    if sig_matched[sg] == stamp {
                        return Err(QueryError::Execution(
                            "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)".into(),
                        ));
                    }
                    sig_matched[sg] = stamp;
                }
                // Output labels depend on the "one" series only through `group_x(labels)`.
                let key = if include.is_empty() { NO_ONE } else { oidx.unwrap_or(NO_ONE - 1) };
                let slot = match many_slot[i] {
                    Some((k, slot)) if k == key => slot,
                    _ => {
                        let ms = &many[i].metric;
                        let metric = match oidx {
                            Some(j) => result_metric(ms, &one[j].metric, m, one_to_one, &include),
                            None => result_metric(ms, &sig_labels(ms, &m.matching), m, one_to_one, &include),
                        };
                        let drop = return_bool || op.drops_name() || many[i].drop_name;
                        let slot = out.slot(metric, drop);
                        many_slot[i] = Some((key, slot));
                        slot
                    }
                };
                if !one_to_one && !grouped.insert((sg, slot)) {
                    return Err(QueryError::Execution(
                        "multiple matches for labels: grouping labels must ensure unique matches".into(),
                    ));
                }
                same_labelset |= out.last[slot] == stamp;
                out.last[slot] = stamp;
                out.push(slot, ts, f, h);
                produced += 1;
            }
            if let Some(v) = fill_many {
                for &j in &one_here {
                    if one_used[j] == stamp {
                        continue;
                    }
                    let (of, oh) = (one_val[j].0, one_val[j].1.as_ref());
                    let (lf, lh, rf, rh) = if one_to_many { (of, oh, v, None) } else { (v, None, of, oh) };
                    let Some((f, h)) = self.binop_value(op, lf, lh, rf, rh, return_bool) else { continue };
                    let slot = match fill_slot[j] {
                        Some(slot) => slot,
                        None => {
                            let os = &one[j].metric;
                            let metric = result_metric(&sig_labels(os, &m.matching), os, m, one_to_one, &include);
                            let slot = out.slot(metric, return_bool || op.drops_name());
                            fill_slot[j] = Some(slot);
                            slot
                        }
                    };
                    same_labelset |= out.last[slot] == stamp;
                    out.last[slot] = stamp;
                    out.push(slot, ts, f, h);
                    produced += 1;
                }
            }
            self.add_samples(produced)?;
            if same_labelset {
                return Err(QueryError::Execution("vector cannot contain metrics with the same labelset".into()));
            }
        }
        self.sub_samples(input_points);
        Ok(out.series)
    }
}

/// Hash of the labels that decide matching.
pub(crate) fn signature(l: &Labels, matching: &Option<LabelModifier>) -> u64 {
    let mut buf = Vec::with_capacity(64);
    match matching {
        Some(LabelModifier::Include(on)) => {
            for lab in l.iter() {
                if on.labels.iter().any(|n| n == &lab.name) {
                    push_pair(&mut buf, &lab.name, &lab.value);
                }
            }
        }
        Some(LabelModifier::Exclude(ign)) => {
            for lab in l.iter() {
                if lab.name != METRIC_NAME && !ign.labels.iter().any(|n| n == &lab.name) {
                    push_pair(&mut buf, &lab.name, &lab.value);
                }
            }
        }
        None => {
            for lab in l.iter() {
                if lab.name != METRIC_NAME {
                    push_pair(&mut buf, &lab.name, &lab.value);
                }
            }
        }
    }
    xxh3_64(&buf)
}

fn push_pair(buf: &mut Vec<u8>, n: &str, v: &str) {
    buf.extend_from_slice(n.as_bytes());
    buf.push(0xff);
    buf.extend_from_slice(v.as_bytes());
    buf.push(0xff);
}

/// The labels that make up the matching signature, as a label set.
fn sig_labels(l: &Labels, matching: &Option<LabelModifier>) -> Labels {
    match matching {
        Some(LabelModifier::Include(on)) => l.retain(|n| on.labels.iter().any(|x| x == n)),
        Some(LabelModifier::Exclude(ign)) => l.retain(|n| n != METRIC_NAME && !ign.labels.iter().any(|x| x == n)),
        None => l.retain(|n| n != METRIC_NAME),
    }
}

fn match_group(l: &Labels, matching: &Option<LabelModifier>) -> Labels {
    sig_labels(l, matching)
}

/// Prometheus `resultMetric`.
fn result_metric(many: &Labels, one: &Labels, m: &BinModifier, one_to_one: bool, include: &[String]) -> Labels {
    let mut l = many.clone();
    if one_to_one {
        l = match &m.matching {
            Some(LabelModifier::Include(on)) => l.retain(|n| on.labels.iter().any(|x| x == n)),
            Some(LabelModifier::Exclude(ign)) => l.retain(|n| !ign.labels.iter().any(|x| x == n)),
            None => l,
        };
    }
    for n in include {
        l = l.with(n, one.get(n).unwrap_or(""));
    }
    l
}

/// `and`, `or`, `unless`.
fn set_op(op: Op, lhs: Vector, rhs: Vector, m: &BinModifier) -> Vector {
    match op {
        Op::And => {
            if lhs.is_empty() || rhs.is_empty() {
                return Vec::new();
            }
            let sigs: std::collections::HashSet<u64> = rhs.iter().map(|s| signature(&s.metric, &m.matching)).collect();
            lhs.into_iter().filter(|s| sigs.contains(&signature(&s.metric, &m.matching))).collect()
        }
        Op::Or => {
            if lhs.is_empty() {
                return rhs;
            }
            if rhs.is_empty() {
                return lhs;
            }
            let sigs: std::collections::HashSet<u64> = lhs.iter().map(|s| signature(&s.metric, &m.matching)).collect();
            let mut out = lhs;
            out.extend(rhs.into_iter().filter(|s| !sigs.contains(&signature(&s.metric, &m.matching))));
            out
        }
        _ => {
            if rhs.is_empty() {
                return lhs;
            }
            let sigs: std::collections::HashSet<u64> = rhs.iter().map(|s| signature(&s.metric, &m.matching)).collect();
            lhs.into_iter().filter(|s| !sigs.contains(&signature(&s.metric, &m.matching))).collect()
        }
    }
}

#[cfg(test)]
#[path = "binary_tests.rs"]
mod tests;
