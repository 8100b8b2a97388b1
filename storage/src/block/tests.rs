//! Block round trips (model-based), corruption, compaction planning and merging, retention.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use proptest::prelude::*;
use ulid::Ulid;

use super::compact::{block_ranges, compact, exponential_block_ranges, plan};
use super::retention::{beyond_size_retention, beyond_time_retention, delete_block, remove_leftovers};
use super::*;
use crate::api::Querier;
use crate::chunkenc::ValueType;
use crate::error::StorageError;
use crate::index::tests::{arb_labels, arb_matcher, model_select};
use crate::labels::Labels;
use crate::matcher::Matcher;
use crate::series::Series;

type Model = BTreeMap<Labels, Vec<(i64, f64)>>;

/// Writes `series` (samples sorted by time) as one block, each series cut into chunks of
/// `per_chunk` samples.
fn write_block(dir: &Path, series: &Model, per_chunk: usize) -> BlockMeta {
    let mint = series.values().flatten().map(|s| s.0).min().unwrap_or(0);
    let maxt = series.values().flatten().map(|s| s.0).max().unwrap_or(0) + 1;
    let mut w = BlockWriter::create(dir, mint, maxt).expect("create");
    for (l, samples) in series {
        let chunks: Vec<_> = samples
            .chunks(per_chunk.max(1))
            .map(|p| Series::from_samples(l.clone(), p).chunks.remove(0))
            .collect();
        w.add_series(l, &chunks).expect("add");
    }
    w.finish().expect("finish")
}

fn samples_of(s: &Series) -> Vec<(i64, f64)> {
    let mut it = s.iter();
    let mut out = Vec::new();
    while it.next() == ValueType::Float {
        out.push(it.at());
    }
    out
}

fn select_all(q: &dyn Querier, mint: i64, maxt: i64) -> Vec<(Labels, Vec<(i64, f64)>)> {
    let m = Matcher::regex("__name__", ".+").expect("re");
    let mut out: Vec<_> = q.select(&[m], mint, maxt).expect("select").iter().map(|s| (s.labels.clone(), samples_of(s))).collect();
    let mut anon = q.select(&[Matcher::equal("__name__", "")], mint, maxt).expect("select");
    out.extend(anon.drain(..).map(|s| (s.labels.clone(), samples_of(&s))));
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn open(dir: &Path, meta: &BlockMeta) -> Arc<Block> {
    Arc::new(Block::open(&dir.join(meta.ulid.to_string())).expect("open"))
}

fn arb_model() -> impl Strategy<Value = Model> {
    proptest::collection::btree_map(
        arb_labels().prop_filter("non-empty labels", |l| !l.is_empty()),
        proptest::collection::btree_map(0i64..500, -1e6f64..1e6, 1..30).prop_map(|m| m.into_iter().collect()),
        0..20,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, rng_seed: proptest::test_runner::RngSeed::Fixed(3), ..ProptestConfig::default() })]

    #[test]
    fn block_select_matches_model(
        model in arb_model(),
        per_chunk in 1usize..8,
        matchers in proptest::collection::vec(arb_matcher(), 1..3),
        range in (0i64..500, 0i64..500),
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let meta = write_block(dir.path(), &model, per_chunk);
        let q = BlockQuerier::new(open(dir.path(), &meta));
        let (mint, maxt) = (range.0.min(range.1), range.0.max(range.1));
        let sets: Vec<Labels> = model.keys().cloned().collect();
        let want: Vec<(Labels, Vec<(i64, f64)>)> = model_select(&sets, &matchers)
            .iter()
            .map(|i| (sets[i as usize].clone(), model[&sets[i as usize]].iter().copied().filter(|s| s.0 >= mint && s.0 <= maxt).collect::<Vec<_>>()))
            .filter(|(_, s)| !s.is_empty())
            .collect();
        let got: Vec<(Labels, Vec<(i64, f64)>)> = q
            .select(&matchers, mint, maxt)
            .expect("select")
            .iter()
            .map(|s| (s.labels.clone(), samples_of(s)))
            .filter(|(_, s)| !s.is_empty())
            .collect();
        prop_assert_eq!(got, want);
        // Everything reads back over the full range.
        let full: Vec<_> = model.iter().map(|(l, s)| (l.clone(), s.clone())).collect();
        prop_assert_eq!(select_all(&q, i64::MIN, i64::MAX), full);
        prop_assert_eq!(meta.stats.num_samples, model.values().map(|s| s.len() as u64).sum::<u64>());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, failure_persistence: None, rng_seed: proptest::test_runner::RngSeed::Fixed(5), ..ProptestConfig::default() })]

    /// Random blocks, overlapping in time or not, merge into one block that reads back as the
    /// union of their series, each timestamp once with the first block's value.
    #[test]
    fn compact_matches_model(models in proptest::collection::vec(arb_model(), 1..4), per_chunk in 1usize..6) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut want: Model = BTreeMap::new();
        let mut blocks = Vec::new();
        for (bi, m) in models.iter().enumerate() {
            // Distinct values per block, so the winner of a duplicate timestamp is visible.
            let m: Model = m.iter().map(|(l, s)| (l.clone(), s.iter().map(|&(t, v)| (t, v + bi as f64 * 1e7)).collect())).collect();
            if m.is_empty() {
                continue;
            }
            for (l, s) in &m {
                let e = want.entry(l.clone()).or_default();
                for &(t, v) in s {
                    if !e.iter().any(|x| x.0 == t) {
                        e.push((t, v));
                    }
                }
                e.sort_by_key(|x| x.0);
            }
            let meta = write_block(dir.path(), &m, per_chunk);
            blocks.push(open(dir.path(), &meta));
        }
        let merged = compact(dir.path(), &blocks).expect("compact");
        let Some(meta) = merged else {
            prop_assert!(want.is_empty());
            return Ok(());
        };
        let got = select_all(&BlockQuerier::new(open(dir.path(), &meta)), i64::MIN, i64::MAX);
        let want: Vec<_> = want.into_iter().collect();
        prop_assert_eq!(got, want.clone());
        prop_assert_eq!(meta.stats.num_samples, want.iter().map(|(_, s)| s.len() as u64).sum::<u64>());
    }
}

fn small_model(name: &str, jobs: &[&str], ts: std::ops::Range<i64>) -> Model {
    jobs.iter()
        .map(|j| (Labels::from_pairs([("__name__", name), ("job", j)]), ts.clone().map(|t| (t, t as f64)).collect()))
        .collect()
}

#[test]
fn label_names_and_values_respect_matchers_and_range() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut model = small_model("up", &["a", "b"], 0..10);
    model.insert(Labels::from_pairs([("__name__", "late"), ("zone", "z1")]), vec![(100, 1.0)]);
    let meta = write_block(dir.path(), &model, 4);
    let q = BlockQuerier::new(open(dir.path(), &meta));
    assert_eq!(q.label_names(&[], 0, 1000).expect("names"), vec!["__name__", "job", "zone"]);
    assert_eq!(q.label_names(&[Matcher::equal("__name__", "up")], 0, 1000).expect("names"), vec!["__name__", "job"]);
    assert_eq!(q.label_names(&[Matcher::regex("__name__", ".+").expect("re")], 50, 1000).expect("names"), vec!["__name__", "zone"]);
    assert_eq!(q.label_values("job", &[], 0, 1000).expect("values"), vec!["a", "b"]);
    assert_eq!(q.label_values("__name__", &[Matcher::equal("job", "a")], 0, 1000).expect("values"), vec!["up"]);
    assert!(q.label_values("job", &[], 2000, 3000).expect("values").is_empty(), "outside the block");
    assert!(q.select(&[], 0, 1000).expect("select").is_empty(), "no matchers selects nothing");
}

#[test]
fn corrupt_index_and_chunks_are_typed_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let meta = write_block(dir.path(), &small_model("up", &["a", "b", "c"], 0..50), 7);
    let bdir = dir.path().join(meta.ulid.to_string());
    let index = std::fs::read(bdir.join(INDEX_FILENAME)).expect("read");
    for i in (0..index.len()).step_by(7) {
        let mut b = index.clone();
        b[i] ^= 0x10;
        std::fs::write(bdir.join(INDEX_FILENAME), &b).expect("write");
        match Block::open(&bdir) {
            Err(StorageError::Corruption { .. }) | Err(StorageError::UnsupportedVersion { .. }) => {}
            other => panic!("index byte {i}: {other:?}"),
        }
    }
    std::fs::write(bdir.join(INDEX_FILENAME), &index).expect("restore");
    let seg = bdir.join(CHUNKS_DIRNAME).join("000001");
    let chunks = std::fs::read(&seg).expect("read");
    for i in (8..chunks.len()).step_by(5) {
        let mut b = chunks.clone();
        b[i] ^= 0x04;
        std::fs::write(&seg, &b).expect("write");
        let block = Arc::new(Block::open(&bdir).expect("chunk bytes are checked on read"));
        let r = BlockQuerier::new(block).select(&[Matcher::equal("__name__", "up")], 0, 100);
        assert!(matches!(r, Err(StorageError::Corruption { .. })), "chunk byte {i}: {r:?}");
    }
    std::fs::write(&seg, &chunks).expect("restore");
    let mut m = std::fs::read_to_string(bdir.join("meta.json")).expect("meta");
    m = m.replace("\"version\": 1", "\"version\": 9");
    std::fs::write(bdir.join("meta.json"), m).expect("write");
    assert!(matches!(Block::open(&bdir), Err(StorageError::UnsupportedVersion { .. })));
}

#[test]
fn compact_merges_series_across_blocks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = write_block(dir.path(), &small_model("up", &["a", "b"], 0..100), 30);
    let b = write_block(dir.path(), &small_model("up", &["b", "c"], 100..200), 30);
    let blocks = vec![open(dir.path(), &a), open(dir.path(), &b)];
    let meta = compact(dir.path(), &blocks).expect("compact").expect("non-empty");
    assert_eq!((meta.min_time_ms, meta.max_time_ms), (0, 200));
    assert_eq!(meta.compaction.level, 2);
    assert_eq!(meta.compaction.parents, vec![a.ulid, b.ulid]);
    let mut sources = vec![a.ulid, b.ulid];
    sources.sort();
    assert_eq!(meta.compaction.sources, sources);
    assert_eq!(meta.stats.num_series, 3);
    assert_eq!(meta.stats.num_samples, 400);
    let got = select_all(&BlockQuerier::new(open(dir.path(), &meta)), i64::MIN, i64::MAX);
    let want_b: Vec<(i64, f64)> = (0..200).map(|t| (t, t as f64)).collect();
    assert_eq!(got.len(), 3);
    assert_eq!(got[1].0.get("job"), Some("b"));
    assert_eq!(got[1].1, want_b, "chunks of both blocks, in time order");
    assert_eq!(got[2].1.len(), 100);
}

#[test]
fn compact_deduplicates_overlapping_blocks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = write_block(dir.path(), &small_model("up", &["a"], 0..60), 25);
    let mut later = small_model("up", &["a"], 40..100);
    for s in later.values_mut() {
        for (t, v) in s.iter_mut() {
            if *t < 60 {
                *v = -1.0; // conflicting duplicates: the first block wins
            }
        }
    }
    let b = write_block(dir.path(), &later, 25);
    assert_eq!(plan(&[a.clone(), b.clone()], &block_ranges(0)).len(), 2, "overlapping blocks are planned");
    let meta = compact(dir.path(), &[open(dir.path(), &a), open(dir.path(), &b)]).expect("compact").expect("some");
    let got = select_all(&BlockQuerier::new(open(dir.path(), &meta)), i64::MIN, i64::MAX);
    let want: Vec<(i64, f64)> = (0..100).map(|t| (t, t as f64)).collect();
    assert_eq!(got[0].1, want);
    assert_eq!(meta.stats.num_samples, 100);
    let merged = BlockQuerier::new(open(dir.path(), &meta)).select(&[Matcher::equal("job", "a")], 0, 100).expect("select");
    // The run [25, 49] + [40, 64] + [50, 59] is decoded, deduplicated and re-encoded; then the
    // writer re-chunks the series' time-adjacent chunks (100 samples) into one compressed one.
    let encodings: Vec<_> = merged[0].chunks.iter().map(|c| (c.min_t_ms, c.max_t_ms, c.encoding)).collect();
    assert_eq!(encodings.len(), 1, "{encodings:?}");
    assert_eq!((encodings[0].0, encodings[0].1), (0, 99));
    assert_ne!(encodings[0].2, crate::chunkenc::Encoding::Raw);
}

/// Overlapping blocks whose chunks carry start timestamps: the merged chunk keeps them (ST
/// encoding), and the re-chunking on block write leaves ST chunks as they are.
#[test]
fn compact_keeps_start_timestamps_of_overlapping_blocks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let l = Labels::from_pairs([("__name__", "c")]);
    let write = |ts: std::ops::Range<i64>| {
        let samples: Vec<(i64, i64, f64)> = ts.clone().map(|t| (t - t % 50, t, t as f64)).collect();
        let mut w = BlockWriter::create(dir.path(), ts.start, ts.end).expect("create");
        let chunks: Vec<_> = samples.chunks(20).map(|p| Series::from_samples_st(l.clone(), p).chunks.remove(0)).collect();
        w.add_series(&l, &chunks).expect("add");
        w.finish().expect("finish")
    };
    let a = write(0..60);
    let b = write(40..100);
    let meta = compact(dir.path(), &[open(dir.path(), &a), open(dir.path(), &b)]).expect("compact").expect("some");
    let got = BlockQuerier::new(open(dir.path(), &meta)).select(&[Matcher::equal("__name__", "c")], 0, 100).expect("select");
    assert!(got[0].chunks.iter().all(|c| c.encoding == crate::chunkenc::Encoding::FloatSt), "{:?}", got[0].chunks);
    let mut it = got[0].iter();
    let mut read = Vec::new();
    while it.next() == ValueType::Float {
        read.push((it.st(), it.t(), it.at().1));
    }
    let want: Vec<(i64, i64, f64)> = (0..100).map(|t| (t - t % 50, t, t as f64)).collect();
    assert_eq!(read, want);
}

#[test]
fn compact_deduplicates_overlapping_histograms() {
    use crate::chunkenc::{ChunkBytes, ChunkHandle, HistogramChunkBuilder};
    use crate::histogram::FloatHistogram;
    let hist = |t: i64, mark: f64| FloatHistogram { count: t as f64, sum: mark, ..crate::chunkenc::EMPTY_HISTOGRAM.clone() };
    let chunk = |ts: std::ops::Range<i64>, mark: f64| {
        let mut b = HistogramChunkBuilder::new();
        for t in ts.clone() {
            b.append(t, &hist(t, mark));
        }
        let (encoding, bytes) = b.finish();
        ChunkHandle { min_t_ms: ts.start, max_t_ms: ts.end - 1, encoding, bytes: ChunkBytes::from_vec(bytes) }
    };
    let l = Labels::from_pairs([("__name__", "h")]);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut metas = Vec::new();
    for (ts, mark) in [(0..30, 1.0), (20..50, 2.0)] {
        let mut w = BlockWriter::create(dir.path(), ts.start, ts.end).expect("create");
        w.add_series(&l, &[chunk(ts, mark)]).expect("add");
        metas.push(w.finish().expect("finish"));
    }
    let blocks: Vec<_> = metas.iter().map(|m| open(dir.path(), m)).collect();
    let meta = compact(dir.path(), &blocks).expect("compact").expect("some");
    assert_eq!(meta.stats.num_samples, 50);
    let s = BlockQuerier::new(open(dir.path(), &meta)).select(&[Matcher::equal("__name__", "h")], 0, 100).expect("select");
    let mut it = s[0].iter();
    let mut got = Vec::new();
    while it.next() == ValueType::Histogram {
        let (t, h) = it.at_histogram();
        got.push((t, h.count, h.sum));
    }
    let want: Vec<(i64, f64, f64)> = (0..50).map(|t| (t, t as f64, if t < 30 { 1.0 } else { 2.0 })).collect();
    assert_eq!(got, want, "each timestamp once, the first block winning");
}

fn meta_at(min: i64, max: i64) -> BlockMeta {
    BlockMeta {
        ulid: Ulid::new(),
        min_time_ms: min,
        max_time_ms: max,
        stats: BlockStats::default(),
        compaction: BlockCompaction { level: 1, sources: vec![], parents: vec![] },
        version: meta::BLOCK_VERSION,
    }
}

#[test]
fn ranges_follow_prometheus() {
    const H: i64 = 3600 * 1000;
    assert_eq!(exponential_block_ranges(2 * H, 4, 3), vec![2 * H, 6 * H, 18 * H, 54 * H]);
    // 15 days of retention: max block 36h.
    assert_eq!(block_ranges(15 * 24 * H), vec![2 * H, 6 * H, 18 * H]);
    // Unlimited: up to 31 days (2h × 3^5 = 486h fits, × 3^6 = 1458h does not).
    assert_eq!(block_ranges(0).len(), 6);
    assert_eq!(block_ranges(H), vec![2 * H], "never below the head's range");
}

#[test]
fn plan_is_prometheus_leveled() {
    const H: i64 = 3600 * 1000;
    let ranges = vec![2 * H, 6 * H, 18 * H];
    // Three 2h blocks fill a 6h window, but the newest is excluded, so nothing yet.
    let ms = vec![meta_at(0, 2 * H), meta_at(2 * H, 4 * H), meta_at(4 * H, 6 * H)];
    assert!(plan(&ms, &ranges).is_empty());
    // With a fourth (newest) block, the first window [0, 6h) is complete.
    let mut ms4 = ms.clone();
    ms4.push(meta_at(6 * H, 8 * H));
    let want: Vec<Ulid> = ms.iter().map(|m| m.ulid).collect();
    assert_eq!(plan(&ms4, &ranges), want);
    // Two blocks of a window that lies before the newest block are merged even with a gap.
    let gap = vec![meta_at(0, 2 * H), meta_at(4 * H, 6 * H), meta_at(8 * H, 10 * H)];
    assert_eq!(plan(&gap, &ranges), vec![gap[0].ulid, gap[1].ulid]);
    // Overlap wins over everything.
    let ov = vec![meta_at(0, 2 * H), meta_at(H, 3 * H), meta_at(10 * H, 12 * H)];
    assert_eq!(plan(&ov, &ranges), vec![ov[0].ulid, ov[1].ulid]);
    assert!(plan(&[], &ranges).is_empty());
}

#[test]
fn retention_by_time_and_size() {
    let ms = vec![meta_at(0, 100), meta_at(100, 200), meta_at(200, 300)];
    assert_eq!(beyond_time_retention(&ms, 300, 150), vec![ms[0].ulid]);
    assert_eq!(beyond_time_retention(&ms, 300, 100), vec![ms[0].ulid, ms[1].ulid]);
    assert!(beyond_time_retention(&ms, 300, 0).is_empty());
    let sized: Vec<(BlockMeta, u64)> = ms.iter().map(|m| (m.clone(), 10)).collect();
    assert_eq!(beyond_size_retention(&sized, 25, 0), vec![ms[0].ulid], "newest two fit in 25 bytes");
    assert_eq!(beyond_size_retention(&sized, 25, 10), vec![ms[1].ulid, ms[0].ulid], "head bytes count too");
    assert!(beyond_size_retention(&sized, 30, 0).is_empty());
    assert!(beyond_size_retention(&sized, 0, 1000).is_empty());
}

#[test]
fn delete_and_leftovers_are_crash_safe() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = write_block(dir.path(), &small_model("up", &["a"], 0..10), 5);
    let b = write_block(dir.path(), &small_model("up", &["b"], 0..10), 5);
    let a_dir = dir.path().join(a.ulid.to_string());
    // A reader holding the block keeps working after deletion.
    let held = open(dir.path(), &a);
    delete_block(&a_dir).expect("delete");
    assert!(!a_dir.exists());
    assert_eq!(select_all(&BlockQuerier::new(held), 0, 100)[0].1.len(), 10);
    assert_eq!(list_block_dirs(dir.path()).expect("list"), vec![(b.ulid, dir.path().join(b.ulid.to_string()))]);
    // Interrupted operations leave temp dirs that are not blocks and are cleaned up.
    std::fs::create_dir(dir.path().join(format!("{}{}", Ulid::new(), TMP_DELETION_SUFFIX))).expect("mk");
    std::fs::create_dir(dir.path().join(format!("{}{}", Ulid::new(), TMP_CREATION_SUFFIX))).expect("mk");
    assert_eq!(list_block_dirs(dir.path()).expect("list").len(), 1);
    assert_eq!(remove_leftovers(dir.path()).expect("clean"), 2);
    assert_eq!(std::fs::read_dir(dir.path()).expect("ls").count(), 1);
    // An unfinished writer leaves nothing behind.
    let w = BlockWriter::create(dir.path(), 0, 10).expect("create");
    drop(w);
    assert_eq!(std::fs::read_dir(dir.path()).expect("ls").count(), 1);
}

#[test]
fn meta_json_is_prometheus_shaped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let meta = write_block(dir.path(), &small_model("up", &["a"], 0..10), 5);
    let text = std::fs::read_to_string(dir.path().join(meta.ulid.to_string()).join("meta.json")).expect("read");
    let v: serde_json::Value = serde_json::from_str(&text).expect("json");
    assert_eq!(v["ulid"], meta.ulid.to_string());
    assert_eq!(v["minTime"], 0);
    assert_eq!(v["maxTime"], 10);
    assert_eq!(v["stats"]["numSamples"], 10);
    assert_eq!(v["stats"]["numSeries"], 1);
    assert_eq!(v["stats"]["numChunks"], 1, "two raw chunks of 5 samples re-chunked into one");
    assert_eq!(v["compaction"]["level"], 1);
    assert_eq!(v["compaction"]["sources"][0], meta.ulid.to_string());
    assert_eq!(v["version"], 1);
}

/// Chunks of `per_chunk` samples encoded as the head encodes them.
fn head_chunks(samples: &[(i64, f64)], per_chunk: usize) -> Vec<crate::chunkenc::ChunkHandle> {
    samples
        .chunks(per_chunk)
        .map(|p| {
            let ts: Vec<i64> = p.iter().map(|s| s.0).collect();
            let vs: Vec<f64> = p.iter().map(|s| s.1).collect();
            let (encoding, bytes) = crate::chunkenc::encode_floats(&ts, &vs);
            crate::chunkenc::ChunkHandle {
                min_t_ms: ts[0],
                max_t_ms: ts[ts.len() - 1],
                encoding,
                bytes: crate::chunkenc::ChunkBytes::from_vec(bytes),
            }
        })
        .collect()
}

fn bits_of(samples: &[(i64, f64)]) -> Vec<(i64, u64)> {
    samples.iter().map(|&(t, v)| (t, v.to_bits())).collect()
}

#[test]
fn rechunking_merges_cheap_series_keeps_noisy_ones_and_every_sample() {
    use crate::chunkenc::workload::{series as workload_series, SeriesKind};
    let dir = tempfile::tempdir().expect("tempdir");
    let t0 = 1_700_000_000_000;
    let constant = workload_series(SeriesKind::ConstantGauge, 1, t0, 480);
    let mut noisy = workload_series(SeriesKind::FullPrecisionGauge, 2, t0, 480);
    // A stale marker keeps its exact bits through re-encoding.
    noisy[479].1 = crate::api::stale_nan();
    let counter = workload_series(SeriesKind::IdleCounter, 3, t0, 300);
    let model: Vec<(Labels, Vec<(i64, f64)>)> = vec![
        (Labels::from_pairs([("__name__", "a_constant")]), constant),
        (Labels::from_pairs([("__name__", "b_noisy")]), noisy),
        (Labels::from_pairs([("__name__", "c_counter")]), counter),
    ];
    let mut w = BlockWriter::create(dir.path(), t0, t0 + 7_200_000).expect("create");
    for (l, s) in &model {
        w.add_series(l, &head_chunks(s, 120)).expect("add");
    }
    let meta = w.finish().expect("finish");
    assert_eq!(meta.stats.num_samples, 480 + 480 + 300);
    let block = open(dir.path(), &meta);
    let chunks: Vec<usize> = (0..3).map(|id| block.series(id).expect("series").1.len()).collect();
    assert_eq!(chunks[0], 1, "a constant gauge's 4 head chunks become one: {chunks:?}");
    assert_eq!(chunks[1], 4, "a full-precision gauge saves nothing by merging: kept as cut");
    assert!(chunks[2] <= 3, "an idle counter's 3 chunks are never split further: {chunks:?}");
    assert_eq!(meta.stats.num_chunks, chunks.iter().sum::<usize>() as u64);
    let got = select_all(&BlockQuerier::new(block), t0, t0 + 7_200_000);
    assert_eq!(got.len(), 3);
    for ((l, want), (gl, g)) in model.iter().zip(&got) {
        assert_eq!(l, gl);
        assert_eq!(bits_of(g), bits_of(want), "{l}: samples bit for bit");
    }
}

#[test]
fn rechunking_passes_histograms_and_overlaps_through() {
    use crate::chunkenc::{ChunkBytes, ChunkHandle, HistogramChunkBuilder};
    use crate::histogram::FloatHistogram;
    let dir = tempfile::tempdir().expect("tempdir");
    let floats: Vec<(i64, f64)> = (0..40).map(|i| (i * 15_000, 1.0)).collect();
    let mut chunks = head_chunks(&floats[..20], 10);
    let mut b = HistogramChunkBuilder::new();
    for i in 20..25 {
        b.append(i * 15_000, &FloatHistogram { count: i as f64, ..Default::default() });
    }
    let (encoding, bytes) = b.finish();
    chunks.push(ChunkHandle { min_t_ms: 20 * 15_000, max_t_ms: 24 * 15_000, encoding, bytes: ChunkBytes::from_vec(bytes) });
    chunks.extend(head_chunks(&floats[25..], 5));
    // An overlapping duplicate of the last chunk is kept as it is (the reader dedups).
    let dup = chunks.last().expect("chunk").clone();
    chunks.push(dup);
    let mut w = BlockWriter::create(dir.path(), 0, 7_200_000).expect("create");
    w.add_series(&Labels::from_pairs([("__name__", "mixed")]), &chunks).expect("add");
    let meta = w.finish().expect("finish");
    let block = open(dir.path(), &meta);
    let metas = block.series(0).expect("series").1;
    let encodings: Vec<_> = metas.iter().map(|m| block.chunk(m).expect("chunk").encoding).collect();
    // floats 0..20 in one, the histogram chunk, floats 25..40 in one, then the duplicate.
    assert_eq!(metas.len(), 4, "{metas:?}");
    assert_eq!(encodings[1], crate::chunkenc::Encoding::Histogram);
    assert_eq!((metas[0].min_t_ms, metas[0].max_t_ms), (0, 19 * 15_000));
    assert_eq!((metas[2].min_t_ms, metas[2].max_t_ms), (25 * 15_000, 39 * 15_000));
    let s = &BlockQuerier::new(block).select(&[Matcher::equal("__name__", "mixed")], 0, 7_200_000).expect("select")[0];
    let mut it = s.iter();
    let mut n = 0;
    loop {
        match it.next() {
            ValueType::None => break,
            ValueType::Float => assert_eq!(it.at().1, 1.0),
            ValueType::Histogram => assert_eq!(it.at_histogram().1.count, (it.t() / 15_000) as f64),
        }
        n += 1;
    }
    assert_eq!(n, 40, "every sample once");
}

#[test]
fn version_1_chunk_files_stay_readable() {
    use crate::chunks::RecordFormat;
    let model = small_model("up", &["a", "b", "c"], 0..50);
    let dir = tempfile::tempdir().expect("tempdir");
    let v2 = write_block(dir.path(), &model, 7);
    let mut w = BlockWriter::create_in_format(
        dir.path(),
        Ulid::new(),
        0,
        51,
        BlockCompaction { level: 1, sources: Vec::new(), parents: Vec::new() },
        RecordFormat::V1,
    )
    .expect("create");
    for (l, samples) in &model {
        let chunks: Vec<_> = samples.chunks(7).map(|p| Series::from_samples(l.clone(), p).chunks.remove(0)).collect();
        w.add_series(l, &chunks).expect("add");
    }
    let v1 = w.finish().expect("finish");
    let version = |m: &BlockMeta| {
        std::fs::read(dir.path().join(m.ulid.to_string()).join(CHUNKS_DIRNAME).join("000001")).expect("read")[4]
    };
    assert_eq!((version(&v1), version(&v2)), (1, 2));
    let (b1, b2) = (open(dir.path(), &v1), open(dir.path(), &v2));
    assert!(b2.size_bytes() < b1.size_bytes(), "version 2 records are smaller");
    let a = select_all(&BlockQuerier::new(b1), 0, 100);
    assert_eq!(a, select_all(&BlockQuerier::new(b2), 0, 100));
    assert_eq!(a.iter().map(|s| s.1.len()).sum::<usize>(), model.values().map(Vec::len).sum::<usize>());
}
