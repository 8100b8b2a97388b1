//! Where a query is evaluated: in place on the request's thread, or on the blocking pool.
//!
//! Evaluating on tokio's blocking pool (`spawn_blocking`) costs two thread hand-offs per query
//! (a blocking thread is woken for the work, then a runtime worker for the reply). For a
//! dashboard query that evaluates in a millisecond these hand-offs were a large share of the
//! server's time: 20k series, wrk with one connection, load average 7-8, server CPU per request
//! `mem_used_ratio` instant 346 -> 187 us, `count_pods_by_ns` instant 834 -> 588 us when
//! evaluated in place. What the pool gives in return is cancellation: when the client goes
//! away, the dropped handler future sets the engine's cancel flag (see [`super::query`]); a
//! query evaluated in place cannot notice that, because its future is not polled until it ends.
//!
//! So a query is evaluated in place (`tokio::task::block_in_place`, which hands the worker's
//! other tasks to another thread) only when the same query, as an instant query or as a range
//! of the same number of steps, last took at most [`INLINE_MAX`]: then cancelling it could save
//! at most about that much. And only if it last selected fewer than [`FAN_OUT_SERIES`] series:
//! a larger selection decodes across the rayon pool anyway (hand-offs there too), and in place
//! the thread that takes over the worker's tasks competes with the pool for the cores
//! (`count_cpu_by_mode` instant, 704 series, 2 cores: p50 1445 -> 1780 us in place).
//! Everything else, and every query the first time, goes to the pool.
//! Dashboards re-run the same queries on every refresh, so their queries are the ones that
//! learn to run in place.
//!
//! The memory of past costs is [`CostTable`]: a fixed, direct-mapped table of [`SLOTS`] atomic
//! words, each a 32-bit key tag, a fan-out bit and the last wall time in microseconds (31
//! bits). Collisions overwrite
//! (the loser is only sent to the pool again); no lock is taken.

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Longest last evaluation (wall time) of a query that is then evaluated in place: 10 ms.
pub const INLINE_MAX: Duration = Duration::from_millis(10);

/// Number of slots of the cost table (4096 words, 32 KiB).
pub const SLOTS: usize = 4096;

/// Selections of this many series or more are decoded across the rayon pool (the engine's
/// `query::source` parallel-decode threshold, 256); such queries always go to the pool.
pub const FAN_OUT_SERIES: u64 = 256;

/// Bit of a slot's low word set when the query selected [`FAN_OUT_SERIES`] or more series.
const FANNED_OUT: u64 = 1 << 31;
/// The wall-time bits of a slot's low word, us.
const MICROS: u64 = FANNED_OUT - 1;

/// Queries evaluated in place since the process started (all tables).
static IN_PLACE_RUNS: AtomicU64 = AtomicU64::new(0);

/// Number of queries evaluated in place since the process started.
pub fn in_place_runs() -> u64 {
    IN_PLACE_RUNS.load(Ordering::Relaxed)
}

/// Last evaluation times of recent queries, by a hash of the query's text and shape.
pub struct CostTable {
    /// Per slot: `tag << 32 | fanned out << 31 | wall time in us` (0 = empty; a tag is never
    /// 0).
    slots: Box<[AtomicU64]>,
    /// Fixed-seed hasher, so keys are the same across calls.
    hasher: std::hash::BuildHasherDefault<std::collections::hash_map::DefaultHasher>,
}

impl Default for CostTable {
    fn default() -> Self {
        CostTable { slots: (0..SLOTS).map(|_| AtomicU64::new(0)).collect(), hasher: Default::default() }
    }
}

/// The key of one query shape: its text and, for a range query, its number of steps (`None`
/// for an instant query).
pub fn key(table: &CostTable, query: &str, range_steps: Option<i64>) -> u64 {
    let mut h = table.hasher.build_hasher();
    h.write(query.as_bytes());
    match range_steps {
        None => h.write_u8(0),
        Some(n) => {
            h.write_u8(1);
            h.write_i64(n);
        }
    }
    h.finish()
}

fn slot_and_tag(key: u64) -> (usize, u64) {
    let slot = (key as usize) % SLOTS;
    // The tag comes from the high bits (the slot used the low ones); 0 marks an empty slot.
    let tag = (key >> 32).max(1);
    (slot, tag)
}

impl CostTable {
    /// The last recorded run of `key`, if it is still in the table: its wall time and whether
    /// it selected [`FAN_OUT_SERIES`] or more series.
    pub fn last(&self, key: u64) -> Option<(Duration, bool)> {
        let (slot, tag) = slot_and_tag(key);
        let w = self.slots[slot].load(Ordering::Relaxed);
        (w >> 32 == tag).then(|| (Duration::from_micros(w & MICROS), w & FANNED_OUT != 0))
    }

    /// Records that `key` took `took` (saturating at ~35 minutes) and selected `series` series.
    pub fn record(&self, key: u64, took: Duration, series: u64) {
        let (slot, tag) = slot_and_tag(key);
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX).min(MICROS);
        let fan = if series >= FAN_OUT_SERIES { FANNED_OUT } else { 0 };
        self.slots[slot].store(tag << 32 | fan | us, Ordering::Relaxed);
    }

    /// Counts one query evaluated in place (for [`in_place_runs`]).
    pub fn count_in_place(&self) {
        IN_PLACE_RUNS.fetch_add(1, Ordering::Relaxed);
    }

    /// True if `key` should be evaluated in place: its last run took at most [`INLINE_MAX`]
    /// and did not fan out, and the current runtime can block in place (a multi-threaded
    /// tokio runtime; `block_in_place` panics on a current-thread one).
    pub fn run_in_place(&self, key: u64) -> bool {
        self.last(key).is_some_and(|(d, fanned_out)| d <= INLINE_MAX && !fanned_out)
            && tokio::runtime::Handle::try_current()
                .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_the_last_time_per_query_shape() {
        let t = CostTable::default();
        let instant = key(&t, "up", None);
        let range = key(&t, "up", Some(61));
        assert_ne!(instant, range);
        assert_ne!(range, key(&t, "up", Some(62)));
        assert_eq!(instant, key(&t, "up", None), "keys are stable");
        assert_eq!(t.last(instant), None);
        t.record(instant, Duration::from_micros(1500), 10);
        assert_eq!(t.last(instant), Some((Duration::from_micros(1500), false)));
        assert_eq!(t.last(range), None);
        t.record(instant, Duration::from_secs(3), FAN_OUT_SERIES);
        assert_eq!(t.last(instant), Some((Duration::from_secs(3), true)), "the last run wins");
        t.record(range, Duration::from_secs(1 << 40), 0);
        assert_eq!(t.last(range), Some((Duration::from_micros(MICROS), false)), "saturates");
    }

    #[test]
    fn a_colliding_key_replaces_the_slot() {
        let t = CostTable::default();
        let a = 5u64 << 32 | 7;
        let b = 6u64 << 32 | 7; // same slot, other tag
        t.record(a, Duration::from_millis(1), 1);
        t.record(b, Duration::from_millis(2), 1);
        assert_eq!(t.last(a), None);
        assert_eq!(t.last(b), Some((Duration::from_millis(2), false)));
    }

    #[test]
    fn in_place_only_when_cheap_narrow_and_on_a_multi_thread_runtime() {
        let t = CostTable::default();
        let cheap = key(&t, "cheap", None);
        let dear = key(&t, "dear", None);
        let wide = key(&t, "wide", None);
        t.record(cheap, Duration::from_millis(1), FAN_OUT_SERIES - 1);
        t.record(dear, INLINE_MAX + Duration::from_millis(1), 1);
        t.record(wide, Duration::from_millis(1), FAN_OUT_SERIES);
        assert!(!t.run_in_place(cheap), "no runtime");
        let mt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).build().expect("runtime");
        mt.block_on(async {
            assert!(t.run_in_place(cheap));
            assert!(!t.run_in_place(dear));
            assert!(!t.run_in_place(wide));
            assert!(!t.run_in_place(key(&t, "never run", None)));
        });
        let ct = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        ct.block_on(async { assert!(!t.run_in_place(cheap)) });
    }
}
