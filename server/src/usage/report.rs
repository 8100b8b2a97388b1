//! The metric usage report and the unused-metrics report, as data, JSON and CSV.
//!
//! A metric is **used** in a window when a call read it during the window (recorded usage) or
//! a loaded dashboard / rule file references it (static analysis). A used metric some of whose
//! label names no call used (labels that could be aggregated away by a recording rule or
//! dropped with `labeldrop`) is **partially used**: read, but only through some of its labels.
//! A metric read only through static references has no recorded label use, so it is never
//! reported as partially used.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde::Serialize;
use storage::usage::MetricDayUsage;

use super::cost::MetricCost;

/// How rows are sorted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SortKey {
    /// Active series.
    Series,
    /// Bytes on disk.
    Bytes,
    /// Query count.
    Queries,
    /// Metric name.
    Name,
    /// Last queried time.
    LastQueried,
}

impl SortKey {
    /// Parses `series|bytes|queries|name|last_queried`.
    pub fn parse(s: &str) -> Option<SortKey> {
        Some(match s {
            "series" => SortKey::Series,
            "bytes" => SortKey::Bytes,
            "queries" => SortKey::Queries,
            "name" => SortKey::Name,
            "last_queried" => SortKey::LastQueried,
            _ => return None,
        })
    }
}

/// Usage status of a metric in the window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Read, through all its labels, or referenced statically.
    Used,
    /// Read, but some of its labels never used.
    PartiallyUsed,
    /// Neither read nor referenced.
    Unused,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Used => "used",
            Status::PartiallyUsed => "partially_used",
            Status::Unused => "unused",
        }
    }
}

/// One metric's row of the usage report.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct MetricUsageRow {
    /// Metric name.
    pub metric: String,
    /// Active series (head).
    pub series: u64,
    /// Samples per second ingested (5-minute estimate from the head).
    pub samples_per_second: f64,
    /// Chunk bytes attributed on disk and in the head.
    pub bytes: u64,
    /// Calls that read it in the window.
    pub queries: u64,
    /// Newest read, ms since the epoch (`null` if none in the window).
    pub last_queried_t_ms: Option<i64>,
    /// Series touched by the calls that read it, summed over calls (a call reading several
    /// metrics counts its series for each).
    pub series_touched: u64,
    /// Samples loaded by the calls that read it, summed likewise.
    pub samples_touched: u64,
    /// Evaluation time of the calls that read it, seconds, summed likewise.
    pub query_seconds: f64,
    /// Calls per client key in the window.
    pub clients: BTreeMap<String, u64>,
    /// Label names used by the calls that read it.
    pub labels_used: Vec<String>,
    /// Label names on its series that no call in the window used.
    pub labels_unused: Vec<String>,
    /// Whether a loaded dashboard or rule file references it.
    pub static_reference: bool,
    /// Used, partially used or unused.
    pub status: Status,
}

/// Builds one row per metric present in storage (`costs`), joined with `usage` over the
/// window and the statically referenced names.
pub fn rows(costs: &BTreeMap<String, MetricCost>, usage: &BTreeMap<String, MetricDayUsage>, referenced: &BTreeSet<String>) -> Vec<MetricUsageRow> {
    costs
        .iter()
        .map(|(name, c)| {
            let u = usage.get(name);
            let queries = u.map_or(0, |u| u.queries);
            let used: BTreeSet<&String> = u.map(|u| u.labels.iter().collect()).unwrap_or_default();
            let labels_unused: Vec<String> = c.labels.iter().filter(|l| !used.contains(l)).cloned().collect();
            let static_reference = referenced.contains(name);
            let status = if queries > 0 && !labels_unused.is_empty() {
                Status::PartiallyUsed
            } else if queries > 0 || static_reference {
                Status::Used
            } else {
                Status::Unused
            };
            MetricUsageRow {
                metric: name.clone(),
                series: c.series,
                samples_per_second: (c.samples_per_second * 1000.0).round() / 1000.0,
                bytes: c.bytes(),
                queries,
                last_queried_t_ms: u.map(|u| u.last_t_ms).filter(|t| *t != i64::MIN),
                series_touched: u.map_or(0, |u| u.series),
                samples_touched: u.map_or(0, |u| u.samples),
                query_seconds: u.map_or(0.0, |u| u.duration_us as f64 / 1e6),
                clients: u.map(|u| u.clients.clone()).unwrap_or_default(),
                labels_used: used.into_iter().cloned().collect(),
                labels_unused,
                static_reference,
                status,
            }
        })
        .collect()
}

/// Sorts rows by `key`, descending when `desc`; ties broken by name ascending.
pub fn sort_rows(rows: &mut [MetricUsageRow], key: SortKey, desc: bool) {
    rows.sort_by(|a, b| {
        let o = match key {
            SortKey::Series => a.series.cmp(&b.series),
            SortKey::Bytes => a.bytes.cmp(&b.bytes),
            SortKey::Queries => a.queries.cmp(&b.queries),
            SortKey::Name => a.metric.cmp(&b.metric),
            SortKey::LastQueried => a.last_queried_t_ms.cmp(&b.last_queried_t_ms),
        };
        let o = if desc { o.reverse() } else { o };
        o.then_with(|| a.metric.cmp(&b.metric))
    });
}

/// A partially used metric in the unused report.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct PartialRow {
    /// Metric name.
    pub metric: String,
    /// Active series.
    pub series: u64,
    /// Bytes attributed.
    pub bytes: u64,
    /// Labels no call used.
    pub unused_labels: Vec<String>,
}

/// What dropping every unused metric would save.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Savings {
    /// Metrics.
    pub metrics: u64,
    /// Active series.
    pub series: u64,
    /// Bytes on disk.
    pub bytes: u64,
    /// Samples per second ingested.
    pub samples_per_second: f64,
}

/// The unused-metrics report.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct UnusedReport {
    /// The window, as given (`30d`).
    pub window: String,
    /// Metrics with no read and no static reference, by series then bytes, descending.
    pub unused: Vec<MetricUsageRow>,
    /// What dropping them saves.
    pub total: Savings,
    /// Metrics read only through some of their labels.
    pub partially_used: Vec<PartialRow>,
    /// A Prometheus `write_relabel_configs` entry dropping the unused metrics (YAML).
    pub write_relabel_configs: String,
}

/// Builds the unused-metrics report from the rows.
pub fn unused_report(window: &str, all: &[MetricUsageRow]) -> UnusedReport {
    let mut unused: Vec<MetricUsageRow> = all.iter().filter(|r| r.status == Status::Unused).cloned().collect();
    unused.sort_by(|a, b| b.series.cmp(&a.series).then(b.bytes.cmp(&a.bytes)).then_with(|| a.metric.cmp(&b.metric)));
    let mut total = Savings::default();
    for r in &unused {
        total.metrics += 1;
        total.series += r.series;
        total.bytes += r.bytes;
        total.samples_per_second += r.samples_per_second;
    }
    total.samples_per_second = (total.samples_per_second * 1000.0).round() / 1000.0;
    let mut partially_used: Vec<PartialRow> = all
        .iter()
        .filter(|r| r.status == Status::PartiallyUsed)
        .map(|r| PartialRow { metric: r.metric.clone(), series: r.series, bytes: r.bytes, unused_labels: r.labels_unused.clone() })
        .collect();
    partially_used.sort_by(|a, b| b.series.cmp(&a.series).then(b.bytes.cmp(&a.bytes)).then_with(|| a.metric.cmp(&b.metric)));
    let names: Vec<&str> = unused.iter().map(|r| r.metric.as_str()).collect();
    UnusedReport { window: window.to_string(), write_relabel_configs: relabel_drop(&names), unused, total, partially_used }
}

/// Escapes RE2 metacharacters so `s` matches itself literally.
pub fn regex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A `write_relabel_configs` entry dropping `names` (empty string when there are none). The
/// regex is single-quoted YAML, so a `'` in a name is doubled.
pub fn relabel_drop(names: &[&str]) -> String {
    if names.is_empty() {
        return String::new();
    }
    let re: Vec<String> = names.iter().map(|n| regex_escape(n).replace('\'', "''")).collect();
    format!("- source_labels: [__name__]\n  regex: '{}'\n  action: drop\n", re.join("|"))
}

fn csv_field(out: &mut String, s: &str) {
    if s.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&s.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(s);
    }
}

/// The rows as CSV (RFC 4180): a header line, then one line per metric; list fields are joined
/// with `;`, clients as `key=count`.
pub fn to_csv(rows: &[MetricUsageRow]) -> String {
    let mut out = String::from(
        "metric,status,series,samples_per_second,bytes,queries,last_queried_t_ms,static_reference,clients,labels_used,labels_unused,series_touched,samples_touched,query_seconds\n",
    );
    for r in rows {
        csv_field(&mut out, &r.metric);
        let _ = write!(
            out,
            ",{},{},{},{},{},{},{},",
            r.status.as_str(),
            r.series,
            r.samples_per_second,
            r.bytes,
            r.queries,
            r.last_queried_t_ms.map(|t| t.to_string()).unwrap_or_default(),
            r.static_reference
        );
        let clients: Vec<String> = r.clients.iter().map(|(k, v)| format!("{k}={v}")).collect();
        csv_field(&mut out, &clients.join(";"));
        out.push(',');
        csv_field(&mut out, &r.labels_used.join(";"));
        out.push(',');
        csv_field(&mut out, &r.labels_unused.join(";"));
        let _ = writeln!(out, ",{},{},{}", r.series_touched, r.samples_touched, r.query_seconds);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cost(series: u64, bytes: u64, labels: &[&str]) -> MetricCost {
        MetricCost { series, head_bytes: bytes, labels: labels.iter().map(|s| s.to_string()).collect(), ..MetricCost::default() }
    }

    #[test]
    fn statuses_and_unused_order() {
        let mut costs = BTreeMap::new();
        costs.insert("a".to_string(), cost(5, 100, &["job"]));
        costs.insert("b".to_string(), cost(9, 50, &["job", "instance"]));
        costs.insert("c".to_string(), cost(9, 70, &["job"]));
        costs.insert("d".to_string(), cost(1, 1, &["job"]));
        costs.insert("e".to_string(), cost(2, 2, &["job", "pod"]));
        let mut usage = BTreeMap::new();
        let mut ua = MetricDayUsage { queries: 2, last_t_ms: 7, ..MetricDayUsage::default() };
        ua.labels.insert("job".into());
        usage.insert("a".to_string(), ua.clone());
        usage.insert("e".to_string(), ua);
        let referenced: BTreeSet<String> = ["d".to_string()].into();
        let rows = rows(&costs, &usage, &referenced);
        let st: Vec<(&str, Status)> = rows.iter().map(|r| (r.metric.as_str(), r.status)).collect();
        assert_eq!(
            st,
            vec![("a", Status::Used), ("b", Status::Unused), ("c", Status::Unused), ("d", Status::Used), ("e", Status::PartiallyUsed)]
        );
        let rep = unused_report("30d", &rows);
        // Same series: more bytes first.
        assert_eq!(rep.unused.iter().map(|r| r.metric.as_str()).collect::<Vec<_>>(), vec!["c", "b"]);
        assert_eq!(rep.total, Savings { metrics: 2, series: 18, bytes: 120, samples_per_second: 0.0 });
        assert_eq!(rep.partially_used, vec![PartialRow { metric: "e".into(), series: 2, bytes: 2, unused_labels: vec!["pod".into()] }]);
        assert_eq!(rep.write_relabel_configs, "- source_labels: [__name__]\n  regex: 'c|b'\n  action: drop\n");
    }

    #[test]
    fn relabel_escapes_names() {
        assert_eq!(relabel_drop(&["a.b", "x:y_total", "we'ird"]), "- source_labels: [__name__]\n  regex: 'a\\.b|x:y_total|we''ird'\n  action: drop\n");
        assert_eq!(relabel_drop(&[]), "");
    }

    #[test]
    fn csv_quotes_fields() {
        let mut costs = BTreeMap::new();
        costs.insert("m".to_string(), cost(1, 2, &["a", "b"]));
        let mut u = MetricDayUsage { queries: 1, last_t_ms: 5, series: 3, samples: 40, duration_us: 1500, ..MetricDayUsage::default() };
        u.clients.insert("dashboard=x panel=1, org=1".into(), 1);
        u.labels.insert("a".into());
        let usage = [("m".to_string(), u)].into();
        let csv = to_csv(&rows(&costs, &usage, &BTreeSet::new()));
        assert_eq!(
            csv.lines().nth(1).unwrap(),
            "m,partially_used,1,0,2,1,5,false,\"dashboard=x panel=1, org=1=1\",a,b,3,40,0.0015"
        );
    }

    #[test]
    fn sorting() {
        let mut costs = BTreeMap::new();
        costs.insert("a".to_string(), cost(1, 9, &[]));
        costs.insert("b".to_string(), cost(3, 1, &[]));
        let mut r = rows(&costs, &BTreeMap::new(), &BTreeSet::new());
        sort_rows(&mut r, SortKey::Series, true);
        assert_eq!(r[0].metric, "b");
        sort_rows(&mut r, SortKey::Bytes, true);
        assert_eq!(r[0].metric, "a");
        sort_rows(&mut r, SortKey::Name, false);
        assert_eq!(r[0].metric, "a");
    }
}
