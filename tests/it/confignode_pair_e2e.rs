//! A ConfigNode pair on two real lab hosts: `config init` converges both (dhcpd failover peers
//! reach `normal`, keepalived puts the floating address on one of them), `config status`
//! reports it; `node add` with one ConfigNode cut off is refused (exit 4) unless `--degraded`,
//! and `config init` brings the other level. Then a QEMU VM PXE-boots, the primary host is
//! killed entirely, and the VM boots again from the secondary with the same address.

use crate::support::vm::{initramfs, kernel, Vm, QEMU, ROM};
use crate::support::{cloudctl, report, text, Lab, TFTPD};
use std::process::Command;
use std::time::{Duration, Instant};

/// A two-host lab whose inventory makes its hosts the ConfigNode pair cn1 (.10) and cn2 (.11)
/// with the floating address .9, and no other node.
fn pair_lab(name: &str, octet: u8) -> Lab {
    let lab = Lab::up(name, 2, octet);
    let net = format!("10.201.{octet}");
    let text = std::fs::read_to_string(&lab.state.inventory).unwrap();
    let single = format!("[confignode]\naddress = \"{net}.10\"\nnext_server = \"{net}.10\"\n");
    assert!(text.contains(&single), "the lab inventory's [confignode]: {text}");
    let pair = format!(
        "[confignode]\naddress = \"{net}.9\"\nnodes = [{{ name = \"cn1\", ip = \"{net}.10\" }}, {{ name = \"cn2\", ip = \"{net}.11\" }}]\n"
    );
    // The lab's second host is cn2 now, not a hardware node; a cut-off host is given up quickly.
    let text = text
        .replace(&single, &pair)
        .replace("[ssh]\n", "[ssh]\nconnect_timeout = 3\n");
    let text = text[..text.find("\n[[node]]").unwrap_or(text.len())].to_string() + "\n";
    std::fs::write(&lab.state.inventory, text).unwrap();
    // A lab hardware node has its address on bridge br0 (for guests); as a ConfigNode it has
    // it on eth0 like the first host, the `[network] interface` dhcpd and keepalived use.
    lab.sh_ok(
        1,
        &format!(
            "ip addr flush dev br0 && ip link set eth0 nomaster && ip link del br0 && ip addr add {net}.11/24 dev eth0"
        ),
    );
    lab
}

/// Pids of the processes in lab host `idx`'s network namespace named `comm`.
fn pids(lab: &Lab, idx: usize, comm: &str) -> Vec<String> {
    let out = Command::new("ip")
        .args(["netns", "pids", &lab.state.hosts[idx].netns])
        .output()
        .unwrap();
    text(&out.stdout)
        .split_whitespace()
        .filter(|p| std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == comm))
        .map(String::from)
        .collect()
}

/// Lab hosts share one process table, and Debian's tftpd-hpa init script finds "its" daemon by
/// name machine-wide: the second ConfigNode's `service tftpd-hpa start` sees the first one's and
/// starts none (a restart may even stop the other's). On real servers each has its own. So each
/// lab host that has no tftpd gets one started as the init script would, from the settings
/// `config init` wrote there.
fn one_tftpd_each(lab: &Lab) {
    for idx in 0..2 {
        if pids(lab, idx, "in.tftpd").is_empty() {
            lab.sh_ok(
                idx,
                ". /etc/default/tftpd-hpa && /usr/sbin/in.tftpd --listen --user \"$TFTP_USERNAME\" --address \"$TFTP_ADDRESS\" $TFTP_OPTIONS \"$TFTP_DIRECTORY\"",
            );
        }
        assert_eq!(pids(lab, idx, "in.tftpd").len(), 1, "one tftpd on host {idx}");
    }
}

fn status(inv: &str) -> (Option<i32>, serde_json::Value) {
    let out = cloudctl(&["-i", inv, "--json", "config", "status"]);
    let doc = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("config status --json: {e}: {}{}", text(&out.stdout), text(&out.stderr)));
    (out.status.code(), doc)
}

/// Polls `config status` (bounded) until `done` holds; the last report either way.
fn status_until(
    inv: &str,
    limit: Duration,
    done: impl Fn(Option<i32>, &serde_json::Value) -> bool,
) -> (Option<i32>, serde_json::Value) {
    let start = Instant::now();
    loop {
        let (code, doc) = status(inv);
        if done(code, &doc) || start.elapsed() > limit {
            return (code, doc);
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn failover_normal(doc: &serde_json::Value) -> bool {
    doc["nodes"].as_array().is_some_and(|n| {
        n.iter()
            .all(|n| n["failover"][0] == "normal" && n["failover"][1] == "normal")
    })
}

fn boot_files(lab: &Lab, kernel: &str, initrd: &str) {
    for idx in 0..2 {
        lab.sh_ok(
            idx,
            &format!("mkdir -p /srv/tftp/images/hnode && cp {kernel} /srv/tftp/images/hnode/vmlinuz && cp {initrd} /srv/tftp/images/hnode/initrd.img"),
        );
    }
}

#[test]
#[cfg_attr(
    not(lab_tests),
    ignore = "lab test: needs root and every program in .ci/prerequisites"
)]
fn a_pair_converges_alike_reports_its_state_and_refuses_node_add_with_one_down() {
    crate::support::require_lab(&["/usr/sbin/keepalived", "/usr/sbin/dhcpd"]);
    let _tftpd = TFTPD.lock().unwrap_or_else(|e| e.into_inner());
    let lab = pair_lab("cnpa", 210);
    let inv = lab.inventory();
    for idx in 0..2 {
        lab.sh_ok(idx, "mkdir -p /srv/tftp/images/hnode && echo k > /srv/tftp/images/hnode/vmlinuz && echo i > /srv/tftp/images/hnode/initrd.img");
    }
    let run = |args: &[&str]| {
        let out = cloudctl(&[&["-i", &inv, "--yes"], args].concat());
        (out.status.code(), format!("{}{}", text(&out.stdout), text(&out.stderr)))
    };
    let (code, said) = run(&["config", "init"]);
    assert_eq!(code, Some(0), "{said}");
    one_tftpd_each(&lab);
    for idx in 0..2 {
        assert!(
            !pids(&lab, idx, "keepalived").is_empty(),
            "keepalived runs on host {idx}"
        );
        assert!(!lab.dhcpd_pid_on(idx).is_empty());
    }
    // The peers reach `normal`, the primary holds the floating address.
    let (code, doc) = status_until(&inv, Duration::from_secs(60), |c, d| c == Some(0) && failover_normal(d));
    assert_eq!(code, Some(0), "{doc:#}");
    // Exactly one holds it (whichever keepalived started first may keep it a moment).
    assert_eq!(doc["holder"].as_array().map(Vec::len), Some(1), "{doc:#}");
    assert_eq!(doc["in_sync"], true);
    assert_eq!(doc["nodes"][0]["tree_sha256"], doc["nodes"][1]["tree_sha256"]);
    let (code, said) = run(&["config", "init"]);
    assert_eq!(code, Some(0), "{said}");
    assert!(
        said.contains("no changes"),
        "a second config init changes nothing on either: {said}"
    );

    // Both take a node add, live (dhcpd keeps its pid on each).
    let pids_before = [lab.dhcpd_pid_on(0), lab.dhcpd_pid_on(1)];
    let (code, said) = run(&["node", "add", "pa1", "--mac", "52:54:00:d2:00:01"]);
    assert_eq!(code, Some(0), "{said}");
    assert_eq!(
        [lab.dhcpd_pid_on(0), lab.dhcpd_pid_on(1)],
        pids_before,
        "OMAPI on both: {said}"
    );
    let hosts = |idx| lab.sh_ok(idx, "cat /etc/dhcp/cloudctl-hosts.d/*.conf");
    assert!(hosts(0).contains("host pa1 {") && hosts(0) == hosts(1));

    // The holder's tftpd dies: keepalived's check moves the floating address to the one that
    // serves, and back to the primary when its tftpd listens again.
    let holds =
        |who: &'static str| move |_: Option<i32>, d: &serde_json::Value| d["holder"] == serde_json::json!([who]);
    let (_, doc) = status_until(&inv, Duration::from_secs(30), holds("cn1"));
    assert_eq!(
        doc["holder"],
        serde_json::json!(["cn1"]),
        "the primary holds the address: {doc:#}"
    );
    for pid in pids(&lab, 0, "in.tftpd") {
        let _ = Command::new("kill").args(["-9", &pid]).output();
    }
    let gone = Instant::now();
    let (_, doc) = status_until(&inv, Duration::from_secs(30), holds("cn2"));
    let moved = gone.elapsed();
    assert_eq!(
        doc["holder"],
        serde_json::json!(["cn2"]),
        "cn1 without tftpd gave the address up: {doc:#}"
    );
    assert!(
        doc["nodes"][0]["problems"]
            .to_string()
            .contains("tftpd is not listening"),
        "{doc:#}"
    );
    one_tftpd_each(&lab);
    let (_, doc) = status_until(&inv, Duration::from_secs(30), holds("cn1"));
    assert_eq!(
        doc["holder"],
        serde_json::json!(["cn1"]),
        "cn1 serving again took it back: {doc:#}"
    );
    report(&format!(
        "ConfigNode pair: tftpd killed on the holder, the floating address moved in {:.1} s",
        moved.as_secs_f64()
    ));

    // cn2 cut off: node add is refused naming it, nothing changes anywhere.
    lab.sh_ok(1, "ip link set eth0 down");
    let before = std::fs::read_to_string(&inv).unwrap();
    let (code, said) = run(&["node", "add", "pa2", "--mac", "52:54:00:d2:00:02"]);
    assert_eq!(code, Some(4), "{said}");
    assert!(
        said.contains("ConfigNode cn2 is unreachable") && said.contains("--degraded"),
        "{said}"
    );
    assert_eq!(std::fs::read_to_string(&inv).unwrap(), before, "inventory untouched");
    assert!(!hosts(0).contains("pa2"), "cn1 untouched");
    // --degraded: cn1 takes it, the inventory records it, status says cn2 does not answer.
    let (code, said) = run(&["node", "add", "pa2", "--mac", "52:54:00:d2:00:02", "--degraded"]);
    assert_eq!(code, Some(0), "{said}");
    assert!(said.contains("left behind"), "{said}");
    assert!(hosts(0).contains("host pa2 {"));
    let (code, doc) = status(&inv);
    assert_eq!(doc["nodes"][1]["reachable"], false, "{doc:#}");
    assert!(code == Some(4) || code == Some(1), "{code:?} {doc:#}");
    assert_eq!(doc["in_sync"], false);
    // Back: cn2 is behind (its hosts lack pa2), then one config init brings it level.
    lab.sh_ok(1, "ip link set eth0 up");
    let (code, doc) = status_until(&inv, Duration::from_secs(20), |_, d| d["nodes"][1]["reachable"] == true);
    assert_eq!(code, Some(1), "{doc:#}");
    assert_eq!(doc["nodes"][1]["hosts_in_sync"], false, "{doc:#}");
    assert_eq!(doc["nodes"][0]["hosts_in_sync"], true, "{doc:#}");
    let human = cloudctl(&["-i", &inv, "config", "status"]);
    assert!(text(&human.stdout).contains("BEHIND"), "{}", text(&human.stdout));
    let (code, said) = run(&["config", "init"]);
    assert_eq!(code, Some(0), "{said}");
    assert!(hosts(1).contains("host pa2 {"));
    let (code, doc) = status_until(&inv, Duration::from_secs(60), |c, d| c == Some(0) && failover_normal(d));
    assert_eq!(code, Some(0), "in sync again: {doc:#}");
    assert_eq!(doc["in_sync"], true);
}

#[test]
#[cfg_attr(
    not(lab_tests),
    ignore = "lab test: needs root and every program in .ci/prerequisites"
)]
fn a_vm_boots_again_from_the_secondary_when_the_primary_is_gone() {
    let kernel = kernel().expect("no kernel in /boot (package linux-image-amd64)");
    crate::support::require_lab(&[
        QEMU,
        ROM,
        "/bin/busybox",
        "/usr/bin/cpio",
        "/usr/sbin/dhcpd",
        "/usr/sbin/in.tftpd",
        "/usr/sbin/keepalived",
        "/usr/lib/PXELINUX/pxelinux.0",
    ]);
    let _tftpd = TFTPD.lock().unwrap_or_else(|e| e.into_inner());
    let lab = pair_lab("cnpb", 211);
    let toml = std::fs::read_to_string(&lab.state.inventory).unwrap();
    let append = "append = \"console=ttyS0 panic=-1 cloudctl-pxe=pair\"";
    std::fs::write(&lab.state.inventory, toml.replace("append = \"console=ttyS0\"", append)).unwrap();
    let inv = lab.inventory();
    let initrd = initramfs(lab.dir.path());
    boot_files(&lab, &kernel.display().to_string(), &initrd.display().to_string());
    let ok = |args: &[&str]| {
        let out = cloudctl(&[&["-i", &inv, "--yes"], args].concat());
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", text(&out.stderr));
    };
    ok(&["config", "init"]);
    one_tftpd_each(&lab);
    // The primary (VRRP priority 150) takes the floating address from whichever started first:
    // the failover measured below is then a real move from cn1 to cn2.
    let (code, doc) = status_until(&inv, Duration::from_secs(60), |c, d| {
        c == Some(0) && failover_normal(d) && d["holder"] == serde_json::json!(["cn1"])
    });
    assert_eq!(code, Some(0), "{doc:#}");
    assert_eq!(
        doc["holder"],
        serde_json::json!(["cn1"]),
        "the primary holds the floating address: {doc:#}"
    );
    const MAC: &str = "52:54:00:d3:00:01";
    ok(&["node", "add", "pb1", "--mac", MAC]);
    let ip = lab.node_ip("pb1");

    let boot = |log: &str| {
        let started = Instant::now();
        let vm = Vm::start(&lab, "cnpbv0", lab.dir.path().join(log), MAC);
        let line = vm.wait_for("CLOUDCTL-CMDLINE:", Duration::from_secs(150));
        let took = started.elapsed();
        drop(vm);
        let line = line.unwrap_or_else(|| {
            panic!(
                "{log}: no command line: {}",
                std::fs::read_to_string(lab.dir.path().join(log)).unwrap_or_default()
            )
        });
        assert!(line.contains("cloudctl-pxe=pair"), "{line}");
        took
    };
    let both_up = boot("boot-both.log");

    // The primary host stops entirely (every process in its namespace killed: sshd, dhcpd,
    // tftpd, keepalived) just as the VM is powered on again. Its network goes with it: a
    // stopped machine answers no ARP, where a namespace whose processes died would still
    // answer for the floating address keepalived had put on it.
    lab.sh_ok(1, "ip neigh flush all");
    let ns = lab.state.hosts[0].netns.clone();
    let all = text(&Command::new("ip").args(["netns", "pids", &ns]).output().unwrap().stdout);
    let killed = Instant::now();
    lab.sh_ok(0, "ip link set eth0 down");
    for pid in all.split_whitespace() {
        let _ = Command::new("kill").args(["-9", pid]).output();
    }
    let log = lab.dir.path().join("boot-secondary.log");
    let vm = Vm::start(&lab, "cnpbv0", log.clone(), MAC);
    let floating = " 10.201.211.9/";
    let moved = (0..400).find_map(|_| {
        if lab.sh_ok(1, "ip -o -4 addr show").contains(floating) {
            return Some(killed.elapsed());
        }
        std::thread::sleep(Duration::from_millis(50));
        None
    });
    let moved = moved.expect("the secondary never took the floating address");
    let line = vm.wait_for("CLOUDCTL-CMDLINE:", Duration::from_secs(150));
    let primary_down = killed.elapsed();
    drop(vm);
    let line = line.unwrap_or_else(|| {
        panic!(
            "no command line from the secondary: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        )
    });
    assert!(line.contains("cloudctl-pxe=pair"), "{line}");
    // `hnode boot` with the primary gone: refused naming it, then --degraded writes the node's
    // files on cn2 alone.
    let out = cloudctl(&["-i", &inv, "--yes", "hnode", "boot", "pb1", "--power", "none"]);
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(4), "{said}");
    assert!(
        said.contains("ConfigNode cn1 is unreachable") && said.contains("--degraded"),
        "{said}"
    );
    let out = cloudctl(&[
        "-i",
        &inv,
        "--yes",
        "hnode",
        "boot",
        "pb1",
        "--power",
        "none",
        "--degraded",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}{}", text(&out.stdout), text(&out.stderr));
    let pxe = lab.sh_ok(1, &format!("cat /srv/tftp/pxelinux.cfg/01-{}", MAC.replace(':', "-")));
    assert!(
        pxe.contains("nodes/pb1/initrd.img"),
        "cn2 boots pb1 with its overlay: {pxe}"
    );
    lab.sh_ok(1, "test -s /srv/tftp/nodes/pb1/initrd.img");
    let (_, doc) = status(&inv);
    assert_eq!(doc["nodes"][0]["reachable"], false, "{doc:#}");
    assert_eq!(doc["holder"], serde_json::json!(["cn2"]), "{doc:#}");
    // The VM talked to cn2 from pb1's fixed address (the same one cn1 gave it), and took no
    // dynamic lease.
    let neighbours = lab.sh_ok(1, "ip neigh show");
    assert!(
        neighbours.lines().any(|l| l.starts_with(&format!("{ip} "))),
        "the VM used pb1's address {ip} with cn2: {neighbours}"
    );
    let leases = lab.sh_ok(1, "cat /var/lib/dhcp/dhcpd.leases");
    assert!(
        !leases
            .split("\nlease ")
            .skip(1)
            .any(|b| b.split('}').next().unwrap_or(b).contains(MAC)),
        "pb1 got a dynamic lease from cn2: {leases}"
    );
    // Within one boot plus the failover (and a little for the slower emulation of a busy machine).
    let bound = both_up + moved + Duration::from_secs(10);
    assert!(
        primary_down <= bound,
        "boot with the primary gone took {primary_down:?}; both up {both_up:?}, failover {moved:?}"
    );
    report(&format!(
        "ConfigNode pair: VRRP failover of the floating address {:.1} s; PXE boot (QEMU start → kernel command line) with both up {:.1} s, with the primary killed as the VM powers on {:.1} s (kill → command line)",
        moved.as_secs_f64(),
        both_up.as_secs_f64(),
        primary_down.as_secs_f64()
    ));
}
