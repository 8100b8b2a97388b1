//! Byte layouts of the usage store's files (see the layout table in the parent module).

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::Path;

use super::MetricDayUsage;
use crate::encoding::{put_str, put_uvarint, put_varint, Reader};
use crate::error::{Result, StorageError};

/// Magic of `deltas.log`.
pub const LOG_MAGIC: &[u8; 4] = b"HUSL";
/// Magic of `<day>.sum`.
pub const SUM_MAGIC: &[u8; 4] = b"HUSS";
/// Version byte of both files.
pub const USAGE_FORMAT_VERSION: u8 = 1;

/// A decoded entry: day, metric, usage.
pub type Entry = (i64, String, MetricDayUsage);

pub fn put_entry(out: &mut Vec<u8>, day: i64, metric: &str, u: &MetricDayUsage) {
    put_uvarint(out, day.max(0) as u64);
    put_str(out, metric);
    put_uvarint(out, u.queries);
    put_uvarint(out, u.series);
    put_uvarint(out, u.samples);
    put_uvarint(out, u.duration_us);
    put_varint(out, u.last_t_ms);
    put_uvarint(out, u.labels.len() as u64);
    for l in &u.labels {
        put_str(out, l);
    }
    put_uvarint(out, u.clients.len() as u64);
    for (c, n) in &u.clients {
        put_str(out, c);
        put_uvarint(out, *n);
    }
}

fn read_entry(r: &mut Reader<'_>) -> Option<Entry> {
    let day = i64::try_from(r.uvarint()?).ok()?;
    let metric = r.str()?.to_string();
    let mut u = MetricDayUsage {
        queries: r.uvarint()?,
        series: r.uvarint()?,
        samples: r.uvarint()?,
        duration_us: r.uvarint()?,
        last_t_ms: r.varint()?,
        ..Default::default()
    };
    for _ in 0..r.uvarint()? {
        u.labels.insert(r.str()?.to_string());
    }
    for _ in 0..r.uvarint()? {
        let c = r.str()?.to_string();
        u.clients.insert(c, r.uvarint()?);
    }
    Some((day, metric, u))
}

/// One log record: `len u32 | crc32c u32 | n varint | entries`.
pub fn encode_log_record<'a>(entries: impl Iterator<Item = (i64, &'a str, &'a MetricDayUsage)>) -> Vec<u8> {
    let mut payload = Vec::new();
    let mut n = 0u64;
    let mut body = Vec::new();
    for (d, m, u) in entries {
        put_entry(&mut body, d, m, u);
        n += 1;
    }
    put_uvarint(&mut payload, n);
    payload.extend_from_slice(&body);
    let mut out = Vec::with_capacity(payload.len() + 8);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
    out
}

/// Decodes a whole log file. Returns the entries of every intact record and, if the log ends
/// in a torn or corrupt record, that record's offset.
///
/// # Errors
/// [`StorageError::UnsupportedVersion`] for a log of another version,
/// [`StorageError::Corruption`] for a bad magic.
pub fn decode_log(b: &[u8], path: &Path) -> Result<(Vec<Entry>, Option<usize>)> {
    if b.is_empty() {
        return Ok((Vec::new(), None));
    }
    if b.len() < 5 || &b[..4] != LOG_MAGIC {
        return Err(StorageError::Corruption { path: path.to_path_buf(), offset: 0, reason: "bad usage log magic".into() });
    }
    if b[4] != USAGE_FORMAT_VERSION {
        return Err(StorageError::UnsupportedVersion { path: path.to_path_buf(), version: b[4] });
    }
    let mut out = Vec::new();
    let mut r = Reader::new(&b[5..]);
    while !r.is_empty() {
        let start = 5 + r.pos();
        let rec = (|| {
            let len = r.u32_le()? as usize;
            let crc = r.u32_le()?;
            let payload = r.bytes(len)?;
            (crc32c::crc32c(payload) == crc).then_some(payload)
        })();
        let Some(payload) = rec else { return Ok((out, Some(start))) };
        let mut pr = Reader::new(payload);
        let parsed: Option<Vec<Entry>> = (|| {
            let n = pr.uvarint()?;
            let mut v = Vec::new();
            for _ in 0..n {
                v.push(read_entry(&mut pr)?);
            }
            Some(v)
        })();
        match parsed {
            Some(v) => out.extend(v),
            None => return Ok((out, Some(start))),
        }
    }
    Ok((out, None))
}

/// A fresh, empty log at `path` (truncating any old one) with its header written.
///
/// # Errors
/// [`StorageError::Io`].
pub fn create_log(path: &Path, sync: bool) -> Result<File> {
    let io = |e| StorageError::io(format!("create {}", path.display()), e);
    let mut f = File::options().create(true).write(true).truncate(true).open(path).map_err(io)?;
    f.write_all(LOG_MAGIC).map_err(io)?;
    f.write_all(&[USAGE_FORMAT_VERSION]).map_err(io)?;
    if sync {
        f.sync_data().map_err(io)?;
    }
    Ok(f)
}

/// A day's summary file.
pub fn encode_summary(day: i64, metrics: &HashMap<String, MetricDayUsage>) -> Vec<u8> {
    let mut names: Vec<&String> = metrics.keys().collect();
    names.sort();
    let mut body = Vec::new();
    put_uvarint(&mut body, names.len() as u64);
    for n in names {
        put_entry(&mut body, day, n, &metrics[n]);
    }
    let mut out = Vec::with_capacity(body.len() + 9);
    out.extend_from_slice(SUM_MAGIC);
    out.push(USAGE_FORMAT_VERSION);
    out.extend_from_slice(&crc32c::crc32c(&body).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

/// Decodes a summary file.
///
/// # Errors
/// [`StorageError::Corruption`] or [`StorageError::UnsupportedVersion`].
pub fn decode_summary(b: &[u8], path: &Path) -> Result<Vec<Entry>> {
    let corrupt = |reason: &str| StorageError::Corruption { path: path.to_path_buf(), offset: 0, reason: reason.into() };
    if b.len() < 9 || &b[..4] != SUM_MAGIC {
        return Err(corrupt("bad usage summary magic"));
    }
    if b[4] != USAGE_FORMAT_VERSION {
        return Err(StorageError::UnsupportedVersion { path: path.to_path_buf(), version: b[4] });
    }
    let crc = u32::from_le_bytes(b[5..9].try_into().expect("4 bytes"));
    let body = &b[9..];
    if crc32c::crc32c(body) != crc {
        return Err(corrupt("usage summary checksum mismatch"));
    }
    let mut r = Reader::new(body);
    let n = r.uvarint().ok_or_else(|| corrupt("truncated usage summary"))?;
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(read_entry(&mut r).ok_or_else(|| corrupt("truncated usage summary entry"))?);
    }
    Ok(out)
}
