//! Runs Debian's `wrk` (4.1) against a loopback URL and parses its report.
//!
//! The report format is wrk's `src/wrk.c` `main` with `--latency`:
//!
//! ```text
//!   Thread Stats   Avg      Stdev     Max   +/- Stdev
//!     Latency   406.31us  152.36us   7.08ms   89.62%
//!   Latency Distribution
//!      50%  370.00us
//!      75%  439.00us
//!      90%  547.00us
//!      99%    1.06ms
//!   778331 requests in 10.00s, 118.02MB read
//!   Socket errors: connect 0, read 0, write 0, timeout 0     (only when any is non-zero)
//!   Non-2xx or 3xx responses: 12                             (only when any)
//! Requests/sec:  77833.01
//! ```
//!
//! Times are printed by wrk's `format_time` with the units `us`, `ms`, `s`, `m`, `h`.

use std::path::Path;
use std::process::Command;

use bench::{BenchError, Result};

/// One wrk run's figures.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WrkRun {
    /// Requests completed (wrk's `N requests in`).
    pub requests: u64,
    /// The run's measured length, seconds.
    pub duration_seconds: f64,
    /// wrk's `Requests/sec`.
    pub requests_per_second: f64,
    /// Latency percentiles 50, 75, 90, 99, milliseconds.
    pub p50_ms: f64,
    /// 75th percentile latency, milliseconds.
    pub p75_ms: f64,
    /// 90th percentile latency, milliseconds.
    pub p90_ms: f64,
    /// 99th percentile latency, milliseconds.
    pub p99_ms: f64,
    /// Sum of connect, read, write and timeout socket errors.
    pub socket_errors: u64,
    /// Responses with a status outside 2xx/3xx.
    pub non_2xx_3xx: u64,
    /// wrk's own CPU over the run (user + system, with the softirq work its sends carry: on
    /// loopback the receiving side's kernel path runs there), seconds; 0 if unknown.
    pub cpu_seconds: f64,
}

/// A wrk time (`370.00us`, `1.06ms`, `2.00s`, `1.50m`, `1.00h`) in milliseconds.
fn time_ms(s: &str) -> Option<f64> {
    let s = s.trim().trim_end_matches(',');
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let v: f64 = s[..split].parse().ok()?;
    let mult = match &s[split..] {
        "us" => 0.001,
        "ms" => 1.0,
        "s" => 1_000.0,
        "m" => 60_000.0,
        "h" => 3_600_000.0,
        _ => return None,
    };
    Some(v * mult)
}

/// Parses wrk's `--latency` report (format in the module doc).
///
/// # Errors
/// [`BenchError::Process`] naming the missing line when the request count, the rate or a
/// latency percentile is absent.
pub fn parse(out: &str) -> Result<WrkRun> {
    let mut run = WrkRun::default();
    let (mut have_requests, mut have_rate) = (false, false);
    let mut pct = [None; 4];
    for line in out.lines().map(str::trim) {
        if let Some((n, rest)) = line.split_once(" requests in ") {
            if let (Ok(n), Some(d)) = (n.trim().parse::<u64>(), rest.split_whitespace().next().and_then(time_ms)) {
                run.requests = n;
                run.duration_seconds = d / 1_000.0;
                have_requests = true;
            }
        } else if let Some(v) = line.strip_prefix("Requests/sec:") {
            if let Ok(v) = v.trim().parse() {
                run.requests_per_second = v;
                have_rate = true;
            }
        } else if let Some(rest) = line.strip_prefix("Socket errors:") {
            run.socket_errors = rest.split(',').filter_map(|kv| kv.split_whitespace().nth(1)?.parse::<u64>().ok()).sum();
        } else if let Some(v) = line.strip_prefix("Non-2xx or 3xx responses:") {
            run.non_2xx_3xx = v.trim().parse().unwrap_or(0);
        } else if let Some((p, t)) = line.split_once("%") {
            let slot = match p.trim() {
                "50" => 0,
                "75" => 1,
                "90" => 2,
                "99" => 3,
                _ => continue,
            };
            pct[slot] = time_ms(t);
        }
    }
    let missing = |what: &str| BenchError::Process(format!("wrk output has no {what} line:\n{out}"));
    if !have_requests {
        return Err(missing("`N requests in T`"));
    }
    if !have_rate {
        return Err(missing("`Requests/sec:`"));
    }
    let [Some(p50), Some(p75), Some(p90), Some(p99)] = pct else {
        return Err(missing("latency distribution (50/75/90/99%)"));
    };
    (run.p50_ms, run.p75_ms, run.p90_ms, run.p99_ms) = (p50, p75, p90, p99);
    Ok(run)
}

/// Runs `wrk -t<threads> -c<connections> -d<seconds>s --latency <url>` (under `taskset -c
/// <cpu>` when `cpu` is given) and parses its report.
///
/// # Errors
/// [`BenchError::Io`] when wrk cannot be started, [`BenchError::Process`] when it exits
/// non-zero or its report does not parse.
pub fn run(wrk: &Path, url: &str, threads: u32, connections: u32, seconds: u64, cpu: Option<usize>) -> Result<WrkRun> {
    let cpu_before = children_cpu_seconds();
    let mut cmd = match cpu {
        Some(c) => {
            let mut t = Command::new("taskset");
            t.arg("-c").arg(c.to_string()).arg(wrk);
            t
        }
        None => Command::new(wrk),
    };
    let out = cmd
        .args([
            format!("-t{threads}"),
            format!("-c{connections}"),
            format!("-d{seconds}s"),
            "--latency".to_string(),
            url.to_string(),
        ])
        .output()
        .map_err(|e| BenchError::io(format!("running {}", wrk.display()), e))?;
    // wrk is the only child reaped in between (nginx and Hearth outlive the call).
    let cpu_seconds = children_cpu_seconds() - cpu_before;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(BenchError::Process(format!(
            "wrk exited with {}: {}{}",
            out.status,
            stdout,
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(WrkRun { cpu_seconds, ..parse(&stdout)? })
}

/// User + system CPU of the children this process has reaped so far (`getrusage(RUSAGE_CHILDREN)`),
/// seconds; 0 if the call fails.
fn children_cpu_seconds() -> f64 {
    // SAFETY: an all-zero rusage is a valid value of this plain C struct.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes one rusage into the struct we own and pass by pointer.
    if unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) } != 0 {
        return 0.0;
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(ru.ru_utime) + secs(ru.ru_stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A report of Debian's wrk 4.1.0 (socket-error and non-2xx lines added as wrk prints them).
    const REPORT: &str = "Running 10s test @ http://127.0.0.1:40123/
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   406.31us  152.36us   7.08ms   89.62%
    Req/Sec    78.21k     3.11k   82.40k    80.00%
  Latency Distribution
     50%  370.00us
     75%  439.00us
     90%  547.00us
     99%    1.06ms
  778331 requests in 10.00s, 118.02MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 12
Requests/sec:  77833.01
Transfer/sec:     11.80MB
";

    #[test]
    fn parses_a_latency_report() {
        let r = parse(REPORT).unwrap();
        assert_eq!(r.requests, 778_331);
        assert!((r.duration_seconds - 10.0).abs() < 1e-9);
        assert!((r.requests_per_second - 77_833.01).abs() < 1e-9);
        assert!((r.p50_ms - 0.37).abs() < 1e-9);
        assert!((r.p75_ms - 0.439).abs() < 1e-9);
        assert!((r.p90_ms - 0.547).abs() < 1e-9);
        assert!((r.p99_ms - 1.06).abs() < 1e-9);
        assert_eq!(r.socket_errors, 3);
        assert_eq!(r.non_2xx_3xx, 12);
    }

    #[test]
    fn a_report_without_percentiles_is_an_error() {
        let no_latency: String = REPORT.lines().filter(|l| !l.contains('%') || l.contains("Latency ")).collect::<Vec<_>>().join("\n");
        assert!(parse(&no_latency).unwrap_err().to_string().contains("latency distribution"));
        assert!(parse("garbage").is_err());
    }

    #[test]
    fn times_in_every_unit() {
        assert_eq!(time_ms("250.00us"), Some(0.25));
        assert_eq!(time_ms("2.00s"), Some(2_000.0));
        assert_eq!(time_ms("1.50m"), Some(90_000.0));
        assert_eq!(time_ms("10.00s,"), Some(10_000.0));
        assert_eq!(time_ms("3.00xs"), None);
    }
}
