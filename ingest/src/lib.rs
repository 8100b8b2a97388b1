//! Remote-write and eBPF events into storage appends.
