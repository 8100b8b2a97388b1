//! `POST|PUT /api/v1/admin/tsdb/snapshot`: Prometheus' TSDB admin snapshot (`web/api/v1/api.go`
//! `snapshot`), enabled by `--web.enable-admin-api`.
//!
//! Writes `<data dir>/snapshots/<name>/` with every persisted block hard-linked and, unless
//! `skip_head=true`, the head written as one more block ([`storage::db::Db::snapshot`]), and
//! answers `{"status":"success","data":{"name":"<name>"}}`. The name is Prometheus':
//! `YYYYMMDDTHHMMSSZ-<16 hex digits>` (UTC time, then 64 random bits).
//!
//! Answers as Prometheus: 503 `unavailable` "admin APIs disabled" without the flag; 400
//! `bad_data` for a `skip_head` that is not a Go `strconv.ParseBool` value; 500 `internal` when
//! the snapshot cannot be written. The route requires the write scope (it writes to disk).

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{Request, State};
use axum::response::Response;
use query::Annotations;
use serde_json::json;
use storage::db::{Db, SnapshotStats};
use storage::StorageError;

use super::json::success_serde;
use super::read_params;
use crate::app::Shared;
use crate::error::{ApiFailure, ServerError};
use crate::logging::civil_from_days;

/// Where snapshots go, inside the data directory.
pub const SNAPSHOTS_DIRNAME: &str = "snapshots";

/// What can write a snapshot (the opened database).
pub trait Snapshotter: Send + Sync + 'static {
    /// Writes a snapshot into `dir` (see [`Db::snapshot`]).
    ///
    /// # Errors
    /// The storage error.
    fn snapshot(&self, dir: &Path, with_head: bool) -> Result<SnapshotStats, StorageError>;
}

impl Snapshotter for Db {
    fn snapshot(&self, dir: &Path, with_head: bool) -> Result<SnapshotStats, StorageError> {
        Db::snapshot(self, dir, with_head)
    }
}

/// The snapshotter once storage is open (set once, by the opener's ready hook).
#[derive(Default)]
pub struct SnapshotSlot(OnceLock<Arc<dyn Snapshotter>>);

impl SnapshotSlot {
    /// Publishes the snapshotter; later calls are ignored.
    pub fn set(&self, s: Arc<dyn Snapshotter>) {
        let _ = self.0.set(s);
    }

    /// The snapshotter, once set.
    pub fn get(&self) -> Option<&Arc<dyn Snapshotter>> {
        self.0.get()
    }
}

impl std::fmt::Debug for SnapshotSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotSlot").field("set", &self.0.get().is_some()).finish()
    }
}

/// Go's `strconv.ParseBool`.
fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// A snapshot name as Prometheus makes it: `20261121T093512Z-0123456789abcdef`.
pub fn snapshot_name(now: SystemTime, random: u64) -> String {
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z-{random:016x}", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// 64 random bits from the standard library's per-process random hasher keys.
fn random_u64() -> u64 {
    use std::hash::BuildHasher;
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    std::hash::RandomState::new().hash_one(nanos)
}

/// `POST|PUT /api/v1/admin/tsdb/snapshot?skip_head=`.
pub async fn snapshot(State(s): State<Shared>, req: Request) -> Result<Response, ApiFailure> {
    if !s.config.web_enable_admin_api {
        return Err(ServerError::Unavailable("admin APIs disabled".into()).into());
    }
    let params = read_params(req).await?;
    let skip_head = match params.non_empty("skip_head") {
        None => false,
        Some(v) => parse_bool(v)
            .ok_or_else(|| ServerError::BadData(format!("unable to parse boolean 'skip_head' argument: {v:?}")))?,
    };
    let Some(snapshotter) = s.snapshots.get().cloned() else {
        return Err(ServerError::Unavailable("storage is not open yet".into()).into());
    };
    let name = snapshot_name(SystemTime::now(), random_u64());
    let dir: PathBuf = s.config.storage.path.join(SNAPSHOTS_DIRNAME).join(&name);
    let stats = tokio::task::spawn_blocking({
        let dir = dir.clone();
        move || snapshotter.snapshot(&dir, !skip_head)
    })
    .await
    .map_err(|e| ServerError::Internal(format!("snapshot task failed: {e}")))?
    .map_err(|e| ServerError::Internal(format!("create snapshot: {e}")))?;
    tracing::info!(
        dir = %dir.display(),
        blocks = stats.blocks_linked,
        head_block = stats.head_block.as_ref().map(|m| m.ulid.to_string()),
        "snapshot written"
    );
    Ok(success_serde(&json!({ "name": name }), &Annotations::default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_as_prometheus() {
        // 2026-11-21 09:35:12 UTC.
        let t = UNIX_EPOCH + std::time::Duration::from_secs(1_795_253_712);
        assert_eq!(snapshot_name(t, 0x2be6_50b6_d019_eb54), "20261121T093512Z-2be650b6d019eb54");
        assert_eq!(snapshot_name(UNIX_EPOCH, 1), "19700101T000000Z-0000000000000001");
    }

    #[test]
    fn go_parse_bool() {
        for v in ["1", "t", "T", "TRUE", "true", "True"] {
            assert_eq!(parse_bool(v), Some(true));
        }
        for v in ["0", "f", "F", "FALSE", "false", "False"] {
            assert_eq!(parse_bool(v), Some(false));
        }
        assert_eq!(parse_bool("yes"), None);
    }
}
