//! What a server process cost: CPU seconds (`/proc/PID/stat` utime + stime), peak resident
//! memory (`VmHWM` in `/proc/PID/status`), and bytes on disk of a directory tree.
//!
//! Formats: proc(5). `stat` field 2 (`comm`) is in parentheses and may contain spaces and
//! parentheses, so fields are counted after the *last* `)`; utime and stime are fields 14 and 15
//! in clock ticks (`sysconf(_SC_CLK_TCK)`).

use std::path::Path;

use crate::error::{BenchError, Result};

/// Clock ticks per second for `/proc/PID/stat` times.
fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf only reads a system constant; no memory is passed.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// Parses utime + stime (clock ticks) out of the text of `/proc/PID/stat`.
pub fn parse_stat_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    // After `comm`: field 3 (state) is rest's first token, so utime (14) is token 11.
    let mut it = rest.split_ascii_whitespace().skip(11);
    let utime: u64 = it.next()?.parse().ok()?;
    let stime: u64 = it.next()?.parse().ok()?;
    Some(utime + stime)
}

/// CPU seconds (user + system) the process has used so far.
pub fn cpu_seconds(pid: u32) -> Result<f64> {
    let path = format!("/proc/{pid}/stat");
    let text = std::fs::read_to_string(&path).map_err(|e| BenchError::io(path.clone(), e))?;
    let ticks = parse_stat_ticks(&text).ok_or_else(|| BenchError::Process(format!("{path}: unparseable")))?;
    Ok(ticks as f64 / clock_ticks_per_second())
}

/// Parses a `Name:   1234 kB` line of `/proc/PID/status` into bytes.
pub fn parse_status_kib(status: &str, name: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?.strip_prefix(':')?;
        let kib: u64 = rest.trim().trim_end_matches("kB").trim().parse().ok()?;
        Some(kib * 1024)
    })
}

/// Peak resident set size (`VmHWM`), bytes.
pub fn peak_rss_bytes(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).map_err(|e| BenchError::io(path.clone(), e))?;
    parse_status_kib(&text, "VmHWM").ok_or_else(|| BenchError::Process(format!("{path}: no VmHWM")))
}

/// Apparent size (sum of file lengths) of every regular file under `dir`, skipping directories
/// whose name is in `skip` and not following symlinks; hard links are counted once per inode.
pub fn dir_bytes(dir: &Path, skip: &[&str]) -> Result<u64> {
    use std::os::unix::fs::MetadataExt;
    let mut seen = std::collections::HashSet::new();
    let mut total = 0u64;
    let mut stack = vec![dir.to_path_buf()];
    // Bounded: a data directory of a benchmark run holds far fewer entries.
    let mut budget = 10_000_000usize;
    while let Some(d) = stack.pop() {
        let entries = match std::fs::read_dir(&d) {
            Ok(e) => e,
            // Servers delete files while we walk (compaction); a vanished directory is empty.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(BenchError::io(d.display().to_string(), e)),
        };
        for entry in entries {
            budget = budget.checked_sub(1).ok_or_else(|| BenchError::Process("too many files".into()))?;
            let Ok(entry) = entry else { continue };
            let Ok(md) = entry.path().symlink_metadata() else { continue };
            if md.is_dir() {
                if !skip.iter().any(|s| entry.file_name() == *s) {
                    stack.push(entry.path());
                }
            } else if md.is_file() && seen.insert((md.dev(), md.ino())) {
                total += md.len();
            }
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_parentheses_in_comm() {
        let stat = "1234 (we (ird) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 8 0 100 1000 50";
        assert_eq!(parse_stat_ticks(stat), Some(325));
    }

    #[test]
    fn status_kib() {
        let status = "Name:\tprometheus\nVmPeak:\t  200 kB\nVmHWM:\t   12345 kB\nVmRSS:\t 100 kB\n";
        assert_eq!(parse_status_kib(status, "VmHWM"), Some(12345 * 1024));
        assert_eq!(parse_status_kib(status, "VmSwap"), None);
    }

    #[test]
    fn own_process_is_measurable() {
        let pid = std::process::id();
        assert!(cpu_seconds(pid).unwrap() >= 0.0);
        assert!(peak_rss_bytes(pid).unwrap() > 0);
    }

    #[test]
    fn dir_bytes_skips_and_counts_hard_links_once() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), vec![0u8; 1000]).unwrap();
        std::fs::hard_link(dir.path().join("a"), dir.path().join("a2")).unwrap();
        std::fs::create_dir(dir.path().join("wal")).unwrap();
        std::fs::write(dir.path().join("wal/seg"), vec![0u8; 500]).unwrap();
        assert_eq!(dir_bytes(dir.path(), &[]).unwrap(), 1500);
        assert_eq!(dir_bytes(dir.path(), &["wal"]).unwrap(), 1000);
    }
}
