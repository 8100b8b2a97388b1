//! The hand-off from the query handlers to the usage recording worker.
//!
//! # Why a queue
//! Recording must not slow queries down (issue 6: under 2% latency difference on/off). The
//! costly steps of recording are parsing the query again, resolving regex and name-less
//! selectors against the index, extracting labels and updating the store; measured
//! synchronously they added 2-40% to a dashboard query. So a handler does only O(1) work: it
//! moves the call's owned facts ([`PendingCall`]: the query text or `match[]` sets, the raw
//! header values, the stats) into a box and `try_send`s it on a bounded channel
//! (`std::sync::mpsc::sync_channel`, the crossbeam array channel inside: no lock on the send
//! path). One worker thread (`hearth-usage`) does everything else, taking one querier per batch
//! of calls.
//!
//! # Bounds
//! The queue holds at most [`RecordQueue::capacity`] calls (default
//! [`DEFAULT_QUEUE_CAPACITY`]); when it is full the call is dropped and counted in
//! [`QueueStats::dropped`] (`hearth_usage_records_dropped_total`): recording never blocks a
//! query. A burst of a few thousand dashboard queries fits; a sustained rate above what the
//! worker can resolve loses the excess, not latency.
//!
//! # Ordering and shutdown
//! The channel is FIFO. [`RecordQueue::sync`] waits until every call handed over before it has
//! been recorded (reports call it, so a report includes every call answered before it was
//! asked for). [`RecordQueue::stop`] records what is queued, then ends the worker.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::Mutex;
use storage::db::Db;

use super::recorder::{PendingCall, UsageRecorder};

/// Calls queued at most before new ones are dropped. 4096 boxed calls: 32 KiB of slots, a
/// few thousand queued queries of a dashboard storm.
pub const DEFAULT_QUEUE_CAPACITY: usize = 4096;

/// Calls the worker records with one querier before opening a fresh one (so a long burst
/// still sees new series).
const BATCH_MAX: usize = 256;

/// Counters of the queue, read by `/metrics` ([`super::metrics::UsageCollector`]). Monotonic
/// since start.
#[derive(Debug, Default)]
pub struct QueueStats {
    /// Calls handed over to the worker.
    pub queued: AtomicU64,
    /// Calls dropped because the queue was full (or the worker had stopped).
    pub dropped: AtomicU64,
    /// Calls the worker recorded.
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
        let worker = std::thread::Builder::new()
            .name("hearth-usage".into())
            .spawn(move || run(&rx, &recorder, &db, &worker_stats))?;
        Ok(RecordQueue { tx, capacity, stats, worker: Mutex::new(Some(worker)) })
    }

    /// Hands `call` to the worker without waiting: O(1), no lock. Returns false (and counts a
    /// drop) when the queue is full or the worker has stopped.
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

    /// Waits until every call pushed before this one has been recorded, at most `timeout`
    /// (twice: for a place in a full queue, then for the worker). Returns false on timeout or
    /// when the worker has stopped.
    pub fn sync(&self, timeout: Duration) -> bool {
        let (ack_tx, ack_rx) = mpsc::sync_channel(1);
        let deadline = std::time::Instant::now() + timeout;
        let mut msg = Msg::Barrier(ack_tx);
        // A full queue: retry until a place frees up, bounded by the deadline. Yield-free
        // spinning is avoided by parking briefly between tries.
        loop {
            match self.tx.try_send(msg) {
                Ok(()) => break,
                Err(TrySendError::Disconnected(_)) => return false,
                Err(TrySendError::Full(m)) => {
                    if std::time::Instant::now() >= deadline {
                        return false;
                    }
                    msg = m;
                    std::thread::park_timeout(Duration::from_millis(1));
                }
            }
        }
        ack_rx.recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()).max(Duration::from_millis(1))).is_ok()
    }

    /// Records what is queued, then ends the worker and waits for it. Later pushes are
    /// dropped. Idempotent.
    pub fn stop(&self) {
        let Some(worker) = self.worker.lock().take() else { return };
        // A blocking send: at shutdown, waiting for a place behind queued calls is right.
        if self.tx.send(Msg::Stop).is_ok() && worker.join().is_err() {
            tracing::error!("usage recording worker panicked");
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

/// The worker loop: one querier per batch of up to [`BATCH_MAX`] calls.
fn run(rx: &Receiver<Msg>, recorder: &UsageRecorder, db: &Db, stats: &QueueStats) {
    while let Ok(first) = rx.recv() {
        let querier = db.querier();
        let mut next = Some(first);
        let mut n = 0;
        while let Some(msg) = next.take() {
            match msg {
                Msg::Call(call) => {
                    recorder.record_pending(&querier, &call);
                    stats.recorded.fetch_add(1, Ordering::Relaxed);
                }
                Msg::Barrier(ack) => {
                    let _ = ack.send(());
                }
                Msg::Stop => return,
            }
            n += 1;
            if n < BATCH_MAX {
                next = rx.try_recv().ok();
            }
        }
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
        assert_eq!(rec.counters().get("up"), Some(&(accepted as u64)));
        assert_eq!(q.stats().recorded.load(Ordering::Relaxed), accepted as u64);
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
