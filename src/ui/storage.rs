//! `storage status` output: one row per storage node on stdout, its problems on stderr (or one
//! JSON document).

use super::Ui;
use crate::error::{Error, Exit};
use crate::plan::storage_status::NodeStatus;

/// `nodes`: each storage node's name and its status, or why it could not be read.
pub fn status(ui: &Ui, nodes: &[(String, Result<NodeStatus, Error>)], exit: Exit) {
    let rows: Vec<serde_json::Value> = nodes.iter().map(|(node, st)| row(node, st)).collect();
    if ui.json {
        ui.json_result(exit, serde_json::json!({ "command": "storage status", "nodes": rows }));
        return;
    }
    let cell = |r: &serde_json::Value, k: &str| r[k].as_str().unwrap_or("-").to_string();
    crate::outln!(
        "{:<12} {:<14} {:<10} {:<14} {:<22} {:<7} AOE",
        "NODE",
        "MD",
        "ROLE",
        "CONNECTION",
        "DISK",
        "SYNC"
    );
    for r in &rows {
        if let Some(e) = r["error"].as_str() {
            crate::outln!("{:<12} {e}", cell(r, "node"));
            continue;
        }
        crate::outln!(
            "{:<12} {:<14} {:<10} {:<14} {:<22} {:<7} {}",
            cell(r, "node"),
            cell(r, "md"),
            cell(r, "drbd_role"),
            cell(r, "drbd_cstate"),
            cell(r, "drbd_dstate"),
            cell(r, "drbd_sync"),
            cell(r, "aoe")
        );
    }
    for r in &rows {
        for p in r["problems"].as_array().into_iter().flatten() {
            ui.info(&format!("{}: {}", cell(r, "node"), p.as_str().unwrap_or_default()));
        }
    }
    if exit == Exit::Ok {
        ui.info("storage: healthy (both nodes connected, UpToDate, primary, exporting)");
    }
}

/// A node as one JSON object: its probe's fields as they came (users' scripts read them by
/// name), whether it is healthy, its problems, and the error when it could not be read.
fn row(node: &str, st: &Result<NodeStatus, Error>) -> serde_json::Value {
    let mut row = serde_json::Map::new();
    row.insert("node".into(), node.into());
    match st {
        Ok(st) => {
            for (k, v) in &st.fields {
                row.insert(k.clone(), v.as_str().into());
            }
            row.insert("healthy".into(), st.problems.is_empty().into());
            row.insert("problems".into(), st.problems.clone().into());
        }
        Err(e) => {
            row.insert("healthy".into(), false.into());
            row.insert("problems".into(), vec![format!("unreachable: {e}")].into());
            row.insert("error".into(), e.to_string().into());
        }
    }
    serde_json::Value::Object(row)
}
