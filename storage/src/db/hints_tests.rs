//! Select hints through the database querier: forwarded to the head when it is the only
//! source in range, dropped when blocks take part (the merge joins series by full labels).

use super::*;
use crate::api::Appender;
use crate::labels::Labels;

const STEP_MS: i64 = 60_000;
const N: i64 = 300; // 5 h of 1-minute samples: the first 2 h become a block

/// Four series of `m`, two per job, told apart by `inst` only.
fn write(db: &Db) {
    let mut app = db.appender();
    for (job, inst) in [("a", "1"), ("a", "2"), ("b", "1"), ("b", "2")] {
        let r = app.series_ref(&Labels::from_pairs([("__name__", "m"), ("inst", inst), ("job", job)])).unwrap();
        for i in 0..N {
            app.append(r, 1_000 + i * STEP_MS, i as f64).unwrap();
        }
    }
    app.commit().unwrap();
}

fn select(q: &dyn Querier, mint_ms: i64, maxt_ms: i64, hints: &SelectHints) -> Vec<(Labels, usize)> {
    q.select_with_hints(&[Matcher::equal("__name__", "m")], mint_ms, maxt_ms, hints)
        .unwrap()
        .into_iter()
        .map(|s| (s.labels, s.chunks.len()))
        .collect()
}

#[test]
fn grouping_hint_reaches_the_head_alone_and_not_a_merge() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), test_options()).unwrap();
    write(&db);
    let hints = SelectHints { grouping: Some(vec!["__name__".into(), "job".into()]) };
    let job = |j: &str| Labels::from_pairs([("__name__", "m"), ("job", j)]);
    let last_t = 1_000 + (N - 1) * STEP_MS;

    // Head only: one entry per series, in the full labels' order, restricted to the hint.
    let q = db.querier();
    let full = select(&q, 0, last_t, &SelectHints::default());
    let hinted = select(&q, 0, last_t, &hints);
    assert_eq!(full.len(), 4);
    // Full order is by inst first ("inst" < "job"): (1, a), (1, b), (2, a), (2, b).
    let want: Vec<Labels> = vec![job("a"), job("b"), job("a"), job("b")];
    assert_eq!(hinted.iter().map(|(l, _)| l.clone()).collect::<Vec<_>>(), want);
    assert_eq!(hinted.iter().map(|(_, c)| *c).collect::<Vec<_>>(), full.iter().map(|(_, c)| *c).collect::<Vec<_>>());

    // Head -> block: a range reaching into the block merges, and the hint is dropped.
    let stats = db.maintain(0).unwrap();
    assert!(stats.head_blocks >= 1, "{stats:?}");
    let q = db.querier();
    let merged = select(&q, 0, last_t, &hints);
    assert_eq!(merged.len(), 4, "no two series joined: {merged:?}");
    assert!(merged.iter().all(|(l, _)| l.get("inst").is_some()), "full labels: {merged:?}");
    assert_eq!(merged, select(&q, 0, last_t, &SelectHints::default()));

    // An instant lookup at the end reads the head alone: hinted again.
    let instant = select(&q, last_t - 300_000, last_t, &hints);
    assert_eq!(instant.iter().map(|(l, _)| l.clone()).collect::<Vec<_>>(), want);
    db.close().unwrap();
}
