//! Final reports: per-host results of an apply or a `run`, human or JSON.

use super::progress::status_word;
use super::Ui;
use crate::error::Exit;
use crate::exec::script::StepStatus;
use crate::exec::{HostReport, HostStatus};
use std::collections::BTreeMap;

/// Hosts per status, keyed by the status's JSON name.
fn counts(reports: &[HostReport]) -> BTreeMap<String, usize> {
    let mut c = BTreeMap::new();
    for r in reports {
        let key = serde_json::to_value(r.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        *c.entry(key).or_insert(0) += 1;
    }
    c
}

fn summary_line(reports: &[HostReport]) -> String {
    let c = counts(reports);
    let parts: Vec<String> = c.iter().map(|(k, n)| format!("{n} {k}")).collect();
    format!(
        "{} host{}: {}",
        reports.len(),
        if reports.len() == 1 { "" } else { "s" },
        parts.join(", ")
    )
}

/// Why a host did not end well, step by step.
fn host_problem_lines(r: &HostReport) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(e) = &r.error {
        lines.push(format!("{}: {e}", r.name));
    }
    for s in &r.steps {
        let what = match s.result.status {
            StepStatus::Failed => "failed",
            StepStatus::Invalid => "refused by validator (old file left in place)",
            _ => continue,
        };
        let rc = s.result.exit_status.map(|c| format!(" (exit {c})")).unwrap_or_default();
        lines.push(format!("{}: {} {what}{rc}", r.name, s.step));
        for l in s.result.stderr.lines().chain(s.result.stdout.lines()) {
            lines.push(format!("{}:   {l}", r.name));
        }
    }
    lines
}

/// What cloudctl's own remote programs said of steps that went well (their stderr lines that
/// start with `cloudctl: `, e.g. a live change that fell back to a restart).
fn host_notice_lines(r: &HostReport) -> Vec<String> {
    r.steps
        .iter()
        .filter(|s| matches!(s.result.status, StepStatus::Ok | StepStatus::Changed))
        .flat_map(|s| s.result.stderr.lines().filter(|l| l.starts_with("cloudctl: ")))
        .map(|l| format!("{}: {}", r.name, l.trim_start_matches("cloudctl: ")))
        .collect()
}

/// Report of a plan applied to hosts.
pub fn apply(ui: &Ui, title: &str, reports: &[HostReport], exit: Exit) {
    if ui.json {
        ui.json_result(
            exit,
            serde_json::json!({ "command": title, "summary": counts(reports), "hosts": reports }),
        );
        return;
    }
    for r in reports {
        let problems = host_problem_lines(r);
        for l in problems.iter().chain(&host_notice_lines(r)) {
            eprintln!("{l}");
        }
        if ui.verbose > 0 {
            for s in &r.steps {
                eprintln!("{}: {}: {}", r.name, s.step, s.result.status.as_str());
            }
        }
    }
    let nothing_changed = reports.iter().all(|r| r.status == HostStatus::Ok);
    if nothing_changed {
        ui.info(&format!("{title}: no changes ({})", summary_line(reports)));
    } else {
        ui.info(&format!("{title}: {}", summary_line(reports)));
    }
}

/// Report of `cloudctl run`: each host's output, prefixed with its name, then its exit status.
pub fn run(ui: &Ui, reports: &[HostReport], exit: Exit) {
    if ui.json {
        let hosts: Vec<_> = reports
            .iter()
            .map(|r| {
                let step = r.steps.first().map(|s| &s.result);
                serde_json::json!({
                    "name": r.name,
                    "address": r.address,
                    "status": r.status,
                    "exit_status": step.and_then(|s| s.exit_status),
                    "stdout": step.map(|s| s.stdout.as_str()).unwrap_or(""),
                    "stderr": step.map(|s| s.stderr.as_str()).unwrap_or(""),
                    "error": r.error,
                    "elapsed_ms": r.elapsed_ms,
                })
            })
            .collect();
        ui.json_result(
            exit,
            serde_json::json!({ "command": "run", "summary": counts(reports), "hosts": hosts }),
        );
        return;
    }
    let width = reports.iter().map(|r| r.name.len()).max().unwrap_or(0);
    for r in reports {
        if let Some(s) = r.steps.first() {
            for l in s.result.stdout.lines() {
                crate::outln!("{:width$} | {l}", r.name);
            }
            for l in s.result.stderr.lines() {
                eprintln!("{:width$} ! {l}", r.name);
            }
        }
        let end = match (r.status, r.steps.first().and_then(|s| s.result.exit_status)) {
            (HostStatus::Ok | HostStatus::Failed, Some(code)) => format!("exit {code}"),
            (status, _) => match &r.error {
                Some(e) => format!("{}: {e}", status_word(status)),
                None => status_word(status).to_string(),
            },
        };
        if !ui.quiet || r.status != HostStatus::Ok {
            eprintln!("{:width$} = {end}", r.name);
        }
    }
    ui.info(&summary_line(reports));
}
