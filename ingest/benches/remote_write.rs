//! Remote-write receive path: decode (snappy + protobuf walk + validation) and ingest into a
//! no-op appender, on a 2,000-sample request shaped like one node-exporter scrape sent by
//! Prometheus (one sample per series, `max_samples_per_send` = 2,000).
//!
//! Benches: `rw_decode_v1`, `rw_decode_v2`, and `rw_decode_v1_cached`, `rw_decode_v2_cached`
//! through a warm series cache; throughput in samples.

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ingest::remote_write::decode::SeriesCache;
use ingest::remote_write::{encode, Decoder, Limits, NoopAppender, ProtoVersion, SeriesData, WriteRequestData};
use storage::{Metadata, MetricType};

const SAMPLES: usize = 2_000;
const T_MS: i64 = 1_700_000_000_000;

/// A metric family: name, type, and the label dimensions it varies on with their values.
type Family = (&'static str, MetricType, &'static [(&'static str, &'static [&'static str])]);

/// Metric families of a typical node-exporter scrape, with the label dimensions they vary on.
fn node_exporter_request() -> WriteRequestData {
    let families: &[Family] = &[
        ("node_cpu_seconds_total", MetricType::Counter, &[("cpu", &["0", "1", "2", "3", "4", "5", "6", "7"]), ("mode", &["idle", "iowait", "irq", "nice", "softirq", "steal", "system", "user"])]),
        ("node_network_receive_bytes_total", MetricType::Counter, &[("device", &["eth0", "eth1", "lo", "docker0", "veth1a2b3c", "veth4d5e6f"])]),
        ("node_network_transmit_bytes_total", MetricType::Counter, &[("device", &["eth0", "eth1", "lo", "docker0", "veth1a2b3c", "veth4d5e6f"])]),
        ("node_filesystem_avail_bytes", MetricType::Gauge, &[("device", &["/dev/sda1", "/dev/sda2", "tmpfs", "overlay"]), ("fstype", &["ext4", "tmpfs", "overlay"]), ("mountpoint", &["/", "/boot", "/run", "/var/lib/docker"])]),
        ("node_disk_io_time_seconds_total", MetricType::Counter, &[("device", &["sda", "sdb", "nvme0n1", "dm-0"])]),
        ("node_memory_MemAvailable_bytes", MetricType::Gauge, &[]),
        ("node_load1", MetricType::Gauge, &[]),
    ];
    let mut series = Vec::with_capacity(SAMPLES);
    let mut host = 0usize;
    'outer: loop {
        let instance = format!("node-{host:03}.example.internal:9100");
        for (name, mt, dims) in families {
            let mut combos: Vec<Vec<(&str, &str)>> = vec![vec![]];
            for (k, vals) in dims.iter() {
                combos = combos
                    .into_iter()
                    .flat_map(|c| vals.iter().map(move |v| {
                        let mut c = c.clone();
                        c.push((*k, *v));
                        c
                    }))
                    .collect();
            }
            for c in combos {
                if series.len() == SAMPLES {
                    break 'outer;
                }
                let mut labels = vec![("__name__", *name), ("instance", instance.as_str()), ("job", "node")];
                labels.extend(c);
                let v = (series.len() * 7919 % 100_000) as f64 * 1.5;
                let md = Metadata { metric_type: *mt, help: format!("Node exporter metric {name}."), unit: String::new() };
                series.push(SeriesData::new(labels).sample(T_MS, v).metadata(md));
            }
        }
        host += 1;
    }
    WriteRequestData { series, metadata: Vec::new() }
}

fn bench(c: &mut Criterion) {
    let req = node_exporter_request();
    let limits = Limits::default();
    let mut group = c.benchmark_group("remote_write");
    group.throughput(Throughput::Elements(SAMPLES as u64));
    let (v1, v2) = (encode::encode_v1(&req), encode::encode_v2(&req));
    // `_cached`: through a series cache that knows every series (the steady state of a
    // receiver: Prometheus resends the same label sets every scrape).
    for (name, version, body, cached) in [
        ("rw_decode_v1", ProtoVersion::V1, &v1, false),
        ("rw_decode_v2", ProtoVersion::V2, &v2, false),
        ("rw_decode_v1_cached", ProtoVersion::V1, &v1, true),
        ("rw_decode_v2_cached", ProtoVersion::V2, &v2, true),
    ] {
        let mut decoder =
            if cached { Decoder::with_series_cache(Arc::new(SeriesCache::default())) } else { Decoder::new() };
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut app = NoopAppender::default();
                let report = decoder
                    .decode(version, body, &limits)
                    .and_then(|r| r.ingest(&mut app, &limits, T_MS))
                    .expect("valid request");
                assert_eq!(report.samples_written, SAMPLES as u64);
                app
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
