//! `config status` output: one line per ConfigNode on stdout, its problems under it (or one
//! JSON document).

use super::Ui;
use crate::error::Exit;
use crate::plan::confignode_status::Status;

pub fn status(ui: &Ui, status: &Status, exit: Exit) {
    if ui.json {
        let mut body = serde_json::to_value(status).unwrap_or_default();
        body["command"] = "config status".into();
        ui.json_result(exit, body);
        return;
    }
    let short = |s: &Option<String>| s.as_deref().map(|h| h[..h.len().min(12)].to_string());
    crate::outln!(
        "{:<12} {:<9} {:<8} {:<10} {:<11} {:<38} {:<9} TREE",
        "CONFIGNODE",
        "FLOATING",
        "DHCPD",
        "TFTPD",
        "KEEPALIVED",
        "FAILOVER (own/partner)",
        "HOSTS"
    );
    for n in &status.nodes {
        let f = &n.facts;
        let on = |b: bool, yes: &str| if b { yes.to_string() } else { "-".to_string() };
        let (dhcpd, tftpd, keepalived, hosts) = if n.reachable {
            (
                if f.dhcpd_running { "running" } else { "STOPPED" },
                if f.tftpd_listening { "listening" } else { "DOWN" },
                if !status.pair {
                    "-"
                } else if f.keepalived_running {
                    "running"
                } else {
                    "STOPPED"
                },
                if n.hosts_in_sync { "in sync" } else { "BEHIND" },
            )
        } else {
            ("?", "?", "?", "?")
        };
        crate::outln!(
            "{:<12} {:<9} {:<8} {:<10} {:<11} {:<38} {:<9} {}",
            n.name,
            if n.reachable {
                on(f.holds_floating, "holds")
            } else {
                "?".into()
            },
            dhcpd,
            tftpd,
            keepalived,
            f.failover
                .as_ref()
                .map(|(m, p)| format!("{m}/{p}"))
                .unwrap_or_else(|| "-".into()),
            hosts,
            short(&f.tree_sha256).unwrap_or_else(|| "-".into())
        );
        for p in &n.problems {
            crate::outln!("  {p}");
        }
    }
    for p in &status.problems {
        crate::outln!("{p}");
    }
    let holder = match (status.pair, status.holder.as_slice()) {
        (false, _) => String::new(),
        (true, [one]) => format!("; {} holds {}", one, status.floating.as_deref().unwrap_or("")),
        (true, _) => String::new(),
    };
    ui.info(&format!(
        "config status: {}{holder}",
        if status.in_sync { "in sync" } else { "NOT in sync" }
    ));
}
