//! End-to-end tests of the `hearth` binary over HTTP: health and readiness, remote-write 1.0
//! and 2.0 (status codes, 2.0 headers, read back through the query and series APIs), and bad
//! input (corrupt snappy, truncated protobuf, wrong content type, over-limit body, label
//! violations, out-of-order and duplicate samples) leaving stored data unchanged.

mod common;

use common::{client, get_json, post_raw, raw_samples, write, Hearth, Rw};
use ingest::remote_write::encode::{compress, encode_v1};
use ingest::remote_write::{SeriesData, WriteRequestData, CONTENT_TYPE_V1, CONTENT_TYPE_V2};
use storage::{Metadata, MetricType};

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

/// A base time a few minutes in the past, on a whole second.
fn base_ms() -> i64 {
    (now_ms() - 5 * 60_000) / 1000 * 1000
}

fn req(series: Vec<SeriesData>) -> WriteRequestData {
    WriteRequestData { series, metadata: Vec::new() }
}

#[test]
fn health_ready_and_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let h = Hearth::start(dir.path(), &[]);
    let c = client();
    let r = c.get(h.url("/-/healthy")).send().unwrap();
    assert_eq!(r.status(), 200);
    h.wait_ready(&c);
    let r = c.get(h.url("/metrics")).send().unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().unwrap();
    for name in [
        "hearth_samples_ingested_total",
        "hearth_build_info{",
        "hearth_head_series ",
        "hearth_http_requests_total{handler=\"/-/healthy\",code=\"200\"} 1",
        "hearth_ready 1",
    ] {
        assert!(text.contains(name), "missing {name} in /metrics:\n{text}");
    }
    let (st, v) = get_json(&c, &h, "/api/v1/status/buildinfo");
    assert_eq!(st, 200);
    let version = v["data"]["version"].as_str().unwrap();
    let parts: Vec<u32> = version.split('.').map(|p| p.parse().unwrap()).collect();
    assert!(parts >= vec![2, 24, 0], "{version}");
    assert!(v["data"].get("features").is_none());
    let (st, v) = get_json(&c, &h, "/api/v1/status/runtimeinfo");
    assert_eq!(st, 200);
    assert_eq!(v["data"]["ebpf"]["state"], "disabled");
}

#[test]
fn v1_and_v2_round_trip_through_the_query_api() {
    let dir = tempfile::tempdir().unwrap();
    let h = Hearth::start(dir.path(), &[]);
    let c = client();
    h.wait_ready(&c);
    let t0 = base_ms();
    let v1 = req(vec![
        SeriesData::new([("__name__", "rt_total"), ("job", "a"), ("instance", "x:1")])
            .sample(t0, 1.0)
            .sample(t0 + 15_000, 2.5),
        SeriesData::new([("__name__", "rt_total"), ("job", "b")]).sample(t0, -0.125),
    ]);
    let r = write(&c, &h, Rw::V1, &v1);
    assert_eq!(r.status(), 204, "{:?}", r.text());

    let v2 = req(vec![SeriesData::new([("__name__", "rt_gauge"), ("job", "c")])
        .sample(t0, 3.0)
        .sample(t0 + 30_000, f64::NAN)
        .exemplar([("trace_id", "abc123")], 3.0, t0)
        .metadata(Metadata { metric_type: MetricType::Gauge, help: "A gauge.".into(), unit: String::new() })]);
    let r = write(&c, &h, Rw::V2, &v2);
    assert_eq!(r.status(), 204);
    let hdr = |n: &str| r.headers().get(n).map(|v| v.to_str().unwrap().to_string());
    assert_eq!(hdr("X-Prometheus-Remote-Write-Samples-Written").as_deref(), Some("2"));
    assert_eq!(hdr("X-Prometheus-Remote-Write-Histograms-Written").as_deref(), Some("0"));
    assert_eq!(hdr("X-Prometheus-Remote-Write-Exemplars-Written").as_deref(), Some("1"));
    let (st, v) = get_json(&c, &h, "/api/v1/query_exemplars?query=rate(rt_gauge[5m])");
    assert_eq!(st, 200);
    assert_eq!(
        v["data"],
        serde_json::json!([{"seriesLabels": {"__name__": "rt_gauge", "job": "c"},
            "exemplars": [{"labels": {"trace_id": "abc123"}, "value": "3", "timestamp": t0 / 1000}]}])
    );

    // Raw samples come back with identical timestamps and values.
    let got = raw_samples(&c, &h, "{__name__=~\"rt_.*\"}", t0, t0 + 30_000);
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!(got[0].0, serde_json::json!({"__name__": "rt_gauge", "job": "c"}));
    assert_eq!(got[0].1, vec![(t0, "3".to_string()), (t0 + 30_000, "NaN".to_string())]);
    assert_eq!(got[1].0, serde_json::json!({"__name__": "rt_total", "instance": "x:1", "job": "a"}));
    assert_eq!(got[1].1, vec![(t0, "1".to_string()), (t0 + 15_000, "2.5".to_string())]);
    assert_eq!(got[2].1, vec![(t0, "-0.125".to_string())]);

    // The series, labels and label values APIs.
    let (st, v) = get_json(&c, &h, "/api/v1/series?match[]=rt_total");
    assert_eq!(st, 200);
    assert_eq!(v["data"].as_array().unwrap().len(), 2);
    let (_, v) = get_json(&c, &h, "/api/v1/label/job/values");
    assert_eq!(v["data"], serde_json::json!(["a", "b", "c"]));
    let (_, v) = get_json(&c, &h, "/api/v1/label/job/values?match[]=rt_gauge");
    assert_eq!(v["data"], serde_json::json!(["c"]));
    let (_, v) = get_json(&c, &h, "/api/v1/label/U__job/values?limit=1");
    assert_eq!(v["data"], serde_json::json!(["a"]));
    assert_eq!(v["warnings"][0], "results truncated due to limit");
    let (_, v) = get_json(&c, &h, "/api/v1/labels");
    assert_eq!(v["data"], serde_json::json!(["__name__", "instance", "job"]));
    let (_, v) = get_json(&c, &h, "/api/v1/metadata?metric=rt_gauge");
    assert_eq!(v["data"]["rt_gauge"][0]["type"], "gauge");
    assert_eq!(v["data"]["rt_gauge"][0]["help"], "A gauge.");

    // PromQL over what was written.
    let at = (t0 + 15_000) as f64 / 1000.0;
    let (st, v) = get_json(&c, &h, &format!("/api/v1/query?query=sum(rt_total)&time={at}"));
    assert_eq!(st, 200);
    assert_eq!(v["data"]["resultType"], "vector");
    assert_eq!(v["data"]["result"][0]["value"][1], "2.375");
    let r = common::query_range(&c, &h, "rt_total{job=\"a\"}", t0 as f64 / 1000.0, at, 15.0);
    assert_eq!(r[0]["values"], serde_json::json!([[t0 / 1000, "1"], [t0 / 1000 + 15, "2.5"]]));

    // Self-metrics counted the samples.
    let text = c.get(h.url("/metrics")).send().unwrap().text().unwrap();
    assert!(text.contains("hearth_samples_ingested_total 5"), "{text}");
}

#[test]
fn bad_input_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let h = Hearth::start(dir.path(), &["--limits.max-decompressed-body-size=64KiB", "--limits.max-labels-per-series=4"]);
    let c = client();
    h.wait_ready(&c);
    let t0 = base_ms();
    let good = req(vec![SeriesData::new([("__name__", "bad_total"), ("job", "a")]).sample(t0, 1.0).sample(t0 + 1000, 2.0)]);
    assert_eq!(write(&c, &h, Rw::V1, &good).status(), 204);
    let before = raw_samples(&c, &h, "bad_total", t0 - 60_000, t0 + 60_000);

    // Corrupt snappy.
    let r = post_raw(&c, &h, CONTENT_TYPE_V1, b"\x0a\xfe\xfd\xfc\xfb".to_vec());
    assert_eq!(r.status(), 400);
    assert!(r.text().unwrap().contains("snappy"));
    // Truncated protobuf (valid snappy of a cut message).
    let full = snap::raw::Decoder::new().decompress_vec(&encode_v1(&good)).unwrap();
    let r = post_raw(&c, &h, CONTENT_TYPE_V1, compress(&full[..full.len() - 3]));
    assert_eq!(r.status(), 400);
    assert!(r.text().unwrap().contains("protobuf"));
    // Wrong content type and encoding.
    let r = post_raw(&c, &h, "application/json", encode_v1(&good));
    assert_eq!(r.status(), 415);
    let r = c
        .post(h.url("/api/v1/write"))
        .header("Content-Type", CONTENT_TYPE_V2)
        .header("Content-Encoding", "gzip")
        .body(encode_v1(&good))
        .send()
        .unwrap();
    assert_eq!(r.status(), 415);
    assert!(r.headers().get("X-Prometheus-Remote-Write-Samples-Written").is_some());
    // Over the body limit: by Content-Length and by the decompressed size.
    let r = post_raw(&c, &h, CONTENT_TYPE_V1, vec![0u8; 200 << 10]);
    assert_eq!(r.status(), 413);
    let big = req(vec![SeriesData::new([("__name__", "bad_total"), ("job", "z"), ("pad", &"x".repeat(100 << 10))]).sample(t0, 1.0)]);
    let r = write(&c, &h, Rw::V1, &big);
    assert_eq!(r.status(), 413, "{:?}", r.text());
    // Label violations: too many labels, invalid name.
    let labels = req(vec![
        SeriesData::new([("__name__", "bad_total"), ("a", "1"), ("b", "2"), ("c", "3"), ("d", "4")]).sample(t0, 1.0),
        SeriesData::new([("__name__", "bad_total"), ("0x", "1")]).sample(t0, 1.0),
    ]);
    let r = write(&c, &h, Rw::V2, &labels);
    assert_eq!(r.status(), 400);
    assert_eq!(r.headers()["X-Prometheus-Remote-Write-Samples-Written"], "0");
    let msg = r.text().unwrap();
    assert!(msg.contains("labels") && msg.contains("invalid label name"), "{msg}");
    // Out of order and duplicate timestamps with a different value.
    let ooo = req(vec![SeriesData::new([("__name__", "bad_total"), ("job", "a")]).sample(t0 - 1000, 5.0)]);
    let r = write(&c, &h, Rw::V1, &ooo);
    assert_eq!(r.status(), 400);
    assert!(r.text().unwrap().contains("out of order"));
    let dup = req(vec![SeriesData::new([("__name__", "bad_total"), ("job", "a")]).sample(t0 + 1000, 7.0)]);
    let r = write(&c, &h, Rw::V1, &dup);
    assert_eq!(r.status(), 400);
    assert!(r.text().unwrap().contains("duplicate"));
    // The identical duplicate is accepted silently.
    let same = req(vec![SeriesData::new([("__name__", "bad_total"), ("job", "a")]).sample(t0 + 1000, 2.0)]);
    assert_eq!(write(&c, &h, Rw::V1, &same).status(), 204);

    assert_eq!(raw_samples(&c, &h, "bad_total", t0 - 60_000, t0 + 60_000), before);
    let (_, v) = get_json(&c, &h, "/api/v1/series?match[]=bad_total");
    assert_eq!(v["data"].as_array().unwrap().len(), 1, "{v}");
    let text = c.get(h.url("/metrics")).send().unwrap().text().unwrap();
    assert!(text.contains("hearth_samples_rejected_total{reason=\"out_of_order\"} 1"), "{text}");
    assert!(text.contains("hearth_http_requests_total{handler=\"/api/v1/write\",code=\"413\"} 2"), "{text}");
}

#[test]
fn query_api_errors_use_prometheus_codes() {
    let dir = tempfile::tempdir().unwrap();
    let h = Hearth::start(dir.path(), &["--query.max-samples=10"]);
    let c = client();
    h.wait_ready(&c);
    let (st, v) = get_json(&c, &h, "/api/v1/query?query=sum(");
    assert_eq!(st, 400);
    assert_eq!(v["status"], "error");
    assert_eq!(v["errorType"], "bad_data");
    let (st, v) = get_json(&c, &h, "/api/v1/query_range?query=up&start=0&end=100000&step=1");
    assert_eq!(st, 400);
    assert!(v["error"].as_str().unwrap().contains("11,000 points"), "{v}");
    let (st, _) = get_json(&c, &h, "/api/v1/query_range?query=up&start=10&end=0&step=1");
    assert_eq!(st, 400);
    let (st, _) = get_json(&c, &h, "/api/v1/query_range?query=up&start=0&end=10&step=0");
    assert_eq!(st, 400);
    let (st, v) = get_json(&c, &h, "/api/v1/query?query=up&time=yesterday");
    assert_eq!(st, 400);
    assert!(v["error"].as_str().unwrap().contains("\"time\""));
    let (st, _) = get_json(&c, &h, "/api/v1/series");
    assert_eq!(st, 400);
    let (st, v) = get_json(&c, &h, "/api/v1/query?query=1&time=2015-07-01T20:10:51.781Z");
    assert_eq!(st, 200);
    assert_eq!(v["data"]["result"], serde_json::json!([1435781451.781, "1"]));
    // Too many samples is an execution error (422).
    let t0 = base_ms();
    let s: Vec<SeriesData> =
        (0..20).map(|i| SeriesData::new([("__name__", "many"), ("i", &i.to_string())]).sample(t0, 1.0)).collect();
    assert_eq!(write(&c, &h, Rw::V1, &req(s)).status(), 204);
    let (st, v) = get_json(&c, &h, &format!("/api/v1/query?query=many&time={}", t0 / 1000));
    assert_eq!(st, 422, "{v}");
    assert_eq!(v["errorType"], "execution");
    let r = c.post(h.url("/api/v1/format_query")).form(&[("query", "sum(rate(x[5m]))by(a)")]).send().unwrap();
    let v: serde_json::Value = r.json().unwrap();
    assert_eq!(v["data"], "sum by (a) (rate(x[5m]))");
}

#[test]
fn series_limits_refuse_new_series_only() {
    let dir = tempfile::tempdir().unwrap();
    let h = Hearth::start(dir.path(), &["--limits.max-series-per-metric=2"]);
    let c = client();
    h.wait_ready(&c);
    let t0 = base_ms();
    let s = |i: i64, t: i64| SeriesData::new([("__name__", "lim"), ("i", &i.to_string())]).sample(t, 1.0);
    assert_eq!(write(&c, &h, Rw::V1, &req(vec![s(0, t0), s(1, t0)])).status(), 204);
    let r = write(&c, &h, Rw::V2, &req(vec![s(0, t0 + 1000), s(2, t0 + 1000)]));
    assert_eq!(r.status(), 400);
    assert_eq!(r.headers()["X-Prometheus-Remote-Write-Samples-Written"], "1");
    assert!(r.text().unwrap().contains("series limit per metric"));
    let (_, v) = get_json(&c, &h, "/api/v1/label/i/values");
    assert_eq!(v["data"], serde_json::json!(["0", "1"]));
    let (_, v) = get_json(&c, &h, "/api/v1/status/tsdb");
    assert_eq!(v["data"]["headStats"]["numSeries"], 2);
    assert_eq!(v["data"]["seriesCountByMetricName"][0], serde_json::json!({"name": "lim", "value": 2}));
}

#[test]
fn native_histograms_round_trip_in_prometheus_json() {
    use ingest::remote_write::HistogramValue;
    use storage::histogram::{FloatHistogram, Span};
    let dir = tempfile::tempdir().unwrap();
    let h = Hearth::start(dir.path(), &[]);
    let c = client();
    h.wait_ready(&c);
    let t0 = base_ms();
    let hist = FloatHistogram {
        schema: 0,
        zero_threshold: 0.001,
        zero_count: 1.0,
        count: 6.0,
        sum: 10.5,
        positive_spans: vec![Span { offset: 0, length: 2 }],
        positive_buckets: vec![2.0, 3.0],
        ..Default::default()
    };
    let r = write(
        &c,
        &h,
        Rw::V2,
        &req(vec![SeriesData::new([("__name__", "latency_seconds"), ("job", "h")]).histogram(t0, HistogramValue::Float(hist))]),
    );
    assert_eq!(r.status(), 204, "{:?}", r.text());
    assert_eq!(r.headers()["X-Prometheus-Remote-Write-Histograms-Written"], "1");
    let (st, v) = get_json(&c, &h, &format!("/api/v1/query?query=latency_seconds&time={}", t0 / 1000));
    assert_eq!(st, 200);
    assert_eq!(
        v["data"]["result"][0]["histogram"],
        serde_json::json!([t0 / 1000, {"count": "6", "sum": "10.5", "buckets": [
            [3, "-0.001", "0.001", "1"], [0, "0.5", "1", "2"], [0, "1", "2", "3"]]}])
    );
    let (_, v) = get_json(&c, &h, &format!("/api/v1/query?query=histogram_count(latency_seconds)&time={}", t0 / 1000));
    assert_eq!(v["data"]["result"][0]["value"][1], "6");
}

#[test]
fn bodies_over_axums_default_limit_are_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let h = Hearth::start(dir.path(), &[]);
    let c = client();
    h.wait_ready(&c);
    let t0 = base_ms();
    // Seeded xorshift: label values that snappy cannot shrink much, so the body is > 2 MiB.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let series: Vec<SeriesData> = (0..40_000)
        .map(|_| {
            let id: String = (0..4).map(|_| format!("{:016x}", next())).collect();
            SeriesData::new([("__name__", "big"), ("id", id.as_str())]).sample(t0, 1.0)
        })
        .collect();
    let data = req(series);
    let body = ingest::remote_write::encode::encode_v1(&data);
    assert!(body.len() > 2 << 20, "body is only {} bytes", body.len());
    let r = post_raw(&c, &h, CONTENT_TYPE_V1, body);
    assert_eq!(r.status(), 204, "{:?}", r.text());
    let (_, v) = get_json(&c, &h, "/api/v1/status/tsdb");
    assert_eq!(v["data"]["headStats"]["numSeries"], 40_000);
}

#[test]
fn query_api_reads_are_recorded_as_metric_usage() {
    let dir = tempfile::tempdir().unwrap();
    let h = Hearth::start(dir.path(), &[]);
    let c = client();
    h.wait_ready(&c);
    let t0 = base_ms();
    let data = req(vec![
        SeriesData::new([("__name__", "probe_read"), ("job", "a")]).sample(t0, 1.0),
        SeriesData::new([("__name__", "probe_unread"), ("job", "a")]).sample(t0, 1.0),
    ]);
    assert_eq!(write(&c, &h, Rw::V1, &data).status(), 204);
    let (st, _) = get_json(&c, &h, &format!("/api/v1/query?query=sum(probe_read)&time={}", t0 / 1000));
    assert_eq!(st, 200);
    let (st, _) = get_json(&c, &h, "/api/v1/series?match[]=probe_read");
    assert_eq!(st, 200);
    // Recording happens after the response and is flushed about once a second: poll.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (st, v) = get_json(&c, &h, "/api/v1/status/metric_usage?sort=name");
        assert_eq!(st, 200, "{v}");
        let rows = v["data"]["metrics"].as_array().cloned().unwrap_or_default();
        let q = |m: &str| rows.iter().find(|r| r["metric"] == m).map(|r| r["queries"].as_u64().unwrap_or(0));
        if q("probe_read") == Some(2) {
            assert_eq!(q("probe_unread"), Some(0), "{v}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "usage never recorded: {v}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}
