//! Query latency with usage recording off and on, for dashboard-shaped queries over a database
//! of 200 metrics × 10 series × 240 samples (15 s apart) plus an info-style `build_info`.
//!
//! Two measurements:
//! - `http_instant_query_usage_recording` (runs first, when `USAGE_HTTP_AB_ROUNDS` is set to
//!   a number of rounds, e.g. 40): the real `hearth` binary, twice, on copies of the same
//!   data, one with `usage.enabled: false`, one with usage on. Each query is sent over HTTP
//!   (keep-alive, Grafana's headers) alternately to the two servers, in pairs whose order
//!   flips every pair, [`BLOCK`] pairs per round. It prints per query the median and p90
//!   latency of each and the median of the per-pair on/off latency ratios,
//!   plus the usage queue's counters. The rounds are split over `USAGE_HTTP_AB_PROCS`
//!   (default 4) freshly started process pairs, since two processes configured alike differ
//!   by a few percent. `USAGE_HTTP_AB_AA=1` runs both servers with usage off: the noise floor
//!   of the comparison.
//! - criterion `instant_query_usage_recording`: in process. `off` evaluates; `on` evaluates and
//!   hands the call to a running [`UsageService`] exactly as the handler does (O(1) push; the
//!   service's worker thread records concurrently, as in the server); `record_sync` evaluates
//!   and records on the query's thread, the CPU the worker spends per query.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderValue};
use criterion::{criterion_group, Criterion, Throughput};
use query::source::QuerierSource;
use query::{Engine, EngineOptions};
use server::usage::recorder::{CallInput, CallStats, Caller, OwnedInput, PendingCall, RawCaller, UsageRecorder};
use server::usage::{UsageConfig, UsageService};
use storage::db::{Db, DbOptions};
use storage::usage::{ReadKind, UsageOptions, UsageStore};
use storage::wal::{FsyncPolicy, WalOptions};
use storage::{Appender, Labels};

const POINTS: i64 = 240;
const STEP_MS: i64 = 15_000;

/// Request pairs per round of the HTTP A/B run.
const BLOCK: usize = 50;

const QUERIES: [(&str, &str); 3] = [
    ("sum_rate", "sum by (job) (rate(app_metric_7_total[5m]))"),
    ("regex_name", r#"sum(rate({__name__=~"app_metric_1[0-9]_total"}[5m]))"#),
    ("info_join", "sum by (version) (rate(app_metric_3_total[5m]) * on(instance) group_left(version) build_info)"),
];

/// Fills a database at `dir` whose newest samples are at `t_end_ms`.
fn fill(dir: &Path, t_end_ms: i64) -> Db {
    let mut opts = DbOptions::default();
    opts.head.wal = WalOptions { fsync: FsyncPolicy::Never, ..WalOptions::default() };
    let db = Db::open(dir, opts).unwrap();
    let t0 = t_end_ms - (POINTS - 1) * STEP_MS;
    for k in 0..POINTS {
        let mut app = db.appender();
        for m in 0..200 {
            for i in 0..10 {
                let l = Labels::from_pairs([
                    ("__name__", format!("app_metric_{m}_total")),
                    ("instance", format!("host-{i}:9100")),
                    ("job", "app".to_string()),
                ]);
                app.append_labels(&l, t0 + k * STEP_MS, (k * (i + 1)) as f64).unwrap();
            }
        }
        let l = Labels::from_pairs([("__name__", "build_info"), ("instance", "host-0:9100"), ("version", "1.0")]);
        app.append_labels(&l, t0 + k * STEP_MS, 1.0).unwrap();
        app.commit().unwrap();
    }
    db
}

/// Grafana's headers, as a dashboard panel sends them.
fn grafana_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in [
        ("x-dashboard-uid", "app-overview"),
        ("x-panel-id", "4"),
        ("x-grafana-org-id", "1"),
        ("x-grafana-user", "alice"),
        ("user-agent", "Grafana/11.3.0"),
    ] {
        h.insert(k, HeaderValue::from_static(v));
    }
    h
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

// ---------------------------------------------------------------------------------------------
// HTTP A/B through the real binary.

/// A running `hearth`, killed on drop.
struct Hearth {
    child: Child,
    addr: String,
}

impl Hearth {
    fn start(data: &Path, config: &Path) -> Hearth {
        let mut child = Command::new(env!("CARGO_BIN_EXE_hearth"))
            .arg("--web.listen-address=127.0.0.1:0")
            .arg(format!("--storage.tsdb.path={}", data.display()))
            .arg(format!("--config.file={}", config.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn hearth");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if line.contains("msg=listening") {
                    if let Some(a) = line.split_whitespace().find_map(|w| w.strip_prefix("address=")) {
                        let _ = tx.send(a.to_string());
                    }
                }
            }
        });
        let addr = rx.recv_timeout(Duration::from_secs(60)).expect("hearth did not start listening");
        Hearth { child, addr }
    }

    fn url(&self, p: &str) -> String {
        format!("http://{}{p}", self.addr)
    }

    fn wait_ready(&self, c: &reqwest::blocking::Client) {
        for _ in 0..3000 {
            if c.get(self.url("/-/ready")).send().is_ok_and(|r| r.status() == 200) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("hearth not ready");
    }
}

impl Drop for Hearth {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let p = e.path();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&p, &dst);
        } else if e.file_name() != "lock" {
            std::fs::copy(&p, &dst).unwrap();
        }
    }
}

/// One timed instant query; panics on a failed answer (the bench measures answers).
fn timed_query(c: &reqwest::blocking::Client, h: &Hearth, q: &str, t_s: &str, headers: &HeaderMap) -> Duration {
    let started = Instant::now();
    let r = c.post(h.url("/api/v1/query")).headers(headers.clone()).form(&[("query", q), ("time", t_s)]).send().expect("query");
    let ok = r.status() == 200;
    let body = r.bytes().expect("body");
    let took = started.elapsed();
    assert!(ok, "{}", String::from_utf8_lossy(&body));
    took
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn quantile(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * q).round() as usize]
}

fn metric_value(text: &str, name: &str) -> Option<String> {
    text.lines().find(|l| l.starts_with(name)).and_then(|l| l.split_whitespace().nth(1)).map(str::to_string)
}

/// Per query: every latency of each server (µs) and every per-pair ratio.
#[derive(Default)]
struct AbSamples {
    off: Vec<f64>,
    on: Vec<f64>,
    ratios: Vec<f64>,
    /// Median pair ratio of each process pair.
    per_procs: Vec<f64>,
}

fn http_instant_query_usage_recording(rounds: usize) {
    let tmp = tempfile::tempdir().unwrap();
    let t_end = now_ms() / STEP_MS * STEP_MS;
    let base = tmp.path().join("base");
    let db = fill(&base, t_end);
    db.close().unwrap();
    drop(db);
    // USAGE_HTTP_AB_AA=1 runs "on" with usage off too: the noise floor of the comparison.
    let aa = std::env::var("USAGE_HTTP_AB_AA").is_ok_and(|v| v == "1");
    // Two processes differ by a few percent even when configured alike (heap and code
    // placement): the rounds are split over several freshly started pairs.
    let procs: usize = std::env::var("USAGE_HTTP_AB_PROCS").ok().and_then(|v| v.parse().ok()).unwrap_or(4).max(1);
    let on_yaml = if aa { "usage:\n  enabled: false\n" } else { "usage:\n  export_interval_seconds: 15\n" };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let c = reqwest::blocking::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    let headers = grafana_headers();
    let t_s = format!("{}.{:03}", t_end / 1000, t_end % 1000);
    let mut samples: Vec<AbSamples> = QUERIES.iter().map(|_| AbSamples::default()).collect();
    let rounds_per = rounds.div_ceil(procs);
    for p in 0..procs {
        let mut servers = Vec::new();
        for (name, yaml) in [("off", "usage:\n  enabled: false\n"), ("on", on_yaml)] {
            let data = tmp.path().join(format!("{p}-{name}"));
            copy_dir(&base, &data);
            let cfg = tmp.path().join(format!("{name}.yml"));
            std::fs::write(&cfg, yaml).unwrap();
            servers.push(Hearth::start(&data, &cfg));
        }
        for h in &servers {
            h.wait_ready(&c);
        }
        for (qi, (_, q)) in QUERIES.iter().enumerate() {
            // Warm-up: caches, the resolver's first index lookup, connection set-up.
            for h in &servers {
                for _ in 0..100 {
                    timed_query(&c, h, q, &t_s, &headers);
                }
            }
            let s = &mut samples[qi];
            let mut mine = Vec::with_capacity(rounds_per * BLOCK);
            for k in 0..rounds_per * BLOCK {
                // Pairs alternate A-B / B-A, so drift in the machine's load hits both alike.
                let order: [usize; 2] = if k % 2 == 0 { [0, 1] } else { [1, 0] };
                let mut pair = [0.0f64; 2];
                for i in order {
                    pair[i] = timed_query(&c, &servers[i], q, &t_s, &headers).as_secs_f64() * 1e6;
                }
                s.off.push(pair[0]);
                s.on.push(pair[1]);
                mine.push(pair[1] / pair[0]);
            }
            s.per_procs.push(median(&mut mine.clone()));
            s.ratios.extend(mine);
        }
        if p + 1 == procs {
            let text = c.get(servers[1].url("/metrics")).send().unwrap().text().unwrap();
            for name in ["hearth_usage_records_queued_total", "hearth_usage_records_dropped_total", "hearth_usage_records_total"] {
                println!("  last on server: {name} {}", metric_value(&text, name).unwrap_or_else(|| "(not exported on /metrics)".into()));
            }
            let r = c.get(servers[1].url("/api/v1/status/metric_usage?window=1d&sort=queries&limit=2")).send().unwrap();
            let v: serde_json::Value = r.json().unwrap();
            for row in v["data"]["metrics"].as_array().into_iter().flatten() {
                println!("  last on server recorded: {} queries={} series_touched={}", row["metric"], row["queries"], row["series_touched"]);
            }
        }
    }
    println!(
        "http_instant_query_usage_recording{}: {procs} process pairs x {rounds_per} rounds x {BLOCK} request pairs per query, alternating A-B/B-A",
        if aa { " (A/A: both servers with usage off)" } else { "" }
    );
    println!(
        "{:<12} {:>10} {:>10} {:>10} {:>10} {:>9} {:>11}  per process pair",
        "query", "off_med_us", "on_med_us", "off_p90_us", "on_p90_us", "diff_med", "pair_ratio"
    );
    for (qi, (qname, _)) in QUERIES.iter().enumerate() {
        let s = &mut samples[qi];
        let (off_med, on_med) = (median(&mut s.off), median(&mut s.on));
        let (off_p90, on_p90) = (quantile(&mut s.off, 0.9), quantile(&mut s.on, 0.9));
        let paired = median(&mut s.ratios);
        let per: Vec<String> = s.per_procs.iter().map(|r| format!("{:+.1}%", (r - 1.0) * 100.0)).collect();
        println!(
            "{qname:<12} {off_med:>10.1} {on_med:>10.1} {off_p90:>10.1} {on_p90:>10.1} {:>+8.2}% {:>+10.2}%  {}",
            (on_med / off_med - 1.0) * 100.0,
            (paired - 1.0) * 100.0,
            per.join(" ")
        );
    }
}

// ---------------------------------------------------------------------------------------------
// criterion, in process.

fn instant_query_usage_recording(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let t = 1_700_000_000_000;
    let db = fill(&dir.path().join("db"), t);
    let cfg = UsageConfig { dir: Some(dir.path().join("svc-usage")), export_interval_seconds: 3600, ..UsageConfig::default() };
    let svc = UsageService::open(db.clone(), &cfg, t).unwrap();
    let sync_store = std::sync::Arc::new(UsageStore::open(dir.path().join("sync-usage"), UsageOptions::default(), t).unwrap());
    let sync_recorder = UsageRecorder::new(sync_store);
    let headers = grafana_headers();
    let engine = Engine::new(EngineOptions::default());
    let mut g = c.benchmark_group("instant_query_usage_recording");
    g.throughput(Throughput::Elements(1));
    for (name, q) in QUERIES {
        g.bench_function(format!("{name}/off"), |b| {
            b.iter(|| {
                let querier = db.querier();
                engine.instant_query_source(&QuerierSource(&querier), q, t, None).unwrap().total_samples
            })
        });
        g.bench_function(format!("{name}/on"), |b| {
            b.iter(|| {
                let started = Instant::now();
                let querier = db.querier();
                let r = engine.instant_query_source(&QuerierSource(&querier), q, t, None).unwrap();
                // What the handler does: own the facts, push.
                svc.submit(PendingCall {
                    kind: ReadKind::InstantQuery,
                    input: OwnedInput::Query(q.to_string()),
                    mint_ms: t - 300_000,
                    maxt_ms: t,
                    t_ms: t,
                    caller: RawCaller::from_headers(&headers),
                    stats: CallStats { series: r.total_series, samples: r.total_samples, duration_us: started.elapsed().as_micros() as u64 },
                });
                r.total_samples
            })
        });
        g.bench_function(format!("{name}/record_sync"), |b| {
            let caller = Caller::from_request_headers(&headers);
            b.iter(|| {
                let querier = db.querier();
                let r = engine.instant_query_source(&QuerierSource(&querier), q, t, None).unwrap();
                let stats = CallStats { series: r.total_series, samples: r.total_samples, duration_us: 1 };
                sync_recorder.record(&querier, ReadKind::InstantQuery, CallInput::Text(q), t - 300_000, t, t, &caller, stats);
                r.total_samples
            })
        });
    }
    g.finish();
    let s = svc.queue().stats();
    svc.queue().sync(Duration::from_secs(60));
    println!(
        "usage queue during the bench: queued {} recorded {} dropped {}",
        s.queued.load(Ordering::Relaxed),
        s.recorded.load(Ordering::Relaxed),
        s.dropped.load(Ordering::Relaxed)
    );
}

criterion_group!(benches, instant_query_usage_recording);

fn main() {
    // The HTTP A/B starts two servers and runs for minutes: only when asked for.
    let rounds: usize = std::env::var("USAGE_HTTP_AB_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(0);
    if rounds > 0 && std::env::args().any(|a| a == "--bench") {
        http_instant_query_usage_recording(rounds);
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
