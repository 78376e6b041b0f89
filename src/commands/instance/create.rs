//! `cloudctl instance create`: checks, the guest's keys, the create plan, rollback on failure,
//! and the inventory record once the guest runs.

use super::super::keys;
use super::{live_copies, lock, node_facts, node_host, read, Context};
use crate::cli::InstanceCreateArgs;
use crate::error::{Error, Exit};
use crate::exec::effect::{LocalEffect, LocalStep};
use crate::exec::known_hosts::{host_pattern, HostKey};
use crate::inventory::{self, expand_home, Hypervisor, Inventory};
use crate::inventory_file::{self, NewInstance};
use crate::plan::image::CopySource;
use crate::plan::instance::create::{self, CreateRequest, GuestSecrets, RootSource};
use crate::plan::instance::{self, probe, Guest, GuestRequest};
use crate::types::{Mac, Name, Size};
use sha2::{Digest, Sha256};
use std::net::Ipv4Addr;
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
    if inv.instance.iter().any(|r| r.name.get_ref() == &name) {
        return Err(Error::Usage(format!(
            "instance {name} is already in the inventory; choose another name"
        )));
    }
    let hnode_name = if args.hnode == inventory::AUTO {
        let need = crate::plan::placement::Need {
            guest: name.as_str(),
            memory: args.memory.unwrap_or(inv.instances().memory),
            hypervisor: inv.cloud.hypervisor,
            leaving: None,
        };
        super::place::choose(ctx, &inv, &need)?.node
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
        ip: address(&inv, args.ip.as_deref())?,
        mac: mac(&inv, &name, args.mac.as_deref())?,
    };
    let mut g = instance::guest(&inv, &hnode_name, &req)?;
    if g.memory < 16 || g.vcpus == 0 {
        return Err(Error::Usage(
            "--memory is at least 16 (MiB) and --vcpus at least 1".into(),
        ));
    }
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
    let mut tools = vec!["mkfs.ext4", "e2fsck", "resize2fs", "losetup", "ip"];
    tools.extend(match hypervisor {
        Hypervisor::Kvm => ["qemu-system-x86_64", "socat"],
        Hypervisor::Xen => ["xl", "ssh"],
    });
    if args.debootstrap.is_some() {
        tools.push("debootstrap");
    }
    let facts = node_facts(
        ctx,
        &inv,
        &hnode,
        probe::facts_script(&g, s.store.as_str(), copy_from.as_deref(), &tools),
    )?;
    refuse_unless_ready(
        &g,
        &hnode.name,
        &facts,
        copy.as_ref(),
        copy_from.as_deref(),
        &s.store.to_string(),
    )?;
    if !live_copies(ctx, &inv, name.as_str())?.is_empty() {
        return Err(Error::Usage(format!(
            "a guest named {name} already runs on a hardware node without a record; stop it or choose another name"
        )));
    }
    let source = match (&args.debootstrap, copy_from) {
        (Some(suite), _) => RootSource::Debootstrap {
            suite: suite
                .parse::<Name>()
                .map_err(|e| Error::Usage(format!("--debootstrap: {e}")))?
                .to_string(),
            arch: facts.arch.clone(),
        },
        (None, Some(path)) => RootSource::Copy {
            size: facts.source_size.unwrap_or(0),
            path,
        },
        (None, None) => {
            return Err(Error::Usage(
                "instance create needs --debootstrap SUITE or --copy SOURCE".into(),
            ))
        }
    };
    g.disk_size = plan_size(&g, facts.source_size);
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
    ctx.ui.confirm(
        &format!("{} (disk {}, {} MiB)", plan.title, record.disk, g.memory),
        ctx.yes,
    )?;
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

/// A copy is never smaller than its source.
fn plan_size(g: &Guest, source: Option<u64>) -> Size {
    match source {
        Some(b) if b > g.disk_size.bytes() => format!("{}K", b.div_ceil(1024)).parse().unwrap_or(g.disk_size),
        _ => g.disk_size,
    }
}

/// The disk of a stopped instance, as a copy source.
fn instance_disk(ctx: &Context, inv: &Inventory, name: &str) -> Result<String, Error> {
    let (g, _) = super::recorded_guest(inv, name).map_err(|_| {
        Error::Usage(format!(
            "--copy {}: not an absolute image path and not a recorded instance",
            crate::types::shown(name)
        ))
    })?;
    if let Some((node, s)) = live_copies(ctx, inv, name)?.first() {
        return Err(Error::Usage(format!(
            "--copy {name}: it is {} on {node}; stop it first (`cloudctl instance stop {name}`) so its disk is consistent",
            s.state.as_str()
        )));
    }
    Ok(g.disk())
}

fn refuse_unless_ready(
    g: &Guest,
    node: &str,
    f: &probe::NodeFacts,
    source: Option<&CopySource>,
    copy: Option<&str>,
    store: &str,
) -> Result<(), Error> {
    let mut problems = Vec::new();
    if !f.missing_tools.is_empty() {
        problems.push(format!(
            "{node} lacks {}; install them first",
            f.missing_tools.join(", ")
        ));
    }
    if !f.bridge {
        problems.push(format!("bridge {} does not exist on {node}", g.bridge));
    }
    if !f.store_writable {
        problems.push(format!(
            "{store} is not a writable directory on {node}: is the shared storage mounted? ([instances] store)"
        ));
    }
    if f.dir_exists {
        problems.push(format!(
            "{} already exists on the shared storage; cloudctl will not touch it (remove it, or choose another name)",
            g.dir
        ));
    }
    match (source, copy, f.source_size) {
        (Some(CopySource::Image { name, path }), _, None) => problems.push(format!(
            "there is no image {name} in the store ({path} is not a file on {node}); push one with `cloudctl image push FILE {name}`, see `cloudctl image list`"
        )),
        (_, Some(src), None) => problems.push(format!("{src} is not a file on {node}")),
        _ => {}
    }
    if let Some(free) = f.mem_available_mib {
        if free < u64::from(g.memory) {
            problems.push(format!("{node} has {free} MiB available, the guest needs {}", g.memory));
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    Err(Error::Usage(format!(
        "cannot create {} on {node} (nothing was changed):\n  - {}",
        g.name,
        problems.join("\n  - ")
    )))
}

/// The given address, checked; or the first free one outside the dynamic range.
fn address(inv: &Inventory, given: Option<&str>) -> Result<Ipv4Addr, Error> {
    let taken = crate::plan::node::reserved_ips(inv);
    let net = inv
        .network
        .as_ref()
        .ok_or_else(|| Error::Usage("the inventory has no [network] section".into()))?;
    let Some(given) = given else {
        return crate::plan::node::next_free(inv, &taken).ok_or_else(|| {
            Error::Usage(format!(
                "no free address left in {} outside the dynamic range",
                net.subnet
            ))
        });
    };
    let ip: Ipv4Addr = given
        .parse()
        .map_err(|_| Error::Usage(format!("--ip {} is not an IPv4 address", crate::types::shown(given))))?;
    if let Some(holder) = crate::inventory::addresses::holder(inv, ip) {
        return Err(Error::Usage(format!("--ip {ip} already belongs to {holder}")));
    }
    crate::inventory::addresses::check_fixed(inv, ip).map_err(|why| Error::Usage(format!("--ip {why}")))?;
    Ok(ip)
}

/// The given MAC, or one derived from the cloud and guest names (stable across re-creates).
fn mac(inv: &Inventory, name: &Name, given: Option<&str>) -> Result<Mac, Error> {
    let mac: Mac = match given {
        Some(m) => m.parse().map_err(|e| Error::Usage(format!("--mac: {e}")))?,
        None => {
            let d = Sha256::digest(format!("{}/{name}", inv.cloud.name).as_bytes());
            format!("52:54:00:{:02x}:{:02x}:{:02x}", d[0], d[1], d[2])
                .parse()
                .map_err(Error::Usage)?
        }
    };
    if let Some(n) = inv
        .node
        .iter()
        .find(|n| n.mac.as_ref().map(|m| *m.get_ref()) == Some(mac))
    {
        return Err(Error::Usage(format!(
            "MAC {mac} already belongs to node {}; pass another --mac",
            n.name.get_ref()
        )));
    }
    if let Some(i) = inv.instance.iter().find(|i| *i.mac.get_ref() == mac) {
        return Err(Error::Usage(format!(
            "MAC {mac} already belongs to instance {}; pass another --mac",
            i.name.get_ref()
        )));
    }
    Ok(mac)
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
