//! Reading the WAL back: segments in order, each record's frame checked; a torn or corrupt
//! record drops the rest of its segment with a warning and replay goes on with the next one.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use super::record::{DecodeError, FRAME_HEADER_BYTES};
use super::segment::{list_segments, segment_path, SEGMENT_HEADER_BYTES, SEGMENT_MAGIC, SEGMENT_VERSION};
use crate::error::{Result, StorageError};
use crate::metrics::StorageMetrics;

/// The checkpoint directory name for checkpoint `n`: `checkpoint.00000012`.
pub fn checkpoint_name(n: u64) -> String {
    format!("checkpoint.{n:08}")
}

/// Checkpoints in `wal_dir` (complete ones only: no `.tmp` suffix), ascending by number.
///
/// # Errors
/// [`StorageError::Io`].
pub fn list_checkpoints(wal_dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let rd = match std::fs::read_dir(wal_dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(StorageError::io(format!("list checkpoints in {}", wal_dir.display()), e)),
    };
    let mut out = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| StorageError::io(format!("list checkpoints in {}", wal_dir.display()), e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(num) = name.strip_prefix("checkpoint.") else { continue };
        if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        if let Ok(n) = num.parse::<u64>() {
            out.push((n, entry.path()));
        }
    }
    out.sort_by_key(|c| c.0);
    Ok(out)
}

/// What a replay read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReplayStats {
    /// Records handed to the callback.
    pub records: u64,
    /// Segments read (checkpoint segments included).
    pub segments: u64,
    /// Segment tails dropped because of a torn or corrupt record.
    pub corruptions: u64,
    /// The checkpoint replayed first, if any.
    pub checkpoint: Option<u64>,
    /// The highest WAL segment number seen (0 if none).
    pub last_segment: u64,
}

/// Where a segment's valid records end.
enum SegmentEnd {
    Clean,
    Dropped { offset: u64, reason: String },
}

/// Calls `f` with each valid record payload of one segment, in order.
fn read_segment(
    path: &Path,
    f: &mut dyn FnMut(&[u8]) -> Result<(), DecodeError>,
    stats: &mut ReplayStats,
) -> Result<SegmentEnd> {
    let data = std::fs::read(path).map_err(|e| StorageError::io(format!("read WAL segment {}", path.display()), e))?;
    stats.segments += 1;
    if data.len() < SEGMENT_HEADER_BYTES || data[..4] != SEGMENT_MAGIC {
        // A crash between creating the file and writing its header leaves it short or empty.
        return Ok(SegmentEnd::Dropped { offset: 0, reason: "missing or bad segment header".into() });
    }
    if data[4] != SEGMENT_VERSION {
        return Err(StorageError::UnsupportedVersion { path: path.to_path_buf(), version: data[4] });
    }
    let mut off = SEGMENT_HEADER_BYTES;
    while off < data.len() {
        let rest = &data[off..];
        let Some((hdr, body)) = rest.split_first_chunk::<FRAME_HEADER_BYTES>() else {
            return Ok(SegmentEnd::Dropped { offset: off as u64, reason: "torn frame header".into() });
        };
        let len = u32::from_le_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]) as usize;
        let crc = u32::from_le_bytes([hdr[4], hdr[5], hdr[6], hdr[7]]);
        if len < 2 {
            return Ok(SegmentEnd::Dropped { offset: off as u64, reason: format!("invalid record length {len}") });
        }
        let Some(payload) = body.get(..len) else {
            return Ok(SegmentEnd::Dropped {
                offset: off as u64,
                reason: format!("torn record: length {len} but {} bytes left", body.len()),
            });
        };
        if crc32c::crc32c(payload) != crc {
            return Ok(SegmentEnd::Dropped { offset: off as u64, reason: "checksum mismatch".into() });
        }
        match f(payload) {
            Ok(()) => {}
            Err(DecodeError::UnsupportedVersion(v)) => {
                return Err(StorageError::UnsupportedVersion { path: path.to_path_buf(), version: v })
            }
            Err(DecodeError::UnknownType(t)) => {
                return Err(StorageError::Corruption {
                    path: path.to_path_buf(),
                    offset: off as u64,
                    reason: format!("unknown record type {t} in a checksum-valid record (written by a newer version?)"),
                })
            }
            Err(e) => return Ok(SegmentEnd::Dropped { offset: off as u64, reason: e.to_string() }),
        }
        stats.records += 1;
        off += FRAME_HEADER_BYTES + len;
    }
    Ok(SegmentEnd::Clean)
}

/// Replays segments `nums` of `dir` in order.
fn replay_segments(
    dir: &Path,
    nums: &[u64],
    f: &mut dyn FnMut(&[u8]) -> Result<(), DecodeError>,
    stats: &mut ReplayStats,
    metrics: &StorageMetrics,
) -> Result<()> {
    for &n in nums {
        let path = segment_path(dir, n);
        if let SegmentEnd::Dropped { offset, reason } = read_segment(&path, f, stats)? {
            tracing::warn!(
                segment = %path.display(),
                offset,
                reason = %reason,
                "WAL: dropping the rest of a segment after a torn or corrupt record"
            );
            stats.corruptions += 1;
            metrics.wal_corruptions.fetch_add(1, Ordering::Relaxed);
        }
    }
    Ok(())
}

/// Replays the WAL in `wal_dir`: the newest checkpoint's segments, then every WAL segment
/// numbered above it, calling `f` with each valid record payload (type byte onwards) in order.
///
/// A torn or corrupt record (bad length, checksum mismatch, malformed body) drops the rest of
/// its segment with a `tracing::warn!` naming segment and offset, counts
/// `hearth_wal_corruptions_total`, and replay goes on with the next segment. If `f` reports a
/// malformed body, that is treated the same way.
///
/// # Errors
/// [`StorageError::Io`] when a file cannot be read, [`StorageError::UnsupportedVersion`] for a
/// segment or record version this build does not know.
pub fn replay(
    wal_dir: &Path,
    metrics: &StorageMetrics,
    mut f: impl FnMut(&[u8]) -> Result<(), DecodeError>,
) -> Result<ReplayStats> {
    let mut stats = ReplayStats::default();
    let mut after = 0;
    if let Some((n, cp)) = list_checkpoints(wal_dir)?.pop() {
        let segs = list_segments(&cp)?;
        replay_segments(&cp, &segs, &mut f, &mut stats, metrics)?;
        stats.checkpoint = Some(n);
        after = n;
    }
    let segs: Vec<u64> = list_segments(wal_dir)?.into_iter().filter(|&s| s > after).collect();
    stats.last_segment = segs.last().copied().unwrap_or(after);
    replay_segments(wal_dir, &segs, &mut f, &mut stats, metrics)?;
    Ok(stats)
}

/// Replays segments `nums` of one directory (a WAL or a checkpoint directory) without looking
/// for checkpoints. Same corruption handling as [`replay`].
///
/// # Errors
/// As [`replay`].
pub fn replay_dir_segments(
    dir: &Path,
    nums: &[u64],
    metrics: &StorageMetrics,
    mut f: impl FnMut(&[u8]) -> Result<(), DecodeError>,
) -> Result<ReplayStats> {
    let mut stats = ReplayStats::default();
    replay_segments(dir, nums, &mut f, &mut stats, metrics)?;
    stats.last_segment = nums.last().copied().unwrap_or(0);
    Ok(stats)
}
