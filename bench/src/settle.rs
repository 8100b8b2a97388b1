//! The settle phase: after ingest (or after a restart on kept data) and before any query, wait
//! until every server is idle, so queries measure the steady state and not the tail of ingest
//! (Prometheus compacts the head into 2 h blocks and those into larger ones for minutes after a
//! 24 h backfill; a query that runs meanwhile competes with it for the machine's two cores).
//!
//! # The idle rule
//!
//! A server is idle at time `t` when its own CPU time (`/proc/PID/stat` utime + stime, children
//! not included) grew by less than [`SettleConfig::max_busy_cores`] × the window in each of the
//! last [`SettleConfig::windows`] consecutive windows of [`SettleConfig::window`] ending at `t`
//! (defaults: below 3% of one core in each of two back-to-back 10 s windows, i.e. 20 s of quiet).
//! Windows slide: the rule is checked at every poll ([`SettleConfig::poll`], 1 s), against the
//! latest sample at or before each window boundary. A server that is not idle within
//! [`SettleConfig::timeout`] is reported as such and the run goes on (queries then measure it
//! busy; the report says so).
//!
//! Only the server's own CPU counts, so other processes on a shared machine do not delay the
//! settle (they may slow the server's background work down, which shows as a longer settle).

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::error::Result;
use crate::procstat::cpu_seconds;
use crate::systems::SystemKind;

/// How idle is decided. Defaults in [`SettleConfig::default`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SettleConfig {
    /// Width of one window. Default 10 s.
    pub window: Duration,
    /// Consecutive windows that must all be below the threshold. Default 2.
    pub windows: usize,
    /// Threshold: CPU seconds per wall second (1.0 = one core busy). Default 0.03.
    pub max_busy_cores: f64,
    /// Longest wait per run; every system still busy then is reported unsettled. Default 20 min.
    pub timeout: Duration,
    /// Sampling interval. Default 1 s.
    pub poll: Duration,
}

impl Default for SettleConfig {
    fn default() -> Self {
        SettleConfig {
            window: Duration::from_secs(10),
            windows: 2,
            max_busy_cores: 0.03,
            timeout: Duration::from_secs(20 * 60),
            poll: Duration::from_secs(1),
        }
    }
}

/// One system's settle outcome.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SettleOutcome {
    /// Seconds from the start of the settle phase until the system was found idle (or until
    /// the timeout, when `settled` is false).
    pub seconds: f64,
    /// Whether it became idle within the timeout.
    pub settled: bool,
    /// CPU seconds per wall second in the newest complete window when the phase ended for it.
    pub last_window_cores: f64,
    /// CPU seconds it used during the phase.
    pub cpu_seconds: f64,
}

/// The idle rule of the module doc over a sequence of CPU samples; no clock, no `/proc`, so the
/// decision is testable on made-up sequences.
#[derive(Debug, Clone)]
pub struct SettleTracker {
    window_s: f64,
    windows: usize,
    max_busy_cores: f64,
    /// `(t_seconds, cpu_seconds)`, oldest first; only what the rule can still look at is kept.
    samples: VecDeque<(f64, f64)>,
}

impl SettleTracker {
    /// A tracker for `config`'s rule (a zero window count is taken as one).
    pub fn new(config: &SettleConfig) -> Self {
        SettleTracker {
            window_s: config.window.as_secs_f64(),
            windows: config.windows.max(1),
            max_busy_cores: config.max_busy_cores,
            samples: VecDeque::new(),
        }
    }

    /// The latest sample at or before `t` (samples are in time order).
    fn at_or_before(&self, t: f64) -> Option<(f64, f64)> {
        self.samples.iter().rev().find(|(ts, _)| *ts <= t + 1e-9).copied()
    }

    /// Adds a sample: `t_s` seconds since any fixed origin (non-decreasing), `cpu_s` the
    /// process' CPU seconds so far. Returns whether the process is idle as of this sample.
    pub fn push(&mut self, t_s: f64, cpu_s: f64) -> bool {
        if self.samples.back().is_some_and(|(t, _)| t_s < *t) {
            // Out of order: keep the sequence monotonic; the sample is ignored.
            return false;
        }
        self.samples.push_back((t_s, cpu_s));
        // Keep the newest sample at or before the oldest boundary the rule needs, and later ones.
        let oldest_boundary = t_s - self.window_s * self.windows as f64;
        while self.samples.len() > 1 && self.samples[1].0 <= oldest_boundary + 1e-9 {
            self.samples.pop_front();
        }
        self.idle()
    }

    /// Busy cores in each of the last windows, newest first; shorter when history is missing.
    pub fn window_cores(&self) -> Vec<f64> {
        let Some(&(t, _)) = self.samples.back() else { return Vec::new() };
        let mut out = Vec::with_capacity(self.windows);
        for j in 0..self.windows {
            let end = self.at_or_before(t - self.window_s * j as f64);
            let start = self.at_or_before(t - self.window_s * (j + 1) as f64);
            let (Some((t1, c1)), Some((t0, c0))) = (end, start) else { break };
            if t1 - t0 <= 0.0 {
                break;
            }
            out.push((c1 - c0).max(0.0) / (t1 - t0));
        }
        out
    }

    /// Whether every one of the last `windows` windows is complete and below the threshold.
    pub fn idle(&self) -> bool {
        let w = self.window_cores();
        w.len() == self.windows && w.iter().all(|&c| c < self.max_busy_cores)
    }
}

/// Waits until every process in `pids` is idle per `config`, sampling them all at each poll.
/// Returns each one's outcome, or the error reading its `/proc` entry (it exited).
/// Bounded by `config.timeout` (plus one poll).
pub fn settle_all(pids: &[(SystemKind, u32)], config: &SettleConfig) -> HashMap<SystemKind, Result<SettleOutcome>> {
    let start = Instant::now();
    let mut trackers: HashMap<SystemKind, (SettleTracker, f64)> = HashMap::new();
    let mut out: HashMap<SystemKind, Result<SettleOutcome>> = HashMap::new();
    let poll = config.poll.max(Duration::from_millis(10));
    loop {
        let t = start.elapsed().as_secs_f64();
        for &(kind, pid) in pids {
            if out.contains_key(&kind) {
                continue;
            }
            let cpu = match cpu_seconds(pid) {
                Ok(c) => c,
                Err(e) => {
                    out.insert(kind, Err(e));
                    continue;
                }
            };
            let (tracker, cpu0) = trackers.entry(kind).or_insert_with(|| (SettleTracker::new(config), cpu));
            let idle = tracker.push(t, cpu);
            let timed_out = start.elapsed() >= config.timeout;
            if idle || timed_out {
                let outcome = SettleOutcome {
                    seconds: t,
                    settled: idle,
                    last_window_cores: tracker.window_cores().first().copied().unwrap_or(f64::NAN),
                    cpu_seconds: cpu - *cpu0,
                };
                eprintln!(
                    "hearth-bench: {} {} after {t:.0} s ({:.1}% of a core in the last window)",
                    kind.name(),
                    if idle { "idle" } else { "STILL BUSY" },
                    outcome.last_window_cores * 100.0
                );
                out.insert(kind, Ok(outcome));
            }
        }
        if pids.iter().all(|(k, _)| out.contains_key(k)) {
            return out;
        }
        std::thread::sleep(poll);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tracker() -> SettleTracker {
        SettleTracker::new(&SettleConfig::default())
    }

    /// Feeds one sample per second with the given CPU growth per second; returns the first time
    /// (seconds) the tracker says idle.
    fn first_idle(rates: &[f64]) -> Option<usize> {
        let mut t = tracker();
        let mut cpu = 100.0;
        for (i, r) in std::iter::once(&0.0).chain(rates).enumerate() {
            cpu += r;
            if t.push(i as f64, cpu) {
                return Some(i);
            }
        }
        None
    }

    #[test]
    fn idle_process_settles_after_two_full_windows() {
        assert_eq!(first_idle(&[0.0; 30]), Some(20));
        assert_eq!(first_idle(&[0.0; 19]), None);
    }

    #[test]
    fn busy_tail_delays_settle_until_two_quiet_windows_follow_it() {
        // 15 s of compaction at one core, then quiet.
        let mut rates = vec![1.0; 15];
        rates.extend([0.0; 40]);
        assert_eq!(first_idle(&rates), Some(35));
    }

    #[test]
    fn short_burst_in_a_window_counts_against_it() {
        // 0.5 core-seconds in one second = 5% of a core over 10 s: above the 3% threshold.
        let mut rates = vec![0.0; 12];
        rates.push(0.5);
        rates.extend([0.0; 30]);
        assert_eq!(first_idle(&rates), Some(33));
    }

    #[test]
    fn background_below_threshold_is_idle() {
        // 2% of a core steadily (a GC tick, a scrape of itself) is idle.
        assert_eq!(first_idle(&[0.02; 30]), Some(20));
        // 4% never is.
        assert_eq!(first_idle(&[0.04; 100]), None);
    }

    #[test]
    fn irregular_polls_use_the_latest_sample_before_each_boundary() {
        let mut t = tracker();
        // Samples at 0, 7, 14, 21 s: no sample at 20 or 10 exactly; the boundaries fall back to
        // 14 and 7, and the oldest boundary (1 s) to 0.
        assert!(!t.push(0.0, 5.0));
        assert!(!t.push(7.0, 5.0));
        assert!(!t.push(14.0, 5.0));
        assert!(t.push(21.0, 5.1));
        assert_eq!(t.window_cores().len(), 2);
        let w = t.window_cores();
        assert!((w[0] - 0.1 / 14.0).abs() < 1e-12, "{w:?}");
        assert_eq!(w[1], 0.0);
    }

    #[test]
    fn history_is_bounded_and_out_of_order_samples_are_ignored() {
        let mut t = tracker();
        for i in 0..10_000 {
            t.push(i as f64, 1.0);
        }
        assert!(t.samples.len() <= 22, "{}", t.samples.len());
        assert!(!t.push(5.0, 1.0));
        assert_eq!(t.samples.back().map(|s| s.0), Some(9_999.0));
    }

    #[test]
    fn own_idle_thread_is_measured() {
        // A real /proc read: the outcome for a process that does nothing here settles at once
        // with a tiny config (this test runner's own CPU use is what is measured; the threshold
        // is set so high that it cannot fail on a busy machine).
        let config = SettleConfig {
            window: Duration::from_millis(20),
            windows: 2,
            max_busy_cores: 1e6,
            timeout: Duration::from_secs(5),
            poll: Duration::from_millis(10),
        };
        let out = settle_all(&[(SystemKind::Hearth, std::process::id())], &config);
        let o = out[&SystemKind::Hearth].as_ref().unwrap();
        assert!(o.settled);
        assert!(o.seconds >= 0.04 && o.seconds < 5.0, "{o:?}");
    }
}
