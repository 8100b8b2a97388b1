//! `/api/v1/series`, `/api/v1/labels`, `/api/v1/label/{name}/values`, `/api/v1/metadata`.
//!
//! Several `match[]` selectors are a union (Prometheus `api.go`); results are sorted and
//! unique. `limit` truncates and adds Prometheus' "results truncated due to limit" warning.
//! Label values are never `null`: an empty result is `[]`.

use std::collections::{BTreeMap, BTreeSet};

use axum::extract::{Path, Request, State};
use axum::response::Response;
use query::Annotations;
use serde::Serialize;
use storage::{Labels, Matcher};

use super::json::{success, success_serde, write_labels};
use super::params::{unescape_label_name, MAX_TIME_MS, MIN_TIME_MS};
use super::read_params;
use crate::app::Shared;
use crate::backend::Backend;
use crate::error::{ApiFailure, ServerError};
use crate::usage::http::record_match;
use storage::usage::ReadKind;

const TRUNCATED: &str = "results truncated due to limit";

/// Runs a blocking storage read on the blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ServerError> + Send + 'static,
) -> Result<T, ServerError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ServerError::Internal(format!("storage task failed: {e}")))?
}

fn truncate<T>(v: &mut Vec<T>, limit: usize, annotations: &mut Annotations) {
    if limit > 0 && v.len() > limit {
        v.truncate(limit);
        annotations.warn(TRUNCATED.to_string());
    }
}

/// `GET|POST /api/v1/series?match[]=&start=&end=&limit=`.
pub async fn series(State(s): State<Shared>, req: Request) -> Result<Response, ApiFailure> {
    let started = std::time::Instant::now();
    let headers = req.headers().clone();
    let p = read_params(req).await?;
    let sets = p.matcher_sets()?;
    let recorded_sets = sets.clone();
    if sets.is_empty() {
        return Err(ServerError::BadData("no match[] parameter provided".into()).into());
    }
    let start = p.time_or("start", MIN_TIME_MS)?;
    let end = p.time_or("end", MAX_TIME_MS)?;
    let limit = p.limit()?;
    let backend = s.storage.backend()?;
    let mut all: Vec<Labels> = blocking(move || {
        let q = backend.querier()?;
        let mut set = BTreeSet::new();
        for m in &sets {
            for series in q.select(m, start, end)? {
                set.insert(series.labels);
            }
        }
        Ok(set.into_iter().collect())
    })
    .await?;
    record_match(&s.usage, ReadKind::Series, &recorded_sets, start, end, &headers, all.len() as u64, started.elapsed());
    let mut annotations = Annotations::default();
    truncate(&mut all, limit, &mut annotations);
    let mut out = String::from("[");
    for (i, l) in all.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_labels(&mut out, l);
    }
    out.push(']');
    Ok(success(&out, &annotations))
}

/// Names (or values of `label`) over the union of `sets` (all series when empty).
async fn label_query(
    backend: std::sync::Arc<dyn Backend>,
    label: Option<String>,
    sets: Vec<Vec<Matcher>>,
    start: i64,
    end: i64,
) -> Result<Vec<String>, ServerError> {
    blocking(move || {
        let q = backend.querier()?;
        let sets = if sets.is_empty() { vec![Vec::new()] } else { sets };
        let mut out = BTreeSet::new();
        for m in &sets {
            let part = match &label {
                Some(name) => q.label_values(name, m, start, end)?,
                None => q.label_names(m, start, end)?,
            };
            out.extend(part);
        }
        Ok(out.into_iter().collect())
    })
    .await
}

/// `GET|POST /api/v1/labels?match[]=&start=&end=&limit=`.
pub async fn labels(State(s): State<Shared>, req: Request) -> Result<Response, ApiFailure> {
    let started = std::time::Instant::now();
    let headers = req.headers().clone();
    let p = read_params(req).await?;
    let sets = p.matcher_sets()?;
    let start = p.time_or("start", MIN_TIME_MS)?;
    let end = p.time_or("end", MAX_TIME_MS)?;
    let limit = p.limit()?;
    let recorded_sets = sets.clone();
    let mut names = label_query(s.storage.backend()?, None, sets, start, end).await?;
    record_match(&s.usage, ReadKind::LabelNames, &recorded_sets, start, end, &headers, 0, started.elapsed());
    let mut annotations = Annotations::default();
    truncate(&mut names, limit, &mut annotations);
    Ok(success_serde(&names, &annotations))
}

/// `GET /api/v1/label/{name}/values?match[]=&start=&end=&limit=`; `name` may be `U__`-escaped.
pub async fn label_values(State(s): State<Shared>, Path(name): Path<String>, req: Request) -> Result<Response, ApiFailure> {
    let name = unescape_label_name(&name);
    // Prometheus 3.x validates label names as UTF-8 by default: any non-empty name is valid
    // (Grafana `U__`-escapes exactly the names outside the legacy character set).
    if name.is_empty() {
        return Err(ServerError::BadData(format!("invalid label name: {name:?}")).into());
    }
    let started = std::time::Instant::now();
    let headers = req.headers().clone();
    let p = read_params(req).await?;
    let sets = p.matcher_sets()?;
    let start = p.time_or("start", MIN_TIME_MS)?;
    let end = p.time_or("end", MAX_TIME_MS)?;
    let limit = p.limit()?;
    let recorded_sets = sets.clone();
    let mut values = label_query(s.storage.backend()?, Some(name), sets, start, end).await?;
    record_match(&s.usage, ReadKind::LabelValues, &recorded_sets, start, end, &headers, 0, started.elapsed());
    let mut annotations = Annotations::default();
    truncate(&mut values, limit, &mut annotations);
    Ok(success_serde(&values, &annotations))
}

#[derive(Serialize)]
struct MetadataEntry {
    #[serde(rename = "type")]
    metric_type: &'static str,
    help: String,
    unit: String,
}

/// `GET /api/v1/metadata?metric=&limit=&limit_per_metric=`: `{metric: [{type, help, unit}]}`.
/// One metadata entry is kept per metric (the newest), so `limit_per_metric` never cuts.
pub async fn metadata(State(s): State<Shared>, req: Request) -> Result<Response, ApiFailure> {
    let p = read_params(req).await?;
    let metric = p.non_empty("metric").map(str::to_string);
    let limit = match p.non_empty("limit") {
        None => 0,
        Some(v) => v
            .parse::<i64>()
            .map_err(|_| ServerError::BadData("invalid parameter \"limit\": not a number".into()))?
            .max(0) as usize,
    };
    let backend = s.storage.backend()?;
    let list = blocking(move || Ok(backend.metadata(metric.as_deref(), limit))).await?;
    let map: BTreeMap<String, Vec<MetadataEntry>> = list
        .into_iter()
        .map(|(name, md)| {
            (name, vec![MetadataEntry { metric_type: md.metric_type.as_str(), help: md.help, unit: md.unit }])
        })
        .collect();
    Ok(success_serde(&map, &Annotations::default()))
}
