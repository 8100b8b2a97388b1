//! [`MemStorage`]: an in-memory [`SampleSource`] holding floats and native histograms, for
//! tests, benches and tools (the promqltest runner loads scripts into it while the head cannot
//! yet store histograms).

use std::collections::BTreeMap;
use std::sync::Arc;

use storage::{FloatHistogram, Labels, Matcher};

use crate::error::Result;
use crate::source::{RawSeries, SampleSource};

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
        match s.ft.binary_search(&t_ms) {
            Ok(i) => s.fv[i] = v,
            Err(i) => {
                s.ft.insert(i, t_ms);
                s.fv.insert(i, v);
            }
        }
    }

    /// Adds a histogram sample. A sample at an existing timestamp replaces it.
    pub fn add_histogram(&mut self, labels: &Labels, t_ms: i64, h: FloatHistogram) {
        let s = self.entry(labels);
        match s.ht.binary_search(&t_ms) {
            Ok(i) => s.hv[i] = Arc::new(h),
            Err(i) => {
                s.ht.insert(i, t_ms);
                s.hv.insert(i, Arc::new(h));
            }
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

fn window<T: Clone>(ts: &[i64], vs: &[T], mint: i64, maxt: i64) -> (Vec<i64>, Vec<T>) {
    let lo = ts.partition_point(|&t| t < mint);
    let hi = ts.partition_point(|&t| t <= maxt);
    if lo >= hi {
        return (Vec::new(), Vec::new());
    }
    (ts[lo..hi].to_vec(), vs[lo..hi].to_vec())
}

impl SampleSource for MemStorage {
    fn select(&self, matchers: &[Matcher], mint_ms: i64, maxt_ms: i64) -> Result<Vec<RawSeries>> {
        let mut out = Vec::new();
        for (labels, s) in &self.series {
            if !matchers.iter().all(|m| m.matches(labels.get(&m.name).unwrap_or(""))) {
                continue;
            }
            let (ft, fv) = window(&s.ft, &s.fv, mint_ms, maxt_ms);
            let (ht, hv) = window(&s.ht, &s.hv, mint_ms, maxt_ms);
            if ft.is_empty() && ht.is_empty() {
                continue;
            }
            out.push(RawSeries { labels: labels.clone(), ft, fv, ht, hv });
        }
        Ok(out)
    }
}
