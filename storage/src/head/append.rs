//! [`HeadAppender`]: the head's write transaction.
//!
//! Each `append*` checks its sample against the series at once (bounds, then Prometheus' order
//! rules against the newest committed sample and this transaction's own newest sample for the
//! series) and buffers it. [`Appender::commit`] encodes all records into one reused buffer,
//! writes them with one WAL `write()` (fsynced per policy, group commit), and then applies them
//! to the series' chunks. Metrics are counted in locals and published once per commit.
//!
//! Concurrent transactions on the same series: each is checked against committed state when
//! it appends; at commit a sample that another transaction overtook in the meantime is dropped
//! (and counted as out of order), as Prometheus does.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::api::{Appender, CommitStats, Exemplar, Metadata, SeriesRef};
use crate::error::{AppendError, Result};
use crate::histogram::FloatHistogram;
use crate::labels::Labels;
use crate::metrics::{RejectReason, StorageMetrics};
use crate::wal::record::{self, RefSample};

use super::exemplars::ExemplarCheck;
use super::series::{check_pending, histograms_identical, Kind, MemSeries, OrderViolation};
use super::HeadInner;

/// The reusable buffers of one transaction; returned to the head's pool after commit or
/// rollback so steady-state appending allocates nothing.
#[derive(Default)]
pub(crate) struct AppendBuffers {
    samples: Vec<RefSample>,
    sample_series: Vec<Arc<MemSeries>>,
    /// Histograms with the number of float samples buffered before each (its position in
    /// the transaction's append order).
    hists: Vec<BufferedHistogram>,
    hist_series: Vec<Arc<MemSeries>>,
    exemplars: Vec<(SeriesRef, Exemplar)>,
    metadata: Vec<(String, Metadata)>,
    wal: Vec<u8>,
}

impl AppendBuffers {
    fn clear(&mut self) {
        self.samples.clear();
        self.sample_series.clear();
        self.hists.clear();
        self.hist_series.clear();
        self.exemplars.clear();
        self.metadata.clear();
        self.wal.clear();
    }
}

/// A histogram sample waiting for commit.
struct BufferedHistogram {
    series: SeriesRef,
    st_ms: i64,
    t_ms: i64,
    h: FloatHistogram,
    /// Float samples buffered before it.
    pos: usize,
}

/// Buffers above this many bytes are not pooled (a one-off huge transaction should not pin
/// its memory).
const POOL_MAX_WAL_BYTES: usize = 8 << 20;
/// At most this many buffer sets are pooled.
const POOL_MAX: usize = 64;

/// A write transaction on the head. Implements [`Appender`]; see the module doc. Dropping it
/// without commit is a rollback.
pub struct HeadAppender {
    head: Arc<HeadInner>,
    /// Identifies this transaction in series' pending state (never 0).
    id: u64,
    buf: AppendBuffers,
    series_created: u64,
    rejected: [u64; RejectReason::COUNT],
    done: bool,
}

impl HeadAppender {
    pub(crate) fn new(head: Arc<HeadInner>) -> Self {
        let id = head.next_appender_id.fetch_add(1, Ordering::Relaxed);
        let buf = head.buffer_pool.lock().pop().unwrap_or_default();
        HeadAppender { head, id, buf, series_created: 0, rejected: [0; RejectReason::COUNT], done: false }
    }

    fn reject(&mut self, e: AppendError) -> AppendError {
        self.rejected[RejectReason::of(&e) as usize] += 1;
        e
    }

    /// Bounds checks shared by floats and histograms.
    #[inline]
    fn check_bounds(&self, t_ms: i64) -> Result<(), AppendError> {
        let min_valid = self.head.min_valid_t.load(Ordering::Relaxed);
        if t_ms < min_valid {
            return Err(AppendError::OutOfBounds { t_ms, min_valid_t_ms: min_valid });
        }
        if let Some(tol) = self.head.opts.max_future_ms {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64);
            let max_valid = now.saturating_add(tol);
            if t_ms > max_valid {
                return Err(AppendError::TooFarInFuture { t_ms, max_valid_t_ms: max_valid });
            }
        }
        Ok(())
    }

    /// Checks a sample against the series and records it as pending. `Ok(false)` means an
    /// exact duplicate, accepted and dropped.
    fn accept(&self, s: &MemSeries, t_ms: i64, kind: Kind, v_bits: u64, h: Option<&FloatHistogram>) -> Result<bool, AppendError> {
        let mut st = s.state.lock();
        if st.deleted {
            return Err(AppendError::UnknownSeriesRef(SeriesRef(u64::from(s.id))));
        }
        // Check against whichever is newer: the committed newest sample, or this
        // transaction's own newest pending one (which was checked against committed state).
        let own_newer = st.pending_owner == self.id
            && st.pending_kind != Kind::None
            && (st.last_kind == Kind::None || st.pending_t > st.last_t);
        let ok = if own_newer {
            check_pending(&st, t_ms, kind, v_bits, true)
        } else {
            match (kind, h) {
                (Kind::Histogram, Some(h)) => st.check_histogram(t_ms, h),
                _ => st.check_float(t_ms, f64::from_bits(v_bits)),
            }
        };
        match ok {
            Ok(true) => {
                st.pending_owner = self.id;
                st.pending_t = t_ms;
                st.pending_v = v_bits;
                st.pending_kind = kind;
                st.pending += 1;
                Ok(true)
            }
            Ok(false) => Ok(false),
            Err(OrderViolation::OutOfOrder { newest_t_ms }) => Err(AppendError::OutOfOrder { t_ms, newest_t_ms }),
            Err(OrderViolation::Duplicate) => Err(AppendError::DuplicateTimestamp { t_ms }),
            Err(OrderViolation::TypeConflict) => Err(AppendError::TypeConflict { t_ms }),
        }
    }

    /// Checks a float sample (start timestamp `st_ms`, 0 for none) against series `s` (whose
    /// ref is `series`) and buffers it.
    #[inline]
    fn append_to(&mut self, s: Arc<MemSeries>, series: SeriesRef, st_ms: i64, t_ms: i64, v: f64) -> Result<(), AppendError> {
        match self.accept(&s, t_ms, Kind::Float, v.to_bits(), None) {
            Ok(true) => {
                self.buf.samples.push(RefSample { series_ref: series, t_ms, v, st_ms });
                self.buf.sample_series.push(s);
                Ok(())
            }
            Ok(false) => Ok(()),
            Err(e) => Err(self.reject(e)),
        }
    }

    /// Undoes the pending marks of every buffered sample (rollback, failed commit).
    fn release_pending(&mut self) {
        let id = self.id;
        let release = |s: &MemSeries| {
            let mut st = s.state.lock();
            st.pending = st.pending.saturating_sub(1);
            if st.pending_owner == id {
                st.pending_owner = 0;
            }
        };
        for s in &self.buf.sample_series {
            release(s);
        }
        for s in &self.buf.hist_series {
            release(s);
        }
    }

    /// Publishes the per-transaction counters.
    fn publish(&mut self, stats: &CommitStats) {
        let m = &self.head.metrics;
        StorageMetrics::add(&m.samples_appended, stats.samples);
        StorageMetrics::add(&m.histograms_appended, stats.histograms);
        StorageMetrics::add(&m.exemplars_appended, stats.exemplars);
        for (i, n) in self.rejected.iter().enumerate() {
            StorageMetrics::add(&m.samples_rejected[i], *n);
        }
        self.rejected = [0; RejectReason::COUNT];
    }

    /// Returns the buffers to the pool.
    fn finish(&mut self) {
        self.done = true;
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        if buf.wal.capacity() <= POOL_MAX_WAL_BYTES {
            let mut pool = self.head.buffer_pool.lock();
            if pool.len() < POOL_MAX {
                pool.push(buf);
            }
        }
    }

    /// Drops buffered samples below the head's current lower bound (it may have been raised
    /// since they were appended), releasing their pending marks. Returns how many.
    fn drop_below_bound(&mut self, min_valid: i64) -> u64 {
        let b = &mut self.buf;
        let mut dropped = 0u64;
        let mut dropped_floats: Vec<usize> = Vec::new();
        let mut keep = 0;
        for i in 0..b.samples.len() {
            if b.samples[i].t_ms < min_valid {
                let mut st = b.sample_series[i].state.lock();
                st.pending = st.pending.saturating_sub(1);
                if st.pending_owner == self.id {
                    st.pending_owner = 0;
                }
                dropped += 1;
                dropped_floats.push(i);
                continue;
            }
            b.samples.swap(keep, i);
            b.sample_series.swap(keep, i);
            keep += 1;
        }
        b.samples.truncate(keep);
        b.sample_series.truncate(keep);
        let mut keep = 0;
        for i in 0..b.hists.len() {
            if b.hists[i].t_ms < min_valid {
                let mut st = b.hist_series[i].state.lock();
                st.pending = st.pending.saturating_sub(1);
                if st.pending_owner == self.id {
                    st.pending_owner = 0;
                }
                dropped += 1;
                continue;
            }
            b.hists.swap(keep, i);
            b.hist_series.swap(keep, i);
            keep += 1;
        }
        b.hists.truncate(keep);
        b.hist_series.truncate(keep);
        if !dropped_floats.is_empty() {
            // Positions count floats before each histogram: subtract the dropped ones.
            for h in &mut b.hists {
                h.pos -= dropped_floats.partition_point(|&d| d < h.pos);
            }
        }
        dropped
    }

    fn do_commit(&mut self) -> Result<CommitStats> {
        let head = Arc::clone(&self.head);
        // Held until the samples are applied: see `HeadInner::commit_gate`.
        let _gate = head.commit_gate.read();
        let min_valid = head.min_valid_t.load(Ordering::Acquire);
        let below = self.drop_below_bound(min_valid);
        self.rejected[RejectReason::OutOfBounds as usize] += below;
        let b = &mut self.buf;
        b.wal.clear();
        // Floats and histograms in append order (runs of each), so that replay applies a
        // series' samples in the order this commit does.
        for_each_run(b.samples.len(), &b.hists, |floats, hists| {
            record::encode_samples(&mut b.wal, &b.samples[floats]);
            record::encode_histograms(&mut b.wal, b.hists[hists].iter().map(|x| (x.series, x.st_ms, x.t_ms, &x.h)));
        });
        record::encode_exemplars(&mut b.wal, b.exemplars.iter().map(|(r, e)| (*r, e)));
        record::encode_metadata(&mut b.wal, b.metadata.iter().map(|(n, m)| (n.as_str(), m)));
        if let Err(e) = head.wal.commit(&b.wal) {
            self.release_pending();
            return Err(e);
        }

        let mut stats = CommitStats { series_created: self.series_created, ..CommitStats::default() };
        let (mut mint, mut maxt) = (i64::MAX, i64::MIN);
        let mut chunks_cut = 0u64;
        let mut overtaken = 0u64;
        let id = self.id;
        let b = &self.buf;

        // Apply in append order: runs of floats (holding a series' lock across its
        // consecutive samples) and runs of histograms.
        for_each_run(b.samples.len(), &b.hists, |floats, hists| {
            let mut i = floats.start;
            while i < floats.end {
                let s = &b.sample_series[i];
                let mut st = s.state.lock();
                while i < floats.end && Arc::ptr_eq(&b.sample_series[i], s) {
                    let smp = b.samples[i];
                    st.pending = st.pending.saturating_sub(1);
                    match st.check_float(smp.t_ms, smp.v) {
                        Ok(true) => {
                            chunks_cut += st.append_float(s.id, smp.st_ms, smp.t_ms, smp.v, &head.cut, &head.chunks);
                            stats.samples += 1;
                            mint = mint.min(smp.t_ms);
                            maxt = maxt.max(smp.t_ms);
                        }
                        Ok(false) => {}
                        Err(_) => overtaken += 1,
                    }
                    i += 1;
                }
                if st.pending_owner == id {
                    st.pending_owner = 0;
                }
            }
            for k in hists {
                let BufferedHistogram { st_ms, t_ms: t, h, .. } = &b.hists[k];
                let s = &b.hist_series[k];
                let mut st = s.state.lock();
                st.pending = st.pending.saturating_sub(1);
                if st.pending_owner == id {
                    st.pending_owner = 0;
                }
                match st.check_histogram(*t, h) {
                    Ok(true) => {
                        chunks_cut += st.append_histogram(s.id, *st_ms, *t, h, &head.cut, &head.chunks);
                        stats.histograms += 1;
                        mint = mint.min(*t);
                        maxt = maxt.max(*t);
                    }
                    Ok(false) => {}
                    Err(_) => overtaken += 1,
                }
            }
        });
        if !b.exemplars.is_empty() {
            let mut ex = head.exemplars.lock();
            for (r, e) in &b.exemplars {
                if ex.add(r.0 as u32, e.clone()) {
                    stats.exemplars += 1;
                }
            }
        }
        if !b.metadata.is_empty() {
            let mut md = head.metadata.write();
            for (n, m) in &b.metadata {
                match md.get_mut(n) {
                    Some(old) => old.clone_from(m),
                    None => {
                        md.insert(n.clone(), m.clone());
                    }
                }
            }
        }
        head.widen_bounds(mint, maxt);
        self.rejected[RejectReason::OutOfOrder as usize] += overtaken;
        StorageMetrics::add(&head.metrics.head_chunks_created, chunks_cut);
        StorageMetrics::add(&head.metrics.head_chunks, chunks_cut);
        self.publish(&stats);
        Ok(stats)
    }
}

/// Splits a transaction into alternating runs in append order: `f(float_range, hist_range)`
/// where the floats come first, then the histograms appended after them (either may be empty).
fn for_each_run(
    n_floats: usize,
    hists: &[BufferedHistogram],
    mut f: impl FnMut(std::ops::Range<usize>, std::ops::Range<usize>),
) {
    let (mut fi, mut hi) = (0, 0);
    while fi < n_floats || hi < hists.len() {
        let next = hists.get(hi).map_or(n_floats, |h| h.pos.min(n_floats));
        let floats = fi..next.max(fi);
        fi = floats.end;
        let start = hi;
        while hi < hists.len() && hists[hi].pos <= fi {
            hi += 1;
        }
        f(floats, start..hi);
    }
}

impl Appender for HeadAppender {
    fn series_ref(&mut self, labels: &Labels) -> Result<SeriesRef, AppendError> {
        match self.head.get_or_create(labels) {
            Ok((s, created)) => {
                self.series_created += u64::from(created);
                Ok(SeriesRef(u64::from(s.id)))
            }
            Err(e) => Err(self.reject(e)),
        }
    }

    fn append(&mut self, series: SeriesRef, t_ms: i64, v: f64) -> Result<(), AppendError> {
        self.append_st(series, 0, t_ms, v)
    }

    /// Stores the start timestamp with the sample: in the WAL (record type 7) and in the
    /// series' chunks ([`crate::chunkenc::Encoding::FloatSt`], opened at the series' first
    /// sample with a start timestamp).
    fn append_st(&mut self, series: SeriesRef, st_ms: i64, t_ms: i64, v: f64) -> Result<(), AppendError> {
        if let Err(e) = self.check_bounds(t_ms) {
            return Err(self.reject(e));
        }
        let Some(s) = self.head.series_by_ref(series) else {
            return Err(self.reject(AppendError::UnknownSeriesRef(series)));
        };
        self.append_to(s, series, st_ms, t_ms, v)
    }

    /// As the trait's default (look up, then append), but the series found by labels is used
    /// directly: no second lookup by ref (a by-id shard lock and a reference count round trip
    /// per sample).
    fn append_labels(&mut self, labels: &Labels, t_ms: i64, v: f64) -> Result<SeriesRef, AppendError> {
        let s = match self.head.get_or_create(labels) {
            Ok((s, created)) => {
                self.series_created += u64::from(created);
                s
            }
            Err(e) => return Err(self.reject(e)),
        };
        let series = SeriesRef(u64::from(s.id));
        if let Err(e) = self.check_bounds(t_ms) {
            return Err(self.reject(e));
        }
        self.append_to(s, series, 0, t_ms, v).map(|()| series)
    }

    fn append_histogram(&mut self, series: SeriesRef, t_ms: i64, h: &FloatHistogram) -> Result<(), AppendError> {
        self.append_histogram_st(series, 0, t_ms, h)
    }

    /// As [`HeadAppender::append_st`], for a histogram ([`crate::chunkenc::Encoding::HistogramSt`],
    /// WAL record type 8).
    fn append_histogram_st(&mut self, series: SeriesRef, st_ms: i64, t_ms: i64, h: &FloatHistogram) -> Result<(), AppendError> {
        if let Err(msg) = h.validate() {
            return Err(self.reject(AppendError::InvalidHistogram(msg)));
        }
        if let Err(e) = self.check_bounds(t_ms) {
            return Err(self.reject(e));
        }
        let Some(s) = self.head.series_by_ref(series) else {
            return Err(self.reject(AppendError::UnknownSeriesRef(series)));
        };
        match self.accept(&s, t_ms, Kind::Histogram, 0, Some(h)) {
            Ok(true) => {
                let pos = self.buf.samples.len();
                self.buf.hists.push(BufferedHistogram { series, st_ms, t_ms, h: h.clone(), pos });
                self.buf.hist_series.push(s);
                Ok(())
            }
            Ok(false) => Ok(()),
            Err(AppendError::DuplicateTimestamp { .. })
                if self
                    .buf
                    .hists
                    .iter()
                    .rev()
                    .find(|x| x.series == series)
                    .is_some_and(|x| x.t_ms == t_ms && histograms_identical(&x.h, h)) =>
            {
                Ok(()) // an exact repeat of this transaction's own newest histogram
            }
            Err(e) => Err(self.reject(e)),
        }
    }

    fn append_exemplar(&mut self, series: SeriesRef, exemplar: &Exemplar) -> Result<(), AppendError> {
        let Some(s) = self.head.series_by_ref(series) else {
            return Err(self.reject(AppendError::UnknownSeriesRef(series)));
        };
        // Against the committed newest exemplar, then this transaction's own.
        let check = {
            let store = self.head.exemplars.lock();
            if store.capacity() == 0 {
                return Ok(()); // exemplar storage disabled
            }
            store.check(s.id, exemplar)
        };
        match check {
            ExemplarCheck::OutOfOrder => {
                return Err(self.reject(AppendError::ExemplarOutOfOrder { t_ms: exemplar.t_ms }));
            }
            ExemplarCheck::Duplicate => return Ok(()),
            ExemplarCheck::Add => {}
        }
        if let Some((_, last)) = self.buf.exemplars.iter().rev().find(|(r, _)| *r == series) {
            if exemplar.t_ms < last.t_ms {
                return Err(self.reject(AppendError::ExemplarOutOfOrder { t_ms: exemplar.t_ms }));
            }
            if exemplar.t_ms == last.t_ms && exemplar.value.to_bits() == last.value.to_bits() && exemplar.labels == last.labels {
                return Ok(());
            }
        }
        self.buf.exemplars.push((series, exemplar.clone()));
        Ok(())
    }

    fn update_metadata(&mut self, metric: &str, metadata: &Metadata) {
        if self.head.metadata.read().get(metric) == Some(metadata) {
            return; // unchanged: nothing to log
        }
        self.buf.metadata.push((metric.to_string(), metadata.clone()));
    }

    fn commit(mut self) -> Result<CommitStats> {
        let r = self.do_commit();
        if r.is_err() {
            let stats = CommitStats::default();
            self.publish(&stats);
        }
        self.finish();
        r
    }

    fn rollback(mut self) {
        self.release_pending();
        self.publish(&CommitStats::default());
        self.finish();
    }
}

impl Drop for HeadAppender {
    fn drop(&mut self) {
        if !self.done {
            self.release_pending();
            self.publish(&CommitStats::default());
            self.finish();
        }
    }
}
