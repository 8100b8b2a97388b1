//! Label matchers: `name="v"`, `name!="v"`, `name=~"re"`, `name!~"re"`.
//!
//! Semantics are Prometheus' (`model/labels/matcher.go`, `regexp.go`):
//! - regexes are fully anchored: `=~"foo"` matches only `foo`, never `xfoo`; the pattern is
//!   compiled as `^(?s:PATTERN)$`, so `.` also matches a newline;
//! - a label that a series lacks has the value `""`, so `{x=""}` and `{x=~".*"}` match series
//!   without `x`, and `{x!=""}` selects series that have it.
//!
//! Regexes are analysed once at construction. A pattern that is a plain alternation of literals
//! (`a|b|c`, as Grafana multi-value variables produce) becomes a set, so that postings lookups
//! can read exactly those values instead of testing every value of the label; `.*` and `.+`
//! become "any" / "non-empty" tests; a literal prefix is kept to skip non-matching values.

use std::fmt;
use std::sync::Arc;

use regex::Regex;
use regex_syntax::hir::{Hir, HirKind, Literal};

/// The matcher operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MatchOp {
    /// `=`
    Equal,
    /// `!=`
    NotEqual,
    /// `=~` (fully anchored)
    RegexMatch,
    /// `!~` (fully anchored)
    RegexNoMatch,
}

impl fmt::Display for MatchOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::RegexMatch => "=~",
            MatchOp::RegexNoMatch => "!~",
        })
    }
}

/// What a compiled regex is known to match, found by analysing its syntax tree.
#[derive(Clone, Debug)]
enum RegexShape {
    /// `.*`: every value, the empty one included.
    Any,
    /// `.+`: every non-empty value.
    NonEmpty,
    /// A finite set of literal strings (sorted, deduplicated).
    Set(Arc<[String]>),
    /// Anything else; `prefix` is a literal every match starts with (may be empty).
    General { prefix: String },
}

/// A compiled label matcher. Cheap to clone (the regex is shared).
#[derive(Clone)]
pub struct Matcher {
    /// Label name the matcher tests.
    pub name: String,
    /// Operator.
    pub op: MatchOp,
    /// The value or regex source as written (unanchored).
    pub value: String,
    regex: Option<Arc<Regex>>,
    shape: Option<RegexShape>,
}

/// A regex that does not compile.
#[derive(Debug, Clone, thiserror::Error)]
#[error("invalid regular expression {pattern:?}: {message}")]
pub struct MatcherError {
    /// The pattern as written.
    pub pattern: String,
    /// The regex engine's message.
    pub message: String,
}

impl Matcher {
    /// Builds a matcher, compiling the regex for `=~` and `!~`.
    ///
    /// # Errors
    /// [`MatcherError`] if the regex does not compile.
    pub fn new(op: MatchOp, name: impl Into<String>, value: impl Into<String>) -> Result<Self, MatcherError> {
        let name = name.into();
        let value = value.into();
        let (regex, shape) = match op {
            MatchOp::RegexMatch | MatchOp::RegexNoMatch => {
                let anchored = format!("^(?s:{value})$");
                let re = Regex::new(&anchored)
                    .map_err(|e| MatcherError { pattern: value.clone(), message: e.to_string() })?;
                (Some(Arc::new(re)), Some(analyse(&value)))
            }
            _ => (None, None),
        };
        Ok(Matcher { name, op, value, regex, shape })
    }

    /// `name="value"`.
    pub fn equal(name: impl Into<String>, value: impl Into<String>) -> Self {
        Matcher::new(MatchOp::Equal, name, value).expect("equality matchers always build")
    }

    /// `name!="value"`.
    pub fn not_equal(name: impl Into<String>, value: impl Into<String>) -> Self {
        Matcher::new(MatchOp::NotEqual, name, value).expect("equality matchers always build")
    }

    /// `name=~"re"`.
    ///
    /// # Errors
    /// [`MatcherError`] if the regex does not compile.
    pub fn regex(name: impl Into<String>, re: impl Into<String>) -> Result<Self, MatcherError> {
        Matcher::new(MatchOp::RegexMatch, name, re)
    }

    /// `name!~"re"`.
    ///
    /// # Errors
    /// [`MatcherError`] if the regex does not compile.
    pub fn not_regex(name: impl Into<String>, re: impl Into<String>) -> Result<Self, MatcherError> {
        Matcher::new(MatchOp::RegexNoMatch, name, re)
    }

    /// Tests a label value; a missing label is tested as `""`.
    #[inline]
    pub fn matches(&self, v: &str) -> bool {
        match self.op {
            MatchOp::Equal => v == self.value,
            MatchOp::NotEqual => v != self.value,
            MatchOp::RegexMatch => self.regex_matches(v),
            MatchOp::RegexNoMatch => !self.regex_matches(v),
        }
    }

    fn regex_matches(&self, v: &str) -> bool {
        match self.shape.as_ref() {
            Some(RegexShape::Any) => true,
            Some(RegexShape::NonEmpty) => !v.is_empty(),
            Some(RegexShape::Set(set)) => set.binary_search_by(|s| s.as_str().cmp(v)).is_ok(),
            Some(RegexShape::General { prefix }) => {
                v.starts_with(prefix.as_str()) && self.regex.as_ref().is_some_and(|r| r.is_match(v))
            }
            None => false,
        }
    }

    /// True if the matcher accepts the empty value, i.e. also selects series lacking the label.
    pub fn matches_empty(&self) -> bool {
        self.matches("")
    }

    /// For `=` and for `=~` over a finite literal set: exactly the values that match, sorted.
    /// Postings lookups use this to read only those values' postings. `None` means the
    /// matcher must be tested against each value of the label.
    pub fn set_matches(&self) -> Option<Vec<&str>> {
        match (self.op, self.shape.as_ref()) {
            (MatchOp::Equal, _) => Some(vec![self.value.as_str()]),
            (MatchOp::RegexMatch, Some(RegexShape::Set(s))) => Some(s.iter().map(|s| s.as_str()).collect()),
            _ => None,
        }
    }

    /// A literal prefix every matching value starts with (positive regex matchers only), so a
    /// sorted value list can be range-scanned.
    pub fn prefix(&self) -> Option<&str> {
        match (self.op, self.shape.as_ref()) {
            (MatchOp::RegexMatch, Some(RegexShape::General { prefix })) if !prefix.is_empty() => Some(prefix),
            _ => None,
        }
    }

    /// True if the matcher accepts every value including the empty one (`=~".*"`), so it
    /// filters nothing.
    pub fn matches_everything(&self) -> bool {
        matches!((self.op, self.shape.as_ref()), (MatchOp::RegexMatch, Some(RegexShape::Any)))
    }

    /// The negation's positive form: `!=` becomes `=`, `!~` becomes `=~`. `None` for positive
    /// matchers. Used to compute `all - postings(inverse)`.
    pub fn inverse(&self) -> Option<Matcher> {
        let op = match self.op {
            MatchOp::NotEqual => MatchOp::Equal,
            MatchOp::RegexNoMatch => MatchOp::RegexMatch,
            _ => return None,
        };
        Some(Matcher {
            name: self.name.clone(),
            op,
            value: self.value.clone(),
            regex: self.regex.clone(),
            shape: self.shape.clone(),
        })
    }
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.op == other.op && self.value == other.value
    }
}
impl Eq for Matcher {}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}{:?}", self.name, self.op, self.value)
    }
}

impl fmt::Debug for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Classifies a (valid) regex source. Any parse failure falls back to `General` with no prefix,
/// which is always correct, only slower.
fn analyse(src: &str) -> RegexShape {
    let hir = match regex_syntax::ParserBuilder::new().dot_matches_new_line(true).build().parse(src) {
        Ok(h) => h,
        Err(_) => return RegexShape::General { prefix: String::new() },
    };
    if is_dot_star(&hir, false) {
        return RegexShape::Any;
    }
    if is_dot_star(&hir, true) {
        return RegexShape::NonEmpty;
    }
    if let Some(mut set) = literal_set(&hir) {
        set.sort();
        set.dedup();
        return RegexShape::Set(set.into());
    }
    RegexShape::General { prefix: literal_prefix(&hir) }
}

/// `.*` (or `.+` when `non_empty`), with `.` matching every char.
fn is_dot_star(hir: &Hir, non_empty: bool) -> bool {
    match hir.kind() {
        HirKind::Repetition(r) => {
            r.min == u32::from(non_empty)
                && r.max.is_none()
                && matches!(r.sub.kind(), HirKind::Class(c) if is_any_char(c))
        }
        HirKind::Capture(c) => is_dot_star(&c.sub, non_empty),
        _ => false,
    }
}

fn is_any_char(c: &regex_syntax::hir::Class) -> bool {
    match c {
        regex_syntax::hir::Class::Unicode(u) => {
            let r = u.ranges();
            r.len() == 1 && r[0].start() == '\0' && r[0].end() == char::MAX
        }
        regex_syntax::hir::Class::Bytes(_) => false,
    }
}

/// The literal strings a regex matches, if it is a finite alternation of literals (at most 256).
fn literal_set(hir: &Hir) -> Option<Vec<String>> {
    fn lit(h: &Hir) -> Option<String> {
        match h.kind() {
            HirKind::Empty => Some(String::new()),
            HirKind::Literal(Literal(b)) => String::from_utf8(b.to_vec()).ok(),
            HirKind::Capture(c) => lit(&c.sub),
            HirKind::Concat(parts) => {
                let mut s = String::new();
                for p in parts {
                    s.push_str(&lit(p)?);
                }
                Some(s)
            }
            _ => None,
        }
    }
    let mut out = Vec::new();
    fn walk(h: &Hir, out: &mut Vec<String>) -> Option<()> {
        match h.kind() {
            HirKind::Alternation(alts) => {
                for a in alts {
                    walk(a, out)?;
                }
                Some(())
            }
            HirKind::Capture(c) => walk(&c.sub, out),
            _ => {
                out.push(lit(h)?);
                Some(())
            }
        }
    }
    walk(hir, &mut out)?;
    (out.len() <= 256).then_some(out)
}

/// The literal prefix of a concatenation, e.g. `foo` for `foo.*bar`.
fn literal_prefix(hir: &Hir) -> String {
    match hir.kind() {
        HirKind::Literal(Literal(b)) => String::from_utf8(b.to_vec()).unwrap_or_default(),
        HirKind::Capture(c) => literal_prefix(&c.sub),
        HirKind::Concat(parts) => {
            let mut s = String::new();
            for p in parts {
                match p.kind() {
                    HirKind::Literal(Literal(b)) => match std::str::from_utf8(b) {
                        Ok(t) => s.push_str(t),
                        Err(_) => break,
                    },
                    _ => break,
                }
            }
            s
        }
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regex_is_anchored() {
        let m = Matcher::regex("a", "foo").unwrap();
        assert!(m.matches("foo"));
        assert!(!m.matches("xfoo"));
        assert!(!m.matches("foox"));
        let m = Matcher::regex("a", "f.o|bar").unwrap();
        assert!(m.matches("fxo") && m.matches("bar") && !m.matches("fxobar"));
    }

    #[test]
    fn dot_matches_newline() {
        assert!(Matcher::regex("a", "a.b").unwrap().matches("a\nb"));
    }

    #[test]
    fn empty_value_semantics() {
        assert!(Matcher::equal("a", "").matches_empty());
        assert!(!Matcher::not_equal("a", "").matches_empty());
        assert!(Matcher::regex("a", ".*").unwrap().matches_everything());
        assert!(!Matcher::regex("a", ".+").unwrap().matches_empty());
        assert!(Matcher::regex("a", "x|").unwrap().matches_empty());
        assert!(Matcher::not_regex("a", "x").unwrap().matches_empty());
    }

    #[test]
    fn literal_sets_are_extracted() {
        let m = Matcher::regex("job", "node|api|(db)").unwrap();
        assert_eq!(m.set_matches(), Some(vec!["api", "db", "node"]));
        assert!(m.matches("db") && !m.matches("dbx"));
        assert_eq!(Matcher::regex("job", "no.e").unwrap().set_matches(), None);
        // Case-insensitive flags are not literals.
        let ci = Matcher::regex("job", "(?i)node").unwrap();
        assert!(ci.matches("NODE"));
    }

    #[test]
    fn prefix_is_extracted_and_correct() {
        let m = Matcher::regex("a", "foo.*bar").unwrap();
        assert_eq!(m.prefix(), Some("foo"));
        assert!(m.matches("foo-bar") && !m.matches("fo-bar"));
    }

    #[test]
    fn bad_regex_is_an_error() {
        assert!(Matcher::regex("a", "(").is_err());
    }

    #[test]
    fn inverse_flips_negative() {
        let m = Matcher::not_regex("a", "x|y").unwrap();
        let inv = m.inverse().unwrap();
        assert_eq!(inv.op, MatchOp::RegexMatch);
        assert!(inv.matches("x") && !m.matches("x"));
    }
}
