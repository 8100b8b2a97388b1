//! [`MemIndex`]: the head's in-memory postings index.
//!
//! For each `name=value` pair of the head it keeps a `RoaringBitmap` of the series ids carrying
//! it, for each label name the sorted set of its values (so that prefix regexes range-scan),
//! and the set of all series ids.
//!
//! # Concurrency
//! Many appender threads create series at once, so no lock is global:
//! - postings live in [`POSTINGS_SHARDS`] hash maps keyed by the pair's symbol ids and sharded
//!   by a hash of them; adding a series takes one shard's write lock per label, briefly;
//! - the sorted values of a name live in [`NAME_SHARDS`] maps sharded by the name's symbol id;
//!   they are written only when a pair is created or emptied, which is rare once a head is warm;
//! - the all-series set is split in [`ALL_SHARDS`] bitmaps by `(series_id >> 16) % ALL_SHARDS`:
//!   each roaring container (65,536 ids) lives whole in one shard, so the union that
//!   negative matchers start from moves containers instead of merging them.
//!
//! Readers take each lock briefly and receive owned bitmaps (snapshots): a series added while a
//! query runs may or may not be seen, which is what a head appending concurrently promises
//! (Prometheus' `MemPostings` gives the same guarantee with one global lock).
//!
//! Label strings are interned in the shared [`Symbols`]; the index holds only ids and borrowed
//! `&str`s into the symbol table, which it keeps alive through its `Arc`.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::Arc;

use parking_lot::RwLock;
use roaring::{MultiOps, RoaringBitmap};
use xxhash_rust::xxh3::Xxh3DefaultBuilder;

use super::symbols::Symbols;
use super::IndexReader;
use crate::error::Result;
use crate::labels::Labels;

/// Shards of the postings maps (by pair hash).
pub const POSTINGS_SHARDS: usize = 64;
/// Shards of the per-name sorted value sets (by name id).
pub const NAME_SHARDS: usize = 16;
/// Shards of the all-series set (by series id).
pub const ALL_SHARDS: usize = 16;

type PostingsShard = HashMap<u64, MemPostings, Xxh3DefaultBuilder>;

/// One pair's series ids. Many pairs belong to a single series (a pod name, a container id),
/// and a roaring bitmap costs two heap allocations and ~100 bytes even for one id, so a single
/// id is kept inline.
#[derive(Clone, Debug)]
enum MemPostings {
    One(u32),
    Many(Box<RoaringBitmap>),
}

impl MemPostings {
    fn insert(&mut self, id: u32) {
        match self {
            MemPostings::One(x) if *x == id => {}
            MemPostings::One(x) => {
                let mut bm = RoaringBitmap::new();
                bm.insert(*x);
                bm.insert(id);
                *self = MemPostings::Many(Box::new(bm));
            }
            MemPostings::Many(bm) => {
                bm.insert(id);
            }
        }
    }

    /// Removes `deleted`; returns true if nothing is left.
    fn remove_all(&mut self, deleted: &RoaringBitmap) -> bool {
        match self {
            MemPostings::One(x) => deleted.contains(*x),
            MemPostings::Many(bm) => {
                **bm -= deleted;
                match bm.len() {
                    0 => true,
                    1 => {
                        *self = MemPostings::One(bm.min().unwrap_or_default());
                        false
                    }
                    _ => false,
                }
            }
        }
    }

    fn len(&self) -> u64 {
        match self {
            MemPostings::One(_) => 1,
            MemPostings::Many(bm) => bm.len(),
        }
    }

    fn to_bitmap(&self) -> RoaringBitmap {
        match self {
            MemPostings::One(x) => {
                let mut bm = RoaringBitmap::new();
                bm.insert(*x);
                bm
            }
            MemPostings::Many(bm) => (**bm).clone(),
        }
    }

    /// Heap bytes beyond the map entry.
    fn heap_bytes(&self) -> usize {
        match self {
            MemPostings::One(_) => 0,
            // Box + bitmap header + containers; serialized size tracks the container payload.
            MemPostings::Many(bm) => 24 + 48 + bm.serialized_size(),
        }
    }
}
/// Name id -> (value string -> value id), sorted by value bytes. The `&'static str`s borrow from
/// the index's `Arc<Symbols>` (see `MemIndex::static_str`).
type NameShard = HashMap<u32, BTreeMap<&'static str, u32>, Xxh3DefaultBuilder>;

#[inline]
fn pair_key(name: u32, value: u32) -> u64 {
    (u64::from(name) << 32) | u64::from(value)
}

#[inline]
fn postings_shard_of(key: u64) -> usize {
    // Fibonacci hashing: the top bits of key × 2^64/φ are well mixed.
    (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 58) as usize % POSTINGS_SHARDS
}

#[inline]
fn all_shard_of(series_id: u32) -> usize {
    (series_id >> 16) as usize % ALL_SHARDS
}

/// The head's postings index. `Send + Sync`; share it as `Arc<MemIndex>`.
pub struct MemIndex {
    postings: Box<[RwLock<PostingsShard>]>,
    names: Box<[RwLock<NameShard>]>,
    all: Box<[RwLock<RoaringBitmap>]>,
    /// Declared last so it is dropped after the maps that borrow its strings.
    symbols: Arc<Symbols>,
}

impl std::fmt::Debug for MemIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemIndex").field("series", &self.num_series()).finish()
    }
}

impl MemIndex {
    /// An empty index interning into `symbols` (shared with the head's series).
    pub fn new(symbols: Arc<Symbols>) -> Self {
        MemIndex {
            postings: (0..POSTINGS_SHARDS).map(|_| RwLock::new(PostingsShard::default())).collect(),
            names: (0..NAME_SHARDS).map(|_| RwLock::new(NameShard::default())).collect(),
            all: (0..ALL_SHARDS).map(|_| RwLock::new(RoaringBitmap::new())).collect(),
            symbols,
        }
    }

    /// The symbol table the index interns into.
    pub fn symbols(&self) -> &Arc<Symbols> {
        &self.symbols
    }

    /// `id`'s string with the lifetime of the symbol table, which outlives every map of `self`.
    fn static_str(&self, id: u32) -> &'static str {
        let s = self.symbols.resolve(id).expect("ids come from this index's symbol table");
        // SAFETY: `Symbols` never frees or moves a string while it lives, and `self` holds an
        // `Arc` to it that is dropped after the maps holding this reference (field order), and
        // the reference never escapes `self` with a longer lifetime than `&self`.
        unsafe { &*(s as *const str) }
    }

    /// Indexes series `series_id` under each of its labels (interning names and values).
    /// Adding an id twice is harmless.
    pub fn add(&self, series_id: u32, labels: &Labels) {
        for l in labels {
            let n = self.symbols.intern(&l.name);
            let v = self.symbols.intern(&l.value);
            self.add_pair(series_id, n, v);
        }
        self.all[all_shard_of(series_id)].write().insert(series_id);
    }

    /// Indexes series `series_id` under already interned `(name_id, value_id)` pairs (ids from
    /// [`MemIndex::symbols`]). For callers that keep series labels as symbol ids (WAL replay).
    ///
    /// # Panics
    /// If an id was not issued by this index's symbol table (a caller bug).
    pub fn add_interned(&self, series_id: u32, pairs: &[(u32, u32)]) {
        for &(n, v) in pairs {
            self.add_pair(series_id, n, v);
        }
        self.all[all_shard_of(series_id)].write().insert(series_id);
    }

    fn add_pair(&self, series_id: u32, n: u32, v: u32) {
        let key = pair_key(n, v);
        let created = {
            let mut shard = self.postings[postings_shard_of(key)].write();
            match shard.get_mut(&key) {
                Some(p) => {
                    p.insert(series_id);
                    false
                }
                None => {
                    shard.insert(key, MemPostings::One(series_id));
                    true
                }
            }
        };
        if created {
            let value = self.static_str(v);
            self.names[n as usize % NAME_SHARDS].write().entry(n).or_default().insert(value, v);
        }
    }

    /// Removes `deleted` series ids from every postings list (head garbage collection). Pairs
    /// left without series disappear, with their value from the name's value set. Scans every
    /// pair; prefer [`MemIndex::delete_affected`] when the deleted series' labels are known.
    pub fn delete(&self, deleted: &RoaringBitmap) {
        let keys: Vec<u64> = self.postings.iter().flat_map(|s| s.read().keys().copied().collect::<Vec<_>>()).collect();
        self.delete_keys(deleted, keys);
    }

    /// Removes `deleted` series ids, touching only the `affected` `(name_id, value_id)` pairs
    /// (the union of the deleted series' labels, as symbol ids).
    pub fn delete_affected(&self, deleted: &RoaringBitmap, affected: impl IntoIterator<Item = (u32, u32)>) {
        let keys: Vec<u64> = affected.into_iter().map(|(n, v)| pair_key(n, v)).collect();
        self.delete_keys(deleted, keys);
    }

    fn delete_keys(&self, deleted: &RoaringBitmap, mut keys: Vec<u64>) {
        keys.sort_unstable_by_key(|k| (postings_shard_of(*k), *k));
        keys.dedup();
        let mut emptied = Vec::new();
        for group in keys.chunk_by(|a, b| postings_shard_of(*a) == postings_shard_of(*b)) {
            let mut shard = self.postings[postings_shard_of(group[0])].write();
            for k in group {
                if let Some(p) = shard.get_mut(k) {
                    if p.remove_all(deleted) {
                        shard.remove(k);
                        emptied.push(*k);
                    }
                }
            }
        }
        for k in emptied {
            let (n, v) = ((k >> 32) as u32, k as u32);
            let mut names = self.names[n as usize % NAME_SHARDS].write();
            // Re-check under the name lock: a concurrent add may have re-created the pair.
            if self.postings[postings_shard_of(k)].read().contains_key(&k) {
                continue;
            }
            if let Some(values) = names.get_mut(&n) {
                values.remove(self.static_str(v));
                if values.is_empty() {
                    names.remove(&n);
                }
            }
        }
        for shard in self.all.iter() {
            *shard.write() -= deleted;
        }
    }

    /// Number of series in the index.
    pub fn num_series(&self) -> u64 {
        self.all.iter().map(|s| s.read().len()).sum()
    }

    /// Number of `name=value` pairs.
    pub fn num_pairs(&self) -> usize {
        self.postings.iter().map(|s| s.read().len()).sum()
    }

    /// Estimated resident bytes of the postings, the value sets and the all-series set (not the
    /// symbol table: see [`Symbols::memory_bytes`]).
    pub fn memory_bytes(&self) -> usize {
        // Per pair: map entry (8 key + 16 postings + 1 control byte) and the bitmap's heap.
        let postings: usize = self
            .postings
            .iter()
            .map(|s| {
                let g = s.read();
                g.capacity() * 25 + g.values().map(MemPostings::heap_bytes).sum::<usize>()
            })
            .sum();
        // Per value: a B-tree slot (16 key + 4 value) with ~50% node fill.
        let names: usize = self.names.iter().map(|s| s.read().values().map(|m| m.len() * 40 + 64).sum::<usize>()).sum();
        let all: usize = self.all.iter().map(|s| s.read().serialized_size()).sum();
        postings + names + all
    }

    fn lookup_pair(&self, name: &str, value: &str) -> Option<u64> {
        Some(pair_key(self.symbols.lookup(name)?, self.symbols.lookup(value)?))
    }
}

impl IndexReader for MemIndex {
    fn postings(&self, name: &str, value: &str) -> Result<RoaringBitmap> {
        let Some(key) = self.lookup_pair(name, value) else {
            return Ok(RoaringBitmap::new());
        };
        Ok(self.postings[postings_shard_of(key)].read().get(&key).map(MemPostings::to_bitmap).unwrap_or_default())
    }

    fn postings_len(&self, name: &str, value: &str) -> Result<u64> {
        let Some(key) = self.lookup_pair(name, value) else {
            return Ok(0);
        };
        Ok(self.postings[postings_shard_of(key)].read().get(&key).map_or(0, MemPostings::len))
    }

    fn visit_values(&self, name: &str, prefix: &str, f: &mut dyn FnMut(&str)) -> Result<()> {
        let Some(n) = self.symbols.lookup(name) else {
            return Ok(());
        };
        let names = self.names[n as usize % NAME_SHARDS].read();
        if let Some(values) = names.get(&n) {
            for (v, _) in values.range::<str, _>((Bound::Included(prefix), Bound::Unbounded)) {
                if !v.starts_with(prefix) {
                    break;
                }
                f(v);
            }
        }
        Ok(())
    }

    fn postings_matching(&self, name: &str, prefix: &str, pred: &mut dyn FnMut(&str) -> bool) -> Result<RoaringBitmap> {
        let Some(n) = self.symbols.lookup(name) else {
            return Ok(RoaringBitmap::new());
        };
        // Matching value ids first (under the name lock), then their postings (pair locks):
        // the two kinds of lock are never held together, as in `add`.
        let mut ids = Vec::new();
        {
            let names = self.names[n as usize % NAME_SHARDS].read();
            if let Some(values) = names.get(&n) {
                for (v, &id) in values.range::<str, _>((Bound::Included(prefix), Bound::Unbounded)) {
                    if !v.starts_with(prefix) {
                        break;
                    }
                    if pred(v) {
                        ids.push(id);
                    }
                }
            }
        }
        let mut parts = Vec::with_capacity(ids.len());
        for v in ids {
            let key = pair_key(n, v);
            if let Some(p) = self.postings[postings_shard_of(key)].read().get(&key) {
                parts.push(p.to_bitmap());
            }
        }
        Ok(parts.union())
    }

    fn label_names(&self) -> Result<Vec<String>> {
        let mut out: Vec<String> = self
            .names
            .iter()
            .flat_map(|s| s.read().keys().map(|&n| self.static_str(n).to_string()).collect::<Vec<_>>())
            .collect();
        out.sort_unstable();
        Ok(out)
    }

    fn all_postings(&self) -> Result<RoaringBitmap> {
        let parts: Vec<RoaringBitmap> = self.all.iter().map(|s| s.read().clone()).collect();
        Ok(parts.union())
    }

    fn postings_union(&self, name: &str, values: &[&str]) -> Result<RoaringBitmap> {
        let Some(n) = self.symbols.lookup(name) else {
            return Ok(RoaringBitmap::new());
        };
        let mut parts = Vec::with_capacity(values.len());
        for v in values {
            let Some(v) = self.symbols.lookup(v) else { continue };
            let key = pair_key(n, v);
            if let Some(p) = self.postings[postings_shard_of(key)].read().get(&key) {
                parts.push(p.to_bitmap());
            }
        }
        Ok(parts.union())
    }
}
