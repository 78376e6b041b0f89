//! `cloudctl config init|status`: converge the ConfigNode or pair (DHCP, TFTP, PXE tree, VRRP)
//! from the inventory, and report how the pair stands.

use super::Context;
use crate::cli::ConfigCommand;
use crate::error::{Error, Exit};
use crate::inventory::Inventory;
use crate::plan::confignode::{self, Scope};
use crate::plan::confignode_facts;
use crate::plan::confignode_status as status;
use std::collections::BTreeSet;

pub fn run(ctx: &Context, cmd: ConfigCommand) -> Result<Exit, Error> {
    match cmd {
        ConfigCommand::Init => {
            let (_, inv) = ctx.load_inventory()?;
            let plan = plan_confignode(ctx, &inv, &Scope::Init, &[], false)?;
            ctx.converge(&inv, &plan)
        }
        ConfigCommand::Status => status(ctx),
    }
}

/// Probes every ConfigNode (read-only, in parallel), in `confignode::hosts` order. One of a
/// pair that does not answer refuses the whole change (exit 4, nothing touched), unless
/// `degraded`: then its place is `None` and the other is changed alone (`config init` brings
/// the missing one level when it is back).
pub fn probe_confignodes(
    ctx: &Context,
    inv: &Inventory,
    scope: &Scope,
    degraded: bool,
) -> Result<Vec<Option<confignode::Facts>>, Error> {
    confignode::sections(inv)?;
    let hosts = confignode::hosts(inv)?;
    let answers = ctx.gather(inv, &hosts, &confignode_facts::Probe::new(inv, scope)?);
    let mut facts = Vec::new();
    let mut down = Vec::new();
    for (host, answer) in hosts.iter().zip(answers) {
        match answer {
            Some(Ok(f)) => facts.push(Some(f)),
            // Only one of a pair may be left out, never the only ConfigNode.
            Some(Err(Error::Unreachable(why))) if hosts.len() > 1 => {
                down.push((host.name.clone(), why));
                facts.push(None);
            }
            Some(Err(e)) => return Err(e),
            None => {
                return Err(Error::Failed(anyhow::anyhow!(
                    "interrupted while probing the ConfigNodes"
                )))
            }
        }
    }
    if !down.is_empty() {
        let names: Vec<&str> = down.iter().map(|(n, _)| n.as_str()).collect();
        let why: Vec<&str> = down.iter().map(|(_, w)| w.as_str()).collect();
        if down.len() == hosts.len() {
            return Err(Error::Unreachable(format!(
                "both ConfigNodes are unreachable, nothing was changed: {}",
                why.join("; ")
            )));
        }
        if !degraded {
            return Err(Error::Unreachable(format!(
                "ConfigNode {} is unreachable, nothing was changed: {}. Bring it back and run again, or pass --degraded to change the other ConfigNode alone (`cloudctl config init` brings it level when it is back; `cloudctl config status` shows which one is behind)",
                names.join(", "),
                why.join("; ")
            )));
        }
        ctx.ui.warn(&format!(
            "--degraded: ConfigNode {} is unreachable and is left behind; run `cloudctl config init` when it is back",
            names.join(", ")
        ));
    }
    Ok(facts)
}

/// Probes every ConfigNode (see `probe_confignodes`) and plans them. A missing boot file in
/// `required` (the profiles of nodes being added) refuses; others are only a warning —
/// `config init` often runs before the images are in place.
pub fn plan_confignode(
    ctx: &Context,
    inv: &Inventory,
    scope: &Scope,
    required: &[String],
    degraded: bool,
) -> Result<crate::plan::Plan, Error> {
    let templates = ctx.templates()?;
    let facts = probe_confignodes(ctx, inv, scope, degraded)?;
    let missing: BTreeSet<&String> = facts.iter().flatten().flat_map(|f| &f.missing).collect();
    let describe = |files: &[&String]| {
        format!(
            "boot files named by the profiles are missing on the ConfigNode: {}; copy them there (under tftp_root) or fix [profiles]",
            files.iter().map(|f| f.as_str()).collect::<Vec<_>>().join(", ")
        )
    };
    let (refused, warned): (Vec<&String>, Vec<&String>) = missing.into_iter().partition(|f| required.contains(f));
    if !refused.is_empty() {
        return Err(Error::Usage(describe(&refused)));
    }
    if !warned.is_empty() {
        ctx.ui.warn(&describe(&warned));
    }
    confignode::plan_each(inv, &templates, &facts, scope)
}

/// `config status`: every ConfigNode probed read-only, in parallel, judged against the inventory.
fn status(ctx: &Context) -> Result<Exit, Error> {
    let (_, inv) = ctx.load_inventory()?;
    let hosts = confignode::hosts(&inv)?;
    let answers = ctx.gather(&inv, &hosts, &confignode_facts::Status::new(&inv)?);
    let answers = hosts
        .iter()
        .zip(answers)
        .map(|(h, a)| {
            let a = a.unwrap_or_else(|| Err(Error::Failed(anyhow::anyhow!("interrupted before it was asked"))));
            (h.name.clone(), a.map_err(|e| e.to_string()))
        })
        .collect();
    let report = status::judge(&inv, &ctx.templates()?, answers)?;
    let exit = report.exit();
    crate::ui::confignode::status(&ctx.ui, &report, exit);
    Ok(exit)
}
