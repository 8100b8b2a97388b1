//! What a query uses, for usage analytics: its vector selectors (metric name and matchers)
//! and the label names it groups, matches or rewrites by.

use promql_parser::label::MatchOp as PMatchOp;
use promql_parser::parser::{Expr, LabelModifier, VectorMatchCardinality, VectorSelector};
use storage::{MatchOp, METRIC_NAME};

/// One vector selector of a query (matrix selectors and subquery insides included).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SelectorUse {
    /// The metric name, from `name{...}` or an `__name__="..."` matcher; `None` if the name is
    /// matched by a regex or not at all.
    pub metric: Option<String>,
    /// The label matchers as written, `__name__` included: `(label, op, value)`.
    pub matchers: Vec<(String, MatchOp, String)>,
}

/// Everything [`analyze`] finds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueryUsage {
    /// Vector selectors in the order they appear.
    pub selectors: Vec<SelectorUse>,
    /// Label names in `by`/`without`, `on`/`ignoring`, `group_left/right(...)` and
    /// `label_replace`/`label_join` (source and destination labels); sorted, unique.
    pub labels: Vec<String>,
}

/// Lists the selectors and labels of a parsed query.
pub fn analyze(expr: &Expr) -> QueryUsage {
    let mut u = QueryUsage::default();
    walk(expr, &mut u);
    u.labels.sort();
    u.labels.dedup();
    u
}

fn selector(vs: &VectorSelector, u: &mut QueryUsage) {
    let mut matchers = Vec::new();
    let mut metric = vs.name.clone();
    let all = vs.matchers.matchers.iter().chain(vs.matchers.or_matchers.iter().flatten());
    for m in all {
        if m.name == crate::preprocess::MODIFIER_LABEL {
            continue;
        }
        let op = match m.op {
            PMatchOp::Equal => MatchOp::Equal,
            PMatchOp::NotEqual => MatchOp::NotEqual,
            PMatchOp::Re(_) => MatchOp::RegexMatch,
            PMatchOp::NotRe(_) => MatchOp::RegexNoMatch,
        };
        if m.name == METRIC_NAME && op == MatchOp::Equal && metric.is_none() {
            metric = Some(m.value.clone());
        }
        matchers.push((m.name.clone(), op, m.value.clone()));
    }
    u.selectors.push(SelectorUse { metric, matchers });
}

fn modifier_labels(m: &Option<LabelModifier>, u: &mut QueryUsage) {
    if let Some(m) = m {
        u.labels.extend(m.labels().labels.iter().cloned());
    }
}

fn walk(e: &Expr, u: &mut QueryUsage) {
    match e {
        Expr::VectorSelector(vs) => selector(vs, u),
        Expr::MatrixSelector(ms) => selector(&ms.vs, u),
        Expr::Subquery(sq) => walk(&sq.expr, u),
        Expr::Paren(p) => walk(&p.expr, u),
        Expr::Unary(x) => walk(&x.expr, u),
        Expr::Aggregate(a) => {
            modifier_labels(&a.modifier, u);
            if let Some(p) = &a.param {
                walk(p, u);
            }
            walk(&a.expr, u);
        }
        Expr::Binary(b) => {
            if let Some(m) = &b.modifier {
                modifier_labels(&m.matching, u);
                match &m.card {
                    VectorMatchCardinality::ManyToOne(l) | VectorMatchCardinality::OneToMany(l) => {
                        u.labels.extend(l.labels.iter().cloned())
                    }
                    _ => {}
                }
            }
            walk(&b.lhs, u);
            walk(&b.rhs, u);
        }
        Expr::Call(c) => {
            let args: Vec<&Expr> = c.args.args.iter().map(|a| a.as_ref()).collect();
            let strs = |from: usize| -> Vec<String> {
                args.iter()
                    .skip(from)
                    .filter_map(|a| match a {
                        Expr::StringLiteral(s) => Some(s.val.clone()),
                        _ => None,
                    })
                    .collect()
            };
            match c.func.name {
                "label_replace" => {
                    let s = strs(1);
                    // dst, replacement, src, regex
                    if let Some(d) = s.first() {
                        u.labels.push(d.clone());
                    }
                    if let Some(src) = s.get(2) {
                        u.labels.push(src.clone());
                    }
                }
                "label_join" => {
                    let s = strs(1);
                    for (i, l) in s.iter().enumerate() {
                        if i != 1 {
                            u.labels.push(l.clone());
                        }
                    }
                }
                "sort_by_label" | "sort_by_label_desc" => u.labels.extend(strs(1)),
                _ => {}
            }
            for a in args {
                walk(a, u);
            }
        }
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_selectors_and_labels() {
        let e = crate::parse(r#"sum by (job) (rate(http_total{code=~"5.."}[5m])) / on(job) group_left(team) up"#).unwrap();
        let u = analyze(&e);
        assert_eq!(u.selectors.len(), 2);
        assert_eq!(u.selectors[0].metric.as_deref(), Some("http_total"));
        assert!(u.selectors[0].matchers.iter().any(|m| m.0 == "code" && m.1 == MatchOp::RegexMatch));
        assert_eq!(u.labels, vec!["job".to_string(), "team".to_string()]);
    }

    #[test]
    fn label_replace_labels() {
        let e = crate::parse(r#"label_replace(up, "dst", "$1", "src", "(.*)")"#).unwrap();
        assert_eq!(analyze(&e).labels, vec!["dst".to_string(), "src".to_string()]);
    }
}
