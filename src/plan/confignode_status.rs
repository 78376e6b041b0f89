//! `config status`: the read-only probe of each ConfigNode (floating address, daemons, DHCP
//! failover state, checksums of its DHCP hosts file and TFTP tree) and the judgement of what it
//! found against the inventory and the other ConfigNode. Pure.

use super::confignode::{sections, shard_file, HOST_SHARDS, KEEPALIVED_PID, LEASES};
use crate::error::Error;
use crate::inventory::Inventory;
use crate::templates::Templates;
use serde::Serialize;

/// What one ConfigNode reported.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct NodeFacts {
    /// It holds the pair's floating address now.
    pub holds_floating: bool,
    pub dhcpd_running: bool,
    /// Something listens on the TFTP port (tftpd-hpa, from the settings `config init` wrote).
    pub tftpd_listening: bool,
    pub keepalived_running: bool,
    /// dhcpd's failover state (its own, its partner's), as its lease file last recorded it.
    pub failover: Option<(String, String)>,
    /// sha256 of the DHCP hosts file cloudctl writes (`None`: absent).
    pub hosts_sha256: Option<String>,
    /// sha256 over every file of the TFTP tree, names and contents.
    pub tree_sha256: Option<String>,
}

/// One ConfigNode's line of the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeStatus {
    pub name: String,
    pub reachable: bool,
    #[serde(flatten)]
    pub facts: NodeFacts,
    /// Its DHCP hosts file is the one the inventory renders (every `node add/remove` reached it).
    pub hosts_in_sync: bool,
    pub problems: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Status {
    pub pair: bool,
    pub floating: Option<String>,
    /// Which ConfigNode holds the floating address (none, or both: split brain, is a problem).
    pub holder: Vec<String>,
    /// Every ConfigNode that answered has the inventory's hosts, and their TFTP trees are equal.
    pub in_sync: bool,
    pub nodes: Vec<NodeStatus>,
    /// Problems of the pair as a whole.
    pub problems: Vec<String>,
}

/// `scripts/confignode/status.sh FLOATING PIDFILE LEASES TFTP_ROOT HOSTS_FILE...` (what it
/// prints is described there).
const STATUS: &str = include_str!("../../scripts/confignode/status.sh");

/// The probe: one `key value` line per fact; changes nothing.
pub fn script(inv: &Inventory) -> Result<String, Error> {
    let cn = sections(inv)?.confignode;
    // The files of host entries, in shard order, as one stream (what `judge` renders).
    let shards: Vec<String> = (0..HOST_SHARDS).map(|k| shard_file(cn, k)).collect();
    let floating = cn.floating().map(|ip| format!(" {ip}/")).unwrap_or_default();
    Ok(probe(
        [&floating, KEEPALIVED_PID, LEASES, cn.tftp_root.as_str()],
        &shards,
    ))
}

/// The probe with its files given: the floating address as `ip -o` shows it, keepalived's pid
/// file, dhcpd's lease file, the TFTP root.
fn probe(files: [&str; 4], shards: &[String]) -> String {
    let mut args = files.to_vec();
    args.extend(shards.iter().map(String::as_str));
    crate::shell::sh_c(STATUS, &args)
}

pub fn parse(output: &str) -> NodeFacts {
    let mut f = NodeFacts::default();
    for line in output.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["floating", v] => f.holds_floating = *v == "yes",
            ["dhcpd", v] => f.dhcpd_running = *v == "running",
            ["keepalived", "running"] => f.keepalived_running = true,
            ["tftpd", "listening"] => f.tftpd_listening = true,
            ["failover", me, partner] => f.failover = Some((me.to_string(), partner.to_string())),
            ["hosts", sum] => f.hosts_sha256 = Some(sum.to_string()),
            ["tree", sum] => f.tree_sha256 = Some(sum.to_string()),
            _ => {}
        }
    }
    f
}

/// The sha256 of every file of host entries the inventory renders, in shard order: what the
/// probe sums on a ConfigNode that is in step.
pub fn wanted_hosts_sha256(inv: &Inventory, templates: &Templates) -> Result<String, Error> {
    let all = (0..HOST_SHARDS).collect();
    let entries: String = super::confignode::shard_contents(inv, templates, &all)?
        .into_iter()
        .map(|(_, content)| content)
        .collect();
    Ok(crate::digest::sha256_hex(entries.as_bytes()))
}

/// Judges what each ConfigNode reported (`Err`: why it did not answer), in `confignode::hosts`
/// order, against the hosts file the inventory renders and against each other.
pub fn judge(
    inv: &Inventory,
    templates: &Templates,
    answers: Vec<(String, Result<NodeFacts, String>)>,
) -> Result<Status, Error> {
    let cn = sections(inv)?.confignode;
    let pair = cn.is_pair();
    let wanted = wanted_hosts_sha256(inv, templates)?;
    let mut nodes = Vec::new();
    for (name, answer) in answers {
        let (reachable, facts, mut problems) = match answer {
            Ok(f) => (true, f, Vec::new()),
            Err(why) => (false, NodeFacts::default(), vec![format!("unreachable: {why}")]),
        };
        let hosts_in_sync = facts.hosts_sha256.as_deref() == Some(wanted.as_str());
        if reachable {
            if !facts.dhcpd_running {
                problems.push("dhcpd is not running; run `cloudctl config init`".into());
            }
            if !facts.tftpd_listening {
                problems.push(
                    "tftpd is not listening on UDP port 69: nodes cannot load their boot files from it; run `cloudctl config init` (it starts tftpd-hpa)"
                        .into(),
                );
            }
            if !hosts_in_sync {
                problems.push("behind the inventory: its DHCP hosts differ; run `cloudctl config init`".into());
            }
            if pair {
                if !facts.keepalived_running {
                    problems.push(
                        "keepalived is not running: it cannot take the floating address; run `cloudctl config init`"
                            .into(),
                    );
                }
                match &facts.failover {
                    Some((me, _)) if me == "normal" => {}
                    Some((me, partner)) => problems.push(format!(
                        "DHCP failover state {me} (partner {partner}): the peers do not share leases now"
                    )),
                    None if facts.dhcpd_running => {
                        problems.push("DHCP failover has not started (no state in the lease file)".into())
                    }
                    None => {}
                }
            }
        }
        nodes.push(NodeStatus {
            name,
            reachable,
            facts,
            hosts_in_sync,
            problems,
        });
    }
    let holder: Vec<String> = nodes
        .iter()
        .filter(|n| n.facts.holds_floating)
        .map(|n| n.name.clone())
        .collect();
    let mut problems = Vec::new();
    let trees: std::collections::BTreeSet<_> = nodes
        .iter()
        .filter(|n| n.reachable)
        .map(|n| n.facts.tree_sha256.clone())
        .collect();
    if trees.len() > 1 {
        problems.push("the TFTP trees differ between the ConfigNodes; run `cloudctl config init`".to_string());
    }
    if pair {
        match holder.len() {
            0 => problems.push(format!(
                "no ConfigNode holds the floating address {}: nodes cannot PXE-boot",
                cn.address.host
            )),
            1 => {}
            _ => problems.push(format!(
                "both ConfigNodes hold the floating address {} (they do not hear each other's VRRP adverts)",
                cn.address.host
            )),
        }
    }
    let in_sync = trees.len() <= 1 && nodes.iter().all(|n| n.reachable && n.hosts_in_sync);
    Ok(Status {
        pair,
        floating: cn.floating().map(|f| f.to_string()),
        holder,
        in_sync,
        nodes,
        problems,
    })
}

impl Status {
    /// 0 all in order, 1 something out of order, 4 a ConfigNode did not answer (the one
    /// severity order decides when both).
    pub fn exit(&self) -> crate::error::Exit {
        use crate::error::Exit;
        let mut exit = Exit::Ok;
        for n in &self.nodes {
            if !n.reachable {
                exit = exit.max(Exit::Unreachable);
            } else if !n.problems.is_empty() {
                exit = exit.max(Exit::Failed);
            }
        }
        if !self.problems.is_empty() {
            exit = exit.max(Exit::Failed);
        }
        exit
    }
}

#[cfg(test)]
mod probe_tests {
    use super::*;

    /// The probe runs in a real `sh` against files here (a TFTP root full of shell syntax).
    #[test]
    fn the_probe_runs_in_sh_and_reports_what_it_finds() {
        let dir = tempfile::tempdir().unwrap();
        let d = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
        let tftp = d("tftp $(touch ran) `touch ran`; x");
        std::fs::create_dir_all(format!("{tftp}/pxelinux.cfg")).unwrap();
        std::fs::write(format!("{tftp}/pxelinux.cfg/default"), "x").unwrap();
        std::fs::write(d("pid"), std::process::id().to_string()).unwrap();
        std::fs::write(
            d("leases"),
            "failover peer \"p\" state {\n  my state recover at 1;\n  partner state normal at 2;\n}\n\
             failover peer \"p\" state {\n  my state normal at 3;\n  partner state normal at 4;\n}\n",
        )
        .unwrap();
        std::fs::write(d("00.conf"), "host a {}\n").unwrap();
        std::fs::write(d("01.conf"), "host b {}\n").unwrap();
        let shards = [d("00.conf"), d("01.conf"), d("missing.conf")];
        let run = |floating: &str| {
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(probe([floating, &d("pid"), &d("leases"), &tftp], &shards))
                .current_dir(dir.path())
                .output()
                .unwrap();
            assert!(out.status.success());
            parse(&String::from_utf8_lossy(&out.stdout))
        };
        let f = run("");
        assert!(f.keepalived_running && !f.holds_floating);
        assert_eq!(f.failover, Some(("normal".into(), "normal".into())));
        assert_eq!(
            f.hosts_sha256.as_deref(),
            Some(crate::digest::sha256_hex(b"host a {}\nhost b {}\n").as_str())
        );
        assert_eq!(f.tree_sha256.as_ref().map(String::len), Some(64));
        assert!(!dir.path().join("ran").exists());
        if std::path::Path::new("/usr/sbin/ip").exists() || std::path::Path::new("/sbin/ip").exists() {
            assert!(run(" 127.0.0.1/").holds_floating);
            assert!(!run(" 192.0.2.77/").holds_floating);
        }
    }
}
