//! Chunk encoding benchmarks on the node-exporter-like workload
//! (`storage::chunkenc::workload`, 15 s scrapes, 120-sample chunks).
//!
//! - `xor_append`: appends into [`FloatChunkBuilder`] and finishes the chunk (the head's
//!   per-sample cost, including the end-of-chunk encoding choice), per sample.
//! - `chunk_iterate`: decodes every sample of finished chunks, per sample.
//! - `chunk_seek`: seeks to the middle of each chunk from a fresh iterator, per seek.
//! - `float_iter_seek/last`: a fresh iterator seeks to each chunk's last sample (an instant
//!   query's lookback window at the end of the newest chunk), per seek.
//! - `float_iter_seek/steps`: one iterator per chunk seeks forward to every 4th sample (a range
//!   query stepping through a chunk), per seek.
//! - `open_chunk_newest/{node_exporter_mix,busy_counter}`: the per-series cost of an instant
//!   query over the head: snapshot an open chunk of 120 samples (`snapshot_bytes`, what a
//!   select copies per series), seek a fresh iterator to the start of a 5-sample lookback
//!   window before the newest sample, read to the end; per series. On the workload's jittered
//!   timestamps and on the same values at exact scrape-interval timestamps. With the open
//!   chunk's seek points (snapshots as `SeekableFloat`) vs without, separate builds, load
//!   4.2-4.7: mix regular 141/154 -> 67/116 us, mix jittered 204/222 -> 145/158 us,
//!   busy_counter regular 27/44 -> 10/11 us, jittered 34/46 -> 18/18 us.
//! - `st_chunk_iterate`: decodes every sample and its start timestamp of `FloatSt` chunks
//!   (the busy counters with a cumulative or a delta start timestamp), per sample, next to the
//!   same chunks without start timestamps.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use storage::chunkenc::workload::{self, SeriesKind};
use storage::chunkenc::{ChunkIter, Encoding, FloatChunkBuilder, FloatStChunkBuilder, HistogramChunkBuilder, SAMPLES_PER_CHUNK};
use storage::histogram::{FloatHistogram, Span};
use storage::ValueType;

/// (name, series) pairs: the whole mix, and two single kinds at the extremes.
fn workloads() -> Vec<(&'static str, Vec<Vec<(i64, f64)>>)> {
    let mix = workload::node_exporter(200, SAMPLES_PER_CHUNK, 1);
    let pick = |k: SeriesKind| mix.iter().filter(|(kind, _)| *kind == k).map(|(_, s)| s.clone()).collect::<Vec<_>>();
    vec![
        ("node_exporter_mix", mix.iter().map(|(_, s)| s.clone()).collect()),
        ("busy_counter", pick(SeriesKind::BusyCounter)),
        ("full_precision_gauge", pick(SeriesKind::FullPrecisionGauge)),
    ]
}

fn encoded(series: &[Vec<(i64, f64)>]) -> Vec<(Encoding, Vec<u8>)> {
    series
        .iter()
        .map(|s| {
            let mut b = FloatChunkBuilder::new();
            s.iter().for_each(|&(t, v)| b.append(t, v));
            b.finish()
        })
        .collect()
}

fn bench_append(c: &mut Criterion) {
    let mut g = c.benchmark_group("xor_append");
    for (name, series) in workloads() {
        let n: usize = series.iter().map(Vec::len).sum();
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::from_parameter(name), &series, |b, series| {
            let mut builder = FloatChunkBuilder::new();
            b.iter(|| {
                let mut bytes = 0;
                for s in series {
                    for &(t, v) in s {
                        builder.append(t, v);
                    }
                    bytes += builder.finish().1.len();
                }
                black_box(bytes)
            })
        });
    }
    g.finish();
}

fn bench_iterate(c: &mut Criterion) {
    let mut g = c.benchmark_group("chunk_iterate");
    for (name, series) in workloads() {
        let chunks = encoded(&series);
        let n: usize = series.iter().map(Vec::len).sum();
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::from_parameter(name), &chunks, |b, chunks| {
            b.iter(|| {
                let mut sum = 0.0;
                let mut it = ChunkIter::new(chunks[0].0, &chunks[0].1);
                for (enc, bytes) in chunks {
                    it.reset(*enc, bytes);
                    while it.next() == ValueType::Float {
                        sum += it.at().1;
                    }
                }
                black_box(sum)
            })
        });
    }
    g.finish();
}

fn bench_seek(c: &mut Criterion) {
    let mut g = c.benchmark_group("chunk_seek");
    for (name, series) in workloads() {
        let chunks = encoded(&series);
        let targets: Vec<i64> = series.iter().map(|s| s[s.len() / 2].0).collect();
        g.throughput(Throughput::Elements(chunks.len() as u64));
        g.bench_with_input(BenchmarkId::from_parameter(name), &(chunks, targets), |b, (chunks, targets)| {
            b.iter(|| {
                let mut acc = 0i64;
                for ((enc, bytes), &t) in chunks.iter().zip(targets) {
                    let mut it = ChunkIter::new(*enc, bytes);
                    if it.seek(t) == ValueType::Float {
                        acc = acc.wrapping_add(it.at().0);
                    }
                }
                black_box(acc)
            })
        });
    }
    g.finish();
}

fn bench_float_iter_seek(c: &mut Criterion) {
    let mut g = c.benchmark_group("float_iter_seek");
    let series = workload::node_exporter(200, SAMPLES_PER_CHUNK, 1).into_iter().map(|(_, s)| s).collect::<Vec<_>>();
    let chunks = encoded(&series);
    let last: Vec<i64> = series.iter().map(|s| s[s.len() - 1].0).collect();
    g.throughput(Throughput::Elements(chunks.len() as u64));
    g.bench_function("last", |b| {
        b.iter(|| {
            let mut acc = 0.0;
            for ((enc, bytes), &t) in chunks.iter().zip(&last) {
                let mut it = ChunkIter::new(*enc, bytes);
                if it.seek(t) == ValueType::Float {
                    acc += it.at().1;
                }
            }
            black_box(acc)
        })
    });
    let steps: Vec<Vec<i64>> = series.iter().map(|s| s.iter().step_by(4).map(|x| x.0).collect()).collect();
    let n: usize = steps.iter().map(Vec::len).sum();
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function("steps", |b| {
        b.iter(|| {
            let mut acc = 0.0;
            for ((enc, bytes), ts) in chunks.iter().zip(&steps) {
                let mut it = ChunkIter::new(*enc, bytes);
                for &t in ts {
                    if it.seek(t) == ValueType::Float {
                        acc += it.at().1;
                    }
                }
            }
            black_box(acc)
        })
    });
    g.finish();
}

/// Histogram append + decode of a 20-bucket histogram whose counts grow each scrape.
fn bench_histogram(c: &mut Criterion) {
    let mut h = FloatHistogram {
        schema: 3,
        zero_threshold: 1e-128,
        positive_spans: vec![Span { offset: 0, length: 20 }],
        positive_buckets: vec![0.0; 20],
        ..FloatHistogram::default()
    };
    let mut samples = Vec::new();
    for i in 0..SAMPLES_PER_CHUNK {
        for (j, b) in h.positive_buckets.iter_mut().enumerate() {
            *b += ((i * 7 + j * 3) % 11) as f64;
        }
        h.count = h.positive_buckets.iter().sum();
        h.sum += 12.5;
        samples.push((i as i64 * 15_000, h.clone()));
    }
    let mut g = c.benchmark_group("histogram_chunk");
    g.throughput(Throughput::Elements(samples.len() as u64));
    g.bench_function("append", |b| {
        let mut builder = HistogramChunkBuilder::new();
        b.iter(|| {
            for (t, h) in &samples {
                builder.append(*t, h);
            }
            black_box(builder.finish().1.len())
        })
    });
    let mut builder = HistogramChunkBuilder::new();
    samples.iter().for_each(|(t, h)| builder.append(*t, h));
    let (enc, bytes) = builder.finish();
    g.bench_function("iterate", |b| {
        b.iter(|| {
            let mut it = ChunkIter::new(enc, &bytes);
            let mut sum = 0.0;
            while it.next() == ValueType::Histogram {
                sum += it.at_histogram().1.count;
            }
            black_box(sum)
        })
    });
    g.finish();
}

fn bench_st_iterate(c: &mut Criterion) {
    let mut g = c.benchmark_group("st_chunk_iterate");
    let series = workloads().into_iter().find(|w| w.0 == "busy_counter").map(|w| w.1).unwrap_or_default();
    let n: usize = series.iter().map(Vec::len).sum();
    g.throughput(Throughput::Elements(n as u64));
    type StOf = fn(&[(i64, f64)], usize) -> i64;
    let shapes: [(&str, Option<StOf>); 3] = [
        ("plain", None),
        ("cumulative", Some(|s, _| s[0].0 - 1_000)),
        ("delta", Some(|s, i| if i == 0 { s[0].0 - 15_000 } else { s[i - 1].0 })),
    ];
    for (shape, st_of) in shapes {
        let chunks: Vec<(Encoding, Vec<u8>)> = match st_of {
            None => encoded(&series),
            Some(f) => series
                .iter()
                .map(|s| {
                    let mut b = FloatStChunkBuilder::new();
                    for (i, &(t, v)) in s.iter().enumerate() {
                        b.append(f(s, i), t, v);
                    }
                    b.finish()
                })
                .collect(),
        };
        g.bench_with_input(BenchmarkId::from_parameter(shape), &chunks, |b, chunks| {
            b.iter(|| {
                let (mut sum, mut sts) = (0.0, 0i64);
                let mut it = ChunkIter::new(chunks[0].0, &chunks[0].1);
                for (enc, bytes) in chunks {
                    it.reset(*enc, bytes);
                    while it.next() == ValueType::Float {
                        sum += it.at().1;
                        sts = sts.wrapping_add(it.st());
                    }
                }
                black_box((sum, sts))
            })
        });
    }
    g.finish();
}

fn bench_open_chunk_newest(c: &mut Criterion) {
    let mut g = c.benchmark_group("open_chunk_newest");
    let mut sets: Vec<(String, Vec<Vec<(i64, f64)>>)> = Vec::new();
    for (name, series) in workloads().into_iter().filter(|(n, _)| *n != "full_precision_gauge") {
        // The same values on exact scrape-interval timestamps (remote-write from a scraper
        // that aligns its scrapes): the timestamp seek is O(1), the value column is the cost.
        let regular = series
            .iter()
            .map(|s| s.iter().enumerate().map(|(i, &(_, v))| (1_700_000_000_000 + i as i64 * workload::SCRAPE_INTERVAL_MS, v)).collect())
            .collect();
        sets.push((format!("{name}/regular_ts"), regular));
        sets.push((format!("{name}/jittered_ts"), series));
    }
    for (name, series) in sets {
        let builders: Vec<FloatChunkBuilder> = series
            .iter()
            .map(|s| {
                let mut b = FloatChunkBuilder::new();
                s.iter().for_each(|&(t, v)| b.append(t, v));
                b
            })
            .collect();
        g.throughput(Throughput::Elements(builders.len() as u64));
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut sum = 0.0;
                for bld in &builders {
                    let (enc, bytes) = bld.snapshot_bytes();
                    let lo = bld.max_t().unwrap_or(0) - 4 * workload::SCRAPE_INTERVAL_MS;
                    let mut it = ChunkIter::new(enc, &bytes);
                    let mut vt = it.seek(lo);
                    while vt == ValueType::Float {
                        sum += it.at().1;
                        vt = it.next();
                    }
                }
                black_box(sum)
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench_open_chunk_newest, bench_append, bench_iterate, bench_seek, bench_float_iter_seek, bench_histogram, bench_st_iterate);
criterion_main!(benches);
