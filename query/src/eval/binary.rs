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

use std::collections::HashMap;
use std::sync::Arc;

use promql_parser::parser::{BinModifier, BinaryExpr, LabelModifier, VectorMatchCardinality};
use promql_parser::parser::value::ValueType as PType;
use storage::{FloatHistogram, Labels, METRIC_NAME};
use xxhash_rust::xxh3::xxh3_64;

use super::Evaluator;
use crate::error::{QueryError, Result};
use crate::histogram as hist;
use crate::value::{Matrix, Sample, Vector};

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
        let (mut f, mut h, keep) = match self.elem_op(op, lf, lh, rf, rh) {
            Elem::F(v, k) => (v, None, k),
            Elem::H(h, k) => (0.0, Some(h), k),
            Elem::Incompatible(a, b) => {
                self.incompatible_info(op, a, b);
                return Ok(None);
            }
        };
        if return_bool {
            f = if keep { 1.0 } else { 0.0 };
            h = None;
        } else if !keep {
            return Ok(None);
        }
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
