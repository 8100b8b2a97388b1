//! Tests of [`super::st`]: samples and start timestamps round-trip through snapshots and
//! finished chunks, seeks, the column's cost per shape, corrupt chunks never panic, golden
//! bytes.

use proptest::prelude::*;

use super::st::StColumnWriter;
use super::workload::SplitMix64;
use super::*;
use crate::histogram::{CounterResetHint, FloatHistogram};

fn decode(enc: Encoding, b: &[u8]) -> Vec<(i64, i64, u64)> {
    let mut it = ChunkIter::new(enc, b);
    let mut out = Vec::new();
    while it.next() == ValueType::Float {
        let (t, v) = it.at();
        out.push((it.st(), t, v.to_bits()));
    }
    assert_eq!(it.err(), None);
    out
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Samples `(st, t, v)` of one of the shapes the column codes specially, or arbitrary.
fn samples_strategy() -> impl Strategy<Value = Vec<(i64, i64, f64)>> {
    (0u8..4, prop::collection::vec((1i64..100_000, -1_000_000i64..1_000_000, any::<i32>()), 0..150)).prop_map(
        |(shape, raw)| {
            let mut t = 1_700_000_000_000i64;
            let mut prev_t = 0;
            let mut out = Vec::new();
            for (i, (dt, st_off, v)) in raw.into_iter().enumerate() {
                t += dt;
                let st = match shape {
                    0 => 1_699_999_000_000,                            // cumulative
                    1 => prev_t,                                       // delta (0 first)
                    2 if i % 7 == 3 => 0,                              // mixed with unknown
                    _ => t.wrapping_add(st_off),                       // arbitrary
                };
                out.push((st, t, f64::from(v) / 4.0));
                prev_t = t;
            }
            out
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn prop_float_st_round_trip(samples in samples_strategy(), snap_at in any::<prop::sample::Index>()) {
        let mut b = FloatStChunkBuilder::new();
        let cut = if samples.is_empty() { 0 } else { snap_at.index(samples.len() + 1) };
        let want: Vec<(i64, i64, u64)> = samples.iter().map(|&(st, t, v)| (st, t, v.to_bits())).collect();
        for (i, &(st, t, v)) in samples.iter().enumerate() {
            if i == cut {
                let (enc, bytes) = b.snapshot_bytes();
                prop_assert_eq!(decode(enc, &bytes), want[..i].to_vec());
            }
            b.append(st, t, v);
        }
        let (enc, bytes) = b.finish();
        prop_assert_eq!(enc, Encoding::FloatSt);
        prop_assert_eq!(num_samples(enc, &bytes), Ok(samples.len() as u32));
        prop_assert_eq!(decode(enc, &bytes), want.clone());
        // Seek to every sample's timestamp and one past it.
        for (k, &(st, t, _)) in samples.iter().enumerate() {
            let mut it = ChunkIter::new(enc, &bytes);
            prop_assert_eq!(it.seek(t), ValueType::Float);
            prop_assert_eq!((it.st(), it.at().0), (st, t));
            let vt = it.seek(t + 1);
            if k + 1 < samples.len() {
                prop_assert_eq!(vt, ValueType::Float);
                prop_assert_eq!(it.st(), samples[k + 1].0);
            } else {
                prop_assert_eq!(vt, ValueType::None);
            }
        }
    }

    #[test]
    fn prop_mutated_st_chunks_never_panic(samples in samples_strategy(), flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4), cut in any::<prop::sample::Index>()) {
        let mut b = FloatStChunkBuilder::new();
        for &(st, t, v) in &samples {
            b.append(st, t, v);
        }
        let (enc, mut bytes) = b.finish();
        for (i, x) in flips {
            let i = i.index(bytes.len());
            bytes[i] ^= x;
        }
        let end = cut.index(bytes.len() + 1);
        for e in [Encoding::FloatSt, Encoding::HistogramSt] {
            let mut it = ChunkIter::new(e, &bytes[..end]);
            let mut n = 0;
            while it.next() != ValueType::None && n < 1_000 {
                let _ = (it.at(), it.st(), it.at_histogram());
                n += 1;
            }
            let _ = it.err();
            let mut it = ChunkIter::new(enc, &bytes[..end]);
            let _ = it.seek(1_700_000_050_000);
        }
    }
}

#[test]
fn histogram_st_round_trip_and_reset() {
    let mut b = HistogramStChunkBuilder::new();
    let hs: Vec<FloatHistogram> = (0..10).map(|i| FloatHistogram { count: f64::from(i), sum: f64::from(i) * 2.0, ..Default::default() }).collect();
    for (i, h) in hs.iter().enumerate() {
        let t = 1000 * (i as i64 + 1);
        b.append_with_hint(t - 1000, t, h, CounterResetHint::Unknown);
    }
    let (enc, bytes) = b.finish();
    assert_eq!(enc, Encoding::HistogramSt);
    assert_eq!(num_samples(enc, &bytes), Ok(10));
    // Reuse one iterator across a plain and an ST histogram chunk.
    let mut plain = HistogramChunkBuilder::new();
    plain.append(5, &hs[3]);
    let (penc, pbytes) = plain.finish();
    let mut it = ChunkIter::new(penc, &pbytes);
    assert_eq!(it.next(), ValueType::Histogram);
    assert_eq!(it.st(), 0, "plain chunks report no ST");
    for _ in 0..2 {
        it.reset(enc, &bytes);
        for (i, h) in hs.iter().enumerate() {
            assert_eq!(it.next(), ValueType::Histogram);
            let t = 1000 * (i as i64 + 1);
            assert_eq!(it.st(), t - 1000);
            assert_eq!(it.at_histogram().0, t);
            assert_eq!(it.at_histogram().1.count, h.count);
        }
        assert_eq!(it.next(), ValueType::None);
        assert_eq!(it.err(), None);
    }
    let mut it = ChunkIter::new(enc, &bytes);
    assert_eq!(it.seek(4500), ValueType::Histogram);
    assert_eq!((it.st(), it.t()), (4000, 5000));
}

/// The column's cost per sample for the two common shapes and an irregular one (printed and
/// bounded): what an ST series pays on top of its plain chunk.
#[test]
fn st_column_bits_per_sample() {
    let n = 120i64;
    let ts: Vec<i64> = (0..n).map(|i| 1_700_000_000_000 + i * 15_000 + (i * 37) % 50).collect();
    let col_bits = |sts: &[i64]| {
        let mut w = StColumnWriter::default();
        for (&st, &t) in sts.iter().zip(&ts) {
            w.append(st, t);
        }
        w.bit_len()
    };
    let cumulative: Vec<i64> = vec![1_699_999_990_000; n as usize];
    let delta: Vec<i64> = std::iter::once(ts[0] - 15_000).chain(ts[..n as usize - 1].iter().copied()).collect();
    let irregular: Vec<i64> = ts.iter().enumerate().map(|(i, t)| t - 1_000 - (i as i64 % 5) * 300).collect();
    let c = col_bits(&cumulative);
    let d = col_bits(&delta);
    let r = col_bits(&irregular);
    println!(
        "st column bits/sample over {n} samples: cumulative {:.3}, delta {:.3}, irregular {:.3}",
        c as f64 / n as f64,
        d as f64 / n as f64,
        r as f64 / n as f64
    );
    // The first sample is explicit (2 + varbit bits); every other costs 1 (cumulative) or 2.
    assert!(c as i64 <= 2 + 64 + (n - 1), "cumulative: {c} bits");
    assert!(d as i64 <= 2 + 64 + 2 * (n - 1), "delta: {d} bits");
    assert_eq!(c - col_bits(&cumulative[..1]), n as usize - 1, "cumulative: 1 bit per later sample");
    assert_eq!(d - col_bits(&delta[..1]), 2 * (n as usize - 1), "delta: 2 bits per later sample");
    // Whole-chunk overhead against the plain encoding.
    let vs: Vec<f64> = (0..n).map(|i| (i * 60) as f64).collect();
    let (_, plain) = encode_floats(&ts, &vs);
    let with_cum = encode_floats_st(&ts, &vs, &cumulative);
    let with_delta = encode_floats_st(&ts, &vs, &delta);
    println!(
        "chunk bytes: plain {}, cumulative ST {} (+{:.2} bits/sample), delta ST {} (+{:.2} bits/sample)",
        plain.len(),
        with_cum.len(),
        (with_cum.len() - plain.len()) as f64 * 8.0 / n as f64,
        with_delta.len(),
        (with_delta.len() - plain.len()) as f64 * 8.0 / n as f64
    );
    assert!(with_cum.len() - plain.len() <= 8 + (n as usize).div_ceil(8) + 8);
    assert!(with_delta.len() - plain.len() <= 8 + (2 * n as usize).div_ceil(8) + 8);
    assert!(r > d, "irregular starts cost more than the coded shapes");
}

#[test]
fn corrupt_st_chunks_are_errors() {
    let ts = [1000i64, 2000, 3000];
    let b = encode_floats_st(&ts, &[1.0, 2.0, 3.0], &[500, 500, 2000]);
    assert_eq!(decode(Encoding::FloatSt, &b), vec![(500, 1000, 1f64.to_bits()), (500, 2000, 2f64.to_bits()), (2000, 3000, 3f64.to_bits())]);
    let mut r = SplitMix64::new(11);
    for _ in 0..2_000 {
        let mut c = b.clone();
        let i = r.below(c.len() as u64) as usize;
        c[i] ^= 1 + r.below(255) as u8;
        let mut it = ChunkIter::new(Encoding::FloatSt, &c);
        let mut steps = 0;
        while it.next() != ValueType::None && steps < 100 {
            steps += 1;
        }
    }
    // Unknown version, mismatched inner encoding, truncated column.
    let mut c = b.clone();
    c[1] = 9;
    let mut it = ChunkIter::new(Encoding::FloatSt, &c);
    assert_eq!(it.next(), ValueType::None);
    assert!(it.err().is_some());
    let mut c = b.clone();
    c[2] = Encoding::Histogram as u8;
    let mut it = ChunkIter::new(Encoding::FloatSt, &c);
    assert_eq!(it.next(), ValueType::None);
    assert!(it.err().is_some());
    let mut it = ChunkIter::new(Encoding::HistogramSt, &b);
    assert_eq!(it.next(), ValueType::None, "a float ST chunk is not a histogram ST chunk");
    let mut it = ChunkIter::new(Encoding::FloatSt, &b[..b.len() - 1]);
    let mut got = 0;
    while it.next() == ValueType::Float {
        got += 1;
    }
    assert!(got < 3 && it.err().is_some(), "truncated column: {got} samples, {:?}", it.err());
}

/// Fixed samples -> exact bytes. A change here is a format change: add a new encoding byte
/// instead of editing these.
#[test]
fn golden_bytes() {
    let ts = [1_700_000_000_000i64, 1_700_000_015_000, 1_700_000_030_000, 1_700_000_045_000];
    let vs = [1.0, 2.0, 3.0, 4.0];
    // Cumulative: one explicit ST, then "same".
    let b = encode_floats_st(&ts, &vs, &[1_699_999_990_000; 4]);
    assert_eq!(hex(&b), "040102100480a0abfef96202b0ea010000010288fef63c00");
    // Delta: explicit first, then "previous t".
    let b = encode_floats_st(&ts, &vs, &[1_699_999_985_000, ts[0], ts[1], ts[2]]);
    assert_eq!(hex(&b), "040102100480a0abfef96202b0ea010000010288fef15a2a");
    // No ST at all: "same as 0" for every sample.
    let b = encode_floats_st(&ts, &vs, &[0; 4]);
    assert_eq!(hex(&b), "040102100480a0abfef96202b0ea01000001028800");
}
