//! The head's exemplar store: one bounded circular buffer for the whole head (default 100,000
//! entries, as Prometheus' `CircularExemplarStorage`), the oldest overwritten first.
//!
//! Per series, exemplars must arrive in time order: an exemplar older than the series' newest
//! is [`crate::AppendError::ExemplarOutOfOrder`], and an exact repeat of the newest (same
//! timestamp, value and labels, as every scrape re-sends it) is dropped silently.

use std::collections::HashMap;

use crate::api::Exemplar;
use crate::labels::Labels;

use super::series::IdBuild;

/// Default capacity of the exemplar buffer: 100,000 exemplars (Prometheus' default
/// `max_exemplars`).
pub const DEFAULT_MAX_EXEMPLARS: usize = 100_000;

/// The exemplars of one series, as [`super::Head::exemplars`] returns them.
#[derive(Clone, Debug, PartialEq)]
pub struct SeriesExemplars {
    /// The series' labels.
    pub labels: Labels,
    /// Its exemplars in the queried range, oldest first.
    pub exemplars: Vec<Exemplar>,
}

struct Entry {
    series: u32,
    exemplar: Exemplar,
}

/// What an exemplar append would do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ExemplarCheck {
    Add,
    Duplicate,
    OutOfOrder,
}

/// The circular buffer and the newest exemplar per series.
pub(crate) struct ExemplarStore {
    buf: Vec<Entry>,
    /// Next slot to write once the buffer is full.
    next: usize,
    cap: usize,
    /// Series id -> index of its newest exemplar in `buf` (only while that slot still holds it).
    newest: HashMap<u32, usize, IdBuild>,
}

impl ExemplarStore {
    pub(crate) fn new(cap: usize) -> Self {
        ExemplarStore { buf: Vec::new(), next: 0, cap, newest: HashMap::default() }
    }

    pub(crate) fn capacity(&self) -> usize {
        self.cap
    }

    /// Checks an exemplar against the series' newest.
    pub(crate) fn check(&self, series: u32, e: &Exemplar) -> ExemplarCheck {
        let Some(&i) = self.newest.get(&series) else { return ExemplarCheck::Add };
        let last = &self.buf[i].exemplar;
        if e.t_ms < last.t_ms {
            return ExemplarCheck::OutOfOrder;
        }
        if e.t_ms == last.t_ms && e.value.to_bits() == last.value.to_bits() && e.labels == last.labels {
            return ExemplarCheck::Duplicate;
        }
        ExemplarCheck::Add
    }

    /// Adds an exemplar if it passes [`ExemplarStore::check`]; returns whether it was added.
    pub(crate) fn add(&mut self, series: u32, e: Exemplar) -> bool {
        if self.cap == 0 || self.check(series, &e) != ExemplarCheck::Add {
            return false;
        }
        let slot = if self.buf.len() < self.cap {
            self.buf.push(Entry { series, exemplar: e });
            self.buf.len() - 1
        } else {
            let slot = self.next;
            let old = self.buf[slot].series;
            if self.newest.get(&old) == Some(&slot) {
                self.newest.remove(&old);
            }
            self.buf[slot] = Entry { series, exemplar: e };
            self.next = (slot + 1) % self.cap;
            slot
        };
        self.newest.insert(series, slot);
        true
    }

    /// Exemplars of the series in `ids` with `t_ms` in `[mint, maxt]`, grouped by series id,
    /// oldest first.
    pub(crate) fn select(&self, ids: &roaring::RoaringBitmap, mint: i64, maxt: i64) -> HashMap<u32, Vec<Exemplar>> {
        let mut out: HashMap<u32, Vec<Exemplar>> = HashMap::new();
        let full = self.buf.len() == self.cap;
        let start = if full { self.next } else { 0 };
        for k in 0..self.buf.len() {
            let e = &self.buf[(start + k) % self.buf.len()];
            if e.exemplar.t_ms >= mint && e.exemplar.t_ms <= maxt && ids.contains(e.series) {
                out.entry(e.series).or_default().push(e.exemplar.clone());
            }
        }
        out
    }

    /// Forgets series that were garbage-collected (their entries age out of the ring).
    pub(crate) fn forget(&mut self, ids: &roaring::RoaringBitmap) {
        self.newest.retain(|id, _| !ids.contains(*id));
        for e in &mut self.buf {
            if ids.contains(e.series) {
                // An id never issued (ids are dense from 1), so no select matches it again.
                e.series = u32::MAX;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(t: i64, v: f64) -> Exemplar {
        Exemplar { labels: Labels::from_pairs([("trace_id", "x")]), value: v, t_ms: t }
    }

    #[test]
    fn ring_overwrites_oldest_and_orders_per_series() {
        let mut s = ExemplarStore::new(3);
        assert!(s.add(1, ex(1, 1.0)));
        assert!(!s.add(1, ex(1, 1.0)), "exact duplicate dropped");
        assert_eq!(s.check(1, &ex(0, 1.0)), ExemplarCheck::OutOfOrder);
        assert!(s.add(2, ex(2, 2.0)));
        assert!(s.add(1, ex(3, 3.0)));
        assert!(s.add(2, ex(4, 4.0)), "overwrites the oldest slot");
        let all: roaring::RoaringBitmap = [1u32, 2].into_iter().collect();
        let got = s.select(&all, 0, 10);
        assert_eq!(got[&1], vec![ex(3, 3.0)]);
        assert_eq!(got[&2], vec![ex(2, 2.0), ex(4, 4.0)]);
        assert_eq!(s.select(&all, 4, 4)[&2], vec![ex(4, 4.0)]);
    }
}
