//! Process lifecycle: bind, serve, open storage in the background, shut down gracefully.
//!
//! Order (why): the listener is bound first so that `/-/healthy` and `/-/ready` (503) answer
//! during a long WAL replay; storage opens on the blocking pool and is published when done.
//! On SIGTERM or SIGINT the server stops accepting, lets in-flight requests finish (bounded by
//! [`SHUTDOWN_GRACE`]), and then syncs the WAL and closes storage, so every write acknowledged
//! with 204 is on disk before the process exits.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum_server::Handle;

use crate::app::{router, AppState, Shared};
use crate::auth::{Authenticator, Scope};
use crate::backend::Backend;
use crate::config::Config;
use crate::web_config::WebConfig;

/// How long in-flight requests may take to finish after a shutdown signal.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Bad configuration or web configuration.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// TLS setup failed.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// Binding or serving failed.
    #[error("listening on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Storage could not be opened or closed cleanly.
    #[error("storage: {0}")]
    Storage(String),
}

/// An opened database and what to start once it is published (sources that append into it,
/// such as eBPF; runs inside the runtime).
pub struct Opened {
    /// The database.
    pub backend: Arc<dyn Backend>,
    /// Called once with the state, on the blocking pool inside the runtime, before the backend
    /// is published (readiness waits for it).
    pub on_ready: Box<dyn FnOnce(Shared) + Send>,
}

/// Opens the database (blocking; runs on the blocking pool).
pub type Opener = Box<dyn FnOnce(&Config) -> Result<Opened, String> + Send>;

/// Resolves when SIGTERM or SIGINT arrives.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("received SIGINT, shutting down"),
        () = term => tracing::info!("received SIGTERM, shutting down"),
    }
}

/// Runs the server until a shutdown signal, then closes storage.
///
/// # Errors
/// [`RunError`] for configuration, TLS, listener or storage failures; a storage open failure
/// stops the server (as Prometheus exits when the TSDB cannot be opened).
pub async fn run(config: Config, open: Opener) -> Result<(), RunError> {
    let web = match &config.web_config_file {
        Some(p) => WebConfig::load(p)?,
        None => WebConfig::default(),
    };
    let tls = match &web.tls_server_config {
        Some(t) => Some(crate::tls::server_config(t)?),
        None => None,
    };
    let auth = Authenticator::new(&web);
    for (scope, name) in [(Scope::Read, "read (query API, /metrics)"), (Scope::Write, "write (/api/v1/write)")] {
        if auth.protects(scope) {
            tracing::info!(scope = name, "authentication required");
        } else if auth.protects(Scope::Read) || auth.protects(Scope::Write) {
            tracing::warn!(scope = name, "no credentials grant this scope: it is open to anyone");
        }
    }
    let addr = config.listen_address;
    let listener = std::net::TcpListener::bind(addr).map_err(|source| RunError::Listen { addr, source })?;
    listener.set_nonblocking(true).map_err(|source| RunError::Listen { addr, source })?;
    let local = listener.local_addr().map_err(|source| RunError::Listen { addr, source })?;
    let state: Shared = Arc::new(AppState::new(config, auth, tls.is_some()));
    let app = router(state.clone());
    let handle: Handle<SocketAddr> = Handle::new();

    // Open storage in the background; a failure shuts the server down.
    let (open_failed_tx, open_failed_rx) = tokio::sync::oneshot::channel::<String>();
    let open_task = {
        let state = state.clone();
        tokio::spawn(async move {
            let cfg = state.config.clone();
            let started = std::time::Instant::now();
            match tokio::task::spawn_blocking(move || open(&cfg)).await {
                Ok(Ok(opened)) => {
                    state.metrics.set_storage(opened.backend.storage_metrics());
                    // Sources that append (eBPF) start before readiness is announced, so that
                    // a ready server reports their final state; loading them may block.
                    let st = state.clone();
                    let on_ready = opened.on_ready;
                    if let Err(e) = tokio::task::spawn_blocking(move || on_ready(st)).await {
                        tracing::error!(error = %e, "starting optional sources failed");
                    }
                    state.storage.set(opened.backend);
                    state.metrics.ready.set(1);
                    tracing::info!(duration_ms = started.elapsed().as_millis() as u64, "storage opened, server is ready");
                }
                Ok(Err(e)) => {
                    let _ = open_failed_tx.send(e);
                }
                Err(e) => {
                    let _ = open_failed_tx.send(format!("open task failed: {e}"));
                }
            }
        })
    };
    let stop_reason = {
        let handle = handle.clone();
        tokio::spawn(async move {
            // The sender is dropped without a message when the open succeeds: then only a
            // signal stops the server.
            let open_failed = async {
                match open_failed_rx.await {
                    Ok(msg) => msg,
                    Err(_) => std::future::pending::<String>().await,
                }
            };
            let reason = tokio::select! {
                () = shutdown_signal() => None,
                msg = open_failed => {
                    tracing::error!(error = %msg, "opening storage failed; shutting down");
                    Some(msg)
                }
            };
            handle.graceful_shutdown(Some(SHUTDOWN_GRACE));
            reason
        })
    };

    tracing::info!(address = %local, tls = tls.is_some(), "listening");
    let served = match tls {
        Some(cfg) => {
            let rustls = axum_server::tls_rustls::RustlsConfig::from_config(cfg);
            axum_server::from_tcp_rustls(listener, rustls)
                .map_err(|source| RunError::Listen { addr, source })?
                .handle(handle)
                .serve(app.into_make_service())
                .await
        }
        None => {
            axum_server::from_tcp(listener)
                .map_err(|source| RunError::Listen { addr, source })?
                .handle(handle)
                .serve(app.into_make_service())
                .await
        }
    };
    served.map_err(|source| RunError::Listen { addr, source })?;
    tracing::info!("HTTP server stopped; closing storage");
    let open_error = stop_reason.await.ok().flatten();
    // A signal during the WAL replay: let the open finish, so that it is closed cleanly.
    let _ = open_task.await;
    crate::ebpf::stop(&state).await;
    {
        // Usage recorded so far is made durable before the database closes.
        let st = state.clone();
        if let Err(e) = tokio::task::spawn_blocking(move || crate::usage::stop(&st.usage)).await {
            tracing::error!(error = %e, "stopping usage analytics failed");
        }
    }
    if let Some(backend) = state.storage.get().cloned() {
        tokio::task::spawn_blocking(move || backend.close())
            .await
            .map_err(|e| RunError::Storage(format!("close task failed: {e}")))?
            .map_err(|e| RunError::Storage(format!("closing: {e}")))?;
        tracing::info!("storage closed");
    }
    match open_error {
        Some(e) => Err(RunError::Storage(format!("opening: {e}"))),
        None => Ok(()),
    }
}
