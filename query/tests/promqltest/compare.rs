//! Running one eval and comparing its result with the expectation (FORMAT.md sections 5–6).

use std::collections::HashMap;
use std::time::{Duration, UNIX_EPOCH};

use promql_parser::parser::{AtModifier, Expr};
use query::source::SampleSource;
use query::{Engine, QueryError, QueryResult, Value};
use storage::histogram::{CounterResetHint, CUSTOM_BUCKETS_SCHEMA};
use storage::{is_stale_nan, FloatHistogram, Labels};

use crate::script::{self, Eval, Expect, Expected, Item, SeriesLine};

/// `almost.Equal(a, b, 1e-6)` with the stale-marker rule.
pub fn float_eq(a: f64, b: f64) -> bool {
    if is_stale_nan(a) || is_stale_nan(b) {
        return is_stale_nan(a) && is_stale_nan(b);
    }
    if a.is_nan() && b.is_nan() {
        return true;
    }
    if a == b {
        return true;
    }
    let abs = a.abs() + b.abs();
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || abs < f64::MIN_POSITIVE {
        return diff < 1e-6 * f64::MIN_POSITIVE;
    }
    diff / abs.min(f64::MAX) < 1e-6
}

fn buckets_map(spans: &[storage::histogram::Span], counts: &[f64]) -> Vec<(i32, f64)> {
    script::expand(spans, counts).into_iter().filter(|(_, c)| *c != 0.0).collect()
}

/// Histogram comparison: exact schema, zero threshold, custom bounds; tolerant counts.
pub fn hist_eq(exp: &FloatHistogram, got: &FloatHistogram, check_hint: bool) -> bool {
    if exp.schema != got.schema || exp.zero_threshold != got.zero_threshold {
        return false;
    }
    if exp.schema == CUSTOM_BUCKETS_SCHEMA && exp.custom_values != got.custom_values {
        return false;
    }
    if check_hint && exp.counter_reset_hint != got.counter_reset_hint {
        return false;
    }
    if !float_eq(exp.count, got.count) || !float_eq(exp.sum, got.sum) || !float_eq(exp.zero_count, got.zero_count) {
        return false;
    }
    for (ea, ga) in [
        (buckets_map(&exp.positive_spans, &exp.positive_buckets), buckets_map(&got.positive_spans, &got.positive_buckets)),
        (buckets_map(&exp.negative_spans, &exp.negative_buckets), buckets_map(&got.negative_spans, &got.negative_buckets)),
    ] {
        if ea.len() != ga.len() {
            return false;
        }
        for (x, y) in ea.iter().zip(ga.iter()) {
            if x.0 != y.0 || !float_eq(x.1, y.1) {
                return false;
            }
        }
    }
    true
}

fn fmt_item(i: &Item) -> String {
    match i {
        Item::Omitted => "_".into(),
        Item::F(v) => format!("{v}"),
        Item::H(h) => format!("{h:?}"),
    }
}

/// A result point: float or histogram.
#[derive(Clone, Debug)]
enum Got {
    F(f64),
    H(std::sync::Arc<FloatHistogram>),
}

fn item_matches(exp: &Item, got: &Got, check_hint: bool) -> bool {
    match (exp, got) {
        (Item::F(a), Got::F(b)) => float_eq(*a, *b),
        (Item::H(a), Got::H(b)) => hist_eq(a, b, check_hint),
        _ => false,
    }
}

/// Compares an instant vector result with expected lines.
fn compare_vector(exp: &[SeriesLine], got: &[(Labels, Got)], ordered: bool, hints: &[bool]) -> Result<(), String> {
    let mut by_labels: HashMap<&Labels, (usize, &Got)> = HashMap::new();
    for (i, (l, g)) in got.iter().enumerate() {
        by_labels.insert(l, (i, g));
    }
    if by_labels.len() != got.len() {
        return Err("result contains duplicate label sets".into());
    }
    let mut errs = Vec::new();
    for (ei, e) in exp.iter().enumerate() {
        match by_labels.get(&e.labels) {
            None => errs.push(format!("missing {} {}", e.labels, fmt_item(&e.items[0]))),
            Some((pos, g)) => {
                if !item_matches(&e.items[0], g, hints.get(ei).copied().unwrap_or(false)) {
                    errs.push(format!("{}: expected {}, got {:?}", e.labels, fmt_item(&e.items[0]), g));
                }
                if ordered && *pos != ei {
                    errs.push(format!("{}: expected at position {ei}, got {pos}", e.labels));
                }
            }
        }
    }
    for (l, g) in got {
        if !exp.iter().any(|e| &e.labels == l) {
            errs.push(format!("unexpected {l} {g:?}"));
        }
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(errs.join("\n"))
    }
}

/// Compares a matrix result laid out on `start + i*step`.
fn compare_matrix(exp: &[SeriesLine], got: &query::Matrix, start: i64, end: i64, step: i64, hints: &[bool]) -> Result<(), String> {
    for w in got.windows(2) {
        if w[0].metric >= w[1].metric {
            return Err("matrix result is not sorted by labels".into());
        }
    }
    let mut errs = Vec::new();
    for (ei, e) in exp.iter().enumerate() {
        let Some(s) = got.iter().find(|s| s.metric == e.labels) else {
            errs.push(format!("missing series {}", e.labels));
            continue;
        };
        let mut ef: Vec<(i64, f64)> = Vec::new();
        let mut eh: Vec<(i64, &FloatHistogram)> = Vec::new();
        for (i, it) in e.items.iter().enumerate() {
            let t = start + i as i64 * step;
            if t > end {
                errs.push(format!("{}: expected sequence longer than the range", e.labels));
                break;
            }
            match it {
                Item::Omitted => {}
                Item::F(v) => ef.push((t, *v)),
                Item::H(h) => eh.push((t, h)),
            }
        }
        let gf: Vec<(i64, f64)> = s.floats.iter().map(|p| (p.t, p.f)).collect();
        let ok_f = ef.len() == gf.len() && ef.iter().zip(gf.iter()).all(|(a, b)| a.0 == b.0 && float_eq(a.1, b.1));
        let ok_h = eh.len() == s.histograms.len()
            && eh.iter().zip(s.histograms.iter()).all(|(a, b)| a.0 == b.t && hist_eq(a.1, &b.h, hints.get(ei).copied().unwrap_or(false)));
        if !ok_f {
            errs.push(format!("{}: expected floats {:?}, got {:?}", e.labels, ef, gf));
        }
        if !ok_h {
            errs.push(format!(
                "{}: expected {} histograms, got {} ({:?})",
                e.labels,
                eh.len(),
                s.histograms.len(),
                s.histograms.iter().map(|p| (p.t, p.h.count, p.h.sum)).collect::<Vec<_>>()
            ));
        }
    }
    for s in got {
        if !exp.iter().any(|e| e.labels == s.metric) {
            errs.push(format!("unexpected series {} {:?}", s.metric, s.floats.iter().map(|p| (p.t, p.f)).collect::<Vec<_>>()));
        }
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(errs.join("\n"))
    }
}

struct Expectations<'a> {
    fail: Option<&'a script::Matcher>,
    warns: Vec<&'a script::Matcher>,
    infos: Vec<&'a script::Matcher>,
    no_warn: bool,
    no_info: bool,
    ordered: bool,
}

fn expectations(ev: &Eval) -> Expectations<'_> {
    let mut x = Expectations { fail: None, warns: Vec::new(), infos: Vec::new(), no_warn: false, no_info: false, ordered: false };
    for e in &ev.expects {
        match e {
            Expect::Fail(m) => x.fail = Some(m),
            Expect::Warn(m) => x.warns.push(m),
            Expect::Info(m) => x.infos.push(m),
            Expect::NoWarn => x.no_warn = true,
            Expect::NoInfo => x.no_info = true,
            Expect::Ordered => x.ordered = true,
        }
    }
    x
}

fn check_annotations(x: &Expectations<'_>, r: &QueryResult) -> Result<(), String> {
    let a = &r.annotations;
    if x.no_warn && !a.warnings.is_empty() {
        return Err(format!("unexpected warnings {:?}", a.warnings));
    }
    if x.no_info && !a.infos.is_empty() {
        return Err(format!("unexpected infos {:?}", a.infos));
    }
    for (kind, want, got) in [("warning", &x.warns, &a.warnings), ("info", &x.infos, &a.infos)] {
        if want.is_empty() {
            continue;
        }
        for g in got {
            if !want.iter().any(|m| m.matches(g)) {
                return Err(format!("unexpected {kind} {g:?} (expected {want:?})"));
            }
        }
        for m in want.iter() {
            if !got.iter().any(|g| m.matches(g)) {
                return Err(format!("expected {kind} {m:?} not raised (got {got:?})"));
            }
        }
    }
    Ok(())
}

/// Checks a result (or error) against the expectation; `t_instant` is the time of the
/// instant evaluation for picking points out of a range recheck.
fn check_result(ev: &Eval, x: &Expectations<'_>, res: &Result<QueryResult, QueryError>, annotations: bool) -> Result<(), String> {
    let r = match (res, x.fail) {
        (Err(e), Some(m)) => {
            return if m.matches(&e.to_string()) { Ok(()) } else { Err(format!("error {:?} does not match {m:?}", e.to_string())) };
        }
        (Err(e), None) => return Err(format!("unexpected error: {e}")),
        (Ok(_), Some(m)) => return Err(format!("expected error {m:?}, got a result")),
        (Ok(r), None) => r,
    };
    if annotations {
        check_annotations(x, r)?;
    }
    let hints: Vec<bool> = Vec::new();
    match (&ev.expected, &r.value) {
        (Expected::Scalar(v), Value::Scalar(_, g)) => {
            if float_eq(*v, *g) {
                Ok(())
            } else {
                Err(format!("expected scalar {v}, got {g}"))
            }
        }
        (Expected::String(s), Value::String(_, g)) => {
            if s == g {
                Ok(())
            } else {
                Err(format!("expected string {s:?}, got {g:?}"))
            }
        }
        (Expected::Series(lines), Value::Vector(v)) if ev.range_vector.is_none() && ev.instant_at.is_some() => {
            let got: Vec<(Labels, Got)> = v
                .iter()
                .map(|s| (s.metric.clone(), match &s.h {
                    Some(h) => Got::H(h.clone()),
                    None => Got::F(s.f),
                }))
                .collect();
            compare_vector(lines, &got, x.ordered, &hint_flags(lines))
        }
        (Expected::Series(lines), Value::Matrix(m)) => {
            let (s, e, st) = match (ev.range_vector, ev.range) {
                (Some(rv), _) => rv,
                (None, Some(r)) => r,
                _ => return Err(format!("unexpected matrix result {m:?}")),
            };
            let _ = hints;
            compare_matrix(lines, m, s, e, st, &hint_flags(lines))
        }
        (exp, got) => Err(format!("result type mismatch: expected {exp:?}, got {} {got:?}", got.type_name())),
    }
}

/// Which expected histograms set their counter-reset hint explicitly. The parser keeps an
/// explicit `unknown` indistinguishable from the default, so only non-default hints count.
fn hint_flags(lines: &[SeriesLine]) -> Vec<bool> {
    lines
        .iter()
        .map(|l| l.items.iter().any(|i| matches!(i, Item::H(h) if h.counter_reset_hint != CounterResetHint::Unknown)))
        .collect()
}

/// Functions whose result depends on the evaluation time (no @ recheck).
const TIME_DEPENDENT: &[&str] = &[
    "time", "timestamp", "predict_linear", "day_of_month", "day_of_week", "day_of_year", "days_in_month", "hour", "minute",
    "month", "year", "start", "end", "range", "step",
];

fn uses(expr: &Expr, f: &mut dyn FnMut(&Expr) -> bool) -> bool {
    if f(expr) {
        return true;
    }
    match expr {
        Expr::Aggregate(a) => a.param.as_deref().is_some_and(|p| uses(p, f)) || uses(&a.expr, f),
        Expr::Unary(u) => uses(&u.expr, f),
        Expr::Binary(b) => uses(&b.lhs, f) || uses(&b.rhs, f),
        Expr::Paren(p) => uses(&p.expr, f),
        Expr::Subquery(s) => uses(&s.expr, f),
        Expr::Call(c) => c.args.args.iter().any(|a| uses(a, f)),
        _ => false,
    }
}

fn has_start_end(e: &Expr) -> bool {
    uses(e, &mut |x| match x {
        Expr::VectorSelector(vs) => matches!(vs.at, Some(AtModifier::Start | AtModifier::End)),
        Expr::MatrixSelector(ms) => matches!(ms.vs.at, Some(AtModifier::Start | AtModifier::End)),
        Expr::Subquery(s) => matches!(s.at, Some(AtModifier::Start | AtModifier::End)),
        Expr::Call(c) => matches!(c.func.name, "start" | "end" | "range" | "step"),
        _ => false,
    })
}

fn time_dependent(e: &Expr) -> bool {
    uses(e, &mut |x| matches!(x, Expr::Call(c) if TIME_DEPENDENT.contains(&c.func.name)))
}

fn at_of(t_ms: i64) -> AtModifier {
    let st = if t_ms >= 0 {
        UNIX_EPOCH + Duration::from_millis(t_ms as u64)
    } else {
        UNIX_EPOCH - Duration::from_millis((-t_ms) as u64)
    };
    AtModifier::At(st)
}

/// Adds `@ t` to selectors and subqueries without one (not inside subqueries).
fn add_at(e: &mut Expr, t_ms: i64) {
    match e {
        Expr::VectorSelector(vs) => {
            if vs.at.is_none() {
                vs.at = Some(at_of(t_ms));
            }
        }
        Expr::MatrixSelector(ms) => {
            if ms.vs.at.is_none() {
                ms.vs.at = Some(at_of(t_ms));
            }
        }
        Expr::Subquery(s) => {
            if s.at.is_none() {
                s.at = Some(at_of(t_ms));
            }
        }
        Expr::Aggregate(a) => {
            if let Some(p) = a.param.as_deref_mut() {
                add_at(p, t_ms);
            }
            add_at(&mut a.expr, t_ms);
        }
        Expr::Unary(u) => add_at(&mut u.expr, t_ms),
        Expr::Binary(b) => {
            add_at(&mut b.lhs, t_ms);
            add_at(&mut b.rhs, t_ms);
        }
        Expr::Paren(p) => add_at(&mut p.expr, t_ms),
        Expr::Call(c) => {
            for a in c.args.args.iter_mut() {
                add_at(a, t_ms);
            }
        }
        _ => {}
    }
}

/// The value of a range recheck at `t`, as an instant result.
fn pick_at(ev: &Eval, mut r: QueryResult, t: i64) -> Result<QueryResult, String> {
    let Value::Matrix(m) = std::mem::replace(&mut r.value, Value::Scalar(0, 0.0)) else {
        return Err("range query did not return a matrix".into());
    };
    for w in m.windows(2) {
        if w[0].metric >= w[1].metric {
            return Err("range result is not sorted by labels".into());
        }
    }
    r.value = if matches!(ev.expected, Expected::Scalar(_)) {
        let f = m.first().and_then(|s| s.floats.iter().find(|p| p.t == t)).map_or(f64::NAN, |p| p.f);
        Value::Scalar(t, f)
    } else {
        let mut out = Vec::new();
        for s in m {
            if let Some(p) = s.floats.iter().find(|p| p.t == t) {
                out.push(query::Sample { metric: s.metric.clone(), t, f: p.f, h: None, drop_name: false });
            } else if let Some(p) = s.histograms.iter().find(|p| p.t == t) {
                out.push(query::Sample { metric: s.metric.clone(), t, f: 0.0, h: Some(p.h.clone()), drop_name: false });
            }
        }
        Value::Vector(out)
    };
    Ok(r)
}

/// One instant run as upstream's `runInstantQuery`: the query, its expectations, then (unless
/// excluded) the same query as a range from `t-1m` to `t+1m` compared at `t`.
fn run_instant_case(engine: &Engine, store: &dyn SampleSource, ev: &Eval, x: &Expectations<'_>, expr: &Expr, t: i64) -> Result<(), String> {
    let res = engine.instant_query_expr(store, expr, &ev.expr, t, None);
    if x.fail.is_some() {
        return check_result(ev, x, &res, false);
    }
    check_result(ev, x, &res, true)?;
    let string_like = matches!(ev.expected, Expected::String(_));
    if ev.range_vector.is_some() || string_like {
        return Ok(());
    }
    // Upstream skips the recheck when the text calls start(), end(), range() or step().
    let ctx_funcs = regex::Regex::new(r"(start|end|range|step)\(\)").expect("valid regex").is_match(&ev.expr);
    if ctx_funcs || has_start_end(expr) {
        return Ok(());
    }
    let rr = engine
        .range_query_expr(store, expr, &ev.expr, t - 60_000, t + 60_000, 60_000, None)
        .map_err(|e| format!("range-mode recheck: unexpected error: {e}"))?;
    if x.ordered {
        return Ok(());
    }
    let picked = pick_at(ev, rr, t).map_err(|e| format!("range-mode recheck: {e}"))?;
    check_result(ev, x, &Ok(picked), false).map_err(|e| format!("range-mode recheck: {e}"))
}

/// Runs one eval with its rechecks (FORMAT.md section 6).
pub fn run_eval(engine: &Engine, store: &dyn SampleSource, ev: &Eval) -> Result<(), String> {
    let x = expectations(ev);
    if let Some((s, e, st)) = ev.range {
        let res = engine.range_query_source(store, &ev.expr, s, e, st, None);
        return check_result(ev, &x, &res, true);
    }
    let t = ev.instant_at.expect("instant eval");
    let expr = match query::parse(&ev.expr) {
        Ok(e) => e,
        // A query the parser rejects: the result is the error itself.
        Err(err) => return check_result(ev, &x, &Err(err), true),
    };
    run_instant_case(engine, store, ev, &x, &expr, t)?;
    if !time_dependent(&expr) {
        let mut pinned = expr.clone();
        add_at(&mut pinned, t);
        let times: Vec<i64> = if t == 0 { vec![-1000, 0, 1000] } else { vec![-10 * t, 0, t / 5, t, 10 * t] };
        for at in times {
            run_instant_case(engine, store, ev, &x, &pinned, at).map_err(|e| format!("@ recheck ({pinned}) at {at}ms: {e}"))?;
        }
    }
    Ok(())
}

/// `load_with_nhcb`: turns each classic histogram family of the block into a native
/// histogram with custom buckets named after the family.
pub fn nhcb_series(interval_ms: i64, series: &[SeriesLine]) -> Vec<(Labels, Vec<(i64, Item)>)> {
    let mut out: Vec<(Labels, Vec<(i64, Item)>)> = Vec::new();
    struct Family {
        labels: Labels,
        buckets: Vec<(f64, Vec<Item>)>,
        count: Option<Vec<Item>>,
        sum: Option<Vec<Item>>,
    }
    let mut fams: Vec<Family> = Vec::new();
    let key = |base: &str, l: &Labels| l.without("le").with("__name__", base);
    for s in series {
        let name = s.labels.metric_name().unwrap_or("").to_string();
        let (base, kind) = if let Some(b) = name.strip_suffix("_bucket") {
            (b, 0)
        } else if let Some(b) = name.strip_suffix("_count") {
            (b, 1)
        } else if let Some(b) = name.strip_suffix("_sum") {
            (b, 2)
        } else {
            continue;
        };
        let k = key(base, &s.labels);
        let idx = match fams.iter().position(|f| f.labels == k) {
            Some(i) => i,
            None => {
                fams.push(Family { labels: k, buckets: Vec::new(), count: None, sum: None });
                fams.len() - 1
            }
        };
        let f = &mut fams[idx];
        match kind {
            0 => {
                let Some(le) = s.labels.get("le").and_then(|v| script::parse_number(v).ok()) else { continue };
                f.buckets.push((le, s.items.clone()));
            }
            1 => f.count = Some(s.items.clone()),
            _ => f.sum = Some(s.items.clone()),
        }
    }
    for f in fams {
        if f.buckets.is_empty() {
            continue;
        }
        let mut buckets = f.buckets;
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        // One bound written several ways (`0.2`, `2e-1`) is one bucket.
        buckets.dedup_by(|a, b| a.0 == b.0);
        let n = buckets.iter().map(|b| b.1.len()).max().unwrap_or(0);
        for k in 0..n {
            let mut cum = Vec::new();
            for (le, items) in &buckets {
                if let Some(Item::F(v)) = items.get(k) {
                    if !is_stale_nan(*v) {
                        cum.push((*le, *v));
                    }
                }
            }
            if cum.is_empty() {
                continue;
            }
            let bounds: Vec<f64> = cum.iter().map(|c| c.0).filter(|b| b.is_finite()).collect();
            let mut counts = Vec::new();
            let mut prev = 0.0;
            for (_, c) in &cum {
                counts.push(c - prev);
                prev = *c;
            }
            if cum.last().is_some_and(|c| c.0.is_finite()) {
                counts.push(0.0);
            }
            let get = |v: &Option<Vec<Item>>| match v.as_ref().and_then(|x| x.get(k)) {
                Some(Item::F(f)) => Some(*f),
                _ => None,
            };
            let count = get(&f.count).unwrap_or(prev);
            let sum = get(&f.sum).unwrap_or(0.0);
            let pairs: Vec<(i32, f64)> = counts.iter().enumerate().map(|(i, c)| (i as i32, *c)).collect();
            let (spans, bc) = script::collapse(pairs);
            let h = FloatHistogram {
                counter_reset_hint: CounterResetHint::Unknown,
                schema: CUSTOM_BUCKETS_SCHEMA,
                zero_threshold: 0.0,
                zero_count: 0.0,
                count,
                sum,
                positive_spans: spans,
                positive_buckets: bc,
                negative_spans: Vec::new(),
                negative_buckets: Vec::new(),
                custom_values: bounds,
            };
            match out.iter_mut().find(|(l, _)| *l == f.labels) {
                Some((_, v)) => v.push((k as i64 * interval_ms, Item::H(h))),
                None => out.push((f.labels.clone(), vec![(k as i64 * interval_ms, Item::H(h))])),
            }
        }
    }
    out
}
