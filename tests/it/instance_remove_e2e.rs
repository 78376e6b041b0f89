//! End to end on a lab: `instance remove` deletes its guest's folder on the shared store and
//! nothing else (every other file's checksum unchanged), refuses a folder without the create
//! mark (exit 2, nothing touched), and leaves everything as it was without --yes or in a dry run.

use crate::support::guest::{bootable_image, qemus};
use crate::support::{cloudctl, text, Lab};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::Path;

const HNODE1: usize = 1;

/// Every regular file under `root` (but under `skip`) with its SHA-256.
fn checksums(root: &Path, skip: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.starts_with(skip) {
                continue;
            }
            let meta = std::fs::symlink_metadata(&p).unwrap();
            if meta.is_dir() {
                todo.push(p);
            } else {
                let sum = Sha256::digest(std::fs::read(&p).unwrap());
                out.insert(p.display().to_string(), format!("{sum:x}"));
            }
        }
    }
    out
}

fn create(inv: &str, name: &str, ip: &str, image: &str) {
    let out = cloudctl(&[
        "-i", inv, "--yes", "instance", "create", name, "--hnode", "hnode1", "--copy", image, "--ip", ip,
    ]);
    assert!(out.status.success(), "create {name}: {}", text(&out.stderr));
}

#[test]
#[cfg_attr(
    not(lab_tests),
    ignore = "lab test: needs root and every program in .ci/prerequisites"
)]
fn remove_deletes_only_its_marked_folder() {
    crate::support::require_lab(&[
        crate::support::vm::QEMU,
        "/vmlinuz",
        "/usr/bin/socat",
        "/sbin/mkfs.ext4",
    ]);
    let lab = Lab::up("td2rm", 2, 190);
    let inv = lab.inventory();
    let store = lab.state.dir.join("store");
    let golden = store.join("golden.img");
    bootable_image(&golden, true);
    let golden = golden.display().to_string();
    create(&inv, "vm1", "10.201.190.50", &golden);
    create(&inv, "vm2", "10.201.190.51", &golden);
    let mark = std::fs::read_to_string(store.join("vm1/.cloudctl-create")).unwrap();
    let recorded = std::fs::read_to_string(&inv).unwrap();
    assert!(
        recorded.contains(&format!("nonce = \"{}\"", mark.trim())),
        "the create mark is recorded: {recorded}"
    );
    // vm2 is stopped so that its files hold still; a stranger's folder and file sit beside.
    let out = cloudctl(&["-i", &inv, "--yes", "instance", "stop", "vm2", "--grace", "0"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    std::fs::create_dir(store.join("strangers")).unwrap();
    std::fs::write(store.join("strangers/data.txt"), "not cloudctl's").unwrap();
    std::fs::write(store.join("README"), "shared store").unwrap();
    let vm1 = store.join("vm1");
    let before = checksums(&store, &vm1);
    assert!(before.len() >= 6, "{before:?}");

    // Without --yes and no TTY: refused, naming --yes; a dry run: nothing changes either.
    let out = cloudctl(&["-i", &inv, "instance", "remove", "vm1"]);
    assert_eq!(out.status.code(), Some(6), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("--yes"), "{}", text(&out.stderr));
    let out = cloudctl(&["-i", &inv, "-n", "instance", "remove", "vm1"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("deleting") && text(&out.stderr).contains("dry run: nothing was changed"),
        "{}",
        text(&out.stderr)
    );
    assert!(vm1.join("disk.img").exists() && qemus(&lab, HNODE1).len() == 1);
    assert_eq!(std::fs::read_to_string(&inv).unwrap(), recorded);

    // Removed: stopped, folder gone, record gone, every other file on the store unchanged.
    let out = cloudctl(&[
        "-i", &inv, "--yes", "--json", "instance", "remove", "vm1", "--grace", "0",
    ]);
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    let v = crate::support::json(&out);
    assert_eq!(v["disk"]["folder"], "delete", "{v}");
    assert!(!vm1.exists(), "the guest's folder is still there");
    assert!(qemus(&lab, HNODE1).is_empty(), "vm1's QEMU still runs");
    let after = std::fs::read_to_string(&inv).unwrap();
    assert!(
        !after.contains("name = \"vm1\"") && after.contains("name = \"vm2\""),
        "{after}"
    );
    assert_eq!(checksums(&store, &vm1), before, "a file outside vm1's folder changed");

    // A folder without the mark is refused (exit 2) and left as it is, record and all.
    std::fs::remove_file(store.join("vm2/.cloudctl-create")).unwrap();
    let before = checksums(&store, &vm1);
    let out = cloudctl(&["-i", &inv, "--yes", "instance", "remove", "vm2"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("has no create mark") && text(&out.stderr).contains("--keep-disk"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(checksums(&store, &vm1), before);
    assert!(std::fs::read_to_string(&inv).unwrap().contains("name = \"vm2\""));
    // --keep-disk forgets the guest and keeps its folder.
    let out = cloudctl(&["-i", &inv, "--yes", "instance", "remove", "vm2", "--keep-disk"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(checksums(&store, &vm1), before, "--keep-disk changed the store");
    assert!(!std::fs::read_to_string(&inv).unwrap().contains("name = \"vm2\""));
}
