//! Planner for `hnode poweroff`: whether the node may go off (drained, no guest recorded there,
//! none found running there), how (IPMI from the ConfigNode when the node has a BMC, else
//! `poweroff` on the node over SSH), and the bounded wait until it stops answering ping. Pure.

use super::hnode::{ipmi_steps, IpmiPower};
use super::{strings, CommandStep, HostPlan, Plan, Step, When};
use crate::error::Error;
use crate::inventory::{Host, Node};
use crate::plan::instance::probe::GuestSeen;
use crate::plan::wait::{Reading, WaitStep};
use serde::Serialize;

/// How the node is switched off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// `ipmitool chassis power soft` from the ConfigNode (an ACPI power-button press).
    Ipmi,
    /// `poweroff` on the node itself, over SSH.
    Ssh,
}

/// IPMI when the node has a BMC in the inventory, else SSH.
pub fn method(node: &Node) -> Method {
    if node.ipmi.is_some() {
        Method::Ipmi
    } else {
        Method::Ssh
    }
}

/// Why the node must stay on, or nothing. `recorded`: guests the inventory puts on the node;
/// `seen`: what the node itself reports running (any copy that holds memory counts).
pub fn refusal(name: &str, drained: bool, recorded: &[String], seen: &[GuestSeen]) -> Option<String> {
    let mut running: Vec<String> = seen
        .iter()
        .filter(|g| g.state.is_live())
        .map(|g| format!("{} ({})", g.name, g.state.as_str()))
        .collect();
    running.sort();
    let mut why = Vec::new();
    if !recorded.is_empty() {
        why.push(format!("guests recorded on it: {}", recorded.join(", ")));
    }
    if !running.is_empty() {
        why.push(format!("guests running on it: {}", running.join(", ")));
    }
    if !why.is_empty() {
        return Some(format!(
            "{name} still has guests ({}); nothing was changed. Move them off first with `cloudctl hnode evacuate {name}` (a stopped guest: `cloudctl instance remove NAME`, or move its record)",
            why.join("; ")
        ));
    }
    (!drained).then(|| {
        format!(
            "{name} is not drained, so placement could put a guest on it while it goes down; nothing was changed. Run `cloudctl hnode drain {name}` first"
        )
    })
}

/// The remote program that switches a node off over SSH: detached and a moment later, so that
/// the SSH session that started it ends cleanly first. `poweroff` asks the node's init to shut
/// down (systemd, sysvinit and busybox init alike); `shutdown -h now` is the older spelling.
pub const SSH_POWEROFF: &str = "(trap '' HUP; sleep 2; poweroff || shutdown -h now) </dev/null >/dev/null 2>&1 &";

/// The steps that switch `node` off: on the ConfigNode (`confignode`) for IPMI, else on the
/// node (`target`). `ipmi_password` is read from the node's `ipmi.password_file` for IPMI.
pub fn plan(
    node: &Node,
    target: &Host,
    confignode: &Host,
    method: Method,
    ipmi_password: Option<Vec<u8>>,
) -> Result<Plan, Error> {
    let name = node.name.get_ref();
    let (host, steps) = match method {
        Method::Ipmi => {
            let password =
                ipmi_password.ok_or_else(|| Error::Usage(format!("node {name}: no IPMI password was read")))?;
            (confignode.clone(), ipmi_steps(node, password, IpmiPower::Soft)?)
        }
        Method::Ssh => (
            target.clone(),
            vec![Step::Command(CommandStep {
                argv: strings(&["sh", "-c", SSH_POWEROFF]),
                when: When::Always,
            })],
        ),
    };
    Ok(Plan {
        title: format!(
            "power off hardware node {name} ({})",
            match method {
                Method::Ipmi => "IPMI chassis power soft, from the ConfigNode",
                Method::Ssh => "poweroff over SSH",
            }
        ),
        hosts: vec![HostPlan {
            host,
            exclusive: true,
            steps,
        }],
        // The command asks for the node's name first (a destructive step).
        confirm: false,
        redact: Vec::new(),
    })
}

/// `wait-off.sh ADDRESS` (scripts/hnode/wait-off.sh), for the ConfigNode: read-only, one round
/// of the wait (at most three pings); prints `off`, `answering` or `no-ping`.
pub const WAIT_OFF: &str = include_str!("../../scripts/hnode/wait-off.sh");

/// One round of the wait as one line for the ConfigNode: the program and its address, quoted.
pub fn wait_script(address: &str) -> String {
    crate::shell::sh_c(WAIT_OFF, &[address]) + "\n"
}

/// The wait, from the ConfigNode, until node `name` at `address` stops answering ping, bounded
/// by `limit_secs`: polled by the executor. Its outcome is what the last round read (`off`,
/// `no-ping`), or `answering` when the time ran out: a node still answering is reported, not an
/// error of the wait.
pub fn wait_step(name: &str, address: &str, limit_secs: u64) -> WaitStep {
    WaitStep {
        what: format!("{name} to stop answering ping"),
        setup: None,
        probe: wait_script(address),
        every_ms: 1000,
        timeout_secs: limit_secs,
        reading: Reading::Outcome {
            ends: strings(&["off", "no-ping"]),
            at_timeout: "answering".into(),
        },
        timed_out: None,
    }
}

/// What the wait saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Waited {
    Off,
    StillAnswering,
    /// The ConfigNode has no `ping`.
    NoPing,
}

pub fn parse_wait(out: &str) -> Waited {
    match super::wait::last_word(out) {
        Some("off") => Waited::Off,
        Some("no-ping") => Waited::NoPing,
        _ => Waited::StillAnswering,
    }
}
