//! Tests of [`super::seek_points`]: seeks into seekable chunks match a linear model and plain
//! chunks, every sample decodes, corrupt tables never panic, golden bytes.

use proptest::prelude::*;

use super::seek_points::{with_seek_points, SEEK_POINT_INTERVAL};
use super::workload::{self, SplitMix64};
use super::*;

fn columns(samples: &[(i64, f64)]) -> (Vec<i64>, Vec<f64>) {
    (samples.iter().map(|s| s.0).collect(), samples.iter().map(|s| s.1).collect())
}

fn all(enc: Encoding, b: &[u8]) -> Vec<(i64, u64)> {
    let mut it = ChunkIter::new(enc, b);
    let mut out = Vec::new();
    while it.next() == ValueType::Float {
        out.push((it.at().0, it.at().1.to_bits()));
    }
    assert_eq!(it.err(), None);
    out
}

/// Seeks from a fresh iterator to `t` and then reads `k` more samples.
fn seek_read(enc: Encoding, b: &[u8], t: i64, k: usize) -> Vec<(i64, u64)> {
    let mut it = ChunkIter::new(enc, b);
    let mut out = Vec::new();
    if it.seek(t) != ValueType::Float {
        return out;
    }
    out.push((it.at().0, it.at().1.to_bits()));
    while out.len() <= k && it.next() == ValueType::Float {
        out.push((it.at().0, it.at().1.to_bits()));
    }
    assert_eq!(it.err(), None);
    out
}

/// Noisy samples every decoder state matters for: XOR with windows, decimal deltas, decimal
/// delta-of-deltas, Rice.
fn noisy(kind: u8, n: usize, seed: u64) -> Vec<(i64, f64)> {
    let mut r = SplitMix64::new(seed);
    let mut acc = 0i64;
    let mut d = 0i64;
    (0..n)
        .map(|i| {
            let t = 1_700_000_000_000 + i as i64 * 15_000 + r.range(-3, 3);
            let v = match kind {
                0 => r.unit() * 1e6,
                1 => {
                    acc += r.range(0, 100_000);
                    acc as f64
                }
                2 => {
                    d += r.range(-5, 5);
                    acc += d;
                    acc as f64 / 100.0
                }
                _ => {
                    acc += r.range(-20, 20);
                    acc as f64
                }
            };
            (t, v)
        })
        .collect()
}

fn check_all_seeks(samples: &[(i64, f64)]) {
    let (ts, vs) = columns(samples);
    let (enc, plain) = encode_floats(&ts, &vs);
    let (senc, seekable) = with_seek_points(enc, plain.clone());
    assert_eq!(all(senc, &seekable), all(enc, &plain));
    assert_eq!(num_samples(senc, &seekable), Ok(samples.len() as u32));
    for i in (0..samples.len()).step_by(7).chain([samples.len() - 1]) {
        for t in [ts[i] - 1, ts[i], ts[i] + 1] {
            assert_eq!(seek_read(senc, &seekable, t, 3), seek_read(enc, &plain, t, 3), "seek({t}) at {i}");
        }
    }
    // Several seeks on one iterator, forward only, crossing points.
    let mut a = ChunkIter::new(senc, &seekable);
    let mut b = ChunkIter::new(enc, &plain);
    for i in (5..samples.len()).step_by(53) {
        assert_eq!(a.seek(ts[i]), b.seek(ts[i]));
        assert_eq!(a.at().1.to_bits(), b.at().1.to_bits(), "at {i}");
        assert_eq!(a.next(), b.next());
        assert_eq!(a.at().1.to_bits(), b.at().1.to_bits(), "after {i}");
    }
}

#[test]
fn seekable_chunks_seek_like_plain_ones() {
    for kind in 0..4u8 {
        let samples = noisy(kind, 480, 11 + u64::from(kind));
        let (ts, vs) = columns(&samples);
        let (enc, plain) = encode_floats(&ts, &vs);
        let (senc, seekable) = with_seek_points(enc, plain.clone());
        assert_eq!(senc, Encoding::SeekableFloat, "kind {kind}: a noisy 480-sample chunk gets points");
        // Three points (120, 240, 360) of at most ~13 bytes each, plus the wrapper header.
        assert!(seekable.len() <= plain.len() + 3 * 14 + 6, "kind {kind}: {} vs {}", seekable.len(), plain.len());
        check_all_seeks(&samples);
    }
    for (kind, samples) in workload::node_exporter(40, 480, 5) {
        let (ts, vs) = columns(&samples);
        let (enc, plain) = encode_floats(&ts, &vs);
        let (senc, seekable) = with_seek_points(enc, plain.clone());
        assert_eq!(all(senc, &seekable), all(enc, &plain), "{kind:?}");
        check_all_seeks(&samples);
    }
}

#[test]
fn short_and_repetitive_chunks_stay_plain() {
    let n = SEEK_POINT_INTERVAL as usize;
    let ts: Vec<i64> = (0..n as i64).map(|i| i * 15_000).collect();
    let (enc, b) = encode_floats(&ts, &vec![1.5; n]);
    assert_eq!(with_seek_points(enc, b.clone()), (enc, b));
    // Long but constant: the value stream is empty, no point is worth its bytes.
    let ts: Vec<i64> = (0..480).map(|i| i * 15_000).collect();
    let (enc, b) = encode_floats(&ts, &[7.0; 480]);
    assert_eq!(with_seek_points(enc, b.clone()), (enc, b));
    // Not a float chunk.
    let raw = raw::encode(&ts, &[7.0; 480]);
    assert_eq!(with_seek_points(Encoding::Raw, raw.clone()), (Encoding::Raw, raw));
}

#[test]
fn corrupt_seekable_chunks_never_panic() {
    let samples = noisy(0, 300, 3);
    let (ts, vs) = columns(&samples);
    let (enc, plain) = encode_floats(&ts, &vs);
    let (senc, b) = with_seek_points(enc, plain);
    assert_eq!(senc, Encoding::SeekableFloat);
    let mut r = SplitMix64::new(9);
    for round in 0..2_000 {
        let mut c = b.clone();
        // Mostly the header and table, where the new code parses.
        let span = if round % 2 == 0 { 40.min(c.len()) } else { c.len() };
        for _ in 0..1 + r.below(3) {
            let i = r.below(span as u64) as usize;
            c[i] ^= 1 + r.below(255) as u8;
        }
        let cut = if round % 5 == 0 { r.below(c.len() as u64 + 1) as usize } else { c.len() };
        for t in [ts[0], ts[130], ts[250], ts[299] + 1] {
            let mut it = ChunkIter::new(senc, &c[..cut]);
            let mut steps = 0;
            let _ = it.seek(t);
            while it.next() != ValueType::None && steps < 1_000 {
                steps += 1;
            }
            let _ = (it.at(), it.err());
        }
    }
    // Unknown version and a non-float inner encoding are errors, not samples.
    let mut c = b.clone();
    let vpos = 2; // after n = 300, two uvarint bytes
    c[vpos] = 9;
    let mut it = ChunkIter::new(senc, &c);
    assert_eq!(it.next(), ValueType::None);
    assert!(it.err().is_some());
    let mut c = b.clone();
    c[vpos + 1] = 3;
    let mut it = ChunkIter::new(senc, &c);
    assert_eq!(it.next(), ValueType::None);
    assert!(it.err().is_some());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, rng_seed: proptest::test_runner::RngSeed::Fixed(13), ..ProptestConfig::default() })]

    #[test]
    fn prop_seekable_seek_matches_plain(kind in 0u8..4, n in 121usize..700, seed in any::<u64>(), picks in prop::collection::vec(any::<prop::sample::Index>(), 1..6)) {
        let samples = noisy(kind, n, seed);
        let (ts, vs) = columns(&samples);
        let (enc, plain) = encode_floats(&ts, &vs);
        let (senc, seekable) = with_seek_points(enc, plain.clone());
        let mut targets: Vec<i64> = picks.iter().map(|p| ts[p.index(n)]).collect();
        targets.sort();
        let mut a = ChunkIter::new(senc, &seekable);
        let mut b = ChunkIter::new(enc, &plain);
        for t in targets {
            prop_assert_eq!(a.seek(t), b.seek(t));
            prop_assert_eq!(a.at().1.to_bits(), b.at().1.to_bits());
            prop_assert_eq!(a.next(), b.next());
            prop_assert_eq!(a.at().1.to_bits(), b.at().1.to_bits());
        }
        prop_assert_eq!(a.err(), None);
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Fixed samples -> exact wrapper header and seek point table. A change here is a format
/// change: bump the version byte instead of editing these.
#[test]
fn golden_seek_point_tables() {
    let ts: Vec<i64> = (0..250).map(|i| 1_700_000_000_000 + i * 15_000).collect();
    // XOR: values with all mantissa bits in play.
    let vs: Vec<f64> = (0..250).map(|i| f64::from(i) * 1.1 + 0.123_456_789_012_345_6 * f64::from(i * i % 17)).collect();
    let (enc, plain) = encode_floats(&ts, &vs);
    assert_eq!(enc, Encoding::XorFloat);
    let (senc, b) = with_seek_points(enc, plain.clone());
    assert_eq!(senc as u8, 4);
    let head = &b[..b.len() - plain.len()];
    assert_eq!(&b[head.len()..], &plain[..], "the inner chunk follows unchanged");
    assert_eq!(hex(head), "fa0101011a78843d0100cdcccccccc5c604078f83c0100d6da391460707040");
    // Decimal delta-of-deltas.
    let mut acc = 0i64;
    let vs: Vec<f64> = (0..250i64)
        .map(|i| {
            acc += 1000 + (i * 7919) % 611;
            acc as f64
        })
        .collect();
    let (enc, plain) = encode_floats(&ts, &vs);
    let (senc, b) = with_seek_points(enc, plain.clone());
    assert_eq!((enc as u8, senc as u8), (2, 4));
    assert_eq!(hex(&b[..b.len() - plain.len()]), "fa0101021078d607ba9813de1278a207b6a726bc15");
}

/// The open chunk's snapshots carry seek points once the value stream is long enough, and a
/// seek into a snapshot at any length and any target reads what a linear scan reads (XOR,
/// decimal, and a decimal stream rewritten as XOR mid-chunk, which drops the points).
#[test]
fn open_chunk_snapshots_seek_like_a_scan() {
    let mut rng = SplitMix64::new(11);
    let mut sets: Vec<Vec<(i64, f64)>> =
        workload::node_exporter(40, SAMPLES_PER_CHUNK, 5).into_iter().map(|(_, s)| s).collect();
    // Decimal for 50 samples, then a full-precision value: the builder switches to XOR.
    let mut switch: Vec<(i64, f64)> = (0..50).map(|k| (k * 15_000, (k * 7919 % 1000) as f64)).collect();
    switch.push((50 * 15_000, std::f64::consts::PI));
    switch.extend((51..120).map(|k| (k * 15_000, rng.unit() * 1e6)));
    sets.push(switch);
    let mut seekable = 0;
    for samples in &sets {
        let mut b = FloatChunkBuilder::new();
        for (i, &(t, v)) in samples.iter().enumerate() {
            b.append(t, v);
            if i % 5 != 4 && i + 1 != samples.len() {
                continue;
            }
            let (enc, bytes) = b.snapshot_bytes();
            assert_eq!(bytes.len(), b.size_bytes());
            seekable += usize::from(enc == Encoding::SeekableFloat);
            let want = all(enc, &bytes);
            assert_eq!(want.len(), i + 1);
            assert_eq!(want, samples[..=i].iter().map(|&(t, v)| (t, v.to_bits())).collect::<Vec<_>>());
            for (j, &(t, _)) in samples[..=i].iter().enumerate().step_by(3) {
                assert_eq!(seek_read(enc, &bytes, t, 3), want[j..(j + 4).min(want.len())].to_vec(), "len {} seek {j}", i + 1);
                // Between two samples: lands on the later one.
                assert_eq!(seek_read(enc, &bytes, t - 1, 0), want[j..=j].to_vec());
            }
            assert!(seek_read(enc, &bytes, samples[i].0 + 1, 0).is_empty());
        }
        // Cutting the chunk drops the points: the finished chunk is a plain encoding.
        let (enc, _) = b.finish();
        assert!(matches!(enc, Encoding::XorFloat | Encoding::DecimalFloat), "{enc:?}");
        b.append(0, 1.0);
        assert_eq!(b.snapshot_bytes().0, Encoding::DecimalFloat);
    }
    assert!(seekable > 100, "only {seekable} snapshots had seek points");
}
