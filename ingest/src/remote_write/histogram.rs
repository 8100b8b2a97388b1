//! Native histogram samples: the wire walker for the `Histogram` message (identical in 1.0
//! and 2.0) and its conversion to [`storage::FloatHistogram`].
//!
//! Integer histograms (`count_int` set, or neither count variant set, as Prometheus'
//! `IsFloatHistogram` decides) carry bucket counts as deltas (`*_deltas`, each bucket relative
//! to the previous one, the first relative to 0); they are summed into absolute counts. Float
//! histograms carry absolute `*_counts`. Validation follows Prometheus
//! `model/histogram` (`Validate`): span offsets, bucket counts against spans, no negative
//! counts, the observation count, and the custom-bucket (schema -53) rules.

use storage::histogram::{CounterResetHint, FloatHistogram, Span, CUSTOM_BUCKETS_SCHEMA};

use super::error::{IngestError, Rejection};
use super::wire::{zigzag32, zigzag64, Reader, FIXED64, LEN, VARINT};

/// A oneof count: integer or float variant, or absent.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub(crate) enum Count {
    /// Neither variant set.
    #[default]
    Absent,
    /// `*_int` variant.
    Int(u64),
    /// `*_float` variant.
    Float(f64),
}

/// One decoded `Histogram` message; its vectors are reused from histogram to histogram.
#[derive(Debug, Default)]
pub(crate) struct HistScratch {
    pub count: Count,
    pub sum: f64,
    pub schema: i32,
    pub zero_threshold: f64,
    pub zero_count: Count,
    pub negative_spans: Vec<Span>,
    pub negative_deltas: Vec<i64>,
    pub negative_counts: Vec<f64>,
    pub positive_spans: Vec<Span>,
    pub positive_deltas: Vec<i64>,
    pub positive_counts: Vec<f64>,
    pub reset_hint: i32,
    pub t_ms: i64,
    pub custom_values: Vec<f64>,
}

impl HistScratch {
    fn clear(&mut self) {
        self.count = Count::Absent;
        self.sum = 0.0;
        self.schema = 0;
        self.zero_threshold = 0.0;
        self.zero_count = Count::Absent;
        self.negative_spans.clear();
        self.negative_deltas.clear();
        self.negative_counts.clear();
        self.positive_spans.clear();
        self.positive_deltas.clear();
        self.positive_counts.clear();
        self.reset_hint = 0;
        self.t_ms = 0;
        self.custom_values.clear();
    }

    /// Parses one `Histogram` message (`b` starts at body offset `at`), replacing the content.
    pub(crate) fn parse(&mut self, b: &[u8], at: usize) -> Result<(), IngestError> {
        self.clear();
        let mut r = Reader::new(b, at);
        while !r.is_empty() {
            let (field, wt) = r.tag()?;
            match field {
                1 => {
                    r.expect(wt, VARINT)?;
                    self.count = Count::Int(r.varint()?);
                }
                2 => {
                    r.expect(wt, FIXED64)?;
                    self.count = Count::Float(r.double()?);
                }
                3 => {
                    r.expect(wt, FIXED64)?;
                    self.sum = r.double()?;
                }
                4 => {
                    r.expect(wt, VARINT)?;
                    self.schema = zigzag32(r.varint()?);
                }
                5 => {
                    r.expect(wt, FIXED64)?;
                    self.zero_threshold = r.double()?;
                }
                6 => {
                    r.expect(wt, VARINT)?;
                    self.zero_count = Count::Int(r.varint()?);
                }
                7 => {
                    r.expect(wt, FIXED64)?;
                    self.zero_count = Count::Float(r.double()?);
                }
                8 => {
                    r.expect(wt, LEN)?;
                    let (sb, sat) = r.bytes()?;
                    self.negative_spans.push(parse_span(sb, sat)?);
                }
                9 => {
                    let v = &mut self.negative_deltas;
                    r.repeated_varint(wt, |x| v.push(zigzag64(x)))?;
                }
                10 => {
                    let v = &mut self.negative_counts;
                    r.repeated_double(wt, |x| v.push(x))?;
                }
                11 => {
                    r.expect(wt, LEN)?;
                    let (sb, sat) = r.bytes()?;
                    self.positive_spans.push(parse_span(sb, sat)?);
                }
                12 => {
                    let v = &mut self.positive_deltas;
                    r.repeated_varint(wt, |x| v.push(zigzag64(x)))?;
                }
                13 => {
                    let v = &mut self.positive_counts;
                    r.repeated_double(wt, |x| v.push(x))?;
                }
                14 => {
                    r.expect(wt, VARINT)?;
                    self.reset_hint = r.varint()? as i32;
                }
                15 => {
                    r.expect(wt, VARINT)?;
                    self.t_ms = r.varint()? as i64;
                }
                16 => {
                    let v = &mut self.custom_values;
                    r.repeated_double(wt, |x| v.push(x))?;
                }
                _ => r.skip(wt)?,
            }
        }
        Ok(())
    }

    /// True for a float histogram (`count_float` set); an integer histogram otherwise.
    pub(crate) fn is_float(&self) -> bool {
        matches!(self.count, Count::Float(_))
    }

    /// Converts to a float histogram with absolute bucket counts, into `out` (its vectors are
    /// reused), and validates it.
    ///
    /// # Errors
    /// [`Rejection::InvalidHistogram`] naming the first broken rule.
    pub(crate) fn to_float(&self, out: &mut FloatHistogram) -> Result<(), Rejection> {
        out.counter_reset_hint = match self.reset_hint {
            1 => CounterResetHint::CounterReset,
            2 => CounterResetHint::NotCounterReset,
            3 => CounterResetHint::Gauge,
            _ => CounterResetHint::Unknown,
        };
        out.schema = self.schema;
        out.zero_threshold = self.zero_threshold;
        out.sum = self.sum;
        out.positive_spans.clear();
        out.positive_spans.extend_from_slice(&self.positive_spans);
        out.negative_spans.clear();
        out.negative_spans.extend_from_slice(&self.negative_spans);
        out.custom_values.clear();
        out.custom_values.extend_from_slice(&self.custom_values);
        out.positive_buckets.clear();
        out.negative_buckets.clear();
        if self.is_float() {
            out.count = match self.count {
                Count::Float(c) => c,
                _ => 0.0,
            };
            out.zero_count = match self.zero_count {
                Count::Float(c) => c,
                _ => 0.0,
            };
            out.positive_buckets.extend_from_slice(&self.positive_counts);
            out.negative_buckets.extend_from_slice(&self.negative_counts);
        } else {
            let count = match self.count {
                Count::Int(c) => c,
                _ => 0,
            };
            let zero = match self.zero_count {
                Count::Int(c) => c,
                _ => 0,
            };
            out.count = count as f64;
            out.zero_count = zero as f64;
            let pos = undelta(&self.positive_deltas, &mut out.positive_buckets)?;
            let neg = undelta(&self.negative_deltas, &mut out.negative_buckets)?;
            // Prometheus `Histogram.Validate`: with a real sum the count must equal the
            // observations in the buckets; with a NaN sum it may only be larger.
            let buckets = u128::from(pos) + u128::from(neg) + u128::from(zero);
            if self.sum.is_nan() {
                if buckets > u128::from(count) {
                    return Err(Rejection::InvalidHistogram(
                        "observation count is smaller than the sum of the bucket counts",
                    ));
                }
            } else if buckets != u128::from(count) {
                return Err(Rejection::InvalidHistogram(
                    "observation count does not match the sum of the bucket counts",
                ));
            }
        }
        validate(out)
    }
}

fn parse_span(b: &[u8], at: usize) -> Result<Span, IngestError> {
    let mut s = Span::default();
    let mut r = Reader::new(b, at);
    while !r.is_empty() {
        let (field, wt) = r.tag()?;
        match field {
            1 => {
                r.expect(wt, VARINT)?;
                s.offset = zigzag32(r.varint()?);
            }
            2 => {
                r.expect(wt, VARINT)?;
                s.length = r.varint()? as u32;
            }
            _ => r.skip(wt)?,
        }
    }
    Ok(s)
}

/// Sums delta-encoded bucket counts into absolute counts; returns their total.
fn undelta(deltas: &[i64], out: &mut Vec<f64>) -> Result<u64, Rejection> {
    let mut cur: i64 = 0;
    let mut total: u64 = 0;
    for &d in deltas {
        cur = cur
            .checked_add(d)
            .ok_or(Rejection::InvalidHistogram("bucket count overflows 64 bits"))?;
        if cur < 0 {
            return Err(Rejection::InvalidHistogram("negative bucket count"));
        }
        total = total.saturating_add(cur as u64);
        out.push(cur as f64);
    }
    Ok(total)
}

/// Prometheus' structural rules for a float histogram with absolute counts.
fn validate(h: &FloatHistogram) -> Result<(), Rejection> {
    for spans in [&h.positive_spans, &h.negative_spans] {
        if spans.iter().skip(1).any(|s| s.offset < 0) {
            return Err(Rejection::InvalidHistogram("span has a negative offset"));
        }
    }
    let negative = |v: &[f64]| v.iter().any(|c| *c < 0.0);
    if negative(&h.positive_buckets) || negative(&h.negative_buckets) {
        return Err(Rejection::InvalidHistogram("negative bucket count"));
    }
    if h.zero_count < 0.0 {
        return Err(Rejection::InvalidHistogram("negative zero bucket count"));
    }
    if h.count < 0.0 {
        return Err(Rejection::InvalidHistogram("negative observation count"));
    }
    if h.schema == CUSTOM_BUCKETS_SCHEMA {
        if h.custom_values.is_empty() {
            return Err(Rejection::InvalidHistogram("custom-bucket histogram without custom_values"));
        }
        if h.custom_values.iter().any(|v| v.is_nan()) {
            return Err(Rejection::InvalidHistogram("custom bucket bound is NaN"));
        }
        if h.custom_values.last().is_some_and(|v| *v == f64::INFINITY) {
            return Err(Rejection::InvalidHistogram("custom bucket bound +Inf is implicit and must not be sent"));
        }
        if h.zero_count != 0.0 || h.zero_threshold != 0.0 {
            return Err(Rejection::InvalidHistogram("custom-bucket histogram has a zero bucket"));
        }
        // Bucket i covers (custom_values[i-1], custom_values[i]]; index len(custom_values) is
        // the +Inf bucket, the highest one that may be populated.
        let mut next: i64 = 0;
        let mut idx: i64 = -1;
        for s in &h.positive_spans {
            let start = next + i64::from(s.offset);
            if start < 0 {
                return Err(Rejection::InvalidHistogram("custom-bucket span starts below index 0"));
            }
            next = start + i64::from(s.length);
            if s.length > 0 {
                idx = next - 1;
            }
        }
        if idx > h.custom_values.len() as i64 {
            return Err(Rejection::InvalidHistogram("custom-bucket span points past the +Inf bucket"));
        }
    }
    h.validate().map_err(Rejection::InvalidHistogram)
}
