//! The receiver's series cache (`Decoder::with_series_cache`): a cached decoder ingests exactly
//! what an uncached one does, skips the appender's lookup by labels for known series, resolves
//! a series again when its cached ref went stale, and names a known series' labels in refusals
//! as the uncached path does.

use std::collections::HashMap;
use std::sync::Arc;

use ingest::remote_write::decode::SeriesCache;
use ingest::remote_write::{encode, Decoder, IngestReport, Limits, ProtoVersion, RecordingAppender, SeriesData, WriteRequestData};
use storage::{AppendError, Appender, CommitStats, Exemplar, FloatHistogram, Labels, Metadata, MetricType, SeriesRef};

const NOW_MS: i64 = 1_700_000_000_000;

/// An appender that counts lookups by labels and can drop every series (as head truncation
/// does): dropped refs answer `UnknownSeriesRef`, and a lookup then hands out a new ref.
#[derive(Default)]
struct ForgetfulAppender {
    by_labels: HashMap<Labels, SeriesRef>,
    live: HashMap<SeriesRef, Labels>,
    next: u64,
    lookups: usize,
    samples: Vec<(Labels, i64, f64)>,
}

impl ForgetfulAppender {
    fn forget_all(&mut self) {
        self.by_labels.clear();
        self.live.clear();
    }
}

impl Appender for ForgetfulAppender {
    fn series_ref(&mut self, labels: &Labels) -> Result<SeriesRef, AppendError> {
        self.lookups += 1;
        if let Some(&r) = self.by_labels.get(labels) {
            return Ok(r);
        }
        let r = SeriesRef(self.next);
        self.next += 1;
        self.by_labels.insert(labels.clone(), r);
        self.live.insert(r, labels.clone());
        Ok(r)
    }

    fn append(&mut self, series: SeriesRef, t_ms: i64, v: f64) -> Result<(), AppendError> {
        let l = self.live.get(&series).ok_or(AppendError::UnknownSeriesRef(series))?.clone();
        self.samples.push((l, t_ms, v));
        Ok(())
    }

    fn append_histogram(&mut self, series: SeriesRef, _: i64, _: &FloatHistogram) -> Result<(), AppendError> {
        self.live.get(&series).map(drop).ok_or(AppendError::UnknownSeriesRef(series))
    }

    fn append_st(&mut self, series: SeriesRef, _st_ms: i64, t_ms: i64, v: f64) -> Result<(), AppendError> {
        self.append(series, t_ms, v)
    }

    fn append_histogram_st(&mut self, series: SeriesRef, _st_ms: i64, t_ms: i64, h: &FloatHistogram) -> Result<(), AppendError> {
        self.append_histogram(series, t_ms, h)
    }

    fn append_exemplar(&mut self, series: SeriesRef, _: &Exemplar) -> Result<(), AppendError> {
        self.live.get(&series).map(drop).ok_or(AppendError::UnknownSeriesRef(series))
    }

    fn update_metadata(&mut self, _: &str, _: &Metadata) {}

    fn commit(self) -> storage::Result<CommitStats> {
        Ok(CommitStats::default())
    }

    fn rollback(self) {}
}

/// A request of `n` series (labels deliberately unsorted on the wire for every third), each
/// with one sample at `t_ms` and, for 2.0, metadata.
fn request(n: usize, t_ms: i64) -> WriteRequestData {
    let md = Metadata { metric_type: MetricType::Counter, help: "Requests.".into(), unit: String::new() };
    let series = (0..n)
        .map(|i| {
            let inst = format!("host-{i}:9100");
            let code = if i % 2 == 0 { "200" } else { "500" };
            let pairs: Vec<(&str, &str)> = if i % 3 == 0 {
                vec![("job", "api"), ("__name__", "http_requests_total"), ("instance", &inst), ("code", code)]
            } else {
                vec![("__name__", "http_requests_total"), ("code", code), ("instance", &inst), ("job", "api")]
            };
            SeriesData::new(pairs).sample(t_ms, i as f64).metadata(md.clone())
        })
        .collect();
    WriteRequestData { series, metadata: Vec::new() }
}

fn body(v: ProtoVersion, req: &WriteRequestData) -> Vec<u8> {
    match v {
        ProtoVersion::V1 => encode::encode_v1(req),
        ProtoVersion::V2 => encode::encode_v2(req),
    }
}

fn ingest<A: Appender + ?Sized>(dec: &mut Decoder, v: ProtoVersion, req: &WriteRequestData, app: &mut A) -> IngestReport {
    let limits = Limits::default();
    dec.decode(v, &body(v, req), &limits).and_then(|r| r.ingest(app, &limits, NOW_MS)).expect("valid request")
}

const VERSIONS: [ProtoVersion; 2] = [ProtoVersion::V1, ProtoVersion::V2];

#[test]
fn cached_decoder_ingests_what_an_uncached_one_does() {
    for v in VERSIONS {
        let cache = Arc::new(SeriesCache::default());
        let (mut cached, mut plain) = (Decoder::with_series_cache(Arc::clone(&cache)), Decoder::new());
        let (mut a, mut b) = (RecordingAppender::new(), RecordingAppender::new());
        for round in 0..3 {
            let req = request(50, NOW_MS - 60_000 + round * 15_000);
            let ra = ingest(&mut cached, v, &req, &mut a);
            let rb = ingest(&mut plain, v, &req, &mut b);
            assert_eq!(ra, rb, "{v:?} round {round}");
            assert_eq!(ra.samples_written, 50);
        }
        assert_eq!(a.samples, b.samples, "{v:?}");
        assert_eq!(a.metadata, b.metadata, "{v:?}");
        assert_eq!(cache.len(), 50, "{v:?}: one entry per series");
    }
}

#[test]
fn known_series_skip_the_lookup_by_labels() {
    for v in VERSIONS {
        let mut dec = Decoder::with_series_cache(Arc::new(SeriesCache::default()));
        let mut app = ForgetfulAppender::default();
        ingest(&mut dec, v, &request(20, NOW_MS - 15_000), &mut app);
        assert_eq!(app.lookups, 20, "{v:?}");
        let r = ingest(&mut dec, v, &request(20, NOW_MS), &mut app);
        assert_eq!(app.lookups, 20, "{v:?}: no lookup for known series");
        assert_eq!(r.samples_written, 20);
        assert_eq!(app.samples.len(), 40);
    }
}

#[test]
fn stale_refs_are_resolved_again() {
    for v in VERSIONS {
        let mut dec = Decoder::with_series_cache(Arc::new(SeriesCache::default()));
        let mut app = ForgetfulAppender::default();
        ingest(&mut dec, v, &request(20, NOW_MS - 15_000), &mut app);
        app.forget_all();
        let r = ingest(&mut dec, v, &request(20, NOW_MS), &mut app);
        assert_eq!(r.http_status(), 204, "{v:?}: {:?}", r.error_message());
        assert_eq!(r.samples_written, 20);
        assert_eq!(app.lookups, 40, "{v:?}: every stale series looked up again");
        let newest: Vec<_> = app.samples[20..].iter().map(|s| (s.0.clone(), s.1)).collect();
        let first: Vec<_> = app.samples[..20].iter().map(|s| (s.0.clone(), s.1 + 15_000)).collect();
        assert_eq!(newest, first, "{v:?}: same series, under their new refs");
        // And the new refs are cached: no lookup the next time.
        ingest(&mut dec, v, &request(20, NOW_MS + 1), &mut app);
        assert_eq!(app.lookups, 40);
    }
}

#[test]
fn refusals_of_known_series_name_their_labels() {
    for v in VERSIONS {
        let mut cached = Decoder::with_series_cache(Arc::new(SeriesCache::default()));
        let mut plain = Decoder::new();
        let (mut a, mut b) = (RecordingAppender::new(), RecordingAppender::new());
        ingest(&mut cached, v, &request(5, NOW_MS), &mut a);
        ingest(&mut plain, v, &request(5, NOW_MS), &mut b);
        // Out of order for every series: refused, each naming the series.
        let old = request(5, NOW_MS - 15_000);
        let ra = ingest(&mut cached, v, &old, &mut a);
        let rb = ingest(&mut plain, v, &old, &mut b);
        assert_eq!(ra.http_status(), 400);
        assert_eq!(ra.samples_rejected, 5);
        assert_eq!(ra.rejections, rb.rejections, "{v:?}");
        assert!(ra.rejections[0].series.contains(r#"__name__="http_requests_total""#), "{:?}", ra.rejections[0]);
    }
}
