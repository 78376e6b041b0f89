//! `hnode boot` for real: a QEMU VM PXE-boots a diskless node (busybox + dropbear initramfs with
//! cloudctl's per-node overlay), answers SSH with the host key cloudctl generated and pinned,
//! and a second boot needs no host-key change. Also: Wake-on-LAN reaches the node's network.

use crate::support::vm::{kernel, pack, Vm, QEMU, ROM};
use crate::support::{cloudctl, copy_with_libraries, report, text, Lab, TFTPD};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const MAC: &str = "52:54:00:12:34:57";

/// A diskless node's base initramfs: busybox, dropbear (with its libraries) and the e1000 driver;
/// /init takes its address by DHCP and serves SSH with the host key from cloudctl's overlay.
fn diskless_initrd(dir: &Path, kernel_version: &str) -> PathBuf {
    let root = dir.join("diskless");
    copy_with_libraries(&root, "/bin/busybox");
    copy_with_libraries(&root, "/usr/sbin/dropbear");
    let e1000 = format!("/lib/modules/{kernel_version}/kernel/drivers/net/ethernet/intel/e1000/e1000.ko");
    std::fs::copy(&e1000, root.join("e1000.ko")).unwrap();
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
    std::fs::write(root.join("etc/group"), "root:x:0:\n").unwrap();
    std::fs::write(root.join("etc/shells"), "/bin/sh\n").unwrap();
    std::fs::write(
        root.join("etc/udhcpc.script"),
        "#!/bin/sh\ncase \"$1\" in bound|renew) ip addr flush dev \"$interface\"; ip addr add \"$ip/$mask\" dev \"$interface\";; esac\n",
    )
    .unwrap();
    std::fs::write(
        root.join("init"),
        "#!/bin/busybox sh\n/bin/busybox --install -s /bin\nmkdir -p /proc /sys /dev /tmp /run\n\
         mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev\n\
         hostname \"$(cat /etc/hostname)\"\ninsmod /e1000.ko\nip link set lo up; ip link set eth0 up\n\
         udhcpc -i eth0 -n -q -t 30 -s /etc/udhcpc.script\necho \"NODE UP: $(hostname)\"\n\
         /etc/cloudctl/fetch-host-keys || echo 'NO HOST KEYS'\n\
         exec dropbear -F -E -s -r /etc/dropbear/dropbear_ed25519_host_key -p 22\n",
    )
    .unwrap();
    pack(&root, &dir.join("diskless.img"), &["init", "etc/udhcpc.script"])
}

/// A lab whose ConfigNode serves `initrd` as the hnode profile's initrd, with node vm1 added.
fn boot_lab(name: &str, octet: u8, kernel: &Path, initrd: &Path, power: &str) -> Lab {
    // Host 1 is another machine on the boot network: it must not get vm1's private key.
    let lab = Lab::up(name, 2, octet);
    lab.append_inventory(&format!("\n[[node]]\nname = \"vm1\"\nmac = \"{MAC}\"\nip = \"10.201.{octet}.50\"\nrole = \"hnode\"\npower = \"{power}\"\n"));
    lab.sh_ok(0, &format!("mkdir -p /srv/tftp/images/hnode && cp {} /srv/tftp/images/hnode/vmlinuz && cp {} /srv/tftp/images/hnode/initrd.img", kernel.display(), initrd.display()));
    let out = cloudctl(&["-i", &lab.inventory(), "--yes", "config", "init"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    lab
}

#[test]
#[cfg_attr(
    not(lab_tests),
    ignore = "lab test: needs root and every program in .ci/prerequisites"
)]
fn hnode_boot_brings_up_a_diskless_node_with_its_pinned_key() {
    let kernel = kernel().expect("no kernel in /boot (package linux-image-amd64)");
    let version = kernel
        .file_name()
        .unwrap()
        .to_string_lossy()
        .trim_start_matches("vmlinuz-")
        .to_string();
    crate::support::require_lab(&[
        QEMU,
        ROM,
        "/bin/busybox",
        "/usr/bin/cpio",
        "/usr/sbin/dropbear",
        "/usr/bin/dropbearconvert",
        "/usr/sbin/dhcpd",
    ]);
    let _tftpd = TFTPD.lock().unwrap_or_else(|e| e.into_inner());
    let work = tempfile::tempdir().unwrap();
    let initrd = diskless_initrd(work.path(), &version);
    let lab = boot_lab("thn", 68, &kernel, &initrd, "none");
    let inv = lab.inventory();

    // First `hnode boot` (no wait) generates and pins the key and writes the node's boot files.
    let out = cloudctl(&["-i", &inv, "--yes", "hnode", "boot", "vm1"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let known_hosts = std::fs::read_to_string(&lab.state.known_hosts).unwrap();
    assert!(known_hosts.contains("10.201.68.50 ssh-ed25519 "), "{known_hosts}");
    let pxe = lab.sh_ok(
        0,
        "cat /srv/tftp/pxelinux.cfg/01-52-54-00-12-34-57; stat -c '%a %U:%G' /var/lib/cloudctl/node-keys/vm1.keys",
    );
    assert!(
        pxe.contains("APPEND initrd=nodes/vm1/initrd.img console=ttyS0") && pxe.contains("600 root:root"),
        "{pxe}"
    );
    no_private_key_for_others(&lab, &initrd);

    for boot in 1..=2 {
        let vm = Vm::start(&lab, "thn0", lab.dir.path().join(format!("boot{boot}.log")), MAC);
        let started = Instant::now();
        // The second boot asks for JSON: one document on stdout, progress still on stderr.
        let json = if boot == 2 { "--json" } else { "-v" };
        let out = cloudctl(&["-i", &inv, "--yes", json, "hnode", "boot", "vm1", "--wait", "150"]);
        let err = text(&out.stderr);
        drop(vm);
        let console = std::fs::read_to_string(lab.dir.path().join(format!("boot{boot}.log"))).unwrap_or_default();
        let tail: Vec<&str> = console
            .lines()
            .rev()
            .filter(|l| !l.starts_with("[ "))
            .take(25)
            .collect();
        assert!(
            err.contains("vm1: SSH answers with the pinned host key") && err.contains("vm1 is up after"),
            "boot {boot}: {err}\nconsole (last lines, newest first):\n{}",
            tail.join("\n")
        );
        // A TCG guest has no /dev/kvm: the check says so instead of claiming a working hypervisor.
        assert!(err.contains("hypervisor kvm: /dev/kvm missing"), "{err}");
        assert_eq!(
            out.status.code(),
            Some(1),
            "hypervisor check failed, so not success: {err}"
        );
        assert!(!err.contains("HOST KEY"), "boot {boot}: {err}");
        if boot == 2 {
            let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is one JSON document");
            assert_eq!(
                (
                    doc["up"].as_bool(),
                    doc["hypervisor_ok"].as_bool(),
                    doc["exit_code"].as_i64()
                ),
                (Some(true), Some(false), Some(1))
            );
            assert_eq!(
                doc["apply"]["hosts"][0]["status"], "ok",
                "second boot: nothing to change on the ConfigNode"
            );
        }
        report(&format!(
            "hnode boot {boot}: VM power-on → SSH with the pinned key in {:.1} s",
            started.elapsed().as_secs_f64()
        ));
    }
    assert_eq!(
        std::fs::read_to_string(&lab.state.known_hosts).unwrap(),
        known_hosts,
        "the second boot changed no pinned key"
    );

    // `node remove` takes the node's boot files and keys off the ConfigNode.
    let out = cloudctl(&["-i", &inv, "--yes", "node", "remove", "vm1"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let left = lab.sh_ok(
        0,
        "ls -d /srv/tftp/nodes/vm1 /var/lib/cloudctl/node-keys/vm1.keys 2>&1; grep -c vm1 /var/lib/cloudctl/node-keys/addresses; true",
    );
    assert_eq!(left.matches("No such file").count(), 2, "{left}");
    assert!(left.trim_end().ends_with('0'), "{left}");
}

/// What another machine on the boot network (lab host 1) can get: vm1's initrd over TFTP holds
/// no private key, and the key server gives it nothing, not even from vm1's address without root.
fn no_private_key_for_others(lab: &Lab, base_initrd: &Path) {
    let cn = lab.state.hosts[0].ip.to_string();
    let key_dir = lab.state.known_hosts.parent().unwrap().join("hostkeys/vm1");
    let private = std::fs::read_to_string(key_dir.join("ssh_host_ed25519_key")).unwrap();
    let body = private.lines().nth(1).unwrap().to_string();
    let dropbear = std::fs::read(key_dir.join("dropbear_ed25519_host_key")).unwrap();
    let fetched = lab.dir.path().join("fetched-initrd.img");
    lab.sh_ok(
        1,
        &format!("busybox tftp -g -r nodes/vm1/initrd.img -l {} {cn}", fetched.display()),
    );
    let bytes = std::fs::read(&fetched).unwrap();
    let base = std::fs::read(base_initrd).unwrap();
    assert!(
        bytes.starts_with(&base),
        "the node's initrd is the profile's plus the overlay"
    );
    let mut gunzip = std::process::Command::new("gzip")
        .arg("-dc")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(gunzip.stdin.as_mut().unwrap(), &bytes[base.len()..]).unwrap();
    drop(gunzip.stdin.take());
    let overlay = gunzip.wait_with_output().unwrap().stdout;
    let overlay_text = String::from_utf8_lossy(&overlay);
    assert!(overlay_text.contains("etc/cloudctl/fetch-host-keys"), "not the overlay");
    assert!(
        !overlay_text.contains(&body) && !overlay_text.contains("PRIVATE KEY"),
        "TFTP serves vm1's private host key to anyone"
    );
    assert!(
        !overlay.windows(dropbear.len()).any(|w| w == dropbear.as_slice()),
        "TFTP serves vm1's dropbear key to anyone"
    );
    // The key server, asked by host 1 (root, listening on the node port): nothing arrives.
    let port = cloudctl::plan::hnode::KEYSERVER_PORT;
    let node_port = cloudctl::plan::hnode::NODE_KEY_PORT;
    let ask = |from: &str| {
        format!(
            "got={dir}/got.$$; busybox timeout 8 busybox nc -l -p {node_port} </dev/null >$got & sleep 0.5; \
             a=$(socat -u TCP4:{cn}:{port}{from},connect-timeout=5 - </dev/null); wait; \
             echo \"answer=$a bytes=$(wc -c <$got)\"; rm -f $got",
            dir = lab.dir.path().display()
        )
    };
    let answer = lab.sh_ok(1, &ask(""));
    assert_eq!(answer.trim(), "answer=refused bytes=0", "host 1 was sent something");
    // Even from vm1's own address: without root there, nobody can listen on the node port.
    let ip = "10.201.68.50";
    lab.sh_ok(1, &format!("ip addr add {ip}/32 dev eth0"));
    let unprivileged = lab.sh(
        1,
        &format!(
            "got={dir}/unpriv.$$; setpriv --reuid=65534 --regid=65534 --clear-groups busybox timeout 8 busybox nc -l -p {node_port} </dev/null >$got 2>/dev/null & sleep 0.5; \
             a=$(socat -u TCP4:{cn}:{port},bind={ip},connect-timeout=5 - </dev/null); wait; echo \"answer=$a bytes=$(wc -c <$got)\"; rm -f $got",
            dir = lab.dir.path().display()
        ),
    );
    lab.sh_ok(1, &format!("ip addr del {ip}/32 dev eth0"));
    assert_eq!(
        text(&unprivileged.stdout).trim(),
        "answer=not sent bytes=0",
        "{}",
        text(&unprivileged.stderr)
    );
}

/// Receives one UDP datagram on port 9 inside network namespace `netns` (bounded wait).
fn receive_wol(netns: &str, limit: Duration) -> std::thread::JoinHandle<Option<Vec<u8>>> {
    let path = format!("/var/run/netns/{netns}");
    std::thread::spawn(move || {
        let ns = std::fs::File::open(&path).ok()?;
        // SAFETY: moves only this thread into the namespace; the file descriptor is valid.
        if unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&ns), libc::CLONE_NEWNET) } != 0 {
            return None;
        }
        let sock = std::net::UdpSocket::bind("0.0.0.0:9").ok()?;
        sock.set_read_timeout(Some(limit)).ok()?;
        let mut buf = [0u8; 1024];
        let n = sock.recv(&mut buf).ok()?;
        Some(buf[..n].to_vec())
    })
}

#[test]
#[cfg_attr(
    not(lab_tests),
    ignore = "lab test: needs root and every program in .ci/prerequisites"
)]
fn wake_on_lan_reaches_the_nodes_network() {
    crate::support::require_lab(&["/usr/bin/wakeonlan"]);
    let _tftpd = TFTPD.lock().unwrap_or_else(|e| e.into_inner()); // config init starts tftpd
    let lab = Lab::up("twol", 2, 69);
    lab.append_inventory(&format!(
        "\n[[node]]\nname = \"vm1\"\nmac = \"{MAC}\"\nip = \"10.201.69.50\"\nrole = \"hnode\"\n"
    ));
    lab.sh_ok(0, "mkdir -p /srv/tftp/images/hnode && echo k > /srv/tftp/images/hnode/vmlinuz && echo i > /srv/tftp/images/hnode/initrd.img");
    let out = cloudctl(&["-i", &lab.inventory(), "--yes", "config", "init"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let listener = receive_wol(&lab.state.hosts[1].netns, Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(300)); // the listener binds first
    let out = cloudctl(&[
        "-i",
        &lab.inventory(),
        "--yes",
        "hnode",
        "boot",
        "vm1",
        "--power",
        "wol",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let packet = listener.join().unwrap().expect("no magic packet arrived within 30 s");
    let mac: Vec<u8> = MAC.split(':').map(|o| u8::from_str_radix(o, 16).unwrap()).collect();
    let mut expected = vec![0xff; 6];
    for _ in 0..16 {
        expected.extend_from_slice(&mac);
    }
    assert_eq!(packet, expected, "a magic packet is 6 x 0xff then the MAC 16 times");
}

fn plan_for(inv_text: &str) -> cloudctl::plan::Plan {
    let facts = cloudctl::plan::confignode::Facts {
        initialised: true,
        sharded: true,
        ..Default::default()
    };
    let inv = cloudctl::inventory::parse("seed.toml", inv_text).unwrap();
    let confignodes = cloudctl::plan::confignode::hosts(&inv).unwrap().len();
    plan_with(inv_text, &vec![Some(facts); confignodes])
}

/// The boot plan of hnode1 with these ConfigNode probes (`None`: that one is down).
fn plan_with(inv_text: &str, each: &[Option<cloudctl::plan::confignode::Facts>]) -> cloudctl::plan::Plan {
    use cloudctl::plan::hnode;
    let inv = cloudctl::inventory::parse("seed.toml", inv_text).unwrap();
    let node = inv.node.iter().find(|n| n.name.get_ref().as_str() == "hnode1").unwrap();
    let secrets = hnode::NodeSecrets {
        host_key: b"PRIVATE".to_vec(),
        host_key_pub: b"ssh-ed25519 AAAA hnode1".to_vec(),
        dropbear_key: b"DROPBEAR".to_vec(),
        authorized_keys: b"ssh-ed25519 AAAA admin".to_vec(),
        ipmi_password: None,
    };
    hnode::plan(
        &inv,
        &cloudctl::templates::Templates::load(None).unwrap(),
        each,
        node,
        cloudctl::inventory::Power::Wol,
        &secrets,
    )
    .unwrap()
}

/// With a ConfigNode pair both get the node's files and the first powers it on; with the first
/// down (`--degraded`) the second does both.
#[test]
fn a_pair_boots_a_node_from_either_confignode() {
    let pair =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/confignode-pair.toml")).unwrap();
    let facts = cloudctl::plan::confignode::Facts {
        initialised: true,
        sharded: true,
        ..Default::default()
    };
    let summary = |plan: &cloudctl::plan::Plan| -> Vec<(String, bool, bool)> {
        plan.hosts
            .iter()
            .map(|h| {
                let json = serde_json::to_string(&h.steps).unwrap();
                (
                    h.host.name.clone(),
                    json.contains("overlay.img"),
                    json.contains("wakeonlan"),
                )
            })
            .collect()
    };
    let both = plan_with(&pair, &[Some(facts.clone()), Some(facts.clone())]);
    assert_eq!(
        summary(&both),
        [("cn1".to_string(), true, true), ("cn2".to_string(), true, false)],
        "both get the files, the primary powers it on"
    );
    let degraded = plan_with(&pair, &[None, Some(facts)]);
    assert_eq!(
        summary(&degraded),
        [("cn2".to_string(), true, true)],
        "cn1 down: cn2 gets the files and powers it on"
    );
}

#[test]
fn golden_hnode_boot_plans_for_xen_and_kvm() {
    let seed = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/seed-lab.toml")).unwrap();
    let xen = plan_for(&seed);
    let json = serde_json::to_string_pretty(&xen).unwrap();
    assert!(
        !json.contains("PRIVATE") && !json.contains("DROPBEAR"),
        "host keys never appear in a plan's output"
    );
    crate::support::golden::assert_golden("hnode-boot-xen.json", &json);
    let pxe = |plan: &cloudctl::plan::Plan| {
        plan.hosts[0]
            .steps
            .iter()
            .find_map(|s| match s {
                cloudctl::plan::Step::File(f) if f.id == "01-52-54-00-00-02-01" => {
                    Some(String::from_utf8_lossy(&f.content).into_owned())
                }
                _ => None,
            })
            .unwrap()
    };
    assert!(pxe(&xen).contains("KERNEL mboot.c32\n  APPEND images/dom0/xen.gz dom0_mem=1024M --- images/dom0/vmlinuz console=ttyS0 --- nodes/hnode1/initrd.img"), "{}", pxe(&xen));
    let last = xen.hosts[0].steps.last().unwrap();
    assert!(
        matches!(last, cloudctl::plan::Step::Command(c) if c.argv == ["wakeonlan", "-i", "10.0.0.255", "-p", "9", "52:54:00:00:02:01"]),
        "{last:?}"
    );

    // The overlay carries the storage client side: both AoE exports as one md multipath device.
    let overlay = xen.hosts[0]
        .steps
        .iter()
        .find_map(|s| match s {
            cloudctl::plan::Step::File(f) if f.id == "overlay" => {
                Some(String::from_utf8_lossy(&f.content).into_owned())
            }
            _ => None,
        })
        .unwrap();
    for needle in [
        "etc/hostname",
        "hnode1\n",
        "etc/cloudctl/storage.conf",
        "DEVICE /dev/etherd/e1.0 /dev/etherd/e1.1",
        "level=multipath",
        "etc/cloudctl/attach-storage",
        "etc/cloudctl/fetch-host-keys",
        "KEY_SERVER=10.0.0.2\n",
    ] {
        assert!(overlay.contains(needle), "overlay lacks {needle:?}");
    }
    assert!(
        !overlay.contains("PRIVATE") && !overlay.contains("DROPBEAR"),
        "the overlay TFTP serves holds no private key"
    );
    let keys = xen.hosts[0]
        .steps
        .iter()
        .find_map(|s| match s {
            cloudctl::plan::Step::File(f) if f.id == "host-keys" => Some(f.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        (keys.path.as_str(), keys.mode, keys.secret),
        ("/var/lib/cloudctl/node-keys/hnode1.keys", 0o600, true)
    );
    let keys = String::from_utf8_lossy(&keys.content);
    assert!(keys.contains("PRIVATE") && keys.contains("DROPBEAR"), "{keys}");
    let kvm_text = seed
        .replace("hypervisor = \"xen\"", "hypervisor = \"kvm\"")
        .replace("xen = \"/srv/tftp/images/dom0/xen.gz\"\n", "")
        .replace("xen_args = \"dom0_mem=1024M\"\n", "");
    let kvm = plan_for(&kvm_text);
    crate::support::golden::assert_golden("hnode-boot-kvm.json", &serde_json::to_string_pretty(&kvm).unwrap());
    assert!(
        pxe(&kvm).contains("KERNEL images/dom0/vmlinuz\n  APPEND initrd=nodes/hnode1/initrd.img console=ttyS0"),
        "{}",
        pxe(&kvm)
    );
}

/// Runs scripts/hnode/node-initrd.sh through a real `sh`: ACTION LAYOUT BASE OVERLAY OUT.
fn node_initrd(args: &[&Path]) -> std::process::ExitStatus {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/hnode/node-initrd.sh");
    std::process::Command::new("sh")
        .arg(script)
        .args(args)
        .status()
        .unwrap()
}

/// What pxelinux's mboot.c32 hands Xen: the first gzip member of a gzip'd module, unpacked.
fn first_gzip_member(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(bytes), &mut out).unwrap();
    out
}

#[test]
fn a_xen_nodes_initrd_keeps_its_overlay_through_mboots_gunzip() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n);
    std::fs::write(p("base.raw"), b"BASE-CPIO").unwrap();
    let gz = std::process::Command::new("gzip")
        .args(["-kn", "-9"])
        .arg(p("base.raw"))
        .status()
        .unwrap();
    assert!(gz.success());
    std::fs::write(p("overlay.img"), b"OVERLAY-CPIO").unwrap();
    let (write, same) = (Path::new("write"), Path::new("same"));
    for (layout, base) in [
        ("single", "base.raw.gz"),
        ("append", "base.raw.gz"),
        ("single", "base.raw"),
    ] {
        let (layout, base, out) = (Path::new(layout), p(base), p("node.img"));
        let _ = std::fs::remove_file(&out);
        assert!(
            !node_initrd(&[same, layout, &base, &p("overlay.img"), &out]).success(),
            "no file yet"
        );
        assert!(node_initrd(&[write, layout, &base, &p("overlay.img"), &out]).success());
        assert!(
            node_initrd(&[same, layout, &base, &p("overlay.img"), &out]).success(),
            "written: the same"
        );
        let bytes = std::fs::read(&out).unwrap();
        let seen = if bytes.starts_with(&[0x1f, 0x8b]) {
            first_gzip_member(&bytes)
        } else {
            bytes.clone()
        };
        match (layout.to_str().unwrap(), base.ends_with("base.raw.gz")) {
            // One gzip stream holding both: mboot's gunzip keeps the overlay.
            ("single", true) => assert_eq!(seen, b"BASE-CPIOOVERLAY-CPIO"),
            // Two gzip members: mboot's gunzip would drop the second (why Xen profiles use single).
            ("append", true) => assert_eq!(seen, b"BASE-CPIO"),
            // Not gzip'd: mboot passes it as is; the kernel unpacks both archives.
            _ => {
                assert!(bytes.starts_with(b"BASE-CPIO"), "{bytes:?}");
                assert_eq!(first_gzip_member(&bytes[b"BASE-CPIO".len()..]), b"OVERLAY-CPIO");
            }
        }
    }
    // A changed overlay is a change.
    std::fs::write(p("overlay.img"), b"OTHER").unwrap();
    assert!(!node_initrd(&[
        same,
        Path::new("single"),
        &p("base.raw.gz"),
        &p("overlay.img"),
        &p("node.img")
    ])
    .success());
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left.len(), 4, "temp files left: {left:?}");
}

/// hnode1's overlay for this inventory text, as text (a newc archive: names and contents are
/// plain in it).
fn overlay_text(inv_text: &str, node: &str) -> Result<String, String> {
    use cloudctl::plan::hnode;
    let inv = cloudctl::inventory::parse("seed.toml", inv_text).map_err(|e| e.to_string())?;
    let node = inv.node.iter().find(|n| n.name.get_ref().as_str() == node).unwrap();
    let secrets = hnode::NodeSecrets {
        host_key: b"PRIVATE".to_vec(),
        host_key_pub: b"ssh-ed25519 AAAA".to_vec(),
        dropbear_key: b"DROPBEAR".to_vec(),
        authorized_keys: b"ssh-ed25519 AAAA admin".to_vec(),
        ipmi_password: None,
    };
    let templates = cloudctl::templates::Templates::load(None).unwrap();
    hnode::overlay(&inv, &templates, node, &secrets)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .map_err(|e| e.to_string())
}

/// The seed's hardware nodes attach the storage and mount the instance store (OCFS2, one o2cb
/// cluster of the hardware nodes, numbered by the last byte of their addresses); only the first
/// formats it, and only a profile with `root` brings the switch to a root from the store.
#[test]
fn a_storage_client_gets_the_store_and_a_root_profile_its_root_from_it() {
    let seed = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/seed-lab.toml")).unwrap();
    let one = overlay_text(&seed, "hnode1").unwrap();
    let two = overlay_text(&seed, "hnode2").unwrap();
    for o in [&one, &two] {
        assert!(
            o.contains("etc/ocfs2/cluster.conf") && o.contains("etc/cloudctl/mount-store"),
            "{o}"
        );
        assert!(
            o.contains("number = 31\n\tname = hnode1") && o.contains("number = 32\n\tname = hnode2"),
            "{o}"
        );
        assert!(
            o.contains("STORE=/srv/cloud/instances\n") && o.contains("CLUSTER=lab\n"),
            "{o}"
        );
        assert!(!o.contains("root-from-storage"), "no root image in the profile: {o}");
    }
    assert!(
        one.contains("FORMAT=yes\n") && two.contains("FORMAT=no\n"),
        "only hnode1 formats"
    );
    let rooted = seed.replace(
        "append = \"console=ttyS0\"\n\n[profiles.snode]",
        "append = \"console=ttyS0\"\nroot = \"dom0-root\"\n\n[profiles.snode]",
    );
    assert_ne!(rooted, seed);
    let o = overlay_text(&rooted, "hnode1").unwrap();
    assert!(
        o.contains("etc/cloudctl/root-from-storage") && o.contains("ROOT_IMAGE=dom0-root\n"),
        "{o}"
    );
    // The storage nodes are not clients of themselves.
    assert!(!overlay_text(&rooted, "snode1").unwrap().contains("mount-store"));

    // Two hardware nodes whose addresses end alike would share an OCFS2 node number.
    let clash = seed
        .replace("10.0.0.32", "10.0.1.31")
        .replace("subnet = \"10.0.0.0/24\"", "subnet = \"10.0.0.0/16\"");
    let e = overlay_text(&clash, "hnode1").unwrap_err();
    assert!(
        e.contains("hnode1 and hnode2 would have the same OCFS2 node number 31"),
        "{e}"
    );
    // A root on the storage needs the storage.
    let start = rooted.find("\n[storage]").unwrap();
    let end = rooted[start + 1..].find("\n[").unwrap() + start + 1;
    let without = format!("{}{}", &rooted[..start], &rooted[end..]);
    let e = overlay_text(&without, "hnode1").unwrap_err();
    assert!(
        e.contains("[profiles.hnode] root: the root image lives on the shared storage"),
        "{e}"
    );
}

/// `[network] mtu` reaches the booted nodes' node.conf (their boot scripts set it on eth0 before
/// AoE starts); without it node.conf says nothing and the driver's default stays. An MTU no
/// Ethernet carries is refused at load, naming the value and the range.
#[test]
fn the_inventorys_mtu_reaches_the_nodes_and_a_wrong_one_is_refused() {
    let seed = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/seed-lab.toml")).unwrap();
    assert!(!overlay_text(&seed, "hnode1").unwrap().contains("MTU="));
    let jumbo = seed.replacen("interface = \"eth0\"", "interface = \"eth0\"\nmtu = 9000", 1);
    assert_ne!(jumbo, seed);
    for node in ["hnode1", "snode1"] {
        assert!(
            overlay_text(&jumbo, node)
                .unwrap()
                .contains("KEY_PORT=1022\nMTU=9000\n"),
            "{node}"
        );
    }
    let e = overlay_text(
        &seed.replacen("interface = \"eth0\"", "interface = \"eth0\"\nmtu = 576", 1),
        "hnode1",
    )
    .unwrap_err();
    assert!(e.contains("[network] mtu = 576: an MTU is 1280 to 9216"), "{e}");
}
