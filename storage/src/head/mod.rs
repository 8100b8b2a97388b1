//! The in-memory head block.
