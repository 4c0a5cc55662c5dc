//! The committed protobuf code of the examples (`examples/proto/echo.rs`) is what
//! `proto/echo.proto` generates today.
//!
//! Kept apart from `tests/grpc.rs`, which compiles that code: a stale or broken copy
//! must not stop this test from building, since it is the way to rewrite the copy
//! (`BUTTRESS_BLESS=1`).
#![cfg(feature = "grpc")]

use std::path::Path;

/// Regenerates `examples/proto/echo.rs` from `proto/echo.proto` with protox (no
/// `protoc`) and tonic-prost-build, into `out_dir`; returns the generated text.
fn generate(out_dir: &Path) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let fds = protox::compile([root.join("proto/echo.proto")], [root.join("proto")])
        .expect("proto/echo.proto compiles");
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .build_transport(true)
        .emit_rerun_if_changed(false)
        .out_dir(out_dir)
        .compile_fds(fds)
        .expect("code generation succeeds");
    std::fs::read_to_string(out_dir.join("echo.rs")).expect("echo.rs was generated")
}

#[test]
fn committed_protobuf_code_is_fresh() {
    let dir = tempfile::tempdir().expect("temp dir");
    let fresh = generate(dir.path());
    let committed_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/proto/echo.rs");
    if std::env::var_os("BUTTRESS_BLESS").is_some() {
        std::fs::write(&committed_path, &fresh).expect("write examples/proto/echo.rs");
        return;
    }
    let committed = std::fs::read_to_string(&committed_path).unwrap_or_default();
    assert!(
        committed == fresh,
        "examples/proto/echo.rs is stale: regenerate it with \
         `BUTTRESS_BLESS=1 cargo test --features grpc --test proto`"
    );
}
