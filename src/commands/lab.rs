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
    // A name no lab can have is a usage error (exit 2) for every lab command, as for `lab up`.
    let name = match &cmd {
        LabCommand::Up { name, .. }
        | LabCommand::Status { name }
        | LabCommand::PowerOff { name, .. }
        | LabCommand::PowerOn { name, .. }
        | LabCommand::PowerButton { name, .. }
        | LabCommand::BmcChassis { name, .. }
        | LabCommand::PowerListen { name }
        | LabCommand::Down { name } => name,
    };
    lab::validate_name(name).map_err(Error::Usage)?;
    match cmd {
        LabCommand::Up {
            hosts,
            name,
            subnet,
            vms,
            vm_disk_mib,
        } => {
            let subnet: Cidr = match subnet {
                Some(s) => s.parse().map_err(|e: String| Error::Usage(format!("--subnet: {e}")))?,
                None => {
                    let chosen = lab::choose_subnet().map_err(|e| Error::Usage(format!("{e:#}")))?;
                    ctx.ui.info(&format!(
                        "lab subnet: {chosen}, the first /24 of 10.201.0.0/16 that no interface, route or other lab on this machine uses (--subnet picks another)"
                    ));
                    chosen
                }
            };
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
                vms,
                vm_disk_mib,
                power_exe: std::env::current_exe().ok(),
            };
            // Refusals (name taken, subnet in use, a user's inventory in the way) touch nothing.
            lab::preflight(&req).map_err(|e| Error::Usage(format!("{e:#}")))?;
            if ctx.dry_run {
                let (name, n, subnet, inv) = (&req.name, req.hosts, req.subnet, req.inventory.display());
                let vms = req.vms.len();
                ctx.ui.info(&format!(
                    "dry run: would create lab \"{name}\" with {n} hosts and {vms} VMs on {subnet} and write {inv}"
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
                for v in &state.vms {
                    ctx.ui.info(&format!(
                        "{:<12} {:<15} {} VM {} (off; `cloudctl node boot {}` switches it on)",
                        v.name,
                        v.ip,
                        v.role.as_str(),
                        v.mac,
                        v.name
                    ));
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
            let lab::Status {
                state,
                hosts: health,
                vms,
                power_listener,
            } = lab::status(&name)?;
            // A VM that is off is not a fault (it waits for `node boot`); a missing listener is.
            let healthy = health
                .iter()
                .all(|h| h.netns_present && h.sshd_running && h.ssh_port_open)
                && (state.vms.is_empty() || power_listener.is_some());
            let exit = if healthy { Exit::Ok } else { Exit::Unreachable };
            if ctx.ui.json {
                ctx.ui.json_result(
                    exit,
                    serde_json::json!({ "command": "lab status", "lab": state, "health": health, "vms": vms, "power_listener_pid": power_listener }),
                );
            } else {
                crate::outln!(
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
                    crate::outln!(
                        "{:<12} {:<15} {:<4} netns={} sshd={} port22={}",
                        h.name,
                        h.ip,
                        word,
                        s.netns_present,
                        s.sshd_running,
                        s.ssh_port_open
                    );
                }
                for (v, s) in state.vms.iter().zip(&vms) {
                    let word = if s.powered { "on" } else { "off" };
                    let pid = s.qemu_pid.map(|p| format!(" qemu={p}")).unwrap_or_default();
                    crate::outln!(
                        "{:<12} {:<15} {:<4} VM {} mac={}{pid} port22={} console={}",
                        v.name,
                        v.ip,
                        word,
                        v.role.as_str(),
                        v.mac,
                        s.ssh_port_open,
                        v.console().display()
                    );
                }
                if !state.vms.is_empty() {
                    match power_listener {
                        Some(pid) => crate::outln!("power listener (Wake-on-LAN on {}): pid {pid}", state.bridge),
                        None => crate::outln!("power listener: NOT RUNNING (VMs cannot be switched on)"),
                    }
                }
            }
            Ok(exit)
        }
        LabCommand::PowerOff { name, vm } => {
            if ctx.dry_run {
                ctx.ui
                    .info(&format!("dry run: would switch VM {vm} of lab \"{name}\" off"));
                return Ok(Exit::Ok);
            }
            let was_on = lab::power_off(&name, &vm).map_err(|e| Error::Usage(format!("{e:#}")))?;
            let what = if was_on {
                "switched off (QEMU killed)"
            } else {
                "was already off"
            };
            if ctx.ui.json {
                ctx.ui.json_result(
                    Exit::Ok,
                    serde_json::json!({ "command": "lab power-off", "vm": vm, "changed": was_on }),
                );
            } else {
                ctx.ui.info(&format!("{vm}: {what}"));
            }
            Ok(Exit::Ok)
        }
        LabCommand::PowerOn { name, vm } => {
            if ctx.dry_run {
                ctx.ui
                    .info(&format!("dry run: would switch VM {vm} of lab \"{name}\" on"));
                return Ok(Exit::Ok);
            }
            let (pid, was_off) = lab::power_on(&name, &vm).map_err(|e| Error::Usage(format!("{e:#}")))?;
            if ctx.ui.json {
                ctx.ui.json_result(
                    Exit::Ok,
                    serde_json::json!({ "command": "lab power-on", "vm": vm, "changed": was_off, "pid": pid }),
                );
            } else if was_off {
                ctx.ui.info(&format!("{vm}: switched on (QEMU pid {pid})"));
            } else {
                ctx.ui.info(&format!("{vm}: was already on (QEMU pid {pid})"));
            }
            Ok(Exit::Ok)
        }
        LabCommand::PowerButton { name, vm } => {
            if ctx.dry_run {
                ctx.ui.info(&format!(
                    "dry run: would press the power button of VM {vm} of lab \"{name}\""
                ));
                return Ok(Exit::Ok);
            }
            let was_on = lab::power_button(&name, &vm).map_err(|e| Error::Usage(format!("{e:#}")))?;
            if ctx.ui.json {
                ctx.ui.json_result(
                    Exit::Ok,
                    serde_json::json!({ "command": "lab power-button", "vm": vm, "changed": was_on }),
                );
            } else if was_on {
                ctx.ui.info(&format!("{vm}: power button pressed (its OS shuts down)"));
            } else {
                ctx.ui.info(&format!("{vm}: is off; nothing pressed"));
            }
            Ok(Exit::Ok)
        }
        LabCommand::BmcChassis { name, vm, request } => lab::bmc::chassis(&name, &vm, &request),
        LabCommand::PowerListen { name } => {
            lab::power::listen(&name)?;
            Ok(Exit::Ok)
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
