//! The systems under test: Debian's Prometheus and VictoriaMetrics, and Hearth from this
//! checkout, each started on a free loopback port with its data in a temporary directory.
//!
//! Children never outlive the runner: [`ChildGuard`] terminates its process on drop (normal
//! exit and panics unwind through it), and every child is spawned with
//! `prctl(PR_SET_PDEATHSIG, SIGKILL)` so the kernel kills it when the runner dies any other way
//! (Ctrl-C, SIGTERM, SIGKILL). Ctrl-C in a terminal also reaches the children directly: they
//! share the runner's process group.

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::{BenchError, Result};

/// Which system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SystemKind {
    /// Debian's `prometheus` with the remote-write receiver enabled.
    Prometheus,
    /// Debian's `victoria-metrics` (single node).
    VictoriaMetrics,
    /// `target/release/hearth` from this checkout.
    Hearth,
}

impl SystemKind {
    /// Short name used in tables and logs.
    pub fn name(self) -> &'static str {
        match self {
            SystemKind::Prometheus => "prometheus",
            SystemKind::VictoriaMetrics => "victoria-metrics",
            SystemKind::Hearth => "hearth",
        }
    }

    /// Parses a [`SystemKind::name`].
    pub fn parse(s: &str) -> Option<Self> {
        [SystemKind::Prometheus, SystemKind::VictoriaMetrics, SystemKind::Hearth].into_iter().find(|k| k.name() == s)
    }
}

/// A child process that is terminated (SIGTERM, then SIGKILL after 10 s) when dropped.
#[derive(Debug)]
pub struct ChildGuard {
    child: Option<Child>,
}

impl ChildGuard {
    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, |c| c.id())
    }

    /// Whether the process has exited (and with what), without waiting.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.as_mut().and_then(|c| c.try_wait().ok().flatten())
    }

    /// Sends SIGTERM and waits up to `grace` for a clean exit, then SIGKILLs. Returns whether
    /// it exited cleanly within the grace period.
    pub fn terminate(&mut self, grace: Duration) -> bool {
        let Some(mut child) = self.child.take() else { return true };
        if child.try_wait().ok().flatten().is_some() {
            return true;
        }
        // SAFETY: kill(2) with a pid we spawned and still own (not yet reaped), and a valid signal.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if child.try_wait().ok().flatten().is_some() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.terminate(Duration::from_secs(10));
    }
}

/// Spawns `cmd` with its output appended to `log`, dying with the runner.
pub fn spawn(mut cmd: Command, log: &Path) -> Result<ChildGuard> {
    let out = File::create(log).map_err(|e| BenchError::io(log.display().to_string(), e))?;
    let err = out.try_clone().map_err(|e| BenchError::io(log.display().to_string(), e))?;
    cmd.stdin(Stdio::null()).stdout(out).stderr(err);
    // SAFETY: the closure runs in the forked child before exec and only calls prctl(2), which is
    // async-signal-safe; it touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn().map_err(|e| BenchError::io(format!("spawning {:?}", cmd.get_program()), e))?;
    Ok(ChildGuard { child: Some(child) })
}

/// A free TCP port on 127.0.0.1 (bound and released; the server binds it right after).
pub fn free_loopback_port() -> Result<u16> {
    let l = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).map_err(|e| BenchError::io("binding a port", e))?;
    Ok(l.local_addr().map_err(|e| BenchError::io("local_addr", e))?.port())
}

/// The last `n` bytes of a log file, for error messages.
pub fn log_tail(log: &Path, n: usize) -> String {
    let text = std::fs::read(log).unwrap_or_default();
    String::from_utf8_lossy(&text[text.len().saturating_sub(n)..]).into_owned()
}

/// Installs Debian's `prometheus` and `victoria-metrics` when either binary is missing (CI
/// machines start fresh). Runs `apt-get` directly as root, else through `sudo`.
pub fn ensure_peers_installed() -> Result<()> {
    let missing: Vec<&str> = [("prometheus", "/usr/bin/prometheus"), ("victoria-metrics", "/usr/bin/victoria-metrics")]
        .into_iter()
        .filter(|(_, path)| !Path::new(path).exists())
        .map(|(pkg, _)| pkg)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("hearth-bench: installing {missing:?} with apt-get");
    // SAFETY: geteuid(2) has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let run = |args: &[&str]| -> Result<()> {
        let mut cmd = if root { Command::new("apt-get") } else { Command::new("sudo") };
        if !root {
            cmd.arg("apt-get");
        }
        cmd.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        let status = cmd.status().map_err(|e| BenchError::io("running apt-get", e))?;
        if !status.success() {
            return Err(BenchError::Process(format!("apt-get {args:?} failed: {status}")));
        }
        Ok(())
    };
    run(&["update", "-qq"])?;
    let mut args = vec!["install", "-y", "-qq", "--no-install-recommends"];
    args.extend(missing.iter());
    run(&args)
}

/// The workspace root of this checkout (where `target/release/hearth` is built).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."))
}

/// Returns the path of Hearth's release binary, building it (`cargo build --release --bin
/// hearth`) when it is missing or when `rebuild` is set.
pub fn ensure_hearth_built(rebuild: bool) -> Result<PathBuf> {
    let root = workspace_root();
    let bin = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
        .join("release/hearth");
    if bin.exists() && !rebuild {
        return Ok(bin);
    }
    eprintln!("hearth-bench: cargo build --release --bin hearth");
    let status = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args(["build", "--release", "--bin", "hearth"])
        .current_dir(&root)
        .status()
        .map_err(|e| BenchError::io("running cargo", e))?;
    if !status.success() || !bin.exists() {
        return Err(BenchError::Process(format!("cargo build --release --bin hearth failed: {status}")));
    }
    Ok(bin)
}

/// A started system.
#[derive(Debug)]
pub struct RunningSystem {
    /// Which one.
    pub kind: SystemKind,
    /// `http://127.0.0.1:PORT`.
    pub base_url: String,
    /// Its data directory.
    pub data_dir: PathBuf,
    /// Its combined stdout/stderr.
    pub log: PathBuf,
    /// The process.
    pub child: ChildGuard,
}

impl RunningSystem {
    /// Starts `kind` with its data under `root/<name>` on a free loopback port.
    /// `hearth_bin` is used for [`SystemKind::Hearth`].
    pub fn start(kind: SystemKind, root: &Path, hearth_bin: Option<&Path>) -> Result<Self> {
        let dir = root.join(kind.name());
        let data_dir = dir.join("data");
        std::fs::create_dir_all(&data_dir).map_err(|e| BenchError::io(data_dir.display().to_string(), e))?;
        let port = free_loopback_port()?;
        let addr = format!("127.0.0.1:{port}");
        let cmd = match kind {
            SystemKind::Prometheus => {
                let config = dir.join("prometheus.yml");
                // No scrape jobs: everything arrives over remote-write.
                std::fs::write(&config, "global:\n  scrape_interval: 15s\nscrape_configs: []\n")
                    .map_err(|e| BenchError::io(config.display().to_string(), e))?;
                let mut c = Command::new("prometheus");
                c.arg(format!("--config.file={}", config.display()))
                    .arg(format!("--storage.tsdb.path={}", data_dir.display()))
                    .arg(format!("--web.listen-address={addr}"))
                    .arg("--web.enable-remote-write-receiver")
                    .arg("--web.enable-admin-api")
                    .arg("--storage.tsdb.retention.time=3650d")
                    .arg("--log.level=warn");
                c
            }
            SystemKind::VictoriaMetrics => {
                let mut c = Command::new("victoria-metrics");
                c.arg(format!("-storageDataPath={}", data_dir.display()))
                    .arg(format!("-httpListenAddr={addr}"))
                    .arg("-retentionPeriod=100y")
                    // Fresh (backfilled or live) data must be visible and answered exactly:
                    // no 30 s latency offset, no response cache and its step alignment.
                    .arg("-search.latencyOffset=0")
                    .arg("-search.disableCache")
                    .arg("-loggerLevel=WARN");
                c
            }
            SystemKind::Hearth => {
                let bin = hearth_bin.ok_or_else(|| BenchError::Process("no hearth binary".into()))?;
                let mut c = Command::new(bin);
                c.arg(format!("--web.listen-address={addr}"))
                    .arg(format!("--storage.tsdb.path={}", data_dir.display()))
                    .arg("--storage.tsdb.retention.time=3650d")
                    // Prometheus' WAL is not fsynced per write either (only when a segment is
                    // cut); the interval policy is the closest equal footing.
                    .arg("--storage.tsdb.wal-fsync=interval")
                    // For the snapshot the disk figure is measured from, as Prometheus'.
                    .arg("--web.enable-admin-api")
                    .arg("--log.level=warn");
                c
            }
        };
        let log = dir.join("server.log");
        let child = spawn(cmd, &log)?;
        Ok(RunningSystem { kind, base_url: format!("http://{addr}"), data_dir, log, child })
    }

    /// The remote-write endpoint.
    pub fn write_url(&self) -> String {
        format!("{}/api/v1/write", self.base_url)
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    /// Polls `GET /api/v1/query?query=1` every 100 ms until it answers 200, the process exits,
    /// or `timeout` passes.
    pub async fn wait_ready(&mut self, client: &reqwest::Client, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let url = format!("{}/api/v1/query", self.base_url);
        while Instant::now() < deadline {
            if let Some(status) = self.child.exited() {
                return Err(BenchError::Process(format!(
                    "{} exited during startup ({status}): {}",
                    self.kind.name(),
                    log_tail(&self.log, 2000)
                )));
            }
            let r = client.get(&url).query(&[("query", "1")]).timeout(Duration::from_secs(2)).send().await;
            if matches!(r, Ok(ref resp) if resp.status().is_success()) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(BenchError::Timeout { what: format!("{} to answer queries", self.kind.name()), after: timeout })
    }
}
