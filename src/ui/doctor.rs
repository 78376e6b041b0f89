//! Printing for `doctor`: each finding with its fix, or that the cloud looks healthy.

use super::Ui;
use crate::error::Exit;
use crate::plan::doctor::Finding;

pub fn report(ui: &Ui, findings: &[Finding], hosts: usize, exit: Exit) {
    if ui.json {
        ui.json_result(
            exit,
            serde_json::json!({ "command": "doctor", "hosts_checked": hosts, "findings": findings }),
        );
        return;
    }
    for f in findings {
        eprintln!("{} [{}]: {}\n  fix: {}", f.subject, f.check, f.problem, f.fix);
    }
    if findings.is_empty() {
        ui.info(&format!("doctor: {hosts} hosts checked, no problems found"));
    } else {
        eprintln!("doctor: {hosts} hosts checked, {} problem(s) found", findings.len());
    }
}
