//! Ingestion: validated series, samples, histograms, exemplars and metadata of one decoded
//! request, appended into the caller's single appender transaction.
//!
//! Semantics follow Prometheus' receiver (`storage/remote/write_handler.go`): an invalid series
//! or a refused sample does not stop the request; the valid rest is appended, and the response
//! is 400 so that the sender drops the request instead of retrying it forever. Refused
//! exemplars are counted and reported but do not turn the response into a 400 (Prometheus only
//! logs them). The caller commits the transaction whatever the status, and answers 5xx only if
//! the commit fails.
//!
//! Per series: labels resolved (2.0 symbol refs bounds-checked) and validated (see
//! [`Rejection`]), sorted, empty values dropped (an empty value is an absent label); the series
//! resolved once with [`Appender::series_ref`]; then the 2.0 created-timestamp zero sample (if
//! enabled), float samples, histograms (integer deltas summed to absolute counts), exemplars,
//! and 2.0 metadata through [`Appender::update_metadata`]. 1.0 `MetricMetadata` entries are
//! recorded likewise, keyed by `metric_family_name`.

use storage::labels::{is_valid_label_name, is_valid_metric_name};
use storage::{Appender, Exemplar, Label, Labels, Metadata, MetricType, SeriesRef, METRIC_NAME};

use super::content::{ProtoVersion, HEADER_EXEMPLARS_WRITTEN, HEADER_HISTOGRAMS_WRITTEN, HEADER_SAMPLES_WRITTEN};
use super::series_cache::{SeriesCache, SeriesKey};
use super::decode::{parse_label, parse_metadata_v1, Decoder, Request, SeriesScratch, Str};
use super::error::{cut, IngestError, Rejection};
use super::limits::{Limits, NameValidation};
use super::wire::{Reader, LEN};

/// What a rejection refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ItemKind {
    /// A whole series (its samples, histograms and exemplars are counted as rejected too).
    Series,
    /// One float sample.
    Sample,
    /// One native histogram sample.
    Histogram,
    /// One exemplar.
    Exemplar,
    /// One metadata entry.
    Metadata,
}

/// One refused item, for the response body and logs.
#[derive(Clone, Debug, PartialEq)]
pub struct RejectedItem {
    /// What was refused.
    pub kind: ItemKind,
    /// The series in Prometheus' text form (`{__name__="up", job="a"}`), as received (lossy
    /// UTF-8, cut to 1 KiB); for 1.0 metadata, the metric family name.
    pub series: String,
    /// The sample's, histogram's or exemplar's timestamp, ms since the epoch.
    pub t_ms: Option<i64>,
    /// Why.
    pub rejection: Rejection,
}

/// The outcome of ingesting one request into the caller's appender (not yet committed).
#[derive(Clone, Debug, PartialEq)]
pub struct IngestReport {
    /// Which protocol the body was.
    pub version: ProtoVersion,
    /// Float samples appended (for `X-Prometheus-Remote-Write-Samples-Written`). Created-
    /// timestamp zero samples are not included.
    pub samples_written: u64,
    /// Native histogram samples appended (`X-Prometheus-Remote-Write-Histograms-Written`).
    pub histograms_written: u64,
    /// Exemplars appended (`X-Prometheus-Remote-Write-Exemplars-Written`).
    pub exemplars_written: u64,
    /// `update_metadata` calls made (2.0 metadata identical to what the request already
    /// recorded for the same metric is recorded once).
    pub metadata_written: u64,
    /// Created-timestamp zero samples and histograms appended (2.0, when enabled).
    pub created_timestamp_zeros_written: u64,
    /// Series refused as a whole.
    pub series_rejected: u64,
    /// Float samples refused (those of refused series included).
    pub samples_rejected: u64,
    /// Histogram samples refused (those of refused series included).
    pub histograms_rejected: u64,
    /// Exemplars refused (those of refused series included).
    pub exemplars_rejected: u64,
    /// The first [`Limits::max_reported_rejections`] refusals with details.
    pub rejections: Vec<RejectedItem>,
    /// True when the response must be 400: a series, sample, histogram or metadata entry was
    /// refused (exemplar refusals alone do not count, as in Prometheus).
    pub bad_request: bool,
}

impl IngestReport {
    fn new(version: ProtoVersion) -> Self {
        IngestReport {
            version,
            samples_written: 0,
            histograms_written: 0,
            exemplars_written: 0,
            metadata_written: 0,
            created_timestamp_zeros_written: 0,
            series_rejected: 0,
            samples_rejected: 0,
            histograms_rejected: 0,
            exemplars_rejected: 0,
            rejections: Vec::new(),
            bad_request: false,
        }
    }

    /// The status to answer once the transaction is committed: 400 if
    /// [`IngestReport::bad_request`], else 204.
    pub fn http_status(&self) -> u16 {
        if self.bad_request {
            400
        } else {
            204
        }
    }

    /// The 2.0 response headers and their values (the spec asks for them on every response to
    /// a 2.0 request; harmless on 1.0).
    pub fn response_headers(&self) -> [(&'static str, u64); 3] {
        [
            (HEADER_SAMPLES_WRITTEN, self.samples_written),
            (HEADER_HISTOGRAMS_WRITTEN, self.histograms_written),
            (HEADER_EXEMPLARS_WRITTEN, self.exemplars_written),
        ]
    }

    /// A response body describing the refusals, `None` when nothing was refused.
    pub fn error_message(&self) -> Option<String> {
        let total = self.series_rejected
            + self.samples_rejected
            + self.histograms_rejected
            + self.exemplars_rejected;
        if self.rejections.is_empty() {
            return None;
        }
        let mut s = String::new();
        for (i, r) in self.rejections.iter().enumerate() {
            if i > 0 {
                s.push_str("; ");
            }
            s.push_str(&r.rejection.to_string());
            s.push_str(" for series ");
            s.push_str(&r.series);
            if let Some(t) = r.t_ms {
                s.push_str(&format!(" at {t} ms"));
            }
        }
        s.push_str(&format!(
            " ({} series, {} samples, {} histograms, {} exemplars refused in total; {} items in all)",
            self.series_rejected, self.samples_rejected, self.histograms_rejected, self.exemplars_rejected, total
        ));
        Some(s)
    }

    fn reject(&mut self, limits: &Limits, kind: ItemKind, fails: bool, t_ms: Option<i64>, rejection: Rejection, series: impl FnOnce() -> String) {
        if fails {
            self.bad_request = true;
        }
        if self.rejections.len() < limits.max_reported_rejections {
            self.rejections.push(RejectedItem { kind, series: series(), t_ms, rejection });
        }
    }
}

impl Request<'_> {
    /// Validates and appends every series of the request into `appender`, one transaction;
    /// the caller commits it (whatever the report's status) and maps a commit failure to 5xx.
    ///
    /// `now_ms` (ms since the epoch) bounds sample timestamps: newer than
    /// `now_ms + limits.max_future_ms` is refused.
    ///
    /// # Errors
    /// Only [`IngestError::Protobuf`], which cannot happen after a successful
    /// [`Decoder::decode`] (the same bytes were walked there); per-item refusals are in the
    /// report.
    pub fn ingest<A: Appender + ?Sized>(self, appender: &mut A, limits: &Limits, now_ms: i64) -> Result<IngestReport, IngestError> {
        let version = self.version;
        let Decoder { body, body_len, symbols, series, hist, float_hist, pairs, ex_pairs, cache, key_buf, meta_seen, .. } =
            &mut *self.dec;
        meta_seen.clear();
        if version == ProtoVersion::V2 {
            meta_seen.resize(symbols.len(), None);
        }
        let body: &[u8] = body.get(..*body_len).unwrap_or_default();
        let mut ctx = Ctx {
            body,
            symbols,
            limits,
            max_t_ms: now_ms.saturating_add(limits.max_future_ms),
            report: IngestReport::new(version),
            meta_seen,
            cache: cache.as_deref(),
            key_buf,
        };
        let mut r = Reader::new(body, 0);
        while !r.is_empty() {
            let (field, wt) = r.tag()?;
            match (version, field) {
                (ProtoVersion::V1, 1) => {
                    r.expect(wt, LEN)?;
                    let (b, at) = r.bytes()?;
                    series.parse_v1(b, at, false)?;
                    ctx.series(appender, series, pairs, ex_pairs, hist, float_hist)?;
                }
                (ProtoVersion::V1, 3) => {
                    r.expect(wt, LEN)?;
                    let (b, at) = r.bytes()?;
                    let m = parse_metadata_v1(b, at)?;
                    ctx.metadata_v1(appender, m.metric_type, m.family, m.help, m.unit);
                }
                (ProtoVersion::V2, 5) => {
                    r.expect(wt, LEN)?;
                    let (b, at) = r.bytes()?;
                    series.parse_v2(b, at)?;
                    ctx.series(appender, series, pairs, ex_pairs, hist, float_hist)?;
                }
                _ => r.skip(wt)?,
            }
        }
        Ok(ctx.report)
    }
}

/// State of one ingestion pass.
struct Ctx<'a> {
    body: &'a [u8],
    symbols: &'a [Str],
    limits: &'a Limits,
    /// Newest accepted timestamp, ms.
    max_t_ms: i64,
    report: IngestReport,
    /// 2.0: the metadata last recorded per metric in this request, indexed by the symbol ref
    /// of the metric name (2.0 senders attach metadata to every series of a metric: recording it
    /// once per metric and request avoids a head lookup and two strings per series).
    meta_seen: &'a mut Vec<Option<super::decode::MetaRefs>>,
    /// Known series by label bytes (see [`super::series_cache`]).
    cache: Option<&'a SeriesCache>,
    /// Reused buffer for a 2.0 series' cache key input.
    key_buf: &'a mut Vec<u8>,
}

/// How a series was resolved to a ref.
enum Resolved {
    /// From the cache under this key: its labels were not validated again, and the ref may be
    /// stale (the head dropped the series since).
    Cached(SeriesKey),
    /// Validated and looked up by labels.
    Looked(Labels),
}

/// A series' labels as [`Ctx::series_data`] needs them: as text for a refusal (rare), and the
/// metric name for 2.0 metadata.
trait SeriesLabels {
    /// Whether the series' ref came from the cache (and may be stale).
    const FROM_CACHE: bool;
    /// Prometheus' text form, as [`Labels`]' `Display`.
    fn text(&self, ctx: &Ctx<'_>) -> String;
    /// The `__name__` value ("" if none).
    fn metric_name<'s>(&'s self, body: &'s [u8]) -> &'s str;
}

impl SeriesLabels for &Labels {
    const FROM_CACHE: bool = false;
    fn text(&self, _: &Ctx<'_>) -> String {
        self.to_string()
    }
    fn metric_name<'s>(&'s self, _: &'s [u8]) -> &'s str {
        Labels::metric_name(self).unwrap_or_default()
    }
}

/// A series resolved through the cache: its labels passed validation when the entry was made,
/// so a [`Labels`] is built from them only when a refusal must name them.
struct LazyLabels<'p> {
    s: &'p SeriesScratch,
    /// 2.0: the resolved label pairs (1.0 parses `s.label_msgs` on demand).
    pairs: &'p [(Str, Str)],
    v2: bool,
}

impl LazyLabels<'_> {
    fn pairs(&self, body: &[u8]) -> Vec<(Str, Str)> {
        let mut v = Vec::new();
        if self.v2 {
            v.extend_from_slice(self.pairs);
        } else if label_pairs(body, self.s, &mut v).is_err() {
            v.clear();
        }
        v
    }
}

impl SeriesLabels for LazyLabels<'_> {
    const FROM_CACHE: bool = true;
    fn text(&self, ctx: &Ctx<'_>) -> String {
        let mut v = self.pairs(ctx.body);
        match ctx.labels(&mut v) {
            Ok(l) => l.to_string(),
            Err(_) => ctx.describe(&v),
        }
    }
    fn metric_name<'s>(&'s self, body: &'s [u8]) -> &'s str {
        let is_name = |n: &Str| n.get(body) == METRIC_NAME.as_bytes();
        let value = if self.v2 {
            // Allocation-free: 2.0 sends metadata with every series.
            self.pairs.iter().find(|(n, _)| is_name(n)).map(|&(_, v)| v)
        } else {
            self.pairs(body).into_iter().find(|(n, _)| is_name(n)).map(|(_, v)| v)
        };
        value.and_then(|v| std::str::from_utf8(v.get(body)).ok()).unwrap_or_default()
    }
}

/// Parses the 1.0 `Label` messages of `s` into `pairs`.
fn label_pairs(body: &[u8], s: &SeriesScratch, pairs: &mut Vec<(Str, Str)>) -> Result<(), IngestError> {
    pairs.clear();
    for m in &s.label_msgs {
        pairs.push(parse_label(m.get(body), m.off as usize)?);
    }
    Ok(())
}

/// True for the answer a stale cached ref gets.
fn is_unknown_ref(e: &Rejection) -> bool {
    matches!(e, Rejection::Append(storage::AppendError::UnknownSeriesRef(_)))
}

fn metric_type(t: i32) -> MetricType {
    match t {
        1 => MetricType::Counter,
        2 => MetricType::Gauge,
        3 => MetricType::Histogram,
        4 => MetricType::GaugeHistogram,
        5 => MetricType::Summary,
        6 => MetricType::Info,
        7 => MetricType::StateSet,
        _ => MetricType::Unknown,
    }
}

impl Ctx<'_> {
    fn bytes(&self, s: Str) -> &[u8] {
        s.get(self.body)
    }

    /// A 2.0 symbol by ref.
    fn symbol(&self, r: u32) -> Result<Str, Rejection> {
        // A match, not `ok_or`: the eagerly built (and dropped) Rejection showed up in the 2.0
        // profile.
        match self.symbols.get(r as usize) {
            Some(&s) => Ok(s),
            None => Err(Rejection::BadSymbolRef { symbol_ref: r, symbols: self.symbols.len() }),
        }
    }

    /// Resolves 2.0 refs into `(name, value)` pairs.
    fn resolve(&self, refs: &[u32], out: &mut Vec<(Str, Str)>) -> Result<(), Rejection> {
        out.clear();
        if !refs.len().is_multiple_of(2) {
            return Err(Rejection::OddLabelRefs { len: refs.len() });
        }
        for p in refs.chunks_exact(2) {
            out.push((self.symbol(p[0])?, self.symbol(p[1])?));
        }
        Ok(())
    }

    /// Text form of raw pairs, for rejection reports only.
    fn describe(&self, pairs: &[(Str, Str)]) -> String {
        let mut s = String::from("{");
        for (i, (n, v)) in pairs.iter().enumerate() {
            if i > 0 {
                s.push_str(", ");
            }
            s.push_str(&String::from_utf8_lossy(self.bytes(*n)));
            s.push('=');
            s.push_str(&format!("{:?}", String::from_utf8_lossy(self.bytes(*v))));
        }
        s.push('}');
        cut(&s, 1024)
    }

    /// Validates and sorts `pairs` and builds the series' canonical label set.
    fn labels(&self, pairs: &mut [(Str, Str)]) -> Result<Labels, Rejection> {
        let l = self.limits;
        if pairs.len() > l.max_labels_per_series {
            return Err(Rejection::TooManyLabels { count: pairs.len(), limit: l.max_labels_per_series });
        }
        let body = self.body;
        // Senders should send sorted labels (both specs say so): check before sorting.
        if !pairs.is_sorted_by(|a, b| a.0.get(body) <= b.0.get(body)) {
            pairs.sort_unstable_by(|a, b| a.0.get(body).cmp(b.0.get(body)));
        }
        let mut out = Vec::with_capacity(pairs.len());
        let mut prev: &str = "";
        let mut has_name = false;
        for (i, (n, v)) in pairs.iter().enumerate() {
            let name = std::str::from_utf8(n.get(body)).map_err(|_| Rejection::InvalidUtf8)?;
            let value = std::str::from_utf8(v.get(body)).map_err(|_| Rejection::InvalidUtf8)?;
            if name.is_empty() {
                return Err(Rejection::EmptyLabelName);
            }
            if name.len() > l.max_label_name_bytes {
                return Err(Rejection::LabelNameTooLong { len_bytes: name.len(), limit_bytes: l.max_label_name_bytes });
            }
            if i > 0 && name == prev {
                return Err(Rejection::DuplicateLabelName { name: cut(name, 256) });
            }
            prev = name;
            if value.len() > l.max_label_value_bytes {
                return Err(Rejection::LabelValueTooLong {
                    name: cut(name, 256),
                    len_bytes: value.len(),
                    limit_bytes: l.max_label_value_bytes,
                });
            }
            if l.name_validation == NameValidation::Legacy && !is_valid_label_name(name) {
                return Err(Rejection::InvalidLabelName { name: cut(name, 256) });
            }
            if name == METRIC_NAME {
                if value.is_empty() {
                    return Err(Rejection::MissingMetricName);
                }
                if l.name_validation == NameValidation::Legacy && !is_valid_metric_name(value) {
                    return Err(Rejection::InvalidMetricName { name: cut(value, 256) });
                }
                has_name = true;
            }
            if !value.is_empty() {
                out.push(Label::new(name, value));
            }
        }
        if !has_name {
            return Err(Rejection::MissingMetricName);
        }
        Ok(Labels::from_sorted_unchecked(out))
    }

    fn reject_series(&mut self, s: &SeriesScratch, rejection: Rejection, series: String) {
        let r = &mut self.report;
        r.series_rejected += 1;
        r.samples_rejected += s.samples.len() as u64;
        r.histograms_rejected += s.histograms.len() as u64;
        r.exemplars_rejected += s.exemplars.len() as u64;
        r.reject(self.limits, ItemKind::Series, true, None, rejection, || series);
    }

    /// The cache key of series `s` (whose 2.0 labels are resolved into `pairs`), if there is
    /// a cache.
    fn cache_key(&mut self, s: &SeriesScratch, pairs: &[(Str, Str)]) -> Option<SeriesKey> {
        let cache = self.cache?;
        match self.report.version {
            ProtoVersion::V1 => Some(cache.key(ProtoVersion::V1, s.label_bytes?.get(self.body))),
            ProtoVersion::V2 => {
                let (body, buf) = (self.body, &mut *self.key_buf);
                buf.clear();
                for (n, v) in pairs {
                    for x in [n, v] {
                        let b = x.get(body);
                        buf.extend_from_slice(&(b.len() as u32).to_le_bytes());
                        buf.extend_from_slice(b);
                    }
                }
                Some(cache.key(ProtoVersion::V2, buf))
            }
        }
    }

    /// Resolves series `s` to a ref: from the cache if `use_cache` and it is known, else by
    /// validating its labels (parsed into `pairs`) and asking the appender (and then
    /// remembering it). `None` when the series was refused (already reported).
    ///
    /// # Errors
    /// [`IngestError::Protobuf`] only if a `Label` message the validation pass accepted fails
    /// to parse (it cannot).
    fn resolve_series<A: Appender + ?Sized>(
        &mut self,
        app: &mut A,
        s: &SeriesScratch,
        pairs: &mut Vec<(Str, Str)>,
        use_cache: bool,
    ) -> Result<Option<(SeriesRef, Resolved)>, IngestError> {
        let v2 = self.report.version == ProtoVersion::V2;
        if v2 {
            if let Err(e) = self.resolve(&s.label_refs, pairs) {
                let desc = format!("with labels_refs {:?}", &s.label_refs[..s.label_refs.len().min(32)]);
                self.reject_series(s, e, desc);
                return Ok(None);
            }
        }
        let key = self.cache_key(s, pairs);
        if let (Some(k), Some(cache), true) = (key, self.cache, use_cache) {
            if let Some(r) = cache.get(k) {
                return Ok(Some((r, Resolved::Cached(k))));
            }
        }
        if !v2 {
            label_pairs(self.body, s, pairs)?;
        }
        let labels = match self.labels(pairs) {
            Ok(l) => l,
            Err(e) => {
                let desc = self.describe(pairs);
                self.reject_series(s, e, desc);
                return Ok(None);
            }
        };
        match app.series_ref(&labels) {
            Ok(r) => {
                if let (Some(k), Some(cache)) = (key, self.cache) {
                    cache.insert(k, r);
                }
                Ok(Some((r, Resolved::Looked(labels))))
            }
            Err(e) => {
                self.reject_series(s, Rejection::Append(e), labels.to_string());
                Ok(None)
            }
        }
    }

    fn series<A: Appender + ?Sized>(
        &mut self,
        app: &mut A,
        s: &SeriesScratch,
        pairs: &mut Vec<(Str, Str)>,
        ex_pairs: &mut Vec<(Str, Str)>,
        hist: &mut super::histogram::HistScratch,
        fh: &mut storage::FloatHistogram,
    ) -> Result<(), IngestError> {
        let Some((sref, how)) = self.resolve_series(app, s, pairs, true)? else {
            return Ok(());
        };
        match how {
            Resolved::Looked(labels) => self.series_data(app, sref, &labels, s, ex_pairs, hist, fh).map(drop),
            Resolved::Cached(key) => {
                let lazy = LazyLabels { s, pairs, v2: self.report.version == ProtoVersion::V2 };
                let stale = self.series_data(app, sref, lazy, s, ex_pairs, hist, fh)?;
                if stale {
                    // The head dropped the series: forget the ref and resolve it again. The
                    // stale attempt appended nothing (its first append was refused).
                    if let Some(c) = self.cache {
                        c.remove(key);
                    }
                    if let Some((sref, Resolved::Looked(labels))) = self.resolve_series(app, s, pairs, false)? {
                        self.series_data(app, sref, &labels, s, ex_pairs, hist, fh)?;
                    }
                }
                Ok(())
            }
        }
    }

    /// Appends the samples, histograms, exemplars and metadata of series `s` (ref `sref`).
    /// Returns `true`, having appended and reported nothing, when the very first append
    /// answered `UnknownSeriesRef` and `labels` came from the cache: the ref is stale.
    #[allow(clippy::too_many_arguments)]
    fn series_data<A: Appender + ?Sized, L: SeriesLabels>(
        &mut self,
        app: &mut A,
        sref: SeriesRef,
        labels: L,
        s: &SeriesScratch,
        pairs: &mut Vec<(Str, Str)>,
        hist: &mut super::histogram::HistScratch,
        fh: &mut storage::FloatHistogram,
    ) -> Result<bool, IngestError> {
        let v2 = self.report.version == ProtoVersion::V2;
        let may_be_stale = L::FROM_CACHE;
        // Until something was appended or refused for another reason, an unknown-ref answer
        // means a stale cache entry.
        let mut first = true;
        let ct_on = v2 && self.limits.created_timestamp_zero_ingestion && s.created_t_ms != 0;
        // Remote-write 2.0's created timestamp is the start timestamp of every sample of the
        // series in this request (1.0 has none: 0 = unknown); PromQL's rate family reads it.
        let st_ms = if v2 { s.created_t_ms } else { 0 };
        if ct_on {
            if let Some(&(t0, _)) = s.samples.first() {
                // Prometheus `AppendCTZeroSample`: only before the first sample; an order error
                // (the zero sample was ingested with an earlier request) is expected and ignored.
                if s.created_t_ms < t0 {
                    match app.append(sref, s.created_t_ms, 0.0) {
                        Ok(()) => {
                            self.report.created_timestamp_zeros_written += 1;
                            first = false;
                        }
                        Err(storage::AppendError::UnknownSeriesRef(_)) if may_be_stale => return Ok(true),
                        Err(_) => first = false,
                    }
                }
            }
        }
        for &(t_ms, v) in &s.samples {
            let res = if t_ms > self.max_t_ms {
                Err(Rejection::TooFarInFuture { t_ms, max_t_ms: self.max_t_ms })
            } else {
                app.append_st(sref, st_ms, t_ms, v).map_err(Rejection::Append)
            };
            match res {
                Ok(()) => self.report.samples_written += 1,
                Err(e) if first && may_be_stale && is_unknown_ref(&e) => return Ok(true),
                Err(e) => {
                    self.report.samples_rejected += 1;
                    let desc = labels.text(self);
                    self.report.reject(self.limits, ItemKind::Sample, true, Some(t_ms), e, || desc);
                }
            }
            first = false;
        }
        for (i, h) in s.histograms.iter().enumerate() {
            hist.parse(h.get(self.body), h.off as usize)?;
            let t_ms = hist.t_ms;
            let mut res = if t_ms > self.max_t_ms {
                Err(Rejection::TooFarInFuture { t_ms, max_t_ms: self.max_t_ms })
            } else {
                hist.to_float(fh)
            };
            if res.is_ok() {
                if i == 0 && ct_on && s.created_t_ms < t_ms {
                    self.created_zero_histogram(app, sref, s.created_t_ms, fh);
                }
                res = app.append_histogram_st(sref, st_ms, t_ms, fh).map_err(Rejection::Append);
            }
            match res {
                Ok(()) => self.report.histograms_written += 1,
                Err(e) if first && may_be_stale && is_unknown_ref(&e) => return Ok(true),
                Err(e) => {
                    self.report.histograms_rejected += 1;
                    let desc = labels.text(self);
                    self.report.reject(self.limits, ItemKind::Histogram, true, Some(t_ms), e, || desc);
                }
            }
            first = false;
        }
        for ex in &s.exemplars {
            let res = self.exemplar(app, sref, s, ex, v2, pairs);
            match res {
                Ok(()) => self.report.exemplars_written += 1,
                Err(e) if first && may_be_stale && is_unknown_ref(&e) => return Ok(true),
                Err(e) => {
                    self.report.exemplars_rejected += 1;
                    // A malformed reference is a bad request; storage refusals and the length
                    // limit are not (Prometheus only counts them).
                    let fails = matches!(e, Rejection::BadSymbolRef { .. } | Rejection::OddLabelRefs { .. } | Rejection::InvalidUtf8);
                    let desc = labels.text(self);
                    self.report.reject(self.limits, ItemKind::Exemplar, fails, Some(ex.t_ms), e, || desc);
                }
            }
            first = false;
        }
        if let Some(m) = s.meta {
            if let Some(slot) = self.name_ref(&s.label_refs).and_then(|r| self.meta_seen.get_mut(r as usize)) {
                if *slot == Some(m) {
                    return Ok(false);
                }
                *slot = Some(m);
            }
            let body = self.body;
            if let Err(e) = self.metadata_v2(app, labels.metric_name(body), m) {
                let desc = labels.text(self);
                self.report.reject(self.limits, ItemKind::Metadata, true, None, e, || desc);
            }
        }
        Ok(false)
    }

    /// Prometheus `AppendHistogramCTZeroSample`: an empty histogram with the counter-reset
    /// hint, keeping schema, zero threshold and custom bounds of the first real one.
    fn created_zero_histogram<A: Appender + ?Sized>(&mut self, app: &mut A, sref: SeriesRef, ct_ms: i64, like: &storage::FloatHistogram) {
        let zero = storage::FloatHistogram {
            counter_reset_hint: storage::histogram::CounterResetHint::CounterReset,
            schema: like.schema,
            zero_threshold: like.zero_threshold,
            custom_values: like.custom_values.clone(),
            ..Default::default()
        };
        if app.append_histogram(sref, ct_ms, &zero).is_ok() {
            self.report.created_timestamp_zeros_written += 1;
        }
    }

    fn exemplar<A: Appender + ?Sized>(
        &self,
        app: &mut A,
        sref: SeriesRef,
        s: &SeriesScratch,
        ex: &super::decode::ExemplarDesc,
        v2: bool,
        pairs: &mut Vec<(Str, Str)>,
    ) -> Result<(), Rejection> {
        let (a, b) = (ex.labels_start as usize, ex.labels_end as usize);
        if v2 {
            self.resolve(s.exemplar_label_refs.get(a..b).unwrap_or(&[]), pairs)?;
        } else {
            pairs.clear();
            pairs.extend_from_slice(s.exemplar_labels.get(a..b).unwrap_or(&[]));
        }
        let mut runes = 0usize;
        let mut kv = Vec::with_capacity(pairs.len());
        for (n, v) in pairs.iter() {
            let n = std::str::from_utf8(self.bytes(*n)).map_err(|_| Rejection::InvalidUtf8)?;
            let v = std::str::from_utf8(self.bytes(*v)).map_err(|_| Rejection::InvalidUtf8)?;
            runes += n.chars().count() + v.chars().count();
            kv.push((n, v));
        }
        if runes > self.limits.max_exemplar_label_runes {
            return Err(Rejection::ExemplarLabelsTooLong { runes, limit: self.limits.max_exemplar_label_runes });
        }
        let e = Exemplar { labels: Labels::from_pairs(kv), value: ex.value, t_ms: ex.t_ms };
        app.append_exemplar(sref, &e).map_err(Rejection::Append)
    }

    /// Records 2.0 metadata for metric `name`; a bad help or unit ref is returned for the
    /// caller to report with the series' labels.
    /// The symbol ref of a 2.0 series' `__name__` value.
    fn name_ref(&self, refs: &[u32]) -> Option<u32> {
        let body = self.body;
        refs.chunks_exact(2)
            .find(|p| self.symbols.get(p[0] as usize).is_some_and(|s| s.get(body) == METRIC_NAME.as_bytes()))
            .map(|p| p[1])
    }

    fn metadata_v2<A: Appender + ?Sized>(&mut self, app: &mut A, name: &str, m: super::decode::MetaRefs) -> Result<(), Rejection> {
        // Ref 0 is the spec's mandatory empty first symbol; tolerate a table without it.
        let text = |r: u32| -> Result<String, Rejection> {
            if r == 0 && self.symbols.is_empty() {
                return Ok(String::new());
            }
            let s = self.symbol(r)?;
            Ok(String::from_utf8_lossy(self.bytes(s)).into_owned())
        };
        let md = Metadata { metric_type: metric_type(m.metric_type), help: text(m.help_ref)?, unit: text(m.unit_ref)? };
        if md == Metadata::default() {
            // Nothing known: do not overwrite what an earlier request said.
            return Ok(());
        }
        app.update_metadata(name, &md);
        self.report.metadata_written += 1;
        Ok(())
    }

    fn metadata_v1<A: Appender + ?Sized>(&mut self, app: &mut A, t: i32, family: Str, help: Str, unit: Str) {
        let Ok(name) = std::str::from_utf8(self.bytes(family)) else {
            let desc = String::from_utf8_lossy(self.bytes(family)).into_owned();
            self.report.reject(self.limits, ItemKind::Metadata, true, None, Rejection::InvalidUtf8, || desc);
            return;
        };
        if name.is_empty() {
            self.report.reject(self.limits, ItemKind::Metadata, true, None, Rejection::MissingMetricName, String::new);
            return;
        }
        let md = Metadata {
            metric_type: metric_type(t),
            help: String::from_utf8_lossy(self.bytes(help)).into_owned(),
            unit: String::from_utf8_lossy(self.bytes(unit)).into_owned(),
        };
        app.update_metadata(name, &md);
        self.report.metadata_written += 1;
    }
}
