//! The usage reports end to end, in process: remote-write requests (built with ingest's
//! encoder) into a real database, queries evaluated by the engine and recorded with Grafana's
//! headers exactly as the query handlers do, the dashboards and rule files of
//! `testdata/usage` analysed, then the HTTP reports (JSON and CSV) checked: exactly the metrics
//! neither queried nor referenced are unused, with their series counts. The database and the
//! usage store are then closed and reopened: the usage survives.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Request};
use ingest::remote_write::encode::encode_v2;
use ingest::remote_write::{Decoder, Limits, SeriesData, WriteRequestData, CONTENT_TYPE_V2};
use query::source::QuerierSource;
use query::{Engine, EngineOptions};
use server::backend::{ingest_request, WriteInput};
use server::usage::recorder::{CallInput, CallStats, Caller};
use server::usage::{http, UsageConfig, UsageService};
use storage::db::{Db, DbOptions};
use storage::usage::ReadKind;
use storage::Matcher;
use tower::ServiceExt;

fn testdata() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata/usage")
}

fn config() -> UsageConfig {
    UsageConfig {
        grafana_dashboards: Some(testdata().join("dashboards")),
        rule_files: vec![testdata().join("rules/api.rules.yml")],
        ..UsageConfig::default()
    }
}

/// The labels of one series besides `__name__`.
type LabelSet = Vec<(&'static str, String)>;

/// (metric, label sets): one series per label set.
fn dataset() -> Vec<(&'static str, Vec<LabelSet>)> {
    let n = |k: &'static str, count: usize| -> Vec<LabelSet> { (0..count).map(|i| vec![(k, i.to_string())]).collect() };
    let mut cpu = Vec::new();
    for inst in ["a", "b"] {
        for mode in ["idle", "user", "system", "iowait"] {
            cpu.push(vec![("instance", inst.to_string()), ("mode", mode.to_string()), ("job", "node".to_string())]);
        }
    }
    vec![
        ("node_cpu_seconds_total", cpu),
        ("node_load1", n("instance", 2)),
        ("node_memory_MemFree_bytes", n("instance", 2)),
        ("node_disk_read_bytes_total", n("device", 2)),
        ("node_disk_written_bytes_total", n("device", 2)),
        ("node_disk_io_time_seconds_total", n("device", 2)),
        ("http_requests_total", vec![vec![("job", "api".into()), ("code", "200".into())], vec![("job", "api".into()), ("code", "500".into())]]),
        ("build_info", vec![vec![("job", "api".into()), ("instance", "a".into()), ("version", "1.0".into())]]),
        ("up", n("instance", 3)),
        ("process_open_fds", n("instance", 1)),
        ("process_max_fds", n("instance", 1)),
        ("go_goroutines", n("instance", 2)),
        ("unused_big_total", n("shard", 10)),
        ("unused_small", n("shard", 3)),
    ]
}

const STEP_MS: i64 = 15_000;
const POINTS: i64 = 40;

fn ingest(db: &Db, t0: i64) {
    let mut series = Vec::new();
    for (name, sets) in dataset() {
        for set in sets {
            let mut labels: Vec<(String, String)> = vec![("__name__".into(), name.into())];
            labels.extend(set.into_iter().map(|(k, v)| (k.to_string(), v)));
            let mut s = SeriesData::new(labels);
            for i in 0..POINTS {
                s = s.sample(t0 + i * STEP_MS, i as f64);
            }
            series.push(s);
        }
    }
    let body = encode_v2(&WriteRequestData { series, ..Default::default() });
    let input = WriteInput { content_type: Some(CONTENT_TYPE_V2), content_encoding: Some("snappy"), body: &body, now_ms: t0 + POINTS * STEP_MS };
    let out = ingest_request(db.appender(), &mut Decoder::new(), input, &Limits::default()).unwrap();
    assert_eq!(out.report.http_status(), 204);
}

fn grafana(dashboard: &str, panel: &str) -> Caller {
    let mut h = HeaderMap::new();
    h.insert("x-dashboard-uid", HeaderValue::from_str(dashboard).unwrap());
    h.insert("x-panel-id", HeaderValue::from_str(panel).unwrap());
    h.insert("x-grafana-org-id", HeaderValue::from_static("1"));
    h.insert("x-grafana-user", HeaderValue::from_static("alice"));
    h.insert("user-agent", HeaderValue::from_static("Grafana/11.3.0"));
    Caller::from_headers(&h, None)
}

/// Evaluates `q` at `t_ms` and records it, as the instant-query handler does.
fn query(svc: &UsageService, q: &str, t_ms: i64, caller: &Caller) {
    let db = svc.db();
    let querier = db.querier();
    let r = Engine::new(EngineOptions::default()).instant_query_source(&QuerierSource(&querier), q, t_ms, None).unwrap();
    let stats = CallStats { series: 0, samples: r.total_samples, duration_us: 10 };
    let ev = svc.recorder().record(&querier, ReadKind::InstantQuery, CallInput::Text(q), t_ms - 300_000, t_ms, server::usage::now_ms(), caller, stats);
    assert!(!ev.reads.is_empty(), "{q} read nothing");
}

async fn get(slot: &http::UsageSlot, uri: &str) -> (u16, String) {
    let r = http::routes::<()>(slot.clone()).oneshot(Request::get(uri).body(Body::empty()).unwrap()).await.unwrap();
    let status = r.status().as_u16();
    let b = axum::body::to_bytes(r.into_body(), 1 << 24).await.unwrap();
    (status, String::from_utf8(b.to_vec()).unwrap())
}

fn unused_of(v: &serde_json::Value) -> BTreeMap<String, u64> {
    v["data"]["unused"].as_array().unwrap().iter().map(|r| (r["metric"].as_str().unwrap().to_string(), r["series"].as_u64().unwrap())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_mark_exactly_the_unread_unreferenced_metrics_unused_and_survive_restart() {
    let dir = tempfile::tempdir().unwrap();
    let now = server::usage::now_ms();
    let t0 = now - POINTS * STEP_MS;
    let db = Db::open(dir.path(), DbOptions::default()).unwrap();
    ingest(&db, t0);
    let svc = Arc::new(UsageService::open(db.clone(), &config(), now).unwrap());
    let slot: http::UsageSlot = Arc::new(OnceLock::new());
    let (status, _) = get(&slot, "/api/v1/status/unused_metrics").await;
    assert_eq!(status, 503, "not ready before the service is published");
    slot.set(Arc::clone(&svc)).ok().unwrap();

    // A Grafana dashboard's panels (already substituted by Grafana) and its variable.
    let t = t0 + (POINTS - 1) * STEP_MS;
    let cpu = grafana("cpu-dash", "2");
    query(&svc, r#"sum by (mode) (rate(node_cpu_seconds_total{job="node"}[5m]))"#, t, &cpu);
    query(&svc, r#"sum by (mode) (rate(node_cpu_seconds_total{job="node"}[5m]))"#, t, &grafana("cpu-dash", "3"));
    query(&svc, r#"rate(http_requests_total[5m]) * on(job) group_left(version) build_info"#, t, &cpu);
    // The dashboard variable `label_values(go_goroutines, instance)`: a label-values call
    // with match[] reads the metric; listing all names (autocomplete) reads none.
    let q = db.querier();
    let sets = vec![vec![Matcher::equal("__name__", "go_goroutines")]];
    let ev = svc.recorder().record(&q, ReadKind::LabelValues, CallInput::Matchers(&sets), i64::MIN, i64::MAX, now, &cpu, CallStats::default());
    assert_eq!(ev.reads.len(), 1);
    let ev = svc.recorder().record(&q, ReadKind::LabelValues, CallInput::Matchers(&[]), i64::MIN, i64::MAX, now, &cpu, CallStats::default());
    assert!(ev.reads.is_empty());
    svc.flush(now).unwrap();
    svc.export_counters(now).unwrap();

    let (status, body) = get(&slot, "/api/v1/status/unused_metrics?window=1d").await;
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"], "success");
    let unused = unused_of(&v);
    // The four metrics read above each have one hearth_metric_queries_total series.
    let want: BTreeMap<String, u64> = [
        ("unused_big_total", 10),
        ("unused_small", 3),
        ("node_disk_io_time_seconds_total", 2),
        ("hearth_metric_queries_total", 4),
    ]
    .iter()
    .map(|(k, n)| (k.to_string(), *n))
    .collect();
    assert_eq!(unused, want, "{body}");
    // Ordered by cost: series first.
    let order: Vec<&str> = v["data"]["unused"].as_array().unwrap().iter().map(|r| r["metric"].as_str().unwrap()).collect();
    assert_eq!(&order[..2], &["unused_big_total", "hearth_metric_queries_total"]);
    assert_eq!(v["data"]["total"]["series"], 19);
    assert_eq!(v["data"]["total"]["metrics"], 4);
    let snippet = v["data"]["write_relabel_configs"].as_str().unwrap();
    assert!(snippet.starts_with("- source_labels: [__name__]\n  regex: 'unused_big_total|hearth_metric_queries_total|"), "{snippet}");
    assert!(snippet.ends_with("'\n  action: drop\n"), "{snippet}");
    // node_cpu_seconds_total was read by mode and job only: instance could be aggregated away.
    let partial: BTreeMap<String, Vec<String>> = v["data"]["partially_used"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["metric"].as_str().unwrap().to_string(), p["unused_labels"].as_array().unwrap().iter().map(|l| l.as_str().unwrap().to_string()).collect()))
        .collect();
    assert_eq!(partial["node_cpu_seconds_total"], vec!["instance".to_string()]);
    assert_eq!(partial["http_requests_total"], vec!["code".to_string()]);

    // The per-metric report: series, samples/s, bytes, queries, clients, static references.
    let (status, body) = get(&slot, "/api/v1/status/metric_usage?window=30d&sort=queries").await;
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let rows = v["data"]["metrics"].as_array().unwrap();
    assert_eq!(v["data"]["total"], 15);
    assert_eq!(rows[0]["metric"], "node_cpu_seconds_total");
    let cpu_row = &rows[0];
    assert_eq!(cpu_row["queries"], 2);
    assert_eq!(cpu_row["series"], 8);
    // The exported counters made `now` the head's newest time; the last 300 s before it hold
    // 19 samples per series (15 s apart, the newest at now - 15 s): 8 × 19 / 300.
    assert_eq!(cpu_row["samples_per_second"].as_f64().unwrap(), 0.507);
    assert!(cpu_row["bytes"].as_u64().unwrap() > 0);
    let clients: BTreeSet<&str> = cpu_row["clients"].as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(clients, BTreeSet::from(["dashboard=cpu-dash panel=2 org=1 user=alice", "dashboard=cpu-dash panel=3 org=1 user=alice"]));
    assert_eq!(cpu_row["static_reference"], false);
    let by_name: BTreeMap<&str, &serde_json::Value> = rows.iter().map(|r| (r["metric"].as_str().unwrap(), r)).collect();
    for m in ["node_load1", "node_memory_MemFree_bytes", "node_disk_read_bytes_total", "up", "process_max_fds"] {
        assert_eq!(by_name[m]["static_reference"], true, "{m}");
        assert_eq!(by_name[m]["status"], "used", "{m}");
    }
    assert_eq!(by_name["go_goroutines"]["queries"], 1);
    // Paging and CSV.
    let (_, body) = get(&slot, "/api/v1/status/metric_usage?sort=name&limit=2&offset=1").await;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let names: Vec<&str> = v["data"]["metrics"].as_array().unwrap().iter().map(|r| r["metric"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["go_goroutines", "hearth_metric_queries_total"]);
    let (status, csv) = get(&slot, "/api/v1/status/unused_metrics?window=1d&format=csv").await;
    assert_eq!(status, 200);
    assert_eq!(csv.lines().count(), 5, "{csv}");
    assert!(csv.lines().nth(1).unwrap().starts_with("unused_big_total,unused,10,"), "{csv}");
    let (status, body) = get(&slot, "/api/v1/status/metric_usage?sort=colour").await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("bad_data"), "{body}");

    // Restart: the usage survives.
    svc.close(now).unwrap();
    drop(slot);
    drop(svc);
    db.close().unwrap();
    drop(db);
    let db = Db::open(dir.path(), DbOptions::default()).unwrap();
    let svc = UsageService::open(db.clone(), &config(), server::usage::now_ms()).unwrap();
    let rows = svc.rows(30 * 86_400_000, server::usage::now_ms()).unwrap();
    let q: BTreeMap<&str, u64> = rows.iter().map(|r| (r.metric.as_str(), r.queries)).collect();
    assert_eq!(q["node_cpu_seconds_total"], 2);
    assert_eq!(q["http_requests_total"], 1);
    assert_eq!(q["build_info"], 1);
    assert_eq!(q["go_goroutines"], 1);
    let unused: BTreeSet<&str> = rows.iter().filter(|r| r.status == server::usage::report::Status::Unused).map(|r| r.metric.as_str()).collect();
    assert_eq!(unused, BTreeSet::from(["unused_big_total", "unused_small", "node_disk_io_time_seconds_total", "hearth_metric_queries_total"]));
    svc.close(server::usage::now_ms()).unwrap();
    db.close().unwrap();
}

#[test]
fn static_analysis_of_the_fixtures() {
    let args = server::usage::cli::AnalyzeArgs {
        grafana_dashboards: vec![testdata().join("dashboards")],
        rules: vec![testdata().join("rules/api.rules.yml")],
        usage_dir: PathBuf::new(),
        dry_run: true,
    };
    let refs = server::usage::cli::analyze_all(&args).unwrap();
    assert_eq!(refs.files.len(), 3);
    let metrics: Vec<String> = refs.metrics().into_iter().collect();
    assert_eq!(
        metrics,
        ["build_info", "http_requests_total", "node_load1", "node_memory_MemFree_bytes", "process_max_fds", "process_open_fds", "up"]
    );
    let node = refs.files.iter().find(|f| f.path.ends_with("node.json")).unwrap();
    assert_eq!(node.title, "Node overview");
    // The query_result with unbalanced parentheses, and a metric named by a variable.
    assert_eq!(node.errors.len(), 2, "{:?}", node.errors);
    assert!(node.errors.iter().any(|e| e.contains("variable broken")), "{:?}", node.errors);
    assert!(node.errors.iter().any(|e| e.contains("depends on a dashboard variable")), "{:?}", node.errors);
    assert_eq!(node.open_selectors[0].matchers, vec![("__name__".to_string(), "=~".to_string(), ".*(?:node_disk_.*_bytes_total).*".to_string())]);
    let mut out = Vec::new();
    server::usage::cli::print_refs(&mut out, &refs).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(text.ends_with("3 files, 7 metrics referenced, 1 selectors resolved at report time, 2 problems\n"), "{text}");

    // Persisted and read back whole.
    let dir = tempfile::tempdir().unwrap();
    refs.save(dir.path()).unwrap();
    assert_eq!(server::usage::analyze::StaticRefs::load(dir.path()).unwrap(), Some(refs));
}
