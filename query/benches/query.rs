//! Engine benchmarks over generated data in an in-memory sample source.
//!
//! * `instant_query_sum_rate`: `sum by (job) (rate(http_requests_total[5m]))` at one time over
//!   1 000 counters sampled every 15 s (elements: samples inside the rate windows).
//! * `range_query_histogram_quantile`: `histogram_quantile(0.9, sum by (job, le)
//!   (rate(latency_seconds_bucket[5m])))` over 1 h at a 1 m step, 100 series × 11 `le`
//!   buckets (elements: input series × steps).
//! * `binary_vector_range`: the vector-vector path of binary operators in a range query,
//!   `node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes` (a `mem_used_ratio`
//!   dashboard panel: two gauges matched one-to-one on `instance`, `job`) over 1 h at a 15 s
//!   step and 24 h at a 60 s step, 500 instances by default (`HEARTH_BENCH_NODE_INSTANCES`)
//!   (elements: output samples, instances × steps).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use query::mem::MemStorage;
use query::{Engine, EngineOptions};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use storage::Labels;

const SCRAPE_MS: i64 = 15_000;
const HOUR_MS: i64 = 3_600_000;

fn counters(series: usize, duration_ms: i64) -> MemStorage {
    let mut rng = StdRng::seed_from_u64(42);
    let mut st = MemStorage::new();
    for s in 0..series {
        let l = Labels::from_pairs([
            ("__name__", "http_requests_total".to_string()),
            ("instance", format!("host-{s}")),
            ("job", format!("job-{}", s % 10)),
        ]);
        let mut v = 0.0;
        let mut t = 0;
        while t <= duration_ms {
            v += rng.random_range(0.0..10.0);
            st.add_float(&l, t, v);
            t += SCRAPE_MS;
        }
    }
    st
}

fn buckets(series: usize, duration_ms: i64) -> MemStorage {
    let mut rng = StdRng::seed_from_u64(7);
    let les = ["0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "+Inf"];
    let mut st = MemStorage::new();
    for s in 0..series {
        let labels: Vec<Labels> = les
            .iter()
            .map(|le| {
                Labels::from_pairs([
                    ("__name__", "latency_seconds_bucket".to_string()),
                    ("instance", format!("host-{s}")),
                    ("job", format!("job-{}", s % 5)),
                    ("le", le.to_string()),
                ])
            })
            .collect();
        let mut counts = vec![0.0; les.len()];
        let mut t = 0;
        while t <= duration_ms {
            // New observations land in one bucket each; counts stay cumulative.
            for _ in 0..20 {
                let b = rng.random_range(0..les.len());
                for c in counts.iter_mut().skip(b) {
                    *c += 1.0;
                }
            }
            for (l, c) in labels.iter().zip(counts.iter()) {
                st.add_float(l, t, *c);
            }
            t += SCRAPE_MS;
        }
    }
    st
}

/// Two node-exporter memory gauges per instance, scraped every 15 s over `[0, duration_ms]`.
fn node_memory(instances: usize, duration_ms: i64) -> MemStorage {
    let mut rng = StdRng::seed_from_u64(11);
    let mut st = MemStorage::new();
    for s in 0..instances {
        let pair = |name: &str| {
            Labels::from_pairs([
                ("__name__", name.to_string()),
                ("instance", format!("node-{s}:9100")),
                ("job", "node".to_string()),
            ])
        };
        let (avail, total) = (pair("node_memory_MemAvailable_bytes"), pair("node_memory_MemTotal_bytes"));
        let total_bytes = 16.0 * 1024.0 * 1024.0 * 1024.0;
        let mut t = 0;
        while t <= duration_ms {
            st.add_float(&avail, t, total_bytes * rng.random_range(0.1..0.9));
            st.add_float(&total, t, total_bytes);
            t += SCRAPE_MS;
        }
    }
    st
}

fn binary_vector_range(c: &mut Criterion) {
    let instances = std::env::var("HEARTH_BENCH_NODE_INSTANCES").ok().and_then(|v| v.parse().ok()).unwrap_or(500usize);
    let day_ms = 24 * HOUR_MS;
    let st = node_memory(instances, day_ms);
    let engine = Engine::new(EngineOptions::default());
    let q = "node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes";
    for (name, dur, step) in [("binary_vector_range_1h", HOUR_MS, SCRAPE_MS), ("binary_vector_range_24h", day_ms - HOUR_MS, 60_000)] {
        let mut g = c.benchmark_group(name);
        g.sample_size(10);
        g.warm_up_time(std::time::Duration::from_secs(1));
        g.measurement_time(std::time::Duration::from_secs(5));
        let steps = (dur / step + 1) as u64;
        g.throughput(Throughput::Elements(instances as u64 * steps));
        g.bench_function(format!("{instances}_instances"), |b| {
            b.iter(|| {
                let r = engine.range_query_source(&st, q, day_ms - dur, day_ms, step, None).expect("query runs");
                std::hint::black_box(r);
            })
        });
        g.finish();
    }
}

/// Functions and operators evaluated element-wise over a range: one math function, one
/// relabelling function (both `range_map`) and a vector-scalar operator (`range_eval`) over
/// 500 instances' gauges.
fn function_range(c: &mut Criterion) {
    let instances = std::env::var("HEARTH_BENCH_NODE_INSTANCES").ok().and_then(|v| v.parse().ok()).unwrap_or(500usize);
    let day_ms = 24 * HOUR_MS;
    let st = node_memory(instances, day_ms);
    let engine = Engine::new(EngineOptions::default());
    let queries = [
        ("function_range_clamp_min", "clamp_min(node_memory_MemAvailable_bytes, 1e9)"),
        ("function_range_label_replace", r#"label_replace(node_memory_MemAvailable_bytes, "host", "$1", "instance", "(.*):.*")"#),
        ("function_range_vector_scalar", "node_memory_MemAvailable_bytes / 1024"),
    ];
    for (name, q) in queries {
        for (span, dur, step) in [("1h", HOUR_MS, SCRAPE_MS), ("24h", day_ms - HOUR_MS, 60_000)] {
            let mut g = c.benchmark_group(format!("{name}_{span}"));
            g.sample_size(10);
            g.warm_up_time(std::time::Duration::from_secs(1));
            g.measurement_time(std::time::Duration::from_secs(4));
            let steps = (dur / step + 1) as u64;
            g.throughput(Throughput::Elements(instances as u64 * steps));
            g.bench_function(format!("{instances}_instances"), |b| {
                b.iter(|| {
                    let r = engine.range_query_source(&st, q, day_ms - dur, day_ms, step, None).expect("query runs");
                    std::hint::black_box(r);
                })
            });
            g.finish();
        }
    }
}

fn instant_query_sum_rate(c: &mut Criterion) {
    let st = counters(1000, HOUR_MS);
    let engine = Engine::new(EngineOptions::default());
    let q = "sum by (job) (rate(http_requests_total[5m]))";
    let mut g = c.benchmark_group("instant_query_sum_rate");
    g.throughput(Throughput::Elements(1000 * (300_000 / SCRAPE_MS) as u64));
    g.bench_function("1000_series_5m", |b| {
        b.iter(|| {
            let r = engine.instant_query_source(&st, q, HOUR_MS, None).expect("query runs");
            std::hint::black_box(r);
        })
    });
    g.finish();
}

fn range_query_histogram_quantile(c: &mut Criterion) {
    let st = buckets(100, 2 * HOUR_MS);
    let engine = Engine::new(EngineOptions::default());
    let q = "histogram_quantile(0.9, sum by (job, le) (rate(latency_seconds_bucket[5m])))";
    let steps = 61u64;
    let mut g = c.benchmark_group("range_query_histogram_quantile");
    g.throughput(Throughput::Elements(100 * 11 * steps));
    g.bench_function("1100_series_1h_1m_step", |b| {
        b.iter(|| {
            let r = engine.range_query_source(&st, q, HOUR_MS, 2 * HOUR_MS, 60_000, None).expect("query runs");
            std::hint::black_box(r);
        })
    });
    g.finish();
}

criterion_group!(benches, instant_query_sum_rate, range_query_histogram_quantile, binary_vector_range, function_range);
criterion_main!(benches);
