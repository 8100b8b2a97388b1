//! Why eBPF ingestion could not start or stopped. The server logs a start error in one line
//! and runs with eBPF disabled.

/// A failure of [`super::start`] or of the running ingestion.
#[derive(Debug, thiserror::Error)]
pub enum EbpfError {
    /// A configuration value is invalid; the message names the flag.
    #[error("eBPF config: {0}")]
    Config(String),
    /// The kernel programs support only this architecture's syscall numbers.
    #[error("eBPF HTTP ingestion supports x86_64 only (this is {arch})")]
    UnsupportedArch {
        /// `std::env::consts::ARCH`.
        arch: &'static str,
    },
    /// The process lacks capabilities the programs need.
    #[error(
        "eBPF disabled: the process lacks {}; run as root, or grant them with `setcap {}+ep <hearth binary>` (or the container's cap_add)",
        missing.join(" and "),
        missing.iter().map(|c| c.to_lowercase()).collect::<Vec<_>>().join(",")
    )]
    MissingCapabilities {
        /// Capability names, e.g. `["CAP_BPF", "CAP_PERFMON"]`.
        missing: Vec<&'static str>,
    },
    /// The kernel exposes no BTF, which CO-RE relocations and `tp_btf` need.
    #[error("eBPF disabled: no kernel BTF at {path} ({reason}); use a kernel built with CONFIG_DEBUG_INFO_BTF=y")]
    MissingBtf {
        /// `/sys/kernel/btf/vmlinux`.
        path: &'static str,
        /// The I/O error.
        reason: String,
    },
    /// `start` was called outside a Tokio runtime.
    #[error("eBPF ingestion must be started inside a Tokio runtime")]
    NoRuntime,
    /// Loading the object or one of its maps failed.
    #[error("eBPF load: {0}")]
    Load(String),
    /// Attaching a program failed.
    #[error("eBPF attach {program}: {reason}")]
    Attach {
        /// Program name.
        program: String,
        /// The kernel's or loader's reason.
        reason: String,
    },
    /// A map operation failed while running.
    #[error("eBPF map {map}: {reason}")]
    Map {
        /// Map name.
        map: &'static str,
        /// The reason.
        reason: String,
    },
    /// Writing samples failed.
    #[error("eBPF flush: {0}")]
    Storage(#[from] storage::StorageError),
    /// The ingestion task has stopped.
    #[error("eBPF ingestion has stopped")]
    Stopped,
}
