//! Chunk segment file and block read benchmarks.
//!
//! - `chunk_file_append`: appends ~150-byte chunks (a typical finished float chunk) to a
//!   [`ChunkFiles`] directory in a temp dir, with 8 MiB segments so rollover is included,
//!   per chunk. No fsync (the head syncs once per truncation, not per chunk).
//! - `chunk_file_get`: zero-copy lookups by ref with checksum verification, per chunk.
//! - `block_select_iterate/*/{head_chunks_120,block_chunks}`: a 2 h block of
//!   node-exporter-like data (20 hosts × 100 series × 480 samples at 15 s, handed to
//!   [`BlockWriter`] as the head cuts it: 120-sample chunks), written with the head's chunks
//!   kept (`head_chunks_120`) or re-chunked to [`BLOCK_CHUNK_MAX_SAMPLES`] (`block_chunks`,
//!   the default), queried through [`BlockQuerier`]: `all_2h` selects every series over the whole block and
//!   iterates every sample (per sample); `instant_5m_x12` selects every series over the
//!   5-minute lookback of an instant query at 12 times spread over the block and reads it (a
//!   seek to every offset into a chunk, per series and evaluation); `range_1h` selects every
//!   series over `[30 min, 90 min]` and iterates it (per sample).
//!
//! Run: `cargo bench -p storage --bench chunks -- --warm-up-time 1 --measurement-time 5`

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use storage::block::{Block, BlockQuerier, BlockWriter, BLOCK_CHUNK_MAX_SAMPLES};
use storage::chunkenc::workload::node_exporter;
use storage::chunkenc::{encode_floats, ChunkBytes, ChunkHandle, Encoding, SAMPLES_PER_CHUNK};
use storage::chunks::{ChunkFiles, ChunkFilesOptions};
use storage::{Labels, Matcher, Querier, ValueType};

const CHUNKS: u64 = 10_000;

fn bench_chunk_files(c: &mut Criterion) {
    let data: Vec<u8> = (0..150u32).map(|i| (i * 31 % 251) as u8).collect();
    let opts = || ChunkFilesOptions { max_segment_bytes: 8 << 20, ..ChunkFilesOptions::default() };
    let mut g = c.benchmark_group("chunk_file_append");
    g.throughput(Throughput::Elements(CHUNKS));
    g.bench_function("150_byte_chunks", |b| {
        b.iter_batched(
            || {
                let dir = tempfile::tempdir().expect("temp dir");
                let cf = ChunkFiles::open(dir.path(), opts()).expect("open");
                (dir, cf)
            },
            |(dir, cf)| {
                for i in 0..CHUNKS {
                    black_box(cf.append(i, i as i64, i as i64 + 1, Encoding::XorFloat, &data).expect("append"));
                }
                (dir, cf)
            },
            criterion::BatchSize::PerIteration,
        )
    });
    g.finish();

    let dir = tempfile::tempdir().expect("temp dir");
    let cf = ChunkFiles::open(dir.path(), opts()).expect("open");
    let refs: Vec<_> =
        (0..CHUNKS).map(|i| cf.append(i, 0, 1, Encoding::XorFloat, &data).expect("append")).collect();
    let mut g = c.benchmark_group("chunk_file_get");
    g.throughput(Throughput::Elements(CHUNKS));
    g.bench_function("150_byte_chunks", |b| {
        b.iter(|| {
            let mut n = 0;
            for r in &refs {
                n += cf.get(*r).expect("get").bytes.as_slice().len();
            }
            black_box(n)
        })
    });
    g.finish();
}

const HOSTS: usize = 20;
const SERIES_PER_HOST: usize = 100;
const SAMPLES: usize = 480;
const MIN: i64 = 60_000;

/// Writes the bench block into `dir` with float chunks of up to `max_chunk_samples` and opens
/// it; returns it with its first scrape time.
fn node_exporter_block(dir: &std::path::Path, max_chunk_samples: usize) -> (Arc<Block>, i64) {
    let mut series: Vec<(Labels, Vec<ChunkHandle>)> = Vec::new();
    let mut first_t = i64::MAX;
    for h in 0..HOSTS {
        for (i, (_, samples)) in node_exporter(SERIES_PER_HOST, SAMPLES, 1_000 + h as u64).into_iter().enumerate() {
            let labels = Labels::from_pairs([
                ("__name__", format!("node_metric_{i}")),
                ("instance", format!("host-{h}:9100")),
                ("job", "node".to_string()),
            ]);
            first_t = first_t.min(samples[0].0);
            let chunks = samples
                .chunks(SAMPLES_PER_CHUNK)
                .map(|part| {
                    let ts: Vec<i64> = part.iter().map(|s| s.0).collect();
                    let vs: Vec<f64> = part.iter().map(|s| s.1).collect();
                    let (encoding, bytes) = encode_floats(&ts, &vs);
                    ChunkHandle {
                        min_t_ms: ts[0],
                        max_t_ms: ts[ts.len() - 1],
                        encoding,
                        bytes: ChunkBytes::from_vec(bytes),
                    }
                })
                .collect();
            series.push((labels, chunks));
        }
    }
    series.sort_by(|a, b| a.0.cmp(&b.0));
    // The data starts within the first scrape interval after `first_t`; the block range is
    // aligned to 2 h as the head's are not needed here, only to cover every sample.
    let mint = first_t - first_t.rem_euclid(15_000);
    let mut w = BlockWriter::create(dir, mint, mint + 2 * 60 * MIN).expect("create").with_max_chunk_samples(max_chunk_samples);
    for (l, chunks) in &series {
        w.add_series(l, chunks).expect("add");
    }
    let meta = w.finish().expect("finish");
    (Arc::new(Block::open(&dir.join(meta.ulid.to_string())).expect("open")), mint)
}

/// Selects every series over `[mint, maxt]` and reads every sample; returns the count.
fn select_iterate(q: &BlockQuerier, ms: &[Matcher], mint: i64, maxt: i64) -> u64 {
    let mut n = 0u64;
    for s in q.select(ms, mint, maxt).expect("select") {
        let mut it = s.iter();
        while it.next() == ValueType::Float {
            black_box(it.at());
            n += 1;
        }
    }
    n
}

fn bench_block_read(c: &mut Criterion) {
    let mut g = c.benchmark_group("block_select_iterate");
    // Head-sized chunks (what blocks held before re-chunking) against the default.
    for (name, max) in [("head_chunks_120", SAMPLES_PER_CHUNK), ("block_chunks", BLOCK_CHUNK_MAX_SAMPLES)] {
        let dir = tempfile::tempdir().expect("temp dir");
        let (block, t0) = node_exporter_block(dir.path(), max);
        eprintln!("block_select_iterate/{name}: {} chunks, {} bytes", block.meta().stats.num_chunks, block.size_bytes());
        let q = BlockQuerier::new(block);
        let ms = vec![Matcher::equal("job", "node")];
        let series = (HOSTS * SERIES_PER_HOST) as u64;

        let (mint, maxt) = (t0, t0 + 120 * MIN);
        let n = select_iterate(&q, &ms, mint, maxt);
        assert_eq!(n, series * SAMPLES as u64, "every sample read back");
        g.throughput(Throughput::Elements(n));
        g.bench_function(format!("all_2h/{name}"), |b| b.iter(|| black_box(select_iterate(&q, &ms, mint, maxt))));

        // Instant queries at 12 evaluation times spread over the block (every 10 minutes, at
        // 7.5 minutes past): seeks land at every offset into a chunk, not one chosen point.
        let evals: Vec<i64> = (0..12).map(|k| t0 + k * 10 * MIN + 15 * MIN / 2).collect();
        g.throughput(Throughput::Elements(series * evals.len() as u64));
        g.bench_function(format!("instant_5m_x12/{name}"), |b| {
            b.iter(|| {
                let mut n = 0;
                for &t in &evals {
                    n += select_iterate(&q, &ms, t - 5 * MIN, t);
                }
                black_box(n)
            })
        });

        let (mint, maxt) = (t0 + 30 * MIN, t0 + 90 * MIN);
        let n = select_iterate(&q, &ms, mint, maxt);
        g.throughput(Throughput::Elements(n));
        g.bench_function(format!("range_1h/{name}"), |b| b.iter(|| black_box(select_iterate(&q, &ms, mint, maxt))));
    }
    g.finish();
}

criterion_group!(benches, bench_chunk_files, bench_block_read);
criterion_main!(benches);
