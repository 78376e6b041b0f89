//! Turns a host's steps into one POSIX `sh` script and parses what it reports back. Pure.
//!
//! Only plain `sh` and coreutils run remotely. File contents travel inside the script (read by the
//! remote shell from the SSH channel's stdin), never in a process argument. Every user value is
//! quoted; the script reports each step as one `@cloudctl` record line.

use super::files;
pub use crate::digest::sha256_hex;
use crate::plan::{CommandStep, FileStep, HostPlan, Step, StepId, When};
use crate::shell::{quote, RECORD};
use base64::Engine;
/// Where the per-host lock lives (serialises concurrent cloudctl runs on one host): in a
/// directory only the SSH user (root) may enter, not in world-writable /run/lock, where any user
/// could hold the lock or plant a symlink for root to follow.
pub const LOCK_DIR: &str = "/run/cloudctl";
pub const LOCK_FILE: &str = "/run/cloudctl/lock";
/// cloudctl's own state on a host (0700): backups of replaced files, pending restarts.
pub const STATE_DIR: &str = "/var/lib/cloudctl";
/// Backups of replaced files, under their own path (kept out of served trees such as a docroot).
pub const BACKUP_DIR: &str = "/var/lib/cloudctl/backups";
/// One empty file per command that must still run because files it depends on were activated
/// (survives a run killed between activating a file and restarting its daemon).
pub const PENDING_DIR: &str = "/var/lib/cloudctl/pending";
/// Exit status of a script that could not take the host lock in time.
pub const EXIT_LOCK_TIMEOUT: i32 = 75;
/// Exit status of a script that found one of cloudctl's directories unsafe (a symlink, not 0700,
/// or owned by someone else).
pub const EXIT_UNSAFE_DIR: i32 = 77;

/// Helpers every script defines first: `rec` encodes a step's captured output only when there
/// is some, so recording a step costs no process. `umask 077` first: a file being uploaded or
/// backed up is never readable by others, even for a moment or after a dropped connection;
/// commands and directories get the host's own umask back (`$um`). `safe_dir DIR` makes DIR
/// (mode 0700) or refuses it when it is a symlink or anyone but the SSH user could write it; `sd`
/// does that once for the state folder. A host plan of commands only (`run`) writes no file, so
/// it keeps the host's umask throughout and saves the two processes of switching (`commands_only`):
/// on a fan-out to hundreds of hosts every process a host starts counts.
fn prelude(commands_only: bool) -> String {
    let umask = if commands_only { "" } else { "um=$(umask); umask 077\n" };
    format!(
        r#"set -u
{umask}safe_dir() {{ mkdir -m 700 "$1" 2>/dev/null; if [ -L "$1" ] || [ ! -d "$1" ] || [ "$(stat -c '%u %a' "$1")" != "$(id -u) 700" ]; then echo "{RECORD} unsafe $1"; exit {EXIT_UNSAFE_DIR}; fi; }}
sd() {{ [ -n "${{sdok:-}}" ] || {{ safe_dir {STATE_DIR} && mkdir -p {BACKUP_DIR} {PENDING_DIR} && sdok=1; }}; }}
rec() {{ o=-; e=-; [ -s "$T/o" ] && o=$(base64 -w0 < "$T/o"); [ -s "$T/e" ] && e=$(base64 -w0 < "$T/e"); printf '{RECORD} %s %s %s %s %s\n' "$1" "$2" "${{3:--}}" "$o" "$e"; : > "$T/o"; : > "$T/e"; }}
T=$(mktemp -d "${{TMPDIR:-/tmp}}/cloudctl.XXXXXX") || exit 70
: > "$T/o"; : > "$T/e"
"#
    )
}

/// What a probe found at one path.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Probed {
    pub sha: Option<String>,
    /// `mode user:group`, as `stat -c '%a %U:%G'` prints it.
    pub meta: Option<String>,
    /// The current content (dry runs only, and only where it differs from the plan).
    pub content: Option<Vec<u8>>,
}

/// The apply script for one host. `remote[i]` is what a probe found for step `i` (files only);
/// a file already holding the planned content is not sent again, and the script refuses to run
/// ("stale") if such a file changed since the probe. Consecutive file steps and consecutive
/// removals run as batches (see `files`), so the remote processes do not grow with the files.
pub fn apply_script(hp: &HostPlan, remote: &[Option<Probed>], lock_timeout_secs: u64) -> String {
    let seen = |i: usize| remote.get(i).cloned().flatten().unwrap_or_default();
    let unsent = |i: usize, f: &FileStep| {
        let p = seen(i);
        p.sha == Some(sha256_hex(&f.content)) && p.meta.is_some()
    };
    let mut body = String::new();
    if hp.exclusive {
        body += &format!(
            "safe_dir {LOCK_DIR}; if [ -L {LOCK_FILE} ]; then echo '{RECORD} unsafe {LOCK_FILE}'; exit {EXIT_UNSAFE_DIR}; fi\n\
             exec 9>>{LOCK_FILE} && flock -w {lock_timeout_secs} 9 || {{ echo '{RECORD} lock timeout'; exit {EXIT_LOCK_TIMEOUT}; }}\n"
        );
    }
    // A file will be sent: check the state folder (backups, pending markers) before any change.
    if hp
        .steps
        .iter()
        .enumerate()
        .any(|(i, st)| matches!(st, Step::File(f) if !unsent(i, f)))
    {
        body += "sd\n";
    }
    let probed: Vec<Probed> = (0..hp.steps.len()).map(seen).collect();
    let guarded: Vec<(&FileStep, &Probed)> = hp
        .steps
        .iter()
        .enumerate()
        .filter_map(|(i, s)| match s {
            Step::File(f) if unsent(i, f) => Some((f, &probed[i])),
            _ => None,
        })
        .collect();
    body += &files::stale_guard(&guarded);
    let mut stages = 0;
    let mut i = 0;
    while i < hp.steps.len() {
        // The run of steps of one kind starting at i (files and removals are batched).
        let run_end = |pred: fn(&Step) -> bool| {
            (i..hp.steps.len())
                .find(|&j| !pred(&hp.steps[j]))
                .unwrap_or(hp.steps.len())
        };
        match &hp.steps[i] {
            Step::File(_) => {
                let end = run_end(|s| matches!(s, Step::File(_)));
                let members: Vec<files::Member> = (i..end)
                    .map(|j| {
                        let Step::File(f) = &hp.steps[j] else {
                            unreachable!("a run of files")
                        };
                        let keep = unsent(j, f);
                        let p = &probed[j];
                        files::Member {
                            index: j,
                            pending: pending_for(hp, &f.id),
                            file: f,
                            send: !keep,
                            exists: p.sha.is_some() || p.meta.is_some() || remote.get(j).cloned().flatten().is_none(),
                            meta_ok: keep && p.meta.as_deref().is_some_and(|m| files::meta_matches(f, m)),
                        }
                    })
                    .collect();
                for m in &members {
                    body += &format!("c{0}=0 b{0}=0\n", m.index);
                }
                body += &files::batch(&members, &mut stages);
                i = end;
            }
            Step::Absent(_) => {
                let end = run_end(|s| matches!(s, Step::Absent(_)));
                let members: Vec<(usize, &str)> = (i..end)
                    .map(|j| match &hp.steps[j] {
                        Step::Absent(a) => (j, a.path.as_str()),
                        _ => unreachable!("a run of removals"),
                    })
                    .collect();
                body += &files::absent_batch(&members);
                i = end;
            }
            Step::Dir(d) => {
                let p = quote(d.path.as_str());
                let mode = format!("{:o}", d.mode);
                body += &format!(
                    "c{i}=0\nif [ -d {p} ] && [ \"$(stat -c %a {p})\" = {mode} ]; then rec {i} ok\n\
                     elif (umask \"$um\"; mkdir -p {p}) 2>\"$T/e\" && chmod {mode} {p} 2>\"$T/e\"; then c{i}=1; rec {i} changed\n\
                     else rec {i} failed 1; exit 1; fi\n"
                );
                i += 1;
            }
            // Polled by the executor between scripts (exec::phased), never inside one.
            Step::WaitUntil(_) => i += 1,
            Step::Command(c) => {
                body += &format!("c{i}=0\n");
                body += &command_step(hp, i, c);
                i += 1;
            }
        }
    }
    // Staging directories left by a failed batch are removed on exit, with the temp dir.
    let stage_vars: String = (0..stages).map(|k| format!(" ${{S{k}:+\"$S{k}\"}}")).collect();
    let inits: String = (0..stages).map(|k| format!("S{k}=\n")).collect();
    format!(
        "main() {{\n{}{inits}trap 'rm -rf \"$T\"{stage_vars}' EXIT\n{body}exit 0\n}}\nmain </dev/null\n",
        prelude(commands_only(hp))
    )
}

/// A command runs with the host's own umask (not the 077 of file uploads); in a script of
/// commands only the umask never changed, so the command needs no subshell.
fn run_argv(argv: &[String], commands_only: bool) -> String {
    let argv: Vec<_> = argv.iter().map(|a| quote(a)).collect();
    if commands_only {
        argv.join(" ")
    } else {
        format!("(umask \"$um\"; exec {})", argv.join(" "))
    }
}

/// A host plan whose steps are all commands that do not wait for a file (see `prelude`).
fn commands_only(hp: &HostPlan) -> bool {
    hp.steps
        .iter()
        .all(|s| matches!(s, Step::Command(c) if !matches!(c.when, When::Changed(_))))
}

/// The pending marker of a command that reacts to changed files, named after the command.
pub fn pending_marker(c: &CommandStep) -> String {
    format!("{PENDING_DIR}/{}", &sha256_hex(c.argv.join("\0").as_bytes())[..32])
}

/// Markers of the commands that must run once the file step `id` is activated.
fn pending_for(hp: &HostPlan, id: &str) -> Vec<String> {
    hp.steps
        .iter()
        .filter_map(|s| match s {
            Step::Command(c) if matches!(&c.when, When::Changed(ids) if ids.iter().any(|x| x == id)) => {
                Some(pending_marker(c))
            }
            _ => None,
        })
        .collect()
}

/// The file steps (index, step) named by `ids`.
fn files_named<'a>(hp: &'a HostPlan, ids: &'a [StepId]) -> impl Iterator<Item = (usize, &'a FileStep)> {
    hp.steps.iter().enumerate().filter_map(move |(i, s)| match s {
        Step::File(f) if ids.iter().any(|id| id == f.id.as_str()) => Some((i, f)),
        _ => None,
    })
}

fn command_step(hp: &HostPlan, i: usize, c: &CommandStep) -> String {
    let run = run_argv(&c.argv, commands_only(hp));
    let (ids, check) = match &c.when {
        When::Always => {
            return format!(
                "{run} >\"$T/o\" 2>\"$T/e\" 9>&-; rc=$?\n\
                 if [ $rc -eq 0 ]; then c{i}=1; rec {i} ok 0; else rec {i} failed $rc; exit 1; fi\n"
            )
        }
        When::Unless(check) => (None, check),
        When::Changed(ids) => (Some(ids), &Vec::new()),
    };
    let Some(ids) = ids else {
        let check: Vec<_> = check.iter().map(|a| quote(a)).collect();
        return format!(
            "if ! {} >/dev/null 2>&1 9>&-; then {run} >\"$T/o\" 2>\"$T/e\" 9>&-; rc=$?\n\
             if [ $rc -eq 0 ]; then c{i}=1; rec {i} changed 0; else rec {i} failed $rc; exit 1; fi\n\
             else rec {i} ok; fi\n",
            check.join(" ")
        );
    };
    // Runs when a file it depends on changed now, or in an earlier run that was cut off before
    // it got here (its marker is still there).
    let marker = pending_marker(c);
    let mut cond: Vec<String> = files_named(hp, ids).map(|(f, _)| format!("[ $c{f} = 1 ]")).collect();
    cond.push(format!("[ -e {marker} ]"));
    // It failed: the files it was given in this run go back to their previous versions, and it
    // runs again on those, so the old configuration is what keeps running.
    let mut restore = String::new();
    for (f, step) in files_named(hp, ids) {
        let p = quote(step.path.as_str()).into_owned();
        let tmp = quote(&temp_path(step)).into_owned();
        let bak = quote(&backup_path(step)).into_owned();
        let done = quote(&format!("cloudctl: restored the previous {}", step.path)).into_owned();
        let gone = quote(&format!("cloudctl: removed {} (there was none before)", step.path)).into_owned();
        let stuck = quote(&format!("cloudctl: could not restore the previous {}", step.path)).into_owned();
        restore += &format!(
            "  case $b{f} in\n    \
             1) r=1; cp -p {bak} {tmp} 2>>\"$T/e\" && mv -f {tmp} {p} 2>>\"$T/e\" && echo {done} >>\"$T/e\" || echo {stuck} >>\"$T/e\";;\n    \
             2) r=1; rm -f {p} && echo {gone} >>\"$T/e\";;\n  esac\n"
        );
    }
    let shown = c.short();
    let again_ok = quote(&format!(
        "cloudctl: ran `{shown}` again with the previous files: it succeeded, the previous configuration is running"
    ))
    .into_owned();
    let again_bad = quote(&format!(
        "cloudctl: ran `{shown}` again with the previous files: it failed too"
    ))
    .into_owned();
    format!(
        "if {{ {}; }}; then {run} >\"$T/o\" 2>\"$T/e\" 9>&-; rc=$?\n\
         if [ $rc -eq 0 ]; then rm -f {marker}; c{i}=1; rec {i} changed 0\n\
         else r=0\n{restore}  \
         if [ $r = 1 ]; then if {run} >/dev/null 2>&1 9>&-; then rm -f {marker}; echo {again_ok} >>\"$T/e\"; else echo {again_bad} >>\"$T/e\"; fi; fi\n  \
         rec {i} failed $rc; exit 1; fi\n\
         else rec {i} skipped; fi\n",
        cond.join(" || ")
    )
}

fn temp_path(f: &FileStep) -> String {
    let name = f.path.as_str().rsplit('/').next().unwrap_or("file");
    format!("{}/.{name}.cloudctl-new", f.path.parent().trim_end_matches('/'))
}

/// Where the previous version of a file is kept: under the state folder, by its own path.
pub fn backup_path(f: &FileStep) -> String {
    format!("{BACKUP_DIR}{}", f.path)
}

/// How one step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Ok,
    Changed,
    Skipped,
    Failed,
    /// A validator refused the new file; the old one is still active.
    Invalid,
    /// Not reached: an earlier step failed, or the run stopped.
    NotRun,
}

impl StepStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Ok => "ok",
            StepStatus::Changed => "changed",
            StepStatus::Skipped => "skipped",
            StepStatus::Failed => "failed",
            StepStatus::Invalid => "invalid",
            StepStatus::NotRun => "not run",
        }
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StepResult {
    pub status: StepStatus,
    pub exit_status: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// What an apply script reported.
#[derive(Debug, Clone, PartialEq)]
pub enum ApplyOutcome {
    Done {
        steps: Vec<StepResult>,
        diagnostics: String,
    },
    /// A file changed between probe and apply; re-run sending every file.
    Stale,
    LockTimeout,
    /// One of cloudctl's directories on the host (or the lock file) is unsafe; nothing was changed.
    Unsafe(String),
}

pub fn parse_apply(output: &str, step_count: usize) -> Result<ApplyOutcome, String> {
    let decode = |f: Option<&str>| -> Result<String, String> {
        match f {
            None | Some("-") => Ok(String::new()),
            Some(b) => base64::engine::general_purpose::STANDARD
                .decode(b)
                .map(|v| String::from_utf8_lossy(&v).into_owned())
                .map_err(|e| format!("bad record: {e}")),
        }
    };
    let mut steps: Vec<Option<StepResult>> = vec![None; step_count];
    let mut diagnostics = String::new();
    for line in output.lines() {
        let Some(rest) = line.strip_prefix(RECORD).and_then(|r| r.strip_prefix(' ')) else {
            diagnostics += line;
            diagnostics += "\n";
            continue;
        };
        match rest {
            "stale" => return Ok(ApplyOutcome::Stale),
            "lock timeout" => return Ok(ApplyOutcome::LockTimeout),
            _ => {}
        }
        if let Some(path) = rest.strip_prefix("unsafe ") {
            return Ok(ApplyOutcome::Unsafe(path.to_string()));
        }
        let mut f = rest.split(' ');
        let idx: usize = f
            .next()
            .and_then(|i| i.parse().ok())
            .filter(|i| *i < step_count)
            .ok_or_else(|| format!("bad record {line:?}"))?;
        let status = match f.next() {
            Some("ok") => StepStatus::Ok,
            Some("changed") => StepStatus::Changed,
            Some("skipped") => StepStatus::Skipped,
            Some("failed") => StepStatus::Failed,
            Some("invalid") => StepStatus::Invalid,
            _ => return Err(format!("bad record {line:?}")),
        };
        let exit_status = f.next().and_then(|r| r.parse().ok());
        let stdout = decode(f.next())?;
        let stderr = decode(f.next())?;
        steps[idx] = Some(StepResult {
            status,
            exit_status,
            stdout,
            stderr,
        });
    }
    let steps = steps
        .into_iter()
        .map(|s| {
            s.unwrap_or(StepResult {
                status: StepStatus::NotRun,
                exit_status: None,
                stdout: String::new(),
                stderr: String::new(),
            })
        })
        .collect();
    Ok(ApplyOutcome::Done { steps, diagnostics })
}
