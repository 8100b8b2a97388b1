//! Where the engine reads samples: [`SampleSource`], implemented for every
//! [`storage::Querier`] through [`QuerierSource`], and by [`crate::mem::MemStorage`].
//!
//! A selector reads each matching series once per evaluation into column buffers
//! ([`RawSeries`]); every step then binary-searches those columns, so the per-step work of a
//! selector or range function allocates nothing.

use std::sync::Arc;

use rayon::prelude::*;

use storage::{FloatHistogram, Labels, Matcher, Querier, ValueType};

use crate::error::Result;

/// One selected series, its samples in `[mint_ms, maxt_ms]` as columns sorted by time.
#[derive(Clone, Debug, Default)]
pub struct RawSeries {
    /// The series' labels.
    pub labels: Labels,
    /// Timestamps of the float samples, ms (stale markers included).
    pub ft: Vec<i64>,
    /// Values of the float samples.
    pub fv: Vec<f64>,
    /// Timestamps of the histogram samples, ms.
    pub ht: Vec<i64>,
    /// The histogram samples.
    pub hv: Vec<Arc<FloatHistogram>>,
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

/// Decodes one series' samples in `[mint_ms, maxt_ms]` into columns; `None` if it has none.
fn decode(s: &storage::Series, mint_ms: i64, maxt_ms: i64) -> Option<RawSeries> {
    let mut raw = RawSeries::default();
    let mut it = s.iter();
    let mut vt = it.seek(mint_ms);
    while vt != ValueType::None && it.t() <= maxt_ms {
        if vt == ValueType::Float {
            let (t, v) = it.at();
            raw.ft.push(t);
            raw.fv.push(v);
        } else {
            let (t, h) = it.at_histogram();
            raw.ht.push(t);
            raw.hv.push(Arc::new(h.clone()));
        }
        vt = it.next();
    }
    if raw.ft.is_empty() && raw.ht.is_empty() {
        return None;
    }
    raw.labels = s.labels.clone();
    Some(raw)
}

impl SampleSource for QuerierSource<'_> {
    fn select(&self, matchers: &[Matcher], mint_ms: i64, maxt_ms: i64) -> Result<Vec<RawSeries>> {
        let series = self.0.select(matchers, mint_ms, maxt_ms)?;
        if series.len() >= PARALLEL_DECODE_MIN_SERIES {
            let decoded: Vec<Option<RawSeries>> = series.par_iter().map(|s| decode(s, mint_ms, maxt_ms)).collect();
            return Ok(decoded.into_iter().flatten().collect());
        }
        Ok(series.iter().filter_map(|s| decode(s, mint_ms, maxt_ms)).collect())
    }
}
