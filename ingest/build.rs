//! Compiles the remote-write `.proto` files in `proto/` to Rust with prost-build, parsing them
//! with `protox` (pure Rust), so a fresh machine needs no `protoc`.

use std::io::Result;

fn main() -> Result<()> {
    let files = ["proto/prometheus/remote.proto", "proto/io/prometheus/write/v2/types.proto"];
    for f in files {
        println!("cargo:rerun-if-changed={f}");
    }
    let fds = protox::compile(files, ["proto"]).map_err(|e| std::io::Error::other(e.to_string()))?;
    prost_build::Config::new().compile_fds(fds)
}
