//! `cloudctl instance create`: gathers the node's facts for the planners in plan/instance (allocation,
//! readiness, root source), the guest's keys, the create plan, rollback on failure,
//! and the inventory record once the guest runs.

use super::super::keys;
use super::{live_copies, lock, node_facts, node_host, read, Context};
use crate::cli::InstanceCreateArgs;
use crate::error::{Error, Exit};
use crate::exec::effect::{LocalEffect, LocalStep};
use crate::exec::known_hosts::{host_pattern, HostKey};
use crate::inventory::{self, expand_home, Inventory};
use crate::inventory_file::{self, NewInstance};
use crate::plan::image::CopySource;
use crate::plan::instance::create::{self, CreateRequest, GuestSecrets};
use crate::plan::instance::{self, allocate, probe, readiness, root_source, GuestRequest};
use crate::types::{Name, Size};
use std::time::Instant;

pub fn create(ctx: &Context, args: InstanceCreateArgs) -> Result<Exit, Error> {
    let name: Name = args.name.parse().map_err(Error::Usage)?;
    // Checked before anything is touched: the wait comes after the guest was created.
    if let Some(w) = args.wait.wait {
        crate::commands::seconds("--wait", w)?;
    }
    // The guest's host key is made here: refuse before anything is touched.
    crate::local_tools::require(&[crate::local_tools::SSH_KEYGEN])?;
    let path = inventory::locate(ctx.inventory_path.as_deref())?;
    let inventory_lock = lock(ctx, &path)?;
    let (text, inv) = read(&path)?;
    allocate::unrecorded(&inv, &name)?;
    let hnode_name = if args.hnode == inventory::AUTO {
        super::place::choose(ctx, &inv, &allocate::need(&inv, &name, args.memory))?.node
    } else {
        args.hnode.clone()
    };
    let hnode = node_host(&inv, &hnode_name)?;
    let hypervisor = instance::hypervisor_of(&inv, &hnode_name)?;
    let req = GuestRequest {
        name: name.clone(),
        memory: args.memory,
        vcpus: args.vcpus,
        disk: args
            .disk
            .as_deref()
            .map(str::parse::<Size>)
            .transpose()
            .map_err(Error::Usage)?,
        ip: allocate::address(&inv, args.ip.as_deref())?,
        mac: allocate::mac(&inv, &name, args.mac.as_deref())?,
    };
    let mut g = instance::guest(&inv, &hnode_name, &req)?;
    readiness::sane_size(&g)?;
    let copy = args
        .copy
        .as_deref()
        .map(|src| crate::plan::image::copy_source(&inv, src))
        .transpose()?;
    let copy_from = match &copy {
        None => None,
        Some(CopySource::Path(p) | CopySource::Image { path: p, .. }) => Some(p.clone()),
        Some(CopySource::Instance(other)) => Some(instance_disk(ctx, &inv, other)?),
    };
    let s = inv.instances();
    let tools = root_source::needed_tools(hypervisor, args.debootstrap.is_some());
    let facts = node_facts(
        ctx,
        &inv,
        &hnode,
        probe::facts_script(&g, s.store.as_str(), copy_from.as_deref(), &tools),
    )?;
    readiness::check(
        &g,
        &hnode.name,
        &facts,
        copy.as_ref(),
        copy_from.as_deref(),
        &s.store.to_string(),
    )?;
    let running_on: Vec<String> = live_copies(ctx, &inv, name.as_str())?
        .into_iter()
        .map(|(node, _)| node)
        .collect();
    readiness::not_running(&name, &running_on)?;
    let source = root_source::choose(args.debootstrap.as_deref(), copy_from, &facts)?;
    g.disk_size = readiness::disk_size(&g, facts.source_size);
    let (secrets, host_key) = guest_keys(&inv, &name)?;
    let nonce = super::super::random_hex(16)?;
    let plan = create::plan(
        &inv,
        &ctx.templates()?,
        &CreateRequest {
            guest: &g,
            hnode: &hnode,
            source,
            secrets: &secrets,
            nonce: &nonce,
        },
    )?;
    let record = NewInstance {
        name: name.to_string(),
        hnode: hnode.name.clone(),
        memory: g.memory,
        vcpus: g.vcpus,
        disk: g.disk_size.to_string(),
        ip: g.ip.to_string(),
        mac: g.mac.to_string(),
        nonce: nonce.clone(),
    };
    let new_text = inventory_file::add_instance(&text, &record)?;
    if ctx.dry_run {
        let shown = super::GuestWatch::of(&g).shown(plan, &hnode, args.wait.wait, true);
        return ctx.converge(&inv, &shown);
    }
    ctx.confirm(&format!("{} (disk {}, {} MiB)", plan.title, record.disk, g.memory))?;
    let connector = ctx.connector(&inv);
    let limits = ctx.limits(&inv);
    let started = Instant::now();
    let (reports, exit) = ctx.apply(&connector, &limits, &plan);
    if exit != Exit::Ok {
        crate::ui::report::apply(&ctx.ui, &plan.title, &reports, exit);
        ctx.ui
            .warn(&format!("creating {name} failed; removing what this run created"));
        let rollback = create::rollback(&g, &hnode, &nonce);
        let (rb_reports, rb_exit) = crate::exec::even_if_interrupted(|| ctx.apply(&connector, &limits, &rollback));
        crate::ui::report::apply(&ctx.ui, &rollback.title, &rb_reports, rb_exit);
        return Ok(exit);
    }
    // The guest's key is pinned before it is recorded: a recorded guest is one cloudctl can reach.
    let pin = LocalStep::silent(LocalEffect::PinKey {
        file: connector.known_hosts.path().to_path_buf(),
        pattern: host_pattern(&g.ip.to_string(), 22),
        key: host_key.clone(),
    });
    ctx.apply_local(&[pin, LocalStep::write_inventory(&path, &text, &new_text)])?;
    // The guest is recorded: other commands need not wait for it to come up.
    drop(inventory_lock);
    let elapsed = started.elapsed();
    crate::ui::instance::created(&ctx.ui, &record, &host_key.fingerprint(), elapsed);
    let up_after = match args.wait.wait {
        None => None,
        Some(secs) => {
            let up = super::wait_for_guest(ctx, &inv, &g, &hnode, secs)?;
            crate::ui::instance::up(&ctx.ui, name.as_str(), up);
            Some(up)
        }
    };
    crate::ui::instance::created_json(&ctx.ui, &record, &host_key.fingerprint(), &reports, elapsed, up_after);
    Ok(Exit::Ok)
}

/// The disk of a stopped instance, as a copy source.
fn instance_disk(ctx: &Context, inv: &Inventory, name: &str) -> Result<String, Error> {
    let (g, _) = super::recorded_guest(inv, name).map_err(|_| {
        Error::Usage(format!(
            "--copy {}: not an absolute image path and not a recorded instance",
            crate::types::shown(name)
        ))
    })?;
    readiness::copy_source_stopped(name, &live_copies(ctx, inv, name)?)?;
    Ok(g.disk())
}

/// A new host key for the guest (generated here, held only by the guest once written) and the
/// public key of [ssh] identity for root's authorized_keys.
fn guest_keys(inv: &Inventory, name: &Name) -> Result<(GuestSecrets, HostKey), Error> {
    let identity = expand_home(&inv.ssh.identity).with_extension("pub");
    let authorized_keys = std::fs::read(&identity).map_err(|_| {
        Error::Usage(format!(
            "{} is missing: the guest lets in the public key of [ssh] identity; create it with ssh-keygen -y -f KEY > KEY.pub",
            identity.display()
        ))
    })?;
    let (host_key, host_key_pub) = keys::throwaway(&format!("root@{name}"))?;
    let parsed = HostKey::from_public(&String::from_utf8_lossy(&host_key_pub))
        .ok_or_else(|| Error::Failed(anyhow::anyhow!("ssh-keygen wrote an unreadable public key")))?;
    Ok((
        GuestSecrets {
            host_key,
            host_key_pub,
            authorized_keys,
        },
        parsed,
    ))
}
