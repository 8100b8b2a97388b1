//! Round trips: requests built from plain fixtures, encoded with the crate's encoder (prost +
//! snappy), decoded by the zero-copy walker and ingested into a recording appender; every field
//! must arrive as the fixture says. Plus a golden, hand-assembled 2.0 body (packed and unpacked
//! repeated fields, unknown fields) that does not depend on the encoder.

use ingest::remote_write::{
    encode, Decoder, HistogramValue, IntHistogram, Limits, ProtoVersion, RecordingAppender, SeriesData,
    WriteRequestData, CONTENT_TYPE_V1, CONTENT_TYPE_V2,
};
use storage::histogram::{CounterResetHint, FloatHistogram, Span};
use storage::{Labels, Metadata, MetricType};

const NOW_MS: i64 = 1_700_000_000_000;

fn ingest(version: ProtoVersion, body: &[u8], limits: &Limits) -> (ingest::remote_write::IngestReport, RecordingAppender) {
    let mut app = RecordingAppender::new();
    let mut dec = Decoder::new();
    let ct = match version {
        ProtoVersion::V1 => CONTENT_TYPE_V1,
        ProtoVersion::V2 => CONTENT_TYPE_V2,
    };
    let report = dec.ingest(Some(ct), Some("snappy"), body, &mut app, limits, NOW_MS).expect("valid request");
    (report, app)
}

fn l(pairs: &[(&str, &str)]) -> Labels {
    Labels::from_pairs(pairs.iter().copied())
}

/// The canonical label set of a sent series.
fn sent_labels(s: &SeriesData) -> Labels {
    Labels::from_pairs(s.labels.iter().map(|(n, v)| (n.as_str(), v.as_str())))
}

fn int_histogram() -> IntHistogram {
    IntHistogram {
        counter_reset_hint: CounterResetHint::NotCounterReset,
        schema: 3,
        zero_threshold: 0.001,
        zero_count: 2,
        count: 2 + 5 + 7 + 1 + 4 + 3,
        sum: 123.5,
        positive_spans: vec![Span { offset: -2, length: 2 }, Span { offset: 3, length: 2 }],
        positive_buckets: vec![5, 7, 1, 4],
        negative_spans: vec![Span { offset: 1, length: 1 }],
        negative_buckets: vec![3],
        custom_values: vec![],
    }
}

fn float_histogram() -> FloatHistogram {
    FloatHistogram {
        counter_reset_hint: CounterResetHint::Gauge,
        schema: -1,
        zero_threshold: 0.5,
        zero_count: 1.5,
        count: 10.25,
        sum: -3.0,
        positive_spans: vec![Span { offset: 0, length: 3 }],
        positive_buckets: vec![1.0, 2.5, 0.25],
        negative_spans: vec![Span { offset: 2, length: 1 }],
        negative_buckets: vec![5.0],
        custom_values: vec![],
    }
}

fn custom_bucket_histogram() -> IntHistogram {
    IntHistogram {
        counter_reset_hint: CounterResetHint::Unknown,
        schema: -53,
        count: 9,
        sum: 4.5,
        positive_spans: vec![Span { offset: 0, length: 2 }, Span { offset: 1, length: 1 }],
        positive_buckets: vec![3, 4, 2],
        custom_values: vec![0.1, 0.5, 1.0],
        ..Default::default()
    }
}

/// The absolute-count float histogram an integer fixture must arrive as.
fn as_float(h: &IntHistogram) -> FloatHistogram {
    FloatHistogram {
        counter_reset_hint: h.counter_reset_hint,
        schema: h.schema,
        zero_threshold: h.zero_threshold,
        zero_count: h.zero_count as f64,
        count: h.count as f64,
        sum: h.sum,
        positive_spans: h.positive_spans.clone(),
        positive_buckets: h.positive_buckets.iter().map(|&c| c as f64).collect(),
        negative_spans: h.negative_spans.clone(),
        negative_buckets: h.negative_buckets.iter().map(|&c| c as f64).collect(),
        custom_values: h.custom_values.clone(),
    }
}

fn full_request() -> WriteRequestData {
    let counter_md = Metadata { metric_type: MetricType::Counter, help: "Requests served.".into(), unit: "".into() };
    let hist_md = Metadata { metric_type: MetricType::Histogram, help: "Latency.".into(), unit: "seconds".into() };
    WriteRequestData {
        series: vec![
            // Unsorted labels, several samples, a stale marker, an exemplar, metadata, CT.
            SeriesData::new([("job", "api"), ("__name__", "http_requests_total"), ("code", "200"), ("empty", "")])
                .sample(NOW_MS - 30_000, 1.0)
                .sample(NOW_MS - 15_000, 2.0)
                .sample(NOW_MS, storage::stale_nan())
                .exemplar([("trace_id", "abc123"), ("span_id", "s1")], 1.0, NOW_MS - 15_001)
                .metadata(counter_md.clone())
                .created(NOW_MS - 60_000),
            // Integer histogram, float histogram (a gauge histogram), custom buckets.
            SeriesData::new([("__name__", "http_request_duration_seconds"), ("job", "api")])
                .histogram(NOW_MS - 20_000, HistogramValue::Int(int_histogram()))
                .histogram(NOW_MS - 10_000, HistogramValue::Float(float_histogram()))
                .exemplar([("trace_id", "t2")], 0.042, NOW_MS - 10_000)
                .metadata(hist_md.clone())
                .created(NOW_MS - 90_000),
            SeriesData::new([("__name__", "nhcb_seconds"), ("le_mode", "custom")])
                .histogram(NOW_MS, HistogramValue::Int(custom_bucket_histogram())),
            // A gauge with extreme values and no metadata.
            SeriesData::new([("__name__", "temperature"), ("room", "ü-ñ")])
                .sample(i64::MIN + 1, -1.5)
                .sample(0, f64::INFINITY)
                .sample(NOW_MS, f64::MAX),
        ],
        metadata: vec![
            ("http_requests_total".into(), counter_md),
            ("http_request_duration_seconds".into(), hist_md),
        ],
    }
}

fn check_common(report: &ingest::remote_write::IngestReport, app: &RecordingAppender) {
    assert_eq!(report.http_status(), 204, "{:?}", report.error_message());
    assert_eq!(report.samples_written, 6);
    assert_eq!(report.histograms_written, 3);
    assert_eq!(report.exemplars_written, 2);
    let reqs = l(&[("__name__", "http_requests_total"), ("code", "200"), ("job", "api")]);
    let lat = l(&[("__name__", "http_request_duration_seconds"), ("job", "api")]);
    let nhcb = l(&[("__name__", "nhcb_seconds"), ("le_mode", "custom")]);
    let temp = l(&[("__name__", "temperature"), ("room", "ü-ñ")]);
    assert_eq!(app.series, vec![reqs.clone(), lat.clone(), nhcb.clone(), temp.clone()]);

    let floats: Vec<_> = app.samples.iter().filter(|s| s.0 == reqs).map(|s| (s.1, s.2.to_bits())).collect();
    let want_ct_zero = report.created_timestamp_zeros_written > 0;
    let mut want = vec![];
    if want_ct_zero {
        want.push((NOW_MS - 60_000, 0f64.to_bits()));
    }
    want.extend([(NOW_MS - 30_000, 1f64.to_bits()), (NOW_MS - 15_000, 2f64.to_bits()), (NOW_MS, storage::STALE_NAN_BITS)]);
    assert_eq!(floats, want);
    let temps: Vec<_> = app.samples.iter().filter(|s| s.0 == temp).map(|s| (s.1, s.2.to_bits())).collect();
    assert_eq!(temps, vec![(i64::MIN + 1, (-1.5f64).to_bits()), (0, f64::INFINITY.to_bits()), (NOW_MS, f64::MAX.to_bits())]);

    let hists: Vec<_> = app.histograms.iter().filter(|h| h.0 != lat || h.1 != NOW_MS - 90_000).cloned().collect();
    assert_eq!(
        hists,
        vec![
            (lat.clone(), NOW_MS - 20_000, as_float(&int_histogram())),
            (lat.clone(), NOW_MS - 10_000, float_histogram()),
            (nhcb, NOW_MS, as_float(&custom_bucket_histogram())),
        ]
    );

    assert_eq!(app.exemplars.len(), 2);
    assert_eq!(app.exemplars[0].0, reqs);
    assert_eq!(app.exemplars[0].1.labels, l(&[("span_id", "s1"), ("trace_id", "abc123")]));
    assert_eq!(app.exemplars[0].1.value, 1.0);
    assert_eq!(app.exemplars[0].1.t_ms, NOW_MS - 15_001);
    assert_eq!(app.exemplars[1].0, lat);
    assert_eq!(app.exemplars[1].1.labels, l(&[("trace_id", "t2")]));
    assert_eq!(app.exemplars[1].1.value, 0.042);
}

#[test]
fn v2_round_trips_every_field() {
    let req = full_request();
    let (report, app) = ingest(ProtoVersion::V2, &encode::encode_v2(&req), &Limits::default());
    assert_eq!(report.version, ProtoVersion::V2);
    check_common(&report, &app);
    assert_eq!(report.created_timestamp_zeros_written, 0, "off by default, as in Prometheus");
    assert_eq!(
        app.metadata,
        vec![
            ("http_requests_total".to_string(), req.metadata[0].1.clone()),
            ("http_request_duration_seconds".to_string(), req.metadata[1].1.clone()),
        ]
    );
    assert_eq!(report.metadata_written, 2);
}

#[test]
fn v2_created_timestamp_is_each_samples_start_timestamp() {
    let req = full_request();
    let (report, app) = ingest(ProtoVersion::V2, &encode::encode_v2(&req), &Limits::default());
    check_common(&report, &app);
    assert_eq!(app.sample_sts.len(), app.samples.len());
    assert_eq!(app.histogram_sts.len(), app.histograms.len());
    for (i, sample) in app.samples.iter().enumerate() {
        let sent = req.series.iter().find(|s| sent_labels(s) == sample.0).expect("sent series");
        assert_eq!(app.sample_sts[i], sent.created_t_ms, "ST of {:?} at {}", sample.0, sample.1);
    }
    for (i, h) in app.histograms.iter().enumerate() {
        let sent = req.series.iter().find(|s| sent_labels(s) == h.0).expect("sent series");
        assert_eq!(app.histogram_sts[i], sent.created_t_ms, "ST of {:?} at {}", h.0, h.1);
    }
    assert!(app.sample_sts.iter().any(|&st| st != 0), "the request carries created timestamps");

    // 1.0 has no created timestamp: every ST is 0 (unknown).
    let (_, app1) = ingest(ProtoVersion::V1, &encode::encode_v1(&req), &Limits::default());
    assert!(app1.sample_sts.iter().chain(&app1.histogram_sts).all(|&st| st == 0));
}

#[test]
fn v2_created_timestamp_becomes_zero_samples_when_enabled() {
    let limits = Limits { created_timestamp_zero_ingestion: true, ..Limits::default() };
    let (report, app) = ingest(ProtoVersion::V2, &encode::encode_v2(&full_request()), &limits);
    check_common(&report, &app);
    assert_eq!(report.created_timestamp_zeros_written, 2);
    assert_eq!(report.samples_written, 6, "CT zeros are not counted as written samples");
    let lat = l(&[("__name__", "http_request_duration_seconds"), ("job", "api")]);
    let zero = app.histograms.iter().find(|h| h.0 == lat && h.1 == NOW_MS - 90_000).expect("zero histogram");
    assert_eq!(zero.2.counter_reset_hint, CounterResetHint::CounterReset);
    assert_eq!((zero.2.schema, zero.2.count, zero.2.sum), (3, 0.0, 0.0));
    assert!(zero.2.positive_buckets.is_empty());

    // The next request for the counter carries the same CT: its zero sample is now older
    // than the series' newest and is skipped without failing the request.
    let next = WriteRequestData {
        series: vec![SeriesData::new([("job", "api"), ("__name__", "http_requests_total"), ("code", "200")])
            .sample(NOW_MS + 1_000, 3.0)
            .created(NOW_MS - 60_000)],
        metadata: vec![],
    };
    let mut dec = Decoder::new();
    let mut app2 = app;
    let r2 = dec.ingest(Some(CONTENT_TYPE_V2), None, &encode::encode_v2(&next), &mut app2, &limits, NOW_MS).unwrap();
    assert_eq!(r2.http_status(), 204, "{:?}", r2.error_message());
    assert_eq!((r2.created_timestamp_zeros_written, r2.samples_written), (0, 1));
    assert_eq!(app2.samples.last().map(|s| (s.1, s.2)), Some((NOW_MS + 1_000, 3.0)));
}

#[test]
fn v1_round_trips_every_field() {
    let req = full_request();
    let limits = Limits { created_timestamp_zero_ingestion: true, ..Limits::default() };
    let (report, app) = ingest(ProtoVersion::V1, &encode::encode_v1(&req), &limits);
    assert_eq!(report.version, ProtoVersion::V1);
    assert_eq!(report.created_timestamp_zeros_written, 0, "1.0 has no created timestamp");
    check_common(&report, &app);
    assert_eq!(app.metadata, req.metadata);
}

#[test]
fn decoder_reuse_across_versions_gives_identical_results() {
    let req = full_request();
    let limits = Limits::default();
    let mut dec = Decoder::new();
    let mut seen = Vec::new();
    for body in [encode::encode_v2(&req), encode::encode_v1(&req), encode::encode_v2(&req)] {
        let version = if seen.len() == 1 { ProtoVersion::V1 } else { ProtoVersion::V2 };
        let mut app = RecordingAppender::new();
        let report = dec.decode(version, &body, &limits).unwrap().ingest(&mut app, &limits, NOW_MS).unwrap();
        seen.push((report.samples_written, report.histograms_written, app.samples.len(), app.histograms));
    }
    assert_eq!(seen[0], seen[1]);
    assert_eq!(seen[0], seen[2]);
}

/// Appends a varint.
fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn field_bytes(out: &mut Vec<u8>, field: u32, b: &[u8]) {
    varint(out, u64::from(field) << 3 | 2);
    varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// A 2.0 body assembled byte by byte from the spec's field numbers, independent of prost:
/// unpacked labels_refs, a TimeSeries before the symbols it references, an unknown field in
/// every message, a packed exemplar labels_refs.
fn golden_v2_body() -> Vec<u8> {
    // Sample { value = 1: 42.5, timestamp = 2: 1000 } + unknown field 9 (varint).
    let mut sample = vec![0x09];
    sample.extend_from_slice(&42.5f64.to_le_bytes());
    sample.push(0x10);
    varint(&mut sample, 1000);
    sample.extend_from_slice(&[0x48, 0x01]);
    // Exemplar { labels_refs (packed) = [3, 4], value = 2: 0.5, timestamp = 3: 999 }
    let mut ex = vec![];
    field_bytes(&mut ex, 1, &[3, 4]);
    ex.push(0x11);
    ex.extend_from_slice(&0.5f64.to_le_bytes());
    ex.push(0x18);
    varint(&mut ex, 999);
    // Metadata { type = 1: GAUGE(2), help_ref = 3: 5, unit_ref = 4: 0 }
    let meta = [0x08, 0x02, 0x18, 0x05, 0x20, 0x00];
    // TimeSeries { labels_refs unpacked 1,2 ; 6,7 ; samples ; exemplars ; metadata ; unknown 15 (len) }
    let mut ts = vec![];
    for r in [1u8, 2, 6, 7] {
        ts.extend_from_slice(&[0x08, r]);
    }
    field_bytes(&mut ts, 2, &sample);
    field_bytes(&mut ts, 4, &ex);
    field_bytes(&mut ts, 5, &meta);
    field_bytes(&mut ts, 15, b"future");
    let mut body = vec![];
    field_bytes(&mut body, 5, &ts);
    for s in ["", "__name__", "room_temp", "trace_id", "t-1", "Room temperature.", "zone"] {
        field_bytes(&mut body, 4, s.as_bytes());
    }
    // symbol 7 after "zone": "b" (referenced by the series above).
    field_bytes(&mut body, 4, b"b");
    body
}

#[test]
fn golden_hand_assembled_v2_body() {
    let raw = golden_v2_body();
    let (report, app) = ingest(ProtoVersion::V2, &encode::compress(&raw), &Limits::default());
    assert_eq!(report.http_status(), 204, "{:?}", report.error_message());
    let series = l(&[("__name__", "room_temp"), ("zone", "b")]);
    assert_eq!(app.samples, vec![(series.clone(), 1000, 42.5)]);
    assert_eq!(app.exemplars.len(), 1);
    assert_eq!(app.exemplars[0].1.labels, l(&[("trace_id", "t-1")]));
    assert_eq!((app.exemplars[0].1.value, app.exemplars[0].1.t_ms), (0.5, 999));
    assert_eq!(
        app.metadata,
        vec![("room_temp".to_string(), Metadata { metric_type: MetricType::Gauge, help: "Room temperature.".into(), unit: "".into() })]
    );
    // The prost reference decoder agrees on the same bytes.
    use prost::Message;
    let p = ingest::remote_write::proto::v2::Request::decode(raw.as_slice()).unwrap();
    assert_eq!(p.timeseries[0].labels_refs, vec![1, 2, 6, 7]);
    assert_eq!(p.timeseries[0].samples[0].value, 42.5);
    assert_eq!(p.symbols.len(), 8);
}
