//! [`crate::Querier`] over one block.
//!
//! Series ids of a block are dense and in label order, so iterating the selected postings in
//! id order yields series sorted by labels with no sort.

use std::collections::BTreeSet;
use std::sync::Arc;

use roaring::RoaringBitmap;

use super::reader::Block;
use crate::api::Querier;
use crate::error::Result;
use crate::index::disk::ChunkMeta;
use crate::index::{postings_for_matchers, IndexReader};
use crate::labels::Label;
use crate::matcher::Matcher;
use crate::series::Series;

/// A querier over one block. Holds the block alive for as long as it lives.
#[derive(Clone, Debug)]
pub struct BlockQuerier {
    block: Arc<Block>,
}

impl BlockQuerier {
    /// A querier over `block`.
    pub fn new(block: Arc<Block>) -> Self {
        BlockQuerier { block }
    }

    /// The block.
    pub fn block(&self) -> &Arc<Block> {
        &self.block
    }

    /// True if the block may hold samples in the inclusive range `[mint_ms, maxt_ms]`.
    fn overlaps(&self, mint_ms: i64, maxt_ms: i64) -> bool {
        self.block.meta().overlaps(mint_ms, maxt_ms)
    }

    /// The selected ids whose series have a chunk overlapping `[mint_ms, maxt_ms]`, when the
    /// query range does not cover the whole block (otherwise every selected series qualifies).
    fn in_range(&self, ids: RoaringBitmap, mint_ms: i64, maxt_ms: i64) -> Result<RoaringBitmap> {
        let m = self.block.meta();
        if mint_ms <= m.min_time_ms && maxt_ms >= m.max_time_ms - 1 {
            return Ok(ids);
        }
        let mut out = RoaringBitmap::new();
        let (mut labels, mut chunks) = (Vec::new(), Vec::new());
        for id in ids {
            self.block.index().series_into(id, &mut labels, &mut chunks)?;
            if chunks.iter().any(|c| overlaps(c, mint_ms, maxt_ms)) {
                out.insert(id);
            }
        }
        Ok(out)
    }
}

fn overlaps(c: &ChunkMeta, mint_ms: i64, maxt_ms: i64) -> bool {
    c.min_t_ms <= maxt_ms && c.max_t_ms >= mint_ms
}

impl Querier for BlockQuerier {
    fn select(&self, matchers: &[Matcher], mint_ms: i64, maxt_ms: i64) -> Result<Vec<Series>> {
        if matchers.is_empty() || !self.overlaps(mint_ms, maxt_ms) {
            return Ok(Vec::new());
        }
        let ids = postings_for_matchers(self.block.as_ref(), matchers)?;
        let mut out = Vec::new();
        let (mut labels, mut metas): (Vec<Label>, Vec<ChunkMeta>) = (Vec::new(), Vec::new());
        for id in ids {
            self.block.index().series_into(id, &mut labels, &mut metas)?;
            let mut chunks = Vec::new();
            for m in metas.iter().filter(|c| overlaps(c, mint_ms, maxt_ms)) {
                chunks.push(self.block.chunk(m)?);
            }
            if chunks.is_empty() {
                continue;
            }
            out.push(Series {
                labels: crate::labels::Labels::from_sorted_unchecked(std::mem::take(&mut labels)),
                chunks,
                mint_ms,
                maxt_ms,
            });
        }
        Ok(out)
    }

    fn label_names(&self, matchers: &[Matcher], mint_ms: i64, maxt_ms: i64) -> Result<Vec<String>> {
        if !self.overlaps(mint_ms, maxt_ms) {
            return Ok(Vec::new());
        }
        if matchers.is_empty() {
            return self.block.label_names();
        }
        let ids = self.in_range(postings_for_matchers(self.block.as_ref(), matchers)?, mint_ms, maxt_ms)?;
        let mut names = BTreeSet::new();
        let (mut labels, mut chunks) = (Vec::new(), Vec::new());
        for id in ids {
            self.block.index().series_into(id, &mut labels, &mut chunks)?;
            for l in &labels {
                if !names.contains(&l.name) {
                    names.insert(l.name.clone());
                }
            }
        }
        Ok(names.into_iter().collect())
    }

    fn label_values(&self, name: &str, matchers: &[Matcher], mint_ms: i64, maxt_ms: i64) -> Result<Vec<String>> {
        if !self.overlaps(mint_ms, maxt_ms) {
            return Ok(Vec::new());
        }
        if matchers.is_empty() {
            return self.block.label_values(name);
        }
        let ids = self.in_range(postings_for_matchers(self.block.as_ref(), matchers)?, mint_ms, maxt_ms)?;
        let mut out = Vec::new();
        for v in self.block.label_values(name)? {
            if !self.block.postings(name, &v)?.is_disjoint(&ids) {
                out.push(v);
            }
        }
        Ok(out)
    }
}
