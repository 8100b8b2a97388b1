//! Native histogram samples, in the shape of remote-write 2.0 / Prometheus `FloatHistogram`.
//!
//! Buckets are sparse: a list of [`Span`]s says which bucket indexes are populated, and the
//! bucket vectors hold one **absolute** count per populated bucket, in span order. (Remote-write
//! integer histograms carry delta-encoded counts; ingest converts them to absolute counts before
//! they reach storage, so every histogram here is a float histogram, as in Prometheus' engine.)
//!
//! Bucket boundaries for exponential schemas (-4..=8): bucket `i` covers
//! `(base^(i-1), base^i]` with `base = 2^(2^-schema)`. Schema [`CUSTOM_BUCKETS_SCHEMA`] (-53)
//! uses explicit upper bounds in `custom_values` instead (NHCB), and has no negative or zero
//! buckets. Source: Prometheus `model/histogram/float_histogram.go` and the remote-write 2.0
//! spec (`io.prometheus.write.v2.Histogram`).

/// Schema number of native histograms with custom bucket bounds (NHCB).
pub const CUSTOM_BUCKETS_SCHEMA: i32 = -53;

/// A run of consecutive populated buckets: `offset` is the gap (in bucket indexes) from the end
/// of the previous span (or from index 0 for the first span), `length` the number of buckets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Span {
    /// Gap to the previous span's end; may be negative only for the first span.
    pub offset: i32,
    /// Number of consecutive buckets in this span.
    pub length: u32,
}

/// The counter-reset hint carried by a histogram sample (remote-write 2.0 `ResetHint`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[repr(u8)]
pub enum CounterResetHint {
    /// Nothing is known; the reader compares with the previous sample.
    #[default]
    Unknown = 0,
    /// This sample starts after a counter reset.
    CounterReset = 1,
    /// This sample is known not to follow a reset.
    NotCounterReset = 2,
    /// A gauge histogram: never a counter reset.
    Gauge = 3,
}

impl CounterResetHint {
    /// Decodes the stored byte; unknown values read as `Unknown`.
    pub fn from_u8(b: u8) -> Self {
        match b {
            1 => CounterResetHint::CounterReset,
            2 => CounterResetHint::NotCounterReset,
            3 => CounterResetHint::Gauge,
            _ => CounterResetHint::Unknown,
        }
    }
}

/// One native histogram sample value.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct FloatHistogram {
    /// Counter-reset hint.
    pub counter_reset_hint: CounterResetHint,
    /// Resolution: -4..=8 for exponential buckets, [`CUSTOM_BUCKETS_SCHEMA`] for custom bounds.
    pub schema: i32,
    /// Width of the zero bucket: observations in `[-zero_threshold, zero_threshold]`.
    pub zero_threshold: f64,
    /// Observations in the zero bucket.
    pub zero_count: f64,
    /// Total observations.
    pub count: f64,
    /// Sum of observed values.
    pub sum: f64,
    /// Populated positive bucket runs.
    pub positive_spans: Vec<Span>,
    /// Absolute counts of the positive buckets, one per bucket in `positive_spans`.
    pub positive_buckets: Vec<f64>,
    /// Populated negative bucket runs.
    pub negative_spans: Vec<Span>,
    /// Absolute counts of the negative buckets.
    pub negative_buckets: Vec<f64>,
    /// Upper bounds of the custom buckets (schema -53 only), ascending.
    pub custom_values: Vec<f64>,
}

impl FloatHistogram {
    /// True for schema -53 (custom bucket bounds).
    pub fn uses_custom_buckets(&self) -> bool {
        self.schema == CUSTOM_BUCKETS_SCHEMA
    }

    /// Checks the structural invariants storage relies on: span lengths add up to the bucket
    /// counts, custom bounds only with schema -53, and the schema in range.
    ///
    /// # Errors
    /// A static description of the first violated rule.
    pub fn validate(&self) -> Result<(), &'static str> {
        let pos: u64 = self.positive_spans.iter().map(|s| u64::from(s.length)).sum();
        let neg: u64 = self.negative_spans.iter().map(|s| u64::from(s.length)).sum();
        if pos != self.positive_buckets.len() as u64 {
            return Err("positive spans do not match positive bucket count");
        }
        if neg != self.negative_buckets.len() as u64 {
            return Err("negative spans do not match negative bucket count");
        }
        if self.uses_custom_buckets() {
            if !self.negative_spans.is_empty() || !self.negative_buckets.is_empty() {
                return Err("custom-bucket histogram has negative buckets");
            }
            if self.custom_values.windows(2).any(|w| !(w[0] < w[1])) {
                return Err("custom bucket bounds are not strictly ascending");
            }
        } else {
            if !(-4..=8).contains(&self.schema) {
                return Err("schema out of range -4..=8");
            }
            if !self.custom_values.is_empty() {
                return Err("custom bucket bounds on an exponential histogram");
            }
        }
        Ok(())
    }
}
