//! The hand-off from the query handlers to the usage recording worker.
//!
//! # Why a queue
//! Recording must not slow queries down (issue 6: under 2% latency difference on/off). The
//! costly steps of recording are parsing the query again, resolving regex and name-less
//! selectors against the index, extracting labels and updating the store; measured
//! synchronously they added 2-40% to a dashboard query, and even on a second thread, woken per
//! call, they competed with queries for the CPU (+14-25% end to end on 2 busy cores). So:
//! - a handler does O(1) work: it moves the call's owned facts ([`PendingCall`]: the query
//!   text or `match[]` sets, seven raw header values, the stats) into a box and `try_send`s it
//!   on a bounded channel (`std::sync::mpsc::sync_channel`, the crossbeam array channel
//!   inside). The worker never blocks on the channel, so a send wakes no one: no system call
//!   on the query path.
//! - one worker thread (`hearth-usage`) wakes every [`POLL_INTERVAL`] (or when a report or
//!   shutdown asks), drains the queue and **coalesces**: a dashboard repeats the same query
//!   text from the same panel, so the worker resolves each distinct query text once per
//!   [`READS_TTL_MS`] (parse, selectors against the index, labels) and sums repeated calls
//!   of one (query, kind, client, day) into one store update. Its CPU per repeated call is
//!   a hash lookup and a few additions.
//!
//! # Bounds
//! The queue holds at most [`RecordQueue::capacity`] calls (default
//! [`DEFAULT_QUEUE_CAPACITY`], i.e. up to 40k calls/s between two drains); when it is full the
//! call is dropped and counted in [`QueueStats::dropped`] (`hearth_usage_records_dropped_total`):
//! recording never blocks a query. The resolved-query cache holds at most
//! [`READS_CACHE_MAX`] query texts.
//!
//! # Ordering and shutdown
//! The channel is FIFO. [`RecordQueue::sync`] waits until every call handed over before it has
//! been recorded in the store (reports call it, so a report includes every call answered
//! before it was asked for). [`RecordQueue::stop`] records what is queued, then ends the
//! worker.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::Arc;
use std::thread::{JoinHandle, Thread};
use std::time::Duration;

use parking_lot::Mutex;
use storage::db::Db;
use storage::usage::{day_of, MetricRead, ReadKind, UsageEvent};

use super::recorder::{CallInput, OwnedInput, PendingCall, RawCaller, UsageRecorder};

/// Calls queued at most before new ones are dropped. 4096 boxed calls: 32 KiB of slots.
pub const DEFAULT_QUEUE_CAPACITY: usize = 4096;

/// How often the worker drains the queue when nothing asks it to earlier.
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// How long a query text's resolved reads are reused, ms (series appearing later under a
/// regex name are picked up after this).
pub const READS_TTL_MS: i64 = 60_000;

/// Distinct query texts kept resolved; the cache is emptied when full.
pub const READS_CACHE_MAX: usize = 4096;

/// Distinct (kind, client, day) sums kept per query text between two folds.
const CALLERS_PER_QUERY_MAX: usize = 64;

/// Counters of the queue, read by `/metrics` ([`super::metrics::UsageCollector`]). Monotonic
/// since start.
#[derive(Debug, Default)]
pub struct QueueStats {
    /// Calls handed over to the worker.
    pub queued: AtomicU64,
    /// Calls dropped because the queue was full (or the worker had stopped).
    pub dropped: AtomicU64,
    /// Calls recorded in the store.
    pub recorded: AtomicU64,
}

enum Msg {
    Call(Box<PendingCall>),
    /// Acknowledged once everything sent before it is recorded.
    Barrier(SyncSender<()>),
    /// Record what is queued before it, then end.
    Stop,
}

/// The bounded queue and its worker thread. `Send + Sync`.
pub struct RecordQueue {
    tx: SyncSender<Msg>,
    capacity: usize,
    stats: Arc<QueueStats>,
    /// The worker, to wake it early.
    thread: Thread,
    /// The worker, taken by [`RecordQueue::stop`].
    worker: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for RecordQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordQueue").field("capacity", &self.capacity).field("stats", &self.stats).finish()
    }
}

impl RecordQueue {
    /// Starts the worker, recording with `recorder` against `db`'s index. `capacity` is
    /// clamped to at least 1.
    ///
    /// # Errors
    /// The OS error if the thread cannot be spawned.
    pub fn start(recorder: Arc<UsageRecorder>, db: Db, capacity: usize) -> std::io::Result<RecordQueue> {
        let capacity = capacity.max(1);
        let (tx, rx) = mpsc::sync_channel(capacity);
        let stats = Arc::new(QueueStats::default());
        let worker_stats = Arc::clone(&stats);
        let worker = std::thread::Builder::new().name("hearth-usage".into()).spawn(move || {
            let mut w = Worker { recorder: &recorder, db: &db, stats: &worker_stats, queries: HashMap::new() };
            w.run(&rx);
        })?;
        let thread = worker.thread().clone();
        Ok(RecordQueue { tx, capacity, stats, thread, worker: Mutex::new(Some(worker)) })
    }

    /// Hands `call` to the worker without waiting: O(1), no lock, no system call. Returns
    /// false (and counts a drop) when the queue is full or the worker has stopped.
    pub fn push(&self, call: PendingCall) -> bool {
        match self.tx.try_send(Msg::Call(Box::new(call))) {
            Ok(()) => {
                self.stats.queued.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// Waits until every call pushed before this one has been recorded in the store, at most
    /// `timeout` in all. Returns false on timeout or when the worker has stopped.
    pub fn sync(&self, timeout: Duration) -> bool {
        let (ack_tx, ack_rx) = mpsc::sync_channel(1);
        let deadline = std::time::Instant::now() + timeout;
        let mut msg = Msg::Barrier(ack_tx);
        loop {
            match self.tx.try_send(msg) {
                Ok(()) => break,
                Err(TrySendError::Disconnected(_)) => return false,
                Err(TrySendError::Full(m)) => {
                    // A full queue: wake the worker to drain it, retry until the deadline.
                    if std::time::Instant::now() >= deadline {
                        return false;
                    }
                    msg = m;
                    self.thread.unpark();
                    std::thread::yield_now();
                }
            }
        }
        self.thread.unpark();
        ack_rx.recv_timeout(deadline.saturating_duration_since(std::time::Instant::now())).is_ok()
    }

    /// Records what is queued, then ends the worker and waits for it. Later pushes are
    /// dropped. Idempotent.
    pub fn stop(&self) {
        let Some(worker) = self.worker.lock().take() else { return };
        self.thread.unpark();
        // A blocking send: at shutdown, waiting for a place behind queued calls is right (the
        // worker drains at least every POLL_INTERVAL).
        if self.tx.send(Msg::Stop).is_ok() {
            self.thread.unpark();
            if worker.join().is_err() {
                tracing::error!("usage recording worker panicked");
            }
        }
    }

    /// The queue's counters.
    pub fn stats(&self) -> &Arc<QueueStats> {
        &self.stats
    }

    /// Calls queued at most.
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

impl Drop for RecordQueue {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Repeated calls of one query text by one client on one day, summed.
struct CallSum {
    kind: ReadKind,
    caller: RawCaller,
    day: i64,
    calls: u64,
    series: u64,
    samples: u64,
    duration_us: u64,
    last_t_ms: i64,
}

/// A query text's resolved reads and the calls of it not yet in the store.
struct QueryEntry {
    resolved_t_ms: i64,
    reads: Vec<MetricRead>,
    sums: Vec<CallSum>,
}

struct Worker<'a> {
    recorder: &'a UsageRecorder,
    db: &'a Db,
    stats: &'a QueueStats,
    /// By query text.
    queries: HashMap<String, QueryEntry>,
}

impl Worker<'_> {
    /// Drains the queue every [`POLL_INTERVAL`] or when woken, until stopped.
    fn run(&mut self, rx: &Receiver<Msg>) {
        loop {
            // One querier per drain, opened on the first call that needs the index.
            let mut querier = None;
            loop {
                match rx.try_recv() {
                    Ok(Msg::Call(call)) => self.take(*call, &mut querier),
                    Ok(Msg::Barrier(ack)) => {
                        self.fold();
                        let _ = ack.send(());
                    }
                    Ok(Msg::Stop) | Err(TryRecvError::Disconnected) => {
                        self.fold();
                        return;
                    }
                    Err(TryRecvError::Empty) => break,
                }
            }
            drop(querier);
            self.fold();
            std::thread::park_timeout(POLL_INTERVAL);
        }
    }

    /// Adds one call: a query to its text's sums (resolving the text on first sight or after
    /// the TTL), `match[]` calls straight into the store.
    fn take(&mut self, call: PendingCall, querier: &mut Option<storage::db::DbQuerier>) {
        let q = querier.get_or_insert_with(|| self.db.querier());
        let text = match call.input {
            OwnedInput::Query(text) => text,
            OwnedInput::Matchers(_) => {
                self.recorder.record_pending(q, &call);
                self.stats.recorded.fetch_add(1, Ordering::Relaxed);
                return;
            }
        };
        let fresh = |e: &QueryEntry| call.t_ms.saturating_sub(e.resolved_t_ms) < READS_TTL_MS;
        let needs_resolve = self.queries.get(text.as_str()).is_none_or(|e| !fresh(e));
        if needs_resolve {
            if let Some(mut old) = self.queries.remove(text.as_str()) {
                self.fold_entry(&mut old);
            } else if self.queries.len() >= READS_CACHE_MAX {
                self.fold();
                self.queries.clear();
            }
            let reads = self.recorder.reads(q, CallInput::Text(&text), call.mint_ms, call.maxt_ms, call.t_ms);
            self.queries.insert(text.clone(), QueryEntry { resolved_t_ms: call.t_ms, reads, sums: Vec::new() });
        }
        let Some(entry) = self.queries.get_mut(text.as_str()) else { return };
        let day = day_of(call.t_ms);
        let st = call.stats;
        match entry.sums.iter_mut().find(|s| s.kind == call.kind && s.day == day && s.caller == call.caller) {
            Some(s) => {
                s.calls += 1;
                s.series += st.series;
                s.samples += st.samples;
                s.duration_us += st.duration_us;
                s.last_t_ms = s.last_t_ms.max(call.t_ms);
            }
            None => {
                entry.sums.push(CallSum {
                    kind: call.kind,
                    caller: call.caller,
                    day,
                    calls: 1,
                    series: st.series,
                    samples: st.samples,
                    duration_us: st.duration_us,
                    last_t_ms: call.t_ms,
                });
                if entry.sums.len() >= CALLERS_PER_QUERY_MAX {
                    let (recorder, stats) = (self.recorder, self.stats);
                    fold_sums(recorder, stats, entry);
                }
            }
        }
    }

    /// Writes every pending sum into the store.
    fn fold(&mut self) {
        for e in self.queries.values_mut() {
            fold_sums(self.recorder, self.stats, e);
        }
    }

    fn fold_entry(&self, e: &mut QueryEntry) {
        fold_sums(self.recorder, self.stats, e);
    }
}

fn fold_sums(recorder: &UsageRecorder, stats: &QueueStats, e: &mut QueryEntry) {
    for s in e.sums.drain(..) {
        let ev = UsageEvent {
            t_ms: s.last_t_ms,
            kind: s.kind,
            reads: e.reads.clone(),
            client: s.caller.caller().client,
            series: s.series,
            samples: s.samples,
            duration_us: s.duration_us,
        };
        recorder.commit(&ev, s.calls);
        stats.recorded.fetch_add(s.calls, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usage::recorder::{CallStats, OwnedInput, RawCaller};
    use storage::db::DbOptions;
    use storage::usage::{ReadKind, UsageOptions, UsageStore};
    use storage::{Appender, Labels};

    const T: i64 = 1_700_000_000_000;

    fn setup(capacity: usize) -> (tempfile::TempDir, Arc<UsageRecorder>, RecordQueue) {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path().join("db"), DbOptions::default()).unwrap();
        let mut app = db.appender();
        for i in 0..3 {
            app.append_labels(&Labels::from_pairs([("__name__", "up".to_string()), ("i", i.to_string())]), T, 1.0).unwrap();
        }
        app.commit().unwrap();
        let store = Arc::new(UsageStore::open(dir.path().join("usage"), UsageOptions::default(), T).unwrap());
        let rec = Arc::new(UsageRecorder::new(store));
        let q = RecordQueue::start(Arc::clone(&rec), db, capacity).unwrap();
        (dir, rec, q)
    }

    fn call(q: &str) -> PendingCall {
        PendingCall {
            kind: ReadKind::InstantQuery,
            input: OwnedInput::Query(q.to_string()),
            mint_ms: T - 300_000,
            maxt_ms: T,
            t_ms: T,
            caller: RawCaller::default(),
            stats: CallStats { series: 3, samples: 3, duration_us: 10 },
        }
    }

    #[test]
    fn calls_are_recorded_by_the_worker_in_order_before_sync_returns() {
        let (_d, rec, q) = setup(16);
        assert!(q.push(call("up")));
        assert!(q.push(call(r#"{__name__=~"u."}"#)));
        assert!(q.sync(Duration::from_secs(30)));
        assert_eq!(rec.counters().get("up"), Some(&2));
        let s = q.stats();
        assert_eq!((s.queued.load(Ordering::Relaxed), s.recorded.load(Ordering::Relaxed), s.dropped.load(Ordering::Relaxed)), (2, 2, 0));
        let u = rec.store().usage(storage::usage::day_of(T), storage::usage::day_of(T));
        assert_eq!((u["up"].queries, u["up"].series), (2, 6));
    }

    #[test]
    fn repeated_calls_are_coalesced_per_client_and_counted_each() {
        let (_d, rec, q) = setup(64);
        let mut grafana = axum::http::HeaderMap::new();
        grafana.insert("x-dashboard-uid", axum::http::HeaderValue::from_static("d1"));
        for i in 0..5 {
            let mut c = call("sum(up)");
            c.t_ms = T + i;
            if i % 2 == 0 {
                c.caller = RawCaller::from_headers(&grafana);
            }
            assert!(q.push(c));
        }
        assert!(q.sync(Duration::from_secs(30)));
        let u = rec.store().usage(storage::usage::day_of(T), storage::usage::day_of(T));
        assert_eq!((u["up"].queries, u["up"].series, u["up"].samples, u["up"].last_t_ms), (5, 15, 15, T + 4));
        let clients: Vec<(&str, u64)> = u["up"].clients.iter().map(|(k, n)| (k.as_str(), *n)).collect();
        assert_eq!(clients, vec![("dashboard=d1", 3), ("unknown", 2)]);
        assert_eq!(q.stats().recorded.load(Ordering::Relaxed), 5);
    }

    #[test]
    fn raw_callers_name_the_same_client_as_the_headers() {
        use axum::http::{HeaderMap, HeaderValue};
        use base64::Engine as _;
        use crate::usage::recorder::Caller;
        let mut h = HeaderMap::new();
        assert_eq!(RawCaller::from_headers(&h), RawCaller::default());
        h.insert("x-dashboard-uid", HeaderValue::from_static("d1"));
        h.insert("x-panel-id", HeaderValue::from_static("7"));
        h.insert("x-rule-uid", HeaderValue::from_static(""));
        h.insert("user-agent", HeaderValue::from_str(&"G".repeat(2000)).unwrap());
        let auth = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("alice:secret"));
        h.insert("authorization", HeaderValue::from_str(&auth).unwrap());
        let raw = RawCaller::from_headers(&h);
        assert_eq!(raw.caller().client, Caller::from_request_headers(&h).client);
        assert_eq!(raw.caller().client.auth_user, "alice");
        assert_eq!(raw.caller().client.panel_id, "7");
    }

    #[test]
    fn a_full_queue_drops_and_counts_instead_of_blocking() {
        let (_d, rec, q) = setup(2);
        // Hold the worker: it blocks acknowledging a barrier on a rendezvous channel until the
        // test receives, so the queue fills deterministically.
        let (ack_tx, ack_rx) = mpsc::sync_channel(0);
        q.tx.send(Msg::Barrier(ack_tx)).unwrap();
        // Capacity 2: the barrier holds a slot until the worker takes it, so 1 or 2 of the 5
        // pushes fit and the rest drop; none blocks.
        let mut accepted = 0;
        for _ in 0..5 {
            if q.push(call("up")) {
                accepted += 1;
            }
        }
        assert!((1..=2).contains(&accepted), "{accepted}");
        assert_eq!(q.stats().dropped.load(Ordering::Relaxed), 5 - accepted);
        ack_rx.recv().unwrap();
        assert!(q.sync(Duration::from_secs(30)));
        assert_eq!(rec.counters().get("up"), Some(&accepted));
        assert_eq!(q.stats().recorded.load(Ordering::Relaxed), accepted);
    }

    #[test]
    fn stop_records_what_is_queued_and_later_pushes_drop() {
        let (_d, rec, q) = setup(16);
        for _ in 0..10 {
            assert!(q.push(call("up")));
        }
        q.stop();
        assert_eq!(rec.counters().get("up"), Some(&10));
        assert!(!q.push(call("up")));
        assert!(!q.sync(Duration::from_millis(10)));
        assert_eq!(q.stats().dropped.load(Ordering::Relaxed), 1);
        q.stop();
    }
}
