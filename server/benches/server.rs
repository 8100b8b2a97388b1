//! Benchmarks of the server's own hot paths:
//! - `api_json_matrix`: writing a range-query result (1,000 series × 120 points) as
//!   Prometheus JSON;
//! - `rw_receive_v1_db`: one remote-write 1.0 request (1,000 series × 1 sample, node-exporter
//!   shaped) through the receiver path the handler runs: decode with a reused decoder, append
//!   into a `Db` transaction, commit (WAL fsync `never`, so the disk does not dominate).

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use ingest::remote_write::encode::encode_v1;
use ingest::remote_write::{Decoder, Limits, SeriesData, WriteRequestData, CONTENT_TYPE_V1};
use query::{FPoint, Series, Value};
use server::backend::{Backend, WriteInput};
use server::backend_db::DbBackend;
use storage::db::{Db, DbOptions};
use storage::wal::{FsyncPolicy, WalOptions};
use storage::Labels;

fn api_json_matrix(c: &mut Criterion) {
    let series: Vec<Series> = (0..1000)
        .map(|i| Series {
            metric: Labels::from_pairs([
                ("__name__", "node_cpu_seconds_total".to_string()),
                ("cpu", (i % 64).to_string()),
                ("mode", format!("mode{}", i / 64)),
                ("instance", "host-1:9100".to_string()),
            ]),
            floats: (0..120).map(|k| FPoint { t: 1_700_000_000_000 + k * 15_000, f: k as f64 * 0.25 + i as f64 }).collect(),
            histograms: Vec::new(),
            drop_name: false,
        })
        .collect();
    let v = Value::Matrix(series);
    let mut g = c.benchmark_group("api_json_matrix");
    g.throughput(Throughput::Elements(1000 * 120));
    g.bench_function("1000x120", |b| {
        let mut out = String::new();
        b.iter(|| {
            out.clear();
            server::api::json::write_query_data(&mut out, &v);
            out.len()
        })
    });
    g.finish();
}

fn rw_receive_v1_db(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = DbOptions::default();
    opts.head.wal = WalOptions { fsync: FsyncPolicy::Never, ..WalOptions::default() };
    let backend = DbBackend(Db::open(dir.path(), opts).unwrap());
    let limits = Limits::default();
    let mut decoder = Decoder::new();
    let t = std::cell::Cell::new(1_700_000_000_000i64);
    let mut g = c.benchmark_group("rw_receive_v1_db");
    g.throughput(Throughput::Elements(1000));
    g.bench_function("1000_series", |b| {
        b.iter_batched(
            || {
                t.set(t.get() + 15_000);
                let t = t.get();
                let series = (0..1000)
                    .map(|i| {
                        SeriesData::new([
                            ("__name__", "node_network_receive_bytes_total".to_string()),
                            ("device", format!("eth{i}")),
                            ("instance", "host-1:9100".to_string()),
                            ("job", "node".to_string()),
                        ])
                        .sample(t, i as f64)
                    })
                    .collect();
                encode_v1(&WriteRequestData { series, metadata: Vec::new() })
            },
            |body| {
                let input = WriteInput {
                    content_type: Some(CONTENT_TYPE_V1),
                    content_encoding: Some("snappy"),
                    body: &body,
                    now_ms: t.get(),
                };
                let out = backend.remote_write(&mut decoder, input, &limits).unwrap();
                assert!(!out.report.bad_request);
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
    backend.close().unwrap();
}

criterion_group!(benches, api_json_matrix, rw_receive_v1_db);
criterion_main!(benches);
