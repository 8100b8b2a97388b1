//! Parsing of promqltest scripts (format: /work/shared/promqltest/FORMAT.md, after Prometheus'
//! `promql/promqltest/test.go`): commands, series descriptors, value sequences, histograms.

use storage::histogram::{CounterResetHint, Span, CUSTOM_BUCKETS_SCHEMA};
use storage::{stale_nan, FloatHistogram, Labels};

/// One value slot of a sequence.
#[derive(Clone, Debug)]
pub enum Item {
    /// `_`: nothing at this slot.
    Omitted,
    /// A float (a stale marker too).
    F(f64),
    /// A native histogram.
    H(FloatHistogram),
}

/// A series line: labels and its values.
#[derive(Clone, Debug)]
pub struct SeriesLine {
    pub labels: Labels,
    pub items: Vec<Item>,
    /// Start timestamps from the series' `@st` line, aligned with `items`: each an offset in
    /// ms relative to its sample's timestamp (`_` in the script: `None`, no start timestamp).
    /// Empty when the series has no `@st` line.
    pub st_offsets: Vec<Option<i64>>,
}

/// One `expect` line.
#[derive(Clone, Debug)]
pub enum Expect {
    Fail(Matcher),
    Warn(Matcher),
    Info(Matcher),
    NoWarn,
    NoInfo,
    Ordered,
}

/// How an annotation or error text must look.
#[derive(Clone, Debug)]
pub enum Matcher {
    Any,
    Msg(String),
    Regex(regex::Regex),
}

impl Matcher {
    pub fn matches(&self, s: &str) -> bool {
        match self {
            Matcher::Any => true,
            Matcher::Msg(m) => m == s.trim(),
            Matcher::Regex(r) => r.is_match(s),
        }
    }
}

/// What the result must be.
#[derive(Clone, Debug)]
pub enum Expected {
    /// Series lines (vector or matrix, by the eval kind).
    Series(Vec<SeriesLine>),
    /// A scalar.
    Scalar(f64),
    /// A string.
    String(String),
}

/// An `eval` command.
#[derive(Clone, Debug)]
pub struct Eval {
    /// Line of the `eval` header (1-based).
    #[allow(dead_code)]
    pub line: usize,
    pub expr: String,
    /// `Some(t)` for instant evals.
    pub instant_at: Option<i64>,
    /// `(start, end, step)` for range evals.
    pub range: Option<(i64, i64, i64)>,
    pub expects: Vec<Expect>,
    /// `expect range vector from a to b step s` (instant evals only).
    pub range_vector: Option<(i64, i64, i64)>,
    pub expected: Expected,
}

/// A script command.
#[derive(Clone, Debug)]
pub enum Command {
    Clear,
    Load { interval_ms: i64, nhcb: bool, series: Vec<SeriesLine> },
    Eval(Eval),
}

/// Parses a Prometheus duration (`1h30m`, `0`), ms.
pub fn parse_duration(s: &str) -> Result<i64, String> {
    if s == "0" {
        return Ok(0);
    }
    let units = [("y", 365 * 86_400_000i64), ("w", 7 * 86_400_000), ("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)];
    let b = s.as_bytes();
    let mut i = 0;
    let mut total = 0i64;
    let mut last_unit = -1i32;
    if b.is_empty() {
        return Err("empty duration".into());
    }
    while i < b.len() {
        let st = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if st == i {
            return Err(format!("invalid duration {s:?}"));
        }
        let n: i64 = s[st..i].parse().map_err(|_| format!("invalid duration {s:?}"))?;
        let us = i;
        while i < b.len() && b[i].is_ascii_alphabetic() {
            i += 1;
        }
        let unit = &s[us..i];
        let Some(ui) = units.iter().position(|(u, _)| *u == unit) else {
            return Err(format!("invalid duration unit in {s:?}"));
        };
        if ui as i32 <= last_unit {
            return Err(format!("invalid duration order in {s:?}"));
        }
        last_unit = ui as i32;
        total += n * units[ui].1;
    }
    Ok(total)
}

/// Parses an `@st` sequence: the value-sequence syntax over signed durations (`_`, `-1m`,
/// `-30s-1mx2` = -30s, -90s, -150s, `-1mx3` = four times -1m, `_x2`), one item per sample.
fn parse_st_values(seq: &str) -> Result<Vec<Option<i64>>, String> {
    let mut out = Vec::new();
    for tok in seq.split_whitespace() {
        let (head, times) = match tok.rfind('x') {
            Some(p) if p > 0 && !tok[p + 1..].is_empty() && tok[p + 1..].chars().all(|c| c.is_ascii_digit()) => {
                (&tok[..p], Some(tok[p + 1..].parse::<usize>().map_err(|_| format!("bad repeat {tok:?}"))?))
            }
            _ => (tok, None),
        };
        if head == "_" {
            out.extend(std::iter::repeat_n(None, times.unwrap_or(1)));
            continue;
        }
        let Some(n) = times else {
            out.push(Some(parse_signed_duration(head)?));
            continue;
        };
        match split_op(head) {
            Some((a, op, b)) => {
                let mut v = parse_signed_duration(a)?;
                let d = parse_signed_duration(b)?;
                out.push(Some(v));
                for _ in 0..n {
                    v = if op == '+' { v + d } else { v - d };
                    out.push(Some(v));
                }
            }
            None => {
                let v = parse_signed_duration(head)?;
                out.extend(std::iter::repeat_n(Some(v), n + 1));
            }
        }
    }
    Ok(out)
}

/// Parses a signed duration for `@st` items (`-1m`, `30s`).
fn parse_signed_duration(s: &str) -> Result<i64, String> {
    if let Some(r) = s.strip_prefix('-') {
        Ok(-parse_duration(r)?)
    } else {
        parse_duration(s.trim_start_matches('+'))
    }
}

/// Parses a Go-quoted string starting at `s[0] == '"'` (or a backquoted one); returns the
/// value and the bytes consumed.
pub fn parse_quoted(s: &str) -> Result<(String, usize), String> {
    let mut chars = s.char_indices();
    let Some((_, q)) = chars.next() else { return Err("expected a quote".into()) };
    if q == '`' {
        let end = s[1..].find('`').ok_or("unterminated raw string")?;
        return Ok((s[1..1 + end].to_string(), end + 2));
    }
    if q != '"' && q != '\'' {
        return Err(format!("expected a quote in {s:?}"));
    }
    let mut out = String::new();
    while let Some((i, c)) = chars.next() {
        if c == q {
            return Ok((out, i + 1));
        }
        if c == '\\' {
            let Some((_, e)) = chars.next() else { return Err("bad escape".into()) };
            match e {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                'r' => out.push('\r'),
                '\\' => out.push('\\'),
                '"' => out.push('"'),
                '\'' => out.push('\''),
                'x' => {
                    let h: String = chars.by_ref().take(2).map(|x| x.1).collect();
                    let v = u8::from_str_radix(&h, 16).map_err(|_| "bad \\x escape")?;
                    out.push(v as char);
                }
                'u' => {
                    let h: String = chars.by_ref().take(4).map(|x| x.1).collect();
                    let v = u32::from_str_radix(&h, 16).map_err(|_| "bad \\u escape")?;
                    out.push(char::from_u32(v).ok_or("bad \\u escape")?);
                }
                other => {
                    out.push('\\');
                    out.push(other);
                }
            }
        } else {
            out.push(c);
        }
    }
    Err("unterminated string".into())
}

/// Parses `name{l="v", ...}`; returns the labels and the rest of the line.
pub fn parse_descriptor(s: &str) -> Result<(Labels, &str), String> {
    let s = s.trim_start();
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut name_end = s.find(|c: char| c == '{' || c.is_whitespace()).unwrap_or(s.len());
    if let Some(p) = s[..name_end].find("@st") {
        name_end = p;
    }
    let name = &s[..name_end];
    if !name.is_empty() {
        pairs.push(("__name__".into(), name.to_string()));
    }
    let mut rest = &s[name_end..];
    if rest.starts_with('{') {
        rest = &rest[1..];
        loop {
            rest = rest.trim_start();
            if let Some(r) = rest.strip_prefix('}') {
                rest = r;
                break;
            }
            if let Some(r) = rest.strip_prefix(',') {
                rest = r;
                continue;
            }
            if rest.starts_with('"') {
                let (v, n) = parse_quoted(rest)?;
                let after = rest[n..].trim_start();
                if after.starts_with('=') {
                    let after = after[1..].trim_start();
                    let (val, m) = parse_quoted(after)?;
                    pairs.push((v, val));
                    rest = &after[m..];
                } else {
                    pairs.push(("__name__".into(), v));
                    rest = after;
                }
                continue;
            }
            let ne = rest.find(|c: char| c == '=' || c.is_whitespace()).ok_or_else(|| format!("bad label in {s:?}"))?;
            let lname = rest[..ne].to_string();
            let after = rest[ne..].trim_start();
            let after = after.strip_prefix('=').ok_or_else(|| format!("expected = in {s:?}"))?.trim_start();
            let (val, m) = parse_quoted(after)?;
            pairs.push((lname, val));
            rest = &after[m..];
        }
    }
    Ok((Labels::from_pairs(pairs), rest))
}

/// Splits a value sequence into items, keeping `{{...}}` (with spaces) together.
fn tokens(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let b: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < b.len() {
        if b[i] == '{' && i + 1 < b.len() && b[i + 1] == '{' {
            while i < b.len() && !(b[i] == '}' && i + 1 < b.len() && b[i + 1] == '}') {
                cur.push(b[i]);
                i += 1;
            }
            cur.push_str("}}");
            i += 2;
            continue;
        }
        if b[i].is_whitespace() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
        } else {
            cur.push(b[i]);
        }
        i += 1;
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Parses a number as the series-description lexer does.
pub fn parse_number(s: &str) -> Result<f64, String> {
    if s == "stale" {
        return Ok(stale_nan());
    }
    let t = s.trim_start_matches('+');
    let lower = t.to_ascii_lowercase();
    match lower.as_str() {
        "inf" => return Ok(f64::INFINITY),
        "-inf" => return Ok(f64::NEG_INFINITY),
        "nan" | "-nan" => return Ok(f64::NAN),
        _ => {}
    }
    if lower.contains("inf") || lower.contains("nan") || lower.starts_with("0x") {
        return Err(format!("invalid number {s:?}"));
    }
    t.replace('_', "").parse::<f64>().map_err(|_| format!("invalid number {s:?}"))
}

/// Splits `a+b` / `a-b` at the operator (not a sign, not an exponent sign).
fn split_op(s: &str) -> Option<(&str, char, &str)> {
    let b = s.as_bytes();
    let mut depth = 0;
    if b.first() == Some(&b'{') {
        depth = 1;
    }
    let mut i = 1;
    while i < b.len() {
        match b[i] {
            b'{' => depth += 1,
            b'}' => depth -= 1,
            b'+' | b'-' if depth == 0 && !matches!(b[i - 1], b'e' | b'E') => {
                return Some((&s[..i], b[i] as char, &s[i + 1..]));
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// Parses a value sequence.
pub fn parse_values(s: &str) -> Result<Vec<Item>, String> {
    let mut out = Vec::new();
    for tok in tokens(s) {
        // Repetition `...xN` (the x after the last `}}` or number).
        let close = tok.rfind("}}").map_or(0, |p| p + 2);
        let (head, times) = match tok[close..].rfind('x').map(|p| p + close) {
            Some(p) if p > 0 && !tok[p + 1..].is_empty() && tok[p + 1..].chars().all(|c| c.is_ascii_digit()) => {
                (tok[..p].to_string(), Some(tok[p + 1..].parse::<usize>().map_err(|_| format!("bad repeat {tok:?}"))?))
            }
            _ => (tok.clone(), None),
        };
        if head == "_" {
            match times {
                Some(n) => out.extend(std::iter::repeat_n(Item::Omitted, n)),
                None => out.push(Item::Omitted),
            }
            continue;
        }
        let Some(n) = times else {
            out.push(parse_one(&head)?);
            continue;
        };
        match split_op(&head) {
            Some((a, op, b)) => {
                let a = parse_one(a)?;
                let b = parse_one(b)?;
                match (a, b) {
                    (Item::F(mut v), Item::F(d)) => {
                        out.push(Item::F(v));
                        for _ in 0..n {
                            if op == '+' {
                                v += d;
                            } else {
                                v -= d;
                            }
                            out.push(Item::F(v));
                        }
                    }
                    (Item::H(mut h), Item::H(d)) => {
                        out.push(Item::H(h.clone()));
                        for _ in 0..n {
                            h = hist_add(&h, &d, op == '-');
                            out.push(Item::H(h.clone()));
                        }
                    }
                    _ => return Err(format!("mixed types in {tok:?}")),
                }
            }
            None => {
                let v = parse_one(&head)?;
                for _ in 0..=n {
                    out.push(v.clone());
                }
            }
        }
    }
    Ok(out)
}

fn parse_one(s: &str) -> Result<Item, String> {
    if s.starts_with("{{") {
        return Ok(Item::H(parse_histogram(s)?));
    }
    Ok(Item::F(parse_number(s)?))
}

/// Adds histograms bucket by bucket for `{{A}}+{{B}}xN` (same layout assumed as upstream
/// scripts use; different layouts are merged by index).
fn hist_add(a: &FloatHistogram, b: &FloatHistogram, sub: bool) -> FloatHistogram {
    let sign = if sub { -1.0 } else { 1.0 };
    // Exponential histograms of different schemas meet at the coarser one, as in
    // Prometheus' `FloatHistogram.Add`: bucket i of schema s lies in bucket
    // ((i - 1) >> (s - t)) + 1 of schema t.
    let exponential = a.schema != storage::histogram::CUSTOM_BUCKETS_SCHEMA && b.schema != storage::histogram::CUSTOM_BUCKETS_SCHEMA;
    let schema = if exponential { a.schema.min(b.schema) } else { a.schema };
    let target = |i: i32, from: i32| if exponential && from > schema { ((i - 1) >> (from - schema)) + 1 } else { i };
    let merge = |sa: &[Span], ca: &[f64], sb: &[Span], cb: &[f64]| -> (Vec<Span>, Vec<f64>) {
        let mut m = std::collections::BTreeMap::new();
        for (i, c) in expand(sa, ca) {
            *m.entry(target(i, a.schema)).or_insert(0.0) += c;
        }
        for (i, c) in expand(sb, cb) {
            *m.entry(target(i, b.schema)).or_insert(0.0) += sign * c;
        }
        collapse(m.into_iter().collect())
    };
    let (ps, pc) = merge(&a.positive_spans, &a.positive_buckets, &b.positive_spans, &b.positive_buckets);
    let (ns, nc) = merge(&a.negative_spans, &a.negative_buckets, &b.negative_spans, &b.negative_buckets);
    FloatHistogram {
        counter_reset_hint: a.counter_reset_hint,
        schema,
        zero_threshold: a.zero_threshold,
        zero_count: a.zero_count + sign * b.zero_count,
        count: a.count + sign * b.count,
        sum: a.sum + sign * b.sum,
        positive_spans: ps,
        positive_buckets: pc,
        negative_spans: ns,
        negative_buckets: nc,
        custom_values: a.custom_values.clone(),
    }
}

pub fn expand(spans: &[Span], counts: &[f64]) -> Vec<(i32, f64)> {
    let mut out = Vec::new();
    let mut idx = 0i32;
    let mut ci = 0;
    for s in spans {
        idx += s.offset;
        for _ in 0..s.length {
            if let Some(&c) = counts.get(ci) {
                out.push((idx, c));
            }
            idx += 1;
            ci += 1;
        }
    }
    out
}

/// Spans over consecutive indexes (zero counts kept).
pub fn collapse(pairs: Vec<(i32, f64)>) -> (Vec<Span>, Vec<f64>) {
    let mut spans: Vec<Span> = Vec::new();
    let mut counts = Vec::new();
    let mut next: Option<i32> = None;
    for (i, c) in pairs {
        match next {
            Some(n) if n == i => spans.last_mut().expect("span").length += 1,
            Some(n) => spans.push(Span { offset: i - n, length: 1 }),
            None => spans.push(Span { offset: i, length: 1 }),
        }
        counts.push(c);
        next = Some(i + 1);
    }
    (spans, counts)
}

fn parse_list(s: &str) -> Result<Vec<f64>, String> {
    s.split_whitespace().map(parse_number).collect()
}

/// Parses `{{key:value ...}}`.
pub fn parse_histogram(s: &str) -> Result<FloatHistogram, String> {
    let inner = s.strip_prefix("{{").and_then(|x| x.strip_suffix("}}")).ok_or_else(|| format!("bad histogram {s:?}"))?;
    let mut h = FloatHistogram::default();
    let mut pos: Vec<f64> = Vec::new();
    let mut neg: Vec<f64> = Vec::new();
    let (mut off, mut noff) = (0i32, 0i32);
    let mut rest = inner.trim();
    let mut explicit_hint = false;
    while !rest.is_empty() {
        let c = rest.find(':').ok_or_else(|| format!("bad histogram item in {s:?}"))?;
        let key = rest[..c].trim();
        rest = rest[c + 1..].trim_start();
        let val;
        if rest.starts_with('[') {
            let e = rest.find(']').ok_or("unterminated list")?;
            val = &rest[1..e];
            rest = rest[e + 1..].trim_start();
        } else {
            let e = rest.find(char::is_whitespace).unwrap_or(rest.len());
            val = &rest[..e];
            rest = rest[e..].trim_start();
        }
        match key {
            "schema" => h.schema = val.parse().map_err(|_| format!("bad schema {val:?}"))?,
            "sum" => h.sum = parse_number(val)?,
            "count" => h.count = parse_number(val)?,
            "z_bucket" => h.zero_count = parse_number(val)?,
            "z_bucket_w" => h.zero_threshold = parse_number(val)?,
            "buckets" => pos = parse_list(val)?,
            "n_buckets" => neg = parse_list(val)?,
            "offset" => off = val.parse().map_err(|_| format!("bad offset {val:?}"))?,
            "n_offset" => noff = val.parse().map_err(|_| format!("bad offset {val:?}"))?,
            "custom_values" => h.custom_values = parse_list(val)?,
            "counter_reset_hint" => {
                explicit_hint = true;
                h.counter_reset_hint = match val {
                    "unknown" => CounterResetHint::Unknown,
                    "reset" => CounterResetHint::CounterReset,
                    "not_reset" => CounterResetHint::NotCounterReset,
                    "gauge" => CounterResetHint::Gauge,
                    _ => return Err(format!("bad counter_reset_hint {val:?}")),
                }
            }
            _ => return Err(format!("unknown histogram key {key:?}")),
        }
    }
    let _ = explicit_hint;
    if !pos.is_empty() {
        h.positive_spans = vec![Span { offset: off, length: pos.len() as u32 }];
        h.positive_buckets = pos;
    }
    if !neg.is_empty() {
        h.negative_spans = vec![Span { offset: noff, length: neg.len() as u32 }];
        h.negative_buckets = neg;
    }
    let _ = CUSTOM_BUCKETS_SCHEMA;
    Ok(h)
}

/// Parses a whole script into commands with their line numbers (1-based).
pub fn parse_script(text: &str) -> Result<Vec<(usize, Command)>, String> {
    let lines: Vec<&str> = text.split('\n').collect();
    let mut cmds = Vec::new();
    let mut i = 0;
    let blank = |l: &str| {
        let t = l.trim();
        t.is_empty() || t.starts_with('#')
    };
    while i < lines.len() {
        if blank(lines[i]) {
            i += 1;
            continue;
        }
        let start = i;
        let head = lines[i].trim();
        i += 1;
        if head.split_whitespace().next().unwrap_or("").eq_ignore_ascii_case("clear") {
            // `clear` takes no body: the next line starts a new command.
            cmds.push((start + 1, Command::Clear));
            continue;
        }
        let mut body: Vec<(usize, &str)> = Vec::new();
        while i < lines.len() && !blank(lines[i]) {
            body.push((i + 1, lines[i].trim()));
            i += 1;
        }
        let word = head.split_whitespace().next().unwrap_or("").to_ascii_lowercase();
        let cmd = if word == "clear" {
            Command::Clear
        } else if word.starts_with("load") {
            parse_load(head, &body).map_err(|e| format!("line {}: {e}", start + 1))?
        } else if word.starts_with("eval") {
            Command::Eval(parse_eval(start + 1, head, &body).map_err(|e| format!("line {}: {e}", start + 1))?)
        } else {
            return Err(format!("line {}: invalid command {head:?}", start + 1));
        };
        cmds.push((start + 1, cmd));
    }
    Ok(cmds)
}

fn parse_load(head: &str, body: &[(usize, &str)]) -> Result<Command, String> {
    let mut parts = head.split_whitespace();
    let word = parts.next().unwrap_or("");
    let nhcb = word == "load_with_nhcb";
    let interval_ms = parse_duration(parts.next().ok_or("load without interval")?)?;
    let mut series: Vec<SeriesLine> = Vec::new();
    let mut sts: Vec<(Labels, Vec<Option<i64>>)> = Vec::new();
    for (ln, l) in body {
        let (labels, rest) = parse_descriptor(l).map_err(|e| format!("line {ln}: {e}"))?;
        if rest.trim_start().starts_with("@st") {
            let seq = rest.trim_start().trim_start_matches("@st");
            sts.push((labels, parse_st_values(seq).map_err(|e| format!("line {ln}: {e}"))?));
            continue;
        }
        let items = parse_values(rest).map_err(|e| format!("line {ln}: {e}"))?;
        series.push(SeriesLine { labels, items, st_offsets: Vec::new() });
    }
    // An `@st` line belongs to the value line with the same labels (before or after it).
    for (labels, offsets) in sts {
        let s = series
            .iter_mut()
            .rev()
            .find(|s| s.labels == labels)
            .ok_or_else(|| format!("@st line for {labels:?} without a value line"))?;
        s.st_offsets = offsets;
    }
    Ok(Command::Load { interval_ms, nhcb, series })
}

fn parse_matcher(rest: &str) -> Result<Matcher, String> {
    let rest = rest.trim();
    if rest.is_empty() {
        return Ok(Matcher::Any);
    }
    if let Some(m) = rest.strip_prefix("msg:") {
        return Ok(Matcher::Msg(m.trim().to_string()));
    }
    if let Some(r) = rest.strip_prefix("regex:") {
        return Ok(Matcher::Regex(regex::Regex::new(r.trim()).map_err(|e| e.to_string())?));
    }
    Err(format!("bad expect text {rest:?}"))
}

fn parse_eval(line: usize, head: &str, body: &[(usize, &str)]) -> Result<Eval, String> {
    let (word, rest) = head.split_once(char::is_whitespace).ok_or("bad eval")?;
    let rest = rest.trim_start();
    let mut expects = Vec::new();
    match word.to_ascii_lowercase().as_str() {
        "eval" => {}
        "eval_fail" => expects.push(Expect::Fail(Matcher::Any)),
        "eval_warn" => expects.push(Expect::Warn(Matcher::Any)),
        "eval_info" => expects.push(Expect::Info(Matcher::Any)),
        "eval_ordered" => expects.push(Expect::Ordered),
        w => return Err(format!("invalid eval command {w:?}")),
    }
    let (instant_at, range, expr) = if let Some(r) = rest.strip_prefix("instant") {
        let r = r.trim_start().strip_prefix("at").ok_or("expected 'at'")?.trim_start();
        let (t, e) = r.split_once(char::is_whitespace).ok_or("missing expression")?;
        (Some(parse_duration(t)?), None, e.trim().to_string())
    } else if let Some(r) = rest.strip_prefix("range") {
        let w: Vec<&str> = r.split_whitespace().collect();
        if w.len() < 7 || w[0] != "from" || w[2] != "to" || w[4] != "step" {
            return Err("bad range eval".into());
        }
        let (s, e, st) = (parse_duration(w[1])?, parse_duration(w[3])?, parse_duration(w[5])?);
        if e < s {
            return Err("end before start".into());
        }
        let idx = r.find(w[5]).expect("present") + w[5].len();
        let _ = idx;
        let expr = r.splitn(7, char::is_whitespace).filter(|x| !x.is_empty()).collect::<Vec<_>>();
        let _ = expr;
        // Rest after the 6th word.
        let mut rr = r.trim_start();
        for _ in 0..6 {
            rr = rr.trim_start();
            let e = rr.find(char::is_whitespace).unwrap_or(rr.len());
            rr = &rr[e..];
        }
        (None, Some((s, e, st)), rr.trim().to_string())
    } else {
        return Err(format!("bad eval header {head:?}"));
    };
    let mut range_vector = None;
    let mut lines = Vec::new();
    let mut expected = None;
    for (ln, l) in body {
        if let Some(r) = l.strip_prefix("expect ") {
            let r = r.trim_start();
            let (kind, tail) = r.split_once(char::is_whitespace).unwrap_or((r, ""));
            match kind {
                "fail" => expects.push(Expect::Fail(parse_matcher(tail)?)),
                "warn" => expects.push(Expect::Warn(parse_matcher(tail)?)),
                "info" => expects.push(Expect::Info(parse_matcher(tail)?)),
                "no_warn" => expects.push(Expect::NoWarn),
                "no_info" => expects.push(Expect::NoInfo),
                "ordered" => expects.push(Expect::Ordered),
                "range" => {
                    let w: Vec<&str> = tail.split_whitespace().collect();
                    if w.len() != 7 || w[0] != "vector" || w[1] != "from" || w[3] != "to" || w[5] != "step" {
                        return Err(format!("line {ln}: bad expect range vector"));
                    }
                    range_vector = Some((parse_duration(w[2])?, parse_duration(w[4])?, parse_duration(w[6])?));
                }
                "string" => {
                    let (s, _) = parse_quoted(tail.trim()).map_err(|e| format!("line {ln}: {e}"))?;
                    expected = Some(Expected::String(s));
                }
                _ => return Err(format!("line {ln}: unknown expect {kind:?}")),
            }
            continue;
        }
        if let Some(r) = l.strip_prefix("expected_fail_message") {
            expects.retain(|e| !matches!(e, Expect::Fail(_)));
            expects.push(Expect::Fail(Matcher::Msg(r.trim().to_string())));
            break;
        }
        if let Some(r) = l.strip_prefix("expected_fail_regexp") {
            expects.retain(|e| !matches!(e, Expect::Fail(_)));
            expects.push(Expect::Fail(Matcher::Regex(regex::Regex::new(r.trim()).map_err(|e| e.to_string())?)));
            break;
        }
        if let Some(v) = parse_scalar_line(l) {
            expected = Some(Expected::Scalar(v));
            break;
        }
        let (labels, rest) = parse_descriptor(l).map_err(|e| format!("line {ln}: {e}"))?;
        let items = parse_values(rest).map_err(|e| format!("line {ln}: {e}"))?;
        if instant_at.is_some() && range_vector.is_none() && items.len() != 1 {
            return Err(format!("line {ln}: expected one value for an instant eval"));
        }
        lines.push(SeriesLine { labels, items, st_offsets: Vec::new() });
    }
    let expected = expected.unwrap_or(Expected::Series(lines));
    Ok(Eval { line, expr, instant_at, range, expects, range_vector, expected })
}

fn parse_scalar_line(l: &str) -> Option<f64> {
    let t = l.trim();
    if t.contains(char::is_whitespace) || t.contains('{') {
        return None;
    }
    let (neg, body) = match t.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let iv = if let Some(h) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
        i64::from_str_radix(h, 16).ok()
    } else {
        body.parse::<i64>().ok()
    };
    if let Some(v) = iv {
        return Some(if neg { -(v as f64) } else { v as f64 });
    }
    match body.to_ascii_lowercase().as_str() {
        "inf" | "infinity" => return Some(if neg { f64::NEG_INFINITY } else { f64::INFINITY }),
        "nan" => return Some(f64::NAN),
        _ => {}
    }
    let v: f64 = body.parse().ok()?;
    Some(if neg { -v } else { v })
}
