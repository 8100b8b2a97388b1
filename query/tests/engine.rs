//! Engine API tests: the storage querier path, limits, cancellation, errors.

use std::sync::atomic::AtomicBool;
use std::time::Duration;

use query::mem::MemStorage;
use query::{Engine, EngineOptions, QueryError, Value};
use storage::{Labels, Matcher, Querier, Series};

/// A querier over fixed float series, as storage hands them out.
struct VecQuerier(Vec<(Labels, Vec<(i64, f64)>)>);

impl Querier for VecQuerier {
    fn select(&self, matchers: &[Matcher], mint_ms: i64, maxt_ms: i64) -> storage::Result<Vec<Series>> {
        let mut out: Vec<Series> = self
            .0
            .iter()
            .filter(|(l, _)| matchers.iter().all(|m| m.matches(l.get(&m.name).unwrap_or(""))))
            .map(|(l, s)| {
                let mut ser = Series::from_samples(l.clone(), s);
                ser.mint_ms = mint_ms;
                ser.maxt_ms = maxt_ms;
                ser
            })
            .collect();
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok(out)
    }

    fn label_names(&self, _: &[Matcher], _: i64, _: i64) -> storage::Result<Vec<String>> {
        Ok(Vec::new())
    }

    fn label_values(&self, _: &str, _: &[Matcher], _: i64, _: i64) -> storage::Result<Vec<String>> {
        Ok(Vec::new())
    }
}

fn lbl(name: &str, job: &str) -> Labels {
    Labels::from_pairs([("__name__", name), ("job", job)])
}

fn querier() -> VecQuerier {
    let s = |step: f64| (0..=10).map(|i| (i * 60_000, i as f64 * step)).collect::<Vec<_>>();
    VecQuerier(vec![(lbl("x_total", "a"), s(1.0)), (lbl("x_total", "b"), s(2.0))])
}

#[test]
fn instant_query_through_storage_querier() {
    let e = Engine::new(EngineOptions::default());
    let r = e.instant_query(&querier(), "sum(x_total)", 600_000).unwrap();
    match r.value {
        Value::Vector(v) => {
            assert_eq!(v.len(), 1);
            assert_eq!(v[0].f, 30.0);
            assert!(v[0].metric.is_empty());
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn range_query_through_storage_querier() {
    let e = Engine::new(EngineOptions::default());
    let r = e.range_query(&querier(), "x_total{job=\"b\"} * 2", 0, 120_000, 60_000).unwrap();
    let Value::Matrix(m) = r.value else { panic!("matrix expected") };
    assert_eq!(m.len(), 1);
    let vals: Vec<f64> = m[0].floats.iter().map(|p| p.f).collect();
    assert_eq!(vals, vec![0.0, 4.0, 8.0]);
    assert_eq!(m[0].metric, Labels::from_pairs([("job", "b")]));
}

#[test]
fn too_many_samples_is_an_execution_error() {
    let e = Engine::new(EngineOptions { max_samples: 5, ..EngineOptions::default() });
    let err = e.range_query(&querier(), "x_total", 0, 600_000, 60_000).unwrap_err();
    assert_eq!(err, QueryError::TooManySamples("query execution"));
    assert_eq!(err.to_string(), "query processing would load too many samples into memory in query execution");
    assert_eq!(err.error_type(), "execution");
}

#[test]
fn cancel_and_timeout() {
    let st = MemStorage::new();
    let e = Engine::new(EngineOptions::default());
    let cancel = AtomicBool::new(true);
    assert!(matches!(e.instant_query_source(&st, "vector(1)", 0, Some(&cancel)), Err(QueryError::Canceled(_))));
    let e = Engine::new(EngineOptions { timeout: Some(Duration::ZERO), ..EngineOptions::default() });
    std::thread::sleep(Duration::from_millis(1));
    let err = e.instant_query_source(&st, "vector(1)", 0, None).unwrap_err();
    assert!(matches!(err, QueryError::Timeout(_)), "{err:?}");
    assert_eq!(err.error_type(), "timeout");
}

#[test]
fn bad_queries_are_bad_data() {
    let e = Engine::new(EngineOptions::default());
    let err = e.instant_query(&querier(), "sum(", 0).unwrap_err();
    assert_eq!(err.error_type(), "bad_data");
    let err = e.range_query(&querier(), "x_total[5m]", 0, 60_000, 60_000).unwrap_err();
    assert_eq!(err.error_type(), "bad_data");
    let err = e.range_query(&querier(), "x_total", 0, 60_000, 0).unwrap_err();
    assert_eq!(err.error_type(), "bad_data");
}

#[test]
fn rate_info_annotation_comes_with_the_result() {
    let mut st = MemStorage::new();
    for i in 0..10 {
        st.add_float(&lbl("gauge", "a"), i * 15_000, i as f64);
    }
    let e = Engine::new(EngineOptions::default());
    let r = e.instant_query_source(&st, "rate(gauge[1m])", 120_000, None).unwrap();
    assert_eq!(
        r.annotations.infos,
        vec!["PromQL info: metric might not be a counter, name does not end in _total/_sum/_count/_bucket: \"gauge\" (1:6)".to_string()]
    );
}

#[test]
fn total_series_counts_selected_series_over_all_selectors() {
    let e = Engine::new(EngineOptions::default());
    let r = e.instant_query(&querier(), "sum(x_total)", 600_000).unwrap();
    assert_eq!(r.total_series, 2);
    // Two selectors: both series by the first, one by the second.
    let r = e.range_query(&querier(), "sum(rate(x_total[5m])) + sum(x_total{job=\"a\"})", 300_000, 600_000, 60_000).unwrap();
    assert_eq!(r.total_series, 3);
    // A subquery's inner selector counts too.
    let r = e.instant_query(&querier(), "max_over_time(x_total{job=\"b\"}[5m:1m])", 600_000).unwrap();
    assert_eq!(r.total_series, 1);
    let r = e.instant_query(&querier(), "sum(nothing_total)", 600_000).unwrap();
    assert_eq!(r.total_series, 0);
}
