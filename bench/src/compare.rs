//! The `compare` run: the same pre-encoded workload into Prometheus, VictoriaMetrics and Hearth,
//! then the same queries, then what each cost.
//!
//! # Fairness
//!
//! - All systems run at once, idle when not addressed. Ingest goes window by window (30 min of
//!   data each); within a window the systems take turns in an order rotated every window, so
//!   machine noise (this machine is shared) falls on all of them alike. Queries rotate the same
//!   way, per repetition and query. Figures are medians (queries) or totals over every window
//!   (samples/s = samples / time spent sending to that system).
//! - CPU seconds per million samples are the server's utime + stime from the first window's
//!   start to the last window's end: this includes background work (compaction, merges) done
//!   while another system was being fed, which is work the ingest caused.
//! - Settle: after ingest and before the first query, every server is left alone until it is
//!   idle (its own utime + stime below 3% of a core in two consecutive 10 s windows, bounded by
//!   `--settle-timeout`; see [`crate::settle`]), so queries measure the steady state, not the
//!   tail of ingest: Prometheus compacts its head and then its 2 h blocks into larger ones for
//!   minutes after a 24 h backfill, and a query meanwhile competes with that work for the
//!   machine (last session's Prometheus medians moved by up to 3.4× between runs that way).
//!   How long each system took to settle, and whether it hit the bound, is in the report.
//! - Peak RSS is `VmHWM` after ingest, settle and queries.
//! - Kept data (`--keep-data`, `--reuse-data`, see [`crate::reuse`]): a reused run restarts
//!   every system on the data a fresh run left, with the same flags, and runs the settle phase
//!   (WAL replay, any compaction the restart starts) and the same queries at the same
//!   evaluation time. Its query figures compare with the fresh run's; its peak RSS is that of
//!   restart + queries, and it has no ingest figures.
//! - Bytes on disk: see [`crate::disk`].
//! - The load generator runs on the same machine and costs the same for every system (the
//!   bodies are encoded before anything is timed).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::disk::{self, DiskUsage};
use crate::error::{BenchError, Result};
use crate::load::{client, send_window, LoadReport};
use crate::machine::{CpuSample, MachineInfo};
use crate::procstat::{cpu_seconds, peak_rss_bytes};
use crate::queries::{self, compare, dashboard_cases, eval_time_ms, Answer, Comparison, QueryCase};
use crate::requests::{encode_workload, BatchConfig, EncodedWorkload, Protocol};
use crate::reuse::{now_utc, prepare_keep_dir, KeptBatch, KeptData, KeptSystem, ReusedFrom};
use crate::settle::{settle_all, SettleConfig, SettleOutcome};
use crate::systems::{ensure_hearth_built, ensure_peers_installed, RunningSystem, SystemKind};
use crate::workload::{Workload, WorkloadConfig};

/// Everything a `compare` run needs. Defaults in [`CompareConfig::default`].
#[derive(Debug, Clone)]
pub struct CompareConfig {
    /// The data.
    pub workload: WorkloadConfig,
    /// Request shape and connections.
    pub batch: BatchConfig,
    /// Systems to run, in table order. Default: Prometheus, VictoriaMetrics, Hearth.
    pub systems: Vec<SystemKind>,
    /// Repetitions of every query per system (the median is reported). Default 5.
    pub query_repeats: usize,
    /// Upper bound on memory for pre-encoded bodies, bytes. Default 8 GiB.
    pub max_body_bytes: u64,
    /// Longest one system may take to ingest one window. Default 30 min.
    pub window_deadline: Duration,
    /// Hearth binary; default `target/release/hearth`, built if missing.
    pub hearth_bin: Option<PathBuf>,
    /// Rebuild Hearth even if the binary exists. Default false.
    pub rebuild_hearth: bool,
    /// Install missing peers with apt-get. Default true.
    pub install_peers: bool,
    /// The settle phase before queries.
    pub settle: SettleConfig,
    /// Keep every system's data directory (and [`KeptData`]) here instead of a temporary
    /// directory. Default none.
    pub keep_data: Option<PathBuf>,
    /// Skip encode and ingest: start the systems on the data kept in this directory and run the
    /// query phase only. `workload` and `batch` are then taken from its [`KeptData`].
    pub reuse_data: Option<PathBuf>,
    /// The command line, recorded in kept data. Default empty.
    pub command: String,
}

impl Default for CompareConfig {
    fn default() -> Self {
        CompareConfig {
            workload: WorkloadConfig::default(),
            batch: BatchConfig::default(),
            systems: vec![SystemKind::Prometheus, SystemKind::VictoriaMetrics, SystemKind::Hearth],
            query_repeats: 5,
            max_body_bytes: 8 << 30,
            window_deadline: Duration::from_secs(1800),
            hearth_bin: None,
            rebuild_hearth: false,
            install_peers: true,
            settle: SettleConfig::default(),
            keep_data: None,
            reuse_data: None,
            command: String::new(),
        }
    }
}

/// One query case's outcome on one system.
#[derive(Debug, Clone, Default)]
pub struct QueryOutcome {
    /// Wall time of every successful repetition.
    pub times: Vec<Duration>,
    /// The first error, if any repetition failed.
    pub error: Option<String>,
    /// Agreement with the reference system's answer (`None` for the reference itself).
    pub check: Option<Comparison>,
}

/// One system's figures.
#[derive(Debug, Clone)]
pub struct SystemResult {
    /// Which system.
    pub kind: SystemKind,
    /// Its version string.
    pub version: String,
    /// Why it dropped out, if it did (its later figures are then missing).
    pub failure: Option<String>,
    /// Ingest figures over all windows.
    pub load: LoadReport,
    /// Server CPU seconds over the ingest phase.
    pub ingest_cpu_seconds: Option<f64>,
    /// How long it took to become idle before the queries.
    pub settle: Option<SettleOutcome>,
    /// `VmHWM` after ingest (or restart), settle and queries, bytes.
    pub peak_rss_bytes: Option<u64>,
    /// Bytes on disk after a flush.
    pub disk: Option<DiskUsage>,
    /// Per query case, as [`CompareReport::cases`].
    pub queries: Vec<QueryOutcome>,
}

impl SystemResult {
    fn fail(&mut self, why: String) {
        eprintln!("hearth-bench: {} FAILED: {why}", self.kind.name());
        self.failure.get_or_insert(why);
    }

    /// Whether it is still in the run.
    pub fn alive(&self) -> bool {
        self.failure.is_none()
    }
}

/// The outcome of a `compare` run.
#[derive(Debug, Clone)]
pub struct CompareReport {
    /// The configuration.
    pub config: CompareConfig,
    /// The query cases, in order.
    pub cases: Vec<QueryCase>,
    /// Per system, in `config.systems` order.
    pub systems: Vec<SystemResult>,
    /// Samples each system was sent.
    pub samples: u64,
    /// Distinct series sent.
    pub series_total: usize,
    /// Requests per system.
    pub requests: usize,
    /// Compressed bytes per system.
    pub body_bytes: u64,
    /// Data range `[start, end)`, t_ms.
    pub data_range: (i64, i64),
    /// Query evaluation time, t_ms.
    pub eval_t_ms: i64,
    /// Answers are compared at evaluation times from here on, t_ms.
    pub check_from_t_ms: i64,
    /// The system answers were compared against.
    pub reference: Option<SystemKind>,
    /// Seconds spent generating and encoding (0 for reused data).
    pub encode_seconds: f64,
    /// The kept data this run restarted on, if it did.
    pub reused: Option<ReusedFrom>,
    /// Where this run's data was kept, if it was.
    pub kept: Option<PathBuf>,
    /// The machine and how busy it was.
    pub machine: MachineInfo,
    /// Machine CPU busy fraction (0..=1 of all cores) over the measured phases, and the share of
    /// it our processes (servers and runner) account for.
    pub machine_busy: (f64, f64),
    /// `/proc/loadavg` at start, after ingest, after settle, after queries.
    pub loadavg: Vec<(String, String)>,
    /// Wall time of the whole run, seconds.
    pub wall_seconds: f64,
}

fn version_of(kind: SystemKind, hearth_bin: Option<&PathBuf>) -> String {
    let out = |prog: &std::ffi::OsStr, args: &[&str]| {
        std::process::Command::new(prog)
            .args(args)
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(if o.stdout.is_empty() { &o.stderr } else { &o.stdout }).into_owned())
            .and_then(|s| s.lines().next().map(|l| l.trim().to_string()))
            .filter(|s| !s.is_empty())
    };
    let dpkg = |pkg: &str| out("dpkg-query".as_ref(), &["-W", "-f=${Version}", pkg]).map(|v| format!("{pkg} {v} (Debian)"));
    match kind {
        SystemKind::Prometheus => dpkg("prometheus").or_else(|| out("prometheus".as_ref(), &["--version"])),
        SystemKind::VictoriaMetrics => dpkg("victoria-metrics").or_else(|| out("victoria-metrics".as_ref(), &["-version"])),
        SystemKind::Hearth => {
            let git = out("git".as_ref(), &["-C", &crate::systems::workspace_root().display().to_string(), "describe", "--always", "--dirty"]);
            let v = hearth_bin.and_then(|b| out(b.as_os_str(), &["--version"]));
            // The workspace's revision says which build only for the default binary.
            let origin = match hearth_bin {
                Some(b) if !b.starts_with(crate::systems::workspace_root()) => format!("binary {}", b.display()),
                _ => format!("git {}", git.unwrap_or_else(|| "?".into())),
            };
            Some(format!("{} ({origin})", v.unwrap_or_else(|| "hearth".into())))
        }
    }
    .unwrap_or_else(|| "unknown".into())
}

/// The data's shape, from the encoder or from kept data.
struct DataFacts {
    samples: u64,
    series_total: usize,
    requests: usize,
    body_bytes: u64,
    start_t_ms: i64,
    end_t_ms: i64,
}

/// Where the servers' data directories live for this run.
enum DataRoot {
    Temp(tempfile::TempDir),
    Kept(PathBuf),
}

impl DataRoot {
    fn path(&self) -> &Path {
        match self {
            DataRoot::Temp(t) => t.path(),
            DataRoot::Kept(p) => p,
        }
    }
}

/// Loads the kept data of `dir` and checks that it holds every system asked for.
fn load_reused(dir: &Path, systems: &[SystemKind]) -> Result<ReusedFrom> {
    let kept = KeptData::read(dir)?;
    let missing: Vec<&str> = systems.iter().filter(|k| !kept.has(**k)).map(|k| k.name()).collect();
    if !missing.is_empty() {
        let have: Vec<&str> = kept.systems.iter().map(|s| s.name.as_str()).collect();
        return Err(BenchError::Config(format!("--reuse-data {}: no data of {missing:?} (kept: {have:?})", dir.display())));
    }
    Ok(ReusedFrom { dir: dir.to_path_buf(), kept })
}

/// Runs the comparison. Failures of one system are recorded in its [`SystemResult`] and the
/// others go on; only errors that stop every system (bad config, encoding) are returned.
pub fn run(mut config: CompareConfig) -> Result<CompareReport> {
    let wall = Instant::now();
    if config.keep_data.is_some() && config.reuse_data.is_some() {
        return Err(BenchError::Config("--keep-data and --reuse-data exclude each other (reused data is kept where it is)".into()));
    }
    let reused = config.reuse_data.as_deref().map(|d| load_reused(d, &config.systems)).transpose()?;
    if let Some(r) = &reused {
        config.workload = r.kept.workload.clone();
        config.batch = r.kept.batch.to_config()?;
    }
    if config.batch.protocol == Protocol::V2 && config.systems.iter().any(|s| *s != SystemKind::Hearth) {
        return Err(BenchError::Config("Prometheus 2.42 and VictoriaMetrics 1.79 accept remote-write 1.0 only".into()));
    }
    let root = match (&config.keep_data, &reused) {
        (Some(dir), _) => {
            prepare_keep_dir(dir, &config.systems)?;
            DataRoot::Kept(dir.clone())
        }
        (None, Some(r)) => DataRoot::Kept(r.dir.clone()),
        (None, None) => {
            DataRoot::Temp(tempfile::Builder::new().prefix("hearth-bench-").tempdir().map_err(|e| BenchError::io("temp dir", e))?)
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| BenchError::io("tokio runtime", e))?;
    let http = client(config.batch.shards)?;

    let mut results: Vec<SystemResult> = config
        .systems
        .iter()
        .map(|&kind| SystemResult {
            kind,
            version: String::new(),
            failure: None,
            load: LoadReport::default(),
            ingest_cpu_seconds: None,
            settle: None,
            peak_rss_bytes: None,
            disk: None,
            queries: Vec::new(),
        })
        .collect();

    // Binaries.
    let peers = config.systems.iter().any(|s| *s != SystemKind::Hearth);
    if peers && config.install_peers {
        if let Err(e) = ensure_peers_installed() {
            for r in results.iter_mut().filter(|r| r.kind != SystemKind::Hearth) {
                r.fail(e.to_string());
            }
        }
    }
    let mut hearth_bin = config.hearth_bin.clone();
    if let Some(r) = results.iter_mut().find(|r| r.kind == SystemKind::Hearth) {
        if hearth_bin.is_none() {
            match ensure_hearth_built(config.rebuild_hearth) {
                Ok(b) => hearth_bin = Some(b),
                Err(e) => r.fail(e.to_string()),
            }
        }
    }
    for r in &mut results {
        r.version = version_of(r.kind, hearth_bin.as_ref());
    }

    // Data, encoded before anything is timed (or kept from an earlier run).
    let t0 = Instant::now();
    let (encoded, facts) = match &reused {
        Some(r) => {
            let k = &r.kept;
            eprintln!("hearth-bench: reusing the data kept in {} at {} ({} samples)", r.dir.display(), k.created_utc, k.samples);
            let facts = DataFacts {
                samples: k.samples,
                series_total: k.series_total,
                requests: k.requests,
                body_bytes: k.body_bytes,
                start_t_ms: k.start_t_ms,
                end_t_ms: k.end_t_ms,
            };
            (None, facts)
        }
        None => {
            let mut workload = Workload::new(config.workload.clone())?;
            let encoded = encode_workload(&mut workload, &config.batch, config.max_body_bytes)?;
            let facts = DataFacts {
                samples: encoded.samples,
                series_total: encoded.series_total,
                requests: encoded.shards.iter().map(Vec::len).sum(),
                body_bytes: encoded.body_bytes,
                start_t_ms: encoded.start_t_ms,
                end_t_ms: encoded.end_t_ms,
            };
            (Some(encoded), facts)
        }
    };
    let encode_seconds = if encoded.is_some() { t0.elapsed().as_secs_f64() } else { 0.0 };
    if encoded.is_some() {
        eprintln!(
            "hearth-bench: {} samples of {} series in {} requests ({} MiB snappy) encoded in {encode_seconds:.1} s",
            facts.samples,
            facts.series_total,
            facts.requests,
            facts.body_bytes >> 20
        );
    }

    // Servers. On kept data a restart replays the WAL first: allow it time.
    let ready_timeout = Duration::from_secs(if reused.is_some() { 1200 } else { 120 });
    let mut running: HashMap<SystemKind, RunningSystem> = HashMap::new();
    for r in results.iter_mut().filter(|r| r.alive()) {
        let started = RunningSystem::start(r.kind, root.path(), hearth_bin.as_deref());
        match started {
            Ok(mut sys) => match rt.block_on(sys.wait_ready(&http, ready_timeout)) {
                Ok(()) => {
                    running.insert(r.kind, sys);
                }
                Err(e) => r.fail(e.to_string()),
            },
            Err(e) => r.fail(e.to_string()),
        }
    }

    let machine = MachineInfo::collect();
    let mut loadavg = vec![("start".to_string(), MachineInfo::loadavg())];
    let machine_cpu0 = CpuSample::now();
    let own_cpu0 = own_cpu(&running);

    if let Some(encoded) = &encoded {
        ingest(&rt, &http, &config, encoded, &mut results, &mut running);
        loadavg.push(("after ingest".to_string(), MachineInfo::loadavg()));
    }
    settle(&config.settle, &mut results, &running);
    loadavg.push(("after settle".to_string(), MachineInfo::loadavg()));

    let cases = dashboard_cases();
    let eval_t_ms = eval_time_ms(facts.end_t_ms);
    let check_from = queries::check_from_t_ms(facts.start_t_ms, config.workload.scrape_interval_ms);
    let reference = run_queries(&rt, &http, &config, &cases, (eval_t_ms, check_from), &mut results, &running);
    loadavg.push(("after queries".to_string(), MachineInfo::loadavg()));
    let machine_cpu1 = CpuSample::now();
    let own_cpu1 = own_cpu(&running);
    let busy = machine_cpu1.busy_fraction_since(&machine_cpu0);
    let own_share = (own_cpu1 - own_cpu0) / (machine_cpu1.elapsed_core_seconds_since(&machine_cpu0)).max(1e-9);

    for r in results.iter_mut().filter(|r| r.alive()) {
        if let Some(sys) = running.get(&r.kind) {
            match peak_rss_bytes(sys.pid()) {
                Ok(b) => r.peak_rss_bytes = Some(b),
                Err(e) => r.fail(e.to_string()),
            }
        }
    }
    // Hearth last: an older build without the snapshot API is measured by stopping it.
    let mut order: Vec<usize> = (0..results.len()).collect();
    order.sort_by_key(|&i| results[i].kind == SystemKind::Hearth);
    for i in order {
        let r = &mut results[i];
        if !r.alive() {
            continue;
        }
        if let Some(sys) = running.get_mut(&r.kind) {
            match rt.block_on(disk::measure(&http, sys, facts.samples)) {
                Ok(d) => r.disk = Some(d),
                Err(e) => r.fail(format!("disk measurement: {e}")),
            }
        }
    }
    // Kept data is used again: give every server time for a clean shutdown.
    let grace = Duration::from_secs(if matches!(root, DataRoot::Kept(_)) { 300 } else { 30 });
    for (_, mut sys) in running.drain() {
        sys.child.terminate(grace);
    }
    let kept = match &config.keep_data {
        Some(dir) => {
            let (created_unix_s, created_utc) = now_utc();
            let meta = KeptData {
                format_version: crate::reuse::FORMAT_VERSION,
                created_unix_s,
                created_utc,
                command: config.command.clone(),
                systems: results.iter().map(|r| KeptSystem { name: r.kind.name().into(), version: r.version.clone() }).collect(),
                workload: config.workload.clone(),
                batch: KeptBatch::from(&config.batch),
                start_t_ms: facts.start_t_ms,
                end_t_ms: facts.end_t_ms,
                eval_t_ms,
                check_from_t_ms: check_from,
                samples: facts.samples,
                series_total: facts.series_total,
                requests: facts.requests,
                body_bytes: facts.body_bytes,
            };
            meta.write(dir)?;
            eprintln!("hearth-bench: data kept in {}", dir.display());
            Some(dir.clone())
        }
        None => None,
    };
    Ok(CompareReport {
        config,
        cases,
        systems: results,
        samples: facts.samples,
        series_total: facts.series_total,
        requests: facts.requests,
        body_bytes: facts.body_bytes,
        data_range: (facts.start_t_ms, facts.end_t_ms),
        eval_t_ms,
        check_from_t_ms: check_from,
        reference,
        encode_seconds,
        reused,
        kept,
        machine,
        machine_busy: (busy, own_share),
        loadavg,
        wall_seconds: wall.elapsed().as_secs_f64(),
    })
}

/// The settle phase (module doc): waits until every running system is idle.
fn settle(config: &SettleConfig, results: &mut [SystemResult], running: &HashMap<SystemKind, RunningSystem>) {
    let pids: Vec<(SystemKind, u32)> =
        results.iter().filter(|r| r.alive()).filter_map(|r| running.get(&r.kind).map(|s| (r.kind, s.pid()))).collect();
    let mut outcomes = settle_all(&pids, config);
    for r in results.iter_mut() {
        match outcomes.remove(&r.kind) {
            Some(Ok(o)) => r.settle = Some(o),
            Some(Err(e)) => r.fail(format!("exited while settling: {e}")),
            None => {}
        }
    }
}

/// CPU seconds of the servers and this runner.
fn own_cpu(running: &HashMap<SystemKind, RunningSystem>) -> f64 {
    let servers: f64 = running.values().filter_map(|s| cpu_seconds(s.pid()).ok()).sum();
    servers + cpu_seconds(std::process::id()).unwrap_or(0.0)
}

fn ingest(
    rt: &tokio::runtime::Runtime,
    http: &reqwest::Client,
    config: &CompareConfig,
    encoded: &EncodedWorkload,
    results: &mut [SystemResult],
    running: &mut HashMap<SystemKind, RunningSystem>,
) {
    let mut cpu0: HashMap<SystemKind, f64> = HashMap::new();
    for r in results.iter_mut().filter(|r| r.alive()) {
        if let Some(sys) = running.get(&r.kind) {
            match cpu_seconds(sys.pid()) {
                Ok(c) => {
                    cpu0.insert(r.kind, c);
                }
                Err(e) => r.fail(e.to_string()),
            }
        }
    }
    for window in 0..encoded.windows {
        let alive: Vec<usize> = (0..results.len()).filter(|&i| results[i].alive() && running.contains_key(&results[i].kind)).collect();
        if alive.is_empty() {
            break;
        }
        for k in 0..alive.len() {
            let i = alive[(k + window) % alive.len()];
            let r = &mut results[i];
            let sys = &running[&r.kind];
            match rt.block_on(send_window(http, r.kind.name(), &sys.write_url(), encoded, window, config.window_deadline)) {
                Ok(rep) => r.load.merge(rep),
                Err(e) => {
                    let log = crate::systems::log_tail(&sys.log, 1500);
                    r.fail(format!("ingest window {window}: {e}; server log tail: {log}"));
                }
            }
        }
        let progress: Vec<String> = results
            .iter()
            .filter(|r| r.alive())
            .map(|r| format!("{} {:.0}/s", r.kind.name(), r.load.samples_per_second()))
            .collect();
        eprintln!("hearth-bench: window {}/{}: {}", window + 1, encoded.windows, progress.join(", "));
    }
    for r in results.iter_mut().filter(|r| r.alive()) {
        if let (Some(sys), Some(c0)) = (running.get(&r.kind), cpu0.get(&r.kind)) {
            match cpu_seconds(sys.pid()) {
                Ok(c1) => r.ingest_cpu_seconds = Some(c1 - c0),
                Err(e) => r.fail(format!("process gone after ingest: {e}")),
            }
        }
    }
    // VictoriaMetrics buffers recent rows for up to a few seconds before they are searchable.
    if let Some(vm) = running.get(&SystemKind::VictoriaMetrics) {
        let url = format!("{}/internal/force_flush", vm.base_url);
        let _ = rt.block_on(async { http.get(url).send().await });
    }
}

fn run_queries(
    rt: &tokio::runtime::Runtime,
    http: &reqwest::Client,
    config: &CompareConfig,
    cases: &[QueryCase],
    (eval_t_ms, check_from_t_ms): (i64, i64),
    results: &mut [SystemResult],
    running: &HashMap<SystemKind, RunningSystem>,
) -> Option<SystemKind> {
    for r in results.iter_mut() {
        r.queries = vec![QueryOutcome::default(); cases.len()];
    }
    let mut answers: Vec<HashMap<SystemKind, Answer>> = vec![HashMap::new(); cases.len()];
    for rep in 0..config.query_repeats.max(1) {
        for (ci, case) in cases.iter().enumerate() {
            let alive: Vec<usize> = (0..results.len()).filter(|&i| results[i].alive() && running.contains_key(&results[i].kind)).collect();
            for k in 0..alive.len() {
                let i = alive[(k + rep + ci) % alive.len()];
                let r = &mut results[i];
                let base = &running[&r.kind].base_url;
                match rt.block_on(queries::run(http, r.kind.name(), base, case, eval_t_ms)) {
                    Ok((t, answer)) => {
                        r.queries[ci].times.push(t);
                        answers[ci].entry(r.kind).or_insert(answer);
                    }
                    Err(e) => {
                        r.queries[ci].error.get_or_insert(e.to_string());
                    }
                }
            }
        }
        eprintln!("hearth-bench: query repetition {}/{} done", rep + 1, config.query_repeats.max(1));
    }
    // Prometheus is the reference: its semantics are what Hearth implements.
    let reference = [SystemKind::Prometheus, SystemKind::VictoriaMetrics, SystemKind::Hearth]
        .into_iter()
        .find(|k| results.iter().any(|r| r.kind == *k && r.alive()) && answers.iter().all(|a| a.contains_key(k)));
    if let Some(reference) = reference {
        for (ci, case) in cases.iter().enumerate() {
            let ref_answer = &answers[ci][&reference];
            for r in results.iter_mut().filter(|r| r.kind != reference) {
                if let Some(a) = answers[ci].get(&r.kind) {
                    r.queries[ci].check = Some(compare(ref_answer, a, case.spec.rel_tolerance, check_from_t_ms));
                }
            }
        }
    }
    reference
}
