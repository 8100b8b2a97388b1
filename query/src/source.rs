//! Where the engine reads samples: [`SampleSource`], implemented for every
//! [`storage::Querier`] through [`QuerierSource`], and by [`crate::mem::MemStorage`].
//!
//! A selector picks its series still compressed ([`SampleSource::select_series`]) and
//! decodes each one inside its per-series work into a reused point buffer ([`RawSeries`]);
//! every step then searches that buffer, so the per-step work of a selector or range
//! function allocates nothing and only the series in flight are held decoded.

use std::sync::Arc;

use rayon::prelude::*;

use storage::api::SelectHints;
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

    /// The series matching all `matchers` that may have samples in `[mint_ms, maxt_ms]`,
    /// sorted by labels, not yet decoded where the source can defer it: the evaluator
    /// decodes each one inside its per-series work ([`Selected::decode_into`]) and drops the
    /// points once that series' output is computed, so a selection never holds every
    /// series' samples at once (Prometheus iterates series one at a time the same way). A
    /// series may turn out to have no samples in the range. The default decodes through
    /// [`SampleSource::select`].
    ///
    /// # Errors
    /// Storage failures, as [`crate::QueryError::Storage`].
    fn select_series(&self, matchers: &[Matcher], mint_ms: i64, maxt_ms: i64) -> Result<Vec<Selected>> {
        Ok(self.select(matchers, mint_ms, maxt_ms)?.into_iter().map(Selected::Decoded).collect())
    }

    /// [`SampleSource::select_series`] with what the caller will read of the series
    /// ([`SelectHints`]; advisory). With a grouping hint, a source may return each series'
    /// labels restricted to the hinted names: same series, same order, but two entries may
    /// then carry equal labels. The default ignores the hints.
    ///
    /// # Errors
    /// As [`SampleSource::select_series`].
    fn select_series_hinted(&self, matchers: &[Matcher], mint_ms: i64, maxt_ms: i64, hints: &SelectHints) -> Result<Vec<Selected>> {
        let _ = hints;
        self.select_series(matchers, mint_ms, maxt_ms)
    }
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

/// Decodes the samples of `s` in `[mint_ms, maxt_ms]` into `out`'s point columns (cleared
/// first; their capacity is reused, `out.labels` is left alone). Returns whether any sample
/// was decoded.
///
/// Walks the chunks with one reused [`ChunkIter`] (as [`storage::SeriesIterator`] does, with
/// the same overlap rule: a sample at or before the last one taken is skipped), but checks
/// the range bounds once per chunk rather than once per sample for chunks that lie inside
/// it, and reserves the output from the chunks' sample counts. The range is reached by
/// skipping whole chunks that end before it and seeking inside the first one that overlaps
/// it, so an instant lookup decodes only the chunk(s) holding `(t - lookback, t]`. Series
/// with start-timestamp chunks go through [`decode_with_st`] instead.
pub fn decode_into(s: &storage::Series, mint_ms: i64, maxt_ms: i64, out: &mut RawSeries) -> bool {
    out.floats.clear();
    out.hists.clear();
    out.float_sts.clear();
    out.hist_sts.clear();
    if s.has_st() {
        return decode_with_st(s, mint_ms, maxt_ms, out);
    }
    let mint_ms = mint_ms.max(s.mint_ms);
    let maxt_ms = maxt_ms.min(s.maxt_ms);
    let (floats, hists) = (&mut out.floats, &mut out.hists);
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
    !(floats.is_empty() && hists.is_empty())
}

/// [`decode_into`] for a series with start timestamps: the same walk through the series
/// iterator, keeping each sample's start timestamp (0 in chunks without an ST column) in
/// `float_sts` / `hist_sts`.
fn decode_with_st(s: &storage::Series, mint_ms: i64, maxt_ms: i64, out: &mut RawSeries) -> bool {
    let mut it = s.iter();
    let mut vt = it.seek(mint_ms);
    while vt != ValueType::None && it.t() <= maxt_ms {
        match vt {
            ValueType::Float => {
                let (t, f) = it.at();
                out.floats.push(FPoint { t, f });
                out.float_sts.push(it.st());
            }
            ValueType::Histogram => {
                let (t, h) = it.at_histogram();
                out.hists.push(HPoint { t, h: Arc::new(h.clone()) });
                out.hist_sts.push(it.st());
            }
            ValueType::None => break,
        }
        vt = it.next();
    }
    !(out.floats.is_empty() && out.hists.is_empty())
}

/// Decodes one series into a fresh [`RawSeries`] (labels moved), or `None` if it has no
/// samples in `[mint_ms, maxt_ms]`.
fn decode(s: storage::Series, mint_ms: i64, maxt_ms: i64) -> Option<RawSeries> {
    let mut out = RawSeries::default();
    if !decode_into(&s, mint_ms, maxt_ms, &mut out) {
        return None;
    }
    out.labels = s.labels;
    Some(out)
}

/// One series picked by [`SampleSource::select_series`]: either still compressed (a storage
/// series: labels plus chunk handles, decoded only when [`Selected::decode_into`] is called)
/// or already decoded (sources that hold points, such as [`crate::mem::MemStorage`]).
#[derive(Clone, Debug)]
pub enum Selected {
    /// Compressed chunks, decoded on demand.
    Stored(storage::Series),
    /// Decoded points, holding exactly the samples of the selected range.
    Decoded(RawSeries),
}

impl Selected {
    /// The series' labels.
    pub fn labels(&self) -> &Labels {
        match self {
            Selected::Stored(s) => &s.labels,
            Selected::Decoded(r) => &r.labels,
        }
    }

    /// Moves the labels out (leaving empty labels behind).
    pub fn take_labels(&mut self) -> Labels {
        match self {
            Selected::Stored(s) => std::mem::take(&mut s.labels),
            Selected::Decoded(r) => std::mem::take(&mut r.labels),
        }
    }

    /// Fills `out`'s point columns with the samples in `[mint_ms, maxt_ms]` (reusing their
    /// capacity; `out.labels` untouched); returns whether there are any.
    pub fn decode_into(&self, mint_ms: i64, maxt_ms: i64, out: &mut RawSeries) -> bool {
        match self {
            Selected::Stored(s) => decode_into(s, mint_ms, maxt_ms, out),
            Selected::Decoded(r) => {
                let fa = r.floats.partition_point(|p| p.t < mint_ms);
                let fb = r.floats.partition_point(|p| p.t <= maxt_ms).max(fa);
                let ha = r.hists.partition_point(|p| p.t < mint_ms);
                let hb = r.hists.partition_point(|p| p.t <= maxt_ms).max(ha);
                copy_range(&r.floats, fa, fb, &mut out.floats);
                copy_range(&r.hists, ha, hb, &mut out.hists);
                if r.float_sts.len() == r.floats.len() {
                    copy_range(&r.float_sts, fa, fb, &mut out.float_sts);
                } else {
                    out.float_sts.clear();
                }
                if r.hist_sts.len() == r.hists.len() {
                    copy_range(&r.hist_sts, ha, hb, &mut out.hist_sts);
                } else {
                    out.hist_sts.clear();
                }
                fb > fa || hb > ha
            }
        }
    }
}

/// Replaces `out` with a copy of `src[a..b]`.
fn copy_range<T: Clone>(src: &[T], a: usize, b: usize, out: &mut Vec<T>) {
    out.clear();
    out.extend_from_slice(&src[a..b]);
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

    fn select_series(&self, matchers: &[Matcher], mint_ms: i64, maxt_ms: i64) -> Result<Vec<Selected>> {
        Ok(self.0.select(matchers, mint_ms, maxt_ms)?.into_iter().map(Selected::Stored).collect())
    }

    fn select_series_hinted(&self, matchers: &[Matcher], mint_ms: i64, maxt_ms: i64, hints: &SelectHints) -> Result<Vec<Selected>> {
        Ok(self.0.select_with_hints(matchers, mint_ms, maxt_ms, hints)?.into_iter().map(Selected::Stored).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(name: &str) -> Labels {
        Labels::from_pairs([("__name__", name)])
    }

    #[test]
    fn decode_into_reuses_the_buffer_and_keeps_only_the_range() {
        let long: Vec<(i64, f64)> = (0..1000).map(|i| (i * 1000, i as f64)).collect();
        let short: Vec<(i64, f64)> = (0..10).map(|i| (i * 1000, -(i as f64))).collect();
        let mut buf = RawSeries::default();
        let a = Selected::Stored(storage::Series::from_samples(labels("a"), &long));
        assert!(a.decode_into(100_000, 199_000, &mut buf));
        assert_eq!(buf.floats.len(), 100);
        assert_eq!(buf.floats[0], FPoint { t: 100_000, f: 100.0 });
        let cap = buf.floats.capacity();
        let b = Selected::Stored(storage::Series::from_samples(labels("b"), &short));
        assert!(b.decode_into(2_000, 4_000, &mut buf));
        assert_eq!(buf.floats, vec![FPoint { t: 2_000, f: -2.0 }, FPoint { t: 3_000, f: -3.0 }, FPoint { t: 4_000, f: -4.0 }]);
        assert_eq!(buf.floats.capacity(), cap, "the buffer's allocation is reused");
        assert!(buf.labels.is_empty(), "labels stay with the selection");
        assert!(!b.decode_into(20_000, 30_000, &mut buf));
        assert!(buf.floats.is_empty());
    }

    #[test]
    fn decoded_selection_copies_the_same_range_as_stored() {
        let samples: Vec<(i64, i64, f64)> = (1..50).map(|i| (i * 10, i * 1000, i as f64)).collect();
        let stored = Selected::Stored(storage::Series::from_samples_st(labels("c"), &samples));
        let mut full = RawSeries::default();
        assert!(stored.decode_into(i64::MIN, i64::MAX, &mut full));
        assert_eq!(full.float_sts.len(), full.floats.len());
        let decoded = Selected::Decoded(full);
        let (mut x, mut y) = (RawSeries::default(), RawSeries::default());
        assert!(stored.decode_into(5_500, 9_000, &mut x));
        assert!(decoded.decode_into(5_500, 9_000, &mut y));
        assert_eq!(x.floats, y.floats);
        assert_eq!(x.float_sts, y.float_sts);
        assert_eq!(x.float_sts, vec![60, 70, 80, 90]);
    }
}
