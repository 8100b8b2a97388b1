//! Select hints from the shape of the expression: Prometheus' `SelectHints.Grouping` / `By`.
//!
//! An aggregation `op by (l1, l2) (expr)` reads only the `by` labels of its input series,
//! and when `expr` is a vector selector, or a range function over a matrix selector (`rate`,
//! `*_over_time`...), those series are the selector's, with the same labels (`__name__`
//! aside). The selector then needs from storage only those labels plus `__name__` (which
//! the range functions read for their annotations and `last_over_time` keeps), not the full
//! label set of each series: a head select then builds two or three label strings per series
//! instead of ten or more ([`storage::api::SelectHints`]). The answer is unchanged: the
//! series and their order are the same, only labels nobody reads are left out.
//!
//! The hint is given only where no other label can be read between the selector and the
//! aggregation:
//! - operators whose output depends on the `by` labels alone (`sum`, `avg`, `count`,
//!   `group`, `min`, `max`, `stddev`, `stdvar`, `quantile`), not those that output input
//!   series (`topk`, `bottomk`, `limitk`), hash them (`limit_ratio`) or label values
//!   (`count_values`); `without` (which keeps all labels but some) gets none;
//! - through parentheses and the range functions that only drop `__name__` (or keep it);
//!   not through instant-vector functions, `label_replace`/`label_join`, `histogram_*`,
//!   binary operators or subqueries, which read or rewrite other labels or match series.
//!
//! The hint travels to its selector by the selector node's address in the AST
//! ([`PendingHint`]), so a scalar argument evaluated on the way (`quantile_over_time(scalar
//! (x), y[5m])`) cannot take it. A selector with several matcher sets (a union that
//! deduplicates series by labels) selects without it.

use promql_parser::parser::{AggregateExpr, Expr, LabelModifier, VectorSelector};
use storage::api::SelectHints;
use storage::METRIC_NAME;

/// Aggregation operators that read only their `by` labels of each input series.
const GROUPING_OPS: &[&str] = &["sum", "avg", "count", "group", "min", "max", "stddev", "stdvar", "quantile"];

/// Functions over a range vector whose output series carry their input's labels, less
/// `__name__` or not, and read no other label.
const LABEL_PRESERVING_RANGE_FNS: &[&str] = &[
    "rate",
    "irate",
    "increase",
    "delta",
    "idelta",
    "deriv",
    "predict_linear",
    "changes",
    "resets",
    "avg_over_time",
    "min_over_time",
    "max_over_time",
    "sum_over_time",
    "count_over_time",
    "stddev_over_time",
    "stdvar_over_time",
    "last_over_time",
    "first_over_time",
    "present_over_time",
    "quantile_over_time",
    "mad_over_time",
    "ts_of_min_over_time",
    "ts_of_max_over_time",
    "ts_of_last_over_time",
    "ts_of_first_over_time",
    "double_exponential_smoothing",
    "holt_winters",
];

/// A grouping hint for one selector node.
#[derive(Clone, Debug)]
pub(crate) struct PendingHint {
    /// Address of the [`VectorSelector`] node in the AST that may use the hint.
    pub node: usize,
    /// The hints to select it with.
    pub hints: SelectHints,
}

/// The address identifying a selector node for [`PendingHint::node`].
pub(crate) fn node_id(vs: &VectorSelector) -> usize {
    vs as *const VectorSelector as usize
}

/// The grouping hint for the selector under aggregation `a`, if its shape allows one (see
/// the module doc): the `by` labels plus `__name__`, sorted.
pub(crate) fn grouping_hint(a: &AggregateExpr) -> Option<PendingHint> {
    let op = a.op.to_string();
    if !GROUPING_OPS.contains(&op.as_str()) {
        return None;
    }
    let by: &[String] = match &a.modifier {
        None => &[],
        Some(LabelModifier::Include(l)) => &l.labels,
        Some(LabelModifier::Exclude(_)) => return None,
    };
    let vs = hinted_selector(&a.expr)?;
    let mut names: Vec<String> = by.to_vec();
    names.push(METRIC_NAME.to_string());
    names.sort_unstable();
    names.dedup();
    Some(PendingHint { node: node_id(vs), hints: SelectHints { grouping: Some(names) } })
}

/// The selector whose series reach the aggregation with their labels untouched (`__name__`
/// aside), if `e` is one or a label-preserving range function over one.
fn hinted_selector(e: &Expr) -> Option<&VectorSelector> {
    match e {
        Expr::Paren(p) => hinted_selector(&p.expr),
        Expr::VectorSelector(vs) => Some(vs),
        Expr::Call(c) if LABEL_PRESERVING_RANGE_FNS.contains(&c.func.name) => {
            c.args.args.iter().find_map(|arg| match arg.as_ref() {
                Expr::MatrixSelector(ms) => Some(&ms.vs),
                _ => None,
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hint_of(q: &str) -> Option<Vec<String>> {
        let e = promql_parser::parser::parse(q).unwrap();
        let Expr::Aggregate(a) = &e else { panic!("{q} is not an aggregation") };
        grouping_hint(a).map(|h| h.hints.grouping.unwrap())
    }

    #[test]
    fn hints_only_where_no_other_label_is_read() {
        assert_eq!(hint_of("sum by (job) (rate(x[5m]))"), Some(vec!["__name__".into(), "job".into()]));
        assert_eq!(hint_of("count by (namespace, __name__) (kube_pod_info)"), Some(vec!["__name__".into(), "namespace".into()]));
        assert_eq!(hint_of("sum((max_over_time(x[5m])))"), Some(vec!["__name__".into()]));
        assert_eq!(hint_of("quantile by (a) (0.9, quantile_over_time(0.5, x[5m]))"), Some(vec!["__name__".into(), "a".into()]));
        for q in [
            "sum without (job) (rate(x[5m]))",
            "topk by (job) (3, x)",
            "count_values by (job) (\"v\", x)",
            "limit_ratio by (job) (0.5, x)",
            "sum by (job) (label_replace(x, \"job\", \"$1\", \"instance\", \"(.*)\"))",
            "sum by (job) (abs(x))",
            "sum by (job) (x / y)",
            "sum by (le) (histogram_quantile(0.9, rate(x[5m])))",
            "sum by (job) (rate(x[5m:1m]))",
            "sum by (job) (absent_over_time(x[5m]))",
        ] {
            assert_eq!(hint_of(q), None, "{q}");
        }
    }

    #[test]
    fn the_hint_names_the_selector_under_the_function() {
        let e = promql_parser::parser::parse("sum by (job) (quantile_over_time(scalar(y), x[5m]))").unwrap();
        let Expr::Aggregate(a) = &e else { unreachable!() };
        let h = grouping_hint(a).unwrap();
        let Expr::Call(c) = a.expr.as_ref() else { unreachable!() };
        let Expr::MatrixSelector(ms) = c.args.args[1].as_ref() else { unreachable!() };
        assert_eq!(h.node, node_id(&ms.vs));
    }
}
