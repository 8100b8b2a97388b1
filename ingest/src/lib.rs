//! Turns bytes from the outside into storage appends: Prometheus remote-write requests
//! ([`remote_write`]) and kernel events from the eBPF ring buffer ([`ebpf`]). This is the only
//! crate that sees prost, snap and aya.

#![warn(missing_docs)]

pub mod ebpf;
pub mod remote_write;
