//! A selected series and its sample iterator: what [`crate::Querier::select`] returns.
//!
//! A [`Series`] is its labels plus the chunks that overlap the selected range, sorted by their
//! first timestamp, from any mix of sources (mmap'd head chunks, a snapshot of the open head
//! chunk, block chunks). [`SeriesIterator`] walks them in order, clipped to the selected range.
//! When two sources overlap in time (a block was just cut from the head and both are in the
//! view), samples at or before the last emitted timestamp are skipped, so each timestamp is
//! yielded once.

use crate::chunkenc::{raw, ChunkBytes, ChunkHandle, ChunkIter, Encoding, ValueType};
use crate::histogram::FloatHistogram;
use crate::labels::Labels;

/// One series of a select result.
#[derive(Clone, Debug)]
pub struct Series {
    /// The series' labels.
    pub labels: Labels,
    /// Chunks overlapping `[mint_ms, maxt_ms]`, sorted by `min_t_ms`.
    pub chunks: Vec<ChunkHandle>,
    /// Inclusive lower bound of the selected range, ms.
    pub mint_ms: i64,
    /// Inclusive upper bound of the selected range, ms.
    pub maxt_ms: i64,
}

impl Series {
    /// A series over in-memory float samples (sorted by time), for tests and tools. Uses the
    /// raw encoding.
    pub fn from_samples(labels: Labels, samples: &[(i64, f64)]) -> Series {
        let ts: Vec<i64> = samples.iter().map(|s| s.0).collect();
        let vs: Vec<f64> = samples.iter().map(|s| s.1).collect();
        let chunks = if samples.is_empty() {
            Vec::new()
        } else {
            vec![ChunkHandle {
                min_t_ms: ts[0],
                max_t_ms: ts[ts.len() - 1],
                encoding: Encoding::Raw,
                bytes: ChunkBytes::from_vec(raw::encode(&ts, &vs)),
            }]
        };
        Series { labels, chunks, mint_ms: i64::MIN, maxt_ms: i64::MAX }
    }

    /// A series over in-memory float samples `(st_ms, t_ms, v)` (sorted by time) with start
    /// timestamps (0: none), for tests and tools. Uses [`Encoding::FloatSt`].
    pub fn from_samples_st(labels: Labels, samples: &[(i64, i64, f64)]) -> Series {
        let chunks = match (samples.first(), samples.last()) {
            (Some(first), Some(last)) => {
                let sts: Vec<i64> = samples.iter().map(|s| s.0).collect();
                let ts: Vec<i64> = samples.iter().map(|s| s.1).collect();
                let vs: Vec<f64> = samples.iter().map(|s| s.2).collect();
                vec![ChunkHandle {
                    min_t_ms: first.1,
                    max_t_ms: last.1,
                    encoding: Encoding::FloatSt,
                    bytes: ChunkBytes::from_vec(crate::chunkenc::encode_floats_st(&ts, &vs, &sts)),
                }]
            }
            _ => Vec::new(),
        };
        Series { labels, chunks, mint_ms: i64::MIN, maxt_ms: i64::MAX }
    }

    /// True if any chunk carries start timestamps ([`Encoding::has_st`]): readers that keep
    /// per-sample STs check this once per series and skip the ST column otherwise.
    pub fn has_st(&self) -> bool {
        self.chunks.iter().any(|c| c.encoding.has_st())
    }

    /// An iterator over the samples in `[mint_ms, maxt_ms]`.
    pub fn iter(&self) -> SeriesIterator<'_> {
        SeriesIterator {
            chunks: &self.chunks,
            next_chunk: 0,
            cur: None,
            mint_ms: self.mint_ms,
            maxt_ms: self.maxt_ms,
            last_t: i64::MIN,
            state: ValueType::None,
            started: false,
        }
    }
}

/// Iterates a [`Series`]' samples in time order, each timestamp once, within the selected
/// range. Allocation-free per sample.
pub struct SeriesIterator<'a> {
    chunks: &'a [ChunkHandle],
    next_chunk: usize,
    cur: Option<ChunkIter<'a>>,
    mint_ms: i64,
    maxt_ms: i64,
    last_t: i64,
    state: ValueType,
    started: bool,
}

impl<'a> SeriesIterator<'a> {
    /// Advances to the next sample.
    pub fn next(&mut self) -> ValueType {
        if !self.started {
            self.started = true;
            return self.seek(self.mint_ms);
        }
        if self.state == ValueType::None && self.cur.is_none() && self.next_chunk >= self.chunks.len() {
            return ValueType::None;
        }
        loop {
            if let Some(it) = self.cur.as_mut() {
                let vt = it.next();
                if vt != ValueType::None {
                    let t = it.t();
                    if t <= self.last_t {
                        continue; // overlap with an earlier chunk
                    }
                    if t > self.maxt_ms {
                        return self.finish();
                    }
                    self.last_t = t;
                    self.state = vt;
                    return vt;
                }
            }
            if !self.open_next_chunk() {
                return self.finish();
            }
        }
    }

    /// Advances to the first sample with `t >= t_ms` (and `>= mint`); stays if already there.
    pub fn seek(&mut self, t_ms: i64) -> ValueType {
        let t_ms = t_ms.max(self.mint_ms);
        if self.started && self.state != ValueType::None && self.last_t >= t_ms {
            return self.state;
        }
        self.started = true;
        // Skip whole chunks that end before the target.
        if self.cur.is_none() || self.state == ValueType::None || self.last_t < t_ms {
            let mut skipped = false;
            while self.next_chunk < self.chunks.len() && self.chunks[self.next_chunk].max_t_ms < t_ms {
                self.next_chunk += 1;
                skipped = true;
            }
            if skipped {
                self.cur = None;
            }
        }
        loop {
            if let Some(it) = self.cur.as_mut() {
                let vt = it.seek(t_ms.max(self.last_t.saturating_add(1)));
                if vt != ValueType::None {
                    let t = it.t();
                    if t > self.maxt_ms {
                        return self.finish();
                    }
                    self.last_t = t;
                    self.state = vt;
                    return vt;
                }
            }
            if !self.open_next_chunk() {
                return self.finish();
            }
        }
    }

    /// The current float sample `(t_ms, v)`.
    #[inline]
    pub fn at(&self) -> (i64, f64) {
        self.cur.as_ref().map_or((i64::MIN, 0.0), |c| c.at())
    }

    /// The current histogram sample; meaningful only on [`ValueType::Histogram`]. Anywhere
    /// else it returns the last timestamp with an empty histogram, never a panic.
    pub fn at_histogram(&self) -> (i64, &FloatHistogram) {
        match self.cur.as_ref() {
            Some(c) => c.at_histogram(),
            None => (self.last_t, &crate::chunkenc::EMPTY_HISTOGRAM),
        }
    }

    /// The current timestamp, ms.
    #[inline]
    pub fn t(&self) -> i64 {
        self.last_t
    }

    /// The current sample's start timestamp, ms since the epoch; 0 when it has none (chunks
    /// without an ST column, Prometheus' "unknown").
    #[inline]
    pub fn st(&self) -> i64 {
        self.cur.as_ref().map_or(0, |c| c.st())
    }

    fn open_next_chunk(&mut self) -> bool {
        let Some(c) = self.chunks.get(self.next_chunk) else {
            self.cur = None;
            return false;
        };
        self.next_chunk += 1;
        match self.cur.as_mut() {
            Some(it) => it.reset(c.encoding, c.bytes.as_slice()),
            None => self.cur = Some(ChunkIter::new(c.encoding, c.bytes.as_slice())),
        }
        true
    }

    fn finish(&mut self) -> ValueType {
        self.next_chunk = self.chunks.len();
        self.cur = None;
        self.state = ValueType::None;
        ValueType::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(s: &Series) -> Vec<(i64, f64)> {
        let mut it = s.iter();
        let mut out = Vec::new();
        while it.next() == ValueType::Float {
            out.push(it.at());
        }
        out
    }

    #[test]
    fn clips_and_dedups_overlap() {
        let a = Series::from_samples(Labels::empty(), &[(1, 1.0), (2, 2.0), (3, 3.0)]);
        let b = Series::from_samples(Labels::empty(), &[(3, 3.0), (4, 4.0), (5, 5.0)]);
        let s = Series {
            labels: Labels::empty(),
            chunks: vec![a.chunks[0].clone(), b.chunks[0].clone()],
            mint_ms: 2,
            maxt_ms: 4,
        };
        assert_eq!(collect(&s), vec![(2, 2.0), (3, 3.0), (4, 4.0)]);
    }

    #[test]
    fn start_timestamps_across_plain_and_st_chunks() {
        let a = Series::from_samples(Labels::empty(), &[(1, 1.0), (2, 2.0)]);
        let b = Series::from_samples_st(Labels::empty(), &[(2, 3, 3.0), (2, 4, 4.0), (4, 5, 1.0)]);
        assert!(!a.has_st());
        assert!(b.has_st());
        let s = Series {
            labels: Labels::empty(),
            chunks: vec![a.chunks[0].clone(), b.chunks[0].clone()],
            mint_ms: i64::MIN,
            maxt_ms: i64::MAX,
        };
        assert!(s.has_st());
        let mut it = s.iter();
        let mut got = Vec::new();
        while it.next() == ValueType::Float {
            got.push((it.st(), it.at().0));
        }
        assert_eq!(got, vec![(0, 1), (0, 2), (2, 3), (2, 4), (4, 5)]);
        let mut it = s.iter();
        assert_eq!(it.seek(4), ValueType::Float);
        assert_eq!((it.st(), it.t()), (2, 4));
    }

    #[test]
    fn seek_across_chunks() {
        let a = Series::from_samples(Labels::empty(), &[(1, 1.0), (2, 2.0)]);
        let b = Series::from_samples(Labels::empty(), &[(10, 10.0), (20, 20.0)]);
        let s = Series {
            labels: Labels::empty(),
            chunks: vec![a.chunks[0].clone(), b.chunks[0].clone()],
            mint_ms: i64::MIN,
            maxt_ms: i64::MAX,
        };
        let mut it = s.iter();
        assert_eq!(it.seek(5), ValueType::Float);
        assert_eq!(it.at(), (10, 10.0));
        assert_eq!(it.seek(5), ValueType::Float, "seek backwards stays put");
        assert_eq!(it.at(), (10, 10.0));
        assert_eq!(it.next(), ValueType::Float);
        assert_eq!(it.at(), (20, 20.0));
        assert_eq!(it.next(), ValueType::None);
        assert_eq!(it.seek(100), ValueType::None);
    }
}
