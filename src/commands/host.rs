//! `cloudctl host trust|list`: pin host keys after showing their fingerprints; list what is pinned.

use super::Context;
use crate::cli::HostCommand;
use crate::error::{Error, Exit};
use crate::exec::effect::{LocalEffect, LocalStep};
use crate::exec::fan_out;
use crate::exec::known_hosts::host_pattern;
use std::time::Instant;

pub fn run(ctx: &Context, cmd: HostCommand) -> Result<Exit, Error> {
    match cmd {
        HostCommand::Trust { targets } => trust(ctx, &targets),
        HostCommand::List => list(ctx),
    }
}

fn trust(ctx: &Context, targets: &[String]) -> Result<Exit, Error> {
    let (_, inv) = ctx.load_inventory()?;
    let hosts = inv.select(targets).map_err(Error::Usage)?;
    let connector = ctx.connector(&inv);
    let limits = ctx.limits(&inv);
    let offers = fan_out(&hosts, limits.forks, |h| {
        connector.offered_key(h, Instant::now() + limits.host_timeout)
    });
    let mut exit = Exit::Ok;
    let mut to_pin = Vec::new();
    let mut rows = Vec::new();
    for (h, offer) in hosts.iter().zip(offers) {
        let Some(offer) = offer else {
            exit = Exit::Interrupted;
            continue;
        };
        match offer {
            Err(e) => {
                let e: Error = e.into();
                exit = exit.max(e.exit());
                eprintln!("{}: {e}", h.name);
                rows.push(serde_json::json!({ "name": h.name, "address": h.endpoint(), "error": e.to_string() }));
            }
            Ok(o) => {
                let state = match &o.pinned {
                    Some(p) if *p == o.offered => "already pinned",
                    Some(_) => "CHANGED",
                    None => "new",
                };
                ctx.ui.info(&format!(
                    "{:<12} {:<22} {} {}  ({state})",
                    h.name,
                    h.endpoint(),
                    o.offered.key_type,
                    o.offered.fingerprint()
                ));
                if let Some(p) = o.pinned.as_ref().filter(|p| **p != o.offered) {
                    ctx.ui.warn(&format!(
                        "{}: the pinned key was {} {}; pinning replaces it",
                        h.name,
                        p.key_type,
                        p.fingerprint()
                    ));
                }
                rows.push(serde_json::json!({
                    "name": h.name, "address": h.endpoint(), "key_type": o.offered.key_type,
                    "fingerprint": o.offered.fingerprint(), "state": state,
                }));
                if state != "already pinned" {
                    to_pin.push((h, o));
                }
            }
        }
    }
    let pins: Vec<LocalStep> = to_pin
        .iter()
        .map(|(h, o)| LocalStep {
            effect: LocalEffect::PinKey {
                file: connector.known_hosts.path().to_path_buf(),
                pattern: o.pattern.clone(),
                key: o.offered.clone(),
            },
            done: Some(format!(
                "{}: pinned in {}",
                h.name,
                connector.known_hosts.path().display()
            )),
            // The dry run says it once for every key, below.
            would: None,
        })
        .collect();
    if !pins.is_empty() && !ctx.dry_run {
        ctx.confirm(&format!(
            "Pin the key{} shown for {} host{}",
            if pins.len() == 1 { "" } else { "s" },
            pins.len(),
            if pins.len() == 1 { "" } else { "s" }
        ))?;
    }
    ctx.apply_local(&pins)?;
    if pins.is_empty() && exit == Exit::Ok {
        ctx.ui.info("no changes: every key shown is already pinned");
    } else if ctx.dry_run {
        ctx.ui.info("dry run: nothing was pinned");
    }
    if ctx.ui.json {
        ctx.ui.json_result(
            exit,
            serde_json::json!({ "command": "host trust", "dry_run": ctx.dry_run, "hosts": rows }),
        );
    }
    Ok(exit)
}

fn list(ctx: &Context) -> Result<Exit, Error> {
    let (_, inv) = ctx.load_inventory()?;
    let connector = ctx.connector(&inv);
    let pinned = connector.known_hosts.list().map_err(|e| {
        Error::Failed(anyhow::anyhow!(
            "cannot read {}: {e}",
            connector.known_hosts.path().display()
        ))
    })?;
    let hosts = inv.hosts();
    let name_of = |pattern: &str| {
        hosts
            .iter()
            .find(|h| host_pattern(&h.host, h.port) == pattern)
            .map(|h| h.name.clone())
    };
    if ctx.ui.json {
        let rows: Vec<_> = pinned
            .iter()
            .map(|p| serde_json::json!({ "host": p.host, "name": name_of(&p.host), "key_type": p.key_type, "fingerprint": p.fingerprint }))
            .collect();
        let unpinned: Vec<_> = hosts
            .iter()
            .filter(|h| !pinned.iter().any(|p| p.host == host_pattern(&h.host, h.port)))
            .map(|h| h.name.clone())
            .collect();
        ctx.ui.json_result(Exit::Ok, serde_json::json!({ "command": "host list", "known_hosts": connector.known_hosts.path(), "pinned": rows, "not_pinned": unpinned }));
        return Ok(Exit::Ok);
    }
    crate::outln!("{:<12} {:<24} {:<12} FINGERPRINT", "NAME", "HOST", "TYPE");
    for p in &pinned {
        crate::outln!(
            "{:<12} {:<24} {:<12} {}",
            name_of(&p.host).unwrap_or_else(|| "-".into()),
            p.host,
            p.key_type,
            p.fingerprint
        );
    }
    for h in hosts
        .iter()
        .filter(|h| !pinned.iter().any(|p| p.host == host_pattern(&h.host, h.port)))
    {
        crate::outln!(
            "{:<12} {:<24} {:<12} (not pinned: cloudctl host trust {})",
            h.name,
            host_pattern(&h.host, h.port),
            "-",
            h.name
        );
    }
    ctx.ui
        .detail(&format!("known_hosts: {}", connector.known_hosts.path().display()));
    Ok(Exit::Ok)
}
