//! What the kernel requires, checked before loading so that the error says exactly what is
//! missing (the kernel's own answer is a bare EPERM).
//!
//! `tp_btf` programs need CAP_BPF (maps, programs) and CAP_PERFMON (tracing programs, reading
//! kernel memory); CAP_SYS_ADMIN implies both. CO-RE relocation needs the kernel's BTF at
//! `/sys/kernel/btf/vmlinux`.

use super::error::EbpfError;

/// Capability bit numbers (linux/capability.h).
const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// Where the kernel's BTF lives.
pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

/// The capabilities missing from an effective set (`CapEff` of /proc/self/status).
pub fn missing_capabilities(cap_eff: u64) -> Vec<&'static str> {
    let has = |bit: u32| cap_eff & (1u64 << bit) != 0;
    if has(CAP_SYS_ADMIN) {
        return Vec::new();
    }
    let mut missing = Vec::new();
    if !has(CAP_BPF) {
        missing.push("CAP_BPF");
    }
    if !has(CAP_PERFMON) {
        missing.push("CAP_PERFMON");
    }
    missing
}

/// Parses `CapEff:` (hex) from the text of /proc/self/status.
pub fn parse_cap_eff(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
}

/// Checks architecture, capabilities and BTF.
///
/// # Errors
/// [`EbpfError::UnsupportedArch`], [`EbpfError::MissingCapabilities`] or
/// [`EbpfError::MissingBtf`].
pub fn check() -> Result<(), EbpfError> {
    if std::env::consts::ARCH != "x86_64" {
        return Err(EbpfError::UnsupportedArch { arch: std::env::consts::ARCH });
    }
    // An unreadable status file leaves the decision to the kernel (the load then fails).
    if let Some(cap_eff) = std::fs::read_to_string("/proc/self/status").ok().as_deref().and_then(parse_cap_eff) {
        let missing = missing_capabilities(cap_eff);
        if !missing.is_empty() {
            return Err(EbpfError::MissingCapabilities { missing });
        }
    }
    if let Err(e) = std::fs::File::open(VMLINUX_BTF) {
        return Err(EbpfError::MissingBtf { path: VMLINUX_BTF, reason: e.to_string() });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capability_sets() {
        assert!(missing_capabilities(1 << CAP_SYS_ADMIN).is_empty());
        assert!(missing_capabilities((1 << CAP_BPF) | (1 << CAP_PERFMON)).is_empty());
        assert_eq!(missing_capabilities(1 << CAP_BPF), vec!["CAP_PERFMON"]);
        assert_eq!(missing_capabilities(0), vec!["CAP_BPF", "CAP_PERFMON"]);
    }

    #[test]
    fn parses_status_and_formats_the_error() {
        let status = "Name:\thearth\nCapInh:\t0000000000000000\nCapEff:\t0000000000000000\n";
        let eff = parse_cap_eff(status).expect("CapEff present");
        let e = EbpfError::MissingCapabilities { missing: missing_capabilities(eff) };
        assert_eq!(
            e.to_string(),
            "eBPF disabled: the process lacks CAP_BPF and CAP_PERFMON; run as root, or grant them with \
             `setcap cap_bpf,cap_perfmon+ep <hearth binary>` (or the container's cap_add)"
        );
        assert_eq!(parse_cap_eff("CapEff:\t000001ffffffffff\n"), Some(0x1ff_ffff_ffff));
        assert_eq!(parse_cap_eff("nothing"), None);
    }
}
