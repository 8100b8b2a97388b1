//! eBPF HTTP events into series.
