//! The database: the head plus the persistent blocks, and their upkeep.

pub mod merge;

pub use merge::{merge_series, MergeQuerier};
