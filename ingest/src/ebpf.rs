//! eBPF HTTP RED ingestion: request rate, errors and duration of unmodified local HTTP/1.x
//! servers (any runtime: Python, Go, Rust, nginx...), with Grafana Beyla's metric names.
//!
//! # Design
//! The kernel programs (crate `ebpf`, `bpf/http.bpf.c`) see TCP state changes and the end of
//! every socket send and receive (never other syscalls), keep a small state machine per
//! accepted connection of the selected processes and ports, and send one
//! [`ebpf::HttpEvent`] per request to a ring buffer, at the response's first write (plus a
//! continuation when the response went on; [`Assembler`] pairs them). The kernel does not wake this side per
//! event (that costs 10-45% of a small server's throughput): it wakes it by the time 1 MiB is
//! queued (counted per CPU), and this side also drains every 100 ms. Userspace ([`start`]) then:
//!
//! ```text
//!  ring buffer ──► parse (method, route, status, sizes) ──► aggregate per series group
//!      (AsyncFd + 100 ms timer)                          (cumulative classic histograms)
//!  every --ebpf.interval: one appender transaction with every series' current value
//! ```
//!
//! Selection follows Beyla: `--ebpf.open-ports` and/or `--ebpf.exe-path`; Hearth's own process
//! and [`EbpfConfig::exclude_ports`] are never observed. The series:
//! `http_server_request_duration_seconds`, `http_server_request_body_size_bytes`,
//! `http_server_response_body_size_bytes` (each `_bucket{le}`, `_sum`, `_count`) with labels
//! `http_request_method`, `http_response_status_code`, `http_route`, `server_port`,
//! `service_name`, `instance`, `job`. A request the server never answered (it closed the
//! connection) is counted with `http_response_status_code="0"`.
//!
//! # Privileges
//! CAP_BPF + CAP_PERFMON (or root) and kernel BTF; without them [`start`] returns an
//! [`EbpfError`] saying what is missing and how to grant it, and nothing is loaded.
//!
//! # Limits
//! x86_64 only (syscall numbers); HTTP/1.x in clear text (no TLS, HTTP/2, io_uring,
//! recvmmsg/sendmmsg); connections established before the start are not observed; pipelined requests in one read
//! count as one.

mod aggregate;
mod config;
mod error;
mod loader;
mod metrics;
mod parse;
mod privileges;
mod ring;
mod targets;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use storage::Appender;
use tokio::io::unix::AsyncFd;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{interval_at, Instant, MissedTickBehavior};

pub use aggregate::{
    Aggregator, FlushStats, Histogram, Red, SeriesKey, BODY_SIZE_BUCKETS_BYTES, DURATION_BUCKETS_SECONDS,
    DURATION_METRIC, REQUEST_BODY_METRIC, RESPONSE_BODY_METRIC,
};
pub use config::{EbpfConfig, PortRanges};
pub use error::EbpfError;
pub use metrics::{EbpfMetrics, EbpfStatus};
pub use parse::{parse_event, parse_event_cached, request_line, route, Assembler, Request, RouteCache, Unparsable};
pub use privileges::{check as check_privileges, missing_capabilities, VMLINUX_BTF};

/// Where flushes write: something that opens an appender transaction. Implemented for
/// closures `Fn() -> A` (an owned appender); a storage whose appender borrows it implements
/// this directly.
pub trait AppenderSource: Send + Sync + 'static {
    /// The transaction type.
    type Appender<'a>: Appender
    where
        Self: 'a;
    /// Opens one transaction.
    fn appender(&self) -> Self::Appender<'_>;
}

impl<F, A> AppenderSource for F
where
    F: Fn() -> A + Send + Sync + 'static,
    A: Appender,
{
    type Appender<'a>
        = A
    where
        F: 'a;
    fn appender(&self) -> A {
        self()
    }
}

enum Command {
    Drain(oneshot::Sender<u64>),
    Flush(oneshot::Sender<Result<FlushStats, EbpfError>>),
    RefreshTargets(oneshot::Sender<Result<usize, EbpfError>>),
    Shutdown(oneshot::Sender<Result<FlushStats, EbpfError>>),
}

/// A running ingestion. Dropping it stops the task and detaches the programs (without a final
/// flush; use [`EbpfHandle::shutdown`] for one).
#[derive(Debug)]
pub struct EbpfHandle {
    metrics: Arc<EbpfMetrics>,
    commands: mpsc::Sender<Command>,
    /// Taken by [`EbpfHandle::shutdown`]; aborted on drop otherwise.
    task: Option<tokio::task::JoinHandle<()>>,
}

/// Checks privileges, loads and attaches the kernel program, and spawns the ingestion task on
/// the current Tokio runtime. Returns at once; samples are written every `config.interval`.
///
/// # Errors
/// [`EbpfError::Config`], [`EbpfError::UnsupportedArch`], [`EbpfError::MissingCapabilities`],
/// [`EbpfError::MissingBtf`], [`EbpfError::NoRuntime`], [`EbpfError::Load`],
/// [`EbpfError::Attach`] or [`EbpfError::Map`]: one line each, for the server to log before
/// going on without eBPF.
pub fn start<S: AppenderSource>(config: EbpfConfig, storage: Arc<S>) -> Result<EbpfHandle, EbpfError> {
    config.validate()?;
    privileges::check()?;
    let runtime = tokio::runtime::Handle::try_current().map_err(|_| EbpfError::NoRuntime)?;
    let loaded = loader::load(&config)?;
    let metrics = Arc::new(EbpfMetrics::default());
    metrics.set_attached(loaded.bpf.attached.clone());
    let (tx, rx) = mpsc::channel(8);
    let task = {
        let _guard = runtime.enter();
        // SAFETY: the EventRing owns its map fd (aya's MapData holds an OwnedFd) and keeps it
        // open, unchanged, until it drops, which is after the AsyncFd (it is its inner value).
        let ring = unsafe { AsyncFd::register_with_interest(loaded.ring, tokio::io::Interest::READABLE) }
            .map_err(|e| EbpfError::Load(format!("ring buffer epoll registration: {e}")))?;
        let mut state = Task {
            ring,
            bpf: loaded.bpf,
            events: EventDrain::new(
                Aggregator::new(
                    config.instance.clone().unwrap_or_else(targets::hostname),
                    config.job.clone().or_else(|| config.service_name.clone()),
                ),
                config.service_name.clone(),
            ),
            metrics: Arc::clone(&metrics),
            storage,
            config,
        };
        state.refresh_targets()?;
        runtime.spawn(state.run(rx))
    };
    tracing::info!(programs = ?metrics.attached_programs(), "eBPF HTTP ingestion started");
    Ok(EbpfHandle { metrics, commands: tx, task: Some(task) })
}

impl EbpfHandle {
    /// The counters, shared with the task (for `/metrics`).
    pub fn metrics(&self) -> Arc<EbpfMetrics> {
        Arc::clone(&self.metrics)
    }

    /// A snapshot for `/api/v1/status/runtimeinfo`.
    pub fn status(&self) -> EbpfStatus {
        self.metrics.status()
    }

    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T, EbpfError> {
        let (tx, rx) = oneshot::channel();
        self.commands.send(make(tx)).await.map_err(|_| EbpfError::Stopped)?;
        rx.await.map_err(|_| EbpfError::Stopped)
    }

    /// Drains the ring buffer now; returns the number of events read by this drain.
    ///
    /// # Errors
    /// [`EbpfError::Stopped`] when the task has ended.
    pub async fn drain(&self) -> Result<u64, EbpfError> {
        self.ask(Command::Drain).await
    }

    /// Drains, then writes every series now in one transaction (as the interval timer does).
    ///
    /// # Errors
    /// [`EbpfError::Storage`] when the commit failed, [`EbpfError::Stopped`].
    pub async fn flush(&self) -> Result<FlushStats, EbpfError> {
        self.ask(Command::Flush).await?
    }

    /// Rescans `/proc` for processes matching `--ebpf.exe-path` now; returns how many match.
    ///
    /// # Errors
    /// [`EbpfError::Map`], [`EbpfError::Stopped`].
    pub async fn refresh_targets(&self) -> Result<usize, EbpfError> {
        self.ask(Command::RefreshTargets).await?
    }

    /// Drains, flushes a last time, detaches the programs and ends the task.
    ///
    /// # Errors
    /// As [`EbpfHandle::flush`]; the programs are detached in any case.
    pub async fn shutdown(mut self) -> Result<FlushStats, EbpfError> {
        let r = self.ask(Command::Shutdown).await?;
        if let Some(task) = self.task.take() {
            // The task returns right after answering; a join error means it panicked, and the
            // programs are detached either way.
            let _ = task.await;
        }
        r
    }
}

impl Drop for EbpfHandle {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

struct Task<S: AppenderSource> {
    ring: AsyncFd<ring::EventRing>,
    /// The program and maps; declared after `ring` so the ring is unregistered first.
    bpf: loader::Bpf,
    /// Records into series groups.
    events: EventDrain,
    metrics: Arc<EbpfMetrics>,
    storage: Arc<S>,
    config: EbpfConfig,
}

/// The drain's work on ring buffer records, without the ring: decode and parse each record,
/// pair responses with their continuations ([`Assembler`]), name the service of each request's
/// pid, and add it to its series group ([`Aggregator`]). The ingestion task feeds it every record
/// it reads; benches and tests feed it records built in memory.
#[derive(Debug)]
pub struct EventDrain {
    aggregator: Aggregator,
    routes: RouteCache,
    /// Pairs response events with their continuations.
    assembler: Assembler,
    names: targets::ServiceNames,
}

/// What one drain read (published to [`EbpfMetrics`] once per drain).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DrainCounts {
    /// Records read.
    pub read: u64,
    /// Records that were not an HTTP/1.x request ([`Unparsable`]).
    pub unparsable: u64,
    /// Requests aggregated.
    pub requests: u64,
}

impl EventDrain {
    /// A drain into `aggregator`; `service_name` names every service when set (else the
    /// executable's file name of each request's pid, see `--ebpf.service-name`).
    pub fn new(aggregator: Aggregator, service_name: Option<String>) -> Self {
        EventDrain {
            aggregator,
            routes: RouteCache::default(),
            assembler: Assembler::default(),
            names: targets::ServiceNames::new(service_name),
        }
    }

    /// Starts one drain of records read at `now` (the groups' last-seen time).
    pub fn batch(&mut self, now: std::time::Instant) -> DrainBatch<'_> {
        DrainBatch { drain: self, now, counts: DrainCounts::default() }
    }

    /// The series groups so far.
    pub fn aggregator(&self) -> &Aggregator {
        &self.aggregator
    }

    /// Responses waiting for their continuation ([`Assembler::pending`]).
    pub fn pending(&self) -> usize {
        self.assembler.pending()
    }
}

/// One drain in progress: records pushed one by one, counted locally.
#[derive(Debug)]
pub struct DrainBatch<'a> {
    drain: &'a mut EventDrain,
    now: std::time::Instant,
    counts: DrainCounts,
}

impl DrainBatch<'_> {
    /// Takes one ring buffer record (an unparsable one is counted, not an error).
    pub fn push(&mut self, record: &[u8]) {
        let EventDrain { aggregator, routes, assembler, names } = &mut *self.drain;
        let (now, counts) = (self.now, &mut self.counts);
        counts.read += 1;
        let pushed = assembler.push_ref(record, routes, &mut |req| {
            aggregator.observe(names.get(req.pid), req, now);
            counts.requests += 1;
        });
        if pushed.is_err() {
            counts.unparsable += 1;
        }
    }

    /// What this drain read so far.
    pub fn counts(&self) -> DrainCounts {
        self.counts
    }
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

fn ticker(period: Duration) -> tokio::time::Interval {
    let mut t = interval_at(Instant::now() + period, period);
    t.set_missed_tick_behavior(MissedTickBehavior::Delay);
    t
}

impl<S: AppenderSource> Task<S> {
    async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let mut drain_tick = ticker(self.config.drain_interval);
        let mut flush_tick = ticker(self.config.interval);
        let mut rescan_tick = ticker(self.config.exe_rescan_interval);
        let rescan = self.config.exe_path.is_some();
        loop {
            tokio::select! {
                ready = self.ring.readable_mut() => match ready {
                    Ok(mut guard) => {
                        guard.clear_ready();
                        drop(guard);
                        self.drain();
                    }
                    Err(e) => {
                        self.metrics.set_error(Some(format!("ring buffer poll: {e}")));
                        self.drain();
                    }
                },
                _ = drain_tick.tick() => { self.drain(); }
                _ = flush_tick.tick() => { let _ = self.flush(); }
                _ = rescan_tick.tick(), if rescan => { let _ = self.refresh_targets(); }
                cmd = commands.recv() => match cmd {
                    Some(Command::Drain(tx)) => { let _ = tx.send(self.drain()); }
                    Some(Command::Flush(tx)) => { let _ = tx.send(self.flush()); }
                    Some(Command::RefreshTargets(tx)) => { let _ = tx.send(self.refresh_targets()); }
                    Some(Command::Shutdown(tx)) => { let _ = tx.send(self.flush()); return; }
                    None => return,
                },
            }
        }
    }

    /// Reads every queued event; counters are published once per drain.
    fn drain(&mut self) -> u64 {
        let ring = self.ring.get_mut();
        let mut batch = self.events.batch(std::time::Instant::now());
        ring.drain(|record| batch.push(record));
        let DrainCounts { read, unparsable, requests } = batch.counts();
        let m = &self.metrics;
        m.events_read.fetch_add(read, Ordering::Relaxed);
        m.events_unparsable.fetch_add(unparsable, Ordering::Relaxed);
        m.requests.fetch_add(requests, Ordering::Relaxed);
        if let Ok(dropped) = self.bpf.dropped_total() {
            m.events_dropped.store(dropped, Ordering::Relaxed);
        }
        read
    }

    fn flush(&mut self) -> Result<FlushStats, EbpfError> {
        self.drain();
        let mut app = self.storage.appender();
        let expire_before = std::time::Instant::now().checked_sub(self.config.series_ttl);
        let stats = self.events.aggregator.write_to(&mut app, now_ms(), expire_before);
        match app.commit() {
            Ok(_) => {
                self.metrics.flushes.fetch_add(1, Ordering::Relaxed);
                self.metrics.samples_appended.fetch_add(stats.samples, Ordering::Relaxed);
                self.metrics.samples_rejected.fetch_add(stats.rejected, Ordering::Relaxed);
                self.metrics.set_error(None);
                Ok(stats)
            }
            Err(e) => {
                self.metrics.flush_failures.fetch_add(1, Ordering::Relaxed);
                self.metrics.set_error(Some(format!("flush: {e}")));
                tracing::warn!(error = %e, "eBPF HTTP series flush failed");
                Err(EbpfError::Storage(e))
            }
        }
    }

    fn refresh_targets(&mut self) -> Result<usize, EbpfError> {
        let Some(re) = &self.config.exe_path else { return Ok(0) };
        let me = std::process::id();
        let pids: Vec<u32> = targets::matching_pids(re).into_iter().filter(|&p| p != me).collect();
        self.bpf.set_targets(&pids)?;
        self.metrics.target_pids.store(pids.len() as u64, Ordering::Relaxed);
        Ok(pids.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ebpf::HttpEvent;

    /// A complete `GET path` event of `pid` on connection `conn` (v3 layout, response in its
    /// first write).
    fn record(pid: u32, conn: u64, path: &str) -> Vec<u8> {
        let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
        let resp = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        let ev = HttpEvent {
            start_ns: 1_000,
            end_ns: 2_001_000,
            conn_id: conn,
            pid,
            status: 200,
            port: 8080,
            end_reason: 5,
            ..HttpEvent::with_heads(req.as_bytes(), resp)
        };
        ev.as_bytes().to_vec()
    }

    /// Many pids, in two drains: every request is counted in its service's group (pids that do
    /// not exist are `unknown_service`, as the per-pid map names them), and an unparsable record
    /// is counted as such.
    #[test]
    fn drain_counts_and_names_every_pid() {
        let me = std::process::id();
        let own = targets::ServiceNames::new(None).get(me).clone();
        let mut drain = EventDrain::new(Aggregator::new("h".into(), None), None);
        let gone = |i: u32| u32::MAX - i; // above any pid_max
        const PIDS: u32 = 20;
        let mut records = Vec::new();
        for round in 0..3u32 {
            for i in 0..PIDS {
                records.push(record(gone(i), u64::from(i), "/users/42"));
            }
            records.push(record(me, 1_000 + u64::from(round), if round == 0 { "/a" } else { "/b" }));
        }
        records.push(vec![0u8; 10]);
        let now = std::time::Instant::now();
        for half in records.chunks(records.len() / 2 + 1) {
            let mut batch = drain.batch(now);
            half.iter().for_each(|r| batch.push(r));
            let c = batch.counts();
            assert_eq!(c.read, half.len() as u64);
            assert_eq!(c.read, c.requests + c.unparsable);
        }
        let mut groups: Vec<(String, String, u64)> = drain
            .aggregator()
            .groups()
            .map(|(k, red)| (k.service_name.to_string(), k.route.to_string(), red.duration.count()))
            .collect();
        groups.sort();
        let mut want = vec![
            ("unknown_service".to_string(), "/users/*".to_string(), 3 * u64::from(PIDS)),
            (own.to_string(), "/a".to_string(), 1),
            (own.to_string(), "/b".to_string(), 2),
        ];
        want.sort();
        assert_eq!(groups, want);
        assert_eq!(drain.pending(), 0);
    }
}
