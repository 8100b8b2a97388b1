//! Compaction: which blocks to merge ([`plan`]) and merging them ([`compact`]).
//!
//! Planning is Prometheus' `tsdb/compact.go` `LeveledCompactor.plan`:
//! 1. blocks overlapping in time are merged first, whatever their size (vertical compaction);
//! 2. otherwise the newest block is left alone (it was just cut from the head), and for each
//!    range after the first (`6h`, `18h`, ...), blocks are grouped by aligned windows of that
//!    range; the first group of more than one block that either fills its window or lies
//!    entirely before the newest block is merged.
//!
//! Ranges grow exponentially from the head's block range: `2h, 6h, 18h, 54h, ...` (×3), up to
//! 10 % of the retention (at most 31 days), as Prometheus' `ExponentialBlockRanges` and its
//! `MaxBlockDuration` default.
//!
//! Merging takes series from every input in label order (a k-way merge over the blocks' dense,
//! label-ordered ids). A series present in several blocks gets their chunks concatenated in
//! time order; where chunks overlap in time (overlapping blocks), their samples are decoded,
//! deduplicated by timestamp (the first block in input order wins) and re-encoded with the
//! head's chunk encoders.

use std::sync::Arc;

use ulid::Ulid;

use super::meta::{BlockCompaction, BlockMeta};
use super::reader::Block;
use super::writer::BlockWriter;
use crate::chunkenc::{
    encode_floats, ChunkBytes, ChunkHandle, ChunkIter, Encoding, FloatStChunkBuilder, HistogramChunkBuilder,
    HistogramStChunkBuilder, ValueType,
    HISTOGRAM_CHUNK_TARGET_BYTES, SAMPLES_PER_CHUNK,
};
use crate::histogram::FloatHistogram;
use crate::error::{Result, StorageError};
use crate::labels::Labels;

/// Two hours in ms: the head's block range and the first compaction range.
pub const DEFAULT_BLOCK_RANGE_MS: i64 = 2 * 3600 * 1000;
/// The largest block range when no retention bounds it: 31 days in ms.
pub const MAX_BLOCK_DURATION_MS: i64 = 31 * 24 * 3600 * 1000;

/// `steps` ranges starting at `min_ms`, each `step_size` times the previous
/// (Prometheus' `ExponentialBlockRanges`).
pub fn exponential_block_ranges(min_ms: i64, steps: usize, step_size: i64) -> Vec<i64> {
    let mut out = Vec::with_capacity(steps);
    let mut cur = min_ms;
    for _ in 0..steps {
        out.push(cur);
        cur = cur.saturating_mul(step_size);
    }
    out
}

/// The compaction ranges for a retention: `2h × 3^i` for i in 0..10, dropping every range above
/// the maximum block duration, which is 10 % of `retention_ms` capped at 31 days (31 days
/// when `retention_ms` is 0, i.e. unlimited), and never below 2h.
pub fn block_ranges(retention_ms: i64) -> Vec<i64> {
    let mut max = MAX_BLOCK_DURATION_MS;
    if retention_ms > 0 && retention_ms / 10 < max {
        max = retention_ms / 10;
    }
    let max = max.max(DEFAULT_BLOCK_RANGE_MS);
    exponential_block_ranges(DEFAULT_BLOCK_RANGE_MS, 10, 3).into_iter().take_while(|r| *r <= max).collect()
}

/// The blocks to merge next, or an empty list when there is nothing to do. `metas` in any
/// order; `ranges` from [`block_ranges`].
pub fn plan(metas: &[BlockMeta], ranges: &[i64]) -> Vec<Ulid> {
    let mut ms: Vec<&BlockMeta> = metas.iter().collect();
    ms.sort_by_key(|m| (m.min_time_ms, m.ulid));
    let overlapping = select_overlapping(&ms);
    if !overlapping.is_empty() {
        return overlapping;
    }
    if ms.is_empty() {
        return Vec::new();
    }
    // Leave the newest block out: it was just cut from the head.
    ms.pop();
    select_dirs(&ms, ranges).into_iter().map(|m| m.ulid).collect()
}

/// The first run of blocks that overlap in time (sorted by min time).
fn select_overlapping(ms: &[&BlockMeta]) -> Vec<Ulid> {
    let mut out = Vec::new();
    let Some(first) = ms.first() else { return out };
    let mut global_max = first.max_time_ms;
    for i in 1..ms.len() {
        let m = ms[i];
        if m.min_time_ms < global_max {
            if out.is_empty() {
                out.push(ms[i - 1].ulid);
            }
            out.push(m.ulid);
        } else if !out.is_empty() {
            break;
        }
        global_max = global_max.max(m.max_time_ms);
    }
    out
}

fn select_dirs<'a>(ms: &[&'a BlockMeta], ranges: &[i64]) -> Vec<&'a BlockMeta> {
    if ranges.len() < 2 || ms.is_empty() {
        return Vec::new();
    }
    let high_time = ms[ms.len() - 1].min_time_ms;
    for &r in &ranges[1..] {
        for group in split_by_range(ms, r) {
            let mint = group[0].min_time_ms;
            let maxt = group[group.len() - 1].max_time_ms;
            if (maxt - mint == r || maxt <= high_time) && group.len() > 1 {
                return group;
            }
        }
    }
    Vec::new()
}

/// Groups blocks (sorted by min time) by the aligned window of size `r` they fall in; blocks
/// that do not fit in one window are skipped.
fn split_by_range<'a>(ms: &[&'a BlockMeta], r: i64) -> Vec<Vec<&'a BlockMeta>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < ms.len() {
        let t0 = ms[i].min_time_ms.div_euclid(r) * r;
        if ms[i].max_time_ms > t0 + r {
            i += 1;
            continue;
        }
        let mut group = Vec::new();
        while i < ms.len() && ms[i].max_time_ms <= t0 + r {
            group.push(ms[i]);
            i += 1;
        }
        if !group.is_empty() {
            out.push(group);
        }
    }
    out
}

/// Merges `blocks` into one new block in `blocks_dir` and returns its metadata, or `None` when
/// the inputs hold no series (then no block is written). The inputs are left in place: the
/// caller swaps the new block in and deletes them ([`super::retention::delete_block`]).
///
/// # Errors
/// [`crate::StorageError`] if an input is corrupt or the new block cannot be written.
pub fn compact(blocks_dir: &std::path::Path, blocks: &[Arc<Block>]) -> Result<Option<BlockMeta>> {
    if blocks.is_empty() {
        return Ok(None);
    }
    let mut sources: Vec<Ulid> = blocks.iter().flat_map(|b| b.meta().compaction.sources.iter().copied()).collect();
    sources.sort_unstable();
    sources.dedup();
    let compaction = BlockCompaction {
        level: blocks.iter().map(|b| b.meta().compaction.level).max().unwrap_or(0) + 1,
        sources,
        parents: blocks.iter().map(|b| b.meta().ulid).collect(),
    };
    let min_t = blocks.iter().map(|b| b.meta().min_time_ms).min().unwrap_or(0);
    let max_t = blocks.iter().map(|b| b.meta().max_time_ms).max().unwrap_or(0);
    let mut w = BlockWriter::create_with(blocks_dir, Ulid::new(), min_t, max_t, compaction)?;

    // One cursor per block: its next series id and that series' labels.
    let mut cursors: Vec<(u32, Option<Labels>)> = Vec::with_capacity(blocks.len());
    for b in blocks {
        let first = if b.index().num_series() > 0 { Some(b.series(0)?.0) } else { None };
        cursors.push((0, first));
    }
    let mut chunks: Vec<(usize, ChunkHandle)> = Vec::new();
    while let Some(min) = cursors.iter().filter_map(|c| c.1.as_ref()).min().cloned() {
        chunks.clear();
        for (bi, (b, cur)) in blocks.iter().zip(cursors.iter_mut()).enumerate() {
            if cur.1.as_ref() != Some(&min) {
                continue;
            }
            let (_, metas) = b.series(cur.0)?;
            for m in &metas {
                chunks.push((bi, b.chunk(m)?));
            }
            cur.0 += 1;
            cur.1 = if cur.0 < b.index().num_series() { Some(b.series(cur.0)?.0) } else { None };
            // The writer relies on label order; a block breaking it is corrupt, not a panic.
            if cur.1.as_ref().is_some_and(|next| *next <= min) {
                return Err(StorageError::Corruption {
                    path: b.dir().join(super::INDEX_FILENAME),
                    offset: 0,
                    reason: format!("series {} is not in label order", cur.0),
                });
            }
        }
        let merged = merge_chunks(&mut chunks);
        w.add_series(&min, &merged)?;
    }
    if w.num_series() == 0 {
        return Ok(None);
    }
    w.finish().map(Some)
}

/// Orders a series' chunks from several blocks by time; runs of chunks that overlap in time
/// are decoded, deduplicated by timestamp (lowest block index first) and re-encoded. A run that
/// fails to decode is kept as it is (the series iterator then skips re-visited timestamps).
fn merge_chunks(chunks: &mut [(usize, ChunkHandle)]) -> Vec<ChunkHandle> {
    chunks.sort_by_key(|(bi, c)| (c.min_t_ms, c.max_t_ms, *bi));
    let mut out = Vec::with_capacity(chunks.len());
    let mut i = 0;
    while i < chunks.len() {
        let mut run_max = chunks[i].1.max_t_ms;
        let mut j = i + 1;
        while j < chunks.len() && chunks[j].1.min_t_ms <= run_max {
            run_max = run_max.max(chunks[j].1.max_t_ms);
            j += 1;
        }
        let run = &chunks[i..j];
        if run.len() == 1 {
            out.push(run[0].1.clone());
        } else {
            match reencode(run) {
                Some(merged) => out.extend(merged),
                None => out.extend(run.iter().map(|(_, c)| c.clone())),
            }
        }
        i = j;
    }
    out
}

/// One decoded sample of an overlapping run.
enum Sample {
    Float(f64),
    Histogram(Box<FloatHistogram>),
}

/// Decodes overlapping chunks into one deduplicated, time-ordered run and re-encodes it with
/// the head's encoders: floats in chunks of [`SAMPLES_PER_CHUNK`] (smallest float encoding),
/// histograms cut at [`HISTOGRAM_CHUNK_TARGET_BYTES`] or [`SAMPLES_PER_CHUNK`] samples; a
/// change of sample type starts a new chunk. Start timestamps are kept: a chunk any of whose
/// samples has one is written in the ST encoding ([`crate::chunkenc::st`]). `None` if a chunk
/// fails to decode.
fn reencode(run: &[(usize, ChunkHandle)]) -> Option<Vec<ChunkHandle>> {
    // (t_ms, block index, st_ms, sample)
    let mut samples: Vec<(i64, usize, i64, Sample)> = Vec::new();
    for (bi, c) in run {
        let mut it = ChunkIter::new(c.encoding, c.bytes.as_slice());
        loop {
            match it.next() {
                ValueType::None => break,
                ValueType::Float => {
                    let (t, v) = it.at();
                    samples.push((t, *bi, it.st(), Sample::Float(v)));
                }
                ValueType::Histogram => {
                    let (t, h) = it.at_histogram();
                    samples.push((t, *bi, it.st(), Sample::Histogram(Box::new(h.clone()))));
                }
            }
        }
        if it.err().is_some() {
            return None;
        }
    }
    samples.sort_by_key(|s| (s.0, s.1));
    samples.dedup_by_key(|s| s.0);
    let mut out = Vec::new();
    let handle = |(encoding, bytes): (Encoding, Vec<u8>), min_t_ms: i64, max_t_ms: i64| ChunkHandle {
        min_t_ms,
        max_t_ms,
        encoding,
        bytes: ChunkBytes::from_vec(bytes),
    };
    let mut k = 0;
    while k < samples.len() {
        let first_t = samples[k].0;
        if let Sample::Float(_) = samples[k].3 {
            let (mut ts, mut vs, mut sts) = (Vec::new(), Vec::new(), Vec::new());
            while k < samples.len() && ts.len() < SAMPLES_PER_CHUNK {
                let Sample::Float(v) = samples[k].3 else { break };
                ts.push(samples[k].0);
                vs.push(v);
                sts.push(samples[k].2);
                k += 1;
            }
            let encoded = if sts.iter().any(|&st| st != 0) {
                let mut b = FloatStChunkBuilder::new();
                for ((&t, &v), &st) in ts.iter().zip(&vs).zip(&sts) {
                    b.append(st, t, v);
                }
                b.finish()
            } else {
                encode_floats(&ts, &vs)
            };
            out.push(handle(encoded, first_t, ts[ts.len() - 1]));
        } else {
            let end = samples[k..].iter().position(|s| !matches!(s.3, Sample::Histogram(_))).map_or(samples.len(), |p| k + p);
            let with_st = samples[k..end].iter().any(|s| s.2 != 0);
            let (mut plain, mut st_b) = (HistogramChunkBuilder::new(), HistogramStChunkBuilder::new());
            let mut last_t = first_t;
            loop {
                let (len, size) = if with_st { (st_b.len(), st_b.size_bytes()) } else { (plain.len(), plain.size_bytes()) };
                if k >= end || len >= SAMPLES_PER_CHUNK || size >= HISTOGRAM_CHUNK_TARGET_BYTES {
                    break;
                }
                let (t, _, st, Sample::Histogram(h)) = &samples[k] else { break };
                if with_st {
                    st_b.append_with_hint(*st, *t, h, h.counter_reset_hint);
                } else {
                    plain.append(*t, h);
                }
                last_t = *t;
                k += 1;
            }
            out.push(handle(if with_st { st_b.finish() } else { plain.finish() }, first_t, last_t));
        }
    }
    Some(out)
}
