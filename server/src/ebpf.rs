//! Wiring of the eBPF HTTP source (`ingest::ebpf`): started once storage is open when
//! `--ebpf.enable` is set, its counters exported on `/metrics`, its status on
//! `/api/v1/status/runtimeinfo`, and a last flush at shutdown before storage closes.
//!
//! A failure to start (no CAP_BPF, no BTF, another architecture) is logged and reported in
//! the status; the server goes on without eBPF, as the source is optional.

use std::sync::Arc;

use ingest::ebpf::{EbpfConfig, EbpfMetrics, PortRanges};
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::MetricType;
use storage::db::Db;

use crate::app::{EbpfState, Shared};
use crate::metrics::ExtraCollector;

/// The source's configuration from the server's.
///
/// # Errors
/// A message naming the bad flag (`--ebpf.open-ports`, `--ebpf.exe-path`).
pub fn ebpf_config(state: &Shared) -> Result<EbpfConfig, String> {
    let c = &state.config;
    let open_ports: PortRanges = match &c.ebpf.open_ports {
        Some(p) => p.parse().map_err(|e| format!("--ebpf.open-ports: {e}"))?,
        None => PortRanges::default(),
    };
    let mut cfg = EbpfConfig {
        enable: true,
        open_ports,
        interval: c.ebpf.interval,
        exclude_ports: vec![c.listen_address.port()],
        ..EbpfConfig::default()
    };
    if let Some(re) = &c.ebpf.exe_path {
        cfg = cfg.with_exe_path(re).map_err(|e| e.to_string())?;
    }
    Ok(cfg)
}

/// Exports the source's counters on `/metrics`.
#[derive(Debug)]
struct EbpfCollector(Arc<EbpfMetrics>);

impl ExtraCollector for EbpfCollector {
    fn encode(&self, enc: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for (name, help, v) in self.0.counters() {
            // prometheus-client appends `_total` to counters itself.
            let name = name.strip_suffix("_total").unwrap_or(name);
            ConstCounter::new(v).encode(enc.encode_descriptor(name, help, None, MetricType::Counter)?)?;
        }
        Ok(())
    }
}

/// Starts the source if enabled, writing into `db`. Must run inside the Tokio runtime.
pub fn start(state: Shared, db: Db) {
    if !state.config.ebpf.enable {
        return;
    }
    let result = ebpf_config(&state).and_then(|cfg| {
        let source = Arc::new(move || db.appender());
        ingest::ebpf::start(cfg, source).map_err(|e| e.to_string())
    });
    match result {
        Ok(handle) => {
            state.metrics.add_extra(Arc::new(EbpfCollector(handle.metrics())));
            *state.ebpf.lock() = EbpfState::Running(Arc::new(handle));
        }
        Err(e) => {
            tracing::error!(error = %e, "eBPF HTTP ingestion not started; continuing without it");
            *state.ebpf.lock() = EbpfState::Failed(e);
        }
    }
}

/// Flushes the source a last time and detaches it (before storage closes).
pub async fn stop(state: &Shared) {
    let prev = std::mem::replace(&mut *state.ebpf.lock(), EbpfState::Disabled);
    if let EbpfState::Running(handle) = prev {
        match Arc::try_unwrap(handle) {
            Ok(h) => match h.shutdown().await {
                Ok(st) => tracing::info!(samples = st.samples, "eBPF source flushed and detached"),
                Err(e) => tracing::warn!(error = %e, "eBPF source final flush failed"),
            },
            Err(_) => tracing::warn!("eBPF source still referenced at shutdown; detaching without a final flush"),
        }
    }
}

/// The source's status for `/api/v1/status/runtimeinfo`.
pub fn status_json(st: &EbpfState) -> serde_json::Value {
    use serde_json::json;
    match st {
        EbpfState::Disabled => json!({"enabled": false, "state": "disabled"}),
        EbpfState::Starting => json!({"enabled": true, "state": "starting"}),
        EbpfState::Failed(e) => json!({"enabled": true, "state": "failed", "error": e}),
        EbpfState::Running(h) => {
            let s = h.status();
            json!({
                "enabled": true,
                "state": "running",
                "attachedPrograms": s.attached_programs,
                "eventsRead": s.events_read,
                "eventsDropped": s.events_dropped,
                "eventsUnparsable": s.events_unparsable,
                "requests": s.requests,
                "lastError": s.last_error,
            })
        }
    }
}
