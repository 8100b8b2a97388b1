//! Hearth's end-to-end benchmark harness: the side-by-side view against Prometheus and
//! VictoriaMetrics. Criterion micro-benchmarks live in each crate's `benches/`; this crate
//! drives whole servers over HTTP.
//!
//! - [`workload`]: a deterministic, node-exporter / kube-state-metrics shaped series generator.
//! - [`requests`]: groups its samples into remote-write requests the way Prometheus' queue
//!   manager does and encodes them (ingest's encoder) before anything is timed.
//! - [`load`]: sends pre-encoded requests over several keep-alive connections and reports
//!   samples/s, request latency percentiles and HTTP status counts.
//! - [`procstat`]: CPU seconds, peak RSS (`/proc`) and bytes on disk of a server.
//! - [`systems`]: starts and stops Prometheus, VictoriaMetrics and Hearth on loopback ports.
//! - [`queries`]: Grafana-style queries, their timing and answer comparison.
//! - [`settle`]: waits until every server is idle before the queries.
//! - [`reuse`]: keeps a run's data directories for query-only runs on them.
//! - [`compare`]: the `compare` run that ties it all together, and [`report`] its table.
#![warn(missing_docs)]

pub mod compare;
pub mod disk;
pub mod error;
pub mod load;
pub mod machine;
pub mod procstat;
pub mod queries;
pub mod report;
pub mod requests;
pub mod reuse;
pub mod settle;
pub mod systems;
pub mod units;
pub mod workload;

pub use error::{BenchError, Result};
