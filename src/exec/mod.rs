//! The one executor: connects to hosts (in parallel, bounded by `--forks`), probes, applies plans
//! through a `Transport`, and reports per host. The only module with remote effects.

pub mod effect;
pub mod files;
mod gather;
pub mod known_hosts;
pub mod local;
pub mod openssh;
mod outcome;
pub mod phased;
pub mod push;
pub mod record;
pub mod script;
pub mod ssh;
pub mod wait;

pub use gather::{ask, gather};

use crate::inventory::Host;
use crate::plan::{HostPlan, Plan, Step};
use script::{ApplyOutcome, Probed, StepResult, StepStatus};
use serde::Serialize;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Set by the Ctrl-C handler: hosts not yet started are not started.
pub static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Runs `undo` (a rollback, an abort) even after Ctrl-C, which would otherwise keep its hosts
/// from starting: the flag is cleared while it runs and set again afterwards, so the run still
/// ends as interrupted.
pub fn even_if_interrupted<R>(undo: impl FnOnce() -> R) -> R {
    let interrupted = INTERRUPTED.swap(false, Ordering::SeqCst);
    let r = undo();
    if interrupted {
        INTERRUPTED.store(true, Ordering::SeqCst);
    }
    r
}

/// A fed command's stdin: a writer, and its descriptor when it is a pipe, into which bulk data
/// can then be spliced from a file without passing through this process's memory.
pub trait FeedSink: std::io::Write {
    fn pipe(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        None
    }
}

impl FeedSink for std::process::ChildStdin {
    fn pipe(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        Some(std::os::fd::AsFd::as_fd(self))
    }
}

/// What writes a fed command's stdin (see `Transport::run_fed`).
pub type Feed<'a> = dyn FnMut(&mut dyn FeedSink) -> std::io::Result<()> + 'a;

/// Runs a shell script on one host.
pub trait Transport {
    /// Sends `script` to `sh` on the host's stdin; returns its output (stderr merged) and exit status.
    fn run_script(&mut self, script: &str, deadline: Instant) -> Result<ScriptOutput, HostError>;

    /// Runs `command` (one shell line, every value in it quoted) in a channel of its own, with
    /// what `feed` writes as its stdin (binary, no framing), then end of input; returns its output
    /// (stderr merged) and exit status. For bulk data such as `image push`.
    fn run_fed(&mut self, command: &str, feed: &mut Feed, deadline: Instant) -> Result<ScriptOutput, HostError> {
        let _ = (command, feed, deadline);
        Err(HostError::Failed("this transport cannot send a data stream".into()))
    }

    /// Runs one command line (every value in it quoted) directly in a channel of its own, its
    /// stdin at end of input, stdout and stderr kept apart: what `run` needs, with no script and
    /// no remote process beyond the command itself. `None`: this transport has no such path (the
    /// caller runs a script instead).
    fn run_command(&mut self, command: &str, deadline: Instant) -> Option<Result<CommandOutput, HostError>> {
        let _ = (command, deadline);
        None
    }
}

/// What a command run by `Transport::run_command` printed, and its exit status.
#[derive(Debug, Clone)]
pub struct CommandOutput {
    pub stdout: String,
    pub stderr: String,
    pub status: i32,
}

#[derive(Debug, Clone)]
pub struct ScriptOutput {
    pub output: String,
    pub status: i32,
}

/// Opens a transport to a host (and checks who it is).
pub trait Connector: Sync {
    fn connect(&self, host: &Host, deadline: Instant) -> Result<Box<dyn Transport>, HostError>;
}

/// Why a host could not be worked on.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum HostError {
    #[error("{0}")]
    Unreachable(String),
    #[error("{0}")]
    HostKey(String),
    #[error("{0}")]
    Failed(String),
}

/// How a host ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HostStatus {
    Ok,
    Changed,
    Failed,
    /// A validator refused a file: nothing was activated from that step on.
    Invalid,
    Unreachable,
    HostKeyRefused,
    /// Not started because the run was interrupted.
    NotStarted,
}

#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    pub step: String,
    #[serde(flatten)]
    pub result: StepResult,
}

#[derive(Debug, Clone, Serialize)]
pub struct HostReport {
    pub name: String,
    pub address: String,
    pub status: HostStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub steps: Vec<StepReport>,
    pub elapsed_ms: u64,
}

impl HostReport {
    fn new(host: &Host, status: HostStatus, error: Option<String>, started: Instant) -> Self {
        HostReport {
            name: host.name.clone(),
            address: host.endpoint(),
            status,
            error,
            steps: Vec::new(),
            elapsed_ms: started.elapsed().as_millis() as u64,
        }
    }
}

/// Progress the executor reports while it runs (the UI decides how to show it).
pub enum Event<'a> {
    Stage(&'a Host, &'static str),
    /// A round of a wait's probe, with its output (a command may show progress from it).
    Round(&'a Host, &'a str),
    Done(&'a HostReport),
}

#[derive(Debug, Clone)]
pub struct Limits {
    pub forks: usize,
    pub host_timeout: Duration,
}

/// Runs `work` for every item on at most `forks` threads. Items not started because of Ctrl-C are `None`.
pub fn fan_out<T: Sync, R: Send>(items: &[T], forks: usize, work: impl Fn(&T) -> R + Sync) -> Vec<Option<R>> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<R>>> = Mutex::new((0..items.len()).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..forks.clamp(1, items.len().max(1)) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= items.len() || INTERRUPTED.load(Ordering::SeqCst) {
                    break;
                }
                let r = work(&items[i]);
                results.lock().expect("no panics hold this lock")[i] = Some(r);
            });
        }
    });
    results.into_inner().expect("threads joined")
}

/// Applies a plan: every host in parallel, each in one session.
pub fn apply(
    plan: &Plan,
    connector: &dyn Connector,
    limits: &Limits,
    events: &(dyn Fn(Event) + Sync),
) -> Vec<HostReport> {
    let started = Instant::now();
    let results = fan_out(&plan.hosts, limits.forks, |hp| {
        let mut report = apply_host(hp, connector, limits, events);
        redact(&mut report, &plan.redact);
        events(Event::Done(&report));
        report
    });
    results
        .into_iter()
        .zip(&plan.hosts)
        .map(|(r, hp)| {
            r.unwrap_or_else(|| {
                HostReport::new(
                    &hp.host,
                    HostStatus::NotStarted,
                    Some("interrupted before this host started".into()),
                    started,
                )
            })
        })
        .collect()
}

/// What a masked secret reads as in reports.
pub const REDACTED: &str = "(secret hidden)";

/// Masks every secret value in what the host's programs printed, before anything reports it.
pub fn redact(report: &mut HostReport, secrets: &[String]) {
    let mask = |text: &mut String| {
        for secret in secrets.iter().filter(|s| !s.is_empty()) {
            if text.contains(secret.as_str()) {
                *text = text.replace(secret.as_str(), REDACTED);
            }
        }
    };
    if let Some(error) = report.error.as_mut() {
        mask(error);
    }
    for step in &mut report.steps {
        mask(&mut step.step);
        mask(&mut step.result.stdout);
        mask(&mut step.result.stderr);
    }
}

fn file_paths(hp: &HostPlan) -> Vec<(usize, &str)> {
    hp.steps
        .iter()
        .enumerate()
        .filter_map(|(i, s)| match s {
            Step::File(f) => Some((i, f.path.as_str())),
            _ => None,
        })
        .collect()
}

/// Reads the current state of each planned file in one batched probe, indexed by step; with
/// `with_content` (for `--dry-run` diffs) a second read fetches, as one tar stream, the files
/// whose content differs from the plan (never a secret's, unless it is shown masked).
pub fn probe(
    hp: &HostPlan,
    transport: &mut dyn Transport,
    deadline: Instant,
    with_content: bool,
) -> Result<Vec<Option<Probed>>, HostError> {
    let files = file_paths(hp);
    let mut by_step = vec![None; hp.steps.len()];
    if files.is_empty() {
        return Ok(by_step);
    }
    let paths: Vec<&str> = files.iter().map(|(_, p)| *p).collect();
    let out = transport.run_script(&files::probe_script(&paths), deadline)?;
    let mut probed = files::parse_probe(&out.output, &paths).map_err(HostError::Failed)?;
    if with_content {
        let mut wanted = Vec::new();
        for ((i, path), p) in files.iter().zip(probed.iter_mut()) {
            let Step::File(f) = &hp.steps[*i] else { continue };
            if p.sha.as_deref() == Some(script::sha256_hex(&f.content).as_str()) {
                p.content = Some(f.content.clone());
            } else if p.sha.is_some() && f.shown_current(&[]).is_some() {
                // A secret file is read only when it is shown masked (as the new one is).
                wanted.push(*path);
            }
        }
        if !wanted.is_empty() {
            let out = transport.run_script(&files::content_script(&wanted), deadline)?;
            let mut contents = files::parse_content(&out.output).map_err(HostError::Failed)?;
            for ((_, path), p) in files.iter().zip(probed.iter_mut()) {
                if p.content.is_none() {
                    p.content = contents.remove(*path);
                }
            }
        }
    }
    for ((i, _), p) in files.into_iter().zip(probed) {
        by_step[i] = Some(p);
    }
    Ok(by_step)
}

/// How a host that could not be worked on ends.
fn host_failed(host: &Host, e: HostError, started: Instant) -> HostReport {
    let status = match e {
        HostError::Unreachable(_) => HostStatus::Unreachable,
        HostError::HostKey(_) => HostStatus::HostKeyRefused,
        HostError::Failed(_) => HostStatus::Failed,
    };
    HostReport::new(host, status, Some(e.to_string()), started)
}

fn apply_host(
    hp: &HostPlan,
    connector: &dyn Connector,
    limits: &Limits,
    events: &(dyn Fn(Event) + Sync),
) -> HostReport {
    let started = Instant::now();
    let deadline = started + limits.host_timeout;
    let fail = |e: HostError| host_failed(&hp.host, e, started);
    // A command reacting to a file step the plan lacks would never run, and say nothing: refused
    // before connecting, as a plan read back from JSON can still name one.
    if let Err(e) = crate::plan::steps::check(&hp.steps) {
        return HostReport::new(&hp.host, HostStatus::Failed, Some(e.to_string()), started);
    }
    events(Event::Stage(&hp.host, "connecting"));
    let mut transport = match connector.connect(&hp.host, deadline) {
        Ok(t) => t,
        Err(e) => return fail(e),
    };
    if hp.steps.iter().any(|s| matches!(s, Step::WaitUntil(_))) {
        return phased::apply_with_waits(hp, connector, &mut transport, limits, events, started);
    }
    if let Some(report) = lone_command(hp, transport.as_mut(), deadline, started) {
        return report.unwrap_or_else(fail);
    }
    apply_steps(hp, transport.as_mut(), limits, events, started, deadline)
}

/// Applies a host's steps (no wait among them) in one script on an open session.
fn apply_steps(
    hp: &HostPlan,
    transport: &mut dyn Transport,
    limits: &Limits,
    events: &(dyn Fn(Event) + Sync),
    started: Instant,
    deadline: Instant,
) -> HostReport {
    let fail = |e: HostError| host_failed(&hp.host, e, started);
    let mut known = match probe(hp, transport, deadline, false) {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    events(Event::Stage(&hp.host, "applying"));
    // One retry: a concurrent run may change a file between our probe and our lock.
    for _ in 0..2 {
        let script = script::apply_script(hp, &known, limits.host_timeout.as_secs().max(1));
        let out = match transport.run_script(&script, deadline) {
            Ok(o) => o,
            Err(e) => return fail(e),
        };
        match script::parse_apply(&out.output, hp.steps.len()) {
            Ok(ApplyOutcome::Stale) => known = vec![None; hp.steps.len()],
            Ok(ApplyOutcome::LockTimeout) => {
                return fail(HostError::Failed(format!(
                    "another cloudctl run held {} for longer than {}s; nothing was changed",
                    script::LOCK_FILE,
                    limits.host_timeout.as_secs()
                )))
            }
            Ok(ApplyOutcome::Unsafe(path)) => {
                return fail(HostError::Failed(format!(
                    "refusing {path} on {}: it must be a directory (or file) that only the SSH user can write (mode 0700, owned by that user), not a symlink; check who made it, then remove it",
                    hp.host.name
                )))
            }
            Ok(ApplyOutcome::Done { steps, diagnostics }) => {
                return finish(hp, steps, diagnostics, out.status, started)
            }
            Err(e) => {
                return fail(HostError::Failed(format!(
                    "{e} (exit status {}): {}",
                    out.status,
                    out.output.trim()
                )))
            }
        }
    }
    fail(HostError::Failed(
        "files kept changing under a concurrent run; nothing more was changed".into(),
    ))
}

/// A host plan that is one command and nothing else (`run`), on a transport that can run a
/// command directly: no script, no lock, no remote process but the command, as `ssh HOST CMD`.
fn lone_command(
    hp: &HostPlan,
    transport: &mut dyn Transport,
    deadline: Instant,
    started: Instant,
) -> Option<Result<HostReport, HostError>> {
    let [Step::Command(c)] = hp.steps.as_slice() else {
        return None;
    };
    if hp.exclusive || c.when != crate::plan::When::Always {
        return None;
    }
    let out = match transport.run_command(&crate::shell::join(&c.argv), deadline)? {
        Ok(out) => out,
        Err(e) => return Some(Err(e)),
    };
    let result = StepResult {
        status: if out.status == 0 {
            StepStatus::Ok
        } else {
            StepStatus::Failed
        },
        exit_status: Some(out.status),
        stdout: out.stdout,
        stderr: out.stderr,
    };
    Some(Ok(finish(hp, vec![result], String::new(), 0, started)))
}

fn finish(hp: &HostPlan, steps: Vec<StepResult>, diagnostics: String, exit: i32, started: Instant) -> HostReport {
    let worst = |s: StepStatus| steps.iter().any(|r| r.status == s);
    let status = if worst(StepStatus::Invalid) {
        HostStatus::Invalid
    } else if worst(StepStatus::Failed) {
        HostStatus::Failed
    } else if exit != 0 || steps.iter().any(|r| r.status == StepStatus::NotRun) {
        // The script died without reporting a failure: say so rather than claim success.
        HostStatus::Failed
    } else if worst(StepStatus::Changed) {
        HostStatus::Changed
    } else {
        HostStatus::Ok
    };
    let error = match status {
        HostStatus::Failed if !diagnostics.trim().is_empty() => Some(diagnostics.trim().to_string()),
        HostStatus::Failed if !worst(StepStatus::Failed) => Some(format!("remote script exited with status {exit}")),
        _ => None,
    };
    let mut report = HostReport::new(&hp.host, status, error, started);
    report.steps = hp
        .steps
        .iter()
        .zip(steps)
        .map(|(s, mut result)| {
            if matches!(s, Step::File(f) if f.secret) {
                result.stdout.clear();
                result.stderr.clear();
            }
            StepReport {
                step: s.label(),
                result,
            }
        })
        .collect();
    report
}
