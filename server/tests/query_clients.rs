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

use serde_json::json;

use common::{client, Hearth};
use query_clients_support::{
    dataset_t0, diff, grafana_get, grafana_post, index_result, now_ms, promtool, secs, write_dataset, STEPS,
};

/// A ready Hearth holding the fixed data set; returns it with the data set's `t0` (ms).
fn hearth_with_dataset(dir: &std::path::Path, extra: &[&str]) -> (Hearth, reqwest::blocking::Client, i64) {
    let c = client();
    let h = Hearth::start(dir, extra);
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
