//! Sends pre-encoded remote-write requests to one server over several keep-alive connections
//! (one task and connection per shard, requests of a shard strictly in order) and measures it.
//!
//! Any non-2xx answer stops the run with [`BenchError::WriteRejected`]: a benchmark that
//! silently drops data measures nothing.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::error::{BenchError, Result};
use crate::requests::{EncodedRequest, EncodedWorkload};

/// Per-request timeout: a request that takes longer fails the run.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// What a load run measured.
#[derive(Debug, Clone, Default)]
pub struct LoadReport {
    /// Samples acknowledged with a 2xx.
    pub samples: u64,
    /// Requests sent.
    pub requests: u64,
    /// Compressed body bytes sent.
    pub body_bytes: u64,
    /// Wall time spent sending (sum over windows when merged).
    pub elapsed: Duration,
    /// Latency of every request, microseconds (unsorted).
    pub latencies_us: Vec<u64>,
    /// HTTP status code → count.
    pub statuses: BTreeMap<u16, u64>,
}

impl LoadReport {
    /// Samples per second of wall time.
    pub fn samples_per_second(&self) -> f64 {
        let s = self.elapsed.as_secs_f64();
        if s > 0.0 {
            self.samples as f64 / s
        } else {
            0.0
        }
    }

    /// The `q`-quantile (0..=1) of request latency, nearest rank; `None` without requests.
    pub fn latency_quantile(&self, q: f64) -> Option<Duration> {
        if self.latencies_us.is_empty() {
            return None;
        }
        let mut v = self.latencies_us.clone();
        v.sort_unstable();
        let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
        Some(Duration::from_micros(v[rank - 1]))
    }

    /// Adds another run's figures (windows of the same system).
    pub fn merge(&mut self, other: LoadReport) {
        self.samples += other.samples;
        self.requests += other.requests;
        self.body_bytes += other.body_bytes;
        self.elapsed += other.elapsed;
        self.latencies_us.extend(other.latencies_us);
        for (k, v) in other.statuses {
            *self.statuses.entry(k).or_default() += v;
        }
    }

    /// `"204:3600"`-style status summary.
    pub fn statuses_summary(&self) -> String {
        self.statuses.iter().map(|(k, v)| format!("{k}:{v}")).collect::<Vec<_>>().join(" ")
    }
}

/// An HTTP client for loopback servers: keep-alive, no proxy, `connections` idle connections
/// kept per host.
pub fn client(connections: usize) -> Result<reqwest::Client> {
    // reqwest is built with rustls but no crypto provider; loopback traffic is plain HTTP, yet
    // the client builder wants a provider to exist. Installing twice is harmless.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(connections)
        .pool_idle_timeout(Duration::from_secs(300))
        .tcp_nodelay(true)
        .timeout(REQUEST_TIMEOUT)
        .build()
        .map_err(|source| BenchError::Http { system: "client".into(), source })
}

/// Sends window `window` of `workload` to `url`: every shard in parallel, each shard's requests
/// of that window in order. Fails on the first non-2xx answer or transport error, or when the
/// window takes longer than `deadline`.
pub async fn send_window(
    client: &reqwest::Client,
    system: &str,
    url: &str,
    workload: &EncodedWorkload,
    window: usize,
    deadline: Duration,
) -> Result<LoadReport> {
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for shard in &workload.shards {
        let reqs: Vec<(usize, EncodedRequest)> =
            shard.iter().enumerate().filter(|(_, r)| r.window == window).map(|(i, r)| (i, r.clone())).collect();
        if reqs.is_empty() {
            continue;
        }
        let client = client.clone();
        let url = url.to_string();
        let system = system.to_string();
        let protocol = workload.protocol;
        tasks.spawn(async move {
            let mut report = LoadReport::default();
            for (index, req) in reqs {
                let t0 = Instant::now();
                let resp = client
                    .post(&url)
                    .header("Content-Type", protocol.content_type())
                    .header("Content-Encoding", "snappy")
                    .header("User-Agent", "hearth-bench/0.1")
                    .header("X-Prometheus-Remote-Write-Version", protocol.version_header())
                    .body(req.body.clone())
                    .send()
                    .await
                    .map_err(|source| BenchError::Http { system: system.clone(), source })?;
                let status = resp.status().as_u16();
                *report.statuses.entry(status).or_default() += 1;
                if !resp.status().is_success() {
                    let body = resp.text().await.unwrap_or_default();
                    return Err(BenchError::WriteRejected {
                        system,
                        request: index,
                        status,
                        body: body.chars().take(500).collect(),
                    });
                }
                // Drain the (empty) body so the connection returns to the pool.
                let _ = resp.bytes().await;
                report.latencies_us.push(t0.elapsed().as_micros() as u64);
                report.samples += req.samples as u64;
                report.requests += 1;
                report.body_bytes += req.body.len() as u64;
            }
            Ok::<LoadReport, BenchError>(report)
        });
    }
    let mut total = LoadReport::default();
    let result = tokio::time::timeout(deadline, async {
        while let Some(joined) = tasks.join_next().await {
            let r = joined.map_err(|e| BenchError::Process(format!("{system}: sender task failed: {e}")))??;
            total.merge(r);
        }
        Ok::<(), BenchError>(())
    })
    .await;
    match result {
        Ok(r) => r?,
        Err(_) => {
            tasks.abort_all();
            return Err(BenchError::Timeout { what: format!("{system}: sending window {window}"), after: deadline });
        }
    }
    total.elapsed = started.elapsed();
    Ok(total)
}
