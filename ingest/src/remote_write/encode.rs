//! An encoder from plain Rust data to snappy-compressed remote-write 1.0 and 2.0 bodies, for
//! tests, fuzz seeds and the benchmark workload generator. It builds the prost messages of
//! [`super::proto`] (the reference encoding) and compresses them with snappy's block format.
//!
//! Labels are sent exactly as given (order, duplicates, empty names), so invalid requests can
//! be built too. Integer histograms are given with absolute bucket counts and delta-encoded
//! here, as senders do.

use std::collections::HashMap;

use prost::Message;
use storage::histogram::{CounterResetHint, FloatHistogram, Span};
use storage::{Metadata, MetricType};

use super::proto::{v1, v2};

/// A whole request: series, and (1.0 only) metric-family metadata.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WriteRequestData {
    /// The series, in wire order.
    pub series: Vec<SeriesData>,
    /// 1.0 `MetricMetadata` entries; ignored by [`encode_v2`] (2.0 carries metadata per series).
    pub metadata: Vec<(String, Metadata)>,
}

/// One series with its data.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SeriesData {
    /// `(name, value)` pairs as sent.
    pub labels: Vec<(String, String)>,
    /// Float samples `(t_ms, value)`.
    pub samples: Vec<(i64, f64)>,
    /// Native histogram samples.
    pub histograms: Vec<HistogramData>,
    /// Exemplars.
    pub exemplars: Vec<ExemplarData>,
    /// 2.0 per-series metadata; ignored by [`encode_v1`].
    pub metadata: Option<Metadata>,
    /// 2.0 created timestamp, ms since the epoch (0 = unset); ignored by [`encode_v1`].
    pub created_t_ms: i64,
}

impl SeriesData {
    /// A series with these labels and no data yet.
    pub fn new<N: Into<String>, V: Into<String>>(labels: impl IntoIterator<Item = (N, V)>) -> Self {
        SeriesData { labels: labels.into_iter().map(|(n, v)| (n.into(), v.into())).collect(), ..Default::default() }
    }

    /// Adds a float sample.
    pub fn sample(mut self, t_ms: i64, v: f64) -> Self {
        self.samples.push((t_ms, v));
        self
    }

    /// Adds a native histogram sample.
    pub fn histogram(mut self, t_ms: i64, value: HistogramValue) -> Self {
        self.histograms.push(HistogramData { t_ms, value });
        self
    }

    /// Adds an exemplar.
    pub fn exemplar<N: Into<String>, V: Into<String>>(mut self, labels: impl IntoIterator<Item = (N, V)>, value: f64, t_ms: i64) -> Self {
        let labels = labels.into_iter().map(|(n, v)| (n.into(), v.into())).collect();
        self.exemplars.push(ExemplarData { labels, value, t_ms });
        self
    }

    /// Sets the 2.0 metadata.
    pub fn metadata(mut self, md: Metadata) -> Self {
        self.metadata = Some(md);
        self
    }

    /// Sets the 2.0 created timestamp, ms.
    pub fn created(mut self, t_ms: i64) -> Self {
        self.created_t_ms = t_ms;
        self
    }
}

/// A native histogram sample at `t_ms`.
#[derive(Clone, Debug, PartialEq)]
pub struct HistogramData {
    /// Timestamp, ms since the epoch.
    pub t_ms: i64,
    /// The value.
    pub value: HistogramValue,
}

/// An integer or float native histogram.
#[derive(Clone, Debug, PartialEq)]
pub enum HistogramValue {
    /// Integer counts, sent as `count_int` and `*_deltas`.
    Int(IntHistogram),
    /// Float counts, sent as `count_float` and `*_counts`.
    Float(FloatHistogram),
}

/// An integer native histogram with **absolute** bucket counts (the encoder delta-encodes).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct IntHistogram {
    /// Counter-reset hint.
    pub counter_reset_hint: CounterResetHint,
    /// Schema (-4..=8, or -53 for custom bounds).
    pub schema: i32,
    /// Zero bucket width.
    pub zero_threshold: f64,
    /// Observations in the zero bucket.
    pub zero_count: u64,
    /// Total observations.
    pub count: u64,
    /// Sum of observations.
    pub sum: f64,
    /// Positive bucket spans.
    pub positive_spans: Vec<Span>,
    /// Absolute positive bucket counts.
    pub positive_buckets: Vec<u64>,
    /// Negative bucket spans.
    pub negative_spans: Vec<Span>,
    /// Absolute negative bucket counts.
    pub negative_buckets: Vec<u64>,
    /// Custom bucket upper bounds (schema -53).
    pub custom_values: Vec<f64>,
}

/// An exemplar.
#[derive(Clone, Debug, PartialEq)]
pub struct ExemplarData {
    /// `(name, value)` pairs as sent.
    pub labels: Vec<(String, String)>,
    /// Observed value.
    pub value: f64,
    /// Timestamp, ms since the epoch.
    pub t_ms: i64,
}

fn deltas(abs: &[u64]) -> Vec<i64> {
    let mut prev = 0i64;
    abs.iter()
        .map(|&c| {
            let c = c as i64;
            let d = c.wrapping_sub(prev);
            prev = c;
            d
        })
        .collect()
}

fn hint(h: CounterResetHint) -> i32 {
    h as u8 as i32
}

fn metric_type(t: MetricType) -> i32 {
    match t {
        MetricType::Unknown => 0,
        MetricType::Counter => 1,
        MetricType::Gauge => 2,
        MetricType::Histogram => 3,
        MetricType::GaugeHistogram => 4,
        MetricType::Summary => 5,
        MetricType::Info => 6,
        MetricType::StateSet => 7,
    }
}

/// Builds the prost histogram of either version (the two messages are field-for-field equal).
macro_rules! proto_histogram {
    ($m:ident, $h:expr) => {{
        let h: &HistogramData = $h;
        let span = |s: &Span| $m::BucketSpan { offset: s.offset, length: s.length };
        match &h.value {
            HistogramValue::Int(x) => $m::Histogram {
                count: Some($m::histogram::Count::CountInt(x.count)),
                sum: x.sum,
                schema: x.schema,
                zero_threshold: x.zero_threshold,
                zero_count: Some($m::histogram::ZeroCount::ZeroCountInt(x.zero_count)),
                negative_spans: x.negative_spans.iter().map(span).collect(),
                negative_deltas: deltas(&x.negative_buckets),
                negative_counts: vec![],
                positive_spans: x.positive_spans.iter().map(span).collect(),
                positive_deltas: deltas(&x.positive_buckets),
                positive_counts: vec![],
                reset_hint: hint(x.counter_reset_hint),
                timestamp: h.t_ms,
                custom_values: x.custom_values.clone(),
            },
            HistogramValue::Float(x) => $m::Histogram {
                count: Some($m::histogram::Count::CountFloat(x.count)),
                sum: x.sum,
                schema: x.schema,
                zero_threshold: x.zero_threshold,
                zero_count: Some($m::histogram::ZeroCount::ZeroCountFloat(x.zero_count)),
                negative_spans: x.negative_spans.iter().map(span).collect(),
                negative_deltas: vec![],
                negative_counts: x.negative_buckets.clone(),
                positive_spans: x.positive_spans.iter().map(span).collect(),
                positive_deltas: vec![],
                positive_counts: x.positive_buckets.clone(),
                reset_hint: hint(x.counter_reset_hint),
                timestamp: h.t_ms,
                custom_values: x.custom_values.clone(),
            },
        }
    }};
}

/// The 1.0 `WriteRequest` for `req`.
pub fn build_v1(req: &WriteRequestData) -> v1::WriteRequest {
    let label = |(n, v): &(String, String)| v1::Label { name: n.clone(), value: v.clone() };
    v1::WriteRequest {
        timeseries: req
            .series
            .iter()
            .map(|s| v1::TimeSeries {
                labels: s.labels.iter().map(label).collect(),
                samples: s.samples.iter().map(|&(t, v)| v1::Sample { value: v, timestamp: t }).collect(),
                exemplars: s
                    .exemplars
                    .iter()
                    .map(|e| v1::Exemplar { labels: e.labels.iter().map(label).collect(), value: e.value, timestamp: e.t_ms })
                    .collect(),
                histograms: s.histograms.iter().map(|h| proto_histogram!(v1, h)).collect(),
            })
            .collect(),
        metadata: req
            .metadata
            .iter()
            .map(|(name, md)| v1::MetricMetadata {
                r#type: metric_type(md.metric_type),
                metric_family_name: name.clone(),
                help: md.help.clone(),
                unit: md.unit.clone(),
            })
            .collect(),
    }
}

/// Interns strings into a 2.0 symbols table that starts with "" (as the spec requires).
#[derive(Default)]
struct Symbols {
    table: Vec<String>,
    index: HashMap<String, u32>,
}

impl Symbols {
    fn new() -> Self {
        let mut s = Symbols::default();
        s.add("");
        s
    }

    fn add(&mut self, v: &str) -> u32 {
        if let Some(&i) = self.index.get(v) {
            return i;
        }
        let i = self.table.len() as u32;
        self.table.push(v.to_string());
        self.index.insert(v.to_string(), i);
        i
    }

    fn refs(&mut self, labels: &[(String, String)]) -> Vec<u32> {
        labels.iter().flat_map(|(n, v)| [self.add(n), self.add(v)]).collect()
    }
}

/// The 2.0 `Request` for `req` (symbols interned in first-use order after "").
pub fn build_v2(req: &WriteRequestData) -> v2::Request {
    let mut sym = Symbols::new();
    let timeseries = req
        .series
        .iter()
        .map(|s| v2::TimeSeries {
            labels_refs: sym.refs(&s.labels),
            samples: s.samples.iter().map(|&(t, v)| v2::Sample { value: v, timestamp: t }).collect(),
            histograms: s.histograms.iter().map(|h| proto_histogram!(v2, h)).collect(),
            exemplars: s
                .exemplars
                .iter()
                .map(|e| v2::Exemplar { labels_refs: sym.refs(&e.labels), value: e.value, timestamp: e.t_ms })
                .collect(),
            metadata: s.metadata.as_ref().map(|md| v2::Metadata {
                r#type: metric_type(md.metric_type),
                help_ref: sym.add(&md.help),
                unit_ref: sym.add(&md.unit),
            }),
            created_timestamp: s.created_t_ms,
        })
        .collect();
    v2::Request { symbols: sym.table, timeseries }
}

/// Snappy block-format compression, as remote-write senders do.
///
/// # Panics
/// If `raw` is larger than snappy's block limit (2^32 - 1 bytes); this encoder serves tests
/// and benchmarks with data its caller built.
pub fn compress(raw: &[u8]) -> Vec<u8> {
    snap::raw::Encoder::new().compress_vec(raw).expect("remote-write body within snappy's 4 GiB block limit")
}

/// A snappy-compressed 1.0 body. Panics as [`compress`].
pub fn encode_v1(req: &WriteRequestData) -> Vec<u8> {
    compress(&build_v1(req).encode_to_vec())
}

/// A snappy-compressed 2.0 body. Panics as [`compress`].
pub fn encode_v2(req: &WriteRequestData) -> Vec<u8> {
    compress(&build_v2(req).encode_to_vec())
}
