//! End to end on a lab: `hnode poweroff` switches off a real machine. The lab's namespace hosts
//! cannot be switched off (they share this machine's kernel: `poweroff` there would be this
//! machine's), so the hardware node is a lab VM, PXE-booted from the ConfigNode host by
//! `node boot`, and `poweroff` runs inside it over SSH: its init shuts down, the kernel powers
//! the virtual machine off and QEMU exits. Before that: refused while not drained and while a
//! guest is recorded there; a dry run and a missing --yes leave it running. Afterwards `doctor`
//! reports it down, and not as never booted: the ConfigNode's dhcpd recorded its PXE request.

use crate::support::{cloudctl, report, text, Lab, TFTPD};
use cloudctl::lab::VmRole;
use std::time::Instant;

const LAB: &str = "tpoff";
const OCTET: u8 = 225;

#[test]
#[cfg_attr(
    not(lab_tests),
    ignore = "lab test: needs root and every program in .ci/prerequisites"
)]
fn poweroff_switches_a_drained_empty_vm_node_off() {
    crate::support::require_lab(&[
        "/usr/bin/qemu-system-x86_64",
        "/usr/lib/ipxe/qemu/pxe-e1000.rom",
        "/usr/sbin/dhcpd",
        "/usr/sbin/in.tftpd",
        "/usr/bin/wakeonlan",
        "/usr/sbin/dropbear",
        "/usr/bin/dropbearconvert",
    ]);
    let _tftpd = TFTPD.lock().unwrap_or_else(|e| e.into_inner());
    let (kernel, initrd) = crate::storage_vms::boot_image();
    let lab = Lab::up_with_vms(LAB, 1, OCTET, &[VmRole::Hnode], 64);
    let inv = lab.inventory();
    lab.sh_ok(0, &format!("mkdir -p /srv/tftp/images/hnode && cp {kernel} /srv/tftp/images/hnode/vmlinuz && cp {initrd} /srv/tftp/images/hnode/initrd.img"));
    let out = cloudctl(&["-i", &inv, "--yes", "config", "init"]);
    assert!(out.status.success(), "config init: {}", text(&out.stderr));
    // Up with its pinned key (its TCG VM has no /dev/kvm: the hypervisor check fails, as said).
    let out = cloudctl(&["-i", &inv, "--yes", "node", "boot", "hvm1", "--wait", "240"]);
    let err = text(&out.stderr);
    assert!(err.contains("hvm1: SSH answers with the pinned host key"), "{err}");
    let vm = lab.state.vms.iter().find(|v| v.name == "hvm1").unwrap();
    assert!(vm.pid().is_some());

    let out = cloudctl(&["-i", &inv, "--yes", "hnode", "poweroff", "hvm1"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("cloudctl hnode drain hvm1"),
        "{}",
        text(&out.stderr)
    );
    let out = cloudctl(&["-i", &inv, "--yes", "hnode", "drain", "hvm1"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // A guest recorded there (stopped or not): refused, naming it.
    let drained = std::fs::read_to_string(&inv).unwrap();
    std::fs::write(
        &inv,
        format!("{drained}\n[[instance]]\nname = \"pvm1\"\nhnode = \"hvm1\"\nmemory = 64\nvcpus = 1\ndisk = \"1G\"\nip = \"10.201.{OCTET}.50\"\nmac = \"52:54:00:00:e1:01\"\n"),
    )
    .unwrap();
    let out = cloudctl(&["-i", &inv, "--yes", "hnode", "poweroff", "hvm1"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("guests recorded on it: pvm1"),
        "{}",
        text(&out.stderr)
    );
    std::fs::write(&inv, &drained).unwrap();

    // A dry run and a missing --yes change nothing: the VM stays on.
    let out = cloudctl(&["-i", &inv, "-n", "hnode", "poweroff", "hvm1"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("dry run: nothing was changed"),
        "{}",
        text(&out.stderr)
    );
    let out = cloudctl(&["-i", &inv, "hnode", "poweroff", "hvm1"]);
    assert_eq!(out.status.code(), Some(6), "{}", text(&out.stderr));
    assert!(vm.pid().is_some(), "still on");

    let started = Instant::now();
    let out = cloudctl(&[
        "-i", &inv, "--yes", "--json", "hnode", "poweroff", "hvm1", "--wait", "120",
    ]);
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (doc["method"].as_str(), doc["off"].as_bool()),
        (Some("ssh"), Some(true)),
        "{doc}"
    );
    assert_eq!(vm.pid(), None, "QEMU exited: the VM powered itself off");
    let console = std::fs::read_to_string(vm.console()).unwrap_or_default();
    assert!(
        console.contains("reboot: Power down"),
        "the kernel powered off: {console}"
    );
    // The ConfigNode's dhcpd recorded the VM's PXE DHCP exchange: doctor says it is down, not
    // that it never booted.
    let out = cloudctl(&["-i", &inv, "--json", "doctor"]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let found: Vec<(&str, &str)> = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["check"].as_str().unwrap(), f["subject"].as_str().unwrap()))
        .collect();
    assert!(found.contains(&("unreachable", "hvm1")), "{doc}");
    assert!(
        !found
            .iter()
            .any(|(c, _)| *c == "never_booted" || *c == "boots_unrecorded"),
        "{doc}"
    );
    let marks = lab.sh_ok(0, "ls /var/lib/cloudctl/booted");
    assert!(
        marks.contains(&format!("52:54:0:c2:{OCTET:x}:1")),
        "dhcpd's record: {marks}"
    );
    report(&format!(
        "hnode poweroff hvm1 (TCG VM, poweroff over SSH): off, seen from the ConfigNode, after {:.1} s",
        took.as_secs_f64()
    ));
}
