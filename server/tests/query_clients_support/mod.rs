//! Helpers for `query_clients.rs`: external binaries (promtool, Prometheus, node-exporter),
//! the requests Grafana's Prometheus datasource makes, a fixed data set written through
//! remote-write, and a tolerant comparison of two Prometheus-API answers.
//!
//! What Grafana sends (grafana/grafana `pkg/promlib` and `public/app/plugins/datasource/
//! prometheus`): data queries go through its backend as POST with
//! `Content-Type: application/x-www-form-urlencoded` (the datasource's default HTTP method),
//! `time`/`start`/`end` as Unix seconds with decimals and `step` as float seconds, plus the
//! `X-Dashboard-Uid`, `X-Panel-Id`, `X-Grafana-Org-Id`, `X-Datasource-Uid` and
//! `X-Query-Group-Id` headers; the health check is the instant query `1+1` at time 4; label and
//! metric-name autocomplete call `/api/v1/labels`, `/api/v1/series` (POST) and
//! `/api/v1/label/<name>/values` (GET, names outside the legacy charset `U__`-escaped) with
//! whole-second `start`/`end`, `match[]` and `limit=40000`; the exemplar probe asks
//! `/api/v1/query_exemplars` with `start`/`end` in milliseconds (`dateTime().valueOf()`).

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::process::{Child, Command, Output};
use std::time::{SystemTime, UNIX_EPOCH};

use ingest::remote_write::{SeriesData, WriteRequestData};
use storage::{Metadata, MetricType};

use crate::common::{write, Hearth, Rw};

/// Kills the child on drop.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// True if `bin` is an executable file on `PATH`.
pub fn which(bin: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(bin).is_file()))
        .unwrap_or(false)
}

/// Prints a SKIPPED line and returns false if one of `bins` is not installed.
pub fn have_all(bins: &[&str]) -> bool {
    for bin in bins {
        if !which(bin) {
            println!("SKIPPED: {bin} not installed");
            return false;
        }
    }
    true
}

/// A free loopback port (bound then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Milliseconds since the epoch.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

/// A timestamp in ms as Unix seconds with decimals, as Go's
/// `strconv.FormatFloat(secs, 'f', -1, 64)` (Grafana's `formatTime`).
pub fn secs(t_ms: i64) -> String {
    let v = t_ms as f64 / 1000.0;
    format!("{v}")
}

/// The headers Grafana's backend adds to a dashboard panel's data query.
pub const GRAFANA_HEADERS: [(&str, &str); 6] = [
    ("User-Agent", "Grafana/11.3.0"),
    ("X-Dashboard-Uid", "hearth-e2e"),
    ("X-Panel-Id", "2"),
    ("X-Grafana-Org-Id", "1"),
    ("X-Datasource-Uid", "P1809F7CD0C75ACF3"),
    ("X-Query-Group-Id", "5b4f6c1e-8a77-4d0e-9d0c-1f2e3a4b5c6d"),
];

/// POSTs `form` form-encoded to `path` with Grafana's headers; status and JSON body.
pub fn grafana_post(c: &reqwest::blocking::Client, base: &str, path: &str, form: &[(&str, String)]) -> (u16, serde_json::Value) {
    let mut r = c.post(format!("{base}{path}")).form(form);
    for (k, v) in GRAFANA_HEADERS {
        r = r.header(k, v);
    }
    let r = r.send().expect("POST");
    let st = r.status().as_u16();
    (st, r.json().unwrap_or(serde_json::Value::Null))
}

/// GETs `path` with query `params` and Grafana's headers; status and JSON body.
pub fn grafana_get(c: &reqwest::blocking::Client, base: &str, path: &str, params: &[(&str, String)]) -> (u16, serde_json::Value) {
    let mut r = c.get(format!("{base}{path}")).query(params);
    for (k, v) in GRAFANA_HEADERS {
        r = r.header(k, v);
    }
    let r = r.send().expect("GET");
    let st = r.status().as_u16();
    (st, r.json().unwrap_or(serde_json::Value::Null))
}

/// The fixed data set's first sample time, ms: ten minutes ago on a whole 15 s.
pub fn dataset_t0(now_ms: i64) -> i64 {
    (now_ms - 11 * 60_000) / 15_000 * 15_000
}

/// Number of 15 s steps in the data set (ten minutes, both ends included).
pub const STEPS: i64 = 40;

/// Writes the fixed data set through remote-write 2.0 (with metadata and an exemplar):
///
/// - `qc_requests_total{job="api",instance="a:1",method="GET"}` = 10·k at `t0 + 15 s·k`,
///   `...{instance="b:1",method="POST"}` = 4·k (so `rate` is 2/3 and 4/15 per second);
/// - `qc_temperature_celsius{job="sensor",room="kitchen"|"cellar"}` = 20 + k mod 3 and 12;
/// - `qc_latency_seconds_bucket{job="api",le="0.1"|"0.5"|"+Inf"}` = 5·k, 9·k, 10·k, with
///   `_sum` and `_count`;
/// - `qc_build_info{job="api",version="1.2.3"}` = 1.
pub fn write_dataset(c: &reqwest::blocking::Client, h: &Hearth, t0: i64) {
    let counter = |labels: &[(&str, &str)], per_step: f64| {
        let mut s = SeriesData::new(labels.iter().copied());
        for k in 0..=STEPS {
            s = s.sample(t0 + k * 15_000, per_step * k as f64);
        }
        s
    };
    let md = |t: MetricType, help: &str, unit: &str| Metadata { metric_type: t, help: help.into(), unit: unit.into() };
    let mut series = vec![
        counter(&[("__name__", "qc_requests_total"), ("job", "api"), ("instance", "a:1"), ("method", "GET")], 10.0)
            .exemplar([("trace_id", "4bf92f3577b34da6")], 1.0, t0 + 15_000)
            .metadata(md(MetricType::Counter, "Requests served.", "")),
        counter(&[("__name__", "qc_requests_total"), ("job", "api"), ("instance", "b:1"), ("method", "POST")], 4.0)
            .metadata(md(MetricType::Counter, "Requests served.", "")),
        counter(&[("__name__", "qc_latency_seconds_bucket"), ("job", "api"), ("le", "0.1")], 5.0),
        counter(&[("__name__", "qc_latency_seconds_bucket"), ("job", "api"), ("le", "0.5")], 9.0),
        counter(&[("__name__", "qc_latency_seconds_bucket"), ("job", "api"), ("le", "+Inf")], 10.0),
        counter(&[("__name__", "qc_latency_seconds_sum"), ("job", "api")], 1.5),
        counter(&[("__name__", "qc_latency_seconds_count"), ("job", "api")], 10.0),
    ];
    let mut kitchen = SeriesData::new([("__name__", "qc_temperature_celsius"), ("job", "sensor"), ("room", "kitchen")])
        .metadata(md(MetricType::Gauge, "Room temperature.", "celsius"));
    let mut cellar = SeriesData::new([("__name__", "qc_temperature_celsius"), ("job", "sensor"), ("room", "cellar")]);
    let mut info = SeriesData::new([("__name__", "qc_build_info"), ("job", "api"), ("version", "1.2.3")]);
    for k in 0..=STEPS {
        kitchen = kitchen.sample(t0 + k * 15_000, 20.0 + (k % 3) as f64);
        cellar = cellar.sample(t0 + k * 15_000, 12.0);
        info = info.sample(t0 + k * 15_000, 1.0);
    }
    series.extend([kitchen, cellar, info]);
    let r = write(c, h, Rw::V2, &WriteRequestData { series, metadata: Vec::new() });
    assert_eq!(r.status(), 204, "{:?}", r.text());
}

/// Runs `promtool` with `args`; fails the test when it exits non-zero.
pub fn promtool(args: &[&str]) -> Output {
    let out = Command::new("promtool").args(args).output().expect("run promtool");
    assert!(
        out.status.success(),
        "promtool {args:?} failed: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A sample value as Prometheus spells it, parsed (`NaN`, `+Inf`, `-Inf` included).
pub fn parse_value(s: &str) -> f64 {
    match s {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        x => x.parse().unwrap_or_else(|_| panic!("not a sample value: {x:?}")),
    }
}

/// One series' points, `(t_ms, value)`.
pub type Points = Vec<(i64, f64)>;

/// A matrix or vector result indexed by the series' label set (`metric` as a sorted map).
pub fn index_result(result: &serde_json::Value) -> BTreeMap<String, Points> {
    let mut out = BTreeMap::new();
    for s in result.as_array().unwrap_or_else(|| panic!("result is not an array: {result}")) {
        let metric: BTreeMap<String, String> = serde_json::from_value(s["metric"].clone()).unwrap();
        let pts: Vec<&serde_json::Value> = match s.get("values") {
            Some(v) => v.as_array().unwrap().iter().collect(),
            None => vec![&s["value"]],
        };
        let pts = pts
            .into_iter()
            .map(|p| ((p[0].as_f64().unwrap() * 1000.0).round() as i64, parse_value(p[1].as_str().unwrap())))
            .collect();
        out.insert(format!("{metric:?}"), pts);
    }
    out
}

/// True if two values agree: both NaN, equal infinities, or within a relative (and, near
/// zero, absolute) tolerance of `tol`.
pub fn close(a: f64, b: f64, tol: f64) -> bool {
    if a.is_nan() || b.is_nan() {
        return a.is_nan() && b.is_nan();
    }
    if a.is_infinite() || b.is_infinite() {
        return a == b;
    }
    (a - b).abs() <= tol * a.abs().max(b.abs()).max(1.0)
}

/// Compares two indexed results: the same series, timestamps and (within `tol`) values.
/// Returns a description of the first difference.
pub fn diff(expected: &BTreeMap<String, Points>, got: &BTreeMap<String, Points>, tol: f64) -> Option<String> {
    let missing: Vec<&String> = expected.keys().filter(|k| !got.contains_key(*k)).take(3).collect();
    if !missing.is_empty() {
        return Some(format!("series missing: {missing:?}"));
    }
    let extra: Vec<&String> = got.keys().filter(|k| !expected.contains_key(*k)).take(3).collect();
    if !extra.is_empty() {
        return Some(format!("extra series: {extra:?}"));
    }
    for (k, e) in expected {
        let g = &got[k];
        let et: Vec<i64> = e.iter().map(|p| p.0).collect();
        let gt: Vec<i64> = g.iter().map(|p| p.0).collect();
        if et != gt {
            return Some(format!("timestamps differ for {k}: expected {et:?}, got {gt:?}"));
        }
        for (pe, pg) in e.iter().zip(g) {
            if !close(pe.1, pg.1, tol) {
                return Some(format!("value differs for {k} at {}: expected {}, got {}", pe.0, pe.1, pg.1));
            }
        }
    }
    None
}

/// A Prometheus scraping itself and a node-exporter every 2 s and remote-writing to Hearth.
pub struct PromPair {
    /// `http://127.0.0.1:port` of the Prometheus.
    pub prom: String,
    /// When Prometheus was started, ms.
    pub launched_ms: i64,
    log_path: std::path::PathBuf,
    _node: Proc,
    _prom: Proc,
}

impl PromPair {
    /// Starts node-exporter and Prometheus (data under `dir`), remote-writing to `hearth_addr`.
    pub fn start(dir: &std::path::Path, hearth_addr: &str) -> PromPair {
        use std::process::Stdio;
        let node_port = free_port();
        let node = Proc(
            Command::new("prometheus-node-exporter")
                .arg(format!("--web.listen-address=127.0.0.1:{node_port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn node-exporter"),
        );
        let prom_port = free_port();
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 2s\n  evaluation_interval: 2s\n\
                 scrape_configs:\n\
                 \x20 - job_name: prometheus\n    static_configs: [{{targets: ['127.0.0.1:{prom_port}']}}]\n\
                 \x20 - job_name: node\n    static_configs: [{{targets: ['127.0.0.1:{node_port}']}}]\n\
                 remote_write:\n\
                 \x20 - url: http://{hearth_addr}/api/v1/write\n    queue_config: {{batch_send_deadline: 1s, min_backoff: 100ms, max_backoff: 1s}}\n"
            ),
        )
        .unwrap();
        let log_path = dir.join("prometheus.log");
        let log = std::fs::File::create(&log_path).unwrap();
        let launched_ms = now_ms();
        let prom = Proc(
            Command::new("prometheus")
                .arg(format!("--config.file={}", config.display()))
                .arg(format!("--storage.tsdb.path={}", dir.join("prom-data").display()))
                .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("spawn prometheus"),
        );
        PromPair { prom: format!("http://127.0.0.1:{prom_port}"), launched_ms, log_path, _node: node, _prom: prom }
    }

    /// Prometheus' log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Waits (bounded by `limit`) until Prometheus has remote-written samples up to `t_ms`
    /// and none failed. (Its `samples_pending` gauge is not waited on: 2.42 can leave it
    /// stuck above zero; callers check completeness on the data itself.)
    pub fn wait_sent(&self, c: &reqwest::blocking::Client, t_ms: i64, limit: std::time::Duration) {
        let deadline = std::time::Instant::now() + limit;
        let mut last = (None, None);
        loop {
            let sent = self.scalar(c, "max(prometheus_remote_storage_queue_highest_sent_timestamp_seconds)");
            let pending = self.scalar(c, "sum(prometheus_remote_storage_samples_pending)");
            if (sent, pending) != last {
                eprintln!("waiting: highest sent {sent:?} s, pending {pending:?}, until {t_ms} ms");
                last = (sent, pending);
            }
            if let Some(sent) = sent {
                if sent * 1000.0 >= t_ms as f64 {
                    break;
                }
            }
            assert!(
                std::time::Instant::now() < deadline,
                "Prometheus did not send up to {t_ms} ms in time (highest sent {sent:?} s, pending {pending:?}); its log:\n{}",
                self.log()
            );
            std::thread::sleep(std::time::Duration::from_millis(250));
        }
        let failed = self.scalar(c, "sum(prometheus_remote_storage_samples_failed_total)").unwrap_or(0.0);
        assert_eq!(failed, 0.0, "Prometheus reports samples Hearth refused");
    }

    /// The first value of an instant query against Prometheus, or None while absent.
    pub fn scalar(&self, c: &reqwest::blocking::Client, q: &str) -> Option<f64> {
        let r = c.get(format!("{}/api/v1/query", self.prom)).query(&[("query", q)]).send().ok()?;
        let v: serde_json::Value = r.json().ok()?;
        v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
    }
}

/// An evaluation phase in `[0, period_ms)` as far as possible (circularly) from every sample
/// timestamp's phase, with that distance: evaluation times on this phase are never a whole
/// number of periods away from a sample, so whether a range window is closed on the left
/// (Prometheus 2.x) or open (3.x) cannot change which samples it holds.
pub fn phase_away_from(timestamps_ms: &[i64], period_ms: i64) -> (i64, i64) {
    let phases: Vec<i64> = timestamps_ms.iter().map(|t| t.rem_euclid(period_ms)).collect();
    let dist = |o: i64| {
        phases
            .iter()
            .map(|p| {
                let d = (o - p).rem_euclid(period_ms);
                d.min(period_ms - d)
            })
            .min()
            .unwrap_or(period_ms / 2)
    };
    (0..period_ms).map(|o| (o, dist(o))).max_by_key(|&(o, d)| (d, -o)).unwrap()
}
