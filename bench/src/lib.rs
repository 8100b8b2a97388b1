//! End-to-end benchmark harness.
