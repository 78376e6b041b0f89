//! `cloudctl lab up|status|down`: a local lab of real test hosts (see `crate::lab`).

use super::Context;
use crate::cli::LabCommand;
use crate::error::{Error, Exit};
use crate::lab;
use crate::templates::Templates;
use crate::types::Cidr;
use std::path::PathBuf;

pub fn run(ctx: &Context, cmd: LabCommand) -> Result<Exit, Error> {
    lab::require_root().map_err(Error::Usage)?;
    match cmd {
        LabCommand::Up { hosts, name, subnet } => {
            let subnet: Cidr = subnet
                .parse()
                .map_err(|e: String| Error::Usage(format!("--subnet: {e}")))?;
            let inventory = ctx
                .inventory_path
                .clone()
                .unwrap_or_else(|| PathBuf::from("cloud.toml"));
            let templates = Templates::load(ctx.templates.as_deref())?;
            let req = lab::LabRequest {
                name,
                hosts,
                subnet,
                inventory,
            };
            // Refusals (name taken, subnet in use, a user's inventory in the way) touch nothing.
            lab::preflight(&req).map_err(|e| Error::Usage(format!("{e:#}")))?;
            if ctx.dry_run {
                let (name, n, subnet, inv) = (&req.name, req.hosts, req.subnet, req.inventory.display());
                ctx.ui.info(&format!(
                    "dry run: would create lab \"{name}\" with {n} hosts on {subnet} and write {inv}"
                ));
                return Ok(Exit::Ok);
            }
            let state = lab::up(&req, &templates)?;
            if ctx.ui.json {
                ctx.ui
                    .json_result(Exit::Ok, serde_json::json!({ "command": "lab up", "lab": state }));
            } else {
                for h in &state.hosts {
                    ctx.ui
                        .info(&format!("{:<12} {:<15} {}  {}", h.name, h.ip, h.role, h.fingerprint));
                }
                ctx.ui.info(&format!(
                    "lab \"{}\" is up: inventory {} (host keys already pinned). Try: cloudctl -i {} run -- uname -n",
                    state.name,
                    state.inventory.display(),
                    state.inventory.display()
                ));
            }
            Ok(Exit::Ok)
        }
        LabCommand::Status { name } => {
            let (state, health) = lab::status(&name)?;
            let healthy = health
                .iter()
                .all(|h| h.netns_present && h.sshd_running && h.ssh_port_open);
            let exit = if healthy { Exit::Ok } else { Exit::Unreachable };
            if ctx.ui.json {
                ctx.ui.json_result(
                    exit,
                    serde_json::json!({ "command": "lab status", "lab": state, "health": health }),
                );
            } else {
                println!(
                    "lab \"{}\" on {} (inventory {})",
                    state.name,
                    state.subnet,
                    state.inventory.display()
                );
                for (h, s) in state.hosts.iter().zip(&health) {
                    let word = if s.netns_present && s.sshd_running && s.ssh_port_open {
                        "up"
                    } else {
                        "DOWN"
                    };
                    println!(
                        "{:<12} {:<15} {:<4} netns={} sshd={} port22={}",
                        h.name, h.ip, word, s.netns_present, s.sshd_running, s.ssh_port_open
                    );
                }
            }
            Ok(exit)
        }
        LabCommand::Down { name } => {
            if ctx.dry_run {
                ctx.ui.info(&format!("dry run: would remove lab \"{name}\""));
                return Ok(Exit::Ok);
            }
            let lines = lab::down(&name)?;
            if ctx.ui.json {
                ctx.ui
                    .json_result(Exit::Ok, serde_json::json!({ "command": "lab down", "removed": lines }));
            } else {
                for l in lines {
                    ctx.ui.info(&l);
                }
            }
            Ok(Exit::Ok)
        }
    }
}
