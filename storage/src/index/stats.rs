//! Cardinality statistics: the data behind Prometheus' `/api/v1/status/tsdb`
//! (`seriesCountByMetricName`, `labelValueCountByLabelName`, `memoryInBytesByLabelName`,
//! `seriesCountByLabelValuePair`), computed as Prometheus' `MemPostings.Stats` does.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::IndexReader;
use crate::error::Result;
use crate::labels::METRIC_NAME;

/// One entry of a top-N list.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Stat {
    /// Metric name, label name, or `name=value`.
    pub name: String,
    /// The counted quantity (series, distinct values, or bytes).
    pub count: u64,
}

/// Top-N lists, each sorted by descending count (ties by ascending name).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CardinalityStats {
    /// Number of series in the index.
    pub num_series: u64,
    /// Series per metric name (`__name__` value).
    pub series_count_by_metric_name: Vec<Stat>,
    /// Distinct values per label name.
    pub label_value_count_by_label_name: Vec<Stat>,
    /// Bytes of label values per label name: Σ over values of `len(value) × series count`
    /// (Prometheus' definition: what the values would take stored once per series).
    pub memory_in_bytes_by_label_name: Vec<Stat>,
    /// Series per `name=value` pair.
    pub series_count_by_label_value_pair: Vec<Stat>,
}

/// Keeps the `limit` largest entries.
struct TopN {
    limit: usize,
    heap: BinaryHeap<Reverse<(u64, Reverse<String>)>>,
}

impl TopN {
    fn new(limit: usize) -> Self {
        TopN { limit, heap: BinaryHeap::with_capacity(limit + 1) }
    }

    fn push(&mut self, count: u64, name: impl FnOnce() -> String) {
        if self.limit == 0 {
            return;
        }
        if self.heap.len() == self.limit {
            let Some(Reverse((min, _))) = self.heap.peek() else { return };
            if count <= *min {
                return;
            }
        }
        self.heap.push(Reverse((count, Reverse(name()))));
        if self.heap.len() > self.limit {
            self.heap.pop();
        }
    }

    fn into_sorted(self) -> Vec<Stat> {
        let mut v: Vec<Stat> = self.heap.into_iter().map(|Reverse((count, Reverse(name)))| Stat { name, count }).collect();
        v.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.name.cmp(&b.name)));
        v
    }
}

/// Computes the top-`limit` cardinality lists of an index. Visits every label pair once and
/// reads only postings sizes.
///
/// # Errors
/// Whatever the index returns (corruption of an on-disk index).
pub fn cardinality_stats(ix: &(impl IndexReader + ?Sized), limit: usize) -> Result<CardinalityStats> {
    let mut metrics = TopN::new(limit);
    let mut value_counts = TopN::new(limit);
    let mut memory = TopN::new(limit);
    let mut pairs = TopN::new(limit);
    for name in ix.label_names()? {
        let mut values: Vec<String> = Vec::new();
        ix.visit_values(&name, "", &mut |v| values.push(v.to_string()))?;
        value_counts.push(values.len() as u64, || name.clone());
        let mut bytes = 0u64;
        for v in &values {
            let n = ix.postings_len(&name, v)?;
            bytes += v.len() as u64 * n;
            if name == METRIC_NAME {
                metrics.push(n, || v.clone());
            }
            pairs.push(n, || format!("{name}={v}"));
        }
        memory.push(bytes, || name.clone());
    }
    Ok(CardinalityStats {
        num_series: ix.all_postings()?.len(),
        series_count_by_metric_name: metrics.into_sorted(),
        label_value_count_by_label_name: value_counts.into_sorted(),
        memory_in_bytes_by_label_name: memory.into_sorted(),
        series_count_by_label_value_pair: pairs.into_sorted(),
    })
}
