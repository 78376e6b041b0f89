//! `cloudctl instance migrate`: pre-checks on both nodes, the live migration phase by phase with
//! progress, verification on both ends, and the inventory updated only after that; `--cleanup`.

use super::{ask_all, lock, node_host, read, recorded_guest, where_guests_run, Context};
use crate::cli::InstanceMigrateArgs;
use crate::error::{Error, Exit};
use crate::exec::effect::LocalStep;
use crate::exec::known_hosts::host_pattern;
use crate::exec::phased;
use crate::exec::{Event, INTERRUPTED};
use crate::inventory::{self, Host, Hypervisor, Inventory};
use crate::inventory_file;
use crate::plan::instance::migrate::{self, After, Channel, MigrateRequest, Moved, NotMoved, Seen, Verdict};
use crate::plan::instance::probe::{self, GuestState};
use crate::plan::instance::{hypervisor_of, Guest};
use crate::plan::phased::Phase;
use crate::plan::Plan;
use crate::ui::instance as show;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The port a target listens on for an `--unencrypted` migration.
const PLAIN_PORT: u16 = 49152;

pub fn migrate(ctx: &Context, args: InstanceMigrateArgs) -> Result<Exit, Error> {
    let limit = crate::commands::seconds("--timeout", args.timeout)?;
    let path = inventory::locate(ctx.inventory_path.as_deref())?;
    let _lock = lock(ctx, &path)?;
    let (_, inv) = read(&path)?;
    if args.cleanup {
        return cleanup(ctx, &path, &inv, &args.name);
    }
    let (g, source) = recorded_guest(&inv, &args.name)?;
    let chosen;
    let to = match args.to.as_deref().unwrap_or_default() {
        inventory::AUTO => {
            let need = crate::plan::placement::Need {
                guest: g.name.as_str(),
                memory: g.memory,
                hypervisor: g.hypervisor,
                leaving: Some(&source.name),
            };
            chosen = super::place::choose(ctx, &inv, &need)?.node;
            chosen.as_str()
        }
        named => named,
    };
    let opts = Options {
        unencrypted: args.unencrypted,
        max_bandwidth: args.max_bandwidth,
        limit,
        confirm: true,
    };
    match migrate_one(ctx, &path, &inv, &args.name, to, &opts, &Shared::default())? {
        Outcome::Previewed(exit) => Ok(exit),
        Outcome::Moved(m) => {
            show::migrated(&ctx.ui, &m);
            show::migrated_json(&ctx.ui, &m);
            Ok(if m.left.is_none() { Exit::Ok } else { Exit::Failed })
        }
        Outcome::NotMoved(n) => {
            show::aborted_json(&ctx.ui, &n);
            Ok(n.exit)
        }
    }
}

/// How one migration is run.
pub struct Options {
    pub unencrypted: bool,
    pub max_bandwidth: Option<u32>,
    pub limit: Duration,
    /// Ask before moving (a single `instance migrate`); an evacuation asked once for all.
    pub confirm: bool,
}

/// What concurrent migrations of one run share.
#[derive(Default)]
pub struct Shared {
    /// Held while the inventory file is re-read and rewritten with a guest's new node.
    pub record: std::sync::Mutex<()>,
    /// Held while a phase (prepare, finish, abort) runs: phases edit the nodes' authorized_keys,
    /// which nodes may share (the lab's do), so two migrations never edit it at once.
    pub phases: std::sync::Mutex<()>,
}

pub enum Outcome {
    /// `--dry-run`: the plan was shown.
    Previewed(Exit),
    Moved(Moved),
    NotMoved(NotMoved),
}

/// One live migration of recorded guest `name` to node `to`: pre-checks (refused with exit 2,
/// nothing moved), the phases with progress, verification on both ends, the inventory record.
/// The caller holds the inventory lock.
pub fn migrate_one(
    ctx: &Context,
    path: &Path,
    inv: &Inventory,
    name: &str,
    to: &str,
    opts: &Options,
    shared: &Shared,
) -> Result<Outcome, Error> {
    let limit = opts.limit;
    // The one-time migration key is made here: refuse before anything is touched.
    crate::local_tools::require(&[crate::local_tools::SSH_KEYGEN])?;
    let (g, source) = recorded_guest(inv, name)?;
    let target = node_host(inv, to)?;
    if target.name == source.name {
        return Err(Error::Usage(format!("{} already runs on {to}", g.name)));
    }
    let target_hv = hypervisor_of(inv, to)?;
    let s = inv.instances();
    let tools: &[&str] = match g.hypervisor {
        Hypervisor::Kvm => &["qemu-system-x86_64", "socat", "ssh"],
        Hypervisor::Xen => &["xl", "ssh"],
    };
    let fact = probe::NodeProbe {
        script: probe::facts_script(&g, s.store.as_str(), None, tools),
        any_status: true,
    };
    let mut facts = Vec::new();
    for (h, answer) in ask_all(ctx, inv, &[source.clone(), target.clone()], &fact) {
        facts.push(answer.map_err(|e| {
            let message = format!("cannot check {}: {e}; nothing was moved", h.name);
            e.not_asked(message)
        })?);
    }
    let problems = migrate::check(&g, to, target_hv, &facts[0], &facts[1], capacity(inv, to));
    if !problems.is_empty() {
        return Err(Error::Usage(format!(
            "cannot migrate {} from {} to {to}; nothing was moved:\n  - {}",
            g.name,
            source.name,
            problems.join("\n  - ")
        )));
    }
    let channel = if opts.unencrypted {
        ctx.ui
            .warn("--unencrypted: the guest's memory crosses the network in plain text");
        Channel::Tcp { port: PLAIN_PORT }
    } else {
        one_time_channel(ctx, inv, &target)?
    };
    let node_ip = |name: &str| {
        inv.node
            .iter()
            .find(|n| n.name.get_ref().as_str() == name)
            .and_then(|n| n.ip.as_ref().map(|i| i.get_ref().to_string()))
    };
    let plan = migrate::plan(&MigrateRequest {
        guest: &g,
        source: &source,
        target: &target,
        source_ip: migrate::key_source(&facts[1], node_ip(&source.name)),
        ssh_user: &inv.ssh.user,
        channel,
        authorized_keys: s.authorized_keys.as_ref().map(|p| p.to_string()),
        max_downtime_ms: s.max_downtime_ms,
        max_bandwidth_mib: opts.max_bandwidth,
        timeout_secs: limit.as_secs(),
    })?;
    let connector = ctx.reach(inv);
    let limits = ctx.limits(inv);
    if ctx.dry_run {
        // Every phase, the wait for the migration included, then the finish.
        let shown = plan.run.shown(&plan.start().title, &[&plan.finish]);
        return ctx.preview(connector.as_ref(), &limits, &shown).map(Outcome::Previewed);
    }
    if opts.confirm {
        ctx.confirm(&format!("live-migrate {} from {} to {to}", g.name, source.name))?;
    }
    let started = Instant::now();
    // A plan through the executor, its report shown when it did not apply everywhere (not the
    // watch's: its reason is said as the reason to abort); `observe` hears the wait's rounds.
    let run_with = |p: &Plan, limits: &crate::exec::Limits, observe: &(dyn Fn(&Event) + Sync), report: bool| {
        let (reports, exit) = ctx.apply_observed(connector.as_ref(), limits, p, observe);
        if exit != Exit::Ok && report {
            crate::ui::report::apply(&ctx.ui, &p.title, &reports, exit);
        }
        (reports, exit)
    };
    // Phases that edit authorized_keys (which nodes may share: the lab's do) run one at a time
    // across concurrent migrations; the start and the watch, which may be long, do not wait.
    let one_at_a_time = || shared.phases.lock().unwrap_or_else(|e| e.into_inner());
    let run = |p: &Plan| {
        let _one = one_at_a_time();
        run_with(p, &limits, &|_| {}, true).1
    };
    // The watch's rounds: the last one kept (the progress reported), a progress line twice a second.
    let last_round = Mutex::new(String::new());
    let shown = Mutex::new(Instant::now() - Duration::from_secs(1));
    let observe = |e: &Event| {
        let Event::Round(_, output) = e else { return };
        *last_round.lock().unwrap_or_else(|e| e.into_inner()) = output.to_string();
        let mut shown = shown.lock().unwrap_or_else(|e| e.into_inner());
        if shown.elapsed() < Duration::from_millis(500) {
            return;
        }
        // A final status ends the wait instead (done, or the reason to abort).
        let last = ["completed", "failed", "cancelled", "cancelling"];
        if let Some(p) = migrate::parse_progress(output).filter(|p| !last.contains(&p.status.as_str())) {
            show::progress(&ctx.ui, g.name.as_str(), &p, started.elapsed());
            *shown = Instant::now();
        }
    };
    let mut apply = |phase: &Phase| {
        let long = [migrate::START, migrate::POLL].contains(&phase.name.as_str());
        let _one = (!long).then(one_at_a_time);
        let watch = phase.name == migrate::POLL;
        let (reports, exit) = run_with(&phase.plan, &phased::bounded(phase, &limits), &observe, !watch);
        match exit {
            Exit::Ok => Ok(()),
            _ => {
                let why = phased::why(&reports).unwrap_or_else(|| format!("{} did not apply", phase.name));
                if let Some(cause) = migrate::known_cause(&why) {
                    ctx.ui.warn(cause);
                }
                Err(why)
            }
        }
    };
    let aborting = |why: &str| ctx.ui.warn(&format!("{}: {why}; aborting", g.name));
    // After the abort phase: the target's copy is stopped only when the source's verifiably runs.
    let not_moved = |why: String| -> Result<Outcome, Error> {
        let interrupted = INTERRUPTED.load(Ordering::SeqCst);
        let state = crate::exec::even_if_interrupted(|| {
            // A completed migration leaves the source paused: the target's copy is then the only
            // one running, and must not be stopped on the word of a node that did not answer.
            let on_source = state_on(ctx, inv, &source, &g);
            if migrate::may_stop_target(&on_source) {
                ctx.ui.warn(&format!(
                    "{} stays on {}; stopping its copy on {to}",
                    g.name, source.name
                ));
                run(&plan.stop_target);
                show::aborted(&ctx.ui, g.name.as_str(), &source.name, Some(GuestState::Running));
                Some(GuestState::Running)
            } else {
                ctx.ui.warn(&format!(
                    "{} does not verifiably run on {} ({}), so its copy on {to} was left as it is (it may be the only one running); run `cloudctl instance migrate {} --cleanup` to find where it runs and tidy up",
                    g.name,
                    source.name,
                    match &on_source {
                        Ok(s) => s.map_or("absent", |s| s.as_str()).to_string(),
                        Err(e) => format!("no answer: {e}"),
                    },
                    g.name
                ));
                let state = on_source.ok().flatten();
                show::aborted(&ctx.ui, g.name.as_str(), &source.name, state);
                state
            }
        });
        Ok(Outcome::NotMoved(NotMoved {
            guest: g.name.to_string(),
            source: source.name.clone(),
            why,
            state_on_source: state,
            exit: if interrupted { Exit::Interrupted } else { Exit::Failed },
        }))
    };
    // Prepare, start, watch; on a failure the executor runs the abort phase, and no later phase.
    if let Err(failed) = phased::run(&plan.run, &mut apply, &mut |f| aborting(&f.why)) {
        return not_moved(failed.why);
    }
    let last = migrate::parse_progress(&last_round.lock().unwrap_or_else(|e| e.into_inner())).unwrap_or_default();
    // Verify before anything is finalised: the guest runs on the target and not on the source.
    let on_target = state_on(ctx, inv, &target, &g);
    let on_source = state_on(ctx, inv, &source, &g);
    if let After::NotMoved(why) = migrate::after_migration(to, &on_target, &source.name, &on_source) {
        aborting(&why);
        phased::undo(&plan.run, &mut apply);
        return not_moved(why);
    }
    if run(&plan.finish) != Exit::Ok {
        ctx.ui
            .warn("the guest runs on the target, but a finishing step failed (stopping the source's paused copy, tidying up, or announcing the guest on the target's network again); see above");
    }
    let left = state_on(ctx, inv, &source, &g);
    {
        let _writing = shared.record.lock().unwrap_or_else(|e| e.into_inner());
        record(ctx, path, &g.name.to_string(), to)?;
    }
    Ok(Outcome::Moved(Moved {
        guest: g.name.to_string(),
        from: source.name.clone(),
        to: to.to_string(),
        progress: last,
        elapsed: started.elapsed(),
        left: match left {
            Ok(l) => l,
            Err(_) => Some(GuestState::Unknown),
        },
    }))
}

/// MiB the inventory leaves for guests on `node` (its `memory` minus the guests recorded there).
fn capacity(inv: &Inventory, node: &str) -> Option<u64> {
    let total = inv.node.iter().find(|n| n.name.get_ref().as_str() == node)?.memory?;
    let used: u64 = inv
        .instance
        .iter()
        .filter(|i| i.hnode.get_ref().as_str() == node)
        .map(|i| u64::from(i.memory))
        .sum();
    Some(u64::from(total).saturating_sub(used))
}

/// A one-time key pair for the source, and the target's pinned host key for its known_hosts.
fn one_time_channel(ctx: &Context, inv: &Inventory, target: &Host) -> Result<Channel, Error> {
    let connector = ctx.connector(inv);
    let pattern = host_pattern(&target.host, target.port);
    // Under accept-new the target's key may be accepted by this run's probe and not written yet
    // (that waits for the confirmation): the plan carries the key itself, into a known_hosts of
    // the source's own, so the migration's OpenSSH on the source never reads ours.
    let pinned = ctx.pinned_key(&connector, &pattern)?.ok_or_else(|| {
        Error::HostKey(format!(
            "{}'s host key is not pinned ({pattern}); pin it with `cloudctl host trust {}`",
            target.name, target.name
        ))
    })?;
    let (private_key, public) = super::super::keys::throwaway("cloudctl one-time migration key")?;
    let public = String::from_utf8_lossy(&public).into_owned();
    // The comment goes: the line gets cloudctl's own marker instead.
    let public = public.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
    Ok(Channel::Ssh {
        private_key,
        public_key: public,
        target_known_host: pinned.line(&pattern),
    })
}

/// The guest's state on one node (`Ok(None)`: not there), asked up to three times a second
/// apart: a node that does not answer is never taken to have no copy.
fn state_on(ctx: &Context, inv: &Inventory, node: &Host, g: &Guest) -> Seen {
    let mut why = String::new();
    for attempt in 0..3 {
        if attempt > 0 {
            std::thread::sleep(Duration::from_secs(1));
        }
        match ctx.ask(inv, node, &probe::StateOf(g)) {
            Ok(state) => return Ok(state),
            Err(e) => why = e.to_string(),
        }
    }
    Err(why)
}

/// Writes the guest's new node into the inventory (under the lock the caller holds), into the
/// file as it is now: migrations running side by side each record their own guest.
fn record(ctx: &Context, path: &Path, name: &str, node: &str) -> Result<(), Error> {
    let (text, _) = read(path)?;
    if let Some(new) = inventory_file::set_instance_hnode(&text, name, node)? {
        ctx.apply_local(&[LocalStep::write_inventory(path, &text, &new)])?;
    }
    Ok(())
}

fn cleanup(ctx: &Context, path: &Path, inv: &Inventory, name: &str) -> Result<Exit, Error> {
    let (g, recorded_on) = recorded_guest(inv, name)?;
    let mut seen = Vec::new();
    for (h, r) in where_guests_run(ctx, inv) {
        let guests = r.map_err(|e| {
            let message = format!("cannot ask {} which guests it runs ({e}); nothing was changed", h.name);
            e.not_asked(message)
        })?;
        seen.push((h, guests.into_iter().find(|s| s.name == name)));
    }
    let auth = inv
        .instances()
        .authorized_keys
        .as_ref()
        .map(|p| p.to_string())
        .unwrap_or_default();
    let (verdict, plan) = migrate::cleanup(&g, &seen, &auth);
    show::cleanup_found(&ctx.ui, name, &recorded_on.name, &seen, &verdict);
    let exit = ctx.converge(inv, &plan)?;
    match &verdict {
        Verdict::RunsOn(node) if !ctx.dry_run && exit == Exit::Ok => {
            if *node != recorded_on.name {
                record(ctx, path, name, node)?;
                ctx.ui
                    .info(&format!("{}: {name} now recorded on {node}", path.display()));
            }
            Ok(Exit::Ok)
        }
        Verdict::RunsOn(_) => Ok(exit),
        Verdict::Nowhere | Verdict::SplitBrain(_) => Ok(Exit::Failed),
    }
}

#[cfg(test)]
mod tests {
    //! The abort paths of a live migration, host-free: the whole of `migrate_one` runs as in
    //! production (probes, the executor's phases, the poll, the verification), its hosts answered
    //! by a scripted connector that records what reached each node.
    use super::*;
    use crate::exec::record::{Log, ScriptedConnector};
    use crate::exec::{HostError, ScriptOutput};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    /// The seed lab on KVM: web1 runs on hnode1.
    fn inventory(dir: &Path) -> (std::path::PathBuf, Inventory) {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/seed-lab.toml"))
            .unwrap()
            .replace("hypervisor = \"xen\"", "hypervisor = \"kvm\"");
        let path = dir.join("cloud.toml");
        std::fs::write(&path, &text).unwrap();
        let inv = crate::inventory::parse("cloud.toml", &text).unwrap();
        (path, inv)
    }

    /// Every step of an executor's apply script reported `ok` (its records are `rec N …`).
    fn all_ok(script: &str) -> String {
        let last = script
            .split("rec ")
            .skip(1)
            .filter_map(|r| r.split(' ').next()?.parse::<usize>().ok())
            .max()
            .unwrap_or(0);
        (0..=last).map(|i| format!("@cloudctl {i} ok - - -\n")).collect()
    }

    /// A KVM node as the programs see it: web1 runs on hnode1 (until a test says otherwise);
    /// `fail_apply(host, n)` makes the n-th apply script on `host` (from 0) fail; the source's
    /// QEMU reports the migration as `status`.
    fn nodes(fail_apply: fn(&str, usize) -> bool, status: &'static str) -> (ScriptedConnector, Log) {
        let log = Log::default();
        let applies: Arc<[AtomicUsize; 2]> = Arc::new([AtomicUsize::new(0), AtomicUsize::new(0)]);
        let answer = move |host: &str, script: &str| -> Result<ScriptOutput, HostError> {
            let ok = |output: String| Ok(ScriptOutput { output, status: 0 });
            let source = host == "hnode1";
            if script.contains("Read-only facts of a hardware node") {
                let guest = if source { "guest web1 qemu-running\n" } else { "" };
                return ok(format!("version QEMU emulator version 7.2.15\nmem 20000\nbridge\narch amd64\ndisk 67108864 1234\ndisk-readable\n{guest}"));
            }
            if script.contains("the guests on a hardware node") {
                return ok(if source {
                    "guest web1 qemu-running\n".into()
                } else {
                    String::new()
                });
            }
            if script.contains("query-migrate") {
                return ok(format!(
                    r#"{{"return": {{"status": "{status}", "error-desc": "disk went away"}}}}"#
                ));
            }
            if script.contains("@cloudctl probed") {
                return ok("@cloudctl probed\n".into());
            }
            if script.contains("rec() {") {
                let n = applies[usize::from(!source)].fetch_add(1, Ordering::SeqCst);
                if fail_apply(host, n) {
                    return Ok(ScriptOutput {
                        output: "@cloudctl 0 failed 1 - -\n".into(),
                        status: 1,
                    });
                }
                return ok(all_ok(script));
            }
            Err(HostError::Failed(format!("unexpected script on {host}: {script}")))
        };
        let connector = ScriptedConnector {
            log: log.clone(),
            connect: Arc::new(|_| Ok(())),
            answer: Arc::new(answer),
        };
        (connector, log)
    }

    fn migrate(connector: ScriptedConnector) -> (NotMoved, String) {
        let (outcome, inventory) = run_migration(connector);
        let Outcome::NotMoved(n) = outcome else {
            panic!("the migration was not aborted")
        };
        (n, inventory)
    }

    /// Migrates web1 from hnode1 to hnode2 (`--unencrypted`): the outcome, and the inventory after.
    fn run_migration(connector: ScriptedConnector) -> (Outcome, String) {
        let dir = tempfile::tempdir().unwrap();
        let (path, inv) = inventory(dir.path());
        let ctx = Context {
            inventory_path: Some(path.clone()),
            ..Context::for_test(crate::ui::Ui::new(false, true, 0), Some(Arc::new(connector)))
        };
        let opts = Options {
            unencrypted: true,
            max_bandwidth: None,
            limit: Duration::from_secs(10),
            confirm: false,
        };
        let outcome = migrate_one(&ctx, &path, &inv, "web1", "hnode2", &opts, &Shared::default()).unwrap();
        (outcome, std::fs::read_to_string(&path).unwrap())
    }

    /// What reached `host`, one script per entry.
    fn sent(log: &Log, host: &str) -> Vec<String> {
        log.lock()
            .unwrap()
            .iter()
            .filter(|(h, _)| h == host)
            .map(|(_, s)| s.clone())
            .collect()
    }

    /// Nothing that stops, pauses or kills the source's copy reached the source.
    fn source_untouched(log: &Log) {
        for s in sent(log, "hnode1") {
            for stop in ["\"quit\"", "system_powerdown", "kill -9", r#""execute":"stop""#] {
                assert!(!s.contains(stop), "{stop} sent to the source:\n{s}");
            }
        }
    }

    /// The target's copy was stopped and its interface removed (the stop program ran there).
    fn target_cleaned(log: &Log) {
        let stops = sent(log, "hnode2")
            .iter()
            .filter(|s| s.contains("kvm-stop.sh SOCKET"))
            .count();
        assert_eq!(stops, 1, "the target's copy is stopped once");
    }

    #[test]
    fn a_target_that_cannot_be_prepared_leaves_the_source_running() {
        let (connector, log) = nodes(|h, n| h == "hnode2" && n == 0, "completed");
        let (n, inventory) = migrate(connector);
        assert_eq!(n.why, "hnode2 could not be prepared");
        assert_eq!(n.exit, Exit::Failed);
        assert_eq!(n.exit as i32, 1, "exit code 1: failed after hosts were touched");
        assert_eq!(n.state_on_source, Some(GuestState::Running));
        source_untouched(&log);
        target_cleaned(&log);
        // Nothing started: no migration was asked of the source's QEMU.
        assert!(sent(&log, "hnode1").iter().all(|s| !s.contains("\"migrate\"")));
        assert!(inventory.contains("hnode = \"hnode1\""), "the record is unchanged");
    }

    #[test]
    fn a_failed_or_cancelled_migration_stops_the_target_copy_and_keeps_the_source() {
        for status in ["failed", "cancelled"] {
            let (connector, log) = nodes(|_, _| false, status);
            let (n, inventory) = migrate(connector);
            assert_eq!(n.why, format!("the migration {status}: disk went away"));
            assert_eq!(n.exit, Exit::Failed);
            assert_eq!(n.state_on_source, Some(GuestState::Running));
            source_untouched(&log);
            target_cleaned(&log);
            // It did start: the source's QEMU was asked to migrate, then to cancel (abort).
            let source = sent(&log, "hnode1");
            assert!(
                source.iter().any(|s| s.contains("migrate_cancel")),
                "the abort cancels on the source"
            );
            assert!(inventory.contains("hnode = \"hnode1\""), "the record is unchanged");
        }
    }

    #[test]
    fn a_start_that_fails_runs_the_abort_phase_and_never_the_watch() {
        // --unencrypted: nothing to prepare on the source, so its first apply is the start.
        let (connector, log) = nodes(|h, n| h == "hnode1" && n == 0, "completed");
        let (n, inventory) = migrate(connector);
        assert_eq!(n.why, "the migration did not start");
        assert_eq!(n.exit, Exit::Failed);
        assert_eq!(n.state_on_source, Some(GuestState::Running));
        source_untouched(&log);
        target_cleaned(&log);
        let source = sent(&log, "hnode1");
        assert!(
            source.iter().all(|s| !s.contains("query-migrate")),
            "the phase after the failed one (the watch) never ran"
        );
        assert!(
            source.iter().any(|s| s.contains("migrate_cancel")),
            "the abort phase ran on the source"
        );
        assert!(inventory.contains("hnode = \"hnode1\""), "the record is unchanged");
    }

    #[test]
    fn a_completed_migration_the_target_does_not_confirm_is_aborted_after_the_phases() {
        // QEMU reports completed, but the target never reports the guest: the phases all
        // applied, the verification fails, and the abort phase runs all the same.
        let (connector, log) = nodes(|_, _| false, "completed");
        let (n, _) = migrate(connector);
        assert!(
            n.why
                .starts_with("after the migration the guest is absent on hnode2 and running on hnode1"),
            "{}",
            n.why
        );
        assert_eq!(n.state_on_source, Some(GuestState::Running));
        assert!(
            sent(&log, "hnode1").iter().any(|s| s.contains("query-migrate")),
            "the watch ran"
        );
        assert!(
            sent(&log, "hnode1").iter().any(|s| s.contains("migrate_cancel")),
            "the abort phase ran"
        );
        target_cleaned(&log);
    }

    #[test]
    fn a_migration_that_completes_runs_every_phase_then_the_finish_and_records_the_target() {
        let (nodes, log) = nodes(|_, _| false, "completed");
        let inner = nodes.answer.clone();
        // Once QEMU reported the migration completed, web1 runs on hnode2 and is gone from hnode1.
        let moved = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let answer = move |host: &str, script: &str| {
            if script.contains("query-migrate") && !script.contains("rec() {") {
                moved.store(true, Ordering::SeqCst);
                let output = r#"{"return": {"status": "completed", "total-time": 1234, "downtime": 42, "ram": {"transferred": 300, "remaining": 0, "total": 256}}}"#;
                return Ok(ScriptOutput {
                    output: format!("{output}\n"),
                    status: 0,
                });
            }
            if script.contains("the guests on a hardware node") && moved.load(Ordering::SeqCst) {
                let output = if host == "hnode2" {
                    "guest web1 qemu-running\n"
                } else {
                    ""
                };
                return Ok(ScriptOutput {
                    output: output.into(),
                    status: 0,
                });
            }
            inner(host, script)
        };
        let connector = ScriptedConnector {
            answer: Arc::new(answer),
            ..nodes
        };
        let (outcome, inventory) = run_migration(connector);
        let Outcome::Moved(m) = outcome else {
            panic!("the migration did not go through")
        };
        assert_eq!((m.from.as_str(), m.to.as_str(), m.left), ("hnode1", "hnode2", None));
        // The watch's last round is the progress reported.
        assert_eq!(
            (m.progress.total_time_ms, m.progress.downtime_ms),
            (Some(1234), Some(42))
        );
        assert!(
            inventory.contains("hnode = \"hnode2\""),
            "the guest is recorded on the target"
        );
        let source = sent(&log, "hnode1");
        assert!(source.iter().all(|s| !s.contains("migrate_cancel")), "no abort");
        assert!(
            sent(&log, "hnode2").iter().any(|s| s.contains("announce-self")),
            "the finish announced the guest on the target"
        );
    }
}
