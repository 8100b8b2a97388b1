//! [`LabelTable`]: one shard of the head's series-by-label-hash map.
//!
//! Open addressing with linear probing over `(hash, series)` slots of 16 bytes, so a lookup is
//! usually one cache miss (hashbrown keeps control bytes and entries apart: two misses per
//! probe, which dominated the label-set append path). Series whose label sets hash alike sit
//! in the same probe run; the caller tells them apart by comparing labels. Removal uses
//! backward-shift deletion (no tombstones), so probe runs stay as short as the load allows.
//! The load factor is kept at or below 3/4.

use std::sync::Arc;

use super::series::MemSeries;

/// Slots of a new, empty table.
const MIN_SLOTS: usize = 16;

/// Series by the 64-bit hash of their labels (see the module doc).
pub(crate) struct LabelTable {
    /// Power-of-two many slots; `None` is empty.
    slots: Vec<Option<(u64, Arc<MemSeries>)>>,
    len: usize,
}

impl LabelTable {
    pub(crate) fn new() -> Self {
        LabelTable { slots: Vec::new(), len: 0 }
    }

    #[inline]
    fn mask(&self) -> usize {
        self.slots.len() - 1
    }

    /// The first series with label hash `hash` for which `matches` holds.
    #[inline]
    pub(crate) fn find(&self, hash: u64, mut matches: impl FnMut(&MemSeries) -> bool) -> Option<&Arc<MemSeries>> {
        if self.slots.is_empty() {
            return None;
        }
        let mask = self.mask();
        let mut i = hash as usize & mask;
        loop {
            match &self.slots[i] {
                None => return None,
                Some((h, s)) if *h == hash && matches(s) => return Some(s),
                Some(_) => i = (i + 1) & mask,
            }
        }
    }

    /// Adds `s` under `hash` (the caller has checked that its labels are not present).
    pub(crate) fn insert(&mut self, hash: u64, s: Arc<MemSeries>) {
        if (self.len + 1) * 4 > self.slots.len() * 3 {
            self.grow();
        }
        self.place(hash, s);
        self.len += 1;
    }

    fn place(&mut self, hash: u64, s: Arc<MemSeries>) {
        let mask = self.mask();
        let mut i = hash as usize & mask;
        while self.slots[i].is_some() {
            i = (i + 1) & mask;
        }
        self.slots[i] = Some((hash, s));
    }

    fn grow(&mut self) {
        let n = (self.slots.len() * 2).max(MIN_SLOTS);
        let old = std::mem::replace(&mut self.slots, (0..n).map(|_| None).collect());
        for (h, s) in old.into_iter().flatten() {
            self.place(h, s);
        }
    }

    /// Removes series `id` stored under `hash`; returns whether it was there.
    pub(crate) fn remove(&mut self, hash: u64, id: u32) -> bool {
        if self.slots.is_empty() {
            return false;
        }
        let mask = self.mask();
        let mut i = hash as usize & mask;
        loop {
            match &self.slots[i] {
                None => return false,
                Some((h, s)) if *h == hash && s.id == id => break,
                Some(_) => i = (i + 1) & mask,
            }
        }
        self.slots[i] = None;
        self.len -= 1;
        // Backward shift: move later members of the run into the hole unless their home slot
        // lies cyclically in (hole, j], where they already are reachable.
        let mut j = i;
        loop {
            j = (j + 1) & mask;
            let Some((h, _)) = &self.slots[j] else { return true };
            let home = *h as usize & mask;
            let reachable = if i <= j { i < home && home <= j } else { i < home || home <= j };
            if !reachable {
                self.slots[i] = self.slots[j].take();
                i = j;
            }
        }
    }

    /// Number of series held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Resident bytes of the slots.
    pub(crate) fn memory_bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<Option<(u64, Arc<MemSeries>)>>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Random inserts and removals with colliding and clustered hashes, checked against a
    /// plain list after every step.
    #[test]
    fn matches_a_model_under_collisions_and_removal() {
        let mut t = LabelTable::new();
        let mut model: Vec<(u64, u32)> = Vec::new();
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut id = 0u32;
        for step in 0..20_000 {
            let r = next();
            // Few distinct hashes, many sharing low bits: long runs and equal keys.
            let hash = (r % 64) | ((r % 3) << 40);
            if r % 5 < 3 || model.is_empty() {
                id += 1;
                t.insert(hash, Arc::new(MemSeries::new(id, Box::new([]), 0)));
                model.push((hash, id));
            } else {
                let k = (next() % model.len() as u64) as usize;
                let (h, i) = model.swap_remove(k);
                assert!(t.remove(h, i), "step {step}: series {i} present");
                assert!(!t.remove(h, i), "step {step}: removed once");
            }
            assert_eq!(t.len(), model.len());
            if step % 97 == 0 {
                for &(h, i) in &model {
                    assert_eq!(t.find(h, |s| s.id == i).map(|s| s.id), Some(i), "step {step}");
                }
                assert!(t.find(1 << 50, |_| true).is_none());
            }
        }
    }
}
