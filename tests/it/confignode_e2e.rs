//! `config init` and `node add/remove` on a real ConfigNode test host running real dhcpd and
//! tftpd: idempotence (dhcpd keeps its pid), every refusal touching nothing, dry-run diffs,
//! a template that fails validation, and concurrent `node add`s.

use crate::support::{cloudctl, text, Lab, TFTPD};

/// The lab's own [profiles.hnode] gets a recognisable append line; "ghost" names files that do not exist.
fn add_profiles(lab: &Lab) {
    let text = std::fs::read_to_string(&lab.state.inventory).unwrap();
    let text = text.replace("append = \"console=ttyS0\"", "append = \"console=ttyS0 marker=e2e\"");
    std::fs::write(&lab.state.inventory, text).unwrap();
    lab.append_inventory("\n[profiles.ghost]\nkernel = \"/srv/tftp/images/none/vmlinuz\"\ninitrd = \"/srv/tftp/images/none/initrd.img\"\n");
}

/// Everything cloudctl manages for DHCP/PXE on the ConfigNode, to compare byte for byte.
fn snapshot(lab: &Lab) -> String {
    lab.sh_ok(0, "cat /etc/dhcp/dhcpd.conf /etc/dhcp/cloudctl-hosts.conf /etc/dhcp/cloudctl-hosts.d/*; ls /srv/tftp/pxelinux.cfg; cat /srv/tftp/pxelinux.cfg/*")
}

/// The file of host entries that holds a node's (its name hashed, as the planner does).
fn hosts_shard(name: &str) -> String {
    format!(
        "/etc/dhcp/cloudctl-hosts.d/{:02}.conf",
        cloudctl::plan::confignode::shard_of(name)
    )
}

#[test]
#[cfg_attr(
    not(lab_tests),
    ignore = "lab test: needs root and every program in .ci/prerequisites"
)]
fn config_init_node_add_remove_refusals_and_dry_run() {
    crate::support::require_lab(&[]);
    let _tftpd = TFTPD.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::up("tcfg", 2, 66);
    add_profiles(&lab);
    let inv = lab.inventory();
    let ok = |args: &[&str]| {
        let out = cloudctl(&[&["-i", &inv, "--yes"], args].concat());
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", text(&out.stderr));
        text(&out.stderr)
    };

    ok(&["config", "init"]);
    let pid = lab.dhcpd_pid();
    assert!(
        ok(&["config", "init"]).contains("no changes"),
        "second config init changes nothing"
    );
    assert_eq!(lab.dhcpd_pid(), pid, "dhcpd not restarted by an unchanged config init");
    let tftp = lab.sh_ok(0, "ls /srv/tftp");
    for f in ["ldlinux.c32", "libcom32.c32", "mboot.c32", "pxelinux.0", "pxelinux.cfg"] {
        assert!(tftp.contains(f), "{f} staged: {tftp}");
    }
    lab.sh_ok(
        0,
        "echo 'option domain-name \"hand.example\";' >> /etc/dhcp/dhcpd.local.conf",
    );

    // A profile's boot files must exist before a node may use it.
    let before_inv = std::fs::read_to_string(&inv).unwrap();
    let out = cloudctl(&["-i", &inv, "--yes", "node", "add", "web1", "--mac", "AA-BB-CC-00-00-01"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("/srv/tftp/images/hnode/vmlinuz"),
        "{}",
        text(&out.stderr)
    );
    lab.sh_ok(
        0,
        "mkdir -p /srv/tftp/images/hnode && echo k > /srv/tftp/images/hnode/vmlinuz && echo i > /srv/tftp/images/hnode/initrd.img",
    );

    // Dry run: diffs of the DHCP hosts file and the new per-MAC file; nothing changes anywhere.
    let snap = snapshot(&lab);
    let out = cloudctl(&["-i", &inv, "-n", "node", "add", "web1", "--mac", "AA-BB-CC-00-00-01"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let diff = text(&out.stderr);
    let shard = format!("+++ {}", hosts_shard("web1"));
    for needle in [
        shard.as_str(),
        "+host web1 {",
        "+  hardware ethernet aa:bb:cc:00:00:01;",
        "--- /dev/null",
        "+++ /srv/tftp/pxelinux.cfg/01-aa-bb-cc-00-00-01",
        "+  APPEND initrd=images/hnode/initrd.img console=ttyS0 marker=e2e",
        "+name = \"web1\"",
    ] {
        assert!(diff.contains(needle), "dry run lacks {needle:?}:\n{diff}");
    }
    assert_eq!(snapshot(&lab), snap, "dry run changed the ConfigNode");
    assert_eq!(
        std::fs::read_to_string(&inv).unwrap(),
        before_inv,
        "dry run changed the inventory"
    );
    assert_eq!(lab.dhcpd_pid(), pid);

    ok(&["node", "add", "web1", "--mac", "AA-BB-CC-00-00-01"]);
    assert!(
        std::fs::read_to_string(&inv)
            .unwrap()
            .contains("mac = \"aa:bb:cc:00:00:01\""),
        "canonical MAC stored"
    );
    assert!(lab
        .sh_ok(0, &format!("cat {}", hosts_shard("web1")))
        .contains("host web1 {"));
    // Only that node's file of host entries holds it, and the other files were not rewritten.
    assert_eq!(
        lab.sh_ok(0, "grep -l 'host web1 ' /etc/dhcp/cloudctl-hosts.d/*").trim(),
        hosts_shard("web1")
    );
    let pid = lab.dhcpd_pid();
    assert!(ok(&["node", "add", "web1", "--mac", "aa:bb:cc:00:00:01"]).contains("no changes"));
    assert_eq!(lab.dhcpd_pid(), pid, "re-adding the same node leaves dhcpd alone");

    // Every refusal: exit 2, the conflict named, nothing touched.
    let snap = snapshot(&lab);
    let inv_text = std::fs::read_to_string(&inv).unwrap();
    let web1_ip = lab.node_ip("web1").to_string();
    let refusals: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["web1", "--mac", "aa:bb:cc:00:00:09"],
            "web1 is already in the inventory",
        ),
        (
            vec!["web2", "--mac", "aabb.cc00.0001"],
            "already belongs to node \"web1\"",
        ),
        (
            vec!["web2", "--mac", "aa:bb:cc:00:00:02", "--ip", &web1_ip],
            "already belongs to node \"web1\"",
        ),
        (
            vec!["web2", "--mac", "aa:bb:cc:00:00:02", "--ip", "10.9.9.9"],
            "not a host address of [network] subnet 10.201.66.0/24",
        ),
        (
            vec!["web2", "--mac", "aa:bb:cc:00:00:02", "--ip", "10.201.66.120"],
            "inside the DHCP dynamic_range",
        ),
        (vec!["web2", "--mac", "01:00:5e:00:00:02"], "multicast"),
        (vec!["web2", "--mac", "00:00:00:00:00:00"], "all-zero"),
        (
            vec!["web2", "--mac", "aa:bb:cc:00:00:02", "--role", "boss"],
            "unknown role \"boss\"",
        ),
        (
            vec!["web2", "--mac", "aa:bb:cc:00:00:02", "--profile", "nope"],
            "unknown profile \"nope\"",
        ),
        (
            vec!["web2", "--mac", "aa:bb:cc:00:00:02", "--profile", "ghost"],
            "/srv/tftp/images/none/vmlinuz",
        ),
        (vec!["web 2", "--mac", "aa:bb:cc:00:00:02"], "invalid name"),
    ];
    for (args, needle) in refusals {
        let out = cloudctl(&[&["-i", inv.as_str(), "--yes", "node", "add"], args.as_slice()].concat());
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out.stderr));
        assert!(
            text(&out.stderr).contains(needle),
            "{args:?}: expected {needle:?} in {}",
            text(&out.stderr)
        );
        assert_eq!(snapshot(&lab), snap, "{args:?} touched the ConfigNode");
        assert_eq!(
            std::fs::read_to_string(&inv).unwrap(),
            inv_text,
            "{args:?} touched the inventory"
        );
    }
    assert_eq!(lab.dhcpd_pid(), pid);

    // A template override that renders an invalid dhcpd.conf is refused by dhcpd -t.
    let templates = lab.dir.path().join("templates");
    std::fs::create_dir_all(templates.join("config-init")).unwrap();
    std::fs::write(
        templates.join("config-init/dhcpd.conf.hbs"),
        "# a brace left open\nsubnet {{network}} netmask {{netmask}} {\n  next-server {{next_server}};\n",
    )
    .unwrap();
    let out = cloudctl(&[
        "-i",
        &inv,
        "--yes",
        "--templates",
        templates.to_str().unwrap(),
        "config",
        "init",
    ]);
    assert_eq!(out.status.code(), Some(3), "validation refused: {}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("refused by validator"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(snapshot(&lab), snap, "running config untouched");
    assert_eq!(lab.dhcpd_pid(), pid, "dhcpd still running with its old pid");

    // Two node adds at once (cron + a human): both land, neither is lost, dhcpd.conf whole.
    let spawn = |name: &str, mac: &str| {
        std::process::Command::new(crate::support::bin())
            .args(["-i", &inv, "--yes", "node", "add", name, "--mac", mac])
            .stdin(std::process::Stdio::null())
            .output()
    };
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| spawn("cron1", "aa:bb:cc:00:01:01").unwrap());
        let b = s.spawn(|| spawn("human1", "aa:bb:cc:00:01:02").unwrap());
        (a.join().unwrap(), b.join().unwrap())
    });
    assert_eq!(
        (a.status.code(), b.status.code()),
        (Some(0), Some(0)),
        "{}\n{}",
        text(&a.stderr),
        text(&b.stderr)
    );
    let hosts = lab.sh_ok(
        0,
        "cat /etc/dhcp/cloudctl-hosts.d/*; dhcpd -t -q -cf /etc/dhcp/dhcpd.conf && echo VALID",
    );
    assert!(
        hosts.contains("host cron1 {") && hosts.contains("host human1 {") && hosts.contains("VALID"),
        "{hosts}"
    );
    let inv_text = std::fs::read_to_string(&inv).unwrap();
    assert!(
        inv_text.contains("name = \"cron1\"") && inv_text.contains("name = \"human1\""),
        "{inv_text}"
    );

    // node list and node remove.
    let out = cloudctl(&["-i", &inv, "--json", "node", "list"]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = doc["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    let mut names = names;
    names[2..].sort(); // the two concurrent adds land in either order
    assert_eq!(names, ["hnode1", "web1", "cron1", "human1"]);
    ok(&["node", "remove", "web1"]);
    let after = snapshot(&lab);
    assert!(
        !after.contains("web1") && !after.contains("01-aa-bb-cc-00-00-01"),
        "{after}"
    );
    assert!(!std::fs::read_to_string(&inv).unwrap().contains("web1"));
    assert!(
        lab.sh_ok(0, "cat /etc/dhcp/dhcpd.local.conf").contains("hand.example"),
        "hand edits survive"
    );
    let out = cloudctl(&["-i", &inv, "--yes", "node", "remove", "web1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("no node named \"web1\""));
}

#[test]
#[cfg_attr(
    not(lab_tests),
    ignore = "lab test: needs root and every program in .ci/prerequisites"
)]
fn a_dhcpd_that_cannot_start_leaves_the_old_config_running() {
    crate::support::require_lab(&[]);
    let _tftpd = TFTPD.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::up("tdhcprb", 1, 160);
    let inv = lab.inventory();
    let out = cloudctl(&["-i", &inv, "--yes", "config", "init"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let before = lab.sh_ok(0, "cat /etc/default/isc-dhcp-server /etc/dhcp/dhcpd.conf");
    // An interface that does not exist passes every file check (`dhcpd -t` reads no interface),
    // but dhcpd cannot start on it.
    let text_inv = std::fs::read_to_string(&inv).unwrap();
    std::fs::write(&inv, text_inv.replace("interface = \"eth0\"", "interface = \"eth9\"")).unwrap();
    let out = cloudctl(&["-i", &inv, "--yes", "--json", "config", "init"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert_eq!(doc["exit_code"], 1);
    let all = format!("{stderr}{}", text(&out.stdout));
    for needle in [
        "sh restart /etc/dhcp/cloudctl-hosts.d /etc/dhcp/cloudctl-omapi.key /var/lib/cloudctl/dhcpd /var/lib/dhcp/dhcpd.leases` again",
        "restored the previous /etc/default/isc-dhcp-server",
        "it succeeded, the previous configuration is running",
    ] {
        assert!(
            all.contains(needle),
            "names the failure and the rollback ({needle}): {all}"
        );
    }
    assert_eq!(
        lab.sh_ok(0, "cat /etc/default/isc-dhcp-server /etc/dhcp/dhcpd.conf"),
        before,
        "the previous files are active"
    );
    lab.dhcpd_pid();
    let listening = lab.sh_ok(0, "cat /proc/$(cat /run/dhcpd.pid)/cmdline | tr '\\0' ' '");
    assert!(
        listening.contains("eth0"),
        "dhcpd runs on the old interface: {listening}"
    );
}
