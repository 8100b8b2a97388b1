//! A querier over several sources (blocks and the head) that answers as one.
//!
//! Each source returns its series sorted by labels; the merge walks them like a k-way merge
//! and joins the chunk lists of series with equal labels, sorted by first timestamp. Sources
//! that overlap in time (a block cut from the head while a query holds both) are deduplicated
//! sample by sample by [`crate::SeriesIterator`], which skips timestamps it already yielded.

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::api::{Querier, SelectHints};
use crate::error::Result;
use crate::matcher::Matcher;
use crate::series::Series;

/// Merges the answers of several queriers. Sources are queried in order; order does not affect
/// the result.
pub struct MergeQuerier {
    sources: Vec<Arc<dyn Querier>>,
}

impl MergeQuerier {
    /// A merge over `sources`.
    pub fn new(sources: Vec<Arc<dyn Querier>>) -> Self {
        MergeQuerier { sources }
    }
}

/// Merges label-sorted series lists into one label-sorted list, joining equal label sets.
pub fn merge_series(lists: Vec<Vec<Series>>) -> Vec<Series> {
    let mut lists: Vec<Vec<Series>> = lists.into_iter().filter(|l| !l.is_empty()).collect();
    match lists.len() {
        0 => return Vec::new(),
        1 => return lists.pop().expect("one list"),
        _ => {}
    }
    let total: usize = lists.iter().map(Vec::len).sum();
    let mut out: Vec<Series> = Vec::with_capacity(total);
    // Each list reversed, so that its smallest series is `last()` and taking it is a pop.
    let mut stacks: Vec<Vec<Series>> = lists
        .into_iter()
        .map(|mut l| {
            l.reverse();
            l
        })
        .collect();
    loop {
        // Few sources (one per block plus the head), so a linear scan beats a heap.
        let mut min: Option<usize> = None;
        for (i, st) in stacks.iter().enumerate() {
            let Some(s) = st.last() else { continue };
            if min.is_none_or(|m| stacks[m].last().is_some_and(|ms| s.labels < ms.labels)) {
                min = Some(i);
            }
        }
        let Some(m) = min else { break };
        let mut merged = stacks[m].pop().expect("non-empty");
        for (i, st) in stacks.iter_mut().enumerate() {
            if i != m && st.last().is_some_and(|s| s.labels == merged.labels) {
                let s = st.pop().expect("non-empty");
                merged.chunks.extend(s.chunks);
                merged.mint_ms = merged.mint_ms.min(s.mint_ms);
                merged.maxt_ms = merged.maxt_ms.max(s.maxt_ms);
            }
        }
        merged.chunks.sort_by_key(|c| c.min_t_ms);
        out.push(merged);
    }
    out
}

impl Querier for MergeQuerier {
    fn select(&self, matchers: &[Matcher], mint_ms: i64, maxt_ms: i64) -> Result<Vec<Series>> {
        let mut lists = Vec::with_capacity(self.sources.len());
        for s in &self.sources {
            lists.push(s.select(matchers, mint_ms, maxt_ms)?);
        }
        Ok(merge_series(lists))
    }

    /// With one source, forwards `hints` to it. With several, answers as [`Querier::select`]:
    /// the merge joins series by their labels, which a grouping hint would make ambiguous
    /// (two series restricted to the grouping labels may compare equal), as
    /// [`SelectHints::grouping`] requires of a merging caller.
    fn select_with_hints(&self, matchers: &[Matcher], mint_ms: i64, maxt_ms: i64, hints: &SelectHints) -> Result<Vec<Series>> {
        match self.sources.as_slice() {
            [only] => only.select_with_hints(matchers, mint_ms, maxt_ms, hints),
            _ => self.select(matchers, mint_ms, maxt_ms),
        }
    }

    fn label_names(&self, matchers: &[Matcher], mint_ms: i64, maxt_ms: i64) -> Result<Vec<String>> {
        let mut set = BTreeSet::new();
        for s in &self.sources {
            set.extend(s.label_names(matchers, mint_ms, maxt_ms)?);
        }
        Ok(set.into_iter().collect())
    }

    fn label_values(&self, name: &str, matchers: &[Matcher], mint_ms: i64, maxt_ms: i64) -> Result<Vec<String>> {
        let mut set = BTreeSet::new();
        for s in &self.sources {
            set.extend(s.label_values(name, matchers, mint_ms, maxt_ms)?);
        }
        Ok(set.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::Labels;
    use crate::ValueType;

    fn series(name: &str, samples: &[(i64, f64)]) -> Series {
        Series::from_samples(Labels::from_pairs([("__name__", name)]), samples)
    }

    #[test]
    fn merges_sorted_and_joins_equal_labels() {
        let a = vec![series("a", &[(1, 1.0)]), series("c", &[(1, 1.0)])];
        let b = vec![series("a", &[(5, 5.0)]), series("b", &[(1, 2.0)])];
        let m = merge_series(vec![b, a]);
        let names: Vec<_> = m.iter().map(|s| s.labels.metric_name().unwrap().to_string()).collect();
        assert_eq!(names, ["a", "b", "c"]);
        let mut it = m[0].iter();
        let mut got = Vec::new();
        while it.next() == ValueType::Float {
            got.push(it.at());
        }
        assert_eq!(got, vec![(1, 1.0), (5, 5.0)]);
    }
}
