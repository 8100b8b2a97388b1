//! Where a query is evaluated: directly on the request's task, in place on its thread, or on
//! the blocking pool.
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
//! So the placement ([`Placement`]) follows what the same query, as an instant query or as a
//! range of the same number of steps, cost the last time it ran:
//! - [`Placement::Direct`]: it took at most [`DIRECT_MAX`] and selected fewer than
//!   [`FAN_OUT_SERIES`] series: evaluated on the request's task itself. `block_in_place`
//!   hands the worker's core to another thread (a blocking thread is woken to run the
//!   worker), which costs about as much as such a query: `1+1` on a 2-core machine at load
//!   9, server CPU per request 118 -> 73 us, context switches 6.2 -> 1.9, median wall time
//!   270 -> 163 us.
//! - [`Placement::InPlace`]: at most [`INLINE_MAX`] and fewer than [`FAN_OUT_SERIES`]
//!   series: `tokio::task::block_in_place`, which hands the worker's other tasks to another
//!   thread.
//! - [`Placement::Pool`]: everything else, and every query the first time. A query that
//!   selected [`FAN_OUT_SERIES`] series or more decodes across the rayon pool anyway
//!   (hand-offs there too), and in place the thread that takes over the worker's tasks
//!   competes with the pool for the cores (`count_cpu_by_mode` instant, 704 series, 2 cores:
//!   p50 1445 -> 1780 us in place). Starting such a query on a rayon worker instead (so its
//!   parallel loops split on that worker's deque) was measured too and gained nothing:
//!   100k series, `topk_rss` instant 2.1 -> 2.6 ms, `count_cpu_by_mode` 9.8 -> 10.3 ms.
//! Dashboards re-run the same queries on every refresh, so their queries are the ones that
//! learn their placement.
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



/// Longest last evaluation (wall time) of a query that is then evaluated directly on the
/// request's task, without handing the worker's core over: 300 us (tokio's guidance is that
/// a task runs no longer than 10-100 us between awaits; a query this short delays the
/// worker's other tasks by about as long as the hand-off it saves would have taken).
pub const DIRECT_MAX: Duration = Duration::from_micros(300);

/// Number of slots of the cost table (4096 words, 32 KiB).
pub const SLOTS: usize = 4096;

/// Selections of this many series or more are decoded across the rayon pool (the engine's
/// `query::source` parallel-decode threshold, 256); such queries always go to the pool.
pub const FAN_OUT_SERIES: u64 = 256;

/// Bit of a slot's low word set when the query selected [`FAN_OUT_SERIES`] or more series.
const FANNED_OUT: u64 = 1 << 31;
/// The wall-time bits of a slot's low word, us.
const MICROS: u64 = FANNED_OUT - 1;

/// Queries evaluated other than on the blocking pool since the process started (all tables).
static IN_PLACE_RUNS: AtomicU64 = AtomicU64::new(0);

/// Number of queries evaluated other than on the blocking pool ([`Placement::Direct`] or
/// [`Placement::InPlace`]) since the process started.
pub fn in_place_runs() -> u64 {
    IN_PLACE_RUNS.load(Ordering::Relaxed)
}

/// Where a query is evaluated (see the module doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// On the request's task, without giving up the worker's core.
    Direct,
    /// On the request's thread, through `tokio::task::block_in_place`.
    InPlace,
    /// On tokio's blocking pool (`spawn_blocking`).
    Pool,
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

    /// Counts one query evaluated other than on the pool (for [`in_place_runs`]).
    pub fn count_in_place(&self) {
        IN_PLACE_RUNS.fetch_add(1, Ordering::Relaxed);
    }

    /// Where `key` is evaluated: by its last run's wall time and fan-out (see the module
    /// doc), and only off the pool on a multi-threaded tokio runtime (`block_in_place`
    /// panics on a current-thread one, and a direct run there would stall the only worker).
    pub fn placement(&self, key: u64) -> Placement {
        let Some((took, fanned_out)) = self.last(key) else { return Placement::Pool };
        let multi_thread = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        if !multi_thread || fanned_out || took > INLINE_MAX {
            Placement::Pool
        } else if took <= DIRECT_MAX {
            Placement::Direct
        } else {
            Placement::InPlace
        }
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
    fn placement_by_last_cost_fan_out_and_runtime() {
        let t = CostTable::default();
        let tiny = key(&t, "tiny", None);
        let cheap = key(&t, "cheap", None);
        let dear = key(&t, "dear", None);
        let wide = key(&t, "wide", None);
        let wide_dear = key(&t, "wide and dear", None);
        t.record(tiny, DIRECT_MAX, FAN_OUT_SERIES - 1);
        t.record(cheap, DIRECT_MAX + Duration::from_micros(1), FAN_OUT_SERIES - 1);
        t.record(dear, INLINE_MAX + Duration::from_millis(1), 1);
        t.record(wide, Duration::from_micros(10), FAN_OUT_SERIES);
        t.record(wide_dear, INLINE_MAX + Duration::from_millis(1), FAN_OUT_SERIES);
        assert_eq!(t.placement(tiny), Placement::Pool, "no runtime");
        let mt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).build().expect("runtime");
        mt.block_on(async {
            assert_eq!(t.placement(tiny), Placement::Direct);
            assert_eq!(t.placement(cheap), Placement::InPlace);
            assert_eq!(t.placement(wide), Placement::Pool);
            assert_eq!(t.placement(dear), Placement::Pool);
            assert_eq!(t.placement(wide_dear), Placement::Pool);
            assert_eq!(t.placement(key(&t, "never run", None)), Placement::Pool);
        });
        let ct = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        ct.block_on(async { assert_eq!(t.placement(tiny), Placement::Pool) });
    }
}
