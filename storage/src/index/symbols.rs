//! [`Symbols`]: the head's concurrent string interner.
//!
//! Every label name and value of the head is stored once and named by a `u32` id. Ids are
//! stable for the life of the [`Symbols`] (the life of the head): nothing is ever removed, so a
//! series may hold ids instead of strings (8 bytes per label instead of two `String`s).
//!
//! # Design
//! The table is split into [`SHARDS`] shards chosen by the xxh3 hash of the string. An id
//! encodes its shard in its low [`SHARD_BITS`] bits and its index inside the shard in the rest.
//! - Interning takes the shard's lock: a read lock when the string is known (the common case),
//!   the write lock to add it. Appender threads interning different strings rarely meet.
//! - Resolving an id takes no lock at all, because queries resolve every label of every
//!   selected series: each shard keeps its strings in an append-only table of slots, split in
//!   segments of doubling size (256, 512, ... slots) that are allocated once and never move.
//!   A slot holds a pointer to a length-prefixed copy of the string, published with a release
//!   store after the bytes are written; a reader loads it with acquire.
//!
//! Strings are freed only when the table is dropped, which is what lets [`Symbols::resolve`]
//! hand out a `&str` borrowed from `&self`.

use std::alloc::{alloc, dealloc, Layout};
use std::collections::HashMap;
use std::ptr;
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

use parking_lot::RwLock;
use xxhash_rust::xxh3::{xxh3_64, Xxh3DefaultBuilder};

/// Number of low id bits that name the shard.
pub const SHARD_BITS: u32 = 6;
/// Number of shards (64): enough that 2 × cores appender threads rarely collide.
pub const SHARDS: usize = 1 << SHARD_BITS;
/// Strings per shard before ids would overflow `u32` (2^26 ≈ 67M; 4.3G symbols in total).
const MAX_PER_SHARD: usize = 1 << (32 - SHARD_BITS);
/// Slots of the first segment (log2).
const FIRST_SEGMENT_BITS: u32 = 8;
/// Segments per shard: enough for `MAX_PER_SHARD` slots (256 × (2^19 − 1) ≥ 2^26).
const SEGMENTS: usize = 19;

/// Where local index `i` lives: (segment, slot in segment). Segment `k` holds
/// `2^(k + FIRST_SEGMENT_BITS)` slots and starts at local index `256 × (2^k − 1)`.
#[inline]
fn locate(i: usize) -> (usize, usize) {
    let x = i + (1 << FIRST_SEGMENT_BITS);
    let top = usize::BITS - 1 - x.leading_zeros();
    let k = (top - FIRST_SEGMENT_BITS) as usize;
    (k, x - (1 << top))
}

#[inline]
fn segment_len(k: usize) -> usize {
    1 << (k as u32 + FIRST_SEGMENT_BITS)
}

/// Layout of a stored string: a `u32` length, then the bytes.
#[inline]
fn string_layout(len: usize) -> Layout {
    Layout::from_size_align(4 + len, 4).expect("symbol length fits a layout")
}

struct Shard {
    /// String -> local index. Keys borrow the slot allocations (freed only in `Drop`).
    map: RwLock<HashMap<&'static str, u32, Xxh3DefaultBuilder>>,
    /// Segment `k`: null, or a leaked `Box<[AtomicPtr<u8>]>` of `segment_len(k)` slots, each
    /// null or a pointer to a length-prefixed string. Written only under the `map` write lock.
    segments: [AtomicPtr<AtomicPtr<u8>>; SEGMENTS],
    /// Number of strings (next local index).
    len: AtomicUsize,
    /// Sum of the string lengths, bytes.
    string_bytes: AtomicUsize,
}

impl Shard {
    fn new() -> Self {
        Shard {
            map: RwLock::new(HashMap::default()),
            segments: std::array::from_fn(|_| AtomicPtr::new(ptr::null_mut())),
            len: AtomicUsize::new(0),
            string_bytes: AtomicUsize::new(0),
        }
    }

    /// The string at local index `i`, if published.
    #[inline]
    fn get(&self, i: usize) -> Option<&str> {
        let (k, off) = locate(i);
        let seg = self.segments.get(k)?.load(Ordering::Acquire);
        if seg.is_null() {
            return None;
        }
        // SAFETY: a non-null segment pointer is a leaked allocation of `segment_len(k)` slots
        // that lives until `Drop`, and `off < segment_len(k)` by construction of `locate`.
        let slot = unsafe { &*seg.add(off) };
        let p = slot.load(Ordering::Acquire);
        if p.is_null() {
            return None;
        }
        // SAFETY: a non-null slot points to an allocation of `4 + len` bytes holding a `u32`
        // length then the bytes of a `&str`, fully written before the pointer was published with
        // a release store (paired with the acquire load above), never modified afterwards, and
        // freed only in `Drop`, after every borrow of `self` has ended.
        unsafe {
            let len = (p as *const u32).read() as usize;
            let bytes = std::slice::from_raw_parts(p.add(4), len);
            Some(std::str::from_utf8_unchecked(bytes))
        }
    }

    /// Appends `s` at local index `i` (the caller holds the `map` write lock, so it is the only
    /// writer) and returns the stored copy.
    fn push(&self, i: usize, s: &str) -> &'static str {
        let (k, off) = locate(i);
        let mut seg = self.segments[k].load(Ordering::Acquire);
        if seg.is_null() {
            let slots: Box<[AtomicPtr<u8>]> = (0..segment_len(k)).map(|_| AtomicPtr::new(ptr::null_mut())).collect();
            seg = Box::into_raw(slots) as *mut AtomicPtr<u8>;
            self.segments[k].store(seg, Ordering::Release);
        }
        let len = u32::try_from(s.len()).expect("a label is shorter than 4 GiB");
        // SAFETY: the layout has a non-zero size (at least the 4 length bytes).
        let p = unsafe { alloc(string_layout(s.len())) };
        if p.is_null() {
            std::alloc::handle_alloc_error(string_layout(s.len()));
        }
        // SAFETY: `p` is a fresh allocation of `4 + s.len()` bytes aligned to 4; we write the
        // length and the bytes inside it; `seg.add(off)` is in bounds as in `get`.
        let stored: &'static str = unsafe {
            (p as *mut u32).write(len);
            ptr::copy_nonoverlapping(s.as_ptr(), p.add(4), s.len());
            (*seg.add(off)).store(p, Ordering::Release);
            std::str::from_utf8_unchecked(std::slice::from_raw_parts(p.add(4), s.len()))
        };
        self.string_bytes.fetch_add(s.len(), Ordering::Relaxed);
        self.len.store(i + 1, Ordering::Release);
        stored
    }
}

impl Drop for Shard {
    fn drop(&mut self) {
        for (k, seg) in self.segments.iter().enumerate() {
            let seg = seg.load(Ordering::Acquire);
            if seg.is_null() {
                continue;
            }
            // SAFETY: `seg` came from `Box::into_raw` of a boxed slice of `segment_len(k)` slots;
            // we own it exclusively in `drop`, and each non-null slot is an allocation made with
            // `string_layout` of the length stored in its first four bytes.
            unsafe {
                let slots = Box::from_raw(ptr::slice_from_raw_parts_mut(seg, segment_len(k)));
                for slot in slots.iter() {
                    let p = slot.load(Ordering::Acquire);
                    if !p.is_null() {
                        let len = (p as *const u32).read() as usize;
                        dealloc(p, string_layout(len));
                    }
                }
            }
        }
    }
}

/// A concurrent, append-only string interner with stable `u32` ids.
///
/// `Symbols` is `Send + Sync`; share it as `Arc<Symbols>`.
pub struct Symbols {
    shards: Box<[Shard]>,
}

// SAFETY: the raw pointers in `Shard` are owned allocations that are written once (under the
// shard's write lock, published with release stores) and then only read; all shared mutation
// goes through atomics and the `RwLock`.
unsafe impl Send for Symbols {}
// SAFETY: as for `Send`.
unsafe impl Sync for Symbols {}

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
        Symbols { shards: (0..SHARDS).map(|_| Shard::new()).collect() }
    }

    /// The id of `s`, adding it if new. Thread-safe; the same string always gets the same id.
    ///
    /// # Panics
    /// If one shard would exceed 2^26 strings (about 4.3 billion symbols in total), far beyond
    /// what a head can hold in memory.
    pub fn intern(&self, s: &str) -> u32 {
        let shard_idx = shard_of(s);
        let shard = &self.shards[shard_idx];
        if let Some(&local) = shard.map.read().get(s) {
            return (local << SHARD_BITS) | shard_idx as u32;
        }
        let mut map = shard.map.write();
        if let Some(&local) = map.get(s) {
            return (local << SHARD_BITS) | shard_idx as u32;
        }
        let local = shard.len.load(Ordering::Acquire);
        assert!(local < MAX_PER_SHARD, "symbol table shard full");
        let stored = shard.push(local, s);
        map.insert(stored, local as u32);
        ((local as u32) << SHARD_BITS) | shard_idx as u32
    }

    /// The id of `s` if it was interned, without adding it.
    pub fn lookup(&self, s: &str) -> Option<u32> {
        let shard_idx = shard_of(s);
        self.shards[shard_idx].map.read().get(s).map(|&local| (local << SHARD_BITS) | shard_idx as u32)
    }

    /// The string of `id`, or `None` if no string has that id. Lock-free.
    #[inline]
    pub fn resolve(&self, id: u32) -> Option<&str> {
        self.shards.get((id as usize) & (SHARDS - 1))?.get((id >> SHARD_BITS) as usize)
    }

    /// Number of distinct strings.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.len.load(Ordering::Relaxed)).sum()
    }

    /// True if nothing was interned.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Estimated resident bytes of the table: string bytes plus, per string, its 4-byte length
    /// prefix and allocator rounding (~12 bytes), its slot (8) and its hash map entry (24 + 1
    /// control byte, at the map's capacity), plus the allocated segments.
    pub fn memory_bytes(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                let n = s.len.load(Ordering::Relaxed);
                let segs: usize = (0..SEGMENTS)
                    .filter(|&k| !s.segments[k].load(Ordering::Relaxed).is_null())
                    .map(|k| segment_len(k) * 8)
                    .sum();
                s.string_bytes.load(Ordering::Relaxed) + n * 12 + s.map.read().capacity() * 25 + segs
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
    fn locate_covers_segments_without_gaps() {
        assert_eq!(locate(0), (0, 0));
        assert_eq!(locate(255), (0, 255));
        assert_eq!(locate(256), (1, 0));
        assert_eq!(locate(767), (1, 511));
        assert_eq!(locate(768), (2, 0));
        let (k, off) = locate(MAX_PER_SHARD - 1);
        assert!(k < SEGMENTS && off < segment_len(k));
    }

    #[test]
    fn many_strings_across_segments_resolve() {
        let s = Symbols::new();
        let ids: Vec<u32> = (0..50_000).map(|i| s.intern(&format!("value-{i}"))).collect();
        for (i, id) in ids.iter().enumerate() {
            assert_eq!(s.resolve(*id), Some(format!("value-{i}").as_str()));
        }
        // An id in a shard's unallocated range resolves to nothing.
        assert_eq!(s.resolve(((MAX_PER_SHARD as u32) - 1) << SHARD_BITS), None);
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
