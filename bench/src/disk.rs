//! Bytes on disk after a flush, measured the fairest way each system allows.
//!
//! - **Prometheus**: `POST /api/v1/admin/tsdb/snapshot` (needs `--web.enable-admin-api`) writes
//!   the in-memory head as a compacted, indexed block next to the existing blocks in
//!   `snapshots/<name>/`. Its size is what the data costs once persisted; the WAL (which a
//!   running Prometheus also keeps, and deletes after compaction) is excluded.
//! - **VictoriaMetrics**: `GET /internal/force_flush` writes its in-memory buffers to parts; the
//!   size of `-storageDataPath` (data and indexdb; VictoriaMetrics has no WAL; the `cache` and
//!   `snapshots` directories are excluded) is then sampled every second until two samples agree
//!   (background merges settled) or 60 s pass.
//! - **Hearth**: a Prometheus-compatible snapshot endpoint is tried first and measured like
//!   Prometheus'; without one, Hearth is stopped with SIGTERM (a graceful shutdown) and its data
//!   directory is measured without its `wal` directory. The method used is reported.
//!
//! Sizes are apparent sizes (sum of file lengths), hard links counted once.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::error::{BenchError, Result};
use crate::procstat::dir_bytes;
use crate::systems::{RunningSystem, SystemKind};

/// A disk measurement and how it was taken.
#[derive(Debug, Clone, PartialEq)]
pub struct DiskUsage {
    /// Bytes measured.
    pub bytes: u64,
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

/// Measures `sys` per the module doc. For Hearth without a snapshot endpoint this stops the
/// server, so call it last.
pub async fn measure(client: &reqwest::Client, sys: &mut RunningSystem) -> Result<DiskUsage> {
    match sys.kind {
        SystemKind::Prometheus => {
            let name = snapshot(client, sys)
                .await?
                .ok_or_else(|| BenchError::Process("prometheus: snapshot API refused".into()))?;
            let bytes = dir_bytes(&sys.data_dir.join("snapshots").join(&name), &[])?;
            Ok(DiskUsage { bytes, method: "TSDB snapshot (head persisted as a block; WAL excluded)".into() })
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
            let skip = ["snapshots", "cache"];
            let deadline = Instant::now() + Duration::from_secs(60);
            let mut prev = dir_bytes(&sys.data_dir, &skip)?;
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let now = dir_bytes(&sys.data_dir, &skip)?;
                if now == prev || Instant::now() >= deadline {
                    return Ok(DiskUsage {
                        bytes: now,
                        method: "force_flush, then data dir once merges settle (no WAL)".into(),
                    });
                }
                prev = now;
            }
        }
        SystemKind::Hearth => {
            if let Some(name) = snapshot(client, sys).await? {
                let bytes = dir_bytes(&sys.data_dir.join("snapshots").join(&name), &[])?;
                return Ok(DiskUsage { bytes, method: "TSDB snapshot API (WAL excluded)".into() });
            }
            let clean = sys.child.terminate(Duration::from_secs(120));
            let bytes = dir_bytes(&sys.data_dir, &["wal", "snapshots"])?;
            let total = dir_bytes(&sys.data_dir, &[])?;
            let how = if clean { "graceful shutdown" } else { "killed after 120 s shutdown" };
            Ok(DiskUsage { bytes, method: format!("{how}, data dir without wal/ (with WAL: {total} bytes)") })
        }
    }
}
