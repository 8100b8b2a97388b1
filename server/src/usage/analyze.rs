//! Static analysis of Grafana dashboards and Prometheus rule files (as `mimirtool analyze`):
//! which metrics they reference, so the usage report counts a metric as used even when no one
//! opened the dashboard during the window.
//!
//! # What is read
//! - Grafana dashboard JSON (the export format, or the API's `{"dashboard": {...}}` wrapper):
//!   every panel's `targets[].expr`, panels nested in rows (`rows[].panels`, the pre-5.0
//!   layout, and `panels[].panels`, collapsed rows), library panels (`libraryPanel.model`, as
//!   stored in exports that inline the model), and template variables (`templating.list[]`,
//!   `query` as a string or `{ "query": ... }`): `label_values(expr, label)`,
//!   `label_values(label)` (no metric), `query_result(expr)`, `metrics(regex)` and plain
//!   PromQL.
//! - Prometheus rule files (YAML `groups[].rules[].expr`).
//!
//! Grafana variables (`$var`, `${var}`, `${var:fmt}`, `[[var]]`, and the built-ins
//! `$__rate_interval`, `$__interval`, `$__range`...) are substituted before parsing: inside a
//! range or after `offset` by a duration, inside a string by a placeholder value, elsewhere by
//! a placeholder identifier (or `1` when the parser wants a scalar). A metric name built from a
//! variable cannot be known statically and is reported as a parse problem, not as a metric.
//!
//! The result ([`StaticRefs`]) is persisted as `static_refs.json` in the usage directory,
//! replaced whole by each `hearth analyze` run (written to a temp file, then renamed).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use query::analysis::{analyze as analyze_expr, SelectorUse};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use storage::{MatchOp, METRIC_NAME};

use super::UsageError;

/// The file `hearth analyze` writes into the usage directory.
pub const STATIC_REFS_FILE: &str = "static_refs.json";

/// Placeholder identifier a Grafana variable becomes outside strings and ranges.
const VAR_IDENT: &str = "__grafana_var__";

/// A selector whose metric name is not a literal, kept to be resolved against the index when
/// the report is built: its matchers as `(label, op, value)` with `op` one of `=`, `!=`, `=~`,
/// `!~`.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct OpenSelector {
    /// The matchers.
    pub matchers: Vec<(String, String, String)>,
}

/// What one file references.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRefs {
    /// The file's path as given.
    pub path: String,
    /// `dashboard` or `rules`.
    pub kind: String,
    /// Dashboard title or rule group names, for display.
    pub title: String,
    /// Metric names referenced literally.
    pub metrics: BTreeSet<String>,
    /// Selectors without a literal name (`{__name__=~"node_.*"}`, `{job="x"}`, `metrics(re)`).
    pub open_selectors: Vec<OpenSelector>,
    /// Expressions that could not be parsed: `"<where>: <error>"`.
    pub errors: Vec<String>,
    /// Expressions parsed.
    pub expressions: usize,
}

/// Everything one analyze run found.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaticRefs {
    /// When the analysis ran, ms since the epoch.
    pub generated_t_ms: i64,
    /// Per file.
    pub files: Vec<FileRefs>,
}

impl StaticRefs {
    /// All literal metric names over every file.
    pub fn metrics(&self) -> BTreeSet<String> {
        self.files.iter().flat_map(|f| f.metrics.iter().cloned()).collect()
    }

    /// All open selectors over every file (deduplicated).
    pub fn open_selectors(&self) -> Vec<OpenSelector> {
        let set: BTreeSet<OpenSelector> = self.files.iter().flat_map(|f| f.open_selectors.iter().cloned()).collect();
        set.into_iter().collect()
    }

    /// Reads `static_refs.json` from `dir`; `Ok(None)` if there is none.
    ///
    /// # Errors
    /// [`UsageError::Io`] or [`UsageError::Format`] for an unreadable file.
    pub fn load(dir: &Path) -> Result<Option<StaticRefs>, UsageError> {
        let path = dir.join(STATIC_REFS_FILE);
        match std::fs::read(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(UsageError::Io { path, source: e }),
            Ok(b) => serde_json::from_slice(&b).map(Some).map_err(|e| UsageError::Format { path, message: e.to_string() }),
        }
    }

    /// Writes `static_refs.json` into `dir` (temp file + rename), replacing the previous run's.
    ///
    /// # Errors
    /// [`UsageError::Io`].
    pub fn save(&self, dir: &Path) -> Result<(), UsageError> {
        std::fs::create_dir_all(dir).map_err(|e| UsageError::Io { path: dir.to_path_buf(), source: e })?;
        let path = dir.join(STATIC_REFS_FILE);
        let tmp = dir.join(format!("{STATIC_REFS_FILE}.tmp"));
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| UsageError::Format { path: path.clone(), message: e.to_string() })?;
        std::fs::write(&tmp, bytes).map_err(|e| UsageError::Io { path: tmp.clone(), source: e })?;
        std::fs::rename(&tmp, &path).map_err(|e| UsageError::Io { path, source: e })
    }
}

/// The `.json` files directly in or below `dir` (recursively), sorted.
///
/// # Errors
/// [`UsageError::Io`] if a directory cannot be read.
pub fn dashboard_files(dir: &Path) -> Result<Vec<PathBuf>, UsageError> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let rd = std::fs::read_dir(&d).map_err(|e| UsageError::Io { path: d.clone(), source: e })?;
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "json") {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Analyses one dashboard file. An unreadable or invalid file yields a [`FileRefs`] whose
/// `errors` say why (never an error: one bad file must not stop a run over hundreds).
pub fn analyze_dashboard_file(path: &Path) -> FileRefs {
    let mut f = FileRefs { path: path.display().to_string(), kind: "dashboard".into(), ..FileRefs::default() };
    match std::fs::read(path) {
        Err(e) => f.errors.push(format!("read: {e}")),
        Ok(b) => match serde_json::from_slice::<Value>(&b) {
            Err(e) => f.errors.push(format!("json: {e}")),
            Ok(v) => analyze_dashboard(&v, &mut f),
        },
    }
    f
}

/// Analyses a dashboard's JSON into `f`.
pub fn analyze_dashboard(v: &Value, f: &mut FileRefs) {
    let d = v.get("dashboard").filter(|d| d.is_object()).unwrap_or(v);
    f.title = d.get("title").and_then(Value::as_str).unwrap_or("").to_string();
    let mut panels: Vec<&Value> = Vec::new();
    for key in ["panels", "rows"] {
        if let Some(list) = d.get(key).and_then(Value::as_array) {
            panels.extend(list);
        }
    }
    // Depth-first over nested panels; bounded by the JSON's size since each value is visited once.
    while let Some(p) = panels.pop() {
        for key in ["panels", "rows"] {
            if let Some(list) = p.get(key).and_then(Value::as_array) {
                panels.extend(list);
            }
        }
        if let Some(model) = p.get("libraryPanel").and_then(|l| l.get("model")) {
            panels.push(model);
        }
        let id = p.get("id").map(|i| i.to_string()).unwrap_or_default();
        let title = p.get("title").and_then(Value::as_str).unwrap_or("");
        for t in p.get("targets").and_then(Value::as_array).into_iter().flatten() {
            if let Some(expr) = t.get("expr").and_then(Value::as_str) {
                if !expr.trim().is_empty() {
                    let at = format!("panel {id} {title:?} ref {}", t.get("refId").and_then(Value::as_str).unwrap_or("?"));
                    add_expr(expr, &at, f);
                }
            }
        }
    }
    for var in d.get("templating").and_then(|t| t.get("list")).and_then(Value::as_array).into_iter().flatten() {
        if var.get("type").and_then(Value::as_str).is_some_and(|t| t != "query") {
            continue;
        }
        let q = match var.get("query") {
            Some(Value::String(s)) => s.as_str(),
            Some(Value::Object(o)) => o.get("query").and_then(Value::as_str).unwrap_or(""),
            _ => "",
        };
        let name = var.get("name").and_then(Value::as_str).unwrap_or("?");
        add_variable_query(q, &format!("variable {name}"), f);
    }
}

/// Analyses a Grafana variable query (`label_values(...)`, `query_result(...)`,
/// `metrics(...)`, `label_names()`, or PromQL).
pub fn add_variable_query(q: &str, at: &str, f: &mut FileRefs) {
    let q = q.trim();
    if q.is_empty() {
        return;
    }
    if let Some(inner) = call_args(q, "label_values") {
        // label_values(label) names no metric; label_values(expr, label) reads expr.
        if let Some((expr, _label)) = inner.rsplit_once(',') {
            add_expr(expr, at, f);
        }
    } else if let Some(inner) = call_args(q, "query_result") {
        add_expr(inner, at, f);
    } else if let Some(inner) = call_args(q, "metrics") {
        let re = inner.trim().trim_matches(|c| c == '"' || c == '\'');
        // Grafana's metrics(re) is unanchored: a metric name containing a match.
        let re = format!(".*(?:{}).*", substitute_in_string(re));
        f.open_selectors.push(OpenSelector { matchers: vec![(METRIC_NAME.into(), "=~".into(), re)] });
        f.expressions += 1;
    } else if call_args(q, "label_names").is_some() {
        // Lists label names of all series: reads no metric.
    } else {
        add_expr(q, at, f);
    }
}

/// `name(...)` -> the text between the outer parentheses.
fn call_args<'a>(q: &'a str, name: &str) -> Option<&'a str> {
    let rest = q.strip_prefix(name)?.trim_start();
    rest.strip_prefix('(')?.strip_suffix(')')
}

/// Analyses a Prometheus rule file (YAML `groups[].rules[].expr`).
pub fn analyze_rule_file(path: &Path) -> FileRefs {
    let mut f = FileRefs { path: path.display().to_string(), kind: "rules".into(), ..FileRefs::default() };
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            f.errors.push(format!("read: {e}"));
            return f;
        }
    };
    analyze_rules_text(&text, &mut f);
    f
}

#[derive(Deserialize)]
struct RuleFile {
    #[serde(default)]
    groups: Vec<RuleGroup>,
}

#[derive(Deserialize)]
struct RuleGroup {
    #[serde(default)]
    name: String,
    #[serde(default)]
    rules: Vec<Rule>,
}

#[derive(Deserialize)]
struct Rule {
    #[serde(default)]
    record: Option<String>,
    #[serde(default)]
    alert: Option<String>,
    #[serde(default)]
    expr: Option<serde_norway::Value>,
}

/// Analyses rule-file YAML into `f`.
pub fn analyze_rules_text(text: &str, f: &mut FileRefs) {
    let file: RuleFile = match serde_norway::from_str(text) {
        Ok(r) => r,
        Err(e) => {
            f.errors.push(format!("yaml: {e}"));
            return;
        }
    };
    let mut names = Vec::new();
    for g in &file.groups {
        names.push(g.name.clone());
        for r in &g.rules {
            let what = r.record.as_deref().or(r.alert.as_deref()).unwrap_or("?");
            let expr = match &r.expr {
                Some(serde_norway::Value::String(s)) => s.clone(),
                Some(serde_norway::Value::Number(n)) => n.to_string(),
                _ => {
                    f.errors.push(format!("group {:?} rule {what}: no expr", g.name));
                    continue;
                }
            };
            add_expr(&expr, &format!("group {:?} rule {what}", g.name), f);
        }
    }
    f.title = names.join(", ");
}

/// Parses `expr` (after variable substitution) and adds its selectors to `f`.
pub fn add_expr(expr: &str, at: &str, f: &mut FileRefs) {
    f.expressions += 1;
    let (ident, scalar) = (substitute(expr, VAR_IDENT), substitute(expr, "1"));
    let parsed = query::parse(&ident).or_else(|e| query::parse(&scalar).map_err(|_| e));
    match parsed {
        Err(e) => f.errors.push(format!("{at}: {e}")),
        Ok(e) => {
            for s in analyze_expr(&e).selectors {
                add_selector(&s, at, f);
            }
        }
    }
}

fn add_selector(s: &SelectorUse, at: &str, f: &mut FileRefs) {
    match &s.metric {
        Some(m) if m.contains(VAR_IDENT) => {
            f.errors.push(format!("{at}: metric name {m:?} depends on a dashboard variable"));
        }
        Some(m) => {
            f.metrics.insert(m.clone());
        }
        None => {
            let matchers: Vec<(String, String, String)> = s
                .matchers
                .iter()
                // A matcher on a variable's placeholder value cannot narrow the selection.
                .filter(|(_, _, v)| !v.contains(VAR_VALUE))
                .map(|(n, op, v)| (n.clone(), op_str(*op).to_string(), v.clone()))
                .collect();
            f.open_selectors.push(OpenSelector { matchers });
        }
    }
}

/// The text of a match operator.
pub fn op_str(op: MatchOp) -> &'static str {
    match op {
        MatchOp::Equal => "=",
        MatchOp::NotEqual => "!=",
        MatchOp::RegexMatch => "=~",
        MatchOp::RegexNoMatch => "!~",
    }
}

/// Placeholder a variable becomes inside a string literal; matchers on it are dropped.
const VAR_VALUE: &str = "grafana_var_value";

/// Length of the variable reference starting at `b[i]` (`$name`, `${...}`, `[[name]]`), or 0.
fn var_len(b: &[u8], i: usize) -> usize {
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    if b[i] == b'$' {
        if b.get(i + 1) == Some(&b'{') {
            return b[i..].iter().position(|c| *c == b'}').map_or(0, |p| p + 1);
        }
        let n = b[i + 1..].iter().take_while(|c| ident(**c)).count();
        return if n > 0 { n + 1 } else { 0 };
    }
    if b[i] == b'[' && b.get(i + 1) == Some(&b'[') {
        let n = b[i + 2..].iter().take_while(|c| ident(**c)).count();
        if n > 0 && b.get(i + 2 + n) == Some(&b']') && b.get(i + 3 + n) == Some(&b']') {
            return n + 4;
        }
    }
    0
}

/// Replaces Grafana variables in `expr`: by a duration inside `[...]` or after `offset`, by
/// [`VAR_VALUE`] inside strings, and by `outside` elsewhere.
fn substitute(expr: &str, outside: &str) -> String {
    let b = expr.as_bytes();
    let mut out = String::with_capacity(expr.len() + 16);
    let (mut i, mut quote, mut bracket) = (0usize, None::<u8>, 0i32);
    let mut last = 0usize;
    // Per open parenthesis: whether it opens a label list (`by (...)`, `on (...)`...).
    let mut parens: Vec<bool> = Vec::new();
    while i < b.len() {
        let c = b[i];
        if let Some(q) = quote {
            if c == b'\\' {
                i += 2;
                continue;
            }
            if c == q {
                quote = None;
            }
        } else if c == b'"' || c == b'\'' || c == b'`' {
            quote = Some(c);
        } else if c == b'[' && var_len(b, i) == 0 {
            bracket += 1;
        } else if c == b']' {
            bracket -= 1;
        } else if c == b'(' {
            let before = expr[..i].trim_end();
            let word_start = before.rfind(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '_')).map_or(0, |p| p + 1);
            let word = before[word_start..].to_ascii_lowercase();
            parens.push(matches!(word.as_str(), "by" | "without" | "on" | "ignoring" | "group_left" | "group_right"));
        } else if c == b')' {
            parens.pop();
        }
        let n = if c == b'$' || c == b'[' { var_len(b, i) } else { 0 };
        if n == 0 {
            i += 1;
            continue;
        }
        out.push_str(&expr[last..i]);
        let after_offset = out.trim_end().ends_with("offset");
        out.push_str(if quote.is_some() {
            VAR_VALUE
        } else if bracket > 0 || after_offset {
            "5m"
        } else if parens.last() == Some(&true) {
            VAR_IDENT
        } else {
            outside
        });
        i += n;
        last = i;
    }
    out.push_str(&expr[last..]);
    out
}

/// Variables inside a regex string (`metrics(...)`) become `.*`.
fn substitute_in_string(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = String::new();
    let (mut i, mut last) = (0, 0);
    while i < b.len() {
        let n = if b[i] == b'$' || b[i] == b'[' { var_len(b, i) } else { 0 };
        if n == 0 {
            i += 1;
            continue;
        }
        out.push_str(&s[last..i]);
        out.push_str(".*");
        i += n;
        last = i;
    }
    out.push_str(&s[last..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refs(expr: &str) -> FileRefs {
        let mut f = FileRefs::default();
        add_expr(expr, "t", &mut f);
        f
    }

    #[test]
    fn substitutes_grafana_variables() {
        assert_eq!(
            substitute(r#"rate(x{job="$job",i=~"${inst:regex}"}[$__rate_interval]) offset $off"#, VAR_IDENT),
            format!(r#"rate(x{{job="{VAR_VALUE}",i=~"{VAR_VALUE}"}}[5m]) offset 5m"#)
        );
        assert_eq!(substitute("topk($n, x)", "1"), "topk(1, x)");
        assert_eq!(substitute("sum by ([[label]]) (x)", "1"), format!("sum by ({VAR_IDENT}) (x)"));
        // Subquery ranges and steps.
        assert_eq!(substitute("max_over_time(x[$__range:$__interval])", VAR_IDENT), "max_over_time(x[5m:5m])");
    }

    #[test]
    fn expressions_with_variables_parse() {
        let f = refs(r#"topk($n, sum by ($group) (rate(http_requests_total{job=~"$job"}[$__rate_interval])))"#);
        assert!(f.errors.is_empty(), "{:?}", f.errors);
        assert_eq!(f.metrics.iter().collect::<Vec<_>>(), vec!["http_requests_total"]);
        let f = refs(r#"node_${resource}_seconds_total"#);
        assert!(f.metrics.is_empty());
        assert_eq!(f.errors.len(), 1, "{:?}", f.errors);
    }

    #[test]
    fn open_selectors_keep_real_matchers_only() {
        let f = refs(r#"{__name__=~"node_cpu.*", instance="$instance"}"#);
        assert_eq!(f.open_selectors.len(), 1);
        assert_eq!(f.open_selectors[0].matchers, vec![("__name__".into(), "=~".into(), "node_cpu.*".into())]);
    }

    #[test]
    fn variable_query_forms() {
        let mut f = FileRefs::default();
        add_variable_query("label_values(up{job=\"x\"}, instance)", "v", &mut f);
        add_variable_query("label_values(instance)", "v", &mut f);
        add_variable_query("query_result(topk(5, node_load1))", "v", &mut f);
        add_variable_query("metrics(node_disk_.*)", "v", &mut f);
        add_variable_query("label_names()", "v", &mut f);
        assert!(f.errors.is_empty(), "{:?}", f.errors);
        assert_eq!(f.metrics.iter().map(String::as_str).collect::<Vec<_>>(), vec!["node_load1", "up"]);
        assert_eq!(f.open_selectors[0].matchers[0].2, ".*(?:node_disk_.*).*");
    }

    #[test]
    fn rule_files() {
        let mut f = FileRefs::default();
        analyze_rules_text(
            "groups:\n- name: g\n  rules:\n  - record: job:x:rate5m\n    expr: sum by (job) (rate(x_total[5m]))\n  - alert: Down\n    expr: up == 0\n    for: 5m\n  - alert: Bad\n    expr: 'sum(('\n",
            &mut f,
        );
        assert_eq!(f.metrics.iter().map(String::as_str).collect::<Vec<_>>(), vec!["up", "x_total"]);
        assert_eq!(f.errors.len(), 1, "{:?}", f.errors);
        assert!(f.errors[0].contains("rule Bad"), "{:?}", f.errors);
    }
}
