//! Model-based test of the head: any sequence of appends, commits, rollbacks, selects,
//! truncations and restarts reads back exactly what a naive in-memory model says, across open
//! chunks, full (mmap'd) chunks and restarts, for float and native histogram samples (a series
//! may switch between them). Each append's result (accepted, or the exact typed error) must
//! match the model's too.

use std::collections::BTreeMap;

use proptest::prelude::*;
use storage::head::{Head, HeadOptions};
use storage::wal::{FsyncPolicy, WalOptions};
use storage::histogram::{FloatHistogram, Span};
use storage::{AppendError, Appender, Labels, Matcher, Querier, SeriesRef, ValueType};

const SERIES: usize = 4;

#[derive(Clone, Debug)]
enum Op {
    Append { series: usize, t: i64, v: u8 },
    AppendHistogram { series: usize, t: i64, v: u8 },
    Commit,
    Rollback,
    Select { mint: i64, len: i64 },
    Truncate { mint: i64 },
    Restart,
}

fn value(v: u8) -> f64 {
    match v {
        0 => storage::stale_nan(),
        1 => f64::NAN,
        2 => -0.0,
        x => f64::from(x) * 0.25,
    }
}

fn histogram(v: u8) -> FloatHistogram {
    let c = f64::from(v);
    FloatHistogram {
        schema: 1,
        count: c * 2.0,
        sum: c * 3.5,
        zero_count: 1.0,
        zero_threshold: 1e-9,
        positive_spans: vec![Span { offset: -1, length: 2 }],
        positive_buckets: vec![c, c - 1.0],
        ..FloatHistogram::default()
    }
}

/// A sample as the model keeps it: float bits or a histogram.
#[derive(Clone, Debug, PartialEq)]
enum Val {
    F(u64),
    H(FloatHistogram),
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        12 => (0..SERIES, 0i64..400, 0u8..8).prop_map(|(series, t, v)| Op::Append { series, t, v }),
        3 => (0..SERIES, 0i64..400, 1u8..4).prop_map(|(series, t, v)| Op::AppendHistogram { series, t, v }),
        3 => Just(Op::Commit),
        1 => Just(Op::Rollback),
        2 => (0i64..400, 0i64..400).prop_map(|(mint, len)| Op::Select { mint, len }),
        1 => (0i64..300).prop_map(|mint| Op::Truncate { mint }),
        1 => Just(Op::Restart),
    ]
}

#[derive(Default)]
struct Model {
    committed: BTreeMap<usize, Vec<(i64, Val)>>,
    pending: Vec<(usize, i64, Val)>,
    min_valid: i64,
}

impl Model {
    fn newest(&self, s: usize) -> Option<(i64, Val)> {
        let c = self.committed.get(&s).and_then(|v| v.last().cloned());
        let p = self.pending.iter().rev().find(|p| p.0 == s).map(|p| (p.1, p.2.clone()));
        match (c, p) {
            (Some(a), Some(b)) => Some(if b.0 >= a.0 { b } else { a }),
            (a, b) => a.or(b),
        }
    }

    fn append(&mut self, s: usize, t: i64, val: Val) -> Result<(), AppendError> {
        if t < self.min_valid {
            return Err(AppendError::OutOfBounds { t_ms: t, min_valid_t_ms: self.min_valid });
        }
        if let Some((lt, lv)) = self.newest(s) {
            if t < lt {
                return Err(AppendError::OutOfOrder { t_ms: t, newest_t_ms: lt });
            }
            if t == lt {
                return match (&lv, &val) {
                    (Val::F(_), Val::H(_)) | (Val::H(_), Val::F(_)) => Err(AppendError::TypeConflict { t_ms: t }),
                    _ if lv == val => Ok(()),
                    _ => Err(AppendError::DuplicateTimestamp { t_ms: t }),
                };
            }
        }
        self.pending.push((s, t, val));
        Ok(())
    }

    fn commit(&mut self) {
        for (s, t, b) in self.pending.drain(..) {
            self.committed.entry(s).or_default().push((t, b));
        }
    }

    fn truncate(&mut self, mint: i64) {
        self.min_valid = self.min_valid.max(mint);
        for v in self.committed.values_mut() {
            v.retain(|x| x.0 >= mint);
        }
        self.committed.retain(|_, v| !v.is_empty());
    }

    fn select(&self, mint: i64, maxt: i64) -> Vec<(usize, Vec<(i64, Val)>)> {
        self.committed
            .iter()
            .map(|(s, v)| (*s, v.iter().filter(|x| x.0 >= mint && x.0 <= maxt).cloned().collect::<Vec<_>>()))
            .filter(|(_, v)| !v.is_empty())
            .collect()
    }
}

fn labels(s: usize) -> Labels {
    Labels::from_pairs([("__name__", "m".to_string()), ("s", format!("s{s}"))])
}

fn read(head: &Head, mint: i64, maxt: i64) -> Vec<(usize, Vec<(i64, Val)>)> {
    let ss = head.querier().select(&[Matcher::equal("__name__", "m")], mint, maxt).unwrap();
    ss.into_iter()
        .map(|s| {
            let idx: usize = s.labels.get("s").unwrap()[1..].parse().unwrap();
            let mut it = s.iter();
            let mut v = Vec::new();
            loop {
                match it.next() {
                    ValueType::Float => {
                        let (t, x) = it.at();
                        v.push((t, Val::F(x.to_bits())));
                    }
                    ValueType::Histogram => {
                        let (t, h) = it.at_histogram();
                        // The head assigns counter-reset hints (tested in the head's unit
                        // tests); the model compares sample values.
                        let h = FloatHistogram { counter_reset_hint: Default::default(), ..h.clone() };
                        v.push((t, Val::H(h)));
                    }
                    ValueType::None => break,
                }
            }
            (idx, v)
        })
        .filter(|(_, v)| !v.is_empty())
        .collect()
}

fn options(min_valid: i64) -> HeadOptions {
    HeadOptions {
        chunk_range_ms: 100,
        samples_per_chunk: 4,
        min_valid_t_ms: min_valid,
        wal: WalOptions { fsync: FsyncPolicy::Never, segment_bytes: 512 },
        ..HeadOptions::default()
    }
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let mut model = Model { min_valid: i64::MIN, ..Model::default() };
    let mut head = Some(Head::open(dir.path(), options(i64::MIN)).unwrap());
    let mut app: Option<storage::head::HeadAppender> = None;
    let mut refs: BTreeMap<usize, SeriesRef> = BTreeMap::new();
    for op in ops {
        let h = head.as_ref().unwrap();
        match op {
            Op::Append { series, t, v } => {
                let a = app.get_or_insert_with(|| h.appender());
                let r = match refs.get(&series) {
                    Some(r) => *r,
                    None => {
                        let r = a.series_ref(&labels(series)).unwrap();
                        refs.insert(series, r);
                        r
                    }
                };
                let x = value(v);
                let want = model.append(series, t, Val::F(x.to_bits()));
                let got = a.append(r, t, x);
                prop_assert_eq!(got, want, "append s{} t={} v={:x}", series, t, x.to_bits());
            }
            Op::AppendHistogram { series, t, v } => {
                let a = app.get_or_insert_with(|| h.appender());
                let r = match refs.get(&series) {
                    Some(r) => *r,
                    None => {
                        let r = a.series_ref(&labels(series)).unwrap();
                        refs.insert(series, r);
                        r
                    }
                };
                let x = histogram(v);
                let want = model.append(series, t, Val::H(x.clone()));
                let got = a.append_histogram(r, t, &x);
                prop_assert_eq!(got, want, "append histogram s{} t={} v={}", series, t, v);
            }
            Op::Commit => {
                if let Some(a) = app.take() {
                    a.commit().unwrap();
                }
                model.commit();
            }
            Op::Rollback => {
                if let Some(a) = app.take() {
                    a.rollback();
                }
                model.pending.clear();
            }
            Op::Select { mint, len } => {
                prop_assert_eq!(read(h, mint, mint + len), model.select(mint, mint + len));
            }
            Op::Truncate { mint } => {
                if let Some(a) = app.take() {
                    a.commit().unwrap();
                }
                model.commit();
                h.truncate(mint).unwrap();
                model.truncate(mint);
                // Collected series come back with new refs.
                refs.clear();
            }
            Op::Restart => {
                drop(app.take());
                model.pending.clear();
                drop(head.take());
                // The lower bound is not passed in: the WAL checkpoint carries it.
                head = Some(Head::open(dir.path(), options(i64::MIN)).unwrap());
                refs.clear();
            }
        }
    }
    drop(app.take());
    model.pending.clear();
    let h = head.as_ref().unwrap();
    prop_assert_eq!(read(h, i64::MIN, i64::MAX), model.select(i64::MIN, i64::MAX));
    drop(head.take());
    let h = Head::open(dir.path(), options(i64::MIN)).unwrap();
    prop_assert_eq!(read(&h, i64::MIN, i64::MAX), model.select(i64::MIN, i64::MAX));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn head_matches_model(ops in proptest::collection::vec(arb_op(), 1..120)) {
        run(ops)?;
    }
}

#[test]
fn head_matches_model_long_monotonic_run() {
    // Many samples per series: several full chunks per series and block boundaries.
    let mut ops = Vec::new();
    for t in 0..600 {
        ops.push(Op::Append { series: (t % 3) as usize, t, v: (t % 7) as u8 });
        if t % 17 == 0 {
            ops.push(Op::Commit);
        }
        if t % 151 == 0 {
            ops.push(Op::Restart);
        }
        if t == 450 {
            ops.push(Op::Truncate { mint: 200 });
        }
    }
    ops.push(Op::Commit);
    ops.push(Op::Select { mint: 150, len: 300 });
    run(ops).unwrap();
}
