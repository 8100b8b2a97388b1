//! `hearth-bench`: Hearth's end-to-end benchmark runner.
//!
//! ```sh
//! # side by side with Prometheus and VictoriaMetrics (installs them with apt-get if missing)
//! cargo run --release -p bench --bin hearth-bench -- compare --series 100000 --span 3h
//! # keep the data directories; later, run only the queries on them (any Hearth binary)
//! cargo run --release -p bench --bin hearth-bench -- compare --series 100000 --span 24h \
//!     --scrape-interval 60s --systems hearth,prometheus --keep-data /work/bench-data/100k
//! cargo run --release -p bench --bin hearth-bench -- compare --systems hearth,prometheus \
//!     --reuse-data /work/bench-data/100k --hearth-bin /tmp/hearth-new
//! # only the workload: generate and encode, print its shape
//! cargo run --release -p bench --bin hearth-bench -- generate --series 10000 --span 1h
//! # load one running server
//! cargo run --release -p bench --bin hearth-bench -- load --url http://127.0.0.1:9201/api/v1/write
//! ```
//!
//! Each subcommand is one variant of [`Cmd`]; a new comparison (e.g. the eBPF path against a
//! wrk run) is a new variant and a new module in the library.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{Args, Parser, Subcommand};

use bench::compare::{self, CompareConfig};
use bench::load::{client, send_window, LoadReport};
use bench::requests::{encode_workload, BatchConfig, Protocol};
use bench::settle::SettleConfig;
use bench::systems::SystemKind;
use bench::units::parse_duration_ms;
use bench::workload::{Workload, WorkloadConfig};
use bench::{report, BenchError, Result};

#[derive(Parser)]
#[command(name = "hearth-bench", about = "End-to-end benchmarks of Hearth against Prometheus and VictoriaMetrics")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Feed Prometheus, VictoriaMetrics and Hearth the same data and queries; print the table.
    Compare(CompareArgs),
    /// Generate and encode the workload only; print its shape.
    Generate(WorkloadArgs),
    /// Send the workload to one running remote-write endpoint and report throughput.
    Load(LoadArgs),
}

/// The workload and request shape.
#[derive(Args, Clone)]
struct WorkloadArgs {
    /// Active series per scrape.
    #[arg(long, default_value_t = 10_000)]
    series: usize,
    /// Span of data (e.g. 30m, 3h, 2d).
    #[arg(long, default_value = "3h")]
    span: String,
    /// Scrape interval.
    #[arg(long, default_value = "15s")]
    scrape_interval: String,
    /// The data ends this long before now (0 = live, ending now; e.g. 2d for a backfill).
    #[arg(long, default_value = "0")]
    end_ago: String,
    /// Replace every pod once per this duration (e.g. 60m); none by default.
    #[arg(long)]
    churn: Option<String>,
    /// Seed of the generator.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Samples per remote-write request (Prometheus' max_samples_per_send).
    #[arg(long, default_value_t = 2_000)]
    samples_per_request: usize,
    /// Parallel connections (queue-manager shards).
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Remote-write protocol version: 1 or 2 (2.0 is for Hearth only; the peers accept 1.0).
    #[arg(long, default_value_t = 1)]
    protocol: u8,
    /// Largest total size of the pre-encoded bodies (bytes).
    #[arg(long, default_value_t = 8 << 30)]
    max_encoded_bytes: u64,
}

#[derive(Args)]
struct CompareArgs {
    #[command(flatten)]
    workload: WorkloadArgs,
    /// Systems to run, comma-separated: prometheus, victoria-metrics, hearth.
    #[arg(long, value_delimiter = ',', default_value = "prometheus,victoria-metrics,hearth")]
    systems: Vec<String>,
    /// Repetitions of each query per system (median reported).
    #[arg(long, default_value_t = 5)]
    query_repeats: usize,
    /// Hearth binary (default: target/release/hearth, built if missing).
    #[arg(long)]
    hearth_bin: Option<PathBuf>,
    /// Run `cargo build --release --bin hearth` even if the binary exists.
    #[arg(long)]
    rebuild_hearth: bool,
    /// Do not apt-get install missing peers.
    #[arg(long)]
    no_install: bool,
    /// Also write the Markdown report to this file.
    #[arg(long)]
    markdown_out: Option<PathBuf>,
    /// Longest wait for every server to become idle after ingest (or restart) before the
    /// queries (e.g. 20m); a server still busy then is reported so and queried anyway.
    #[arg(long, default_value = "20m")]
    settle_timeout: String,
    /// Idle threshold of the settle phase: a server's own CPU, percent of one core, in each
    /// of two consecutive 10 s windows.
    #[arg(long, default_value_t = 3.0)]
    settle_threshold_percent: f64,
    /// Keep each system's data directory in DIR (created; must not hold a kept run) for later
    /// `--reuse-data DIR` runs, instead of a temporary directory.
    #[arg(long, value_name = "DIR", conflicts_with = "reuse_data")]
    keep_data: Option<PathBuf>,
    /// Skip encode and ingest: start the systems on the data kept in DIR (same flags as a fresh
    /// run), settle, and run only the queries. The workload flags are then taken from DIR.
    #[arg(long, value_name = "DIR")]
    reuse_data: Option<PathBuf>,
}

#[derive(Args)]
struct LoadArgs {
    #[command(flatten)]
    workload: WorkloadArgs,
    /// Remote-write URL (loopback only).
    #[arg(long, default_value = "http://127.0.0.1:9201/api/v1/write")]
    url: String,
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

fn configs(a: &WorkloadArgs) -> Result<(WorkloadConfig, BatchConfig)> {
    let d = |s: &str| parse_duration_ms(s).map_err(BenchError::Config);
    let workload = WorkloadConfig {
        seed: a.seed,
        series: a.series,
        scrape_interval_ms: d(&a.scrape_interval)?,
        span_ms: d(&a.span)?,
        end_t_ms: now_ms() - d(&a.end_ago)?,
        churn_interval_ms: a.churn.as_deref().map(d).transpose()?,
        ..WorkloadConfig::default()
    };
    let protocol = match a.protocol {
        1 => Protocol::V1,
        2 => Protocol::V2,
        p => return Err(BenchError::Config(format!("--protocol must be 1 or 2, got {p}"))),
    };
    let batch = BatchConfig {
        max_samples_per_request: a.samples_per_request,
        shards: a.connections,
        protocol,
        ..BatchConfig::default()
    };
    Ok((workload, batch))
}

fn print_load(r: &LoadReport) {
    let ms = |q| r.latency_quantile(q).map_or(0.0, |d| d.as_secs_f64() * 1e3);
    println!(
        "{} samples in {} requests, {:.2} s: {:.0} samples/s; request latency p50 {:.1} ms, p99 {:.1} ms; HTTP {}",
        r.samples,
        r.requests,
        r.elapsed.as_secs_f64(),
        r.samples_per_second(),
        ms(0.5),
        ms(0.99),
        r.statuses_summary()
    );
}

fn run() -> Result<()> {
    let command = std::iter::once("cargo run --release -p bench --bin hearth-bench --".to_string())
        .chain(std::env::args().skip(1))
        .collect::<Vec<_>>()
        .join(" ");
    match Cli::parse().cmd {
        Cmd::Compare(a) => {
            let (workload, batch) = configs(&a.workload)?;
            let systems = a
                .systems
                .iter()
                .map(|s| SystemKind::parse(s).ok_or_else(|| BenchError::Config(format!("unknown system {s:?}"))))
                .collect::<Result<Vec<_>>>()?;
            let config = CompareConfig {
                workload,
                batch,
                systems,
                query_repeats: a.query_repeats,
                max_body_bytes: a.workload.max_encoded_bytes,
                hearth_bin: a.hearth_bin,
                rebuild_hearth: a.rebuild_hearth,
                install_peers: !a.no_install,
                settle: SettleConfig {
                    timeout: Duration::from_millis(parse_duration_ms(&a.settle_timeout).map_err(BenchError::Config)?.max(0) as u64),
                    max_busy_cores: a.settle_threshold_percent / 100.0,
                    ..SettleConfig::default()
                },
                keep_data: a.keep_data,
                reuse_data: a.reuse_data,
                command: command.clone(),
                ..CompareConfig::default()
            };
            let report = compare::run(config)?;
            let md = report::markdown(&report, &command);
            println!("{md}");
            if let Some(path) = a.markdown_out {
                std::fs::write(&path, &md).map_err(|e| BenchError::io(path.display().to_string(), e))?;
            }
            if report.systems.iter().any(|s| s.failure.is_some()) {
                return Err(BenchError::Process("at least one system failed; see the table".into()));
            }
            Ok(())
        }
        Cmd::Generate(a) => {
            let (workload, batch) = configs(&a)?;
            let t0 = std::time::Instant::now();
            let mut w = Workload::new(workload)?;
            let targets = w.targets();
            let enc = encode_workload(&mut w, &batch, a.max_encoded_bytes)?;
            let requests: usize = enc.shards.iter().map(Vec::len).sum();
            let series_per_req: usize = enc.shards.iter().flatten().map(|r| r.series).sum();
            println!(
                "{} targets, {} series ({} with churn), {} samples, {} requests ({:.0} series/request), {} bytes snappy ({:.2} bytes/sample), {} windows; {:.1} s",
                targets,
                a.series,
                enc.series_total,
                enc.samples,
                requests,
                series_per_req as f64 / requests.max(1) as f64,
                enc.body_bytes,
                enc.body_bytes as f64 / enc.samples.max(1) as f64,
                enc.windows,
                t0.elapsed().as_secs_f64()
            );
            Ok(())
        }
        Cmd::Load(a) => {
            let url = reqwest::Url::parse(&a.url).map_err(|e| BenchError::Config(format!("--url: {e}")))?;
            let host = url.host_str().unwrap_or("").trim_start_matches('[').trim_end_matches(']');
            let loopback = host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
            if !loopback {
                return Err(BenchError::Config("--url must be a loopback address".into()));
            }
            let (workload, batch) = configs(&a.workload)?;
            let mut w = Workload::new(workload)?;
            let enc = encode_workload(&mut w, &batch, a.workload.max_encoded_bytes)?;
            let rt = tokio::runtime::Runtime::new().map_err(|e| BenchError::io("tokio runtime", e))?;
            let http = client(batch.shards)?;
            let mut total = LoadReport::default();
            for window in 0..enc.windows {
                total.merge(rt.block_on(send_window(&http, "server", &a.url, &enc, window, Duration::from_secs(1800)))?);
            }
            print_load(&total);
            Ok(())
        }
    }
}

fn main() {
    if let Err(e) = run() {
        eprintln!("hearth-bench: {e}");
        std::process::exit(1);
    }
}
