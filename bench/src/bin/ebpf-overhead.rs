//! `ebpf-overhead`: what Hearth's eBPF HTTP ingestion costs a loopback server, end to end.
//!
//! One run starts Debian's nginx (one process, `return 200`) on a free loopback port and
//! drives it with Debian's `wrk` in alternating rounds: without Hearth, with a fresh Hearth
//! whose eBPF source observes nginx's port, and with one observing another, idle port (the
//! cost of the kernel programs on traffic they filter out). The throughput loss is the median
//! over cycles of each cycle's observed-vs-baseline loss (rounds of a cycle run back to back, so
//! a pair shares the machine's load), held to the target (under 5%, no ring-buffer drops) and
//! printed last; the ratio of the per-mode medians is reported beside it, with nginx's and wrk's
//! CPU per request in each mode (nginx's `/proc` utime + stime, wrk's `getrusage` once reaped:
//! the kernel programs run in both sides' socket calls and the softirq work they carry; on
//! loopback a packet is received in its sender's context, so the ingress program on nginx's
//! requests runs in wrk's), Hearth's own CPU, ring-buffer drops and the load average of every
//! round. nginx and wrk are pinned to different CPUs (`taskset -c`; by default nginx to the last
//! CPU, wrk to CPU 0; `--no-pin` leaves them to the scheduler), each of which they keep close to
//! busy, so the throughput follows both sides' cost per request; Hearth is not pinned (its
//! drain competes for either CPU, as it would in production). The modes alternate within each cycle, in an order rotated per cycle. Each observed
//! round checks the counting: ring-buffer events and the PromQL request count must equal
//! wrk's requests within the requests in flight when wrk stops. The result goes to stdout
//! and to bench/results/ebpf.md.
//!
//! Needs root (eBPF), nginx and wrk (installed with apt-get when missing), and
//! target/release/hearth (built when missing). Children die with the runner: each is spawned
//! with `PR_SET_PDEATHSIG` and terminated on drop (`bench::systems`).
//!
//! ```text
//! cargo run --release -p bench --bin ebpf-overhead -- --rounds 5 --duration 10s --connections 32 --threads 1
//! ```

#[path = "../ebpf/hearth.rs"]
mod hearth;
#[path = "../ebpf/report.rs"]
mod report;
#[path = "../ebpf/wrk.rs"]
mod wrk;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use bench::machine::{CpuSample, MachineInfo};
use bench::procstat::{cpu_seconds, peak_rss_bytes};
use bench::systems::{free_loopback_port, log_tail, spawn, ChildGuard};
use bench::units::parse_duration_ms;
use bench::{BenchError, Result};
use clap::Parser;

use hearth::Hearth;
use report::{HearthFigures, Mode, Round, RunInfo};

/// How long Hearth may take to be ready with eBPF attached.
const HEARTH_READY_TIMEOUT: Duration = Duration::from_secs(60);
/// The PromQL count of an observed round.
const COUNT_QUERY: &str = "sum(http_server_request_duration_seconds_count)";

#[derive(Parser, Debug)]
#[command(name = "ebpf-overhead", about = "nginx throughput on loopback with and without Hearth's eBPF ingestion")]
struct Cli {
    /// Cycles; each runs wrk once without Hearth, once observed, once observing another port.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=50))]
    rounds: u32,
    /// Length of each wrk run (whole seconds, 1s to 10m).
    #[arg(long, default_value = "10s")]
    duration: String,
    /// wrk connections.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=1000))]
    connections: u32,
    /// wrk threads.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    threads: u32,
    /// Untimed wrk run before the first round (0 for none).
    #[arg(long, default_value = "2s")]
    warmup: String,
    /// Path wrk requests: `/` (`return 200 "ok\n"`) or `/static/1k.txt` (a 1 KiB file).
    #[arg(long, default_value = "/")]
    path: String,
    /// CPU nginx is pinned to (`taskset -c`). [default: the last CPU]
    #[arg(long)]
    nginx_cpu: Option<usize>,
    /// CPU wrk is pinned to (`taskset -c`). [default: CPU 0]
    #[arg(long)]
    wrk_cpu: Option<usize>,
    /// Pin neither nginx nor wrk (the scheduler places them; Hearth is never pinned).
    #[arg(long)]
    no_pin: bool,
    /// Turn on kernel.bpf_stats_enabled for the run to report the kernel programs' own run time
    /// (costs two clock reads per program run, in observed rounds only).
    #[arg(long)]
    bpf_stats: bool,
    /// The Hearth binary. [default: <workspace>/target/release/hearth, built when missing]
    #[arg(long)]
    hearth: Option<PathBuf>,
    /// Where the Markdown report goes. [default: <workspace>/bench/results/ebpf.md]
    #[arg(long)]
    out: Option<PathBuf>,
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// Whole seconds of a duration flag, within [min_s, 600].
fn seconds_flag(name: &str, v: &str, min_s: u64) -> Result<u64> {
    let ms = parse_duration_ms(v).map_err(|e| BenchError::Config(format!("--{name}: {e}")))?;
    if ms % 1000 != 0 || ms < 0 || (ms / 1000) as u64 > 600 || ((ms / 1000) as u64) < min_s {
        return Err(BenchError::Config(format!("--{name} {v}: whole seconds from {min_s}s to 600s")));
    }
    Ok((ms / 1000) as u64)
}

/// Output of a command (stdout then stderr), trimmed; empty when it cannot run.
fn capture(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .map(|o| format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)).trim().to_string())
        .unwrap_or_default()
}

/// nginx and wrk from Debian, installed with apt-get (as root) when either is missing.
fn ensure_tools() -> Result<(PathBuf, PathBuf)> {
    let find = |cands: &[&str]| cands.iter().map(PathBuf::from).find(|p| p.exists());
    let nginx_paths = ["/usr/sbin/nginx", "/usr/bin/nginx"];
    let wrk_paths = ["/usr/bin/wrk", "/usr/local/bin/wrk"];
    if find(&nginx_paths).is_none() || find(&wrk_paths).is_none() {
        eprintln!("installing nginx and wrk with apt-get");
        let status = Command::new("apt-get")
            .args(["install", "-y", "nginx", "wrk"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .map_err(|e| BenchError::io("running apt-get install -y nginx wrk", e))?;
        if !status.success() {
            return Err(BenchError::Process(format!("apt-get install -y nginx wrk failed: {status}")));
        }
    }
    match (find(&nginx_paths), find(&wrk_paths)) {
        (Some(n), Some(w)) => Ok((n, w)),
        _ => Err(BenchError::Process("nginx or wrk still missing after apt-get install".into())),
    }
}

/// The Hearth binary, built with `cargo build --release --bin hearth` when missing.
fn ensure_hearth(explicit: Option<PathBuf>) -> Result<PathBuf> {
    if let Some(p) = explicit {
        return if p.exists() { Ok(p) } else { Err(BenchError::Config(format!("--hearth {}: no such file", p.display()))) };
    }
    let root = workspace_root();
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let bin = target.join("release").join("hearth");
    if !bin.exists() {
        eprintln!("building {} (cargo build --release --bin hearth)", bin.display());
        let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["build", "--release", "--bin", "hearth"])
            .current_dir(&root)
            .status()
            .map_err(|e| BenchError::io("running cargo build --release --bin hearth", e))?;
        if !status.success() || !bin.exists() {
            return Err(BenchError::Process(format!("cargo build --release --bin hearth failed: {status}")));
        }
    }
    Ok(bin)
}

/// nginx with its config, log and static file in a temporary directory.
struct Nginx {
    guard: ChildGuard,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Nginx {
    fn start(bin: &Path, cpu: Option<usize>) -> Result<Nginx> {
        let dir = tempfile::Builder::new().prefix("ebpf-overhead-nginx").tempdir().map_err(|e| BenchError::io("temp dir", e))?;
        let port = free_loopback_port()?;
        let d = dir.path().display();
        std::fs::create_dir_all(dir.path().join("static")).map_err(|e| BenchError::io("static dir", e))?;
        let body = "0123456789abcdef".repeat(64);
        std::fs::write(dir.path().join("static/1k.txt"), body).map_err(|e| BenchError::io("static file", e))?;
        // One process (no master, no workers) so that its CPU is one /proc entry and killing
        // it leaves nothing behind; temp paths inside the directory so root's defaults in
        // /var/lib/nginx are not needed.
        let conf = format!(
            "master_process off; daemon off; pid {d}/nginx.pid; error_log {d}/error.log;\n\
             events {{ worker_connections 4096; }}\n\
             http {{ access_log off; client_body_temp_path {d}; proxy_temp_path {d}; fastcgi_temp_path {d};\n\
               uwsgi_temp_path {d}; scgi_temp_path {d};\n\
               server {{ listen 127.0.0.1:{port};\n\
                 location / {{ return 200 \"ok\\n\"; }}\n\
                 location /static/ {{ alias {d}/static/; }}\n\
               }} }}\n"
        );
        let conf_path = dir.path().join("nginx.conf");
        std::fs::write(&conf_path, conf).map_err(|e| BenchError::io("nginx.conf", e))?;
        // taskset execs nginx: the pid stays the one whose CPU is measured.
        let mut cmd = match cpu {
            Some(c) => {
                let mut t = Command::new("taskset");
                t.arg("-c").arg(c.to_string()).arg(bin);
                t
            }
            None => Command::new(bin),
        };
        cmd.arg("-c").arg(&conf_path).arg("-p").arg(dir.path());
        let log = dir.path().join("stdout.log");
        let mut guard = spawn(cmd, &log)?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if guard.exited().is_some() || Instant::now() >= deadline {
                return Err(BenchError::Process(format!(
                    "nginx did not listen on 127.0.0.1:{port}: {}",
                    log_tail(&dir.path().join("error.log"), 2000)
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Nginx { guard, port, _dir: dir })
    }

    /// Both locations answer as configured.
    fn check(&self, http: &reqwest::blocking::Client) -> Result<()> {
        for (path, len) in [("/", 3usize), ("/static/1k.txt", 1024)] {
            let url = format!("http://127.0.0.1:{}{path}", self.port);
            let r = http.get(&url).send().map_err(|e| BenchError::Http { system: "nginx".into(), source: e })?;
            let status = r.status();
            let body = r.bytes().map_err(|e| BenchError::Http { system: "nginx".into(), source: e })?;
            if !status.is_success() || body.len() != len {
                return Err(BenchError::Process(format!("nginx {url}: HTTP {status}, {} bytes (expected {len})", body.len())));
            }
        }
        Ok(())
    }
}

struct Runner {
    cli: Cli,
    /// (nginx, wrk) CPUs, when pinned.
    pin: Option<(usize, usize)>,
    seconds: u64,
    wrk: PathBuf,
    hearth_bin: PathBuf,
    nginx: Nginx,
    other_port: u16,
    http: reqwest::blocking::Client,
}

impl Runner {
    fn url(&self) -> String {
        format!("http://127.0.0.1:{}{}", self.nginx.port, self.cli.path)
    }

    fn round(&self, cycle: usize, mode: Mode) -> Result<Round> {
        let loadavg = MachineInfo::loadavg();
        let hearth = match mode {
            Mode::Baseline => None,
            Mode::Observed => Some(Hearth::start(&self.hearth_bin, self.nginx.port, &self.http, HEARTH_READY_TIMEOUT)?),
            Mode::OtherPort => Some(Hearth::start(&self.hearth_bin, self.other_port, &self.http, HEARTH_READY_TIMEOUT)?),
        };
        let nginx_pid = self.nginx.guard.pid();
        let hearth_cpu0 = hearth.as_ref().map(|h| cpu_seconds(h.pid())).transpose()?;
        let nginx_cpu0 = cpu_seconds(nginx_pid)?;
        let prog0 = hearth.as_ref().and_then(|_| hearth::program_stats());
        let machine0 = CpuSample::now();
        let started = Instant::now();
        let run = wrk::run(&self.wrk, &self.url(), self.cli.threads, self.cli.connections, self.seconds, self.pin.map(|p| p.1))?;
        let wall = started.elapsed().as_secs_f64();
        let machine_busy = CpuSample::now().busy_fraction_since(&machine0);
        let prog1 = hearth.as_ref().and_then(|_| hearth::program_stats());
        let program_ns_runs = match (prog0, prog1) {
            (Some((ns0, n0)), Some((ns1, n1))) => Some((ns1.saturating_sub(ns0), n1.saturating_sub(n0))),
            _ => None,
        };
        let nginx_cpu_seconds = cpu_seconds(nginx_pid)? - nginx_cpu0;
        if run.socket_errors > 0 || run.non_2xx_3xx > 0 {
            eprintln!("warning: wrk saw {} socket errors, {} non-2xx/3xx responses", run.socket_errors, run.non_2xx_3xx);
        }
        let figures = match (hearth, hearth_cpu0) {
            (Some(h), Some(cpu0)) => {
                let cpu = cpu_seconds(h.pid())? - cpu0;
                let counters = h.settled_counters(&self.http, Duration::from_secs(5))?;
                // A flush every second writes the aggregate; wait for the one that has it all.
                let promql_count = h.query_until(&self.http, COUNT_QUERY, counters.requests as f64, Duration::from_secs(10))?;
                let peak = peak_rss_bytes(h.pid())?;
                if !h.stop() {
                    eprintln!("warning: hearth did not exit within 10 s of SIGTERM; killed");
                }
                Some(HearthFigures {
                    cpu_seconds: cpu,
                    cpu_core_fraction: cpu / wall,
                    peak_rss_bytes: peak,
                    counters,
                    promql_count,
                    program_ns_runs,
                })
            }
            _ => None,
        };
        Ok(Round { cycle, mode, wrk: run, loadavg, machine_busy, nginx_cpu_seconds, hearth: figures })
    }
}

fn print_round(r: &Round, connections: u32) {
    let mut line = format!(
        "cycle {} {:<30} {:>9.0} req/s  p50 {:.3} ms  p99 {:.3} ms  nginx {:.2} µs/req  wrk {:.2} µs/req  load {}",
        r.cycle,
        r.mode.name(),
        r.wrk.requests_per_second,
        r.wrk.p50_ms,
        r.wrk.p99_ms,
        r.nginx_us_per_request(),
        r.wrk_us_per_request(),
        r.loadavg
    );
    if let Some(h) = &r.hearth {
        line += &format!(
            "  | hearth {:.1}% core ({} µs/req), events {} (wrk {}), dropped {}, PromQL {}, prog {} µs/req",
            h.cpu_core_fraction * 100.0,
            r.hearth_us_per_request().map_or_else(|| "-".into(), |u| format!("{u:.2}")),
            h.counters.events_read,
            r.wrk.requests,
            h.counters.events_dropped,
            h.promql_count,
            r.program_us_per_request().map_or_else(|| "-".into(), |u| format!("{u:.2}"))
        );
    }
    println!("{line}");
    for p in r.problems(connections) {
        println!("    PROBLEM: {p}");
    }
}

/// kernel.bpf_stats_enabled on when asked for, else off, for the run (restored on drop).
fn runner_stats(on: bool) -> hearth::BpfStats {
    hearth::BpfStats::set(on)
}

fn run(cli: Cli) -> Result<bool> {
    let seconds = seconds_flag("duration", &cli.duration, 1)?;
    let warmup = seconds_flag("warmup", &cli.warmup, 0)?;
    if !cli.path.starts_with('/') {
        return Err(BenchError::Config(format!("--path {}: must start with /", cli.path)));
    }
    // SAFETY: geteuid(2) takes no arguments and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Err(BenchError::Process("eBPF needs root: run as root".into()));
    }
    let command = std::iter::once("cargo run --release -p bench --bin ebpf-overhead --".to_string())
        .chain(std::env::args().skip(1))
        .collect::<Vec<_>>()
        .join(" ");
    let (nginx_bin, wrk_bin) = ensure_tools()?;
    let hearth_bin = ensure_hearth(cli.hearth.clone())?;
    // reqwest is built with rustls but no crypto provider; the traffic here is plain HTTP, yet
    // building a client needs one installed.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| BenchError::Http { system: "client".into(), source: e })?;
    let started = capture("date", &["-u", "+%F %T"]);
    // Per-program run time, to see what the kernel side costs; restored on return. Off (even
    // if someone left it on) unless asked: the statistics add two clock reads to every program run, i.e. to observed rounds
    // only, which would inflate the measured loss.
    let _bpf_stats = runner_stats(cli.bpf_stats);
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let pin = if cli.no_pin || (cores < 2 && cli.nginx_cpu.is_none() && cli.wrk_cpu.is_none()) {
        None
    } else {
        let (n, w) = (cli.nginx_cpu.unwrap_or(cores.saturating_sub(1)), cli.wrk_cpu.unwrap_or(0));
        if n >= cores || w >= cores {
            return Err(BenchError::Config(format!("--nginx-cpu {n} / --wrk-cpu {w}: this machine has CPUs 0 to {}", cores - 1)));
        }
        Some((n, w))
    };
    let nginx = Nginx::start(&nginx_bin, pin.map(|p| p.0))?;
    nginx.check(&http)?;
    let other_port = free_loopback_port()?;
    let runner = Runner { seconds, wrk: wrk_bin, hearth_bin, nginx, other_port, http, cli, pin };
    println!(
        "nginx on 127.0.0.1:{}; {} cycles of {}s wrk runs (-t{} -c{}); hearth {}",
        runner.nginx.port,
        runner.cli.rounds,
        seconds,
        runner.cli.threads,
        runner.cli.connections,
        runner.hearth_bin.display()
    );
    if warmup > 0 {
        wrk::run(&runner.wrk, &runner.url(), runner.cli.threads, runner.cli.connections, warmup, runner.pin.map(|p| p.1))?;
    }
    let mut rounds = Vec::new();
    for cycle in 1..=runner.cli.rounds as usize {
        // The order rotates each cycle so that no mode always follows the same one (a Hearth
        // just stopped, a build that starts at a fixed phase).
        let modes = [Mode::Baseline, Mode::Observed, Mode::OtherPort];
        for k in 0..modes.len() {
            let mode = modes[(k + cycle - 1) % modes.len()];
            let r = runner.round(cycle, mode)?;
            print_round(&r, runner.cli.connections);
            rounds.push(r);
        }
    }
    let machine = MachineInfo::collect();
    let root = workspace_root();
    let hb = runner.hearth_bin.display().to_string();
    let info = RunInfo {
        command,
        started,
        finished: capture("date", &["-u", "+%F %T"]),
        cores: machine.cores,
        cpu_model: machine.cpu_model,
        kernel: machine.kernel,
        free_g: machine.free_g,
        nginx_version: capture(&nginx_bin.display().to_string(), &["-v"]),
        wrk_version: capture(&runner.wrk.display().to_string(), &["-v"]).lines().next().unwrap_or("").trim().to_string(),
        hearth: format!(
            "{hb} (built {} UTC; checkout at {})",
            capture("date", &["-u", "-r", &hb, "+%F %T"]),
            capture("git", &["-C", &root.display().to_string(), "rev-parse", "--short", "HEAD"])
        ),
        threads: runner.cli.threads,
        connections: runner.cli.connections,
        seconds,
        path: runner.cli.path.clone(),
        pinning: match runner.pin {
            Some((n, w)) => format!("nginx pinned to CPU {n} and wrk to CPU {w} (`taskset -c`); Hearth not pinned"),
            None => "nothing pinned (the scheduler places nginx, wrk and Hearth)".to_string(),
        },
    };
    let md = report::markdown(&info, &rounds);
    println!("\n{md}");
    let out = runner.cli.out.clone().unwrap_or_else(|| root.join("bench/results/ebpf.md"));
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent).map_err(|e| BenchError::io(parent.display().to_string(), e))?;
    }
    std::fs::write(&out, &md).map_err(|e| BenchError::io(out.display().to_string(), e))?;
    println!("written to {}", out.display());
    let base = report::summarize(&rounds, Mode::Baseline);
    let obs = report::summarize(&rounds, Mode::Observed);
    let pairs = report::paired_losses(&rounds, Mode::Observed);
    let loss = report::paired_loss_percent(&rounds, Mode::Observed);
    let counted_ok = rounds.iter().all(|r| r.problems(runner.cli.connections).is_empty());
    println!(
        "throughput loss with eBPF observing nginx: {loss:.1}% (median of {} per-cycle pairs: {}); medians {:.0} vs {:.0} \
         req/s without; events dropped {}; hearth {:.1}% of one core; counting {}",
        pairs.len(),
        pairs.iter().map(|l| format!("{l:.1}")).collect::<Vec<_>>().join(" "),
        obs.rps,
        base.rps,
        obs.events_dropped,
        obs.hearth_core.unwrap_or(0.0) * 100.0,
        if counted_ok { "exact" } else { "FAILED" }
    );
    Ok(!pairs.is_empty() && loss < report::TARGET_LOSS_PERCENT && obs.events_dropped == 0 && counted_ok)
}

fn main() {
    match run(Cli::parse()) {
        Ok(true) => {}
        Ok(false) => {
            eprintln!("target not met (see the report)");
            std::process::exit(2);
        }
        Err(e) => {
            eprintln!("ebpf-overhead: {e}");
            std::process::exit(1);
        }
    }
}
