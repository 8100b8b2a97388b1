//! Property tests: the decoder never panics on arbitrary bytes (raw, snappy-wrapped, or a valid
//! body with mutations), and for random valid requests the zero-copy walker ingests exactly
//! what prost's reference decoding of the same bytes says. (Also the crate's stand-in for the
//! cargo-fuzz targets in `/work/main/fuzz`, which need a nightly toolchain.)

use ingest::remote_write::proto::{v1 as pb1, v2 as pb2};
use ingest::remote_write::{
    encode, Decoder, HistogramValue, IntHistogram, Limits, NoopAppender, ProtoVersion, RecordingAppender, SeriesData,
    WriteRequestData,
};
use proptest::prelude::*;
use prost::Message;
use storage::histogram::Span;
use storage::Labels;

const NOW_MS: i64 = 1_700_000_000_000;

fn feed(version: ProtoVersion, body: &[u8]) {
    let limits = Limits { max_decompressed_bytes: 1 << 20, ..Limits::default() };
    let mut dec = Decoder::new();
    let mut app = NoopAppender::default();
    if let Ok(report) = dec.decode(version, body, &limits).and_then(|r| r.ingest(&mut app, &limits, NOW_MS)) {
        // Whatever was accepted was counted consistently.
        assert_eq!(report.samples_written, app.samples);
        assert_eq!(report.histograms_written, app.histograms);
        assert_eq!(report.exemplars_written, app.exemplars);
    }
}

fn version() -> impl Strategy<Value = ProtoVersion> {
    prop_oneof![Just(ProtoVersion::V1), Just(ProtoVersion::V2)]
}

fn int_histogram() -> impl Strategy<Value = IntHistogram> {
    (prop::collection::vec(0u64..1000, 0..6), -4i32..=8, 0u64..50, prop::option::of(0.0f64..1e6)).prop_map(|(buckets, schema, zero, sum)| {
        IntHistogram {
            schema,
            zero_count: zero,
            count: zero + buckets.iter().sum::<u64>(),
            sum: sum.unwrap_or(f64::NAN),
            positive_spans: if buckets.is_empty() { vec![] } else { vec![Span { offset: -1, length: buckets.len() as u32 }] },
            positive_buckets: buckets,
            ..Default::default()
        }
    })
}

/// Random valid requests: distinct series (an `i` label), increasing timestamps.
fn request() -> impl Strategy<Value = WriteRequestData> {
    let series = (
        prop::sample::select(vec!["up", "node_cpu_seconds_total", "http_requests_total", "a:b_c"]),
        prop::collection::vec((prop::sample::select(vec!["job", "instance", "mode", "zone", "_x"]), "[a-zA-Z0-9 /.ü-]{0,12}"), 0..5),
        prop::collection::vec((1i64..1_000_000, any::<f64>()), 0..5),
        prop::collection::vec(int_histogram(), 0..3),
        prop::collection::vec(("[a-f0-9]{1,16}", -1e9f64..1e9), 0..3),
    );
    prop::collection::vec(series, 0..20).prop_map(|all| {
        let mut out = Vec::new();
        for (i, (name, extra, samples, hists, exemplars)) in all.into_iter().enumerate() {
            let mut labels: Vec<(String, String)> = vec![("__name__".into(), name.into()), ("i".into(), i.to_string())];
            for (k, v) in extra {
                if !labels.iter().any(|(n, _)| n == k) {
                    labels.push((k.into(), v));
                }
            }
            let mut s = SeriesData::new(labels);
            let mut t = NOW_MS - 10_000_000;
            if hists.is_empty() {
                for (dt, v) in samples {
                    t += dt;
                    s = s.sample(t, v);
                }
            } else {
                for h in hists {
                    t += 1_000;
                    s = s.histogram(t, HistogramValue::Int(h));
                }
            }
            for (j, (trace, v)) in exemplars.into_iter().enumerate() {
                s = s.exemplar([("trace_id", trace)], v, NOW_MS - 100 + j as i64);
            }
            out.push(s);
        }
        WriteRequestData { series: out, metadata: vec![] }
    })
}

/// What prost's decoding of `raw` says should be appended: `(labels, t_ms, value bits)` per
/// float sample and `(labels, t_ms, count, positive buckets)` per histogram.
type Expected = (Vec<(Labels, i64, u64)>, Vec<(Labels, i64, f64, Vec<f64>)>, usize);

fn undelta(d: &[i64]) -> Vec<f64> {
    let mut c = 0i64;
    d.iter().map(|x| {
        c += x;
        c as f64
    }).collect()
}

fn expected(version: ProtoVersion, raw: &[u8]) -> Expected {
    let mut samples = vec![];
    let mut hists = vec![];
    let mut exemplars = 0;
    let mut push = |labels: Labels, s: Vec<(i64, f64)>, h: Vec<(i64, f64, Vec<f64>)>, ex: usize| {
        samples.extend(s.into_iter().map(|(t, v)| (labels.clone(), t, v.to_bits())));
        hists.extend(h.into_iter().map(|(t, c, b)| (labels.clone(), t, c, b)));
        exemplars += ex;
    };
    let count = |c: &Option<pb2::histogram::Count>| match c {
        Some(pb2::histogram::Count::CountInt(c)) => *c as f64,
        _ => f64::NAN,
    };
    match version {
        ProtoVersion::V1 => {
            let r = pb1::WriteRequest::decode(raw).unwrap();
            for ts in r.timeseries {
                let labels = Labels::from_pairs(ts.labels.iter().map(|l| (l.name.clone(), l.value.clone())));
                let h = ts.histograms.iter().map(|h| {
                    let c = match h.count {
                        Some(pb1::histogram::Count::CountInt(c)) => c as f64,
                        _ => f64::NAN,
                    };
                    (h.timestamp, c, undelta(&h.positive_deltas))
                });
                push(labels, ts.samples.iter().map(|s| (s.timestamp, s.value)).collect(), h.collect(), ts.exemplars.len());
            }
        }
        ProtoVersion::V2 => {
            let r = pb2::Request::decode(raw).unwrap();
            for ts in r.timeseries {
                let sym = |i: &u32| r.symbols[*i as usize].clone();
                let labels = Labels::from_pairs(ts.labels_refs.chunks(2).map(|p| (sym(&p[0]), sym(&p[1]))));
                let h = ts.histograms.iter().map(|h| (h.timestamp, count(&h.count), undelta(&h.positive_deltas)));
                push(labels, ts.samples.iter().map(|s| (s.timestamp, s.value)).collect(), h.collect(), ts.exemplars.len());
            }
        }
    }
    (samples, hists, exemplars)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(v in version(), bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        feed(v, &bytes);
    }

    #[test]
    fn random_protobuf_never_panics(v in version(), bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        feed(v, &encode::compress(&bytes));
    }

    #[test]
    fn mutated_valid_bodies_never_panic(
        v in version(),
        req in request(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let mut raw = match v {
            ProtoVersion::V1 => encode::build_v1(&req).encode_to_vec(),
            ProtoVersion::V2 => encode::build_v2(&req).encode_to_vec(),
        };
        if !raw.is_empty() {
            for (i, b) in flips {
                let at = i.index(raw.len());
                raw[at] = b;
            }
        }
        feed(v, &encode::compress(&raw));
    }

    #[test]
    fn walker_agrees_with_prost(v in version(), req in request()) {
        let raw = match v {
            ProtoVersion::V1 => encode::build_v1(&req).encode_to_vec(),
            ProtoVersion::V2 => encode::build_v2(&req).encode_to_vec(),
        };
        let (want_samples, want_hists, want_exemplars) = expected(v, &raw);
        let limits = Limits { max_labels_per_series: 64, ..Limits::default() };
        let mut app = RecordingAppender::new();
        let report = Decoder::new()
            .decode(v, &encode::compress(&raw), &limits)
            .and_then(|r| r.ingest(&mut app, &limits, NOW_MS))
            .unwrap();
        prop_assert_eq!(report.http_status(), 204, "{:?}", report.error_message());
        let got: Vec<_> = app.samples.iter().map(|(l, t, v)| (l.clone(), *t, v.to_bits())).collect();
        prop_assert_eq!(got, want_samples);
        let got: Vec<_> = app.histograms.iter().map(|(l, t, h)| (l.clone(), *t, h.count, h.positive_buckets.clone())).collect();
        prop_assert_eq!(got, want_hists);
        prop_assert_eq!(report.exemplars_written as usize, want_exemplars);
    }
}
