//! Function calls (Prometheus `promql/functions.go`): dispatch, and the functions over instant
//! vectors and scalars. Functions over range vectors live in [`super::range_fns`], histogram
//! functions in [`super::hist_fns`].
//!
//! Name handling follows delayed `__name__` removal: functions that change a sample's meaning
//! flag it (`drop_name`) and the name is removed when the result is finished; `label_replace`
//! and `label_join` writing `__name__` keep it.

use promql_parser::parser::{Call, Expr};
use promql_parser::parser::value::ValueType as PType;
use regex::Regex;
use storage::{Labels, METRIC_NAME};

use super::{EvalValue, Evaluator};
use crate::error::{QueryError, Result};
use crate::value::{Matrix, Sample, Series, Vector};

/// The string value of a string-literal argument.
pub(crate) fn string_arg(e: &Expr) -> Option<String> {
    match e {
        Expr::StringLiteral(s) => Some(s.val.clone()),
        Expr::Paren(p) => string_arg(&p.expr),
        _ => None,
    }
}

/// Strips parentheses.
pub(crate) fn unwrap_parens(e: &Expr) -> &Expr {
    match e {
        Expr::Paren(p) => unwrap_parens(&p.expr),
        _ => e,
    }
}

/// Functions whose result depends on math over one float (histograms are dropped).
fn math_fn(name: &str) -> Option<fn(f64) -> f64> {
    Some(match name {
        "abs" => f64::abs,
        "ceil" => f64::ceil,
        "floor" => f64::floor,
        "exp" => f64::exp,
        "sqrt" => f64::sqrt,
        "ln" => f64::ln,
        "log2" => f64::log2,
        "log10" => f64::log10,
        "sin" => f64::sin,
        "cos" => f64::cos,
        "tan" => f64::tan,
        "asin" => f64::asin,
        "acos" => f64::acos,
        "atan" => f64::atan,
        "sinh" => f64::sinh,
        "cosh" => f64::cosh,
        "tanh" => f64::tanh,
        "asinh" => f64::asinh,
        "acosh" => f64::acosh,
        "atanh" => f64::atanh,
        "deg" => |v: f64| v * 180.0 / std::f64::consts::PI,
        "rad" => |v: f64| v * std::f64::consts::PI / 180.0,
        "sgn" => |v: f64| {
            if v > 0.0 {
                1.0
            } else if v < 0.0 {
                -1.0
            } else {
                v
            }
        },
        _ => return None,
    })
}

/// Date parts of a Unix time in seconds (UTC), from the proleptic Gregorian calendar.
fn date_fn(name: &str, secs: f64) -> f64 {
    let s = secs.floor() as i64;
    let days = s.div_euclid(86400);
    let sod = s.rem_euclid(86400);
    let (y, m, d) = civil_from_days(days);
    match name {
        "minute" => ((sod / 60) % 60) as f64,
        "hour" => (sod / 3600) as f64,
        "day_of_week" => ((days + 4).rem_euclid(7)) as f64,
        "day_of_month" => d as f64,
        "day_of_year" => {
            let jan1 = days_from_civil(y, 1, 1);
            (days - jan1 + 1) as f64
        }
        "days_in_month" => {
            let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
            (days_from_civil(ny, nm, 1) - days_from_civil(y, m, 1)) as f64
        }
        "month" => m as f64,
        "year" => y as f64,
        _ => f64::NAN,
    }
}

/// Days since 1970-01-01 to (year, month, day) (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 } as i64;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

impl Evaluator<'_> {
    /// Evaluates a function call.
    pub fn eval_call(&mut self, c: &Call) -> Result<EvalValue> {
        let name = c.func.name;
        let args: Vec<&Expr> = c.args.args.iter().map(|b| b.as_ref()).collect();
        // Functions over a range vector.
        if let Some(mi) = args.iter().position(|a| a.value_type() == PType::Matrix) {
            return Ok(EvalValue::Matrix(self.eval_range_call(name, &args, mi)?));
        }
        let m = match name {
            "time" => self.scalar_matrix(|t| t as f64 / 1000.0),
            "pi" => self.scalar_matrix(|_| std::f64::consts::PI),
            "start" => {
                let v = self.ctx.query_start_ms as f64 / 1000.0;
                self.scalar_matrix(|_| v)
            }
            "end" => {
                let v = self.ctx.query_end_ms as f64 / 1000.0;
                self.scalar_matrix(|_| v)
            }
            "range" => {
                let v = (self.ctx.query_end_ms - self.ctx.query_start_ms) as f64 / 1000.0;
                self.scalar_matrix(|_| v)
            }
            "step" => {
                let v = if self.ctx.query_end_ms == self.ctx.query_start_ms { 0.0 } else { self.ctx.query_step_ms as f64 / 1000.0 };
                self.scalar_matrix(|_| v)
            }
            "min_of" | "max_of" => {
                let a = self.eval_scalar_steps(args[0])?;
                let b = self.eval_scalar_steps(args[1])?;
                let (start, step) = (self.start, self.interval);
                let max = name == "max_of";
                self.scalar_matrix(|t| {
                    let i = ((t - start) / step) as usize;
                    if max {
                        go_max(a[i], b[i])
                    } else {
                        go_min(a[i], b[i])
                    }
                })
            }
            "vector" => self.range_eval(&args, |_, vs, ts| {
                let f = vs[0].first().map_or(f64::NAN, |s| s.f);
                Ok(vec![Sample { metric: Labels::empty(), t: ts, f, h: None, drop_name: false }])
            })?,
            "scalar" => {
                let m = self.range_eval(&args, |_, vs, ts| {
                    let mut floats = vs[0].iter().filter(|s| s.h.is_none());
                    let f = match (floats.next(), floats.next()) {
                        (Some(s), None) => s.f,
                        _ => f64::NAN,
                    };
                    Ok(vec![Sample { metric: Labels::empty(), t: ts, f, h: None, drop_name: false }])
                })?;
                m.into_iter().map(|mut s| {
                    s.metric = Labels::empty();
                    s
                }).collect()
            }
            "timestamp" => match unwrap_parens(args[0]) {
                Expr::VectorSelector(vs) => self.eval_selector_timestamps(vs)?,
                _ => self.range_map(&args, drops_name, |_, ts, _, _, _| Some((ts as f64 / 1000.0, None)))?,
            },
            // Start timestamps exist only on stored samples: an expression has none, so the
            // result is empty (Prometheus `funcStartTimestamp` over an empty StartTimestamps).
            "start_timestamp" => match unwrap_parens(args[0]) {
                Expr::VectorSelector(vs) => self.eval_selector_start_timestamps(vs)?,
                other => {
                    self.eval_matrix(other)?;
                    Vec::new()
                }
            },
            "absent" => {
                let labels = absent_labels(args[0]);
                self.range_eval(&args, move |_, vs, ts| {
                    if vs[0].is_empty() {
                        Ok(vec![Sample { metric: labels.clone(), t: ts, f: 1.0, h: None, drop_name: false }])
                    } else {
                        Ok(Vec::new())
                    }
                })?
            }
            "info" => self.eval_info(&args)?,
            "label_replace" => self.label_replace(&args)?,
            "label_join" => self.label_join(&args)?,
            "sort" | "sort_desc" | "sort_by_label" | "sort_by_label_desc" => self.eval_sort(name, &args)?,
            "round" => self.range_map(&args, drops_name, |_, _, p, v, h| {
                let to = if p.is_empty() { 1.0 } else { p[0].unwrap_or(f64::NAN) };
                let inv = 1.0 / to;
                float_only(h, || (v * inv + 0.5).floor() / inv)
            })?,
            "clamp" => self.range_map(&args, drops_name, |_, _, p, v, h| {
                let lo = p[0].unwrap_or(f64::NAN);
                let hi = p[1].unwrap_or(f64::NAN);
                if hi < lo {
                    return None;
                }
                float_only(h, || go_max(lo, go_min(hi, v)))
            })?,
            "clamp_min" => self.range_map(&args, drops_name, |_, _, p, v, h| {
                let lo = p[0].unwrap_or(f64::NAN);
                float_only(h, || go_max(lo, v))
            })?,
            "clamp_max" => self.range_map(&args, drops_name, |_, _, p, v, h| {
                let hi = p[0].unwrap_or(f64::NAN);
                float_only(h, || go_min(hi, v))
            })?,
            "minute" | "hour" | "day_of_week" | "day_of_month" | "day_of_year" | "days_in_month" | "month" | "year" => {
                if args.is_empty() {
                    let n = name.to_string();
                    self.range_eval(&[], move |_, _, ts| {
                        Ok(vec![Sample {
                            metric: Labels::empty(),
                            t: ts,
                            f: date_fn(&n, ts as f64 / 1000.0),
                            h: None,
                            drop_name: false,
                        }])
                    })?
                } else {
                    self.range_map(&args, drops_name, |_, _, _, v, h| float_only(h, || date_fn(name, v)))?
                }
            }
            n if n.starts_with("histogram_") => self.eval_histogram_fn(n, &args)?,
            // Vector-vector trim: the pre-parse pass passes the matching binary node alone.
            crate::preprocess::TRIM_UPPER_FN | crate::preprocess::TRIM_LOWER_FN if args.len() == 1 => {
                let Expr::Binary(b) = args[0] else {
                    return Err(QueryError::BadData(format!("{name}: expected a binary expression")));
                };
                self.eval_trim_matched(b, name == crate::preprocess::TRIM_UPPER_FN)?
            }
            crate::preprocess::TRIM_UPPER_FN | crate::preprocess::TRIM_LOWER_FN => {
                let upper = name == crate::preprocess::TRIM_UPPER_FN;
                let sym = if upper { "</" } else { ">/" };
                self.range_map(&args, |s| (None, s.drop_name), |ev, _, p, _, h| {
                    let rhs = p[0]?;
                    match h {
                        Some(h) => Some((0.0, Some(std::sync::Arc::new(crate::histogram::trim(h, rhs, upper))))),
                        None => {
                            ev.info(
                                format!("incompatible sample types encountered for binary operator {sym:?}: float {sym} float"),
                                sym,
                            );
                            None
                        }
                    }
                })?
            }
            n => {
                if let Some(f) = math_fn(n) {
                    self.range_map(&args, drops_name, |_, _, _, v, h| float_only(h, || f(v)))?
                } else {
                    return Err(QueryError::BadData(format!("function {n:?} is not supported")));
                }
            }
        };
        Ok(EvalValue::Matrix(m))
    }

    fn eval_sort(&mut self, name: &str, args: &[&Expr]) -> Result<Matrix> {
        if self.steps() > 1 {
            self.warn("sort is ineffective for range queries since results are always ordered by labels".into(), name);
        }
        let label_args: Vec<String> = args[1..].iter().filter_map(|a| string_arg(a)).collect();
        let name = name.to_string();
        self.range_eval(&args[..1], move |_, vs, _| {
            let mut v: Vector = std::mem::take(&mut vs[0]);
            match name.as_str() {
                "sort" | "sort_desc" => {
                    let desc = name == "sort_desc";
                    v.retain(|s| s.h.is_none());
                    v.sort_by(|a, b| {
                        // NaN sorts last in both directions (Prometheus vectorByValueHeap).
                        match (a.f.is_nan(), b.f.is_nan()) {
                            (true, true) => std::cmp::Ordering::Equal,
                            (true, false) => std::cmp::Ordering::Greater,
                            (false, true) => std::cmp::Ordering::Less,
                            _ if desc => b.f.partial_cmp(&a.f).expect("not NaN"),
                            _ => a.f.partial_cmp(&b.f).expect("not NaN"),
                        }
                    });
                }
                _ => {
                    let desc = name == "sort_by_label_desc";
                    v.sort_by(|a, b| {
                        for l in &label_args {
                            let x = a.metric.get(l).unwrap_or("");
                            let y = b.metric.get(l).unwrap_or("");
                            let o = natural_cmp(x, y);
                            if o != std::cmp::Ordering::Equal {
                                return if desc { o.reverse() } else { o };
                            }
                        }
                        let o = a.metric.cmp(&b.metric);
                        if desc {
                            o.reverse()
                        } else {
                            o
                        }
                    });
                }
            }
            Ok(v)
        })
    }

    fn label_replace(&mut self, args: &[&Expr]) -> Result<Matrix> {
        let get = |i: usize| string_arg(args[i]).unwrap_or_default();
        let (dst, repl, src, re) = (get(1), get(2), get(3), get(4));
        let regex = Regex::new(&format!("^(?s:{re})$"))
            .map_err(|e| QueryError::BadData(format!("invalid regular expression in label_replace(): {re}: {e}")))?;
        if !storage::labels::is_valid_label_name(&dst) && dst != METRIC_NAME {
            return Err(QueryError::Execution(format!("invalid destination label name in label_replace(): {dst}")));
        }
        let repl = go_template_to_rust(&repl);
        // Output labels depend on the input labels only: computed once per series.
        let relabel = move |s: &Series| {
            let v = s.metric.get(&src).unwrap_or("");
            match regex.captures(v) {
                Some(caps) => {
                    let mut res = String::new();
                    caps.expand(&repl, &mut res);
                    (Some(s.metric.with(&dst, &res)), s.drop_name && dst != METRIC_NAME)
                }
                None => (None, s.drop_name),
            }
        };
        self.range_map(&args[..1], relabel, |_, _, _, v, h| Some((v, h.cloned())))
    }

    fn label_join(&mut self, args: &[&Expr]) -> Result<Matrix> {
        let dst = string_arg(args[1]).unwrap_or_default();
        let sep = string_arg(args[2]).unwrap_or_default();
        let srcs: Vec<String> = args[3..].iter().filter_map(|a| string_arg(a)).collect();
        if !storage::labels::is_valid_label_name(&dst) && dst != METRIC_NAME {
            return Err(QueryError::Execution(format!("invalid destination label name in label_join(): {dst}")));
        }
        // Output labels depend on the input labels only: computed once per series.
        let relabel = move |s: &Series| {
            let joined: Vec<&str> = srcs.iter().map(|l| s.metric.get(l).unwrap_or("")).collect();
            let v = joined.join(&sep);
            (Some(s.metric.with(&dst, &v)), s.drop_name && dst != METRIC_NAME)
        };
        self.range_map(&args[..1], relabel, |_, _, _, v, h| Some((v, h.cloned())))
    }
}

/// Go's `math.Max`: NaN if either is NaN.
pub(crate) fn go_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.max(b)
    }
}

/// Go's `math.Min`: NaN if either is NaN.
pub(crate) fn go_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.min(b)
    }
}

/// `range_map` relabelling of functions that keep the labels and drop the metric name.
fn drops_name(_: &Series) -> (Option<Labels>, bool) {
    (None, true)
}

/// A float function's value: histogram samples are dropped (float functions ignore histograms).
#[inline]
fn float_only(h: Option<&std::sync::Arc<storage::FloatHistogram>>, f: impl FnOnce() -> f64) -> Option<(f64, Option<std::sync::Arc<storage::FloatHistogram>>)> {
    match h {
        Some(_) => None,
        None => Some((f(), None)),
    }
}

/// The labels `absent()` reports: the selector's equality matchers (not `__name__`), unless a
/// name is matched twice.
pub(crate) fn absent_labels(e: &Expr) -> Labels {
    let vs = match unwrap_parens(e) {
        Expr::VectorSelector(vs) => vs,
        Expr::MatrixSelector(ms) => &ms.vs,
        _ => return Labels::empty(),
    };
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut dup: Vec<String> = Vec::new();
    for m in &vs.matchers.matchers {
        if m.name == METRIC_NAME || m.name == crate::preprocess::MODIFIER_LABEL {
            continue;
        }
        if pairs.iter().any(|(n, _)| n == &m.name) || dup.contains(&m.name) {
            dup.push(m.name.clone());
            continue;
        }
        if matches!(m.op, promql_parser::label::MatchOp::Equal) {
            pairs.push((m.name.clone(), m.value.clone()));
        } else {
            dup.push(m.name.clone());
        }
    }
    pairs.retain(|(n, _)| !dup.contains(n));
    Labels::from_pairs(pairs)
}

/// Go `regexp.Expand` template (`$1`, `${name}`) to the `regex` crate's syntax: the same, but
/// Go treats `$1x` as the group named `1x`; the regex crate does too. Only `$$` needs no
/// change. Kept as a function to document the equivalence.
fn go_template_to_rust(s: &str) -> String {
    s.to_string()
}

/// Natural ordering as `sort_by_label` uses (numbers inside strings compare by value).
fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let (mut ai, mut bi) = (a.char_indices().peekable(), b.char_indices().peekable());
    loop {
        match (ai.peek().copied(), bi.peek().copied()) {
            (None, None) => return std::cmp::Ordering::Equal,
            (None, Some(_)) => return std::cmp::Ordering::Less,
            (Some(_), None) => return std::cmp::Ordering::Greater,
            (Some((_, ca)), Some((_, cb))) => {
                if ca.is_ascii_digit() && cb.is_ascii_digit() {
                    let mut na = String::new();
                    while let Some(&(_, c)) = ai.peek() {
                        if !c.is_ascii_digit() {
                            break;
                        }
                        na.push(c);
                        ai.next();
                    }
                    let mut nb = String::new();
                    while let Some(&(_, c)) = bi.peek() {
                        if !c.is_ascii_digit() {
                            break;
                        }
                        nb.push(c);
                        bi.next();
                    }
                    let ta = na.trim_start_matches('0');
                    let tb = nb.trim_start_matches('0');
                    let o = ta.len().cmp(&tb.len()).then(ta.cmp(tb));
                    if o != std::cmp::Ordering::Equal {
                        return o;
                    }
                } else {
                    if ca != cb {
                        return ca.cmp(&cb);
                    }
                    ai.next();
                    bi.next();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(days_from_civil(2024, 2, 29)), (2024, 2, 29));
        assert_eq!(date_fn("days_in_month", 1_709_164_800.0), 29.0); // 2024-02-29
        assert_eq!(date_fn("day_of_week", 0.0), 4.0); // Thursday
    }

    #[test]
    fn natural_order() {
        assert_eq!(natural_cmp("a10", "a9"), std::cmp::Ordering::Greater);
        assert_eq!(natural_cmp("a1", "a1"), std::cmp::Ordering::Equal);
    }
}

#[cfg(test)]
#[path = "function_tests.rs"]
mod range_tests;
