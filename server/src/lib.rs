//! The `hearth` server: wires storage, ingest and query together, owns configuration, and
//! serves the HTTP layer (remote-write, the Prometheus query API, health and telemetry).
//!
//! The HTTP layer sees the storage only through `storage::db::Db`'s appender and querier; every
//! error that reaches a client is mapped to an HTTP status in one place, [`error`].
#![warn(missing_docs)]

pub mod auth;
pub mod config;
pub mod error;
pub mod logging;
pub mod metrics;
pub mod tls;
pub mod units;
pub mod web_config;
