//! `lamp status` output: one block per LAMP node on stdout (or one JSON document).

use super::Ui;
use crate::error::Exit;
use crate::plan::lamp::status::NodeStatus;

pub fn status(ui: &Ui, nodes: &[NodeStatus], exit: Exit) {
    if ui.json {
        let healthy = nodes.iter().all(|n| n.healthy());
        ui.json_result(
            exit,
            serde_json::json!({ "command": "lamp status", "healthy": healthy, "nodes": nodes }),
        );
        return;
    }
    for n in nodes {
        crate::outln!("{} ({}) {}", n.name, n.roles.join(", "), n.address);
        if let Some(e) = &n.error {
            crate::outln!("  unreachable: {e}");
        }
        for c in &n.components {
            crate::outln!("  {:<5} {:<18} {}", if c.up { "up" } else { "DOWN" }, c.name, c.detail);
        }
        for b in &n.backends {
            crate::outln!(
                "  {:<5} backend {:<21} {} open connection(s), {} bytes sent, {} received",
                if b.answers { "up" } else { "DOWN" },
                b.address,
                b.connections,
                b.sent,
                b.received
            );
        }
    }
    let down = nodes.iter().filter(|n| !n.healthy()).count();
    if down == 0 {
        ui.info("lamp status: every component is up");
    } else {
        ui.info(&format!(
            "lamp status: {down} node(s) with a component down or unreachable"
        ));
    }
}
