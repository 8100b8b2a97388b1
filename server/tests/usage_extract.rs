//! Metric-name extraction on tricky PromQL, resolved against a real database: regex names and
//! bare selectors read exactly the names the index selects; `label_replace` producing
//! `__name__`, `absent`, subqueries and `on()` joins with info-style metrics.

use std::collections::BTreeMap;

use server::usage::recorder::{reads_of_expr, reads_of_matchers};
use storage::db::{Db, DbOptions};
use storage::{Appender, Labels, Matcher};

const T: i64 = 1_700_000_000_000;

fn db() -> (tempfile::TempDir, Db) {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), DbOptions::default()).unwrap();
    let mut app = db.appender();
    let series: &[&[(&str, &str)]] = &[
        &[("__name__", "node_cpu_seconds_total"), ("job", "node"), ("cpu", "0"), ("mode", "idle")],
        &[("__name__", "node_cpu_guest_seconds_total"), ("job", "node"), ("cpu", "0")],
        &[("__name__", "node_load1"), ("job", "node")],
        &[("__name__", "http_requests_total"), ("job", "api"), ("code", "200"), ("instance", "a")],
        &[("__name__", "build_info"), ("job", "api"), ("instance", "a"), ("version", "1.2")],
        &[("__name__", "up"), ("job", "api")],
    ];
    for s in series {
        for i in 0..10 {
            app.append_labels(&Labels::from_pairs(s.iter().copied()), T + i * 15_000, i as f64).unwrap();
        }
    }
    app.commit().unwrap();
    (dir, db)
}

/// metric -> labels used.
fn reads(db: &Db, q: &str) -> BTreeMap<String, Vec<String>> {
    let e = query::parse(q).unwrap();
    reads_of_expr(&db.querier(), &e, T - 300_000, T + 300_000).into_iter().map(|r| (r.metric, r.labels)).collect()
}

fn names(m: &BTreeMap<String, Vec<String>>) -> Vec<&str> {
    m.keys().map(String::as_str).collect()
}

#[test]
fn regex_name_matchers_resolve_against_the_index() {
    let (_d, db) = db();
    let r = reads(&db, r#"sum(rate({__name__=~"node_cpu.*"}[5m]))"#);
    assert_eq!(names(&r), vec!["node_cpu_guest_seconds_total", "node_cpu_seconds_total"]);
    // Names the regex could match but that have no series are not read.
    let r = reads(&db, r#"{__name__=~"node_load1|node_load5|node_load15"}"#);
    assert_eq!(names(&r), vec!["node_load1"]);
    // A negative name matcher with another matcher selects the rest of that job.
    let r = reads(&db, r#"{job="node", __name__!~"node_cpu.*"}"#);
    assert_eq!(names(&r), vec!["node_load1"]);
}

#[test]
fn bare_selectors_read_every_metric_they_select() {
    let (_d, db) = db();
    let r = reads(&db, r#"count({job="api"})"#);
    assert_eq!(names(&r), vec!["build_info", "http_requests_total", "up"]);
    assert!(r.values().all(|l| l == &vec!["job".to_string()]), "{r:?}");
}

#[test]
fn label_replace_producing_the_name_reads_the_source() {
    let (_d, db) = db();
    let r = reads(&db, r#"label_replace(node_load1, "__name__", "renamed", "", "")"#);
    assert_eq!(names(&r), vec!["node_load1"]);
    // `__name__` is not a label use; label_replace's source and destination are.
    let r = reads(&db, r#"label_replace(up, "service", "$1", "job", "(.*)")"#);
    assert_eq!(r["up"], vec!["job".to_string(), "service".to_string()]);
}

#[test]
fn absent_and_subqueries() {
    let (_d, db) = db();
    // absent() depends on its argument: an alert on it uses the metric if it exists.
    assert_eq!(names(&reads(&db, "absent(up{job=\"api\"})")), vec!["up"]);
    let r = reads(&db, "max_over_time(rate(http_requests_total{code=~\"2..\"}[1m])[10m:1m])");
    assert_eq!(r["http_requests_total"], vec!["code".to_string()]);
    assert_eq!(names(&reads(&db, "absent_over_time({__name__=~\"node_load.*\"}[5m])")), vec!["node_load1"]);
}

#[test]
fn on_joins_with_info_metrics_read_both_sides_with_join_labels() {
    let (_d, db) = db();
    let r = reads(&db, "sum by (job) (rate(http_requests_total[5m]) * on(instance, job) group_left(version) build_info)");
    assert_eq!(names(&r), vec!["build_info", "http_requests_total"]);
    let want: Vec<String> = ["instance", "job", "version"].iter().map(|s| s.to_string()).collect();
    assert_eq!(r["build_info"], want);
    assert_eq!(r["http_requests_total"], want);
    // `ignoring` lists used labels too.
    let r = reads(&db, "up / ignoring(instance) up");
    assert_eq!(r["up"], vec!["instance".to_string()]);
}

#[test]
fn match_sets_read_what_they_select() {
    let (_d, db) = db();
    let q = db.querier();
    let sets = vec![vec![Matcher::equal("__name__", "node_load1")], vec![Matcher::equal("job", "api"), Matcher::regex("__name__", "b.*").unwrap()]];
    let r: Vec<String> = reads_of_matchers(&q, &sets, i64::MIN, i64::MAX).into_iter().map(|r| r.metric).collect();
    assert_eq!(r, vec!["build_info".to_string(), "node_load1".to_string()]);
    // No match[]: listing every name reads none.
    assert!(reads_of_matchers(&q, &[], i64::MIN, i64::MAX).is_empty());
}

#[test]
fn resolved_selectors_are_reused_for_the_ttl() {
    use server::usage::recorder::{CallInput, CallStats, Caller, UsageRecorder, RESOLVE_TTL_MS};
    use storage::usage::{ReadKind, UsageOptions, UsageStore};
    let (_d, db) = db();
    let udir = tempfile::tempdir().unwrap();
    let rec = UsageRecorder::new(std::sync::Arc::new(UsageStore::open(udir.path(), UsageOptions::default(), T).unwrap()));
    let q = r#"{__name__=~"node_load.*"}"#;
    let names = |t: i64| -> Vec<String> {
        let ev = rec.record(&db.querier(), ReadKind::InstantQuery, CallInput::Text(q), T - 300_000, T + 300_000, t, &Caller::default(), CallStats::default());
        ev.reads.into_iter().map(|r| r.metric).collect()
    };
    assert_eq!(names(T), vec!["node_load1".to_string()]);
    let mut app = db.appender();
    app.append_labels(&Labels::from_pairs([("__name__", "node_load5"), ("job", "node")]), T, 1.0).unwrap();
    app.commit().unwrap();
    // Within the TTL the cached resolution stands; after it the index is asked again.
    assert_eq!(names(T + RESOLVE_TTL_MS - 1), vec!["node_load1".to_string()]);
    assert_eq!(names(T + RESOLVE_TTL_MS), vec!["node_load1".to_string(), "node_load5".to_string()]);
    assert_eq!(rec.counters()["node_load1"], 3);
}

#[test]
fn info_reads_the_info_series_it_joins() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), DbOptions::default()).unwrap();
    let mut app = db.appender();
    let series: &[&[(&str, &str)]] = &[
        &[("__name__", "http_requests_total"), ("job", "api"), ("instance", "a")],
        &[("__name__", "target_info"), ("job", "api"), ("instance", "a"), ("cluster", "c1")],
        &[("__name__", "build_info"), ("job", "api"), ("instance", "a"), ("version", "1.2")],
        // Has a `version` label but is no info metric: info() never reads it.
        &[("__name__", "app_version"), ("job", "api"), ("instance", "a"), ("version", "x")],
    ];
    for s in series {
        for i in 0..10 {
            app.append_labels(&Labels::from_pairs(s.iter().copied()), T + i * 15_000, i as f64).unwrap();
        }
    }
    app.commit().unwrap();
    let strings = |v: &[&str]| -> Vec<String> { v.iter().map(|s| s.to_string()).collect() };
    // No data-label selector: target_info, joined on instance and job.
    let r = reads(&db, "info(rate(http_requests_total[5m]))");
    assert_eq!(names(&r), vec!["http_requests_total", "target_info"]);
    assert_eq!(r["target_info"], strings(&["instance", "job"]));
    assert_eq!(r["http_requests_total"], strings(&["instance", "job"]));
    // A data-label selector without a name still selects target_info, not every metric with
    // the label.
    let r = reads(&db, r#"info(rate(http_requests_total[5m]), {cluster=~".+"})"#);
    assert_eq!(names(&r), vec!["http_requests_total", "target_info"]);
    assert_eq!(r["target_info"], strings(&["cluster", "instance", "job"]));
    let r = reads(&db, r#"info(http_requests_total, {version=~".+"})"#);
    assert_eq!(names(&r), vec!["http_requests_total", "target_info"]);
    // A positive name matcher picks the info metrics it matches.
    let r = reads(&db, r#"info(http_requests_total, {__name__=~".+_info", version=~".+"})"#);
    assert_eq!(names(&r), vec!["build_info", "http_requests_total"]);
    // Only negative name matchers: the `.+_info` metrics they leave.
    let r = reads(&db, r#"info(http_requests_total, {__name__!="target_info", version=~".+"})"#);
    assert_eq!(names(&r), vec!["build_info", "http_requests_total"]);
    // The same bare selector outside info() still reads every metric it selects.
    let r = reads(&db, r#"count({version=~".+"}) + on() group_left info(http_requests_total, {version=~".+"})"#);
    assert_eq!(names(&r), vec!["app_version", "build_info", "http_requests_total", "target_info"]);
}
