//! `cloudctl doctor`: the read-only probes of the ConfigNode, the hardware and storage nodes, and
//! the checks that turn the inventory and what the hosts report into findings, each with its fix.
//! Script text, parsing and the checks; pure.

use super::confignode::{self, hosts_dir, hosts_file, mac_file_name};
use super::instance::probe::{self, GuestSeen, GuestState};
use super::placement;
use super::storage_health::{self, StorageHealth};
use crate::inventory::{Hypervisor, Inventory, Role};
use crate::shell::Script;
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;

/// One problem, with what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Finding {
    /// A stable name for monitoring: `missing_boot_file`, `ip_in_dynamic_range`, …
    pub check: &'static str,
    /// The node, guest or file it is about.
    pub subject: String,
    pub problem: String,
    pub fix: String,
}

/// What the ConfigNode reported.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConfigNodeFacts {
    pub missing: Vec<String>,
    pub initialised: bool,
    /// `host NAME { … fixed-address IP; }` entries of cloudctl's files of DHCP host entries.
    pub fixed: Vec<(String, Ipv4Addr)>,
    /// The `range` lines of dhcpd.conf.
    pub ranges: Vec<(Ipv4Addr, Ipv4Addr)>,
    /// Server identifiers of the DHCP offers a DISCOVER from the ConfigNode got back.
    pub dhcp_servers: Vec<Ipv4Addr>,
    /// Why the DHCP servers could not be looked for, if they could not.
    pub dhcp_unchecked: Option<String>,
    /// The MACs dhcpd's commit hook recorded (it gave them an address); `None` when the
    /// ConfigNode has no record folder (set up by an older `config init`).
    pub booted: Option<Vec<[u8; 6]>>,
}

/// `dhcp-discover IFACE` (scripts/doctor/dhcp-discover.sh): one DHCPDISCOVER, never a REQUEST.
pub const DHCP_DISCOVER: &str = include_str!("../../scripts/doctor/dhcp-discover.sh");

/// What a hardware node reported.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HnodeFacts {
    pub guests: Vec<GuestSeen>,
    pub total_mib: Option<u64>,
    /// Guests whose one-time migration key is still in authorized_keys.
    pub keys_in_authorized: Vec<String>,
    /// Guests whose one-time private key is still in the runtime folder.
    pub key_files: Vec<String>,
    /// Its md arrays (the storage seen through md multipath) and any DRBD devices.
    pub storage: StorageHealth,
}

/// The most two clocks may differ (seconds) before doctor says so: live migration and the
/// cloud's logs need the nodes' clocks in step.
pub const MAX_SKEW_SECS: f64 = 2.0;

/// The first line of every host's probe: its clock in Unix seconds. GNU date prints
/// nanoseconds; busybox date (the RAM-root nodes') leaves `%N` as it is, whole seconds.
pub const CLOCK_PROBE: &str = "echo \"clock $(date +%s.%N)\"\n";

/// A host's clock as its probe printed it, and when this machine asked.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClockReading {
    /// Unix seconds as the host printed them.
    pub printed: f64,
    /// How much later the host's clock may really have been: 1 s when it printed whole
    /// seconds (it truncates), else 0.
    pub resolution: f64,
    /// This machine's clock just before and just after the host was asked (set by the
    /// caller): the host printed its clock in between.
    pub asked_between: (f64, f64),
}

/// The probe's `clock` line as (seconds, resolution); `None` without one.
pub fn parse_clock(out: &str) -> Option<(f64, f64)> {
    let t = out.lines().find_map(|l| l.strip_prefix("clock "))?.trim();
    if let Some(whole) = t.strip_suffix(".%N") {
        return whole.parse::<u64>().ok().map(|s| (s as f64, 1.0));
    }
    t.parse::<f64>().ok().filter(|v| v.is_finite()).map(|v| (v, 0.0))
}

/// How a host answered the probe.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer<T> {
    Facts(T),
    /// Refused for its host key (unknown under the strict policy, or changed).
    HostKey(String),
    Unreachable(String),
}

/// Everything `check` looks at besides the inventory.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CloudFacts {
    pub confignode: Option<Answer<ConfigNodeFacts>>,
    pub hnodes: Vec<(String, Answer<HnodeFacts>)>,
    /// Storage nodes: their DRBD devices and md arrays.
    pub snodes: Vec<(String, Answer<StorageHealth>)>,
    /// Other hosts: reached or not.
    pub others: Vec<(String, Answer<()>)>,
    /// The clock of every host that answered (ConfigNode, hardware and storage nodes, others).
    pub clocks: Vec<(String, ClockReading)>,
}

impl CloudFacts {
    /// Records ConfigNode `name`'s answer. Of a pair, the first that answered is the one whose
    /// files and DHCP are judged (both serve the same, converged alike), with the MACs either
    /// one gave an address to; one that did not answer, or refused its host key, is reported by
    /// its name like any other host.
    pub fn add_confignode(&mut self, name: &str, answer: Answer<ConfigNodeFacts>, pair: bool) {
        match (&mut self.confignode, answer) {
            (Some(Answer::Facts(judged)), Answer::Facts(f)) => {
                if let (Some(all), Some(more)) = (&mut judged.booted, f.booted) {
                    all.extend(more);
                    all.sort();
                    all.dedup();
                }
            }
            (_, Answer::Facts(f)) => self.confignode = Some(Answer::Facts(f)),
            (_, Answer::HostKey(e)) if pair => self.others.push((name.to_string(), Answer::HostKey(e))),
            (_, Answer::Unreachable(e)) if pair => self.others.push((name.to_string(), Answer::Unreachable(e))),
            (_, other) => self.confignode = Some(other),
        }
    }
}

/// Files the ConfigNode must have for every registered node to PXE-boot.
pub fn boot_files(inv: &Inventory) -> Vec<String> {
    let mut files = confignode::needed_boot_files(inv);
    if let Some(cn) = &inv.confignode {
        let root = cn.tftp_root.as_str().trim_end_matches('/');
        files.extend(["pxelinux.0", "ldlinux.c32", "pxelinux.cfg/default"].map(|f| format!("{root}/{f}")));
        for n in inv.node.iter() {
            if let Some(mac) = &n.mac {
                files.push(format!("{root}/pxelinux.cfg/{}", mac_file_name(mac.get_ref())));
            }
        }
    }
    files
}

pub fn confignode_script(inv: &Inventory) -> String {
    let mut s = Script::new();
    for f in boot_files(inv) {
        s.text("[ -f ").word(&f).text(" ] || echo missing ").word(&f).text("\n");
    }
    if let Some(cn) = &inv.confignode {
        let include = format!("include \"{}\";", hosts_file(cn));
        let conf = cn.dhcpd_conf.as_str();
        s.text("grep -qxF ")
            .word(&include)
            .text(" ")
            .word(conf)
            .text(" 2>/dev/null && echo initialised\n");
        // The files of host entries (a glob after the quoted folder: their names are cloudctl's).
        s.text(
            "awk '$1 == \"host\" { h = $2 } $1 == \"fixed-address\" { sub(/;.*/, \"\", $2); print \"fixed\", h, $2 }' ",
        )
        .word(&hosts_dir(cn))
        .text("/[0-9]*.conf 2>/dev/null\n");
        let iface = inv.network.as_ref().map_or("eth0", |n| n.interface.as_str());
        s.sh_c(DHCP_DISCOVER, &[iface]).text("\n");
        s.text("d=")
            .word(confignode::BOOTED_DIR)
            .text("; if [ -d \"$d\" ]; then echo booted-recorded; for f in \"$d\"/*; do [ -e \"$f\" ] && echo \"booted ${f##*/}\"; done; fi\n");
        s.text("awk '$1 == \"range\" { a = $2; b = $3; sub(/;.*/, \"\", b); sub(/;.*/, \"\", a); print \"range\", a, (b == \"\" ? a : b) }' ")
            .word(conf)
            .text(" 2>/dev/null\n");
    }
    s.text("exit 0\n").build()
}

pub fn parse_confignode(out: &str) -> ConfigNodeFacts {
    let mut f = ConfigNodeFacts::default();
    for line in out.lines() {
        let w: Vec<&str> = line.split_whitespace().collect();
        match w.as_slice() {
            ["missing", path] => f.missing.push(path.to_string()),
            ["initialised"] => f.initialised = true,
            ["fixed", host, ip] => {
                if let Ok(ip) = ip.parse() {
                    f.fixed.push((host.to_string(), ip));
                }
            }
            ["dhcp-server", ip] => {
                if let Ok(ip) = ip.parse() {
                    f.dhcp_servers.push(ip);
                }
            }
            ["dhcp-unchecked", why @ ..] => f.dhcp_unchecked = Some(why.join(" ")),
            ["booted-recorded"] => f.booted = Some(f.booted.take().unwrap_or_default()),
            ["booted", mac] => {
                if let Some(mac) = dhcpd_mac(mac) {
                    f.booted.get_or_insert_with(Vec::new).push(mac);
                }
            }
            ["range", a, b] => {
                if let (Ok(a), Ok(b)) = (a.parse(), b.parse()) {
                    f.ranges.push((a, b));
                }
            }
            _ => {}
        }
    }
    f
}

/// A storage node's DRBD devices and md arrays.
pub fn snode_script() -> String {
    Script::new().text(storage_health::PROBE).text("exit 0\n").build()
}

/// Guests, memory, leftover one-time migration keys (`authorized_keys`: the file the keys go to,
/// empty for the SSH user's own), and the md arrays through which the node sees the storage (a
/// lab's namespace host shows this machine's own /proc/mdstat, which has none here).
pub fn hnode_script(h: Hypervisor, authorized_keys: &str) -> String {
    probe::guests(h)
        .text("\n")
        .text(placement::memory_script(h))
        .text("\nf=")
        .word(authorized_keys)
        .text("; f=${f:-$HOME/.ssh/authorized_keys}\n")
        .text("grep -o 'cloudctl-migrate-[a-z0-9-]*' \"$f\" 2>/dev/null | sed 's/^cloudctl-migrate-/authkey /'\n")
        .text("for k in ")
        .word(super::instance::RUN_DIR)
        .text("/*.migrate-key; do [ -e \"$k\" ] && { n=${k##*/}; echo \"keyfile ${n%.migrate-key}\"; }; done\n")
        .text(storage_health::PROBE)
        .text("exit 0\n")
        .build()
}

pub fn parse_hnode(out: &str) -> HnodeFacts {
    let mut f = HnodeFacts {
        guests: probe::parse_guests(out),
        total_mib: placement::parse_memory(out).0,
        storage: storage_health::parse(out),
        ..HnodeFacts::default()
    };
    for line in out.lines() {
        match line.split_once(' ') {
            Some(("authkey", g)) => f.keys_in_authorized.push(g.to_string()),
            Some(("keyfile", g)) => f.key_files.push(g.to_string()),
            _ => {}
        }
    }
    f
}

/// A MAC as dhcpd's `binary-to-ascii(16, 8, ":", …)` prints it: six hex octets, no leading
/// zeros (`52:54:0:c1:0:2`).
pub fn dhcpd_mac(s: &str) -> Option<[u8; 6]> {
    let octets: Vec<u8> = s
        .split(':')
        .map(|o| {
            (!o.is_empty() && o.len() <= 2)
                .then(|| u8::from_str_radix(o, 16).ok())
                .flatten()
        })
        .collect::<Option<_>>()?;
    octets.try_into().ok()
}

fn in_range(ip: Ipv4Addr, (a, b): (Ipv4Addr, Ipv4Addr)) -> bool {
    ip >= a && ip <= b
}

/// The hosts that answered the probe (with facts or with a refused host key).
fn up<T>(hosts: &[(String, Answer<T>)]) -> impl Iterator<Item = &str> {
    hosts
        .iter()
        .filter(|(_, a)| !matches!(a, Answer::Unreachable(_)))
        .map(|(n, _)| n.as_str())
}

fn finding(check: &'static str, subject: &str, problem: String, fix: String) -> Finding {
    Finding {
        check,
        subject: subject.to_string(),
        problem,
        fix,
    }
}

/// Every finding, sorted by check then subject (the same cloud gives the same report).
pub fn check(inv: &Inventory, facts: &CloudFacts) -> Vec<Finding> {
    let mut out = Vec::new();
    let reach = |out: &mut Vec<Finding>, name: &str, e: &str, key: bool| {
        if key {
            out.push(finding(
                "host_key",
                name,
                format!("{name}'s SSH host key is not the pinned one (or not pinned): {e}"),
                format!("if {name} was re-installed on purpose, check its new fingerprint and pin it with `cloudctl host trust {name}`; otherwise treat it as an attack and do not connect"),
            ));
        } else {
            out.push(finding(
                "unreachable",
                name,
                format!("{name} does not answer: {e}"),
                format!("check that {name} is powered on and on the network (`cloudctl hnode boot {name}` for a hardware node)"),
            ));
        }
    };
    // A node that answered (even with the wrong host key) is up: it booted, from PXE or a disk.
    let answered: Vec<&str> = up(&facts.hnodes)
        .chain(up(&facts.snodes))
        .chain(up(&facts.others))
        .collect();
    if let Some(cn) = &facts.confignode {
        match cn {
            Answer::Facts(f) => {
                check_confignode(inv, f, &mut out);
                check_boots(inv, f, &answered, &mut out);
            }
            Answer::HostKey(e) => reach(&mut out, "confignode", e, true),
            Answer::Unreachable(e) => reach(&mut out, "confignode", e, false),
        }
    }
    for (name, a) in &facts.others {
        match a {
            Answer::Facts(()) => {}
            Answer::HostKey(e) => reach(&mut out, name, e, true),
            Answer::Unreachable(e) => reach(&mut out, name, e, false),
        }
    }
    for (name, a) in &facts.snodes {
        match a {
            Answer::Facts(h) => check_storage(inv, name, h, &mut out),
            Answer::HostKey(e) => reach(&mut out, name, e, true),
            Answer::Unreachable(e) => reach(&mut out, name, e, false),
        }
    }
    split_brain_peers(inv, &mut out);
    let mut seen: BTreeMap<&str, &HnodeFacts> = BTreeMap::new();
    for (name, a) in &facts.hnodes {
        match a {
            Answer::Facts(f) => {
                check_storage(inv, name, &f.storage, &mut out);
                seen.insert(name, f);
            }
            Answer::HostKey(e) => reach(&mut out, name, e, true),
            Answer::Unreachable(e) => reach(&mut out, name, e, false),
        }
    }
    check_guests(inv, &seen, &mut out);
    check_clocks(inv, &facts.clocks, &mut out);
    out.sort();
    out.dedup();
    out
}

fn check_confignode(inv: &Inventory, f: &ConfigNodeFacts, out: &mut Vec<Finding>) {
    if !f.initialised {
        out.push(finding(
            "confignode_not_initialised",
            "confignode",
            "dhcpd.conf on the ConfigNode does not include cloudctl's hosts file".into(),
            "run `cloudctl config init`".into(),
        ));
    }
    for path in &f.missing {
        let is_profile_file = confignode::needed_boot_files(inv).contains(path);
        let fix = if is_profile_file {
            format!("copy the file named by the profile to {path} on the ConfigNode (or fix the profile's path in the inventory)")
        } else {
            "run `cloudctl config init`: it writes the PXE loader files and every node's PXE entry".into()
        };
        out.push(finding(
            "missing_boot_file",
            path,
            format!("{path} is missing on the ConfigNode: nodes that boot it cannot PXE-boot"),
            fix,
        ));
    }
    let ours: Vec<String> = inv
        .confignode
        .as_ref()
        .map(|cn| vec![cn.address.host.clone(), confignode::next_server(cn)])
        .unwrap_or_default();
    for server in f.dhcp_servers.iter().filter(|s| !ours.contains(&s.to_string())) {
        out.push(finding(
            "rogue_dhcp",
            &server.to_string(),
            format!(
                "a second DHCP server ({server}) answers on the ConfigNode's network: machines may boot from it or take its addresses"
            ),
            format!("find the machine at {server} and stop its DHCP server (only the ConfigNode may answer on this network)"),
        ));
    }
    if let Some(why) = &f.dhcp_unchecked {
        out.push(finding(
            "dhcp_unchecked",
            "confignode",
            format!("cannot look for other DHCP servers on the ConfigNode's network: {why}"),
            "install socat on the ConfigNode (apt-get install socat)".into(),
        ));
    }
    let mut ranges = f.ranges.clone();
    if let Some(r) = inv.network.as_ref().and_then(|n| n.dynamic_range.as_ref()) {
        ranges.push((r.get_ref().first, r.get_ref().last));
    }
    for (host, ip) in &f.fixed {
        if let Some(r) = ranges.iter().find(|r| in_range(*ip, **r)) {
            let recorded = inv
                .node
                .iter()
                .find(|n| n.name.get_ref().as_str() == host)
                .and_then(|n| n.ip.as_ref().map(|i| *i.get_ref()));
            out.push(finding(
                "ip_in_dynamic_range",
                host,
                format!(
                    "the ConfigNode gives {host} the fixed address {ip}, inside the dynamic range {}-{}: DHCP may also lease it to another machine",
                    r.0, r.1
                ),
                match recorded {
                    Some(rec) if rec != *ip => format!(
                        "the inventory says {rec}: run `cloudctl config init` to write the ConfigNode's DHCP entries from it again"
                    ),
                    _ => format!("give {host} an address outside the dynamic range in the inventory, then run `cloudctl config init`"),
                },
            ));
        }
    }
}

/// A node's DRBD devices and md arrays, and (for a storage node of `[storage]`) whether its
/// DRBD resource is up at all.
fn check_storage(inv: &Inventory, node: &str, h: &StorageHealth, out: &mut Vec<Finding>) {
    let section = inv.storage.as_ref().map(|s| s.get_ref());
    let res = section.map_or("RES".to_string(), |s| s.resource.to_string());
    let of_storage = section.is_some_and(|s| s.nodes.get_ref().iter().any(|n| n.as_str() == node));
    let peer = section
        .and_then(|s| {
            s.nodes
                .get_ref()
                .iter()
                .find(|n| n.as_str() != node)
                .map(|n| n.to_string())
        })
        .unwrap_or_else(|| "its peer".into());
    let devices = h.drbd.as_deref().unwrap_or_default();
    if of_storage && !devices.iter().any(|d| d.cs != "Unconfigured") {
        out.push(finding(
            "drbd_down",
            node,
            format!("the DRBD resource {res} is not up on {node} (no configured device in /proc/drbd): the storage has one copy"),
            "run `cloudctl storage init` (a storage node that came back after losing power needs it; it never forces a sync)".into(),
        ));
    }
    for d in devices {
        let Some((check, problem)) = storage_health::drbd_problem(d, h.split_brain_lines > 0) else {
            continue;
        };
        let fix = match check {
            // DRBD's manual recovery, as it works on the storage nodes: the AoE export holds
            // the device open, and a device held open cannot become secondary, so it stops
            // first; `disconnect` fails on a StandAlone device (no connection to drop); storage
            // init makes the node primary again and restarts its export.
            "drbd_split_brain" => format!("decide whose data to keep; on the other node run `service cloudctl-aoe stop`, `drbdadm disconnect {res}` unless `drbdadm cstate {res}` says StandAlone, then `drbdadm secondary {res}; drbdadm connect --discard-my-data {res}`; on the node kept, if it is StandAlone, `drbdadm connect {res}`, and then `cloudctl storage init` (what the discarded side wrote alone is lost)"),
            "drbd_disconnected" => format!("if {peer} is down, bring it back (`cloudctl node boot {peer} --wait 300`, then `cloudctl storage init`); if both are up, run `drbdadm connect {res}` on {node} and watch `cloudctl storage status`"),
            "drbd_down" => "run `cloudctl storage init`".into(),
            _ => "let the resync finish (`cloudctl storage status` shows its progress); if it does not move, look at the peer's disk and network".into(),
        };
        out.push(finding(check, node, format!("on {node}: {problem}"), fix));
    }
    for a in h.md.as_deref().unwrap_or_default() {
        let Some(problem) = storage_health::md_problem(a) else {
            continue;
        };
        let fix = if a.level == "multipath" {
            format!("a path to the storage is gone: bring the storage node back (`cloudctl storage status`), then run /etc/cloudctl/attach-storage on {node} to add the path again")
        } else {
            format!("replace the failed disk on {node}: `mdadm --manage /dev/{0} --remove DISK`, then `mdadm --manage /dev/{0} --add NEW_DISK`; md rebuilds it", a.name)
        };
        out.push(finding("md_degraded", node, format!("on {node}: {problem}"), fix));
    }
}

/// The other half of a split brain: when one storage node detects it, it drops the connection,
/// and its peer, if it had not compared the data yet, only sees the connection gone and waits
/// for it again (WFConnection). Its "disconnected" is the same split brain, with the same fix.
fn split_brain_peers(inv: &Inventory, out: &mut [Finding]) {
    let Some(s) = inv.storage.as_ref().map(|s| s.get_ref()) else {
        return;
    };
    let nodes: Vec<&str> = s.nodes.get_ref().iter().map(|n| n.as_str()).collect();
    let split: Vec<(String, String)> = out
        .iter()
        .filter(|f| f.check == "drbd_split_brain" && nodes.contains(&f.subject.as_str()))
        .map(|f| (f.subject.clone(), f.fix.clone()))
        .collect();
    for (node, fix) in split {
        for f in out.iter_mut() {
            if f.check == "drbd_disconnected" && f.subject != node && nodes.contains(&f.subject.as_str()) {
                f.check = "drbd_split_brain";
                f.problem = format!(
                    "{} — its peer {node} detected a split brain (both sides wrote while apart) and dropped the connection, which this node still waits for",
                    f.problem
                );
                f.fix = fix.clone();
            }
        }
    }
}

/// Registered nodes that are not up and whose MAC the ConfigNode's DHCP server never answered:
/// they never got as far as asking for their address (wrong MAC, not booting from the network,
/// not powered, not cabled).
fn check_boots(inv: &Inventory, f: &ConfigNodeFacts, answered: &[&str], out: &mut Vec<Finding>) {
    let Some(booted) = &f.booted else {
        out.push(finding(
            "boots_unrecorded",
            "confignode",
            "the ConfigNode does not record which MACs its DHCP server answered (dhcpd.conf predates it), so nodes that never booted cannot be named".into(),
            "run `cloudctl config init`: it adds the record to dhcpd.conf".into(),
        ));
        return;
    };
    for n in &inv.node {
        let name = n.name.get_ref().as_str();
        let Some(mac) = &n.mac else { continue };
        if answered.contains(&name) || booted.contains(&mac.get_ref().octets()) {
            continue;
        }
        let power = if n.role == Role::Hnode {
            "hnode boot"
        } else {
            "node boot"
        };
        out.push(finding(
            "never_booted",
            name,
            format!(
                "{name} ({}) is registered but has never asked the ConfigNode for its address: no DHCP answer went to that MAC since `config init` set up the record",
                mac.get_ref()
            ),
            format!("power it on (`cloudctl {power} {name}`); if it is on, check that the inventory has the MAC of the NIC it boots from and that it boots from the network (PXE) first"),
        ));
    }
}

fn check_guests(inv: &Inventory, seen: &BTreeMap<&str, &HnodeFacts>, out: &mut Vec<Finding>) {
    let drained: Vec<&str> = inv
        .node
        .iter()
        .filter(|n| n.role == Role::Hnode && n.drained)
        .map(|n| n.name.get_ref().as_str())
        .collect();
    let running_on = |guest: &str| -> Vec<&str> {
        seen.iter()
            .filter(|(_, f)| {
                f.guests
                    .iter()
                    .any(|g| g.name == guest && g.state == GuestState::Running)
            })
            .map(|(n, _)| *n)
            .collect()
    };
    for rec in &inv.instance {
        let name = rec.name.get_ref().as_str();
        let recorded = rec.hnode.get_ref().as_str();
        let on = running_on(name);
        if on.len() > 1 {
            out.push(finding(
                "split_brain",
                name,
                format!("{name} runs on {} at once: both copies write its disk", on.join(" and ")),
                format!("stop every copy but one by hand now (on the nodes that should not run it), then run `cloudctl instance migrate {name} --cleanup`"),
            ));
        } else if let [one] = on.as_slice() {
            if *one != recorded {
                out.push(finding(
                    "guest_elsewhere",
                    name,
                    format!("{name} runs on {one}, the inventory records it on {recorded}"),
                    format!("run `cloudctl instance migrate {name} --cleanup` to record where it runs"),
                ));
            }
        }
        for d in &drained {
            if *d == recorded || on.contains(d) {
                out.push(finding(
                    "guest_on_drained_node",
                    name,
                    format!("{name} is on {d}, which is drained"),
                    format!(
                        "run `cloudctl hnode evacuate {d}` (or `cloudctl hnode undrain {d}` if it should take guests)"
                    ),
                ));
            }
        }
    }
    for (node, f) in seen {
        for g in f.guests.iter().filter(|g| g.state == GuestState::Running) {
            if inv.instance.iter().all(|r| r.name.get_ref().as_str() != g.name) {
                out.push(finding(
                    "unrecorded_guest",
                    &g.name,
                    format!("{} runs on {node} but is not in the inventory", g.name),
                    format!("stop it on {node} by hand, or record it as an [[instance]] if it is one of this cloud's guests"),
                ));
            }
        }
        for g in f.keys_in_authorized.iter().chain(&f.key_files) {
            out.push(finding(
                "leftover_one_time_key",
                g,
                format!("a one-time migration key of {g} is left on {node}"),
                format!("run `cloudctl instance migrate {g} --cleanup`: it removes leftover keys"),
            ));
        }
        let Some(node_rec) = inv.node.iter().find(|n| n.name.get_ref().as_str() == *node) else {
            continue;
        };
        let capacity = node_rec.memory.map(u64::from).or(f.total_mib);
        let used: u64 = inv
            .instance
            .iter()
            .filter(|r| r.hnode.get_ref().as_str() == *node)
            .map(|r| u64::from(r.memory))
            .sum();
        if let Some(cap) = capacity {
            if used > cap {
                out.push(finding(
                    "memory_overcommit",
                    node,
                    format!("the guests recorded on {node} need {used} MiB, it has {cap} MiB for guests"),
                    "move a guest off with `cloudctl instance migrate NAME --to auto`, or raise its [[node]] memory if the node really has more".to_string(),
                ));
            }
        }
    }
}

/// A host whose clock is off from this machine's by more than `MAX_SKEW_SECS` beyond what the
/// time the question took (and the resolution it printed) can explain. Every host counts: a
/// hardware node's clock for live migration, every node's for logs that line up in time (the
/// kernel messages of a storage failover on both storage nodes, say).
fn check_clocks(inv: &Inventory, clocks: &[(String, ClockReading)], out: &mut Vec<Finding>) {
    for (host, c) in clocks {
        let (before, after) = c.asked_between;
        // The host's clock was somewhere in [printed, printed + resolution].
        let (low, high) = (c.printed, c.printed + c.resolution);
        let off = if high < before {
            high - before
        } else if low > after {
            low - after
        } else {
            0.0
        };
        if off.abs() <= MAX_SKEW_SECS {
            continue;
        }
        let hnode = inv
            .node
            .iter()
            .any(|n| n.name.get_ref().as_str() == host && n.role == Role::Hnode);
        let why = if hnode {
            "live migration and the cloud's logs need the hardware nodes' clocks in step"
        } else {
            "the cloud's logs no longer line up in time (a failover's kernel messages on both storage nodes, DHCP leases, SSH logins)"
        };
        out.push(finding(
            "clock_skew",
            host,
            format!(
                "{host}'s clock is {:.1} s {} this machine's (and the other hosts' in step with it): {why}",
                off.abs(),
                if off > 0.0 { "ahead of" } else { "behind" }
            ),
            format!(
                "run an NTP client (chrony or ntpsec) on {host} and every node of the cloud, all from the same servers"
            ),
        ));
    }
}
