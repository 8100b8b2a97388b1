//! Tests over every encoding: round trips (fixed and property-based, through the builders'
//! snapshots and finished chunks), seeks against a linear model, corrupt input, golden bytes,
//! and the measured size on the node-exporter-like workload.

use proptest::prelude::*;

use super::workload::{self, SeriesKind, NODE_EXPORTER_MIX};
use super::*;
use crate::histogram::{CounterResetHint, Span};

const STALE_NAN: u64 = 0x7ff0_0000_0000_0002;

fn decode_floats(enc: Encoding, b: &[u8]) -> Vec<(i64, u64)> {
    let mut it = ChunkIter::new(enc, b);
    let mut out = Vec::new();
    while it.next() == ValueType::Float {
        let (t, v) = it.at();
        assert_eq!(it.t(), t);
        out.push((t, v.to_bits()));
    }
    assert_eq!(it.err(), None, "decoding a chunk we wrote");
    out
}

fn bits_of(samples: &[(i64, f64)]) -> Vec<(i64, u64)> {
    samples.iter().map(|&(t, v)| (t, v.to_bits())).collect()
}

/// Every way a float chunk is produced must decode to the samples: snapshots after every
/// append, the finished chunk, and each encoding forced.
fn check_float_round_trip(samples: &[(i64, f64)]) {
    let mut b = FloatChunkBuilder::new();
    for (i, &(t, v)) in samples.iter().enumerate() {
        b.append(t, v);
        assert_eq!(b.len(), i + 1);
        if i % 7 == 0 || i + 1 == samples.len() {
            let (enc, bytes) = b.snapshot_bytes();
            assert_eq!(bytes.len(), b.size_bytes(), "size_bytes is exact");
            assert_eq!(decode_floats(enc, &bytes), bits_of(&samples[..=i]), "snapshot after {i}");
        }
    }
    assert_eq!(b.min_t(), samples.first().map(|s| s.0));
    assert_eq!(b.max_t(), samples.last().map(|s| s.0));
    let (enc, bytes) = b.finish();
    assert!(b.is_empty());
    assert_eq!(decode_floats(enc, &bytes), bits_of(samples));
    // A reused builder behaves like a new one.
    for &(t, v) in samples {
        b.append(t, v);
    }
    assert_eq!(b.finish(), (enc, bytes.clone()));
    assert_eq!(encode_floats(&samples.iter().map(|s| s.0).collect::<Vec<_>>(), &samples.iter().map(|s| s.1).collect::<Vec<_>>()), (enc, bytes));
}

fn check_seek(enc: Encoding, bytes: &[u8], samples: &[(i64, f64)], targets: &[i64]) {
    // Model: first sample at or after the target, never going back.
    let mut it = ChunkIter::new(enc, bytes);
    let mut pos = 0usize; // index of the model's current sample
    let mut started = false;
    for &target in targets {
        let vt = it.seek(target);
        if !started || samples[pos].0 < target {
            let from = if started { pos + 1 } else { 0 };
            match samples.iter().skip(from).position(|s| s.0 >= target) {
                Some(k) => pos = from + k,
                None => {
                    assert_eq!(vt, ValueType::None, "seek({target}) past the end");
                    return;
                }
            }
        }
        started = true;
        assert_eq!(vt, ValueType::Float, "seek({target})");
        assert_eq!((it.at().0, it.at().1.to_bits()), (samples[pos].0, samples[pos].1.to_bits()), "seek({target})");
    }
}

fn value_strategy() -> impl Strategy<Value = f64> {
    prop_oneof![
        (-1_000_000i64..1_000_000).prop_map(|m| m as f64),
        (-1_000_000i64..1_000_000, 0u32..6).prop_map(|(m, s)| m as f64 / 10f64.powi(s as i32)),
        any::<u64>().prop_map(f64::from_bits),
        Just(f64::from_bits(STALE_NAN)),
        Just(-0.0),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(9_007_199_254_740_993.0),
        Just(1e300),
    ]
}

fn samples_strategy() -> impl Strategy<Value = Vec<(i64, f64)>> {
    let ts = prop_oneof![
        // Scrape-like increasing timestamps.
        (any::<i32>(), prop::collection::vec(0i64..40_000, 0..300)).prop_map(|(t0, ds)| {
            let mut t = i64::from(t0);
            ds.into_iter()
                .map(|d| {
                    t += d;
                    t
                })
                .collect::<Vec<_>>()
        }),
        // Anything: the encoding must round-trip even unsorted extremes.
        prop::collection::vec(any::<i64>(), 0..50),
    ];
    ts.prop_flat_map(|ts| {
        let n = ts.len();
        (Just(ts), prop_oneof![
            prop::collection::vec(value_strategy(), n),
            // Runs of integer-like values with one odd value, exercising mode switches.
            (prop::collection::vec(-50i64..50, n), any::<prop::sample::Index>(), value_strategy()).prop_map(
                move |(ds, idx, odd)| {
                    let mut acc = 0i64;
                    let mut vs: Vec<f64> = ds
                        .into_iter()
                        .map(|d| {
                            acc += d;
                            acc as f64
                        })
                        .collect();
                    if n > 0 {
                        vs[idx.index(n)] = odd;
                    }
                    vs
                }
            ),
        ])
    })
    .prop_map(|(ts, vs)| ts.into_iter().zip(vs).collect())
}

fn histogram_strategy() -> impl Strategy<Value = FloatHistogram> {
    let spans = prop::collection::vec((-3i32..5, 0u32..4).prop_map(|(offset, length)| Span { offset, length }), 0..3);
    (spans.clone(), spans, 0u8..4, prop_oneof![Just(0i32), Just(3), Just(-53)], prop::collection::vec(value_strategy(), 3), any::<bool>())
        .prop_flat_map(|(ps, ns, hint, schema, base, custom)| {
            let np: usize = ps.iter().map(|s| s.length as usize).sum();
            let nn: usize = ns.iter().map(|s| s.length as usize).sum();
            (
                Just((ps, ns, hint, schema, base, custom)),
                prop::collection::vec(0u32..1000, np),
                prop::collection::vec(value_strategy(), nn),
            )
        })
        .prop_map(|((ps, ns, hint, schema, base, custom), pb, nb)| FloatHistogram {
            counter_reset_hint: CounterResetHint::from_u8(hint),
            schema,
            zero_threshold: if custom { 0.0 } else { 1e-128 },
            zero_count: base[0],
            count: base[1],
            sum: base[2],
            positive_spans: ps,
            positive_buckets: pb.into_iter().map(f64::from).collect(),
            negative_spans: ns,
            negative_buckets: nb,
            custom_values: if custom { vec![0.5, 1.0, f64::INFINITY] } else { Vec::new() },
        })
}

fn same_histogram(a: &FloatHistogram, b: &FloatHistogram) -> bool {
    let f = |x: &[f64], y: &[f64]| x.len() == y.len() && x.iter().zip(y).all(|(p, q)| p.to_bits() == q.to_bits());
    a.counter_reset_hint == b.counter_reset_hint
        && a.schema == b.schema
        && a.zero_threshold.to_bits() == b.zero_threshold.to_bits()
        && a.zero_count.to_bits() == b.zero_count.to_bits()
        && a.count.to_bits() == b.count.to_bits()
        && a.sum.to_bits() == b.sum.to_bits()
        && a.positive_spans == b.positive_spans
        && a.negative_spans == b.negative_spans
        && f(&a.positive_buckets, &b.positive_buckets)
        && f(&a.negative_buckets, &b.negative_buckets)
        && f(&a.custom_values, &b.custom_values)
}

fn check_histograms(bytes: &[u8], want: &[(i64, FloatHistogram)]) {
    let mut it = ChunkIter::new(Encoding::Histogram, bytes);
    for (t, h) in want {
        assert_eq!(it.next(), ValueType::Histogram);
        let (gt, gh) = it.at_histogram();
        assert_eq!(gt, *t);
        assert!(same_histogram(gh, h), "{gh:?} != {h:?}");
    }
    assert_eq!(it.next(), ValueType::None);
    assert_eq!(it.err(), None);
}

/// Drives any iterator over arbitrary bytes; must terminate without panicking.
fn exhaust(enc: Encoding, bytes: &[u8], seek_to: i64) {
    let mut it = ChunkIter::new(enc, bytes);
    let mut steps = 0;
    while it.next() != ValueType::None && steps < 100_000 {
        let _ = (it.at(), it.at_histogram(), it.t());
        steps += 1;
    }
    let mut it = ChunkIter::new(enc, bytes);
    let _ = it.seek(seek_to);
    let _ = (it.at(), it.err());
}

const ENCODINGS: [Encoding; 4] = [Encoding::Raw, Encoding::XorFloat, Encoding::DecimalFloat, Encoding::Histogram];

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, rng_seed: proptest::test_runner::RngSeed::Fixed(7), ..ProptestConfig::default() })]

    #[test]
    fn prop_float_round_trip(samples in samples_strategy()) {
        check_float_round_trip(&samples);
    }

    #[test]
    fn prop_float_seek_matches_model(samples in samples_strategy(), targets in prop::collection::vec(any::<i32>(), 1..8)) {
        let mut samples = samples;
        samples.sort_by_key(|s| s.0);
        samples.dedup_by_key(|s| s.0);
        let mut targets: Vec<i64> = targets.into_iter().map(|t| i64::from(t) * 4).collect();
        targets.sort();
        let ts: Vec<i64> = samples.iter().map(|s| s.0).collect();
        let vs: Vec<f64> = samples.iter().map(|s| s.1).collect();
        let (enc, bytes) = encode_floats(&ts, &vs);
        check_seek(enc, &bytes, &samples, &targets);
    }

    #[test]
    fn prop_histogram_round_trip(hs in prop::collection::vec((0i64..100_000, histogram_strategy()), 0..40), snap_at in any::<prop::sample::Index>()) {
        let mut t = 0;
        let mut want = Vec::new();
        let mut b = HistogramChunkBuilder::new();
        let snap = if hs.is_empty() { 0 } else { snap_at.index(hs.len()) };
        for (i, (d, h)) in hs.into_iter().enumerate() {
            t += d;
            b.append(t, &h);
            want.push((t, h));
            if i == snap {
                let (enc, bytes) = b.snapshot_bytes();
                prop_assert_eq!(enc, Encoding::Histogram);
                check_histograms(&bytes, &want);
            }
        }
        let (_, bytes) = b.finish();
        check_histograms(&bytes, &want);
        // Damaged copies of the chunk never panic any decoder.
        for (i, x) in [(snap, 0x5Au8), (snap * 7 + 3, 0xFF), (snap * 13 + 1, 0x01)] {
            let mut bad = bytes.clone();
            let i = i % bad.len();
            bad[i] ^= x;
            for e in ENCODINGS {
                exhaust(e, &bad, 0);
                exhaust(e, &bad[..i], i64::MAX);
            }
        }
    }

    #[test]
    fn prop_random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200), seek_to in any::<i64>()) {
        for enc in ENCODINGS {
            exhaust(enc, &bytes, seek_to);
        }
    }

    #[test]
    fn prop_mutated_chunks_never_panic(samples in samples_strategy(), flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4), cut in any::<prop::sample::Index>()) {
        let ts: Vec<i64> = samples.iter().map(|s| s.0).collect();
        let vs: Vec<f64> = samples.iter().map(|s| s.1).collect();
        let (enc, mut bytes) = encode_floats(&ts, &vs);
        for (i, x) in flips {
            let i = i.index(bytes.len());
            bytes[i] ^= x;
        }
        let cut = cut.index(bytes.len() + 1);
        for e in ENCODINGS {
            exhaust(e, &bytes[..cut], 0);
            exhaust(e, &bytes, i64::MAX);
        }
        let _ = enc;
    }
}

#[test]
fn special_values_round_trip_in_every_encoding() {
    let specials = [
        f64::from_bits(STALE_NAN),
        f64::NAN,
        f64::from_bits(0xfff8_0000_0000_0001),
        f64::INFINITY,
        f64::NEG_INFINITY,
        -0.0,
        0.0,
        f64::MIN_POSITIVE,
        f64::MAX,
        5e-324,
    ];
    for (i, &s) in specials.iter().enumerate() {
        // Integer run, then the special value, then integers again: forces decimal -> XOR.
        let mut samples: Vec<(i64, f64)> = (0..20).map(|k| (k * 15_000, (k * 3) as f64)).collect();
        samples.push((20 * 15_000, s));
        samples.extend((21..30).map(|k| (k * 15_000, k as f64)));
        check_float_round_trip(&samples);
        // The special value first.
        let first: Vec<(i64, f64)> = (0..5).map(|k| (k, if k == 0 { s } else { 1.0 })).collect();
        check_float_round_trip(&first);
        // Histograms carry it in every field.
        let h = FloatHistogram {
            schema: 1,
            zero_threshold: s,
            zero_count: s,
            count: s,
            sum: s,
            positive_spans: vec![Span { offset: -2, length: 2 }],
            positive_buckets: vec![s, 1.0],
            negative_spans: vec![Span { offset: 1, length: 1 }],
            negative_buckets: vec![s],
            custom_values: vec![s],
            counter_reset_hint: CounterResetHint::from_u8(i as u8 % 4),
        };
        let mut b = HistogramChunkBuilder::new();
        b.append(1, &h);
        b.append(2, &h);
        let (_, bytes) = b.finish();
        check_histograms(&bytes, &[(1, h.clone()), (2, h)]);
    }
}

#[test]
fn integer_mode_falls_back_on_non_integers() {
    let (enc, _) = encode_floats(&[1, 2, 3], &[1.0, 2.0, 3.0]);
    assert_eq!(enc, Encoding::DecimalFloat);
    let (enc, _) = encode_floats(&[1, 2, 3], &[1.25, 2.5, 3.75]);
    assert_eq!(enc, Encoding::DecimalFloat, "few decimals stay decimal");
    for odd in [f64::from_bits(STALE_NAN), -0.0, f64::INFINITY, 0.1 + 0.2] {
        let (enc, bytes) = encode_floats(&[1, 2, 3], &[1.0, odd, 3.0]);
        assert_eq!(enc, Encoding::XorFloat, "{odd:?}");
        assert_eq!(decode_floats(enc, &bytes)[1].1, odd.to_bits());
    }
}

#[test]
fn page_sized_deltas_use_a_factor() {
    let ts: Vec<i64> = (0..120).map(|i| i * 15_000).collect();
    let vs: Vec<f64> = (0..120i64).map(|i| ((1_000_000 + (i * 37 % 50) - 25) * 4096) as f64).collect();
    let (enc, b) = encode_floats(&ts, &vs);
    let h = float::parse_header(enc, &b).unwrap();
    assert_eq!(h.decimal.map(|d| d.1.factor), Some(4096));
    let samples: Vec<(i64, f64)> = ts.into_iter().zip(vs).collect();
    assert_eq!(decode_floats(enc, &b), bits_of(&samples));
}

#[test]
fn constant_chunks_have_no_value_stream() {
    let ts: Vec<i64> = (0..120).map(|i| i * 15_000).collect();
    let vs = vec![1.5e11; 120];
    let (enc, b) = encode_floats(&ts, &vs);
    let h = float::parse_header(enc, &b).unwrap();
    assert_eq!(h.decimal.map(|d| d.1.constant), Some(true));
    assert!(h.vals.is_empty());
    assert!(b.len() <= 15, "{} bytes", b.len());
    let samples: Vec<(i64, f64)> = ts.into_iter().zip(vs).collect();
    assert_eq!(decode_floats(enc, &b), bits_of(&samples));
    check_seek(enc, &b, &samples, &[0, 15_000 * 60, 15_000 * 200]);
}

#[test]
fn scale_rises_mid_chunk() {
    let samples = [(0, 5.0), (1, 7.0), (2, 7.5), (3, 7.25), (4, 1e-5), (5, 3.0)];
    let mut b = FloatChunkBuilder::new();
    for &(t, v) in &samples {
        b.append(t, v);
    }
    let (enc, bytes) = b.snapshot_bytes();
    assert_eq!(enc, Encoding::DecimalFloat);
    let h = float::parse_header(enc, &bytes).unwrap();
    assert_eq!(h.decimal.map(|d| d.0), Some(5), "scale: 1e-5 needs five decimals");
    check_float_round_trip(&samples);
}

/// Seeks over scrape-shaped chunks (regular and jittered timestamps, constant, idle and busy
/// values: the runs a seek jumps in one step) land where a linear model does, from fresh
/// iterators and forward from earlier positions, with `next` continuing correctly after.
#[test]
fn seek_on_workload_matches_model() {
    let mut regular = workload::node_exporter(70, SAMPLES_PER_CHUNK, 3);
    for (_, s) in regular.iter_mut().take(35) {
        for (i, x) in s.iter_mut().enumerate() {
            x.0 = 1_000 + i as i64 * 15_000;
        }
    }
    for (kind, samples) in &regular {
        let mut b = FloatChunkBuilder::new();
        samples.iter().for_each(|&(t, v)| b.append(t, v));
        for (enc, bytes) in [b.snapshot_bytes(), b.finished_bytes()] {
            let ts: Vec<i64> = samples.iter().map(|s| s.0).collect();
            for stride in [1usize, 3, 17, 60, 119] {
                let targets: Vec<i64> = ts.iter().step_by(stride).flat_map(|&t| [t - 1, t, t + 1]).collect();
                check_seek(enc, &bytes, samples, &targets);
            }
            for &from in &[0usize, 1, 59, 118, 119] {
                let mut it = ChunkIter::new(enc, &bytes);
                assert_eq!(it.seek(ts[from]), ValueType::Float, "{kind:?}");
                let mut got = vec![(it.at().0, it.at().1.to_bits())];
                while it.next() == ValueType::Float {
                    got.push((it.at().0, it.at().1.to_bits()));
                }
                assert_eq!(got, bits_of(&samples[from..]), "{kind:?} {enc:?} from {from}");
                assert_eq!(it.seek(ts[119] + 1), ValueType::None);
            }
        }
    }
}

#[test]
fn iterator_misuse_does_not_panic() {
    let (enc, bytes) = encode_floats(&[10, 20], &[1.0, 2.0]);
    let mut it = ChunkIter::new(enc, &bytes);
    assert_eq!(it.next(), ValueType::Float);
    let (t, h) = it.at_histogram();
    assert_eq!((t, h), (10, &EMPTY_HISTOGRAM));
    let mut hb = HistogramChunkBuilder::new();
    hb.append(5, &FloatHistogram { count: 3.0, ..FloatHistogram::default() });
    let (henc, hbytes) = hb.finish();
    let mut it = ChunkIter::new(henc, &hbytes);
    assert_eq!(it.next(), ValueType::Histogram);
    assert_eq!(it.at().0, 5);
    assert!(it.at().1.is_nan());
    // Exhausted iterators stay exhausted, also for seek.
    assert_eq!(it.next(), ValueType::None);
    assert_eq!(it.seek(0), ValueType::None);
    let mut it = ChunkIter::new(enc, &bytes);
    while it.next() != ValueType::None {}
    assert_eq!(it.seek(0), ValueType::None);
}

#[test]
fn reset_reuses_iterator_across_encodings() {
    let (e1, b1) = encode_floats(&[1, 2], &[1.5, 2.5]);
    let mut hb = HistogramChunkBuilder::new();
    hb.append(7, &FloatHistogram { sum: 9.0, ..FloatHistogram::default() });
    let (e2, b2) = hb.finish();
    let mut it = ChunkIter::new(e2, &b2);
    assert_eq!(it.next(), ValueType::Histogram);
    it.reset(e1, &b1);
    assert_eq!(it.next(), ValueType::Float);
    assert_eq!(it.at(), (1, 1.5));
    it.reset(e2, &b2);
    assert_eq!(it.next(), ValueType::Histogram);
    assert_eq!(it.at_histogram().1.sum, 9.0);
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Fixed samples -> exact bytes. A change here is a format change: add a new encoding byte
/// instead of editing these.
#[test]
fn golden_bytes() {
    let ts = [1_700_000_000_000i64, 1_700_000_015_000, 1_700_000_030_000, 1_700_000_045_001];
    // Decimal, delta mode (counter).
    let (enc, b) = encode_floats(&ts, &[100.0, 150.0, 151.0, 151.0]);
    assert_eq!((enc as u8, hex(&b).as_str()), (2, "0480a0abfef96200040000c801f83a9844e19440"));
    // Decimal with two decimals.
    let (enc, b) = encode_floats(&ts, &[0.5, 0.75, 1.0, 1.25]);
    assert_eq!((enc as u8, hex(&b).as_str()), (2, "0480a0abfef962000402051964f83a984488"));
    // Decimal, Rice-coded deltas (a byte counter with noisy increments).
    let ts20: Vec<i64> = (0..20).map(|i| 1_700_000_000_000 + i * 15_000).collect();
    let mut acc = 0.0;
    let vs20: Vec<f64> = (0..20u32)
        .map(|i| {
            acc += f64::from(40_000 + (i * 7919) % 30_000);
            acc
        })
        .collect();
    let (enc, b) = encode_floats(&ts20, &vs20);
    let h = float::parse_header(enc, &b).unwrap();
    assert_eq!(h.decimal.map(|d| d.1.rice.is_some()), Some(true), "noisy increments pick Rice");
    assert_eq!((enc as u8, hex(&b).as_str()), (2, "1480a0abfef96202b0ea010000030e80f104fb65e7bbcf77b5902f779eef3dded640bdde7bbcf77b5902f779eef3dded640bdde7bbdac810"));
    // XOR (stale marker in the middle).
    let (enc, b) = encode_floats(&ts, &[0.1 + 0.2, f64::from_bits(STALE_NAN), 2.0, 2.0]);
    assert_eq!((enc as u8, hex(&b).as_str()), (1, "0480a0abfef9620004f83a98443fd3333333333334c3f40233333333333373ff00000000000020"));
    // Histogram.
    let h = FloatHistogram {
        counter_reset_hint: CounterResetHint::NotCounterReset,
        schema: 3,
        zero_threshold: 1e-128,
        zero_count: 1.0,
        count: 10.0,
        sum: 42.5,
        positive_spans: vec![Span { offset: 1, length: 2 }],
        positive_buckets: vec![4.0, 5.0],
        negative_spans: vec![],
        negative_buckets: vec![],
        custom_values: vec![],
    };
    let mut h2 = h.clone();
    h2.count = 12.0;
    h2.positive_buckets[1] = 7.0;
    let mut b = HistogramChunkBuilder::new();
    b.append(ts[0], &h);
    b.append(ts[1], &h2);
    let (enc, bytes) = b.finish();
    assert_eq!((enc as u8, hex(&bytes).as_str()), (3, "0280a0abfef9620003f83a9806069d978ccf08ba5b2501020200020000824882c40afc1f821082500280600000008020"));
    // Empty chunks.
    assert_eq!(FloatChunkBuilder::new().snapshot_bytes(), (Encoding::XorFloat, vec![0]));
    assert_eq!(HistogramChunkBuilder::new().snapshot_bytes(), (Encoding::Histogram, vec![0]));
}

/// Bytes per sample of finished chunks for `n_series` workload series cut every `per_chunk`.
fn measure(per_chunk: usize, n_series: usize) -> Vec<(SeriesKind, usize, usize)> {
    let data = workload::node_exporter(n_series, 4 * 240, 42);
    let mut out = Vec::new();
    for (kind, samples) in &data {
        let mut b = FloatChunkBuilder::new();
        let mut bytes = 0;
        for chunk in samples.chunks(per_chunk) {
            for &(t, v) in chunk {
                b.append(t, v);
            }
            let (enc, c) = b.finish();
            assert_eq!(decode_floats(enc, &c), bits_of(chunk));
            bytes += c.len();
        }
        out.push((*kind, samples.len(), bytes));
    }
    out
}

#[test]
fn node_exporter_bytes_per_sample() {
    let rows = measure(SAMPLES_PER_CHUNK, 400);
    let mut total = (0usize, 0usize);
    println!("chunk bytes/sample, {SAMPLES_PER_CHUNK} samples per chunk, 15 s scrapes:");
    for (kind, _) in NODE_EXPORTER_MIX {
        let (s, b) = rows.iter().filter(|r| r.0 == kind).fold((0, 0), |a, r| (a.0 + r.1, a.1 + r.2));
        println!("  {kind:?}: {:.3}", b as f64 / s as f64);
        total = (total.0 + s, total.1 + b);
    }
    let bps = total.1 as f64 / total.0 as f64;
    println!("  node-exporter mix: {bps:.3} bytes/sample");
    let gorilla = prometheus_xor_bytes_per_sample();
    println!("  the same samples in Prometheus' XOR chunk layout: {gorilla:.3} bytes/sample");
    assert!(bps < 1.25, "chunk bytes per sample {bps:.3} leave too little of the 1.3 budget for the index");
    assert!(bps < gorilla * 0.75, "well below plain Gorilla");
}

/// Size of the workload in Prometheus' XOR chunk format (`tsdb/chunkenc/xor.go`: 2-byte
/// count, t0 varint, v0 64 bits, first delta uvarint, then dod with 14/17/20/64-bit buckets
/// and Gorilla XOR), computed from the same samples, for comparison.
fn prometheus_xor_bytes_per_sample() -> f64 {
    use super::bits::uvarint_len;
    let data = workload::node_exporter(400, 4 * 240, 42);
    let (mut samples, mut bytes) = (0usize, 0usize);
    for (_, series) in &data {
        for chunk in series.chunks(SAMPLES_PER_CHUNK) {
            let mut bits = 16 + uvarint_len(((chunk[0].0 << 1) ^ (chunk[0].0 >> 63)) as u64) * 8 + 64;
            let mut xs = float::XorState::new(chunk[0].1.to_bits());
            let mut prev_delta = 0i64;
            for i in 1..chunk.len() {
                let delta = chunk[i].0 - chunk[i - 1].0;
                bits += if i == 1 {
                    uvarint_len(delta as u64) * 8
                } else {
                    match delta - prev_delta {
                        0 => 1,
                        d if (-8191..=8192).contains(&d) => 16,
                        d if (-65535..=65536).contains(&d) => 20,
                        d if (-524287..=524288).contains(&d) => 24,
                        _ => 68,
                    }
                };
                prev_delta = delta;
                bits += xs.put(chunk[i].1.to_bits(), None);
            }
            bytes += bits.div_ceil(8);
            samples += chunk.len();
        }
    }
    bytes as f64 / samples as f64
}

#[test]
fn chunk_size_table() {
    println!("samples/chunk -> bytes/sample (node-exporter mix) and open-chunk memory:");
    let mut last = f64::MAX;
    for per_chunk in [30, 60, 120, 240] {
        let rows = measure(per_chunk, 200);
        let (s, b) = rows.iter().fold((0, 0), |a, r| (a.0 + r.1, a.1 + r.2));
        let bps = b as f64 / s as f64;
        let data = workload::node_exporter(200, per_chunk, 9);
        let mem: usize = data
            .iter()
            .map(|(_, samples)| {
                let mut bl = FloatChunkBuilder::new();
                samples.iter().for_each(|&(t, v)| bl.append(t, v));
                bl.memory_bytes()
            })
            .sum();
        println!("  {per_chunk:4}: {bps:.3} bytes/sample, full open chunk {} bytes/series", mem / data.len());
        assert!(bps <= last, "bigger chunks never compress worse on this workload");
        last = bps;
    }
}

#[test]
fn open_chunk_memory_is_small() {
    let data = workload::node_exporter(100, SAMPLES_PER_CHUNK, 3);
    let mut total = 0;
    for (kind, samples) in &data {
        let mut b = FloatChunkBuilder::new();
        for &(t, v) in samples {
            b.append(t, v);
        }
        // The head's budget is 1.5 KiB per active series for everything: the open chunk may
        // hold little beyond its encoded bytes (fixed part ~140 bytes, buffer slack <= 30 %).
        let limit = b.size_bytes() * 13 / 10 + 256;
        assert!(b.memory_bytes() <= limit, "{kind:?}: {} bytes for {} encoded", b.memory_bytes(), b.size_bytes());
        total += b.memory_bytes();
    }
    println!("full open chunk, node-exporter mix: {} bytes/series", total / data.len());
    assert!(total / data.len() <= 512);
}


#[test]
fn num_samples_reads_the_header_of_every_encoding() {
    use super::{num_samples, Encoding};
    let ts: Vec<i64> = (0..120).map(|i| i * 15_000).collect();
    let decimal: Vec<f64> = (0..120).map(|i| i as f64 * 0.5).collect();
    let xor: Vec<f64> = (0..120).map(|i| (i as f64).sqrt()).collect();
    for vs in [&decimal, &xor] {
        let (enc, bytes) = super::encode_floats(&ts, vs);
        assert_eq!(num_samples(enc, &bytes), Ok(120), "{enc:?}");
    }
    let (enc, bytes) = super::encode_floats(&[], &[]);
    assert_eq!(num_samples(enc, &bytes), Ok(0));
    let mut raw = 7u32.to_le_bytes().to_vec();
    raw.extend_from_slice(&[0; 7 * 16]);
    assert_eq!(num_samples(Encoding::Raw, &raw), Ok(7));
    let mut h = super::HistogramChunkBuilder::default();
    for i in 0..5 {
        h.append(i * 1000, &crate::histogram::FloatHistogram { count: i as f64, ..Default::default() });
    }
    let (enc, bytes) = h.finish();
    assert_eq!(num_samples(enc, &bytes), Ok(5));
    assert!(num_samples(Encoding::Raw, &[1, 0]).is_err());
    assert!(num_samples(Encoding::XorFloat, &[]).is_err());
    assert!(num_samples(Encoding::XorFloat, &[0xff; 11]).is_err());
}
