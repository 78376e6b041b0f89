//! Where a guest goes (`instance create --hnode auto`, `instance migrate --to auto`,
//! `hnode evacuate`): the placement rule over per-node loads built from the inventory and the
//! nodes' reported memory. Pure.
//!
//! The rule, in order (README "Placement"):
//! 1. Only hardware nodes that answered, are not drained, run the guest's hypervisor, are not the
//!    node the guest leaves, and have room: the guest's memory fits both what the node leaves for
//!    guests after the guests *recorded* there (its `[[node]] memory`, else the memory it
//!    reports in total, minus those guests' memory) and what it reports available now.
//! 2. Most memory left for guests after the recorded guests first,
//! 3. then the fewest recorded guests,
//! 4. then the name (so the choice is the same every time).

use crate::inventory::{Hypervisor, Inventory, Role};
use serde::Serialize;

/// One hardware node as placement sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeLoad {
    pub name: String,
    pub hypervisor: Hypervisor,
    pub drained: bool,
    /// The node answered the memory probe.
    pub up: bool,
    /// MiB guests may use on this node: `[[node]] memory`, else the node's reported total.
    pub capacity_mib: Option<u64>,
    /// MiB the node reports available right now.
    pub available_mib: Option<u64>,
    /// Guests recorded on this node, with their memory (MiB).
    pub guests: Vec<(String, u32)>,
}

impl NodeLoad {
    /// MiB left for guests after the recorded ones.
    pub fn free_mib(&self) -> Option<u64> {
        self.capacity_mib.map(|c| c.saturating_sub(self.used_mib()))
    }
    pub fn used_mib(&self) -> u64 {
        self.guests.iter().map(|(_, m)| u64::from(*m)).sum()
    }
}

/// What is being placed.
#[derive(Debug, Clone, PartialEq)]
pub struct Need<'a> {
    pub guest: &'a str,
    pub memory: u32,
    pub hypervisor: Hypervisor,
    /// The node the guest leaves (a migration); never chosen.
    pub leaving: Option<&'a str>,
}

/// A node placement passed over, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Skipped {
    pub node: String,
    pub why: String,
}

/// The chosen node and the reasoning, for `--dry-run` and the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Choice {
    pub node: String,
    /// One sentence: why this node.
    pub why: String,
    /// The eligible nodes in the rule's order (the first is the choice): name, free MiB, guests.
    pub ranking: Vec<(String, u64, usize)>,
    pub skipped: Vec<Skipped>,
}

/// Why no node fits: every node with its reason.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NoRoom {
    pub guest: String,
    pub skipped: Vec<Skipped>,
}

impl std::fmt::Display for NoRoom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "no hardware node can take {}", self.guest)?;
        if self.skipped.is_empty() {
            return write!(f, ": the inventory has no other hardware node");
        }
        for s in &self.skipped {
            write!(f, "\n  - {}: {}", s.node, s.why)?;
        }
        Ok(())
    }
}

/// The node the rule picks for `need` among `nodes`.
pub fn place(nodes: &[NodeLoad], need: &Need) -> Result<Choice, NoRoom> {
    let mut skipped = Vec::new();
    let mut eligible: Vec<(&NodeLoad, u64)> = Vec::new();
    for n in nodes {
        let skip = |why: String| Skipped {
            node: n.name.clone(),
            why,
        };
        if need.leaving == Some(n.name.as_str()) {
            skipped.push(skip(format!("{} is leaving it", need.guest)));
        } else if n.drained {
            skipped.push(skip("drained (`cloudctl hnode undrain` lets guests back)".into()));
        } else if !n.up {
            skipped.push(skip("down (did not answer)".into()));
        } else if n.hypervisor != need.hypervisor {
            skipped.push(skip(format!(
                "runs {}, the guest needs {}",
                n.hypervisor.as_str(),
                need.hypervisor.as_str()
            )));
        } else {
            match (n.free_mib(), n.available_mib) {
                (None, _) => skipped.push(skip("reported no memory figure".into())),
                (Some(free), _) if free < u64::from(need.memory) => skipped.push(skip(format!(
                    "{free} MiB left for guests after its {} recorded, {} needs {}",
                    n.guests.len(),
                    need.guest,
                    need.memory
                ))),
                (_, Some(avail)) if avail < u64::from(need.memory) => skipped.push(skip(format!(
                    "reports {avail} MiB available, {} needs {}",
                    need.guest, need.memory
                ))),
                (Some(free), _) => eligible.push((n, free)),
            }
        }
    }
    eligible.sort_by(|(a, fa), (b, fb)| {
        fb.cmp(fa)
            .then(a.guests.len().cmp(&b.guests.len()))
            .then(a.name.cmp(&b.name))
    });
    let Some((best, free)) = eligible.first().copied() else {
        return Err(NoRoom {
            guest: need.guest.into(),
            skipped,
        });
    };
    let why = match eligible.get(1) {
        None => format!(
            "{} is the only node that can take it ({free} MiB free for guests)",
            best.name
        ),
        Some((next, nfree)) if *nfree < free => format!(
            "{} has the most memory left for guests after its recorded guests ({free} MiB; next {} with {nfree} MiB)",
            best.name, next.name
        ),
        Some((next, _)) if next.guests.len() > best.guests.len() => format!(
            "{} ties on free memory ({free} MiB) and has the fewest guests ({}; {} has {})",
            best.name,
            best.guests.len(),
            next.name,
            next.guests.len()
        ),
        Some((next, _)) => format!(
            "{} ties with {} on free memory ({free} MiB) and guests ({}); the name decides",
            best.name,
            next.name,
            best.guests.len()
        ),
    };
    Ok(Choice {
        node: best.name.clone(),
        why,
        ranking: eligible
            .iter()
            .map(|(n, f)| (n.name.clone(), *f, n.guests.len()))
            .collect(),
        skipped,
    })
}

/// Places guests one after another, each counted on its node before the next is placed (an
/// evacuation's destinations are decided up front, in the order given).
pub fn place_all(nodes: &[NodeLoad], needs: &[Need]) -> Vec<Result<Choice, NoRoom>> {
    let mut nodes = nodes.to_vec();
    needs
        .iter()
        .map(|need| {
            let choice = place(&nodes, need)?;
            for n in nodes.iter_mut() {
                if n.name == choice.node {
                    n.guests.push((need.guest.to_string(), need.memory));
                    n.available_mib = n.available_mib.map(|a| a.saturating_sub(u64::from(need.memory)));
                }
                if Some(n.name.as_str()) == need.leaving {
                    n.guests.retain(|(g, _)| g != need.guest);
                }
            }
            Ok(choice)
        })
        .collect()
}

/// The probe placement runs on every hardware node: `total MiB`, `available MiB`, `cpus N`.
pub fn memory_script(h: Hypervisor) -> &'static str {
    match h {
        Hypervisor::Kvm => "awk '/^MemTotal:/ { print \"total\", int($2 / 1024) } /^MemAvailable:/ { print \"available\", int($2 / 1024) }' /proc/meminfo; echo \"cpus $(nproc)\"",
        Hypervisor::Xen => "xl info | sed -n 's/^total_memory *: */total /p; s/^free_memory *: */available /p; s/^nr_cpus *: */cpus /p'",
    }
}

/// What a node reported: (total MiB, available MiB).
pub type Reported = (Option<u64>, Option<u64>);

/// (total, available) from `memory_script`'s output.
pub fn parse_memory(out: &str) -> Reported {
    let mut total = None;
    let mut avail = None;
    for line in out.lines() {
        let mut f = line.split_whitespace();
        match (f.next(), f.next().and_then(|v| v.parse().ok())) {
            (Some("total"), Some(v)) => total = Some(v),
            (Some("available"), Some(v)) => avail = Some(v),
            _ => {}
        }
    }
    (total, avail)
}

/// The CPU count from `memory_script`'s output.
pub fn parse_cpus(out: &str) -> Option<u32> {
    out.lines()
        .find_map(|l| l.strip_prefix("cpus ").and_then(|n| n.trim().parse().ok()))
}

/// Loads from the inventory and each hardware node's probe answer (`None`: it did not answer).
pub fn loads(inv: &Inventory, answers: &[(String, Option<Reported>)]) -> Vec<NodeLoad> {
    inv.node
        .iter()
        .filter(|n| n.role == Role::Hnode)
        .map(|n| {
            let name = n.name.get_ref().to_string();
            let answer = answers.iter().find(|(a, _)| *a == name).and_then(|(_, m)| *m);
            let (total, available) = answer.unwrap_or((None, None));
            NodeLoad {
                hypervisor: super::hnode::hypervisor(inv, n),
                drained: n.drained,
                up: answer.is_some(),
                capacity_mib: n.memory.map(u64::from).or(total),
                available_mib: available,
                guests: inv
                    .instance
                    .iter()
                    .filter(|i| i.hnode.get_ref().as_str() == name)
                    .map(|i| (i.name.get_ref().to_string(), i.memory))
                    .collect(),
                name,
            }
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An up KVM node with `cap` MiB, all of it free, and `guests` (name, MiB) recorded on it.
    pub(crate) fn node(name: &str, cap: u64, guests: &[(&str, u32)]) -> NodeLoad {
        NodeLoad {
            name: name.into(),
            hypervisor: Hypervisor::Kvm,
            drained: false,
            up: true,
            capacity_mib: Some(cap),
            available_mib: Some(cap),
            guests: guests.iter().map(|(g, m)| (g.to_string(), *m)).collect(),
        }
    }

    fn need(memory: u32) -> Need<'static> {
        Need {
            guest: "new",
            memory,
            hypervisor: Hypervisor::Kvm,
            leaving: None,
        }
    }

    #[test]
    fn most_free_memory_after_recorded_guests_wins() {
        let nodes = [
            node("a", 4096, &[("g1", 2048)]),
            node("b", 4096, &[("g2", 512), ("g3", 512)]),
            node("c", 2048, &[]),
        ];
        let c = place(&nodes, &need(256)).unwrap();
        assert_eq!(c.node, "b");
        assert!(c.why.contains("3072 MiB") && c.why.contains("next c"), "{}", c.why);
        // a and c tie on 2048 MiB: c has fewer guests.
        assert_eq!(
            c.ranking.iter().map(|r| r.0.as_str()).collect::<Vec<_>>(),
            ["b", "c", "a"]
        );
    }

    #[test]
    fn ties_go_to_the_fewest_guests_then_the_name() {
        let nodes = [
            node("a", 4096, &[("g1", 512), ("g2", 512)]),
            node("b", 4096, &[("g3", 1024)]),
            node("c", 2048, &[]),
        ];
        let c = place(&nodes, &need(256)).unwrap();
        assert_eq!(c.node, "b");
        assert!(c.why.contains("fewest guests"), "{}", c.why);
        let nodes = [node("z", 4096, &[]), node("y", 4096, &[])];
        let c = place(&nodes, &need(256)).unwrap();
        assert_eq!(c.node, "y");
        assert!(c.why.contains("the name decides"), "{}", c.why);
    }

    #[test]
    fn drained_down_other_hypervisor_leaving_and_full_nodes_are_never_chosen() {
        let mut drained = node("a", 8192, &[]);
        drained.drained = true;
        let mut down = node("b", 8192, &[]);
        down.up = false;
        let mut xen = node("c", 8192, &[]);
        xen.hypervisor = Hypervisor::Xen;
        let source = node("d", 8192, &[("new", 256)]);
        let full = node("e", 1024, &[("g", 900)]);
        let mut busy = node("f", 8192, &[]);
        busy.available_mib = Some(100);
        let nodes = [drained, down, xen, source, full, busy, node("g", 512, &[])];
        let n = Need {
            leaving: Some("d"),
            ..need(256)
        };
        let c = place(&nodes, &n).unwrap();
        assert_eq!(c.node, "g");
        assert!(c.why.contains("only node"), "{}", c.why);
        assert_eq!(c.skipped.len(), 6);
        let err = place(&nodes[..6], &n).unwrap_err().to_string();
        for why in [
            "drained",
            "down",
            "runs xen",
            "leaving",
            "124 MiB left",
            "reports 100 MiB available",
        ] {
            assert!(err.contains(why), "{why}: {err}");
        }
    }

    #[test]
    fn placing_several_counts_each_before_the_next() {
        let nodes = [
            node("a", 4096, &[("x", 256), ("y", 256), ("z", 256)]),
            node("b", 2048, &[]),
            node("c", 2048, &[]),
        ];
        let needs: Vec<Need> = ["x", "y", "z"]
            .iter()
            .map(|g| Need {
                guest: g,
                memory: 256,
                hypervisor: Hypervisor::Kvm,
                leaving: Some("a"),
            })
            .collect();
        let got: Vec<String> = place_all(&nodes, &needs).into_iter().map(|c| c.unwrap().node).collect();
        assert_eq!(got, ["b", "c", "b"]);
    }

    #[test]
    fn memory_parses() {
        assert_eq!(
            parse_memory("total 24000\navailable 20000\n"),
            (Some(24000), Some(20000))
        );
        assert_eq!(parse_memory("garbage"), (None, None));
    }
}
