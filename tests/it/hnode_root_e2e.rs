//! Diskless hardware nodes with their root on the storage, for real: two storage VMs run md +
//! DRBD + AoE (`storage init`), two diskless VMs PXE-boot Xen through `hnode boot` with the
//! storage client image as their initrd. The first boot finds no root image: each node attaches
//! the storage over AoE multipath, hvm1 formats the instance store (OCFS2, o2cb) once, both mount
//! it and stay on their RAM root. `image push` puts the dom0 root (a squashfs,
//! examples/build-dom0-initrd.sh) into the store through hvm1; after a reboot both nodes switch to
//! it: `/` is an overlay on that image, read through the OCFS2 store on the md multipath device
//! over both storage nodes' exports, the pinned host key still answers and `xl info` works.
//! A Xen guest is created on hvm1 with its disk in the store (the tiny guest image, kernel and
//! initrd pushed there) and live-migrated to hvm2 under ping (Xen built with shadow paging,
//! examples/build-xen-shadow.sh). Then, the seed's promise: while the guest writes checksummed
//! blocks to its disk, a storage node is switched off: the roots, the store and the guest keep
//! working through the other path; it comes back by Wake-on-LAN and `storage init`, resyncs,
//! both nodes take its path back, and every block verifies.

use crate::support::guest::{bootable_image, found_running, lost, pinger, where_runs};
use crate::support::image::{build, printed, IMAGE};
use crate::support::lab::{console, remote};
use crate::support::storage::{boot_image, check_boot, in_sync, wait_storage};
use crate::support::{cloudctl, json, ok, report, text, Lab, TFTPD};
use cloudctl::lab::VmRole;
use std::time::{Duration, Instant};

const LAB: &str = "thrs";
const OCTET: u8 = 227;
const XEN: &str = "/boot/xen-4.17-amd64.gz";
const STORE: &str = "/srv/cloud/instances";

/// `hnode boot NAME --wait` (power "none": the VM is on, or rebooting by itself).
fn hnode_boot(inv: &str, name: &str, power: &str) -> (std::process::Output, Duration) {
    let started = Instant::now();
    let out = cloudctl(&[
        "-i", inv, "--yes", "-v", "hnode", "boot", name, "--power", power, "--wait", "300",
    ]);
    (out, started.elapsed())
}

/// Hard reset from inside (SysRq b): Xen resets the machine, which PXE-boots again.
fn reset(inv: &str, node: &str) {
    remote(
        inv,
        node,
        "(sleep 1; echo 1 > /proc/sys/kernel/sysrq; echo b > /proc/sysrq-trigger) </dev/null >/dev/null 2>&1 &",
    );
}

#[test]
#[cfg_attr(
    not(lab_tests),
    ignore = "lab test: needs root and every program in .ci/prerequisites"
)]
fn hardware_nodes_take_their_root_from_the_storage() {
    crate::support::lab::require_vm_lab(&[
        "/usr/lib/syslinux/modules/bios/mboot.c32",
        XEN,
        "/usr/lib/xen-4.17/bin/xl",
        "/usr/bin/mksquashfs",
        "/usr/sbin/mkfs.ocfs2",
        "/usr/sbin/vblade",
        "/usr/sbin/drbdadm",
        "/usr/sbin/mdadm",
    ]);
    let _tftpd = TFTPD.lock().unwrap_or_else(|e| e.into_inner());
    let (kernel, client_image) = boot_image();
    let root_image = printed(&build("build-dom0-initrd.sh"), &["root: "]);
    // Debian's Xen lacks the shadow paging a PV guest's live migration needs: the same
    // hypervisor built with it.
    let xen = printed(&build("build-xen-shadow.sh"), IMAGE);
    let lab = Lab::up_with_vms(
        LAB,
        1,
        OCTET,
        &[VmRole::Snode, VmRole::Snode, VmRole::Hnode, VmRole::Hnode],
        128,
    );
    let inv = lab.inventory();
    let guest_ip = format!("10.201.{OCTET}.60");
    // The hardware nodes run Xen; their initrd is the storage client image, their root the image
    // pushed into the store.
    let toml = std::fs::read_to_string(&inv).unwrap();
    let toml = toml.replace("hypervisor = \"kvm\"", "hypervisor = \"xen\"").replace(
        "[profiles.hnode]\nkernel = \"/srv/tftp/images/hnode/vmlinuz\"\ninitrd = \"/srv/tftp/images/hnode/initrd.img\"\nappend = \"console=ttyS0\"\n",
        "[profiles.hnode]\nkernel = \"/srv/tftp/images/hnode/vmlinuz\"\ninitrd = \"/srv/tftp/images/hnode/initrd.img\"\n\
         xen = \"/srv/tftp/images/hnode/xen.gz\"\nxen_args = \"console=com1 dom0_mem=384M\"\nappend = \"console=hvc0\"\nroot = \"dom0-root\"\n",
    );
    assert!(toml.contains("root = \"dom0-root\""), "{toml}");
    let toml = with_store(&toml);
    std::fs::write(&inv, toml).unwrap();
    for profile in ["snode", "hnode"] {
        lab.sh_ok(0, &format!("mkdir -p /srv/tftp/images/{profile} && cp {kernel} /srv/tftp/images/{profile}/vmlinuz && cp {client_image} /srv/tftp/images/{profile}/initrd.img"));
    }
    lab.sh_ok(0, &format!("cp {xen} /srv/tftp/images/hnode/xen.gz"));
    ok(&cloudctl(&["-i", &inv, "--yes", "config", "init"]), "config init");

    // The storage first: both storage VMs, then md + DRBD + AoE.
    ok(
        &cloudctl(&["-i", &inv, "--yes", "node", "boot", "snode1"]),
        "node boot snode1",
    );
    let (out, _) = crate::support::storage::boot(&inv, "snode2", "wol");
    check_boot(&lab, "snode2", &out);
    let (out, _) = crate::support::storage::boot(&inv, "snode1", "none");
    check_boot(&lab, "snode1", &out);
    ok(&cloudctl(&["-i", &inv, "--yes", "storage", "init"]), "storage init");
    wait_storage(&inv, Duration::from_secs(240), "in sync", in_sync);

    // First boot of both hardware nodes: no root image in the store yet.
    ok(
        &cloudctl(&["-i", &inv, "--yes", "hnode", "boot", "hvm1"]),
        "hnode boot hvm1",
    );
    let (out, first_boot) = hnode_boot(&inv, "hvm2", "wol");
    let err = text(&out.stderr);
    assert!(
        err.contains("hvm2: SSH answers with the pinned host key")
            && err.contains(
                "hvm2: root in RAM (the boot image's): no root image dom0-root in /srv/cloud/instances/.images yet"
            ),
        "{err}\nconsole:\n{}",
        console(&lab, "hvm2")
    );
    let (out, _) = hnode_boot(&inv, "hvm1", "none");
    let err = text(&out.stderr);
    assert!(
        err.contains("hvm1: root in RAM"),
        "{err}\nconsole:\n{}",
        console(&lab, "hvm1")
    );
    for vm in ["hvm1", "hvm2"] {
        let log = std::fs::read_to_string(lab.state.vms.iter().find(|v| v.name == vm).unwrap().console()).unwrap();
        assert!(
            log.contains("no root image dom0-root") && log.contains(&format!("mounted at {STORE}")),
            "{vm}:\n{}",
            console(&lab, vm)
        );
    }
    // One OCFS2 filesystem, really mounted on both: what one node writes, the other reads.
    let mounts = remote(&inv, "hvm2", &format!("grep ' {STORE} ' /proc/mounts"));
    assert!(mounts.contains(" ocfs2 ") && mounts.starts_with("/dev/md"), "{mounts}");
    remote(&inv, "hvm1", &format!("echo written-by-hvm1 > {STORE}/hello"));
    let read = remote(&inv, "hvm2", &format!("cat {STORE}/hello"));
    assert_eq!(read.trim(), "written-by-hvm1");
    let hosts_before = std::fs::read(&lab.state.known_hosts).unwrap();

    // The root image into the store, through hvm1.
    let started = Instant::now();
    let out = cloudctl(&[
        "-i",
        &inv,
        "--yes",
        "--json",
        "image",
        "push",
        &root_image,
        "dom0-root",
        "--via",
        "hvm1",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "image push: {}{}",
        text(&out.stderr),
        text(&out.stdout)
    );
    let push = started.elapsed();
    let listed = remote(&inv, "hvm2", &format!("ls -l {STORE}/.images/"));
    assert!(listed.contains("dom0-root"), "{listed}");

    // Reboot both: they switch to the image, the pinned keys still answer.
    reset(&inv, "hvm1");
    reset(&inv, "hvm2");
    std::thread::sleep(Duration::from_secs(5));
    let mut boots = Vec::new();
    for vm in ["hvm1", "hvm2"] {
        let (out, took) = hnode_boot(&inv, vm, "none");
        let err = text(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{vm}: {err}\nconsole:\n{}",
            console(&lab, vm)
        );
        assert!(
            err.contains(&format!("{vm}: hypervisor xen: ok"))
                && err.contains(&format!("{vm}: root on the shared storage: {STORE}/.images/dom0-root")),
            "{err}"
        );
        boots.push(took);
    }
    assert_eq!(
        std::fs::read(&lab.state.known_hosts).unwrap(),
        hosts_before,
        "the reboot changed known_hosts: the nodes kept their pinned keys"
    );
    // The proof, on the node: / is the overlay, its lower layer the loop device of the image
    // file, which lives on the OCFS2 store, on the md multipath device over both AoE exports.
    let facts = remote(
        &inv,
        "hvm1",
        "awk '$2 == \"/\" || $2 == \"/run/cloudctl/root/ro\" || $2 == \"/srv/cloud/instances\" { print $1, $2, $3 }' /proc/mounts; \
         for l in /sys/block/loop*/loop/backing_file; do [ -r \"$l\" ] && echo \"backing $(cat \"$l\")\"; done; \
         mdadm --detail /dev/md/cloudctl-storage | grep -E 'Raid Level|active sync'; xl info | grep xen_version",
    );
    assert!(facts.contains("overlay / overlay"), "{facts}");
    assert!(facts.contains("/run/cloudctl/root/ro squashfs"), "{facts}");
    assert!(facts.contains(&format!("backing {STORE}/.images/dom0-root")), "{facts}");
    assert!(facts.contains(&format!("{STORE} ocfs2")), "{facts}");
    assert!(facts.contains("Raid Level : multipath"), "{facts}");
    assert_eq!(facts.matches("active sync   /dev/etherd/").count(), 2, "{facts}");
    assert!(facts.contains("xen_version"), "{facts}");

    // Guests on the shared storage: a tiny guest's disk, and the kernel and initrd it boots,
    // pushed into the store; the guest created on hvm1 with its disk in the store.
    let guest_image = lab.state.dir.join("tiny.img");
    bootable_image(&guest_image, true);
    let built = build("build-xen-guest-initrd.sh");
    let (guest_initrd, guest_kernel) = (printed(&built, IMAGE), printed(&built, &["kernel: "]));
    for (file, name) in [
        (guest_image.display().to_string(), "tiny"),
        (guest_kernel, "guest-kernel"),
        (guest_initrd, "guest-initrd"),
    ] {
        ok(
            &cloudctl(&["-i", &inv, "--yes", "image", "push", &file, name, "--via", "hvm1"]),
            &format!("image push {name}"),
        );
    }
    let toml = std::fs::read_to_string(&inv).unwrap();
    let toml = with_guests(&toml);
    std::fs::write(&inv, toml).unwrap();
    let started = Instant::now();
    let out = cloudctl(&[
        "-i", &inv, "--yes", "--json", "instance", "create", GUEST, "--hnode", "hvm1", "--copy", "tiny", "--ip",
        &guest_ip, "--wait", "300",
    ]);
    assert!(
        out.status.success(),
        "create: {}{}\nhvm1's console of {GUEST}:\n{}",
        text(&out.stdout),
        text(&out.stderr),
        remote(
            &inv,
            "hvm1",
            &format!("cat /var/log/xen/console/guest-{GUEST}.log; xl list")
        )
    );
    let guest_up = json(&out)["up_after_seconds"].as_f64().unwrap_or_default();
    let create_took = started.elapsed();
    let disk = remote(
        &inv,
        "hvm1",
        &format!("xl block-list {GUEST}; losetup -a; grep ' {STORE} ' /proc/mounts"),
    );
    assert!(
        disk.contains(&format!("{STORE}/{GUEST}/disk.img")) && disk.contains(" ocfs2 "),
        "the guest's disk is not the store's file: {disk}"
    );
    assert_eq!(where_runs(&inv, GUEST), ("hvm1".to_string(), "hvm1".to_string()));

    // Live migration to hvm2 while the ConfigNode pings the guest every 100 ms, under the Xen
    // built with shadow paging (a PV guest's migration needs it). Here, under TCG, Xen pauses the
    // guest for 2-3 s at the switch-over (its final pages, the domain rebuilt and its devices
    // plugged on hvm2, then resumed): the pings lost are reported, and bounded so that a
    // regression shows, but the seed's "at most one" is not reached in emulation.
    let pings = pinger(&lab, &guest_ip, 1200);
    std::thread::sleep(Duration::from_secs(2));
    let started = Instant::now();
    let out = cloudctl(&["-i", &inv, "--yes", "instance", "migrate", GUEST, "--to", "hvm2"]);
    let migrate_took = started.elapsed();
    std::thread::sleep(Duration::from_secs(2));
    let migrated = lost(pings);
    assert!(out.status.success(), "migrate: {}", text(&out.stderr));
    assert!(
        migrated.lost <= MIGRATION_LOST_AT_MOST,
        "{} of {} pings lost during the migration (gaps {})",
        migrated.lost,
        migrated.sent,
        migrated.gaps
    );
    let expected = "hvm2";
    assert_eq!(where_runs(&inv, GUEST), (expected.to_string(), expected.to_string()));
    let (running, _) = found_running(&inv, GUEST);
    assert_eq!(running, [expected], "one copy of {GUEST} runs");

    // The seed's promise: the guest keeps running and writing checksummed blocks to its own
    // disk (4 KiB + fsync every 0.2 s, a log line each) while a storage node is lost and comes
    // back; the ConfigNode pings it all the while.
    let in_guest = |script: &str| {
        lab.sh_ok(
            0,
            &format!(
                "ssh -i {} -o UserKnownHostsFile={} -o BatchMode=yes -o StrictHostKeyChecking=yes -o ConnectTimeout=10 root@{guest_ip} sh -s <<'EOF'\n{script}\nEOF",
                lab.state.client_key.display(),
                lab.state.known_hosts.display()
            ),
        )
    };
    in_guest(&format!(
        "cat > /root/blocks.sh <<'W'\n{BLOCKS}\nW\nsetsid sh /root/blocks.sh write {WRITES} </dev/null >/dev/null 2>&1 &\necho started"
    ));
    let pings = pinger(&lab, &guest_ip, 2400);
    std::thread::sleep(Duration::from_secs(10));

    // A storage node lost: both roots and the store go on through the other export.
    ok(
        &cloudctl(&["lab", "power-off", "--name", LAB, "snode2"]),
        "power-off snode2",
    );
    let lost_at = Instant::now();
    for vm in ["hvm1", "hvm2"] {
        let check = format!(
            "sync; echo 3 > /proc/sys/vm/drop_caches; cat /usr/lib/xen-4.17/bin/* > /dev/null && xl info > /dev/null && \
             echo from-{vm}-while-snode2-is-off > {STORE}/{vm}-during && echo fine"
        );
        let out = remote(&inv, vm, &check);
        assert!(out.contains("fine"), "{vm}: {out}");
    }
    let through = lost_at.elapsed();
    let other = remote(&inv, "hvm1", &format!("cat {STORE}/hvm2-during"));
    assert_eq!(other.trim(), "from-hvm2-while-snode2-is-off");

    // snode2 comes back: Wake-on-LAN, PXE, `storage init` (never forced) and DRBD's resync; each
    // hardware node's attach-storage returns the path through it to the md device under its root.
    let (out, back) = crate::support::storage::boot(&inv, "snode2", "wol");
    check_boot(&lab, "snode2", &out);
    let resync = Instant::now();
    ok(
        &cloudctl(&["-i", &inv, "--yes", "storage", "init"]),
        "storage init after snode2 came back",
    );
    wait_storage(&inv, Duration::from_secs(240), "in sync again", in_sync);
    let resync = resync.elapsed();
    for vm in ["hvm1", "hvm2"] {
        let detail = remote(
            &inv,
            vm,
            &format!(
                "/etc/cloudctl/attach-storage 2>&1; mdadm --detail /dev/md/cloudctl-storage; xl info | grep xen_version; cat {STORE}/hvm1-during {STORE}/hvm2-during"
            ),
        );
        assert!(detail.contains("Active Devices : 2"), "{vm}: {detail}");
        assert!(
            detail.contains("xen_version")
                && detail.contains("from-hvm1-while-snode2-is-off")
                && detail.contains("from-hvm2-while-snode2-is-off"),
            "{vm}: {detail}"
        );
    }
    // The writer ends (bounded).
    let waited = Instant::now();
    while !in_guest("tail -n 1 /root/w.log").contains("done") {
        assert!(
            waited.elapsed() < Duration::from_secs(300),
            "the guest's writer did not finish"
        );
        std::thread::sleep(Duration::from_secs(5));
    }
    let survived = lost(pings);
    // Every block read back (the guest's page cache dropped) with the checksum it was written
    // with; a failed write counts as bad.
    let verified = in_guest("sync; echo 3 > /proc/sys/vm/drop_caches; sh /root/blocks.sh verify");
    let stall: f64 = verified
        .trim()
        .strip_prefix(&format!("verified {WRITES} bad 0 longest-stall "))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "a guest write failed or did not verify: {verified}\n{}",
                in_guest("cat /root/w.log")
            )
        });
    assert!(
        survived.lost <= 1,
        "{} of {} pings to the guest lost through the storage node's loss (gaps {})",
        survived.lost,
        survived.sent,
        survived.gaps
    );
    assert_eq!(where_runs(&inv, GUEST), (expected.to_string(), expected.to_string()));

    report(&format!(
        "hnode root on the storage: first boot (RAM root, store formatted and mounted) {:.1} s; image push {:.1} s; \
         reboot to the storage root → xen ok {:.1} s / {:.1} s; snode2 off: both roots read afresh and the store written in {:.1} s; \
         snode2 back: Wake-on-LAN → SSH {:.1} s, storage init + resync {:.1} s, both paths back on both nodes",
        first_boot.as_secs_f64(),
        push.as_secs_f64(),
        boots[0].as_secs_f64(),
        boots[1].as_secs_f64(),
        through.as_secs_f64(),
        back.as_secs_f64(),
        resync.as_secs_f64()
    ));
    report(&format!(
        "xen guest on the store: create --copy --wait {:.1} s (SSH with its pinned key {guest_up:.1} s after the start); \
         live migration hvm1 → hvm2 in {:.1} s, {} of {} pings lost (gaps {}); through snode2's loss and return: \
         {WRITES} writes, none failed, all verified, longest write stall {stall:.1} s, {} of {} pings lost",
        create_took.as_secs_f64(),
        migrate_took.as_secs_f64(),
        migrated.lost,
        migrated.sent,
        migrated.gaps,
        survived.lost,
        survived.sent
    ));
}

/// The lab's store (a folder the namespace hosts share) becomes the hardware nodes' OCFS2 mount.
fn with_store(toml: &str) -> String {
    let mut out = String::new();
    for line in toml.lines() {
        if line.starts_with("store = ") {
            out.push_str(&format!("store = \"{STORE}\"\n"));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// The guest on the hardware nodes, and its address on the lab's subnet.
const GUEST: &str = "xg1";

/// Pings (100 ms apart) a Xen live migration may lose here: 21 and 30 were measured under TCG.
const MIGRATION_LOST_AT_MOST: u32 = 50;

/// Blocks the guest's writer writes, 0.2 s apart: about three minutes with the writes' own time.
const WRITES: usize = 600;

/// The guest's writer and checker (busybox sh), shared with examples/try-lab.sh.
const BLOCKS: &str = include_str!("../../examples/guest-blocks.sh");

/// The guests' settings: the kernel and initrd pushed into the store, 128 MiB, a disk the size
/// of the tiny image (the store is small), and the hardware VMs' own authorized_keys (the lab's
/// file is the namespace hosts' sshd's) for migration's one-time key.
fn with_guests(toml: &str) -> String {
    let mut section = "";
    let mut out = String::new();
    for line in toml.lines() {
        if line.starts_with('[') {
            section = line;
        }
        let key = line.split(" = ").next().unwrap_or_default();
        let set = match (section, key) {
            ("[instances]", "kernel") => format!("kernel = \"{STORE}/.images/guest-kernel\""),
            ("[instances]", "initrd") => format!("initrd = \"{STORE}/.images/guest-initrd\""),
            ("[instances]", "memory") => "memory = 128".to_string(),
            ("[instances]", "disk") => "disk = \"64M\"".to_string(),
            ("[instances]", "authorized_keys") => continue,
            _ => line.to_string(),
        };
        out.push_str(&set);
        out.push('\n');
    }
    out
}
