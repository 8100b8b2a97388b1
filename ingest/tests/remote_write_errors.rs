//! Bad input: every whole-request error with its exact kind and HTTP status, and every
//! per-series/per-sample rejection with its kind, the 400 it calls for, and the valid rest of
//! the request still appended.

use ingest::remote_write::proto::v2 as pb2;
use ingest::remote_write::{
    encode, Decoder, HistogramValue, IngestError, IngestReport, IntHistogram, ItemKind, Limits, NameValidation,
    ProtoVersion, RecordingAppender, Rejection, SeriesData, WriteRequestData, CONTENT_TYPE_V1, CONTENT_TYPE_V2,
};
use prost::Message;
use storage::histogram::Span;
use storage::{AppendError, Labels};

const NOW_MS: i64 = 1_700_000_000_000;

fn run(version: ProtoVersion, body: &[u8], limits: &Limits) -> (Result<IngestReport, IngestError>, RecordingAppender) {
    run_with(version, body, limits, RecordingAppender::new())
}

fn run_with(version: ProtoVersion, body: &[u8], limits: &Limits, mut app: RecordingAppender) -> (Result<IngestReport, IngestError>, RecordingAppender) {
    let mut dec = Decoder::new();
    let res = dec.decode(version, body, limits).and_then(|r| r.ingest(&mut app, limits, NOW_MS));
    (res, app)
}

fn good() -> SeriesData {
    SeriesData::new([("__name__", "up"), ("job", "ok")]).sample(NOW_MS, 1.0)
}

/// Sends `bad` between two valid series in both protocol versions and checks the rejection.
fn rejects_series(bad: SeriesData, limits: &Limits, want: Rejection) {
    let req = WriteRequestData {
        series: vec![good(), bad, SeriesData::new([("__name__", "up"), ("job", "ok2")]).sample(NOW_MS, 2.0)],
        metadata: vec![],
    };
    for (version, body) in [(ProtoVersion::V1, encode::encode_v1(&req)), (ProtoVersion::V2, encode::encode_v2(&req))] {
        let (res, app) = run(version, &body, limits);
        let report = res.expect("request-level success");
        assert_eq!(report.http_status(), 400, "{version:?}");
        assert_eq!(report.series_rejected, 1);
        assert_eq!(report.samples_rejected, 1);
        assert_eq!(report.samples_written, 2, "valid series are still written");
        assert_eq!(app.samples.len(), 2);
        assert_eq!(report.rejections.len(), 1);
        assert_eq!(report.rejections[0].kind, ItemKind::Series);
        assert_eq!(report.rejections[0].rejection, want, "{version:?}");
        assert_eq!(report.rejections[0].rejection.http_status(), 400);
        assert!(report.error_message().unwrap().contains(&want.to_string()));
    }
}

fn one(pairs: &[(&str, &str)]) -> SeriesData {
    SeriesData::new(pairs.iter().copied()).sample(NOW_MS, 5.0)
}

#[test]
fn label_violations() {
    let d = Limits::default();
    rejects_series(one(&[("__name__", "m"), ("", "v")]), &d, Rejection::EmptyLabelName);
    rejects_series(one(&[("__name__", "m"), ("bad-name", "v")]), &d, Rejection::InvalidLabelName { name: "bad-name".into() });
    rejects_series(one(&[("__name__", "m"), ("1abc", "v")]), &d, Rejection::InvalidLabelName { name: "1abc".into() });
    rejects_series(one(&[("__name__", "bad metric")]), &d, Rejection::InvalidMetricName { name: "bad metric".into() });
    rejects_series(one(&[("__name__", "m"), ("a", "1"), ("a", "2")]), &d, Rejection::DuplicateLabelName { name: "a".into() });
    rejects_series(one(&[("job", "x")]), &d, Rejection::MissingMetricName);
    rejects_series(one(&[("__name__", ""), ("job", "x")]), &d, Rejection::MissingMetricName);
    let many: Vec<(String, String)> = (0..31).map(|i| (format!("l{i:02}"), "v".to_string())).chain([("__name__".into(), "m".into())]).collect();
    let many_ref: Vec<(&str, &str)> = many.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    rejects_series(one(&many_ref), &d, Rejection::TooManyLabels { count: 32, limit: 30 });
    let long_name = "n".repeat(1025);
    rejects_series(one(&[("__name__", "m"), (&long_name, "v")]), &d, Rejection::LabelNameTooLong { len_bytes: 1025, limit_bytes: 1024 });
    let long_value = "v".repeat(2049);
    rejects_series(
        one(&[("__name__", "m"), ("path", &long_value)]),
        &d,
        Rejection::LabelValueTooLong { name: "path".into(), len_bytes: 2049, limit_bytes: 2048 },
    );
}

#[test]
fn utf8_validation_accepts_what_legacy_refuses() {
    let limits = Limits { name_validation: NameValidation::Utf8, ..Limits::default() };
    let req = WriteRequestData { series: vec![one(&[("__name__", "http.requests"), ("service.name", "a")])], metadata: vec![] };
    let (res, app) = run(ProtoVersion::V2, &encode::encode_v2(&req), &limits);
    assert_eq!(res.unwrap().http_status(), 204);
    assert_eq!(app.series[0], Labels::from_pairs([("__name__", "http.requests"), ("service.name", "a")]));
}

#[test]
fn unsorted_labels_are_sorted_and_empty_values_dropped() {
    let req = WriteRequestData { series: vec![one(&[("z", "1"), ("__name__", "m"), ("a", ""), ("b", "2")])], metadata: vec![] };
    let (res, app) = run(ProtoVersion::V1, &encode::encode_v1(&req), &Limits::default());
    assert_eq!(res.unwrap().http_status(), 204);
    assert_eq!(app.series[0].to_string(), r#"{__name__="m", b="2", z="1"}"#);
}

fn v2_body(symbols: &[&str], refs: Vec<u32>) -> Vec<u8> {
    let req = pb2::Request {
        symbols: symbols.iter().map(|s| s.to_string()).collect(),
        timeseries: vec![
            pb2::TimeSeries { labels_refs: refs, samples: vec![pb2::Sample { value: 1.0, timestamp: NOW_MS }], ..Default::default() },
            pb2::TimeSeries { labels_refs: vec![1, 2], samples: vec![pb2::Sample { value: 2.0, timestamp: NOW_MS }], ..Default::default() },
        ],
    };
    encode::compress(&req.encode_to_vec())
}

#[test]
fn bad_symbol_refs() {
    let syms = ["", "__name__", "up"];
    let (res, app) = run(ProtoVersion::V2, &v2_body(&syms, vec![1, 99]), &Limits::default());
    let report = res.unwrap();
    assert_eq!(report.http_status(), 400);
    assert_eq!(report.rejections[0].rejection, Rejection::BadSymbolRef { symbol_ref: 99, symbols: 3 });
    assert_eq!(app.samples.len(), 1, "the valid series is still written");

    let (res, _) = run(ProtoVersion::V2, &v2_body(&syms, vec![1, 2, 1]), &Limits::default());
    assert_eq!(res.unwrap().rejections[0].rejection, Rejection::OddLabelRefs { len: 3 });

    // Metadata and exemplar refs are checked too.
    let req = pb2::Request {
        symbols: syms.iter().map(|s| s.to_string()).collect(),
        timeseries: vec![pb2::TimeSeries {
            labels_refs: vec![1, 2],
            samples: vec![pb2::Sample { value: 1.0, timestamp: NOW_MS }],
            exemplars: vec![pb2::Exemplar { labels_refs: vec![7, 8], value: 1.0, timestamp: NOW_MS }],
            metadata: Some(pb2::Metadata { r#type: 1, help_ref: 50, unit_ref: 0 }),
            created_timestamp: 0,
            histograms: vec![],
        }],
    };
    let (res, app) = run(ProtoVersion::V2, &encode::compress(&req.encode_to_vec()), &Limits::default());
    let report = res.unwrap();
    assert_eq!(report.http_status(), 400);
    assert_eq!(report.samples_written, 1);
    let kinds: Vec<_> = report.rejections.iter().map(|r| (r.kind, r.rejection.clone())).collect();
    assert_eq!(
        kinds,
        vec![
            (ItemKind::Exemplar, Rejection::BadSymbolRef { symbol_ref: 7, symbols: 3 }),
            (ItemKind::Metadata, Rejection::BadSymbolRef { symbol_ref: 50, symbols: 3 }),
        ]
    );
    assert!(app.metadata.is_empty());
}

#[test]
fn future_and_out_of_order_samples() {
    let req = WriteRequestData {
        series: vec![SeriesData::new([("__name__", "m")])
            .sample(NOW_MS - 10, 1.0)
            .sample(NOW_MS - 20, 2.0)
            .sample(NOW_MS - 10, 3.0)
            .sample(NOW_MS + 600_001, 4.0)
            .sample(NOW_MS + 600_000, 5.0)],
        metadata: vec![],
    };
    let (res, app) = run(ProtoVersion::V2, &encode::encode_v2(&req), &Limits::default());
    let report = res.unwrap();
    assert_eq!(report.http_status(), 400);
    assert_eq!((report.samples_written, report.samples_rejected), (2, 3));
    let got: Vec<_> = report.rejections.iter().map(|r| (r.kind, r.t_ms, r.rejection.reason())).collect();
    assert_eq!(
        got,
        vec![
            (ItemKind::Sample, Some(NOW_MS - 20), "out_of_order"),
            (ItemKind::Sample, Some(NOW_MS - 10), "duplicate_timestamp"),
            (ItemKind::Sample, Some(NOW_MS + 600_001), "too_far_in_future"),
        ]
    );
    assert_eq!(app.samples.iter().map(|s| s.2).collect::<Vec<_>>(), vec![1.0, 5.0]);
}

#[test]
fn storage_series_limit_passes_through() {
    let req = WriteRequestData { series: vec![good(), one(&[("__name__", "second")])], metadata: vec![] };
    let app = RecordingAppender::with_max_series(1);
    let (res, app) = run_with(ProtoVersion::V1, &encode::encode_v1(&req), &Limits::default(), app);
    let report = res.unwrap();
    assert_eq!(report.http_status(), 400);
    assert_eq!(report.rejections[0].rejection, Rejection::Append(AppendError::SeriesLimitTotal { limit: 1 }));
    assert_eq!(report.rejections[0].series, r#"{__name__="second"}"#);
    assert_eq!(app.samples.len(), 1);
}

#[test]
fn exemplar_refusals_do_not_fail_the_request() {
    let long = "x".repeat(200);
    let req = WriteRequestData {
        series: vec![SeriesData::new([("__name__", "m")])
            .sample(NOW_MS, 1.0)
            .exemplar([("trace_id", "b")], 1.0, NOW_MS)
            .exemplar([("trace_id", "a")], 1.0, NOW_MS - 5)
            .exemplar([("trace_id", long.as_str())], 1.0, NOW_MS + 1)],
        metadata: vec![],
    };
    let (res, app) = run(ProtoVersion::V2, &encode::encode_v2(&req), &Limits::default());
    let report = res.unwrap();
    assert_eq!(report.http_status(), 204);
    assert_eq!((report.exemplars_written, report.exemplars_rejected), (1, 2));
    assert_eq!(report.rejections[0].rejection, Rejection::Append(AppendError::ExemplarOutOfOrder { t_ms: NOW_MS - 5 }));
    assert_eq!(report.rejections[1].rejection, Rejection::ExemplarLabelsTooLong { runes: 208, limit: 128 });
    assert_eq!(app.exemplars.len(), 1);
}

fn hist(h: IntHistogram) -> WriteRequestData {
    WriteRequestData { series: vec![SeriesData::new([("__name__", "h")]).histogram(NOW_MS, HistogramValue::Int(h))], metadata: vec![] }
}

#[test]
fn invalid_histograms() {
    let base = IntHistogram {
        schema: 0,
        count: 3,
        positive_spans: vec![Span { offset: 0, length: 2 }],
        positive_buckets: vec![1, 2],
        ..Default::default()
    };
    let cases = [
        (IntHistogram { count: 4, ..base.clone() }, "observation count does not match the sum of the bucket counts"),
        (IntHistogram { positive_spans: vec![Span { offset: 0, length: 3 }], ..base.clone() }, "positive spans do not match positive bucket count"),
        (IntHistogram { schema: 9, ..base.clone() }, "schema out of range -4..=8"),
        (
            IntHistogram { positive_spans: vec![Span { offset: 0, length: 1 }, Span { offset: -1, length: 1 }], ..base.clone() },
            "span has a negative offset",
        ),
        (IntHistogram { schema: -53, ..base.clone() }, "custom-bucket histogram without custom_values"),
        (IntHistogram { schema: -53, custom_values: vec![1.0], positive_spans: vec![Span { offset: 1, length: 2 }], ..base.clone() }, "custom-bucket span points past the +Inf bucket"),
        (IntHistogram { schema: -53, custom_values: vec![2.0, 1.0], ..base.clone() }, "custom bucket bounds are not strictly ascending"),
    ];
    for (h, want) in cases {
        let (res, app) = run(ProtoVersion::V2, &encode::encode_v2(&hist(h)), &Limits::default());
        let report = res.unwrap();
        assert_eq!(report.http_status(), 400, "{want}");
        assert_eq!(report.rejections[0].kind, ItemKind::Histogram);
        assert_eq!(report.rejections[0].rejection, Rejection::InvalidHistogram(want));
        assert!(app.histograms.is_empty());
    }
    // A wire-level negative absolute count (deltas going below zero).
    let req = pb2::Request {
        symbols: vec!["".into(), "__name__".into(), "h".into()],
        timeseries: vec![pb2::TimeSeries {
            labels_refs: vec![1, 2],
            histograms: vec![pb2::Histogram {
                count: Some(pb2::histogram::Count::CountInt(1)),
                positive_spans: vec![pb2::BucketSpan { offset: 0, length: 2 }],
                positive_deltas: vec![2, -3],
                timestamp: NOW_MS,
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let (res, _) = run(ProtoVersion::V2, &encode::compress(&req.encode_to_vec()), &Limits::default());
    assert_eq!(res.unwrap().rejections[0].rejection, Rejection::InvalidHistogram("negative bucket count"));
}

#[test]
fn corrupt_snappy_is_400() {
    let body = encode::encode_v2(&WriteRequestData { series: vec![good()], metadata: vec![] });
    let mut bad = body.clone();
    let n = bad.len();
    bad.truncate(n - 3);
    for b in [bad, vec![0x05, 0xff, 0xff, 0xff], vec![0xff; 12], vec![]] {
        let (res, app) = run(ProtoVersion::V2, &b, &Limits::default());
        let e = res.unwrap_err();
        assert!(matches!(e, IngestError::Snappy { .. }), "{e:?}");
        assert_eq!(e.http_status(), 400);
        assert!(app.samples.is_empty());
    }
}

#[test]
fn truncated_protobuf_is_400_and_appends_nothing() {
    let req = WriteRequestData { series: vec![good(), good().sample(NOW_MS + 1, 2.0)], metadata: vec![] };
    for (version, raw) in [
        (ProtoVersion::V1, encode::build_v1(&req).encode_to_vec()),
        (ProtoVersion::V2, encode::build_v2(&req).encode_to_vec()),
    ] {
        for cut in 1..raw.len() {
            let (res, app) = run(version, &encode::compress(&raw[..cut]), &Limits::default());
            // Some cuts fall on a message boundary and leave a shorter valid request.
            if let Err(e) = res {
                assert!(matches!(e, IngestError::Protobuf { .. }), "{e:?}");
                assert_eq!(e.http_status(), 400);
                assert!(app.samples.is_empty(), "nothing appended from a malformed body");
            }
        }
        // Cutting inside the last series is always an error.
        let (res, _) = run(version, &encode::compress(&raw[..raw.len() - 1]), &Limits::default());
        assert!(matches!(res, Err(IngestError::Protobuf { .. })));
    }
}

#[test]
fn wrong_wire_type_is_400() {
    // WriteRequest field 1 (timeseries) sent as a varint.
    let (res, _) = run(ProtoVersion::V1, &encode::compress(&[0x08, 0x01]), &Limits::default());
    assert_eq!(res.unwrap_err(), IngestError::Protobuf { reason: "wrong wire type for field", offset: 1 });
}

#[test]
fn over_limit_body_is_413_before_decompressing() {
    let body = encode::encode_v1(&WriteRequestData { series: vec![good(); 50], metadata: vec![] });
    let raw_len = snap::raw::decompress_len(&body).unwrap();
    let limits = Limits { max_decompressed_bytes: raw_len - 1, ..Limits::default() };
    let (res, _) = run(ProtoVersion::V1, &body, &limits);
    let e = res.unwrap_err();
    assert_eq!(e, IngestError::BodyTooLarge { decompressed_bytes: raw_len as u64, limit_bytes: raw_len as u64 - 1 });
    assert_eq!(e.http_status(), 413);
    assert!(e.to_string().contains(&format!("limit of {} bytes", raw_len - 1)));
    // A 5-byte body whose header claims 1 GiB is refused from the header alone.
    let mut lie = Vec::new();
    let mut v: u64 = 1 << 30;
    while v >= 0x80 {
        lie.push((v as u8) | 0x80);
        v >>= 7;
    }
    lie.push(v as u8);
    let (res, _) = run(ProtoVersion::V1, &lie, &Limits::default());
    assert_eq!(res.unwrap_err(), IngestError::BodyTooLarge { decompressed_bytes: 1 << 30, limit_bytes: 32 << 20 });
    // Exactly at the limit is fine.
    let limits = Limits { max_decompressed_bytes: raw_len, ..Limits::default() };
    assert!(run(ProtoVersion::V1, &body, &limits).0.is_ok());
    assert!(Limits::default().max_compressed_body_bytes() > 32 << 20);
}

#[test]
fn wrong_content_type_or_encoding_is_415() {
    let body = encode::encode_v2(&WriteRequestData { series: vec![good()], metadata: vec![] });
    let mut dec = Decoder::new();
    let mut app = RecordingAppender::new();
    let l = Limits::default();
    for (ct, enc) in [
        (Some("application/json"), Some("snappy")),
        (Some("text/plain"), None),
        (Some("application/x-protobuf;proto=io.prometheus.write.v3.Request"), Some("snappy")),
        (Some(CONTENT_TYPE_V2), Some("gzip")),
        (Some(CONTENT_TYPE_V1), Some("zstd")),
    ] {
        let e = dec.ingest(ct, enc, &body, &mut app, &l, NOW_MS).unwrap_err();
        assert_eq!(e.http_status(), 415, "{ct:?} {enc:?}");
        assert!(matches!(e, IngestError::UnsupportedMediaType { .. } | IngestError::UnsupportedEncoding { .. }));
    }
    assert!(app.samples.is_empty());
    // A 2.0 body announced as 1.0: its fields 4 and 5 are unknown to 1.0 and skipped, so it
    // is an empty 1.0 request (the 2.0 proto reserves 1..3 so that the reverse is empty too).
    let r = dec.ingest(Some(CONTENT_TYPE_V1), Some("snappy"), &body, &mut app, &l, NOW_MS).unwrap();
    assert_eq!((r.samples_written, r.http_status()), (0, 204));
}
