//! Properties of the generated workload: determinism, counter and histogram semantics, exact
//! series counts, staleness on churn.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::*;

fn cfg(series: usize) -> WorkloadConfig {
    WorkloadConfig { series, span_ms: 2 * 3_600_000, ..WorkloadConfig::default() }
}

/// Every step's samples, flattened, with the resets of each step.
fn run(cfg: WorkloadConfig) -> (Vec<SeriesMeta>, Vec<(Vec<Sample>, Vec<u32>)>) {
    let mut w = Workload::new(cfg).unwrap();
    let mut steps = Vec::new();
    let mut step = Step::default();
    while w.next_step(&mut step) {
        steps.push((step.samples.clone(), step.resets.clone()));
    }
    (w.series().to_vec(), steps)
}

fn is_stale(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}

#[test]
fn same_seed_same_samples_other_seed_other_values() {
    let a = run(cfg(1_500));
    let b = run(cfg(1_500));
    assert_eq!(a.0, b.0, "series tables differ");
    assert_eq!(a.1.len(), b.1.len());
    for (x, y) in a.1.iter().zip(&b.1) {
        assert_eq!(x.0.len(), y.0.len());
        for (s, t) in x.0.iter().zip(&y.0) {
            assert_eq!((s.series, s.t_ms, s.v.to_bits()), (t.series, t.t_ms, t.v.to_bits()));
        }
    }
    let c = run(WorkloadConfig { seed: 2, ..cfg(1_500) });
    let differ = a.1.iter().zip(&c.1).flat_map(|(x, y)| x.0.iter().zip(&y.0)).filter(|(s, t)| s.v != t.v).count();
    assert!(differ > 1_000, "seed 2 changed only {differ} values");
}

#[test]
fn exactly_the_configured_series_every_scrape() {
    for n in [1, 56, 57, 58, 917, 10_000] {
        let mut w = Workload::new(WorkloadConfig { series: n, span_ms: 60_000, ..WorkloadConfig::default() }).unwrap();
        let mut step = Step::default();
        assert!(w.next_step(&mut step));
        let distinct: HashSet<u32> = step.samples.iter().map(|s| s.series).collect();
        assert_eq!(distinct.len(), n);
        assert_eq!(step.samples.len(), n);
        assert_eq!(w.series().len(), n);
    }
}

#[test]
fn timestamps_on_the_10ms_grid_and_increasing_per_series() {
    let (_, steps) = run(WorkloadConfig { churn_interval_ms: Some(20 * 60_000), ..cfg(2_000) });
    let mut last: HashMap<u32, i64> = HashMap::new();
    for (samples, _) in &steps {
        for s in samples {
            assert_eq!(s.t_ms % 10, 0);
            if let Some(prev) = last.insert(s.series, s.t_ms) {
                assert!(s.t_ms > prev, "series {} went from {prev} to {}", s.series, s.t_ms);
            }
        }
    }
}

#[test]
fn counters_only_grow_except_when_their_pod_restarts() {
    let (series, steps) = run(WorkloadConfig {
        restart_probability: 0.01,
        churn_interval_ms: Some(30 * 60_000),
        ..cfg(3_000)
    });
    let mut last: HashMap<u32, f64> = HashMap::new();
    let (mut decreases, mut resets_seen) = (0, 0);
    for (samples, resets) in &steps {
        resets_seen += resets.len();
        for s in samples {
            let meta = &series[s.series as usize];
            let counter_like = matches!(
                meta.kind,
                MetricKind::Counter | MetricKind::HistogramBucket | MetricKind::HistogramCount | MetricKind::HistogramSum
            );
            if !counter_like || is_stale(s.v) {
                continue;
            }
            if let Some(prev) = last.insert(s.series, s.v) {
                if s.v < prev {
                    decreases += 1;
                    assert!(
                        resets.contains(&meta.target),
                        "{:?} decreased {prev} -> {} at {} without a restart",
                        meta.labels,
                        s.v,
                        s.t_ms
                    );
                }
            }
        }
    }
    assert!(resets_seen > 0, "no pod restarted; the test checks nothing");
    assert!(decreases > 0, "restarts did not reset any counter");
}

#[test]
fn histogram_buckets_are_cumulative_in_le_and_match_count() {
    let (series, steps) = run(WorkloadConfig { restart_probability: 0.01, ..cfg(2_000) });
    let mut checked = 0;
    for (samples, _) in &steps {
        // (pod, handler) → [(le, value)] and _count.
        let mut buckets: BTreeMap<(String, String), Vec<(f64, f64)>> = BTreeMap::new();
        let mut counts: HashMap<(String, String), f64> = HashMap::new();
        for s in samples {
            let meta = &series[s.series as usize];
            let key = || (meta.label("pod").unwrap().to_string(), meta.label("handler").unwrap().to_string());
            match meta.kind {
                MetricKind::HistogramBucket => {
                    let le: f64 = match meta.label("le").unwrap() {
                        "+Inf" => f64::INFINITY,
                        x => x.parse().unwrap(),
                    };
                    buckets.entry(key()).or_default().push((le, s.v));
                }
                MetricKind::HistogramCount => {
                    counts.insert(key(), s.v);
                }
                _ => {}
            }
        }
        for (key, mut b) in buckets {
            b.sort_by(|x, y| x.0.total_cmp(&y.0));
            for w in b.windows(2) {
                assert!(w[0].1 <= w[1].1, "{key:?}: bucket le={} has {} > le={} has {}", w[0].0, w[0].1, w[1].0, w[1].1);
            }
            if let (Some(last), Some(count)) = (b.last(), counts.get(&key)) {
                if last.0.is_infinite() {
                    assert_eq!(last.1, *count, "{key:?}: +Inf bucket != _count");
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 100, "only {checked} complete histograms checked");
}

#[test]
fn churn_marks_old_pods_stale_and_never_writes_them_again() {
    let (series, steps) = run(WorkloadConfig { churn_interval_ms: Some(15 * 60_000), ..cfg(2_000) });
    assert!(series.len() > 2_000, "churn created no new series");
    let mut stale_at: HashMap<u32, i64> = HashMap::new();
    for (samples, _) in &steps {
        for s in samples {
            if let Some(t) = stale_at.get(&s.series) {
                panic!("series {} written at {} after its staleness marker at {t}", s.series, s.t_ms);
            }
            if is_stale(s.v) {
                stale_at.insert(s.series, s.t_ms);
            }
        }
    }
    assert!(!stale_at.is_empty());
    // Only pod series churn; node series never go stale.
    assert!(stale_at.keys().all(|id| series[*id as usize].label("pod").is_some()));
}

#[test]
fn labels_are_sorted_and_shaped_like_the_exporters() {
    let w = Workload::new(cfg(10_000)).unwrap();
    let names: HashSet<&str> = w.series().iter().map(|s| s.label("__name__").unwrap()).collect();
    for n in [
        "node_cpu_seconds_total",
        "node_memory_MemAvailable_bytes",
        "node_network_receive_bytes_total",
        "node_filesystem_avail_bytes",
        "kube_pod_info",
        "kube_pod_container_status_restarts_total",
        "http_requests_total",
        "http_request_duration_seconds_bucket",
    ] {
        assert!(names.contains(n), "{n} missing");
    }
    for s in w.series() {
        assert!(s.labels.windows(2).all(|p| p[0].0 < p[1].0), "unsorted or duplicate labels {:?}", s.labels);
        assert!(s.label("job").is_some() && s.label("instance").is_some());
    }
}

#[test]
fn invalid_configs_are_rejected() {
    for bad in [
        WorkloadConfig { series: 0, ..WorkloadConfig::default() },
        WorkloadConfig { scrape_interval_ms: 15_005, ..WorkloadConfig::default() },
        WorkloadConfig { span_ms: 1_000, ..WorkloadConfig::default() },
        WorkloadConfig { churn_interval_ms: Some(1), ..WorkloadConfig::default() },
        WorkloadConfig { restart_probability: 1.5, ..WorkloadConfig::default() },
    ] {
        assert!(matches!(Workload::new(bad), Err(BenchError::Config(_))));
    }
}
