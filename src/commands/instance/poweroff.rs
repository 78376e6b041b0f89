//! `cloudctl hnode poweroff`: a drained hardware node with no guest on it (as recorded and as it
//! reports) switched off by IPMI or by `poweroff` over SSH, then watched from the ConfigNode
//! until it stops answering ping (bounded; a `WaitStep` the executor's poller runs, shown by a
//! dry run).

use super::{ask_all, drain, lock, node_host, read, Context};
use crate::cli::HnodePoweroffArgs;
use crate::error::{Error, Exit};
use crate::exec::wait::{self as poller, WaitError};
use crate::inventory::{self, expand_home, Host, Inventory};
use crate::plan::instance::hypervisor_of;
use crate::plan::instance::probe;
use crate::plan::poweroff::{self, Method, Waited};
use crate::plan::wait::WaitStep;
use crate::ui::hnode as show;
use std::time::{Duration, Instant};

pub fn poweroff(ctx: &Context, args: HnodePoweroffArgs) -> Result<Exit, Error> {
    let limit = crate::commands::seconds("--wait", args.wait)?;
    let path = inventory::locate(ctx.inventory_path.as_deref())?;
    // Held until the node is off: no create or migrate records a guest there meanwhile.
    let _lock = lock(ctx, &path)?;
    let (_, inv) = read(&path)?;
    let name = args.name.as_str();
    let node = drain::hnode(&inv, name)?;
    let target = node_host(&inv, name)?;
    let recorded: Vec<String> = inv
        .instance
        .iter()
        .filter(|i| i.hnode.get_ref().as_str() == name)
        .map(|i| i.name.get_ref().to_string())
        .collect();
    // A node that is no hardware node is refused here (exit 2), before it is asked anything.
    hypervisor_of(&inv, name)?;
    let seen = ask_all(ctx, &inv, std::slice::from_ref(&target), &probe::Guests(&inv))
        .remove(0)
        .1
        .map_err(|e| {
            let message = format!("cannot ask {name} which guests it runs ({e}); nothing was changed");
            e.not_asked(message)
        })?;
    if let Some(why) = poweroff::refusal(name, node.drained, &recorded, &seen) {
        return Err(Error::Usage(why));
    }
    let method = poweroff::method(node);
    let password = match (&node.ipmi, method) {
        (Some(ipmi), Method::Ipmi) => {
            let file = expand_home(&ipmi.password_file);
            let bytes = std::fs::read(&file).map_err(|e| {
                Error::Usage(format!(
                    "cannot read {name}'s IPMI password file {}: {e}",
                    file.display()
                ))
            })?;
            Some(bytes.trim_ascii_end().to_vec())
        }
        _ => None,
    };
    let confignode = inv.select(&["confignode".into()]).map_err(Error::Usage)?.remove(0);
    let plan = poweroff::plan(node, &target, &confignode, method, password)?;
    show::poweroff_checked(&ctx.ui, name, method);
    if !ctx.dry_run {
        ctx.confirm_typed(&plan.title, name)?;
    }
    let address = node
        .ip
        .as_ref()
        .map(|i| i.get_ref().to_string())
        .unwrap_or_else(|| target.host.clone());
    let wait = (!limit.is_zero()).then(|| poweroff::wait_step(name, &address, limit.as_secs()));
    let shown = match &wait {
        // The wait is reviewed with the plan; the dry run stops before either runs.
        Some(w) if ctx.dry_run => plan.then_wait(&confignode, w.clone()),
        _ => plan,
    };
    ctx.converge_then(&inv, &shown, |applied| {
        Some(
            wait_off(ctx, &inv, &confignode, name, wait.as_ref())
                .map(|(waited, took)| show::powered_off(&ctx.ui, name, method, waited, took, limit, applied)),
        )
    })
}

/// Watches from the ConfigNode, through the executor's poller, until the node stops answering
/// ping (`None`: not waited). Returns what was seen and how long it took.
fn wait_off(
    ctx: &Context,
    inv: &Inventory,
    confignode: &Host,
    name: &str,
    wait: Option<&WaitStep>,
) -> Result<(Option<Waited>, Duration), Error> {
    let started = Instant::now();
    let Some(step) = wait else {
        return Ok((None, Duration::ZERO));
    };
    ctx.ui.info(&format!(
        "waiting up to {} s for {name} to stop answering ping from the ConfigNode",
        step.timeout_secs
    ));
    // Beyond the wait itself: the connection.
    let deadline = started + Duration::from_secs(step.timeout_secs) + Duration::from_secs(30);
    let connector = ctx.reach(inv);
    let mut t = connector.connect(confignode, deadline)?;
    match poller::until(connector.as_ref(), confignode, &mut t, step, started, &mut |_| {}) {
        Ok(done) => Ok((Some(poweroff::parse_wait(&done.output)), started.elapsed())),
        Err(WaitError::Lost(e)) => Err(e.into()),
        Err(WaitError::Interrupted) => Err(Error::Failed(anyhow::anyhow!(
            "interrupted while waiting for {name} to stop answering ping"
        ))),
        Err(e) => Err(Error::Failed(anyhow::anyhow!(e.message(step)))),
    }
}

#[cfg(test)]
mod tests {
    //! The wait until a node is off, host-free: the ConfigNode's rounds answered by a scripted
    //! connector; a node that keeps answering is an outcome (reported), not an error.
    use super::*;
    use crate::exec::record::{Log, ScriptedConnector};
    use crate::exec::ScriptOutput;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    /// Waits `limit` s for hnode1 to go off; the n-th round (from 0) prints `round(n)`.
    fn wait(limit: u64, round: fn(usize) -> &'static str) -> (Option<Waited>, Log) {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/one-box.toml")).unwrap();
        let inv = crate::inventory::parse("one-box.toml", &text).unwrap();
        let log = Log::default();
        let rounds = Arc::new(AtomicUsize::new(0));
        let connector = ScriptedConnector {
            log: log.clone(),
            connect: Arc::new(|_| Ok(())),
            answer: Arc::new(move |_, _| {
                let output = round(rounds.fetch_add(1, Ordering::SeqCst)).to_string();
                Ok(ScriptOutput { output, status: 0 })
            }),
        };
        let ctx = Context {
            forks: 1,
            ..Context::for_test(crate::ui::Ui::new(false, true, 0), Some(Arc::new(connector)))
        };
        let cn = inv.select(&["confignode".into()]).unwrap().remove(0);
        let step = poweroff::wait_step("hnode1", "10.0.0.31", limit);
        let (waited, _) = wait_off(&ctx, &inv, &cn, "hnode1", Some(&step)).unwrap();
        (waited, log)
    }

    #[test]
    fn the_wait_polls_the_confignode_until_the_node_is_off() {
        let (waited, log) = wait(30, |n| if n < 2 { "answering\n" } else { "off\n" });
        assert_eq!(waited, Some(Waited::Off));
        let log = log.lock().unwrap();
        assert_eq!(log.len(), 3, "three rounds: {log:?}");
        assert!(log
            .iter()
            .all(|(h, s)| h == "confignode" && s.ends_with(" sh 10.0.0.31\n")));
    }

    #[test]
    fn a_node_still_answering_at_the_limit_is_an_outcome_and_no_ping_is_named() {
        let started = Instant::now();
        let (waited, log) = wait(2, |_| "answering\n");
        assert_eq!(waited, Some(Waited::StillAnswering));
        assert!(started.elapsed() >= Duration::from_secs(2));
        assert!(log.lock().unwrap().len() >= 2, "it polled until the limit");
        let (waited, log) = wait(30, |_| "no-ping\n");
        assert_eq!(waited, Some(Waited::NoPing));
        assert_eq!(log.lock().unwrap().len(), 1, "no second round");
    }

    /// `hnode poweroff hnode1` on one-box with hnode1 drained and empty, over SSH (no BMC); the
    /// ConfigNode's wait rounds print `off`.
    fn power_off(dry_run: bool) -> (Exit, Log) {
        let dir = tempfile::tempdir().unwrap();
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/one-box.toml"))
            .unwrap()
            .replace("name = \"hnode1\"\n", "name = \"hnode1\"\ndrained = true\n");
        let path = dir.path().join("cloud.toml");
        std::fs::write(&path, text).unwrap();
        let log = Log::default();
        let connector = ScriptedConnector {
            log: log.clone(),
            connect: Arc::new(|_| Ok(())),
            answer: Arc::new(|host, script| {
                let output = if script.contains("rec() {") {
                    "@cloudctl 0 ok 0 - -\n"
                } else if host == "confignode" {
                    "off\n"
                } else {
                    ""
                };
                Ok(ScriptOutput {
                    output: output.into(),
                    status: 0,
                })
            }),
        };
        let ctx = Context {
            inventory_path: Some(path),
            dry_run,
            forks: 1,
            ..Context::for_test(crate::ui::Ui::new(false, true, 0), Some(Arc::new(connector)))
        };
        let args = HnodePoweroffArgs {
            name: "hnode1".into(),
            wait: 30,
        };
        (poweroff(&ctx, args).unwrap(), log)
    }

    #[test]
    fn the_node_is_switched_off_then_watched_from_the_confignode_and_a_dry_run_does_neither() {
        let (exit, log) = power_off(false);
        assert_eq!(exit, Exit::Ok);
        let log = log.lock().unwrap();
        let off = log
            .iter()
            .position(|(h, s)| h == "hnode1" && s.contains("poweroff"))
            .expect("poweroff ran on hnode1");
        let watched = log
            .iter()
            .position(|(h, s)| h == "confignode" && s.ends_with(" sh 10.201.0.11\n"))
            .expect("the ConfigNode watched");
        assert!(off < watched, "switched off, then watched: {log:?}");

        let (exit, log) = power_off(true);
        assert_eq!(exit, Exit::Ok);
        let log = log.lock().unwrap();
        assert!(
            log.iter().all(|(_, s)| !s.contains("poweroff") && !s.contains("ping")),
            "a dry run only asks which guests run: {log:?}"
        );
    }
}
