//! Helpers every test module shares, and the only place test modules import from (a test fails
//! when one imports another): running the binary and reading its output here; the lab, VMs,
//! images, guests, storage VMs, the LAMP tests' web clients, golden files and fixtures in the
//! modules below.

pub mod fixtures;
pub mod golden;
pub mod guest;
pub mod image;
pub mod lab;
pub mod storage;
pub mod vm;
pub mod web;

// Most tests need only these; re-exported so their imports stay one short line.
pub use image::{copy_with_libraries, read_in_image};
pub use lab::{require_lab, Lab, TFTPD};

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The cloudctl binary cargo built for this test run.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_cloudctl"))
}

/// Runs cloudctl with `args`, no stdin, no inherited inventory.
pub fn cloudctl(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .env_remove("CLOUDCTL_INVENTORY")
        .stdin(Stdio::null())
        .output()
        .expect("run cloudctl")
}

/// Output bytes as text, for messages and matching.
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Writes `content` to `dir/name` and returns the path.
pub fn write(dir: &Path, name: &str, content: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, content).unwrap();
    p
}

/// Prints a figure even when the harness captures test output.
pub fn report(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// stdout parsed as one JSON document, failing with both streams when it is not.
pub fn json(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}{}", text(&out.stdout), text(&out.stderr)))
}

/// Asserts exit 0 (showing both streams when not) and returns stderr.
pub fn ok(out: &Output, what: &str) -> String {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{what}: {}{}",
        text(&out.stderr),
        text(&out.stdout)
    );
    text(&out.stderr)
}
