//! The experimental `info(v, {data labels})` function (Prometheus `promql/info.go`): enriches
//! each series of `v` with the labels of the info series (`target_info` by default, or the
//! `*_info` metrics the second argument names) that share its identifying labels (`instance`,
//! `job`). At each step the newest info sample per signature wins; when data-label matchers
//! are given, only those labels are copied, and a series without a matching info series is
//! dropped unless every matcher matches the empty string.

use std::collections::{BTreeMap, HashMap, HashSet};

use promql_parser::parser::{AtModifier, Expr, Offset};
use storage::{Labels, MatchOp, Matcher, METRIC_NAME};

use super::functions::unwrap_parens;
use super::selector::to_matchers;
use super::Evaluator;
use crate::error::{QueryError, Result};
use crate::value::{FPoint, Matrix, Series};

const TARGET_INFO: &str = "target_info";
const IDENTIFYING: [&str; 2] = ["instance", "job"];

fn effective_name_matchers(ms: &[Matcher]) -> Vec<Matcher> {
    if ms.iter().any(|m| matches!(m.op, MatchOp::Equal | MatchOp::RegexMatch)) {
        return ms.to_vec();
    }
    if !ms.is_empty() {
        let mut out = vec![Matcher::regex(METRIC_NAME, ".+_info").expect("valid regex")];
        out.extend(ms.iter().cloned());
        return out;
    }
    vec![Matcher::equal(METRIC_NAME, TARGET_INFO)]
}

/// The `@` and offset of the first vector selector of the expression.
fn first_selector_time(e: &Expr) -> Option<(Option<AtModifier>, Option<Offset>)> {
    match unwrap_parens(e) {
        Expr::VectorSelector(vs) => Some((vs.at.clone(), vs.offset.clone())),
        Expr::MatrixSelector(ms) => Some((ms.vs.at.clone(), ms.vs.offset.clone())),
        Expr::Aggregate(a) => first_selector_time(&a.expr),
        Expr::Unary(u) => first_selector_time(&u.expr),
        Expr::Binary(b) => first_selector_time(&b.lhs).or_else(|| first_selector_time(&b.rhs)),
        Expr::Subquery(s) => first_selector_time(&s.expr).map(|(at, off)| {
            let total = super::offset_ms(&off) + super::offset_ms(&s.offset);
            let off = match total {
                0 => None,
                t if t > 0 => Some(Offset::Pos(std::time::Duration::from_millis(t as u64))),
                t => Some(Offset::Neg(std::time::Duration::from_millis((-t) as u64))),
            };
            (at.or_else(|| s.at.clone()), off)
        }),
        Expr::Call(c) => c.args.args.iter().find_map(|a| first_selector_time(a)),
        _ => None,
    }
}

fn regex_quote(s: &str) -> String {
    regex::escape(s)
}

fn sig(name: &str, l: &Labels) -> String {
    let mut s = String::from(name);
    for id in IDENTIFYING {
        if let Some(v) = l.get(id) {
            s.push('\u{ff}');
            s.push_str(id);
            s.push('=');
            s.push_str(v);
        }
    }
    s
}

impl Evaluator<'_> {
    /// `info(v [, data-label selector])`.
    pub fn eval_info(&mut self, args: &[&Expr]) -> Result<Matrix> {
        let mat = self.eval_matrix(args[0])?;
        let (at, offset) = first_selector_time(args[0]).unwrap_or((None, None));
        let mut data: BTreeMap<String, Vec<Matcher>> = BTreeMap::new();
        let mut name_matchers: Vec<Matcher> = Vec::new();
        if let Some(sel) = args.get(1) {
            let Expr::VectorSelector(vs) = unwrap_parens(sel) else {
                return Err(QueryError::BadData("info(): the second argument must be a label selector".into()));
            };
            for group in to_matchers(&vs.name, &vs.matchers)? {
                for m in group {
                    if m.name == METRIC_NAME {
                        name_matchers.push(m.clone());
                    }
                    data.entry(m.name.clone()).or_default().push(m);
                }
            }
        } else {
            name_matchers.push(Matcher::equal(METRIC_NAME, TARGET_INFO));
        }
        let effective = effective_name_matchers(&name_matchers);
        let ignored: HashSet<Labels> = mat
            .iter()
            .filter(|s| {
                let n = s.metric.metric_name().unwrap_or("");
                effective.iter().all(|m| m.matches(n))
            })
            .map(|s| s.metric.clone())
            .collect();
        // Identifying label values of the series to enrich.
        let mut id_values: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for s in mat.iter().filter(|s| !ignored.contains(&s.metric)) {
            for id in IDENTIFYING {
                if let Some(v) = s.metric.get(id) {
                    let e = id_values.entry(id).or_default();
                    if !e.iter().any(|x| x == v) {
                        e.push(v.to_string());
                    }
                }
            }
        }
        let data_name_matchers: Vec<Matcher> = data.get(METRIC_NAME).cloned().unwrap_or_default();
        data.remove(METRIC_NAME);
        let info_series: Matrix = if id_values.is_empty() {
            Vec::new()
        } else {
            let mut ms: Vec<Matcher> = Vec::new();
            for (id, vals) in &id_values {
                let re = vals.iter().map(|v| regex_quote(v)).collect::<Vec<_>>().join("|");
                ms.push(Matcher::regex(*id, re).map_err(|e| QueryError::Execution(e.to_string()))?);
            }
            for v in data.values() {
                ms.extend(v.iter().cloned());
            }
            ms.extend(effective_name_matchers(&data_name_matchers));
            self.info_series(&ms, &at, &offset)?
        };
        let info_names: Vec<String> = {
            let mut v: Vec<String> = info_series.iter().filter_map(|s| s.metric.metric_name().map(String::from)).collect();
            v.sort();
            v.dedup();
            v
        };
        let steps = self.steps();
        let mut out: Matrix = Vec::new();
        let mut index: HashMap<Labels, usize> = HashMap::new();
        for si in 0..steps {
            let ts = self.ts(si);
            // Newest info sample per signature at this step.
            let mut by_sig: HashMap<String, (&Series, f64)> = HashMap::new();
            for is in &info_series {
                let Some(p) = is.floats.iter().find(|p| p.t == ts) else { continue };
                let name = is.metric.metric_name().unwrap_or("");
                let k = sig(name, &is.metric);
                match by_sig.get(&k) {
                    Some((ex, et)) if *et > p.f => {
                        let _ = ex;
                    }
                    Some((ex, et)) if *et == p.f => {
                        return Err(QueryError::Execution(format!(
                            "found duplicate series for info metric: existing {} @ {}, new {} @ {}",
                            ex.metric, *et as i64, is.metric, p.f as i64
                        )));
                    }
                    _ => {
                        by_sig.insert(k, (is, p.f));
                    }
                }
            }
            for bs in &mat {
                let (f, h) = match (bs.floats.iter().find(|p| p.t == ts), bs.histograms.iter().find(|p| p.t == ts)) {
                    (Some(p), _) => (p.f, None),
                    (None, Some(p)) => (0.0, Some(p.h.clone())),
                    (None, None) => continue,
                };
                let mut metric = bs.metric.clone();
                if !ignored.contains(&bs.metric) {
                    let mut add: BTreeMap<String, String> = BTreeMap::new();
                    let mut seen = 0;
                    for name in &info_names {
                        let Some((is, _)) = by_sig.get(&sig(name, &bs.metric)) else { continue };
                        for l in is.metric.iter() {
                            if l.name == METRIC_NAME || (!data.is_empty() && !data.contains_key(&l.name)) {
                                continue;
                            }
                            if let Some(v) = add.get(&l.name) {
                                if v != &l.value {
                                    return Err(QueryError::Execution(format!("conflicting label: {}", l.name)));
                                }
                            }
                            if bs.metric.get(&l.name).is_some() {
                                continue;
                            }
                            add.insert(l.name.clone(), l.value.clone());
                        }
                        seen += 1;
                    }
                    if seen == 0 && !data.values().flatten().all(|m| m.matches("")) {
                        continue;
                    }
                    for (n, v) in add {
                        metric = metric.with(&n, &v);
                    }
                }
                let slot = match index.get(&metric) {
                    Some(&i) => i,
                    None => {
                        out.push(Series { metric: metric.clone(), drop_name: bs.drop_name, ..Default::default() });
                        index.insert(metric, out.len() - 1);
                        out.len() - 1
                    }
                };
                let ser = &mut out[slot];
                if ser.floats.last().is_some_and(|p| p.t == ts) || ser.histograms.last().is_some_and(|p| p.t == ts) {
                    return Err(QueryError::Execution("vector cannot contain metrics with the same labelset".into()));
                }
                match h {
                    Some(h) => ser.histograms.push(crate::value::HPoint { t: ts, h }),
                    None => ser.floats.push(FPoint { t: ts, f }),
                }
            }
        }
        Ok(out)
    }

    /// Info series as a matrix whose values are the original sample timestamps (ms).
    fn info_series(&mut self, ms: &[Matcher], at: &Option<AtModifier>, offset: &Option<Offset>) -> Result<Matrix> {
        let lookback = self.ctx.lookback_ms;
        let a = self.ref_time(self.start, at, offset);
        let b = self.ref_time(self.end, at, offset);
        let raw = self.ctx.src.select(ms, a.min(b) - lookback + 1, a.max(b))?;
        self.total_series += raw.len() as u64;
        let mut out = Vec::with_capacity(raw.len());
        for mut r in raw {
            let mut s = Series { metric: std::mem::take(&mut r.labels), ..Default::default() };
            for si in 0..self.steps() {
                let ts = self.ts(si);
                let rt = self.ref_time(ts, at, offset);
                let hi = r.hists.partition_point(|p| p.t <= rt);
                if hi > 0 && r.hists[hi - 1].t > rt - lookback {
                    return Err(QueryError::Execution("info sample should be float".into()));
                }
                let i = r.floats.partition_point(|p| p.t <= rt);
                if i > 0 && r.floats[i - 1].t > rt - lookback && !storage::is_stale_nan(r.floats[i - 1].f) {
                    s.floats.push(FPoint { t: ts, f: r.floats[i - 1].t as f64 });
                }
            }
            if !s.is_empty() {
                out.push(s);
            }
        }
        Ok(out)
    }
}
