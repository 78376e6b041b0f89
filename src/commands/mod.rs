//! Commands: one file per noun turns clap arguments into a request; this file holds what they
//! share — loading the inventory, building the SSH connector, asking hosts for facts, and the
//! plan → confirm → apply flow.

pub mod config;
pub mod doctor;
pub mod hnode;
pub mod host;
pub mod image;
pub mod instance;
pub mod keys;
pub mod lab;
pub mod lamp;
pub mod node;
pub mod run;
pub mod storage;
pub mod wait;

#[cfg(test)]
mod held_pins;

use crate::cli::{Cli, Command};
use crate::error::{Error, Exit};
use crate::exec::effect::{self, DryRunSystem, HeldSystem, LocalStep, RealSystem, System};
use crate::exec::ssh::SshConnector;
use crate::exec::{self, Connector, Limits};
use crate::inventory::{self, Host, Inventory};
use crate::plan::fact::Fact;
use crate::plan::Plan;
use crate::ui::{diff, progress::Progress, report, Ui};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Global flags every command sees.
pub struct Context {
    pub inventory_path: Option<PathBuf>,
    pub dry_run: bool,
    pub yes: bool,
    pub forks: usize,
    pub templates: Option<PathBuf>,
    pub ui: Ui,
    /// How hosts are reached when not over SSH: a scripted connector in host-free tests of a
    /// whole command (`None`: SSH, from the inventory).
    pub hosts: Option<std::sync::Arc<dyn Connector + Send + Sync>>,
    /// Host keys accepted under `accept-new` in a real run, pinned only once the run goes ahead
    /// (`confirm`, or `pin_held` at the end of a run that asks nothing).
    pub held: std::sync::Arc<HeldSystem>,
}

impl Context {
    /// A context for host-free tests of a whole command: no inventory path, a real run that
    /// needs no prompt (`yes`), two forks, and the hosts reached through `hosts` (None: SSH).
    /// Tests change what they are about with struct update syntax.
    #[cfg(test)]
    pub fn for_test(ui: Ui, hosts: Option<std::sync::Arc<dyn Connector + Send + Sync>>) -> Context {
        Context {
            inventory_path: None,
            dry_run: false,
            yes: true,
            forks: 2,
            templates: None,
            ui,
            hosts,
            held: Default::default(),
        }
    }

    pub fn load_inventory(&self) -> Result<(PathBuf, Inventory), Error> {
        let path = inventory::locate(self.inventory_path.as_deref())?;
        let inv = inventory::load(&path)?;
        self.ui.detail(&format!("inventory: {}", path.display()));
        Ok((path, inv))
    }

    /// The SSH connector of the inventory. Its `accept-new` pins go to the dry-run system under
    /// --dry-run (written nowhere), and in a real run to `held`: the key is accepted for this
    /// run's connections at once but written to known_hosts only after the confirmation, so a
    /// refused prompt leaves known_hosts as it was.
    pub fn connector(&self, inv: &Inventory) -> SshConnector {
        let system: std::sync::Arc<dyn System> = if self.dry_run {
            std::sync::Arc::new(DryRunSystem::default())
        } else {
            self.held.clone()
        };
        SshConnector {
            system,
            ..SshConnector::from_inventory(inv)
        }
    }

    /// The key pinned for `pattern` in the inventory's known_hosts, or accepted under
    /// `accept-new` earlier in this run and not written yet (a plan built before the
    /// confirmation, as migrate's, carries it).
    pub fn pinned_key(
        &self,
        connector: &SshConnector,
        pattern: &str,
    ) -> Result<Option<crate::exec::known_hosts::HostKey>, Error> {
        let file = connector.known_hosts.path();
        let pinned = connector
            .known_hosts
            .lookup(pattern)
            .map_err(|e| Error::Failed(anyhow::anyhow!("cannot read {}: {e}", file.display())))?;
        Ok(pinned.or_else(|| self.held.key(file, pattern)))
    }

    /// Asks before changing anything (`--yes` answers for scripts); once confirmed, the host
    /// keys this run accepted under `accept-new` are pinned, before any change is made.
    pub fn confirm(&self, question: &str) -> Result<(), Error> {
        self.ui.confirm(question, self.yes)?;
        self.pin_held()
    }

    /// `confirm` for destructive steps: the user types `expected` to go on.
    pub fn confirm_typed(&self, what: &str, expected: &str) -> Result<(), Error> {
        self.ui.confirm_typed(what, expected, self.yes)?;
        self.pin_held()
    }

    /// Writes the host keys held under `accept-new` to known_hosts: after the confirmation, at
    /// the end of a run that asks none, or just before a step that reads known_hosts itself
    /// (`image push`'s OpenSSH client). Never under --dry-run (nothing is held then).
    pub fn pin_held(&self) -> Result<(), Error> {
        effect::apply(&self.held.take(), &RealSystem, &|m| self.ui.info(m))
    }

    /// What reaches the hosts for probes and plans: SSH, or the connector a test gave.
    pub fn reach(&self, inv: &Inventory) -> std::sync::Arc<dyn Connector + Send + Sync> {
        match &self.hosts {
            Some(c) => c.clone(),
            None => std::sync::Arc::new(self.connector(inv)),
        }
    }

    pub fn limits(&self, inv: &Inventory) -> Limits {
        Limits {
            forks: self.forks,
            host_timeout: Duration::from_secs(inv.ssh.host_timeout.max(1)),
        }
    }

    /// `fact` from every host at once (read-only, bounded by `--forks`; see `exec::gather`).
    pub fn gather<F: Fact>(&self, inv: &Inventory, hosts: &[Host], fact: &F) -> Vec<Option<Result<F::Value, Error>>> {
        exec::gather(hosts, fact, self.reach(inv).as_ref(), &self.limits(inv))
    }

    /// `fact` from one host (read-only).
    pub fn ask<F: Fact>(&self, inv: &Inventory, host: &Host, fact: &F) -> Result<F::Value, Error> {
        exec::ask(host, fact, self.reach(inv).as_ref(), self.limits(inv).host_timeout)
    }

    pub fn templates(&self) -> Result<crate::templates::Templates, Error> {
        crate::templates::Templates::load(self.templates.as_deref())
    }

    /// The shared flow: preview (dry run stops here), confirm, apply, report.
    pub fn converge(&self, inv: &Inventory, plan: &Plan) -> Result<Exit, Error> {
        self.converge_then(inv, plan, |_| None)
    }

    /// `converge`, then `more` may go on after a successful apply and return the command's
    /// final exit code, its own report printed; with --json, the apply report then goes into
    /// that report (as `apply`) so stdout still holds one document.
    pub fn converge_then(
        &self,
        inv: &Inventory,
        plan: &Plan,
        more: impl FnOnce(serde_json::Value) -> Option<Result<Exit, Error>>,
    ) -> Result<Exit, Error> {
        self.converge_with(inv, plan, &[], more)
    }

    /// `converge_then` with local effects: shown first under a dry run (they change nothing
    /// then), applied only after the confirmation and once every host applied, so a refused
    /// prompt or a failed host leaves known_hosts and the inventory as they were.
    pub fn converge_with(
        &self,
        inv: &Inventory,
        plan: &Plan,
        local: &[LocalStep],
        more: impl FnOnce(serde_json::Value) -> Option<Result<Exit, Error>>,
    ) -> Result<Exit, Error> {
        // SSH, or the connector a test gave (as probes use).
        let connector = self.reach(inv);
        let limits = self.limits(inv);
        if self.dry_run {
            self.apply_local(local)?;
            return self.preview(connector.as_ref(), &limits, plan);
        }
        if plan.confirm {
            let names: Vec<&str> = plan.hosts.iter().map(|h| h.host.name.as_str()).collect();
            self.confirm(&format!("{} on {}", plan.title, names.join(", ")))?;
        }
        let (reports, exit) = self.apply(connector.as_ref(), &limits, plan);
        // With --json the apply report waits: `more` may fold it into its own single document.
        if exit != Exit::Ok || !self.ui.json {
            report::apply(&self.ui, &plan.title, &reports, exit);
        }
        if exit != Exit::Ok {
            return Ok(exit);
        }
        self.apply_local(local)?;
        match more(serde_json::json!({ "command": plan.title, "hosts": reports })) {
            Some(result) => result,
            None => {
                if self.ui.json {
                    report::apply(&self.ui, &plan.title, &reports, exit);
                }
                Ok(exit)
            }
        }
    }

    /// The machine local effects go to: this one, or under --dry-run one that changes nothing.
    pub fn system(&self) -> std::sync::Arc<dyn System> {
        if self.dry_run {
            std::sync::Arc::new(DryRunSystem::default())
        } else {
            std::sync::Arc::new(RealSystem)
        }
    }

    /// Applies local effects (the caller has confirmed). What a dry run would do is part of the
    /// plan shown, so it is printed even with -q, as the preview is.
    pub fn apply_local(&self, steps: &[LocalStep]) -> Result<(), Error> {
        let say = |m: &str| {
            if self.dry_run {
                eprintln!("{m}");
            } else {
                self.ui.info(m);
            }
        };
        effect::apply(steps, self.system().as_ref(), &say)
    }

    /// Applies with progress; the exit code follows the worst host.
    pub fn apply(&self, connector: &dyn Connector, limits: &Limits, plan: &Plan) -> (Vec<exec::HostReport>, Exit) {
        self.apply_observed(connector, limits, plan, &|_| {})
    }

    /// `apply`, `observe` hearing each event too (a wait's rounds, for a command's progress line).
    pub fn apply_observed(
        &self,
        connector: &dyn Connector,
        limits: &Limits,
        plan: &Plan,
        observe: &(dyn Fn(&exec::Event) + Sync),
    ) -> (Vec<exec::HostReport>, Exit) {
        let hosts: Vec<_> = plan.hosts.iter().map(|h| &h.host).collect();
        let progress = Progress::start(&self.ui, &hosts);
        let reports = exec::apply(plan, connector, limits, &|e| {
            observe(&e);
            progress.event(e)
        });
        drop(progress);
        let exit = Exit::from_reports(&reports);
        (reports, exit)
    }

    /// Reads the hosts' current files (read-only) and prints every step with diffs.
    pub fn preview(&self, connector: &dyn Connector, limits: &Limits, plan: &Plan) -> Result<Exit, Error> {
        let previews = exec::fan_out(&plan.hosts, limits.forks, |hp| {
            let deadline = Instant::now() + limits.host_timeout;
            let needs_probe = hp.steps.iter().any(|s| matches!(s, crate::plan::Step::File(_)));
            let current = if needs_probe {
                connector
                    .connect(&hp.host, deadline)
                    .and_then(|mut t| exec::probe(hp, t.as_mut(), deadline, true))
            } else {
                Ok(vec![None; hp.steps.len()])
            };
            current.map(|c| diff::host_preview(hp, &c))
        });
        let mut exit = Exit::Ok;
        let mut json_hosts = Vec::new();
        for (hp, p) in plan.hosts.iter().zip(previews) {
            match p {
                Some(Ok(text)) => {
                    if !self.ui.json {
                        eprint!("{text}");
                    }
                    json_hosts.push(serde_json::json!({ "name": hp.host.name, "plan": text, "steps": hp.steps }));
                }
                Some(Err(e)) => {
                    let err: Error = e.into();
                    exit = exit.max(err.exit());
                    eprintln!("{}: cannot preview: {err}", hp.host.name);
                    json_hosts.push(serde_json::json!({ "name": hp.host.name, "error": err.to_string() }));
                }
                None => exit = Exit::Interrupted,
            }
        }
        if self.ui.json {
            self.ui.json_result(
                exit,
                serde_json::json!({ "command": plan.title, "dry_run": true, "hosts": json_hosts }),
            );
        } else {
            self.ui.info("dry run: nothing was changed");
        }
        Ok(exit)
    }
}

/// The longest wait or time limit cloudctl accepts, in seconds (a week): a deadline further away
/// could overflow the clock's arithmetic, and no step of a run should take longer.
pub const MAX_SECONDS: u64 = crate::inventory::MAX_SECONDS;

/// A command-line number of seconds, refused (exit 2) above `MAX_SECONDS`.
pub fn seconds(flag: &str, secs: u64) -> Result<Duration, Error> {
    if secs > MAX_SECONDS {
        return Err(Error::Usage(format!(
            "{flag} {secs} is too long: at most {MAX_SECONDS} seconds (a week)"
        )));
    }
    Ok(Duration::from_secs(secs))
}

/// Takes the inventory's lock (held until dropped), saying so when it has to wait.
/// A dry run takes no lock: it would create the lock file and could wait on another run, and a
/// dry run touches nothing and never blocks.
pub fn lock_inventory(
    ctx: &Context,
    path: &std::path::Path,
) -> Result<Option<crate::inventory_file::InventoryLock>, Error> {
    if ctx.dry_run {
        return Ok(None);
    }
    let lock = crate::inventory_file::InventoryLock::acquire(path, |msg| ctx.ui.info(msg))?;
    ctx.ui.detail(&format!("holding {}", lock.path().display()));
    Ok(Some(lock))
}

/// The inventory's text and its parsed form, read under the caller's lock.
pub fn read_inventory(path: &std::path::Path) -> Result<(String, Inventory), Error> {
    let text =
        std::fs::read_to_string(path).map_err(|e| Error::Usage(format!("cannot read {}: {e}", path.display())))?;
    let inv = inventory::parse(&path.display().to_string(), &text)?;
    Ok((text, inv))
}

/// `n` random bytes as hex, from the kernel's generator.
pub fn random_hex(n: usize) -> Result<String, Error> {
    use std::io::Read;
    let mut bytes = vec![0u8; n];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| Error::Failed(anyhow::anyhow!("cannot read /dev/urandom: {e}")))?;
    Ok(crate::digest::hex(&bytes))
}

pub fn dispatch(cli: Cli) -> (Ui, Result<Exit, Error>) {
    let ctx = Context {
        inventory_path: cli.inventory,
        dry_run: cli.dry_run,
        yes: cli.yes,
        forks: cli.forks as usize,
        templates: cli.templates,
        ui: Ui::new(cli.json, cli.quiet, cli.verbose),
        hosts: None,
        held: Default::default(),
    };
    let result = match cli.command {
        Command::Run(args) => run::run(&ctx, args),
        Command::Config(cmd) => config::run(&ctx, cmd),
        Command::Node(cmd) => node::run(&ctx, cmd),
        Command::Storage(cmd) => storage::run(&ctx, cmd),
        Command::Hnode(cmd) => hnode::run(&ctx, cmd),
        Command::Host(cmd) => host::run(&ctx, cmd),
        Command::Instance(cmd) => instance::run(&ctx, cmd),
        Command::Image(cmd) => image::run(&ctx, cmd),
        Command::Lab(cmd) => lab::run(&ctx, cmd),
        Command::Lamp(cmd) => lamp::run(&ctx, cmd),
        Command::Doctor => doctor::run(&ctx),
        Command::Cloud(crate::cli::CloudCommand::Rebalance(a)) => instance::rebalance(&ctx, a),
    };
    let result = finish(&ctx, result);
    (ctx.ui, result)
}

/// The end of a run: one that asked nothing (a status, a list) and ran to its end pins the keys
/// it accepted under `accept-new` now; one refused at the prompt or stopped by an error before
/// its confirmation pins none (a confirmed one pinned them when it was confirmed).
fn finish(ctx: &Context, result: Result<Exit, Error>) -> Result<Exit, Error> {
    if result.is_ok() {
        if let Err(e) = ctx.pin_held() {
            ctx.ui
                .warn(&format!("the host keys accepted in this run were not pinned: {e}"));
        }
    }
    result
}
