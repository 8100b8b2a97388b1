//! Compiles `bpf/http.bpf.c` with clang when it is available, else uses the checked-in object
//! `bpf/http.bpf.o`, so that a machine without clang still builds.
//!
//! `HEARTH_EBPF_CLANG` chooses: unset means `clang` from `PATH` (falling back to the checked-in
//! object when it is missing or fails); a path means that clang (a failure is then an error);
//! `off` means always the checked-in object.
//!
//! The compile is deterministic: it runs in `bpf/` on the relative file name with
//! `-fdebug-compilation-dir=.`, so the object depends only on the sources and the clang
//! version, never on where the repository lives. `tests/object.rs` checks that the checked-in
//! object equals a fresh compile when the clang version matches the one recorded in
//! `bpf/http.bpf.o.clang-version`.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The flags; changing them changes the object (regenerate it, see tests/object.rs).
const CLANG_ARGS: &[&str] = &[
    "-O2",
    "-g",
    "-target",
    "bpf",
    "-Wall",
    "-Werror",
    "-fdebug-compilation-dir=.",
    "-c",
    "http.bpf.c",
    "-o",
];

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("http.bpf.o");
    let bpf_dir = manifest.join("bpf");
    for f in ["http.bpf.c", "http_scan.h", "http_packet.h", "http_sock.h", "http_event.h", "hearth_bpf.h", "http.bpf.o", "http.bpf.o.clang-version"] {
        println!("cargo:rerun-if-changed=bpf/{f}");
    }
    println!("cargo:rerun-if-env-changed=HEARTH_EBPF_CLANG");

    let choice = env::var("HEARTH_EBPF_CLANG").ok();
    let (clang, required) = match choice.as_deref() {
        Some("off") => (None, false),
        Some(path) if !path.is_empty() => (Some(path.to_string()), true),
        _ => (Some("clang".to_string()), false),
    };

    if let Some(clang) = clang {
        match compile(&clang, &bpf_dir, &out) {
            Ok(version) => {
                println!("cargo:rustc-env=HEARTH_EBPF_OBJECT_SOURCE=clang");
                println!("cargo:rustc-env=HEARTH_EBPF_CLANG_VERSION={version}");
                return;
            }
            Err(e) if required => panic!("HEARTH_EBPF_CLANG={clang}: {e}"),
            Err(e) => println!("cargo:warning=ebpf: {e}; using the checked-in bpf/http.bpf.o"),
        }
    }
    std::fs::copy(bpf_dir.join("http.bpf.o"), &out).expect("copy the checked-in bpf/http.bpf.o");
    println!("cargo:rustc-env=HEARTH_EBPF_OBJECT_SOURCE=checked-in");
    println!("cargo:rustc-env=HEARTH_EBPF_CLANG_VERSION=");
}

/// Runs clang; returns its version line.
fn compile(clang: &str, bpf_dir: &Path, out: &Path) -> Result<String, String> {
    let version = Command::new(clang)
        .arg("--version")
        .output()
        .map_err(|e| format!("{clang} not runnable ({e})"))?;
    let version = String::from_utf8_lossy(&version.stdout).lines().next().unwrap_or("").trim().to_string();
    let status = Command::new(clang)
        .current_dir(bpf_dir)
        .args(CLANG_ARGS)
        .arg(out)
        .status()
        .map_err(|e| format!("{clang} failed to start ({e})"))?;
    if !status.success() {
        return Err(format!("{clang} failed on bpf/http.bpf.c ({status})"));
    }
    Ok(version)
}
