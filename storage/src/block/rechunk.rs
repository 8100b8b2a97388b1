//! Re-chunking on block write: a series' small float chunks are merged into bigger ones.
//!
//! The head cuts float chunks at [`crate::chunkenc::SAMPLES_PER_CHUNK`] (120) samples to keep
//! its open chunks small in memory. A block is immutable and has no open chunk, so
//! [`super::BlockWriter`] merges time-adjacent float chunks of a series, greedily in time
//! order, into groups of at most [`BLOCK_CHUNK_MAX_SAMPLES`] samples, and re-encodes each
//! group of two or more chunks as one chunk with [`encode_floats`] (which prices every
//! encoding over the whole group). The merged chunk is kept if it is at least
//! [`MIN_MERGE_SAVING_PERCENT`] smaller than its parts; otherwise each half of the group is
//! tried the same way, down to the chunks as they came. A bigger chunk pays its header,
//! timestamp anchor, first value and record once instead of several times, and its encoding
//! is chosen over more samples; the saving rule keeps it from costing seeks where it saves
//! little.
//!
//! What is left alone (passed through byte for byte): histogram chunks, chunks with start
//! timestamps ([`Encoding::FloatSt`], [`Encoding::HistogramSt`]: merging them would have to
//! re-encode the ST column too, and series with start timestamps are few), a group of one chunk
//! (so merging blocks that already hold big chunks costs no decoding), chunks that overlap the
//! previous one in time, and a group whose chunks fail to decode (the reader reports the
//! corruption later; compaction does not drop data).
//!
//! Values keep their bits (the stale-marker NaN included): [`encode_floats`] takes the
//! decimal path only for values whose decoding is bit-identical, XOR otherwise.

use crate::chunkenc::{encode_floats, num_samples, with_seek_points, ChunkBytes, ChunkHandle, ChunkIter, Encoding, ValueType};

/// Most samples in a float chunk written to a block: 480 is a whole 2 h block range of 15 s
/// scrapes. Blocks merged to longer ranges keep chunks of at most this size (groups never
/// exceed it), so seek cost does not grow with the block range.
pub const BLOCK_CHUNK_MAX_SAMPLES: usize = 480;

/// Least saving, in percent of the parts' bytes, for which a group of chunks is merged into
/// one (else it is split in halves, each tried in turn).
///
/// Bigger chunks cost seeks: a seek decodes a chunk's timestamps from its start (runs of
/// regular timestamps in one step) and its values from the last seek point before the target
/// (merged chunks of more than 120 samples get seek points every 120 samples where the values
/// are not runs of zero codes: [`crate::chunkenc::seek_points`]; their bytes count against the
/// saving), so merging pays only where it saves bytes. It does for series whose samples cost little (constant
/// gauges, idle counters), where the chunk header is most of the bytes and a seek is cheap for
/// the same reason; it does not for noisy series (full-precision gauges, busy counters), whose
/// bytes are their samples and whose seeks decode every sample.
///
/// Measured on the node-exporter-like 2 h block (test `block_bytes_per_sample`; bench
/// `block_select_iterate/instant_5m_x12`, instant queries at 12 points of the block, against
/// the head's 120-sample chunks in the same run):
///
/// | rule | bytes/sample | chunks | instant queries |
/// |------|--------------|--------|-----------------|
/// | head chunks kept (120) | 1.415 | 8000 | 1 |
/// | every group merged, up to 240 | 1.274 | 4000 | 1.26× |
/// | every group merged, up to 480 | 1.197 | 2000 | 2.2× |
/// | merged if it saves >= 10 % | 1.266 | 4019 | 1.32× |
/// | merged if it saves >= 25 % | 1.351 | 6200 | 1.00× |
/// | with seek points: every group merged, up to 480 | 1.226 | 2160 | 1.26× |
/// | with seek points: merged if it saves >= 10 % | 1.293 | 4574 | 1.23-1.26× |
///
/// The rows without seek points were measured before they existed (values decoded from the
/// chunk start). Seek points recover part of the instant-query cost of bigger chunks
/// (1.32× -> 1.23-1.26× at 10 %, load 3-5; about half of the rest is decoding jittered
/// timestamps from the chunk start). 10 % is the setting: it meets the design's 1.3
/// bytes/sample, reading a whole range (`all_2h`, `range_1h`) costs the same as with head-sized
/// chunks, and only instant queries whose data lies in a block (older than the head, not what
/// a dashboard's "now" reads) pay the 1.2× seek. Seek points for the timestamp column are the
/// next step to remove that too.
pub const MIN_MERGE_SAVING_PERCENT: usize = 10;

/// Reused buffers of [`rechunk`], so that writing many series allocates per chunk written,
/// not per sample.
#[derive(Default)]
pub(crate) struct Scratch {
    ts: Vec<i64>,
    vs: Vec<f64>,
    /// Index in `ts` of each chunk's first sample, and the total at the end.
    starts: Vec<usize>,
}

fn is_float(e: Encoding) -> bool {
    matches!(e, Encoding::Raw | Encoding::XorFloat | Encoding::DecimalFloat | Encoding::SeekableFloat)
}

/// Appends `chunks` (sorted by `(min_t_ms, max_t_ms)`) to `out`, float chunks merged into
/// groups of at most `max_samples` samples as the module doc says.
pub(crate) fn rechunk(chunks: &[&ChunkHandle], max_samples: usize, scratch: &mut Scratch, out: &mut Vec<ChunkHandle>) {
    let mut i = 0;
    while i < chunks.len() {
        let first = chunks[i];
        let n0 = samples_in(first);
        if !is_float(first.encoding) || n0.is_none() {
            out.push(first.clone());
            i += 1;
            continue;
        }
        // Grow the group while the next chunk is a float chunk after this one and fits.
        let mut total = n0.unwrap_or(0);
        let mut j = i + 1;
        while j < chunks.len() {
            let c = chunks[j];
            if !is_float(c.encoding) || c.min_t_ms <= chunks[j - 1].max_t_ms {
                break;
            }
            match samples_in(c) {
                Some(n) if total + n <= max_samples => total += n,
                _ => break,
            }
            j += 1;
        }
        let group = &chunks[i..j];
        if group.len() == 1 || !decode(group, scratch) {
            out.extend(group.iter().map(|c| (*c).clone()));
        } else {
            place(group, 0, group.len(), scratch, out);
        }
        i = j;
    }
}

/// Samples in a chunk by its header; `None` if unreadable or empty.
fn samples_in(c: &ChunkHandle) -> Option<usize> {
    match num_samples(c.encoding, c.bytes.as_slice()) {
        Ok(n) if n > 0 => Some(n as usize),
        _ => None,
    }
}

/// Decodes `group` into `scratch`. False if a chunk fails to decode, is empty, or its samples
/// are not in strictly increasing time order after the previous ones.
fn decode(group: &[&ChunkHandle], scratch: &mut Scratch) -> bool {
    scratch.ts.clear();
    scratch.vs.clear();
    scratch.starts.clear();
    for c in group {
        scratch.starts.push(scratch.ts.len());
        let mut it = ChunkIter::new(c.encoding, c.bytes.as_slice());
        loop {
            match it.next() {
                ValueType::Float => {
                    let (t, v) = it.at();
                    if scratch.ts.last().is_some_and(|&last| t <= last) {
                        return false;
                    }
                    scratch.ts.push(t);
                    scratch.vs.push(v);
                }
                ValueType::None => break,
                ValueType::Histogram => return false,
            }
        }
        if it.err().is_some() || scratch.ts.len() == *scratch.starts.last().unwrap_or(&0) {
            return false;
        }
    }
    scratch.starts.push(scratch.ts.len());
    true
}

/// Appends chunks `lo..hi` of the decoded `group`: merged into one if that saves at least
/// [`MIN_MERGE_SAVING_PERCENT`] of their bytes, else each half placed the same way.
fn place(group: &[&ChunkHandle], lo: usize, hi: usize, scratch: &Scratch, out: &mut Vec<ChunkHandle>) {
    if hi - lo == 1 {
        out.push(group[lo].clone());
        return;
    }
    let (s, e) = (scratch.starts[lo], scratch.starts[hi]);
    let (encoding, bytes) = encode_floats(&scratch.ts[s..e], &scratch.vs[s..e]);
    let (encoding, bytes) = with_seek_points(encoding, bytes);
    let parts: usize = group[lo..hi].iter().map(|c| c.bytes.as_slice().len()).sum();
    if bytes.len() * 100 <= parts * (100 - MIN_MERGE_SAVING_PERCENT) {
        let (min_t_ms, max_t_ms) = (scratch.ts[s], scratch.ts[e - 1]);
        out.push(ChunkHandle { min_t_ms, max_t_ms, encoding, bytes: ChunkBytes::from_vec(bytes) });
    } else {
        let mid = lo + (hi - lo) / 2;
        place(group, lo, mid, scratch, out);
        place(group, mid, hi, scratch, out);
    }
}
