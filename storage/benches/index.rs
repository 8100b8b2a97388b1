//! Index benchmarks: postings intersection, matcher evaluation over 1M head series, block select.
//!
//! The series set is node-exporter-like: 100 metric names × 10,000 instances, 10 labels each
//! (`__name__`, `cluster`, `container`, `env`, `instance`, `job`, `namespace`, `pod`, `region`,
//! `zone`). Before the benches, the binary prints the heap bytes per series of the in-memory
//! index (symbols + postings), measured with a counting global allocator.
//!
//! Run: `cargo bench -p storage --bench index -- --warm-up-time 1 --measurement-time 3`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use storage::block::{Block, BlockQuerier, BlockWriter};
use storage::index::{intersect, postings_for_matchers, IndexReader, MemIndex, Symbols};
use storage::{Labels, Matcher, Querier, Series};

/// Counts live heap bytes, to measure the index's resident size.
struct Counting;

static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(l.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE_BYTES.fetch_sub(l.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE_BYTES.fetch_add(new as isize - l.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const METRICS: u32 = 100;
const INSTANCES: u32 = 10_000;
const N: u32 = METRICS * INSTANCES;

/// Labels of series `i` (0..N); ids follow creation order, metric-major within an instance.
fn series_labels(i: u32) -> Labels {
    let metric = i % METRICS;
    let host = i / METRICS;
    Labels::from_pairs([
        ("__name__", format!("node_metric_{metric}_total")),
        ("cluster", format!("cluster-{}", host % 20)),
        ("container", "node-exporter".to_string()),
        ("env", ["prod", "staging", "dev"][(host % 3) as usize].to_string()),
        ("instance", format!("host-{host}:9100")),
        ("job", format!("job-{}", host % 10)),
        ("namespace", format!("ns-{}", host % 50)),
        ("pod", format!("node-exporter-{host:05}-{:x}", host.wrapping_mul(2_654_435_761) >> 12)),
        ("region", format!("region-{}", host % 5)),
        ("zone", format!("zone-{}", host % 15)),
    ])
}

fn build_mem_index(what: &str, labels: impl Fn(u32) -> Labels) -> MemIndex {
    let before = LIVE_BYTES.load(Ordering::Relaxed);
    let ix = MemIndex::new(Arc::new(Symbols::new()));
    for i in 0..N {
        ix.add(i, &labels(i));
    }
    let bytes = LIVE_BYTES.load(Ordering::Relaxed) - before;
    eprintln!(
        "mem index ({what}): {N} series, {} pairs, {} symbols: {} heap bytes = {:.1} bytes/series \
         (estimate: postings {} + symbols {} bytes)",
        ix.num_pairs(),
        ix.symbols().len(),
        bytes,
        bytes as f64 / f64::from(N),
        ix.memory_bytes(),
        ix.symbols().memory_bytes(),
    );
    ix
}

fn matchers() -> Vec<(&'static str, Vec<Matcher>)> {
    vec![
        ("selective", vec![Matcher::equal("job", "job-3"), Matcher::equal("instance", "host-123:9100")]),
        ("regex", vec![Matcher::regex("instance", "host-1.*").expect("regex")]),
        ("negative", vec![Matcher::not_equal("job", "job-3")]),
    ]
}

fn bench_mem(c: &mut Criterion) {
    // Worst case for memory: one label unique to each series (a pod per series).
    drop(build_mem_index("unique pod per series", |i| series_labels(i).with("pod", &format!("pod-{i:07}-x7k2q"))));
    let ix = build_mem_index("node-exporter-like", series_labels);
    let a = ix.postings("job", "job-3").expect("postings");
    let b = ix.postings("env", "prod").expect("postings");
    let mut g = c.benchmark_group("postings_intersect");
    g.throughput(Throughput::Elements(a.len() + b.len()));
    g.bench_function("job_x_env_1M", |bench| {
        bench.iter_batched(|| vec![a.clone(), b.clone()], |v| black_box(intersect(v)), BatchSize::SmallInput)
    });
    g.finish();

    let mut g = c.benchmark_group("postings_for_matchers");
    for (name, ms) in matchers() {
        let n = postings_for_matchers(&ix, &ms).expect("select").len();
        eprintln!("postings_for_matchers/head_1M/{name}: {n} series selected");
        g.throughput(Throughput::Elements(n));
        g.bench_function(format!("head_1M/{name}"), |bench| {
            bench.iter(|| black_box(postings_for_matchers(&ix, black_box(&ms)).expect("select")))
        });
    }
    g.finish();
}

fn bench_block(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut all: Vec<Labels> = (0..N).map(series_labels).collect();
    all.sort();
    let mut w = BlockWriter::create(dir.path(), 0, 7_200_000).expect("create");
    // One 120-sample chunk per series (a 30-minute chunk at 15 s scrapes).
    let samples: Vec<(i64, f64)> = (0..120).map(|i| (i * 15_000, i as f64)).collect();
    let chunk = Series::from_samples(Labels::empty(), &samples).chunks.remove(0);
    for l in &all {
        w.add_series(l, std::slice::from_ref(&chunk)).expect("add");
    }
    let meta = w.finish().expect("finish");
    drop(all);
    let block = Arc::new(Block::open(&dir.path().join(meta.ulid.to_string())).expect("open"));

    let mut g = c.benchmark_group("postings_for_matchers");
    for (name, ms) in matchers() {
        let n = postings_for_matchers(block.as_ref(), &ms).expect("select").len();
        g.throughput(Throughput::Elements(n));
        g.bench_function(format!("block_1M/{name}"), |bench| {
            bench.iter(|| black_box(postings_for_matchers(block.as_ref(), black_box(&ms)).expect("select")))
        });
    }
    g.finish();

    let q = BlockQuerier::new(Arc::clone(&block));
    let mut g = c.benchmark_group("block_select");
    let ms = vec![Matcher::equal("__name__", "node_metric_7_total"), Matcher::regex("instance", "host-1.*").expect("re")];
    let n = q.select(&ms, 0, 7_200_000).expect("select").len();
    eprintln!("block_select/1M: {n} series selected");
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function("metric_and_instance_regex_1M", |bench| {
        bench.iter(|| black_box(q.select(black_box(&ms), 0, 7_200_000).expect("select")))
    });
    g.finish();
}

criterion_group!(benches, bench_mem, bench_block);
criterion_main!(benches);
