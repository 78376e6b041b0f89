//! `instance create --copy` from a hostile image (lab, kvm backend under TCG): symbolic links the
//! image plants where create writes must not let it write outside the image on the hardware node.

use crate::support::guest::bootable_image;
use crate::support::{cloudctl, text, Lab};
use std::path::Path;
use std::process::Command;

/// Plants `link -> target` inside an ext4 image (debugfs, no mount).
fn plant_symlink(image: &Path, link: &str, target: &Path) {
    let out = Command::new("debugfs")
        .args(["-w", "-R", &format!("symlink {link} {}", target.display())])
        .arg(image)
        .output()
        .unwrap();
    assert!(out.status.success(), "debugfs: {}", text(&out.stderr));
}

#[test]
#[cfg_attr(
    not(lab_tests),
    ignore = "lab test: needs root and every program in .ci/prerequisites"
)]
fn an_image_cannot_write_outside_itself_through_planted_links() {
    crate::support::require_lab(&[
        crate::support::vm::QEMU,
        "/vmlinuz",
        "/initrd.img",
        "/usr/bin/socat",
        "/sbin/mkfs.ext4",
        "/sbin/debugfs",
    ]);
    let lab = Lab::up("tesc", 2, 150);
    let inv = lab.inventory();
    let store = lab.state.dir.join("store");
    // The canaries sit in the machine's /tmp, which the lab's hardware node shares.
    let canaries = lab.dir.path().join("canaries");
    std::fs::create_dir(&canaries).unwrap();

    // The temp files of the password lock: create used to write "$p.cloudctl" through a link.
    let image = store.join("escape.img");
    bootable_image(&image, false);
    plant_symlink(&image, "/etc/passwd.cloudctl", &canaries.join("passwd"));
    plant_symlink(&image, "/etc/shadow.cloudctl", &canaries.join("shadow"));
    let out = cloudctl(&[
        "-i",
        &inv,
        "--yes",
        "instance",
        "create",
        "esc1",
        "--hnode",
        "hnode1",
        "--copy",
        &image.display().to_string(),
        "--ip",
        "10.201.150.50",
    ]);
    let passwd = canaries.join("passwd");
    let shadow = canaries.join("shadow");
    assert!(
        !passwd.exists() && !shadow.exists(),
        "the image wrote on the hardware node through its links: {:?} {:?}",
        std::fs::read_to_string(&passwd),
        std::fs::read_to_string(&shadow)
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let disk = store.join("esc1/disk.img").display().to_string();
    assert!(
        crate::support::read_in_image(&disk, "/etc/shadow").starts_with("root:!$6$golden$hash:"),
        "root's password is not locked"
    );

    // A link where create writes a file is refused (before: /etc/shadow left unlocked, silently),
    // and the run removes what it made.
    let image = store.join("escape2.img");
    bootable_image(&image, false);
    Command::new("debugfs")
        .args(["-w", "-R", "rm /etc/shadow"])
        .arg(&image)
        .output()
        .unwrap();
    plant_symlink(&image, "/etc/shadow", &canaries.join("shadow2"));
    let out = cloudctl(&[
        "-i",
        &inv,
        "--yes",
        "instance",
        "create",
        "esc2",
        "--hnode",
        "hnode1",
        "--copy",
        &image.display().to_string(),
        "--ip",
        "10.201.150.51",
    ]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("/etc/shadow in the image is a symbolic link; refusing to write through it"),
        "{err}"
    );
    assert!(!store.join("esc2").exists(), "the refused create left its folder");
    let left: Vec<_> = std::fs::read_dir(&canaries).unwrap().collect();
    assert!(left.is_empty(), "canaries written: {left:?}");
}
