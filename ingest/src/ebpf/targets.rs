//! Processes: which ones `--ebpf.exe-path` selects (a `/proc` scan), and the `service_name`
//! of a pid (its executable's file name, from `/proc/PID/exe`, else `/proc/PID/comm`).

use hashbrown::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use regex::Regex;

/// Pids whose executable path matches `re`, ascending. Processes that vanish or whose exe is
/// unreadable (kernel threads) are skipped.
pub fn matching_pids(re: &Regex) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    let mut out: Vec<u32> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| exe_path(pid).is_some_and(|p| re.is_match(&p.to_string_lossy())))
        .collect();
    out.sort_unstable();
    out
}

/// The executable path of `pid` (`/proc/PID/exe`), without a trailing " (deleted)".
pub fn exe_path(pid: u32) -> Option<PathBuf> {
    let p = std::fs::read_link(format!("/proc/{pid}/exe")).ok()?;
    let s = p.to_string_lossy();
    Some(match s.strip_suffix(" (deleted)") {
        Some(t) => PathBuf::from(t),
        None => p,
    })
}

/// The host name (`/proc/sys/kernel/hostname`), "localhost" if unreadable.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

/// Caches `service_name` per pid. Names are looked up once per pid; the cache is bounded
/// (cleared when it exceeds `MAX_PIDS`, a pid-reuse safe choice).
#[derive(Debug)]
pub struct ServiceNames {
    fixed: Option<Arc<str>>,
    by_pid: HashMap<u32, Arc<str>>,
}

const MAX_PIDS: usize = 4096;

impl ServiceNames {
    /// A cache; `fixed` names every service when set.
    pub fn new(fixed: Option<String>) -> Self {
        ServiceNames { fixed: fixed.map(Arc::from), by_pid: HashMap::new() }
    }

    /// The service name of `pid`: the fixed name, the executable's file name, the comm, or
    /// `unknown_service` (OpenTelemetry's default) when the process is gone. Borrowed: the
    /// drain calls this per request, so a known pid costs one foldhash lookup and no `Arc`
    /// clone.
    pub fn get(&mut self, pid: u32) -> &Arc<str> {
        if let Some(f) = &self.fixed {
            return f;
        }
        if self.by_pid.len() >= MAX_PIDS && !self.by_pid.contains_key(&pid) {
            self.by_pid.clear();
        }
        self.by_pid.entry(pid).or_insert_with(|| {
            let name = exe_path(pid)
                .and_then(|p| p.file_name().map(|f| f.to_string_lossy().into_owned()))
                .or_else(|| std::fs::read_to_string(format!("/proc/{pid}/comm")).ok().map(|s| s.trim().to_string()))
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "unknown_service".to_string());
            Arc::from(name)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_is_found_and_named() {
        let me = std::process::id();
        let exe = exe_path(me).expect("own exe readable");
        let name = exe.file_name().expect("file name").to_string_lossy().into_owned();
        let re = Regex::new(&regex::escape(&exe.to_string_lossy())).expect("regex");
        assert!(matching_pids(&re).contains(&me));
        assert_eq!(&**ServiceNames::new(None).get(me), name.as_str());
        assert_eq!(&**ServiceNames::new(Some("svc".into())).get(me), "svc");
        assert!(!hostname().is_empty());
    }
}
