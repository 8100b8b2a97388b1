//! [`IndexWriter`]: builds an index file (layout in the parent module doc).
//!
//! Series arrive one at a time in label order. Symbols must be written first but are known only
//! at the end, so series entries are buffered with provisional symbol ids (compact varints,
//! tens of bytes per series) and rewritten with the final, sorted refs in [`IndexWriter::write`].

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use roaring::RoaringBitmap;
use xxhash_rust::xxh3::Xxh3DefaultBuilder;

use super::{put_uvarint, put_varint, ChunkMeta, Cursor, MAGIC, VERSION};
use crate::error::{Result, StorageError};
use crate::labels::Labels;

/// Accumulates series (in label order) and writes the index file.
#[derive(Default)]
pub struct IndexWriter {
    /// Provisional symbol id by string.
    sym_ids: HashMap<String, u32, Xxh3DefaultBuilder>,
    /// String by provisional id.
    syms: Vec<String>,
    /// Series entries with provisional ids, back to back.
    entries: Vec<u8>,
    n_series: u32,
    /// Postings by provisional `(name << 32) | value`.
    postings: HashMap<u64, RoaringBitmap, Xxh3DefaultBuilder>,
    last: Option<Labels>,
}

impl IndexWriter {
    /// An empty writer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of series added so far.
    pub fn num_series(&self) -> u32 {
        self.n_series
    }

    fn sym(&mut self, s: &str) -> u32 {
        if let Some(&id) = self.sym_ids.get(s) {
            return id;
        }
        let id = self.syms.len() as u32;
        self.syms.push(s.to_string());
        self.sym_ids.insert(s.to_string(), id);
        id
    }

    /// Adds the next series; returns its id in the block (`0, 1, 2...`). `chunks` are sorted by
    /// `min_t_ms` here.
    ///
    /// # Panics
    /// If `labels` does not sort strictly after the previous series' labels, or more than
    /// `u32::MAX` series are added: both are bugs of the caller, which produces series from
    /// sorted sources.
    pub fn add_series(&mut self, labels: &Labels, chunks: &[ChunkMeta]) -> u32 {
        if let Some(last) = &self.last {
            assert!(last < labels, "series added out of label order: {last} then {labels}");
        }
        let id = self.n_series;
        self.n_series = self.n_series.checked_add(1).expect("at most u32::MAX series per block");
        put_uvarint(&mut self.entries, labels.len() as u64);
        for l in labels {
            let n = self.sym(&l.name);
            let v = self.sym(&l.value);
            put_uvarint(&mut self.entries, u64::from(n));
            put_uvarint(&mut self.entries, u64::from(v));
            let bm = self.postings.entry((u64::from(n) << 32) | u64::from(v)).or_default();
            // Ids grow, so this appends at the end of the bitmap.
            if bm.try_push(id).is_err() {
                bm.insert(id);
            }
        }
        let mut sorted = chunks.to_vec();
        sorted.sort_unstable();
        put_uvarint(&mut self.entries, sorted.len() as u64);
        let mut prev_max = 0i64;
        for (i, c) in sorted.iter().enumerate() {
            let d = if i == 0 { c.min_t_ms } else { c.min_t_ms.wrapping_sub(prev_max) };
            put_varint(&mut self.entries, d);
            put_uvarint(&mut self.entries, c.max_t_ms.wrapping_sub(c.min_t_ms) as u64);
            put_uvarint(&mut self.entries, c.chunk_ref);
            prev_max = c.max_t_ms;
        }
        self.last = Some(labels.clone());
        id
    }

    /// Writes the index file at `path` (created or truncated) and fsyncs it. Returns the file
    /// size in bytes.
    ///
    /// # Errors
    /// [`StorageError::Io`] if the file cannot be written.
    pub fn write(self, path: &Path) -> Result<u64> {
        let ctx = || format!("write index {}", path.display());
        let file = File::create(path).map_err(|e| StorageError::io(ctx(), e))?;
        let mut w = Out { w: BufWriter::with_capacity(1 << 20, file), pos: 0, crc: 0 };
        let io = |e| StorageError::io(ctx(), e);

        // Final refs: symbols sorted by bytes.
        let mut order: Vec<u32> = (0..self.syms.len() as u32).collect();
        order.sort_unstable_by(|a, b| self.syms[*a as usize].cmp(&self.syms[*b as usize]));
        let mut remap = vec![0u32; self.syms.len()];
        for (final_ref, &tmp) in order.iter().enumerate() {
            remap[tmp as usize] = final_ref as u32;
        }

        w.put(&MAGIC.to_le_bytes()).map_err(io)?;
        w.put(&[VERSION]).map_err(io)?;
        let mut toc = [(0u64, 0u64); 5];

        // 1. symbols
        w.begin();
        let start = w.pos;
        w.put(&(order.len() as u32).to_le_bytes()).map_err(io)?;
        let mut end = 0u32;
        for &tmp in &order {
            end += self.syms[tmp as usize].len() as u32;
            w.put(&end.to_le_bytes()).map_err(io)?;
        }
        for &tmp in &order {
            w.put(self.syms[tmp as usize].as_bytes()).map_err(io)?;
        }
        toc[0] = (start, w.pos - start);
        w.end().map_err(io)?;

        // 2. series, rewritten with final refs
        let mut rewritten = Vec::with_capacity(self.entries.len());
        let mut offsets = Vec::with_capacity(self.n_series as usize);
        let head_len = 4 + 8 * u64::from(self.n_series);
        let mut cur = Cursor::new(&self.entries);
        for _ in 0..self.n_series {
            offsets.push(head_len + rewritten.len() as u64);
            // The buffer was produced above, so decoding cannot fail.
            let n = cur.uvarint().expect("own buffer");
            put_uvarint(&mut rewritten, n);
            for _ in 0..n * 2 {
                let tmp = cur.uvarint().expect("own buffer");
                put_uvarint(&mut rewritten, u64::from(remap[tmp as usize]));
            }
            let nc = cur.uvarint().expect("own buffer");
            put_uvarint(&mut rewritten, nc);
            for _ in 0..nc {
                put_varint(&mut rewritten, cur.varint().expect("own buffer"));
                put_uvarint(&mut rewritten, cur.uvarint().expect("own buffer"));
                put_uvarint(&mut rewritten, cur.uvarint().expect("own buffer"));
            }
        }
        drop(self.entries);
        w.begin();
        let start = w.pos;
        w.put(&self.n_series.to_le_bytes()).map_err(io)?;
        for o in &offsets {
            w.put(&o.to_le_bytes()).map_err(io)?;
        }
        w.put(&rewritten).map_err(io)?;
        toc[1] = (start, w.pos - start);
        w.end().map_err(io)?;
        drop(rewritten);

        // 3. postings data, in (name_ref, value_ref) order
        let mut pairs: Vec<(u32, u32, RoaringBitmap)> = self
            .postings
            .into_iter()
            .map(|(k, bm)| (remap[(k >> 32) as usize], remap[(k & 0xffff_ffff) as usize], bm))
            .collect();
        pairs.sort_unstable_by_key(|p| (p.0, p.1));
        w.begin();
        let start = w.pos;
        let mut table = Vec::with_capacity(pairs.len());
        let mut buf = Vec::new();
        for (n, v, mut bm) in pairs {
            bm.optimize(); // run containers for the dense id ranges of a block
            buf.clear();
            bm.serialize_into(&mut buf).map_err(io)?;
            table.push((n, v, w.pos - start, buf.len() as u32));
            w.put(&buf).map_err(io)?;
        }
        toc[2] = (start, w.pos - start);
        w.end().map_err(io)?;

        // 4. postings table
        w.begin();
        let start = w.pos;
        w.put(&(table.len() as u32).to_le_bytes()).map_err(io)?;
        for &(n, v, off, len) in &table {
            w.put(&n.to_le_bytes()).map_err(io)?;
            w.put(&v.to_le_bytes()).map_err(io)?;
            w.put(&off.to_le_bytes()).map_err(io)?;
            w.put(&len.to_le_bytes()).map_err(io)?;
        }
        toc[3] = (start, w.pos - start);
        w.end().map_err(io)?;

        // 5. label names
        let mut names: Vec<(u32, u32, u32)> = Vec::new();
        for (i, &(n, ..)) in table.iter().enumerate() {
            match names.last_mut() {
                Some(last) if last.0 == n => last.2 += 1,
                _ => names.push((n, i as u32, 1)),
            }
        }
        w.begin();
        let start = w.pos;
        w.put(&(names.len() as u32).to_le_bytes()).map_err(io)?;
        for (n, first, count) in names {
            w.put(&n.to_le_bytes()).map_err(io)?;
            w.put(&first.to_le_bytes()).map_err(io)?;
            w.put(&count.to_le_bytes()).map_err(io)?;
        }
        toc[4] = (start, w.pos - start);
        w.end().map_err(io)?;

        // TOC and footer
        w.begin();
        for (off, len) in toc {
            w.put(&off.to_le_bytes()).map_err(io)?;
            w.put(&len.to_le_bytes()).map_err(io)?;
        }
        w.end().map_err(io)?;
        w.put(&[VERSION]).map_err(io)?;
        w.put(&MAGIC.to_le_bytes()).map_err(io)?;

        let size = w.pos;
        let file = w.w.into_inner().map_err(|e| io(e.into_error()))?;
        file.sync_all().map_err(io)?;
        Ok(size)
    }
}

/// A buffered file writer that tracks the position and a running CRC32C of the open section.
struct Out {
    w: BufWriter<File>,
    pos: u64,
    crc: u32,
}

impl Out {
    fn put(&mut self, b: &[u8]) -> std::io::Result<()> {
        self.crc = crc32c::crc32c_append(self.crc, b);
        self.pos += b.len() as u64;
        self.w.write_all(b)
    }

    fn begin(&mut self) {
        self.crc = 0;
    }

    /// Writes the section's checksum.
    fn end(&mut self) -> std::io::Result<()> {
        let crc = self.crc;
        self.put(&crc.to_le_bytes())
    }
}
