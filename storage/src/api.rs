//! The two interfaces everything else builds on: [`Appender`] (write path) and [`Querier`]
//! (read path). Ingest writes through an appender transaction; the PromQL engine and the usage
//! analytics read through a querier. Both are small on purpose.
//!
//! Time is always `i64` milliseconds since the Unix epoch (`t_ms`); time ranges are inclusive
//! `[mint_ms, maxt_ms]`.

use crate::error::{AppendError, Result};
use crate::histogram::FloatHistogram;
use crate::labels::Labels;
use crate::matcher::Matcher;
use crate::series::Series;

/// The bit pattern of Prometheus' staleness marker, a signalling-free NaN
/// (`model/value.StaleNaN`). Stored and read back bit-for-bit; compare bits, never values.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// The staleness marker as an `f64`.
pub fn stale_nan() -> f64 {
    f64::from_bits(STALE_NAN_BITS)
}

/// True if `v` is exactly the staleness marker (any other NaN is an ordinary value).
#[inline]
pub fn is_stale_nan(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}

/// A stable reference to a series in the head, valid for the life of the data directory (it is
/// persisted in the WAL). Opaque to callers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeriesRef(pub u64);

/// An exemplar attached to a sample: a trace id or similar in `labels`, the observed value and
/// when it was observed.
#[derive(Clone, Debug, PartialEq)]
pub struct Exemplar {
    /// Exemplar labels, e.g. `trace_id`. Limited to 128 UTF-8 characters in total by the
    /// OpenMetrics spec; enforced by ingest.
    pub labels: Labels,
    /// Observed value.
    pub value: f64,
    /// Observation time, ms since the epoch.
    pub t_ms: i64,
}

/// A metric family's type, as remote-write metadata carries it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum MetricType {
    /// Unknown or untyped.
    #[default]
    Unknown,
    /// Monotonic counter.
    Counter,
    /// Gauge.
    Gauge,
    /// Classic or native histogram.
    Histogram,
    /// Gauge histogram.
    GaugeHistogram,
    /// Summary.
    Summary,
    /// Info metric.
    Info,
    /// State set.
    StateSet,
}

impl MetricType {
    /// The lower-case name Prometheus' `/api/v1/metadata` uses (`"counter"`, `"unknown"`...).
    pub fn as_str(self) -> &'static str {
        match self {
            MetricType::Unknown => "unknown",
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
            MetricType::Histogram => "histogram",
            MetricType::GaugeHistogram => "gaugehistogram",
            MetricType::Summary => "summary",
            MetricType::Info => "info",
            MetricType::StateSet => "stateset",
        }
    }
}

/// Metadata of a metric family, kept per metric name.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Metadata {
    /// Type.
    pub metric_type: MetricType,
    /// Help text.
    pub help: String,
    /// Unit, e.g. `seconds`; may be empty.
    pub unit: String,
}

/// What one committed transaction wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CommitStats {
    /// Float samples written (stale markers included).
    pub samples: u64,
    /// Native histogram samples written.
    pub histograms: u64,
    /// Exemplars written.
    pub exemplars: u64,
    /// Series created by this transaction.
    pub series_created: u64,
}

/// A write transaction. Samples become visible to queries and durable together, at
/// [`Appender::commit`]; nothing is visible or durable before.
///
/// Each `append*` call validates its sample at once (order rules, bounds) and returns the
/// reason it is refused, without failing the transaction: the caller may go on and commit the
/// valid part, as a remote-write receiver must. An exact duplicate (same timestamp, same value
/// bits as the series' newest sample) is accepted and dropped silently.
///
/// Order rules (Prometheus' defaults): per series, timestamps must not decrease; equal timestamp
/// with a different value is [`AppendError::DuplicateTimestamp`]; older than the newest is
/// [`AppendError::OutOfOrder`]; older than the head's lower bound is
/// [`AppendError::OutOfBounds`].
pub trait Appender {
    /// Resolves a label set to its series, creating the series if needed (the creation becomes
    /// durable with the transaction). `labels` must be canonical (see [`Labels`]) and carry a
    /// non-empty `__name__`.
    ///
    /// # Errors
    /// [`AppendError::InvalidLabels`], or a series limit when a new series would exceed it.
    fn series_ref(&mut self, labels: &Labels) -> Result<SeriesRef, AppendError>;

    /// Appends a float sample to a resolved series. `v` may be the staleness marker.
    ///
    /// # Errors
    /// An order or bounds rule, or [`AppendError::UnknownSeriesRef`].
    fn append(&mut self, series: SeriesRef, t_ms: i64, v: f64) -> Result<(), AppendError>;

    /// Appends a native histogram sample to a resolved series.
    ///
    /// # Errors
    /// As [`Appender::append`], plus [`AppendError::InvalidHistogram`].
    fn append_histogram(&mut self, series: SeriesRef, t_ms: i64, h: &FloatHistogram) -> Result<(), AppendError>;

    /// Appends a float sample with its start timestamp `st_ms` (ms since the epoch; 0 means
    /// none/unknown, the Prometheus convention; [`Appender::append`] is this with 0). The
    /// start timestamp is the time from which the sample's value accumulates: constant for a
    /// cumulative counter until it resets, the previous sample's timestamp for a delta
    /// series (OpenTelemetry's start time, remote-write 2.0's created timestamp). PromQL's
    /// `rate`, `increase`, `irate` and `resets` read it to detect counter resets, and
    /// `start_timestamp()` returns it.
    ///
    /// The default forwards `st_ms == 0` to [`Appender::append`] and refuses any other start
    /// timestamp with [`AppendError::StartTimestampUnsupported`] rather than dropping it: an appender that
    /// stores samples overrides it (the head does; test doubles may not).
    ///
    /// # Errors
    /// As [`Appender::append`].
    fn append_st(&mut self, series: SeriesRef, st_ms: i64, t_ms: i64, v: f64) -> Result<(), AppendError> {
        if st_ms == 0 {
            self.append(series, t_ms, v)
        } else {
            Err(AppendError::StartTimestampUnsupported { t_ms })
        }
    }

    /// As [`Appender::append_st`], for a native histogram sample.
    ///
    /// # Errors
    /// As [`Appender::append_histogram`]; the default refuses a non-zero `st_ms` as
    /// [`Appender::append_st`]'s does.
    fn append_histogram_st(&mut self, series: SeriesRef, st_ms: i64, t_ms: i64, h: &FloatHistogram) -> Result<(), AppendError> {
        if st_ms == 0 {
            self.append_histogram(series, t_ms, h)
        } else {
            Err(AppendError::StartTimestampUnsupported { t_ms })
        }
    }

    /// Attaches an exemplar to a resolved series.
    ///
    /// # Errors
    /// [`AppendError::ExemplarOutOfOrder`] or [`AppendError::UnknownSeriesRef`].
    fn append_exemplar(&mut self, series: SeriesRef, exemplar: &Exemplar) -> Result<(), AppendError>;

    /// Records metadata for a metric name; the newest write wins.
    fn update_metadata(&mut self, metric: &str, metadata: &Metadata);

    /// Convenience: [`Appender::series_ref`] then [`Appender::append`].
    ///
    /// # Errors
    /// As those two.
    fn append_labels(&mut self, labels: &Labels, t_ms: i64, v: f64) -> Result<SeriesRef, AppendError> {
        let r = self.series_ref(labels)?;
        self.append(r, t_ms, v)?;
        Ok(r)
    }

    /// Writes the transaction to the WAL (synced per the configured fsync policy) and then makes
    /// it visible. When this returns `Ok`, the data survives a crash of the process.
    ///
    /// # Errors
    /// [`crate::StorageError`] if the WAL write failed; nothing of the transaction is then
    /// visible, and the caller should report a retryable (5xx) failure.
    fn commit(self) -> Result<CommitStats>
    where
        Self: Sized;

    /// Drops the transaction. Series it created stay (empty) and are garbage-collected later.
    fn rollback(self)
    where
        Self: Sized;
}

/// What the caller will read of a selection's series, so that a querier may skip work:
/// Prometheus' `storage.SelectHints` (its `Grouping` with `By = true`). Hints are advisory:
/// a querier may ignore any of them and answer exactly as [`Querier::select`] does.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SelectHints {
    /// `Some(names)`: the caller reads no label of a series but these (an aggregation's
    /// `by (...)` labels, plus whatever else it needs, e.g. `__name__` for annotations), so a
    /// querier may return each series' labels restricted to the names listed (a series
    /// lacking a listed label still lacks it). Everything else is as for an unhinted select:
    /// one entry per stored series, in the order of the full label sets, with the same
    /// chunks. Two entries may therefore carry equal labels: a caller that merges or
    /// deduplicates series by labels (a merge over several sources, a union of selections)
    /// must not pass this hint down.
    pub grouping: Option<Vec<String>>,
}

/// Read access to a consistent view of the data (head and blocks as of when it was opened).
/// Object-safe, so the query engine can hold `Arc<dyn Querier>`.
pub trait Querier: Send + Sync {
    /// The series matching all `matchers` that have data in `[mint_ms, maxt_ms]`, sorted by
    /// labels ([`Labels`] ordering), each with its chunks overlapping the range. A series'
    /// iterator yields only samples inside the range.
    ///
    /// With no matchers the result is empty (Prometheus requires at least one matcher that
    /// does not match the empty string; the caller enforces that).
    ///
    /// # Errors
    /// [`crate::StorageError`] on I/O failure or corruption.
    fn select(&self, matchers: &[Matcher], mint_ms: i64, maxt_ms: i64) -> Result<Vec<Series>>;

    /// [`Querier::select`] with what the caller will read of the series ([`SelectHints`]),
    /// which an implementation may use to skip work, e.g. building the label strings a
    /// grouping does not read. The default ignores the hints.
    ///
    /// # Errors
    /// As [`Querier::select`].
    fn select_with_hints(&self, matchers: &[Matcher], mint_ms: i64, maxt_ms: i64, hints: &SelectHints) -> Result<Vec<Series>> {
        let _ = hints;
        self.select(matchers, mint_ms, maxt_ms)
    }

    /// Label names present on series that match `matchers` (all series when empty) with data in
    /// `[mint_ms, maxt_ms]`; sorted, unique.
    ///
    /// # Errors
    /// [`crate::StorageError`] on I/O failure or corruption.
    fn label_names(&self, matchers: &[Matcher], mint_ms: i64, maxt_ms: i64) -> Result<Vec<String>>;

    /// Values of label `name` on series that match `matchers` (all series when empty) with data
    /// in `[mint_ms, maxt_ms]`; sorted, unique, never empty strings.
    ///
    /// # Errors
    /// [`crate::StorageError`] on I/O failure or corruption.
    fn label_values(&self, name: &str, matchers: &[Matcher], mint_ms: i64, maxt_ms: i64) -> Result<Vec<String>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Implements only the required methods, so the start-timestamp methods are the defaults.
    #[derive(Default)]
    struct Minimal {
        floats: Vec<(i64, f64)>,
        hists: Vec<i64>,
    }

    impl Appender for Minimal {
        fn series_ref(&mut self, _labels: &Labels) -> Result<SeriesRef, AppendError> {
            Ok(SeriesRef(0))
        }
        fn append(&mut self, _series: SeriesRef, t_ms: i64, v: f64) -> Result<(), AppendError> {
            self.floats.push((t_ms, v));
            Ok(())
        }
        fn append_histogram(&mut self, _series: SeriesRef, t_ms: i64, _h: &FloatHistogram) -> Result<(), AppendError> {
            self.hists.push(t_ms);
            Ok(())
        }
        fn append_exemplar(&mut self, _series: SeriesRef, _exemplar: &Exemplar) -> Result<(), AppendError> {
            Ok(())
        }
        fn update_metadata(&mut self, _metric: &str, _metadata: &Metadata) {}
        fn commit(self) -> Result<CommitStats> {
            Ok(CommitStats::default())
        }
        fn rollback(self) {}
    }

    #[test]
    fn default_start_timestamp_methods_forward_zero_and_refuse_the_rest() {
        let mut app = Minimal::default();
        let h = FloatHistogram::default();
        assert_eq!(app.append_st(SeriesRef(0), 0, 10, 1.5), Ok(()));
        assert_eq!(app.append_st(SeriesRef(0), 5, 20, 2.5), Err(AppendError::StartTimestampUnsupported { t_ms: 20 }));
        assert_eq!(app.append_histogram_st(SeriesRef(0), 0, 30, &h), Ok(()));
        assert_eq!(
            app.append_histogram_st(SeriesRef(0), 7, 40, &h),
            Err(AppendError::StartTimestampUnsupported { t_ms: 40 })
        );
        // Refused samples are not written.
        assert_eq!(app.floats, vec![(10, 1.5)]);
        assert_eq!(app.hists, vec![30]);
        assert_eq!(AppendError::StartTimestampUnsupported { t_ms: 1 }.reason(), "start_timestamp_unsupported");
    }
}
