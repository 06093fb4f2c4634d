//! The detector builds in a `#![no_std]` crate: the pendant's microcontroller runs this code.

use std::process::Command;

#[test]
fn detector_compiles_without_std() {
    let dir = tempfile::tempdir().unwrap();
    let detector = concat!(env!("CARGO_MANIFEST_DIR"), "/crates/fall/src/detector.rs");
    let lib = format!(
        "#![no_std]\n#[derive(Debug)]\npub enum FallError {{ Rate {{ rate_hz: u16 }} }}\n#[path = {detector:?}]\npub mod detector;\n"
    );
    let src = dir.path().join("lib.rs");
    std::fs::write(&src, lib).unwrap();
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let out = Command::new(rustc)
        .args([
            "--edition",
            "2021",
            "--crate-type",
            "lib",
            "--emit",
            "metadata",
            "-o",
        ])
        .arg(dir.path().join("libdetector.rmeta"))
        .arg(&src)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
