//! `cloudctl config init`: converge the ConfigNode (DHCP, TFTP, PXE tree) from the inventory.

use super::Context;
use crate::cli::ConfigCommand;
use crate::error::{Error, Exit};
use crate::inventory::Inventory;
use crate::plan::confignode::{self, Scope};

pub fn run(ctx: &Context, cmd: ConfigCommand) -> Result<Exit, Error> {
    match cmd {
        ConfigCommand::Init => {
            let (_, inv) = ctx.load_inventory()?;
            let plan = plan_confignode(ctx, &inv, &Scope::Init, &[])?;
            ctx.converge(&inv, &plan)
        }
    }
}

/// Probes the ConfigNode (read-only) and plans it. A missing boot file in `required` (the
/// profiles of nodes being added) refuses; others are only a warning — `config init` often runs
/// before the images are in place.
pub fn plan_confignode(
    ctx: &Context,
    inv: &Inventory,
    scope: &Scope,
    required: &[String],
) -> Result<crate::plan::Plan, Error> {
    let templates = ctx.templates()?;
    confignode::sections(inv)?;
    let host = inv.select(&["confignode".into()]).map_err(Error::Usage)?.remove(0);
    let facts = confignode::parse_facts(&ctx.gather(inv, &host, &confignode::facts_script(inv, scope)?)?);
    let describe = |files: &[&String]| {
        format!(
            "boot files named by the profiles are missing on the ConfigNode: {}; copy them there (under tftp_root) or fix [profiles]",
            files.iter().map(|f| f.as_str()).collect::<Vec<_>>().join(", ")
        )
    };
    let (refused, warned): (Vec<&String>, Vec<&String>) = facts.missing.iter().partition(|f| required.contains(f));
    if !refused.is_empty() {
        return Err(Error::Usage(describe(&refused)));
    }
    if !warned.is_empty() {
        ctx.ui.warn(&describe(&warned));
    }
    confignode::plan(inv, &templates, &facts, scope)
}
