//! Usage analytics through the real `hearth` binary: remote-write a known set of metrics, query
//! a subset over HTTP as a Grafana dashboard does (with its headers), load dashboards and rule
//! files referencing another subset from the configuration, and check that the unused-metrics
//! report lists exactly the rest with their series counts; read it as `hearth usage` prints it;
//! restart and check the recorded usage survived; and write references with `hearth analyze`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;

use common::{client, get_json, write, Hearth, Rw};
use ingest::remote_write::{SeriesData, WriteRequestData};

fn testdata() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata/usage")
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

/// metric -> series count; each series gets a `shard` label.
const METRICS: &[(&str, usize)] = &[
    ("node_cpu_seconds_total", 8),
    ("node_load1", 2),
    ("node_memory_MemFree_bytes", 2),
    ("node_disk_read_bytes_total", 2),
    ("node_disk_io_time_seconds_total", 2),
    ("http_requests_total", 2),
    ("build_info", 1),
    ("up", 3),
    ("process_open_fds", 1),
    ("process_max_fds", 1),
    ("go_goroutines", 2),
    ("unused_big_total", 10),
    ("unused_small", 3),
];

fn request(t0: i64) -> WriteRequestData {
    let mut series = Vec::new();
    for (name, n) in METRICS {
        for i in 0..*n {
            let mut s = SeriesData::new([("__name__", name.to_string()), ("job", "api".to_string()), ("shard", i.to_string())]);
            for k in 0..20 {
                s = s.sample(t0 + k * 15_000, k as f64);
            }
            series.push(s);
        }
    }
    WriteRequestData { series, ..Default::default() }
}

fn start(dir: &std::path::Path, config: &std::path::Path) -> Hearth {
    Hearth::start(dir, &[&format!("--config.file={}", config.display())])
}

fn unused(c: &reqwest::blocking::Client, h: &Hearth) -> BTreeMap<String, u64> {
    let (st, v) = get_json(c, h, "/api/v1/status/unused_metrics?window=1d");
    assert_eq!(st, 200, "{v}");
    v["data"]["unused"].as_array().unwrap().iter().map(|r| (r["metric"].as_str().unwrap().to_string(), r["series"].as_u64().unwrap())).collect()
}

fn queries(c: &reqwest::blocking::Client, h: &Hearth) -> BTreeMap<String, u64> {
    let (st, v) = get_json(c, h, "/api/v1/status/metric_usage?window=30d&sort=name");
    assert_eq!(st, 200, "{v}");
    v["data"]["metrics"].as_array().unwrap().iter().map(|r| (r["metric"].as_str().unwrap().to_string(), r["queries"].as_u64().unwrap())).collect()
}

#[test]
fn grafana_queries_and_dashboards_leave_exactly_the_rest_unused_across_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("hearth.yml");
    // Counters are exported hourly here, so the report's metric set is fixed during the test.
    let yaml = format!(
        "usage:\n  export_interval_seconds: 3600\n  grafana_dashboards: {:?}\n  rule_files: [{:?}]\n",
        testdata().join("dashboards"),
        testdata().join("rules/api.rules.yml")
    );
    std::fs::write(&config, yaml).unwrap();
    let data = dir.path().join("data");
    let c = client();
    let mut h = start(&data, &config);
    h.wait_ready(&c);
    let t0 = now_ms() - 20 * 15_000;
    let r = write(&c, &h, Rw::V1, &request(t0));
    assert_eq!(r.status(), 204);

    // A Grafana panel: an instant and a range query with the dashboard's headers.
    let t_s = (t0 + 19 * 15_000) as f64 / 1000.0;
    let grafana = |rb: reqwest::blocking::RequestBuilder, panel: &str| {
        rb.header("X-Dashboard-Uid", "cpu")
            .header("X-Panel-Id", panel)
            .header("X-Grafana-Org-Id", "1")
            .header("X-Grafana-User", "alice")
            .header("User-Agent", "Grafana/11.3.0")
    };
    let r = grafana(c.post(h.url("/api/v1/query")), "2")
        .form(&[("query", "sum by (job) (rate(node_cpu_seconds_total[5m]))".to_string()), ("time", t_s.to_string())])
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = grafana(c.post(h.url("/api/v1/query_range")), "3")
        .form(&[
            ("query", r#"{__name__=~"http_requests_total|build_info"}"#.to_string()),
            ("start", (t_s - 120.0).to_string()),
            ("end", t_s.to_string()),
            ("step", "15".to_string()),
        ])
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    // A dashboard variable `label_values(go_goroutines, shard)`, then autocomplete of every
    // metric name (reads none).
    let r = grafana(c.get(h.url("/api/v1/label/shard/values?match[]=go_goroutines")), "0").send().unwrap();
    assert_eq!(r.status(), 200);
    let r = grafana(c.get(h.url("/api/v1/label/__name__/values")), "0").send().unwrap();
    assert_eq!(r.status(), 200);

    // Recording runs on the usage worker after the responses; a report first waits until every
    // call answered before it is recorded, so no polling is needed.
    let q = queries(&c, &h);
    assert_eq!(
        (q["node_cpu_seconds_total"], q["http_requests_total"], q["build_info"], q["go_goroutines"]),
        (1, 1, 1, 1),
        "{q:?}"
    );
    // Series touched reach the report from each call: the rate over 8 series, the regex range
    // query over 2 + 1 series (the call's total, for each metric it read), and the dashboard
    // variable over the 2 series its match[] selects.
    let touched = |m: &str| -> (u64, u64) {
        let (_, v) = get_json(&c, &h, "/api/v1/status/metric_usage?window=1d&sort=name");
        let row = v["data"]["metrics"].as_array().unwrap().iter().find(|r| r["metric"] == m).unwrap().clone();
        (row["series_touched"].as_u64().unwrap(), row["samples_touched"].as_u64().unwrap())
    };
    let (series, samples) = touched("node_cpu_seconds_total");
    assert_eq!(series, 8);
    assert!(samples >= 8, "{samples}");
    assert_eq!(touched("http_requests_total").0, 3);
    assert_eq!(touched("build_info").0, 3);
    assert_eq!(touched("go_goroutines"), (2, 0));
    // The usage queue's counters are in Hearth's own exposition: every call above was queued
    // and recorded (the report waited for them), none dropped.
    let text = c.get(h.url("/metrics")).send().unwrap().text().unwrap();
    let counter = |name: &str| -> f64 {
        let line = text.lines().find(|l| l.starts_with(name) && l[name.len()..].starts_with(' ')).unwrap_or_else(|| panic!("{name} missing:\n{text}"));
        line[name.len()..].trim().parse().unwrap()
    };
    assert!(counter("hearth_usage_records_queued_total") > 0.0, "{text}");
    assert_eq!(counter("hearth_usage_records_queued_total"), counter("hearth_usage_records_total"));
    assert_eq!(counter("hearth_usage_records_dropped_total"), 0.0);
    let want: BTreeMap<String, u64> =
        [("unused_big_total", 10), ("unused_small", 3), ("node_disk_io_time_seconds_total", 2)].iter().map(|(k, n)| (k.to_string(), *n)).collect();
    assert_eq!(unused(&c, &h), want);
    let (_, v) = get_json(&c, &h, "/api/v1/status/metric_usage?sort=queries&limit=1");
    let row = &v["data"]["metrics"][0];
    assert_eq!(row["queries"], 1);
    let clients: Vec<&String> = row["clients"].as_object().unwrap().keys().collect();
    assert!(clients[0].starts_with("dashboard=cpu panel="), "{row}");
    let q = queries(&c, &h);
    assert_eq!(q.values().sum::<u64>(), 4, "the autocomplete call read nothing: {q:?}");

    // What `hearth usage` prints, read over HTTP from the running server.
    let args = |unused: bool, format: &str| server::usage::cli::UsageArgs {
        url: format!("http://{}", h.addr),
        window: "1d".into(),
        sort: "series".into(),
        limit: 5,
        unused,
        format: format.into(),
    };
    let text = server::usage::cli::usage_text(&args(true, "table")).unwrap();
    let first: Vec<&str> = text.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(&first[..3], &["unused_big_total", "unused", "10"], "{text}");
    assert!(text.contains("unused in 1d: 3 metrics, 15 series"), "{text}");
    assert!(text.contains("  regex: 'unused_big_total|unused_small|node_disk_io_time_seconds_total'"), "{text}");
    let text = server::usage::cli::usage_text(&args(false, "table")).unwrap();
    assert_eq!(text.lines().count(), 1 + 5 + 2, "{text}");
    assert!(text.ends_with("5 of 13 metrics, window 1d\n"), "{text}");
    let csv = server::usage::cli::usage_text(&args(true, "csv")).unwrap();
    assert!(csv.starts_with("metric,status,series,"), "{csv}");
    assert_eq!(csv.lines().count(), 4, "{csv}");

    // The `hearth usage` subcommand prints the same.
    let out = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(["usage", "--unused", "--window", "1d", "--url", &format!("http://{}", h.addr)])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8(out.stdout).unwrap(), server::usage::cli::usage_text(&args(true, "table")).unwrap());

    // Restart: the usage recorded survives.
    assert_eq!(h.terminate(), Some(0));
    let h = start(&data, &config);
    h.wait_ready(&c);
    let q = queries(&c, &h);
    assert_eq!((q["node_cpu_seconds_total"], q["http_requests_total"], q["build_info"], q["go_goroutines"]), (1, 1, 1, 1));
    assert_eq!(unused(&c, &h), want);
    drop(h);

    // `hearth analyze` writes static_refs.json for the server to load.
    let usage_dir = dir.path().join("refs");
    let out = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .arg("analyze")
        .arg("--grafana-dashboards")
        .arg(testdata().join("dashboards"))
        .arg("--rules")
        .arg(testdata().join("rules/api.rules.yml"))
        .arg("--usage-dir")
        .arg(&usage_dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("3 files, 7 metrics referenced"), "{text}");
    let refs: serde_json::Value = serde_json::from_slice(&std::fs::read(usage_dir.join("static_refs.json")).unwrap()).unwrap();
    let files: BTreeSet<&str> = refs["files"].as_array().unwrap().iter().map(|f| f["kind"].as_str().unwrap()).collect();
    assert_eq!(files, BTreeSet::from(["dashboard", "rules"]));

    // References written by `hearth analyze` into the server's usage directory count as used
    // without any dashboard in the configuration: here only the rule file's.
    let out = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .arg("analyze")
        .arg("--rules")
        .arg(testdata().join("rules/api.rules.yml"))
        .arg("--usage-dir")
        .arg(data.join("usage"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    std::fs::write(&config, "usage:\n  export_interval_seconds: 3600\n").unwrap();
    let h = start(&data, &config);
    h.wait_ready(&c);
    let want: BTreeMap<String, u64> = [
        ("unused_big_total", 10),
        ("unused_small", 3),
        ("node_disk_io_time_seconds_total", 2),
        ("node_disk_read_bytes_total", 2),
        ("node_load1", 2),
        ("node_memory_MemFree_bytes", 2),
    ]
    .iter()
    .map(|(k, n)| (k.to_string(), *n))
    .collect();
    assert_eq!(unused(&c, &h), want);
}
