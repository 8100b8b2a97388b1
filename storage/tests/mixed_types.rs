//! A series may switch between float samples and native histograms; every sample of both
//! kinds must read back, in the head and after compaction into blocks.

use storage::db::{Db, DbOptions};
use storage::head::HeadOptions;
use storage::histogram::Span;
use storage::wal::{FsyncPolicy, WalOptions};
use storage::{Appender, FloatHistogram, Labels, Matcher, Querier, ValueType};

fn hist(count: f64) -> FloatHistogram {
    FloatHistogram {
        schema: 0,
        count,
        sum: count * 2.0,
        positive_spans: vec![Span { offset: 0, length: 2 }],
        positive_buckets: vec![count / 2.0, count / 2.0],
        ..FloatHistogram::default()
    }
}

#[derive(Debug, PartialEq)]
enum S {
    F(i64, f64),
    H(i64, f64),
}

fn read(db: &Db) -> Vec<S> {
    let q = db.querier();
    let series = q.select(&[Matcher::equal("__name__", "m")], i64::MIN, i64::MAX).unwrap();
    assert_eq!(series.len(), 1);
    let mut it = series[0].iter();
    let mut out = Vec::new();
    loop {
        match it.next() {
            ValueType::None => break,
            ValueType::Float => {
                let (t, v) = it.at();
                out.push(S::F(t, v));
            }
            ValueType::Histogram => {
                let (t, h) = it.at_histogram();
                out.push(S::H(t, h.count));
            }
        }
    }
    out
}

#[test]
fn floats_then_histograms_then_floats_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let opts = DbOptions {
        head: HeadOptions { wal: WalOptions { fsync: FsyncPolicy::Never, ..WalOptions::default() }, ..HeadOptions::default() },
        ..DbOptions::default()
    };
    let db = Db::open(dir.path(), opts.clone()).unwrap();
    let l = Labels::from_pairs([("__name__", "m")]);
    let mut app = db.appender();
    let r = app.series_ref(&l).unwrap();
    app.append(r, 0, 1.0).unwrap();
    app.append(r, 60_000, 2.0).unwrap();
    app.append(r, 120_000, 3.0).unwrap();
    app.append_histogram(r, 180_000, &hist(4.0)).unwrap();
    app.append_histogram(r, 240_000, &hist(5.0)).unwrap();
    app.append(r, 300_000, 4.0).unwrap();
    app.append(r, 360_000, 5.0).unwrap();
    app.commit().unwrap();
    let want = vec![
        S::F(0, 1.0),
        S::F(60_000, 2.0),
        S::F(120_000, 3.0),
        S::H(180_000, 4.0),
        S::H(240_000, 5.0),
        S::F(300_000, 4.0),
        S::F(360_000, 5.0),
    ];
    assert_eq!(read(&db), want, "head");
    db.close().unwrap();
    drop(db);
    let db = Db::open(dir.path(), opts).unwrap();
    assert_eq!(read(&db), want, "after restart");

    // Push the head past 1.5 block ranges so the mixed range is compacted into a block.
    let mut want = want;
    let mut app = db.appender();
    for h in 3..=6 {
        app.append_labels(&l, h * 3_600_000, h as f64).unwrap();
        want.push(S::F(h * 3_600_000, h as f64));
    }
    app.commit().unwrap();
    let stats = db.maintain(6 * 3_600_000).unwrap();
    assert!(stats.head_blocks >= 1, "{stats:?}");
    assert_eq!(read(&db), want, "after compaction into a block");
}

