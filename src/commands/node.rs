//! `cloudctl node add|remove|list`: the inventory's nodes and their DHCP/PXE entries on the
//! ConfigNode, changed together under the inventory lock.

use super::config::plan_confignode;
use super::{lock_inventory as lock, read_inventory as read, Context};
use crate::cli::{NodeAddArgs, NodeCommand};
use crate::error::{Error, Exit};
use crate::exec::effect::{LocalEffect, LocalStep};
use crate::inventory::{self, Inventory};
use crate::inventory_file;
use crate::plan::confignode::{boot_files, profile_of, Scope};
use crate::plan::node;
use crate::ui::node::Row;
use std::collections::BTreeSet;
use std::path::Path;

pub fn run(ctx: &Context, cmd: NodeCommand) -> Result<Exit, Error> {
    match cmd {
        NodeCommand::Add(args) => add(ctx, args),
        NodeCommand::Remove { name, degraded } => remove(ctx, &name, degraded),
        NodeCommand::List => list(ctx),
        NodeCommand::Boot(args) => super::hnode::boot(
            ctx,
            args,
            &[crate::inventory::Role::Hnode, crate::inventory::Role::Snode],
        ),
    }
}

fn requests(args: &NodeAddArgs) -> Result<Vec<node::NodeRequest>, Error> {
    if let Some(file) = &args.from {
        let text =
            std::fs::read_to_string(file).map_err(|e| Error::Usage(format!("--from {}: {e}", file.display())))?;
        return node::parse_csv(&file.display().to_string(), &text).map_err(Error::Usage);
    }
    let (Some(name), Some(mac)) = (&args.name, &args.mac) else {
        return Err(Error::Usage("node add needs NAME --mac MAC, or --from FILE".into()));
    };
    let r = node::request(name, mac, args.ip.as_deref(), Some(&args.role), args.profile.as_deref());
    Ok(vec![r.map_err(Error::Usage)?])
}

fn add(ctx: &Context, args: NodeAddArgs) -> Result<Exit, Error> {
    let requests = requests(&args)?;
    let path = inventory::locate(ctx.inventory_path.as_deref())?;
    let _lock = lock(ctx, &path)?;
    let (text, inv) = read(&path)?;
    let new = node::resolve(&inv, &requests).map_err(Error::Usage)?;
    let new_text = inventory_file::add_nodes(&text, &new)?;
    // Only the appended tables are parsed again: the file is the one `inv` came from plus them.
    let new_inv = inventory::with_appended_nodes(&path.display().to_string(), inv, &text, &new_text)?;
    let added: Vec<&str> = new.iter().map(|n| n.name.as_str()).collect();
    let names: BTreeSet<&str> = requests.iter().map(|r| r.name.as_str()).collect();
    let required = boot_files(&new_inv, |n| names.contains(n.name.get_ref().as_str()));
    // Only the requested nodes' entries are written; an identical re-add still repairs its own.
    converge_then_save(
        ctx,
        &path,
        (&text, &new_text),
        &new_inv,
        (&Scope::nodes(names), &required),
        &format!("add {}", describe(&added)),
        args.degraded,
    )
}

fn remove(ctx: &Context, name: &str, degraded: bool) -> Result<Exit, Error> {
    let path = inventory::locate(ctx.inventory_path.as_deref())?;
    let _lock = lock(ctx, &path)?;
    let (text, inv) = read(&path)?;
    let Some(new_text) = inventory_file::remove_node(&text, name)? else {
        let known: Vec<String> = inv.node.iter().map(|n| n.name.get_ref().to_string()).collect();
        return Err(Error::Usage(format!(
            "no node named {} in {} (nodes: {})",
            crate::types::shown(name),
            path.display(),
            known.join(", ")
        )));
    };
    let new_inv = inventory::parse(&path.display().to_string(), &new_text)?;
    let gone = inv.node.iter().find(|n| n.name.get_ref().as_str() == name);
    let scope = Scope::Nodes {
        write: Default::default(),
        remove: gone
            .and_then(|n| n.mac.as_ref())
            .map(|m| *m.get_ref())
            .into_iter()
            .collect(),
        forget: [name.to_string()].into(),
    };
    converge_then_save(
        ctx,
        &path,
        (&text, &new_text),
        &new_inv,
        (&scope, &[]),
        &format!("remove node {name}"),
        degraded,
    )
}

fn describe(names: &[&str]) -> String {
    match names {
        [] => "no new node (already in the inventory as given)".into(),
        [one] => format!("node {one}"),
        many => format!("{} nodes ({})", many.len(), many.join(", ")),
    }
}

/// Converges the ConfigNode to the edited inventory; the inventory write is a local effect the
/// flow applies only when that worked, so the file never names a node the ConfigNode refused.
/// The dry run shows the inventory diff too and writes nothing. `degraded`: one ConfigNode of a
/// pair may be down.
fn converge_then_save(
    ctx: &Context,
    path: &Path,
    (old, new): (&str, &str),
    inv: &Inventory,
    (scope, required): (&Scope, &[String]),
    what: &str,
    degraded: bool,
) -> Result<Exit, Error> {
    let mut plan = plan_confignode(ctx, inv, scope, required, degraded)?;
    plan.title = what.to_string();
    let write = (old != new).then(|| write_inventory(ctx, path, (old, new), what));
    ctx.converge_with(inv, &plan, write.as_slice(), |_| None)
}

/// Writing the edited inventory, as a step: its dry run shows the file's unified diff (not with
/// --json, whose stdout holds only the plan document).
fn write_inventory(ctx: &Context, path: &Path, (old, new): (&str, &str), what: &str) -> LocalStep {
    let name = path.display().to_string();
    let diff = similar::TextDiff::from_lines(old, new);
    let shown = format!("== inventory\n{}", diff.unified_diff().header(&name, &name));
    LocalStep {
        effect: LocalEffect::WriteInventory {
            path: path.to_path_buf(),
            old: old.to_string(),
            new: new.to_string(),
        },
        done: Some(format!("{name}: {what}")),
        would: (!ctx.ui.json).then(|| shown.strip_suffix('\n').unwrap_or(&shown).to_string()),
    }
}

fn list(ctx: &Context) -> Result<Exit, Error> {
    let (_, inv) = ctx.load_inventory()?;
    let rows: Vec<Row> = inv
        .node
        .iter()
        .map(|n| Row {
            name: n.name.get_ref().to_string(),
            role: n.role,
            mac: n.mac.as_ref().map(|m| m.get_ref().to_string()),
            ip: n.ip.as_ref().map(|i| i.get_ref().to_string()),
            profile: profile_of(&inv, n).map(|(p, _)| p),
            address: n.address.as_ref().map(|a| a.to_string()),
        })
        .collect();
    crate::ui::node::list(&ctx.ui, &rows);
    Ok(Exit::Ok)
}
