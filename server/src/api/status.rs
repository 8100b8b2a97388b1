//! `/api/v1/status/{buildinfo,tsdb,runtimeinfo,flags}`.
//!
//! `buildinfo` reports a Prometheus-compatible version so that clients that gate features on
//! it (Grafana asks for >= 2.24.0 before using the metadata and label-values-with-match APIs)
//! treat Hearth as a current Prometheus; Hearth's own version is in `hearthVersion`. There is
//! no `features` map: Hearth has no feature flags to report.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{Request, State};
use axum::response::Response;
use query::Annotations;
use serde::Serialize;
use serde_json::json;

use super::json::success_serde;
use super::read_params;
use crate::app::Shared;
use crate::error::{ApiFailure, ServerError};
use crate::logging::rfc3339_millis;
use crate::metrics::{BRANCH, REVISION, RUSTC_VERSION, VERSION};
use crate::units::format_duration;

/// The Prometheus version Hearth's API is compatible with.
pub const PROMETHEUS_COMPAT_VERSION: &str = "2.55.0";

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BuildInfo {
    version: &'static str,
    revision: &'static str,
    branch: &'static str,
    build_user: &'static str,
    build_date: &'static str,
    go_version: String,
    hearth_version: &'static str,
}

/// `GET /api/v1/status/buildinfo`.
pub async fn buildinfo() -> Response {
    success_serde(
        &BuildInfo {
            version: PROMETHEUS_COMPAT_VERSION,
            revision: REVISION,
            branch: BRANCH,
            build_user: "hearth",
            build_date: "unknown",
            go_version: format!("rustc {RUSTC_VERSION}"),
            hearth_version: VERSION,
        },
        &Annotations::default(),
    )
}

fn name_values(v: &[(String, u64)]) -> Vec<serde_json::Value> {
    v.iter().map(|(n, c)| json!({"name": n, "value": c})).collect()
}

/// `GET /api/v1/status/tsdb?limit=`: head statistics (Prometheus `TSDBStatus`).
pub async fn tsdb(State(s): State<Shared>, req: Request) -> Result<Response, ApiFailure> {
    let p = read_params(req).await?;
    let limit = match p.non_empty("limit") {
        None => 10,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if n > 0 => n,
            _ => return Err(ServerError::BadData("limit must be a positive number".into()).into()),
        },
    };
    let backend = s.storage.backend()?;
    let st = tokio::task::spawn_blocking(move || backend.tsdb_stats(limit))
        .await
        .map_err(|e| ServerError::Internal(format!("storage task failed: {e}")))?;
    let data = json!({
        "headStats": {
            "numSeries": st.num_series,
            "numLabelPairs": st.num_label_pairs,
            "chunkCount": st.chunk_count,
            "minTime": st.min_time_ms,
            "maxTime": st.max_time_ms,
        },
        "seriesCountByMetricName": name_values(&st.series_count_by_metric_name),
        "labelValueCountByLabelName": name_values(&st.label_value_count_by_label_name),
        "memoryInBytesByLabelName": name_values(&st.memory_in_bytes_by_label_name),
        "seriesCountByLabelValuePair": name_values(&st.series_count_by_label_value_pair),
    });
    Ok(success_serde(&data, &Annotations::default()))
}

/// `GET /api/v1/status/runtimeinfo`: Prometheus' fields plus the eBPF source's status.
pub async fn runtimeinfo(State(s): State<Shared>) -> Response {
    let started = s.started.duration_since(UNIX_EPOCH).unwrap_or_default();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let retention = {
        let st = &s.config.storage;
        let mut parts = Vec::new();
        if !st.retention_time.is_zero() {
            parts.push(format_duration(st.retention_time));
        }
        if st.retention_size_bytes > 0 {
            parts.push(format!("{}B", st.retention_size_bytes));
        }
        if parts.is_empty() {
            "unlimited".to_string()
        } else {
            parts.join(" or ")
        }
    };
    let corruptions = s
        .storage
        .get()
        .map_or(0, |b| storage::metrics::StorageMetrics::get(&b.storage_metrics().wal_corruptions));
    let tasks = tokio::runtime::Handle::current().metrics().num_alive_tasks();
    let data = json!({
        "startTime": rfc3339_millis(started),
        "CWD": std::env::current_dir().map(|p| p.display().to_string()).unwrap_or_default(),
        "reloadConfigSuccess": true,
        "lastConfigTime": rfc3339_millis(started),
        "corruptionCount": corruptions,
        "goroutineCount": tasks,
        "GOMAXPROCS": std::thread::available_parallelism().map_or(1, |n| n.get()),
        "GOMEMLIMIT": i64::MAX,
        "GOGC": "",
        "GODEBUG": "",
        "storageRetention": retention,
        "uptimeSeconds": now.saturating_sub(started).as_secs(),
        "ready": s.storage.get().is_some(),
        "ebpf": s.ebpf_status(),
    });
    success_serde(&data, &Annotations::default())
}

/// `GET /api/v1/status/flags`: the effective settings under their flag names.
pub async fn flags(State(s): State<Shared>) -> Response {
    let c = &s.config;
    let mut m = std::collections::BTreeMap::new();
    let mut put = |k: &str, v: String| {
        m.insert(k.to_string(), v);
    };
    put("web.listen-address", c.listen_address.to_string());
    put("web.config.file", c.web_config_file.as_ref().map(|p| p.display().to_string()).unwrap_or_default());
    put("storage.tsdb.path", c.storage.path.display().to_string());
    put("storage.tsdb.retention.time", format_duration(c.storage.retention_time));
    put("storage.tsdb.retention.size", format!("{}B", c.storage.retention_size_bytes));
    put("storage.tsdb.wal-fsync", format!("{:?}", c.storage.wal_fsync).to_lowercase());
    put("query.timeout", format_duration(c.query.timeout));
    put("query.max-samples", c.query.max_samples.to_string());
    put("query.max-concurrency", c.query.max_concurrency.to_string());
    put("query.lookback-delta", format_duration(c.query.lookback_delta));
    put("limits.max-decompressed-body-size", format!("{}B", c.limits.max_decompressed_body_bytes));
    put("limits.max-labels-per-series", c.limits.max_labels_per_series.to_string());
    put("limits.max-label-name-length", c.limits.max_label_name_bytes.to_string());
    put("limits.max-label-value-length", c.limits.max_label_value_bytes.to_string());
    put("limits.max-series-per-metric", c.limits.max_series_per_metric.to_string());
    put("limits.max-active-series", c.limits.max_active_series.to_string());
    put("log.level", format!("{:?}", c.log_level).to_lowercase());
    put("log.format", format!("{:?}", c.log_format).to_lowercase());
    put("ebpf.enable", c.ebpf.enable.to_string());
    success_serde(&m, &Annotations::default())
}
