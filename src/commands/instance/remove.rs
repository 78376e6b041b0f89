//! `cloudctl instance remove`: the guest stopped on its node, its folder deleted only when it
//! carries the recorded create mark, then its record dropped from the inventory.

use super::{live_copies, lock, read, recorded_guest, Context};
use crate::cli::InstanceRemoveArgs;
use crate::error::{Error, Exit};
use crate::exec::effect::LocalStep;
use crate::inventory;
use crate::inventory_file;
use crate::plan::instance::{self, remove};
use crate::ui::instance as show;

pub fn remove(ctx: &Context, args: InstanceRemoveArgs) -> Result<Exit, Error> {
    let path = inventory::locate(ctx.inventory_path.as_deref())?;
    let _lock = lock(ctx, &path)?;
    let (text, inv) = read(&path)?;
    let name = args.name.as_str();
    let (g, node) = recorded_guest(&inv, name)?;
    let nonce = instance::record(&inv, name)?
        .nonce
        .as_ref()
        .map(|n| n.get_ref().clone());
    // Every node is asked (an unreachable one ends the command, exit 4): a copy running where
    // the inventory does not say would keep using the disk this command deletes.
    let elsewhere: Vec<String> = live_copies(ctx, &inv, name)?
        .into_iter()
        .filter(|(n, _)| *n != node.name)
        .map(|(n, s)| format!("{} on {n}", s.state.as_str()))
        .collect();
    if !elsewhere.is_empty() {
        return Err(Error::Usage(format!(
            "cannot remove {name}; nothing was changed: it is recorded on {} but {} ({}); run `cloudctl instance migrate {name} --cleanup` first",
            node.name,
            if elsewhere.len() == 1 { "has a copy" } else { "has copies" },
            elsewhere.join(", ")
        )));
    }
    let facts = ctx.ask(&inv, &node, &remove::Folder(&g))?;
    let disk = remove::decide(&g, nonce.as_deref(), &facts, args.keep_disk)
        .map_err(|why| Error::Usage(format!("cannot remove {name}; nothing was changed: {why}")))?;
    let plan = remove::plan(&g, &node, &disk, nonce.as_deref(), args.grace);
    let new_text = inventory_file::remove_instance(&text, name)?
        .ok_or_else(|| Error::Usage(format!("{name} is not an [[instance]] of {}", path.display())))?;
    show::removal(&ctx.ui, name, &node.name, &g.dir, &disk);
    let connector = ctx.connector(&inv);
    let limits = ctx.limits(&inv);
    let write = LocalStep::write_inventory(&path, &text, &new_text);
    if ctx.dry_run {
        ctx.apply_local(std::slice::from_ref(&write))?;
        return ctx.preview(&connector, &limits, &plan);
    }
    ctx.confirm_typed(&format!("{} ({})", plan.title, show::disk_fate(&g.dir, &disk)), name)?;
    let (reports, exit) = ctx.apply(&connector, &limits, &plan);
    if exit != Exit::Ok {
        crate::ui::report::apply(&ctx.ui, &plan.title, &reports, exit);
        ctx.ui
            .warn(&format!("{name} stays in the inventory: removing it did not finish"));
        return Ok(exit);
    }
    ctx.apply_local(std::slice::from_ref(&write))?;
    show::removed(&ctx.ui, name, &node.name, &g.dir, &disk, &reports);
    Ok(Exit::Ok)
}
