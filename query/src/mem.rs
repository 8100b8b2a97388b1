//! [`MemStorage`]: an in-memory [`SampleSource`] holding floats and native histograms, for
//! tests, benches and tools (the promqltest runner loads scripts into it while the head cannot
//! yet store histograms).

use std::collections::BTreeMap;
use std::sync::Arc;

use storage::{FloatHistogram, Labels, Matcher};

use crate::error::Result;
use crate::source::{RawSeries, SampleSource};
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
        let s = self.entry(labels);
        match s.floats.binary_search_by_key(&t_ms, |p| p.t) {
            Ok(i) => s.floats[i].f = v,
            Err(i) => s.floats.insert(i, FPoint { t: t_ms, f: v }),
        }
    }

    /// Adds a histogram sample. A sample at an existing timestamp replaces it.
    pub fn add_histogram(&mut self, labels: &Labels, t_ms: i64, h: FloatHistogram) {
        let s = self.entry(labels);
        match s.hists.binary_search_by_key(&t_ms, |p| p.t) {
            Ok(i) => s.hists[i].h = Arc::new(h),
            Err(i) => s.hists.insert(i, HPoint { t: t_ms, h: Arc::new(h) }),
        }
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

/// The points of `ps` (sorted by time) in `[mint, maxt]`.
fn window<T: Clone>(ps: &[T], t: impl Fn(&T) -> i64, mint: i64, maxt: i64) -> Vec<T> {
    let lo = ps.partition_point(|p| t(p) < mint);
    let hi = ps.partition_point(|p| t(p) <= maxt);
    if lo >= hi {
        return Vec::new();
    }
    ps[lo..hi].to_vec()
}

impl SampleSource for MemStorage {
    fn select(&self, matchers: &[Matcher], mint_ms: i64, maxt_ms: i64) -> Result<Vec<RawSeries>> {
        let mut out = Vec::new();
        for (labels, s) in &self.series {
            if !matchers.iter().all(|m| m.matches(labels.get(&m.name).unwrap_or(""))) {
                continue;
            }
            let floats = window(&s.floats, |p| p.t, mint_ms, maxt_ms);
            let hists = window(&s.hists, |p| p.t, mint_ms, maxt_ms);
            if floats.is_empty() && hists.is_empty() {
                continue;
            }
            out.push(RawSeries { labels: labels.clone(), floats, hists });
        }
        Ok(out)
    }
}
