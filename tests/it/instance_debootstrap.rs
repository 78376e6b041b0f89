//! `instance create --debootstrap` for real on a lab hardware node: minbase bookworm from the
//! Debian mirror through an HTTP proxy on the lab's gateway (lab hosts have no other way out),
//! cached as a tarball that later runs (and later test runs) reuse.

use crate::support::{cloudctl, read_in_image, report, text, Lab};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

/// Survives labs and test runs (not under /etc, /var, /run or /srv, which lab hosts see privately).
const CACHE: &str = "/tmp/cloudctl-test-cache/debootstrap";

/// tinyproxy on the lab's gateway address, stopped (by pid) when dropped.
struct Proxy(Child);

impl Proxy {
    fn start(dir: &std::path::Path, gateway: &str, subnet: &str) -> Proxy {
        let conf = dir.join("tinyproxy.conf");
        std::fs::write(
            &conf,
            format!(
                "User nobody\nGroup nogroup\nPort 8888\nListen {gateway}\nAllow {subnet}\nTimeout 120\nMaxClients 16\nLogLevel Error\nConnectPort 443\n"
            ),
        )
        .unwrap();
        let child = Command::new("tinyproxy")
            .args(["-d", "-c"])
            .arg(&conf)
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(500));
        Proxy(child)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
#[cfg_attr(
    not(lab_tests),
    ignore = "lab test: needs root and every program in .ci/prerequisites"
)]
fn debootstrap_minbase_root_has_the_guests_identity_and_is_cached() {
    crate::support::require_lab(&[
        "/usr/sbin/debootstrap",
        "/usr/bin/tinyproxy",
        crate::support::vm::QEMU,
        "/vmlinuz",
        "/usr/bin/socat",
        "/sbin/debugfs",
    ]);
    let lab = Lab::up("deboot", 2, 82);
    let gateway = lab.state.gateway.to_string();
    let _proxy = Proxy::start(&lab.state.dir, &gateway, &lab.state.subnet);
    std::fs::create_dir_all(CACHE).unwrap();
    let inv = lab.inventory();
    let text_inv = std::fs::read_to_string(&inv).unwrap().replace(
        "[instances]\n",
        &format!("[instances]\ncache = \"{CACHE}\"\nhttp_proxy = \"http://{gateway}:8888\"\n"),
    );
    std::fs::write(&inv, text_inv).unwrap();
    let cached_before = std::fs::read_dir(CACHE).unwrap().count();

    let t = Instant::now();
    let out = cloudctl(&[
        "-i",
        &inv,
        "--yes",
        "instance",
        "create",
        "deb1",
        "--hnode",
        "hnode1",
        "--debootstrap",
        "bookworm",
        "--ip",
        "10.201.82.60",
    ]);
    let first = t.elapsed();
    assert!(
        out.status.success(),
        "create: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let tarballs: Vec<_> = std::fs::read_dir(CACHE)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    assert!(
        tarballs
            .iter()
            .any(|n| n.starts_with("debootstrap-bookworm-amd64-minbase-") && n.ends_with(".tar")),
        "{tarballs:?}"
    );
    assert!(
        !tarballs.iter().any(|n| n.contains(".build.")),
        "a half-built cache entry was left: {tarballs:?}"
    );

    let disk = lab.state.dir.join("store/deb1/disk.img").display().to_string();
    assert_eq!(read_in_image(&disk, "/etc/hostname"), "deb1\n");
    assert!(read_in_image(&disk, "/etc/network/interfaces").contains("address 10.201.82.60"));
    let client_pub = std::fs::read_to_string(lab.state.client_key.with_extension("pub")).unwrap();
    assert_eq!(read_in_image(&disk, "/root/.ssh/authorized_keys"), client_pub);
    assert!(read_in_image(&disk, "/etc/ssh/ssh_host_ed25519_key.pub").starts_with("ssh-ed25519 "));
    assert!(
        read_in_image(&disk, "/etc/shadow").starts_with("root:!"),
        "root's password is not locked"
    );
    assert!(
        read_in_image(&disk, "/usr/lib/os-release").contains("bookworm"),
        "not a bookworm root"
    );

    // A second guest of the same suite comes from the cache.
    let t = Instant::now();
    let out = cloudctl(&[
        "-i",
        &inv,
        "--yes",
        "instance",
        "create",
        "deb2",
        "--hnode",
        "hnode1",
        "--debootstrap",
        "bookworm",
    ]);
    let second = t.elapsed();
    assert!(out.status.success(), "second create: {}", text(&out.stderr));
    let disk2 = lab.state.dir.join("store/deb2/disk.img").display().to_string();
    assert_eq!(read_in_image(&disk2, "/etc/hostname"), "deb2\n");
    report(&format!(
        "instance create --debootstrap bookworm (minbase): first {:.1} s ({}), second {:.1} s from the cache",
        first.as_secs_f64(),
        if cached_before == 0 {
            "debootstrap ran"
        } else {
            "cache from an earlier test run"
        },
        second.as_secs_f64()
    ));
}
