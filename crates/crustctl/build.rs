//! Compiles the CRI v1 proto into a descriptor set embedded in the binary.
//!
//! The descriptor is what lets `protojson` render k8s-cri's serde output the way
//! protojson (and so crictl) does: lowerCamelCase keys, 64-bit integers as strings,
//! enums by name, bytes as base64. `proto/v1.proto` is the file k8s-cri 0.11 compiles
//! its types from; keep the two in step when bumping k8s-cri.

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR is set by cargo"));
    let descriptor = out.join("cri_v1_descriptor.bin");
    let protoc = env::var_os("PROTOC").unwrap_or_else(|| "protoc".into());

    println!("cargo:rerun-if-changed=proto/v1.proto");
    println!("cargo:rerun-if-env-changed=PROTOC");

    let status = Command::new(&protoc)
        .arg("--proto_path=proto")
        .arg("--include_imports")
        .arg(format!("--descriptor_set_out={}", descriptor.display()))
        .arg("proto/v1.proto")
        .status()
        .unwrap_or_else(|e| {
            panic!(
                "run {}: {e} (install protobuf-compiler)",
                protoc.to_string_lossy()
            )
        });
    assert!(
        status.success(),
        "protoc failed on proto/v1.proto: {status}"
    );
}
