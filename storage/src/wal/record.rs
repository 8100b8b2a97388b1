//! WAL record payloads: encoding into a caller-owned buffer (with the frame) and decoding into
//! caller-owned vectors. The byte layouts are specified in the [`crate::wal`] module doc.
//!
//! Encoders append one complete framed record (`[len][crc32c][type][version][body]`) to a
//! `Vec<u8>` so that a whole appender commit can be assembled in one reused buffer and written
//! with one `write()`. Decoders take the payload (type byte onwards) and return typed errors on
//! malformed bytes; they never panic on input.

use crate::encoding::{get_uvarint, put_uvarint, put_varint};
use crate::api::{Metadata, MetricType, SeriesRef};
use crate::histogram::{CounterResetHint, FloatHistogram, Span};
use crate::labels::{Label, Labels};

/// Size of the frame header: `len: u32 LE` + `crc32c: u32 LE`.
pub const FRAME_HEADER_BYTES: usize = 8;

/// The version byte every record type is written with today.
pub const RECORD_VERSION: u8 = 1;

/// The type byte at the start of every record payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum RecordType {
    /// Series definitions: ref + labels.
    Series = 1,
    /// Float samples (stale markers included, bit-exact).
    Samples = 2,
    /// Native histogram samples.
    HistogramSamples = 3,
    /// Exemplars.
    Exemplars = 4,
    /// Metric metadata, per metric name.
    Metadata = 5,
    /// The head's lower bound for samples after a truncation (written first in checkpoints).
    MinValidTime = 6,
    /// Float samples with start timestamps (at least one non-zero in the record).
    SamplesSt = 7,
    /// Native histogram samples with start timestamps (at least one non-zero in the record).
    HistogramSamplesSt = 8,
}

impl RecordType {
    /// Decodes the type byte.
    pub fn from_u8(b: u8) -> Option<RecordType> {
        Some(match b {
            1 => RecordType::Series,
            2 => RecordType::Samples,
            3 => RecordType::HistogramSamples,
            4 => RecordType::Exemplars,
            5 => RecordType::Metadata,
            6 => RecordType::MinValidTime,
            7 => RecordType::SamplesSt,
            8 => RecordType::HistogramSamplesSt,
            _ => return None,
        })
    }
}

/// A series definition as logged: its ref and labels.
#[derive(Clone, Debug, PartialEq)]
pub struct RefSeries {
    /// The series' ref.
    pub series_ref: SeriesRef,
    /// The series' canonical labels.
    pub labels: Labels,
}

/// A float sample as logged.
#[derive(Clone, Copy, Debug)]
pub struct RefSample {
    /// The series' ref.
    pub series_ref: SeriesRef,
    /// Timestamp, ms since the epoch.
    pub t_ms: i64,
    /// Value; stored as its raw bits, so NaN payloads (stale markers) survive.
    pub v: f64,
    /// Start timestamp, ms since the epoch; 0 = none (see [`crate::Appender::append_st`]).
    pub st_ms: i64,
}

impl PartialEq for RefSample {
    /// Bit-wise on the value, so a stale marker equals only itself.
    fn eq(&self, o: &Self) -> bool {
        self.series_ref == o.series_ref && self.t_ms == o.t_ms && self.v.to_bits() == o.v.to_bits() && self.st_ms == o.st_ms
    }
}

/// A native histogram sample as logged.
#[derive(Clone, Debug, PartialEq)]
pub struct RefHistogramSample {
    /// The series' ref.
    pub series_ref: SeriesRef,
    /// Timestamp, ms since the epoch.
    pub t_ms: i64,
    /// The histogram.
    pub h: FloatHistogram,
    /// Start timestamp, ms since the epoch; 0 = none.
    pub st_ms: i64,
}

/// An exemplar as logged.
#[derive(Clone, Debug, PartialEq)]
pub struct RefExemplar {
    /// The series the exemplar belongs to.
    pub series_ref: SeriesRef,
    /// Observation time, ms since the epoch.
    pub t_ms: i64,
    /// Observed value.
    pub value: f64,
    /// Exemplar labels.
    pub labels: Labels,
}

/// Metadata for one metric name as logged.
#[derive(Clone, Debug, PartialEq)]
pub struct RefMetadata {
    /// The metric name.
    pub metric: String,
    /// Type, help and unit.
    pub metadata: Metadata,
}

/// Why a payload could not be decoded. The reader turns this into a dropped segment tail (for a
/// CRC-valid record this means a bug or a newer writer) or a typed [`crate::StorageError`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The payload ended inside a field.
    #[error("record truncated")]
    Truncated,
    /// An unknown record type byte.
    #[error("unknown record type {0}")]
    UnknownType(u8),
    /// A record version this build does not read.
    #[error("unsupported record version {0}")]
    UnsupportedVersion(u8),
    /// A field holds a value outside its domain.
    #[error("invalid record: {0}")]
    Invalid(&'static str),
}

fn metric_type_to_u8(t: MetricType) -> u8 {
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

fn metric_type_from_u8(b: u8) -> Result<MetricType, DecodeError> {
    Ok(match b {
        0 => MetricType::Unknown,
        1 => MetricType::Counter,
        2 => MetricType::Gauge,
        3 => MetricType::Histogram,
        4 => MetricType::GaugeHistogram,
        5 => MetricType::Summary,
        6 => MetricType::Info,
        7 => MetricType::StateSet,
        _ => return Err(DecodeError::Invalid("unknown metric type")),
    })
}

// ---------------------------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------------------------

#[inline]
fn put_bytes(buf: &mut Vec<u8>, b: &[u8]) {
    put_uvarint(buf, b.len() as u64);
    buf.extend_from_slice(b);
}

#[inline]
fn put_f64(buf: &mut Vec<u8>, v: f64) {
    buf.extend_from_slice(&v.to_bits().to_le_bytes());
}

/// Starts a framed record: reserves the frame header and writes type and version. Returns the
/// frame's start offset for [`finish_frame`].
fn begin_frame(buf: &mut Vec<u8>, t: RecordType) -> usize {
    let start = buf.len();
    buf.extend_from_slice(&[0u8; FRAME_HEADER_BYTES]);
    buf.push(t as u8);
    buf.push(RECORD_VERSION);
    start
}

/// Fills in the frame header of the record started at `start`.
///
/// # Panics
/// If one record exceeds 4 GiB (a caller bug: the head never builds such a commit).
fn finish_frame(buf: &mut [u8], start: usize) {
    let payload = &buf[start + FRAME_HEADER_BYTES..];
    let len = u32::try_from(payload.len()).expect("WAL record larger than 4 GiB");
    let crc = crc32c::crc32c(payload);
    buf[start..start + 4].copy_from_slice(&len.to_le_bytes());
    buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// Appends a framed series record for `series` (pairs of ref and label pairs). Nothing is
/// written for an empty input.
pub fn encode_series<'a, I, L>(buf: &mut Vec<u8>, series: I)
where
    I: IntoIterator<Item = (SeriesRef, L)>,
    L: IntoIterator<Item = (&'a str, &'a str)>,
    L::IntoIter: ExactSizeIterator,
{
    let start = begin_frame(buf, RecordType::Series);
    let body = buf.len();
    for (r, labels) in series {
        put_uvarint(buf, r.0);
        let it = labels.into_iter();
        put_uvarint(buf, it.len() as u64);
        for (n, v) in it {
            put_bytes(buf, n.as_bytes());
            put_bytes(buf, v.as_bytes());
        }
    }
    if buf.len() == body {
        buf.truncate(start);
        return;
    }
    finish_frame(buf, start);
}

/// Appends a framed float samples record. Refs and timestamps are delta-encoded against the
/// first sample; values are raw f64 bits. Nothing is written for an empty slice. A record
/// whose samples all have `st_ms == 0` is type 2 (as before start timestamps existed); one
/// with any start timestamp is type 7, which adds `varint (st_ms - t0)` per sample.
pub fn encode_samples(buf: &mut Vec<u8>, samples: &[RefSample]) {
    let Some(first) = samples.first() else { return };
    let with_st = samples.iter().any(|s| s.st_ms != 0);
    let start = begin_frame(buf, if with_st { RecordType::SamplesSt } else { RecordType::Samples });
    buf.extend_from_slice(&first.series_ref.0.to_le_bytes());
    buf.extend_from_slice(&first.t_ms.to_le_bytes());
    for s in samples {
        put_varint(buf, s.series_ref.0.wrapping_sub(first.series_ref.0) as i64);
        put_varint(buf, s.t_ms.wrapping_sub(first.t_ms));
        if with_st {
            put_varint(buf, s.st_ms.wrapping_sub(first.t_ms));
        }
        buf.extend_from_slice(&s.v.to_bits().to_le_bytes());
    }
    finish_frame(buf, start);
}

fn put_spans(buf: &mut Vec<u8>, spans: &[Span]) {
    put_uvarint(buf, spans.len() as u64);
    for s in spans {
        put_varint(buf, i64::from(s.offset));
        put_uvarint(buf, u64::from(s.length));
    }
}

fn put_f64s(buf: &mut Vec<u8>, vs: &[f64]) {
    put_uvarint(buf, vs.len() as u64);
    for v in vs {
        put_f64(buf, *v);
    }
}

fn put_histogram(buf: &mut Vec<u8>, h: &FloatHistogram) {
    buf.push(h.counter_reset_hint as u8);
    put_varint(buf, i64::from(h.schema));
    put_f64(buf, h.zero_threshold);
    put_f64(buf, h.zero_count);
    put_f64(buf, h.count);
    put_f64(buf, h.sum);
    put_spans(buf, &h.positive_spans);
    put_f64s(buf, &h.positive_buckets);
    put_spans(buf, &h.negative_spans);
    put_f64s(buf, &h.negative_buckets);
    put_f64s(buf, &h.custom_values);
}

/// Appends a framed histogram samples record from `(ref, st_ms, t_ms, histogram)` entries.
/// Nothing is written for an empty input. As [`encode_samples`]: type 3 when every `st_ms`
/// is 0, else type 8 with `varint (st_ms - t0)` per entry.
pub fn encode_histograms<'a, I>(buf: &mut Vec<u8>, samples: I)
where
    I: IntoIterator<Item = (SeriesRef, i64, i64, &'a FloatHistogram)>,
    I::IntoIter: Clone,
{
    let it = samples.into_iter();
    let with_st = it.clone().any(|(_, st, _, _)| st != 0);
    let mut it = it.peekable();
    let Some(&(r0, _, t0, _)) = it.peek() else { return };
    let start = begin_frame(buf, if with_st { RecordType::HistogramSamplesSt } else { RecordType::HistogramSamples });
    buf.extend_from_slice(&r0.0.to_le_bytes());
    buf.extend_from_slice(&t0.to_le_bytes());
    for (r, st, t, h) in it {
        put_varint(buf, r.0.wrapping_sub(r0.0) as i64);
        put_varint(buf, t.wrapping_sub(t0));
        if with_st {
            put_varint(buf, st.wrapping_sub(t0));
        }
        put_histogram(buf, h);
    }
    finish_frame(buf, start);
}

/// Appends a framed exemplars record. Nothing is written for an empty input.
pub fn encode_exemplars<'a>(
    buf: &mut Vec<u8>,
    exemplars: impl IntoIterator<Item = (SeriesRef, &'a crate::api::Exemplar)>,
) {
    let mut it = exemplars.into_iter().peekable();
    let Some(&(r0, e0)) = it.peek() else { return };
    let t0 = e0.t_ms;
    let start = begin_frame(buf, RecordType::Exemplars);
    buf.extend_from_slice(&r0.0.to_le_bytes());
    buf.extend_from_slice(&t0.to_le_bytes());
    for (r, e) in it {
        put_varint(buf, r.0.wrapping_sub(r0.0) as i64);
        put_varint(buf, e.t_ms.wrapping_sub(t0));
        put_f64(buf, e.value);
        put_uvarint(buf, e.labels.len() as u64);
        for l in &e.labels {
            put_bytes(buf, l.name.as_bytes());
            put_bytes(buf, l.value.as_bytes());
        }
    }
    finish_frame(buf, start);
}

/// Appends a framed metadata record. Nothing is written for an empty input.
pub fn encode_metadata<'a>(buf: &mut Vec<u8>, entries: impl IntoIterator<Item = (&'a str, &'a Metadata)>) {
    let start = begin_frame(buf, RecordType::Metadata);
    let body = buf.len();
    for (metric, m) in entries {
        put_bytes(buf, metric.as_bytes());
        buf.push(metric_type_to_u8(m.metric_type));
        put_bytes(buf, m.unit.as_bytes());
        put_bytes(buf, m.help.as_bytes());
    }
    if buf.len() == body {
        buf.truncate(start);
        return;
    }
    finish_frame(buf, start);
}

/// Appends a framed lower-bound record: samples before `t_ms` belong to blocks.
pub fn encode_min_valid_time(buf: &mut Vec<u8>, t_ms: i64) {
    let start = begin_frame(buf, RecordType::MinValidTime);
    buf.extend_from_slice(&t_ms.to_le_bytes());
    finish_frame(buf, start);
}

// ---------------------------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------------------------

/// A cursor over a payload body; every read is bounds-checked.
struct Dec<'a> {
    b: &'a [u8],
}

impl<'a> Dec<'a> {
    fn is_empty(&self) -> bool {
        self.b.is_empty()
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        let (&x, rest) = self.b.split_first().ok_or(DecodeError::Truncated)?;
        self.b = rest;
        Ok(x)
    }

    fn fixed8(&mut self) -> Result<[u8; 8], DecodeError> {
        let (head, rest) = self.b.split_first_chunk::<8>().ok_or(DecodeError::Truncated)?;
        self.b = rest;
        Ok(*head)
    }

    fn u64_le(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.fixed8()?))
    }

    fn i64_le(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_le_bytes(self.fixed8()?))
    }

    fn f64(&mut self) -> Result<f64, DecodeError> {
        Ok(f64::from_bits(self.u64_le()?))
    }

    fn uvarint(&mut self) -> Result<u64, DecodeError> {
        let mut p = 0;
        match get_uvarint(self.b, &mut p) {
            Some(x) => {
                self.b = &self.b[p..];
                Ok(x)
            }
            // `get_uvarint` reads exactly 10 bytes before it reports an overflow.
            None if p == 10 => Err(DecodeError::Invalid("varint overflows 64 bits")),
            None => Err(DecodeError::Truncated),
        }
    }

    fn varint(&mut self) -> Result<i64, DecodeError> {
        let u = self.uvarint()?;
        Ok(((u >> 1) as i64) ^ -((u & 1) as i64))
    }

    /// A length that must fit in what is left (each element takes at least `min_elem` bytes),
    /// so a corrupt count cannot make the decoder allocate unbounded memory.
    fn len(&mut self, min_elem: usize) -> Result<usize, DecodeError> {
        let n = self.uvarint()?;
        let n = usize::try_from(n).map_err(|_| DecodeError::Truncated)?;
        if n.saturating_mul(min_elem.max(1)) > self.b.len() {
            return Err(DecodeError::Truncated);
        }
        Ok(n)
    }

    fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = self.len(1)?;
        let (head, rest) = self.b.split_at(n);
        self.b = rest;
        Ok(head)
    }

    fn str(&mut self) -> Result<&'a str, DecodeError> {
        std::str::from_utf8(self.bytes()?).map_err(|_| DecodeError::Invalid("label or text is not UTF-8"))
    }

    fn labels(&mut self) -> Result<Labels, DecodeError> {
        let n = self.len(2)?;
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            let name = self.str()?;
            let value = self.str()?;
            v.push(Label::new(name, value));
        }
        // Validate canonical form instead of trusting the bytes: sorted, unique, non-empty.
        if v.windows(2).any(|w| w[0].name >= w[1].name) || v.iter().any(|l| l.value.is_empty()) {
            return Err(DecodeError::Invalid("labels not canonical"));
        }
        Ok(Labels::from_sorted_unchecked(v))
    }

    fn spans(&mut self) -> Result<Vec<Span>, DecodeError> {
        let n = self.len(2)?;
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            let offset = i32::try_from(self.varint()?).map_err(|_| DecodeError::Invalid("span offset"))?;
            let length = u32::try_from(self.uvarint()?).map_err(|_| DecodeError::Invalid("span length"))?;
            v.push(Span { offset, length });
        }
        Ok(v)
    }

    fn f64s(&mut self) -> Result<Vec<f64>, DecodeError> {
        let n = self.len(8)?;
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(self.f64()?);
        }
        Ok(v)
    }

    fn histogram(&mut self) -> Result<FloatHistogram, DecodeError> {
        let hint = self.u8()?;
        if hint > 3 {
            return Err(DecodeError::Invalid("counter reset hint"));
        }
        let schema = i32::try_from(self.varint()?).map_err(|_| DecodeError::Invalid("schema"))?;
        Ok(FloatHistogram {
            counter_reset_hint: CounterResetHint::from_u8(hint),
            schema,
            zero_threshold: self.f64()?,
            zero_count: self.f64()?,
            count: self.f64()?,
            sum: self.f64()?,
            positive_spans: self.spans()?,
            positive_buckets: self.f64s()?,
            negative_spans: self.spans()?,
            negative_buckets: self.f64s()?,
            custom_values: self.f64s()?,
        })
    }
}

/// Reads the type and version bytes of a payload, checking the version.
///
/// # Errors
/// [`DecodeError::Truncated`], [`DecodeError::UnknownType`] or
/// [`DecodeError::UnsupportedVersion`].
pub fn record_type(payload: &[u8]) -> Result<RecordType, DecodeError> {
    let [t, v, ..] = payload else { return Err(DecodeError::Truncated) };
    let rt = RecordType::from_u8(*t).ok_or(DecodeError::UnknownType(*t))?;
    if *v != RECORD_VERSION {
        return Err(DecodeError::UnsupportedVersion(*v));
    }
    Ok(rt)
}

fn body(payload: &[u8], want: RecordType) -> Result<Dec<'_>, DecodeError> {
    let t = record_type(payload)?;
    if t != want {
        return Err(DecodeError::Invalid("record type does not match the decoder"));
    }
    Ok(Dec { b: &payload[2..] })
}

/// The body of a record of type `plain` or its start-timestamp form `with_st`, and which.
fn body_st(payload: &[u8], plain: RecordType, with_st: RecordType) -> Result<(Dec<'_>, bool), DecodeError> {
    let t = record_type(payload)?;
    if t != plain && t != with_st {
        return Err(DecodeError::Invalid("record type does not match the decoder"));
    }
    Ok((Dec { b: &payload[2..] }, t == with_st))
}

/// Decodes a series record payload, appending to `out`.
///
/// # Errors
/// A [`DecodeError`] on malformed bytes; `out` may then hold a prefix of the record.
pub fn decode_series(payload: &[u8], out: &mut Vec<RefSeries>) -> Result<(), DecodeError> {
    let mut d = body(payload, RecordType::Series)?;
    while !d.is_empty() {
        let r = d.uvarint()?;
        let labels = d.labels()?;
        out.push(RefSeries { series_ref: SeriesRef(r), labels });
    }
    Ok(())
}

/// Decodes a float samples record payload (type 2, or 7 with start timestamps), appending to
/// `out`.
///
/// # Errors
/// A [`DecodeError`] on malformed bytes.
pub fn decode_samples(payload: &[u8], out: &mut Vec<RefSample>) -> Result<(), DecodeError> {
    let (mut d, with_st) = body_st(payload, RecordType::Samples, RecordType::SamplesSt)?;
    let r0 = d.u64_le()?;
    let t0 = d.i64_le()?;
    while !d.is_empty() {
        let r = r0.wrapping_add(d.varint()? as u64);
        let t = t0.wrapping_add(d.varint()?);
        let st_ms = if with_st { t0.wrapping_add(d.varint()?) } else { 0 };
        let v = d.f64()?;
        out.push(RefSample { series_ref: SeriesRef(r), t_ms: t, v, st_ms });
    }
    Ok(())
}

/// Decodes a histogram samples record payload, appending to `out`.
///
/// # Errors
/// A [`DecodeError`] on malformed bytes.
pub fn decode_histograms(payload: &[u8], out: &mut Vec<RefHistogramSample>) -> Result<(), DecodeError> {
    let (mut d, with_st) = body_st(payload, RecordType::HistogramSamples, RecordType::HistogramSamplesSt)?;
    let r0 = d.u64_le()?;
    let t0 = d.i64_le()?;
    while !d.is_empty() {
        let r = r0.wrapping_add(d.varint()? as u64);
        let t = t0.wrapping_add(d.varint()?);
        let st_ms = if with_st { t0.wrapping_add(d.varint()?) } else { 0 };
        let h = d.histogram()?;
        out.push(RefHistogramSample { series_ref: SeriesRef(r), t_ms: t, h, st_ms });
    }
    Ok(())
}

/// Decodes an exemplars record payload, appending to `out`.
///
/// # Errors
/// A [`DecodeError`] on malformed bytes.
pub fn decode_exemplars(payload: &[u8], out: &mut Vec<RefExemplar>) -> Result<(), DecodeError> {
    let mut d = body(payload, RecordType::Exemplars)?;
    let r0 = d.u64_le()?;
    let t0 = d.i64_le()?;
    while !d.is_empty() {
        let r = r0.wrapping_add(d.varint()? as u64);
        let t = t0.wrapping_add(d.varint()?);
        let value = d.f64()?;
        let labels = d.labels()?;
        out.push(RefExemplar { series_ref: SeriesRef(r), t_ms: t, value, labels });
    }
    Ok(())
}

/// Decodes a metadata record payload, appending to `out`.
///
/// # Errors
/// A [`DecodeError`] on malformed bytes.
pub fn decode_metadata(payload: &[u8], out: &mut Vec<RefMetadata>) -> Result<(), DecodeError> {
    let mut d = body(payload, RecordType::Metadata)?;
    while !d.is_empty() {
        let metric = d.str()?.to_string();
        let metric_type = metric_type_from_u8(d.u8()?)?;
        let unit = d.str()?.to_string();
        let help = d.str()?.to_string();
        out.push(RefMetadata { metric, metadata: Metadata { metric_type, help, unit } });
    }
    Ok(())
}

/// Decodes a lower-bound record payload.
///
/// # Errors
/// A [`DecodeError`] on malformed bytes.
pub fn decode_min_valid_time(payload: &[u8]) -> Result<i64, DecodeError> {
    let mut d = body(payload, RecordType::MinValidTime)?;
    let t = d.i64_le()?;
    if !d.is_empty() {
        return Err(DecodeError::Invalid("trailing bytes after the lower bound"));
    }
    Ok(t)
}

/// One decoded record, for readers that want everything (checkpointing, tools, tests).
#[derive(Clone, Debug, PartialEq)]
pub enum Record {
    /// Series definitions.
    Series(Vec<RefSeries>),
    /// Float samples.
    Samples(Vec<RefSample>),
    /// Histogram samples.
    Histograms(Vec<RefHistogramSample>),
    /// Exemplars.
    Exemplars(Vec<RefExemplar>),
    /// Metadata.
    Metadata(Vec<RefMetadata>),
    /// The head's lower bound, ms.
    MinValidTime(i64),
}

impl Record {
    /// Decodes any payload.
    ///
    /// # Errors
    /// A [`DecodeError`] on malformed bytes.
    pub fn decode(payload: &[u8]) -> Result<Record, DecodeError> {
        Ok(match record_type(payload)? {
            RecordType::Series => {
                let mut v = Vec::new();
                decode_series(payload, &mut v)?;
                Record::Series(v)
            }
            RecordType::Samples | RecordType::SamplesSt => {
                let mut v = Vec::new();
                decode_samples(payload, &mut v)?;
                Record::Samples(v)
            }
            RecordType::HistogramSamples | RecordType::HistogramSamplesSt => {
                let mut v = Vec::new();
                decode_histograms(payload, &mut v)?;
                Record::Histograms(v)
            }
            RecordType::Exemplars => {
                let mut v = Vec::new();
                decode_exemplars(payload, &mut v)?;
                Record::Exemplars(v)
            }
            RecordType::Metadata => {
                let mut v = Vec::new();
                decode_metadata(payload, &mut v)?;
                Record::Metadata(v)
            }
            RecordType::MinValidTime => Record::MinValidTime(decode_min_valid_time(payload)?),
        })
    }

    /// Appends this record, framed, to `buf`. An empty record writes nothing.
    pub fn encode(&self, buf: &mut Vec<u8>) {
        match self {
            Record::Series(v) => encode_series(
                buf,
                v.iter().map(|s| (s.series_ref, s.labels.iter().map(|l| (l.name.as_str(), l.value.as_str())))),
            ),
            Record::Samples(v) => encode_samples(buf, v),
            Record::Histograms(v) => encode_histograms(buf, v.iter().map(|s| (s.series_ref, s.st_ms, s.t_ms, &s.h))),
            Record::Exemplars(v) => {
                let ex: Vec<(SeriesRef, crate::api::Exemplar)> = v
                    .iter()
                    .map(|e| (e.series_ref, crate::api::Exemplar { labels: e.labels.clone(), value: e.value, t_ms: e.t_ms }))
                    .collect();
                encode_exemplars(buf, ex.iter().map(|(r, e)| (*r, e)));
            }
            Record::Metadata(v) => encode_metadata(buf, v.iter().map(|m| (m.metric.as_str(), &m.metadata))),
            Record::MinValidTime(t) => encode_min_valid_time(buf, *t),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(buf: &[u8]) -> &[u8] {
        let len = u32::from_le_bytes(buf[0..4].try_into().unwrap()) as usize;
        assert_eq!(buf.len(), FRAME_HEADER_BYTES + len);
        assert_eq!(u32::from_le_bytes(buf[4..8].try_into().unwrap()), crc32c::crc32c(&buf[8..]));
        &buf[8..]
    }

    #[test]
    fn golden_samples_record() {
        let mut buf = Vec::new();
        encode_samples(
            &mut buf,
            &[
                RefSample { series_ref: SeriesRef(5), t_ms: 1000, v: 1.0, st_ms: 0 },
                RefSample { series_ref: SeriesRef(3), t_ms: 1015, v: crate::stale_nan(), st_ms: 0 },
            ],
        );
        let p = payload(&buf);
        #[rustfmt::skip]
        let want: Vec<u8> = vec![
            2, 1,                                   // type = samples, version 1
            5, 0, 0, 0, 0, 0, 0, 0,                 // first ref, u64 LE
            0xe8, 0x03, 0, 0, 0, 0, 0, 0,           // first t_ms = 1000, i64 LE
            0, 0, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f,     // dref 0, dt 0, 1.0 bits LE
            3, 30, 2, 0, 0, 0, 0, 0, 0xf0, 0x7f,    // dref -2 (zigzag 3), dt 15 (30), stale NaN
        ];
        assert_eq!(p, &want[..]);
        let mut out = Vec::new();
        decode_samples(p, &mut out).unwrap();
        assert_eq!(out[1].v.to_bits(), crate::STALE_NAN_BITS);
        assert_eq!(out[1].series_ref, SeriesRef(3));
    }

    #[test]
    fn golden_series_record() {
        let mut buf = Vec::new();
        let l = Labels::from_pairs([("__name__", "up"), ("job", "a")]);
        encode_series(&mut buf, [(SeriesRef(7), l.iter().map(|l| (l.name.as_str(), l.value.as_str())))]);
        let p = payload(&buf);
        let mut want = vec![1u8, 1, 7, 2, 8];
        want.extend_from_slice(b"__name__");
        want.push(2);
        want.extend_from_slice(b"up");
        want.push(3);
        want.extend_from_slice(b"job");
        want.push(1);
        want.extend_from_slice(b"a");
        assert_eq!(p, &want[..]);
        let mut out = Vec::new();
        decode_series(p, &mut out).unwrap();
        assert_eq!(out, vec![RefSeries { series_ref: SeriesRef(7), labels: l }]);
    }

    #[test]
    fn golden_metadata_record() {
        let mut buf = Vec::new();
        let m = Metadata { metric_type: MetricType::Counter, help: "h".into(), unit: "s".into() };
        encode_metadata(&mut buf, [("x", &m)]);
        assert_eq!(payload(&buf), &[5u8, 1, 1, b'x', 1, 1, b's', 1, b'h'][..]);
    }

    #[test]
    fn golden_min_valid_time_record() {
        let mut buf = Vec::new();
        encode_min_valid_time(&mut buf, -2);
        let p = payload(&buf);
        assert_eq!(p, &[6u8, 1, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff][..]);
        assert_eq!(decode_min_valid_time(p), Ok(-2));
    }

    #[test]
    fn histogram_round_trip() {
        let h = FloatHistogram {
            counter_reset_hint: CounterResetHint::NotCounterReset,
            schema: 3,
            zero_threshold: 1e-128,
            zero_count: 2.0,
            count: 10.0,
            sum: 33.5,
            positive_spans: vec![Span { offset: -2, length: 2 }, Span { offset: 3, length: 1 }],
            positive_buckets: vec![1.0, 2.0, 3.0],
            negative_spans: vec![Span { offset: 0, length: 1 }],
            negative_buckets: vec![4.0],
            custom_values: vec![],
        };
        let rec = Record::Histograms(vec![
            RefHistogramSample { series_ref: SeriesRef(1), t_ms: 10, h: h.clone(), st_ms: 0 },
            RefHistogramSample { series_ref: SeriesRef(0), t_ms: 5, h: h.clone(), st_ms: 0 },
        ]);
        let mut buf = Vec::new();
        rec.encode(&mut buf);
        assert_eq!(payload(&buf)[0], RecordType::HistogramSamples as u8);
        assert_eq!(Record::decode(payload(&buf)).unwrap(), rec);
        let rec = Record::Histograms(vec![
            RefHistogramSample { series_ref: SeriesRef(1), t_ms: 10, h: h.clone(), st_ms: 4 },
            RefHistogramSample { series_ref: SeriesRef(0), t_ms: 15, h, st_ms: 0 },
        ]);
        let mut buf = Vec::new();
        rec.encode(&mut buf);
        assert_eq!(payload(&buf)[0], RecordType::HistogramSamplesSt as u8);
        assert_eq!(Record::decode(payload(&buf)).unwrap(), rec);
    }

    #[test]
    fn golden_samples_st_record() {
        let mut buf = Vec::new();
        encode_samples(
            &mut buf,
            &[
                RefSample { series_ref: SeriesRef(5), t_ms: 1000, v: 1.0, st_ms: 400 },
                RefSample { series_ref: SeriesRef(5), t_ms: 1015, v: 2.0, st_ms: 0 },
            ],
        );
        let p = payload(&buf);
        #[rustfmt::skip]
        let want: Vec<u8> = vec![
            7, 1,                                   // type = samples with ST, version 1
            5, 0, 0, 0, 0, 0, 0, 0,                 // first ref, u64 LE
            0xe8, 0x03, 0, 0, 0, 0, 0, 0,           // first t_ms = 1000, i64 LE
            0, 0, 0xaf, 0x09,                       // dref 0, dt 0, st - t0 = -600 (zigzag 1199)
            0, 0, 0, 0, 0, 0, 0xf0, 0x3f,           // 1.0 bits LE
            0, 30, 0xcf, 0x0f,                      // dref 0, dt 15, st - t0 = -1000 (st 0: none)
            0, 0, 0, 0, 0, 0, 0, 0x40,              // 2.0 bits LE
        ];
        assert_eq!(p, &want[..]);
        let mut out = Vec::new();
        decode_samples(p, &mut out).unwrap();
        assert_eq!((out[0].st_ms, out[1].st_ms), (400, 0));
        // The same samples without start timestamps keep the old record type.
        let mut plain = Vec::new();
        encode_samples(&mut plain, &[RefSample { st_ms: 0, ..out[0] }]);
        assert_eq!(payload(&plain)[0], RecordType::Samples as u8);
        // A samples decoder never accepts another type.
        assert!(decode_samples(&[3, 1, 0, 0], &mut out).is_err());
    }

    #[test]
    fn malformed_payloads_are_errors() {
        assert_eq!(record_type(&[]), Err(DecodeError::Truncated));
        assert_eq!(record_type(&[9, 1]), Err(DecodeError::UnknownType(9)));
        assert_eq!(record_type(&[2, 7]), Err(DecodeError::UnsupportedVersion(7)));
        let mut out = Vec::new();
        assert_eq!(decode_samples(&[2, 1, 0, 0], &mut out), Err(DecodeError::Truncated));
        // A label count far larger than the bytes left must not allocate or panic.
        let mut out = Vec::new();
        assert_eq!(decode_series(&[1, 1, 0, 0xff, 0xff, 0xff, 0xff, 0x0f], &mut out), Err(DecodeError::Truncated));
    }
}
