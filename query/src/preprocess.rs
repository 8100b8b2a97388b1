//! Syntax that promql-parser 0.11 does not know, rewritten before parsing into forms it does.
//!
//! * The histogram trim operators `</` and `>/` (Prometheus 3.x; comparison precedence) are
//!   written as `<` and `>` for the parser, and the matching binary nodes are then replaced by
//!   calls of the internal functions [`TRIM_UPPER_FN`] / [`TRIM_LOWER_FN`]. Operators are
//!   matched to nodes by their order in the text, which is the in-order order of the tree.

use std::sync::Once;

use promql_parser::parser::function::{register_extra_functions, Function, FunctionArgs};
use promql_parser::parser::value::ValueType as PType;
use promql_parser::parser::{Call, Expr};

/// Internal function standing for `a </ b`.
pub(crate) const TRIM_UPPER_FN: &str = "__hearth_trim_upper";
/// Internal function standing for `a >/ b`.
pub(crate) const TRIM_LOWER_FN: &str = "__hearth_trim_lower";

static REGISTER: Once = Once::new();

fn register() {
    REGISTER.call_once(|| {
        // Registration fails only on a name clash with a built-in; ours are prefixed.
        let _ = register_extra_functions(vec![
            Function::new(TRIM_UPPER_FN, vec![PType::Vector, PType::Scalar], 0, PType::Vector, false),
            Function::new(TRIM_LOWER_FN, vec![PType::Vector, PType::Scalar], 0, PType::Vector, false),
        ]);
    });
}

/// What `<`/`>` in the text were: `None` for a comparison, `Some(true)` for `</`,
/// `Some(false)` for `>/`.
type OpMarks = Vec<Option<bool>>;

/// Rewrites trim operators; returns the text for the parser and the marks.
fn rewrite(query: &str) -> (String, OpMarks) {
    let b: Vec<char> = query.chars().collect();
    let mut out = String::with_capacity(query.len());
    let mut marks = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match c {
            '"' | '\'' | '`' => {
                out.push(c);
                i += 1;
                while i < b.len() && b[i] != c {
                    if b[i] == '\\' && c != '`' && i + 1 < b.len() {
                        out.push(b[i]);
                        i += 1;
                    }
                    out.push(b[i]);
                    i += 1;
                }
                if i < b.len() {
                    out.push(b[i]);
                    i += 1;
                }
                continue;
            }
            '#' => {
                while i < b.len() && b[i] != '\n' {
                    out.push(b[i]);
                    i += 1;
                }
                continue;
            }
            '<' | '>' => {
                let next = b.get(i + 1).copied();
                if next == Some('=') {
                    out.push(c);
                    out.push('=');
                    i += 2;
                    continue;
                }
                if next == Some('/') {
                    marks.push(Some(c == '<'));
                    out.push(c);
                    out.push(' ');
                    i += 2;
                    continue;
                }
                marks.push(None);
            }
            _ => {}
        }
        out.push(c);
        i += 1;
    }
    (out, marks)
}

/// Replaces marked comparison nodes by trim calls, visiting in text order.
fn apply(e: &mut Expr, marks: &OpMarks, next: &mut usize) {
    match e {
        Expr::Binary(b) => {
            apply(&mut b.lhs, marks, next);
            let op = b.op.to_string();
            let mark = if op == "<" || op == ">" {
                let m = marks.get(*next).copied().flatten();
                *next += 1;
                m
            } else {
                None
            };
            apply(&mut b.rhs, marks, next);
            if let Some(upper) = mark {
                let lhs = std::mem::replace(&mut *b.lhs, Expr::from(0.0));
                let rhs = std::mem::replace(&mut *b.rhs, Expr::from(0.0));
                let name = if upper { TRIM_UPPER_FN } else { TRIM_LOWER_FN };
                *e = Expr::Call(Call {
                    func: Function::new(name, vec![PType::Vector, PType::Scalar], 0, PType::Vector, false),
                    args: FunctionArgs::new_args(lhs).append_args(rhs),
                });
            }
        }
        Expr::Aggregate(a) => {
            if let Some(p) = a.param.as_deref_mut() {
                apply(p, marks, next);
            }
            apply(&mut a.expr, marks, next);
        }
        Expr::Unary(u) => apply(&mut u.expr, marks, next),
        Expr::Paren(p) => apply(&mut p.expr, marks, next),
        Expr::Subquery(s) => apply(&mut s.expr, marks, next),
        Expr::Call(c) => {
            for a in c.args.args.iter_mut() {
                apply(a, marks, next);
            }
        }
        _ => {}
    }
}

/// Parses `query`, accepting the syntax described in the module doc.
///
/// # Errors
/// The parser's message.
pub(crate) fn parse(query: &str) -> Result<Expr, String> {
    register();
    let (text, marks) = rewrite(query);
    let mut e = promql_parser::parser::parse(&text)?;
    if marks.iter().any(|m| m.is_some()) {
        let mut next = 0;
        apply(&mut e, &marks, &mut next);
    }
    Ok(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trim_operators_become_calls() {
        let e = parse("h </ 2 > bool 1").unwrap();
        let s = e.to_string();
        assert!(s.contains(TRIM_UPPER_FN), "{s}");
        assert!(!parse("a < b").unwrap().to_string().contains("__hearth"));
    }
}
