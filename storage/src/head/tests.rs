//! Head unit tests: append rules, limits, commit/rollback visibility, chunk cutting, reads,
//! restart, truncation, exemplars and metadata.

use std::sync::Arc;

use super::*;
use crate::api::{Appender, Exemplar, Metadata, MetricType, Querier};
use crate::chunkenc::ValueType;
use crate::histogram::{CounterResetHint, FloatHistogram, Span};
use crate::labels::Labels;
use crate::matcher::Matcher;
use crate::wal::FsyncPolicy;
use crate::{stale_nan, AppendError, STALE_NAN_BITS};

fn opts() -> HeadOptions {
    HeadOptions { wal: WalOptions { fsync: FsyncPolicy::Never, ..WalOptions::default() }, ..HeadOptions::default() }
}

fn lbls(name: &str, job: &str) -> Labels {
    Labels::from_pairs([("__name__", name), ("job", job)])
}

fn read(head: &Head, m: &[Matcher], mint: i64, maxt: i64) -> Vec<(Labels, Vec<(i64, u64)>)> {
    head.querier()
        .select(m, mint, maxt)
        .unwrap()
        .into_iter()
        .map(|s| {
            let mut it = s.iter();
            let mut v = Vec::new();
            while it.next() == ValueType::Float {
                let (t, x) = it.at();
                v.push((t, x.to_bits()));
            }
            (s.labels.clone(), v)
        })
        .collect()
}

fn name_eq(n: &str) -> Vec<Matcher> {
    vec![Matcher::equal("__name__", n)]
}

#[test]
fn order_rules_through_the_appender() {
    let dir = tempfile::tempdir().unwrap();
    let head = Head::open(dir.path(), opts()).unwrap();
    let mut app = head.appender();
    let r = app.series_ref(&lbls("m", "a")).unwrap();
    app.append(r, 10, 1.0).unwrap();
    // Within the same transaction the pending sample counts.
    assert_eq!(app.append(r, 5, 1.0), Err(AppendError::OutOfOrder { t_ms: 5, newest_t_ms: 10 }));
    assert_eq!(app.append(r, 10, 2.0), Err(AppendError::DuplicateTimestamp { t_ms: 10 }));
    assert_eq!(app.append(r, 10, 1.0), Ok(()), "exact duplicate accepted");
    app.append(r, 20, stale_nan()).unwrap();
    let st = app.commit().unwrap();
    assert_eq!(st.samples, 2, "the exact duplicate was dropped");
    assert_eq!(st.series_created, 1);

    let mut app = head.appender();
    assert_eq!(app.append(r, 19, 1.0), Err(AppendError::OutOfOrder { t_ms: 19, newest_t_ms: 20 }));
    assert_eq!(app.append(r, 20, stale_nan()), Ok(()), "stale marker duplicate is bit-exact");
    assert_eq!(app.append(r, 20, f64::NAN), Err(AppendError::DuplicateTimestamp { t_ms: 20 }));
    app.rollback();
    let got = read(&head, &name_eq("m"), i64::MIN, i64::MAX);
    assert_eq!(got, vec![(lbls("m", "a"), vec![(10, 1.0f64.to_bits()), (20, STALE_NAN_BITS)])]);
    assert_eq!(StorageMetrics::get(&head.metrics().samples_rejected[RejectReason::OutOfOrder as usize]), 2);
}

#[test]
fn rollback_and_drop_are_invisible_and_release_the_series() {
    let dir = tempfile::tempdir().unwrap();
    let head = Head::open(dir.path(), opts()).unwrap();
    let mut app = head.appender();
    let r = app.series_ref(&lbls("m", "a")).unwrap();
    app.append(r, 10, 1.0).unwrap();
    app.rollback();
    {
        let mut app = head.appender();
        app.append(r, 11, 1.0).unwrap();
        // dropped without commit
    }
    assert!(read(&head, &name_eq("m"), i64::MIN, i64::MAX).is_empty());
    let mut app = head.appender();
    app.append(r, 5, 1.0).unwrap();
    app.commit().unwrap();
    assert_eq!(read(&head, &name_eq("m"), i64::MIN, i64::MAX)[0].1, vec![(5, 1.0f64.to_bits())]);
}

#[test]
fn bounds_and_limits() {
    let dir = tempfile::tempdir().unwrap();
    let o = HeadOptions {
        max_series: Some(3),
        max_series_per_metric: Some(2),
        max_future_ms: Some(60_000),
        min_valid_t_ms: 1000,
        ..opts()
    };
    let head = Head::open(dir.path(), o).unwrap();
    let mut app = head.appender();
    let r = app.series_ref(&lbls("m", "a")).unwrap();
    assert_eq!(app.append(r, 999, 1.0), Err(AppendError::OutOfBounds { t_ms: 999, min_valid_t_ms: 1000 }));
    assert!(matches!(app.append(r, i64::MAX / 2, 1.0), Err(AppendError::TooFarInFuture { .. })));
    app.series_ref(&lbls("m", "b")).unwrap();
    assert_eq!(
        app.series_ref(&lbls("m", "c")),
        Err(AppendError::SeriesLimitPerMetric { metric: "m".into(), limit: 2 })
    );
    app.series_ref(&lbls("n", "a")).unwrap();
    assert_eq!(app.series_ref(&lbls("o", "a")), Err(AppendError::SeriesLimitTotal { limit: 3 }));
    assert_eq!(app.series_ref(&lbls("m", "a")).unwrap(), r, "existing series resolve at the limit");
    assert!(matches!(
        app.series_ref(&Labels::from_pairs([("job", "x")])),
        Err(AppendError::InvalidLabels(LabelsError::MissingMetricName))
    ));
    assert_eq!(app.append(crate::SeriesRef(999), 2000, 1.0), Err(AppendError::UnknownSeriesRef(crate::SeriesRef(999))));
    app.commit().unwrap();
    assert_eq!(head.num_series(), 3);
}

#[test]
fn chunks_cut_at_count_and_block_boundary_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let head = Head::open(dir.path(), HeadOptions { chunk_range_ms: 1000, samples_per_chunk: 10, ..opts() }).unwrap();
    let mut want = Vec::new();
    for t in (0..2500).step_by(20) {
        let mut app = head.appender();
        let r = app.series_ref(&lbls("m", "a")).unwrap();
        app.append(r, t, t as f64 * 0.5).unwrap();
        app.commit().unwrap();
        want.push((t, (t as f64 * 0.5).to_bits()));
    }
    let got = read(&head, &name_eq("m"), i64::MIN, i64::MAX);
    assert_eq!(got[0].1, want);
    // No chunk spans a multiple of 1000.
    let s = head.querier().select(&name_eq("m"), i64::MIN, i64::MAX).unwrap();
    for c in &s[0].chunks {
        assert_eq!(c.min_t_ms.div_euclid(1000), c.max_t_ms.div_euclid(1000), "{}..{}", c.min_t_ms, c.max_t_ms);
    }
    assert!(s[0].chunks.len() >= 13);
    // Clipping.
    let got = read(&head, &name_eq("m"), 990, 1030);
    assert_eq!(got[0].1.iter().map(|x| x.0).collect::<Vec<_>>(), vec![1000, 1020]);
    assert_eq!((head.min_time(), head.max_time()), (0, 2480));
}

#[test]
fn labels_and_values_follow_matchers_and_time() {
    let dir = tempfile::tempdir().unwrap();
    let head = Head::open(dir.path(), opts()).unwrap();
    let mut app = head.appender();
    let a = app.series_ref(&lbls("m", "a")).unwrap();
    let b = app.series_ref(&Labels::from_pairs([("__name__", "n"), ("zone", "z1")])).unwrap();
    app.append(a, 10, 1.0).unwrap();
    app.append(b, 100, 1.0).unwrap();
    app.commit().unwrap();
    let q = head.querier();
    assert_eq!(q.label_names(&[], i64::MIN, i64::MAX).unwrap(), vec!["__name__", "job", "zone"]);
    assert_eq!(q.label_names(&name_eq("m"), i64::MIN, i64::MAX).unwrap(), vec!["__name__", "job"]);
    assert_eq!(q.label_names(&[], 50, 200).unwrap(), vec!["__name__", "zone"]);
    assert_eq!(q.label_values("__name__", &[], i64::MIN, i64::MAX).unwrap(), vec!["m", "n"]);
    assert_eq!(q.label_values("__name__", &[], 0, 20).unwrap(), vec!["m"]);
    assert!(q.select(&[], i64::MIN, i64::MAX).unwrap().is_empty());
}

fn hist(v: f64) -> FloatHistogram {
    FloatHistogram {
        schema: 0,
        count: v,
        sum: v * 2.0,
        positive_spans: vec![Span { offset: 0, length: 2 }],
        positive_buckets: vec![v / 2.0, v / 2.0],
        ..FloatHistogram::default()
    }
}

fn hints(head: &Head, name: &str) -> Vec<(i64, CounterResetHint)> {
    let s = head.querier().select(&name_eq(name), i64::MIN, i64::MAX).unwrap();
    let mut it = s[0].iter();
    let mut got = Vec::new();
    while it.next() == ValueType::Histogram {
        let (t, h) = it.at_histogram();
        got.push((t, h.counter_reset_hint));
    }
    got
}

/// Hints read back as Prometheus' head reports them: unknown on a chunk's first sample,
/// not-reset after it, unknown where a count or bucket fell (a reset starts a chunk, whose
/// first sample reads as unknown: Prometheus issue 15346), gauge for gauge histograms, and
/// unknown where the layout changed or a new chunk was cut without a reset. They survive a
/// restart (replay assigns the same hints).
#[test]
fn histogram_counter_reset_hints_assigned_on_append() {
    use CounterResetHint::*;
    let dir = tempfile::tempdir().unwrap();
    let gauge = FloatHistogram { counter_reset_hint: Gauge, ..hist(1.0) };
    let finer = FloatHistogram { schema: 1, ..hist(9.0) };
    let explicit = FloatHistogram { counter_reset_hint: CounterReset, ..hist(9.0) };
    let mut want = vec![
        (10, Unknown),
        (20, NotCounterReset),
        (30, Unknown),
        (40, NotCounterReset),
        (50, Gauge),
        (60, Unknown),
        (70, Unknown),
        (80, NotCounterReset),
        (90, Unknown),
    ];
    {
        let head = Head::open(dir.path(), opts()).unwrap();
        let mut app = head.appender();
        let r = app.series_ref(&lbls("h", "a")).unwrap();
        for (t, h) in [
            (10, hist(4.0)),
            (20, hist(6.0)),
            (30, hist(2.0)),
            (40, hist(3.0)),
            (50, gauge),
            (60, hist(5.0)),
            (70, finer.clone()),
            (80, FloatHistogram { count: 10.0, ..finer }),
            (90, explicit),
        ] {
            app.append_histogram(r, t, &h).unwrap();
        }
        // A long run: chunks are cut by size, and the first sample of each later chunk reads
        // as unknown, exactly as after a cut in Prometheus.
        for i in 0..300 {
            app.append_histogram(r, 100 + i, &hist(100.0 + i as f64)).unwrap();
        }
        app.commit().unwrap();
        let got = hints(&head, "h");
        assert_eq!(&got[..want.len()], &want[..]);
        let long = &got[want.len()..];
        assert_eq!(long[0], (100, NotCounterReset), "after an explicit reset the chunk continues");
        let unknown = long.iter().filter(|x| x.1 == Unknown).count();
        assert!(unknown >= 2, "chunks were cut in the run: {unknown}");
        assert!(long[1..].iter().all(|x| x.1 == Unknown || x.1 == NotCounterReset));
        want = got;
    }
    let head = Head::open(dir.path(), opts()).unwrap();
    assert_eq!(hints(&head, "h"), want, "after replay");
}

#[test]
fn histograms_exemplars_metadata_survive_restart() {
    let dir = tempfile::tempdir().unwrap();
    let ex = Exemplar { labels: Labels::from_pairs([("trace_id", "abc")]), value: 1.5, t_ms: 10 };
    let md = Metadata { metric_type: MetricType::Histogram, help: "latency".into(), unit: "seconds".into() };
    {
        let head = Head::open(dir.path(), opts()).unwrap();
        let mut app = head.appender();
        let r = app.series_ref(&lbls("h", "a")).unwrap();
        app.append_histogram(r, 10, &hist(4.0)).unwrap();
        app.append_histogram(r, 10, &hist(4.0)).unwrap();
        assert_eq!(app.append_histogram(r, 10, &hist(5.0)), Err(AppendError::DuplicateTimestamp { t_ms: 10 }));
        assert_eq!(app.append(r, 10, 1.0), Err(AppendError::TypeConflict { t_ms: 10 }));
        app.append_histogram(r, 20, &hist(6.0)).unwrap();
        app.append_exemplar(r, &ex).unwrap();
        assert_eq!(
            app.append_exemplar(r, &Exemplar { t_ms: 5, ..ex.clone() }),
            Err(AppendError::ExemplarOutOfOrder { t_ms: 5 })
        );
        app.update_metadata("h", &md);
        let st = app.commit().unwrap();
        assert_eq!((st.histograms, st.exemplars), (2, 1));
    }
    let head = Head::open(dir.path(), opts()).unwrap();
    let s = head.querier().select(&name_eq("h"), i64::MIN, i64::MAX).unwrap();
    let mut it = s[0].iter();
    let mut got = Vec::new();
    while it.next() == ValueType::Histogram {
        let (t, h) = it.at_histogram();
        got.push((t, h.clone()));
    }
    // The head assigns counter-reset hints on append (and again on replay).
    let not_reset = FloatHistogram { counter_reset_hint: CounterResetHint::NotCounterReset, ..hist(6.0) };
    assert_eq!(got, vec![(10, hist(4.0)), (20, not_reset)]);
    let exs = head.exemplars(&name_eq("h"), 0, 100).unwrap();
    assert_eq!(exs, vec![SeriesExemplars { labels: lbls("h", "a"), exemplars: vec![ex] }]);
    assert_eq!(head.metadata().get("h"), Some(&md));
    // Order rules hold across the restart.
    let mut app = head.appender();
    let r = app.series_ref(&lbls("h", "a")).unwrap();
    assert_eq!(app.append_histogram(r, 20, &hist(6.0)), Ok(()));
    assert_eq!(app.append_histogram(r, 15, &hist(6.0)), Err(AppendError::OutOfOrder { t_ms: 15, newest_t_ms: 20 }));
}

#[test]
fn restart_rebuilds_everything_and_refs_stay_stable() {
    let dir = tempfile::tempdir().unwrap();
    let (ra, rb);
    let mut want = Vec::new();
    {
        let head = Head::open(dir.path(), HeadOptions { samples_per_chunk: 7, ..opts() }).unwrap();
        let mut app = head.appender();
        ra = app.series_ref(&lbls("m", "a")).unwrap();
        rb = app.series_ref(&lbls("m", "b")).unwrap();
        for t in 0..50 {
            app.append(ra, t, t as f64).unwrap();
            want.push((t, (t as f64).to_bits()));
        }
        app.commit().unwrap();
    }
    let head = Head::open(dir.path(), HeadOptions { samples_per_chunk: 7, ..opts() }).unwrap();
    let mut app = head.appender();
    assert_eq!(app.series_ref(&lbls("m", "a")).unwrap(), ra);
    assert_eq!(app.series_ref(&lbls("m", "b")).unwrap(), rb);
    let rc = app.series_ref(&lbls("m", "c")).unwrap();
    assert!(rc.0 > rb.0, "ids are not reused");
    assert_eq!(app.append(ra, 49, 49.0), Ok(()), "duplicate of the newest sample after restart");
    assert_eq!(app.append(ra, 49, 1.0), Err(AppendError::DuplicateTimestamp { t_ms: 49 }));
    app.rollback();
    assert_eq!(read(&head, &name_eq("m"), i64::MIN, i64::MAX), vec![(lbls("m", "a"), want)]);
    assert_eq!(head.replay_info().series, 2);
}

#[test]
fn truncate_drops_old_chunks_gcs_empty_series_and_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let o = || HeadOptions { chunk_range_ms: 100, samples_per_chunk: 5, ..opts() };
    {
        let head = Head::open(dir.path(), o()).unwrap();
        let mut app = head.appender();
        let old = app.series_ref(&lbls("m", "old")).unwrap();
        let live = app.series_ref(&lbls("m", "live")).unwrap();
        for t in 0..100 {
            app.append(old, t, 1.0).unwrap();
        }
        for t in 0..300 {
            app.append(live, t, t as f64).unwrap();
        }
        app.commit().unwrap();
        // Created since the last truncation, so spared even though it has no data.
        let mut app = head.appender();
        app.series_ref(&lbls("m", "fresh")).unwrap();
        app.commit().unwrap();

        let st = head.truncate(200).unwrap();
        assert_eq!(st.series_removed, 1);
        assert_eq!(head.num_series(), 2);
        assert_eq!(head.min_time(), 200);
        let mut app = head.appender();
        assert!(matches!(app.append(live, 150, 1.0), Err(AppendError::OutOfBounds { .. })));
        assert_eq!(app.series_ref(&lbls("m", "old")).unwrap().0, 4, "a collected series comes back with a new id");
        app.rollback();
        let got = read(&head, &name_eq("m"), i64::MIN, i64::MAX);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].1.first().map(|x| x.0), Some(200));
        assert!(head.querier().label_values("job", &[], i64::MIN, i64::MAX).unwrap().contains(&"live".to_string()));
    }
    let head = Head::open(dir.path(), HeadOptions { min_valid_t_ms: 200, ..o() }).unwrap();
    assert!(head.replay_info().checkpoint.is_some());
    let got = read(&head, &name_eq("m"), i64::MIN, i64::MAX);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1.len(), 100);
    assert_eq!(got[0].1[0].0, 200);
}

#[test]
fn concurrent_appenders_on_many_threads() {
    let dir = tempfile::tempdir().unwrap();
    let head = Head::open(dir.path(), HeadOptions { wal: WalOptions::default(), ..opts() }).unwrap();
    std::thread::scope(|s| {
        for th in 0..4 {
            let head = head.clone();
            s.spawn(move || {
                for t in 0..50 {
                    let mut app = head.appender();
                    for k in 0..20 {
                        let r = app.series_ref(&lbls("m", &format!("{th}-{k}"))).unwrap();
                        app.append(r, t, t as f64).unwrap();
                    }
                    app.commit().unwrap();
                }
            });
        }
    });
    let got = read(&head, &name_eq("m"), i64::MIN, i64::MAX);
    assert_eq!(got.len(), 80);
    assert!(got.iter().all(|(_, v)| v.len() == 50));
    assert_eq!(StorageMetrics::get(&head.metrics().samples_appended), 4000);
    let mem = head.memory();
    assert_eq!(mem.series, 80);
    assert!(mem.total_bytes() > 0);
    let _ = Arc::clone(head.index());
}

use crate::labels::LabelsError;
use crate::metrics::{RejectReason, StorageMetrics};

#[test]
fn raising_the_bound_drops_in_flight_samples_but_keeps_the_range_readable() {
    let dir = tempfile::tempdir().unwrap();
    let head = Head::open(dir.path(), opts()).unwrap();
    let mut app = head.appender();
    let r = app.series_ref(&lbls("m", "a")).unwrap();
    app.append(r, 10, 1.0).unwrap();
    app.commit().unwrap();
    let mut app = head.appender();
    app.append(r, 20, 2.0).unwrap();
    app.append(r, 40, 4.0).unwrap();
    // Compaction of [.., 30) starts: the bound rises while the transaction is open.
    head.set_min_valid_time(30);
    let st = app.commit().unwrap();
    assert_eq!(st.samples, 1, "the sample below the new bound is dropped at commit");
    assert_eq!(StorageMetrics::get(&head.metrics().samples_rejected[RejectReason::OutOfBounds as usize]), 1);
    // The range being compacted stays readable until truncation.
    let got = read(&head, &name_eq("m"), i64::MIN, i64::MAX);
    assert_eq!(got[0].1, vec![(10, 1.0f64.to_bits()), (40, 4.0f64.to_bits())]);
    assert_eq!(head.series_chunks(0, 29).unwrap().len(), 1);
    head.truncate(30).unwrap();
    assert_eq!(read(&head, &name_eq("m"), i64::MIN, i64::MAX)[0].1, vec![(40, 4.0f64.to_bits())]);
}

#[test]
fn racing_creators_agree_on_one_series_and_log_it_once() {
    let dir = tempfile::tempdir().unwrap();
    {
        let head = Head::open(dir.path(), opts()).unwrap();
        let refs: Vec<Vec<crate::SeriesRef>> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..4)
                .map(|_| {
                    let head = head.clone();
                    s.spawn(move || {
                        let mut app = head.appender();
                        let v: Vec<_> = (0..50).map(|k| app.series_ref(&lbls("m", &k.to_string())).unwrap()).collect();
                        app.commit().unwrap();
                        v
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(refs.windows(2).all(|w| w[0] == w[1]), "every thread got the same refs");
        assert_eq!(head.num_series(), 50);
    }
    let head = Head::open(dir.path(), opts()).unwrap();
    assert_eq!(head.num_series(), 50);
    assert_eq!(head.replay_info().series, 50, "one definition per series in the WAL");
}
