//! `cloudctl storage init|status`: the storage nodes' md + DRBD + AoE layer.

use super::Context;
use crate::cli::{StorageCommand, StorageInitArgs};
use crate::error::{Error, Exit};
use crate::inventory::storage::StorageSection;
use crate::inventory::{Host, Inventory};
use crate::plan::storage::{self, NodeFacts};
use crate::plan::{storage_facts, storage_status};

pub fn run(ctx: &Context, cmd: StorageCommand) -> Result<Exit, Error> {
    match cmd {
        StorageCommand::Init(args) => init(ctx, args),
        StorageCommand::Status => status(ctx),
    }
}

fn section(inv: &Inventory) -> Result<&StorageSection, Error> {
    inv.storage.as_ref().map(|s| s.get_ref()).ok_or_else(|| {
        Error::Usage("the inventory has no [storage] section (nodes, disks, ...); see examples/seed-lab.toml".into())
    })
}

fn init(ctx: &Context, args: StorageInitArgs) -> Result<Exit, Error> {
    let (path, inv) = ctx.load_inventory()?;
    let s = section(&inv)?;
    let nodes = s.nodes.get_ref();
    if let Some(bad) = args
        .nodes
        .iter()
        .find(|n| !nodes.iter().any(|x| x.as_str() == n.as_str()))
    {
        return Err(Error::Usage(format!(
            "{bad} is not one of [storage] nodes ({}, {})",
            nodes[0], nodes[1]
        )));
    }
    if let Some(bad) = args
        .force_wipe
        .iter()
        .find(|d| !s.disks.get_ref().iter().any(|x| x.as_str() == d.as_str()))
    {
        return Err(Error::Usage(format!("--force-wipe {bad}: not one of [storage] disks")));
    }
    // Two inits at once must not generate two secrets and leave the nodes disagreeing: the
    // probe that finds (or not) the secret and the converge that writes it hold one lock.
    let _lock = super::lock_inventory(ctx, &path)?;
    // Both nodes are probed even when one is chosen: the DRBD resource names both.
    let hosts: Vec<Result<Host, Error>> = nodes
        .iter()
        .map(|n| Ok(inv.select(&[n.to_string()]).map_err(Error::Usage)?.remove(0)))
        .collect();
    let reachable: Vec<Host> = hosts.iter().filter_map(|h| h.as_ref().ok()).cloned().collect();
    let mut answers = ctx
        .gather(&inv, &reachable, &storage_facts::Probe { inv: &inv, section: s })
        .into_iter();
    let mut facts: [NodeFacts; 2] = Default::default();
    // In node order, the first problem ends the command: a node with no address, then one
    // that did not answer, then a wrong hostname.
    for (i, (n, host)) in nodes.iter().zip(hosts).enumerate() {
        host?;
        facts[i] = answers
            .next()
            .flatten()
            .ok_or_else(|| Error::Failed(anyhow::anyhow!("interrupted while probing the storage nodes")))??;
        if facts[i].hostname != n.as_str() {
            return Err(Error::Usage(format!(
                "{n} reports hostname {:?}: DRBD finds its `on` section by hostname, so the node's hostname must be {n}",
                facts[i].hostname
            )));
        }
    }
    let mut wipe: [Vec<String>; 2] = Default::default();
    for (i, n) in nodes.iter().enumerate() {
        if args.nodes.is_empty() || args.nodes.iter().any(|o| o == n.as_str()) {
            wipe[i] = storage::check_disks(n.as_str(), s, &facts[i], &args.force_wipe).map_err(Error::Usage)?;
        }
    }
    if !ctx.dry_run {
        for (i, disks) in wipe.iter().enumerate() {
            for d in disks {
                ctx.confirm_typed(
                    &format!("{}: {d} holds data that --force-wipe will destroy", nodes[i]),
                    d,
                )?;
            }
        }
    }
    let secret = match (&facts[0].secret, &facts[1].secret) {
        (Some(a), Some(b)) if a != b => {
            return Err(Error::Usage(format!(
                "the DRBD shared secrets of {} and {} differ; make {} the same on both (or remove one) and run again",
                nodes[0],
                nodes[1],
                format_args!("/etc/drbd.d/{}.res", s.resource)
            )))
        }
        (Some(a), _) | (None, Some(a)) => a.clone(),
        // 48 hex digits (192 bits): DRBD 8.4 refuses a shared secret of 64 characters or more
        // ("UnknownMandatoryTag: invalid attribute value").
        (None, None) => super::random_hex(24)?,
    };
    let plan = storage::plan(&inv, &ctx.templates()?, &facts, &wipe, &secret, &args.nodes)?;
    ctx.converge(&inv, &plan)
}

fn status(ctx: &Context) -> Result<Exit, Error> {
    let (_, inv) = ctx.load_inventory()?;
    let s = section(&inv)?;
    let mut hosts = Vec::new();
    for n in s.nodes.get_ref() {
        hosts.push(inv.select(&[n.to_string()]).map_err(Error::Usage)?.remove(0));
    }
    let answers = ctx.gather(&inv, &hosts, &storage_status::Status(s));
    let mut exit = Exit::Ok;
    let mut nodes = Vec::new();
    for (n, answer) in s.nodes.get_ref().iter().zip(answers) {
        // The one severity order decides, whichever node came first.
        let answer = answer.unwrap_or_else(|| {
            exit = exit.max(Exit::Interrupted);
            Err(Error::Failed(anyhow::anyhow!("interrupted before it was asked")))
        });
        exit = exit.max(match &answer {
            Ok(st) if st.problems.is_empty() => Exit::Ok,
            Ok(_) => Exit::Failed,
            Err(e) => e.exit(),
        });
        nodes.push((n.to_string(), answer));
    }
    crate::ui::storage::status(&ctx.ui, &nodes, exit);
    Ok(exit)
}

#[cfg(test)]
mod tests {
    //! `storage status` as a whole command, host-free: the scripted connector answers for the
    //! storage nodes; the exit code is the one severity order over what each node said.
    use super::*;
    use crate::exec::record::{Log, ScriptedConnector};
    use crate::exec::{HostError, ScriptOutput};
    use std::sync::Arc;

    const HEALTHY: &str = "md clean\ndrbd-role Primary/Primary\ndrbd-cstate Connected\ndrbd-dstate UpToDate/UpToDate\ndrbd-sync \naoe exporting\n";

    /// `storage status` on the seed lab whose snode1 prints `snode1` and snode2 `snode2`
    /// (`None`: unreachable); its exit code and the nodes asked.
    fn status_with(snode1: Option<&'static str>, snode2: Option<&'static str>) -> (Exit, Vec<String>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cloud.toml");
        std::fs::write(&path, include_str!("../../examples/seed-lab.toml")).unwrap();
        let answer = move |name: &str| if name == "snode1" { snode1 } else { snode2 };
        let log = Log::default();
        let connector = ScriptedConnector {
            log: log.clone(),
            connect: Arc::new(move |name| match answer(name) {
                Some(_) => Ok(()),
                None => Err(HostError::Unreachable(format!("{name}: connection refused"))),
            }),
            answer: Arc::new(move |name, _| {
                Ok(ScriptOutput {
                    output: answer(name).unwrap_or_default().into(),
                    status: 0,
                })
            }),
        };
        let ctx = Context {
            inventory_path: Some(path),
            yes: false,
            ..Context::for_test(crate::ui::Ui::new(true, true, 0), Some(Arc::new(connector)))
        };
        let exit = status(&ctx).unwrap();
        let mut asked: Vec<String> = log.lock().unwrap().iter().map(|(h, _)| h.clone()).collect();
        asked.sort();
        (exit, asked)
    }

    #[test]
    fn both_nodes_are_read_and_one_down_does_not_hide_the_other() {
        assert_eq!(
            status_with(Some(HEALTHY), Some(HEALTHY)),
            (Exit::Ok, vec!["snode1".into(), "snode2".into()])
        );
        assert_eq!(
            status_with(Some(HEALTHY), None),
            (Exit::Unreachable, vec!["snode1".into()])
        );
        // A node with a problem outranks one that did not answer, whichever comes first.
        assert_eq!(
            status_with(None, Some("md absent\n")),
            (Exit::Failed, vec!["snode2".into()])
        );
    }
}
