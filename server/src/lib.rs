//! The `hearth` server: wires storage, ingest and query together, owns configuration, and
//! serves the HTTP layer (remote-write, the Prometheus query API, health and telemetry).
//!
//! The HTTP layer sees the database only through [`backend::Backend`]; every error that
//! reaches a client is mapped to an HTTP status in one place, [`error::ServerError::status`].
//!
//! # Modules
//! - [`config`], [`units`], [`web_config`]: flags, the YAML file, Prometheus' web config.
//! - [`server`]: lifecycle (bind, background storage open, graceful shutdown); [`tls`].
//! - [`app`]: router, shared state, auth middleware ([`auth`]), health and `/metrics`.
//! - [`write`]: `POST /api/v1/write`; [`api`]: the query API.
//! - [`metrics`]: self-metrics; [`logging`]: logfmt / JSON logs.
#![warn(missing_docs)]

pub mod api;
pub mod app;
pub mod auth;
pub mod backend;
pub mod backend_db;
pub mod config;
pub mod ebpf;
pub mod error;
pub mod logging;
pub mod metrics;
pub mod server;
pub mod storage_slot;
pub mod tls;
pub mod units;
pub mod usage;
pub mod web_config;
pub mod write;
