//! Bytes on disk after a flush, measured the fairest way each system allows.
//!
//! - **Prometheus**: `POST /api/v1/admin/tsdb/snapshot` (needs `--web.enable-admin-api`) writes
//!   the in-memory head as a compacted, indexed block next to the existing blocks in
//!   `snapshots/<name>/`. Its size is what the data costs once persisted; the WAL (which a
//!   running Prometheus also keeps, and deletes after compaction) is excluded.
//! - **VictoriaMetrics**: `GET /internal/force_flush`, then a graceful shutdown (SIGTERM), which
//!   writes every buffered row to parts; then the size of `-storageDataPath` (data and indexdb;
//!   VictoriaMetrics has no WAL; the `cache` it writes at shutdown and `snapshots` excluded).
//!   `force_flush` alone returns before the rows reach disk, and for seconds after it neither
//!   `vm_rows` nor a stable directory size tells when they have. Call it after the queries.
//! - **Hearth**: the same snapshot endpoint as Prometheus' (`--web.enable-admin-api`): blocks
//!   hard-linked and the head written as a block with its index, measured the same way. A
//!   build without the endpoint (before 2026-11-21) is instead stopped with SIGTERM (a graceful
//!   shutdown) and its data directory measured without `wal/`, which leaves out the series index
//!   of data still in the head; the method used is reported.
//!
//! Sizes are apparent sizes (sum of file lengths), hard links counted once. A snapshot is
//! removed once measured, so kept data (`--keep-data`) does not grow from run to run.

use std::time::Duration;

use serde_json::Value;

use crate::error::{BenchError, Result};
use crate::procstat::dir_bytes;
use crate::systems::{RunningSystem, SystemKind};

/// A disk measurement and how it was taken.
#[derive(Debug, Clone, PartialEq)]
pub struct DiskUsage {
    /// Bytes of persisted data (WAL excluded), per the module doc.
    pub bytes: u64,
    /// Bytes of the whole data directory, WAL included (snapshots excluded).
    pub total_bytes: u64,
    /// Whether `bytes` includes the series index (false for Hearth measured without a
    /// snapshot API while its data is still in the head: its series live in the WAL then).
    pub index_included: bool,
    /// How (for the report).
    pub method: String,
}

async fn snapshot(client: &reqwest::Client, sys: &RunningSystem) -> Result<Option<String>> {
    let url = format!("{}/api/v1/admin/tsdb/snapshot", sys.base_url);
    let resp = client
        .post(&url)
        .timeout(Duration::from_secs(600))
        .send()
        .await
        .map_err(|source| BenchError::Http { system: sys.kind.name().into(), source })?;
    if !resp.status().is_success() {
        return Ok(None);
    }
    let v: Value = resp.json().await.map_err(|source| BenchError::Http { system: sys.kind.name().into(), source })?;
    Ok(v["data"]["name"].as_str().map(str::to_string))
}

/// VictoriaMetrics' own counts from `/metrics`: rows in storage parts, and rows pending.
async fn vm_rows(client: &reqwest::Client, sys: &RunningSystem) -> Result<(u64, u64)> {
    let text = client
        .get(format!("{}/metrics", sys.base_url))
        .send()
        .await
        .map_err(|source| BenchError::Http { system: sys.kind.name().into(), source })?
        .text()
        .await
        .map_err(|source| BenchError::Http { system: sys.kind.name().into(), source })?;
    Ok(parse_vm_rows(&text))
}

/// Parses `vm_rows{type="storage/small|big"}` (summed) and `vm_pending_rows{type="storage"}`
/// out of VictoriaMetrics' `/metrics` text.
pub fn parse_vm_rows(text: &str) -> (u64, u64) {
    let value = |line: &str| line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0) as u64;
    let mut rows = 0;
    let mut pending = 0;
    for line in text.lines() {
        if line.starts_with("vm_rows{type=\"storage/small\"}") || line.starts_with("vm_rows{type=\"storage/big\"}") {
            rows += value(line);
        } else if line.starts_with("vm_pending_rows{type=\"storage\"}") {
            pending += value(line);
        }
    }
    (rows, pending)
}

/// Bytes of a snapshot directory; the directory is removed afterwards (its blocks are hard
/// links or copies: removing it never touches the live data).
fn measure_and_remove(snapshot_dir: &std::path::Path) -> Result<u64> {
    let bytes = dir_bytes(snapshot_dir, &[])?;
    std::fs::remove_dir_all(snapshot_dir).map_err(|e| BenchError::io(snapshot_dir.display().to_string(), e))?;
    Ok(bytes)
}

/// Measures `sys` per the module doc. For Hearth without a snapshot endpoint this stops the
/// server, so call it last.
/// `expected_samples` is how many samples `sys` was sent (VictoriaMetrics is waited for until
/// it has them all in parts).
pub async fn measure(client: &reqwest::Client, sys: &mut RunningSystem, expected_samples: u64) -> Result<DiskUsage> {
    match sys.kind {
        SystemKind::Prometheus => {
            let total_bytes = dir_bytes(&sys.data_dir, &["snapshots"])?;
            let name = snapshot(client, sys)
                .await?
                .ok_or_else(|| BenchError::Process("prometheus: snapshot API refused".into()))?;
            let bytes = measure_and_remove(&sys.data_dir.join("snapshots").join(&name))?;
            Ok(DiskUsage {
                bytes,
                total_bytes,
                index_included: true,
                method: "TSDB snapshot (head persisted as a block with its index; WAL excluded)".into(),
            })
        }
        SystemKind::VictoriaMetrics => {
            let url = format!("{}/internal/force_flush", sys.base_url);
            let resp = client
                .get(&url)
                .send()
                .await
                .map_err(|source| BenchError::Http { system: sys.kind.name().into(), source })?;
            if !resp.status().is_success() {
                return Err(BenchError::Process(format!("victoria-metrics: force_flush answered {}", resp.status())));
            }
            // force_flush only starts the flush: rows reach on-disk parts over the next ~10 s,
            // and neither vm_rows nor a stable size says when. A graceful shutdown writes
            // everything; measure after it.
            let (rows, pending) = vm_rows(client, sys).await.unwrap_or((0, 0));
            let clean = sys.child.terminate(Duration::from_secs(120));
            let bytes = dir_bytes(&sys.data_dir, &["snapshots", "cache"])?;
            let how = if clean { "graceful shutdown" } else { "killed after 120 s shutdown" };
            let rows_note = if rows >= expected_samples && pending == 0 {
                "it counted every sample sent".to_string()
            } else {
                format!("it counted {rows} of {expected_samples} samples, {pending} pending")
            };
            Ok(DiskUsage {
                bytes,
                total_bytes: bytes,
                index_included: true,
                method: format!("force_flush, then {how}; data and indexdb, no WAL exists ({rows_note})"),
            })
        }
        SystemKind::Hearth => {
            let total_before = dir_bytes(&sys.data_dir, &["snapshots"])?;
            if let Some(name) = snapshot(client, sys).await? {
                let bytes = measure_and_remove(&sys.data_dir.join("snapshots").join(&name))?;
                return Ok(DiskUsage {
                    bytes,
                    total_bytes: total_before,
                    index_included: true,
                    method: "TSDB snapshot (head persisted as a block with its index; WAL excluded)".into(),
                });
            }
            let clean = sys.child.terminate(Duration::from_secs(120));
            let bytes = dir_bytes(&sys.data_dir, &["wal", "snapshots"])?;
            let total = dir_bytes(&sys.data_dir, &[])?;
            let how = if clean { "graceful shutdown" } else { "killed after 120 s shutdown" };
            // Blocks carry their own index; data still in the head has its series in the WAL.
            let blocks = std::fs::read_dir(&sys.data_dir)
                .map(|d| d.flatten().any(|e| e.path().join("index").exists()))
                .unwrap_or(false);
            Ok(DiskUsage {
                bytes,
                total_bytes: total,
                index_included: blocks,
                method: format!(
                    "no snapshot API: {how}, data dir without wal/ ({}; with the WAL: {total} bytes)",
                    if blocks { "blocks with their index, plus head chunks" } else { "head chunk files only: the series index is not included" }
                ),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_rows_from_metrics_text() {
        let text = "vm_rows{type=\"indexdb\"} 10611\nvm_rows{type=\"storage/big\"} 5\nvm_rows{type=\"storage/small\"} 960000\nvm_pending_rows{type=\"indexdb\"} 3\nvm_pending_rows{type=\"storage\"} 7\n";
        assert_eq!(parse_vm_rows(text), (960_005, 7));
    }
}
