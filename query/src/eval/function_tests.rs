//! Tests of `functions.rs`: element-wise and relabelling functions over a range
//! ([`super::super::Evaluator::range_map`], labels once per series) against instant queries
//! at every step.

use std::collections::BTreeSet;

use storage::{FloatHistogram, Labels};

use crate::mem::MemStorage;
use crate::value::{Sample, Value};
use crate::{Engine, EngineOptions};

const STEP_MS: i64 = 60_000;
const STEPS: i64 = 40;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    Labels::from_pairs(pairs.iter().map(|(n, v)| (n.to_string(), v.to_string())))
}

/// Gauges with gaps longer than the lookback delta, a series mixing floats and histograms,
/// a scalar source present only in part of the range, and two series whose labels become
/// equal under `label_replace` only where both exist (from step 30 on).
fn store() -> MemStorage {
    let mut st = MemStorage::new();
    for i in 0..4 {
        let inst = format!("h{i}");
        let a = labels(&[("__name__", "a"), ("instance", &inst), ("job", "j")]);
        for s in 0..=STEPS {
            if !(i == 1 && (10..20).contains(&s)) {
                st.add_float(&a, s * STEP_MS, (i * 10 + s) as f64 - 15.5);
            }
        }
    }
    let mixed = labels(&[("__name__", "mixed"), ("instance", "h0")]);
    let hist = labels(&[("__name__", "hist"), ("instance", "h0")]);
    for s in 0..=STEPS {
        let h = FloatHistogram { count: s as f64, sum: 2.0 * s as f64, ..Default::default() };
        st.add_histogram(&hist, s * STEP_MS, h.clone());
        if s % 3 == 0 {
            st.add_histogram(&mixed, s * STEP_MS, h);
        } else {
            st.add_float(&mixed, s * STEP_MS, s as f64 / 7.0);
        }
    }
    let lim = labels(&[("__name__", "lim")]);
    for s in 5..=25 {
        st.add_float(&lim, s * STEP_MS, (s % 4) as f64);
    }
    for (kind, from) in [("x", 0), ("y", 30)] {
        let l = labels(&[("__name__", "dup"), ("instance", "h0"), ("kind", kind)]);
        for s in from..=STEPS {
            st.add_float(&l, s * STEP_MS, 2.0);
        }
    }
    st
}

type Point = (String, i64, String);

fn point(metric: &Labels, t: i64, f: f64, h: Option<&FloatHistogram>) -> Point {
    let v = match h {
        Some(h) => format!("h{}/{}", h.count, h.sum),
        None => format!("f{:x}", f.to_bits()),
    };
    (metric.to_string(), t, v)
}

fn points(v: Vec<Sample>) -> Vec<Point> {
    let mut out: Vec<Point> = v.iter().map(|s| point(&s.metric, s.t, s.f, s.h.as_deref())).collect();
    out.sort();
    out
}

/// Range results equal instant results at every step: values, labels (including delayed
/// name removal), annotations, and the first error.
#[test]
fn range_equals_instant_at_every_step() {
    let st = store();
    let engine = Engine::new(EngineOptions::default());
    let queries = [
        "abs(a)",
        "exp(a / 10)",
        "ln(mixed)",
        "clamp_min(a, 0)",
        "clamp_max(a, scalar(lim))",
        "clamp(a, -3, 12)",
        "clamp(a, scalar(lim), 2)",
        "round(a / 3)",
        "round(a, 0.25)",
        "round(a, scalar(lim))",
        "timestamp(a + 1)",
        "timestamp(-hist)",
        "hour(a * 1000)",
        "month(a)",
        "hist </ 10",
        "mixed >/ 5",
        r#"label_replace(a, "host", "$1", "instance", "h(.*)")"#,
        r#"label_replace(a, "__name__", "b", "instance", "h[12]")"#,
        r#"label_replace(abs(a), "__name__", "b", "instance", "h[12]")"#,
        r#"label_replace(a, "host", "$1", "nothere", "(.+)")"#,
        r#"label_join(a, "both", "-", "instance", "job")"#,
        r#"label_join(a, "__name__", "_", "job", "instance")"#,
        r#"label_replace(dup, "kind", "", "kind", ".*")"#,
        r#"label_replace(mixed, "kind", "m", "", "")"#,
    ];
    for q in queries {
        let range = engine.range_query_source(&st, q, 0, STEPS * STEP_MS, STEP_MS, None);
        let mut per_step: Vec<Vec<Point>> = Vec::new();
        let mut infos: BTreeSet<String> = BTreeSet::new();
        let mut warnings: BTreeSet<String> = BTreeSet::new();
        let mut first_err = None;
        for s in 0..=STEPS {
            match engine.instant_query_source(&st, q, s * STEP_MS, None) {
                Ok(r) => {
                    infos.extend(r.annotations.infos);
                    warnings.extend(r.annotations.warnings);
                    match r.value {
                        Value::Vector(v) => per_step.push(points(v)),
                        other => panic!("{q}: instant result {other:?}"),
                    }
                }
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
                let mut got: Vec<Vec<Point>> = vec![Vec::new(); per_step.len()];
                for ser in m {
                    for p in &ser.floats {
                        got[(p.t / STEP_MS) as usize].push(point(&ser.metric, p.t, p.f, None));
                    }
                    for p in &ser.histograms {
                        got[(p.t / STEP_MS) as usize].push(point(&ser.metric, p.t, 0.0, Some(&p.h)));
                    }
                }
                for v in got.iter_mut() {
                    v.sort();
                }
                assert_eq!(got, per_step, "{q}");
                assert!(got.iter().any(|v| !v.is_empty()), "{q}: empty result");
                let r_infos: BTreeSet<String> = r.annotations.infos.into_iter().collect();
                let r_warnings: BTreeSet<String> = r.annotations.warnings.into_iter().collect();
                assert_eq!(r_infos, infos, "{q}: infos");
                assert_eq!(r_warnings, warnings, "{q}: warnings");
            }
        }
    }
}

/// The duplicate-labelset error of a relabelling function comes at the first step where two
/// series collide, as in Prometheus (`vector cannot contain metrics with the same labelset`).
#[test]
fn label_replace_collision_is_an_error_only_where_series_overlap() {
    let st = store();
    let engine = Engine::new(EngineOptions::default());
    let q = r#"label_replace(dup, "kind", "", "kind", ".*")"#;
    let before = engine.range_query_source(&st, q, 0, 29 * STEP_MS, STEP_MS, None).expect("no overlap before step 30");
    let Value::Matrix(m) = before.value else { panic!("not a matrix") };
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].floats.len(), 30);
    let err = engine.range_query_source(&st, q, 0, STEPS * STEP_MS, STEP_MS, None).expect_err("overlap from step 30");
    assert!(err.to_string().contains("same labelset"), "{err}");
}
