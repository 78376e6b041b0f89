//! `node list` output: the inventory's nodes as a table on stdout (or one JSON document).

use super::Ui;
use crate::error::Exit;
use crate::inventory::Role;
use serde::Serialize;

/// One node as the inventory declares it (fields in the order of the JSON document).
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub name: String,
    pub role: Role,
    pub mac: Option<String>,
    pub ip: Option<String>,
    /// The boot profile it gets (its own, or its role's).
    pub profile: Option<String>,
    /// Where cloudctl connects, when the node overrides its ip.
    pub address: Option<String>,
}

pub fn list(ui: &Ui, rows: &[Row]) {
    if ui.json {
        ui.json_result(Exit::Ok, serde_json::json!({ "command": "node list", "nodes": rows }));
        return;
    }
    let cell = |v: &Option<String>| v.as_deref().unwrap_or("-").to_string();
    crate::outln!("{:<16} {:<6} {:<18} {:<16} PROFILE", "NAME", "ROLE", "MAC", "IP");
    for r in rows {
        crate::outln!(
            "{:<16} {:<6} {:<18} {:<16} {}",
            r.name,
            r.role.as_str(),
            cell(&r.mac),
            cell(&r.ip),
            cell(&r.profile)
        );
    }
}
