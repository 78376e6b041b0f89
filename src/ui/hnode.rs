//! Printing for the hardware-node verbs that move guests or switch nodes off: drain/undrain,
//! evacuate and poweroff.

use super::Ui;
use crate::error::Exit;
use crate::plan::evacuate::Evacuation;
use crate::plan::instance::migrate::{Moved, NotMoved};
use crate::plan::poweroff::{Method, Waited};
use std::time::Duration;

pub fn drained(ui: &Ui, name: &str, drained: bool, changed: bool, dry_run: bool, guests: &[String]) {
    let state = if drained { "drained" } else { "not drained" };
    let what = match (changed, dry_run) {
        (false, _) => format!("{name} is already {state}: no changes"),
        (true, true) => format!("{name} would be marked {state} (dry run: nothing was changed)"),
        (true, false) => format!("{name} is now {state}"),
    };
    ui.info(&what);
    if drained && !guests.is_empty() {
        ui.info(&format!(
            "guests recorded on {name}: {} (`cloudctl hnode evacuate {name}` moves them off)",
            guests.join(", ")
        ));
    }
    if ui.json {
        ui.json_result(
            Exit::Ok,
            serde_json::json!({ "command": if drained { "hnode drain" } else { "hnode undrain" }, "node": name,
                                "drained": drained, "changed": changed && !dry_run, "dry_run": dry_run, "guests": guests }),
        );
    }
}

/// The evacuation plan: where each guest goes and why, what stays.
pub fn evacuation_plan(ui: &Ui, e: &Evacuation) {
    for m in &e.moves {
        ui.info(&format!("{} → {}: {}", m.guest, m.to, m.why));
    }
    for s in &e.stuck {
        ui.warn(&format!("{} stays on {}: {}", s.guest, e.node, s.why));
    }
    for s in &e.stopped {
        ui.info(&format!(
            "{s} is not running: nothing to move (it stays recorded on {})",
            e.node
        ));
    }
}

/// One guest's outcome in an evacuation.
pub enum GuestOutcome<'a> {
    Moved(&'a Moved),
    Stayed(&'a NotMoved),
    NotStarted(&'a str),
}

pub fn evacuated(ui: &Ui, e: &Evacuation, results: &[GuestOutcome], wall: Duration, dry_run: bool, exit: Exit) {
    let mut rows = Vec::new();
    let mut sum = 0.0;
    for r in results {
        match r {
            GuestOutcome::Moved(m) => {
                sum += m.elapsed.as_secs_f64();
                ui.info(&format!(
                    "  {:<16} moved to {} in {:.1} s (downtime {})",
                    m.guest,
                    m.to,
                    m.elapsed.as_secs_f64(),
                    m.progress
                        .downtime_ms
                        .map_or("not reported".into(), |d| format!("{d} ms"))
                ));
                let mut v = super::instance::moved_fields(m);
                v["outcome"] = "moved".into();
                rows.push(v);
            }
            GuestOutcome::Stayed(n) => {
                ui.warn(&format!(
                    "  {:<16} stays on {} ({}): {}",
                    n.guest,
                    n.source,
                    n.state_on_source.map_or("not found", |s| s.as_str()),
                    n.why
                ));
                rows.push(
                    serde_json::json!({ "instance": n.guest, "outcome": "stayed", "on": n.source,
                                              "state": n.state_on_source, "why": n.why }),
                );
            }
            GuestOutcome::NotStarted(g) => {
                ui.warn(&format!("  {g:<16} not started (interrupted): stays on {}", e.node));
                rows.push(serde_json::json!({ "instance": g, "outcome": "not_started", "on": e.node }));
            }
        }
    }
    for s in &e.stuck {
        rows.push(serde_json::json!({ "instance": s.guest, "outcome": "stayed", "on": e.node, "why": s.why }));
    }
    for s in &e.stopped {
        rows.push(serde_json::json!({ "instance": s, "outcome": "stopped", "on": e.node }));
    }
    if !dry_run {
        let moved = results.iter().filter(|r| matches!(r, GuestOutcome::Moved(_))).count();
        ui.info(&format!(
            "evacuated {moved} of {} running guests from {} in {:.1} s (the migrations themselves took {sum:.1} s added up)",
            e.moves.len() + e.stuck.len(),
            e.node,
            wall.as_secs_f64()
        ));
    }
    if ui.json {
        ui.json_result(
            exit,
            serde_json::json!({ "command": "hnode evacuate", "node": e.node, "dry_run": dry_run, "plan": e,
                                "guests": rows, "seconds": wall.as_secs_f64(), "migration_seconds_sum": sum }),
        );
    }
}

/// The checks `hnode poweroff` passed, and how it will switch the node off.
pub fn poweroff_checked(ui: &Ui, name: &str, method: Method) {
    ui.info(&format!(
        "{name} is drained and has no guest (none recorded there, none running there); it is switched off {}",
        match method {
            Method::Ipmi => "by IPMI (chassis power soft) from the ConfigNode",
            Method::Ssh => "by `poweroff` on it over SSH",
        }
    ));
}

/// The outcome of `hnode poweroff` once the request was sent; returns its exit code.
pub fn powered_off(
    ui: &Ui,
    name: &str,
    method: Method,
    waited: Option<Waited>,
    took: Duration,
    limit: Duration,
    applied: serde_json::Value,
) -> Exit {
    let secs = took.as_secs_f64();
    let exit = match waited {
        None => {
            ui.info(&format!("{name}: asked to power off (not waited for)"));
            Exit::Ok
        }
        Some(Waited::Off) => {
            ui.info(&format!(
                "{name} is off: no answer to ping from the ConfigNode after {secs:.1} s"
            ));
            Exit::Ok
        }
        Some(Waited::StillAnswering) => {
            ui.warn(&format!(
                "{name} still answers ping after {} s: it may still be shutting down, or it ignored the request (look at its console{})",
                limit.as_secs(),
                if method == Method::Ipmi { " or its BMC" } else { "" }
            ));
            Exit::Failed
        }
        Some(Waited::NoPing) => {
            ui.warn(&format!(
                "the ConfigNode has no ping, so cloudctl cannot tell whether {name} is off (apt-get install iputils-ping there)"
            ));
            Exit::Failed
        }
    };
    if ui.json {
        ui.json_result(
            exit,
            serde_json::json!({ "command": "hnode poweroff", "node": name, "method": method,
                                "waited": waited, "off": waited == Some(Waited::Off), "seconds": secs, "apply": applied }),
        );
    }
    exit
}
