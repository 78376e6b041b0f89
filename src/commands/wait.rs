//! Waiting for a machine to come up (`hnode boot --wait`, `instance create/start --wait`): the
//! command's request turned into a `WaitStep` (boot stages seen from an observer host, then SSH
//! with the machine's pinned host key), run by the executor's poller; a timeout names the last
//! stage seen, and a probe tool missing on the observer is named instead of a stage.

use super::Context;
use crate::error::Error;
use crate::exec::wait::{self as poller, Seen, WaitError};
use crate::exec::{Connector, Transport};
use crate::inventory::{Host, HostKeyPolicy, Inventory};
use crate::local_tools::Tool;
use crate::plan::wait::{self as plan, Reading, SshAfter, WaitStep};
use crate::ui::timestamp;
use std::time::{Duration, Instant};

/// A stage the probe reports by printing `key` on a line of its own.
pub struct Stage {
    pub key: &'static str,
    pub what: &'static str,
}

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

impl Watch<'_> {
    /// The wait as a step of the observer's plan (what a dry run shows), bounded by `limit`.
    pub fn step(&self, limit: Duration) -> WaitStep {
        let tools: Vec<plan::Tool> = self.tools.iter().map(|t| (*t).into()).collect();
        WaitStep {
            what: self.name.to_string(),
            setup: self.setup.clone(),
            probe: plan::with_tools(&tools, &self.probe),
            every_ms: 1000,
            timeout_secs: limit.as_secs(),
            reading: Reading::Stages {
                stages: self.stages.iter().map(|s| plan::Stage::new(s.key, s.what)).collect(),
                done: None,
                then_ssh: Some(SshAfter {
                    after: self.ssh_after.to_string(),
                    target: self.target.clone(),
                }),
                tools,
            },
            timed_out: None,
        }
    }
}

/// Waits until `watch.target` answers SSH with its pinned key; returns that session.
pub fn until_ssh(
    ctx: &Context,
    inv: &Inventory,
    watch: &Watch,
    started: Instant,
    limit: Duration,
) -> Result<Box<dyn Transport>, Error> {
    let mut connector = ctx.connector(inv);
    // cloudctl pinned this machine's key itself: never accept another one.
    connector.policy = HostKeyPolicy::Strict;
    until_ssh_through(ctx, &connector, watch, started, limit)
}

/// `until_ssh` through `connector` (SSH in production; a scripted one in tests).
pub fn until_ssh_through(
    ctx: &Context,
    connector: &dyn Connector,
    watch: &Watch,
    started: Instant,
    limit: Duration,
) -> Result<Box<dyn Transport>, Error> {
    let deadline = started
        .checked_add(limit)
        .ok_or_else(|| Error::Usage(format!("a wait of {} s is too long", limit.as_secs())))?;
    let step = watch.step(limit);
    let mut observer = connector.connect(watch.observer, deadline)?;
    let mut observe = |seen: Seen| {
        if let Seen::Stage(what, after) = seen {
            ctx.ui.info(&format!(
                "{} {}: {what} (+{:.1} s)",
                timestamp(),
                watch.name,
                after.as_secs_f64()
            ));
        }
    };
    match poller::until(connector, watch.observer, &mut observer, &step, started, &mut observe) {
        Ok(waited) => waited
            .ssh
            .ok_or_else(|| Error::Failed(anyhow::anyhow!("internal: {} came up without SSH", watch.name))),
        Err(WaitError::TimedOut { last }) => Err(Error::Unreachable(format!(
            "{} did not come up within {} s; last stage seen: {}",
            watch.name,
            limit.as_secs(),
            last.as_deref().unwrap_or("none (no sign of it on the network)")
        ))),
        Err(WaitError::Failed(why)) => Err(Error::Failed(anyhow::anyhow!(why))),
        Err(WaitError::Lost(e)) => Err(e.into()),
        Err(WaitError::Interrupted) => Err(Error::Failed(anyhow::anyhow!(
            "interrupted while waiting for {}",
            watch.name
        ))),
    }
}

#[cfg(test)]
mod tests {
    //! The wait's stage reporting through a scripted connector: the observer's probe answers as a
    //! booting machine would, the machine's SSH does (or does not) answer, and the timeout names
    //! the last stage seen, with no host at all.
    use super::*;
    use crate::exec::record::{Log, ScriptedConnector};
    use crate::exec::{HostError, ScriptOutput};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    const STAGES: [Stage; 2] = [
        Stage {
            key: "neigh",
            what: "talked to the ConfigNode",
        },
        Stage {
            key: "ping",
            what: "answers ping",
        },
    ];

    fn host(name: &str) -> Host {
        Host {
            name: name.into(),
            role: "hnode",
            host: "192.0.2.1".into(),
            port: 22,
        }
    }

    fn ctx() -> Context {
        Context {
            yes: false,
            forks: 1,
            ..Context::for_test(crate::ui::Ui::new(false, true, 0), None)
        }
    }

    /// Waits `limit` for hnode1 watched from cn: the n-th probe (from 0) prints `seen(n)`; the
    /// node's SSH answers from probe `ssh_from` on (never when `None`).
    fn wait(limit: u64, seen: fn(usize) -> &'static str, ssh_from: Option<usize>) -> (Result<(), String>, Log) {
        let log = Log::default();
        let probes = Arc::new(AtomicUsize::new(0));
        let (counted, answered) = (probes.clone(), probes);
        let connector = ScriptedConnector {
            log: log.clone(),
            connect: Arc::new(move |h| match (h, ssh_from) {
                ("cn", _) => Ok(()),
                (_, Some(from)) if counted.load(Ordering::SeqCst) > from => Ok(()),
                _ => Err(HostError::Unreachable("connection refused".into())),
            }),
            answer: Arc::new(move |_, script| {
                let output = if script.starts_with("ip neigh flush") {
                    String::new()
                } else {
                    seen(answered.fetch_add(1, Ordering::SeqCst)).to_string()
                };
                Ok(ScriptOutput { output, status: 0 })
            }),
        };
        let (cn, node) = (host("cn"), host("hnode1"));
        let watch = Watch {
            name: "hnode1",
            observer: &cn,
            setup: Some("ip neigh flush to 192.0.2.1".into()),
            probe: "probe".into(),
            tools: &[crate::local_tools::IP, crate::local_tools::PING],
            stages: &STAGES,
            ssh_after: "ping",
            target: &node,
        };
        let got = until_ssh_through(&ctx(), &connector, &watch, Instant::now(), Duration::from_secs(limit));
        (got.map(|_| ()).map_err(|e| e.to_string()), log)
    }

    #[test]
    fn the_timeout_names_the_last_stage_seen() {
        let (got, log) = wait(3, |n| if n == 0 { "" } else { "neigh\n" }, None);
        assert_eq!(
            got.unwrap_err(),
            "hnode1 did not come up within 3 s; last stage seen: talked to the ConfigNode"
        );
        let log = log.lock().unwrap();
        assert_eq!(log[0], ("cn".to_string(), "ip neigh flush to 192.0.2.1".to_string()));
        assert!(
            log[1..].iter().all(|(h, s)| h == "cn" && s.ends_with("probe")),
            "{log:?}"
        );
        assert!(log.len() >= 3, "about one probe a second: {log:?}");

        // Ping answered, SSH never did: the last stage is the ping.
        let (got, _) = wait(3, |_| "neigh\nping\n", None);
        assert!(got.unwrap_err().ends_with("last stage seen: answers ping"));
        // Nothing seen at all.
        let (got, _) = wait(2, |_| "", None);
        assert!(got
            .unwrap_err()
            .ends_with("last stage seen: none (no sign of it on the network)"));
    }

    #[test]
    fn ssh_after_the_ping_ends_the_wait_and_a_missing_tool_is_named() {
        let (got, log) = wait(10, |n| if n < 2 { "neigh\n" } else { "neigh\nping\n" }, Some(2));
        assert_eq!(got, Ok(()));
        assert!(log.lock().unwrap().len() <= 5, "it stops probing once SSH answers");
        let (got, _) = wait(10, |_| "missing ping\n", None);
        let err = got.unwrap_err();
        assert!(err.contains("cn has no `ping` (package iputils-ping)"), "{err}");
    }
}
