//! Chunk segment file benchmarks.
//!
//! - `chunk_file_append`: appends ~150-byte chunks (a typical finished float chunk) to a
//!   [`ChunkFiles`] directory in a temp dir, with 8 MiB segments so rollover is included,
//!   per chunk. No fsync (the head syncs once per truncation, not per chunk).
//! - `chunk_file_get`: zero-copy lookups by ref with checksum verification, per chunk.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use storage::chunkenc::Encoding;
use storage::chunks::{ChunkFiles, ChunkFilesOptions};

const CHUNKS: u64 = 10_000;

fn bench_chunk_files(c: &mut Criterion) {
    let data: Vec<u8> = (0..150u32).map(|i| (i * 31 % 251) as u8).collect();
    let mut g = c.benchmark_group("chunk_file_append");
    g.throughput(Throughput::Elements(CHUNKS));
    g.bench_function("150_byte_chunks", |b| {
        b.iter_batched(
            || {
                let dir = tempfile::tempdir().expect("temp dir");
                let cf = ChunkFiles::open(dir.path(), ChunkFilesOptions { max_segment_bytes: 8 << 20 }).expect("open");
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
    let cf = ChunkFiles::open(dir.path(), ChunkFilesOptions { max_segment_bytes: 8 << 20 }).expect("open");
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

criterion_group!(benches, bench_chunk_files);
criterion_main!(benches);
