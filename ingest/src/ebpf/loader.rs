//! Loading the kernel object with aya: globals, map sizes, the port filter, and the attach.

use std::collections::HashSet;

use aya::maps::{Array, HashMap as BpfHashMap, Map, MapData, PerCpuArray};
use aya::programs::{BtfTracePoint, CgroupAttachMode, CgroupSkb, CgroupSkbAttachType};
use aya::{Btf, Ebpf, EbpfLoader};
use ebpf::{globals, maps, PortMark, EGRESS_PROGRAM, INGRESS_PROGRAM, PROGRAMS, SEND_FALLBACK};

use super::config::EbpfConfig;
use super::error::EbpfError;
use super::ring::EventRing;

/// The loaded object: the ring buffer, and the rest.
pub(crate) struct Loaded {
    /// The event ring buffer.
    pub ring: EventRing,
    /// Programs and the other maps.
    pub bpf: Bpf,
}

/// The attached programs (detached when `_ebpf` drops) and the maps userspace reads or writes.
pub(crate) struct Bpf {
    /// Owns the programs and their links; dropping it detaches.
    pub _ebpf: Ebpf,
    /// Per-CPU reserve failure counters.
    pub dropped: PerCpuArray<MapData, u64>,
    /// Processes to observe (used when `exe_path` is set).
    pub target_pids: BpfHashMap<MapData, u32, u8>,
    /// Pids currently in `target_pids`.
    pub target_set: HashSet<u32>,
    /// `name (attach point)` of each attached program.
    pub attached: Vec<String>,
}

fn map_err(map: &'static str) -> impl Fn(String) -> EbpfError {
    move |reason| EbpfError::Map { map, reason }
}

/// Loads, configures and attaches.
///
/// # Errors
/// [`EbpfError::Load`], [`EbpfError::Map`] or [`EbpfError::Attach`] with the kernel's reason.
pub(crate) fn load(cfg: &EbpfConfig) -> Result<Loaded, EbpfError> {
    let self_tgid: u32 = std::process::id();
    let filter_ports: u32 = u32::from(!cfg.open_ports.is_empty());
    let filter_pids: u32 = u32::from(cfg.exe_path.is_some());
    // The kernel counts the bytes each CPU produced and wakes the reader once per multiple of
    // its threshold (tested with a mask: a power of two, no division per event). Each CPU gets
    // the configured amount divided by the number of CPUs, rounded down to a power of two, so
    // that no more than the configured amount is queued when the reader is first woken.
    let cpus = aya::util::nr_cpus().map_or(1, |n| n.max(1)) as u64;
    let wakeup_bytes: u64 = match cfg.wakeup_bytes / cpus {
        0 => 0,
        per_cpu => 1 << (63 - per_cpu.leading_zeros()),
    };
    let btf = Btf::from_sys_fs().map_err(|e| EbpfError::Load(format!("kernel BTF: {e}")))?;
    let mut ebpf = EbpfLoader::new()
        .btf(Some(&btf))
        .override_global(globals::SELF_TGID, &self_tgid, true)
        .override_global(globals::FILTER_PORTS, &filter_ports, true)
        .override_global(globals::FILTER_PIDS, &filter_pids, true)
        .override_global(globals::WAKEUP_BYTES, &wakeup_bytes, true)
        .map_max_entries(maps::EVENTS, cfg.ring_bytes.next_power_of_two())
        .load(ebpf::object())
        .map_err(|e| EbpfError::Load(error_chain(&e)))?;

    {
        let m = ebpf.map_mut(maps::PORT_FILTER).ok_or_else(|| map_err(maps::PORT_FILTER)("missing".into()))?;
        let mut ports: Array<&mut MapData, u8> = Array::try_from(m).map_err(|e| map_err(maps::PORT_FILTER)(e.to_string()))?;
        for p in cfg.open_ports.ports() {
            ports.set(u32::from(p), PortMark::Observe as u8, 0).map_err(|e| map_err(maps::PORT_FILTER)(e.to_string()))?;
        }
        for &p in &cfg.exclude_ports {
            ports.set(u32::from(p), PortMark::Exclude as u8, 0).map_err(|e| map_err(maps::PORT_FILTER)(e.to_string()))?;
        }
    }

    let mut attached = Vec::with_capacity(PROGRAMS.len() + 2);
    for &(name, tracepoint) in PROGRAMS {
        attach_tracepoint(&mut ebpf, &btf, name, tracepoint)?;
        attached.push(format!("{name} (tp_btf/{tracepoint})"));
    }
    // Requests and responses from packets where a cgroup v2 hierarchy takes the programs, else
    // at the socket calls: all feed the same per-connection state machine. Requests need no
    // fallback program: hearth_recv reads them wherever the ingress program did not.
    let root = if cfg.packet_hooks { cgroup2_root() } else { Err("disabled by configuration".into()) };
    let ingress =
        root.clone().and_then(|r| attach_cgroup_skb(&mut ebpf, &r, INGRESS_PROGRAM, CgroupSkbAttachType::Ingress).map(|()| r));
    match ingress {
        Ok(root) => attached.push(format!("{INGRESS_PROGRAM} (cgroup_skb/ingress at {root})")),
        Err(reason) => tracing::info!(%reason, "eBPF: requests are read at sock_recv_length instead of arriving packets"),
    }
    let egress = root.and_then(|r| attach_cgroup_skb(&mut ebpf, &r, EGRESS_PROGRAM, CgroupSkbAttachType::Egress).map(|()| r));
    match egress {
        Ok(root) => attached.push(format!("{EGRESS_PROGRAM} (cgroup_skb/egress at {root})")),
        Err(reason) => {
            let (name, tracepoint) = SEND_FALLBACK;
            tracing::info!(%reason, "eBPF: responses are observed at {tracepoint} instead of outgoing packets");
            attach_tracepoint(&mut ebpf, &btf, name, tracepoint)?;
            attached.push(format!("{name} (tp_btf/{tracepoint})"));
        }
    }

    let take = |ebpf: &mut Ebpf, name: &'static str| ebpf.take_map(name).ok_or_else(|| map_err(name)("missing".into()));
    let ring = match take(&mut ebpf, maps::EVENTS)? {
        Map::RingBuf(data) => EventRing::new(data)?,
        _ => return Err(map_err(maps::EVENTS)("not a ring buffer".into())),
    };
    let dropped =
        PerCpuArray::try_from(take(&mut ebpf, maps::DROPPED)?).map_err(|e| map_err(maps::DROPPED)(e.to_string()))?;
    let target_pids = BpfHashMap::try_from(take(&mut ebpf, maps::TARGET_PIDS)?)
        .map_err(|e| map_err(maps::TARGET_PIDS)(e.to_string()))?;
    Ok(Loaded { ring, bpf: Bpf { _ebpf: ebpf, dropped, target_pids, target_set: HashSet::new(), attached } })
}

/// Loads and attaches the `tp_btf` program `name` to `tracepoint`.
fn attach_tracepoint(ebpf: &mut Ebpf, btf: &Btf, name: &str, tracepoint: &str) -> Result<(), EbpfError> {
    let attach_err =
        |e: aya::programs::ProgramError| EbpfError::Attach { program: name.to_string(), reason: error_chain(&e) };
    let prog: &mut BtfTracePoint = ebpf
        .program_mut(name)
        .ok_or_else(|| EbpfError::Load(format!("program {name} missing from the object")))?
        .try_into()
        .map_err(|e: aya::programs::ProgramError| EbpfError::Load(e.to_string()))?;
    prog.load(tracepoint, btf).map_err(attach_err)?;
    prog.attach().map_err(attach_err)?;
    Ok(())
}

/// Loads the `cgroup_skb` program `name` and attaches it as `kind` at `root`, the root of the
/// cgroup v2 hierarchy (a link, so programs other tools attached there keep running); or why not.
fn attach_cgroup_skb(ebpf: &mut Ebpf, root: &str, name: &str, kind: CgroupSkbAttachType) -> Result<(), String> {
    let cgroup = std::fs::File::open(root).map_err(|e| format!("{root}: {e}"))?;
    let prog: &mut CgroupSkb = ebpf
        .program_mut(name)
        .ok_or_else(|| format!("program {name} missing from the object"))?
        .try_into()
        .map_err(|e: aya::programs::ProgramError| e.to_string())?;
    prog.load().map_err(|e| format!("loading {name}: {}", error_chain(&e)))?;
    prog.attach(cgroup, kind, CgroupAttachMode::Single).map_err(|e| format!("attaching {name} at {root}: {}", error_chain(&e)))?;
    Ok(())
}

/// This machine's cgroup v2 root ([`cgroup2_mount`] of `/proc/self/mounts`), or why none.
fn cgroup2_root() -> Result<String, String> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").map_err(|e| format!("/proc/self/mounts: {e}"))?;
    cgroup2_mount(&mounts).ok_or_else(|| "no cgroup v2 hierarchy mounted".to_string())
}

/// The mount point of the first cgroup v2 hierarchy in a `/proc/self/mounts` text (`fstype`
/// `cgroup2`: `/sys/fs/cgroup` on a unified system, `/sys/fs/cgroup/unified` in hybrid mode).
fn cgroup2_mount(mounts: &str) -> Option<String> {
    mounts.lines().find_map(|line| {
        let mut f = line.split_whitespace();
        let (_dev, dir, fstype) = (f.next()?, f.next()?, f.next()?);
        // Mount points escape spaces and the like as octal (`\040`); such a root is not used.
        (fstype == "cgroup2" && !dir.contains('\\')).then(|| dir.to_string())
    })
}


impl Bpf {
    /// Sum of the per-CPU reserve failure counters.
    pub(crate) fn dropped_total(&self) -> Result<u64, EbpfError> {
        let v = self.dropped.get(&0, 0).map_err(|e| map_err(maps::DROPPED)(e.to_string()))?;
        Ok(v.iter().sum())
    }

    /// Makes `target_pids` hold exactly `pids`.
    pub(crate) fn set_targets(&mut self, pids: &[u32]) -> Result<(), EbpfError> {
        let want: HashSet<u32> = pids.iter().copied().collect();
        for gone in self.target_set.difference(&want).copied().collect::<Vec<_>>() {
            // Already absent is fine: the goal is absence.
            let _ = self.target_pids.remove(&gone);
            self.target_set.remove(&gone);
        }
        for &p in pids {
            if self.target_set.insert(p) {
                self.target_pids.insert(p, 1, 0).map_err(|e| map_err(maps::TARGET_PIDS)(e.to_string()))?;
            }
        }
        Ok(())
    }
}

/// An error and its sources in one line (the verifier log included, when the kernel gave one).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::cgroup2_mount;

    #[test]
    fn cgroup2_root_is_found_in_unified_and_hybrid_layouts() {
        let hybrid = "tmpfs /sys/fs/cgroup tmpfs rw 0 0\ncgroup /sys/fs/cgroup/cpu cgroup rw,cpu 0 0\n\
                      cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0\n";
        assert_eq!(cgroup2_mount(hybrid).as_deref(), Some("/sys/fs/cgroup/unified"));
        let unified = "proc /proc proc rw 0 0\ncgroup2 /sys/fs/cgroup cgroup2 rw,nsdelegate 0 0\n";
        assert_eq!(cgroup2_mount(unified).as_deref(), Some("/sys/fs/cgroup"));
        assert_eq!(cgroup2_mount("cgroup /sys/fs/cgroup/cpu cgroup rw,cpu 0 0\n"), None);
        assert_eq!(cgroup2_mount("cgroup2 /odd\\040dir cgroup2 rw 0 0\n"), None);
    }
}
