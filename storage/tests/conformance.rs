//! One conformance suite run over every way the database can hold data: all in the head, cut
//! into blocks by compaction, merged into bigger blocks, and each again after a restart. Every
//! implementation must give exactly the answers of a naive in-memory model.

use std::collections::BTreeMap;

use storage::db::{Db, DbOptions};
use storage::head::HeadOptions;
use storage::wal::{FsyncPolicy, WalOptions};
use storage::{Appender, Labels, Matcher, Querier, ValueType};

const HOUR: i64 = 3_600_000;
const STEP: i64 = 15_000;
/// Long enough that, with 2h blocks, three complete 2h blocks fill a 6h window while a newer
/// block exists (the planner never merges the newest block, as Prometheus).
const SPAN: i64 = 14 * HOUR;

type Model = BTreeMap<Labels, Vec<(i64, u64)>>;

fn opts() -> DbOptions {
    DbOptions {
        head: HeadOptions { wal: WalOptions { fsync: FsyncPolicy::Never, ..WalOptions::default() }, ..HeadOptions::default() },
        retention_ms: 0,
        ..DbOptions::default()
    }
}

/// 61 series over 14 hours at 15 s: counters with resets, gauges with decimals, a constant, a
/// series that goes stale and comes back, and one that starts late.
fn workload() -> Model {
    let mut m = Model::new();
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for job in ["api", "db", "node"] {
        for inst in 0..10 {
            let instance = format!("host-{inst}:9100");
            let counter = Labels::from_pairs([("__name__", "requests_total"), ("job", job), ("instance", &instance)]);
            let gauge = Labels::from_pairs([("__name__", "temperature"), ("job", job), ("instance", &instance), ("zone", if inst % 2 == 0 { "a" } else { "b" })]);
            let (mut c, mut g) = (0.0f64, 20.0f64);
            let start = if inst == 9 { 4 * HOUR } else { 0 };
            let mut t = start;
            while t < SPAN {
                c += (next() % 100) as f64;
                if next() % 500 == 0 {
                    c = 0.0;
                }
                g = ((g + (next() % 21) as f64 / 10.0 - 1.0) * 100.0).round() / 100.0;
                let stale_gap = job == "db" && inst == 3 && (2 * HOUR..2 * HOUR + 10 * STEP).contains(&t);
                if stale_gap {
                    if t == 2 * HOUR {
                        m.entry(gauge.clone()).or_default().push((t, storage::STALE_NAN_BITS));
                    }
                } else {
                    m.entry(gauge.clone()).or_default().push((t, g.to_bits()));
                }
                m.entry(counter.clone()).or_default().push((t, c.to_bits()));
                t += STEP;
            }
        }
    }
    let constant = Labels::from_pairs([("__name__", "up"), ("job", "node")]);
    m.insert(constant, (0..SPAN / STEP).map(|i| (i * STEP, 1f64.to_bits())).collect());
    m
}

/// Appends the model in time order, one transaction per timestamp (as a scrape would).
fn load(db: &Db, m: &Model) {
    let mut by_t: BTreeMap<i64, Vec<(&Labels, u64)>> = BTreeMap::new();
    for (l, s) in m {
        for &(t, v) in s {
            by_t.entry(t).or_default().push((l, v));
        }
    }
    for (t, batch) in by_t {
        let mut app = db.appender();
        for (l, v) in batch {
            app.append_labels(l, t, f64::from_bits(v)).expect("valid sample");
        }
        app.commit().expect("commit");
    }
}

fn read(q: &dyn Querier, ms: &[Matcher], mint: i64, maxt: i64) -> Vec<(Labels, Vec<(i64, u64)>)> {
    q.select(ms, mint, maxt)
        .expect("select")
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
        .filter(|(_, v)| !v.is_empty())
        .collect()
}

fn expect(m: &Model, ms: &[Matcher], mint: i64, maxt: i64) -> Vec<(Labels, Vec<(i64, u64)>)> {
    m.iter()
        .filter(|(l, _)| ms.iter().all(|mt| mt.matches(l.get(&mt.name).unwrap_or(""))))
        .map(|(l, s)| (l.clone(), s.iter().copied().filter(|(t, _)| (mint..=maxt).contains(t)).collect::<Vec<_>>()))
        .filter(|(_, v)| !v.is_empty())
        .collect()
}

fn queries() -> Vec<(Vec<Matcher>, i64, i64)> {
    let name = |n: &str| Matcher::equal("__name__", n);
    vec![
        (vec![name("requests_total")], 0, SPAN),
        (vec![name("requests_total"), Matcher::equal("job", "api")], HOUR + 1, 5 * HOUR),
        (vec![name("temperature"), Matcher::regex("instance", "host-[13]:9100").unwrap()], 0, SPAN),
        (vec![name("temperature"), Matcher::not_equal("zone", "a")], 2 * HOUR - 1, 2 * HOUR + 1),
        (vec![Matcher::regex("__name__", ".+").unwrap(), Matcher::not_regex("job", "api|db").unwrap()], 6 * HOUR, SPAN),
        (vec![Matcher::equal("job", "db"), Matcher::equal("instance", "host-3:9100")], 0, SPAN),
        (vec![name("up"), Matcher::equal("missing", "")], 7 * HOUR, 7 * HOUR),
        (vec![name("temperature"), Matcher::regex("zone", "c|").unwrap()], 0, SPAN),
        (vec![name("nonexistent")], 0, SPAN),
    ]
}

fn check_all(db: &Db, m: &Model, what: &str) {
    let q = db.querier();
    for (ms, mint, maxt) in queries() {
        let got = read(&q, &ms, mint, maxt);
        let want = expect(m, &ms, mint, maxt);
        assert_eq!(got.len(), want.len(), "{what}: series count for {ms:?} [{mint},{maxt}]");
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(g.0, w.0, "{what}: labels for {ms:?}");
            assert_eq!(g.1, w.1, "{what}: samples of {} for {ms:?} [{mint},{maxt}]", g.0);
        }
    }
    let names = q.label_names(&[], 0, SPAN).unwrap();
    assert_eq!(names, ["__name__", "instance", "job", "zone"], "{what}: label names");
    let jobs = q.label_values("job", &[Matcher::equal("__name__", "up")], 0, SPAN).unwrap();
    assert_eq!(jobs, ["node"], "{what}: label values restricted by matchers");
    let zones = q.label_values("zone", &[], 0, SPAN).unwrap();
    assert_eq!(zones, ["a", "b"], "{what}: zone values");
}

#[test]
fn head_blocks_merged_blocks_and_restarts_answer_alike() {
    let m = workload();
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), opts()).unwrap();
    load(&db, &m);
    check_all(&db, &m, "all in head");

    let stats = db.maintain(SPAN).unwrap();
    assert!(stats.head_blocks >= 5, "14h of data with a 2h range cuts blocks: {stats:?}");
    assert!(stats.merges >= 1, "three full 2h blocks below a newer one merge into 6h: {stats:?}");
    assert!(db.blocks().iter().any(|b| b.meta().max_time_ms - b.meta().min_time_ms == 6 * HOUR));
    assert!(db.head().min_time() >= SPAN - 3 * HOUR, "head truncated to the last cut: {}", db.head().min_time());
    check_all(&db, &m, "head + blocks, merged");

    db.close().unwrap();
    drop(db);
    let db = Db::open(dir.path(), opts()).unwrap();
    check_all(&db, &m, "head + blocks after restart");
    db.maintain(SPAN).unwrap();
    check_all(&db, &m, "after a second maintenance run");
}

#[test]
fn samples_before_the_newest_block_are_out_of_bounds() {
    let m = workload();
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), opts()).unwrap();
    load(&db, &m);
    db.maintain(SPAN).unwrap();
    let mut app = db.appender();
    let l = Labels::from_pairs([("__name__", "late"), ("job", "x")]);
    let err = app.append_labels(&l, HOUR, 1.0).unwrap_err();
    assert_eq!(err.reason(), "out_of_bounds", "{err}");
    app.rollback();
}

#[test]
fn time_retention_deletes_whole_old_blocks() {
    let m = workload();
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), DbOptions { retention_ms: 5 * HOUR, ..opts() }).unwrap();
    load(&db, &m);
    let stats = db.maintain(SPAN).unwrap();
    assert!(stats.deleted >= 1, "blocks ending before 14h-5h are deleted: {stats:?}");
    for b in db.blocks().iter() {
        assert!(b.meta().max_time_ms > SPAN - 5 * HOUR, "kept block {:?} is inside retention", b.meta().ulid);
    }
    // What is left still reads back exactly for the retained range.
    let q = db.querier();
    let ms = [Matcher::equal("__name__", "up")];
    assert_eq!(read(&q, &ms, 10 * HOUR, SPAN), expect(&m, &ms, 10 * HOUR, SPAN));
    assert!(read(&q, &ms, 0, HOUR).is_empty(), "data of deleted blocks is gone");
}

#[test]
fn a_second_open_of_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _db = Db::open(dir.path(), opts()).unwrap();
    let err = Db::open(dir.path(), opts()).err().expect("second open fails");
    assert!(err.to_string().contains("another hearth"), "{err}");
}
