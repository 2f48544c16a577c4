//! Compiles the protobuf contract with protox (no system `protoc` needed), generates the tonic
//! services and messages, and writes the descriptor set that server reflection serves.

use std::path::PathBuf;

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    link_relative_relocations_packed();
    let files = [
        "proto/identity/v1/resources.proto",
        "proto/identity/v1/login_service.proto",
        "proto/identity/v1/session_service.proto",
        "proto/identity/v1/access_token_service.proto",
        "proto/identity/v1/admin_service.proto",
    ];
    let descriptors = protox::compile(files, ["proto"])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out_dir.join("identity_v1_descriptor.bin"), descriptors.encode_to_vec())?;
    tonic_prost_build::configure().compile_fds(descriptors)?;
    Ok(())
}

/// Links the service's binaries with their relative relocations packed (RELR, glibc 2.36 and
/// later): a position-independent binary otherwise carries one 24-byte relocation record per
/// pointer in its read-only data (3 MB of them here), which the loader reads — and keeps
/// resident — at every start. Packed, they take tens of kilobytes (35 KB here).
fn link_relative_relocations_packed() {
    let target = |key: &str| std::env::var(key).unwrap_or_default();
    if target("CARGO_CFG_TARGET_OS") == "linux" && target("CARGO_CFG_TARGET_ENV") == "gnu" {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}
