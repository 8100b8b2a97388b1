//! Query latency with usage recording off and on (`instant_query_usage_recording`), for a few
//! dashboard-shaped queries over a `Db` of 200 metrics × 10 series × 240 samples.
//!
//! "on" runs the recorder synchronously after the evaluation, on the query's thread: the worst
//! case. The server records on the blocking pool after the response, so what a client waits for
//! differs from "off" only by the hook's few allocations; this bench bounds the CPU the
//! recording costs per query.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use query::source::QuerierSource;
use query::{Engine, EngineOptions};
use server::usage::recorder::{CallInput, CallStats, Caller, UsageRecorder};
use storage::db::{Db, DbOptions};
use storage::usage::{ReadKind, UsageOptions, UsageStore};
use storage::wal::{FsyncPolicy, WalOptions};
use storage::{Appender, Labels};

const T0: i64 = 1_700_000_000_000;
const POINTS: i64 = 240;

fn db(dir: &std::path::Path) -> Db {
    let mut opts = DbOptions::default();
    opts.head.wal = WalOptions { fsync: FsyncPolicy::Never, ..WalOptions::default() };
    let db = Db::open(dir, opts).unwrap();
    for k in 0..POINTS {
        let mut app = db.appender();
        for m in 0..200 {
            for i in 0..10 {
                let l = Labels::from_pairs([
                    ("__name__", format!("app_metric_{m}_total")),
                    ("instance", format!("host-{i}:9100")),
                    ("job", "app".to_string()),
                ]);
                app.append_labels(&l, T0 + k * 15_000, (k * (i + 1)) as f64).unwrap();
            }
        }
        let l = Labels::from_pairs([("__name__", "build_info"), ("instance", "host-0:9100"), ("version", "1.0")]);
        app.append_labels(&l, T0 + k * 15_000, 1.0).unwrap();
        app.commit().unwrap();
    }
    db
}

fn instant_query_usage_recording(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let db = db(dir.path());
    let udir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(UsageStore::open(udir.path(), UsageOptions::default(), T0).unwrap());
    let recorder = UsageRecorder::new(store);
    let caller = Caller::default();
    let engine = Engine::new(EngineOptions::default());
    let t = T0 + (POINTS - 1) * 15_000;
    let queries = [
        ("sum_rate", "sum by (job) (rate(app_metric_7_total[5m]))"),
        ("regex_name", r#"sum(rate({__name__=~"app_metric_1[0-9]_total"}[5m]))"#),
        ("info_join", "sum by (version) (rate(app_metric_3_total[5m]) * on(instance) group_left(version) build_info)"),
    ];
    let mut g = c.benchmark_group("instant_query_usage_recording");
    g.throughput(Throughput::Elements(1));
    for (name, q) in queries {
        g.bench_function(format!("{name}/off"), |b| {
            b.iter(|| {
                let querier = db.querier();
                engine.instant_query_source(&QuerierSource(&querier), q, t, None).unwrap().total_samples
            })
        });
        g.bench_function(format!("{name}/on"), |b| {
            b.iter(|| {
                let querier = db.querier();
                let r = engine.instant_query_source(&QuerierSource(&querier), q, t, None).unwrap();
                let stats = CallStats { series: 0, samples: r.total_samples, duration_us: 1 };
                recorder.record(&querier, ReadKind::InstantQuery, CallInput::Text(q), t - 300_000, t, t, &caller, stats);
                r.total_samples
            })
        });
    }
    g.finish();
}

criterion_group!(benches, instant_query_usage_recording);
criterion_main!(benches);
