//! Request parameters of the Prometheus HTTP API (`web/api/v1/api.go`): GET query strings and
//! form-encoded POST bodies, repeated keys (`match[]`), timestamps, durations, matchers and
//! Grafana's `U__` label-name escaping.

use std::time::Duration;

use promql_parser::label::MatchOp as PMatchOp;
use promql_parser::parser::{Expr, VectorSelector};
use promql_parser::util::{walk_expr, ExprVisitor};
use storage::{MatchOp, Matcher, METRIC_NAME};

use crate::error::ServerError;
use crate::units::parse_duration_or_seconds;

/// The smallest timestamp the API accepts or defaults to, ms. Prometheus' `MinTime` is
/// `math.MinInt64/1000 + 62135596801` seconds; in ms that is still far inside `i64`.
pub const MIN_TIME_MS: i64 = (i64::MIN / 1000 + 62_135_596_801) * 1000;
/// The largest timestamp the API accepts or defaults to, ms (`MaxTime`).
pub const MAX_TIME_MS: i64 = (i64::MAX / 1000 - 62_135_596_801) * 1000 + 999;

/// The formatted forms of `MinTime` and `MaxTime` clients (the Go client library) send.
const MIN_TIME_TEXT: &str = "-292273086-05-16T16:47:06Z";
const MAX_TIME_TEXT: &str = "292277026596-12-04T15:30:07.999999999Z";

/// Parameters of one request, in Go's `r.Form` order: form-body values first, then the query
/// string's, so a single-valued parameter given in both is taken from the body.
#[derive(Debug, Default, Clone)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    /// Collects parameters from a form body (first) and a query string.
    pub fn new(query: Option<&str>, body: Option<&[u8]>) -> Params {
        let mut pairs = Vec::new();
        if let Some(b) = body {
            pairs.extend(form_urlencoded::parse(b).into_owned());
        }
        if let Some(q) = query {
            pairs.extend(form_urlencoded::parse(q.as_bytes()).into_owned());
        }
        Params { pairs }
    }

    /// The first value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// The first value of `key` unless absent or empty.
    pub fn non_empty(&self, key: &str) -> Option<&str> {
        self.get(key).filter(|v| !v.is_empty())
    }

    /// Every value of `key`, in order.
    pub fn all(&self, key: &str) -> Vec<&str> {
        self.pairs.iter().filter(|(k, _)| k == key).map(|(_, v)| v.as_str()).collect()
    }

    /// A timestamp parameter, or `default` when absent or empty.
    ///
    /// # Errors
    /// [`ServerError::BadData`] naming the parameter.
    pub fn time_or(&self, key: &str, default: i64) -> Result<i64, ServerError> {
        match self.non_empty(key) {
            None => Ok(default),
            Some(v) => parse_time(v).map_err(|e| ServerError::BadData(format!("invalid parameter {key:?}: {e}"))),
        }
    }

    /// A duration parameter in ms, if present and non-empty.
    ///
    /// # Errors
    /// [`ServerError::BadData`] naming the parameter.
    pub fn duration_ms(&self, key: &str) -> Result<Option<i64>, ServerError> {
        match self.non_empty(key) {
            None => Ok(None),
            Some(v) => parse_duration_or_seconds(v)
                .map(|d| Some(d.as_millis().min(i64::MAX as u128) as i64))
                .map_err(|e| ServerError::BadData(format!("invalid parameter {key:?}: {e}"))),
        }
    }

    /// The `timeout` parameter capped by the configured query timeout.
    ///
    /// # Errors
    /// [`ServerError::BadData`] for a malformed value.
    pub fn timeout(&self, configured: Duration) -> Result<Duration, ServerError> {
        Ok(match self.duration_ms("timeout")? {
            Some(ms) if ms > 0 => configured.min(Duration::from_millis(ms as u64)),
            _ => configured,
        })
    }

    /// The `limit` parameter: 0 or absent means no limit.
    ///
    /// # Errors
    /// [`ServerError::BadData`] for a negative or malformed value.
    pub fn limit(&self) -> Result<usize, ServerError> {
        match self.non_empty("limit") {
            None => Ok(0),
            Some(v) => v
                .parse::<usize>()
                .map_err(|_| ServerError::BadData(format!("invalid parameter \"limit\": cannot parse {v:?} to a valid limit"))),
        }
    }

    /// The `match[]` selectors, each as one or more matcher sets (a selector with `or` groups
    /// yields one set per group).
    ///
    /// # Errors
    /// [`ServerError::BadData`] for a selector that does not parse or is not a vector selector.
    pub fn matcher_sets(&self) -> Result<Vec<Vec<Matcher>>, ServerError> {
        let mut out = Vec::new();
        for s in self.all("match[]") {
            out.extend(parse_selector(s)?);
        }
        Ok(out)
    }
}

/// Parses a timestamp: Unix seconds with optional decimals (kept to ms, rounded), or RFC 3339.
///
/// # Errors
/// A message when neither form parses.
pub fn parse_time(s: &str) -> Result<i64, String> {
    if let Ok(f) = s.parse::<f64>() {
        if !f.is_finite() {
            return Err(format!("cannot parse {s:?} to a valid timestamp"));
        }
        let secs = f.trunc();
        let frac_ms = ((f - secs) * 1000.0).round();
        let ms = secs * 1000.0 + frac_ms;
        if ms < MIN_TIME_MS as f64 || ms > MAX_TIME_MS as f64 {
            return Err(format!("cannot parse {s:?} to a valid timestamp"));
        }
        return Ok(ms as i64);
    }
    if s == MIN_TIME_TEXT {
        return Ok(MIN_TIME_MS);
    }
    if s == MAX_TIME_TEXT {
        return Ok(MAX_TIME_MS);
    }
    parse_rfc3339(s).ok_or_else(|| format!("cannot parse {s:?} to a valid timestamp"))
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)` to ms since the epoch (sub-ms digits are cut).
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !(b[10] == b'T' || b[10] == b't') || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        t.bytes().all(|c| c.is_ascii_digit()).then(|| t.parse().ok())?
    };
    let (y, mo, d, h, mi, sec) = (num(0..4)?, num(5..7)?, num(8..10)?, num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    let mut ms = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return None;
        }
        let frac = &s[start..i];
        let digits: String = frac.chars().chain("000".chars()).take(3).collect();
        ms = digits.parse().ok()?;
    }
    let offset_s = match b.get(i)? {
        b'Z' | b'z' if i + 1 == b.len() => 0,
        c @ (b'+' | b'-') if i + 6 == b.len() && b[i + 3] == b':' => {
            let oh = num(i + 1..i + 3)?;
            let om = num(i + 4..i + 6)?;
            let sign = if *c == b'+' { 1 } else { -1 };
            sign * (oh * 3600 + om * 60)
        }
        _ => return None,
    };
    let days = days_from_civil(y, mo as u32, d as u32);
    Some(((days * 86400 + h * 3600 + mi * 60 + sec) - offset_s) * 1000 + ms)
}

/// Howard Hinnant's `days_from_civil`: (year, month, day) to days since 1970-01-01.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parses one `match[]` selector into matcher sets (one per `or` group).
///
/// # Errors
/// [`ServerError::BadData`] when it does not parse or is not an instant vector selector.
pub fn parse_selector(s: &str) -> Result<Vec<Vec<Matcher>>, ServerError> {
    let expr = promql_parser::parser::parse(s)
        .map_err(|e| ServerError::BadData(format!("invalid parameter \"match[]\": {e}")))?;
    let Expr::VectorSelector(vs) = expr else {
        return Err(ServerError::BadData(format!(
            "invalid parameter \"match[]\": {s:?} is not a series selector"
        )));
    };
    selector_matchers(&vs)
}

/// Every vector selector of a PromQL expression (inside matrix selectors and subqueries too),
/// as matcher sets, for `/api/v1/query_exemplars`.
///
/// # Errors
/// [`ServerError::BadData`] when the query does not parse.
pub fn query_selectors(q: &str) -> Result<Vec<Vec<Matcher>>, ServerError> {
    struct Collect(Vec<VectorSelector>);
    impl ExprVisitor for Collect {
        type Error = std::convert::Infallible;
        fn pre_visit(&mut self, e: &Expr) -> Result<bool, Self::Error> {
            match e {
                Expr::VectorSelector(vs) => self.0.push(vs.clone()),
                Expr::MatrixSelector(ms) => self.0.push(ms.vs.clone()),
                _ => {}
            }
            Ok(true)
        }
    }
    let expr = promql_parser::parser::parse(q)
        .map_err(|e| ServerError::BadData(format!("invalid parameter \"query\": {e}")))?;
    let mut c = Collect(Vec::new());
    let _ = walk_expr(&mut c, &expr);
    let mut out = Vec::new();
    for vs in &c.0 {
        out.extend(selector_matchers(vs)?);
    }
    Ok(out)
}

/// A parsed vector selector as storage matcher sets (one per `or` group).
fn selector_matchers(vs: &VectorSelector) -> Result<Vec<Vec<Matcher>>, ServerError> {
    let conv = |list: &[promql_parser::label::Matcher]| -> Result<Vec<Matcher>, ServerError> {
        let mut out = Vec::with_capacity(list.len() + 1);
        if let Some(n) = &vs.name {
            if !list.iter().any(|m| m.name == METRIC_NAME) {
                out.push(Matcher::equal(METRIC_NAME, n.clone()));
            }
        }
        for m in list {
            let op = match m.op {
                PMatchOp::Equal => MatchOp::Equal,
                PMatchOp::NotEqual => MatchOp::NotEqual,
                PMatchOp::Re(_) => MatchOp::RegexMatch,
                PMatchOp::NotRe(_) => MatchOp::RegexNoMatch,
            };
            out.push(
                Matcher::new(op, m.name.clone(), m.value.clone())
                    .map_err(|e| ServerError::BadData(format!("invalid parameter \"match[]\": {e}")))?,
            );
        }
        if out.iter().all(|m| m.matches_empty()) {
            return Err(ServerError::BadData(
                "invalid parameter \"match[]\": match[] must contain at least one non-empty matcher".into(),
            ));
        }
        Ok(out)
    };
    if vs.matchers.or_matchers.is_empty() {
        Ok(vec![conv(&vs.matchers.matchers)?])
    } else {
        vs.matchers.or_matchers.iter().map(|g| conv(g)).collect()
    }
}

/// Undoes Prometheus' `U__` value-encoding escaping of a label name in a URL path
/// (`model.UnescapeName`): after the prefix, `__` is `_`, `_HEX_` is the character with that
/// code point, anything else is literal. A name without the prefix, or with a malformed escape,
/// is returned unchanged.
pub fn unescape_label_name(name: &str) -> String {
    let Some(rest) = name.strip_prefix("U__") else {
        return name.to_string();
    };
    let mut out = String::with_capacity(rest.len());
    let mut chars = rest.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c != '_' {
            out.push(c);
            continue;
        }
        if rest[i + 1..].starts_with('_') {
            out.push('_');
            chars.next();
            continue;
        }
        let tail = &rest[i + 1..];
        let Some(end) = tail.find('_') else { return name.to_string() };
        let hex = &tail[..end];
        match u32::from_str_radix(hex, 16).ok().and_then(char::from_u32) {
            Some(ch) if !hex.is_empty() => out.push(ch),
            _ => return name.to_string(),
        }
        for _ in 0..=end {
            chars.next();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_in_both_forms() {
        assert_eq!(parse_time("1435781451.781").unwrap(), 1_435_781_451_781);
        assert_eq!(parse_time("1435781451").unwrap(), 1_435_781_451_000);
        assert_eq!(parse_time("2015-07-01T20:10:51.781Z").unwrap(), 1_435_781_451_781);
        assert_eq!(parse_time("2015-07-01T22:10:51.781+02:00").unwrap(), 1_435_781_451_781);
        assert_eq!(parse_time("1970-01-01T00:00:00Z").unwrap(), 0);
        assert_eq!(parse_time(MIN_TIME_TEXT).unwrap(), MIN_TIME_MS);
        assert_eq!(parse_time(MAX_TIME_TEXT).unwrap(), MAX_TIME_MS);
        assert!(parse_time("yesterday").is_err());
        assert!(parse_time("NaN").is_err());
        assert!(parse_time("2015-13-01T00:00:00Z").is_err());
    }

    #[test]
    fn params_merge_body_and_query_with_repeats() {
        let p = Params::new(Some("match[]=up&start=1"), Some(b"match[]=%7Bjob%3D%22a%22%7D&end=2"));
        assert_eq!(p.all("match[]"), vec!["{job=\"a\"}", "up"]);
        assert_eq!(p.time_or("start", 0).unwrap(), 1000);
        assert_eq!(p.time_or("end", 0).unwrap(), 2000);
        assert_eq!(p.time_or("time", 7).unwrap(), 7);
        assert!(p.time_or("start", 0).is_ok());
        assert_eq!(p.matcher_sets().unwrap().len(), 2);
    }

    #[test]
    fn selectors_convert_and_refuse_empty_matchers() {
        let sets = parse_selector("up{job=~\"a|b\"}").unwrap();
        assert_eq!(sets.len(), 1);
        assert_eq!(sets[0].len(), 2);
        assert!(parse_selector("{job=~\".*\"}").is_err());
        assert!(parse_selector("rate(up[5m])").is_err());
        assert!(parse_selector("up{").is_err());
        let sets = query_selectors("sum(rate(a[5m])) / on() b{x=\"1\"} + max_over_time(c[1h:5m])").unwrap();
        assert_eq!(sets.len(), 3);
        assert!(query_selectors("sum(").is_err());
    }

    #[test]
    fn u_escaping() {
        assert_eq!(unescape_label_name("job"), "job");
        assert_eq!(unescape_label_name("U__foo_2e_bar"), "foo.bar");
        assert_eq!(unescape_label_name("U__a__b"), "a_b");
        assert_eq!(unescape_label_name("U__x_1F600_"), "x\u{1F600}");
        assert_eq!(unescape_label_name("U__bad_zz_"), "U__bad_zz_");
    }
}
