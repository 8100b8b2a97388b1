//! Model-based property test of the whole database: random appends, commits, rollbacks,
//! maintenance runs (head compaction into blocks, block merges) and restarts, checked after
//! every step against a naive model of what was acknowledged.
//!
//! The model trusts the appender's verdict on each sample (accepted or refused with a typed
//! reason) and checks that verdict against the order rules, so both "an accepted sample is
//! never lost" and "a refused sample never appears" are tested, across open chunks, mmap'd
//! head chunks, blocks, merged blocks and restarts.

use std::collections::BTreeMap;

use proptest::prelude::*;
use storage::db::{Db, DbOptions};
use storage::head::HeadOptions;
use storage::wal::{FsyncPolicy, WalOptions};
use storage::{AppendError, Appender, Labels, Matcher, Querier, ValueType};

/// A tiny block range, so that a few hundred samples cut many blocks.
const RANGE_MS: i64 = 60_000;

#[derive(Clone, Debug)]
enum Op {
    /// Append to series `s` at `t` (ms) the value `v`, in the open transaction.
    Append { s: usize, dt: i64, v: i8 },
    Commit,
    Rollback,
    Maintain,
    Restart,
    Select { job: Option<u8>, mint: i64, len: i64 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        12 => (0usize..6, -20_000i64..40_000, any::<i8>()).prop_map(|(s, dt, v)| Op::Append { s, dt, v }),
        4 => Just(Op::Commit),
        1 => Just(Op::Rollback),
        2 => Just(Op::Maintain),
        1 => Just(Op::Restart),
        2 => (proptest::option::of(0u8..3), 0i64..600_000, 0i64..300_000)
            .prop_map(|(job, mint, len)| Op::Select { job, mint, len }),
    ]
}

fn labels(s: usize) -> Labels {
    let job = ["a", "b", "c"][s % 3];
    Labels::from_pairs([("__name__", "m"), ("job", job), ("i", &s.to_string())])
}

fn opts() -> DbOptions {
    DbOptions {
        head: HeadOptions {
            chunk_range_ms: RANGE_MS,
            samples_per_chunk: 8,
            wal: WalOptions { fsync: FsyncPolicy::Never, ..WalOptions::default() },
            ..HeadOptions::default()
        },
        retention_ms: 0,
        ..DbOptions::default()
    }
}

type Model = BTreeMap<Labels, Vec<(i64, u64)>>;

fn read_all(db: &Db, ms: &[Matcher], mint: i64, maxt: i64) -> Model {
    let mut out = Model::new();
    for s in db.querier().select(ms, mint, maxt).expect("select") {
        let mut it = s.iter();
        let mut v = Vec::new();
        while it.next() == ValueType::Float {
            let (t, x) = it.at();
            v.push((t, x.to_bits()));
        }
        if !v.is_empty() {
            out.insert(s.labels.clone(), v);
        }
    }
    out
}

fn expected(model: &Model, job: Option<u8>, mint: i64, maxt: i64) -> Model {
    model
        .iter()
        .filter(|(l, _)| job.is_none_or(|j| l.get("job") == Some(["a", "b", "c"][j as usize])))
        .map(|(l, v)| (l.clone(), v.iter().copied().filter(|(t, _)| (mint..=maxt).contains(t)).collect::<Vec<_>>()))
        .filter(|(_, v)| !v.is_empty())
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn db_reads_back_exactly_what_was_acknowledged(ops in proptest::collection::vec(op(), 1..120)) {
        let dir = tempfile::tempdir().unwrap();
        let mut db = Db::open(dir.path(), opts()).unwrap();
        let mut model = Model::new();
        // Newest acknowledged or pending timestamp per series, and the pending transaction.
        let mut newest: BTreeMap<usize, (i64, u64)> = BTreeMap::new();
        let mut pending: Vec<(usize, i64, u64)> = Vec::new();
        let mut pending_newest = newest.clone();
        let mut app = Some(db.appender());
        let mut clock: i64 = 0;
        for op in ops {
            match op {
                Op::Append { s, dt, v } => {
                    clock = (clock + dt.max(0)).max(0);
                    let t = (clock + dt.min(0)).max(0);
                    let value = f64::from(v);
                    let r = app.as_mut().unwrap().append_labels(&labels(s), t, value);
                    let prev = pending_newest.get(&s).copied();
                    match r {
                        Ok(_) => {
                            if let Some((pt, pv)) = prev {
                                prop_assert!(t > pt || (t == pt && pv == value.to_bits()),
                                    "accepted t={t} after newest {pt}");
                            }
                            if prev.is_none_or(|(pt, _)| t > pt) {
                                pending.push((s, t, value.to_bits()));
                                pending_newest.insert(s, (t, value.to_bits()));
                            }
                        }
                        Err(AppendError::OutOfOrder { .. }) => prop_assert!(prev.is_some_and(|(pt, _)| t < pt)),
                        Err(AppendError::DuplicateTimestamp { .. }) => {
                            prop_assert!(prev.is_some_and(|(pt, pv)| t == pt && pv != value.to_bits()))
                        }
                        Err(AppendError::OutOfBounds { min_valid_t_ms, .. }) => prop_assert!(t < min_valid_t_ms),
                        Err(e) => prop_assert!(false, "unexpected refusal {e}"),
                    }
                }
                Op::Commit => {
                    app.take().unwrap().commit().unwrap();
                    for (s, t, v) in pending.drain(..) {
                        model.entry(labels(s)).or_default().push((t, v));
                    }
                    newest = pending_newest.clone();
                    app = Some(db.appender());
                }
                Op::Rollback => {
                    app.take().unwrap().rollback();
                    pending.clear();
                    pending_newest = newest.clone();
                    app = Some(db.appender());
                }
                Op::Maintain => {
                    db.maintain(clock).unwrap();
                }
                Op::Restart => {
                    app.take().unwrap().rollback();
                    pending.clear();
                    pending_newest = newest.clone();
                    db.close().unwrap();
                    drop(db);
                    db = Db::open(dir.path(), opts()).unwrap();
                    app = Some(db.appender());
                }
                Op::Select { job, mint, len } => {
                    let mut ms = vec![Matcher::equal("__name__", "m")];
                    if let Some(j) = job {
                        ms.push(Matcher::equal("job", ["a", "b", "c"][j as usize]));
                    }
                    prop_assert_eq!(read_all(&db, &ms, mint, mint + len), expected(&model, job, mint, mint + len));
                }
            }
        }
        let all = [Matcher::equal("__name__", "m")];
        prop_assert_eq!(read_all(&db, &all, i64::MIN, i64::MAX), expected(&model, None, i64::MIN, i64::MAX));
        app.take().unwrap().rollback();
        db.close().unwrap();
        drop(db);
        let db = Db::open(dir.path(), opts()).unwrap();
        prop_assert_eq!(read_all(&db, &all, i64::MIN, i64::MAX), expected(&model, None, i64::MIN, i64::MAX));
    }
}
