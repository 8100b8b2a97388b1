//! The checked-in `bpf/http.bpf.o` must be what its source compiles to, so that a machine
//! without clang runs the same program as one with it.
//!
//! When this build compiled the object with clang (`ebpf::OBJECT_SOURCE == Clang`) and that
//! clang's version equals the one recorded in `bpf/http.bpf.o.clang-version`, the compiled
//! object must equal the checked-in one byte for byte (the compile is deterministic: see
//! build.rs). Other clang versions produce other bytes; the test then says so and passes.
//!
//! Regenerate after editing the C: `HEARTH_EBPF_UPDATE_OBJECT=1 cargo test -p ebpf --test object`.

use std::path::PathBuf;

fn bpf_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("bpf")
}

#[test]
fn checked_in_object_matches_source() {
    if ebpf::OBJECT_SOURCE != ebpf::ObjectSource::Clang {
        println!("skipped: no clang in this build (the checked-in object is in use)");
        return;
    }
    let dir = bpf_dir();
    if std::env::var_os("HEARTH_EBPF_UPDATE_OBJECT").is_some() {
        std::fs::write(dir.join("http.bpf.o"), ebpf::object()).expect("write bpf/http.bpf.o");
        std::fs::write(dir.join("http.bpf.o.clang-version"), format!("{}\n", ebpf::CLANG_VERSION))
            .expect("write bpf/http.bpf.o.clang-version");
    }
    let recorded = std::fs::read_to_string(dir.join("http.bpf.o.clang-version")).expect("read clang-version");
    if recorded.trim() != ebpf::CLANG_VERSION {
        println!(
            "skipped: clang here is {:?}, the object was made by {:?}; bytes differ across versions",
            ebpf::CLANG_VERSION,
            recorded.trim()
        );
        return;
    }
    let checked_in = std::fs::read(dir.join("http.bpf.o")).expect("read bpf/http.bpf.o");
    assert!(
        checked_in == ebpf::object(),
        "bpf/http.bpf.o is stale: regenerate with HEARTH_EBPF_UPDATE_OBJECT=1 cargo test -p ebpf --test object"
    );
}
