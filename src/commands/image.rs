//! `cloudctl image push|list|remove`: golden images in the shared instance store, reached
//! through one hardware node that mounts it.

use super::Context;
use crate::cli::{ImageCommand, ImagePushArgs, ImageRemoveArgs};
use crate::error::{Error, Exit};
use crate::exec::push::{self, LocalError};
use crate::exec::{openssh, Connector, HostError, Transport};
use crate::inventory::{Host, Inventory};
use crate::plan::image::{self, Received, StoreFacts};
use crate::types::Name;
use crate::ui::image::{self as show, Pushed, Transfer};
use std::time::Instant;

pub fn run(ctx: &Context, cmd: ImageCommand) -> Result<Exit, Error> {
    match cmd {
        ImageCommand::Push(a) => push_image(ctx, a),
        ImageCommand::List(a) => list(ctx, a.via.as_deref()),
        ImageCommand::Remove(a) => remove(ctx, a),
    }
}

/// The hardware node to go through, connected: `--via`, else the first hardware node that
/// answers. A host-key refusal is never skipped over.
fn store_node(
    ctx: &Context,
    inv: &Inventory,
    via: Option<&str>,
    deadline: Instant,
) -> Result<(Host, Box<dyn Transport>), Error> {
    let candidates = match via {
        Some(v) => {
            let h = inv.hosts().into_iter().find(|h| h.name == v).ok_or_else(|| {
                Error::Usage(format!(
                    "--via {}: there is no node of that name",
                    crate::types::shown(v)
                ))
            })?;
            if h.role != "hnode" {
                return Err(Error::Usage(format!(
                    "--via {v}: it has role \"{}\"; the store is mounted by hardware nodes (role = \"hnode\")",
                    h.role
                )));
            }
            vec![h]
        }
        None => crate::plan::instance::hnodes(inv),
    };
    if candidates.is_empty() {
        return Err(Error::Usage(
            "the inventory has no hardware node (role = \"hnode\") to reach the instance store through".into(),
        ));
    }
    let connector = ctx.connector(inv);
    let mut unreachable = Vec::new();
    for h in candidates {
        match connector.connect(&h, deadline) {
            Ok(t) => return Ok((h, t)),
            Err(HostError::Unreachable(e)) => {
                ctx.ui
                    .detail(&format!("{}: {e}; trying the next hardware node", h.name));
                unreachable.push(e);
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::Unreachable(format!(
        "no hardware node answered, so the instance store cannot be reached: {}",
        unreachable.join("; ")
    )))
}

fn store_facts(t: &mut dyn Transport, store: &str, name: &Name, deadline: Instant) -> Result<StoreFacts, Error> {
    let out = t.run_script(&image::probe_script(store, name), deadline)?;
    Ok(image::parse_probe(&out.output))
}

fn push_image(ctx: &Context, args: ImagePushArgs) -> Result<Exit, Error> {
    let name = image::image_name(&args.file, args.name.as_deref())?;
    let shown_file = crate::types::shown(&args.file.display().to_string());
    let file = std::fs::File::open(&args.file).map_err(|e| Error::Usage(format!("cannot open {shown_file}: {e}")))?;
    let meta = file
        .metadata()
        .map_err(|e| Error::Usage(format!("cannot read {shown_file}: {e}")))?;
    if !meta.is_file() {
        return Err(Error::Usage(format!("{shown_file} is not a regular file")));
    }
    let size = meta.len();
    let extents = push::data_extents(&file, size)
        .map_err(|e| Error::Usage(format!("cannot read the layout of {shown_file}: {e}")))?;
    let data = push::data_bytes(&extents);

    let (_, inv) = ctx.load_inventory()?;
    if inv.instance.iter().any(|r| r.name.get_ref() == &name) {
        return Err(Error::Usage(format!(
            "{name} is the name of a recorded instance, and `instance create --copy {name}` would copy that instance's disk; choose another image name"
        )));
    }
    let store = inv.instances().store.to_string();
    let limits = ctx.limits(&inv);
    let started = Instant::now();
    let deadline = started + limits.host_timeout;
    let command = image::receiver_command(&store, &name, size);
    // The data's connection is made while cloudctl's own session reaches the node and probes
    // the store, rather than after: the receiver touches nothing before its first line.
    let early = early_receiver(ctx, &inv, args.via.via.as_deref(), &command);
    let (host, mut t) = store_node(ctx, &inv, args.via.via.as_deref(), deadline)?;
    let facts = store_facts(t.as_mut(), &store, &name, deadline)?;
    refuse_unless_ready(&host, &store, &facts, data)?;
    let mut report = Pushed {
        image: name.to_string(),
        file: args.file.display().to_string(),
        node: host.name.clone(),
        path: image::image_path(&store, &name),
        size,
        sent_bytes: data,
        extents: extents.len(),
        seconds: 0.0,
        rate_bytes_per_second: 0.0,
        data_sha256: String::new(),
        replaced: facts.existing.is_some(),
    };
    if ctx.dry_run {
        show::push_plan(&ctx.ui, &report);
        return Ok(Exit::Ok);
    }
    if let Some(old) = facts.existing {
        ctx.confirm(&format!(
            "replace image {name} ({old} bytes) in {} with {shown_file} ({size} bytes)",
            image::images_dir(&store)
        ))?;
    }
    // The push goes ahead (confirmed, or a new image, which asks nothing). The system OpenSSH
    // client below reads known_hosts itself, so a key this run accepted under accept-new is
    // written now rather than when the run ends.
    ctx.pin_held()?;
    ctx.ui.info(&format!(
        "pushing {shown_file} as image {name} via {}: {data} bytes of data in {} extents, {} bytes of holes skipped",
        host.name,
        extents.len(),
        size - data
    ));
    let progress = Transfer::start(&ctx.ui, data);
    let mut local = LocalError::default();
    let mut sha = String::new();
    let mut feed = |w: &mut dyn crate::exec::FeedSink| {
        sha = push::send(&file, &extents, w, &mut |n| progress.sent(n), &mut local)?;
        progress.verifying();
        Ok(())
    };
    // The system OpenSSH client moves the data at about twice libssh2's rate (see `openssh`),
    // with the same host-key trust; without one, the session already open carries it.
    let out = if let Some(early) = early.filter(|e| e.host().name == host.name) {
        early.feed(&mut feed, deadline)
    } else if openssh::available() {
        openssh::run_fed(&ctx.connector(&inv), &host, &command, &mut feed, deadline)
    } else {
        t.run_fed(&command, &mut feed, deadline)
    };
    drop(progress);
    if let Some(e) = local.0 {
        return Err(Error::Failed(anyhow::anyhow!(
            "reading {shown_file} failed part-way ({e}); nothing was left under image {name}"
        )));
    }
    let out = out?;
    let failed = |why: String| Error::Failed(anyhow::anyhow!("push of {name} via {} failed: {why}", host.name));
    match image::parse_received(&out.output) {
        Received::Pushed(remote) if remote == sha => {}
        Received::Pushed(remote) => {
            return Err(failed(format!(
            "the far side reports data sha256 {remote}, this side sent {sha}; the image was renamed into place, remove it"
        )))
        }
        Received::Mismatch(remote) => {
            return Err(failed(format!(
                "the data read back has sha256 {remote}, not {sha}; it was discarded and {} is unchanged",
                report.path
            )))
        }
        Received::Busy => {
            return Err(failed(format!(
                "another push of {name} is in progress; nothing was changed"
            )))
        }
        Received::Refused(why) => return Err(Error::Usage(format!("{}: {why}", host.name))),
        Received::Truncated => {
            return Err(failed(format!(
                "the data stream ended early; it was discarded and {} is unchanged",
                report.path
            )))
        }
        Received::Other(text) => {
            return Err(failed(format!(
                "the receiver exited with status {}: {}; {} is unchanged",
                out.status,
                crate::types::shown_line(text.trim()),
                report.path
            )))
        }
    }
    let secs = started.elapsed().as_secs_f64();
    report.seconds = secs;
    report.rate_bytes_per_second = data as f64 / secs.max(1e-9);
    report.data_sha256 = sha;
    show::pushed(&ctx.ui, &report);
    Ok(Exit::Ok)
}

/// The system OpenSSH client with the receiver, started on the node the push will most likely go
/// through (`--via`, else the first hardware node), when its key is pinned already (an
/// `accept-new` first contact goes through cloudctl's session first, which pins it). `None`
/// under --dry-run, without a client, or when the key is not pinned.
fn early_receiver(ctx: &Context, inv: &Inventory, via: Option<&str>, command: &str) -> Option<openssh::Started> {
    if ctx.dry_run || !openssh::available() {
        return None;
    }
    let host = match via {
        Some(v) => inv.hosts().into_iter().find(|h| h.name == v)?,
        None => crate::plan::instance::hnodes(inv).into_iter().next()?,
    };
    let c = ctx.connector(inv);
    let pattern = crate::exec::known_hosts::host_pattern(&host.host, host.port);
    c.known_hosts.lookup(&pattern).ok()??;
    openssh::Started::start(&c, &host, command).ok()
}

fn refuse_unless_ready(host: &Host, store: &str, f: &StoreFacts, data: u64) -> Result<(), Error> {
    let mut problems = Vec::new();
    if !f.writable {
        problems.push(format!(
            "{store} is not a writable directory on {}: is the shared storage mounted? ([instances] store)",
            host.name
        ));
    }
    if !f.missing_tools.is_empty() {
        problems.push(format!(
            "{} lacks {}; install them first",
            host.name,
            f.missing_tools.join(", ")
        ));
    }
    // The old image stays until the new one is verified: both must fit.
    if let Some(free) = f.free {
        if free < data {
            problems.push(format!(
                "{store} has {free} bytes free on {}, the image needs {data}",
                host.name
            ));
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    Err(Error::Usage(format!(
        "cannot push the image (nothing was changed):\n  - {}",
        problems.join("\n  - ")
    )))
}

fn list(ctx: &Context, via: Option<&str>) -> Result<Exit, Error> {
    let (_, inv) = ctx.load_inventory()?;
    let store = inv.instances().store.to_string();
    let deadline = Instant::now() + ctx.limits(&inv).host_timeout;
    let (host, mut t) = store_node(ctx, &inv, via, deadline)?;
    let out = t.run_script(&image::list_script(&store), deadline)?;
    show::list(
        &ctx.ui,
        &host.name,
        &image::images_dir(&store),
        &image::parse_list(&out.output),
    );
    Ok(Exit::Ok)
}

fn remove(ctx: &Context, args: ImageRemoveArgs) -> Result<Exit, Error> {
    let name: Name = args
        .name
        .parse()
        .map_err(|e| Error::Usage(format!("image name: {e}")))?;
    let (_, inv) = ctx.load_inventory()?;
    let store = inv.instances().store.to_string();
    let deadline = Instant::now() + ctx.limits(&inv).host_timeout;
    let (host, mut t) = store_node(ctx, &inv, args.via.via.as_deref(), deadline)?;
    if store_facts(t.as_mut(), &store, &name, deadline)?.existing.is_none() {
        return Err(Error::Usage(format!(
            "there is no image {name} in {} (on {}); see `cloudctl image list`",
            image::images_dir(&store),
            host.name
        )));
    }
    drop(t);
    ctx.converge(&inv, &image::remove_plan(&host, &store, &name))
}
