//! The router and the state every handler shares: which route needs which scope, per-request
//! metrics, and the `/-/healthy`, `/-/ready` and `/metrics` endpoints.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::auth::{AuthError, Authenticator, Scope};
use crate::config::Config;
use crate::metrics::ServerMetrics;
use crate::storage_slot::StorageSlot;

/// State shared by all handlers, behind an `Arc`.
#[derive(Debug)]
pub struct AppState {
    /// The resolved configuration.
    pub config: Config,
    /// Self-metrics.
    pub metrics: Arc<ServerMetrics>,
    /// Credential checks.
    pub auth: Arc<Authenticator>,
    /// The database once open.
    pub storage: StorageSlot,
    /// When the process started.
    pub started: SystemTime,
    /// Whether the listener serves TLS.
    pub tls: bool,
    /// The remote-write receiver (decoder pool and limits).
    pub write: crate::write::Receiver,
    /// Query permits: `--query.max-concurrency` evaluations at once.
    pub queries: tokio::sync::Semaphore,
    /// The eBPF source's state.
    pub ebpf: parking_lot::Mutex<EbpfState>,
}

/// Where the eBPF source stands, for `/api/v1/status/runtimeinfo`.
#[derive(Debug)]
pub enum EbpfState {
    /// `--ebpf.enable` is off.
    Disabled,
    /// Waiting for storage to open.
    Starting,
    /// Attached and collecting.
    Running(Arc<ingest::ebpf::EbpfHandle>),
    /// Could not start (no privileges, no BTF...): the message.
    Failed(String),
}

impl AppState {
    /// A new state from the configuration, with storage not yet open.
    pub fn new(config: Config, auth: Authenticator, tls: bool) -> AppState {
        let ebpf = if config.ebpf.enable { EbpfState::Starting } else { EbpfState::Disabled };
        AppState {
            write: crate::write::Receiver::new(&config.limits),
            queries: tokio::sync::Semaphore::new(config.query.max_concurrency),
            config,
            metrics: Arc::new(ServerMetrics::new()),
            auth: Arc::new(auth),
            storage: StorageSlot::default(),
            started: SystemTime::now(),
            tls,
            ebpf: parking_lot::Mutex::new(ebpf),
        }
    }

    /// The eBPF source's status as JSON: `{"enabled", "state", "error"?}`.
    pub fn ebpf_status(&self) -> serde_json::Value {
        crate::ebpf::status_json(&self.ebpf.lock())
    }
}

/// Shared handle to [`AppState`].
pub type Shared = Arc<AppState>;

/// Builds the full router.
pub fn router(state: Shared) -> Router {
    let read = Router::new()
        .route("/metrics", get(metrics_handler))
        .merge(crate::api::routes())
        .route_layer(middleware::from_fn_with_state(state.clone(), require_read));
    let write = Router::new()
        .route("/api/v1/write", post(crate::write::handler))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_write));
    Router::new()
        .route("/-/healthy", get(healthy).head(healthy))
        .route("/-/ready", get(ready).head(ready))
        .merge(read)
        .merge(write)
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

async fn healthy() -> &'static str {
    "Hearth is Healthy.\n"
}

async fn ready(State(s): State<Shared>) -> Response {
    if s.storage.get().is_some() {
        (StatusCode::OK, "Hearth is Ready.\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable\n").into_response()
    }
}

async fn metrics_handler(State(s): State<Shared>) -> Response {
    let mut r = s.metrics.encode().into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    r
}

async fn require(s: &Shared, scope: Scope, req: Request, next: Next) -> Response {
    match s.auth.check(req.headers(), scope).await {
        Ok(()) => next.run(req).await,
        Err(e) => {
            let status = match e {
                AuthError::Forbidden => StatusCode::FORBIDDEN,
                AuthError::Missing | AuthError::Invalid => StatusCode::UNAUTHORIZED,
            };
            let mut r = (status, format!("{e}\n")).into_response();
            if status == StatusCode::UNAUTHORIZED {
                r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic"));
            }
            r
        }
    }
}

async fn require_read(State(s): State<Shared>, req: Request, next: Next) -> Response {
    require(&s, Scope::Read, req, next).await
}

async fn require_write(State(s): State<Shared>, req: Request, next: Next) -> Response {
    require(&s, Scope::Write, req, next).await
}

/// Counts every request by route pattern and status, and times it.
async fn observe(State(s): State<Shared>, req: Request, next: Next) -> Response {
    let handler = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "other".to_string(), |p| p.as_str().to_string());
    let start = Instant::now();
    let r = next.run(req).await;
    s.metrics.observe_request(&handler, r.status().as_u16(), start.elapsed().as_secs_f64());
    r
}
