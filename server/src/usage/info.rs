//! What Prometheus' experimental `info(v [, {data labels}])` reads beyond its written
//! selectors, for usage analytics (semantics as the engine's `query/src/eval/info.rs`, after
//! Prometheus `promql/info.go`):
//! - without a second argument it reads `target_info`, which the query never names;
//! - the second argument's selector selects info series, not any metric: its `__name__`
//!   matchers decide which (none: `target_info`; only negative ones: the `.+_info` metrics
//!   they leave), its other matchers filter them;
//! - the join is on the identifying labels `instance` and `job`, so those are used labels.
//!
//! [`rewrite`] turns the selectors [`query::analysis::analyze`] lists into the ones the
//! recorder resolves; it relies on `analyze` listing one selector per selector node in
//! evaluation-tree order (checked by the `info` tests in `server/tests/usage_extract.rs`).

use promql_parser::parser::Expr;
use query::analysis::SelectorUse;
use storage::{MatchOp, METRIC_NAME};

/// The info metric used when `info()` names none.
pub const TARGET_INFO: &str = "target_info";

/// The labels `info()` joins on.
pub const IDENTIFYING: [&str; 2] = ["instance", "job"];

/// Walks `e` in the order `analyze` lists selectors (a selector per vector or matrix
/// selector node; aggregation parameter before its expression; binary left before right;
/// call arguments in order), counting selectors in `seen`, and pushes for each `info()` call
/// the index of its data-label selector in that list (`None` when it has none).
fn info_calls(e: &Expr, seen: &mut usize, out: &mut Vec<Option<usize>>) {
    match e {
        Expr::VectorSelector(_) | Expr::MatrixSelector(_) => *seen += 1,
        Expr::Call(c) => {
            for (i, a) in c.args.args.iter().enumerate() {
                if c.func.name == "info" && i == 1 {
                    out.push(Some(*seen));
                }
                info_calls(a, seen, out);
            }
            if c.func.name == "info" && c.args.args.len() < 2 {
                out.push(None);
            }
        }
        Expr::Aggregate(a) => {
            if let Some(p) = &a.param {
                info_calls(p, seen, out);
            }
            info_calls(&a.expr, seen, out);
        }
        Expr::Binary(b) => {
            info_calls(&b.lhs, seen, out);
            info_calls(&b.rhs, seen, out);
        }
        Expr::Paren(p) => info_calls(&p.expr, seen, out),
        Expr::Unary(u) => info_calls(&u.expr, seen, out),
        Expr::Subquery(s) => info_calls(&s.expr, seen, out),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
}

/// The info series a data-label selector selects: its non-name matchers plus the effective
/// name matchers.
fn info_selector(s: &SelectorUse) -> SelectorUse {
    let positive = s.matchers.iter().any(|m| m.0 == METRIC_NAME && matches!(m.1, MatchOp::Equal | MatchOp::RegexMatch));
    if positive {
        return s.clone();
    }
    let has_name = s.matchers.iter().any(|m| m.0 == METRIC_NAME);
    let mut matchers = Vec::with_capacity(s.matchers.len() + 1);
    let metric = if has_name {
        matchers.push((METRIC_NAME.to_string(), MatchOp::RegexMatch, ".+_info".to_string()));
        None
    } else {
        matchers.push((METRIC_NAME.to_string(), MatchOp::Equal, TARGET_INFO.to_string()));
        Some(TARGET_INFO.to_string())
    };
    matchers.extend(s.matchers.iter().cloned());
    SelectorUse { metric, matchers }
}

/// The selectors `e` reads: `selectors` (from `analyze(e)`) with each `info()` data-label
/// selector replaced by the info series it selects, plus `target_info` for each `info()`
/// without one. Returns whether the query calls `info()` (then [`IDENTIFYING`] are used
/// labels).
pub fn rewrite(e: &Expr, selectors: &mut Vec<SelectorUse>) -> bool {
    let mut calls = Vec::new();
    info_calls(e, &mut 0, &mut calls);
    if calls.is_empty() {
        return false;
    }
    for call in calls {
        match call {
            // An index past the list would mean `analyze` walks differently; then the
            // selector is resolved as written.
            Some(i) => {
                if let Some(s) = selectors.get_mut(i) {
                    *s = info_selector(s);
                }
            }
            None => selectors.push(SelectorUse {
                metric: Some(TARGET_INFO.to_string()),
                matchers: vec![(METRIC_NAME.to_string(), MatchOp::Equal, TARGET_INFO.to_string())],
            }),
        }
    }
    true
}
