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
    let mut connector = ctx.connector(inv);
    // cloudctl pinned this machine's key itself: never accept another one.
    connector.policy = HostKeyPolicy::Strict;
    until_ssh_through(ctx, &connector, watch, started, limit)
}

/// `until_ssh` through `connector` (SSH in production; a scripted one in tests).
pub fn until_ssh_through<'a>(
    ctx: &Context,
    connector: &dyn Connector,
    watch: &Watch<'a>,
    started: Instant,
    limit: Duration,
) -> Result<Box<dyn Transport>, Error> {
    let deadline = started
        .checked_add(limit)
        .ok_or_else(|| Error::Usage(format!("a wait of {} s is too long", limit.as_secs())))?;
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

#[cfg(test)]
mod tests {
    //! The wait's stage reporting through a scripted connector: the observer's probe answers as a
    //! booting machine would, the machine's SSH does (or does not) answer, and the timeout names
    //! the last stage seen, with no host at all.
    use super::*;
    use crate::exec::record::{Log, ScriptedConnector};
    use crate::exec::ScriptOutput;
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
            inventory_path: None,
            dry_run: false,
            yes: false,
            forks: 1,
            templates: None,
            ui: crate::ui::Ui::new(false, true, 0),
            hosts: None,
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
