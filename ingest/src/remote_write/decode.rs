//! Decoding: snappy block decompression into a reused buffer, then a zero-copy walk of the
//! protobuf wire format.
//!
//! # Why a hand-written walker
//! prost decodes every label into an owned `String` and every series into fresh `Vec`s, and
//! `Message::clear` drops nested vectors, so nothing below the top level can be reused: a
//! node-exporter request (one sample per series) costs several allocations per sample. The
//! walker here reads the decompressed bytes in place: strings are [`Str`] byte ranges into the
//! body, and one series at a time is parsed into [`SeriesScratch`], whose vectors keep their
//! capacity across series and requests. The prost types of [`super::proto`] remain the
//! reference: the tests decode every encoded fixture with both and compare.
//!
//! # Two passes
//! [`Decoder::decode`] walks the whole body once to validate the wire format (and, for 2.0,
//! to collect the symbols table, which series may reference before it appears on the wire).
//! A malformed body is thus refused before anything is appended, as Prometheus does (it
//! unmarshals fully first). [`Request::ingest`] walks it again, series by series. Nothing is
//! stored per series between the passes, so memory stays bounded by the body plus the largest
//! series, whatever the series count.
//!
//! # Layout read (field numbers, see `ingest/proto/`)
//! ```text
//! 1.0 WriteRequest  1: TimeSeries*  3: MetricMetadata*
//!     TimeSeries    1: Label*  2: Sample*  3: Exemplar*  4: Histogram*
//!     Label         1: name  2: value          Sample 1: double value  2: int64 timestamp
//!     Exemplar      1: Label*  2: double value  3: int64 timestamp
//!     MetricMetadata 1: type  2: metric_family_name  4: help  5: unit
//! 2.0 Request       4: string symbols*  5: TimeSeries*   (1..3 reserved)
//!     TimeSeries    1: uint32 labels_refs*  2: Sample*  3: Histogram*  4: Exemplar*
//!                   5: Metadata  6: int64 created_timestamp
//!     Exemplar      1: uint32 labels_refs*  2: double value  3: int64 timestamp
//!     Metadata      1: type  3: uint32 help_ref  4: uint32 unit_ref
//! Histogram (both): see [`super::histogram`].
//! ```
//! Unknown fields are skipped; repeated scalars are accepted packed or unpacked; for a
//! singular field repeated on the wire the last value wins (protobuf merge rules).

use std::sync::Arc;

use snap::raw::{decompress_len, Decoder as SnappyDecoder};
use storage::FloatHistogram;

use super::content::ProtoVersion;
use super::error::IngestError;
use super::histogram::HistScratch;
use super::limits::Limits;
use super::wire::{err, Reader, FIXED64, LEN, VARINT};

pub use super::series_cache::SeriesCache;

/// A string field: a byte range of the decompressed body, not yet checked for UTF-8.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Str {
    pub off: u32,
    pub len: u32,
}

impl Str {
    fn of(at: usize, b: &[u8]) -> Str {
        // Bounded by Limits::effective_max_decompressed_bytes (u32::MAX).
        Str { off: at as u32, len: b.len() as u32 }
    }

    /// The bytes in `body`; empty if out of range (never, for a `Str` made from `body`).
    #[inline]
    pub(crate) fn get(self, body: &[u8]) -> &[u8] {
        let start = self.off as usize;
        body.get(start..start + self.len as usize).unwrap_or(&[])
    }
}

/// One exemplar of the series being ingested; labels are a range of
/// [`SeriesScratch::exemplar_labels`] (1.0) or [`SeriesScratch::exemplar_label_refs`] (2.0).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ExemplarDesc {
    pub labels_start: u32,
    pub labels_end: u32,
    pub value: f64,
    pub t_ms: i64,
}

/// 2.0 per-series metadata (symbol refs not yet resolved).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct MetaRefs {
    pub metric_type: i32,
    pub help_ref: u32,
    pub unit_ref: u32,
}

/// 1.0 `MetricMetadata`.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct MetaV1 {
    pub metric_type: i32,
    pub family: Str,
    pub help: Str,
    pub unit: Str,
}

/// One series as parsed from the wire; cleared and refilled for every series.
#[derive(Debug, Default)]
pub(crate) struct SeriesScratch {
    /// 1.0 `Label` messages, not yet parsed (the validation pass checked them; ingestion
    /// parses them with [`parse_label`] only for a series it does not know).
    pub label_msgs: Vec<Str>,
    /// 1.0: the body range from the first `Label` field's tag to the end of the last one (the
    /// series' key in a [`SeriesCache`]); `None` without labels.
    pub label_bytes: Option<Str>,
    /// 2.0 label refs, pairs flattened.
    pub label_refs: Vec<u32>,
    /// Float samples `(t_ms, v)` in wire order.
    pub samples: Vec<(i64, f64)>,
    /// Histogram messages, parsed one at a time at ingestion (see [`HistScratch`]).
    pub histograms: Vec<Str>,
    pub exemplars: Vec<ExemplarDesc>,
    pub exemplar_labels: Vec<(Str, Str)>,
    pub exemplar_label_refs: Vec<u32>,
    /// 2.0 metadata, if the field was present.
    pub meta: Option<MetaRefs>,
    /// 2.0 created timestamp, ms; 0 = unset.
    pub created_t_ms: i64,
}

impl SeriesScratch {
    fn clear(&mut self) {
        self.label_msgs.clear();
        self.label_bytes = None;
        self.label_refs.clear();
        self.samples.clear();
        self.histograms.clear();
        self.exemplars.clear();
        self.exemplar_labels.clear();
        self.exemplar_label_refs.clear();
        self.meta = None;
        self.created_t_ms = 0;
    }

    /// Parses a 1.0 `TimeSeries` message; `check_labels`: also walk each `Label` message
    /// (the validation pass), else only note where they are.
    pub(crate) fn parse_v1(&mut self, b: &[u8], at: usize, check_labels: bool) -> Result<(), IngestError> {
        self.clear();
        let mut r = Reader::new(b, at);
        while !r.is_empty() {
            let tag_at = r.offset();
            let (field, wt) = r.tag()?;
            match field {
                1 => {
                    r.expect(wt, LEN)?;
                    let (lb, lat) = r.bytes()?;
                    if check_labels {
                        parse_label(lb, lat)?;
                    }
                    self.label_msgs.push(Str::of(lat, lb));
                    let start = self.label_bytes.map_or(tag_at as u32, |s| s.off);
                    // Offsets are bounded by the decompressed size limit (u32).
                    self.label_bytes = Some(Str { off: start, len: (r.offset() as u32).saturating_sub(start) });
                }
                2 => {
                    r.expect(wt, LEN)?;
                    let (sb, sat) = r.bytes()?;
                    self.samples.push(parse_sample(sb, sat)?);
                }
                3 => {
                    r.expect(wt, LEN)?;
                    let (eb, eat) = r.bytes()?;
                    let start = self.exemplar_labels.len() as u32;
                    let labels = &mut self.exemplar_labels;
                    let (value, t_ms) = parse_exemplar(eb, eat, |er, w| {
                        er.expect(w, LEN)?;
                        let (lb, lat) = er.bytes()?;
                        labels.push(parse_label(lb, lat)?);
                        Ok(())
                    })?;
                    let end = self.exemplar_labels.len() as u32;
                    self.exemplars.push(ExemplarDesc { labels_start: start, labels_end: end, value, t_ms });
                }
                4 => {
                    r.expect(wt, LEN)?;
                    let (hb, hat) = r.bytes()?;
                    self.histograms.push(Str::of(hat, hb));
                }
                _ => r.skip(wt)?,
            }
        }
        Ok(())
    }

    /// Parses a 2.0 `TimeSeries` message.
    pub(crate) fn parse_v2(&mut self, b: &[u8], at: usize) -> Result<(), IngestError> {
        self.clear();
        let mut r = Reader::new(b, at);
        while !r.is_empty() {
            let (field, wt) = r.tag()?;
            match field {
                1 => {
                    let v = &mut self.label_refs;
                    r.repeated_varint(wt, |x| v.push(x as u32))?;
                }
                2 => {
                    r.expect(wt, LEN)?;
                    let (sb, sat) = r.bytes()?;
                    self.samples.push(parse_sample(sb, sat)?);
                }
                3 => {
                    r.expect(wt, LEN)?;
                    let (hb, hat) = r.bytes()?;
                    self.histograms.push(Str::of(hat, hb));
                }
                4 => {
                    r.expect(wt, LEN)?;
                    let (eb, eat) = r.bytes()?;
                    let start = self.exemplar_label_refs.len() as u32;
                    let refs = &mut self.exemplar_label_refs;
                    let (value, t_ms) =
                        parse_exemplar(eb, eat, |er, w| er.repeated_varint(w, |x| refs.push(x as u32)))?;
                    let end = self.exemplar_label_refs.len() as u32;
                    self.exemplars.push(ExemplarDesc { labels_start: start, labels_end: end, value, t_ms });
                }
                5 => {
                    r.expect(wt, LEN)?;
                    let (mb, mat) = r.bytes()?;
                    // A repeated singular message merges into the previous one.
                    let mut m = self.meta.unwrap_or_default();
                    let mut mr = Reader::new(mb, mat);
                    while !mr.is_empty() {
                        let (f, w) = mr.tag()?;
                        match f {
                            1 => {
                                mr.expect(w, VARINT)?;
                                m.metric_type = mr.varint()? as i32;
                            }
                            3 => {
                                mr.expect(w, VARINT)?;
                                m.help_ref = mr.varint()? as u32;
                            }
                            4 => {
                                mr.expect(w, VARINT)?;
                                m.unit_ref = mr.varint()? as u32;
                            }
                            _ => mr.skip(w)?,
                        }
                    }
                    self.meta = Some(m);
                }
                6 => {
                    r.expect(wt, VARINT)?;
                    self.created_t_ms = r.varint()? as i64;
                }
                _ => r.skip(wt)?,
            }
        }
        Ok(())
    }
}

/// Parses a 1.0 `Label` message into `(name, value)`.
pub(crate) fn parse_label(b: &[u8], at: usize) -> Result<(Str, Str), IngestError> {
    let mut name = Str { off: at as u32, len: 0 };
    let mut value = name;
    let mut r = Reader::new(b, at);
    while !r.is_empty() {
        let (field, wt) = r.tag()?;
        match field {
            1 => {
                r.expect(wt, LEN)?;
                let (s, sat) = r.bytes()?;
                name = Str::of(sat, s);
            }
            2 => {
                r.expect(wt, LEN)?;
                let (s, sat) = r.bytes()?;
                value = Str::of(sat, s);
            }
            _ => r.skip(wt)?,
        }
    }
    Ok((name, value))
}

fn parse_sample(b: &[u8], at: usize) -> Result<(i64, f64), IngestError> {
    let (mut t, mut v) = (0i64, 0f64);
    let mut r = Reader::new(b, at);
    while !r.is_empty() {
        let (field, wt) = r.tag()?;
        match field {
            1 => {
                r.expect(wt, FIXED64)?;
                v = r.double()?;
            }
            2 => {
                r.expect(wt, VARINT)?;
                t = r.varint()? as i64;
            }
            _ => r.skip(wt)?,
        }
    }
    Ok((t, v))
}

/// Parses a 1.0 `MetricMetadata` message.
pub(crate) fn parse_metadata_v1(b: &[u8], at: usize) -> Result<MetaV1, IngestError> {
    let empty = Str { off: at as u32, len: 0 };
    let mut m = MetaV1 { metric_type: 0, family: empty, help: empty, unit: empty };
    let mut r = Reader::new(b, at);
    while !r.is_empty() {
        let (field, wt) = r.tag()?;
        match field {
            1 => {
                r.expect(wt, VARINT)?;
                m.metric_type = r.varint()? as i32;
            }
            2 | 4 | 5 => {
                r.expect(wt, LEN)?;
                let (s, sat) = r.bytes()?;
                let s = Str::of(sat, s);
                match field {
                    2 => m.family = s,
                    4 => m.help = s,
                    _ => m.unit = s,
                }
            }
            _ => r.skip(wt)?,
        }
    }
    Ok(m)
}

/// Decodes remote-write bodies, reusing its buffers from request to request. Keep one per
/// worker or connection; it is `Send` but not shared.
///
/// ```
/// use ingest::remote_write::{encode, Decoder, Limits, NoopAppender, SeriesData, WriteRequestData};
/// let req = WriteRequestData {
///     series: vec![SeriesData::new([("__name__", "up"), ("job", "node")]).sample(1_000, 1.0)],
///     ..Default::default()
/// };
/// let body = encode::encode_v2(&req);
/// let mut decoder = Decoder::new();
/// let limits = Limits::default();
/// let report = decoder
///     .ingest(Some(ingest::remote_write::CONTENT_TYPE_V2), Some("snappy"), &body,
///             &mut NoopAppender::default(), &limits, 2_000)
///     .unwrap();
/// assert_eq!(report.samples_written, 1);
/// assert_eq!(report.http_status(), 204);
/// ```
#[derive(Default)]
pub struct Decoder {
    snappy: SnappyDecoder,
    /// The decompressed body of the current request is `body[..body_len]`; the vector's
    /// length is the largest body seen (bytes past `body_len` are stale).
    pub(crate) body: Vec<u8>,
    pub(crate) body_len: usize,
    /// 2.0 symbols table of the current request.
    pub(crate) symbols: Vec<Str>,
    pub(crate) series: SeriesScratch,
    pub(crate) hist: HistScratch,
    pub(crate) float_hist: FloatHistogram,
    /// Label pairs of the series being validated (sorted in place).
    pub(crate) pairs: Vec<(Str, Str)>,
    /// Label pairs of the exemplar being validated.
    pub(crate) ex_pairs: Vec<(Str, Str)>,
    /// Known series by label bytes, shared with the other decoders of the same receiver;
    /// `None`: every series is validated and looked up by labels.
    pub(crate) cache: Option<Arc<SeriesCache>>,
    /// A 2.0 series' resolved label bytes, the cache key's input.
    pub(crate) key_buf: Vec<u8>,
    /// 2.0 metadata recorded in the current request, indexed by metric-name symbol ref.
    pub(crate) meta_seen: Vec<Option<MetaRefs>>,
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder")
            .field("body_capacity_bytes", &self.body.capacity())
            .field("symbols_capacity", &self.symbols.capacity())
            .field("series_cache", &self.cache.is_some())
            .finish()
    }
}

impl Decoder {
    /// A decoder with empty buffers; they grow to the largest request seen.
    pub fn new() -> Self {
        Self::default()
    }

    /// A decoder that resolves known series through `cache` (see
    /// [`super::series_cache`]): label validation and the storage lookup by labels are skipped
    /// for label bytes seen before. Every decoder sharing a cache must ingest into the same
    /// storage with the same [`Limits`].
    pub fn with_series_cache(cache: Arc<SeriesCache>) -> Self {
        Decoder { cache: Some(cache), ..Self::default() }
    }

    /// Decompresses `body` (snappy block format) and validates it as a `version` message.
    ///
    /// The decompressed size is read from the snappy header and checked against
    /// [`Limits::max_decompressed_bytes`] before any byte is decompressed.
    ///
    /// # Errors
    /// [`IngestError::BodyTooLarge`] (413), [`IngestError::Snappy`] or
    /// [`IngestError::Protobuf`] (400).
    pub fn decode(&mut self, version: ProtoVersion, body: &[u8], limits: &Limits) -> Result<Request<'_>, IngestError> {
        let len = decompress_len(body).map_err(|e| IngestError::Snappy { reason: e.to_string() })?;
        let limit = limits.effective_max_decompressed_bytes();
        if len > limit {
            return Err(IngestError::BodyTooLarge { decompressed_bytes: len as u64, limit_bytes: limit as u64 });
        }
        // Grow (zeroing only the new part) but never shrink-then-regrow: zeroing the whole
        // buffer for every request showed up in the profile.
        self.body_len = 0;
        if self.body.len() < len {
            self.body.resize(len, 0);
        }
        let n = self
            .snappy
            .decompress(body, &mut self.body[..len])
            .map_err(|e| IngestError::Snappy { reason: e.to_string() })?;
        self.body_len = n;
        self.validate(version)?;
        Ok(Request { dec: self, version })
    }

    /// Negotiates the version from the headers, decodes `body` and ingests it into
    /// `appender`: [`super::negotiate`], [`Decoder::decode`] and [`Request::ingest`] in one.
    ///
    /// # Errors
    /// As those three.
    pub fn ingest<A: storage::Appender + ?Sized>(
        &mut self,
        content_type: Option<&str>,
        content_encoding: Option<&str>,
        body: &[u8],
        appender: &mut A,
        limits: &Limits,
        now_ms: i64,
    ) -> Result<super::IngestReport, IngestError> {
        let version = super::content::negotiate(content_type, content_encoding)?;
        self.decode(version, body, limits)?.ingest(appender, limits, now_ms)
    }

    /// The first pass: checks the wire format of the whole body, collects the symbols table.
    fn validate(&mut self, version: ProtoVersion) -> Result<(), IngestError> {
        let Decoder { body, body_len, symbols, series, hist, .. } = self;
        let body: &[u8] = body.get(..*body_len).unwrap_or_default();
        symbols.clear();
        let mut r = Reader::new(body, 0);
        while !r.is_empty() {
            let (field, wt) = r.tag()?;
            match (version, field) {
                (ProtoVersion::V1, 1) => {
                    r.expect(wt, LEN)?;
                    let (b, at) = r.bytes()?;
                    series.parse_v1(b, at, true)?;
                    check_histograms(body, series, hist)?;
                }
                (ProtoVersion::V1, 3) => {
                    r.expect(wt, LEN)?;
                    let (b, at) = r.bytes()?;
                    parse_metadata_v1(b, at)?;
                }
                (ProtoVersion::V2, 4) => {
                    r.expect(wt, LEN)?;
                    let (b, at) = r.bytes()?;
                    symbols.push(Str::of(at, b));
                }
                (ProtoVersion::V2, 5) => {
                    r.expect(wt, LEN)?;
                    let (b, at) = r.bytes()?;
                    series.parse_v2(b, at)?;
                    check_histograms(body, series, hist)?;
                }
                _ => r.skip(wt)?,
            }
        }
        if symbols.len() > u32::MAX as usize {
            return Err(err("more symbols than 2^32", body.len()));
        }
        Ok(())
    }
}

fn check_histograms(body: &[u8], series: &SeriesScratch, hist: &mut HistScratch) -> Result<(), IngestError> {
    for h in &series.histograms {
        hist.parse(h.get(body), h.off as usize)?;
    }
    Ok(())
}

/// A decoded, wire-valid request, borrowing the [`Decoder`]'s buffers until ingested.
#[derive(Debug)]
pub struct Request<'a> {
    pub(crate) dec: &'a mut Decoder,
    pub(crate) version: ProtoVersion,
}

impl Request<'_> {
    /// The protobuf message version.
    pub fn version(&self) -> ProtoVersion {
        self.version
    }

    /// Size of the decompressed body, bytes.
    pub fn decompressed_bytes(&self) -> usize {
        self.dec.body_len
    }

    /// Entries of the 2.0 symbols table (0 for 1.0).
    pub fn symbols_len(&self) -> usize {
        self.dec.symbols.len()
    }
}

/// Walks an `Exemplar` message of either version: field 2 (value) and field 3 (timestamp, ms)
/// are the same in 1.0 and 2.0; field 1 (labels in 1.0, symbol refs in 2.0) goes to `labels`.
/// Returns `(value, t_ms)`.
fn parse_exemplar(
    b: &[u8],
    at: usize,
    mut labels: impl FnMut(&mut Reader<'_>, u8) -> Result<(), IngestError>,
) -> Result<(f64, i64), IngestError> {
    let (mut value, mut t_ms) = (0.0, 0);
    let mut er = Reader::new(b, at);
    while !er.is_empty() {
        let (f, w) = er.tag()?;
        match f {
            1 => labels(&mut er, w)?,
            2 => {
                er.expect(w, FIXED64)?;
                value = er.double()?;
            }
            3 => {
                er.expect(w, VARINT)?;
                t_ms = er.varint()? as i64;
            }
            _ => er.skip(w)?,
        }
    }
    Ok((value, t_ms))
}
