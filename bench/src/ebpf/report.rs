//! The rounds of an overhead run, their per-mode medians, the verdict against the target
//! (under 5% throughput loss, no ring-buffer drops), and the Markdown of bench/results/ebpf.md.

use std::fmt::Write as _;

use super::hearth::EbpfCounters;
use super::wrk::WrkRun;

/// The throughput loss the eBPF source may cost, percent of the baseline's median req/s.
pub const TARGET_LOSS_PERCENT: f64 = 5.0;

/// What ran beside nginx during a round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// nginx alone.
    Baseline,
    /// Hearth with eBPF observing nginx's port.
    Observed,
    /// Hearth with eBPF observing another (idle) port: the cost on unobserved traffic.
    OtherPort,
}

impl Mode {
    /// Label in tables.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Baseline => "baseline (no hearth)",
            Mode::Observed => "hearth eBPF on nginx's port",
            Mode::OtherPort => "hearth eBPF on another port",
        }
    }
}

/// Hearth's figures over one round.
#[derive(Debug, Clone, Default)]
pub struct HearthFigures {
    /// utime + stime during the wrk run, seconds.
    pub cpu_seconds: f64,
    /// `cpu_seconds` over the wrk run's wall time: fraction of one core.
    pub cpu_core_fraction: f64,
    /// `VmHWM` at the end of the round, bytes.
    pub peak_rss_bytes: u64,
    /// The eBPF counters once the ring buffer was drained after the run.
    pub counters: EbpfCounters,
    /// `sum(http_server_request_duration_seconds_count)` after a flush.
    pub promql_count: f64,
    /// Run time of the kernel programs during the wrk run, ns, and their run count (every
    /// socket send/receive and TCP state change on the machine, everyone's), from
    /// `kernel.bpf_stats_enabled`.
    pub program_ns_runs: Option<(u64, u64)>,
}

/// One wrk run.
#[derive(Debug, Clone)]
pub struct Round {
    /// 1-based cycle number.
    pub cycle: usize,
    /// What ran beside nginx.
    pub mode: Mode,
    /// wrk's figures.
    pub wrk: WrkRun,
    /// `/proc/loadavg` (1, 5, 15 min) at the start of the run.
    pub loadavg: String,
    /// Fraction of all cores busy during the run (everyone's work, not only ours).
    pub machine_busy: f64,
    /// nginx's CPU seconds during the run.
    pub nginx_cpu_seconds: f64,
    /// Hearth's figures (observed modes only).
    pub hearth: Option<HearthFigures>,
}

impl Round {
    /// Kernel program run time per wrk request, µs (an upper bound: it includes the programs'
    /// runs on every other process's socket I/O, wrk's included).
    pub fn program_us_per_request(&self) -> Option<f64> {
        let (ns, _) = self.hearth.as_ref()?.program_ns_runs?;
        (self.wrk.requests > 0).then(|| ns as f64 / 1e3 / self.wrk.requests as f64)
    }

    /// Mean kernel program run time, ns per run.
    pub fn program_ns_per_run(&self) -> Option<f64> {
        let (ns, runs) = self.hearth.as_ref()?.program_ns_runs?;
        (runs > 0).then(|| ns as f64 / runs as f64)
    }

    /// Hearth's CPU per request it read from the ring buffer, µs (its userspace side: drain,
    /// parse, aggregate, flush); `None` without Hearth or events.
    pub fn hearth_us_per_request(&self) -> Option<f64> {
        let h = self.hearth.as_ref()?;
        (h.counters.events_read > 0).then(|| h.cpu_seconds * 1e6 / h.counters.events_read as f64)
    }

    /// nginx CPU per request, microseconds (the in-kernel eBPF programs that run in nginx's
    /// syscalls and in the softirq work they carry show here, not in Hearth's CPU).
    pub fn nginx_us_per_request(&self) -> f64 {
        if self.wrk.requests == 0 {
            return 0.0;
        }
        self.nginx_cpu_seconds * 1e6 / self.wrk.requests as f64
    }

    /// wrk's CPU per request, microseconds (on loopback the receive path of what wrk sends,
    /// the ingress program on nginx's requests included, runs in wrk's sends).
    pub fn wrk_us_per_request(&self) -> f64 {
        if self.wrk.requests == 0 {
            return 0.0;
        }
        self.wrk.cpu_seconds * 1e6 / self.wrk.requests as f64
    }

    /// Problems with this round's counters: drops, and events or PromQL counts that do not
    /// match wrk's requests within the `connections` that may be in flight at the end.
    pub fn problems(&self, connections: u32) -> Vec<String> {
        let Some(h) = &self.hearth else { return Vec::new() };
        let mut p = Vec::new();
        let c = &h.counters;
        if c.events_dropped > 0 {
            p.push(format!("{} events dropped", c.events_dropped));
        }
        let within = |n: u64| n >= self.wrk.requests && n <= self.wrk.requests + u64::from(connections);
        // Events: one per request, plus at most one continuation per connection (a response
        // still open when wrk closes its connections).
        let events_within = |n: u64| n >= self.wrk.requests && n <= self.wrk.requests + 2 * u64::from(connections);
        match self.mode {
            Mode::Observed => {
                if !events_within(c.events_read) {
                    p.push(format!(
                        "events read {} vs wrk requests {} (allowed +{connections} in flight, +{connections} continuations)",
                        c.events_read, self.wrk.requests
                    ));
                }
                if !within(h.promql_count as u64) || h.promql_count.fract() != 0.0 {
                    p.push(format!("PromQL count {} vs wrk requests {}", h.promql_count, self.wrk.requests));
                }
            }
            Mode::OtherPort => {
                if c.events_read != 0 || h.promql_count != 0.0 {
                    p.push(format!("{} events / {} counted requests on an unobserved port", c.events_read, h.promql_count));
                }
            }
            Mode::Baseline => {}
        }
        p
    }
}

/// The median of `xs` (mean of the middle two for an even count); 0 when empty.
pub fn median(mut xs: Vec<f64>) -> f64 {
    if xs.is_empty() {
        return 0.0;
    }
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

fn opt_median(xs: Vec<f64>) -> Option<f64> {
    (!xs.is_empty()).then(|| median(xs))
}

/// Per-mode medians.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// Runs of this mode.
    pub runs: usize,
    /// Median requests/s.
    pub rps: f64,
    /// Median p50 latency, ms.
    pub p50_ms: f64,
    /// Median p99 latency, ms.
    pub p99_ms: f64,
    /// Median nginx CPU per request, µs.
    pub nginx_us_per_request: f64,
    /// Median wrk CPU per request, µs.
    pub wrk_us_per_request: f64,
    /// Median kernel program µs per request.
    pub program_us_per_request: Option<f64>,
    /// Median kernel program ns per run.
    pub program_ns_per_run: Option<f64>,
    /// Median Hearth CPU, fraction of one core.
    pub hearth_core: Option<f64>,
    /// Median Hearth CPU per event read, µs.
    pub hearth_us_per_request: Option<f64>,
    /// Largest Hearth peak RSS, bytes.
    pub hearth_peak_rss_bytes: Option<u64>,
    /// Sum of events read over the runs.
    pub events_read: u64,
    /// Sum of events dropped over the runs.
    pub events_dropped: u64,
    /// Sum of wrk requests over the runs.
    pub requests: u64,
}

/// Medians of the rounds of `mode`.
pub fn summarize(rounds: &[Round], mode: Mode) -> Summary {
    let rs: Vec<&Round> = rounds.iter().filter(|r| r.mode == mode).collect();
    let med = |f: &dyn Fn(&Round) -> f64| median(rs.iter().map(|r| f(r)).collect());
    let hs: Vec<&HearthFigures> = rs.iter().filter_map(|r| r.hearth.as_ref()).collect();
    Summary {
        runs: rs.len(),
        rps: med(&|r| r.wrk.requests_per_second),
        p50_ms: med(&|r| r.wrk.p50_ms),
        p99_ms: med(&|r| r.wrk.p99_ms),
        nginx_us_per_request: med(&|r| r.nginx_us_per_request()),
        wrk_us_per_request: med(&|r| r.wrk_us_per_request()),
        program_us_per_request: opt_median(rs.iter().filter_map(|r| r.program_us_per_request()).collect()),
        program_ns_per_run: opt_median(rs.iter().filter_map(|r| r.program_ns_per_run()).collect()),
        hearth_core: (!hs.is_empty()).then(|| median(hs.iter().map(|h| h.cpu_core_fraction).collect())),
        hearth_us_per_request: opt_median(rs.iter().filter_map(|r| r.hearth_us_per_request()).collect()),
        hearth_peak_rss_bytes: hs.iter().map(|h| h.peak_rss_bytes).max(),
        events_read: hs.iter().map(|h| h.counters.events_read).sum(),
        events_dropped: hs.iter().map(|h| h.counters.events_dropped).sum(),
        requests: rs.iter().map(|r| r.wrk.requests).sum(),
    }
}

/// Throughput loss of `observed` against `baseline`, percent (negative: faster).
pub fn loss_percent(baseline: f64, observed: f64) -> f64 {
    if baseline <= 0.0 {
        return 0.0;
    }
    (1.0 - observed / baseline) * 100.0
}

/// Throughput loss of `mode` against the baseline of the same cycle, percent, one per cycle that
/// ran both, in cycle order. Rounds of one cycle run back to back, so a pair shares the machine's
/// load far more than rounds minutes apart do: the median of these is the headline loss.
pub fn paired_losses(rounds: &[Round], mode: Mode) -> Vec<f64> {
    let mut cycles: Vec<usize> = rounds.iter().map(|r| r.cycle).collect();
    cycles.dedup();
    cycles
        .into_iter()
        .filter_map(|c| {
            let rps = |m: Mode| rounds.iter().find(|r| r.cycle == c && r.mode == m).map(|r| r.wrk.requests_per_second);
            Some(loss_percent(rps(Mode::Baseline)?, rps(mode)?))
        })
        .collect()
}

/// The headline throughput loss of `mode`: median of [`paired_losses`] (0 without pairs).
pub fn paired_loss_percent(rounds: &[Round], mode: Mode) -> f64 {
    median(paired_losses(rounds, mode))
}

/// Everything the report shows besides the rounds.
#[derive(Debug, Clone, Default)]
pub struct RunInfo {
    /// The command line as typed.
    pub command: String,
    /// Start and end, UTC.
    pub started: String,
    /// End, UTC.
    pub finished: String,
    /// `nproc`.
    pub cores: usize,
    /// CPU model.
    pub cpu_model: String,
    /// Kernel release.
    pub kernel: String,
    /// `free -g`.
    pub free_g: String,
    /// `nginx -v`.
    pub nginx_version: String,
    /// `wrk -v` first line.
    pub wrk_version: String,
    /// Hearth binary path, its mtime and the checkout's commit.
    pub hearth: String,
    /// wrk settings: threads, connections, seconds, URL path.
    pub threads: u32,
    /// wrk connections.
    pub connections: u32,
    /// Seconds per run.
    pub seconds: u64,
    /// Path requested.
    pub path: String,
    /// Which CPUs nginx and wrk were pinned to, in words.
    pub pinning: String,
}

fn mib(b: u64) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}

/// The Markdown report: verdict, summary table, machine, and every round.
pub fn markdown(info: &RunInfo, rounds: &[Round]) -> String {
    let base = summarize(rounds, Mode::Baseline);
    let obs = summarize(rounds, Mode::Observed);
    let other = summarize(rounds, Mode::OtherPort);
    let loss = loss_percent(base.rps, obs.rps);
    let problems: Vec<String> = rounds
        .iter()
        .flat_map(|r| r.problems(info.connections).into_iter().map(move |p| format!("cycle {} {}: {p}", r.cycle, r.mode.name())))
        .collect();
    // The target is throughput loss: the median of per-cycle pairs (a pair shares the machine's
    // load), with the ratio of per-mode medians beside it. nginx's CPU per request (kernel
    // program included) gives the loss were nginx alone the bottleneck, a pessimistic bound on
    // a machine where wrk shares nginx's cores; it is reported, not held to the target.
    let paired = paired_losses(rounds, Mode::Observed);
    let paired_loss = median(paired.clone());
    let paired_other = paired_loss_percent(rounds, Mode::OtherPort);
    let implied = if obs.nginx_us_per_request > 0.0 { (1.0 - base.nginx_us_per_request / obs.nginx_us_per_request) * 100.0 } else { 0.0 };
    let drops = obs.events_dropped + other.events_dropped;
    let met = !paired.is_empty() && paired_loss < TARGET_LOSS_PERCENT && drops == 0 && problems.is_empty();
    let range = |xs: &[f64]| {
        let lo = xs.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if xs.is_empty() { "-".to_string() } else { format!("{lo:.1}% to {hi:.1}%") }
    };
    let mut s = String::new();
    let _ = writeln!(s, "# eBPF ingestion overhead: nginx on loopback, with and without Hearth\n");
    let _ = writeln!(
        s,
        "**Target (under {TARGET_LOSS_PERCENT}% throughput loss, no ring-buffer drops): {}.** Throughput loss with Hearth's \
         eBPF observing nginx: **{paired_loss:.1}%** (median of {} per-cycle pairs, range {}; ratio of the medians: \
         {:.0} vs {:.0} req/s without Hearth, {loss:.1}%); with eBPF observing another port: {paired_other:.1}% \
         ({:.0} req/s). Events dropped: {drops}. Hearth used {:.1}% of one core ({} µs per request). Loss implied by nginx's CPU per \
         request (were nginx alone the bottleneck): {implied:.1}%.\n",
        if met { "met" } else { "NOT met" },
        paired.len(),
        range(&paired),
        obs.rps,
        base.rps,
        other.rps,
        obs.hearth_core.unwrap_or(0.0) * 100.0,
        obs.hearth_us_per_request.map_or_else(|| "-".into(), |u| format!("{u:.2}")),
    );
    let cpu_growth = |m: &Summary| (m.nginx_us_per_request / base.nginx_us_per_request - 1.0) * 100.0;
    let wrk_growth = |m: &Summary| {
        if base.wrk_us_per_request > 0.0 { (m.wrk_us_per_request / base.wrk_us_per_request - 1.0) * 100.0 } else { 0.0 }
    };
    if base.nginx_us_per_request > 0.0 && obs.nginx_us_per_request > 0.0 {
        let _ = writeln!(
            s,
            "nginx's CPU per request includes the kernel programs that run in its socket calls and the softirq work they \
             carry (the response side): {:.2} µs without Hearth, {:.2} µs observed ({:+.0}%), {:.2} µs with another port \
             observed ({:+.0}%). Were nginx alone the bottleneck, the observed throughput loss would be about {:.0}%. \
             wrk's CPU per request, which on loopback carries the receive path of the requests it sends (the ingress \
             program included): {:.2} µs without Hearth, {:.2} µs observed ({:+.0}%), {:.2} µs with another port ({:+.0}%).{}\n",
            base.nginx_us_per_request,
            obs.nginx_us_per_request,
            cpu_growth(&obs),
            other.nginx_us_per_request,
            cpu_growth(&other),
            (1.0 - base.nginx_us_per_request / obs.nginx_us_per_request) * 100.0,
            base.wrk_us_per_request,
            obs.wrk_us_per_request,
            wrk_growth(&obs),
            other.wrk_us_per_request,
            wrk_growth(&other),
            match (obs.program_us_per_request, obs.program_ns_per_run, other.program_ns_per_run) {
                (Some(us), Some(ns), Some(other_ns)) => format!(
                    " The kernel programs themselves (kernel.bpf_stats_enabled) ran {us:.2} µs per request observed \
                     (every socket send/receive and TCP state change on the machine included, wrk's too), {ns:.0} ns \
                     per run on average, against {other_ns:.0} ns per run when they filter everything out."
                ),
                _ => String::new(),
            }
        );
    }
    if problems.is_empty() {
        let _ = writeln!(
            s,
            "Counting checks passed in every observed round: `sum(http_server_request_duration_seconds_count)` after a flush \
             = wrk's requests (+ at most {c} in flight), events read = the same (+ at most {c} continuations, one per \
             connection still in a response when wrk closes it), nothing counted on the unobserved port.\n",
            c = info.connections
        );
    } else {
        let _ = writeln!(s, "Counting checks FAILED:\n");
        for p in &problems {
            let _ = writeln!(s, "- {p}");
        }
        s.push('\n');
    }
    let _ = writeln!(
        s,
        "| mode | runs | median req/s | vs baseline | p50 ms | p99 ms | nginx CPU µs/req | wrk CPU µs/req | eBPF program µs/req | hearth CPU % of a core | hearth CPU µs/req | hearth peak RSS MiB | events read | events dropped | wrk requests |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (mode, m) in [(Mode::Baseline, &base), (Mode::Observed, &obs), (Mode::OtherPort, &other)] {
        let vs = if mode == Mode::Baseline { "-".to_string() } else { format!("{:+.1}%", -loss_percent(base.rps, m.rps)) };
        let opt = |x: Option<String>| x.unwrap_or_else(|| "-".into());
        let _ = writeln!(
            s,
            "| {} | {} | {:.0} | {vs} | {:.3} | {:.3} | {:.2} | {:.2} | {} | {} | {} | {} | {} | {} | {} |",
            mode.name(),
            m.runs,
            m.rps,
            m.p50_ms,
            m.p99_ms,
            m.nginx_us_per_request,
            m.wrk_us_per_request,
            opt(m.program_us_per_request.map(|u| format!("{u:.2}"))),
            opt(m.hearth_core.map(|c| format!("{:.1}", c * 100.0))),
            opt(m.hearth_us_per_request.map(|u| format!("{u:.2}"))),
            opt(m.hearth_peak_rss_bytes.map(|b| format!("{:.1}", mib(b)))),
            if mode == Mode::Baseline { "-".into() } else { m.events_read.to_string() },
            if mode == Mode::Baseline { "-".into() } else { m.events_dropped.to_string() },
            m.requests,
        );
    }
    let _ = writeln!(s, "\n## How it was run\n");
    let _ = writeln!(s, "```\n{}\n```\n", info.command);
    let _ = writeln!(
        s,
        "Each cycle runs `wrk -t{} -c{} -d{}s --latency http://127.0.0.1:PORT{}` three times, in an order rotated each cycle, against one nginx \
         (`master_process off`, one process, `access_log off`, `location / {{ return 200 \"ok\\n\"; }}`): without Hearth, \
         with a fresh Hearth (`--ebpf.enable --ebpf.open-ports <nginx port> --ebpf.interval 1s`, empty data dir) started \
         and attached before wrk connects, and with a fresh Hearth observing another, idle port. Hearth's CPU is \
         utime+stime of /proc/PID/stat over the wrk run; its counters are read from /metrics once the ring buffer is \
         drained, and the PromQL count once a flush has written it. \"nginx CPU µs/req\" includes the in-kernel eBPF \
         programs that run in nginx's socket calls and the softirq work they carry; \"wrk CPU µs/req\" (getrusage of the \
         reaped wrk) those that run in wrk's, the ingress program on nginx's requests among them (loopback delivers a \
         packet in its sender's context). The throughput loss is the median over cycles of \
         1 - observed/baseline req/s of the same cycle; the ratio of the per-mode medians is given beside it. \
         CPUs: {}. Pinned to different CPUs, nginx and wrk each keep theirs close to busy (a profile of such a run: wrk \
         ~100% of its CPU, nginx ~92%), so the throughput follows the sum of both sides' costs per request, not \
         nginx's alone.\n",
        info.threads, info.connections, info.seconds, info.path, info.pinning
    );
    let _ = writeln!(s, "- Run: {} to {} UTC", info.started, info.finished);
    let _ = writeln!(s, "- Machine: {} cores (`nproc`), {}, kernel {}", info.cores, info.cpu_model, info.kernel);
    let _ = writeln!(s, "- nginx: {}; wrk: {}", info.nginx_version, info.wrk_version);
    let _ = writeln!(s, "- Hearth: {}", info.hearth);
    let loads: Vec<f64> = rounds.iter().filter_map(|r| r.loadavg.split_whitespace().next()?.parse().ok()).collect();
    let (lo, hi) = loads.iter().fold((f64::MAX, f64::MIN), |(a, b), &x| (a.min(x), b.max(x)));
    if !loads.is_empty() {
        let _ = writeln!(
            s,
            "- Load average (1 min) at the start of the runs: {lo:.2} to {hi:.2} on {} cores. The machine is shared with \
             other engineers' builds, so rounds alternate and medians are compared.",
            info.cores
        );
    }
    let _ = writeln!(s, "\n```\n$ free -g\n{}\n```\n", info.free_g);
    let _ = writeln!(s, "## Every round\n");
    let _ = writeln!(
        s,
        "| cycle | mode | req/s | requests | p50 ms | p99 ms | loadavg | machine busy % | nginx µs/req | wrk µs/req | hearth CPU s | hearth % core | hearth µs/req | peak RSS MiB | events read | dropped | unparsable | PromQL count | prog µs/req | prog ns/run |"
    );
    let _ = writeln!(s, "|---:|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in rounds {
        let h = r.hearth.as_ref();
        let hs = |f: &dyn Fn(&HearthFigures) -> String| h.map_or_else(|| "-".to_string(), f);
        let _ = writeln!(
            s,
            "| {} | {} | {:.0} | {} | {:.3} | {:.3} | {} | {:.0} | {:.2} | {:.2} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.cycle,
            r.mode.name(),
            r.wrk.requests_per_second,
            r.wrk.requests,
            r.wrk.p50_ms,
            r.wrk.p99_ms,
            r.loadavg,
            r.machine_busy * 100.0,
            r.nginx_us_per_request(),
            r.wrk_us_per_request(),
            hs(&|h| format!("{:.2}", h.cpu_seconds)),
            hs(&|h| format!("{:.1}", h.cpu_core_fraction * 100.0)),
            r.hearth_us_per_request().map_or_else(|| "-".into(), |u| format!("{u:.2}")),
            hs(&|h| format!("{:.1}", mib(h.peak_rss_bytes))),
            hs(&|h| h.counters.events_read.to_string()),
            hs(&|h| h.counters.events_dropped.to_string()),
            hs(&|h| h.counters.events_unparsable.to_string()),
            hs(&|h| format!("{}", h.promql_count)),
            r.program_us_per_request().map_or_else(|| "-".into(), |u| format!("{u:.2}")),
            r.program_ns_per_run().map_or_else(|| "-".into(), |n| format!("{n:.0}")),
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(mode: Mode, rps: f64, requests: u64, hearth: Option<HearthFigures>) -> Round {
        Round {
            cycle: 1,
            mode,
            wrk: WrkRun { requests, requests_per_second: rps, ..WrkRun::default() },
            loadavg: "1.00 1.00 1.00".into(),
            machine_busy: 0.5,
            nginx_cpu_seconds: 1.0,
            hearth,
        }
    }

    #[test]
    fn medians_and_loss() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(vec![]), 0.0);
        assert!((loss_percent(100.0, 96.0) - 4.0).abs() < 1e-9);
        assert!(loss_percent(100.0, 101.0) < 0.0);
    }

    #[test]
    fn counting_checks_flag_drops_and_mismatches() {
        let ok = HearthFigures {
            counters: EbpfCounters { events_read: 1_010, ..EbpfCounters::default() },
            promql_count: 1_010.0,
            ..HearthFigures::default()
        };
        assert!(round(Mode::Observed, 1.0, 1_000, Some(ok.clone())).problems(32).is_empty());
        let mut dropped = ok.clone();
        dropped.counters.events_dropped = 3;
        assert_eq!(round(Mode::Observed, 1.0, 1_000, Some(dropped)).problems(32).len(), 1);
        // More than `connections` beyond wrk's count, and fewer than wrk's count, both fail.
        assert_eq!(round(Mode::Observed, 1.0, 900, Some(ok.clone())).problems(32).len(), 2);
        assert_eq!(round(Mode::Observed, 1.0, 1_011, Some(ok.clone())).problems(32).len(), 2);
        // On an unobserved port nothing may be counted.
        assert_eq!(round(Mode::OtherPort, 1.0, 1_000, Some(ok)).problems(32).len(), 1);
    }

    #[test]
    fn paired_losses_compare_rounds_of_one_cycle() {
        let at = |cycle: usize, mode: Mode, rps: f64| Round { cycle, ..round(mode, rps, 1, None) };
        let rounds = vec![
            at(1, Mode::Baseline, 100.0),
            at(1, Mode::Observed, 90.0),
            at(2, Mode::Observed, 50.0),
            at(2, Mode::Baseline, 50.0),
            at(3, Mode::Baseline, 200.0),
            at(3, Mode::Observed, 196.0),
            at(4, Mode::Observed, 10.0),
        ];
        let l = paired_losses(&rounds, Mode::Observed);
        assert_eq!(l.len(), 3, "cycle 4 has no baseline");
        assert!((l[0] - 10.0).abs() < 1e-9 && l[1].abs() < 1e-9 && (l[2] - 2.0).abs() < 1e-9, "{l:?}");
        assert!((paired_loss_percent(&rounds, Mode::Observed) - 2.0).abs() < 1e-9);
        assert!(paired_losses(&rounds, Mode::OtherPort).is_empty());
    }

    #[test]
    fn report_states_the_verdict() {
        let h = |n: u64| HearthFigures {
            counters: EbpfCounters { events_read: n, ..EbpfCounters::default() },
            promql_count: n as f64,
            cpu_core_fraction: 0.1,
            cpu_seconds: n as f64 * 0.25e-6,
            ..HearthFigures::default()
        };
        let rounds = vec![
            round(Mode::Baseline, 100.0, 1_000, None),
            round(Mode::Observed, 97.0, 970, Some(h(970))),
            round(Mode::OtherPort, 99.0, 990, Some(h(0))),
        ];
        let md = markdown(&RunInfo { connections: 32, ..RunInfo::default() }, &rounds);
        assert!(md.contains("**Target (under 5% throughput loss, no ring-buffer drops): met.**"), "{md}");
        assert!(md.contains("eBPF observing nginx: **3.0%** (median of 1 per-cycle pairs"), "{md}");
        assert!(md.contains("| hearth eBPF on nginx's port | 1 | 97 | -3.0% |"), "{md}");
        assert!(md.contains("nginx's CPU per request"), "{md}");
        assert!(md.contains("Hearth used 10.0% of one core (0.25 µs per request)"), "{md}");
        let slow = vec![round(Mode::Baseline, 100.0, 1_000, None), round(Mode::Observed, 90.0, 900, Some(h(900)))];
        assert!(markdown(&RunInfo::default(), &slow).contains("NOT met"));
    }
}
