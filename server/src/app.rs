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
    /// The usage analytics service once storage is open.
    pub usage: crate::usage::http::UsageSlot,
    /// What writes `/api/v1/admin/tsdb/snapshot` snapshots, once storage is open.
    pub snapshots: crate::api::admin::SnapshotSlot,
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
            usage: Arc::new(std::sync::OnceLock::new()),
            snapshots: crate::api::admin::SnapshotSlot::default(),
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
        .merge(crate::usage::http::routes(state.usage.clone()))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_read));
    let write = Router::new()
        .route("/api/v1/write", post(crate::write::handler))
        .merge(crate::api::admin_routes())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{Backend, TsdbStats, WriteInput, WriteOutcome};
    use crate::config::{Config, FileConfig, Flags};
    use crate::error::ServerError;
    use axum::body::Body;
    use ingest::remote_write::{Decoder, Limits, NoopAppender};
    use storage::metrics::StorageMetrics;
    use storage::{Labels, Metadata, Querier, Series, StorageError};
    use tower::ServiceExt;

    /// A backend over a fixed list of series.
    struct Fixed(Vec<Series>);

    struct FixedQuerier(Vec<Series>);

    impl Querier for FixedQuerier {
        fn select(&self, m: &[storage::Matcher], _: i64, _: i64) -> storage::Result<Vec<Series>> {
            Ok(self
                .0
                .iter()
                .filter(|s| m.iter().all(|m| m.matches(s.labels.get(&m.name).unwrap_or(""))))
                .cloned()
                .collect())
        }
        fn label_names(&self, _: &[storage::Matcher], _: i64, _: i64) -> storage::Result<Vec<String>> {
            Ok(vec![])
        }
        fn label_values(&self, _: &str, _: &[storage::Matcher], _: i64, _: i64) -> storage::Result<Vec<String>> {
            Ok(vec![])
        }
    }

    impl Backend for Fixed {
        fn querier(&self) -> Result<Arc<dyn Querier>, StorageError> {
            Ok(Arc::new(FixedQuerier(self.0.clone())))
        }
        fn remote_write(&self, d: &mut Decoder, i: WriteInput<'_>, l: &Limits) -> Result<WriteOutcome, ServerError> {
            crate::backend::ingest_request(NoopAppender::default(), d, i, l)
        }
        fn metadata(&self, _: Option<&str>, _: usize) -> Vec<(String, Metadata)> {
            vec![]
        }
        fn exemplars(&self, _: &[Vec<storage::Matcher>], _: i64, _: i64) -> Result<Vec<(Labels, Vec<storage::Exemplar>)>, StorageError> {
            Ok(vec![])
        }
        fn tsdb_stats(&self, _: usize) -> TsdbStats {
            TsdbStats::default()
        }
        fn storage_metrics(&self) -> Arc<StorageMetrics> {
            Arc::new(StorageMetrics::default())
        }
        fn close(&self) -> Result<(), StorageError> {
            Ok(())
        }
    }

    fn state() -> Shared {
        let c = Config::resolve(Flags::default(), FileConfig::default()).unwrap();
        Arc::new(AppState::new(c, Authenticator::open(), false))
    }

    async fn get(s: &Shared, uri: &str) -> (StatusCode, String) {
        let r = router(s.clone()).oneshot(Request::get(uri).body(Body::empty()).unwrap()).await.unwrap();
        let status = r.status();
        let body = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn not_ready_until_storage_is_published() {
        let s = state();
        assert_eq!(get(&s, "/-/healthy").await.0, StatusCode::OK);
        assert_eq!(get(&s, "/-/ready").await.0, StatusCode::SERVICE_UNAVAILABLE);
        let (st, body) = get(&s, "/api/v1/query?query=up").await;
        assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("\"errorType\":\"unavailable\""), "{body}");
        let series = Series::from_samples(Labels::from_pairs([("__name__", "up"), ("job", "a")]), &[(1000, 1.0)]);
        s.storage.set(Arc::new(Fixed(vec![series])));
        assert_eq!(get(&s, "/-/ready").await.0, StatusCode::OK);
        let (st, body) = get(&s, "/api/v1/query?query=up&time=1").await;
        assert_eq!(st, StatusCode::OK);
        assert_eq!(
            body,
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"__name__":"up","job":"a"},"value":[1,"1"]}]}}"#
        );
        let (st, body) = get(&s, "/nope").await;
        assert_eq!((st, body.as_str()), (StatusCode::NOT_FOUND, ""));
    }

    /// The second run of a cheap query is evaluated directly or in place (`api::query_cost`);
    /// it must answer exactly as the first, pooled run did, for instant and range queries and
    /// errors.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn repeated_queries_answer_the_same_in_place() {
        let s = state();
        let series = Series::from_samples(
            Labels::from_pairs([("__name__", "up"), ("job", "in-place-test")]),
            &[(1000, 1.0), (61_000, 2.0)],
        );
        s.storage.set(Arc::new(Fixed(vec![series])));
        use crate::api::query_cost::{self, key};
        let costs = crate::api::query::costs();
        for (uri, text, steps) in [
            (
                "/api/v1/query?query=sum%20by%20(job)%20(up%7Bjob%3D%22in-place-test%22%7D)&time=62",
                "sum by (job) (up{job=\"in-place-test\"})",
                None,
            ),
            (
                "/api/v1/query_range?query=up%7Bjob%3D%22in-place-test%22%7D%20*%202&start=0&end=120&step=30",
                "up{job=\"in-place-test\"} * 2",
                Some(5),
            ),
        ] {
            let k = key(costs, text, steps);
            // The first run goes to the pool (nothing recorded yet) and records its cost.
            assert_eq!(costs.last(k), None);
            let first = get(&s, uri).await;
            assert_eq!(first.0, StatusCode::OK, "{}", first.1);
            assert!(first.1.contains("in-place-test"), "{}", first.1);
            assert!(costs.last(k).is_some(), "{uri}: cost recorded under the handler's key");
            // Recorded as cheap (a debug build on a busy machine may take longer than the
            // limits), so each repeat runs directly on the task, then through block_in_place.
            for last in [query_cost::DIRECT_MAX, query_cost::INLINE_MAX] {
                for _ in 0..2 {
                    costs.record(k, last, 1);
                    let before = query_cost::in_place_runs();
                    assert_eq!(get(&s, uri).await, first, "{uri}");
                    assert!(query_cost::in_place_runs() > before, "{uri}: not run in place");
                }
            }
        }
        // A failing query is remembered as expensive (and wide), so it keeps the pool.
        let uri = "/api/v1/query?query=rate(up%7Bjob%3D%22in-place-test%22%7D)&time=62";
        let k = key(costs, "rate(up{job=\"in-place-test\"})", None);
        let first = get(&s, uri).await;
        assert_eq!(first.0, StatusCode::BAD_REQUEST, "{}", first.1);
        assert!(costs.last(k).is_some_and(|(d, wide)| d > query_cost::INLINE_MAX && wide));
        assert_eq!(get(&s, uri).await, first);
    }
}
