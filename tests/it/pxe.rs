//! A real (virtual) machine PXE-boots what `node add` registered: QEMU (TCG) on the lab bridge
//! gets its lease from the ConfigNode host's dhcpd, fetches pxelinux, the per-MAC file, the
//! kernel and a busybox initramfs over tftpd, and prints its /proc/cmdline on the serial console.

use crate::support::vm::{initramfs, kernel, Vm, QEMU, ROM};
use crate::support::{cloudctl, report, text, Lab, TFTPD};
use std::time::{Duration, Instant};

const MAC: &str = "52:54:00:12:34:56";
/// Whether the lease file holds a dynamic lease for the VM's MAC (its `host` records, written by
/// live changes, name the MAC too, and do not count).
fn leased(leases: &str) -> bool {
    leases.split("\nlease ").skip(1).any(|b| {
        b.split('}')
            .next()
            .unwrap_or(b)
            .contains(&format!("hardware ethernet {MAC}"))
    })
}

#[test]
#[cfg_attr(
    not(lab_tests),
    ignore = "lab test: needs root and every program in .ci/prerequisites"
)]
fn a_registered_mac_pxe_boots_its_profile_and_stops_after_remove() {
    let kernel = kernel().expect("no kernel in /boot (package linux-image-amd64)");
    crate::support::require_lab(&[
        QEMU,
        ROM,
        "/bin/busybox",
        "/usr/bin/cpio",
        "/usr/sbin/dhcpd",
        "/usr/sbin/in.tftpd",
        "/usr/lib/PXELINUX/pxelinux.0",
    ]);
    let _tftpd = TFTPD.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::up("tpxe", 1, 67);
    let toml = std::fs::read_to_string(&lab.state.inventory).unwrap();
    let append = "append = \"console=ttyS0 panic=-1 cloudctl-pxe=booted-by-profile\"";
    std::fs::write(&lab.state.inventory, toml.replace("append = \"console=ttyS0\"", append)).unwrap();
    let inv = lab.inventory();
    let initrd = initramfs(lab.dir.path());
    lab.sh_ok(0, &format!("mkdir -p /srv/tftp/images/hnode && cp {} /srv/tftp/images/hnode/vmlinuz && cp {} /srv/tftp/images/hnode/initrd.img", kernel.display(), initrd.display()));
    let out = cloudctl(&["-i", &inv, "--yes", "config", "init"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let pid = lab.dhcpd_pid();

    let started = Instant::now();
    let out = cloudctl(&["-i", &inv, "--yes", "node", "add", "pxe1", "--mac", MAC]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let node_add = started.elapsed();
    assert_eq!(lab.dhcpd_pid(), pid, "node add changed dhcpd live (OMAPI), no restart");
    let ip = lab.node_ip("pxe1");
    let vm = Vm::start(&lab, "tpxe0", lab.dir.path().join("boot1.log"), MAC);
    let line = vm.wait_for("CLOUDCTL-CMDLINE:", Duration::from_secs(150));
    let booted = started.elapsed();
    drop(vm);
    let line = line.unwrap_or_else(|| {
        panic!(
            "no kernel command line on the serial console: {}",
            std::fs::read_to_string(lab.dir.path().join("boot1.log")).unwrap_or_default()
        )
    });
    assert!(
        line.contains("console=ttyS0 panic=-1 cloudctl-pxe=booted-by-profile"),
        "{line}"
    );
    assert!(line.contains("initrd=images/hnode/initrd.img"), "{line}");
    // pxelinux fetched its files from the address dhcpd gave it, the host entry added live: the
    // ConfigNode has a neighbour entry for that address (it may have gone FAILED since the VM
    // powered off), and dhcpd handed out no lease from the dynamic range to the MAC.
    let neighbours = lab.sh_ok(0, "ip neigh show");
    assert!(
        neighbours.lines().any(|l| l.starts_with(&format!("{ip} "))),
        "the VM used pxe1's fixed address {ip}: {neighbours}"
    );
    let leases = lab.sh_ok(0, "cat /var/lib/dhcp/dhcpd.leases 2>/dev/null");
    assert!(
        !leased(&leases),
        "pxe1 got a dynamic lease instead of its fixed address: {leases}"
    );
    report(&format!(
        "PXE: node add took {:.1} s; node add → kernel command line on the console: {:.1} s",
        node_add.as_secs_f64(),
        booted.as_secs_f64()
    ));

    let out = cloudctl(&["-i", &inv, "--yes", "node", "remove", "pxe1"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let vm = Vm::start(&lab, "tpxe0", lab.dir.path().join("boot2.log"), MAC);
    // The VM does ask (it gets a dynamic lease) but no longer boots the profile.
    let asked = (0..300).any(|_| {
        std::thread::sleep(Duration::from_millis(200));
        leased(&lab.sh_ok(0, "cat /var/lib/dhcp/dhcpd.leases 2>/dev/null"))
    });
    assert!(asked, "the removed node's VM never asked dhcpd for an address");
    assert_eq!(
        vm.wait_for("CLOUDCTL-CMDLINE:", Duration::from_secs(25)),
        None,
        "a removed node still boots its profile"
    );
}
