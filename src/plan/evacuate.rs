//! Planner for `hnode evacuate`: which guests leave the node, and where each goes (placement's
//! rule, decided for all of them up front so two guests never count on the same free memory);
//! what stays and why. Pure.

use super::instance::probe::GuestState;
use super::placement::{self, Choice, Need, NodeLoad};
use crate::inventory::Hypervisor;
use serde::Serialize;

/// A guest recorded on the node being evacuated.
#[derive(Debug, Clone, PartialEq)]
pub struct OnNode {
    pub name: String,
    pub memory: u32,
    pub hypervisor: Hypervisor,
    /// What the node reports of it (`None`: not there).
    pub state: Option<GuestState>,
}

impl OnNode {
    fn running(&self) -> bool {
        self.state == Some(GuestState::Running)
    }
    /// Paused, mid-migration or unknown: live, but not something to migrate.
    fn in_between(&self) -> bool {
        self.state.is_some_and(|s| s.is_live()) && !self.running()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Move {
    pub guest: String,
    pub to: String,
    pub why: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stays {
    pub guest: String,
    pub why: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Evacuation {
    pub node: String,
    /// In the order they are started: the largest guests first (they are the hardest to fit).
    pub moves: Vec<Move>,
    /// Running guests that cannot move (no node has room), and guests the node runs without a
    /// record: they keep running where they are.
    pub stuck: Vec<Stays>,
    /// Recorded there but not running: nothing to migrate.
    pub stopped: Vec<String>,
}

/// `unrecorded`: guests the node runs that the inventory does not record anywhere.
pub fn plan(node: &str, guests: &[OnNode], unrecorded: &[String], loads: &[NodeLoad]) -> Evacuation {
    let mut running: Vec<&OnNode> = guests.iter().filter(|g| g.running()).collect();
    running.sort_by(|a, b| b.memory.cmp(&a.memory).then(a.name.cmp(&b.name)));
    let needs: Vec<Need> = running
        .iter()
        .map(|g| Need {
            guest: &g.name,
            memory: g.memory,
            hypervisor: g.hypervisor,
            leaving: Some(node),
        })
        .collect();
    let mut e = Evacuation {
        node: node.into(),
        ..Evacuation::default()
    };
    for (g, placed) in running.iter().zip(placement::place_all(loads, &needs)) {
        match placed {
            Ok(Choice { node: to, why, .. }) => e.moves.push(Move {
                guest: g.name.clone(),
                to,
                why,
            }),
            Err(no) => e.stuck.push(Stays {
                guest: g.name.clone(),
                why: no.to_string(),
            }),
        }
    }
    for u in unrecorded {
        e.stuck.push(Stays {
            guest: u.clone(),
            why: format!(
                "it runs on {node} but is not in the inventory; record it or stop it by hand (`cloudctl instance list`)"
            ),
        });
    }
    for g in guests.iter().filter(|g| g.in_between()) {
        e.stuck.push(Stays {
            guest: g.name.clone(),
            why: format!(
                "it is {} on {node}, not running; see `cloudctl instance migrate {} --cleanup`",
                g.state.map_or("?", |s| s.as_str()),
                g.name
            ),
        });
    }
    e.stopped = guests
        .iter()
        .filter(|g| !g.running() && !g.in_between())
        .map(|g| g.name.clone())
        .collect();
    e
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::placement::tests::node as load;

    fn on(name: &str, memory: u32, running: bool) -> OnNode {
        OnNode {
            name: name.into(),
            memory,
            hypervisor: Hypervisor::Kvm,
            state: running.then_some(GuestState::Running),
        }
    }

    #[test]
    fn spreads_the_largest_first_and_names_what_stays() {
        let mut paused = on("p", 256, true);
        paused.state = Some(GuestState::Paused);
        let guests = [
            on("a", 256, true),
            on("b", 1024, true),
            on("c", 512, true),
            on("d", 256, false),
            on("big", 4096, true),
            paused,
        ];
        let mut h1 = load(
            "h1",
            8192,
            &[("a", 256), ("b", 1024), ("c", 512), ("d", 256), ("big", 4096)],
        );
        h1.drained = true;
        let loads = [h1, load("h2", 2048, &[]), load("h3", 1536, &[])];
        let e = plan("h1", &guests, &["ghost".into()], &loads);
        let moves: Vec<(&str, &str)> = e.moves.iter().map(|m| (m.guest.as_str(), m.to.as_str())).collect();
        // b (1024) to h2 (2048 free), c (512) to h3 (1536 > 1024 left on h2), a (256) to h3
        // (1024 left on both: fewer guests on h2... h2 has 1, h3 has 1: the name decides).
        assert_eq!(moves, [("b", "h2"), ("c", "h3"), ("a", "h2")]);
        assert_eq!(e.stuck.len(), 3);
        assert!(e.stuck[2].guest == "p" && e.stuck[2].why.contains("paused"));
        assert!(e.stuck[0].guest == "big" && e.stuck[0].why.contains("no hardware node can take big"));
        assert!(e.stuck[1].guest == "ghost" && e.stuck[1].why.contains("not in the inventory"));
        assert_eq!(e.stopped, ["d"]);
    }
}
