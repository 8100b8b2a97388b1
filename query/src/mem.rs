//! [`MemStorage`]: an in-memory [`SampleSource`] holding floats and native histograms, for
//! tests, benches and tools (the promqltest runner loads scripts into it while the head cannot
//! yet store histograms).

use std::collections::BTreeMap;
use std::sync::Arc;

use storage::api::SelectHints;
use storage::{FloatHistogram, Labels, Matcher};

use crate::error::Result;
use crate::source::{RawSeries, SampleSource, Selected};
use crate::value::{FPoint, HPoint};

/// Series keyed by labels (so iteration is in label order), samples kept sorted by time.
#[derive(Default, Clone)]
pub struct MemStorage {
    series: BTreeMap<Labels, RawSeries>,
}

impl MemStorage {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a float sample (a stale marker too). A sample at an existing timestamp replaces it.
    pub fn add_float(&mut self, labels: &Labels, t_ms: i64, v: f64) {
        self.add_float_st(labels, 0, t_ms, v);
    }

    /// Adds a float sample with its start timestamp `st_ms` (ms since the epoch, 0 = none; see
    /// [`storage::Appender::append_st`]). A sample at an existing timestamp replaces it.
    pub fn add_float_st(&mut self, labels: &Labels, st_ms: i64, t_ms: i64, v: f64) {
        let s = self.entry(labels);
        let i = match s.floats.binary_search_by_key(&t_ms, |p| p.t) {
            Ok(i) => {
                s.floats[i].f = v;
                i
            }
            Err(i) => {
                s.floats.insert(i, FPoint { t: t_ms, f: v });
                if !s.float_sts.is_empty() {
                    s.float_sts.insert(i, 0);
                }
                i
            }
        };
        set_st(&mut s.float_sts, s.floats.len(), i, st_ms);
    }

    /// Adds a histogram sample. A sample at an existing timestamp replaces it.
    pub fn add_histogram(&mut self, labels: &Labels, t_ms: i64, h: FloatHistogram) {
        self.add_histogram_st(labels, 0, t_ms, h);
    }

    /// Adds a histogram sample with its start timestamp (0 = none). A sample at an existing
    /// timestamp replaces it.
    pub fn add_histogram_st(&mut self, labels: &Labels, st_ms: i64, t_ms: i64, h: FloatHistogram) {
        let s = self.entry(labels);
        let i = match s.hists.binary_search_by_key(&t_ms, |p| p.t) {
            Ok(i) => {
                s.hists[i].h = Arc::new(h);
                i
            }
            Err(i) => {
                s.hists.insert(i, HPoint { t: t_ms, h: Arc::new(h) });
                if !s.hist_sts.is_empty() {
                    s.hist_sts.insert(i, 0);
                }
                i
            }
        };
        set_st(&mut s.hist_sts, s.hists.len(), i, st_ms);
    }

    /// Number of series.
    pub fn len(&self) -> usize {
        self.series.len()
    }

    /// True when nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }

    fn entry(&mut self, labels: &Labels) -> &mut RawSeries {
        self.series
            .entry(labels.clone())
            .or_insert_with(|| RawSeries { labels: labels.clone(), ..Default::default() })
    }
}

/// Sets the start timestamp of point `i` in an ST column that is either empty (no point has
/// one) or `len` long; the column is created (zeros) at the first non-zero start timestamp.
fn set_st(sts: &mut Vec<i64>, len: usize, i: usize, st_ms: i64) {
    if sts.is_empty() {
        if st_ms == 0 {
            return;
        }
        sts.resize(len, 0);
    }
    sts[i] = st_ms;
}

/// The index range of `ps` (sorted by time) in `[mint, maxt]`.
fn window<T>(ps: &[T], t: impl Fn(&T) -> i64, mint: i64, maxt: i64) -> std::ops::Range<usize> {
    let lo = ps.partition_point(|p| t(p) < mint);
    let hi = ps.partition_point(|p| t(p) <= maxt);
    lo..hi.max(lo)
}

/// The ST column's part for the point range `r` (empty stays empty).
fn sts_of(sts: &[i64], r: &std::ops::Range<usize>) -> Vec<i64> {
    if sts.is_empty() {
        Vec::new()
    } else {
        sts[r.clone()].to_vec()
    }
}

impl SampleSource for MemStorage {
    fn select(&self, matchers: &[Matcher], mint_ms: i64, maxt_ms: i64) -> Result<Vec<RawSeries>> {
        let mut out = Vec::new();
        for (labels, s) in &self.series {
            if !matchers.iter().all(|m| m.matches(labels.get(&m.name).unwrap_or(""))) {
                continue;
            }
            let fr = window(&s.floats, |p| p.t, mint_ms, maxt_ms);
            let hr = window(&s.hists, |p| p.t, mint_ms, maxt_ms);
            if fr.is_empty() && hr.is_empty() {
                continue;
            }
            out.push(RawSeries {
                labels: labels.clone(),
                floats: s.floats[fr.clone()].to_vec(),
                hists: s.hists[hr.clone()].to_vec(),
                float_sts: sts_of(&s.float_sts, &fr),
                hist_sts: sts_of(&s.hist_sts, &hr),
            });
        }
        Ok(out)
    }

    /// Honours a grouping hint as a storage querier may: each series' labels restricted to
    /// the hinted names. The promqltest runner evaluates through this source, so the corpus
    /// checks that every hint the evaluator gives leaves the answers unchanged.
    fn select_series_hinted(&self, matchers: &[Matcher], mint_ms: i64, maxt_ms: i64, hints: &SelectHints) -> Result<Vec<Selected>> {
        let mut out = self.select(matchers, mint_ms, maxt_ms)?;
        if let Some(names) = &hints.grouping {
            for s in &mut out {
                s.labels = s.labels.retain(|n| names.iter().any(|k| k == n));
            }
        }
        Ok(out.into_iter().map(Selected::Decoded).collect())
    }
}
