//! Waiting for a machine to come up (`hnode boot --wait`, `instance create/start --wait`): boot
//! stages seen from an observer host, then SSH with the machine's pinned host key; a timeout names
//! the last stage seen, and a probe tool missing on the observer is named instead of a stage.

use super::Context;
use crate::error::Error;
use crate::exec::{Connector, HostError, Transport};
use crate::inventory::{Host, HostKeyPolicy, Inventory};
use crate::local_tools::Tool;
use crate::ui::timestamp;
use std::time::{Duration, Instant};

/// A stage the probe reports by printing `key` on a line of its own.
pub struct Stage {
    pub key: &'static str,
    pub what: &'static str,
}

/// The last stage: the machine answered SSH with its pinned key.
const SSH: Stage = Stage {
    key: "ssh",
    what: "SSH answers with the pinned host key",
};

/// What to watch: `setup` runs once on `observer`, then `probe` about once a second, after a
/// check that `observer` has `tools` (a missing one is named, not read as a stage not reached);
/// the probe prints the keys of the stages it sees; once the stage `ssh_after` is seen,
/// cloudctl tries SSH to `target`.
pub struct Watch<'a> {
    pub name: &'a str,
    pub observer: &'a Host,
    pub setup: Option<String>,
    pub probe: String,
    pub tools: &'a [Tool],
    pub stages: &'a [Stage],
    pub ssh_after: &'static str,
    pub target: &'a Host,
}

/// Waits until `watch.target` answers SSH with its pinned key; returns that session.
pub fn until_ssh<'a>(
    ctx: &Context,
    inv: &Inventory,
    watch: &Watch<'a>,
    started: Instant,
    limit: Duration,
) -> Result<Box<dyn Transport>, Error> {
    let deadline = started
        .checked_add(limit)
        .ok_or_else(|| Error::Usage(format!("a wait of {} s is too long", limit.as_secs())))?;
    let mut connector = ctx.connector(inv);
    // cloudctl pinned this machine's key itself: never accept another one.
    connector.policy = HostKeyPolicy::Strict;
    let mut observer = connector.connect(watch.observer, deadline)?;
    if let Some(setup) = &watch.setup {
        observer.run_script(setup, deadline)?;
    }
    let mut seen: Vec<&Stage> = Vec::new();
    let note = |stage: &'a Stage, seen: &mut Vec<&'a Stage>| {
        if !seen.iter().any(|s| s.key == stage.key) {
            seen.push(stage);
            ctx.ui.info(&format!(
                "{} {}: {} (+{:.1} s)",
                timestamp(),
                watch.name,
                stage.what,
                started.elapsed().as_secs_f64()
            ));
        }
    };
    let programs: Vec<&str> = watch.tools.iter().map(|t| t.program).collect();
    let probe = crate::shell::Script::new()
        .call(
            "for t in",
            &programs,
            "; do command -v \"$t\" >/dev/null 2>&1 || echo \"missing $t\"; done; ",
        )
        .build()
        + &watch.probe;
    let mut fresh_session = true;
    loop {
        if Instant::now() >= deadline {
            let last = seen
                .last()
                .map(|s| s.what)
                .unwrap_or("none (no sign of it on the network)");
            return Err(Error::Unreachable(format!(
                "{} did not come up within {} s; last stage seen: {last}",
                watch.name,
                limit.as_secs()
            )));
        }
        let round = Instant::now();
        let out = match observer.run_script(&probe, deadline) {
            Ok(out) => out,
            // The deadline ran out during the probe itself: report it as the timeout it is.
            Err(_) if Instant::now() >= deadline => continue,
            // One lost session to the observer is not the end of the wait: connect again; a
            // probe that fails on the fresh session too is the error.
            Err(e) if fresh_session => return Err(e.into()),
            Err(_) => {
                observer = connector.connect(watch.observer, deadline)?;
                fresh_session = true;
                continue;
            }
        };
        fresh_session = false;
        let missing = out.output.lines().find_map(|l| {
            let program = l.strip_prefix("missing ")?;
            watch.tools.iter().find(|t| t.program == program)
        });
        if let Some(tool) = missing {
            return Err(Error::Failed(anyhow::anyhow!(
                "cannot watch {} come up: {} has no `{}` (package {}); install it there (`cloudctl config init` does on the ConfigNode)",
                watch.name,
                watch.observer.name,
                tool.program,
                tool.package
            )));
        }
        for stage in watch.stages {
            if out.output.lines().any(|l| l == stage.key) {
                note(stage, &mut seen);
            }
        }
        if seen.iter().any(|s| s.key == watch.ssh_after) {
            match connector.connect(watch.target, deadline.min(Instant::now() + Duration::from_secs(5))) {
                Ok(t) => {
                    note(&SSH, &mut seen);
                    return Ok(t);
                }
                Err(e @ HostError::HostKey(_)) => return Err(e.into()),
                Err(_) => {}
            }
        }
        std::thread::sleep(Duration::from_secs(1).saturating_sub(round.elapsed()));
    }
}
