//! Result values: what a query returns (Prometheus `promql/value.go`).
//!
//! Times are `i64` ms since the epoch. A sample holds either a float or a native histogram;
//! histograms are shared (`Arc`) because the same histogram is often carried unchanged from a
//! selector to the result.

use std::sync::Arc;

use storage::{FloatHistogram, Labels};

/// One float point of a series.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FPoint {
    /// Timestamp, ms.
    pub t: i64,
    /// Value.
    pub f: f64,
}

/// One histogram point of a series.
#[derive(Clone, Debug, PartialEq)]
pub struct HPoint {
    /// Timestamp, ms.
    pub t: i64,
    /// Value.
    pub h: Arc<FloatHistogram>,
}

/// One sample of an instant vector: a label set with a float or a histogram at one time.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// The series' labels.
    pub metric: Labels,
    /// Timestamp, ms (the evaluation time for computed samples).
    pub t: i64,
    /// The float value; ignored when `h` is set.
    pub f: f64,
    /// The histogram value, when the sample is a histogram.
    pub h: Option<Arc<FloatHistogram>>,
    /// Delayed `__name__` removal: the name is removed when the result is finished
    /// (Prometheus' `EnableDelayedNameRemoval`).
    pub drop_name: bool,
}

/// A series of a range result.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Series {
    /// The series' labels.
    pub metric: Labels,
    /// Float points in time order.
    pub floats: Vec<FPoint>,
    /// Histogram points in time order.
    pub histograms: Vec<HPoint>,
    /// Delayed `__name__` removal (see [`Sample::drop_name`]).
    pub drop_name: bool,
}

impl Series {
    /// Number of points (floats and histograms).
    pub fn len(&self) -> usize {
        self.floats.len() + self.histograms.len()
    }

    /// True when the series has no points.
    pub fn is_empty(&self) -> bool {
        self.floats.is_empty() && self.histograms.is_empty()
    }
}

/// An instant vector: samples at one time, one per label set.
pub type Vector = Vec<Sample>;

/// A range vector or range-query result: series sorted by labels.
pub type Matrix = Vec<Series>;

/// The value of a query.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// Instant vector (instant query).
    Vector(Vector),
    /// Range vector (instant query of a matrix selector) or any range query.
    Matrix(Matrix),
    /// A scalar `(t_ms, value)`.
    Scalar(i64, f64),
    /// A string `(t_ms, value)`.
    String(i64, String),
}

impl Value {
    /// The Prometheus API `resultType`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Vector(_) => "vector",
            Value::Matrix(_) => "matrix",
            Value::Scalar(..) => "scalar",
            Value::String(..) => "string",
        }
    }
}

/// Warnings and infos that accompany a result (Prometheus `util/annotations`). Texts are as
/// the API shows them, e.g. `PromQL info: metric might not be a counter, name does not end in
/// _total/_sum/_count/_bucket: "foo" (1:6)`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Annotations {
    /// `PromQL warning: ...` texts, unique, in first-seen order.
    pub warnings: Vec<String>,
    /// `PromQL info: ...` texts, unique, in first-seen order.
    pub infos: Vec<String>,
}

impl Annotations {
    /// Adds a warning unless already present.
    pub fn warn(&mut self, s: String) {
        if !self.warnings.contains(&s) {
            self.warnings.push(s);
        }
    }

    /// Adds an info unless already present.
    pub fn info(&mut self, s: String) {
        if !self.infos.contains(&s) {
            self.infos.push(s);
        }
    }

    /// Merges another set into this one.
    pub fn merge(&mut self, other: Annotations) {
        for w in other.warnings {
            self.warn(w);
        }
        for i in other.infos {
            self.info(i);
        }
    }
}

/// A query's value and the annotations raised while computing it.
#[derive(Clone, Debug, PartialEq)]
pub struct QueryResult {
    /// The value.
    pub value: Value,
    /// Warnings and infos.
    pub annotations: Annotations,
    /// Samples the query touched (loaded from storage or produced), Prometheus'
    /// `stats.samples.totalQueryableSamples` analogue.
    pub total_samples: u64,
    /// Series selected from storage, summed over all selectors of the query (a series
    /// selected by two selectors counts twice), Prometheus' series-touched analogue.
    pub total_series: u64,
}
