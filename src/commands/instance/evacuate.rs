//! `cloudctl hnode evacuate`: the node drained, every running guest live-migrated off it to
//! where placement puts it (decided up front), a bounded number at a time, each by
//! `instance migrate`'s own path; the report names every guest and where it is now.

use super::migrate::{migrate_one, Options, Outcome, Shared};
use super::{drain, lock, place, read, where_guests_run, Context};
use crate::cli::HnodeEvacuateArgs;
use crate::error::{Error, Exit};
use crate::exec::effect::LocalStep;
use crate::exec::INTERRUPTED;
use crate::inventory::{self, Inventory};
use crate::inventory_file;
use crate::plan::evacuate::{self, Evacuation, Move, OnNode};
use crate::plan::instance::migrate::NotMoved;
use crate::plan::instance::probe::GuestState;
use crate::plan::instance::{self as guests, hypervisor_of};
use crate::ui::hnode::{self as show, GuestOutcome};
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Mutex;
use std::time::Instant;

pub fn evacuate(ctx: &Context, args: HnodeEvacuateArgs) -> Result<Exit, Error> {
    let limit = crate::commands::seconds("--timeout", args.timeout)?;
    crate::local_tools::require(&[crate::local_tools::SSH_KEYGEN])?;
    let path = inventory::locate(ctx.inventory_path.as_deref())?;
    // Held for the whole evacuation: the migrations record their guests under it.
    let _lock = lock(ctx, &path)?;
    let (text, inv) = read(&path)?;
    let name = args.name.as_str();
    let was_drained = drain::hnode(&inv, name)?.drained;
    let e = plan(ctx, &inv, name)?;
    show::evacuation_plan(&ctx.ui, &e);
    if ctx.dry_run {
        ctx.ui.info("dry run: nothing was changed");
        show::evacuated(&ctx.ui, &e, &[], std::time::Duration::ZERO, true, Exit::Ok);
        return Ok(Exit::Ok);
    }
    ctx.confirm(&format!(
        "evacuate {name}: mark it drained and live-migrate {} guest(s), {} at a time",
        e.moves.len(),
        args.parallel
    ))?;
    if !was_drained {
        if let Some(new) = inventory_file::set_node_drained(&text, name, true)? {
            ctx.apply_local(&[LocalStep::write_inventory(&path, &text, &new)])?;
        }
        ctx.ui
            .info(&format!("{name} is now drained: placement puts no guest on it"));
    }
    let started = Instant::now();
    let results = run_moves(ctx, &path, &inv, &e.moves, args.parallel.into(), limit);
    let wall = started.elapsed();
    let shown: Vec<GuestOutcome> = results
        .iter()
        .map(|r| match r {
            Done::Moved(m) => GuestOutcome::Moved(m),
            Done::Stayed(n) => GuestOutcome::Stayed(n),
            Done::NotStarted(g) => GuestOutcome::NotStarted(g),
        })
        .collect();
    let exit = exit_of(&results, &e);
    show::evacuated(&ctx.ui, &e, &shown, wall, false, exit);
    Ok(exit)
}

/// What every hardware node reports, the records and the loads, through the pure planner.
fn plan(ctx: &Context, inv: &Inventory, name: &str) -> Result<Evacuation, Error> {
    let seen = where_guests_run(ctx, inv);
    let here = seen
        .into_iter()
        .find(|(h, _)| h.name == name)
        .ok_or_else(|| {
            Error::Usage(format!(
                "{name} has neither `ip` nor `address`: cloudctl cannot reach it"
            ))
        })?
        .1
        .map_err(|e| {
            let message = format!("cannot ask {name} which guests it runs ({e}); nothing was changed");
            e.not_asked(message)
        })?;
    let hypervisor = hypervisor_of(inv, name)?;
    let on_node: Vec<OnNode> = inv
        .instance
        .iter()
        .filter(|r| r.hnode.get_ref().as_str() == name)
        .map(|r| OnNode {
            name: r.name.get_ref().to_string(),
            memory: r.memory,
            hypervisor,
            state: here
                .iter()
                .find(|s| s.name == r.name.get_ref().as_str())
                .map(|s| s.state),
        })
        .collect();
    let unrecorded: Vec<String> = here
        .iter()
        .filter(|s| s.state.is_live() && guests::record(inv, &s.name).is_err())
        .map(|s| s.name.clone())
        .collect();
    Ok(evacuate::plan(name, &on_node, &unrecorded, &place::loads(ctx, inv)))
}

enum Done {
    Moved(crate::plan::instance::migrate::Moved),
    Stayed(NotMoved),
    NotStarted(String),
}

/// Runs the moves, `parallel` at a time, in the plan's order; once interrupted, no new one starts.
fn run_moves(
    ctx: &Context,
    path: &std::path::Path,
    inv: &Inventory,
    moves: &[Move],
    parallel: usize,
    limit: std::time::Duration,
) -> Vec<Done> {
    let queue: Mutex<VecDeque<(usize, &Move)>> = Mutex::new(moves.iter().enumerate().collect());
    let done: Mutex<Vec<(usize, Done)>> = Mutex::new(Vec::new());
    let shared = Shared::default();
    let opts = Options {
        unencrypted: false,
        max_bandwidth: None,
        limit,
        confirm: false,
    };
    std::thread::scope(|s| {
        for _ in 0..parallel.min(moves.len()) {
            s.spawn(|| loop {
                if INTERRUPTED.load(Ordering::SeqCst) {
                    break;
                }
                let next = queue.lock().unwrap_or_else(|e| e.into_inner()).pop_front();
                let Some((i, m)) = next else { break };
                let outcome = match migrate_one(ctx, path, inv, &m.guest, &m.to, &opts, &shared) {
                    Ok(Outcome::Moved(moved)) => Done::Moved(moved),
                    Ok(Outcome::NotMoved(n)) => Done::Stayed(n),
                    Ok(Outcome::Previewed(_)) => continue,
                    // Refused before anything moved: it still runs where it was.
                    Err(err) => Done::Stayed(NotMoved {
                        guest: m.guest.clone(),
                        source: inv
                            .instance
                            .iter()
                            .find(|r| r.name.get_ref().as_str() == m.guest)
                            .map(|r| r.hnode.get_ref().to_string())
                            .unwrap_or_default(),
                        why: err.to_string(),
                        state_on_source: Some(GuestState::Running),
                        exit: err.exit(),
                    }),
                };
                done.lock().unwrap_or_else(|e| e.into_inner()).push((i, outcome));
            });
        }
    });
    let mut done = done.into_inner().unwrap_or_else(|e| e.into_inner());
    for (i, m) in queue.into_inner().unwrap_or_else(|e| e.into_inner()) {
        done.push((i, Done::NotStarted(m.guest.clone())));
    }
    done.sort_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, d)| d).collect()
}

/// 0 when every running guest left; 130 when interrupted; otherwise 1 (a guest stayed).
fn exit_of(results: &[Done], e: &Evacuation) -> Exit {
    if results.iter().any(|r| matches!(r, Done::NotStarted(_)))
        || results
            .iter()
            .any(|r| matches!(r, Done::Stayed(n) if n.exit == Exit::Interrupted))
    {
        return Exit::Interrupted;
    }
    let all_moved = results.iter().all(|r| matches!(r, Done::Moved(m) if m.left.is_none()));
    if all_moved && e.stuck.is_empty() {
        Exit::Ok
    } else {
        Exit::Failed
    }
}
