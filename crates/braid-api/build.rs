//! Compiles `proto/` with protox (a pure-Rust protobuf compiler, so no system
//! `protoc` is needed) and generates prost messages and tonic services.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Read at run time, not baked in at compile time: two checkouts sharing
    // one target directory may share this script's binary.
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let files = [
        "xds/envoy/service/discovery/v3/discovery.proto",
        "braid/workload/v1alpha1/workload.proto",
        "braid/security/v1alpha1/authorization.proto",
        "braid/security/v1alpha1/peer_authentication.proto",
        "braid/security/v1alpha1/certificate.proto",
        "braid/route/v1alpha1/route.proto",
        "braid/admin/v1alpha1/debug.proto",
    ];
    let includes = [root.join("xds"), root.clone()];
    let paths: Vec<PathBuf> = files.iter().map(|f| root.join(f)).collect();
    let fds = protox::compile(&paths, includes)?;
    println!("cargo:rerun-if-changed={}", root.display());
    tonic_prost_build::configure()
        // BTreeMap makes encoding deterministic, so resource versions (a hash
        // of the encoded bytes) are stable across restarts.
        .btree_map(".")
        .compile_fds(fds)?;
    Ok(())
}
