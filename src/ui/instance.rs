//! Printing for `instance`: the guest table, migration progress and outcome, create's result.

use super::Ui;
use crate::error::{Error, Exit};
use crate::exec::HostReport;
use crate::inventory::{Host, Inventory};
use crate::inventory_file::NewInstance;
use crate::plan::instance::migrate::{Moved, NotMoved, Progress, Verdict};
use crate::plan::instance::probe::{GuestSeen, GuestState};
use serde::Serialize;
use std::time::Duration;

/// One line of `instance list`.
#[derive(Debug, Serialize)]
pub struct Row {
    pub name: String,
    /// Where the inventory records it.
    pub recorded_on: Option<String>,
    /// Where the nodes report a copy of it, with that copy's state.
    pub found: Vec<(String, GuestState)>,
    pub state: String,
    pub memory: Option<u32>,
    pub ip: Option<String>,
    pub note: Option<String>,
}

/// Joins the inventory's records with what the nodes report.
pub fn rows(inv: &Inventory, seen: &[(Host, Result<Vec<GuestSeen>, Error>)]) -> Vec<Row> {
    let found_of = |name: &str| -> Vec<(String, GuestState)> {
        seen.iter()
            .filter_map(|(h, r)| r.as_ref().ok().map(|g| (h, g)))
            .flat_map(|(h, g)| g.iter().filter(|s| s.name == name).map(|s| (h.name.clone(), s.state)))
            .collect()
    };
    let mut rows: Vec<Row> = inv
        .instance
        .iter()
        .map(|rec| {
            let name = rec.name.get_ref().to_string();
            let recorded = rec.hnode.get_ref().to_string();
            let found = found_of(&name);
            let running: Vec<&String> = found
                .iter()
                .filter(|(_, s)| *s == GuestState::Running)
                .map(|(n, _)| n)
                .collect();
            let state = match found.iter().find(|(n, _)| *n == recorded) {
                Some((_, s)) => s.as_str().to_string(),
                None if running.is_empty() => "stopped".into(),
                None => "elsewhere".into(),
            };
            let note = match running.as_slice() {
                [] | [_] if running.iter().all(|n| **n == recorded) => None,
                [one] => Some(format!(
                    "runs on {one}, recorded on {recorded}: run `cloudctl instance migrate {name} --cleanup`"
                )),
                _ => Some(format!(
                    "running on several nodes ({}): split brain",
                    running.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
                )),
            };
            Row {
                name,
                recorded_on: Some(recorded),
                found,
                state,
                memory: Some(rec.memory),
                ip: Some(rec.ip.get_ref().to_string()),
                note,
            }
        })
        .collect();
    for (h, r) in seen {
        for s in r.as_ref().map(|v| v.as_slice()).unwrap_or(&[]) {
            if !rows.iter().any(|row| row.name == s.name) {
                rows.push(Row {
                    name: s.name.clone(),
                    recorded_on: None,
                    found: vec![(h.name.clone(), s.state)],
                    state: s.state.as_str().into(),
                    memory: None,
                    ip: None,
                    note: Some("not in the inventory".into()),
                });
            }
        }
    }
    rows
}

pub fn list(ui: &Ui, rows: &[Row], seen: &[(Host, Result<Vec<GuestSeen>, Error>)], exit: Exit) {
    let unreachable: Vec<String> = seen
        .iter()
        .filter_map(|(h, r)| r.as_ref().err().map(|e| format!("{}: {e}", h.name)))
        .collect();
    if ui.json {
        ui.json_result(
            exit,
            serde_json::json!({ "command": "instance list", "instances": rows, "unreachable": unreachable }),
        );
        return;
    }
    let dash = |o: &Option<String>| o.clone().unwrap_or_else(|| "-".into());
    crate::outln!(
        "{:<16} {:<12} {:<13} {:>7} {:<16} NOTE",
        "NAME",
        "HNODE",
        "STATE",
        "MEMORY",
        "IP"
    );
    for r in rows {
        let node = r
            .found
            .iter()
            .find(|(_, s)| *s == GuestState::Running)
            .map(|(n, _)| n.clone())
            .or_else(|| r.recorded_on.clone());
        crate::outln!(
            "{:<16} {:<12} {:<13} {:>7} {:<16} {}",
            r.name,
            dash(&node),
            r.state,
            r.memory.map(|m| format!("{m}M")).unwrap_or_else(|| "-".into()),
            dash(&r.ip),
            r.note.clone().unwrap_or_default()
        );
    }
    for u in unreachable {
        eprintln!("warning: could not ask {u}");
    }
}

fn mib(bytes: Option<u64>) -> String {
    bytes
        .map(|b| format!("{:.1}", b as f64 / 1048576.0))
        .unwrap_or_else(|| "?".into())
}

pub fn progress(ui: &Ui, guest: &str, p: &Progress, elapsed: Duration) {
    ui.info(&format!(
        "{} {guest} migrating: {} ({} of {} MiB sent, {} MiB left) +{:.1} s",
        super::timestamp(),
        p.status,
        mib(p.transferred),
        mib(p.total),
        mib(p.remaining),
        elapsed.as_secs_f64()
    ));
}

pub fn migrated(ui: &Ui, m: &Moved) {
    let (name, from, to, p) = (&m.guest, &m.from, &m.to, &m.progress);
    // QEMU reports the migration's figures; xl reports none, so only the wall time is said.
    let figures = match (p.total_time_ms, p.downtime_ms) {
        (Some(total), Some(down)) => format!(
            "migration {total} ms with {down} ms downtime ({} MiB sent), ",
            mib(p.transferred)
        ),
        _ => String::new(),
    };
    ui.info(&format!(
        "{name} migrated from {from} to {to}: it runs on {to}, nothing is left on {from}; {figures}{:.1} s in all",
        m.elapsed.as_secs_f64()
    ));
    if let Some(s) = m.left {
        ui.warn(&format!(
            "a copy of {name} is still {} on {from}; run `cloudctl instance migrate {name} --cleanup`",
            s.as_str()
        ));
    }
}

/// One migration's fields in JSON (`instance migrate`'s document, an evacuation's entries).
pub fn moved_fields(m: &Moved) -> serde_json::Value {
    let p = &m.progress;
    serde_json::json!({ "instance": m.guest, "from": m.from, "to": m.to,
                        "migration_ms": p.total_time_ms, "downtime_ms": p.downtime_ms,
                        "transferred_bytes": p.transferred, "seconds": m.elapsed.as_secs_f64(),
                        "left_on_source": m.left })
}

pub fn migrated_json(ui: &Ui, m: &Moved) {
    if ui.json {
        let mut v = moved_fields(m);
        v["command"] = "instance migrate".into();
        ui.json_result(if m.left.is_none() { Exit::Ok } else { Exit::Failed }, v);
    }
}

pub fn aborted(_ui: &Ui, name: &str, source: &str, state: Option<GuestState>) {
    let state = state.map_or("not found".to_string(), |s| s.as_str().to_string());
    eprintln!("{name} on {source}: {state}");
}

pub fn aborted_json(ui: &Ui, n: &NotMoved) {
    if ui.json {
        let state = n.state_on_source.map_or("not found", |s| s.as_str());
        ui.json_result(
            n.exit,
            serde_json::json!({ "command": "instance migrate", "instance": n.guest, "migrated": false, "source": n.source, "state_on_source": state, "why": n.why }),
        );
    }
}

pub fn cleanup_found(ui: &Ui, name: &str, recorded_on: &str, seen: &[(Host, Option<GuestSeen>)], verdict: &Verdict) {
    for (h, s) in seen {
        ui.info(&format!(
            "{}: {}",
            h.name,
            s.as_ref().map_or("no copy of the guest".to_string(), |s| format!(
                "{name} is {}",
                s.state.as_str()
            ))
        ));
    }
    match verdict {
        Verdict::RunsOn(n) if n == recorded_on => ui.info(&format!("{name} runs on {n}, as recorded")),
        Verdict::RunsOn(n) => ui.info(&format!(
            "{name} runs on {n} (the inventory said {recorded_on}); recording {n}"
        )),
        Verdict::Nowhere => ui.warn(&format!(
            "{name} runs nowhere; start it with `cloudctl instance start {name}` once no paused copy is left"
        )),
        Verdict::SplitBrain(nodes) => ui.warn(&format!(
            "{name} runs on {} at once: split brain; nothing was changed — stop all but one by hand",
            nodes.join(" and ")
        )),
    }
}

pub fn created(ui: &Ui, rec: &NewInstance, fingerprint: &str, elapsed: Duration) {
    ui.info(&format!(
        "{} runs on {} ({} MiB, {} vCPU, disk {}, {} {}) after {:.1} s",
        rec.name,
        rec.hnode,
        rec.memory,
        rec.vcpus,
        rec.disk,
        rec.ip,
        rec.mac,
        elapsed.as_secs_f64()
    ));
    ui.info(&format!("{} SSH host key: ED25519 {fingerprint} (pinned)", rec.name));
}

/// `instance create`'s one JSON document; `up_after` is set when it waited for SSH.
pub fn created_json(
    ui: &Ui,
    rec: &NewInstance,
    fingerprint: &str,
    reports: &[HostReport],
    elapsed: Duration,
    up_after: Option<Duration>,
) {
    if ui.json {
        ui.json_result(
            Exit::Ok,
            serde_json::json!({ "command": "instance create", "instance": rec, "host_key_fingerprint": fingerprint,
                                "seconds": elapsed.as_secs_f64(), "up_after_seconds": up_after.map(|d| d.as_secs_f64()),
                                "hosts": reports }),
        );
    }
}

/// A guest answered SSH with its pinned key.
pub fn up(ui: &Ui, name: &str, after: Duration) {
    ui.info(&format!(
        "{name} is up: SSH answers with its pinned host key after {:.1} s",
        after.as_secs_f64()
    ));
}

/// What `instance remove` does with the guest's folder, in a few words.
pub fn disk_fate(dir: &str, disk: &crate::plan::instance::remove::Disk) -> String {
    use crate::plan::instance::remove::Disk;
    match disk {
        Disk::Delete => format!("deleting {dir}"),
        Disk::Keep => format!("keeping {dir}"),
        Disk::Absent => format!("{dir} does not exist"),
    }
}

/// `instance remove`'s plan in words, before the preview or the prompt.
pub fn removal(ui: &Ui, name: &str, node: &str, dir: &str, disk: &crate::plan::instance::remove::Disk) {
    ui.info(&format!(
        "{name}: stop it on {node}, {}, drop its [[instance]] record",
        disk_fate(dir, disk)
    ));
}

pub fn removed(
    ui: &Ui,
    name: &str,
    node: &str,
    dir: &str,
    disk: &crate::plan::instance::remove::Disk,
    reports: &[HostReport],
) {
    ui.info(&format!(
        "{name} removed: stopped on {node}, {}, no longer in the inventory",
        disk_fate(dir, disk)
            .replace("deleting", "deleted")
            .replace("keeping", "kept")
    ));
    if ui.json {
        ui.json_result(
            Exit::Ok,
            serde_json::json!({ "command": "instance remove", "instance": name, "hnode": node,
                                "dir": dir, "disk": disk, "hosts": reports }),
        );
    }
}

/// Where placement puts a guest, and why (also in dry runs).
pub fn placed(ui: &Ui, guest: &str, c: &crate::plan::placement::Choice) {
    ui.info(&format!("placement: {guest} goes to {}: {}", c.node, c.why));
    for s in &c.skipped {
        ui.info(&format!("  not {}: {}", s.node, s.why));
    }
}
