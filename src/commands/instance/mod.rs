//! `cloudctl instance create|list|start|stop|migrate|remove`: guests on the hardware nodes, and
//! the verbs that place and move them between nodes or need them gone (`hnode
//! drain|undrain|evacuate|poweroff`, `cloud rebalance`). This file holds what the verbs share
//! (asking the nodes where guests are) and the simple verbs.

mod create;
mod drain;
mod evacuate;
mod migrate;
mod place;
mod poweroff;
mod rebalance;
mod remove;

pub use drain::drain;
pub use evacuate::evacuate;
pub use poweroff::poweroff;
pub use rebalance::rebalance;

use super::wait::{self, Stage, Watch};
use super::{lock_inventory as lock, read_inventory as read, Context};
use crate::cli::{InstanceCommand, InstanceStopArgs};
use crate::error::{Error, Exit};
use crate::inventory::{Host, Inventory};
use crate::plan::fact::Fact;
use crate::plan::instance::probe::{self, GuestSeen, NodeFacts};
use crate::plan::instance::{self, backend, Guest};
use crate::plan::{HostPlan, Plan};
use crate::ui::instance as show;
use std::time::{Duration, Instant};

pub fn run(ctx: &Context, cmd: InstanceCommand) -> Result<Exit, Error> {
    match cmd {
        InstanceCommand::Create(args) => create::create(ctx, args),
        InstanceCommand::List => list(ctx),
        InstanceCommand::Start(a) => start(ctx, &a.name, a.wait.wait),
        InstanceCommand::Stop(a) => stop(ctx, a),
        InstanceCommand::Migrate(a) => migrate::migrate(ctx, a),
        InstanceCommand::Remove(a) => remove::remove(ctx, a),
    }
}

/// Asks every node `fact` at once; each node with its answer or the error it gave.
fn ask_all<F: Fact>(ctx: &Context, inv: &Inventory, nodes: &[Host], fact: &F) -> Vec<(Host, Result<F::Value, Error>)> {
    let answers = ctx.gather(inv, nodes, fact);
    nodes
        .iter()
        .cloned()
        .zip(answers)
        .map(|(h, a)| {
            let answer = a.unwrap_or_else(|| {
                Err(Error::Failed(anyhow::anyhow!(
                    "interrupted before {} was asked",
                    h.name
                )))
            });
            (h, answer)
        })
        .collect()
}

/// The guests every hardware node reports, by node.
fn where_guests_run(ctx: &Context, inv: &Inventory) -> Vec<(Host, Result<Vec<GuestSeen>, Error>)> {
    ask_all(ctx, inv, &instance::hnodes(inv), &probe::Guests(inv))
}

/// Facts from one node (see `probe::facts_script`).
fn node_facts(ctx: &Context, inv: &Inventory, node: &Host, script: String) -> Result<NodeFacts, Error> {
    ctx.ask(
        inv,
        node,
        &probe::NodeProbe {
            script,
            any_status: false,
        },
    )
}

/// Nodes where a copy of guest `name` holds memory, or an error if a node could not be asked
/// (a guest must never be started twice because a node did not answer).
fn live_copies(ctx: &Context, inv: &Inventory, name: &str) -> Result<Vec<(String, GuestSeen)>, Error> {
    let mut found = Vec::new();
    for (h, r) in where_guests_run(ctx, inv) {
        let seen = r.map_err(|e| {
            let message = format!("cannot ask {} which guests it runs ({e}); nothing was changed", h.name);
            e.not_asked(message)
        })?;
        found.extend(
            seen.into_iter()
                .filter(|s| s.name == name && s.state.is_live())
                .map(|s| (h.name.clone(), s)),
        );
    }
    Ok(found)
}

fn node_host(inv: &Inventory, name: &str) -> Result<Host, Error> {
    inv.select(&[name.to_string()])
        .map_err(Error::Usage)
        .map(|mut v| v.remove(0))
}

fn one_host_plan(title: String, host: Host, steps: Vec<crate::plan::Step>) -> Plan {
    Plan {
        title,
        hosts: vec![HostPlan {
            host,
            exclusive: true,
            steps,
        }],
        confirm: true,
        redact: Vec::new(),
    }
}

fn recorded_guest(inv: &Inventory, name: &str) -> Result<(Guest, Host), Error> {
    let rec = instance::record(inv, name)?;
    Ok((
        instance::recorded(inv, rec)?,
        node_host(inv, rec.hnode.get_ref().as_str())?,
    ))
}

fn list(ctx: &Context) -> Result<Exit, Error> {
    let (_, inv) = ctx.load_inventory()?;
    let seen = where_guests_run(ctx, &inv);
    let rows = show::rows(&inv, &seen);
    // A node not asked is unreachable, or a host-key refusal: the same codes as every command.
    let exit = seen
        .iter()
        .filter_map(|(_, r)| r.as_ref().err())
        .map(Error::not_asked_exit)
        .fold(Exit::Ok, Exit::max);
    show::list(&ctx.ui, &rows, &seen, exit);
    Ok(exit)
}

fn start(ctx: &Context, name: &str, wait: Option<u64>) -> Result<Exit, Error> {
    // Checked before anything is touched: the wait comes after the guest was started.
    if let Some(w) = wait {
        crate::commands::seconds("--wait", w)?;
    }
    let (_, inv) = ctx.load_inventory()?;
    let (g, host) = recorded_guest(&inv, name)?;
    let copies = live_copies(ctx, &inv, name)?;
    if let Some((node, s)) = copies.first() {
        return Err(Error::Usage(format!(
            "{name} is already {} on {node}; a second copy would corrupt its disk (see `cloudctl instance list`)",
            s.state.as_str()
        )));
    }
    let steps = backend(g.hypervisor).start_steps(&g);
    let plan = one_host_plan(format!("start instance {name} on {}", host.name), host.clone(), steps);
    let plan = GuestWatch::of(&g).shown(plan, &host, wait, ctx.dry_run);
    ctx.converge_then(&inv, &plan, |applied| {
        let secs = wait?;
        let started = Instant::now();
        Some(wait_for_guest(ctx, &inv, &g, &host, secs).map(|up| {
            show::up(&ctx.ui, name, up);
            if ctx.ui.json {
                ctx.ui.json_result(
                    Exit::Ok,
                    serde_json::json!({ "command": "instance start", "instance": name, "hnode": host.name,
                                        "up_after_seconds": started.elapsed().as_secs_f64(), "apply": applied }),
                );
            }
            Exit::Ok
        }))
    })
}

/// How a guest comes up, as its hardware node sees it (then SSH with its pinned key).
const GUEST_STAGES: [Stage; 1] = [Stage {
    key: "ping",
    what: "answers ping from its hardware node (its network is up)",
}];

/// How a guest is watched coming up from its hardware node: the guest as an SSH target, and the
/// probe its node runs.
pub struct GuestWatch {
    name: String,
    target: Host,
    probe: String,
}

impl GuestWatch {
    pub fn of(g: &Guest) -> GuestWatch {
        let ip = g.ip.to_string();
        GuestWatch {
            name: g.name.to_string(),
            probe: crate::shell::Script::new()
                .call("ping -c1 -W1", &[&ip], " >/dev/null 2>&1 && echo ping; exit 0")
                .build(),
            target: Host {
                name: g.name.to_string(),
                role: "instance",
                host: ip,
                port: 22,
            },
        }
    }

    pub fn watch<'a>(&'a self, hnode: &'a Host) -> Watch<'a> {
        Watch {
            name: &self.name,
            observer: hnode,
            setup: None,
            probe: self.probe.clone(),
            tools: &[crate::local_tools::PING],
            stages: &GUEST_STAGES,
            ssh_after: "ping",
            target: &self.target,
        }
    }

    /// `plan` as a dry run shows it: with the wait phase on `hnode` when there is one.
    pub fn shown(&self, plan: Plan, hnode: &Host, wait: Option<u64>, dry_run: bool) -> Plan {
        match wait {
            Some(secs) if dry_run => plan.then_wait(hnode, self.watch(hnode).step(Duration::from_secs(secs))),
            _ => plan,
        }
    }
}

/// `--wait`: until guest `g` on `hnode` answers SSH with its pinned host key; how long it took.
/// A timeout is exit 4, naming the last stage seen.
fn wait_for_guest(ctx: &Context, inv: &Inventory, g: &Guest, hnode: &Host, secs: u64) -> Result<Duration, Error> {
    let started = Instant::now();
    let guest = GuestWatch::of(g);
    wait::until_ssh(ctx, inv, &guest.watch(hnode), started, Duration::from_secs(secs))?;
    Ok(started.elapsed())
}

fn stop(ctx: &Context, args: InstanceStopArgs) -> Result<Exit, Error> {
    let (_, inv) = ctx.load_inventory()?;
    let (g, host) = recorded_guest(&inv, &args.name)?;
    let steps = backend(g.hypervisor).stop_steps(&g, args.grace);
    ctx.converge(
        &inv,
        &one_host_plan(format!("stop instance {} on {}", args.name, host.name), host, steps),
    )
}

#[cfg(test)]
mod tests {
    //! `instance start --wait` under `--dry-run`, host-free: the plan it shows holds the wait,
    //! and the only scripts that reach a host are the read-only probes before it.
    use super::*;
    use crate::exec::record::{Log, ScriptedConnector};
    use crate::exec::ScriptOutput;
    use std::sync::Arc;

    #[test]
    fn a_dry_run_of_start_with_wait_runs_no_wait() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cloud.toml");
        std::fs::copy(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/seed-lab.toml"), &path).unwrap();
        let log = Log::default();
        let connector = ScriptedConnector {
            log: log.clone(),
            connect: Arc::new(|_| Ok(())),
            // No guest runs anywhere.
            answer: Arc::new(|_, _| {
                Ok(ScriptOutput {
                    output: String::new(),
                    status: 0,
                })
            }),
        };
        let ctx = Context {
            inventory_path: Some(path),
            dry_run: true,
            yes: false,
            forks: 2,
            templates: None,
            ui: crate::ui::Ui::new(false, true, 0),
            hosts: Some(Arc::new(connector)),
            held: Default::default(),
        };
        assert_eq!(start(&ctx, "web1", Some(60)).unwrap(), Exit::Ok);
        let log = log.lock().unwrap();
        assert!(!log.is_empty(), "the guests were looked for");
        assert!(
            log.iter().all(|(_, s)| !s.contains("ping -c1")),
            "no wait probe ran: {log:?}"
        );
        // The plan shown holds the wait on the guest's node.
        let (_, inv) = ctx.load_inventory().unwrap();
        let (g, host) = recorded_guest(&inv, "web1").unwrap();
        let plan = one_host_plan("start".into(), host.clone(), backend(g.hypervisor).start_steps(&g));
        let shown = GuestWatch::of(&g).shown(plan, &host, Some(60), true);
        assert!(matches!(
            shown.hosts[0].steps.last(),
            Some(crate::plan::Step::WaitUntil(w)) if w.timeout_secs == 60 && w.what == "web1"
        ));
    }
}
