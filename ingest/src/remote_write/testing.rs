//! Appenders for tests, fuzz targets and benchmarks: [`NoopAppender`] accepts everything and
//! counts; [`RecordingAppender`] records every call and enforces Prometheus' per-series order
//! rules (the storage contract of `storage::Appender`), so the ingest path can be checked
//! without a real head.

use std::collections::HashMap;

use storage::{AppendError, Appender, CommitStats, Exemplar, FloatHistogram, Labels, Metadata, SeriesRef};

/// Accepts every call and only counts them. `series_ref` always returns ref 0.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NoopAppender {
    /// Series resolved.
    pub series: u64,
    /// Float samples appended.
    pub samples: u64,
    /// Histogram samples appended.
    pub histograms: u64,
    /// Exemplars appended.
    pub exemplars: u64,
    /// Metadata updates.
    pub metadata: u64,
}

impl Appender for NoopAppender {
    fn series_ref(&mut self, _labels: &Labels) -> Result<SeriesRef, AppendError> {
        self.series += 1;
        Ok(SeriesRef(0))
    }
    fn append(&mut self, _series: SeriesRef, _t_ms: i64, _v: f64) -> Result<(), AppendError> {
        self.samples += 1;
        Ok(())
    }
    fn append_histogram(&mut self, _series: SeriesRef, _t_ms: i64, _h: &FloatHistogram) -> Result<(), AppendError> {
        self.histograms += 1;
        Ok(())
    }
    fn append_st(&mut self, series: SeriesRef, _st_ms: i64, t_ms: i64, v: f64) -> Result<(), AppendError> {
        self.append(series, t_ms, v)
    }
    fn append_histogram_st(&mut self, series: SeriesRef, _st_ms: i64, t_ms: i64, h: &FloatHistogram) -> Result<(), AppendError> {
        self.append_histogram(series, t_ms, h)
    }
    fn append_exemplar(&mut self, _series: SeriesRef, _e: &Exemplar) -> Result<(), AppendError> {
        self.exemplars += 1;
        Ok(())
    }
    fn update_metadata(&mut self, _metric: &str, _metadata: &Metadata) {
        self.metadata += 1;
    }
    fn commit(self) -> storage::Result<CommitStats> {
        Ok(CommitStats { samples: self.samples, histograms: self.histograms, exemplars: self.exemplars, series_created: 0 })
    }
    fn rollback(self) {}
}

/// Records every accepted call, in call order, and applies the per-series order rules of the
/// storage contract: a timestamp older than the series' newest is
/// [`AppendError::OutOfOrder`]; the same timestamp with different value bits is
/// [`AppendError::DuplicateTimestamp`]; an exact duplicate is dropped silently. Exemplars older
/// than the series' newest exemplar are [`AppendError::ExemplarOutOfOrder`].
#[derive(Clone, Debug, Default)]
pub struct RecordingAppender {
    /// Series by ref (ref = index).
    pub series: Vec<Labels>,
    index: HashMap<Labels, SeriesRef>,
    /// Newest `(t_ms, value bits)` per series ref.
    newest: HashMap<SeriesRef, (i64, u64)>,
    newest_exemplar: HashMap<SeriesRef, i64>,
    /// Accepted float samples `(series, t_ms, v)`.
    pub samples: Vec<(Labels, i64, f64)>,
    /// The start timestamp (ms, 0 = none) of each entry of `samples`, same index.
    pub sample_sts: Vec<i64>,
    /// Accepted histogram samples.
    pub histograms: Vec<(Labels, i64, FloatHistogram)>,
    /// The start timestamp (ms, 0 = none) of each entry of `histograms`, same index.
    pub histogram_sts: Vec<i64>,
    /// Accepted exemplars.
    pub exemplars: Vec<(Labels, Exemplar)>,
    /// Metadata updates `(metric name, metadata)`.
    pub metadata: Vec<(String, Metadata)>,
    /// When set, creating more series than this fails with [`AppendError::SeriesLimitTotal`].
    pub max_series: Option<usize>,
}

impl RecordingAppender {
    /// An empty recorder without a series limit.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty recorder that refuses to create more than `limit` series.
    pub fn with_max_series(limit: usize) -> Self {
        RecordingAppender { max_series: Some(limit), ..Self::default() }
    }

    fn labels(&self, r: SeriesRef) -> Result<Labels, AppendError> {
        self.series.get(r.0 as usize).cloned().ok_or(AppendError::UnknownSeriesRef(r))
    }

    fn order(&mut self, r: SeriesRef, t_ms: i64, bits: u64) -> Result<bool, AppendError> {
        match self.newest.get(&r) {
            Some(&(nt, _)) if t_ms < nt => Err(AppendError::OutOfOrder { t_ms, newest_t_ms: nt }),
            Some(&(nt, nb)) if t_ms == nt && nb == bits => Ok(false),
            Some(&(nt, _)) if t_ms == nt => Err(AppendError::DuplicateTimestamp { t_ms }),
            _ => {
                self.newest.insert(r, (t_ms, bits));
                Ok(true)
            }
        }
    }
}

/// A bit pattern standing for a histogram in the duplicate check (its count and sum).
fn histogram_bits(h: &FloatHistogram) -> u64 {
    h.count.to_bits() ^ h.sum.to_bits().rotate_left(17)
}

impl Appender for RecordingAppender {
    fn series_ref(&mut self, labels: &Labels) -> Result<SeriesRef, AppendError> {
        if let Some(&r) = self.index.get(labels) {
            return Ok(r);
        }
        if labels.metric_name().is_none_or(str::is_empty) {
            return Err(AppendError::InvalidLabels(storage::labels::LabelsError::MissingMetricName));
        }
        if let Some(limit) = self.max_series {
            if self.series.len() >= limit {
                return Err(AppendError::SeriesLimitTotal { limit });
            }
        }
        let r = SeriesRef(self.series.len() as u64);
        self.series.push(labels.clone());
        self.index.insert(labels.clone(), r);
        Ok(r)
    }

    fn append(&mut self, series: SeriesRef, t_ms: i64, v: f64) -> Result<(), AppendError> {
        self.append_st(series, 0, t_ms, v)
    }

    fn append_histogram(&mut self, series: SeriesRef, t_ms: i64, h: &FloatHistogram) -> Result<(), AppendError> {
        self.append_histogram_st(series, 0, t_ms, h)
    }

    fn append_st(&mut self, series: SeriesRef, st_ms: i64, t_ms: i64, v: f64) -> Result<(), AppendError> {
        let l = self.labels(series)?;
        if self.order(series, t_ms, v.to_bits())? {
            self.samples.push((l, t_ms, v));
            self.sample_sts.push(st_ms);
        }
        Ok(())
    }

    fn append_histogram_st(&mut self, series: SeriesRef, st_ms: i64, t_ms: i64, h: &FloatHistogram) -> Result<(), AppendError> {
        let l = self.labels(series)?;
        h.validate().map_err(AppendError::InvalidHistogram)?;
        if self.order(series, t_ms, histogram_bits(h))? {
            self.histograms.push((l, t_ms, h.clone()));
            self.histogram_sts.push(st_ms);
        }
        Ok(())
    }

    fn append_exemplar(&mut self, series: SeriesRef, e: &Exemplar) -> Result<(), AppendError> {
        let l = self.labels(series)?;
        if let Some(&nt) = self.newest_exemplar.get(&series) {
            if e.t_ms < nt {
                return Err(AppendError::ExemplarOutOfOrder { t_ms: e.t_ms });
            }
        }
        self.newest_exemplar.insert(series, e.t_ms);
        self.exemplars.push((l, e.clone()));
        Ok(())
    }

    fn update_metadata(&mut self, metric: &str, metadata: &Metadata) {
        self.metadata.push((metric.to_string(), metadata.clone()));
    }

    fn commit(self) -> storage::Result<CommitStats> {
        Ok(CommitStats {
            samples: self.samples.len() as u64,
            histograms: self.histograms.len() as u64,
            exemplars: self.exemplars.len() as u64,
            series_created: self.series.len() as u64,
        })
    }

    fn rollback(self) {}
}
