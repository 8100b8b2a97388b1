//! [`Symbols`]: the head's concurrent string interner.
//!
//! Every label name and value of the head is stored once and named by a `u32` id. Ids are
//! stable for the life of the [`Symbols`] (the life of the head): nothing is ever removed, so a
//! series may hold ids instead of strings (8 bytes per label instead of two `String`s).
//!
//! # Design
//! The table is split into [`SHARDS`] shards chosen by the xxh3 hash of the string, each behind
//! its own `RwLock`, so appender threads interning different strings rarely meet on a lock, and
//! the common case (the string is already known) takes only a read lock. An id encodes its
//! shard in its low [`SHARD_BITS`] bits and the index inside the shard in the rest, so resolving
//! an id is a shard pick, a read lock and a vector index.
//!
//! Each string lives in its own heap allocation (`Box<str>`) that never moves or is freed
//! before the table is dropped, which is what lets [`Symbols::resolve`] hand out a `&str`
//! borrowed from `&self` after the shard lock is released.

use std::collections::HashMap;

use parking_lot::RwLock;
use xxhash_rust::xxh3::{xxh3_64, Xxh3DefaultBuilder};

/// Number of low id bits that name the shard.
pub const SHARD_BITS: u32 = 6;
/// Number of shards (64): enough that 2 × cores appender threads rarely collide.
pub const SHARDS: usize = 1 << SHARD_BITS;
/// Strings per shard before ids would overflow `u32` (2^26 ≈ 67M; 4.3G symbols in total).
const MAX_PER_SHARD: usize = 1 << (32 - SHARD_BITS);

#[derive(Default)]
struct Shard {
    /// String -> id. The key borrows from `strings` (see the `SAFETY` notes below).
    map: HashMap<&'static str, u32, Xxh3DefaultBuilder>,
    /// Index inside the shard -> string. Append-only.
    strings: Vec<Box<str>>,
    /// Sum of the string lengths, bytes.
    string_bytes: usize,
}

/// A concurrent, append-only string interner with stable `u32` ids.
///
/// `Symbols` is `Send + Sync`; share it as `Arc<Symbols>`.
pub struct Symbols {
    shards: Box<[RwLock<Shard>]>,
}

impl Default for Symbols {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Symbols {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Symbols").field("len", &self.len()).finish()
    }
}

#[inline]
fn shard_of(s: &str) -> usize {
    (xxh3_64(s.as_bytes()) >> (64 - SHARD_BITS)) as usize
}

impl Symbols {
    /// An empty table.
    pub fn new() -> Self {
        Symbols { shards: (0..SHARDS).map(|_| RwLock::new(Shard::default())).collect() }
    }

    /// The id of `s`, adding it if new. Thread-safe; the same string always gets the same id.
    ///
    /// # Panics
    /// If one shard would exceed 2^26 strings (about 4.3 billion symbols in total), far beyond
    /// what a head can hold in memory.
    pub fn intern(&self, s: &str) -> u32 {
        let shard_idx = shard_of(s);
        let shard = &self.shards[shard_idx];
        if let Some(&id) = shard.read().map.get(s) {
            return id;
        }
        let mut g = shard.write();
        if let Some(&id) = g.map.get(s) {
            return id;
        }
        let local = g.strings.len();
        assert!(local < MAX_PER_SHARD, "symbol table shard full");
        let id = ((local as u32) << SHARD_BITS) | shard_idx as u32;
        let boxed: Box<str> = s.into();
        // SAFETY: the key points into the heap allocation of `boxed`, which is pushed into
        // `strings` below and never removed, mutated or dropped before `self` is dropped
        // (the map is dropped together with it). Moving the `Box` inside the vector does not
        // move its heap contents, so the reference stays valid for the life of the shard.
        let key: &'static str = unsafe { &*(boxed.as_ref() as *const str) };
        g.string_bytes += s.len();
        g.strings.push(boxed);
        g.map.insert(key, id);
        id
    }

    /// The id of `s` if it was interned, without adding it.
    pub fn lookup(&self, s: &str) -> Option<u32> {
        self.shards[shard_of(s)].read().map.get(s).copied()
    }

    /// The string of `id`, or `None` if no string has that id.
    pub fn resolve(&self, id: u32) -> Option<&str> {
        let shard = self.shards.get((id as usize) & (SHARDS - 1))?;
        let g = shard.read();
        let s: &str = g.strings.get((id >> SHARD_BITS) as usize)?;
        // SAFETY: `s` points into a `Box<str>` heap allocation that is never removed, mutated
        // or freed while `self` lives (the table is append-only), so it may outlive the guard.
        Some(unsafe { &*(s as *const str) })
    }

    /// Number of distinct strings.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.read().strings.len()).sum()
    }

    /// True if nothing was interned.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Estimated resident bytes of the table: string bytes plus the per-string overhead of the
    /// box, the allocator and the hash map entry.
    pub fn memory_bytes(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                let g = s.read();
                // Box<str> (16) + map entry (&str 16 + u32 4, padded to 24, + 1 control byte),
                // allocator rounding to 16 bytes on the string itself.
                g.string_bytes
                    + g.strings.capacity() * 16
                    + g.map.capacity() * 25
                    + g.strings.len() * 8
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn intern_is_idempotent_and_resolves() {
        let s = Symbols::new();
        let a = s.intern("job");
        let b = s.intern("instance");
        assert_ne!(a, b);
        assert_eq!(s.intern("job"), a);
        assert_eq!(s.resolve(a), Some("job"));
        assert_eq!(s.resolve(b), Some("instance"));
        assert_eq!(s.lookup("nope"), None);
        assert_eq!(s.lookup("job"), Some(a));
        assert_eq!(s.len(), 2);
        assert_eq!(s.resolve(u32::MAX), None);
        let e = s.intern("");
        assert_eq!(s.resolve(e), Some(""));
    }

    #[test]
    fn concurrent_interning_agrees() {
        let s = Arc::new(Symbols::new());
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let s = Arc::clone(&s);
                std::thread::spawn(move || {
                    (0..2000).map(|i| (i, s.intern(&format!("v{}", (i * 7 + t) % 1500)))).collect::<Vec<_>>()
                })
            })
            .collect();
        let results: Vec<_> = handles.into_iter().map(|h| h.join().expect("thread")).collect();
        assert_eq!(s.len(), 1500);
        for r in results {
            for (_, id) in r {
                let name = s.resolve(id).expect("resolves").to_string();
                assert_eq!(s.lookup(&name), Some(id));
            }
        }
    }
}
