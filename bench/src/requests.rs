//! From generated samples to pre-encoded remote-write request bodies, grouped the way
//! Prometheus' queue manager groups them, so that nothing but sending is timed.
//!
//! # Grouping (Prometheus `storage/remote/queue_manager.go`)
//!
//! The queue manager hashes each series to one of `shards` shards; a shard collects samples in
//! the order they were scraped and sends a request when it holds `max_samples_per_send`
//! samples (default here 2,000). A request therefore carries many series with a few samples
//! each, in time order. Each shard sends its requests one after another on its own
//! connection, so a series' samples always arrive in order; shards run in parallel.
//!
//! Within a request, samples of one series are grouped into one `TimeSeries` (Prometheus 2.x
//! repeats the series once per sample; grouping only makes the body smaller and is what
//! 2.0 senders and Prometheus 3's batching do).
//!
//! # Windows
//!
//! Requests are tagged with the *window* of data time they start in (`window_ms`, default
//! 30 min). The runner sends window by window, every shard in parallel within a window, so
//! shards never drift apart by more than a window plus a request (Prometheus rejects samples
//! older than its head's newest minus one hour as out of bounds), and so the systems under test
//! can take turns window by window.

use rayon::prelude::*;

use ingest::remote_write::encode::{encode_v1, encode_v2};
use ingest::remote_write::{SeriesData, WriteRequestData};
use storage::{Metadata, MetricType};
use xxhash_rust::xxh3::xxh3_64;

use crate::error::{BenchError, Result};
use crate::workload::{MetricKind, Sample, SeriesMeta, Step, Workload};

/// Which remote-write protocol to encode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// Remote-write 1.0 (`prometheus.WriteRequest`), what Prometheus 2.x sends.
    V1,
    /// Remote-write 2.0 (`io.prometheus.write.v2.Request`), with a symbol table and per-series
    /// metadata.
    V2,
}

impl Protocol {
    /// The `Content-Type` header: plain `application/x-protobuf` for 1.0 as Prometheus 2.x
    /// sends it; the `proto=` parameter for 2.0 as the 2.0 spec requires.
    pub fn content_type(self) -> &'static str {
        match self {
            Protocol::V1 => ingest::remote_write::MEDIA_TYPE,
            Protocol::V2 => ingest::remote_write::CONTENT_TYPE_V2,
        }
    }

    /// The `X-Prometheus-Remote-Write-Version` header value.
    pub fn version_header(self) -> &'static str {
        match self {
            Protocol::V1 => "0.1.0",
            Protocol::V2 => "2.0.0",
        }
    }
}

/// How requests are formed. Defaults: 2,000 samples, 4 shards, 30 min windows, 1.0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchConfig {
    /// Samples per request (Prometheus' `max_samples_per_send`).
    pub max_samples_per_request: usize,
    /// Shards, i.e. parallel connections.
    pub shards: usize,
    /// Width of a send window of data time, ms.
    pub window_ms: i64,
    /// Protocol to encode.
    pub protocol: Protocol,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig { max_samples_per_request: 2_000, shards: 4, window_ms: 30 * 60_000, protocol: Protocol::V1 }
    }
}

/// One pre-encoded request.
#[derive(Debug, Clone)]
pub struct EncodedRequest {
    /// Index of the send window its first sample falls in.
    pub window: usize,
    /// Timestamp of its first sample, t_ms.
    pub first_t_ms: i64,
    /// Samples it carries (stale markers included).
    pub samples: usize,
    /// Series (`TimeSeries` entries) it carries.
    pub series: usize,
    /// The snappy-compressed protobuf body.
    pub body: bytes::Bytes,
}

/// Every request of a workload, per shard in send order.
#[derive(Debug)]
pub struct EncodedWorkload {
    /// The protocol of every body.
    pub protocol: Protocol,
    /// `shards[s]` are shard `s`'s requests, in the order they must be sent.
    pub shards: Vec<Vec<EncodedRequest>>,
    /// Number of windows (the largest window index + 1).
    pub windows: usize,
    /// Samples over all requests.
    pub samples: u64,
    /// Compressed bytes over all requests.
    pub body_bytes: u64,
    /// Distinct series sent (grows with churn).
    pub series_total: usize,
    /// First scrape round start, t_ms.
    pub start_t_ms: i64,
    /// End of the data (exclusive), t_ms.
    pub end_t_ms: i64,
}

/// A request before encoding: series ids with their samples, in first-seen order.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct RawRequest {
    /// `(series, samples (t_ms, v) in time order)`.
    pub series: Vec<(u32, Vec<(i64, f64)>)>,
    /// Total samples.
    pub samples: usize,
    /// First sample's timestamp, t_ms.
    pub first_t_ms: i64,
}

/// Collects one shard's samples into requests of `max` samples.
struct ShardBatcher {
    pending: Vec<Sample>,
}

impl ShardBatcher {
    fn take(&mut self) -> RawRequest {
        let mut index: std::collections::HashMap<u32, usize> = std::collections::HashMap::with_capacity(self.pending.len());
        let mut req = RawRequest { samples: self.pending.len(), first_t_ms: self.pending[0].t_ms, ..Default::default() };
        for s in self.pending.drain(..) {
            let i = *index.entry(s.series).or_insert_with(|| {
                req.series.push((s.series, Vec::with_capacity(2)));
                req.series.len() - 1
            });
            req.series[i].1.push((s.t_ms, s.v));
            req.first_t_ms = req.first_t_ms.min(s.t_ms);
        }
        req
    }
}

/// Runs the workload to the end and groups its samples into per-shard raw requests.
/// `on_request(shard, request, series_table)` is called for every finished request, in
/// generation order.
pub fn plan<F>(workload: &mut Workload, cfg: &BatchConfig, mut on_request: F) -> Result<()>
where
    F: FnMut(usize, RawRequest, &[SeriesMeta]) -> Result<()>,
{
    if cfg.shards == 0 || cfg.max_samples_per_request == 0 || cfg.window_ms <= 0 {
        return Err(BenchError::Config("shards, samples per request and window must be positive".into()));
    }
    let mut shard_of: Vec<u16> = Vec::new();
    let mut batchers: Vec<ShardBatcher> = (0..cfg.shards).map(|_| ShardBatcher { pending: Vec::new() }).collect();
    let mut step = Step::default();
    while workload.next_step(&mut step) {
        let table = workload.series();
        // Shard by a hash of the labels, as the queue manager shards by series reference.
        while shard_of.len() < table.len() {
            let meta = &table[shard_of.len()];
            let mut h = 0u64;
            for (n, v) in &meta.labels {
                h = h.rotate_left(5) ^ xxh3_64(n.as_bytes()) ^ xxh3_64(v.as_bytes()).rotate_left(17);
            }
            shard_of.push((h % cfg.shards as u64) as u16);
        }
        for s in &step.samples {
            let shard = shard_of[s.series as usize] as usize;
            let b = &mut batchers[shard];
            b.pending.push(*s);
            if b.pending.len() == cfg.max_samples_per_request {
                on_request(shard, b.take(), table)?;
            }
        }
    }
    for (shard, b) in batchers.iter_mut().enumerate() {
        if !b.pending.is_empty() {
            on_request(shard, b.take(), workload.series())?;
        }
    }
    Ok(())
}

fn metadata(kind: MetricKind) -> Metadata {
    let metric_type = match kind {
        MetricKind::Counter => MetricType::Counter,
        MetricKind::Gauge | MetricKind::Info => MetricType::Gauge,
        MetricKind::HistogramBucket | MetricKind::HistogramSum | MetricKind::HistogramCount => MetricType::Histogram,
    };
    Metadata { metric_type, help: String::new(), unit: String::new() }
}

/// The plain-data request for ingest's encoder.
pub fn to_write_request(raw: &RawRequest, table: &[SeriesMeta], protocol: Protocol) -> WriteRequestData {
    let series = raw
        .series
        .iter()
        .map(|(id, samples)| {
            let meta = &table[*id as usize];
            SeriesData {
                labels: meta.labels.clone(),
                samples: samples.clone(),
                metadata: (protocol == Protocol::V2).then(|| metadata(meta.kind)),
                ..Default::default()
            }
        })
        .collect();
    WriteRequestData { series, metadata: Vec::new() }
}

/// Encodes `raw` with ingest's encoder (snappy-compressed protobuf).
pub fn encode(raw: &RawRequest, table: &[SeriesMeta], protocol: Protocol) -> Vec<u8> {
    let data = to_write_request(raw, table, protocol);
    match protocol {
        Protocol::V1 => encode_v1(&data),
        Protocol::V2 => encode_v2(&data),
    }
}

/// Generates the whole workload and encodes every request (in parallel, rayon), before
/// anything is timed. `max_body_bytes` bounds the memory the encoded bodies may take.
///
/// # Errors
/// [`BenchError::Config`] for an invalid batch config, or when the encoded bodies would exceed
/// `max_body_bytes` (lower the series count or span).
pub fn encode_workload(workload: &mut Workload, cfg: &BatchConfig, max_body_bytes: u64) -> Result<EncodedWorkload> {
    const PARALLEL_BATCH: usize = 256;
    let start_t_ms = workload.start_t_ms();
    let end_t_ms = workload.end_t_ms();
    let mut shards: Vec<Vec<EncodedRequest>> = (0..cfg.shards).map(|_| Vec::new()).collect();
    let mut pending: Vec<(usize, RawRequest)> = Vec::with_capacity(PARALLEL_BATCH);
    let mut totals = (0u64, 0u64, 0usize);
    let flush = |pending: &mut Vec<(usize, RawRequest)>,
                 table: &[SeriesMeta],
                 shards: &mut Vec<Vec<EncodedRequest>>,
                 totals: &mut (u64, u64, usize)|
     -> Result<()> {
        let encoded: Vec<(usize, EncodedRequest)> = pending
            .par_iter()
            .map(|(shard, raw)| {
                let body = encode(raw, table, cfg.protocol);
                let window = ((raw.first_t_ms - start_t_ms).max(0) / cfg.window_ms) as usize;
                let req = EncodedRequest {
                    window,
                    first_t_ms: raw.first_t_ms,
                    samples: raw.samples,
                    series: raw.series.len(),
                    body: bytes::Bytes::from(body),
                };
                (*shard, req)
            })
            .collect();
        pending.clear();
        for (shard, req) in encoded {
            totals.0 += req.samples as u64;
            totals.1 += req.body.len() as u64;
            totals.2 = totals.2.max(req.window + 1);
            shards[shard].push(req);
        }
        if totals.1 > max_body_bytes {
            return Err(BenchError::Config(format!(
                "encoded requests exceed {max_body_bytes} bytes after {} samples; lower --series or --span",
                totals.0
            )));
        }
        Ok(())
    };
    plan(workload, cfg, |shard, raw, table| {
        pending.push((shard, raw));
        if pending.len() == PARALLEL_BATCH {
            flush(&mut pending, table, &mut shards, &mut totals)?;
        }
        Ok(())
    })?;
    flush(&mut pending, workload.series(), &mut shards, &mut totals)?;
    Ok(EncodedWorkload {
        protocol: cfg.protocol,
        shards,
        windows: totals.2,
        samples: totals.0,
        body_bytes: totals.1,
        series_total: workload.series().len(),
        start_t_ms,
        end_t_ms,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use ingest::remote_write::proto::{v1, v2};
    use prost::Message;

    use super::*;
    use crate::workload::WorkloadConfig;

    fn workload(series: usize) -> Workload {
        Workload::new(WorkloadConfig { series, span_ms: 3_600_000, churn_interval_ms: Some(20 * 60_000), ..Default::default() })
            .unwrap()
    }

    #[test]
    fn requests_hold_max_samples_except_each_shards_last() {
        let cfg = BatchConfig { shards: 3, ..Default::default() };
        let mut w = workload(3_000);
        let mut per_shard: Vec<Vec<RawRequest>> = vec![Vec::new(); 3];
        plan(&mut w, &cfg, |shard, raw, _| {
            per_shard[shard].push(raw);
            Ok(())
        })
        .unwrap();
        let mut total = 0;
        let mut last_t: HashMap<u32, i64> = HashMap::new();
        for reqs in &per_shard {
            assert!(reqs.len() > 10);
            for (i, r) in reqs.iter().enumerate() {
                let n: usize = r.series.iter().map(|(_, s)| s.len()).sum();
                assert_eq!(n, r.samples);
                if i + 1 < reqs.len() {
                    assert_eq!(r.samples, 2_000, "request {i} of {}", reqs.len());
                } else {
                    assert!(r.samples <= 2_000 && r.samples > 0);
                }
                // Many series, a few samples each, and each series in time order across requests.
                assert!(r.series.len() * 4 >= r.samples, "{} series for {} samples", r.series.len(), r.samples);
                for (id, samples) in &r.series {
                    for (t, _) in samples {
                        if let Some(prev) = last_t.insert(*id, *t) {
                            assert!(*t > prev);
                        }
                    }
                }
                total += r.samples;
            }
        }
        // 3,000 series × 240 scrapes, plus a staleness marker per churned series.
        let stale = w.series().len() - 3_000;
        assert_eq!(total, 3_000 * 240 + stale);
    }

    #[test]
    fn v1_and_v2_bodies_decode_to_the_planned_samples() {
        let mut w = workload(500);
        let mut raw = None;
        plan(&mut w, &BatchConfig::default(), |_, r, _| {
            raw.get_or_insert(r);
            Ok(())
        })
        .unwrap();
        let raw = raw.unwrap();
        let table = w.series();
        let body = encode(&raw, table, Protocol::V1);
        let bytes = snap::raw::Decoder::new().decompress_vec(&body).unwrap();
        let req = v1::WriteRequest::decode(bytes.as_slice()).unwrap();
        assert_eq!(req.timeseries.len(), raw.series.len());
        let n: usize = req.timeseries.iter().map(|ts| ts.samples.len()).sum();
        assert_eq!(n, raw.samples);
        let first = &req.timeseries[0];
        let labels: Vec<(String, String)> = first.labels.iter().map(|l| (l.name.clone(), l.value.clone())).collect();
        assert_eq!(labels, table[raw.series[0].0 as usize].labels);

        let body = encode(&raw, table, Protocol::V2);
        let bytes = snap::raw::Decoder::new().decompress_vec(&body).unwrap();
        let req = v2::Request::decode(bytes.as_slice()).unwrap();
        assert_eq!(req.timeseries.len(), raw.series.len());
        let n: usize = req.timeseries.iter().map(|ts| ts.samples.len()).sum();
        assert_eq!(n, raw.samples);
    }

    #[test]
    fn encoding_is_deterministic_and_bounded_in_memory() {
        let cfg = BatchConfig { shards: 2, ..Default::default() };
        let a = encode_workload(&mut workload(1_000), &cfg, u64::MAX).unwrap();
        let b = encode_workload(&mut workload(1_000), &cfg, u64::MAX).unwrap();
        assert_eq!(a.samples, b.samples);
        for (x, y) in a.shards.iter().flatten().zip(b.shards.iter().flatten()) {
            assert_eq!(x.body, y.body);
        }
        assert_eq!(a.windows, 2, "one hour of data in 30 min windows");
        assert!(matches!(encode_workload(&mut workload(1_000), &cfg, 10_000), Err(BenchError::Config(_))));
    }
}
