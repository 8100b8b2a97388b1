//! Syntax that promql-parser 0.11 does not know, rewritten before parsing into forms it does.
//!
//! * The histogram trim operators `</` and `>/` (Prometheus 3.x; comparison precedence) are
//!   written as `<` and `>` for the parser, and the matching binary nodes are then replaced by
//!   calls of the internal functions [`TRIM_UPPER_FN`] / [`TRIM_LOWER_FN`]. Operators are
//!   matched to nodes by their order in the text, which is the in-order order of the tree.
//! * The `anchored` and `smoothed` selector modifiers (Prometheus 3.x extended range
//!   selectors): the keyword is removed and the selector it follows gets the internal matcher
//!   [`MODIFIER_LABEL`]`="anchored"|"smoothed"`, which the evaluator reads and never sends to
//!   storage.
//! * `info(v, {l=~".*"})`: the data-label selector of `info()` may match the empty string
//!   only (Prometheus allows it there); the parser insists on a non-empty matcher, so the
//!   internal [`MODIFIER_LABEL`] matcher (`="info"`) is added, which the evaluator ignores.
//! * Duration expressions (Prometheus `promql-duration-expr`): arithmetic (`+ - * / % ^`),
//!   parentheses, `step()`, `range()`, `min_of()`, `max_of()` inside `[...]` and as the operand
//!   of `offset` are evaluated with the query's step and range and replaced by a literal in
//!   milliseconds. Numbers are seconds. `offset` takes one term (`offset -2 ^ 2` is
//!   `(offset -2) ^ 2`), as in Prometheus' grammar.

use std::sync::Once;

use promql_parser::parser::function::{register_extra_functions, Function, FunctionArgs};
use promql_parser::parser::value::ValueType as PType;
use promql_parser::parser::{Call, Expr};

/// Internal function standing for `a </ b`.
pub(crate) const TRIM_UPPER_FN: &str = "__hearth_trim_upper";
/// Internal function standing for `a >/ b`.
pub(crate) const TRIM_LOWER_FN: &str = "__hearth_trim_lower";

/// Internal matcher name that carries a selector modifier through the parser.
pub(crate) const MODIFIER_LABEL: &str = "__hearth_modifier__";

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
                let name = if upper { TRIM_UPPER_FN } else { TRIM_LOWER_FN };
                if b.rhs.value_type() == PType::Vector && b.lhs.value_type() == PType::Vector {
                    // Vector-vector trim: the binary node (with its `on`/`ignoring`/`group_x`
                    // matching) becomes the call's only argument; the evaluator matches the
                    // sides and trims each pair.
                    let node = std::mem::replace(e, Expr::from(0.0));
                    *e = Expr::Call(Call {
                        func: Function::new(name, vec![PType::Vector], 0, PType::Vector, false),
                        args: FunctionArgs::new_args(node),
                    });
                    return;
                }
                let lhs = std::mem::replace(&mut *b.lhs, Expr::from(0.0));
                let rhs = std::mem::replace(&mut *b.rhs, Expr::from(0.0));
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

/// Parses `query`, accepting the syntax described in the module doc. `step_ms` and
/// `range_ms` are what `step()` and `range()` stand for (0 for instant queries).
///
/// # Errors
/// The parser's message, or why a duration expression is invalid.
pub(crate) fn parse(query: &str, step_ms: i64, range_ms: i64) -> Result<Expr, String> {
    register();
    let query = rewrite_durations(query, step_ms, range_ms)?;
    let query = rewrite_modifiers(&query);
    let query = rewrite_info_selectors(&query);
    let (text, marks) = rewrite(&query);
    let mut e = promql_parser::parser::parse(&text)?;
    if marks.iter().any(|m| m.is_some()) {
        let mut next = 0;
        apply(&mut e, &marks, &mut next);
    }
    mark_hist_stats(&mut e, false, false);
    Ok(e)
}

/// [`MODIFIER_LABEL`] value marking a selector read as by Prometheus' `HistogramStatsIterator`.
pub(crate) const HIST_STATS: &str = "hist_stats";

/// Marks the selectors whose histograms only feed `histogram_count`, `histogram_sum` or
/// `histogram_avg` (Prometheus `detectHistogramStatsDecoding`): under such a call, unless a
/// subquery, `histogram_quantile(s)`, `histogram_fraction` or a trim operator sits anywhere
/// above the selector (those need the buckets, or their own reset detection).
fn mark_hist_stats(e: &mut Expr, stats: bool, vetoed: bool) {
    match e {
        Expr::Call(c) => {
            let (stats, vetoed) = match c.func.name {
                "histogram_count" | "histogram_sum" | "histogram_avg" => (!vetoed, vetoed),
                "histogram_quantile" | "histogram_quantiles" | "histogram_fraction" | TRIM_UPPER_FN | TRIM_LOWER_FN => (false, true),
                _ => (stats, vetoed),
            };
            for a in c.args.args.iter_mut() {
                mark_hist_stats(a, stats, vetoed);
            }
        }
        Expr::Subquery(s) => mark_hist_stats(&mut s.expr, false, true),
        Expr::Aggregate(a) => {
            if let Some(p) = a.param.as_deref_mut() {
                mark_hist_stats(p, stats, vetoed);
            }
            mark_hist_stats(&mut a.expr, stats, vetoed);
        }
        Expr::Binary(b) => {
            mark_hist_stats(&mut b.lhs, stats, vetoed);
            mark_hist_stats(&mut b.rhs, stats, vetoed);
        }
        Expr::Unary(u) => mark_hist_stats(&mut u.expr, stats, vetoed),
        Expr::Paren(p) => mark_hist_stats(&mut p.expr, stats, vetoed),
        Expr::VectorSelector(vs) if stats => add_stats_matcher(vs),
        Expr::MatrixSelector(ms) if stats => add_stats_matcher(&mut ms.vs),
        _ => {}
    }
}

fn add_stats_matcher(vs: &mut promql_parser::parser::VectorSelector) {
    use promql_parser::label::{MatchOp, Matcher};
    let m = Matcher::new(MatchOp::Equal, MODIFIER_LABEL, HIST_STATS);
    vs.matchers.matchers.push(m.clone());
    for g in vs.matchers.or_matchers.iter_mut() {
        g.push(m.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trim_operators_become_calls() {
        let e = parse("h </ 2 > bool 1", 0, 0).unwrap();
        let s = e.to_string();
        assert!(s.contains(TRIM_UPPER_FN), "{s}");
        assert!(!parse("a < b", 0, 0).unwrap().to_string().contains("__hearth"));
    }

    #[test]
    fn duration_expressions() {
        assert_eq!(rewrite_durations("x[26m+4m]", 0, 0).unwrap(), "x[1800000ms]");
        assert_eq!(rewrite_durations("x[5m:step()*2]", 15_000, 0).unwrap(), "x[5m:30000ms]");
        assert_eq!(rewrite_durations("x offset -2 ^ 2", 0, 0).unwrap(), "x offset -2000ms ^ 2");
        assert_eq!(rewrite_durations("x offset (100 + 2)", 0, 0).unwrap(), "x offset 102000ms");
        assert_eq!(rewrite_durations("x offset 5m", 0, 0).unwrap(), "x offset 5m");
        assert_eq!(rewrite_durations(r#"x{a="[1+1]"}"#, 0, 0).unwrap(), r#"x{a="[1+1]"}"#);
    }
}

/// True for a plain Prometheus duration literal such as `5m` or `1h30m`.
fn is_duration_literal(s: &str) -> bool {
    let s = s.trim();
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric()) && s.chars().next().is_some_and(|c| c.is_ascii_digit())
        && s.chars().any(|c| c.is_ascii_alphabetic())
}

fn duration_literal_secs(s: &str) -> Option<f64> {
    let units = [("ms", 0.001), ("y", 31_536_000.0), ("w", 604_800.0), ("d", 86_400.0), ("h", 3600.0), ("m", 60.0), ("s", 1.0)];
    let mut total = 0.0;
    let mut rest = s;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let n = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        if n == 0 {
            return None;
        }
        let v: f64 = rest[..n].parse().ok()?;
        rest = &rest[n..];
        let (u, f) = units.iter().find(|(u, _)| rest.starts_with(u))?;
        total += v * f;
        rest = &rest[u.len()..];
    }
    Some(total)
}

/// A recursive-descent evaluator of duration expressions, in seconds.
struct DurParser<'a> {
    s: &'a [u8],
    i: usize,
    step_s: f64,
    range_s: f64,
}

impl DurParser<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && (self.s[self.i] as char).is_whitespace() {
            self.i += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.s.get(self.i).copied()
    }

    fn expect(&mut self, c: u8) -> Result<(), String> {
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            Err(format!("expected '{}' in duration expression", c as char))
        }
    }

    /// expr := term (('+'|'-') term)*
    fn expr(&mut self) -> Result<f64, String> {
        let mut v = self.term()?;
        loop {
            match self.peek() {
                Some(b'+') => {
                    self.i += 1;
                    v += self.term()?;
                }
                Some(b'-') => {
                    self.i += 1;
                    v -= self.term()?;
                }
                _ => return Ok(v),
            }
        }
    }

    /// term := unary (('*'|'/'|'%') unary)*
    fn term(&mut self) -> Result<f64, String> {
        let mut v = self.unary()?;
        loop {
            match self.peek() {
                Some(b'*') => {
                    self.i += 1;
                    v *= self.unary()?;
                }
                Some(b'/') => {
                    self.i += 1;
                    let r = self.unary()?;
                    v = if r == 0.0 { 0.0 } else { v / r };
                }
                Some(b'%') => {
                    self.i += 1;
                    let r = self.unary()?;
                    v %= r;
                }
                _ => return Ok(v),
            }
        }
    }

    /// unary := ('-'|'+') unary | power
    fn unary(&mut self) -> Result<f64, String> {
        match self.peek() {
            Some(b'-') => {
                self.i += 1;
                Ok(-self.unary()?)
            }
            Some(b'+') => {
                self.i += 1;
                self.unary()
            }
            _ => self.power(),
        }
    }

    /// power := primary ('^' unary)?   (right-associative)
    fn power(&mut self) -> Result<f64, String> {
        let b = self.primary()?;
        if self.peek() == Some(b'^') {
            self.i += 1;
            let e = self.unary()?;
            return Ok(b.powf(e));
        }
        Ok(b)
    }

    fn primary(&mut self) -> Result<f64, String> {
        match self.peek() {
            Some(b'(') => {
                self.i += 1;
                let v = self.expr()?;
                self.expect(b')')?;
                Ok(v)
            }
            Some(c) if c.is_ascii_alphabetic() || c == b'_' => {
                let st = self.i;
                while self.i < self.s.len() && (self.s[self.i].is_ascii_alphanumeric() || self.s[self.i] == b'_') {
                    self.i += 1;
                }
                let word = String::from_utf8_lossy(&self.s[st..self.i]).to_ascii_lowercase();
                self.expect(b'(')?;
                match word.as_str() {
                    "step" => {
                        self.expect(b')')?;
                        Ok(self.step_s)
                    }
                    "range" => {
                        self.expect(b')')?;
                        Ok(self.range_s)
                    }
                    "min_of" | "max_of" => {
                        let a = self.expr()?;
                        self.expect(b',')?;
                        let b = self.expr()?;
                        self.expect(b')')?;
                        Ok(if word == "min_of" { a.min(b) } else { a.max(b) })
                    }
                    _ => Err(format!("unknown function {word:?} in duration expression")),
                }
            }
            Some(c) if c.is_ascii_digit() || c == b'.' => {
                let st = self.i;
                while self.i < self.s.len() && (self.s[self.i].is_ascii_alphanumeric() || self.s[self.i] == b'.') {
                    // An exponent sign belongs to the number (1e-3).
                    self.i += 1;
                    if self.i < self.s.len() && matches!(self.s[self.i], b'+' | b'-') && matches!(self.s[self.i - 1], b'e' | b'E')
                        && self.s[st..self.i - 1].iter().all(|c| c.is_ascii_digit() || *c == b'.')
                    {
                        self.i += 1;
                    }
                }
                let tok = String::from_utf8_lossy(&self.s[st..self.i]).to_string();
                if let Ok(v) = tok.parse::<f64>() {
                    return Ok(v);
                }
                duration_literal_secs(&tok).ok_or_else(|| format!("bad duration {tok:?}"))
            }
            _ => Err("bad duration expression".into()),
        }
    }
}

fn ms_literal(secs: f64) -> String {
    let ms = (secs * 1000.0).round() as i64;
    if ms < 0 {
        format!("-{}ms", -ms)
    } else {
        format!("{ms}ms")
    }
}

/// Evaluates the duration expressions of the module doc and writes them as literals.
pub(crate) fn rewrite_durations(q: &str, step_ms: i64, range_ms: i64) -> Result<String, String> {
    let b = q.as_bytes();
    let mut out = String::with_capacity(q.len());
    let mut i = 0;
    let step_s = step_ms as f64 / 1000.0;
    let range_s = range_ms as f64 / 1000.0;
    let mut last = 0;
    while i < b.len() {
        match b[i] {
            b'"' | b'\'' | b'`' => {
                let c = b[i];
                i += 1;
                while i < b.len() && b[i] != c {
                    if b[i] == b'\\' && c != b'`' {
                        i += 1;
                    }
                    i += 1;
                }
                i += 1;
            }
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'[' => {
                let Some(close) = q[i..].find(']').map(|p| p + i) else { return Ok(q.to_string()) };
                let inner = &q[i + 1..close];
                let mut parts: Vec<String> = Vec::new();
                for part in inner.splitn(2, ':') {
                    let t = part.trim();
                    if t.is_empty() || is_duration_literal(t) {
                        parts.push(part.to_string());
                    } else {
                        let mut p = DurParser { s: t.as_bytes(), i: 0, step_s, range_s };
                        let v = p.expr()?;
                        if p.peek().is_some() {
                            return Err(format!("unexpected character in duration expression {t:?}"));
                        }
                        if v <= 0.0 {
                            return Err(format!("duration must be greater than 0: {t:?}"));
                        }
                        parts.push(ms_literal(v));
                    }
                }
                out.push_str(&q[last..i + 1]);
                out.push_str(&parts.join(":"));
                out.push(']');
                i = close + 1;
                last = i;
            }
            c if (c == b'o' || c == b'O')
                && q[i..].len() >= 6
                && q[i..i + 6].eq_ignore_ascii_case("offset")
                && (i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_' || b[i - 1] == b':'))
                && b.get(i + 6).is_some_and(|c| c.is_ascii_whitespace() || *c == b'(' || *c == b'-' || *c == b'+') =>
            {
                let mut j = i + 6;
                while j < b.len() && b[j].is_ascii_whitespace() {
                    j += 1;
                }
                let term_start = j;
                let mut sign = 1.0;
                if j < b.len() && (b[j] == b'-' || b[j] == b'+') {
                    if b[j] == b'-' {
                        sign = -1.0;
                    }
                    j += 1;
                    while j < b.len() && b[j].is_ascii_whitespace() {
                        j += 1;
                    }
                }
                let mut p = DurParser { s: b, i: j, step_s, range_s };
                let body_start = j;
                let plain_end = q[j..].find(|c: char| !c.is_ascii_alphanumeric()).map_or(b.len(), |p| p + j);
                let plain = &q[j..plain_end];
                if is_duration_literal(plain) {
                    i = plain_end;
                    continue;
                }
                let v = p.primary()?;
                let _ = body_start;
                let lit = ms_literal(sign * v);
                if lit == "0ms" {
                    // The parser rejects a zero offset; no offset is the same thing.
                    out.push_str(&q[last..i]);
                } else {
                    out.push_str(&q[last..term_start]);
                    out.push_str(&lit);
                }
                i = p.i;
                last = i;
            }
            _ => i += 1,
        }
    }
    out.push_str(&q[last..]);
    Ok(out)
}

const KEYWORDS: &[&str] = &[
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset", "and", "or", "unless", "atan2",
    "anchored", "smoothed", "start", "end", "inf", "nan", "fill", "fill_left", "fill_right",
];

/// Removes `anchored` / `smoothed` keywords and marks the selector before each with an
/// internal matcher.
pub(crate) fn rewrite_modifiers(q: &str) -> String {
    let lower = q.to_ascii_lowercase();
    if !lower.contains("anchored") && !lower.contains("smoothed") {
        return q.to_string();
    }
    let b = q.as_bytes();
    // Insertion edits: (position, text, skip_len).
    let mut edits: Vec<(usize, String, usize)> = Vec::new();
    // Where the last selector ends and whether it has braces (position of its `}`).
    let mut last_sel: Option<(usize, bool)> = None;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match c {
            b'"' | b'\'' | b'`' => {
                i += 1;
                while i < b.len() && b[i] != c {
                    if b[i] == b'\\' && c != b'`' {
                        i += 1;
                    }
                    i += 1;
                }
                i += 1;
            }
            b'{' => {
                let close = q[i..].find('}').map_or(b.len() - 1, |p| p + i);
                last_sel = Some((close, true));
                i = close + 1;
            }
            c if c.is_ascii_alphabetic() || c == b'_' || c == b':' => {
                let st = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b':') {
                    i += 1;
                }
                let word = &q[st..i];
                let wl = word.to_ascii_lowercase();
                let mut j = i;
                while j < b.len() && b[j].is_ascii_whitespace() {
                    j += 1;
                }
                let is_call = b.get(j) == Some(&b'(');
                if (wl == "anchored" || wl == "smoothed") && !is_call {
                    if let Some((pos, braces)) = last_sel {
                        let m = format!("{MODIFIER_LABEL}=\"{wl}\"");
                        if braces {
                            // Before the closing brace; a comma unless the braces are empty.
                            let inner_empty = q[..pos].trim_end().ends_with('{');
                            edits.push((pos, if inner_empty { m } else { format!(",{m}") }, 0));
                        } else {
                            edits.push((pos, format!("{{{m}}}"), 0));
                        }
                        edits.push((st, String::new(), i - st));
                    }
                    continue;
                }
                if !is_call && !KEYWORDS.contains(&wl.as_str()) && !word.chars().next().is_some_and(|c| c.is_ascii_digit()) {
                    if b.get(j) == Some(&b'{') {
                        let close = q[j..].find('}').map_or(b.len() - 1, |p| p + j);
                        last_sel = Some((close, true));
                        i = close + 1;
                    } else {
                        last_sel = Some((i, false));
                    }
                }
            }
            b'0'..=b'9' | b'.' => {
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'.') {
                    i += 1;
                }
            }
            _ => i += 1,
        }
    }
    edits.sort_by_key(|e| e.0);
    let mut out = String::with_capacity(q.len() + 64);
    let mut last = 0;
    for (pos, text, skip) in edits {
        out.push_str(&q[last..pos]);
        out.push_str(&text);
        last = pos + skip;
    }
    out.push_str(&q[last..]);
    out
}

#[cfg(test)]
mod modifier_tests {
    use super::*;

    #[test]
    fn marks_selectors() {
        assert_eq!(rewrite_modifiers("rate(foo[1m] anchored)"), format!("rate(foo{{{MODIFIER_LABEL}=\"anchored\"}}[1m] )"));
        assert_eq!(
            rewrite_modifiers(r#"foo{a="b"} @ 100 smoothed + 0"#),
            format!(r#"foo{{a="b",{MODIFIER_LABEL}="smoothed"}} @ 100  + 0"#)
        );
    }
}

/// Adds the internal matcher to the second argument of each `info(` call (see module doc).
pub(crate) fn rewrite_info_selectors(q: &str) -> String {
    let b = q.as_bytes();
    let mut inserts: Vec<usize> = Vec::new();
    let mut search = 0;
    while let Some(p) = q[search..].find("info(") {
        let start = search + p;
        search = start + 5;
        if start > 0 && (b[start - 1].is_ascii_alphanumeric() || b[start - 1] == b'_') {
            continue;
        }
        // Find the top-level comma of the call, then the `{` of the second argument.
        let mut depth = 0i32;
        let mut i = start + 5;
        let mut in_str: Option<u8> = None;
        let mut comma = None;
        while i < b.len() {
            let c = b[i];
            if let Some(qc) = in_str {
                if c == b'\\' {
                    i += 1;
                } else if c == qc {
                    in_str = None;
                }
            } else {
                match c {
                    b'"' | b'\'' | b'`' => in_str = Some(c),
                    b'(' | b'[' | b'{' => depth += 1,
                    b')' | b']' | b'}' => {
                        if depth == 0 {
                            break;
                        }
                        depth -= 1;
                    }
                    b',' if depth == 0 => {
                        comma = Some(i);
                        break;
                    }
                    _ => {}
                }
            }
            i += 1;
        }
        let Some(c) = comma else { continue };
        let rest = &q[c + 1..];
        let off = rest.len() - rest.trim_start().len();
        let open = c + 1 + off;
        if b.get(open) != Some(&b'{') {
            continue;
        }
        if let Some(close) = q[open..].find('}') {
            inserts.push(open + close);
        }
    }
    let mut out = String::with_capacity(q.len() + inserts.len() * 32);
    let mut last = 0;
    for pos in inserts {
        out.push_str(&q[last..pos]);
        let empty = q[..pos].trim_end().ends_with('{');
        if !empty {
            out.push(',');
        }
        out.push_str(MODIFIER_LABEL);
        out.push_str("=\"info\"");
        last = pos;
    }
    out.push_str(&q[last..]);
    out
}
