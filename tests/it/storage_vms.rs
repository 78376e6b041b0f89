//! Storage for real: two storage nodes and a client are QEMU VMs on the lab bridge, switched on by
//! Wake-on-LAN through the lab's power listener and PXE-booted from the ConfigNode host with the
//! image examples/build-snode-initrd.sh builds; `node boot` pins their keys, `storage init` builds
//! md RAID1 + DRBD primary/primary + AoE exports on them. A client writes through md multipath
//! over both exports while each storage node in turn is killed and brought back; a VM whose MAC
//! is not a client sees no export. `doctor` names the disconnected DRBD device and the
//! client's lost path while a storage node is down, a RAID1 member failed by hand, a real DRBD
//! split brain (the storage nodes cut off from each other, both writing, then reconnected) until
//! it is resolved the way its fix says, and clocks set off by hand on a storage node and a
//! hardware node.

use crate::support::lab::{console, remote};
use crate::support::storage::{boot, boot_image, check_boot, in_sync, storage_status, wait_storage};
use crate::support::{cloudctl, ok, report, text, Lab, TFTPD};
use cloudctl::lab::VmRole;
use std::time::{Duration, Instant};

const LAB: &str = "tasvm";
const OCTET: u8 = 182;

/// `doctor --json`: its (check, subject) pairs and the document.
fn doctor(inv: &str) -> (Vec<(String, String)>, serde_json::Value) {
    let (_, found, doc) = doctor_exit(inv);
    (found, doc)
}

/// `doctor --json`: its exit code, (check, subject) pairs and the document.
fn doctor_exit(inv: &str) -> (Option<i32>, Vec<(String, String)>, serde_json::Value) {
    let out = cloudctl(&["-i", inv, "--json", "doctor"]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("doctor: {}{}", text(&out.stdout), text(&out.stderr)));
    let found = doc["findings"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|f| {
            (
                f["check"].as_str().unwrap_or_default().to_string(),
                f["subject"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    (out.status.code(), found, doc)
}

fn has(found: &[(String, String)], check: &str, subject: &str) -> bool {
    found.iter().any(|(c, s)| c == check && s == subject)
}

#[test]
#[cfg_attr(
    not(lab_tests),
    ignore = "lab test: needs root and every program in .ci/prerequisites"
)]
fn storage_nodes_as_pxe_booted_vms() {
    crate::support::lab::require_vm_lab(&[
        "/usr/sbin/vblade",
        "/usr/sbin/aoe-stat",
        "/usr/sbin/drbdadm",
        "/usr/sbin/mdadm",
    ]);
    let _tftpd = TFTPD.lock().unwrap_or_else(|e| e.into_inner());
    let (kernel, initrd) = boot_image();
    let lab = Lab::up_with_vms(
        LAB,
        1,
        OCTET,
        &[VmRole::Snode, VmRole::Snode, VmRole::Hnode, VmRole::Hnode],
        64,
    );
    let inv = lab.inventory();
    // hvm2 stays outside `clients`: it must not see the exports.
    let toml = std::fs::read_to_string(&inv).unwrap();
    assert!(toml.contains("clients = [\"hvm1\", \"hvm2\"]"), "{toml}");
    std::fs::write(
        &inv,
        toml.replace("clients = [\"hvm1\", \"hvm2\"]", "clients = [\"hvm1\"]"),
    )
    .unwrap();
    for profile in ["snode", "hnode"] {
        lab.sh_ok(0, &format!("mkdir -p /srv/tftp/images/{profile} && cp {kernel} /srv/tftp/images/{profile}/vmlinuz && cp {initrd} /srv/tftp/images/{profile}/initrd.img"));
    }
    ok(&cloudctl(&["-i", &inv, "--yes", "config", "init"]), "config init");
    let status = cloudctl(&["lab", "status", "--name", LAB]);
    let listing = ok(&status, "lab status") + &text(&status.stdout);
    assert!(
        listing.contains("snode1") && listing.contains(" off ") && listing.contains("power listener (Wake-on-LAN"),
        "{listing}"
    );

    // Both storage nodes boot at once. Their ConfigNode changes are applied one after the
    // other (two `node boot` runs planned from the same probe would each rewrite the other's
    // PXE entry without its overlay); the second run's --wait and a wait-only run for the first
    // then watch them come up side by side.
    let first = Instant::now();
    ok(
        &cloudctl(&["-i", &inv, "--yes", "node", "boot", "snode1"]),
        "node boot snode1",
    );
    let (out, took) = boot(&inv, "snode2", "wol");
    check_boot(&lab, "snode2", &out);
    let (out, _) = boot(&inv, "snode1", "none");
    check_boot(&lab, "snode1", &out);
    report(&format!(
        "storage VM snode2: Wake-on-LAN → SSH with the pinned key in {:.1} s (both storage VMs up after {:.1} s)",
        took.as_secs_f64(),
        first.elapsed().as_secs_f64()
    ));

    // storage init for real: md RAID1 on each, DRBD connected and in sync, both primary, exports.
    let started = Instant::now();
    let out = cloudctl(&["-i", &inv, "--yes", "-v", "storage", "init"]);
    let err = text(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "storage init: {err}\nsnode1:\n{}\nsnode2:\n{}",
        console(&lab, "snode1"),
        console(&lab, "snode2")
    );
    let init = started.elapsed();
    // md reads "active" while writes are in flight (the resync's own included) and "clean" once
    // idle: wait for that too rather than catch the array between two writes.
    let clean = |r: &serde_json::Value| in_sync(r) && r["md"].as_str().unwrap_or_default().starts_with("clean");
    let rows = wait_storage(&inv, Duration::from_secs(240), "in sync with md clean", clean);
    let synced = started.elapsed();
    for r in &rows {
        assert!(r["md"].as_str().unwrap_or_default().starts_with("clean"), "{r}");
    }
    report(&format!(
        "storage init: {:.1} s; UpToDate/UpToDate, Primary/Primary after {:.1} s",
        init.as_secs_f64(),
        synced.as_secs_f64()
    ));
    let out = cloudctl(&["-i", &inv, "--yes", "storage", "init"]);
    let err = ok(&out, "second storage init");
    assert!(err.contains("storage init: no changes"), "{err}");
    let hvm1 = lab.state.vms.iter().find(|v| v.name == "hvm1").unwrap().mac.clone();
    for node in ["snode1", "snode2"] {
        let vblade = remote(
            &inv,
            node,
            "for p in $(pidof vblade); do tr '\\0' ' ' < /proc/$p/cmdline; echo; done",
        );
        assert!(vblade.contains(&format!("-m {hvm1} ")), "{node}: {vblade}");
    }

    failover(&lab, &inv);
}

/// The bounded writer: N blocks of 64 KiB of random data to device $1 from block $3 on, each
/// written with fsync; logs "index uptime ok|ERR sha256" per block and "done" at the end.
const WRITER: &str = r#"d=$1; n=$2; first=$3; log=$4; i=0; : > "$log"
while [ "$i" -lt "$n" ]; do
  head -c 65536 /dev/urandom > /tmp/blk; s=$(sha256sum < /tmp/blk)
  if dd if=/tmp/blk of="$d" bs=65536 seek=$((first + i)) count=1 conv=fsync 2>/dev/null; then r=ok; else r=ERR; fi
  read -r t _ < /proc/uptime; echo "$i $t $r ${s%% *}" >> "$log"; i=$((i + 1))
done
echo done >> "$log""#;

/// Per block (index, seconds, ok, sha) from a writer log.
fn parse_log(log: &str) -> Vec<(u64, f64, bool, String)> {
    log.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (f.len() == 4).then(|| {
                (
                    f[0].parse().unwrap(),
                    f[1].parse().unwrap(),
                    f[2] == "ok",
                    f[3].to_string(),
                )
            })
        })
        .collect()
}

/// (blocks per second, longest gap between two blocks in seconds).
fn rate_and_stall(blocks: &[(u64, f64, bool, String)]) -> (f64, f64) {
    let span = blocks.last().unwrap().1 - blocks[0].1;
    let stall = blocks.windows(2).map(|w| w[1].1 - w[0].1).fold(0.0, f64::max);
    ((blocks.len() - 1) as f64 / span.max(0.01), stall)
}

/// Blocks each writer writes; a storage node is killed once KILL_AFTER of them are on disk.
const BLOCKS: u64 = 96;
const KILL_AFTER: usize = 16;
const MD: &str = "/dev/md/cloudctl-storage";

/// Which storage node (0 or 1) serves the path md multipath sends I/O to: md uses the first
/// working path, RaidDevice 0; export slot N is storage node N.
fn active_node(inv: &str) -> usize {
    let detail = remote(inv, "hvm1", &format!("mdadm --detail {MD}"));
    let line = detail
        .lines()
        .find(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() >= 7 && f[3] == "0" && f[4] == "active"
        })
        .unwrap_or_else(|| panic!("no active RaidDevice 0: {detail}"));
    if line.ends_with(".0") {
        0
    } else {
        assert!(line.ends_with(".1"), "{line}");
        1
    }
}

/// Runs the writer on the client from block `first` and kills storage node `victim` (0 or 1)
/// once KILL_AFTER blocks are written: no block may fail. Then powers the node on again by
/// Wake-on-LAN, brings it back with `storage init` (never forced), waits for DRBD to resync,
/// returns its path to the client's md device and reads every block back. Returns the figures.
fn kill_and_return(lab: &Lab, inv: &str, victim: usize, first: u64, serving: bool) -> String {
    let node = ["snode1", "snode2"][victim];
    let survivor = ["snode1", "snode2"][1 - victim];
    remote(
        inv,
        "hvm1",
        // Detached from the SSH session, which ends long before the writer does.
        &format!("(setsid sh /tmp/writer {MD} {BLOCKS} {first} /tmp/w.log </dev/null >/dev/null 2>&1 &)"),
    );
    let written = |min: usize| {
        let started = Instant::now();
        loop {
            let log = remote(inv, "hvm1", "cat /tmp/w.log 2>/dev/null; exit 0");
            if log.lines().count() >= min || log.contains("done") {
                return log;
            }
            assert!(
                started.elapsed() < Duration::from_secs(300),
                "the writer stalled: {log}\n{}",
                remote(inv, "hvm1", "dmesg | tail -n 20")
            );
            std::thread::sleep(Duration::from_secs(1));
        }
    };
    written(KILL_AFTER);
    ok(&cloudctl(&["lab", "power-off", "--name", LAB, node]), "power-off");
    let killed = Instant::now();
    // Degraded while the node is down: a non-zero exit naming it (4 for the unreachable node, or 1
    // once the survivor reports its peer gone: in cloudctl's one order a problem outranks it).
    let (code, rows) = storage_status(inv);
    assert!(matches!(code, Some(1) | Some(4)), "{node} down: {code:?} {rows:?}");
    assert!(
        rows[victim]["problems"][0]
            .as_str()
            .unwrap_or_default()
            .contains("unreachable"),
        "{rows:?}"
    );
    let log = written(BLOCKS as usize + 1);
    let writer_done = killed.elapsed();
    let blocks = parse_log(&log);
    assert_eq!(blocks.len() as u64, BLOCKS, "{log}");
    let errors: Vec<_> = blocks.iter().filter(|b| !b.2).collect();
    assert!(
        errors.is_empty(),
        "the writer saw I/O errors with {node} down: {errors:?}\n{}",
        remote(inv, "hvm1", "dmesg | tail -n 30")
    );
    let (_, stall) = rate_and_stall(&blocks);
    report(&format!(
        "{node} killed: {BLOCKS} blocks of 64 KiB, 0 I/O errors, longest write stall {stall:.1} s, writer done {:.0} s after the kill",
        killed.elapsed().as_secs_f64()
    ));
    // By now the survivor has noticed (the status right after the kill may predate that).
    let (code, rows) = storage_status(inv);
    assert_eq!(code, Some(1), "{node} still down, the survivor degraded: {rows:?}");
    assert!(
        !rows[1 - victim]["problems"].as_array().unwrap().is_empty(),
        "the survivor misses its peer: {rows:?}"
    );
    // doctor sees it as the kernels do: the node unreachable, the survivor's DRBD device not
    // connected, and (when the dead node served the I/O) the client's md multipath down a path.
    let (found, doc) = doctor(inv);
    let raw = remote(inv, survivor, "cat /proc/drbd; echo; cat /proc/mdstat; exit 0");
    let client = remote(inv, "hvm1", "cat /proc/mdstat; exit 0");
    report(&format!(
        "{node} down: {survivor}'s /proc/drbd and /proc/mdstat:\n{raw}\nhvm1's /proc/mdstat:\n{client}"
    ));
    assert!(has(&found, "unreachable", node), "{doc}");
    assert!(has(&found, "drbd_disconnected", survivor), "{doc}");
    assert!(!has(&found, "md_degraded", survivor), "its own RAID1 is whole: {doc}");
    if serving {
        assert!(has(&found, "md_degraded", "hvm1"), "{doc}\n{client}");
    }

    // The node comes back: Wake-on-LAN, PXE, then storage init brings it back unforced.
    let (out, took) = boot(inv, node, "wol");
    check_boot(lab, node, &out);
    // Up again, but its RAM root forgot the DRBD resource until storage init.
    let (found, doc) = doctor(inv);
    assert!(has(&found, "drbd_down", node), "{doc}");
    let started = Instant::now();
    let out = cloudctl(&["-i", inv, "--yes", "-v", "storage", "init"]);
    let err = ok(&out, "storage init after the node came back");
    // The initial-sync step (the only `primary --force`) is planned again (a RAM root forgets
    // its markers) but its guard finds UpToDate data, so it must not run.
    assert!(
        !err.contains("r0.initial-sync /var/lib/cloudctl/storage 120: changed"),
        "a primary was forced: {err}"
    );
    assert!(!err.contains("drbdadm create-md \"$1\" && mkdir -p \"$3\" && touch \"$2\"' sh r0 /var/lib/cloudctl/storage/r0.metadata-created /var/lib/cloudctl/storage: changed"), "metadata recreated: {err}");
    // Mid-resync, as doctor sees it: connected, the disks not both UpToDate yet.
    let raw = remote(inv, survivor, "cat /proc/drbd; exit 0");
    let (found, doc) = doctor(inv);
    report(&format!("{node} back, resyncing: {survivor}'s /proc/drbd:\n{raw}"));
    if raw.contains("sync'ed:") {
        assert!(has(&found, "drbd_degraded", survivor), "{doc}\n{raw}");
    }
    wait_storage(inv, Duration::from_secs(240), "in sync again", in_sync);
    let resync = started.elapsed();
    let (code, _) = storage_status(inv);
    assert_eq!(code, Some(0), "healthy again");
    let (found, doc) = doctor(inv);
    let raw = remote(inv, node, "cat /proc/drbd; exit 0");
    report(&format!("{node} back, in sync: /proc/drbd:\n{raw}"));
    let storage_checks = [
        "drbd_disconnected",
        "drbd_split_brain",
        "drbd_degraded",
        "drbd_down",
        "md_degraded",
    ];
    assert!(
        !found
            .iter()
            .any(|(c, s)| storage_checks.contains(&c.as_str()) && s.starts_with("snode")),
        "{doc}"
    );
    // Every block reads back with its checksum.
    let sums = remote(inv, "hvm1", &format!("i={first}; while [ $i -lt {} ]; do dd if={MD} bs=65536 skip=$i count=1 2>/dev/null | sha256sum | cut -d' ' -f1; i=$((i + 1)); done", first + BLOCKS));
    let read: Vec<&str> = sums.lines().collect();
    assert_eq!(read.len() as u64, BLOCKS);
    for (b, r) in blocks.iter().zip(&read) {
        assert_eq!(&b.3, r, "block {} reads back different", first + b.0);
    }
    report(&format!(
        "{node} back: Wake-on-LAN → SSH {:.1} s, storage init + resync to UpToDate/UpToDate {:.1} s; all {BLOCKS} blocks read back with their checksums",
        took.as_secs_f64(),
        resync.as_secs_f64()
    ));
    // The client takes the returned path back.
    let detail = remote(
        inv,
        "hvm1",
        &format!("/etc/cloudctl/attach-storage 2>&1; mdadm --detail {MD}; dmesg | tail -n 15; exit 0"),
    );
    assert!(detail.contains("Active Devices : 2"), "{detail}");

    format!(
        "{BLOCKS} blocks of 64 KiB, 0 I/O errors, longest write stall {stall:.1} s, writer done {:.0} s after the kill; {node} back: Wake-on-LAN → SSH {:.1} s, storage init + resync to UpToDate/UpToDate {:.1} s; all {BLOCKS} blocks read back with their checksums",
        writer_done.as_secs_f64(),
        took.as_secs_f64(),
        resync.as_secs_f64()
    )
}

/// The client attaches both exports as md multipath and writes while a storage node dies, twice:
/// first the node whose path is idle (its peer, serving the I/O, freezes until it has fenced
/// the dead node: the client's path through it must ride that out), then the node serving the
/// I/O (md multipath must move to the other path once the client's AoE gives the dead one up).
fn failover(lab: &Lab, inv: &str) {
    let out = cloudctl(&["-i", inv, "--yes", "node", "boot", "hvm1", "--wait", "240"]);
    let err = text(&out.stderr);
    assert!(
        err.contains("hvm1: SSH answers with the pinned host key"),
        "{err}\n{}",
        console(lab, "hvm1")
    );
    let attached = remote(
        inv,
        "hvm1",
        &format!("/etc/cloudctl/attach-storage >/dev/null 2>&1; cat /proc/mdstat; ls /dev/etherd; mdadm --detail {MD}"),
    );
    assert!(
        attached.contains("multipath") && attached.contains("e1.0") && attached.contains("e1.1"),
        "{attached}"
    );
    assert!(attached.contains("Active Devices : 2"), "{attached}");

    // Baseline: the same writer on storage node 2's own DRBD device (replicated like every write
    // through AoE), in a region past the client's blocks.
    remote(inv, "snode2", &format!("cat > /tmp/writer <<'EOF'\n{WRITER}\nEOF"));
    remote(inv, "snode2", "sh /tmp/writer /dev/drbd0 48 800 /tmp/base.log");
    let base = parse_log(&remote(inv, "snode2", "cat /tmp/base.log"));
    let (base_rate, _) = rate_and_stall(&base);
    remote(inv, "hvm1", &format!("cat > /tmp/writer <<'EOF'\n{WRITER}\nEOF"));
    remote(inv, "hvm1", &format!("sh /tmp/writer {MD} 48 400 /tmp/calm.log"));
    let calm = parse_log(&remote(inv, "hvm1", "cat /tmp/calm.log"));
    let (rate, _) = rate_and_stall(&calm);
    report(&format!(
        "client writer through AoE multipath {:.0} KiB/s vs {:.0} KiB/s on snode2's own DRBD device (ratio {:.2})",
        rate * 64.0,
        base_rate * 64.0,
        rate / base_rate
    ));

    let active = active_node(inv);
    let idle = 1 - active;
    let figures = kill_and_return(lab, inv, idle, 0, false);
    report(&format!(
        "failover, snode{} killed (its peer serves the I/O): {figures}",
        idle + 1
    ));
    let active = active_node(inv);
    let figures = kill_and_return(lab, inv, active, BLOCKS, true);
    report(&format!(
        "failover, snode{} killed (it served the I/O): {figures}",
        active + 1
    ));

    degraded_md(inv);

    // A MAC outside `clients` sees no export.
    ok(
        &cloudctl(&["lab", "power-off", "--name", LAB, "hvm1"]),
        "power-off hvm1",
    );
    let out = cloudctl(&["-i", inv, "--yes", "node", "boot", "hvm2", "--wait", "240"]);
    assert!(
        text(&out.stderr).contains("hvm2: SSH answers with the pinned host key"),
        "{}",
        text(&out.stderr)
    );
    let seen = remote(
        inv,
        "hvm2",
        "modprobe aoe; aoe-discover; sleep 5; ls /sys/block; exit 0",
    );
    assert!(!seen.contains("etherd"), "a non-client sees the exports: {seen}");

    split_brain_and_skew(lab, inv);
}

/// A member of snode1's RAID1 failed by hand: doctor names the degraded array; re-added, md
/// rebuilds it and doctor no longer does.
fn degraded_md(inv: &str) {
    let member = remote(
        inv,
        "snode1",
        "md=$(awk '/^md/ { print $1; exit }' /proc/mdstat); d=$(mdadm --detail /dev/$md | awk '/active sync/ { d = $NF } END { print d }'); mdadm /dev/$md --fail $d >/dev/null 2>&1; echo $md $d",
    );
    let (md, disk) = member.trim().split_once(' ').unwrap_or_else(|| panic!("{member}"));
    let (found, doc) = doctor(inv);
    let raw = remote(inv, "snode1", "cat /proc/mdstat");
    report(&format!("snode1 with {disk} failed in {md}: /proc/mdstat:\n{raw}"));
    assert!(has(&found, "md_degraded", "snode1"), "{doc}\n{raw}");
    let rebuilding = remote(
        inv,
        "snode1",
        &format!(
            "mdadm /dev/{md} --remove {disk} >/dev/null && mdadm /dev/{md} --add {disk} >/dev/null && cat /proc/mdstat"
        ),
    );
    report(&format!("snode1 with {disk} added back: /proc/mdstat:\n{rebuilding}"));
    let started = Instant::now();
    loop {
        let (found, doc) = doctor(inv);
        if !has(&found, "md_degraded", "snode1") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(120), "md never rebuilt: {doc}");
        std::thread::sleep(Duration::from_secs(2));
    }
}

/// One storage node's DRBD connection state, from its /proc/drbd.
fn cstate(inv: &str, node: &str) -> String {
    let drbd = remote(inv, node, "cat /proc/drbd; exit 0");
    drbd.split_whitespace()
        .find_map(|w| w.strip_prefix("cs:"))
        .unwrap_or("none")
        .to_string()
}

/// Polls (bounded) until both storage nodes' DRBD connection state is `want`.
fn wait_cstate(inv: &str, want: &str, limit: Duration) {
    let started = Instant::now();
    loop {
        let states = [cstate(inv, "snode1"), cstate(inv, "snode2")];
        if states.iter().all(|s| s == want) {
            return;
        }
        assert!(
            started.elapsed() < limit,
            "DRBD never reached {want} on both within {limit:?}: {states:?}\nsnode1:\n{}\nsnode2:\n{}",
            remote(inv, "snode1", "cat /proc/drbd; dmesg | grep -i drbd | tail -n 15"),
            remote(inv, "snode2", "cat /proc/drbd; dmesg | grep -i drbd | tail -n 15")
        );
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Unix seconds on this machine.
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A real split brain: each storage node drops every packet to the other (a blackhole route,
/// so neither answers the other's ping), both fence-peer handlers find the peer gone and resume
/// I/O, and both write while apart; once the routes are gone DRBD reconnects, compares the
/// data generations, finds both changed and (after-sb-2pri disconnect) gives up: StandAlone
/// (the other side too, or waiting for the connection it dropped), `Split-Brain detected` in
/// the kernel log. With that, storage node 1's clock is set 120 s
/// ahead and hardware node hvm2's 120 s behind. doctor names all four; then the clocks are set
/// back and the split brain is resolved by its fix (snode2's data discarded), and doctor names
/// none of it.
fn split_brain_and_skew(lab: &Lab, inv: &str) {
    let started = Instant::now();
    let parsed = cloudctl::inventory::parse(inv, &std::fs::read_to_string(inv).unwrap()).unwrap();
    let res = parsed.storage.as_ref().unwrap().get_ref().resource.to_string();
    let ips = [lab.node_ip("snode1"), lab.node_ip("snode2")];
    for (i, node) in ["snode1", "snode2"].iter().enumerate() {
        remote(inv, node, &format!("ip route add blackhole {}/32", ips[1 - i]));
    }
    wait_cstate(inv, "WFConnection", Duration::from_secs(60));
    // Apart, each writes its own 4 blocks (past every block the client and the baseline wrote).
    for (node, first) in [("snode1", 900), ("snode2", 910)] {
        remote(
            inv,
            node,
            &format!(
                "head -c 262144 /dev/urandom | dd of=/dev/drbd0 bs=65536 seek={first} count=4 conv=fsync 2>/dev/null"
            ),
        );
    }
    for (i, node) in ["snode1", "snode2"].iter().enumerate() {
        remote(inv, node, &format!("ip route del blackhole {}/32", ips[1 - i]));
    }
    // Whoever compares the data first drops the connection (StandAlone); its peer, if it had
    // not compared yet, only sees the connection go and waits for it again (WFConnection).
    let waited = Instant::now();
    let states = loop {
        let states = [cstate(inv, "snode1"), cstate(inv, "snode2")];
        if states.iter().any(|s| s == "StandAlone") && states.iter().all(|s| s == "StandAlone" || s == "WFConnection") {
            break states;
        }
        assert!(
            waited.elapsed() < Duration::from_secs(90),
            "no split brain detected within 90 s: {states:?}\nsnode1:\n{}\nsnode2:\n{}",
            remote(inv, "snode1", "cat /proc/drbd; dmesg | grep -i drbd | tail -n 15"),
            remote(inv, "snode2", "cat /proc/drbd; dmesg | grep -i drbd | tail -n 15")
        );
        std::thread::sleep(Duration::from_secs(1));
    };
    let apart = started.elapsed();
    let logged = remote(inv, "snode1", "dmesg | grep 'Split-Brain' | tail -n 2; cat /proc/drbd");
    report(&format!(
        "split brain planted in {:.1} s, connection states {states:?}; snode1 says:\n{logged}",
        apart.as_secs_f64()
    ));

    let now = unix_now();
    remote(inv, "snode1", &format!("date -s @{} >/dev/null", now + 120));
    remote(inv, "hvm2", &format!("date -s @{} >/dev/null", now - 120));
    let (code, found, doc) = doctor_exit(inv);
    assert_eq!(code, Some(1), "{doc}");
    for node in ["snode1", "snode2"] {
        assert!(has(&found, "drbd_split_brain", node), "{doc}");
        assert!(!has(&found, "drbd_disconnected", node), "said as what it is: {doc}");
    }
    let finding = |check: &str, subject: &str| {
        doc["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["check"] == check && f["subject"] == subject)
            .cloned()
            .unwrap_or_else(|| panic!("no {check} for {subject}: {doc}"))
    };
    let split = finding("drbd_split_brain", "snode2");
    let fix = split["fix"].as_str().unwrap();
    for step in [
        "service cloudctl-aoe stop".to_string(),
        format!("drbdadm connect --discard-my-data {res}"),
        "cloudctl storage init".to_string(),
    ] {
        assert!(fix.contains(&step), "{fix}");
    }
    let ahead = finding("clock_skew", "snode1");
    let behind = finding("clock_skew", "hvm2");
    assert!(ahead["problem"].as_str().unwrap().contains(" s ahead of"), "{ahead}");
    assert!(behind["problem"].as_str().unwrap().contains(" s behind"), "{behind}");
    assert!(!has(&found, "clock_skew", "snode2"), "{doc}");
    report(&format!(
        "doctor on the split brain and the clocks set off: {}\n{}\n{}",
        split["problem"], ahead["problem"], behind["problem"]
    ));

    // Clocks back; the split brain resolved as the fix says, snode2's writes discarded.
    let now = unix_now();
    remote(inv, "snode1", &format!("date -s @{now} >/dev/null"));
    remote(inv, "hvm2", &format!("date -s @{now} >/dev/null"));
    let resolving = Instant::now();
    remote(
        inv,
        "snode2",
        &format!("service cloudctl-aoe stop && {{ [ \"$(drbdadm cstate {res})\" = StandAlone ] || drbdadm disconnect {res}; }} && drbdadm secondary {res} && drbdadm connect --discard-my-data {res}"),
    );
    remote(
        inv,
        "snode1",
        &format!("if [ \"$(drbdadm cstate {res})\" = StandAlone ]; then drbdadm connect {res}; fi"),
    );
    ok(
        &cloudctl(&["-i", inv, "--yes", "storage", "init"]),
        "storage init after the split brain",
    );
    wait_storage(inv, Duration::from_secs(120), "in sync after the split brain", in_sync);
    let resolved = resolving.elapsed();
    // Both hold snode1's data now, its 4 blocks and where snode2 wrote alone.
    let sums = |node: &str| {
        remote(
            inv,
            node,
            "dd if=/dev/drbd0 bs=65536 skip=900 count=14 2>/dev/null | sha256sum",
        )
    };
    assert_eq!(sums("snode1"), sums("snode2"), "the nodes hold different data");
    let (found, doc) = doctor(inv);
    assert!(
        !found.iter().any(|(c, s)| c.starts_with("drbd_")
            || c == "clock_skew"
            || (c == "md_degraded" && s.starts_with("snode"))),
        "{doc}"
    );
    report(&format!(
        "split brain: planted (cut off, both write, reconnect → StandAlone) {:.1} s; resolved (discard snode2, storage init, resync) {:.1} s; the whole split-brain and clock part {:.1} s",
        apart.as_secs_f64(),
        resolved.as_secs_f64(),
        started.elapsed().as_secs_f64()
    ));
}
