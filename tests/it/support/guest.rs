//! Guests on a lab: a tiny bootable image, whether one answers ping, where it runs, the QEMU
//! processes in a lab host's namespace.

use super::{cloudctl, json, text, Lab};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// Lab host 0 is the ConfigNode.
pub const CONFIGNODE: usize = 0;

/// A tiny bootable guest image (examples/build-tiny-guest.sh: busybox init, dropbear serving the
/// host key cloudctl writes); with `network` false its network never comes up.
pub fn bootable_image(out: &Path, network: bool) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/build-tiny-guest.sh");
    let mut cmd = Command::new("bash");
    cmd.arg(script).arg(out);
    if !network {
        cmd.arg("--no-network");
    }
    let out = cmd.stdin(Stdio::null()).output().unwrap();
    assert!(
        out.status.success(),
        "building the guest image failed: {}",
        text(&out.stderr)
    );
}

/// Whether `ip` answers a ping from the ConfigNode within 5 s (one ping a second until one is
/// answered). Not a loss measurement (the pingers are): whether the guest runs and is reachable.
/// When it does not answer, the switch and neighbour tables that decide where its traffic goes
/// are printed, so the failure says whether the guest or the network was at fault.
pub fn ping_once(lab: &Lab, ip: &str) -> bool {
    let answered = lab
        .sh(CONFIGNODE, &format!("ping -c 1 -w 5 {ip} >/dev/null"))
        .status
        .success();
    if !answered {
        let mut tables = format!(
            "{ip} does not answer; the lab bridge's learned addresses:\n{}",
            text(
                &Command::new("bridge")
                    .args(["fdb", "show", "br", &lab.state.bridge, "dynamic"])
                    .output()
                    .unwrap()
                    .stdout
            )
        );
        for h in &lab.state.hosts {
            let ns = ["-n", h.netns.as_str()];
            let fdb = Command::new("bridge")
                .args(ns)
                .args(["fdb", "show", "dynamic"])
                .output()
                .unwrap();
            let neigh = Command::new("ip").args(ns).args(["neigh", "show"]).output().unwrap();
            tables += &format!("{}: fdb\n{}neigh\n{}", h.name, text(&fdb.stdout), text(&neigh.stdout));
        }
        crate::support::report(&tables);
    }
    answered
}

/// QEMU processes running in a lab host's network namespace.
pub fn qemus(lab: &Lab, idx: usize) -> Vec<u32> {
    processes(lab, idx, |comm, _| comm.starts_with("qemu"))
}

/// Processes in a lab host's network namespace whose name and command line pass `pick`.
pub fn processes(lab: &Lab, idx: usize, pick: impl Fn(&str, &str) -> bool) -> Vec<u32> {
    let out = Command::new("ip")
        .args(["netns", "pids", &lab.state.hosts[idx].netns])
        .output()
        .unwrap();
    text(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().parse::<u32>().ok())
        .filter(|pid| {
            let read = |what: &str| std::fs::read(format!("/proc/{pid}/{what}")).map(|b| text(&b));
            matches!((read("comm"), read("cmdline")), (Ok(c), Ok(l)) if pick(c.trim(), &l.replace('\0', " ")))
        })
        .collect()
}

/// The nodes where `name` is found running, and the node the inventory records it on.
pub fn found_running(inv: &str, name: &str) -> (Vec<String>, String) {
    let out = cloudctl(&["-i", inv, "--json", "instance", "list"]);
    let v = json(&out);
    let row = v["instances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .unwrap()
        .clone();
    let running = row["found"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f[1] == "running")
        .map(|f| f[0].as_str().unwrap().to_string())
        .collect();
    (running, row["recorded_on"].as_str().unwrap_or_default().to_string())
}

/// The (first) node where `name` runs, and the node the inventory records it on.
pub fn where_runs(inv: &str, name: &str) -> (String, String) {
    let (running, recorded) = found_running(inv, name);
    (running.into_iter().next().unwrap_or_default(), recorded)
}

/// Pings `ip` from the ConfigNode every 100 ms, at most `count` times (1200: two minutes).
pub fn pinger(lab: &Lab, ip: &str, count: u32) -> Child {
    Command::new("ip")
        .args(["netns", "exec", &lab.state.hosts[CONFIGNODE].netns])
        .args(["ping", "-i", "0.1", "-c", &count.to_string(), "-W", "1", ip])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap()
}

/// What a pinger saw: pings sent, the ones never answered, and those as ranges of sequence
/// numbers (100 ms apart, counted from the pinger's start).
pub struct Pings {
    pub sent: u32,
    pub lost: u32,
    pub gaps: String,
}

/// Stops a pinger (SIGINT: ping prints its summary) and returns what it saw. A ping is lost when
/// no reply to it came; the last one sent may still be on its way when the pinger stops, which
/// says nothing about the guest, so it is not counted (ping's own summary counts it).
pub fn lost(child: Child) -> Pings {
    // SAFETY: kill(2) on the ping process this test started.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = text(&child.wait_with_output().unwrap().stdout);
    let sent: u32 = out
        .lines()
        .find_map(|l| l.split_once(" packets transmitted"))
        .and_then(|(n, _)| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no ping summary in: {out}"));
    let answered: std::collections::BTreeSet<u32> = out
        .lines()
        .filter(|l| l.contains(" bytes from "))
        .filter_map(|l| l.split("icmp_seq=").nth(1)?.split(' ').next()?.parse().ok())
        .collect();
    let missing: Vec<u32> = (1..sent).filter(|s| !answered.contains(s)).collect();
    let mut gaps: Vec<(u32, u32)> = Vec::new();
    for &seq in &missing {
        match gaps.last_mut() {
            Some((_, end)) if *end + 1 == seq => *end = seq,
            _ => gaps.push((seq, seq)),
        }
    }
    let gaps = gaps
        .iter()
        .map(|(a, b)| format!("{a}-{b}"))
        .collect::<Vec<_>>()
        .join(", ");
    Pings {
        sent,
        lost: missing.len() as u32,
        gaps,
    }
}
