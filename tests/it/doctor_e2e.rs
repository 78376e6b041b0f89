//! End to end on a lab: `doctor` reports a clean cloud as clean, and finds each problem planted
//! in it (a deleted boot file, a DHCP address moved into the dynamic range, a guest on a drained
//! node, memory over-commit, a leftover one-time key, a guest recorded elsewhere, a second copy
//! of a guest started by hand on another node, a changed host key, a second DHCP server on
//! another lab host, a registered node that never asked for its address), each with its fix.

use crate::support::guest::bootable_image;
use crate::support::{cloudctl, json, text, Lab, TFTPD};

const CONFIGNODE: usize = 0;
const HNODE2: usize = 2;
const HNODE3: usize = 3;

/// Runs `doctor --json`; (exit code, the checks found, the whole document).
fn doctor(inv: &str) -> (i32, Vec<String>, serde_json::Value) {
    let out = cloudctl(&["-i", inv, "--json", "doctor"]);
    let v = json(&out);
    let checks = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            assert!(!f["fix"].as_str().unwrap().is_empty(), "a finding without a fix: {f}");
            f["check"].as_str().unwrap().to_string()
        })
        .collect();
    (out.status.code().unwrap(), checks, v)
}

fn assert_found(inv: &str, check: &str) -> serde_json::Value {
    let (code, checks, v) = doctor(inv);
    assert_eq!(code, 1, "{v}");
    assert!(checks.iter().any(|c| c == check), "{check} not found: {v}");
    v
}

fn assert_clean(inv: &str) {
    let (code, checks, v) = doctor(inv);
    assert_eq!((code, checks.len()), (0, 0), "not clean: {v}");
}

#[test]
#[cfg_attr(
    not(lab_tests),
    ignore = "lab test: needs root and every program in .ci/prerequisites"
)]
fn doctor_finds_each_planted_problem_and_a_clean_lab_clean() {
    crate::support::require_lab(&[
        crate::support::vm::QEMU,
        "/vmlinuz",
        "/initrd.img",
        "/usr/bin/socat",
        "/sbin/mkfs.ext4",
        "/bin/busybox",
    ]);
    let _tftpd = TFTPD.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::up("td2doc", 4, 192);
    let inv = lab.inventory();
    lab.sh_ok(
        CONFIGNODE,
        "mkdir -p /srv/tftp/images/hnode && cp /vmlinuz /srv/tftp/images/hnode/vmlinuz && cp /initrd.img /srv/tftp/images/hnode/initrd.img",
    );
    let out = cloudctl(&["-i", &inv, "--yes", "config", "init"]);
    assert!(out.status.success(), "config init: {}", text(&out.stderr));
    let store = lab.state.dir.join("store");
    let golden = store.join("golden.img");
    bootable_image(&golden, true);
    let out = cloudctl(&[
        "-i",
        &inv,
        "--yes",
        "instance",
        "create",
        "dvm1",
        "--hnode",
        "hnode1",
        "--copy",
        &golden.display().to_string(),
        "--ip",
        "10.201.192.50",
    ]);
    assert!(out.status.success(), "create: {}", text(&out.stderr));
    assert_clean(&inv);
    let recorded = std::fs::read_to_string(&inv).unwrap();

    // A boot file deleted under tftp_root.
    lab.sh_ok(CONFIGNODE, "mv /srv/tftp/pxelinux.0 /srv/tftp/pxelinux.0.away");
    let v = assert_found(&inv, "missing_boot_file");
    assert!(v.to_string().contains("/srv/tftp/pxelinux.0"), "{v}");
    lab.sh_ok(CONFIGNODE, "mv /srv/tftp/pxelinux.0.away /srv/tftp/pxelinux.0");

    // A node's DHCP address moved into the dynamic range on the ConfigNode.
    lab.sh_ok(
        CONFIGNODE,
        "cp -a /etc/dhcp/cloudctl-hosts.d /tmp/td2doc-hosts && sed -i 's/fixed-address 10.201.192.12;/fixed-address 10.201.192.150;/' /etc/dhcp/cloudctl-hosts.d/*.conf",
    );
    let v = assert_found(&inv, "ip_in_dynamic_range");
    assert!(v.to_string().contains("the inventory says 10.201.192.12"), "{v}");
    lab.sh_ok(
        CONFIGNODE,
        "cp /tmp/td2doc-hosts/* /etc/dhcp/cloudctl-hosts.d/ && rm -r /tmp/td2doc-hosts",
    );

    // The guest's node drained.
    assert!(cloudctl(&["-i", &inv, "--yes", "hnode", "drain", "hnode1"])
        .status
        .success());
    assert_found(&inv, "guest_on_drained_node");
    assert!(cloudctl(&["-i", &inv, "--yes", "hnode", "undrain", "hnode1"])
        .status
        .success());

    // Memory over-committed: hnode1 gives guests 64 MiB, dvm1 needs 256.
    std::fs::write(
        &inv,
        recorded.replace("name = \"hnode1\"\n", "name = \"hnode1\"\nmemory = 64\n"),
    )
    .unwrap();
    assert_found(&inv, "memory_overcommit");
    // The guest recorded on another node than it runs on.
    std::fs::write(&inv, recorded.replace("hnode = \"hnode1\"", "hnode = \"hnode2\"")).unwrap();
    assert_found(&inv, "guest_elsewhere");
    std::fs::write(&inv, &recorded).unwrap();

    // A one-time migration key left in authorized_keys.
    let auth = lab.state.dir.join("authorized_keys");
    let keys = std::fs::read_to_string(&auth).unwrap();
    std::fs::write(
        &auth,
        format!("{keys}restrict,command=\"true\" ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB cloudctl-migrate-dvm1\n"),
    )
    .unwrap();
    assert_found(&inv, "leftover_one_time_key");
    std::fs::write(&auth, &keys).unwrap();

    // A second copy of the guest started by hand on hnode2 (an empty QEMU under its name).
    lab.sh_ok(
        HNODE2,
        "mkdir -p /run/cloudctl/instances && qemu-system-x86_64 -name guest=dvm1 -machine pc,accel=tcg -m 32 -nodefaults -display none \
         -qmp unix:/run/cloudctl/instances/dvm1.qmp,server=on,wait=off -pidfile /run/cloudctl/instances/dvm1.pid -daemonize",
    );
    let v = assert_found(&inv, "split_brain");
    assert!(v.to_string().contains("hnode1 and hnode2"), "{v}");
    lab.sh_ok(
        HNODE2,
        "kill $(cat /run/cloudctl/instances/dvm1.pid) && rm -f /run/cloudctl/instances/dvm1.pid /run/cloudctl/instances/dvm1.qmp",
    );

    // hnode3's host key changed (its pinned line now holds hnode2's key).
    let known = std::fs::read_to_string(&lab.state.known_hosts).unwrap();
    let key_of = |ip: &str| {
        known
            .lines()
            .find(|l| l.starts_with(&format!("{ip} ")))
            .unwrap_or_else(|| panic!("{ip} not pinned: {known}"))
            .to_string()
    };
    let (h2, h3) = (key_of("10.201.192.12"), key_of("10.201.192.13"));
    std::fs::write(
        &lab.state.known_hosts,
        known.replace(&h3, &h2.replacen("10.201.192.12", "10.201.192.13", 1)),
    )
    .unwrap();
    let v = assert_found(&inv, "host_key");
    assert!(v.to_string().contains("cloudctl host trust hnode3"), "{v}");
    std::fs::write(&lab.state.known_hosts, &known).unwrap();

    // A second DHCP server on the ConfigNode's network: dhcpd started by hand on hnode3.
    let rogue = lab.state.dir.join("rogue");
    std::fs::create_dir_all(&rogue).unwrap();
    std::fs::write(
        rogue.join("dhcpd.conf"),
        "ddns-update-style none;\nauthoritative;\nsubnet 10.201.192.0 netmask 255.255.255.0 { range 10.201.192.200 10.201.192.210; }\n",
    )
    .unwrap();
    std::fs::write(rogue.join("leases"), "").unwrap();
    let r = rogue.display();
    lab.sh_ok(
        HNODE3,
        &format!("dhcpd -q -cf {r}/dhcpd.conf -lf {r}/leases -pf {r}/pid br0"),
    );
    let v = assert_found(&inv, "rogue_dhcp");
    assert!(v.to_string().contains("a second DHCP server (10.201.192.13)"), "{v}");
    lab.sh_ok(HNODE3, &format!("kill $(cat {r}/pid)"));

    // A node registered that never booted: named, beside its being unreachable.
    let ghost = "52:54:00:c0:c0:01";
    let out = cloudctl(&[
        "-i",
        &inv,
        "--yes",
        "node",
        "add",
        "ghost",
        "--mac",
        ghost,
        "--ip",
        "10.201.192.60",
        "--role",
        "hnode",
    ]);
    assert!(out.status.success(), "node add: {}", text(&out.stderr));
    let v = assert_found(&inv, "never_booted");
    assert!(v.to_string().contains(ghost), "{v}");
    // Its MAC asks for its address once (busybox udhcpc on a macvlan of hnode3's bridge, the
    // exchange PXE firmware starts with): the ConfigNode's dhcpd answers and records it, so the
    // node is only down now.
    lab.sh_ok(
        HNODE3,
        &format!("ip link add gh0 link br0 type macvlan && ip link set gh0 address {ghost} up && busybox udhcpc -i gh0 -n -q -t 5 -s /bin/true; r=$?; ip link del gh0; exit $r"),
    );
    let (code, checks, v) = doctor(&inv);
    assert_eq!(code, 1, "{v}");
    assert!(
        checks.contains(&"unreachable".to_string()) && !checks.contains(&"never_booted".to_string()),
        "{v}"
    );
    let out = cloudctl(&["-i", &inv, "--yes", "node", "remove", "ghost"]);
    assert!(out.status.success(), "node remove: {}", text(&out.stderr));

    // Everything put back: clean again.
    assert_clean(&inv);
    let out = cloudctl(&["-i", &inv, "doctor"]);
    assert!(text(&out.stderr).contains("no problems found"), "{}", text(&out.stderr));
}
