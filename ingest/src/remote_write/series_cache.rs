//! A process-wide map from a series' label bytes as they arrive on the wire to the storage
//! series ref they resolved to, so that a known series costs one hash and one map probe instead
//! of label validation, a [`storage::Labels`] build (two `String`s per label) and the head's
//! lookup by labels.
//!
//! # Why it pays
//! Prometheus' queue manager sends every sample as its own `TimeSeries` with its full label
//! set: a 2,000-sample request is about 2,000 label sets, almost all of them known. Profiling
//! the receiver (100k series, 1.0) put over 40% of its CPU in per-series label work: UTF-8 and
//! name checks, the `Labels` allocations and frees, and the head's hash-and-compare lookup.
//!
//! # Key
//! 1.0: the raw bytes of the series' `Label` fields (from the first label's tag to the end of
//! the last label; equal bytes mean equal labels, whatever else lies between them). 2.0: the
//! resolved symbol strings of `labels_refs`, each length-prefixed (the refs themselves are only
//! meaningful within one request). The version is hashed in, so the two never mix.
//!
//! The map keeps 128 bits of hash per series and not the bytes (at 1M series the bytes would
//! cost more than the head's own label table): two xxh3 hashes of the bytes, one of them
//! salted with a per-process random prefix, so that their 64-bit halves are independent. Two
//! distinct label sets thus share a key with probability about 2^-128 per pair, and the map
//! trusts a matching key. (A sender crafting a collision gains nothing: it could as well write
//! to the other series by its labels. SipHash was measured instead of the salted half: 9% of
//! the receiver's CPU against 5%.)
//!
//! # Validity
//! An entry is only made after the labels passed validation under the receiver's [`Limits`]
//! and the appender resolved them to a ref, so a hit skips both. One cache serves one storage
//! and one set of limits (the server's receiver owns one). Refs never name another series in
//! the head's lifetime (ids are not reused), but the head may drop a series (head truncation,
//! GC): the appender then answers `UnknownSeriesRef` and ingestion evicts the entry and
//! resolves the labels again.
//!
//! # Bounds
//! At most `max_entries` (default [`SeriesCache::DEFAULT_MAX_ENTRIES`]); a shard that reaches
//! its share is cleared, which costs only re-resolution of its series. About 32 bytes per entry.
//!
//! [`Limits`]: crate::remote_write::Limits

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
use std::sync::Mutex;

use storage::SeriesRef;

use crate::remote_write::content::ProtoVersion;

/// Shards of the map: one mutex each, so concurrent requests rarely meet (a probe holds it for
/// tens of nanoseconds).
const SHARDS: usize = 64;

/// A series' 128-bit key (see the module doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SeriesKey {
    salted: u64,
    xxh: u64,
}

impl std::hash::Hash for SeriesKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Already uniform: the map's hasher passes this word through.
        state.write_u64(self.salted);
    }
}

/// The key is already uniformly distributed: hash the map by its salted half as is.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is called (by `SeriesKey`'s `Hash`); fold anything else in anyway.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

type Shard = HashMap<SeriesKey, SeriesRef, BuildHasherDefault<PassThrough>>;

/// Label bytes → series ref, shared by every decoder of one receiver (see the module doc).
#[derive(Debug)]
pub struct SeriesCache {
    shards: Box<[Mutex<Shard>]>,
    per_shard_max: usize,
    /// Per-process random salt of the second hash.
    salt: [u8; 8],
}

impl Default for SeriesCache {
    fn default() -> Self {
        SeriesCache::new(SeriesCache::DEFAULT_MAX_ENTRIES)
    }
}

impl SeriesCache {
    /// Default bound on entries: 4Mi, four times the 1M active series the receiver is
    /// benchmarked at, about 128 MiB when full.
    pub const DEFAULT_MAX_ENTRIES: usize = 4 << 20;

    /// An empty cache holding at most `max_entries` series (at least one per shard).
    pub fn new(max_entries: usize) -> Self {
        SeriesCache {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            per_shard_max: (max_entries / SHARDS).max(1),
            salt: RandomState::new().hash_one(0x5eed_u64).to_le_bytes(),
        }
    }

    /// The key of label bytes `b` of a `version` request.
    #[inline]
    pub(crate) fn key(&self, version: ProtoVersion, b: &[u8]) -> SeriesKey {
        let tag: &[u8] = match version {
            ProtoVersion::V1 => b"1",
            ProtoVersion::V2 => b"2",
        };
        SeriesKey {
            salted: storage::labels::hash_pairs([(&self.salt[..], tag), (b, tag)]),
            xxh: storage::labels::hash_pairs([(b, tag)]),
        }
    }

    fn shard(&self, k: SeriesKey) -> std::sync::MutexGuard<'_, Shard> {
        // The xxh3 half picks the shard, the salted half the slot within it.
        let m = &self.shards[(k.xxh % SHARDS as u64) as usize];
        // A panic while holding the lock cannot leave the map inconsistent for our use (every
        // operation is a single std call): ignore poisoning.
        m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The ref cached for `k`.
    #[inline]
    pub(crate) fn get(&self, k: SeriesKey) -> Option<SeriesRef> {
        self.shard(k).get(&k).copied()
    }

    /// Remembers that `k` resolved to `r`.
    pub(crate) fn insert(&self, k: SeriesKey, r: SeriesRef) {
        let mut s = self.shard(k);
        if s.len() >= self.per_shard_max {
            s.clear();
        }
        s.insert(k, r);
    }

    /// Forgets `k` (its ref went stale).
    pub(crate) fn remove(&self, k: SeriesKey) {
        self.shard(k).remove(&k);
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|m| m.lock().unwrap_or_else(std::sync::PoisonError::into_inner).len()).sum()
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_separate_versions_and_bytes() {
        let c = SeriesCache::new(1024);
        let a = c.key(ProtoVersion::V1, b"abc");
        assert_eq!(a, c.key(ProtoVersion::V1, b"abc"));
        assert_ne!(a, c.key(ProtoVersion::V2, b"abc"));
        assert_ne!(a, c.key(ProtoVersion::V1, b"abd"));
    }

    #[test]
    fn insert_get_remove_and_bound() {
        let c = SeriesCache::new(SHARDS * 2);
        let keys: Vec<SeriesKey> = (0..1000u32).map(|i| c.key(ProtoVersion::V1, &i.to_le_bytes())).collect();
        for (i, k) in keys.iter().enumerate() {
            c.insert(*k, SeriesRef(i as u64));
        }
        // Never more than two per shard.
        assert!(c.len() <= SHARDS * 2, "{}", c.len());
        let last = *keys.last().unwrap();
        assert_eq!(c.get(last), Some(SeriesRef(999)));
        c.remove(last);
        assert_eq!(c.get(last), None);
    }
}
