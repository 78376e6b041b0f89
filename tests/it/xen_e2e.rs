//! The seed's own hypervisor for real: a lab VM PXE-boots Xen 4.17 through pxelinux's mboot.c32
//! (Xen, the dom0 kernel and the image examples/build-dom0-initrd.sh builds, plus cloudctl's
//! overlay), `hnode boot --wait` reports the node up with its pinned key and `xl info` working,
//! `xl info` through `cloudctl run` shows Xen 4.17 with dom0's memory, and a PV guest (the same
//! kernel, fetched from the ConfigNode by TFTP, and a busybox initrd made in dom0) boots there.

use crate::support::image::{build, printed, IMAGE};
use crate::support::vm::{kernel, Vm, QEMU, ROM};
use crate::support::{cloudctl, report, text, Lab, TFTPD};
use std::time::{Duration, Instant};

const MAC: &str = "52:54:00:12:34:e2";
const OCTET: u8 = 226;
const XEN: &str = "/boot/xen-4.17-amd64.gz";

#[test]
#[cfg_attr(
    not(lab_tests),
    ignore = "lab test: needs root and every program in .ci/prerequisites"
)]
fn xen_dom0_pxe_boots_through_mboot_and_answers_xl_info() {
    crate::support::require_lab(&[
        QEMU,
        ROM,
        XEN,
        "/usr/lib/xen-4.17/bin/xl",
        "/usr/lib/syslinux/modules/bios/mboot.c32",
        "/usr/sbin/dropbear",
    ]);
    let kernel = kernel().expect("no kernel in /boot (package linux-image-amd64)");
    let image = printed(&build("build-dom0-initrd.sh"), IMAGE);
    let _tftpd = TFTPD.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::up("txen", 1, OCTET);
    // Xen's own console on the first serial port, dom0's on Xen's (hvc0): both reach the log.
    lab.append_inventory(&format!(
        "\n[profiles.dom0]\nkernel = \"/srv/tftp/images/dom0/vmlinuz\"\ninitrd = \"/srv/tftp/images/dom0/initrd.img\"\n\
         xen = \"/srv/tftp/images/dom0/xen.gz\"\nxen_args = \"console=com1 dom0_mem=384M\"\nappend = \"console=hvc0\"\n\
         \n[[node]]\nname = \"xen1\"\nmac = \"{MAC}\"\nip = \"10.201.{OCTET}.50\"\nrole = \"hnode\"\nprofile = \"dom0\"\n\
         hypervisor = \"xen\"\npower = \"none\"\n"
    ));
    lab.sh_ok(
        0,
        &format!(
            "mkdir -p /srv/tftp/images/dom0 && cp {} /srv/tftp/images/dom0/vmlinuz && cp {image} /srv/tftp/images/dom0/initrd.img && cp {XEN} /srv/tftp/images/dom0/xen.gz",
            kernel.display()
        ),
    );
    let inv = lab.inventory();
    let out = cloudctl(&["-i", &inv, "--yes", "config", "init"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = cloudctl(&["-i", &inv, "--yes", "hnode", "boot", "xen1"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let pxe = lab.sh_ok(0, "cat /srv/tftp/pxelinux.cfg/01-52-54-00-12-34-e2");
    assert!(
        pxe.contains("KERNEL mboot.c32")
            && pxe.contains("APPEND images/dom0/xen.gz console=com1 dom0_mem=384M --- images/dom0/vmlinuz console=hvc0 --- nodes/xen1/initrd.img"),
        "{pxe}"
    );

    let log = lab.dir.path().join("xen1.log");
    let vm = Vm::with_memory(&lab, "txen0", log.clone(), MAC, 768);
    let started = Instant::now();
    let out = cloudctl(&["-i", &inv, "--yes", "hnode", "boot", "xen1", "--wait", "240"]);
    let err = text(&out.stderr);
    let console = || {
        let all = std::fs::read_to_string(&log).unwrap_or_default();
        let lines: Vec<&str> = all.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    };
    assert_eq!(out.status.code(), Some(0), "{err}\nconsole:\n{}", console());
    assert!(
        err.contains("xen1: SSH answers with the pinned host key") && err.contains("xen1: hypervisor xen: ok"),
        "{err}"
    );
    let boot = started.elapsed();
    // Xen itself printed on the serial console: the hypervisor really runs under dom0.
    assert!(
        vm.wait_for("(XEN) Xen version 4.17", Duration::from_secs(1)).is_some(),
        "{}",
        console()
    );

    let out = cloudctl(&[
        "-i",
        &inv,
        "--json",
        "run",
        "--on",
        "xen1",
        "--",
        "sh",
        "-c",
        "xl info; cat /sys/hypervisor/type",
    ]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("run: {}{}", text(&out.stdout), text(&out.stderr)));
    let info = doc["hosts"][0]["stdout"].as_str().unwrap_or_default().to_string();
    assert_eq!(doc["hosts"][0]["exit_status"], 0, "{doc}");
    let field = |name: &str| {
        info.lines()
            .find_map(|l| {
                l.strip_prefix(name)
                    .map(|v| v.trim_start_matches([' ', ':']).trim().to_string())
            })
            .unwrap_or_else(|| panic!("no {name} in xl info: {info}"))
    };
    assert!(field("xen_version").starts_with("4.17"), "{info}");
    assert!(field("xen_commandline").contains("dom0_mem=384M"), "{info}");
    assert!(info.trim_end().ends_with("xen"), "{info}");
    // A PV guest in dom0: the kernel from the ConfigNode's TFTP root, an initrd of dom0's busybox.
    let pv = format!(
        r#"set -e
tftp -g -r images/dom0/vmlinuz -l /tmp/pv-vmlinuz {cn}
mkdir -p /tmp/pv/bin /tmp/pv/proc
cp /bin/busybox /tmp/pv/bin/busybox
ln -sf busybox /tmp/pv/bin/sh
printf '#!/bin/sh\n/bin/busybox mount -t proc p /proc\necho "PV GUEST UP after $(/bin/busybox cut -d" " -f1 /proc/uptime) s"\nwhile :; do /bin/busybox sleep 1000; done\n' > /tmp/pv/init
chmod 755 /tmp/pv/init
(cd /tmp/pv && find . | cpio -o -H newc 2>/dev/null) | gzip > /tmp/pv-initrd
printf 'name="pv1"\ntype="pv"\nkernel="/tmp/pv-vmlinuz"\nramdisk="/tmp/pv-initrd"\nextra="console=hvc0 quiet"\nmemory=96\n' > /tmp/pv1.cfg
xl create /tmp/pv1.cfg
i=0
while [ $i -lt 90 ] && ! grep -q "PV GUEST UP" /var/log/xen/console/guest-pv1.log 2>/dev/null; do sleep 1; i=$((i + 1)); done
grep "PV GUEST UP" /var/log/xen/console/guest-pv1.log
xl list
xl destroy pv1"#,
        cn = lab.state.hosts[0].ip
    );
    let t = Instant::now();
    let out = cloudctl(&["-i", &inv, "--json", "run", "--on", "xen1", "--", "sh", "-c", &pv]);
    let guest = t.elapsed();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("run: {}{}", text(&out.stdout), text(&out.stderr)));
    let said = format!(
        "{}{}",
        doc["hosts"][0]["stdout"].as_str().unwrap_or_default(),
        doc["hosts"][0]["stderr"].as_str().unwrap_or_default()
    );
    assert_eq!(doc["hosts"][0]["exit_status"], 0, "{doc}\nconsole:\n{}", console());
    assert!(
        said.contains("PV GUEST UP") && said.lines().any(|l| l.starts_with("pv1 ")),
        "{said}"
    );
    report(&format!(
        "Xen PV guest in the lab's dom0: kernel fetched, initrd made, xl create → its init printed, in {:.1} s",
        guest.as_secs_f64()
    ));
    report(&format!(
        "Xen dom0 by PXE (mboot.c32): power-on → SSH with the pinned key and xl info answering in {:.1} s; Xen {}, {} MiB free for guests",
        boot.as_secs_f64(),
        field("xen_version"),
        field("free_memory")
    ));
}
