//! Per-metric cost over head and blocks: series counts from the index, chunk bytes attributed
//! per block (cached by ULID) plus the head's share, matching an independent sum over a full
//! select.

use std::collections::BTreeMap;

use server::usage::cost::{costs, CostCache};
use storage::db::{Db, DbOptions};
use storage::{Appender, Labels, Matcher, Querier};

const T0: i64 = 1_700_000_000_000;
const HOUR: i64 = 3_600_000;

#[test]
fn bytes_per_metric_over_blocks_and_head() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), DbOptions::default()).unwrap();
    let metrics: [(&str, u64); 3] = [("big_total", 6), ("mid_total", 3), ("small", 1)];
    // 5 hours at 30 s: the head spans more than 1.5 block ranges, so maintenance cuts blocks.
    for step in 0..(5 * HOUR / 30_000) {
        let mut app = db.appender();
        for (m, n) in metrics {
            for i in 0..n {
                let l = Labels::from_pairs([("__name__", m.to_string()), ("shard", i.to_string()), ("job", "x".to_string())]);
                app.append_labels(&l, T0 + step * 30_000, (step as u64 * (i + 1)) as f64).unwrap();
            }
        }
        app.commit().unwrap();
    }
    let stats = db.maintain(T0 + 5 * HOUR).unwrap();
    assert!(stats.head_blocks >= 1, "{stats:?}");
    let cache = CostCache::default();
    let c = costs(&db, &cache).unwrap();
    assert_eq!(cache.cached_blocks(), db.blocks().len());
    assert_eq!(c.keys().map(String::as_str).collect::<Vec<_>>(), vec!["big_total", "mid_total", "small"]);
    let q = db.querier();
    for (m, n) in metrics {
        let mc = &c[m];
        assert_eq!(mc.series, n, "{m}: head series");
        assert_eq!(mc.block_series, n * db.blocks().len() as u64, "{m}: series in each block");
        assert!(mc.block_bytes > 0 && mc.head_bytes > 0, "{m}: {mc:?}");
        assert_eq!(mc.labels.iter().map(String::as_str).collect::<Vec<_>>(), vec!["job", "shard"]);
        // Independently: the chunk bytes of a full select of the metric.
        let selected: u64 = q
            .select(&[Matcher::equal("__name__", m)], i64::MIN, i64::MAX)
            .unwrap()
            .iter()
            .flat_map(|s| s.chunks.iter())
            .map(|ch| ch.bytes.as_slice().len() as u64)
            .sum();
        assert_eq!(mc.bytes(), selected, "{m}");
        // 30 s apart: 10 samples per series in the last 300 s.
        assert!((mc.samples_per_second - n as f64 * 10.0 / 300.0).abs() < 1e-9, "{m}: {}", mc.samples_per_second);
    }
    // The cached block sums are reused: a second report gives the same figures.
    let again = costs(&db, &cache).unwrap();
    let strip = |m: &BTreeMap<String, server::usage::cost::MetricCost>| m.iter().map(|(k, v)| (k.clone(), v.block_bytes)).collect::<Vec<_>>();
    assert_eq!(strip(&again), strip(&c));
    db.close().unwrap();
}
