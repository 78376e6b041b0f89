//! `cloudctl hnode poweroff`: a drained hardware node with no guest on it (as recorded and as it
//! reports) switched off by IPMI or by `poweroff` over SSH, then watched from the ConfigNode
//! until it stops answering ping (bounded).

use super::{ask_all, drain, lock, node_host, read, Context};
use crate::cli::HnodePoweroffArgs;
use crate::error::{Error, Exit};
use crate::exec::Connector;
use crate::inventory::{self, expand_home, Host, Inventory};
use crate::plan::instance::hypervisor_of;
use crate::plan::instance::probe;
use crate::plan::poweroff::{self, Method, Waited};
use crate::ui::hnode as show;
use std::time::{Duration, Instant};

pub fn poweroff(ctx: &Context, args: HnodePoweroffArgs) -> Result<Exit, Error> {
    let limit = crate::commands::seconds("--wait", args.wait)?;
    let path = inventory::locate(ctx.inventory_path.as_deref())?;
    // Held until the node is off: no create or migrate records a guest there meanwhile.
    let _lock = lock(ctx, &path)?;
    let (_, inv) = read(&path)?;
    let name = args.name.as_str();
    let node = drain::hnode(&inv, name)?;
    let target = node_host(&inv, name)?;
    let recorded: Vec<String> = inv
        .instance
        .iter()
        .filter(|i| i.hnode.get_ref().as_str() == name)
        .map(|i| i.name.get_ref().to_string())
        .collect();
    // A node that is no hardware node is refused here (exit 2), before it is asked anything.
    hypervisor_of(&inv, name)?;
    let seen = ask_all(ctx, &inv, std::slice::from_ref(&target), &probe::Guests(&inv))
        .remove(0)
        .1
        .map_err(|e| {
            let message = format!("cannot ask {name} which guests it runs ({e}); nothing was changed");
            e.not_asked(message)
        })?;
    if let Some(why) = poweroff::refusal(name, node.drained, &recorded, &seen) {
        return Err(Error::Usage(why));
    }
    let method = poweroff::method(node);
    let password = match (&node.ipmi, method) {
        (Some(ipmi), Method::Ipmi) => {
            let file = expand_home(&ipmi.password_file);
            let bytes = std::fs::read(&file).map_err(|e| {
                Error::Usage(format!(
                    "cannot read {name}'s IPMI password file {}: {e}",
                    file.display()
                ))
            })?;
            Some(bytes.trim_ascii_end().to_vec())
        }
        _ => None,
    };
    let confignode = inv.select(&["confignode".into()]).map_err(Error::Usage)?.remove(0);
    let plan = poweroff::plan(node, &target, &confignode, method, password)?;
    show::poweroff_checked(&ctx.ui, name, method);
    if !ctx.dry_run {
        ctx.confirm_typed(&plan.title, name)?;
    }
    let address = node
        .ip
        .as_ref()
        .map(|i| i.get_ref().to_string())
        .unwrap_or_else(|| target.host.clone());
    ctx.converge_then(&inv, &plan, |applied| {
        Some(
            wait_off(ctx, &inv, &confignode, name, &address, limit)
                .map(|(waited, took)| show::powered_off(&ctx.ui, name, method, waited, took, limit, applied)),
        )
    })
}

/// Watches from the ConfigNode until `address` stops answering ping, for at most `limit`
/// (`None`: not waited). Returns what was seen and how long it took.
fn wait_off(
    ctx: &Context,
    inv: &Inventory,
    confignode: &Host,
    name: &str,
    address: &str,
    limit: Duration,
) -> Result<(Option<Waited>, Duration), Error> {
    let started = Instant::now();
    if limit.is_zero() {
        return Ok((None, Duration::ZERO));
    }
    ctx.ui.info(&format!(
        "waiting up to {} s for {name} to stop answering ping from the ConfigNode",
        limit.as_secs()
    ));
    // Beyond the wait itself: the connection and one last ping.
    let deadline = started + limit + Duration::from_secs(30);
    let mut t = ctx.connector(inv).connect(confignode, deadline)?;
    let out = t.run_script(&poweroff::wait_script(address, limit.as_secs()), deadline)?;
    Ok((Some(poweroff::parse_wait(&out.output)), started.elapsed()))
}
