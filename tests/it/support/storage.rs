//! Storage nodes as lab VMs: their boot image, `node boot` with a check that its storage tools
//! came up, and waiting on `storage status` until the pair is healthy.

use super::lab::console;
use super::{cloudctl, text, Lab};
use std::process::Output;
use std::time::{Duration, Instant};

/// Builds (or takes from the cache) the storage node image; returns (kernel, initrd).
pub fn boot_image() -> (String, String) {
    let stdout = super::image::build("build-snode-initrd.sh");
    (
        super::image::printed(&stdout, &["kernel: "]),
        super::image::printed(&stdout, super::image::IMAGE),
    )
}

/// `storage status --json`: (exit code, one row per storage node).
pub fn storage_status(inv: &str) -> (Option<i32>, Vec<serde_json::Value>) {
    let out = cloudctl(&["-i", inv, "--json", "storage", "status"]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("storage status: {}{}", text(&out.stdout), text(&out.stderr)));
    (out.status.code(), doc["nodes"].as_array().cloned().unwrap_or_default())
}

/// Polls `storage status` (bounded) until `healthy` holds for every row; returns the last rows.
pub fn wait_storage(
    inv: &str,
    limit: Duration,
    what: &str,
    healthy: impl Fn(&serde_json::Value) -> bool,
) -> Vec<serde_json::Value> {
    let started = Instant::now();
    loop {
        let (_, rows) = storage_status(inv);
        if rows.len() == 2 && rows.iter().all(&healthy) {
            return rows;
        }
        assert!(
            started.elapsed() < limit,
            "storage never became {what} within {limit:?}: {rows:#?}"
        );
        std::thread::sleep(Duration::from_secs(2));
    }
}

/// A `storage status` row of a connected, in-sync, exporting DRBD primary/primary pair.
pub fn in_sync(r: &serde_json::Value) -> bool {
    r["drbd_role"] == "Primary/Primary"
        && r["drbd_dstate"] == "UpToDate/UpToDate"
        && r["drbd_cstate"] == "Connected"
        && r["aoe"] == "exporting"
}

/// `node boot NAME --power POWER --wait`, returning its output and how long it took.
pub fn boot(inv: &str, name: &str, power: &str) -> (Output, Duration) {
    let started = Instant::now();
    let out = cloudctl(&[
        "-i", inv, "--yes", "-v", "node", "boot", name, "--power", power, "--wait", "240",
    ]);
    (out, started.elapsed())
}

/// Asserts `node boot` of `name` succeeded and saw its storage tools, with its console if not.
pub fn check_boot(lab: &Lab, name: &str, out: &Output) {
    let err = text(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{name}: {err}\nconsole:\n{}",
        console(lab, name)
    );
    assert!(
        err.contains(&format!("{name}: storage drivers and tools storage: ok")),
        "{err}"
    );
}
