//! Start timestamps end to end: appended with [`crate::Appender::append_st`], read back from
//! the head, after a WAL replay, and after the head is compacted into a block (ST chunks pass
//! through compaction unchanged); series without start timestamps keep the plain encodings.

use super::*;
use crate::api::Appender;
use crate::chunkenc::{Encoding, ValueType};
use crate::histogram::FloatHistogram;
use crate::labels::Labels;

/// One sample as read back: `(st_ms, t_ms, value or histogram count)`.
type Got = Vec<(i64, i64, f64)>;

const STEP_MS: i64 = 60_000;
const N: i64 = 300; // 5 h of 1-minute samples: the first 2 h become a block

/// The model: per series name, `(st, t, v)` for every sample.
fn model() -> Vec<(&'static str, Got)> {
    let ts = |i: i64| 1_000 + i * STEP_MS;
    // A cumulative counter that resets every 70 samples (ST constant between resets).
    let cumulative = (0..N).map(|i| (ts(i - i % 70) - 30_000, ts(i), (i % 70) as f64)).collect();
    // A delta series: ST is the previous sample's timestamp.
    let delta = (0..N).map(|i| (ts(i) - STEP_MS, ts(i), 1.0)).collect();
    // A series whose first samples have no ST, then get one (the head cuts a new chunk).
    let late = (0..N).map(|i| (if i < 50 { 0 } else { ts(50) - 1 }, ts(i), i as f64)).collect();
    let plain = (0..N).map(|i| (0, ts(i), i as f64)).collect();
    let hist = (0..N).map(|i| (ts(i - i % 100), ts(i), (i % 100) as f64)).collect();
    vec![("cumulative", cumulative), ("delta", delta), ("hist", hist), ("late", late), ("plain", plain)]
}

fn write(db: &Db) {
    let mut app = db.appender();
    for (name, samples) in model() {
        let r = app.series_ref(&Labels::from_pairs([("__name__", name)])).unwrap();
        for (st, t, v) in samples {
            if name == "hist" {
                let h = FloatHistogram { count: v, sum: v, ..FloatHistogram::default() };
                app.append_histogram_st(r, st, t, &h).unwrap();
            } else if st == 0 {
                app.append(r, t, v).unwrap();
            } else {
                app.append_st(r, st, t, v).unwrap();
            }
        }
    }
    app.commit().unwrap();
}

fn read(q: &dyn Querier) -> Vec<(&'static str, Got)> {
    let mut out = Vec::new();
    for (name, _) in model() {
        let series = q.select(&[Matcher::equal("__name__", name)], i64::MIN, i64::MAX).unwrap();
        assert_eq!(series.len(), 1, "{name}");
        assert_eq!(series[0].has_st(), name != "plain", "{name}");
        let mut it = series[0].iter();
        let mut got = Vec::new();
        loop {
            match it.next() {
                ValueType::None => break,
                ValueType::Float => got.push((it.st(), it.t(), it.at().1)),
                ValueType::Histogram => got.push((it.st(), it.t(), it.at_histogram().1.count)),
            }
        }
        out.push((name, got));
    }
    out
}

fn encodings(q: &dyn Querier, name: &str) -> Vec<Encoding> {
    let s = q.select(&[Matcher::equal("__name__", name)], i64::MIN, i64::MAX).unwrap();
    s[0].chunks.iter().map(|c| c.encoding).collect()
}

#[test]
fn start_timestamps_survive_replay_and_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), test_options()).unwrap();
    write(&db);
    assert_eq!(read(&db.querier()), model(), "head");
    assert!(encodings(&db.querier(), "plain").iter().all(|e| !e.has_st()), "no ST column without start timestamps");
    let late = encodings(&db.querier(), "late");
    assert!(!late[0].has_st() && late.last().is_some_and(|e| e.has_st()), "late: {late:?}");
    db.close().unwrap();
    drop(db);

    // WAL replay and mmap'd head chunks.
    let db = Db::open(dir.path(), test_options()).unwrap();
    assert_eq!(read(&db.querier()), model(), "after restart");

    // Head -> block.
    let stats = db.maintain(0).unwrap();
    assert!(stats.head_blocks >= 1, "{stats:?}");
    assert!(!db.blocks().is_empty());
    assert_eq!(read(&db.querier()), model(), "after compaction");
    let block = BlockQuerier::new(Arc::clone(&db.blocks()[0]));
    assert!(encodings(&block, "cumulative").iter().all(|&e| e == Encoding::FloatSt));
    assert!(encodings(&block, "hist").iter().all(|&e| e == Encoding::HistogramSt));
    assert!(encodings(&block, "plain").iter().all(|e| !e.has_st()));
    db.close().unwrap();
}
