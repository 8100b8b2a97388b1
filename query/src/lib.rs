//! Hearth's PromQL engine.
//!
//! Queries are parsed with `promql-parser` and evaluated with Prometheus 3.x semantics over the
//! storage read API ([`storage::Querier`], adapted by [`source::QuerierSource`]) or any other
//! [`source::SampleSource`] (such as [`mem::MemStorage`]).
//!
//! # Design
//! * Every node evaluates to a matrix over all steps (one code path for instant and range
//!   queries; an instant query is a one-step range), as Prometheus' evaluator does.
//! * A selector reads each series once into column buffers; steps binary-search them and range
//!   functions see windows as slices, so hot paths allocate nothing per sample.
//! * Range functions run in parallel across series (rayon) when there are enough of them.
//! * Warnings and infos are collected as [`value::Annotations`] next to the result, with
//!   Prometheus' texts; errors are [`QueryError`] variants mapped one-to-one to Prometheus' API
//!   error types.
//! * `__name__` removal is delayed to the end of evaluation (Prometheus
//!   `EnableDelayedNameRemoval`), so `label_replace(..., "__name__", ...)` can keep it.
//!
//! # Modules
//! - [`engine`]: [`Engine`], [`EngineOptions`], parsing and result shaping.
//! - [`value`]: result types.
//! - [`source`], [`mem`]: where samples come from.
//! - [`analysis`]: selectors and labels a query uses (for usage analytics).
//! - `eval`: the evaluator, split by concern (selectors, subqueries, operators,
//!   aggregations, functions).
//! - `histogram`: native histogram arithmetic.
#![warn(missing_docs)]

pub mod analysis;
pub mod engine;
pub mod error;
mod eval;
mod histogram;
pub mod mem;
mod preprocess;
pub mod source;
pub mod value;

pub use analysis::{analyze, QueryUsage, SelectorUse};
pub use engine::{parse, parse_with, Engine, EngineOptions};
pub use error::{QueryError, Result};
pub use value::{Annotations, FPoint, HPoint, Matrix, QueryResult, Sample, Series, Value, Vector};
