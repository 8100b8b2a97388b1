//! Tests of `binary.rs`: the range path against the per-step (instant) path.

use storage::Labels;

use crate::mem::MemStorage;
use crate::value::{Sample, Value};
use crate::{Engine, EngineOptions};

const STEP_MS: i64 = 60_000;
const STEPS: i64 = 40;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    Labels::from_pairs(pairs.iter().map(|(n, v)| (n.to_string(), v.to_string())))
}

/// Gauges with gaps longer than the lookback delta (so series come and go between steps),
/// a "one" side with extra labels for `group_left`, and one side whose matching labels
/// collide only in part of the range.
fn store() -> MemStorage {
    let mut st = MemStorage::new();
    for i in 0..4 {
        let inst = format!("h{i}");
        let a = labels(&[("__name__", "a"), ("instance", &inst), ("job", "j")]);
        let b = labels(&[("__name__", "b"), ("instance", &inst), ("job", "j")]);
        let info = labels(&[("__name__", "info"), ("instance", &inst), ("version", &format!("v{}", i % 2))]);
        for s in 0..=STEPS {
            let t = s * STEP_MS;
            // `a` is absent for steps 10..20 on h1, `b` for steps 25..35 on h2.
            if !(i == 1 && (10..20).contains(&s)) {
                st.add_float(&a, t, (i * 10 + s) as f64);
            }
            if !(i == 2 && (25..35).contains(&s)) {
                st.add_float(&b, t, (s % 7) as f64 + i as f64);
            }
            st.add_float(&info, t, 1.0);
        }
    }
    // A second `dup` series matching `a` on `instance` only from step 30 on.
    for (name, from) in [("x", 0), ("y", 30)] {
        let l = labels(&[("__name__", "dup"), ("instance", "h0"), ("kind", name)]);
        for s in from..=STEPS {
            st.add_float(&l, s * STEP_MS, 2.0);
        }
    }
    st
}

fn sorted(mut v: Vec<Sample>) -> Vec<(String, i64, u64)> {
    v.sort_by(|a, b| a.metric.cmp(&b.metric));
    v.into_iter().map(|s| (s.metric.to_string(), s.t, s.f.to_bits())).collect()
}

/// The range path (signature and labels once per series) must give at every step exactly
/// what an instant query at that step gives (the per-step path), including the step of
/// the first error.
#[test]
fn range_equals_instant_at_every_step() {
    let st = store();
    let engine = Engine::new(EngineOptions::default());
    let queries = [
        "a / b",
        "a - on(instance) b",
        "a * ignoring(job) b",
        "a > b",
        "a <= bool b",
        "b == a",
        "a + fill(0) b",
        "a - fill_left(1) b",
        "a / fill_right(2) b",
        "a * on(instance) group_left(version) info",
        "info * on(instance) group_right(job) a",
        "a + on(instance) group_left fill(0) info",
        "a + on(instance) dup",
        "dup * on(instance) group_left a",
        "a / on(instance) group_left(kind) dup",
        "a + ignoring(job, instance) b",
    ];
    for q in queries {
        let range = engine.range_query_source(&st, q, 0, STEPS * STEP_MS, STEP_MS, None);
        let mut per_step: Vec<Vec<(String, i64, u64)>> = Vec::new();
        let mut first_err = None;
        for s in 0..=STEPS {
            match engine.instant_query_source(&st, q, s * STEP_MS, None) {
                Ok(r) => match r.value {
                    Value::Vector(v) => per_step.push(sorted(v)),
                    other => panic!("{q}: instant result {other:?}"),
                },
                Err(e) => {
                    first_err = Some(e.to_string());
                    break;
                }
            }
        }
        match (range, first_err) {
            (Err(e), Some(want)) => assert_eq!(e.to_string(), want, "{q}"),
            (Ok(_), Some(want)) => panic!("{q}: range query succeeded, instant failed with {want}"),
            (Err(e), None) => panic!("{q}: range query failed with {e}"),
            (Ok(r), None) => {
                let Value::Matrix(m) = r.value else { panic!("{q}: range result not a matrix") };
                let mut got: Vec<Vec<(String, i64, u64)>> = vec![Vec::new(); per_step.len()];
                for ser in m {
                    assert!(ser.histograms.is_empty(), "{q}");
                    for p in ser.floats {
                        got[(p.t / STEP_MS) as usize].push((ser.metric.to_string(), p.t, p.f.to_bits()));
                    }
                }
                for v in got.iter_mut() {
                    v.sort();
                }
                for v in per_step.iter_mut() {
                    v.sort();
                }
                assert_eq!(got, per_step, "{q}");
                assert!(got.iter().any(|v| !v.is_empty()), "{q}: empty result");
            }
        }
    }
}
