//! `cloudctl storage init|status`: the storage nodes' md + DRBD + AoE layer.

use super::Context;
use crate::cli::{StorageCommand, StorageInitArgs};
use crate::error::{Error, Exit};
use crate::inventory::storage::StorageSection;
use crate::inventory::Inventory;
use crate::plan::storage::{self, NodeFacts};

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
    let mut facts: [NodeFacts; 2] = Default::default();
    for (i, n) in nodes.iter().enumerate() {
        let host = inv.select(&[n.to_string()]).map_err(Error::Usage)?.remove(0);
        let out = ctx.gather(&inv, &host, &storage::facts_script(s))?;
        facts[i] = storage::parse_facts(&out, &storage::md_uuid(&inv, n.as_str(), s.md_device.as_str()));
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
                ctx.ui.confirm_typed(
                    &format!("{}: {d} holds data that --force-wipe will destroy", nodes[i]),
                    d,
                    ctx.yes,
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
    let script = storage::status_script(s);
    let mut rows = Vec::new();
    let mut exit = Exit::Ok;
    for n in s.nodes.get_ref() {
        let host = inv.select(&[n.to_string()]).map_err(Error::Usage)?.remove(0);
        let mut row = serde_json::Map::new();
        row.insert("node".into(), n.as_str().into());
        match ctx.gather(&inv, &host, &script) {
            Ok(out) => {
                let mut fields = std::collections::BTreeMap::new();
                for line in out.lines() {
                    if let Some((k, v)) = line.split_once(' ') {
                        fields.insert(k.replace('-', "_"), v.trim().to_string());
                    }
                }
                let problems = storage::status_problems(&fields);
                // The one severity order decides, whichever node came first.
                if !problems.is_empty() {
                    exit = exit.max(Exit::Failed);
                }
                for (k, v) in fields {
                    row.insert(k, v.into());
                }
                row.insert("healthy".into(), problems.is_empty().into());
                row.insert("problems".into(), problems.into());
            }
            Err(e) => {
                exit = exit.max(e.exit());
                row.insert("healthy".into(), false.into());
                row.insert("problems".into(), vec![format!("unreachable: {e}")].into());
                row.insert("error".into(), e.to_string().into());
            }
        }
        rows.push(serde_json::Value::Object(row));
    }
    if ctx.ui.json {
        ctx.ui
            .json_result(exit, serde_json::json!({ "command": "storage status", "nodes": rows }));
        return Ok(exit);
    }
    let cell = |r: &serde_json::Value, k: &str| r[k].as_str().unwrap_or("-").to_string();
    crate::outln!(
        "{:<12} {:<14} {:<10} {:<14} {:<22} {:<7} AOE",
        "NODE",
        "MD",
        "ROLE",
        "CONNECTION",
        "DISK",
        "SYNC"
    );
    for r in &rows {
        if let Some(e) = r["error"].as_str() {
            crate::outln!("{:<12} {e}", cell(r, "node"));
            continue;
        }
        crate::outln!(
            "{:<12} {:<14} {:<10} {:<14} {:<22} {:<7} {}",
            cell(r, "node"),
            cell(r, "md"),
            cell(r, "drbd_role"),
            cell(r, "drbd_cstate"),
            cell(r, "drbd_dstate"),
            cell(r, "drbd_sync"),
            cell(r, "aoe")
        );
    }
    for r in &rows {
        for p in r["problems"].as_array().into_iter().flatten() {
            ctx.ui
                .info(&format!("{}: {}", cell(r, "node"), p.as_str().unwrap_or_default()));
        }
    }
    if exit == Exit::Ok {
        ctx.ui
            .info("storage: healthy (both nodes connected, UpToDate, primary, exporting)");
    }
    Ok(exit)
}
