//! Kept data: `compare --keep-data DIR` leaves each system's data directory in `DIR/<system>/`
//! after the run, with [`KeptData`] in `DIR/`[`META_FILE`]; `compare --reuse-data DIR` starts
//! every system on it again (same flags as a fresh run), waits for readiness and the settle
//! phase, and runs only the queries, so query work can be iterated on in minutes instead of the
//! ~40 of encoding and ingesting 100k series × 24 h.
//!
//! # Layout of `DIR`
//!
//! ```text
//! DIR/hearth-bench-data.json   KeptData (JSON, format_version 1)
//! DIR/<system>/data/           the system's data directory (--storage.tsdb.path, -storageDataPath)
//! DIR/<system>/server.log      its log of the newest run on the directory
//! DIR/<system>/prometheus.yml  Prometheus' (empty) configuration
//! ```
//!
//! # What a reused run measures
//!
//! The servers restart on their data: Prometheus and Hearth replay their WAL into the head,
//! the blocks are opened. The queries are the same at the same evaluation time as the run
//! that kept the data, so their figures compare with it (and with every other reuse of it);
//! peak RSS is the high-water mark of the restart and the queries (WAL replay included), not of
//! ingest; nothing about ingest is measured. Snapshots taken for the disk figures are removed
//! after measuring, so the directory does not grow from run to run.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::error::{BenchError, Result};
use crate::requests::{BatchConfig, Protocol};
use crate::systems::SystemKind;
use crate::workload::WorkloadConfig;

/// Name of the metadata file in the kept directory.
pub const META_FILE: &str = "hearth-bench-data.json";

/// Version of [`KeptData`]'s JSON shape; a reader refuses other versions.
pub const FORMAT_VERSION: u32 = 1;

/// The request shape as kept (mirror of [`BatchConfig`]; protocol 1 or 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeptBatch {
    /// Samples per request.
    pub max_samples_per_request: usize,
    /// Parallel connections.
    pub shards: usize,
    /// Send window, ms of data time.
    pub window_ms: i64,
    /// Remote-write protocol version, 1 or 2.
    pub protocol: u8,
}

impl From<&BatchConfig> for KeptBatch {
    fn from(b: &BatchConfig) -> Self {
        KeptBatch {
            max_samples_per_request: b.max_samples_per_request,
            shards: b.shards,
            window_ms: b.window_ms,
            protocol: match b.protocol {
                Protocol::V1 => 1,
                Protocol::V2 => 2,
            },
        }
    }
}

impl KeptBatch {
    /// Back to a [`BatchConfig`]; an unknown protocol number is an error.
    pub fn to_config(&self) -> Result<BatchConfig> {
        let protocol = match self.protocol {
            1 => Protocol::V1,
            2 => Protocol::V2,
            p => return Err(BenchError::Config(format!("{META_FILE}: protocol {p}"))),
        };
        Ok(BatchConfig { max_samples_per_request: self.max_samples_per_request, shards: self.shards, window_ms: self.window_ms, protocol })
    }
}

/// One system whose data was kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeptSystem {
    /// [`SystemKind::name`].
    pub name: String,
    /// Its version string in the run that wrote the data.
    pub version: String,
}

/// What the query phase needs to run again on kept data, and where the data came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeptData {
    /// [`FORMAT_VERSION`].
    pub format_version: u32,
    /// When the data was written (end of the run), seconds since the Unix epoch.
    pub created_unix_s: u64,
    /// The same as an HTTP date (UTC), for people.
    pub created_utc: String,
    /// The command line of the run that wrote it.
    pub command: String,
    /// Systems whose data directories are kept, with their versions.
    pub systems: Vec<KeptSystem>,
    /// The workload.
    pub workload: WorkloadConfig,
    /// The request shape.
    pub batch: KeptBatch,
    /// First sample time, t_ms (inclusive).
    pub start_t_ms: i64,
    /// End of the data, t_ms (exclusive).
    pub end_t_ms: i64,
    /// Query evaluation time, t_ms.
    pub eval_t_ms: i64,
    /// Answers compared from this evaluation time on, t_ms.
    pub check_from_t_ms: i64,
    /// Samples each system was sent.
    pub samples: u64,
    /// Distinct series sent.
    pub series_total: usize,
    /// Requests per system.
    pub requests: usize,
    /// Compressed bytes per system.
    pub body_bytes: u64,
}

impl KeptData {
    /// Whether `kind`'s data is in the directory.
    pub fn has(&self, kind: SystemKind) -> bool {
        self.systems.iter().any(|s| s.name == kind.name())
    }

    /// Writes `dir/`[`META_FILE`] (through a temporary file and a rename).
    pub fn write(&self, dir: &Path) -> Result<()> {
        let path = dir.join(META_FILE);
        let tmp = dir.join(format!("{META_FILE}.tmp"));
        let json = serde_json::to_string_pretty(self).map_err(|e| BenchError::Config(format!("{META_FILE}: {e}")))?;
        std::fs::write(&tmp, json).map_err(|e| BenchError::io(tmp.display().to_string(), e))?;
        std::fs::rename(&tmp, &path).map_err(|e| BenchError::io(path.display().to_string(), e))
    }

    /// Reads `dir/`[`META_FILE`]; a missing file, bad JSON or another format version is an error.
    pub fn read(dir: &Path) -> Result<Self> {
        let path = dir.join(META_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| BenchError::io(path.display().to_string(), e))?;
        let kept: KeptData =
            serde_json::from_str(&text).map_err(|e| BenchError::Config(format!("{}: {e}", path.display())))?;
        if kept.format_version != FORMAT_VERSION {
            return Err(BenchError::Config(format!(
                "{}: format_version {} (this runner reads {FORMAT_VERSION})",
                path.display(),
                kept.format_version
            )));
        }
        Ok(kept)
    }
}

/// The current time as (seconds since the epoch, HTTP date).
pub fn now_utc() -> (u64, String) {
    let now = SystemTime::now();
    (now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()), httpdate::fmt_http_date(now))
}

/// Where a reused run's data came from, for the report.
#[derive(Debug, Clone, PartialEq)]
pub struct ReusedFrom {
    /// The kept directory.
    pub dir: PathBuf,
    /// Its metadata.
    pub kept: KeptData,
}

/// Makes `dir` the root of a kept run: created if missing; refused if it already holds a
/// system's data or a [`META_FILE`] (a kept run is never overwritten by accident).
pub fn prepare_keep_dir(dir: &Path, systems: &[SystemKind]) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| BenchError::io(dir.display().to_string(), e))?;
    let taken: Vec<String> = std::iter::once(META_FILE.to_string())
        .chain(systems.iter().map(|k| k.name().to_string()))
        .filter(|n| dir.join(n).exists())
        .collect();
    if !taken.is_empty() {
        return Err(BenchError::Config(format!("--keep-data {}: already holds {taken:?}", dir.display())));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> KeptData {
        let workload = WorkloadConfig {
            series: 100_000,
            scrape_interval_ms: 60_000,
            span_ms: 24 * 3_600_000,
            end_t_ms: 1_795_000_000_123,
            churn_interval_ms: Some(3_600_000),
            ..WorkloadConfig::default()
        };
        KeptData {
            format_version: FORMAT_VERSION,
            created_unix_s: 1_795_000_100,
            created_utc: "Sat, 21 Nov 2026 15:00:00 GMT".into(),
            command: "hearth-bench compare --series 100000".into(),
            systems: vec![
                KeptSystem { name: "prometheus".into(), version: "prometheus 2.42".into() },
                KeptSystem { name: "hearth".into(), version: "hearth 0.1 (git 081306c)".into() },
            ],
            workload: workload.clone(),
            batch: KeptBatch::from(&BatchConfig { protocol: Protocol::V2, ..BatchConfig::default() }),
            start_t_ms: 1_794_913_680_000,
            end_t_ms: 1_795_000_080_000,
            eval_t_ms: 1_794_999_960_005,
            check_from_t_ms: 1_794_914_040_000,
            samples: 144_000_000,
            series_total: 100_000,
            requests: 72_000,
            body_bytes: 1 << 30,
        }
    }

    #[test]
    fn metadata_round_trips_through_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let kept = sample();
        kept.write(dir.path()).unwrap();
        let back = KeptData::read(dir.path()).unwrap();
        assert_eq!(back, kept);
        assert_eq!(back.workload.churn_interval_ms, Some(3_600_000));
        assert_eq!(back.batch.to_config().unwrap().protocol, Protocol::V2);
        assert!(back.has(SystemKind::Hearth) && !back.has(SystemKind::VictoriaMetrics));
        assert!(!dir.path().join(format!("{META_FILE}.tmp")).exists());
    }

    #[test]
    fn other_format_versions_and_garbage_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut kept = sample();
        kept.format_version = FORMAT_VERSION + 1;
        kept.write(dir.path()).unwrap();
        assert!(matches!(KeptData::read(dir.path()), Err(BenchError::Config(m)) if m.contains("format_version")));
        std::fs::write(dir.path().join(META_FILE), b"{\"format_version\": 1").unwrap();
        assert!(matches!(KeptData::read(dir.path()), Err(BenchError::Config(_))));
        let empty = tempfile::tempdir().unwrap();
        assert!(matches!(KeptData::read(empty.path()), Err(BenchError::Io { .. })));
    }

    #[test]
    fn unknown_protocol_is_an_error() {
        let b = KeptBatch { max_samples_per_request: 1, shards: 1, window_ms: 1, protocol: 3 };
        assert!(b.to_config().is_err());
    }

    #[test]
    fn keep_dir_is_never_reused_by_accident() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("new/100k");
        prepare_keep_dir(&root, &[SystemKind::Hearth]).unwrap();
        assert!(root.is_dir());
        std::fs::create_dir(root.join("hearth")).unwrap();
        assert!(prepare_keep_dir(&root, &[SystemKind::Prometheus]).is_ok());
        assert!(prepare_keep_dir(&root, &[SystemKind::Hearth]).is_err());
    }

    #[test]
    fn now_is_an_http_date() {
        let (s, text) = now_utc();
        assert!(s > 1_700_000_000);
        assert!(text.ends_with(" GMT"), "{text}");
    }
}
