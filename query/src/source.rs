//! Where the engine reads samples: [`SampleSource`], implemented for every
//! [`storage::Querier`] through [`QuerierSource`], and by [`crate::mem::MemStorage`].
//!
//! A selector reads each matching series once per evaluation into point buffers
//! ([`RawSeries`]); every step then searches those buffers, so the per-step work of a
//! selector or range function allocates nothing.

use std::sync::Arc;

use rayon::prelude::*;

use storage::chunkenc::{self, ChunkHandle, ChunkIter};
use storage::{Labels, Matcher, Querier, ValueType};

use crate::error::Result;
use crate::value::{FPoint, HPoint};

/// One selected series, its samples in `[mint_ms, maxt_ms]` sorted by time.
///
/// Points are stored as `(t, value)` pairs, the shape every consumer reads them in (range
/// windows are slices of `floats`), so a selection is decoded once into its final layout.
///
/// Start timestamps (ms since the epoch, 0 = none; see [`storage::Appender::append_st`]) are
/// kept in columns beside the points only for series that have them: `float_sts` is either
/// empty or as long as `floats` (same for `hist_sts` and `hists`), so series without start
/// timestamps carry and scan nothing extra.
#[derive(Clone, Debug, Default)]
pub struct RawSeries {
    /// The series' labels.
    pub labels: Labels,
    /// The float samples (stale markers included), by time.
    pub floats: Vec<FPoint>,
    /// The histogram samples, by time.
    pub hists: Vec<HPoint>,
    /// Start timestamp of each float sample, or empty when the series has none.
    pub float_sts: Vec<i64>,
    /// Start timestamp of each histogram sample, or empty when the series has none.
    pub hist_sts: Vec<i64>,
}

/// A read view the engine can select series from.
pub trait SampleSource: Send + Sync {
    /// The series matching all `matchers` with samples in `[mint_ms, maxt_ms]` (inclusive),
    /// sorted by labels, each holding exactly its samples in that range.
    ///
    /// # Errors
    /// Storage failures, as [`crate::QueryError::Storage`].
    fn select(&self, matchers: &[Matcher], mint_ms: i64, maxt_ms: i64) -> Result<Vec<RawSeries>>;
}

/// Adapts any [`storage::Querier`] to a [`SampleSource`].
pub struct QuerierSource<'a>(pub &'a dyn Querier);

/// Below this many series a select decodes on the calling thread; above it, across the rayon
/// pool (each series' chunks decode independently).
const PARALLEL_DECODE_MIN_SERIES: usize = 256;

/// Samples of `c` expected in `[mint_ms, maxt_ms]`: its count scaled by the overlap of the
/// chunk's time span with the range (an estimate for reserving, never a bound).
fn expected_samples(c: &ChunkHandle, mint_ms: i64, maxt_ms: i64) -> usize {
    let n = chunkenc::num_samples(c.encoding, c.bytes.as_slice()).unwrap_or(0) as usize;
    if c.min_t_ms >= mint_ms && c.max_t_ms <= maxt_ms {
        return n;
    }
    let span = (c.max_t_ms - c.min_t_ms).max(1) as f64;
    let overlap = (c.max_t_ms.min(maxt_ms) - c.min_t_ms.max(mint_ms)).max(0) as f64;
    (n as f64 * overlap / span) as usize + 2
}

/// Decodes one series' samples in `[mint_ms, maxt_ms]` into points; `None` if it has none.
///
/// Walks the chunks with one reused [`ChunkIter`] (as [`storage::SeriesIterator`] does, with
/// the same overlap rule: a sample at or before the last one taken is skipped), but checks
/// the range bounds once per chunk rather than once per sample for chunks that lie inside
/// it, and reserves the output from the chunks' sample counts. The labels are moved, not
/// copied. Series with start-timestamp chunks go through [`decode_with_st`] instead.
fn decode(s: storage::Series, mint_ms: i64, maxt_ms: i64) -> Option<RawSeries> {
    if s.has_st() {
        return decode_with_st(s, mint_ms, maxt_ms);
    }
    let mint_ms = mint_ms.max(s.mint_ms);
    let maxt_ms = maxt_ms.min(s.maxt_ms);
    let mut floats: Vec<FPoint> = Vec::new();
    let mut hists: Vec<HPoint> = Vec::new();
    let expected: usize = s
        .chunks
        .iter()
        .filter(|c| !c.encoding.is_histogram() && c.max_t_ms >= mint_ms && c.min_t_ms <= maxt_ms)
        .map(|c| expected_samples(c, mint_ms, maxt_ms))
        .sum();
    floats.reserve_exact(expected);
    let mut last_t = i64::MIN;
    let mut it: Option<ChunkIter<'_>> = None;
    for c in &s.chunks {
        if c.min_t_ms > maxt_ms {
            break; // chunks are sorted by min_t
        }
        let lo = mint_ms.max(last_t.saturating_add(1));
        if c.max_t_ms < lo {
            continue;
        }
        let it = match it.as_mut() {
            Some(i) => {
                i.reset(c.encoding, c.bytes.as_slice());
                i
            }
            None => it.insert(ChunkIter::new(c.encoding, c.bytes.as_slice())),
        };
        let mut vt = if c.min_t_ms >= lo { it.next() } else { it.seek(lo) };
        if c.encoding.is_histogram() {
            while vt == ValueType::Histogram {
                let (t, h) = it.at_histogram();
                if t > maxt_ms {
                    break;
                }
                hists.push(HPoint { t, h: Arc::new(h.clone()) });
                last_t = t;
                vt = it.next();
            }
        } else if c.max_t_ms <= maxt_ms {
            // The rest of the chunk lies inside the range.
            while vt == ValueType::Float {
                let (t, f) = it.at();
                floats.push(FPoint { t, f });
                vt = it.next();
            }
            last_t = floats.last().map_or(last_t, |p| p.t.max(last_t));
        } else {
            while vt == ValueType::Float {
                let (t, f) = it.at();
                if t > maxt_ms {
                    break;
                }
                floats.push(FPoint { t, f });
                last_t = t;
                vt = it.next();
            }
        }
    }
    if floats.is_empty() && hists.is_empty() {
        return None;
    }
    Some(RawSeries { labels: s.labels, floats, hists, float_sts: Vec::new(), hist_sts: Vec::new() })
}

/// [`decode`] for a series with start timestamps: the same walk through the series iterator,
/// keeping each sample's start timestamp (0 in chunks without an ST column) in `float_sts` /
/// `hist_sts`.
fn decode_with_st(s: storage::Series, mint_ms: i64, maxt_ms: i64) -> Option<RawSeries> {
    let mut it = s.iter();
    let (mut floats, mut hists, mut float_sts, mut hist_sts) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut vt = it.seek(mint_ms);
    while vt != ValueType::None && it.t() <= maxt_ms {
        match vt {
            ValueType::Float => {
                let (t, f) = it.at();
                floats.push(FPoint { t, f });
                float_sts.push(it.st());
            }
            ValueType::Histogram => {
                let (t, h) = it.at_histogram();
                hists.push(HPoint { t, h: Arc::new(h.clone()) });
                hist_sts.push(it.st());
            }
            ValueType::None => break,
        }
        vt = it.next();
    }
    if floats.is_empty() && hists.is_empty() {
        return None;
    }
    drop(it);
    Some(RawSeries { labels: s.labels, floats, hists, float_sts, hist_sts })
}

impl SampleSource for QuerierSource<'_> {
    fn select(&self, matchers: &[Matcher], mint_ms: i64, maxt_ms: i64) -> Result<Vec<RawSeries>> {
        let series = self.0.select(matchers, mint_ms, maxt_ms)?;
        if series.len() >= PARALLEL_DECODE_MIN_SERIES {
            let decoded: Vec<Option<RawSeries>> = series.into_par_iter().map(|s| decode(s, mint_ms, maxt_ms)).collect();
            return Ok(decoded.into_iter().flatten().collect());
        }
        Ok(series.into_iter().filter_map(|s| decode(s, mint_ms, maxt_ms)).collect())
    }
}
