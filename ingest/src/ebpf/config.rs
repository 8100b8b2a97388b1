//! Configuration of eBPF HTTP ingestion, matching the server's `--ebpf.*` flags.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use regex::Regex;

use super::error::EbpfError;

/// What to observe and how often to write, as Grafana Beyla's discovery (`open_ports`,
/// `exe_path`) and Prometheus export.
///
/// Selection: a connection accepted by process P on local port N is observed when
/// (`open_ports` is empty or contains N) and (`exe_path` is unset or matches P's executable
/// path), and N is not Hearth's own port and P is not Hearth. With neither criterion every TCP
/// server on the host is observed (except Hearth).
#[derive(Clone, Debug)]
pub struct EbpfConfig {
    /// `--ebpf.enable`: start ingestion at all. Default false.
    pub enable: bool,
    /// `--ebpf.open-ports 8080,9000-9100`: server ports to observe. Default: empty (any).
    pub open_ports: PortRanges,
    /// `--ebpf.exe-path REGEX`: observe processes whose executable path (`/proc/PID/exe`)
    /// matches (unanchored, as Beyla). Default: unset (any).
    pub exe_path: Option<Regex>,
    /// `--ebpf.interval 15s`: how often the cumulative series are written. Default 15 s.
    pub interval: Duration,
    /// A series group with no request for this long is written once as staleness markers and
    /// dropped (Beyla's `prometheus_export.ttl`). Default 5 min.
    pub series_ttl: Duration,
    /// How often `/proc` is rescanned for new processes matching `exe_path`. Default 5 s.
    pub exe_rescan_interval: Duration,
    /// Ring buffer drain period when no wakeup came (the kernel wakes the reader only once
    /// `wakeup_bytes` are queued). Default 100 ms.
    pub drain_interval: Duration,
    /// Ring buffer size, bytes (rounded up to a power-of-two number of pages). Default 32 MiB:
    /// about 1 s of 528-byte events at 60k requests/s, so a reader stalled for a few drain
    /// periods (100 ms) by a busy machine loses nothing (8 MiB, half a second at 30k requests/s,
    /// dropped events when both CPUs of a loaded 2-core machine ran a pinned server and load
    /// generator); it costs only locked kernel memory.
    pub ring_bytes: u32,
    /// Queued bytes by which the kernel has woken the reader: each CPU wakes it once per
    /// `wakeup_bytes / CPUs` (rounded down to a power of two at load, so that the kernel tests
    /// the crossing with a mask) bytes it produced; 0 (or more than `ring_bytes`) = never, the
    /// drain timer alone. Default 1 MiB: a 32nd of the default ring, so a woken reader still
    /// has 31 MiB (about 0.6 s at 100k requests/s) before a drop.
    /// Each forced wakeup is an irq_work, a self-IPI that exits the VM under KVM (about 15 us
    /// here): at 64 KiB (one per 240 events) that was 60 ns per request of the server's time.
    pub wakeup_bytes: u64,
    /// Ports never observed: Hearth's own listen port(s). Default empty; the server adds its own.
    pub exclude_ports: Vec<u16>,
    /// `service_name` and `job` for every series instead of the executable name. Default unset.
    pub service_name: Option<String>,
    /// `job` label; default: the service name.
    pub job: Option<String>,
    /// Observe requests in arriving and responses in outgoing packets (`cgroup_skb/ingress` and
    /// `cgroup_skb/egress` programs at the cgroup v2 root), falling back to the socket calls
    /// (`sock:sock_recv_length`, `sock:sock_send_length`) where they cannot attach. `false`: the
    /// socket calls always. Default `true`: the packet hooks cost the observed server less CPU
    /// per request (no reads of its memory).
    pub packet_hooks: bool,
    /// `instance` label; default: the host name (`/proc/sys/kernel/hostname`).
    pub instance: Option<String>,
}

impl Default for EbpfConfig {
    fn default() -> Self {
        EbpfConfig {
            enable: false,
            open_ports: PortRanges::default(),
            exe_path: None,
            interval: Duration::from_secs(15),
            series_ttl: Duration::from_secs(300),
            exe_rescan_interval: Duration::from_secs(5),
            drain_interval: Duration::from_millis(100),
            ring_bytes: 32 << 20,
            wakeup_bytes: 1 << 20,
            exclude_ports: Vec::new(),
            service_name: None,
            job: None,
            instance: None,
            packet_hooks: true,
        }
    }
}

impl EbpfConfig {
    /// Sets `exe_path` from a regular expression string (`--ebpf.exe-path`).
    ///
    /// # Errors
    /// [`EbpfError::Config`] when the expression does not compile.
    pub fn with_exe_path(mut self, re: &str) -> Result<Self, EbpfError> {
        let r = Regex::new(re).map_err(|e| EbpfError::Config(format!("--ebpf.exe-path {re:?}: {e}")))?;
        self.exe_path = Some(r);
        Ok(self)
    }

    /// Checks the values a start needs.
    ///
    /// # Errors
    /// [`EbpfError::Config`] naming the bad flag.
    pub fn validate(&self) -> Result<(), EbpfError> {
        if self.interval.is_zero() {
            return Err(EbpfError::Config("--ebpf.interval must be positive".into()));
        }
        if self.drain_interval.is_zero() || self.exe_rescan_interval.is_zero() {
            return Err(EbpfError::Config("drain and rescan intervals must be positive".into()));
        }
        if self.ring_bytes < 4096 {
            return Err(EbpfError::Config(format!("ring buffer of {} bytes is below one page", self.ring_bytes)));
        }
        Ok(())
    }
}

/// A set of TCP ports as inclusive ranges, parsed from Beyla's `open_ports` syntax:
/// comma-separated ports and `lo-hi` ranges, e.g. `8080,9000-9100`. Empty means "any".
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PortRanges(Vec<(u16, u16)>);

impl PortRanges {
    /// The ranges, inclusive, in input order.
    pub fn ranges(&self) -> &[(u16, u16)] {
        &self.0
    }

    /// True when no port is listed (no port filter).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// True when `port` is in one of the ranges.
    pub fn contains(&self, port: u16) -> bool {
        self.0.iter().any(|&(lo, hi)| lo <= port && port <= hi)
    }

    /// Every listed port, ascending, without repeats.
    pub fn ports(&self) -> Vec<u16> {
        let mut v: Vec<u16> = self.0.iter().flat_map(|&(lo, hi)| lo..=hi).collect();
        v.sort_unstable();
        v.dedup();
        v
    }
}

impl FromStr for PortRanges {
    type Err = EbpfError;

    /// # Errors
    /// [`EbpfError::Config`] for a non-numeric part, port 0, a port above 65535 or `lo > hi`.
    fn from_str(s: &str) -> Result<Self, EbpfError> {
        let bad = |part: &str, why: &str| EbpfError::Config(format!("--ebpf.open-ports {s:?}: {part:?} {why}"));
        let mut out = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (lo, hi) = match part.split_once('-') {
                Some((a, b)) => (a.trim(), b.trim()),
                None => (part, part),
            };
            let lo: u16 = lo.parse().map_err(|_| bad(part, "is not a port (1-65535)"))?;
            let hi: u16 = hi.parse().map_err(|_| bad(part, "is not a port (1-65535)"))?;
            if lo == 0 {
                return Err(bad(part, "includes port 0"));
            }
            if lo > hi {
                return Err(bad(part, "is an empty range"));
            }
            out.push((lo, hi));
        }
        Ok(PortRanges(out))
    }
}

impl fmt::Display for PortRanges {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, &(lo, hi)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if lo == hi {
                write!(f, "{lo}")?;
            } else {
                write!(f, "{lo}-{hi}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ports_and_ranges() {
        let p: PortRanges = "8080, 9000-9002,443".parse().expect("valid");
        assert_eq!(p.ranges(), &[(8080, 8080), (9000, 9002), (443, 443)]);
        assert_eq!(p.ports(), vec![443, 8080, 9000, 9001, 9002]);
        assert!(p.contains(9001) && !p.contains(9003));
        assert_eq!(p.to_string(), "8080,9000-9002,443");
        assert!("".parse::<PortRanges>().expect("empty is valid").is_empty());
    }

    #[test]
    fn rejects_bad_ports() {
        for bad in ["x", "0", "70000", "9100-9000", "80-", "-80"] {
            let e = bad.parse::<PortRanges>().expect_err(bad);
            assert!(e.to_string().contains("--ebpf.open-ports"), "{e}");
        }
    }

    #[test]
    fn validates() {
        assert!(EbpfConfig::default().validate().is_ok());
        let c = EbpfConfig { interval: Duration::ZERO, ..Default::default() };
        assert!(c.validate().is_err());
        assert!(EbpfConfig::default().with_exe_path("(").is_err());
    }
}
