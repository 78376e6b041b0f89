//! Thousands of nodes: a ConfigNode with 5,000 registered nodes still boots the next one. A QEMU
//! VM registered by `node add` as the 5,001st node PXE-boots its profile from the lab
//! ConfigNode (real dhcpd with 5,001 host entries, real tftpd, 5,001 per-MAC files).

use crate::support::vm::{initramfs, kernel, Vm, QEMU, ROM};
use crate::support::{cloudctl, report, text, Lab, TFTPD};
use std::time::{Duration, Instant};

const NODES: usize = 5_000;
const MAC: &str = "52:54:00:12:35:01";

#[test]
#[cfg_attr(
    not(lab_tests),
    ignore = "lab test: needs root and every program in .ci/prerequisites"
)]
fn the_5001st_node_pxe_boots_its_profile() {
    let kernel = kernel().expect("no kernel in /boot (package linux-image-amd64)");
    crate::support::require_lab(&[
        QEMU,
        ROM,
        "/bin/busybox",
        "/usr/bin/cpio",
        "/usr/sbin/dhcpd",
        "/usr/sbin/in.tftpd",
    ]);
    let _tftpd = TFTPD.lock().unwrap_or_else(|e| e.into_inner());
    // A /18: room for 5,000 nodes above the lab's dynamic range.
    let lab = Lab::up_on("tpx5k", 1, "10.210.64.0/18");
    let subnet: cloudctl::types::Cidr = "10.210.64.0/18".parse().unwrap();
    let toml = std::fs::read_to_string(&lab.state.inventory).unwrap();
    let mut toml = toml.replace(
        "append = \"console=ttyS0\"",
        "append = \"console=ttyS0 panic=-1 cloudctl-pxe=node-5001\"",
    );
    for n in 1..=NODES {
        let [_, a, b, c] = (n as u32).to_be_bytes();
        let ip = subnet.nth(200 + n as u32).unwrap();
        toml += &format!("\n[[node]]\nname = \"n{n:05}\"\nmac = \"52:54:01:{a:02x}:{b:02x}:{c:02x}\"\nip = \"{ip}\"\nrole = \"hnode\"\n");
    }
    std::fs::write(&lab.state.inventory, toml).unwrap();
    let inv = lab.inventory();
    let initrd = initramfs(lab.dir.path());
    lab.sh_ok(0, &format!("mkdir -p /srv/tftp/images/hnode && cp {} /srv/tftp/images/hnode/vmlinuz && cp {} /srv/tftp/images/hnode/initrd.img", kernel.display(), initrd.display()));

    let started = Instant::now();
    let out = cloudctl(&["-i", &inv, "--yes", "config", "init"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let init = started.elapsed();
    let started = Instant::now();
    let out = cloudctl(&["-i", &inv, "--yes", "node", "add", "vm5001", "--mac", MAC]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let add = started.elapsed();
    let files = lab.sh_ok(
        0,
        "ls /srv/tftp/pxelinux.cfg | grep -c '^01-'; cat /etc/dhcp/cloudctl-hosts.d/*.conf | grep -c '^host '",
    );
    assert_eq!(
        files.split_whitespace().collect::<Vec<_>>(),
        ["5001", "5001"],
        "PXE files, host entries"
    );

    let vm = Vm::start(&lab, "tpx5k0", lab.dir.path().join("boot.log"), MAC);
    let line = vm.wait_for("CLOUDCTL-CMDLINE:", Duration::from_secs(150));
    let booted = started.elapsed();
    drop(vm);
    let line = line.unwrap_or_else(|| {
        panic!(
            "no kernel command line on the serial console: {}",
            std::fs::read_to_string(lab.dir.path().join("boot.log")).unwrap_or_default()
        )
    });
    assert!(line.contains("cloudctl-pxe=node-5001"), "{line}");
    assert!(line.contains("initrd=images/hnode/initrd.img"), "{line}");
    report(&format!(
        "PXE at {NODES} nodes: config init {:.1} s, node add of the 5,001st {:.1} s, node add → kernel command line {:.1} s",
        init.as_secs_f64(),
        add.as_secs_f64(),
        booted.as_secs_f64()
    ));
}
