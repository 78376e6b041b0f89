//! `cloudctl cloud rebalance`: the hardware nodes' load from the inventory and their probes, the
//! greedy plan of `plan::rebalance`, shown (a dry run stops there), then its moves one by one
//! through `instance migrate`'s path, and the score measured again from the inventory.

use super::migrate::{migrate_one, Options, Outcome, Shared};
use super::{lock, place, read, Context};
use crate::cli::CloudRebalanceArgs;
use crate::error::{Error, Exit};
use crate::inventory::{self, Inventory, Role};
use crate::plan::node_memory::NodeMemory;
use crate::plan::rebalance::{self, Guest, Node};
use crate::ui::rebalance as show;
use std::time::Instant;

pub fn rebalance(ctx: &Context, args: CloudRebalanceArgs) -> Result<Exit, Error> {
    let limit = crate::commands::seconds("--timeout", args.timeout)?;
    crate::local_tools::require(&[crate::local_tools::SSH_KEYGEN])?;
    let path = inventory::locate(ctx.inventory_path.as_deref())?;
    // Held for the whole run: the migrations record their guests under it.
    let _lock = lock(ctx, &path)?;
    let (_, inv) = read(&path)?;
    let answers = place::answers(ctx, &inv);
    let plan = rebalance::plan(&nodes(&inv, &answers), args.max_moves);
    show::plan(&ctx.ui, &plan);
    if ctx.dry_run || plan.moves.is_empty() {
        show::done(&ctx.ui, &plan, &[], None, ctx.dry_run, Exit::Ok);
        return Ok(Exit::Ok);
    }
    ctx.confirm(&format!(
        "rebalance: {} live migration(s), score {:.4} → {:.4}",
        plan.moves.len(),
        plan.score_before,
        plan.score_after
    ))?;
    let opts = Options {
        unencrypted: false,
        max_bandwidth: None,
        limit,
        confirm: false,
    };
    let shared = Shared::default();
    let started = Instant::now();
    let mut done = Vec::new();
    let mut exit = Exit::Ok;
    for m in &plan.moves {
        // Each move was planned on top of the ones before it: after a failure, stop.
        let outcome = match migrate_one(ctx, &path, &inv, &m.guest, &m.to, &opts, &shared) {
            Ok(Outcome::Moved(moved)) if moved.left.is_none() => Ok(moved),
            Ok(Outcome::Moved(moved)) => Err(format!("a copy is still on {}", moved.from)),
            Ok(Outcome::NotMoved(n)) => {
                exit = n.exit.max(Exit::Failed);
                Err(n.why)
            }
            Ok(Outcome::Previewed(_)) => Err("previewed".into()),
            Err(e) => Err(e.to_string()),
        };
        let failed = outcome.is_err();
        done.push((m.guest.clone(), m.to.clone(), outcome.map(|o| o.elapsed.as_secs_f64())));
        if failed {
            if exit == Exit::Ok {
                exit = Exit::Failed;
            }
            break;
        }
    }
    // Measured again from the inventory as the moves left it, with the same node figures.
    let (_, now) = read(&path)?;
    let measured = rebalance::score(&nodes(&now, &answers));
    show::done(&ctx.ui, &plan, &done, Some((measured, started.elapsed())), false, exit);
    Ok(exit)
}

/// Every hardware node with its recorded guests, its room and CPUs as it reported them.
fn nodes(inv: &Inventory, answers: &[(String, Option<NodeMemory>)]) -> Vec<Node> {
    inv.node
        .iter()
        .filter(|n| n.role == Role::Hnode)
        .map(|n| {
            let name = n.name.get_ref().to_string();
            let out = answers.iter().find(|(a, _)| *a == name).and_then(|(_, m)| *m);
            let total = out.and_then(|m| m.reported.0);
            Node {
                hypervisor: crate::plan::hnode::hypervisor(inv, n),
                eligible: out.is_some() && !n.drained,
                capacity_mib: n.memory.map(u64::from).or(total).unwrap_or(0),
                cpus: out.and_then(|m| m.cpus).unwrap_or(1),
                guests: inv
                    .instance
                    .iter()
                    .filter(|i| i.hnode.get_ref().as_str() == name)
                    .map(|i| Guest {
                        name: i.name.get_ref().to_string(),
                        memory: i.memory,
                        vcpus: i.vcpus,
                    })
                    .collect(),
                name,
            }
        })
        .collect()
}
