//! Real clients of the Prometheus HTTP query API against the `hearth` binary:
//!
//! - every request Grafana's Prometheus datasource makes, with the headers and parameter
//!   forms it sends (see `query_clients_support` for where each comes from);
//! - the API's envelope, status codes, parameter forms and limits, as Prometheus 3.x
//!   (`web/api/v1/api.go`) answers them;
//! - Debian's `promtool query instant|range|series|labels`;
//! - a real Prometheus remote-writing to Hearth, and the same dashboard-style PromQL answered
//!   by both over a finished time range.
//!
//! Tests that need a binary print `SKIPPED: ...` and pass when it is absent.

mod common;
mod query_clients_support;

use std::process::Command;

use serde_json::json;

use common::{client, Hearth};
use query_clients_support::{
    dataset_t0, diff, grafana_get, grafana_post, index_result, now_ms, promtool, secs, write_dataset, STEPS,
};

/// A ready Hearth (data in `dir/data`) holding the fixed data set; returns it with the data
/// set's `t0` (ms). Usage analytics are off, so that Hearth's own
/// `hearth_metric_queries_total` series cannot appear in the exact answers checked here.
fn hearth_with_dataset(dir: &std::path::Path, extra: &[&str]) -> (Hearth, reqwest::blocking::Client, i64) {
    let c = client();
    let config = dir.join("hearth.yml");
    std::fs::write(&config, "usage:\n  enabled: false\n").unwrap();
    let mut args = vec![format!("--config.file={}", config.display())];
    args.extend(extra.iter().map(|a| a.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let h = Hearth::start(&dir.join("data"), &args);
    h.wait_ready(&c);
    let t0 = dataset_t0(now_ms());
    write_dataset(&c, &h, t0);
    (h, c, t0)
}

fn strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn grafana_datasource_requests() {
    let dir = tempfile::tempdir().unwrap();
    let (h, c, t0) = hearth_with_dataset(dir.path(), &[]);
    let base = h.url("");
    let end_ms = t0 + STEPS * 15_000;
    // Grafana's autocomplete sends whole seconds of the dashboard's time range.
    let (start_s, end_s) = ((t0 / 1000 - 60).to_string(), (end_ms / 1000 + 60).to_string());

    // Settings page: build info gates the newer APIs on version >= 2.24.0.
    let (st, v) = grafana_get(&c, &base, "/api/v1/status/buildinfo", &[]);
    assert_eq!(st, 200);
    let version = v["data"]["version"].as_str().unwrap();
    let parts: Vec<u32> = version.split('.').map(|p| p.parse().unwrap()).collect();
    assert!(parts >= vec![2, 24, 0], "{version}");
    assert!(v["data"].get("features").is_none(), "{v}");

    // Health check: instant query `1+1` at time 4, POSTed as a form.
    let (st, v) = grafana_post(&c, &base, "/api/v1/query", &[("query", "1+1".into()), ("time", "4".into())]);
    assert_eq!(st, 200);
    assert_eq!(v, json!({"status": "success", "data": {"resultType": "scalar", "result": [4, "2"]}}));

    // Exemplar probe: `query=test`, start/end in milliseconds.
    let now = now_ms();
    let (st, v) = grafana_get(
        &c,
        &base,
        "/api/v1/query_exemplars",
        &[("query", "test".into()), ("start", (now - 30 * 60_000).to_string()), ("end", now.to_string())],
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["status"], "success");

    // Metric-name autocomplete.
    let range = [("start", start_s.clone()), ("end", end_s.clone())];
    let (st, v) = grafana_get(&c, &base, "/api/v1/label/__name__/values", &range);
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        strings(&v["data"]),
        [
            "qc_build_info",
            "qc_latency_seconds_bucket",
            "qc_latency_seconds_count",
            "qc_latency_seconds_sum",
            "qc_requests_total",
            "qc_temperature_celsius"
        ]
    );
    let (st, v) = grafana_get(
        &c,
        &base,
        "/api/v1/label/__name__/values",
        &[("match[]", "{__name__=~\".*requests.*\"}".into()), ("start", start_s.clone()), ("end", end_s.clone()), ("limit", "40000".into())],
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(strings(&v["data"]), ["qc_requests_total"]);

    // Label-name autocomplete, POSTed with and without a selector.
    let (st, v) = grafana_post(&c, &base, "/api/v1/labels", &range);
    assert_eq!(st, 200, "{v}");
    assert_eq!(strings(&v["data"]), ["__name__", "instance", "job", "le", "method", "room", "version"]);
    let (st, v) = grafana_post(
        &c,
        &base,
        "/api/v1/labels",
        &[("match[]", "qc_temperature_celsius".into()), ("start", start_s.clone()), ("end", end_s.clone())],
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(strings(&v["data"]), ["__name__", "job", "room"]);

    // Label values for a chosen metric (the query builder's value list).
    let (st, v) = grafana_get(
        &c,
        &base,
        "/api/v1/label/method/values",
        &[("match[]", "qc_requests_total{job=\"api\"}".into()), ("start", start_s.clone()), ("end", end_s.clone())],
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(strings(&v["data"]), ["GET", "POST"]);
    // A legacy name may still arrive `U__`-escaped.
    let (st, v) = grafana_get(&c, &base, "/api/v1/label/U__room/values", &range);
    assert_eq!(st, 200, "{v}");
    assert_eq!(strings(&v["data"]), ["cellar", "kitchen"]);

    // Series lookup for a selector, POSTed with Grafana's series limit.
    let (st, v) = grafana_post(
        &c,
        &base,
        "/api/v1/series",
        &[("match[]", "qc_requests_total".into()), ("start", start_s.clone()), ("end", end_s.clone()), ("limit", "40000".into())],
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        v["data"],
        json!([
            {"__name__": "qc_requests_total", "instance": "a:1", "job": "api", "method": "GET"},
            {"__name__": "qc_requests_total", "instance": "b:1", "job": "api", "method": "POST"}
        ])
    );

    // Metadata for the metrics browser and hover help.
    let (st, v) = grafana_get(&c, &base, "/api/v1/metadata", &[]);
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["data"]["qc_requests_total"], json!([{"type": "counter", "help": "Requests served.", "unit": ""}]));
    assert_eq!(
        v["data"]["qc_temperature_celsius"],
        json!([{"type": "gauge", "help": "Room temperature.", "unit": "celsius"}])
    );
    let (st, v) = grafana_get(&c, &base, "/api/v1/metadata", &[("metric", "qc_requests_total".into())]);
    assert_eq!(st, 200);
    assert_eq!(v["data"].as_object().unwrap().len(), 1, "{v}");

    // A dashboard panel: range query with Grafana's aligned start and float step, POSTed.
    let step_ms = 15_000;
    let (pstart, pend) = (t0 + 20 * step_ms, end_ms);
    let (st, v) = grafana_post(
        &c,
        &base,
        "/api/v1/query_range",
        &[
            ("query", "sum by (method) (rate(qc_requests_total{job=\"api\"}[1m]))".into()),
            ("start", secs(pstart)),
            ("end", secs(pend)),
            ("step", "15".into()),
        ],
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["data"]["resultType"], "matrix");
    let got = index_result(&v["data"]["result"]);
    let mut expected = std::collections::BTreeMap::new();
    for (method, slope) in [("GET", 10.0 / 15.0), ("POST", 4.0 / 15.0)] {
        let pts = (0..=20).map(|k| (pstart + k * step_ms, slope)).collect();
        expected.insert(format!("{:?}", std::collections::BTreeMap::from([("method".to_string(), method.to_string())])), pts);
    }
    assert_eq!(diff(&expected, &got, 1e-9), None, "{v}");

    // The same panel as an instant query (table view), and the exemplars it asks for.
    let (st, v) = grafana_post(
        &c,
        &base,
        "/api/v1/query",
        &[("query", "sum(qc_temperature_celsius) by (room)".into()), ("time", secs(end_ms))],
    );
    assert_eq!(st, 200);
    assert_eq!(
        v["data"],
        json!({"resultType": "vector", "result": [
            {"metric": {"room": "cellar"}, "value": [end_ms / 1000, "12"]},
            {"metric": {"room": "kitchen"}, "value": [end_ms / 1000, (20 + STEPS % 3).to_string()]}
        ]})
    );
    let (st, v) = grafana_post(
        &c,
        &base,
        "/api/v1/query_exemplars",
        &[("query", "rate(qc_requests_total[1m])".into()), ("start", secs(t0)), ("end", secs(end_ms))],
    );
    assert_eq!(st, 200);
    assert_eq!(
        v["data"],
        json!([{"seriesLabels": {"__name__": "qc_requests_total", "instance": "a:1", "job": "api", "method": "GET"},
            "exemplars": [{"labels": {"trace_id": "4bf92f3577b34da6"}, "value": "1", "timestamp": (t0 + 15_000) / 1000}]}])
    );
}

/// Status, parsed body and content type of a request.
fn send(r: reqwest::blocking::RequestBuilder) -> (u16, serde_json::Value, String) {
    let r = r.send().expect("request");
    let st = r.status().as_u16();
    let ct = r.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    (st, r.json().unwrap_or(serde_json::Value::Null), ct)
}

/// The object's keys, sorted.
fn keys(v: &serde_json::Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().unwrap_or_else(|| panic!("not an object: {v}")).keys().cloned().collect();
    k.sort();
    k
}

/// Asserts a Prometheus error envelope: status code, `errorType`, and nothing but
/// `status`, `errorType`, `error`.
#[track_caller]
fn assert_error(got: (u16, serde_json::Value, String), status: u16, error_type: &str) {
    let (st, v, ct) = got;
    assert_eq!(st, status, "{v}");
    assert!(ct.starts_with("application/json"), "{ct}");
    assert_eq!(keys(&v), ["error", "errorType", "status"], "{v}");
    assert_eq!(v["status"], "error");
    assert_eq!(v["errorType"], error_type, "{v}");
    assert!(!v["error"].as_str().unwrap().is_empty());
}

#[test]
fn api_envelope_status_codes_and_parameter_forms() {
    let dir = tempfile::tempdir().unwrap();
    let (h, c, t0) = hearth_with_dataset(dir.path(), &[]);
    let end_ms = t0 + STEPS * 15_000;
    let q = |params: &[(&str, String)]| send(c.get(h.url("/api/v1/query")).query(params));
    let qr = |params: &[(&str, String)]| send(c.post(h.url("/api/v1/query_range")).form(params));

    // Success envelope: only `status` and `data` when there are no annotations.
    let (st, v, ct) = q(&[("query", "qc_build_info".into()), ("time", secs(end_ms))]);
    assert_eq!(st, 200);
    assert!(ct.starts_with("application/json"), "{ct}");
    assert_eq!(keys(&v), ["data", "status"]);
    assert_eq!(v["data"]["result"][0]["value"], json!([end_ms / 1000, "1"]));

    // Timestamps: Unix seconds with decimals and RFC 3339 (Z and offsets) are the same instant.
    let t = t0 + 300_500;
    let rfc = |ms: i64| {
        let (s, frac) = (ms.div_euclid(1000), ms.rem_euclid(1000));
        let out = Command::new("date").args(["-u", "-d", &format!("@{s}"), "+%Y-%m-%dT%H:%M:%S"]).output().unwrap();
        format!("{}.{frac:03}Z", String::from_utf8(out.stdout).unwrap().trim())
    };
    let as_secs = q(&[("query", "time()".into()), ("time", secs(t))]).1;
    assert_eq!(as_secs["data"]["result"], json!([t as f64 / 1000.0, format!("{}", t as f64 / 1000.0)]));
    assert_eq!(q(&[("query", "time()".into()), ("time", rfc(t))]).1, as_secs);
    let with_offset = rfc(t + 2 * 3_600_000).replace('Z', "+02:00");
    assert_eq!(q(&[("query", "time()".into()), ("time", with_offset)]).1, as_secs);

    // Durations: `5m`-style and float seconds.
    let form = |step: &str| {
        vec![("query", "qc_build_info".to_string()), ("start", secs(t0)), ("end", secs(end_ms)), ("step", step.to_string())]
    };
    let by_float = qr(&form("90")).1;
    assert_eq!(by_float["data"]["result"][0]["values"].as_array().unwrap().len(), 7, "{by_float}");
    assert_eq!(qr(&form("1m30s")).1, by_float);
    assert_eq!(qr(&form("90.0")).1, by_float);
    // GET and POST give the same answer; a POST body wins over the URL's query string.
    assert_eq!(send(c.get(h.url("/api/v1/query_range")).query(&form("90"))).1, by_float);
    let (_, v, _) = send(c.post(h.url("/api/v1/query?query=1")).form(&[("query", "2"), ("time", "10")]));
    assert_eq!(v["data"]["result"], json!([10, "2"]));

    // Step and resolution limits (400 bad_data): 11,000 steps pass, one more is refused.
    let range = |start: &str, end: &str, step: &str| {
        qr(&[("query", "1".into()), ("start", start.into()), ("end", end.into()), ("step", step.into())])
    };
    let (st, v, _) = range("0", "11000", "1");
    assert_eq!(st, 200);
    assert_eq!(v["data"]["result"][0]["values"].as_array().unwrap().len(), 11_001);
    assert_error(range("0", "11001", "1"), 400, "bad_data");
    assert_error(range("0", "10", "0"), 400, "bad_data");
    assert_error(range("0", "10", "-1"), 400, "bad_data");
    assert_error(range("0", "10", ""), 400, "bad_data");
    assert_error(range("0", "10", "fast"), 400, "bad_data");
    assert_error(range("10", "0", "1"), 400, "bad_data");
    assert_error(range("", "10", "1"), 400, "bad_data");
    assert_error(range("yesterday", "10", "1"), 400, "bad_data");

    // Bad queries and parameters: 400 bad_data.
    assert_error(q(&[("query", "sum(".into())]), 400, "bad_data");
    assert_error(q(&[("query", "".into())]), 400, "bad_data");
    assert_error(q(&[("query", "1".into()), ("time", "noon".into())]), 400, "bad_data");
    assert_error(q(&[("query", "1".into()), ("timeout", "soon".into())]), 400, "bad_data");
    assert_error(send(c.get(h.url("/api/v1/series"))), 400, "bad_data");
    assert_error(send(c.get(h.url("/api/v1/series")).query(&[("match[]", "{job=~\".*\"}")])), 400, "bad_data");
    assert_error(send(c.get(h.url("/api/v1/series")).query(&[("match[]", "rate(x[5m])")])), 400, "bad_data");
    assert_error(send(c.get(h.url("/api/v1/labels")).query(&[("limit", "-1")])), 400, "bad_data");
    assert_error(send(c.get(h.url("/api/v1/format_query")).query(&[("query", "sum(")])), 400, "bad_data");
    assert_error(
        send(c.get(h.url("/api/v1/query_exemplars")).query(&[("query", "qc_requests_total"), ("start", "10"), ("end", "5")])),
        400,
        "bad_data",
    );

    // Execution errors: 422 (two series that differ only in their name, once `rate` drops it).
    assert_error(
        q(&[("query", "rate({__name__=~\"qc_latency_seconds_(sum|count)\"}[1m])".into()), ("time", secs(end_ms))]),
        422,
        "execution",
    );

    // Annotations: `infos` for rate() of a gauge-named metric, `warnings` for buckets
    // without `le`; both as arrays of strings next to `data`.
    let (st, v, _) = q(&[("query", "rate(qc_temperature_celsius[1m])".into()), ("time", secs(end_ms))]);
    assert_eq!(st, 200);
    assert_eq!(keys(&v), ["data", "infos", "status"], "{v}");
    assert!(v["infos"][0].as_str().unwrap().contains("metric might not be a counter"), "{v}");
    let (st, v, _) = q(&[("query", "histogram_quantile(0.9, rate(qc_requests_total[1m]))".into()), ("time", secs(end_ms))]);
    assert_eq!(st, 200);
    assert_eq!(keys(&v), ["data", "status", "warnings"], "{v}");
    assert!(v["warnings"][0].as_str().unwrap().contains("bucket label \"le\" is missing"), "{v}");
    // Classic-histogram quantile: buckets grow 5:9:10 per step, so q0.7 lies in (0.1, 0.5].
    let (_, v, _) = q(&[
        ("query", "histogram_quantile(0.7, sum by (le) (rate(qc_latency_seconds_bucket[1m])))".into()),
        ("time", secs(end_ms)),
    ]);
    let got = query_clients_support::parse_value(v["data"]["result"][0]["value"][1].as_str().unwrap());
    assert!((got - 0.3).abs() < 1e-9, "{v}");

    // `lookback_delta`: a shorter lookback loses samples older than it.
    let later = secs(end_ms + 120_000);
    let (_, v, _) = q(&[("query", "qc_temperature_celsius".into()), ("time", later.clone())]);
    assert_eq!(v["data"]["result"].as_array().unwrap().len(), 2);
    let (_, v, _) = q(&[("query", "qc_temperature_celsius".into()), ("time", later), ("lookback_delta", "1m".into())]);
    assert_eq!(v["data"]["result"], json!([]));

    // `limit` truncates and says so in `warnings`.
    let (st, v, _) = send(c.get(h.url("/api/v1/labels")).query(&[("limit", "2")]));
    assert_eq!(st, 200);
    assert_eq!(v["data"], json!(["__name__", "instance"]));
    assert_eq!(v["warnings"], json!(["results truncated due to limit"]));
    let (_, v, _) = send(c.get(h.url("/api/v1/label/job/values")).query(&[("limit", "1")]));
    assert_eq!(v["data"], json!(["api"]));
    assert_eq!(v["warnings"], json!(["results truncated due to limit"]));
    let (_, v, _) = send(c.post(h.url("/api/v1/series")).form(&[("match[]", "qc_temperature_celsius"), ("limit", "1")]));
    assert_eq!(v["data"].as_array().unwrap().len(), 1);
    assert_eq!(v["warnings"], json!(["results truncated due to limit"]));
    let (_, v, _) = send(c.get(h.url("/api/v1/metadata")).query(&[("limit", "1")]));
    assert_eq!(v["data"].as_object().unwrap().len(), 1, "{v}");

    // `start`/`end` bound the series API; several `match[]` are a union.
    let (_, v, _) = send(c.post(h.url("/api/v1/series")).form(&[
        ("match[]", "qc_requests_total".to_string()),
        ("start", secs(end_ms + 600_000)),
        ("end", secs(end_ms + 700_000)),
    ]));
    assert_eq!(v["data"], json!([]));
    let (_, v, _) = send(
        c.post(h.url("/api/v1/series"))
            .form(&[("match[]", "qc_build_info"), ("match[]", "qc_temperature_celsius{room=\"cellar\"}"), ("match[]", "qc_build_info")]),
    );
    assert_eq!(
        v["data"],
        json!([
            {"__name__": "qc_build_info", "job": "api", "version": "1.2.3"},
            {"__name__": "qc_temperature_celsius", "job": "sensor", "room": "cellar"}
        ])
    );
    // Label values are `[]`, never null, for an unknown label; an invalid name is bad_data.
    let (st, v, _) = send(c.get(h.url("/api/v1/label/nosuchlabel/values")));
    assert_eq!(st, 200);
    assert_eq!(v["data"], json!([]));

    // format_query pretty-prints.
    let (st, v, _) = send(c.post(h.url("/api/v1/format_query")).form(&[("query", "sum(rate(foo[5m]))by(job)")]));
    assert_eq!(st, 200);
    assert_eq!(v["data"], "sum by (job) (rate(foo[5m]))");

    // Status endpoints.
    let (st, v, _) = send(c.get(h.url("/api/v1/status/tsdb")));
    assert_eq!(st, 200);
    let head = &v["data"]["headStats"];
    assert_eq!(head["numSeries"], 10, "{v}");
    assert_eq!(head["minTime"], t0, "{v}");
    assert_eq!(head["maxTime"], end_ms, "{v}");
    assert!(v["data"]["seriesCountByMetricName"].as_array().unwrap().contains(&json!({"name": "qc_latency_seconds_bucket", "value": 3})), "{v}");
    for k in ["labelValueCountByLabelName", "memoryInBytesByLabelName", "seriesCountByLabelValuePair"] {
        assert!(v["data"][k].is_array(), "{k}: {v}");
    }
    let (st, v, _) = send(c.get(h.url("/api/v1/status/runtimeinfo")));
    assert_eq!(st, 200);
    for k in ["startTime", "CWD", "reloadConfigSuccess", "lastConfigTime", "corruptionCount", "goroutineCount", "GOMAXPROCS", "GOGC", "GODEBUG", "storageRetention"] {
        assert!(v["data"].get(k).is_some(), "runtimeinfo lacks {k}: {v}");
    }
    let (st, v, _) = send(c.get(h.url("/api/v1/status/buildinfo")));
    assert_eq!(st, 200);
    for k in ["version", "revision", "branch", "buildUser", "buildDate", "goVersion"] {
        assert!(v["data"][k].is_string(), "buildinfo lacks {k}: {v}");
    }
}

#[test]
fn too_many_samples_is_422_and_timeout_is_503() {
    let dir = tempfile::tempdir().unwrap();
    let (h, c, t0) = hearth_with_dataset(dir.path(), &["--query.max-samples=10"]);
    let end_ms = t0 + STEPS * 15_000;
    let q = |query: &str, extra: &[(&str, &str)]| {
        let mut p = vec![("query", query.to_string()), ("time", secs(end_ms))];
        p.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
        send(c.post(h.url("/api/v1/query")).form(&p))
    };
    // 41 samples in one range selector exceed 10.
    assert_error(q("count_over_time(qc_build_info[15m])", &[]), 422, "execution");
    assert_eq!(q("count_over_time(qc_build_info[30s])", &[]).0, 200);
    drop(h);

    let dir = tempfile::tempdir().unwrap();
    let (h, c, _) = hearth_with_dataset(dir.path(), &[]);
    // Millions of subquery steps cannot finish in a millisecond.
    let (st, v, ct) = send(
        c.post(h.url("/api/v1/query")).form(&[("query", "count_over_time(vector(1)[30d:1s])"), ("time", "1e9"), ("timeout", "1ms")]),
    );
    assert_error((st, v, ct), 503, "timeout");
}

#[test]
fn promtool_queries_against_hearth() {
    if !query_clients_support::have_all(&["promtool"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (h, _c, t0) = hearth_with_dataset(dir.path(), &[]);
    let server = h.url("");
    let end_ms = t0 + STEPS * 15_000;
    let json_out = |args: &[&str]| -> serde_json::Value {
        let out = promtool(args);
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("promtool {args:?}: {e}: {}", String::from_utf8_lossy(&out.stdout)))
    };

    // Instant query (POSTed by the Go client, falling back to GET on 405).
    let v = json_out(&["query", "instant", "-o", "json", &server, "sum by (room) (qc_temperature_celsius)", &format!("--time={}", secs(end_ms))]);
    assert_eq!(
        v,
        json!([
            {"metric": {"room": "cellar"}, "value": [end_ms / 1000, "12"]},
            {"metric": {"room": "kitchen"}, "value": [end_ms / 1000, (20 + STEPS % 3).to_string()]}
        ])
    );
    // The promql output format prints the same vector.
    let out = promtool(&["query", "instant", &server, "qc_build_info", &format!("--time={}", secs(end_ms))]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("qc_build_info{job=\"api\", version=\"1.2.3\"} => 1 @["), "{text}");

    // Range query with a duration step.
    let (start, end) = (t0 + 300_000, t0 + 600_000);
    let v = json_out(&[
        "query",
        "range",
        "-o",
        "json",
        &server,
        "sum(rate(qc_requests_total[1m]))",
        &format!("--start={}", secs(start)),
        &format!("--end={}", secs(end)),
        "--step=1m",
    ]);
    let got = index_result(&v);
    let expected = std::collections::BTreeMap::from([(
        format!("{:?}", std::collections::BTreeMap::<String, String>::new()),
        (0..=5).map(|k| (start + k * 60_000, 14.0 / 15.0)).collect::<Vec<_>>(),
    )]);
    assert_eq!(diff(&expected, &got, 1e-9), None, "{v}");

    // Series (POST) with two selectors and a time range.
    let v = json_out(&[
        "query",
        "series",
        "-o",
        "json",
        &server,
        "--match=qc_requests_total{method=\"POST\"}",
        "--match=qc_build_info",
        &format!("--start={}", secs(t0)),
        &format!("--end={}", secs(end_ms)),
    ]);
    assert_eq!(
        v,
        json!([
            {"__name__": "qc_build_info", "job": "api", "version": "1.2.3"},
            {"__name__": "qc_requests_total", "instance": "b:1", "job": "api", "method": "POST"}
        ])
    );

    // Label values, all and restricted by a selector.
    let v = json_out(&["query", "labels", "-o", "json", &server, "job"]);
    assert_eq!(v, json!(["api", "sensor"]));
    let v = json_out(&["query", "labels", "-o", "json", &server, "room", "--match=qc_temperature_celsius{room!=\"cellar\"}"]);
    assert_eq!(v, json!(["kitchen"]));

    // A query error reaches promtool as a failure with Prometheus' message.
    let out = Command::new("promtool").args(["query", "instant", &server, "sum("]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad_data"), "{err}");
}

/// Dashboard-style queries compared between Prometheus and Hearth. Range windows are whole
/// multiples of the 2 s scrape interval, so with evaluation times on a phase away from every
/// scrape timestamp no sample sits on a window's left edge.
const DASHBOARD_QUERIES: &[&str] = &[
    "up",
    "count by (job) (up)",
    "rate(prometheus_http_requests_total[10s])",
    "sum by (job) (rate(process_cpu_seconds_total[10s]))",
    "histogram_quantile(0.9, sum by (le, handler) (rate(prometheus_http_request_duration_seconds_bucket[10s])))",
    "histogram_quantile(0.5, sum by (le) (rate(prometheus_http_request_duration_seconds_bucket[10s])))",
    "topk(5, node_cpu_seconds_total)",
    "1 - avg by (instance) (rate(node_cpu_seconds_total{mode=\"idle\"}[10s]))",
    "sum by (device) (rate(node_network_receive_bytes_total[10s]))",
    "node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes",
    "avg_over_time(scrape_duration_seconds[10s])",
    "max_over_time(go_goroutines[20s])",
    "quantile_over_time(0.5, scrape_samples_scraped[10s])",
    "increase(prometheus_tsdb_head_samples_appended_total[20s])",
    "count(count by (__name__) ({job=\"prometheus\"}))",
    "sum without (instance) (go_memstats_alloc_bytes)",
    "label_replace(up, \"host\", \"$1\", \"instance\", \"(.*):.*\")",
    "up * on (instance, job) group_left (version) prometheus_build_info",
];

/// A query's result from `base`: a range query when `step_ms > 0`, else instant at `end_ms`.
fn answer(c: &reqwest::blocking::Client, base: &str, q: &str, start_ms: i64, end_ms: i64, step_ms: i64) -> serde_json::Value {
    let r = if step_ms > 0 {
        c.post(format!("{base}/api/v1/query_range"))
            .form(&[("query", q.to_string()), ("start", secs(start_ms)), ("end", secs(end_ms)), ("step", secs(step_ms))])
    } else {
        c.post(format!("{base}/api/v1/query")).form(&[("query", q.to_string()), ("time", secs(end_ms))])
    };
    let r = r.send().expect("query");
    let st = r.status().as_u16();
    let v: serde_json::Value = r.json().unwrap_or(serde_json::Value::Null);
    assert_eq!((st, &v["status"]), (200, &json!("success")), "{base} {q}: {v}");
    v["data"]["result"].clone()
}

#[test]
fn prometheus_and_hearth_answer_dashboard_queries_alike() {
    if !query_clients_support::have_all(&["prometheus", "prometheus-node-exporter"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let c = client();
    let hearth = Hearth::start(&dir.path().join("hearth"), &[]);
    hearth.wait_ready(&c);
    let pair = query_clients_support::PromPair::start(dir.path(), &hearth.addr);

    // Remote-write skips samples older than its queue, so Hearth's data starts at its first
    // scrape of both targets; range windows (<= 20 s) start after that, and the compared
    // range is 24 s long.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let data_from = loop {
        let r = c.post(hearth.url("/api/v1/query")).form(&[("query", "min_over_time(timestamp(up)[5m:1s])")]).send().unwrap();
        let v: serde_json::Value = r.json().unwrap();
        let firsts = index_result(&v["data"]["result"]);
        if firsts.len() == 2 {
            break firsts.values().map(|p| (p[0].1 * 1000.0) as i64).max().unwrap();
        }
        assert!(std::time::Instant::now() < deadline, "Hearth got no scrapes; Prometheus log:\n{}", pair.log());
        std::thread::sleep(std::time::Duration::from_millis(250));
    };
    eprintln!("Hearth has both targets from {data_from} ms (Prometheus launched at {} ms)", pair.launched_ms);
    let approx_start = data_from + 22_000;
    let approx_end = approx_start + 24_000;
    pair.wait_sent(&c, approx_end + 4_000, std::time::Duration::from_secs(120));

    // Evaluation phase away from every scrape timestamp (both targets') modulo 2 s.
    let ups = answer(&c, &pair.prom, "up[60s]", 0, approx_end, 0);
    let ts: Vec<i64> = index_result(&ups).values().flatten().map(|p| p.0).collect();
    assert!(ts.len() >= 10, "too few scrapes: {ups}");
    let (phase, margin) = query_clients_support::phase_away_from(&ts, 2_000);
    assert!(margin >= 100, "scrape timestamps leave no safe phase: {ts:?}");
    let start = approx_start - approx_start.rem_euclid(2_000) + phase;
    let end = start + 24_000;
    assert!(end <= approx_end + 2_000);

    // Every sample of the compared range (and of the windows reaching back from it) is in
    // Hearth: the same sample count on both sides (Hearth's own usage series, such as
    // `hearth_metric_queries_total`, left out).
    let total = |base: &str| {
        let r = answer(&c, base, "{__name__=~\".+\", __name__!~\"hearth_.*\"}[44s]", 0, end, 0);
        r.as_array().unwrap().iter().map(|s| s["values"].as_array().map_or(0, Vec::len)).sum::<usize>()
    };
    let expected_total = total(&pair.prom);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while total(&hearth.url("")) != expected_total {
        if std::time::Instant::now() >= deadline {
            let all = |base: &str| index_result(&answer(&c, base, "{__name__=~\".+\", __name__!~\"hearth_.*\"}[44s]", 0, end, 0));
            let (p, h) = (all(&pair.prom), all(&hearth.url("")));
            let d = diff(&p, &h, 0.0);
            panic!("Hearth's samples of the range differ ({} vs {expected_total}, end {end}): {d:?}", total(&hearth.url("")));
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }

    let mut compared = 0usize;
    for q in DASHBOARD_QUERIES {
        for (s, step) in [(start, 2_000), (start, 6_000), (end, 0)] {
            let expected = index_result(&answer(&c, &pair.prom, q, s, end, step));
            let got = index_result(&answer(&c, &hearth.url(""), q, s, end, step));
            assert!(!expected.is_empty() || q.contains("node_"), "Prometheus has no answer for {q}");
            if let Some(d) = diff(&expected, &got, 1e-9) {
                panic!("{q} (step {step} ms, {s}..{end}): {d}");
            }
            compared += expected.values().map(Vec::len).sum::<usize>();
        }
    }

    // What a `label_values(...)` variable or the metrics browser asks: series, label names and
    // values over the range. Prometheus' series API filters by time exactly; label values are
    // compared with those derived from its series answer.
    let form = |m: &str| vec![("match[]", m.to_string()), ("start", secs(start)), ("end", secs(end))];
    for m in ["up", "{job=\"node\", __name__=~\"node_cpu.*\"}", "prometheus_http_requests_total", "{__name__=~\"go_.*\"}"] {
        let p: serde_json::Value = c.post(format!("{}/api/v1/series", pair.prom)).form(&form(m)).send().unwrap().json().unwrap();
        let (st, hv) = grafana_post(&c, &hearth.url(""), "/api/v1/series", &form(m));
        assert_eq!(st, 200, "{hv}");
        let set = |v: &serde_json::Value| {
            v["data"].as_array().unwrap().iter().map(|s| s.to_string()).collect::<std::collections::BTreeSet<_>>()
        };
        assert_eq!(set(&hv), set(&p), "series for {m}");
        let series: Vec<std::collections::BTreeMap<String, String>> = serde_json::from_value(p["data"].clone()).unwrap();
        for label in ["job", "__name__", "handler"] {
            let expected: std::collections::BTreeSet<&String> = series.iter().filter_map(|s| s.get(label)).collect();
            let (st, hv) = grafana_get(&c, &hearth.url(""), &format!("/api/v1/label/{label}/values"), &form(m));
            assert_eq!(st, 200, "{hv}");
            let got: Vec<String> = strings(&hv["data"]);
            assert_eq!(got.iter().collect::<std::collections::BTreeSet<_>>(), expected, "{label} values for {m}");
        }
        let expected: std::collections::BTreeSet<&String> = series.iter().flat_map(|s| s.keys()).collect();
        let (_, hv) = grafana_post(&c, &hearth.url(""), "/api/v1/labels", &form(m));
        assert_eq!(strings(&hv["data"]).iter().collect::<std::collections::BTreeSet<_>>(), expected, "label names for {m}");
    }
    println!("compared {} queries, {compared} points: equal", DASHBOARD_QUERIES.len());
}

/// Prometheus 3.x validates label names as UTF-8 (`model.LabelName.IsValid` under the
/// default UTF-8 scheme), so the label-values API answers `[]` for any non-empty UTF-8 name
/// that no series has, `U__`-escaped (as Grafana sends names outside the legacy charset) or
/// not.
#[test]
fn label_values_accepts_utf8_label_names() {
    let dir = tempfile::tempdir().unwrap();
    let (h, c, _) = hearth_with_dataset(dir.path(), &[]);
    for name in ["U__service_2e_name", "U__http_2e_request_2e_method", "0abc"] {
        let (st, v) = grafana_get(&c, &h.url(""), &format!("/api/v1/label/{name}/values"), &[]);
        assert_eq!((st, &v), (200, &json!({"status": "success", "data": []})), "{name}");
    }
}

#[test]
fn value_and_timestamp_formats_follow_prometheus_jsonutil() {
    let dir = tempfile::tempdir().unwrap();
    let c = client();
    let h = Hearth::start(dir.path(), &[]);
    h.wait_ready(&c);
    let q = |query: &str, time: &str| {
        let (st, v, _) = send(c.get(h.url("/api/v1/query")).query(&[("query", query), ("time", time)]));
        assert_eq!(st, 200, "{query}: {v}");
        v["data"].clone()
    };
    // Timestamps: seconds, a three-digit fraction when not whole; decimals in `time` are
    // rounded to the millisecond (Prometheus `parseTime`).
    assert_eq!(q("time()", "1.2346"), json!({"resultType": "scalar", "result": [1.235, "1.235"]}));
    assert_eq!(q("time()", "-1.5"), json!({"resultType": "scalar", "result": [-1.5, "-1.5"]}));
    let raw = c.get(h.url("/api/v1/query")).query(&[("query", "time()"), ("time", "1.5")]).send().unwrap().text().unwrap();
    assert!(raw.contains("[1.500,\"1.5\"]"), "{raw}");
    // Values: Go's FormatFloat(v, 'f', -1, 64), and Prometheus' spellings of the specials.
    assert_eq!(q("1e21", "10")["result"], json!([10, "1000000000000000000000"]));
    assert_eq!(q("1e-7", "10")["result"], json!([10, "0.0000001"]));
    assert_eq!(q("0/0", "10")["result"], json!([10, "NaN"]));
    assert_eq!(q("-1/0", "10")["result"], json!([10, "-Inf"]));
    assert_eq!(q("1/0", "10")["result"], json!([10, "+Inf"]));
    assert_eq!(q("\"foo\"", "10"), json!({"resultType": "string", "result": [10, "foo"]}));
    // A string is no range-query expression.
    let (st, v, _) = send(c.get(h.url("/api/v1/query_range")).query(&[("query", "\"foo\""), ("start", "0"), ("end", "10"), ("step", "5")]));
    assert_error((st, v, String::from("application/json")), 400, "bad_data");
}
