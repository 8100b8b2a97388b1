//! [`DiskIndex`]: reads an index file (layout in the parent module doc) in place, from a
//! memory map or any byte buffer.

use std::cmp::Ordering;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use roaring::{MultiOps, RoaringBitmap};

use super::{
    ChunkMeta, Cursor, FOOTER_LEN, HEADER_LEN, MAGIC, NAME_ENTRY_LEN, POSTINGS_ENTRY_LEN, TOC_LEN, VERSION,
};
use crate::error::{Result, StorageError};
use crate::index::IndexReader;
use crate::labels::{Label, Labels};

/// The shared bytes of an index file (usually a read-only memory map).
pub type IndexBytes = Arc<dyn AsRef<[u8]> + Send + Sync>;

/// A validated, read-only block index. Cheap to share (`Arc<DiskIndex>`); all reads are
/// bounds-checked slices of the underlying bytes.
pub struct DiskIndex {
    data: IndexBytes,
    path: PathBuf,
    sym_count: u32,
    /// Start of the `ends` array.
    sym_ends: usize,
    /// Start of the symbol bytes.
    sym_bytes: usize,
    series_count: u32,
    /// Start of section 2 (offsets are relative to it).
    series_start: usize,
    series_end: usize,
    postings_start: usize,
    postings_end: usize,
    table_count: u32,
    /// Start of the postings table entries.
    table_start: usize,
    names_count: u32,
    names_start: usize,
}

impl std::fmt::Debug for DiskIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskIndex").field("path", &self.path).field("series", &self.series_count).finish()
    }
}

#[inline]
fn le32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at.checked_add(4)?)?.try_into().ok()?))
}

#[inline]
fn le64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at.checked_add(8)?)?.try_into().ok()?))
}

impl DiskIndex {
    /// Validates `data` as an index file (see the module doc's Validation) and wraps it.
    /// `path` is used in error messages only.
    ///
    /// # Errors
    /// [`StorageError::UnsupportedVersion`] for another format version;
    /// [`StorageError::Corruption`] for a bad magic, checksum, or out-of-range table entry.
    pub fn open(data: IndexBytes, path: &Path) -> Result<DiskIndex> {
        let b: &[u8] = (*data).as_ref();
        let corrupt = |offset: usize, reason: &str| StorageError::Corruption {
            path: path.to_path_buf(),
            offset: offset as u64,
            reason: reason.to_string(),
        };
        if b.len() < HEADER_LEN + FOOTER_LEN {
            return Err(corrupt(0, "index file too short"));
        }
        if le32(b, 0) != Some(MAGIC) {
            return Err(corrupt(0, "bad index magic"));
        }
        if b[4] != VERSION {
            return Err(StorageError::UnsupportedVersion { path: path.to_path_buf(), version: b[4] });
        }
        let footer = b.len() - FOOTER_LEN;
        if le32(b, b.len() - 4) != Some(MAGIC) || b[b.len() - 5] != VERSION {
            return Err(corrupt(b.len() - 5, "bad index footer"));
        }
        let toc = &b[footer..footer + TOC_LEN];
        if le32(b, footer + TOC_LEN) != Some(crc32c::crc32c(toc)) {
            return Err(corrupt(footer, "index TOC checksum mismatch"));
        }
        let mut sections = [(0usize, 0usize); 5];
        for (i, s) in sections.iter_mut().enumerate() {
            let off = le64(toc, i * 16).ok_or_else(|| corrupt(footer, "short TOC"))?;
            let len = le64(toc, i * 16 + 8).ok_or_else(|| corrupt(footer, "short TOC"))?;
            let (off, len) = (usize::try_from(off), usize::try_from(len));
            let (Ok(off), Ok(len)) = (off, len) else { return Err(corrupt(footer, "TOC entry out of range")) };
            let end = off.checked_add(len).and_then(|e| e.checked_add(4));
            if off < HEADER_LEN || end.is_none_or(|e| e > footer) {
                return Err(corrupt(footer, "TOC entry out of range"));
            }
            if le32(b, off + len) != Some(crc32c::crc32c(&b[off..off + len])) {
                return Err(corrupt(off, "index section checksum mismatch"));
            }
            *s = (off, off + len);
        }
        let [sym, series, postings, table, names] = sections;

        // Symbols: ends are monotonic, symbols are UTF-8 and strictly ascending.
        let sym_count = le32(b, sym.0).ok_or_else(|| corrupt(sym.0, "short symbols"))?;
        let sym_ends = sym.0 + 4;
        let sym_bytes = (sym_count as usize).checked_mul(4).and_then(|n| n.checked_add(sym_ends));
        let sym_bytes = sym_bytes.filter(|&s| s <= sym.1).ok_or_else(|| corrupt(sym.0, "symbol count too large"))?;
        let mut prev: Option<&[u8]> = None;
        let mut start = 0usize;
        for i in 0..sym_count as usize {
            let end = le32(b, sym_ends + 4 * i).ok_or_else(|| corrupt(sym_ends, "short symbols"))? as usize;
            if end < start || sym_bytes + end > sym.1 {
                return Err(corrupt(sym_ends + 4 * i, "symbol offset out of range"));
            }
            let s = &b[sym_bytes + start..sym_bytes + end];
            if std::str::from_utf8(s).is_err() {
                return Err(corrupt(sym_bytes + start, "symbol is not UTF-8"));
            }
            if prev.is_some_and(|p| p >= s) {
                return Err(corrupt(sym_bytes + start, "symbols not sorted"));
            }
            prev = Some(s);
            start = end;
        }
        if sym_bytes + start != sym.1 {
            return Err(corrupt(sym.0, "symbol table length mismatch"));
        }

        // Series: offsets inside the section, ascending.
        let series_count = le32(b, series.0).ok_or_else(|| corrupt(series.0, "short series"))?;
        let head = (series_count as u64) * 8 + 4;
        if head > (series.1 - series.0) as u64 {
            return Err(corrupt(series.0, "series count too large"));
        }
        let mut prev_off = 0u64;
        for i in 0..series_count as usize {
            let o = le64(b, series.0 + 4 + 8 * i).ok_or_else(|| corrupt(series.0, "short series"))?;
            if o < head || o <= prev_off && i > 0 || o >= (series.1 - series.0) as u64 {
                return Err(corrupt(series.0 + 4 + 8 * i, "series offset out of range"));
            }
            prev_off = o;
        }

        // Postings table: sorted pairs, refs and ranges in bounds.
        let table_count = le32(b, table.0).ok_or_else(|| corrupt(table.0, "short postings table"))?;
        if (table_count as u64) * POSTINGS_ENTRY_LEN as u64 + 4 != (table.1 - table.0) as u64 {
            return Err(corrupt(table.0, "postings table length mismatch"));
        }
        let plen = (postings.1 - postings.0) as u64;
        let mut prev_pair: Option<(u32, u32)> = None;
        for i in 0..table_count as usize {
            let at = table.0 + 4 + POSTINGS_ENTRY_LEN * i;
            let bad = || corrupt(at, "postings table entry out of range");
            let (n, v) = (le32(b, at).ok_or_else(bad)?, le32(b, at + 4).ok_or_else(bad)?);
            let (off, len) = (le64(b, at + 8).ok_or_else(bad)?, le32(b, at + 16).ok_or_else(bad)?);
            if n >= sym_count || v >= sym_count || off.checked_add(u64::from(len)).is_none_or(|e| e > plen) {
                return Err(bad());
            }
            if prev_pair.is_some_and(|p| p >= (n, v)) {
                return Err(corrupt(at, "postings table not sorted"));
            }
            prev_pair = Some((n, v));
        }

        // Label names: sorted, each range inside the table and holding only its name.
        let names_count = le32(b, names.0).ok_or_else(|| corrupt(names.0, "short label names"))?;
        if (names_count as u64) * NAME_ENTRY_LEN as u64 + 4 != (names.1 - names.0) as u64 {
            return Err(corrupt(names.0, "label names length mismatch"));
        }
        let mut next_first = 0u32;
        for i in 0..names_count as usize {
            let at = names.0 + 4 + NAME_ENTRY_LEN * i;
            let bad = || corrupt(at, "label names entry out of range");
            let n = le32(b, at).ok_or_else(bad)?;
            let first = le32(b, at + 4).ok_or_else(bad)?;
            let count = le32(b, at + 8).ok_or_else(bad)?;
            // Entries tile the postings table in order, so name refs ascend with them.
            if first != next_first || count == 0 || first.checked_add(count).is_none_or(|e| e > table_count) {
                return Err(bad());
            }
            for j in [first, first + count - 1] {
                if le32(b, table.0 + 4 + POSTINGS_ENTRY_LEN * j as usize) != Some(n) {
                    return Err(bad());
                }
            }
            next_first = first + count;
        }
        if next_first != table_count {
            return Err(corrupt(names.0, "label names do not cover the postings table"));
        }

        Ok(DiskIndex {
            path: path.to_path_buf(),
            sym_count,
            sym_ends,
            sym_bytes,
            series_count,
            series_start: series.0,
            series_end: series.1,
            postings_start: postings.0,
            postings_end: postings.1,
            table_count,
            table_start: table.0 + 4,
            names_count,
            names_start: names.0 + 4,
            data,
        })
    }

    #[inline]
    fn b(&self) -> &[u8] {
        (*self.data).as_ref()
    }

    fn corrupt(&self, offset: usize, reason: &str) -> StorageError {
        StorageError::Corruption { path: self.path.clone(), offset: offset as u64, reason: reason.to_string() }
    }

    /// Number of series; their ids are `0..num_series()`.
    pub fn num_series(&self) -> u32 {
        self.series_count
    }

    /// Number of symbols.
    pub fn num_symbols(&self) -> u32 {
        self.sym_count
    }

    /// Symbol `r` (validated at open, so any `r < num_symbols()` resolves).
    ///
    /// # Errors
    /// [`StorageError::Corruption`] for a ref out of range.
    pub fn symbol(&self, r: u32) -> Result<&str> {
        if r >= self.sym_count {
            return Err(self.corrupt(self.sym_ends, "symbol ref out of range"));
        }
        let b = self.b();
        let start = if r == 0 { 0 } else { le32(b, self.sym_ends + 4 * (r as usize - 1)).unwrap_or(0) as usize };
        let end = le32(b, self.sym_ends + 4 * r as usize).unwrap_or(0) as usize;
        b.get(self.sym_bytes + start..self.sym_bytes + end)
            .and_then(|s| std::str::from_utf8(s).ok())
            .ok_or_else(|| self.corrupt(self.sym_ends, "symbol out of range"))
    }

    /// The ref of symbol `s`, by binary search.
    pub fn find_symbol(&self, s: &str) -> Option<u32> {
        let (mut lo, mut hi) = (0u32, self.sym_count);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.symbol(mid).ok()?.cmp(s) {
                Ordering::Less => lo = mid + 1,
                Ordering::Greater => hi = mid,
                Ordering::Equal => return Some(mid),
            }
        }
        None
    }

    /// `(name_ref, value_ref, offset, len)` of postings table entry `i < table_count`.
    fn entry(&self, i: u32) -> (u32, u32, u64, u32) {
        let at = self.table_start + POSTINGS_ENTRY_LEN * i as usize;
        let b = self.b();
        // In bounds: the table length was validated at open.
        (
            le32(b, at).unwrap_or(0),
            le32(b, at + 4).unwrap_or(0),
            le64(b, at + 8).unwrap_or(0),
            le32(b, at + 16).unwrap_or(0),
        )
    }

    /// The range of postings table entries of label `name`.
    fn name_range(&self, name: &str) -> Option<std::ops::Range<u32>> {
        let n = self.find_symbol(name)?;
        let b = self.b();
        let (mut lo, mut hi) = (0u32, self.names_count);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let at = self.names_start + NAME_ENTRY_LEN * mid as usize;
            let r = le32(b, at)?;
            match r.cmp(&n) {
                Ordering::Less => lo = mid + 1,
                Ordering::Greater => hi = mid,
                Ordering::Equal => {
                    let first = le32(b, at + 4)?;
                    return Some(first..first + le32(b, at + 8)?);
                }
            }
        }
        None
    }

    fn read_postings(&self, off: u64, len: u32) -> Result<RoaringBitmap> {
        let start = self.postings_start + off as usize;
        let bytes = self
            .b()
            .get(start..start + len as usize)
            .filter(|_| start + len as usize <= self.postings_end)
            .ok_or_else(|| self.corrupt(start, "postings out of range"))?;
        RoaringBitmap::deserialize_from(bytes).map_err(|e| self.corrupt(start, &format!("bad postings: {e}")))
    }

    /// The labels and chunk metas of series `id`.
    ///
    /// # Errors
    /// [`StorageError::Corruption`] if `id` is out of range or its entry does not decode.
    pub fn series(&self, id: u32) -> Result<(Labels, Vec<ChunkMeta>)> {
        let mut labels = Vec::new();
        let mut chunks = Vec::new();
        self.series_into(id, &mut labels, &mut chunks)?;
        Ok((Labels::from_sorted_unchecked(labels), chunks))
    }

    /// As [`DiskIndex::series`], filling caller-owned buffers (cleared first).
    ///
    /// # Errors
    /// As [`DiskIndex::series`].
    pub fn series_into(&self, id: u32, labels: &mut Vec<Label>, chunks: &mut Vec<ChunkMeta>) -> Result<()> {
        labels.clear();
        chunks.clear();
        if id >= self.series_count {
            return Err(self.corrupt(self.series_start, "series id out of range"));
        }
        let b = self.b();
        let off = le64(b, self.series_start + 4 + 8 * id as usize).unwrap_or(0) as usize;
        let at = self.series_start + off;
        let bad = || self.corrupt(at, "malformed series entry");
        let mut c = Cursor::new(b.get(at..self.series_end).ok_or_else(bad)?);
        let n = c.uvarint().ok_or_else(bad)?;
        for _ in 0..n {
            let name = u32::try_from(c.uvarint().ok_or_else(bad)?).map_err(|_| bad())?;
            let value = u32::try_from(c.uvarint().ok_or_else(bad)?).map_err(|_| bad())?;
            let l = Label::new(self.symbol(name)?, self.symbol(value)?);
            if l.value.is_empty() || labels.last().is_some_and(|p: &Label| p.name >= l.name) {
                return Err(bad());
            }
            labels.push(l);
        }
        let nc = c.uvarint().ok_or_else(bad)?;
        let mut prev_max = 0i64;
        for i in 0..nc {
            let d = c.varint().ok_or_else(bad)?;
            let min_t_ms = if i == 0 { d } else { prev_max.wrapping_add(d) };
            let max_t_ms = min_t_ms.wrapping_add(c.uvarint().ok_or_else(bad)? as i64);
            let chunk_ref = c.uvarint().ok_or_else(bad)?;
            chunks.push(ChunkMeta { min_t_ms, max_t_ms, chunk_ref });
            prev_max = max_t_ms;
        }
        Ok(())
    }
}

impl IndexReader for DiskIndex {
    fn postings(&self, name: &str, value: &str) -> Result<RoaringBitmap> {
        let (Some(range), Some(v)) = (self.name_range(name), self.find_symbol(value)) else {
            return Ok(RoaringBitmap::new());
        };
        let (mut lo, mut hi) = (range.start, range.end);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let (_, ev, off, len) = self.entry(mid);
            match ev.cmp(&v) {
                Ordering::Less => lo = mid + 1,
                Ordering::Greater => hi = mid,
                Ordering::Equal => return self.read_postings(off, len),
            }
        }
        Ok(RoaringBitmap::new())
    }

    fn visit_values(&self, name: &str, prefix: &str, f: &mut dyn FnMut(&str)) -> Result<()> {
        let Some(range) = self.name_range(name) else {
            return Ok(());
        };
        for i in self.prefix_start(range.clone(), prefix)?..range.end {
            let v = self.symbol(self.entry(i).1)?;
            if !v.starts_with(prefix) {
                break;
            }
            f(v);
        }
        Ok(())
    }

    fn postings_matching(&self, name: &str, prefix: &str, pred: &mut dyn FnMut(&str) -> bool) -> Result<RoaringBitmap> {
        let Some(range) = self.name_range(name) else {
            return Ok(RoaringBitmap::new());
        };
        let mut parts = Vec::new();
        for i in self.prefix_start(range.clone(), prefix)?..range.end {
            let (_, v, off, len) = self.entry(i);
            let v = self.symbol(v)?;
            if !v.starts_with(prefix) {
                break;
            }
            if pred(v) {
                parts.push(self.read_postings(off, len)?);
            }
        }
        Ok(parts.union())
    }

    fn label_names(&self) -> Result<Vec<String>> {
        let b = self.b();
        (0..self.names_count)
            .map(|i| {
                let r = le32(b, self.names_start + NAME_ENTRY_LEN * i as usize).unwrap_or(u32::MAX);
                self.symbol(r).map(str::to_string)
            })
            .collect()
    }

    fn all_postings(&self) -> Result<RoaringBitmap> {
        let mut all = RoaringBitmap::new();
        all.insert_range(0..self.series_count);
        Ok(all)
    }

    fn postings_len(&self, name: &str, value: &str) -> Result<u64> {
        Ok(self.postings(name, value)?.len())
    }
}

impl DiskIndex {
    /// The first entry of `range` (one name's entries) whose value is `>= prefix`. Values within
    /// a name ascend with their refs, hence with their strings.
    fn prefix_start(&self, range: std::ops::Range<u32>, prefix: &str) -> Result<u32> {
        let (mut lo, mut hi) = (range.start, range.end);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.symbol(self.entry(mid).1)? < prefix {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        Ok(lo)
    }

    /// Number of label pairs (postings lists).
    pub fn num_postings(&self) -> u32 {
        self.table_count
    }
}
