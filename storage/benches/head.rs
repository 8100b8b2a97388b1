//! Head benchmarks: the write path (refs resolved, and label sets looked up per sample), the
//! read path (select + iterate), WAL replay on open, and the resident bytes per series.
//!
//! Series are node-exporter-like: 100 metric names × N/100 instances, 10 labels each. Appends
//! run on every core (`available_parallelism` threads), each thread committing transactions of
//! 2,000 samples (Prometheus' remote-write `max_samples_per_send`). The throughput benches use
//! `FsyncPolicy::Never` (Prometheus' WAL behaviour: a process crash loses nothing, a power loss
//! may); `head_append_ref_fsync_always` measures the safe default, fsync per commit with group
//! commit.
//!
//! Before the benches the binary prints the heap bytes per active series (counting global
//! allocator: series, maps, postings, symbols, open chunks) for 1M series with 30 samples each.
//!
//! `head_select_iterate/{instant,range_1h}`: 10,000 series × 200 samples (one mmap'd chunk and
//! an open chunk of 80 samples each), all selected; each series is sought to the range start
//! and iterated: an instant query's 5-minute lookback, and a 1-hour range, per series.
//!
//! Setup of a bench whose name no command-line filter matches is skipped (the 1M-series
//! heads take a while to build).
//!
//! Run: `cargo bench -p storage --bench head -- --warm-up-time 1 --measurement-time 5`
//! (`HEARTH_BENCH_RESIDENT=0` skips the resident-size measurement).

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use storage::head::{Head, HeadOptions};
use storage::wal::{FsyncPolicy, WalOptions};
use storage::{Appender, Labels, Matcher, Querier, SeriesRef, ValueType};

/// Counts live heap bytes, to measure the head's resident size.
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

const ACTIVE_SERIES: usize = 1_000_000;
const BATCH: usize = 2_000;
const SCRAPE_MS: i64 = 15_000;

fn labels_for(i: usize) -> Labels {
    let inst = i / 100;
    Labels::from_pairs([
        ("__name__", format!("node_metric_{}", i % 100)),
        ("cluster", format!("c{}", inst % 3)),
        ("container", "node-exporter".to_string()),
        ("env", if inst.is_multiple_of(2) { "prod" } else { "staging" }.to_string()),
        ("instance", format!("host-{inst}:9100")),
        ("job", "node".to_string()),
        ("namespace", "monitoring".to_string()),
        ("pod", format!("node-exporter-{inst}")),
        ("region", format!("r{}", inst % 4)),
        ("zone", format!("z{}", inst % 12)),
    ])
}

fn options(fsync: FsyncPolicy) -> HeadOptions {
    HeadOptions { wal: WalOptions { fsync, ..WalOptions::default() }, ..HeadOptions::default() }
}

/// CPU time used by this process so far (user + system), for a throughput figure that does
/// not depend on how busy the rest of the machine is.
fn cpu_time() -> Duration {
    // SAFETY: getrusage only writes the struct we pass, which is zero-initialised plain data.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Prints samples per CPU-second and per wall-second for `samples` appended in the window.
fn report_cpu(name: &str, samples: u64, wall: Duration, cpu: Duration) {
    if samples > 0 {
        eprintln!(
            "{name}: {:.2} M samples/s wall, {:.2} M samples per CPU-second ({} threads)",
            samples as f64 / wall.as_secs_f64() / 1e6,
            samples as f64 / cpu.as_secs_f64() / 1e6,
            threads()
        );
    }
}

/// Appending threads: `HEARTH_BENCH_THREADS`, else one per core.
fn threads() -> usize {
    std::env::var("HEARTH_BENCH_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
}

/// A head with `n` series, each with one sample at t = 0; returns their refs.
fn populated(dir: &std::path::Path, n: usize, fsync: FsyncPolicy) -> (Head, Vec<SeriesRef>) {
    let head = Head::open(dir, options(fsync)).unwrap();
    let mut refs = Vec::with_capacity(n);
    let mut app = head.appender();
    for i in 0..n {
        let r = app.series_ref(&labels_for(i)).unwrap();
        app.append(r, 0, 0.0).unwrap();
        refs.push(r);
        if (i + 1) % BATCH == 0 {
            app.commit().unwrap();
            app = head.appender();
        }
    }
    app.commit().unwrap();
    (head, refs)
}

/// One scrape round: every series gets one sample at `t`, appended by `threads()` threads in
/// transactions of `BATCH` samples.
fn append_round(head: &Head, refs: &[SeriesRef], t: i64) {
    let per = refs.len().div_ceil(threads());
    std::thread::scope(|s| {
        for part in refs.chunks(per) {
            s.spawn(move || {
                for batch in part.chunks(BATCH) {
                    let mut app = head.appender();
                    for (j, r) in batch.iter().enumerate() {
                        app.append(*r, t, (t / 1000) as f64 + j as f64).unwrap();
                    }
                    app.commit().unwrap();
                }
            });
        }
    });
}

fn resident_bytes_per_series() {
    let dir = tempfile::tempdir().unwrap();
    let before = LIVE_BYTES.load(Ordering::Relaxed);
    let (head, refs) = populated(dir.path(), ACTIVE_SERIES, FsyncPolicy::Never);
    for k in 1..30 {
        append_round(&head, &refs, k * SCRAPE_MS);
    }
    let live = LIVE_BYTES.load(Ordering::Relaxed) - before - (refs.capacity() * std::mem::size_of::<SeriesRef>()) as isize;
    let m = head.memory();
    eprintln!(
        "head resident: {} series, {:.0} heap bytes/series (counting allocator); estimate {:.0} B/series \
         (series+open chunks {:.0}, maps {:.0}, postings {:.0}, symbols {:.0})",
        m.series,
        live as f64 / m.series as f64,
        m.total_bytes() as f64 / m.series as f64,
        m.series_bytes as f64 / m.series as f64,
        m.maps_bytes as f64 / m.series as f64,
        m.index_bytes as f64 / m.series as f64,
        m.symbols_bytes as f64 / m.series as f64,
    );
}

/// True if no command-line filter is given or one is a substring of `name` (criterion's own
/// filter still decides what runs; this only skips expensive setup).
fn wanted(name: &str) -> bool {
    // Criterion options that take a value: their values are not filters.
    const WITH_VALUE: [&str; 12] = [
        "--measurement-time", "--warm-up-time", "--sample-size", "--save-baseline", "--baseline",
        "--load-baseline", "--noise-threshold", "--output-format", "--profile-time",
        "--significance-level", "--confidence-level", "--nresamples",
    ];
    let mut filters = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if WITH_VALUE.contains(&a.as_str()) {
            args.next();
        } else if !a.starts_with('-') {
            filters.push(a);
        }
    }
    // A filter names a bench id (`head/head_select_iterate/instant`), a prefix of one, or
    // alternatives separated by `|`.
    filters.is_empty() || filters.iter().flat_map(|f| f.split('|')).any(|f| name.contains(f) || f.contains(name))
}

fn bench_append(c: &mut Criterion) {
    if !wanted("head_append") {
        return;
    }
    if std::env::var("HEARTH_BENCH_RESIDENT").as_deref() != Ok("0") {
        resident_bytes_per_series();
    }
    let mut g = c.benchmark_group("head");
    g.sample_size(10);

    for (name, fsync) in [("head_append_ref", FsyncPolicy::Never), ("head_append_ref_fsync_always", FsyncPolicy::Always)] {
        let dir = tempfile::tempdir().unwrap();
        let (head, refs) = populated(dir.path(), ACTIVE_SERIES, fsync);
        let mut t = 0;
        let (mut n, mut wall, mut cpu) = (0u64, Duration::ZERO, Duration::ZERO);
        g.throughput(Throughput::Elements(refs.len() as u64));
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let (start, cpu0) = (Instant::now(), cpu_time());
                for _ in 0..iters {
                    t += SCRAPE_MS;
                    append_round(&head, &refs, t);
                }
                let el = start.elapsed();
                (n, wall, cpu) = (n + iters * refs.len() as u64, wall + el, cpu + (cpu_time() - cpu0));
                el
            })
        });
        report_cpu(name, n, wall, cpu);
    }

    // Label sets resolved per sample (remote-write without refs).
    {
        let dir = tempfile::tempdir().unwrap();
        let (head, refs) = populated(dir.path(), ACTIVE_SERIES, FsyncPolicy::Never);
        drop(refs);
        let labels: Vec<Labels> = (0..ACTIVE_SERIES).map(labels_for).collect();
        let mut t = 0;
        let (mut n, mut wall, mut cpu) = (0u64, Duration::ZERO, Duration::ZERO);
        g.throughput(Throughput::Elements(labels.len() as u64));
        g.bench_function("head_append_labels", |b| {
            b.iter_custom(|iters| {
                let (start, cpu0) = (Instant::now(), cpu_time());
                for _ in 0..iters {
                    t += SCRAPE_MS;
                    let per = labels.len().div_ceil(threads());
                    std::thread::scope(|s| {
                        for part in labels.chunks(per) {
                            let head = &head;
                            s.spawn(move || {
                                for batch in part.chunks(BATCH) {
                                    let mut app = head.appender();
                                    for l in batch {
                                        app.append_labels(l, t, 1.0).unwrap();
                                    }
                                    app.commit().unwrap();
                                }
                            });
                        }
                    });
                }
                let el = start.elapsed();
                (n, wall, cpu) = (n + iters * labels.len() as u64, wall + el, cpu + (cpu_time() - cpu0));
                el
            })
        });
        report_cpu("head_append_labels", n, wall, cpu);
    }
    g.finish();
}

fn bench_select(c: &mut Criterion) {
    if !wanted("head_select") {
        return;
    }
    // 10,000 series × 240 samples (1 h at 15 s): mmap'd chunks plus open chunks.
    let dir = tempfile::tempdir().unwrap();
    let (head, refs) = populated(dir.path(), 10_000, FsyncPolicy::Never);
    for k in 1..240 {
        append_round(&head, &refs, k * SCRAPE_MS);
    }
    let mut g = c.benchmark_group("head");
    g.sample_size(20);
    // One metric name: 100 series.
    let m = [Matcher::equal("__name__", "node_metric_7")];
    g.throughput(Throughput::Elements(100 * 240));
    g.bench_function("head_select", |b| {
        b.iter(|| {
            let q = head.querier();
            let mut n = 0u64;
            for s in q.select(&m, i64::MIN, i64::MAX).unwrap() {
                let mut it = s.iter();
                while it.next() == ValueType::Float {
                    n += 1;
                    black_box(it.at());
                }
            }
            assert_eq!(n, 100 * 240);
            n
        })
    });
    g.finish();
}

fn bench_select_iterate(c: &mut Criterion) {
    if !wanted("head_select_iterate") {
        return;
    }
    const SERIES: usize = 10_000;
    const SAMPLES: i64 = 200;
    let dir = tempfile::tempdir().unwrap();
    let (head, refs) = populated(dir.path(), SERIES, FsyncPolicy::Never);
    for k in 1..SAMPLES {
        append_round(&head, &refs, k * SCRAPE_MS);
    }
    let now = (SAMPLES - 1) * SCRAPE_MS;
    let m = [Matcher::equal("job", "node")];
    let mut g = c.benchmark_group("head");
    g.sample_size(20);
    g.throughput(Throughput::Elements(SERIES as u64));
    for (name, range_ms) in [("head_select_iterate/instant", 300_000), ("head_select_iterate/range_1h", 3_600_000)] {
        let expect = (SERIES as i64 * (range_ms / SCRAPE_MS + 1).min(SAMPLES)) as u64;
        g.bench_function(name, |b| {
            b.iter(|| {
                let q = head.querier();
                let (mut n, mut sum) = (0u64, 0.0);
                for s in q.select(&m, now - range_ms, now).unwrap() {
                    let mut it = s.iter();
                    let mut vt = it.seek(now - range_ms);
                    while vt == ValueType::Float {
                        n += 1;
                        sum += it.at().1;
                        vt = it.next();
                    }
                }
                assert_eq!(n, expect);
                black_box(sum)
            })
        });
    }
    g.finish();
}

fn bench_replay(c: &mut Criterion) {
    if !wanted("head_replay") {
        return;
    }
    // 100,000 series × 240 samples, then open the head again from disk.
    let dir = tempfile::tempdir().unwrap();
    {
        let (head, refs) = populated(dir.path(), 100_000, FsyncPolicy::Never);
        for k in 1..240 {
            append_round(&head, &refs, k * SCRAPE_MS);
        }
    }
    let mut g = c.benchmark_group("head");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(20));
    g.throughput(Throughput::Elements(100_000 * 240));
    g.bench_function("head_replay", |b| {
        b.iter(|| {
            let head = Head::open(dir.path(), options(FsyncPolicy::Never)).unwrap();
            assert_eq!(head.num_series(), 100_000);
            head.replay_info()
        })
    });
    g.finish();
}

criterion_group!(benches, bench_append, bench_select, bench_select_iterate, bench_replay);
criterion_main!(benches);
