//! `cloudctl hnode boot` (drain, undrain, evacuate and poweroff live with the guest verbs): a diskless hardware node's keys, overlay and PXE entry, power-on, and
//! (with --wait) its boot stages until it answers SSH with its pinned key.

use super::wait::{self, Stage, Watch};
use super::Context;
use crate::cli::{HnodeBootArgs, HnodeCommand, PowerArg};
use crate::error::{Error, Exit};
use crate::exec::effect::LocalStep;
use crate::inventory::{expand_home, Host, Hypervisor, Inventory, Node, Power, Role};
use crate::local_tools::{self, DROPBEARCONVERT, IP, PING, SSH_KEYGEN};
use crate::plan::confignode;
use crate::plan::hnode::{self, NodeSecrets};
use crate::shell::Script;
use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

pub fn run(ctx: &Context, cmd: HnodeCommand) -> Result<Exit, Error> {
    match cmd {
        HnodeCommand::Boot(args) => boot(ctx, args, &[Role::Hnode]),
        HnodeCommand::Drain(a) => super::instance::drain(ctx, &a.name, true),
        HnodeCommand::Undrain(a) => super::instance::drain(ctx, &a.name, false),
        HnodeCommand::Evacuate(a) => super::instance::evacuate(ctx, a),
        HnodeCommand::Poweroff(a) => super::instance::poweroff(ctx, a),
    }
}

/// Boots node `args.name`, which must have one of `roles` (`hnode boot`: hardware nodes only;
/// `node boot`: storage nodes too).
pub fn boot(ctx: &Context, args: HnodeBootArgs, roles: &[Role]) -> Result<Exit, Error> {
    // Checked before anything is touched: the wait comes after the node was powered on.
    let wait = args.wait.map(|w| super::seconds("--wait", w)).transpose()?;
    // The node's host key is made and converted here: refuse before anything is touched.
    local_tools::require(&[SSH_KEYGEN, DROPBEARCONVERT])?;
    let (_, inv) = ctx.load_inventory()?;
    let Some(node) = inv.node.iter().find(|n| n.name.get_ref().as_str() == args.name) else {
        let known: Vec<&str> = inv
            .node
            .iter()
            .filter(|n| roles.contains(&n.role))
            .map(|n| n.name.get_ref().as_str())
            .collect();
        return Err(Error::Usage(format!(
            "no node named {}; nodes it can boot: {}",
            crate::types::shown(&args.name),
            known.join(", ")
        )));
    };
    if !roles.contains(&node.role) {
        let hint = if node.role == Role::Snode {
            "; boot it with `cloudctl node boot`"
        } else {
            ""
        };
        return Err(Error::Usage(format!(
            "{} is a {} node; hnode boot boots hardware nodes (role = \"hnode\"){hint}",
            args.name,
            node.role.as_str()
        )));
    }
    let power = match args.power {
        Some(PowerArg::Wol) => Power::Wol,
        Some(PowerArg::Ipmi) => Power::Ipmi,
        Some(PowerArg::None) => Power::None,
        None => node.power,
    };
    let target = inv
        .select(std::slice::from_ref(&args.name))
        .map_err(Error::Usage)?
        .remove(0);
    let (secrets, keep) = node_secrets(ctx, &inv, node, &target, power)?;
    let scope = confignode::Scope::nodes([node.name.get_ref()]);
    let each = super::config::probe_confignodes(ctx, &inv, &scope, args.degraded)?;
    // The first ConfigNode that answered powers the node on and watches it boot.
    let (confignode, _) = confignode::hosts(&inv)?
        .into_iter()
        .zip(&each)
        .find(|(_, f)| f.is_some())
        .ok_or_else(|| Error::Failed(anyhow::anyhow!("internal: no ConfigNode was probed")))?;
    let needed = confignode::boot_files(&inv, |n| n.name.get_ref() == node.name.get_ref());
    let missing: BTreeSet<&String> = each
        .iter()
        .flatten()
        .flat_map(|f| &f.missing)
        .filter(|f| needed.contains(f))
        .collect();
    if !missing.is_empty() {
        let list: Vec<&str> = missing.iter().map(|s| s.as_str()).collect();
        return Err(Error::Usage(format!(
            "boot files of {}'s profile are missing on the ConfigNode: {}",
            args.name,
            list.join(", ")
        )));
    }
    let plan = hnode::plan(&inv, &ctx.templates()?, &each, node, power, &secrets)?;
    let looks = BootProbe::of(node, &target);
    let shown = match wait {
        // The wait phase is reviewed with the plan; the dry run stops before either runs.
        Some(limit) if ctx.dry_run => plan.then_wait(&confignode, looks.watch(node, &confignode, &target).step(limit)),
        _ => plan,
    };
    ctx.converge_with(&inv, &shown, &keep, |applied| {
        let limit = wait?;
        Some(wait_until_up(
            ctx,
            &inv,
            node,
            &looks.watch(node, &confignode, &target),
            limit,
            applied,
        ))
    })
}

/// What the node's boot overlay carries (its host key, generated once beside cloudctl's
/// known_hosts, and the keys it lets in), with the local steps that keep and pin its key
/// (empty when both are done already, or when a dry run has no key to show yet).
fn node_secrets(
    ctx: &Context,
    inv: &Inventory,
    node: &Node,
    target: &Host,
    power: Power,
) -> Result<(NodeSecrets, Vec<LocalStep>), Error> {
    let name = node.name.get_ref().as_str();
    let connector = ctx.connector(inv);
    let Some(key) = host_key::node_key(ctx, &connector.known_hosts, name, target)? else {
        let none = NodeSecrets {
            host_key: vec![],
            host_key_pub: vec![],
            dropbear_key: vec![],
            authorized_keys: vec![],
            ipmi_password: None,
        };
        return Ok((none, vec![]));
    };
    let read =
        |p: &Path| std::fs::read(p).map_err(|e| Error::Failed(anyhow::anyhow!("cannot read {}: {e}", p.display())));
    let identity = expand_home(&inv.ssh.identity).with_extension("pub");
    let authorized_keys = read(&identity).map_err(|_| {
        Error::Usage(format!("{} is missing: the node lets in the public key of [ssh] identity; create it with ssh-keygen -y -f KEY > KEY.pub", identity.display()))
    })?;
    let ipmi_password = match (power, &node.ipmi) {
        (Power::Ipmi, Some(ipmi)) => Some(read(&expand_home(&ipmi.password_file))?.trim_ascii_end().to_vec()),
        _ => None,
    };
    let secrets = NodeSecrets {
        host_key: key.private,
        host_key_pub: key.public,
        dropbear_key: key.dropbear,
        authorized_keys,
        ipmi_password,
    };
    Ok((secrets, key.steps))
}

/// The boot stages of a diskless node, as the ConfigNode sees them.
const STAGES: [Stage; 2] = [
    Stage {
        key: "neigh",
        what: "talked to the ConfigNode from its address (DHCP lease in use)",
    },
    Stage {
        key: "ping",
        what: "answers ping at its address (boot firmware or kernel)",
    },
];

/// scripts/hnode/storage-check.sh (what a storage node needs; what it prints is described there).
const STORAGE_CHECK: &str = include_str!("../../scripts/hnode/storage-check.sh");

/// scripts/hnode/root-check.sh (where the node's root is, as one line).
const ROOT_CHECK: &str = include_str!("../../scripts/hnode/root-check.sh");

/// What the ConfigNode runs to see a node boot: its address, a probe printing the stages seen,
/// and a setup forgetting the neighbour entry of an earlier boot (only this boot's traffic counts).
struct BootProbe {
    probe: String,
    setup: String,
}

impl BootProbe {
    fn of(node: &Node, target: &Host) -> BootProbe {
        let ip = node
            .ip
            .as_ref()
            .map(|i| i.get_ref().to_string())
            .unwrap_or_else(|| target.host.clone());
        let mac = node.mac.as_ref().map(|m| m.get_ref().to_string()).unwrap_or_default();
        let probe = Script::new()
            .text("ip neigh show to ")
            .word(&ip)
            .text(" | grep -qi ")
            .word(&mac)
            .text(" && echo neigh; ping -c1 -W1 ")
            .word(&ip)
            .text(" >/dev/null 2>&1 && echo ping; exit 0")
            .build();
        let setup = Script::new()
            .text("ip neigh flush to ")
            .word(&ip)
            .text(" 2>/dev/null; exit 0")
            .build();
        BootProbe { probe, setup }
    }

    /// Boot stages seen from the ConfigNode, then SSH to `target` with its pinned key.
    fn watch<'a>(&self, node: &'a Node, confignode: &'a Host, target: &'a Host) -> Watch<'a> {
        Watch {
            name: node.name.get_ref().as_str(),
            observer: confignode,
            setup: Some(self.setup.clone()),
            probe: self.probe.clone(),
            tools: &[IP, PING],
            stages: &STAGES,
            ssh_after: "ping",
            target,
        }
    }
}

/// The node's boot stages until it answers SSH with the pinned key, then the hypervisor.
fn wait_until_up(
    ctx: &Context,
    inv: &Inventory,
    node: &Node,
    watch: &Watch,
    limit: Duration,
    applied: serde_json::Value,
) -> Result<Exit, Error> {
    let started = Instant::now();
    let mut t = wait::until_ssh(ctx, inv, watch, started, limit)?;
    let deadline = started + limit;
    verify(ctx, inv, node, t.as_mut(), deadline, started, applied)
}

fn verify(
    ctx: &Context,
    inv: &Inventory,
    node: &Node,
    t: &mut dyn crate::exec::Transport,
    deadline: Instant,
    started: Instant,
    applied: serde_json::Value,
) -> Result<Exit, Error> {
    let name = node.name.get_ref().as_str();
    // The LAMP stack's servers (web, balancer, database) run no guests: no hypervisor to check.
    let lamp_server = inv.lamp.as_ref().is_some_and(|l| {
        crate::plan::lamp::nodes(l.get_ref())
            .iter()
            .any(|(n, _)| n.as_str() == name)
    });
    let (kind, script) = match hnode::hypervisor(inv, node) {
        _ if node.role == Role::Snode => ("storage", STORAGE_CHECK),
        _ if lamp_server => ("none", "echo ok"),
        Hypervisor::Xen => ("xen", "xl info >/dev/null 2>&1 && echo ok || echo 'xl info failed (no Xen dom0?)'"),
        Hypervisor::Kvm => (
            "kvm",
            "m=; [ -c /dev/kvm ] || m=\"/dev/kvm missing\"; command -v qemu-system-x86_64 >/dev/null || m=\"$m${m:+, }qemu-system-x86_64 missing\"; echo \"${m:-ok}\"",
        ),
    };
    let out = t.run_script(
        &Script::new()
            .text("uname -r\n")
            .text(script)
            .text("\n")
            .text(ROOT_CHECK)
            .build(),
        deadline,
    )?;
    let mut lines = out.output.lines().filter(|l| !l.is_empty());
    let kernel = lines.next().unwrap_or("?").to_string();
    let verdict = lines.next().unwrap_or("no answer").to_string();
    let root = lines.next().unwrap_or("?").to_string();
    let up = format!(
        "{name} is up after {:.1} s (kernel {kernel}, SSH host key pinned)",
        started.elapsed().as_secs_f64()
    );
    let ok = verdict == "ok";
    let exit = if ok { Exit::Ok } else { Exit::Failed };
    ctx.ui.info(&up);
    let checked = if kind == "storage" {
        "storage drivers and tools"
    } else {
        "hypervisor"
    };
    ctx.ui.info(&format!("{name}: {checked} {kind}: {verdict}"));
    ctx.ui.info(&format!("{name}: root {}", root_in_words(&root)));
    if ctx.ui.json {
        let seconds = started.elapsed().as_secs_f64();
        ctx.ui.json_result(
            exit,
            serde_json::json!({ "command": if kind == "storage" { "node boot" } else { "hnode boot" }, "node": name, "role": node.role.as_str(), "up": true, "kernel": kernel, "hypervisor": kind,
                                "hypervisor_ok": ok, "hypervisor_check": verdict, "root": root, "seconds": seconds, "apply": applied }),
        );
    }
    Ok(exit)
}

/// scripts/hnode/root-check.sh's line, for a person: a root image from the storage, a RAM root
/// (and why a node whose profile names an image stayed there), or another filesystem.
fn root_in_words(root: &str) -> String {
    if let Some(image) = root.strip_prefix("image ") {
        format!("on the shared storage: {image} (read-only, a RAM overlay on top)")
    } else if let Some(why) = root.strip_prefix("rootfs ") {
        format!("in RAM (the boot image's): {why}")
    } else if root == "rootfs" {
        "in RAM (the boot image's)".to_string()
    } else {
        format!("is a {root} filesystem")
    }
}

mod host_key;

#[cfg(test)]
mod pin_order;

#[cfg(test)]
#[test]
fn each_root_reads_as_where_it_is() {
    assert_eq!(
        root_in_words("image /srv/cloud/instances/.images/dom0-root"),
        "on the shared storage: /srv/cloud/instances/.images/dom0-root (read-only, a RAM overlay on top)"
    );
    assert_eq!(root_in_words("rootfs"), "in RAM (the boot image's)");
    assert_eq!(
        root_in_words("rootfs no root image dom0-root in /s/.images yet"),
        "in RAM (the boot image's): no root image dom0-root in /s/.images yet"
    );
    assert_eq!(root_in_words("ext4"), "is a ext4 filesystem");
}
