//! Requests into cumulative RED series with Grafana Beyla's Prometheus names and labels.
//!
//! Per (service_name, server_port, http_request_method, http_response_status_code,
//! http_route) three classic histograms are kept: `http_server_request_duration_seconds`,
//! `http_server_request_body_size_bytes` and `http_server_response_body_size_bytes`, each
//! written as `_bucket{le}` (cumulative, `+Inf` included), `_sum` and `_count`, plus `instance`
//! and `job`. Values only grow (they are counters since start), so `rate()` and
//! `histogram_quantile()` work on them as on any scraped histogram. A group not observed for the
//! series TTL (Beyla's `ttl`, default 5 min) is written once more as staleness markers and
//! dropped, as Prometheus does for a series that disappears from a scrape.

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Instant;

use hashbrown::{Equivalent, HashMap};

use storage::{AppendError, Appender, Labels, Metadata, MetricType, SeriesRef};

use super::parse::Request;

/// `http_server_request_duration_seconds` bucket bounds (Beyla's defaults, the OpenTelemetry
/// semantic conventions' boundaries), seconds; `+Inf` is implied.
pub const DURATION_BUCKETS_SECONDS: [f64; 15] =
    [0.0, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0];

/// Body size bucket bounds (Beyla's `request_size_histogram`/`response_size_histogram`
/// defaults), bytes; `+Inf` is implied.
pub const BODY_SIZE_BUCKETS_BYTES: [f64; 10] = [0.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0, 8192.0];

/// Metric family names.
pub const DURATION_METRIC: &str = "http_server_request_duration_seconds";
/// Request body size family.
pub const REQUEST_BODY_METRIC: &str = "http_server_request_body_size_bytes";
/// Response body size family.
pub const RESPONSE_BODY_METRIC: &str = "http_server_response_body_size_bytes";

/// A classic histogram: per-bucket (non-cumulative) counts, sum and count.
#[derive(Clone, Debug, PartialEq)]
pub struct Histogram {
    bounds: &'static [f64],
    /// `bounds.len() + 1` counts; the last is the `+Inf` overflow.
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Histogram { bounds, counts: vec![0; bounds.len() + 1], sum: 0.0, count: 0 }
    }

    /// Records one observation (Prometheus: counted in every bucket with `v <= le`).
    pub fn observe(&mut self, v: f64) {
        let i = self.bounds.iter().position(|&le| v <= le).unwrap_or(self.bounds.len());
        self.counts[i] += 1;
        self.sum += v;
        self.count += 1;
    }

    /// Cumulative counts per bound, `+Inf` last (the `_bucket` values).
    pub fn cumulative(&self) -> Vec<u64> {
        self.counts
            .iter()
            .scan(0u64, |acc, c| {
                *acc += c;
                Some(*acc)
            })
            .collect()
    }

    /// Sum of observations.
    pub fn sum(&self) -> f64 {
        self.sum
    }

    /// Number of observations.
    pub fn count(&self) -> u64 {
        self.count
    }
}

/// The identity of one group of series (all but `instance`, `job` and `le`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct SeriesKey {
    /// `service_name`.
    pub service_name: Arc<str>,
    /// `server_port`.
    pub server_port: u16,
    /// `http_request_method`.
    pub method: &'static str,
    /// `http_response_status_code` (0: closed without a response).
    pub status: u16,
    /// `http_route` (shared with the requests of its paths: no allocation per request).
    pub route: Arc<str>,
}

/// A [`SeriesKey`] borrowed from a request: the drain looks its group up with it, so that a
/// request of a known group clones no `Arc` (two atomic increments and decrements per request).
/// Hashes as the key it borrows (both hash through [`KeyRef::hash`]).
#[derive(Clone, Copy, Debug)]
struct KeyRef<'a> {
    service_name: &'a str,
    server_port: u16,
    method: &'a str,
    status: u16,
    route: &'a str,
}

/// Equal strings; the drain's strings are shared (one `Arc` per route and service, methods
/// from one table), so most equal ones are the same bytes and skip the comparison.
#[inline]
fn same(a: &str, b: &str) -> bool {
    (std::ptr::eq(a.as_ptr(), b.as_ptr()) && a.len() == b.len()) || a == b
}

impl PartialEq for KeyRef<'_> {
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        self.server_port == other.server_port
            && self.status == other.status
            && same(self.route, other.route)
            && same(self.method, other.method)
            && same(self.service_name, other.service_name)
    }
}

impl Eq for KeyRef<'_> {}

/// The hash of the route, port, status and method; not of the service name: a host's servers
/// are few, and keys that differ only there are told apart by equality. (A hash of a subset of
/// the fields that equality compares stays consistent with it.)
impl Hash for KeyRef<'_> {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        let method = self.method.as_bytes();
        let head = u64::from(self.server_port) << 48
            | u64::from(self.status) << 32
            | (method.len() as u64 & 0xff) << 16
            | u64::from(method.first().copied().unwrap_or(0)) << 8
            | u64::from(method.last().copied().unwrap_or(0));
        state.write_u64(head);
        state.write(self.route.as_bytes());
    }
}

impl SeriesKey {
    #[inline]
    fn as_ref(&self) -> KeyRef<'_> {
        KeyRef {
            service_name: &self.service_name,
            server_port: self.server_port,
            method: self.method,
            status: self.status,
            route: &self.route,
        }
    }
}

/// As [`KeyRef`] hashes (string contents, never addresses, and a subset of the fields equality
/// compares), so equal keys hash equally and a borrowed key finds its owned one.
impl Hash for SeriesKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_ref().hash(state);
    }
}

impl Equivalent<SeriesKey> for KeyRef<'_> {
    #[inline]
    fn equivalent(&self, key: &SeriesKey) -> bool {
        *self == key.as_ref()
    }
}

/// The three histograms of one [`SeriesKey`].
#[derive(Clone, Debug)]
pub struct Red {
    /// Duration, seconds.
    pub duration: Histogram,
    /// Request body size, bytes.
    pub request_body: Histogram,
    /// Response body size, bytes.
    pub response_body: Histogram,
    /// Series refs in [`Aggregator::samples_of`] order, once resolved.
    refs: Option<Vec<SeriesRef>>,
    /// When the group last saw a request.
    last_seen: Instant,
}

/// What one flush wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlushStats {
    /// Samples accepted by the appender.
    pub samples: u64,
    /// Samples refused (counted, the rest of the flush goes on).
    pub rejected: u64,
    /// Groups expired by this flush (written as staleness markers, then dropped).
    pub expired_groups: u64,
}

/// Cumulative RED histograms for every observed series group.
#[derive(Debug)]
pub struct Aggregator {
    instance: String,
    job: Option<String>,
    groups: HashMap<SeriesKey, Red>,
    duration_le: Vec<String>,
    body_le: Vec<String>,
}

fn le_strings(bounds: &[f64]) -> Vec<String> {
    bounds.iter().map(|b| format!("{b}")).chain(std::iter::once("+Inf".to_string())).collect()
}

impl Aggregator {
    /// An empty aggregator. `job` is the `job` label (the service name when `None`).
    pub fn new(instance: String, job: Option<String>) -> Self {
        Aggregator {
            instance,
            job,
            groups: HashMap::new(),
            duration_le: le_strings(&DURATION_BUCKETS_SECONDS),
            body_le: le_strings(&BODY_SIZE_BUCKETS_BYTES),
        }
    }

    /// Adds one request, seen at `now`, to its group.
    #[inline]
    pub fn observe(&mut self, service_name: &Arc<str>, r: &Request, now: Instant) {
        let key = KeyRef { service_name, server_port: r.port, method: r.method, status: r.status, route: &r.route };
        let red = match self.groups.get_mut(&key) {
            Some(red) => red,
            None => {
                let key = SeriesKey {
                    service_name: Arc::clone(service_name),
                    server_port: r.port,
                    method: r.method,
                    status: r.status,
                    route: Arc::clone(&r.route),
                };
                self.groups.entry(key).or_insert_with(|| Red {
                    duration: Histogram::new(&DURATION_BUCKETS_SECONDS),
                    request_body: Histogram::new(&BODY_SIZE_BUCKETS_BYTES),
                    response_body: Histogram::new(&BODY_SIZE_BUCKETS_BYTES),
                    refs: None,
                    last_seen: now,
                })
            }
        };
        red.last_seen = now;
        red.duration.observe(r.duration_seconds);
        red.request_body.observe(r.request_body_bytes as f64);
        red.response_body.observe(r.response_body_bytes as f64);
    }

    /// The groups observed so far.
    pub fn groups(&self) -> impl Iterator<Item = (&SeriesKey, &Red)> {
        self.groups.iter()
    }

    /// Number of series a flush writes.
    pub fn series_count(&self) -> usize {
        self.groups.len() * (DURATION_BUCKETS_SECONDS.len() + 2 * BODY_SIZE_BUCKETS_BYTES.len() + 3 * 3)
    }

    /// The labels and current values of every series of one group, in a fixed order.
    fn samples_of(&self, key: &SeriesKey, red: &Red, with_labels: bool) -> Vec<(Option<Labels>, f64)> {
        let port = key.server_port.to_string();
        let status = key.status.to_string();
        let job = self.job.as_deref().unwrap_or(&key.service_name);
        let base = [
            ("http_request_method", key.method),
            ("http_response_status_code", status.as_str()),
            ("http_route", &*key.route),
            ("server_port", port.as_str()),
            ("service_name", &key.service_name),
            ("instance", self.instance.as_str()),
            ("job", job),
        ];
        let labels = |name: String, le: Option<&str>| -> Option<Labels> {
            with_labels.then(|| {
                Labels::from_pairs(
                    base.iter()
                        .map(|&(n, v)| (n.to_string(), v.to_string()))
                        .chain(std::iter::once(("__name__".to_string(), name)))
                        .chain(le.map(|le| ("le".to_string(), le.to_string()))),
                )
            })
        };
        let mut out = Vec::with_capacity(44);
        for (family, h, les) in [
            (DURATION_METRIC, &red.duration, &self.duration_le),
            (REQUEST_BODY_METRIC, &red.request_body, &self.body_le),
            (RESPONSE_BODY_METRIC, &red.response_body, &self.body_le),
        ] {
            for (le, c) in les.iter().zip(h.cumulative()) {
                out.push((labels(format!("{family}_bucket"), Some(le)), c as f64));
            }
            out.push((labels(format!("{family}_sum"), None), h.sum()));
            out.push((labels(format!("{family}_count"), None), h.count() as f64));
        }
        out
    }

    /// Writes every series' current cumulative value at `t_ms` into `app` (the caller commits).
    /// Groups last seen before `expire_before` get a staleness marker instead and are dropped.
    /// Series refs are cached across flushes and re-resolved when the storage no longer knows
    /// one. A refused sample is counted and skipped.
    pub fn write_to<A: Appender>(&mut self, app: &mut A, t_ms: i64, expire_before: Option<Instant>) -> FlushStats {
        let mut stats = FlushStats::default();
        for (family, help, unit) in [
            (DURATION_METRIC, "Duration of HTTP server requests, observed by eBPF.", "seconds"),
            (REQUEST_BODY_METRIC, "Size of HTTP server request bodies, observed by eBPF.", "bytes"),
            (RESPONSE_BODY_METRIC, "Size of HTTP server response bodies, observed by eBPF.", "bytes"),
        ] {
            app.update_metadata(
                family,
                &Metadata { metric_type: MetricType::Histogram, help: help.to_string(), unit: unit.to_string() },
            );
        }
        let mut keys: Vec<SeriesKey> = self.groups.keys().cloned().collect();
        keys.sort();
        for key in keys {
            let Some(red) = self.groups.get(&key) else { continue };
            let expired = expire_before.is_some_and(|e| red.last_seen < e);
            let cached = red.refs.clone();
            let values = self.samples_of(&key, red, cached.is_none());
            let mut refs = cached.unwrap_or_default();
            let resolve = refs.is_empty();
            let mut stale_refs = false;
            for (i, (labels, v)) in values.into_iter().enumerate() {
                let v = if expired { storage::stale_nan() } else { v };
                let r = if resolve {
                    let Some(labels) = labels else { continue };
                    match app.series_ref(&labels) {
                        Ok(r) => {
                            refs.push(r);
                            r
                        }
                        Err(_) => {
                            stats.rejected += 1;
                            stale_refs = true;
                            continue;
                        }
                    }
                } else {
                    refs[i]
                };
                match app.append(r, t_ms, v) {
                    Ok(()) => stats.samples += 1,
                    Err(AppendError::UnknownSeriesRef(_)) => {
                        stats.rejected += 1;
                        stale_refs = true;
                    }
                    Err(_) => stats.rejected += 1,
                }
            }
            if expired {
                self.groups.remove(&key);
                stats.expired_groups += 1;
            } else if let Some(red) = self.groups.get_mut(&key) {
                red.refs = if stale_refs { None } else { Some(refs) };
            }
        }
        stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ebpf::parse::Request;

    #[test]
    fn histogram_buckets_are_inclusive_upper_bounds() {
        let mut h = Histogram::new(&DURATION_BUCKETS_SECONDS);
        for v in [0.0, 0.005, 0.0051, 0.3, 11.0] {
            h.observe(v);
        }
        let c = h.cumulative();
        assert_eq!(c.len(), 16);
        assert_eq!(c[0], 1); // le=0
        assert_eq!(c[1], 2); // le=0.005 (inclusive)
        assert_eq!(c[2], 3); // le=0.01
        assert_eq!(c[8], 4); // le=0.5
        assert_eq!(c[14], 4); // le=10
        assert_eq!(c[15], 5); // +Inf
        assert_eq!(h.count(), 5);
        assert!((h.sum() - 11.3101).abs() < 1e-9);
    }

    /// Keeps every appended sample with its labels.
    #[derive(Default)]
    struct Collect {
        series: Vec<Labels>,
        samples: Vec<(Labels, i64, f64)>,
    }

    impl Appender for Collect {
        fn series_ref(&mut self, labels: &Labels) -> Result<SeriesRef, AppendError> {
            self.series.push(labels.clone());
            Ok(SeriesRef(self.series.len() as u64 - 1))
        }
        fn append(&mut self, r: SeriesRef, t_ms: i64, v: f64) -> Result<(), AppendError> {
            let l = self.series.get(r.0 as usize).cloned().ok_or(AppendError::UnknownSeriesRef(r))?;
            self.samples.push((l, t_ms, v));
            Ok(())
        }
        fn append_histogram(&mut self, r: SeriesRef, _: i64, _: &storage::FloatHistogram) -> Result<(), AppendError> {
            Err(AppendError::UnknownSeriesRef(r))
        }
        fn append_exemplar(&mut self, r: SeriesRef, _: &storage::Exemplar) -> Result<(), AppendError> {
            Err(AppendError::UnknownSeriesRef(r))
        }
        fn update_metadata(&mut self, _: &str, _: &Metadata) {}
        fn commit(self) -> storage::Result<storage::CommitStats> {
            Ok(storage::CommitStats::default())
        }
        fn rollback(self) {}
    }

    #[test]
    fn writes_beyla_series_with_cached_refs() {
        let mut agg = Aggregator::new("host-a".into(), None);
        let svc: Arc<str> = Arc::from("api");
        let req = Request {
            pid: 1,
            port: 8080,
            method: "GET",
            route: "/users/*".into(),
            status: 200,
            duration_seconds: 0.02,
            request_body_bytes: 0,
            response_body_bytes: 100,
        };
        let t0 = Instant::now();
        agg.observe(&svc, &req, t0);
        agg.observe(&svc, &req, t0);
        let mut app = Collect::default();
        let st = agg.write_to(&mut app, 1_000, None);
        assert_eq!(st, FlushStats { samples: agg.series_count() as u64, rejected: 0, expired_groups: 0 });
        assert_eq!(agg.series_count(), 16 + 2 + 2 * (11 + 2));
        let get = |name: &str, le: Option<&str>| {
            app.samples
                .iter()
                .find(|(l, _, _)| l.metric_name() == Some(name) && l.get("le") == le)
                .map(|(l, _, v)| (l.clone(), *v))
                .expect(name)
        };
        let (l, v) = get("http_server_request_duration_seconds_count", None);
        assert_eq!(v, 2.0);
        assert_eq!(
            l.to_string(),
            "{__name__=\"http_server_request_duration_seconds_count\", http_request_method=\"GET\", \
             http_response_status_code=\"200\", http_route=\"/users/*\", instance=\"host-a\", job=\"api\", \
             server_port=\"8080\", service_name=\"api\"}"
        );
        assert_eq!(get("http_server_request_duration_seconds_bucket", Some("0.01")).1, 0.0);
        assert_eq!(get("http_server_request_duration_seconds_bucket", Some("0.025")).1, 2.0);
        assert_eq!(get("http_server_response_body_size_bytes_bucket", Some("64")).1, 0.0);
        assert_eq!(get("http_server_response_body_size_bytes_bucket", Some("128")).1, 2.0);
        assert_eq!(get("http_server_response_body_size_bytes_sum", None).1, 200.0);
        // The second flush reuses the refs: no new series_ref calls.
        let resolved = app.series.len();
        let t1 = t0 + std::time::Duration::from_secs(1);
        agg.observe(&svc, &req, t1);
        let st = agg.write_to(&mut app, 2_000, Some(t0));
        assert_eq!((st.rejected, app.series.len()), (0, resolved));
        assert_eq!(app.samples.iter().filter(|(l, t, _)| *t == 2_000 && l.metric_name() == Some("http_server_request_duration_seconds_count")).map(|s| s.2).sum::<f64>(), 3.0);

        // Not seen since t1: expired at the next flush, every series gets a staleness marker.
        let n = agg.series_count();
        let st = agg.write_to(&mut app, 3_000, Some(t1 + std::time::Duration::from_millis(1)));
        assert_eq!(st, FlushStats { samples: n as u64, rejected: 0, expired_groups: 1 });
        let at3: Vec<f64> = app.samples.iter().filter(|(_, t, _)| *t == 3_000).map(|s| s.2).collect();
        assert_eq!(at3.len(), n);
        assert!(at3.iter().all(|v| storage::is_stale_nan(*v)));
        assert_eq!(agg.series_count(), 0);
    }

    /// Keys equal by content are one group whatever `Arc`s they come from (a route cache
    /// cleared and refilled, a service name looked up again), and each field tells groups apart.
    #[test]
    fn groups_are_keyed_by_content() {
        let mut agg = Aggregator::new("h".into(), None);
        let req = |route: &str, method: &'static str, status: u16, port: u16| Request {
            pid: 1,
            port,
            method,
            route: Arc::from(route),
            status,
            duration_seconds: 0.001,
            request_body_bytes: 0,
            response_body_bytes: 10,
        };
        let now = Instant::now();
        let (svc_a, svc_a2, svc_b): (Arc<str>, Arc<str>, Arc<str>) = (Arc::from("a"), Arc::from("a"), Arc::from("b"));
        // A method equal in content to "GET" but not the table's &'static str.
        let get2: &'static str = Box::leak(String::from("GET").into_boxed_str());
        for (svc, r) in [
            (&svc_a, req("/x", "GET", 200, 80)),
            (&svc_a2, req("/x", get2, 200, 80)),
            (&svc_a, req("/x", "GET", 200, 80)),
            (&svc_b, req("/x", "GET", 200, 80)),
            (&svc_a, req("/y", "GET", 200, 80)),
            (&svc_a, req("/x", "PUT", 200, 80)),
            (&svc_a, req("/x", "GET", 404, 80)),
            (&svc_a, req("/x", "GET", 200, 81)),
        ] {
            agg.observe(svc, &r, now);
        }
        let mut counts: Vec<(String, u16, &str, u16, String, u64)> = agg
            .groups()
            .map(|(k, red)| (k.service_name.to_string(), k.server_port, k.method, k.status, k.route.to_string(), red.duration.count()))
            .collect();
        counts.sort();
        assert_eq!(counts.len(), 6);
        assert_eq!(counts[0], ("a".to_string(), 80, "GET", 200, "/x".to_string(), 3));
        assert!(counts[1..].iter().all(|c| c.5 == 1));
    }

    #[test]
    fn le_labels_format_like_prometheus() {
        assert_eq!(le_strings(&DURATION_BUCKETS_SECONDS)[..3], ["0", "0.005", "0.01"]);
        assert_eq!(le_strings(&BODY_SIZE_BUCKETS_BYTES)[9..], ["8192", "+Inf"]);
    }
}
