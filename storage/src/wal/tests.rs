//! WAL tests: writer/reader round trips, segment rollover, torn and corrupt tails,
//! checkpoints, group commit, and proptests over random record sequences and damage.

use std::path::Path;
use std::sync::Arc;

use proptest::prelude::*;

use super::*;
use crate::api::{Metadata, MetricType, SeriesRef};
use crate::histogram::{FloatHistogram, Span};
use crate::labels::Labels;
use crate::metrics::StorageMetrics;

fn read_all(dir: &Path) -> (Vec<Record>, ReplayStats) {
    let m = StorageMetrics::default();
    let mut out = Vec::new();
    let stats = replay(dir, &m, |p| {
        out.push(Record::decode(p)?);
        Ok(())
    })
    .expect("replay");
    (out, stats)
}

fn opts(segment_bytes: u64, fsync: FsyncPolicy) -> WalOptions {
    WalOptions { segment_bytes, fsync }
}

fn samples(r: u64, t0: i64, n: usize) -> Record {
    Record::Samples((0..n).map(|i| RefSample { series_ref: SeriesRef(r), t_ms: t0 + i as i64, v: i as f64, st_ms: 0 }).collect())
}

fn series(r: u64, name: &str) -> Record {
    Record::Series(vec![RefSeries { series_ref: SeriesRef(r), labels: Labels::from_pairs([("__name__", name)]) }])
}

fn commit(w: &WalWriter, recs: &[Record]) {
    let mut buf = Vec::new();
    for r in recs {
        r.encode(&mut buf);
    }
    w.commit(&buf).expect("commit");
}

#[test]
fn round_trip_across_segments_and_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let m = Arc::new(StorageMetrics::default());
    let mut want = Vec::new();
    {
        let w = WalWriter::open(dir.path(), opts(256, FsyncPolicy::Never), 1, m.clone()).unwrap();
        for i in 0..20u64 {
            let recs = [series(i, "a"), samples(i, 1000, 5)];
            commit(&w, &recs);
            want.extend(recs);
        }
    }
    {
        let w = WalWriter::open(dir.path(), opts(256, FsyncPolicy::Always), 1, m.clone()).unwrap();
        let recs = [samples(3, 5000, 2)];
        commit(&w, &recs);
        want.extend(recs);
    }
    assert!(list_segments(dir.path()).unwrap().len() > 5, "small segments roll over");
    let (got, stats) = read_all(dir.path());
    assert_eq!(got, want);
    assert_eq!(stats.corruptions, 0);
    assert!(StorageMetrics::get(&m.wal_fsyncs) >= 1);
}

#[test]
fn buffered_series_precede_the_next_commit() {
    let dir = tempfile::tempdir().unwrap();
    let w = WalWriter::open(dir.path(), WalOptions::default(), 1, Arc::new(StorageMetrics::default())).unwrap();
    w.buffer(|b| series(1, "x").encode(b));
    commit(&w, &[samples(1, 10, 1)]);
    drop(w);
    let (got, _) = read_all(dir.path());
    assert_eq!(got, vec![series(1, "x"), samples(1, 10, 1)]);
}

#[test]
fn torn_tail_drops_only_the_last_record_and_replay_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let m = Arc::new(StorageMetrics::default());
    {
        let w = WalWriter::open(dir.path(), opts(1 << 20, FsyncPolicy::Never), 1, m.clone()).unwrap();
        commit(&w, &[samples(1, 0, 3)]);
        commit(&w, &[samples(1, 3, 3)]);
    }
    // Tear the last record of segment 1.
    let p = dir.path().join("00000001");
    let len = std::fs::metadata(&p).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
    f.set_len(len - 5).unwrap();
    drop(f);
    // The next start writes a new segment; its records are read after the damaged one.
    {
        let w = WalWriter::open(dir.path(), opts(1 << 20, FsyncPolicy::Never), 1, m.clone()).unwrap();
        commit(&w, &[samples(2, 9, 1)]);
    }
    let (got, stats) = read_all(dir.path());
    assert_eq!(got, vec![samples(1, 0, 3), samples(2, 9, 1)]);
    assert_eq!(stats.corruptions, 1);
}

#[test]
fn corrupt_middle_record_drops_rest_of_segment_only() {
    let dir = tempfile::tempdir().unwrap();
    let m = Arc::new(StorageMetrics::default());
    {
        let w = WalWriter::open(dir.path(), opts(1 << 20, FsyncPolicy::Never), 1, m.clone()).unwrap();
        commit(&w, &[samples(1, 0, 1)]);
        commit(&w, &[samples(1, 1, 1)]);
        commit(&w, &[samples(1, 2, 1)]);
        w.cut_segment().unwrap();
        commit(&w, &[samples(1, 3, 1)]);
    }
    let p = dir.path().join("00000001");
    let mut data = std::fs::read(&p).unwrap();
    let rec_len = (data.len() - 8) / 3;
    data[8 + rec_len + 12] ^= 0x40; // a payload byte of the second record
    std::fs::write(&p, &data).unwrap();
    let (got, stats) = read_all(dir.path());
    assert_eq!(got, vec![samples(1, 0, 1), samples(1, 3, 1)]);
    assert_eq!(stats.corruptions, 1);
    assert_eq!(StorageMetrics::get(&m.wal_corruptions), 0, "the writer's metrics are separate");
}

#[test]
fn unknown_segment_version_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut hdr = segment::segment_header().to_vec();
    hdr[4] = 9;
    std::fs::write(dir.path().join("00000001"), &hdr).unwrap();
    let m = StorageMetrics::default();
    let err = replay(dir.path(), &m, |_| Ok(())).unwrap_err();
    assert!(matches!(err, crate::StorageError::UnsupportedVersion { version: 9, .. }), "{err}");
}

#[test]
fn golden_segment_bytes() {
    let dir = tempfile::tempdir().unwrap();
    {
        let w = WalWriter::open(dir.path(), opts(1 << 20, FsyncPolicy::Never), 1, Arc::new(StorageMetrics::default()))
            .unwrap();
        commit(&w, &[Record::Samples(vec![RefSample { series_ref: SeriesRef(1), t_ms: 2, v: 0.5, st_ms: 0 }])]);
    }
    let data = std::fs::read(dir.path().join("00000001")).unwrap();
    #[rustfmt::skip]
    let want: Vec<u8> = {
        let payload: Vec<u8> = vec![
            2, 1,
            1, 0, 0, 0, 0, 0, 0, 0,
            2, 0, 0, 0, 0, 0, 0, 0,
            0, 0, 0, 0, 0, 0, 0, 0, 0xe0, 0x3f,
        ];
        let mut v = b"HWAL\x01\x00\x00\x00".to_vec();
        v.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        v.extend_from_slice(&crc32c::crc32c(&payload).to_le_bytes());
        v.extend_from_slice(&payload);
        v
    };
    assert_eq!(data, want);
}

#[test]
fn checkpoint_keeps_live_series_and_recent_samples_and_deletes_old_segments() {
    let dir = tempfile::tempdir().unwrap();
    let m = Arc::new(StorageMetrics::default());
    let w = WalWriter::open(dir.path(), opts(1 << 20, FsyncPolicy::Always), 1, m.clone()).unwrap();
    let meta = |h: &str| Metadata { metric_type: MetricType::Gauge, help: h.into(), unit: String::new() };
    let mut buf = Vec::new();
    series(1, "keep").encode(&mut buf);
    series(2, "drop").encode(&mut buf);
    Record::Metadata(vec![RefMetadata { metric: "keep".into(), metadata: meta("old") }]).encode(&mut buf);
    w.commit(&buf).unwrap();
    commit(&w, &[samples(1, 0, 10), samples(2, 0, 10)]);
    let closed = w.cut_segment().unwrap();
    commit(&w, &[Record::Metadata(vec![RefMetadata { metric: "keep".into(), metadata: meta("new") }])]);
    let closed2 = w.cut_segment().unwrap();
    commit(&w, &[samples(1, 10, 1)]);
    assert_eq!(closed, 1);

    let st = checkpoint(dir.path(), closed, &|r| r == SeriesRef(1), 5, &m).unwrap();
    assert_eq!((st.series_kept, st.series_dropped, st.samples_kept, st.samples_dropped), (1, 1, 5, 15));
    assert!(!dir.path().join("00000001").exists());
    // A second checkpoint reads the first one plus segment 2.
    checkpoint(dir.path(), closed2, &|r| r == SeriesRef(1), 8, &m).unwrap();
    assert_eq!(list_checkpoints(dir.path()).unwrap().len(), 1);
    drop(w);
    let (got, stats) = read_all(dir.path());
    assert_eq!(stats.checkpoint, Some(closed2));
    assert_eq!(
        got,
        vec![
            Record::MinValidTime(8),
            series(1, "keep"),
            Record::Samples((8..10).map(|i| RefSample { series_ref: SeriesRef(1), t_ms: i, v: i as f64, st_ms: 0 }).collect()),
            Record::Metadata(vec![RefMetadata { metric: "keep".into(), metadata: meta("new") }]),
            Record::Samples(vec![RefSample { series_ref: SeriesRef(1), t_ms: 10, v: 0.0, st_ms: 0 }]),
        ]
    );
    assert_eq!(StorageMetrics::get(&m.checkpoints), 2);
}

#[test]
fn group_commit_from_many_threads() {
    let dir = tempfile::tempdir().unwrap();
    let m = Arc::new(StorageMetrics::default());
    let w = Arc::new(WalWriter::open(dir.path(), opts(4096, FsyncPolicy::Always), 1, m.clone()).unwrap());
    std::thread::scope(|s| {
        for th in 0..4u64 {
            let w = &w;
            s.spawn(move || {
                for i in 0..50 {
                    commit(w, &[samples(th, i * 10, 2)]);
                }
            });
        }
    });
    drop(w);
    let (got, _) = read_all(dir.path());
    assert_eq!(got.len(), 200);
    for th in 0..4u64 {
        let mine: Vec<&Record> =
            got.iter().filter(|r| matches!(r, Record::Samples(v) if v[0].series_ref.0 == th)).collect();
        assert_eq!(mine.len(), 50, "each thread's commits are all there, in its order");
        for (i, r) in mine.iter().enumerate() {
            assert_eq!(**r, samples(th, i as i64 * 10, 2));
        }
    }
    assert!(StorageMetrics::get(&m.wal_fsyncs) <= 200 + 1);
}

#[test]
fn interval_policy_syncs_on_close() {
    let dir = tempfile::tempdir().unwrap();
    let m = Arc::new(StorageMetrics::default());
    let w = WalWriter::open(dir.path(), opts(1 << 20, FsyncPolicy::Interval(std::time::Duration::from_secs(3600))), 1, m.clone())
        .unwrap();
    commit(&w, &[samples(1, 0, 1)]);
    drop(w);
    assert!(StorageMetrics::get(&m.wal_fsyncs) >= 1);
    assert_eq!(read_all(dir.path()).0, vec![samples(1, 0, 1)]);
}

// ---------------------------------------------------------------------------------------------
// Property tests
// ---------------------------------------------------------------------------------------------

fn arb_labels() -> impl Strategy<Value = Labels> {
    proptest::collection::btree_map("[a-z_]{1,6}", "[a-zA-Z0-9 \u{e9}]{1,6}", 1..4).prop_map(Labels::from_pairs)
}

fn arb_f64() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>(),
        Just(crate::stale_nan()),
        any::<u64>().prop_map(f64::from_bits),
    ]
}

fn arb_histogram() -> impl Strategy<Value = FloatHistogram> {
    (any::<u8>(), -4i32..=8, proptest::collection::vec(arb_f64(), 0..4), arb_f64()).prop_map(|(hint, schema, b, sum)| {
        FloatHistogram {
            counter_reset_hint: crate::histogram::CounterResetHint::from_u8(hint % 4),
            schema,
            zero_threshold: 0.001,
            zero_count: 1.0,
            count: 3.0,
            sum,
            positive_spans: if b.is_empty() { vec![] } else { vec![Span { offset: -1, length: b.len() as u32 }] },
            positive_buckets: b,
            negative_spans: vec![],
            negative_buckets: vec![],
            custom_values: vec![],
        }
    })
}

fn arb_record() -> impl Strategy<Value = Record> {
    let r = 0u64..u64::MAX;
    let t = any::<i64>();
    prop_oneof![
        proptest::collection::vec((r.clone(), arb_labels()), 1..4)
            .prop_map(|v| Record::Series(v.into_iter().map(|(r, l)| RefSeries { series_ref: SeriesRef(r), labels: l }).collect())),
        proptest::collection::vec((r.clone(), t, arb_f64()), 1..20).prop_map(|v| Record::Samples(
            v.into_iter().map(|(r, t, v)| RefSample { series_ref: SeriesRef(r), t_ms: t, v, st_ms: 0 }).collect()
        )),
        proptest::collection::vec((r.clone(), t, arb_histogram()), 1..3).prop_map(|v| Record::Histograms(
            v.into_iter().map(|(r, t, h)| RefHistogramSample { series_ref: SeriesRef(r), t_ms: t, h, st_ms: 0 }).collect()
        )),
        proptest::collection::vec((r, t, arb_f64(), arb_labels()), 1..3).prop_map(|v| Record::Exemplars(
            v.into_iter().map(|(r, t, value, labels)| RefExemplar { series_ref: SeriesRef(r), t_ms: t, value, labels }).collect()
        )),
        proptest::collection::vec(("[a-z:_]{1,8}", 0u8..8, ".{0,10}", "[a-z]{0,4}"), 1..3).prop_map(|v| Record::Metadata(
            v.into_iter()
                .map(|(metric, ty, help, unit)| RefMetadata {
                    metric,
                    metadata: Metadata {
                        metric_type: [
                            MetricType::Unknown,
                            MetricType::Counter,
                            MetricType::Gauge,
                            MetricType::Histogram,
                            MetricType::GaugeHistogram,
                            MetricType::Summary,
                            MetricType::Info,
                            MetricType::StateSet
                        ][ty as usize],
                        help,
                        unit
                    },
                })
                .collect()
        )),
    ]
}

/// Records compared bit-wise (NaN payloads included) via their encoding.
fn encoded(recs: &[Record]) -> Vec<Vec<u8>> {
    recs.iter()
        .map(|r| {
            let mut b = Vec::new();
            r.encode(&mut b);
            b
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn random_records_round_trip(recs in proptest::collection::vec(arb_record(), 1..30), seg in 64u64..4096) {
        let dir = tempfile::tempdir().unwrap();
        {
            let w = WalWriter::open(dir.path(), opts(seg, FsyncPolicy::Never), 1, Arc::new(StorageMetrics::default())).unwrap();
            for chunk in recs.chunks(3) {
                commit(&w, chunk);
            }
        }
        let (got, stats) = read_all(dir.path());
        prop_assert_eq!(stats.corruptions, 0);
        prop_assert_eq!(encoded(&got), encoded(&recs));
    }

    #[test]
    fn damaged_last_record_never_loses_earlier_ones(
        recs in proptest::collection::vec(arb_record(), 2..12),
        cut in any::<prop::sample::Index>(),
        flip in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        {
            let w = WalWriter::open(dir.path(), opts(1 << 20, FsyncPolicy::Never), 1, Arc::new(StorageMetrics::default())).unwrap();
            for r in &recs {
                commit(&w, std::slice::from_ref(r));
            }
        }
        let p = dir.path().join("00000001");
        let mut data = std::fs::read(&p).unwrap();
        let mut last = Vec::new();
        recs.last().unwrap().encode(&mut last);
        let last_start = data.len() - last.len();
        if truncate {
            let keep = last_start + cut.index(last.len());
            data.truncate(keep);
        } else {
            let i = last_start + flip.index(last.len());
            data[i] ^= 0x5a;
        }
        std::fs::write(&p, &data).unwrap();
        let m = StorageMetrics::default();
        let mut got = Vec::new();
        replay(dir.path(), &m, |pl| { got.push(Record::decode(pl)?); Ok(()) }).unwrap();
        let n = recs.len() - 1;
        prop_assert!(got.len() == n || got.len() == n + 1);
        prop_assert_eq!(encoded(&got[..n]), encoded(&recs[..n]));
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        let dir = tempfile::tempdir().unwrap();
        let mut seg = segment::segment_header().to_vec();
        seg.extend_from_slice(&data);
        std::fs::write(dir.path().join("00000001"), &seg).unwrap();
        let m = StorageMetrics::default();
        let _ = replay(dir.path(), &m, |pl| Record::decode(pl).map(|_| ()));
    }
}
