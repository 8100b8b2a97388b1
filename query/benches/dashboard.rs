//! Grafana-dashboard query benchmarks through the real storage read path
//! (`storage::db::Db`: appender -> head -> querier -> engine).
//!
//! Data is shaped like the bench workload: counters scraped every 15 s with `instance`, `job`
//! labels, and classic histograms (11 `le` buckets per instance). Series counts default to
//! 10 000 counters (1 h) and 1 100 bucket series (24 h) so the data builds in seconds on a
//! shared 2-core machine; the target workload is 100 000 series, settable with
//! `HEARTH_BENCH_SERIES` (counters) and `HEARTH_BENCH_HIST_INSTANCES` (histogram instances,
//! 11 series each).
//!
//! Benches (elements: samples read from storage for the query):
//! * `dashboard_sum_rate_1h_range`: `sum by (job) (rate(http_requests_total[5m]))` over 1 h at
//!   a 15 s step.
//! * `dashboard_sum_rate_instant`: the same at one time.
//! * `dashboard_histogram_quantile_1h_range`: `histogram_quantile(0.99, sum by (le)
//!   (rate(latency_seconds_bucket[5m])))` over 1 h at 15 s.
//! * `dashboard_histogram_quantile_24h_range`: the same over 24 h at a 60 s step.
//! * `dashboard_topk_instant`: `topk(10, rate(http_requests_total[5m]))` at one time.
//! * `dashboard_topk_1h_range`: the same over 1 h at 15 s.
//! * `dashboard_count_by_instant`: `count by (job) (http_requests_total)` at one time.
//! * `dashboard_count_by_1h_range`: the same over 1 h at 15 s.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use query::{Engine, EngineOptions};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use storage::db::{Db, DbOptions};
use storage::wal::FsyncPolicy;
use storage::{Appender, Labels};

const SCRAPE_MS: i64 = 15_000;
const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;
/// Data starts here (a realistic epoch time, 2026-01-01).
const T0: i64 = 1_767_225_600_000;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn open_db() -> (Db, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut opts = DbOptions::default();
    opts.head.wal.fsync = FsyncPolicy::Never;
    let db = Db::open(dir.path(), opts).expect("db opens");
    (db, dir)
}

/// Appends `series` counters with samples every 15 s over `[T0, T0 + duration_ms]`.
fn add_counters(db: &Db, series: usize, duration_ms: i64) {
    let mut rng = StdRng::seed_from_u64(42);
    for chunk in (0..series).collect::<Vec<_>>().chunks(1000) {
        let mut app = db.appender();
        for &s in chunk {
            let l = Labels::from_pairs([
                ("__name__", "http_requests_total".to_string()),
                ("instance", format!("host-{s}")),
                ("job", format!("job-{}", s % 20)),
            ]);
            let r = app.series_ref(&l).expect("series ref");
            let mut v = 0.0;
            let mut t = T0;
            while t <= T0 + duration_ms {
                v += rng.random_range(0.0..10.0);
                app.append(r, t, v).expect("append");
                t += SCRAPE_MS;
            }
        }
        app.commit().expect("commit");
    }
}

/// Appends `instances` classic histograms (11 cumulative `le` buckets each).
fn add_buckets(db: &Db, instances: usize, duration_ms: i64) {
    let mut rng = StdRng::seed_from_u64(7);
    let les = ["0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "+Inf"];
    for chunk in (0..instances).collect::<Vec<_>>().chunks(100) {
        let mut app = db.appender();
        for &s in chunk {
            let refs: Vec<_> = les
                .iter()
                .map(|le| {
                    let l = Labels::from_pairs([
                        ("__name__", "latency_seconds_bucket".to_string()),
                        ("instance", format!("host-{s}")),
                        ("job", format!("job-{}", s % 5)),
                        ("le", le.to_string()),
                    ]);
                    app.series_ref(&l).expect("series ref")
                })
                .collect();
            let mut counts = vec![0.0; les.len()];
            let mut t = T0;
            while t <= T0 + duration_ms {
                for _ in 0..20 {
                    let b = rng.random_range(0..les.len());
                    for c in counts.iter_mut().skip(b) {
                        *c += 1.0;
                    }
                }
                for (r, c) in refs.iter().zip(counts.iter()) {
                    app.append(*r, t, *c).expect("append");
                }
                t += SCRAPE_MS;
            }
        }
        app.commit().expect("commit");
    }
}

fn group<'a>(c: &'a mut Criterion, name: &str) -> criterion::BenchmarkGroup<'a, criterion::measurement::WallTime> {
    let mut g = c.benchmark_group(name);
    g.sample_size(10);
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(5));
    g
}

fn counters_benches(c: &mut Criterion) {
    let series = env_usize("HEARTH_BENCH_SERIES", 10_000);
    let (db, _dir) = open_db();
    add_counters(&db, series, HOUR_MS);
    let engine = Engine::new(EngineOptions::default());
    let end = T0 + HOUR_MS;
    let per_window = (300_000 / SCRAPE_MS) as u64;
    // A range query reads the hour plus the first window's 5 minutes.
    let range_samples = series as u64 * ((HOUR_MS + 300_000) / SCRAPE_MS) as u64;
    let instant_samples = series as u64 * per_window;
    let label = format!("{series}_series");

    let range = |q: &'static str| {
        let q = q.to_string();
        let engine = engine.clone();
        let db = &db;
        move || {
            let querier = db.querier();
            let r = engine.range_query(&querier, &q, end - HOUR_MS, end, SCRAPE_MS).expect("query runs");
            std::hint::black_box(r);
        }
    };
    let instant = |q: &'static str| {
        let q = q.to_string();
        let engine = engine.clone();
        let db = &db;
        move || {
            let querier = db.querier();
            let r = engine.instant_query(&querier, &q, end).expect("query runs");
            std::hint::black_box(r);
        }
    };

    let cases: [(&str, &'static str, bool, u64); 6] = [
        ("dashboard_sum_rate_1h_range", "sum by (job) (rate(http_requests_total[5m]))", true, range_samples),
        ("dashboard_sum_rate_instant", "sum by (job) (rate(http_requests_total[5m]))", false, instant_samples),
        ("dashboard_topk_instant", "topk(10, rate(http_requests_total[5m]))", false, instant_samples),
        ("dashboard_topk_1h_range", "topk(10, rate(http_requests_total[5m]))", true, range_samples),
        ("dashboard_count_by_instant", "count by (job) (http_requests_total)", false, instant_samples),
        ("dashboard_count_by_1h_range", "count by (job) (http_requests_total)", true, range_samples),
    ];
    for (name, q, is_range, elems) in cases {
        let mut g = group(c, name);
        g.throughput(Throughput::Elements(elems));
        if is_range {
            let mut f = range(q);
            g.bench_function(&label, |b| b.iter(&mut f));
        } else {
            let mut f = instant(q);
            g.bench_function(&label, |b| b.iter(&mut f));
        }
        g.finish();
    }
}

fn histogram_benches(c: &mut Criterion) {
    let instances = env_usize("HEARTH_BENCH_HIST_INSTANCES", 100);
    let (db, _dir) = open_db();
    add_buckets(&db, instances, DAY_MS);
    let engine = Engine::new(EngineOptions::default());
    let end = T0 + DAY_MS;
    let q = "histogram_quantile(0.99, sum by (le) (rate(latency_seconds_bucket[5m])))";
    let series = instances as u64 * 11;
    let label = format!("{series}_series");
    for (name, dur, step) in [
        ("dashboard_histogram_quantile_1h_range", HOUR_MS, SCRAPE_MS),
        ("dashboard_histogram_quantile_24h_range", DAY_MS - 300_000, 60_000),
    ] {
        let mut g = group(c, name);
        g.throughput(Throughput::Elements(series * ((dur + 300_000) / SCRAPE_MS) as u64));
        g.bench_function(&label, |b| {
            b.iter(|| {
                let querier = db.querier();
                let r = engine.range_query(&querier, q, end - dur, end, step).expect("query runs");
                std::hint::black_box(r);
            })
        });
        g.finish();
    }
}

criterion_group!(benches, counters_benches, histogram_benches);
criterion_main!(benches);
