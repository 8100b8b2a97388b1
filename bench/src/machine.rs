//! The machine a run happened on, and how busy it was (proc(5): `/proc/stat`, `/proc/loadavg`,
//! `/proc/meminfo`, `/proc/cpuinfo`).

use std::time::Instant;

/// Static facts about the machine.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MachineInfo {
    /// Logical CPUs available to us (`nproc`).
    pub cores: usize,
    /// `MemTotal`, bytes.
    pub memory_bytes: u64,
    /// CPU model name.
    pub cpu_model: String,
    /// Kernel release.
    pub kernel: String,
    /// Output of `free -g`.
    pub free_g: String,
}

impl MachineInfo {
    /// Reads the facts (missing ones stay empty).
    pub fn collect() -> Self {
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        let meminfo = read("/proc/meminfo");
        MachineInfo {
            cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
            memory_bytes: crate::procstat::parse_status_kib(&meminfo, "MemTotal").unwrap_or(0),
            cpu_model: read("/proc/cpuinfo")
                .lines()
                .find_map(|l| l.strip_prefix("model name").map(|r| r.trim_start_matches([' ', '\t', ':']).to_string()))
                .unwrap_or_default(),
            kernel: read("/proc/sys/kernel/osrelease").trim().to_string(),
            free_g: std::process::Command::new("free")
                .arg("-g")
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).trim_end().to_string())
                .unwrap_or_default(),
        }
    }

    /// The three load averages of `/proc/loadavg`.
    pub fn loadavg() -> String {
        std::fs::read_to_string("/proc/loadavg")
            .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_default()
    }
}

/// Machine-wide CPU time counters at one instant (`/proc/stat`'s `cpu` line, clock ticks).
#[derive(Debug, Clone, Copy)]
pub struct CpuSample {
    busy: u64,
    total: u64,
    at: Instant,
}

/// Parses `/proc/stat`'s aggregate `cpu` line into (busy, total) ticks; idle and iowait are idle.
pub fn parse_proc_stat(stat: &str) -> Option<(u64, u64)> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let f: Vec<u64> = line.split_whitespace().skip(1).take(8).filter_map(|x| x.parse().ok()).collect();
    if f.len() < 5 {
        return None;
    }
    let total: u64 = f.iter().sum();
    Some((total - f[3] - f[4], total))
}

impl CpuSample {
    /// Samples now.
    pub fn now() -> Self {
        let (busy, total) = std::fs::read_to_string("/proc/stat").ok().and_then(|s| parse_proc_stat(&s)).unwrap_or((0, 0));
        CpuSample { busy, total, at: Instant::now() }
    }

    /// Fraction (0..=1) of all cores' time that was busy since `earlier`.
    pub fn busy_fraction_since(&self, earlier: &CpuSample) -> f64 {
        let total = self.total.saturating_sub(earlier.total);
        if total == 0 {
            return 0.0;
        }
        self.busy.saturating_sub(earlier.busy) as f64 / total as f64
    }

    /// Core-seconds that passed since `earlier` (wall seconds × cores).
    pub fn elapsed_core_seconds_since(&self, earlier: &CpuSample) -> f64 {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        self.at.duration_since(earlier.at).as_secs_f64() * cores
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_stat_busy_excludes_idle_and_iowait() {
        let stat = "cpu  100 5 50 800 40 3 2 0 0 0\ncpu0 1 2 3 4 5 6 7 8\n";
        assert_eq!(parse_proc_stat(stat), Some((160, 1000)));
    }
}
