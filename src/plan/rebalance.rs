//! Planner for `cloud rebalance` (the idea of Ganeti's hbal): a score for how unevenly the
//! hardware nodes are loaded, and greedy moves that lower it, one at a time, up to a limit. Pure.
//!
//! The score is the standard deviation of the nodes' memory load (MiB of recorded guests over
//! the MiB the node has for guests) plus that of their vCPU load (recorded guests' vCPUs over
//! the node's CPUs), over the nodes that may take guests (answered, not drained). 0 is perfectly
//! even. Each step tries every guest on every other node of its hypervisor where it fits
//! (placement's room rule) and keeps the move that lowers the score most; it stops when no move
//! lowers it, or at the move limit.

use crate::inventory::Hypervisor;
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Node {
    pub name: String,
    pub hypervisor: Hypervisor,
    /// Answered and not drained: it may take guests, and counts in the score.
    pub eligible: bool,
    pub capacity_mib: u64,
    pub cpus: u32,
    pub guests: Vec<Guest>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Guest {
    pub name: String,
    pub memory: u32,
    pub vcpus: u8,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Move {
    pub guest: String,
    pub from: String,
    pub to: String,
    /// The score once this move (and the ones before it) is done.
    pub score_after: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rebalance {
    pub score_before: f64,
    pub score_after: f64,
    pub moves: Vec<Move>,
}

fn stddev(xs: &[f64]) -> f64 {
    if xs.is_empty() {
        return 0.0;
    }
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt()
}

fn mem_used(n: &Node) -> u64 {
    n.guests.iter().map(|g| u64::from(g.memory)).sum()
}

/// The imbalance of `nodes` (see the module's comment).
pub fn score(nodes: &[Node]) -> f64 {
    let eligible: Vec<&Node> = nodes.iter().filter(|n| n.eligible && n.capacity_mib > 0).collect();
    let mem: Vec<f64> = eligible
        .iter()
        .map(|n| mem_used(n) as f64 / n.capacity_mib as f64)
        .collect();
    let cpu: Vec<f64> = eligible
        .iter()
        .map(|n| n.guests.iter().map(|g| f64::from(g.vcpus)).sum::<f64>() / f64::from(n.cpus.max(1)))
        .collect();
    // Rounded so that the score a plan promises and the one measured afterwards compare equal.
    ((stddev(&mem) + stddev(&cpu)) * 1e9).round() / 1e9
}

/// Moves lowering the score, greedy, at most `max_moves`.
pub fn plan(nodes: &[Node], max_moves: usize) -> Rebalance {
    let mut nodes = nodes.to_vec();
    let before = score(&nodes);
    let mut current = before;
    let mut moves = Vec::new();
    while moves.len() < max_moves {
        let mut best: Option<(f64, usize, usize, usize)> = None;
        for (from, src) in nodes.iter().enumerate() {
            for (gi, g) in src.guests.iter().enumerate() {
                for (to, dst) in nodes.iter().enumerate() {
                    let fits = to != from
                        && dst.eligible
                        && dst.hypervisor == src.hypervisor
                        && dst.capacity_mib.saturating_sub(mem_used(dst)) >= u64::from(g.memory);
                    if !fits {
                        continue;
                    }
                    let mut trial = nodes.clone();
                    let moved = trial[from].guests.remove(gi);
                    trial[to].guests.push(moved);
                    let s = score(&trial);
                    if s < current && best.map_or(true, |(b, ..)| s < b) {
                        best = Some((s, from, gi, to));
                    }
                }
            }
        }
        let Some((s, from, gi, to)) = best else { break };
        let g = nodes[from].guests.remove(gi);
        moves.push(Move {
            guest: g.name.clone(),
            from: nodes[from].name.clone(),
            to: nodes[to].name.clone(),
            score_after: s,
        });
        nodes[to].guests.push(g);
        current = s;
    }
    Rebalance {
        score_before: before,
        score_after: current,
        moves,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, guests: &[(&str, u32)]) -> Node {
        Node {
            name: name.into(),
            hypervisor: Hypervisor::Kvm,
            eligible: true,
            capacity_mib: 4096,
            cpus: 4,
            guests: guests
                .iter()
                .map(|(g, m)| Guest {
                    name: g.to_string(),
                    memory: *m,
                    vcpus: 1,
                })
                .collect(),
        }
    }

    #[test]
    fn all_guests_on_one_node_are_spread_and_the_score_drops_to_what_the_plan_says() {
        let nodes = [
            node("h1", &[("a", 512), ("b", 512), ("c", 512)]),
            node("h2", &[]),
            node("h3", &[]),
        ];
        let r = plan(&nodes, 10);
        assert_eq!(r.moves.len(), 2, "{r:?}");
        assert!(r.score_before > 0.0);
        assert_eq!(r.score_after, 0.0, "one guest per node is even");
        assert_eq!(r.moves.last().unwrap().score_after, r.score_after);
        // Applying the moves gives the promised score.
        let mut after = nodes.to_vec();
        for m in &r.moves {
            let from = after.iter().position(|n| n.name == m.from).unwrap();
            let gi = after[from].guests.iter().position(|g| g.name == m.guest).unwrap();
            let g = after[from].guests.remove(gi);
            after.iter_mut().find(|n| n.name == m.to).unwrap().guests.push(g);
        }
        assert_eq!(score(&after), r.score_after);
        assert_eq!(plan(&after, 10).moves, vec![], "a balanced cloud needs no move");
    }

    #[test]
    fn the_move_limit_drained_nodes_and_room_are_respected() {
        let mut drained = node("h3", &[]);
        drained.eligible = false;
        let nodes = [
            node("h1", &[("a", 512), ("b", 512), ("c", 512), ("d", 512)]),
            node("h2", &[]),
            drained,
        ];
        let r = plan(&nodes, 1);
        assert_eq!(r.moves.len(), 1);
        assert!(r.moves.iter().all(|m| m.to == "h2"));
        let full = plan(
            &[node("h1", &[("big", 4000), ("x", 64)]), node("h2", &[("y", 4000)])],
            10,
        );
        assert!(full.moves.iter().all(|m| m.guest != "big"), "{full:?}");
    }
}
