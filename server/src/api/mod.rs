//! The Prometheus HTTP query API (`/api/v1/...`, Prometheus `web/api/v1/api.go`).
//!
//! Every endpoint accepts GET with a query string and POST with a form-encoded body
//! ([`params`]); results use Prometheus' envelope and formats ([`json`]); failures go through
//! [`crate::error::ApiFailure`], so status codes and `errorType` come from the one mapping.
//!
//! - [`query`]: `query`, `query_range`, `query_exemplars`, `format_query`;
//! - [`series`]: `series`, `labels`, `label/{name}/values`, `metadata`;
//! - [`status`]: `status/buildinfo`, `status/tsdb`, `status/runtimeinfo`, `status/flags`;
//! - [`admin`]: `admin/tsdb/snapshot` (write scope, [`admin_routes`]).

pub mod admin;
pub mod json;
pub mod params;
pub mod query;
pub mod query_cost;
pub mod series;
pub mod status;

use axum::extract::Request;
use axum::http::{header, Method};
use axum::routing::{get, post};
use axum::Router;

use crate::app::Shared;
use crate::error::ServerError;
use params::Params;

/// Largest form body accepted by the query API, bytes (Prometheus has no limit; long
/// `match[]` lists from Grafana stay far below this).
const MAX_FORM_BYTES: usize = 8 << 20;

/// The query API's routes.
pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/api/v1/query", get(query::instant).post(query::instant))
        .route("/api/v1/query_range", get(query::range).post(query::range))
        .route("/api/v1/format_query", get(query::format).post(query::format))
        .route("/api/v1/query_exemplars", get(query::exemplars).post(query::exemplars))
        .route("/api/v1/series", get(series::series).post(series::series))
        .route("/api/v1/labels", get(series::labels).post(series::labels))
        .route("/api/v1/label/{name}/values", get(series::label_values))
        .route("/api/v1/metadata", get(series::metadata))
        .route("/api/v1/status/buildinfo", get(status::buildinfo))
        .route("/api/v1/status/tsdb", get(status::tsdb))
        .route("/api/v1/status/runtimeinfo", get(status::runtimeinfo))
        .route("/api/v1/status/flags", get(status::flags))
}

/// The admin API's routes (they change what is on disk: the router puts them behind the write
/// scope).
pub fn admin_routes() -> Router<Shared> {
    Router::new().route("/api/v1/admin/tsdb/snapshot", post(admin::snapshot).put(admin::snapshot))
}

/// Reads the parameters of a request: the query string, plus the body of a form-encoded POST.
///
/// # Errors
/// [`ServerError::BadData`] for an unreadable or oversized body.
pub async fn read_params(req: Request) -> Result<Params, ServerError> {
    let (parts, body) = req.into_parts();
    let query = parts.uri.query().map(str::to_string);
    let is_form = parts.method == Method::POST
        && parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("application/x-www-form-urlencoded"));
    let body = if is_form {
        Some(
            axum::body::to_bytes(body, MAX_FORM_BYTES)
                .await
                .map_err(|e| ServerError::BadData(format!("error parsing form: {e}")))?,
        )
    } else {
        None
    };
    Ok(Params::new(query.as_deref(), body.as_deref()))
}
