//! `cloudctl hnode drain|undrain`: the node's `drained` flag in the inventory (written
//! atomically under the inventory lock); placement skips a drained node.

use super::{lock, read, Context};
use crate::error::{Error, Exit};
use crate::exec::effect::LocalStep;
use crate::inventory::{self, Inventory, Role};
use crate::inventory_file;

/// The hardware node `name`, or an error naming the hardware nodes there are.
pub fn hnode<'a>(inv: &'a Inventory, name: &str) -> Result<&'a inventory::Node, Error> {
    inv.node
        .iter()
        .find(|n| n.name.get_ref().as_str() == name && n.role == Role::Hnode)
        .ok_or_else(|| {
            let known: Vec<&str> = inv
                .node
                .iter()
                .filter(|n| n.role == Role::Hnode)
                .map(|n| n.name.get_ref().as_str())
                .collect();
            Error::Usage(format!(
                "there is no hardware node named {} (hardware nodes: {})",
                crate::types::shown(name),
                if known.is_empty() {
                    "none".into()
                } else {
                    known.join(", ")
                }
            ))
        })
}

pub fn drain(ctx: &Context, name: &str, drained: bool) -> Result<Exit, Error> {
    let path = inventory::locate(ctx.inventory_path.as_deref())?;
    let _lock = lock(ctx, &path)?;
    let (text, inv) = read(&path)?;
    let node = hnode(&inv, name)?;
    let guests: Vec<String> = inv
        .instance
        .iter()
        .filter(|i| i.hnode.get_ref().as_str() == name)
        .map(|i| i.name.get_ref().to_string())
        .collect();
    let verb = if drained { "drain" } else { "undrain" };
    let changed = node.drained != drained;
    if changed {
        let new = inventory_file::set_node_drained(&text, name, drained)?
            .ok_or_else(|| Error::Usage(format!("{name} is not a [[node]] of {}", path.display())))?;
        if !ctx.dry_run {
            ctx.confirm(&format!("{verb} {name} in {}", path.display()))?;
        }
        ctx.apply_local(&[LocalStep::write_inventory(&path, &text, &new)])?;
    }
    crate::ui::hnode::drained(&ctx.ui, name, drained, changed, ctx.dry_run, &guests);
    Ok(Exit::Ok)
}
