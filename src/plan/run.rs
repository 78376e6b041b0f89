//! Planner for `cloudctl run`: one command on each selected host. Pure.

use super::{CommandStep, HostPlan, Plan, Step, When};
use crate::inventory::Host;

/// A single argument is a shell command line (pipes, globs); several are an exact argv.
pub fn plan(hosts: &[Host], command: &[String]) -> Plan {
    let argv = match command {
        [line] => vec!["sh".to_string(), "-c".to_string(), line.clone()],
        argv => argv.to_vec(),
    };
    Plan {
        title: format!("run `{}`", command.join(" ")),
        confirm: false,
        redact: Vec::new(),
        hosts: hosts
            .iter()
            .map(|h| HostPlan {
                host: h.clone(),
                exclusive: false,
                steps: vec![Step::Command(CommandStep {
                    argv: argv.clone(),
                    when: When::Always,
                })],
            })
            .collect(),
    }
}
