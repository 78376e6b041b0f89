//! End to end: `lab up` makes real hosts (own hostname, private /etc, pinned host keys, reachable
//! over SSH), `status` sees them healthy, the inventory loads, and `down` removes every trace.
//! Needs root; creates and removes lab "tlife" on 10.201.77.0/24.

use cloudctl::lab;
use std::path::Path;
use std::process::Command;

const NAME: &str = "tlife";

/// Takes the lab down when the test ends, also when an assertion failed half way.
struct Teardown;
impl Drop for Teardown {
    fn drop(&mut self) {
        if let Err(e) = lab::down(NAME) {
            eprintln!("cleanup of lab {NAME} failed: {e:#}");
        }
    }
}

/// Runs a command on a lab host with strict host-key checking against the lab's known_hosts only.
fn ssh(state: &lab::LabState, host: &lab::LabHost, command: &str) -> (bool, String) {
    let out = Command::new("ssh")
        .arg("-i")
        .arg(&state.client_key)
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", state.known_hosts.display()))
        .args([
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=5",
        ])
        .arg(format!("root@{}", host.ip))
        .arg(command)
        .output()
        .expect("run ssh");
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success(), text + &String::from_utf8_lossy(&out.stderr))
}

fn netns_names() -> Vec<String> {
    let out = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(String::from)
        .collect()
}

/// A zombie counts as gone: it runs nothing, and here PID 1 may take a moment to reap orphans.
fn is_live_sshd(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.contains("(sshd)") && !stat.contains("(sshd) Z")
}

#[test]
#[cfg_attr(
    not(lab_tests),
    ignore = "lab test: needs root and every program in .ci/prerequisites"
)]
fn lab_up_status_down() {
    crate::support::require_lab(&[]);
    // A run that was killed earlier may have left the lab behind; start clean.
    lab::down(NAME).expect("clean up an earlier tlife lab");
    let tmp = tempfile::tempdir().unwrap();
    let inventory = tmp.path().join("cloud.toml");
    let templates = cloudctl::templates::Templates::load(None).expect("built-in templates");
    let req = lab::LabRequest {
        name: NAME.into(),
        hosts: 2,
        subnet: "10.201.77.0/24".parse().unwrap(),
        inventory: inventory.clone(),
        vms: vec![],
        vm_disk_mib: 64,
        power_exe: None,
    };
    let _teardown = Teardown;
    let state = lab::up(&req, &templates).unwrap_or_else(|e| panic!("lab up: {e:#}"));
    assert_eq!(state.hosts.len(), 2);
    assert_eq!(state.hosts[0].name, "confignode");
    assert_eq!(state.hosts[1].name, "hnode1");

    let health = lab::status(NAME).expect("status").hosts;
    for h in &health {
        assert!(
            h.netns_present && h.sshd_running && h.ssh_port_open,
            "unhealthy host: {h:?}"
        );
    }

    // The pinned key is accepted under StrictHostKeyChecking, and each host has its own hostname.
    for host in &state.hosts {
        let (ok, out) = ssh(&state, host, "hostname");
        assert!(ok, "ssh to {} failed: {out}", host.name);
        assert_eq!(out.lines().next(), Some(host.name.as_str()));
    }

    // /etc is private per host: a file written on host 1 is seen neither on host 2 nor here.
    let probe = format!("/etc/cloudctl-lab-probe-{}", std::process::id());
    let (ok, out) = ssh(&state, &state.hosts[0], &format!("echo here > {probe} && cat {probe}"));
    assert!(ok && out.starts_with("here"), "write on host 1: {out}");
    let (ok, out) = ssh(&state, &state.hosts[1], &format!("test ! -e {probe}"));
    assert!(ok, "{probe} written on host 1 is visible on host 2: {out}");
    assert!(
        !Path::new(&probe).exists(),
        "{probe} written on host 1 leaked onto this machine"
    );

    let inv =
        cloudctl::inventory::load(&inventory).unwrap_or_else(|e| panic!("generated inventory does not load: {e}"));
    assert_eq!(inv.hosts().len(), 2);

    let lines = lab::down(NAME).expect("down");
    assert!(!lines.is_empty());
    assert!(
        netns_names().iter().all(|n| !n.starts_with("cl-tlife-")),
        "namespaces left: {:?}",
        netns_names()
    );
    let bridge = Command::new("ip").args(["link", "show", "cltlifebr"]).output().unwrap();
    assert!(!bridge.status.success(), "bridge cltlifebr is still there");
    assert!(!Path::new("/tmp/cloudctl-lab/tlife").exists(), "state dir left behind");
    assert!(!inventory.exists(), "inventory left behind");
    for host in &state.hosts {
        assert!(
            !is_live_sshd(host.sshd_pid),
            "sshd of {} (pid {}) still runs",
            host.name,
            host.sshd_pid
        );
    }
}
