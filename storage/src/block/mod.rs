//! Persistent blocks.
